//! kolla's `--patches-path`: `<patches_path>/<image>/series` and the patch files it lists, laid
//! into the image's build context under `patches/`, where the Dockerfile's `COPY patches
//! /patches` and `RUN kolla_patch` (kolla's `kolla_patch_sources` macro, rendered when the
//! `patches_path` variable is set) apply them in the order of the series.
//!
//! Local files, so they are read here where the contexts are made, right after rendering, as
//! kolla does (`create_patch_files` after `create_dockerfiles`, for every command). kolla copies
//! the files a series lists that exist and skips the others, and the build fails later in
//! `kolla_patch` with a bare `No such file`; here a series line that names no file (or a name
//! `kolla_patch` would misread) fails the run before anything is built, naming the series, its
//! line and the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Component, Path, PathBuf};

/// The folder of the context the patches go in. Every image's context gets it when a patches
/// path is set, empty for images without patches, as kolla makes it: the Dockerfile copies it.
pub const CONTEXT_DIR: &str = "patches";

/// What a patches path gives the build contexts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Patches {
    /// Image → (path in its context, file on disk): `patches/series` and the files it lists.
    pub files: BTreeMap<String, Vec<(String, PathBuf)>>,
    /// Folders of the patches path named after no image of the tree (a typo, most likely).
    pub unused: Vec<PathBuf>,
    /// Image folders without a `series`: nothing is applied to those images.
    pub without_series: Vec<PathBuf>,
}

/// Why a patches path cannot be used: every problem found, each naming its series file.
#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    #[error("cannot read `{}` (a folder of `--patches-path`): {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {problem}", series.display())]
    Line {
        series: PathBuf,
        line: usize,
        problem: LineProblem,
    },
    #[error(
        "{} problems in the patch series of `--patches-path`:\n{}",
        .0.len(),
        .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n")
    )]
    Several(Vec<PatchError>),
}

/// What is wrong with one line of a series.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error(
        "`{name}` is listed, but `{}` is not a file: put the patch there, or delete the line \
         (or comment it out with a `#` at its start)",
        path.display()
    )]
    Missing { name: String, path: PathBuf },
    #[error(
        "`{name}` is not a file inside the series' folder: name the patch relative to that \
         folder, without `..` or a leading `/`"
    )]
    OutsideFolder { name: String },
    #[error(
        "`{name}` has whitespace in it: kolla_patch splits the series at whitespace, so name one \
         patch file per line, without spaces"
    )]
    Whitespace { name: String },
    #[error(
        "`{line}` is not a comment: a comment starts with `#` as the line's first character \
         (kolla_patch would read this line as patch names)"
    )]
    IndentedComment { line: String },
    #[error(
        "the line ends in CR LF: kolla_patch would read the CR as part of the patch's name; save \
         the series with LF line ends"
    )]
    CarriageReturn,
}

/// Reads the patches of the tree's `images` under `root`. A `root` that is not a directory
/// gives no patches (kolla ignores it; the settings warned of it).
pub fn collect(root: &Path, images: &[&str]) -> Result<Patches, PatchError> {
    let mut patches = Patches::default();
    if !root.is_dir() {
        return Ok(patches);
    }
    let mut errors = Vec::new();
    for &image in images {
        let folder = root.join(image);
        if !folder.is_dir() {
            continue;
        }
        let series = folder.join("series");
        if !series.is_file() {
            patches.without_series.push(folder);
            continue;
        }
        match series_files(&folder, &series) {
            Ok(files) => {
                patches.files.insert(image.to_string(), files);
            }
            Err(mut found) => errors.append(&mut found),
        }
    }
    patches.unused = unused_folders(root, images)?;
    match errors.len() {
        0 => Ok(patches),
        1 => Err(errors.remove(0)),
        _ => Err(PatchError::Several(errors)),
    }
}

/// The series itself and each file it lists, as (path in the context, file on disk); links are
/// followed (kolla copies the content), or every problem of the series.
fn series_files(folder: &Path, series: &Path) -> Result<Vec<(String, PathBuf)>, Vec<PatchError>> {
    let text = std::fs::read_to_string(series).map_err(|source| {
        vec![PatchError::Read {
            path: series.to_path_buf(),
            source,
        }]
    })?;
    let resolve = |path: &Path| std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let mut files = vec![(format!("{CONTEXT_DIR}/series"), resolve(series))];
    let mut errors = Vec::new();
    for entry in entries(&text) {
        let problem = match entry.name {
            Ok(name) => {
                let path = folder.join(name);
                if path.is_file() {
                    files.push((format!("{CONTEXT_DIR}/{name}"), resolve(&path)));
                    continue;
                }
                LineProblem::Missing {
                    name: name.to_string(),
                    path,
                }
            }
            Err(problem) => problem,
        };
        errors.push(PatchError::Line {
            series: series.to_path_buf(),
            line: entry.line,
            problem,
        });
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// One line of a series that names a patch.
#[derive(Debug, PartialEq)]
struct Entry<'a> {
    /// 1-based.
    line: usize,
    /// The patch's name, or why the line cannot name one.
    name: Result<&'a str, LineProblem>,
}

/// The lines of a series that name patches, as kolla reads them: a line starting with `#` is a
/// comment (for kolla and `kolla_patch` alike), the rest is stripped, blank lines are skipped
/// (kolla would look for a file named ``).
fn entries(text: &str) -> Vec<Entry<'_>> {
    text.split('\n')
        .enumerate()
        .filter(|(_, raw)| !raw.starts_with('#'))
        .filter_map(|(i, raw)| {
            let name = raw.trim();
            if name.is_empty() {
                return None;
            }
            let checked = if raw.ends_with('\r') {
                Err(LineProblem::CarriageReturn)
            } else {
                check_name(name)
            };
            Some(Entry {
                line: i + 1,
                name: checked,
            })
        })
        .collect()
}

/// A name `kolla_patch` reads as one patch under `/patches`: not a comment out of place, no
/// whitespace (it splits the series at whitespace), relative, without `..`.
fn check_name(name: &str) -> Result<&str, LineProblem> {
    if name.starts_with('#') {
        return Err(LineProblem::IndentedComment {
            line: name.to_string(),
        });
    }
    if name.contains(char::is_whitespace) {
        return Err(LineProblem::Whitespace {
            name: name.to_string(),
        });
    }
    let inside = Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_) | Component::CurDir));
    if !inside {
        return Err(LineProblem::OutsideFolder {
            name: name.to_string(),
        });
    }
    Ok(name)
}

/// The folders of `root` that are named after no image.
fn unused_folders(root: &Path, images: &[&str]) -> Result<Vec<PathBuf>, PatchError> {
    let read_err = |source| PatchError::Read {
        path: root.to_path_buf(),
        source,
    };
    let images: BTreeSet<&str> = images.iter().copied().collect();
    let mut unused = Vec::new();
    for entry in std::fs::read_dir(root).map_err(read_err)? {
        let path = entry.map_err(read_err)?.path();
        let named = path.file_name().and_then(|n| n.to_str());
        if path.is_dir() && !named.is_some_and(|n| images.contains(n)) {
            unused.push(path);
        }
    }
    unused.sort();
    Ok(unused)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn names(text: &str) -> Vec<(usize, Result<&str, LineProblem>)> {
        entries(text)
            .into_iter()
            .map(|e| (e.line, e.name))
            .collect()
    }

    #[test]
    fn a_series_skips_comments_and_blank_lines_and_strips_names() {
        let text = "# from upstream\n\na.patch\n   \n  b.patch\t\n#c.patch\nsub/d.patch\n";
        assert_eq!(
            names(text),
            [
                (3, Ok("a.patch")),
                (5, Ok("b.patch")),
                (7, Ok("sub/d.patch"))
            ]
        );
        assert_eq!(names(""), []);
    }

    #[test]
    fn a_series_line_kolla_patch_would_misread_is_refused() {
        let problems = names("  # indented\na b.patch\n../up.patch\n/abs.patch\nok.patch\r\n");
        assert_eq!(
            problems,
            [
                (
                    1,
                    Err(LineProblem::IndentedComment {
                        line: "# indented".into()
                    })
                ),
                (
                    2,
                    Err(LineProblem::Whitespace {
                        name: "a b.patch".into()
                    })
                ),
                (
                    3,
                    Err(LineProblem::OutsideFolder {
                        name: "../up.patch".into()
                    })
                ),
                (
                    4,
                    Err(LineProblem::OutsideFolder {
                        name: "/abs.patch".into()
                    })
                ),
                (5, Err(LineProblem::CarriageReturn)),
            ]
        );
    }

    #[test]
    fn an_image_gets_its_series_and_the_files_it_lists_and_others_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "keystone/series", "# ours\nb.patch\nsub/a.patch\n\n");
        write(root, "keystone/b.patch", "b");
        write(root, "keystone/sub/a.patch", "a");
        write(root, "keystone/unlisted.patch", "not copied");
        write(root, "keystone-base/readme", "no series here");
        write(root, "keystne/series", "typo.patch\n");
        let found = collect(root, &["base", "keystone", "keystone-base"]).unwrap();
        let keystone = &found.files["keystone"];
        let in_context: Vec<&str> = keystone.iter().map(|(rel, _)| rel.as_str()).collect();
        assert_eq!(
            in_context,
            ["patches/series", "patches/b.patch", "patches/sub/a.patch"]
        );
        assert_eq!(std::fs::read_to_string(&keystone[2].1).unwrap(), "a");
        // Only images with a series get files; every context's empty `patches/` is the plan's.
        assert_eq!(found.files.len(), 1);
        assert_eq!(found.without_series, [root.join("keystone-base")]);
        assert_eq!(found.unused, [root.join("keystne")]);
    }

    #[test]
    fn a_listed_file_that_does_not_exist_names_the_series_its_line_and_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            root,
            "keystone/series",
            "a.patch\n# gone.patch\ngone.patch\n",
        );
        write(root, "keystone/a.patch", "a");
        let err = collect(root, &["keystone"]).unwrap_err();
        let series = root.join("keystone/series");
        let message = err.to_string();
        assert!(
            message.starts_with(&format!("{}:3: `gone.patch` is listed", series.display())),
            "{message}"
        );
        assert!(
            message.contains(&root.join("keystone/gone.patch").display().to_string()),
            "{message}"
        );
        assert!(message.contains("delete the line"), "{message}");
    }

    #[test]
    fn every_problem_of_every_series_is_said_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "keystone/series", "gone.patch\n../x.patch\n");
        write(root, "glance/series", "missing.patch\n");
        // A folder in place of a patch is no patch either.
        write(root, "glance/missing.patch/inner", "");
        let err = collect(root, &["glance", "keystone"]).unwrap_err();
        let PatchError::Several(errors) = &err else {
            panic!("{err}");
        };
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("glance/series:1: `missing.patch`"));
        assert!(lines[1].contains("keystone/series:1: `gone.patch`"));
        assert!(lines[2].contains("keystone/series:2: `../x.patch` is not a file inside"));
        assert!(
            err.to_string()
                .starts_with("3 problems in the patch series")
        );
    }

    #[test]
    fn a_patches_path_that_is_no_directory_gives_no_patches() {
        let dir = tempfile::tempdir().unwrap();
        let found = collect(&dir.path().join("absent"), &["keystone"]).unwrap();
        assert_eq!(found, Patches::default());
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_patch_is_sent_as_its_content() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("patches");
        write(dir.path(), "shared/common.patch", "shared");
        write(&root, "keystone/series", "common.patch\n");
        std::os::unix::fs::symlink(
            dir.path().join("shared/common.patch"),
            root.join("keystone/common.patch"),
        )
        .unwrap();
        let found = collect(&root, &["keystone"]).unwrap();
        let (_, source) = &found.files["keystone"][1];
        assert!(!source.is_symlink(), "{}", source.display());
        assert_eq!(std::fs::read_to_string(source).unwrap(), "shared");
    }
}
