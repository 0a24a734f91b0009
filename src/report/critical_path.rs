//! The critical path of a run: the chain of images, each built on the one before, with the most
//! build time. No number of engines or slots could have finished the run sooner than that
//! chain; a run much longer than it waited on slots or CPU, not on its parents.

use std::collections::BTreeMap;

use crate::report::summary::{Entry, Summary};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct CriticalPath {
    /// From the root to the last image.
    pub images: Vec<String>,
    /// The chain's build time.
    pub seconds: f64,
}

/// The images of the run (built, failed, skipped, not built; not the unmatched ones), by name.
pub fn run_images(summary: &Summary) -> BTreeMap<&str, &Entry> {
    summary
        .built
        .iter()
        .chain(&summary.failed)
        .chain(&summary.skipped)
        .filter(|e| e.status.is_some())
        .map(|e| (e.name.as_str(), e))
        .collect()
}

/// The time an image's build took: from its start to its end where the run timed it, else the
/// seconds the summary gives (a summary without times), else none (fresh, skipped, not built).
pub fn build_seconds(entry: &Entry) -> f64 {
    match (entry.started_at, entry.finished_at) {
        (Some(start), Some(end)) => (end - start).max(0.0),
        _ => entry.seconds.unwrap_or(0.0).max(0.0),
    }
}

/// The chain with the most build time; empty when nothing was built. Ties go to the name that
/// sorts first, so the same summary always gives the same path.
pub fn critical_path(summary: &Summary) -> CriticalPath {
    let images = run_images(summary);
    // (chain time ending at the image, the parent it continues); parents before children by
    // memoized descent. A cycle (a hand-edited summary) counts as no parent.
    let mut best: BTreeMap<&str, (f64, Option<&str>)> = BTreeMap::new();
    for &name in images.keys() {
        chain_to(name, &images, &mut best, &mut Vec::new());
    }
    // (A cycle left no loop in `best`: a parent on the way was skipped.)
    let Some((&last, &(seconds, _))) = best.iter().filter(|(_, (s, _))| *s > 0.0).fold(
        None,
        |top: Option<(&&str, &(f64, Option<&str>))>, item| match top {
            Some(t) if t.1.0 >= item.1.0 => Some(t),
            _ => Some(item),
        },
    ) else {
        return CriticalPath::default();
    };
    let mut path = vec![last.to_string()];
    let mut at = last;
    while let Some(parent) = best[at].1 {
        path.push(parent.to_string());
        at = parent;
    }
    path.reverse();
    CriticalPath {
        images: path,
        seconds: (seconds * 1000.0).round() / 1000.0,
    }
}

fn chain_to<'a>(
    name: &'a str,
    images: &BTreeMap<&'a str, &'a Entry>,
    best: &mut BTreeMap<&'a str, (f64, Option<&'a str>)>,
    visiting: &mut Vec<&'a str>,
) -> Option<f64> {
    if let Some(&(seconds, _)) = best.get(name) {
        return Some(seconds);
    }
    if visiting.contains(&name) {
        return None;
    }
    visiting.push(name);
    let entry = images[name];
    let mut parents: Vec<&'a str> = entry
        .parents
        .iter()
        .map(String::as_str)
        .filter(|p| images.contains_key(p))
        .collect();
    parents.sort_unstable();
    let mut from: Option<(&str, f64)> = None;
    for parent in parents {
        let Some(seconds) = chain_to(parent, images, best, visiting) else {
            continue;
        };
        if from.is_none_or(|(_, s)| seconds > s) {
            from = Some((parent, seconds));
        }
    }
    visiting.pop();
    let seconds = build_seconds(entry) + from.map_or(0.0, |(_, s)| s);
    best.insert(name, (seconds, from.map(|(p, _)| p)));
    Some(seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A summary as `--summary-json-file` writes it, by hand: base (10 s) ← openstack-base
    /// (30 s) ← { keystone (5 s), nova (20 s, failed) }, base ← cron (40 s), and glance fresh
    /// on openstack-base.
    fn summary() -> Summary {
        serde_json::from_str(
            r#"{
              "status": "failed",
              "built": [
                {"name": "base", "status": "built", "seconds": 10.0,
                 "started_at": 1.0, "finished_at": 11.0},
                {"name": "openstack-base", "status": "built", "parents": ["base"],
                 "started_at": 11.0, "finished_at": 41.0},
                {"name": "keystone", "status": "built", "parents": ["openstack-base"],
                 "started_at": 41.0, "finished_at": 46.0},
                {"name": "cron", "status": "built", "parents": ["base"],
                 "started_at": 11.0, "finished_at": 51.0},
                {"name": "glance", "status": "fresh", "parents": ["openstack-base"],
                 "seconds": 0.0}
              ],
              "failed": [
                {"name": "nova", "status": "error", "parents": ["openstack-base"],
                 "started_at": 42.0, "finished_at": 62.0},
                {"name": "nova-api", "status": "parent_error", "parent": "nova",
                 "parents": ["nova"]}
              ],
              "not_matched": [{"name": "ironic", "parents": ["base"], "seconds": 500.0}]
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn the_chain_with_the_most_build_time_ends_at_the_failed_image_it_contains() {
        let path = critical_path(&summary());
        assert_eq!(path.images, ["base", "openstack-base", "nova"]);
        assert_eq!(path.seconds, 60.0);
    }

    #[test]
    fn a_longer_branch_takes_the_path_and_ties_go_to_the_first_name() {
        let mut s = summary();
        // cron now takes 60 s: base + cron (70 s) beats base + openstack-base + nova (60 s).
        s.built[3].finished_at = Some(71.0);
        assert_eq!(critical_path(&s).images, ["base", "cron"]);
        // Equal chains: the one that sorts first.
        s.built[3].finished_at = Some(61.0);
        assert_eq!(critical_path(&s).images, ["base", "cron"]);
        assert_eq!(critical_path(&s).seconds, 60.0);
    }

    #[test]
    fn without_times_the_summarys_seconds_count_and_nothing_built_is_no_path() {
        let untimed: Summary = serde_json::from_str(
            r#"{"built": [{"name": "a", "status": "built", "seconds": 3.0},
                          {"name": "b", "status": "built", "seconds": 4.0, "parents": ["a"]},
                          {"name": "c", "status": "built", "seconds": 5.0}]}"#,
        )
        .unwrap();
        let path = critical_path(&untimed);
        assert_eq!(
            (path.images, path.seconds),
            (vec!["a".into(), "b".into()], 7.0)
        );
        let fresh: Summary = serde_json::from_str(
            r#"{"built": [{"name": "a", "status": "fresh", "seconds": 0.0}]}"#,
        )
        .unwrap();
        assert_eq!(critical_path(&fresh), CriticalPath::default());
    }

    #[test]
    fn a_cycle_in_a_hand_edited_summary_ends_the_walk() {
        let looped: Summary = serde_json::from_str(
            r#"{"built": [{"name": "a", "status": "built", "seconds": 3.0, "parents": ["b"]},
                          {"name": "b", "status": "built", "seconds": 4.0, "parents": ["a"]}]}"#,
        )
        .unwrap();
        let path = critical_path(&looped);
        assert_eq!(path.seconds, 7.0);
        assert_eq!(path.images.len(), 2);
    }
}
