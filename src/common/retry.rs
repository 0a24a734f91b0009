//! Retry pacing shared by builds and pushes.

use std::time::Duration;

/// The longest wait between two attempts, however many retries are allowed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait before retry `attempt` (1, 2, ...): `base` doubled each time, at most [`MAX_BACKOFF`].
pub fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF)
}

/// Runs `attempt` (given its number, from 1) until it succeeds or `retries` retries are spent,
/// calling `on_retry` with the attempt's number and error before waiting the backoff; returns the
/// last result and the number of attempts.
pub async fn retrying<T, E, F, Fut>(
    retries: u32,
    backoff: Duration,
    mut on_retry: impl FnMut(u32, &E),
    mut attempt: F,
) -> (Result<T, E>, u32)
where
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = 0;
    loop {
        attempts += 1;
        match attempt(attempts).await {
            Err(error) if attempts <= retries => {
                on_retry(attempts, &error);
                tokio::time::sleep(backoff_delay(backoff, attempts)).await;
            }
            result => return (result, attempts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_secs(2);
        assert_eq!(backoff_delay(base, 1), Duration::from_secs(2));
        assert_eq!(backoff_delay(base, 3), Duration::from_secs(8));
        assert_eq!(backoff_delay(base, 10), MAX_BACKOFF);
        assert_eq!(backoff_delay(base, u32::MAX), MAX_BACKOFF);
    }
}
