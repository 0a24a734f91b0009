//! The dependency graph of images: each image's parent is the image named by its rendered `FROM`.
//! Checked once: unknown parents and cycles are errors naming the images.

pub mod dockerfile;
pub mod listing;
pub mod selection;

use std::collections::{BTreeMap, BTreeSet};

use crate::common::error::{Error, Result, did_you_mean};

/// An image's node: what it is built from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    /// The image of the final stage, when it is one of ours.
    pub parent: Option<usize>,
    /// Every image of ours the build needs (all stages), parent included.
    pub deps: Vec<usize>,
    /// The external image the final stage is built FROM (for `base`).
    pub external: Option<String>,
    pub children: Vec<usize>,
}

#[derive(Debug, Clone)]
pub struct ImageGraph {
    nodes: Vec<Node>,
    index: BTreeMap<String, usize>,
}

impl ImageGraph {
    /// Builds the graph from rendered Dockerfiles. `reference` maps an image name to the
    /// reference its children use in `FROM`; `ours_prefix` is what such references start with,
    /// so that a FROM of ours naming a missing image is an error, not an external image.
    pub fn build(
        dockerfiles: &BTreeMap<String, String>,
        reference: impl Fn(&str) -> String,
        ours_prefix: &str,
        build_args: &BTreeMap<String, String>,
    ) -> Result<ImageGraph> {
        let names: Vec<String> = dockerfiles.keys().cloned().collect();
        let index: BTreeMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let by_reference: BTreeMap<String, usize> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (reference(n), i))
            .collect();
        let mut nodes = Vec::with_capacity(names.len());
        for (name, text) in dockerfiles {
            let froms: Vec<_> = dockerfile::froms(text, build_args)
                .into_iter()
                .filter(|f| !f.is_stage)
                .collect();
            if froms.is_empty() {
                return Err(Error::NoFrom {
                    image: name.clone(),
                });
            }
            let mut deps = Vec::new();
            let mut parent = None;
            let mut external = None;
            for (i, from) in froms.iter().enumerate() {
                let last = i + 1 == froms.len();
                if let Some(&dep) = by_reference.get(&from.image) {
                    if !deps.contains(&dep) {
                        deps.push(dep);
                    }
                    if last {
                        parent = Some(dep);
                    }
                } else if let Some(rest) = from.image.strip_prefix(ours_prefix) {
                    let wanted = rest.split(':').next().unwrap_or(rest).to_string();
                    return Err(Error::UnknownParent {
                        image: name.clone(),
                        reference: from.image.clone(),
                        did_you_mean: did_you_mean(&wanted, names.iter().map(String::as_str)),
                        parent: wanted,
                    });
                } else if last {
                    external = Some(from.image.clone());
                }
            }
            nodes.push(Node {
                name: name.clone(),
                parent,
                deps,
                external,
                children: Vec::new(),
            });
        }
        for i in 0..nodes.len() {
            for dep in nodes[i].deps.clone() {
                nodes[dep].children.push(i);
            }
        }
        let graph = ImageGraph { nodes, index };
        graph.check_acyclic()?;
        Ok(graph)
    }

    fn check_acyclic(&self) -> Result<()> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let mut marks = vec![Mark::New; self.nodes.len()];
        // Iterative DFS along dependencies; `stack` is the current path.
        for start in 0..self.nodes.len() {
            if marks[start] != Mark::New {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            marks[start] = Mark::Active;
            while let Some((node, next)) = stack.last_mut() {
                let node = *node;
                if let Some(&dep) = self.nodes[node].deps.get(*next) {
                    *next += 1;
                    match marks[dep] {
                        Mark::New => {
                            marks[dep] = Mark::Active;
                            stack.push((dep, 0));
                        }
                        Mark::Active => {
                            let from = stack.iter().position(|(n, _)| *n == dep).unwrap_or(0);
                            let mut path: Vec<String> = stack[from..]
                                .iter()
                                .map(|(n, _)| self.nodes[*n].name.clone())
                                .collect();
                            path.push(self.nodes[dep].name.clone());
                            // Show it parent-first: `a -> b` reads "b is built FROM a".
                            path.reverse();
                            return Err(Error::Cycle { path });
                        }
                        Mark::Done => {}
                    }
                } else {
                    marks[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    pub fn node(&self, id: usize) -> &Node {
        &self.nodes[id]
    }

    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    pub fn id(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    pub fn name(&self, id: usize) -> &str {
        &self.nodes[id].name
    }

    /// Every image `id` is built from, transitively.
    pub fn ancestors(&self, id: usize) -> BTreeSet<usize> {
        self.reach(&[id], |node| &node.deps)
    }

    /// Every image built from `id`, transitively.
    pub fn descendants(&self, id: usize) -> BTreeSet<usize> {
        self.reach(&[id], |node| &node.children)
    }

    /// The union of the ancestors of `ids`, each image visited once however many of them share
    /// it (a walk per image is quadratic: 5,000 images in one chain made 12.5 million visits).
    pub fn ancestors_of_all(&self, ids: &[usize]) -> BTreeSet<usize> {
        self.reach(ids, |node| &node.deps)
    }

    /// The union of the descendants of `ids`, each image visited once.
    pub fn descendants_of_all(&self, ids: &[usize]) -> BTreeSet<usize> {
        self.reach(ids, |node| &node.children)
    }

    /// The images reached from `starts` by following `next` (dependencies or children),
    /// transitively; a start is in the result only when another start reaches it.
    fn reach(&self, starts: &[usize], next: impl Fn(&Node) -> &[usize]) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = starts
            .iter()
            .flat_map(|&id| next(&self.nodes[id]))
            .copied()
            .collect();
        while let Some(other) = todo.pop() {
            if seen.insert(other) {
                todo.extend(next(&self.nodes[other]));
            }
        }
        seen
    }

    /// All images, parents before children; ties broken by name, so the order is stable.
    pub fn topological_order(&self) -> Vec<usize> {
        let mut pending: Vec<usize> = self.nodes.iter().map(|n| n.deps.len()).collect();
        let mut ready: BTreeSet<(String, usize)> = self
            .nodes
            .iter()
            .enumerate()
            .filter(|(i, _)| pending[*i] == 0)
            .map(|(i, n)| (n.name.clone(), i))
            .collect();
        let mut order = Vec::with_capacity(self.nodes.len());
        while let Some((_, id)) = ready.pop_first() {
            order.push(id);
            for &child in &self.nodes[id].children {
                pending[child] -= 1;
                if pending[child] == 0 {
                    ready.insert((self.nodes[child].name.clone(), child));
                }
            }
        }
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The graph of `(image, Dockerfile)` pairs whose images are referred to as
    /// `{prefix}{name}{suffix}` (the graph tests of `listing` and `selection` use it too).
    pub(in crate::graph) fn graph_of(
        files: &[(&str, &str)],
        prefix: &str,
        suffix: &str,
    ) -> Result<ImageGraph> {
        let dockerfiles = files
            .iter()
            .map(|(n, t)| (n.to_string(), t.to_string()))
            .collect();
        ImageGraph::build(
            &dockerfiles,
            |n| format!("{prefix}{n}{suffix}"),
            prefix,
            &BTreeMap::new(),
        )
    }

    fn graph(files: &[(&str, &str)]) -> Result<ImageGraph> {
        graph_of(files, "kolla/", ":1")
    }

    fn graph_err(files: &[(&str, &str)]) -> String {
        graph(files).unwrap_err().to_string()
    }

    fn order(g: &ImageGraph) -> Vec<String> {
        g.topological_order()
            .into_iter()
            .map(|i| g.name(i).to_string())
            .collect()
    }

    #[test]
    fn parents_children_and_external_base() {
        let g = graph(&[
            ("base", "FROM debian:bookworm"),
            ("openstack-base", "FROM kolla/base:1"),
            ("keystone", "FROM kolla/openstack-base:1"),
        ])
        .unwrap();
        let base = g.id("base").unwrap();
        assert_eq!(g.node(base).external.as_deref(), Some("debian:bookworm"));
        let keystone = g.id("keystone").unwrap();
        assert_eq!(g.node(keystone).parent, g.id("openstack-base"));
        assert_eq!(g.ancestors(keystone).len(), 2);
        assert_eq!(g.descendants(base).len(), 2);
        assert_eq!(order(&g), ["base", "openstack-base", "keystone"]);
    }

    #[test]
    fn ancestors_and_descendants_of_all_are_the_unions_of_each_walk() {
        // base <- a <- b <- c, base <- d, and e built from both b and d (a diamond).
        let g = graph(&[
            ("base", "FROM debian:12"),
            ("a", "FROM kolla/base:1"),
            ("b", "FROM kolla/a:1"),
            ("c", "FROM kolla/b:1"),
            ("d", "FROM kolla/base:1"),
            ("e", "FROM kolla/b:1 AS b\nFROM kolla/d:1\n"),
        ])
        .unwrap();
        let ids =
            |names: &[&str]| -> Vec<usize> { names.iter().map(|n| g.id(n).unwrap()).collect() };
        let union = |sets: Vec<BTreeSet<usize>>| -> BTreeSet<usize> {
            sets.into_iter().flatten().collect()
        };
        for starts in [&["c", "e"][..], &["a", "c"], &["base"], &["e"], &[]] {
            let starts = ids(starts);
            assert_eq!(
                g.ancestors_of_all(&starts),
                union(starts.iter().map(|&id| g.ancestors(id)).collect()),
            );
            assert_eq!(
                g.descendants_of_all(&starts),
                union(starts.iter().map(|&id| g.descendants(id)).collect()),
            );
        }
        // A start reached from another start is in the union; one that is not, is not.
        assert_eq!(
            g.ancestors_of_all(&ids(&["a", "c"])),
            BTreeSet::from_iter(ids(&["base", "a", "b"]))
        );
        assert_eq!(
            g.descendants_of_all(&ids(&["d"])),
            BTreeSet::from_iter(ids(&["e"]))
        );
    }

    #[test]
    fn unknown_parent_names_both_images_and_suggests() {
        let err = graph_err(&[
            ("nova-base", "FROM debian:12"),
            ("nova-api", "FROM kolla/nova-bse:1"),
        ]);
        assert!(
            err.contains("`nova-api`") && err.contains("no image `nova-bse`"),
            "{err}"
        );
        assert!(err.contains("did you mean `nova-base`?"), "{err}");
    }

    #[test]
    fn cycle_is_reported_as_a_path() {
        let two: &[(&str, &str)] = &[
            ("a", "FROM kolla/b:1"),
            ("b", "FROM kolla/a:1"),
            ("c", "FROM x"),
        ];
        // and a self-reference is a cycle
        let one: &[(&str, &str)] = &[("a", "FROM kolla/a:1")];
        for (files, paths) in [
            (two, &["a -> b -> a", "b -> a -> b"][..]),
            (one, &["a -> a"]),
        ] {
            let err = graph_err(files);
            assert!(paths.iter().any(|p| err.contains(p)), "{err}");
        }
    }

    #[test]
    fn multi_stage_depends_on_every_image_but_parent_is_the_final_stage() {
        let g = graph(&[
            ("base", "FROM debian:12"),
            ("builder", "FROM kolla/base:1"),
            (
                "app",
                "FROM kolla/builder:1 AS build\nFROM kolla/base:1\nCOPY --from=build / /\n",
            ),
        ])
        .unwrap();
        let app = g.id("app").unwrap();
        assert_eq!(g.node(app).parent, g.id("base"));
        assert_eq!(g.node(app).deps.len(), 2);
        assert_eq!(order(&g), ["base", "builder", "app"]);
    }

    #[test]
    fn missing_from_is_an_error() {
        assert!(graph_err(&[("a", "RUN true")]).contains("no FROM"));
    }
}
