//! Retry pacing shared by builds and pushes.

use std::time::Duration;

/// The longest wait between two attempts, however many retries are allowed.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The wait before retry `attempt` (1, 2, ...): `base` doubled each time, at most [`MAX_BACKOFF`].
pub fn backoff_delay(base: Duration, attempt: u32) -> Duration {
    base.saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
        .min(MAX_BACKOFF)
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
