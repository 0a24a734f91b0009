//! The clock of a run, for the timeline (`--report`): when each image's build and push started
//! and ended, read off the events the reporter receives (so the scheduler needs no clock of its
//! own), and what the run cost the host's CPUs. [`RunClock::stamp`] writes it into the summary.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use crate::report::event::{Event, Notice, Subject};
use crate::report::summary::{EngineSlots, Entry, RunTiming, Summary};

/// Started with the run; shared by the reporter's `event` (`&mut`) and `notice` (`&`) paths.
#[derive(Debug)]
pub struct RunClock {
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    origin: Instant,
    started: SystemTime,
    cpu: Option<CpuTicks>,
    /// When the scheduler took the images (the roots could start).
    scheduled: Option<Duration>,
    images: BTreeMap<String, Stamps>,
    /// The atomic push's tag moves: from the `Tagging` notice to the next notice (the stages
    /// run one after the other, so anything said next is said after the moves).
    tagging: Option<Duration>,
    tagged: Option<Duration>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Stamps {
    started: Option<Duration>,
    finished: Option<Duration>,
    push_started: Option<Duration>,
    pushed: Option<Duration>,
}

impl Default for RunClock {
    fn default() -> Self {
        RunClock::start()
    }
}

impl RunClock {
    /// The run starts now.
    pub fn start() -> RunClock {
        RunClock {
            state: Mutex::new(State {
                origin: Instant::now(),
                started: SystemTime::now(),
                cpu: CpuTicks::read(),
                scheduled: None,
                images: BTreeMap::new(),
                tagging: None,
                tagged: None,
            }),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut State, Duration) -> T) -> T {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = state.origin.elapsed();
        f(&mut state, now)
    }

    /// The scheduler takes the images now.
    pub fn scheduling(&self) {
        self.with(|state, now| state.scheduled = Some(now));
    }

    pub fn event(&self, subjects: &[Subject], event: &Event) {
        self.with(|state, now| {
            let (task, slot): (usize, fn(&mut Stamps) -> &mut Option<Duration>) = match event {
                Event::Started { task, .. } => (*task, |s| &mut s.started),
                Event::Finished { task, .. } => (*task, |s| &mut s.finished),
                Event::PushStarted { task } => (*task, |s| &mut s.push_started),
                Event::Pushed { task, .. } => (*task, |s| &mut s.pushed),
                Event::Log { .. } | Event::Retrying { .. } | Event::Tick => return,
            };
            let stamps = state.images.entry(subjects[task].name.clone()).or_default();
            let at = slot(stamps);
            // Starts keep the first attempt's (retries are part of the image's time); ends the
            // last.
            if at.is_none() || matches!(event, Event::Finished { .. } | Event::Pushed { .. }) {
                *at = Some(now);
            }
        });
    }

    pub fn notice(&self, notice: &Notice) {
        self.with(|state, now| {
            if let Notice::Status {
                verb: "Tagging", ..
            } = notice
            {
                state.tagging = Some(now);
                state.tagged = None;
            } else if state.tagging.is_some() && state.tagged.is_none() {
                state.tagged = Some(now);
            }
        });
    }

    /// Writes the times into `summary`: each image's (by name), and the run's on `engines`.
    pub fn stamp(&self, summary: &mut Summary, engines: Vec<EngineSlots>) {
        self.with(|state, now| {
            let tagged = state.tagging.map(|_| state.tagged.unwrap_or(now));
            let finished = |name: &str| state.images.get(name).and_then(|s| s.finished);
            let atomic = summary.push.as_ref().is_some_and(|p| p.mode == "atomic");
            let tags_moved = summary.push.as_ref().is_some_and(|p| p.tags_moved);
            let entries = summary
                .built
                .iter_mut()
                .chain(&mut summary.failed)
                .chain(&mut summary.skipped);
            for entry in entries {
                let Some(stamps) = state.images.get(&entry.name).copied() else {
                    continue;
                };
                // It could start once its last parent was done (the roots: once scheduled).
                let queued = entry
                    .parents
                    .iter()
                    .filter_map(|p| finished(p))
                    .max()
                    .or(state.scheduled)
                    .map(|q| stamps.started.map_or(q, |s| q.min(s)));
                stamp_entry(entry, queued, stamps);
                if tags_moved && entry.push.as_deref() == Some("pushed") {
                    entry.tag_moved_at = if atomic { tagged } else { stamps.pushed }.map(seconds);
                }
            }
            let cpu = state.cpu.zip(CpuTicks::read());
            summary.timing = Some(RunTiming {
                started: humantime::format_rfc3339_seconds(state.started).to_string(),
                wall_seconds: seconds(now),
                cpu_seconds: cpu.and_then(|(from, to)| from.busy_seconds(&to, now)),
                cpus: cpu.map(|(_, to)| to.cpus),
                engines,
                tags_moved_from: state.tagging.map(seconds),
                tags_moved_to: tagged.map(seconds),
            });
        });
    }
}

fn stamp_entry(entry: &mut Entry, queued: Option<Duration>, stamps: Stamps) {
    entry.queued_at = queued.map(seconds);
    entry.started_at = stamps.started.map(seconds);
    entry.finished_at = stamps.finished.map(seconds);
    entry.push_started_at = stamps.push_started.map(seconds);
    entry.pushed_at = stamps.pushed.map(seconds);
}

/// Milliseconds are plenty, and keep the summary short.
fn seconds(d: Duration) -> f64 {
    (d.as_secs_f64() * 1000.0).round() / 1000.0
}

/// The host's CPU time so far, from the first line of `/proc/stat` (in clock ticks).
#[derive(Debug, Clone, Copy, PartialEq)]
struct CpuTicks {
    busy: u64,
    total: u64,
    cpus: usize,
}

impl CpuTicks {
    fn read() -> Option<CpuTicks> {
        CpuTicks::parse(&std::fs::read_to_string("/proc/stat").ok()?)
    }

    /// `cpu user nice system idle iowait irq softirq steal ...` (guest time is counted in user
    /// already), then one `cpuN` line per CPU.
    fn parse(text: &str) -> Option<CpuTicks> {
        let first = text.lines().next()?.strip_prefix("cpu ")?;
        let fields: Vec<u64> = first
            .split_whitespace()
            .map(|f| f.parse().ok())
            .collect::<Option<_>>()?;
        let field = |i: usize| fields.get(i).copied().unwrap_or(0);
        let idle = field(3) + field(4);
        let busy = field(0) + field(1) + field(2) + field(5) + field(6) + field(7);
        let cpus = text
            .lines()
            .filter(|l| {
                l.strip_prefix("cpu")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()))
            })
            .count();
        (cpus > 0).then_some(CpuTicks {
            busy,
            total: busy + idle,
            cpus,
        })
    }

    /// The CPU-seconds spent from `self` to `later`, `wall` apart. The ticks' unit (USER_HZ) is
    /// not read from the system: the busy share of all ticks, times the CPUs' wall time.
    fn busy_seconds(&self, later: &CpuTicks, wall: Duration) -> Option<f64> {
        let total = later.total.checked_sub(self.total)?;
        let busy = later.busy.checked_sub(self.busy)?;
        if total == 0 {
            return None;
        }
        let share = busy as f64 / total as f64;
        Some((share * wall.as_secs_f64() * later.cpus as f64 * 10.0).round() / 10.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::event::Outcome;
    use crate::report::summary::{PushSummary, Row};

    #[test]
    fn cpu_seconds_are_the_busy_share_of_the_hosts_cpus() {
        let before = CpuTicks::parse(
            "cpu  100 0 50 800 50 0 0 0 0 0\ncpu0 50 0 25 400 25 0 0 0 0 0\ncpu1 50 0 25 400 25 0 0 0 0 0\nintr 1\n",
        )
        .unwrap();
        assert_eq!(
            before,
            CpuTicks {
                busy: 150,
                total: 1000,
                cpus: 2
            }
        );
        // 10 s on 2 CPUs at 100 ticks/s: 2000 ticks, 1500 of them busy.
        let after = CpuTicks {
            busy: 1650,
            total: 3000,
            cpus: 2,
        };
        assert_eq!(
            before.busy_seconds(&after, Duration::from_secs(10)),
            Some(15.0)
        );
        assert_eq!(before.busy_seconds(&before, Duration::from_secs(1)), None);
        assert_eq!(CpuTicks::parse("intr 1\n"), None);
    }

    fn subjects(names: &[&str]) -> Vec<Subject> {
        names
            .iter()
            .map(|n| Subject {
                name: n.to_string(),
                reference: format!("k/{n}:1"),
            })
            .collect()
    }

    #[test]
    fn events_become_each_images_times_and_the_runs() {
        let clock = RunClock::start();
        let subjects = subjects(&["base", "keystone"]);
        clock.scheduling();
        let pause = || std::thread::sleep(Duration::from_millis(20));
        clock.event(
            &subjects,
            &Event::Started {
                task: 0,
                attempt: 1,
            },
        );
        pause();
        clock.event(
            &subjects,
            &Event::Started {
                task: 0,
                attempt: 2,
            },
        );
        let built = Outcome::Built {
            image_id: "sha256:1".into(),
            seconds: 1.0,
            attempts: 2,
        };
        clock.event(
            &subjects,
            &Event::Finished {
                task: 0,
                outcome: built.clone(),
            },
        );
        pause();
        clock.event(
            &subjects,
            &Event::Started {
                task: 1,
                attempt: 1,
            },
        );
        clock.event(&subjects, &Event::PushStarted { task: 0 });
        pause();
        clock.event(
            &subjects,
            &Event::Finished {
                task: 1,
                outcome: built.clone(),
            },
        );
        let pushed = crate::report::event::PushOutcome::Pushed {
            seconds: 0.1,
            attempts: 1,
            digest: None,
        };
        clock.event(
            &subjects,
            &Event::Pushed {
                task: 0,
                outcome: pushed.clone(),
            },
        );
        clock.notice(&Notice::Status {
            verb: "Tagging",
            text: "2 images".into(),
        });
        pause();
        clock.notice(&Notice::Summary("table".into()));

        let mut summary = Summary::default();
        for (name, parents) in [("base", vec![]), ("keystone", vec!["base".to_string()])] {
            summary.record(Row {
                name,
                reference: "r",
                input_hash: "h",
                outcome: &built,
                push: Some(&pushed),
                parents,
            });
        }
        summary.push = Some(PushSummary {
            mode: "atomic".into(),
            tags_moved: true,
            staging_tag: None,
        });
        let engines = vec![EngineSlots {
            url: "unix:///e.sock".into(),
            threads: 2,
        }];
        clock.stamp(&mut summary, engines.clone());
        let (base, keystone) = (&summary.built[0], &summary.built[1]);
        let t = |v: Option<f64>| v.expect("stamped");
        assert!(t(base.queued_at) <= t(base.started_at));
        assert!(
            t(base.finished_at) - t(base.started_at) >= 0.02,
            "the first attempt's start counts: {base:?}"
        );
        assert_eq!(
            keystone.queued_at, base.finished_at,
            "queued when its parent was done"
        );
        assert!(t(keystone.started_at) > t(keystone.queued_at));
        assert!(t(base.pushed_at) > t(base.push_started_at));
        assert_eq!(keystone.push_started_at, None);
        let timing = summary.timing.as_ref().unwrap();
        assert!(timing.tags_moved_to.unwrap() - timing.tags_moved_from.unwrap() >= 0.02);
        assert_eq!(base.tag_moved_at, timing.tags_moved_to);
        assert!(timing.wall_seconds >= t(keystone.finished_at));
        assert_eq!(timing.engines, engines);
        assert!(timing.started.ends_with('Z'), "{}", timing.started);
        if std::path::Path::new("/proc/stat").exists() {
            assert!(timing.cpus.unwrap() >= 1);
        }
    }
}
