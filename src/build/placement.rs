//! Where a ready task goes: a pure function of the engines' state, so that the coordinator's
//! choice is tested without engines.

use std::time::Duration;

/// An engine as [`place`] sees it, for one task.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub alive: bool,
    /// Builds it can start now.
    pub free: usize,
    /// Whether the job's parent is in the engine (always true for a job without one).
    pub holds_parent: bool,
    /// Estimated time until one of its builds finishes (zero when a build is free).
    pub wait: Duration,
}

/// Where a ready job goes now, or `None` to leave it waiting. An engine holding the parent with a
/// free build goes first (the one with the most free builds); another engine only when the
/// parent can be pulled (`pullable`) and every live holder stays busy for longer than `pull`.
pub fn place(candidates: &[Candidate], pullable: bool, pull: Duration) -> Option<usize> {
    let best = |holder: bool| {
        candidates
            .iter()
            .enumerate()
            .filter(|(_, s)| s.alive && s.free > 0 && s.holds_parent == holder)
            .max_by_key(|(i, s)| (s.free, std::cmp::Reverse(*i)))
            .map(|(i, _)| i)
    };
    if let Some(i) = best(true) {
        return Some(i);
    }
    if !pullable {
        return None;
    }
    let holder_wait = candidates
        .iter()
        .filter(|s| s.alive && s.holds_parent)
        .map(|s| s.wait)
        .min();
    match holder_wait {
        Some(wait) if wait <= pull => None,
        _ => best(false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(free: usize, holds_parent: bool, wait: u64) -> Candidate {
        Candidate {
            alive: true,
            free,
            holds_parent,
            wait: Duration::from_secs(wait),
        }
    }

    const PULL: Duration = Duration::from_secs(30);

    #[test]
    fn placement_prefers_the_engine_holding_the_parent() {
        let candidates = [
            candidate(2, false, 0),
            candidate(1, true, 0),
            candidate(1, false, 0),
        ];
        assert_eq!(place(&candidates, true, PULL), Some(1));
        // Of two holders, the one with more free builds.
        let candidates = [candidate(1, true, 0), candidate(3, true, 0)];
        assert_eq!(place(&candidates, true, PULL), Some(1));
    }

    #[test]
    fn placement_weighs_a_pull_against_waiting_for_the_holder() {
        // The holder frees up before a pull would finish: wait for it.
        let candidates = [candidate(0, true, 10), candidate(2, false, 0)];
        assert_eq!(place(&candidates, true, PULL), None);
        // The holder stays busy longer than a pull: pull elsewhere.
        let candidates = [candidate(0, true, 300), candidate(2, false, 0)];
        assert_eq!(place(&candidates, true, PULL), Some(1));
        // Not in the registry yet: only a holder can take it.
        assert_eq!(place(&candidates, false, PULL), None);
        // A dead holder does not count.
        let mut candidates = [candidate(0, true, 10), candidate(1, false, 0)];
        candidates[0].alive = false;
        assert_eq!(place(&candidates, true, PULL), Some(1));
        // Nothing free anywhere.
        assert_eq!(
            place(&[candidate(0, true, 5), candidate(0, false, 5)], true, PULL),
            None
        );
    }
}
