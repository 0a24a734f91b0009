//! The template tree: the main tree with its overlays (`--docker-dir`), read once into memory so
//! that rendering does no I/O. Every directory holding a `Dockerfile.j2` is an image named after
//! the directory.

pub mod releases;
pub mod repos;
pub mod users;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::error::{Error, Result};

pub const TEMPLATE_FILE: &str = "Dockerfile.j2";
/// Data files of the tree that are read by the tool, not sent to the engine.
const TREE_DATA_FILES: [&str; 3] = ["releases.toml", "repos.yaml", "users.toml"];
/// Folders of the tree read by the tool, not sent to the engine: `base/constraints/` holds one
/// constraints file per release, and base gets only the selected one (as upper-constraints.txt).
const TREE_DATA_DIRS: [&str; 1] = ["base/constraints/"];

/// How the main tree is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// This project's: `base/` and `images/` side by side (other folders are ignored).
    Split,
    /// kolla's `docker/` folder: every folder below the root may hold images; `base/` among them.
    Kolla,
}

impl Layout {
    /// A folder with `images/` is this project's layout; anything else is read as kolla's.
    pub fn detect(root: &Path) -> Layout {
        if root.join("images").is_dir() {
            Layout::Split
        } else {
            Layout::Kolla
        }
    }
}

/// One image as found in the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageSource {
    pub name: String,
    /// The image's folder relative to the tree root, with `/` separators.
    pub dir: String,
    /// The template name (`<dir>/Dockerfile.j2`), as the renderer knows it.
    pub template: String,
    /// The build context's files, relative to `dir`, sorted.
    pub context_files: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Tree {
    pub root: PathBuf,
    pub layout: Layout,
    /// Every file of the merged tree: relative path → the file it comes from (later trees win).
    files: BTreeMap<String, PathBuf>,
    /// The text of every `*.j2` file, by relative path.
    templates: BTreeMap<String, String>,
    /// Sorted by name.
    pub images: Vec<ImageSource>,
}

impl Tree {
    /// Reads the main tree at `root` and lays `overlays` over it, in order.
    pub fn load(root: &Path, overlays: &[PathBuf]) -> Result<Tree> {
        if !root.is_dir() {
            return Err(Error::BadTree {
                path: root.to_path_buf(),
                reason: "no such directory".into(),
            });
        }
        let layout = Layout::detect(root);
        if !root.join("base").join(TEMPLATE_FILE).is_file() {
            return Err(Error::BadTree {
                path: root.to_path_buf(),
                reason: "it has no `base/Dockerfile.j2`; a tree is this project's root (with \
                         `base/` and `images/`) or a folder laid out like kolla's `docker/`"
                    .into(),
            });
        }
        let mut files = BTreeMap::new();
        match layout {
            Layout::Split => {
                for top in ["base", "images"] {
                    collect_files(root, &root.join(top), &mut files)?;
                }
            }
            Layout::Kolla => collect_files(root, root, &mut files)?,
        }
        for overlay in overlays {
            if !overlay.is_dir() {
                return Err(Error::BadTree {
                    path: overlay.clone(),
                    reason: "no such directory (given with --docker-dir)".into(),
                });
            }
            collect_files(overlay, overlay, &mut files)?;
        }
        let mut templates = BTreeMap::new();
        for (rel, path) in &files {
            if rel.ends_with(".j2") {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                templates.insert(rel.clone(), text);
            }
        }
        let images = find_images(&files)?;
        Ok(Tree {
            root: root.to_path_buf(),
            layout,
            files,
            templates,
            images,
        })
    }

    /// The source of a template by name; a name not found from the root is looked up in `base/`
    /// (so `macros.j2` is found in both layouts).
    pub fn template_source(&self, name: &str) -> Option<&str> {
        self.templates
            .get(name)
            .or_else(|| self.templates.get(&format!("base/{name}")))
            .map(String::as_str)
    }

    /// Every template, for the renderer's environment.
    pub fn templates(&self) -> impl Iterator<Item = (&str, &str)> {
        self.templates.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The on-disk file behind a relative path of the merged tree.
    pub fn file(&self, rel: &str) -> Option<&Path> {
        self.files.get(rel).map(PathBuf::as_path)
    }

    /// The path of a template as a user would open it.
    pub fn display_path(&self, template: &str) -> String {
        let rel = if self.templates.contains_key(template) {
            template.to_string()
        } else {
            format!("base/{template}")
        };
        match self.files.get(&rel) {
            Some(path) => path.display().to_string(),
            None => template.to_string(),
        }
    }

    pub fn image(&self, name: &str) -> Option<&ImageSource> {
        self.images
            .binary_search_by(|i| i.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.images[i])
    }

    /// Reads a data file of the tree (`base/users.toml`, `images/unbuildable.toml`...), if present.
    pub fn read_data(&self, candidates: &[&str]) -> Result<Option<(PathBuf, String)>> {
        for rel in candidates {
            if let Some(path) = self.files.get(*rel) {
                let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                return Ok(Some((path.clone(), text)));
            }
        }
        Ok(None)
    }
}

fn collect_files(root: &Path, dir: &Path, files: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    if !dir.is_dir() {
        return Ok(());
    }
    let inside = std::fs::canonicalize(root).map_err(|source| Error::Read {
        path: root.to_path_buf(),
        source,
    })?;
    let walker = walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'));
    for entry in walker {
        let entry = entry.map_err(|e| Error::Read {
            path: e.path().unwrap_or(dir).to_path_buf(),
            source: e
                .into_io_error()
                .unwrap_or_else(|| std::io::Error::other("walk failed")),
        })?;
        if entry.file_type().is_dir() {
            continue;
        }
        let mut parts = Vec::new();
        for part in entry
            .path()
            .strip_prefix(root)
            .expect("walked below root")
            .components()
        {
            let Some(part) = part.as_os_str().to_str() else {
                return Err(Error::BadTree {
                    path: entry.path().to_path_buf(),
                    reason: "the file name is not UTF-8; rename it (an image's files must have \
                             names the templates and the engine can use)"
                        .into(),
                });
            };
            parts.push(part);
        }
        let rel = parts.join("/");
        // A symlink the tool reads (a template, a data file) must stay inside the tree; a
        // symlink in a build context is sent as a symlink, as the docker CLI does.
        if entry.path_is_symlink() && read_by_the_tool(&rel) {
            let target = std::fs::canonicalize(entry.path()).ok();
            if !target.as_ref().is_some_and(|t| t.starts_with(&inside)) {
                return Err(Error::BadTree {
                    path: entry.path().to_path_buf(),
                    reason: match target {
                        Some(t) => format!(
                            "this symlink points outside the tree (to `{}`); templates and data files must stay inside it",
                            t.display()
                        ),
                        None => "this symlink points nowhere".into(),
                    },
                });
            }
        }
        files.insert(rel, entry.path().to_path_buf());
    }
    Ok(())
}

/// Files the tool reads itself: templates and the tree's data files.
fn read_by_the_tool(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.ends_with(".j2") || TREE_DATA_FILES.contains(&name) || name == "unbuildable.toml"
}

fn find_images(files: &BTreeMap<String, PathBuf>) -> Result<Vec<ImageSource>> {
    let suffix = format!("/{TEMPLATE_FILE}");
    let dirs: Vec<&str> = files
        .keys()
        .filter_map(|rel| rel.strip_suffix(&suffix))
        .collect();
    let mut by_name: BTreeMap<String, ImageSource> = BTreeMap::new();
    for dir in &dirs {
        let name = dir.rsplit('/').next().unwrap_or(dir).to_string();
        let prefix = format!("{dir}/");
        // Files below this image's folder, except those of images nested inside it.
        let context_files = files
            .keys()
            .filter_map(|rel| rel.strip_prefix(&prefix))
            .filter(|inner| {
                !dirs.iter().any(|other| {
                    other.len() > dir.len()
                        && format!("{dir}/{inner}").starts_with(&format!("{other}/"))
                })
            })
            .filter(|inner| {
                let file_name = inner.rsplit('/').next().unwrap_or(inner);
                let rel = format!("{dir}/{inner}");
                !file_name.ends_with(".j2")
                    && !TREE_DATA_FILES.contains(&file_name)
                    && !TREE_DATA_DIRS.iter().any(|d| rel.starts_with(d))
            })
            .map(str::to_string)
            .collect();
        let image = ImageSource {
            name: name.clone(),
            dir: dir.to_string(),
            template: format!("{dir}/{TEMPLATE_FILE}"),
            context_files,
        };
        if let Some(first) = by_name.get(&name) {
            return Err(Error::DuplicateImage {
                name,
                first: files[&first.template].clone(),
                second: files[&image.template].clone(),
            });
        }
        by_name.insert(name, image);
    }
    Ok(by_name.into_values().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[test]
    fn split_layout_finds_images_and_their_context() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(root, "base/Dockerfile.j2", "FROM x");
        write(root, "base/macros.j2", "");
        write(root, "base/users.toml", "");
        write(root, "base/start.sh", "");
        write(root, "images/nova/nova-base/Dockerfile.j2", "");
        write(root, "images/nova/nova-base/sudoers", "");
        write(root, "images/nova/nova-base/nova-api/Dockerfile.j2", "");
        write(root, "images/nova/nova-base/nova-api/extend_start.sh", "");
        write(root, "src/ignored/Dockerfile.j2", "");
        let tree = Tree::load(root, &[]).unwrap();
        assert_eq!(tree.layout, Layout::Split);
        let names: Vec<_> = tree.images.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["base", "nova-api", "nova-base"]);
        assert_eq!(tree.image("base").unwrap().context_files, ["start.sh"]);
        assert_eq!(tree.image("nova-base").unwrap().context_files, ["sudoers"]);
        assert_eq!(
            tree.image("nova-api").unwrap().context_files,
            ["extend_start.sh"]
        );
        assert_eq!(tree.template_source("macros.j2"), Some(""));
    }

    #[test]
    fn overlay_files_win_and_add_images() {
        let main = tempfile::tempdir().unwrap();
        let extra = tempfile::tempdir().unwrap();
        write(main.path(), "base/Dockerfile.j2", "FROM main");
        write(main.path(), "macros.j2", "");
        write(extra.path(), "base/Dockerfile.j2", "FROM extra");
        write(extra.path(), "custom/Dockerfile.j2", "FROM y");
        let tree = Tree::load(main.path(), &[extra.path().to_path_buf()]).unwrap();
        assert_eq!(tree.layout, Layout::Kolla);
        assert_eq!(
            tree.template_source("base/Dockerfile.j2"),
            Some("FROM extra")
        );
        assert!(tree.image("custom").is_some());
    }

    #[test]
    fn duplicate_names_name_both_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "base/Dockerfile.j2", "");
        write(dir.path(), "a/tool/Dockerfile.j2", "");
        write(dir.path(), "b/tool/Dockerfile.j2", "");
        let err = Tree::load(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("`tool` is defined twice"), "{err}");
        assert!(err.contains("a/tool") && err.contains("b/tool"), "{err}");
    }

    #[test]
    fn a_folder_without_base_is_not_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let err = Tree::load(dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("base/Dockerfile.j2"), "{err}");
    }
}
