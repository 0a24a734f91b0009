//! Replays image build durations on N simulated engines with the real pool scheduler
//! (`kolla_build::build::pool`) and a simulated clock (tokio's paused time), and prints the
//! makespan against the lower bound max(critical path, total work / slots).
//!
//! `cargo run --release --example scaleout -- [--summary summary.json] [--pull SECONDS]`
//!
//! Without `--summary`, a synthetic graph shaped like kolla's full tree (188 images: base,
//! openstack-base, one base per service with its leaves, infrastructure images on base) with
//! fixed pseudo-random durations. With it, the `built` entries of a `--summary-json-file` give
//! the names, durations (`seconds`) and parents (`parent`, when recorded).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use kolla_build::build::coordinator::{PoolEngine, PoolOptions, run};
use kolla_build::build::schedule::{Options, Task};
use kolla_build::engine::BuildRequest;
use kolla_build::engine::fake::FakeEngine;
use kolla_build::prepare::context::ContextSpec;
use kolla_build::prepare::plan::weighted_priorities;
use kolla_build::report::event::{Event, Notice, Reporter, Subject};
use tokio::sync::watch;

/// An image: its name, parent (index) and build time in seconds.
struct Image {
    name: String,
    parent: Option<usize>,
    seconds: u64,
}

/// A deterministic generator (no dependency, same table every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo + 1)
    }
}

/// kolla's shape: base ← openstack-base ← 38 service bases ← 3 leaves each; base ← 33 others.
fn synthetic() -> Vec<Image> {
    let mut rng = Lcg(13);
    let mut images = vec![
        Image {
            name: "base".into(),
            parent: None,
            seconds: 240,
        },
        Image {
            name: "openstack-base".into(),
            parent: Some(0),
            seconds: 420,
        },
    ];
    for s in 0..38 {
        let service = images.len();
        images.push(Image {
            name: format!("service{s}-base"),
            parent: Some(1),
            seconds: rng.next(60, 300),
        });
        for l in 0..3 {
            images.push(Image {
                name: format!("service{s}-leaf{l}"),
                parent: Some(service),
                seconds: rng.next(20, 120),
            });
        }
    }
    while images.len() < 188 {
        let n = images.len();
        images.push(Image {
            name: format!("infra{n}"),
            parent: Some(0),
            seconds: rng.next(60, 600),
        });
    }
    images
}

/// The `built` entries of a summary JSON: name, seconds, and parent when the entry names one.
fn from_summary(path: &str) -> Vec<Image> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let json: serde_json::Value = serde_json::from_str(&text).expect("a summary JSON");
    let built = json["built"].as_array().expect("a `built` list");
    let names: Vec<String> = built
        .iter()
        .map(|b| b["name"].as_str().unwrap_or_default().to_string())
        .collect();
    built
        .iter()
        .map(|b| Image {
            name: b["name"].as_str().unwrap_or_default().to_string(),
            parent: b["parent"]
                .as_str()
                .and_then(|p| names.iter().position(|n| n == p)),
            seconds: b["seconds"].as_f64().unwrap_or(60.0).round() as u64,
        })
        .collect()
}

struct Quiet;

impl Reporter for Quiet {
    fn notice(&self, _: &Notice) {}
    fn event(&mut self, _: &[Subject], _: &Event) {}
}

fn tasks(images: &[Image]) -> Vec<Task> {
    // The CLI's weighing under --durations-from: own time plus that of every transitive dependent.
    let deps: Vec<Vec<usize>> = images
        .iter()
        .map(|i| i.parent.into_iter().collect())
        .collect();
    let seconds: Vec<Option<f64>> = images.iter().map(|i| Some(i.seconds as f64)).collect();
    let priority = weighted_priorities(&deps, &seconds);
    let reference = |n: &str| format!("sim:4000/k/{n}:1");
    images
        .iter()
        .enumerate()
        .map(|(i, image)| Task {
            name: image.name.clone(),
            deps: image.parent.into_iter().collect(),
            priority: priority[i],
            request: BuildRequest {
                image: image.name.clone(),
                reference: reference(&image.name),
                context: ContextSpec::new(format!("FROM {i}"), vec![]),
                labels: BTreeMap::new(),
                build_args: BTreeMap::new(),
                network_mode: "host".into(),
                no_cache: false,
                keep: false,
                pull: false,
                parent: image.parent.map(|p| reference(&images[p].name)),
            },
            decided: None,
            push: true,
        })
        .collect()
}

/// A tighter lower bound than the when every image descends from one root (kolla's
/// `base`): nothing else can run while the root builds, and each of the other N - 1 engines
/// pulls at least one parent before its first build, so
/// makespan >= root + (work - root + (N - 1) * pull) / N. None when there are several roots.
fn root_floor(images: &[Image], engines: u64, pull: u64) -> Option<u64> {
    let mut roots = images.iter().filter(|i| i.parent.is_none());
    let root = roots.next()?.seconds;
    if roots.next().is_some() {
        return None;
    }
    let total: u64 = images.iter().map(|i| i.seconds).sum();
    Some(root + (total - root + (engines - 1) * pull).div_ceil(engines))
}

fn critical_path(images: &[Image]) -> u64 {
    let mut finish = vec![0u64; images.len()];
    for (i, image) in images.iter().enumerate() {
        finish[i] = image.parent.map_or(0, |p| finish[p]) + image.seconds;
    }
    finish.into_iter().max().unwrap_or(0)
}

async fn simulate(images: &[Image], engines: usize, pull: Duration) -> (Duration, usize) {
    let registry = FakeEngine::new();
    let members: Vec<PoolEngine<FakeEngine>> = (0..engines)
        .map(|e| {
            let engine = images.iter().fold(
                FakeEngine::new()
                    .sharing_registry_with(&registry)
                    .with_url(&format!("sim://engine{e}"))
                    .with_pull_delay(pull),
                |engine, image| {
                    engine.with_build_delay(&image.name, Duration::from_secs(image.seconds))
                },
            );
            PoolEngine {
                engine: Arc::new(engine),
                threads: 1,
            }
        })
        .collect();
    let tasks = tasks(images);
    let options = PoolOptions {
        base: Options {
            threads: 1,
            retries: 0,
            timeout: None,
            backoff: Duration::from_secs(1),
            push_threads: 4 * engines,
            push_mode: kolla_build::common::types::PushMode::Immediate,
        },
        pull_estimate: pull,
        build_estimate: Duration::from_secs(120),
        estimates: images
            .iter()
            .map(|i| Some(Duration::from_secs(i.seconds)))
            .collect(),
        moves: 2,
        pushed_as: |r| r.to_string(),
        ping_every: Duration::from_secs(30),
        in_registry: BTreeMap::new(),
    };
    let (_tx, rx) = watch::channel(false);
    let start = tokio::time::Instant::now();
    let out = run(&members, &tasks, &options, &mut Quiet, rx).await;
    assert!(
        out.results.outcomes.iter().all(|o| o.is_ok()),
        "every image builds"
    );
    let pulls = members
        .iter()
        .flat_map(|m| m.engine.calls())
        .filter(|c| c.starts_with("pull "))
        .count();
    (start.elapsed(), pulls)
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let images = match value("--summary") {
        Some(path) => from_summary(&path),
        None => synthetic(),
    };
    let pull = Duration::from_secs(value("--pull").map_or(20, |p| p.parse().expect("seconds")));
    let total: u64 = images.iter().map(|i| i.seconds).sum();
    let critical = critical_path(&images);
    println!(
        "{} images, total work {} s, critical path {} s, pull {} s",
        images.len(),
        total,
        critical,
        pull.as_secs()
    );
    println!(
        "| engines | makespan (s) | bound (s) | ratio | floor (s) | bound/floor | makespan/floor | pulls |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut worst: f64 = 0.0;
    for n in [1usize, 2, 4, 8, 16] {
        let (makespan, pulls) = simulate(&images, n, pull).await;
        let makespan = makespan.as_secs_f64();
        let bound = critical.max(total.div_ceil(n as u64));
        let ratio = makespan / bound as f64;
        worst = worst.max(ratio);
        // The floor no schedule can beat (see root_floor), beside the bound.
        let floor = root_floor(&images, n as u64, pull.as_secs()).map_or(bound, |f| f.max(bound));
        println!(
            "| {n} | {makespan:.0} | {bound} | {ratio:.3} | {floor} | {:.3} | {:.3} | {pulls} |",
            floor as f64 / bound as f64,
            makespan / floor as f64,
        );
    }
    println!("worst ratio to the bound {worst:.3} (target ≤ 1.15)");
}
