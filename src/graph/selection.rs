//! Which images a run is about: regexes or profiles (searched anywhere in the name, as kolla),
//! their ancestors, minus what cannot be built on this base and install type.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Deserialize;

use crate::common::error::{Error, Result, did_you_mean};
use crate::graph::ImageGraph;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Status {
    /// Selected: to be built (directly, or as an ancestor of a selected image).
    Matched,
    /// Not selected.
    Unmatched,
    /// An ancestor that `--skip-parents` leaves alone.
    Skipped,
    /// Listed as unbuildable for this base/type, or built from such an image.
    Unbuildable,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Matched => "matched",
            Status::Unmatched => "unmatched",
            Status::Skipped => "skipped",
            Status::Unbuildable => "unbuildable",
        }
    }
}

/// What to select.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub patterns: Vec<String>,
    pub skip_parents: bool,
    /// Names of images that cannot be built here (their descendants follow them).
    pub unbuildable: BTreeSet<String>,
}

/// A status per image of the graph (indexed like the graph).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    pub status: Vec<Status>,
}

impl Selection {
    pub fn ids_with(&self, status: Status) -> impl Iterator<Item = usize> + '_ {
        self.status
            .iter()
            .enumerate()
            .filter(move |(_, s)| **s == status)
            .map(|(i, _)| i)
    }

    pub fn is_matched(&self, id: usize) -> bool {
        self.status[id] == Status::Matched
    }
}

pub fn select(graph: &ImageGraph, filter: &Filter) -> Result<Selection> {
    let mut status = vec![Status::Unmatched; graph.len()];
    let unbuildable: Vec<usize> = filter
        .unbuildable
        .iter()
        .filter_map(|name| graph.id(name))
        .collect();
    for id in unbuildable
        .iter()
        .copied()
        .chain(graph.descendants_of_all(&unbuildable))
    {
        status[id] = Status::Unbuildable;
    }
    let regexes = filter
        .patterns
        .iter()
        .map(|p| {
            regex::Regex::new(p).map_err(|e| Error::BadRegex {
                pattern: p.clone(),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let matches = |name: &str| regexes.is_empty() || regexes.iter().any(|r| r.is_match(name));
    let direct: Vec<usize> = (0..graph.len())
        .filter(|&id| status[id] != Status::Unbuildable && matches(graph.name(id)))
        .collect();
    if direct.is_empty() && !regexes.is_empty() {
        let names = || graph.nodes().iter().map(|n| n.name.as_str());
        let unbuildable: Vec<&str> = names().filter(|n| matches(n)).collect();
        if !unbuildable.is_empty() {
            return Err(Error::Setting {
                key: "selection".into(),
                message: format!(
                    "only unbuildable images match: {}; pass `--enable-unbuildable` to build them anyway",
                    unbuildable.join(", ")
                ),
            });
        }
        return Err(Error::NothingMatched {
            patterns: filter
                .patterns
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
            did_you_mean: filter
                .patterns
                .first()
                .and_then(|p| did_you_mean(p, names())),
        });
    }
    for &id in &direct {
        status[id] = Status::Matched;
    }
    // One walk for all: a walk per matched image is quadratic on a long chain.
    for ancestor in graph.ancestors_of_all(&direct) {
        if status[ancestor] == Status::Unmatched {
            status[ancestor] = if filter.skip_parents {
                Status::Skipped
            } else {
                Status::Matched
            };
        }
    }
    Ok(Selection { status })
}

/// A named selection from `profiles/<name>.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProfileFile {
    #[serde(default)]
    #[allow(dead_code)] // shown by humans reading the file; kept so the key is allowed
    description: String,
    images: Vec<String>,
}

/// All profiles: `profiles/*.toml` plus those defined in the config file (which win).
#[derive(Debug, Clone, Default)]
pub struct Profiles(BTreeMap<String, Vec<String>>);

impl Profiles {
    pub fn load(dir: Option<&Path>, extra: &BTreeMap<String, Vec<String>>) -> Result<Profiles> {
        let mut profiles = BTreeMap::new();
        if let Some(dir) = dir.filter(|d| d.is_dir()) {
            let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
                path: dir.to_path_buf(),
                source,
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(name) = path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_suffix(".toml"))
                else {
                    continue;
                };
                let text = std::fs::read_to_string(&path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                let file: ProfileFile = toml::from_str(&text).map_err(|e| Error::Config {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
                profiles.insert(name.to_string(), file.images);
            }
        }
        profiles.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        Ok(Profiles(profiles))
    }

    /// The patterns of the named profiles, in order.
    pub fn patterns(&self, names: &[String]) -> Result<Vec<String>> {
        let mut patterns = Vec::new();
        for name in names {
            let list = self.0.get(name).ok_or_else(|| Error::UnknownProfile {
                name: name.clone(),
                known: self.0.keys().cloned().collect::<Vec<_>>().join(", "),
                did_you_mean: did_you_mean(name, self.0.keys().map(String::as_str)),
            })?;
            patterns.extend(list.iter().cloned());
        }
        Ok(patterns)
    }
}

/// The unbuildable table: `"<elem>[+<elem>...]" = [images]`, where each element is a distro,
/// an install type or an architecture, and the entry applies when all of them hold.
pub fn unbuildable_for(
    text: &str,
    path: &Path,
    facts: &[&str],
    known: &[&str],
) -> Result<BTreeSet<String>> {
    let table: BTreeMap<String, Vec<String>> = toml::from_str(text).map_err(|e| Error::Config {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    let mut images = BTreeSet::new();
    for (key, list) in table {
        let elements: Vec<&str> = key.split('+').map(str::trim).collect();
        if let Some(bad) = elements.iter().find(|e| !known.contains(e)) {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "key `{key}`: `{bad}` is not a distro, install type or architecture (known: {})",
                    known.join(", ")
                ),
            });
        }
        if elements.iter().all(|e| facts.contains(e)) {
            images.extend(list);
        }
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::graph_of;

    /// base ← openstack-base ← {keystone-base ← {keystone, keystone-fernet}, nova-base ← nova-api};
    /// base ← mariadb-server.
    fn graph() -> ImageGraph {
        let files = [
            ("base", "FROM debian:12"),
            ("openstack-base", "FROM k/base"),
            ("keystone-base", "FROM k/openstack-base"),
            ("keystone", "FROM k/keystone-base"),
            ("keystone-fernet", "FROM k/keystone-base"),
            ("nova-base", "FROM k/openstack-base"),
            ("nova-api", "FROM k/nova-base"),
            ("mariadb-server", "FROM k/base"),
        ];
        graph_of(&files, "k/", "").unwrap()
    }

    fn names(g: &ImageGraph, s: &Selection, status: Status) -> Vec<String> {
        s.ids_with(status).map(|i| g.name(i).to_string()).collect()
    }

    fn filter(patterns: &[&str]) -> Filter {
        Filter {
            patterns: patterns.iter().map(|p| p.to_string()).collect(),
            ..Filter::default()
        }
    }

    #[test]
    fn regex_selects_matches_and_their_ancestors() {
        let g = graph();
        let s = select(&g, &filter(&["^keystone$"])).unwrap();
        assert_eq!(
            names(&g, &s, Status::Matched),
            ["base", "keystone", "keystone-base", "openstack-base"]
        );
    }

    #[test]
    fn regex_searches_anywhere_in_the_name() {
        let g = graph();
        let s = select(&g, &filter(&["fern"])).unwrap();
        assert!(names(&g, &s, Status::Matched).contains(&"keystone-fernet".to_string()));
        assert!(!names(&g, &s, Status::Matched).contains(&"keystone".to_string()));
    }

    #[test]
    fn no_pattern_selects_everything_buildable() {
        let g = graph();
        let mut f = filter(&[]);
        f.unbuildable = BTreeSet::from(["nova-base".to_string()]);
        let s = select(&g, &f).unwrap();
        assert_eq!(
            names(&g, &s, Status::Unbuildable),
            ["nova-api", "nova-base"]
        );
        assert_eq!(s.ids_with(Status::Matched).count(), 6);
    }

    #[test]
    fn skip_parents_skips_ancestors_but_builds_what_was_asked() {
        let g = graph();
        let mut f = filter(&["^keystone-base$", "^keystone$"]);
        f.skip_parents = true;
        let s = select(&g, &f).unwrap();
        assert_eq!(
            names(&g, &s, Status::Matched),
            ["keystone", "keystone-base"]
        );
        assert_eq!(names(&g, &s, Status::Skipped), ["base", "openstack-base"]);
    }

    #[test]
    fn unbuildable_descendants_are_excluded_even_when_matched() {
        let g = graph();
        let mut f = filter(&["nova"]);
        f.unbuildable = BTreeSet::from(["nova-base".to_string()]);
        let err = select(&g, &f).unwrap_err().to_string();
        assert!(
            err.contains("only unbuildable images match: nova-api, nova-base"),
            "{err}"
        );
        f.patterns.push("mariadb".into());
        let s = select(&g, &f).unwrap();
        assert_eq!(names(&g, &s, Status::Matched), ["base", "mariadb-server"]);
    }

    /// Issue 27 (scale): every image of a chain matched walked the chain above it again (5,000
    /// images in one chain: 12.5 million steps); now one walk serves them all. The time is
    /// measured by scripts/bench-scale.sh, not asserted here; this checks the result on a chain
    /// long enough that the old way would show in the test's run time.
    #[test]
    fn a_long_chain_is_selected_whole_or_in_part() {
        let names: Vec<String> = (0..20_000).map(|i| format!("i{i:05}")).collect();
        let files: Vec<(String, String)> = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let from = if i == 0 {
                    "FROM debian:12".to_string()
                } else {
                    format!("FROM k/{}", names[i - 1])
                };
                (name.clone(), from)
            })
            .collect();
        let files: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let g = graph_of(&files, "k/", "").unwrap();
        let all = select(&g, &filter(&[])).unwrap();
        let mut f = filter(&["9$"]);
        f.skip_parents = true;
        let some = select(&g, &f).unwrap();
        assert_eq!(all.ids_with(Status::Matched).count(), 20_000);
        assert_eq!(some.ids_with(Status::Matched).count(), 2_000);
        assert_eq!(some.ids_with(Status::Skipped).count(), 18_000);
    }

    #[test]
    fn nothing_matched_is_an_error_with_a_suggestion() {
        let g = graph();
        let err = select(&g, &filter(&["^keystone-fernett$"]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no image matches `^keystone-fernett$`"),
            "{err}"
        );
        let err = select(&g, &filter(&["novaa-api"])).unwrap_err().to_string();
        assert!(err.contains("did you mean `nova-api`?"), "{err}");
    }

    #[test]
    fn bad_regex_names_the_pattern() {
        let err = select(&graph(), &filter(&["nova("]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid regex `nova(`"), "{err}");
    }

    #[test]
    fn profiles_resolve_and_unknown_ones_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("gate.toml"),
            "description = \"ci\"\nimages = [\"^keystone$\"]\n",
        )
        .unwrap();
        let extra = BTreeMap::from([("mine".to_string(), vec!["^nova-api$".to_string()])]);
        let profiles = Profiles::load(Some(dir.path()), &extra).unwrap();
        let patterns = profiles.patterns(&["gate".into(), "mine".into()]).unwrap();
        assert_eq!(patterns, ["^keystone$", "^nova-api$"]);
        let err = profiles.patterns(&["gat".into()]).unwrap_err().to_string();
        assert!(
            err.contains("unknown profile `gat`; did you mean `gate`?; known profiles: gate, mine"),
            "{err}"
        );
    }

    #[test]
    fn unbuildable_keys_combine_facts() {
        let known = ["debian", "rocky", "binary", "source", "x86_64", "aarch64"];
        let text =
            "\"rocky+binary\" = [\"horizon\"]\naarch64 = [\"nova-compute\"]\nsource = [\"x\"]\n";
        let path = Path::new("unbuildable.toml");
        let got = unbuildable_for(text, path, &["rocky", "binary", "x86_64"], &known).unwrap();
        assert_eq!(got, BTreeSet::from(["horizon".to_string()]));
        let got = unbuildable_for(text, path, &["rocky", "source", "aarch64"], &known).unwrap();
        assert_eq!(
            got,
            BTreeSet::from(["nova-compute".to_string(), "x".to_string()])
        );
        let err = unbuildable_for("\"rocky+binray\" = []", path, &[], &known)
            .unwrap_err()
            .to_string();
        assert!(err.contains("`binray` is not a distro"), "{err}");
    }
}
