//! The build plan: one job per selected image, with its dependencies, its priority (images that
//! unblock the most work first) and its input hash, which decides whether it needs building.

use std::collections::BTreeMap;
use std::path::PathBuf;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::common::error::{Error, Result};
use crate::graph::ImageGraph;
use crate::graph::selection::Status;
use crate::prepare::Prepared;
use crate::prepare::context::{ContextSpec, ExtraFiles};

/// The label carrying an image's input hash.
pub const INPUT_HASH_LABEL: &str = "org.opendev.kolla-build.input-hash";

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    /// Indices of the jobs this one needs built first.
    pub deps: Vec<usize>,
    /// This job plus everything transitively waiting on it: higher runs first.
    pub priority: usize,
    pub input_hash: String,
    pub context: ContextSpec,
}

/// Builds the jobs for the selected images. `external_id` gives the engine's ID of an external
/// base image (part of the root images' hash, so a new base image rebuilds everything).
pub fn plan(
    prepared: &Prepared,
    build_args: &BTreeMap<String, String>,
    extra: &ExtraFiles,
    external_id: impl Fn(&str) -> Option<String> + Sync,
) -> Result<Vec<Job>> {
    let graph = &prepared.graph;
    let selection = &prepared.selection;
    // Hash every image that is built or assumed present (skipped parents), parents first.
    let wanted: Vec<usize> = graph
        .topological_order()
        .into_iter()
        .filter(|&id| matches!(selection.status[id], Status::Matched | Status::Skipped))
        .collect();
    let contexts = contexts(prepared, extra, &wanted)?;
    let (hashes, mut specs) = input_hashes(graph, contexts, build_args, &external_id);

    let job_ids: Vec<usize> = wanted
        .iter()
        .copied()
        .filter(|&id| selection.is_matched(id))
        .collect();
    let index: BTreeMap<usize, usize> =
        job_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    Ok(job_ids
        .iter()
        .map(|&id| Job {
            name: graph.name(id).to_string(),
            deps: graph
                .node(id)
                .deps
                .iter()
                .filter_map(|d| index.get(d).copied())
                .collect(),
            priority: 1 + descendants_in(graph, id, &index),
            input_hash: hashes[&id].clone(),
            context: specs.remove(&id).expect("hashed"),
        })
        .collect())
}

/// An image's context files: its own from the tree, then the extra ones; an extra file replaces
/// the tree's file of the same name (kolla's apt_sources_list over base's `sources.list`).
fn with_extras(
    mut own: Vec<(String, PathBuf)>,
    extras: &[(String, PathBuf)],
) -> Vec<(String, PathBuf)> {
    own.retain(|(rel, _)| !extras.iter().any(|(added, _)| added == rel));
    own.extend(extras.iter().cloned());
    own
}

/// The build context of each `wanted` image (its files and the extra ones it gets) and the
/// context's digest, read in parallel.
fn contexts(
    prepared: &Prepared,
    extra: &ExtraFiles,
    wanted: &[usize],
) -> Result<Vec<(usize, ContextSpec, String)>> {
    let graph = &prepared.graph;
    wanted
        .par_iter()
        .map(|&id| {
            let name = graph.name(id);
            let image = prepared
                .tree
                .image(name)
                .expect("graph images come from the tree");
            let files: Vec<(String, PathBuf)> = image
                .context_files
                .iter()
                .map(|rel| {
                    let path = prepared
                        .tree
                        .file(&format!("{}/{rel}", image.dir))
                        .expect("tree file");
                    (rel.clone(), path.to_path_buf())
                })
                .collect();
            let extras = extra.0.get(name).map_or(&[][..], Vec::as_slice);
            let files = with_extras(files, extras);
            let spec = ContextSpec::new(prepared.dockerfiles[name].clone(), files)
                .with_dirs(&prepared.context_dirs);
            let digest = spec.digest().map_err(|source| Error::Read {
                path: PathBuf::from(format!("build context of `{name}`")),
                source,
            })?;
            Ok((id, spec, digest))
        })
        .collect()
}

/// Each image's input hash: its context, the build args, its parents' hashes (parents come
/// first) and the ID of the external image it is built FROM. Returns the hashes and the
/// contexts, by graph id.
fn input_hashes(
    graph: &ImageGraph,
    contexts: Vec<(usize, ContextSpec, String)>,
    build_args: &BTreeMap<String, String>,
    external_id: &impl Fn(&str) -> Option<String>,
) -> (BTreeMap<usize, String>, BTreeMap<usize, ContextSpec>) {
    let mut hashes: BTreeMap<usize, String> = BTreeMap::new();
    let mut specs: BTreeMap<usize, ContextSpec> = BTreeMap::new();
    for (id, spec, digest) in contexts {
        let node = graph.node(id);
        let mut hasher = Sha256::new();
        hasher.update(b"kolla-build input v1\n");
        hasher.update(format!("context {digest}\n"));
        for (k, v) in build_args {
            hasher.update(format!("arg {k}={v}\n"));
        }
        for &dep in &node.deps {
            // An unselected parent has no hash and must already exist, so its name stands in.
            let dep_hash = hashes
                .get(&dep)
                .cloned()
                .unwrap_or_else(|| format!("unplanned:{}", graph.name(dep)));
            hasher.update(format!("dep {} {dep_hash}\n", graph.name(dep)));
        }
        if let Some(external) = &node.external {
            let id = external_id(external).unwrap_or_else(|| format!("unknown:{external}"));
            hasher.update(format!("external {external} {id}\n"));
        }
        hashes.insert(id, hex::encode(hasher.finalize()));
        specs.insert(id, spec);
    }
    (hashes, specs)
}

/// Priorities weighed by time, cargo's rule: a job's own seconds plus those of every job
/// transitively waiting on it, so the longest chain of work starts first. A job without a known
/// time counts as the mean of the known ones (1 s when none is known). `deps[i]`: the jobs `i`
/// waits on. In tenths of a second.
pub fn weighted_priorities(deps: &[Vec<usize>], seconds: &[Option<f64>]) -> Vec<usize> {
    let known: Vec<f64> = seconds.iter().flatten().copied().collect();
    let mean = if known.is_empty() {
        1.0
    } else {
        known.iter().sum::<f64>() / known.len() as f64
    };
    let mut children = vec![Vec::new(); deps.len()];
    for (child, parents) in deps.iter().enumerate() {
        for &parent in parents {
            children[parent].push(child);
        }
    }
    (0..deps.len())
        .map(|job| {
            // Every job waiting on `job`, each once (a diamond adds a job once).
            let mut seen = vec![false; deps.len()];
            let mut stack = vec![job];
            let mut total = 0.0;
            while let Some(j) = stack.pop() {
                if std::mem::replace(&mut seen[j], true) {
                    continue;
                }
                total += seconds[j].unwrap_or(mean);
                stack.extend(&children[j]);
            }
            (total * 10.0).round() as usize
        })
        .collect()
}

/// Reorders the jobs' priorities by the build times of an earlier run (see
/// [`weighted_priorities`]); without times the count of waiting jobs stays the priority.
pub fn weigh(jobs: &mut [Job], durations: &BTreeMap<String, f64>) {
    if durations.is_empty() {
        return;
    }
    let deps: Vec<Vec<usize>> = jobs.iter().map(|j| j.deps.clone()).collect();
    let seconds: Vec<Option<f64>> = jobs
        .iter()
        .map(|j| durations.get(&j.name).copied())
        .collect();
    for (job, priority) in jobs.iter_mut().zip(weighted_priorities(&deps, &seconds)) {
        job.priority = priority;
    }
}

fn descendants_in(graph: &ImageGraph, id: usize, jobs: &BTreeMap<usize, usize>) -> usize {
    graph
        .descendants(id)
        .into_iter()
        .filter(|d| jobs.contains_key(d))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_extra_file_replaces_the_trees_file_of_the_same_name() {
        let own = vec![
            (
                "sources.list".to_string(),
                PathBuf::from("/tree/base/sources.list"),
            ),
            ("start.sh".to_string(), PathBuf::from("/tree/base/start.sh")),
        ];
        // A path that sorts before the tree's: the extra one must still win.
        let extras = vec![("sources.list".to_string(), PathBuf::from("/a/site.list"))];
        let files = with_extras(own, &extras);
        let spec = ContextSpec::new(String::new(), files.clone());
        assert_eq!(
            files,
            [
                ("start.sh".to_string(), PathBuf::from("/tree/base/start.sh")),
                ("sources.list".to_string(), PathBuf::from("/a/site.list")),
            ]
        );
        assert!(format!("{spec:?}").contains("/a/site.list"));
        assert!(!format!("{spec:?}").contains("/tree/base/sources.list"));
    }

    /// A tree of two images (`base` ← `keystone`), rendered by hand, everything selected.
    fn prepared(root: &std::path::Path) -> Prepared {
        for (rel, text) in [
            ("base/Dockerfile.j2", "FROM debian\n"),
            ("keystone/Dockerfile.j2", "FROM k/keystone-parent\n"),
        ] {
            std::fs::create_dir_all(root.join(rel).parent().unwrap()).unwrap();
            std::fs::write(root.join(rel), text).unwrap();
        }
        let tree = crate::tree::Tree::load(root, &[]).unwrap();
        let dockerfiles = BTreeMap::from([
            ("base".to_string(), "FROM debian\n".to_string()),
            ("keystone".to_string(), "FROM k/base:1\n".to_string()),
        ]);
        let graph = ImageGraph::build(&dockerfiles, |n| format!("k/{n}:1"), "k/", &BTreeMap::new())
            .unwrap();
        let filter = crate::graph::selection::Filter {
            patterns: Vec::new(),
            skip_parents: false,
            unbuildable: Default::default(),
        };
        let selection = crate::graph::selection::select(&graph, &filter).unwrap();
        Prepared {
            tree,
            dockerfiles,
            graph,
            selection,
            extra_files: ExtraFiles::default(),
            context_dirs: Vec::new(),
            notices: Vec::new(),
            render_time: std::time::Duration::ZERO,
        }
    }

    fn hashes(prepared: &Prepared, extra: &ExtraFiles) -> BTreeMap<String, String> {
        let jobs = plan(prepared, &BTreeMap::new(), extra, |_| {
            Some("sha256:1".into())
        })
        .unwrap();
        jobs.into_iter().map(|j| (j.name, j.input_hash)).collect()
    }

    #[test]
    fn a_patch_and_the_patches_folder_are_part_of_the_input_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut prepared = prepared(&dir.path().join("tree"));
        let plain = hashes(&prepared, &ExtraFiles::default());
        assert_eq!(plain.len(), 2);

        prepared.context_dirs = vec!["patches".to_string()];
        let with_dir = hashes(&prepared, &ExtraFiles::default());
        assert_ne!(with_dir["base"], plain["base"]);
        assert_ne!(with_dir["keystone"], plain["keystone"]);
        let jobs = plan(&prepared, &BTreeMap::new(), &ExtraFiles::default(), |_| {
            None
        })
        .unwrap();
        assert!(jobs.iter().all(|j| j.context.dirs == ["patches"]));

        let patch = dir.path().join("fix.patch");
        std::fs::write(&patch, "--- a\n+++ b\n").unwrap();
        let extra = ExtraFiles(BTreeMap::from([(
            "keystone".to_string(),
            vec![("patches/fix.patch".to_string(), patch.clone())],
        )]));
        let patched = hashes(&prepared, &extra);
        assert_eq!(patched["base"], with_dir["base"]);
        assert_ne!(patched["keystone"], with_dir["keystone"]);
        // Unchanged patches keep the image fresh; a changed one rebuilds it.
        assert_eq!(hashes(&prepared, &extra), patched);
        std::fs::write(&patch, "--- a\n+++ c\n").unwrap();
        assert_ne!(hashes(&prepared, &extra)["keystone"], patched["keystone"]);
    }

    #[test]
    fn time_weighs_priorities_so_the_longest_chain_starts_first() {
        // base → {openstack-base → horizon (long), memcached (short), mariadb (unknown)}.
        let deps = vec![vec![], vec![0], vec![1], vec![0], vec![0]];
        let seconds = [Some(20.0), Some(60.0), Some(240.0), Some(10.0), None];
        let p = weighted_priorities(&deps, &seconds);
        let mean = (20.0 + 60.0 + 240.0 + 10.0) / 4.0;
        assert_eq!(p[2], 2400);
        assert_eq!(p[1], 3000);
        assert_eq!(p[3], 100);
        assert_eq!(p[4], (mean * 10.0) as usize);
        assert_eq!(p[0], ((20.0 + 60.0 + 240.0 + 10.0 + mean) * 10.0) as usize);
        assert!(p[1] > p[3] && p[1] > p[4]);
        // A diamond counts a shared descendant once.
        let p = weighted_priorities(&[vec![], vec![0], vec![0], vec![1, 2]], &[Some(1.0); 4]);
        assert_eq!(p[0], 40);
    }
}
