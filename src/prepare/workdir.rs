//! Writes rendered Dockerfiles and their build contexts to `WORK_DIR/docker/`, mirroring the
//! source tree. All or nothing: the tree is staged under a temporary name and renamed at the end.

use std::path::{Path, PathBuf};

use crate::common::error::{Error, Result};
use crate::prepare::context::ExtraFiles;
use crate::tree::{ImageSource, Tree};

/// Writes `images` (with their rendered Dockerfiles, extra files and the directories every
/// context holds) and returns the `docker/` directory.
pub fn write_tree(
    work_dir: &Path,
    tree: &Tree,
    images: &[(&ImageSource, &str)],
    extra: &ExtraFiles,
    dirs: &[String],
) -> Result<PathBuf> {
    let write_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Write { path, source }
    };
    std::fs::create_dir_all(work_dir).map_err(write_err(work_dir))?;
    let staging = tempfile::Builder::new()
        .prefix(".docker.partial-")
        .tempdir_in(work_dir)
        .map_err(write_err(work_dir))?;
    let _tracked = crate::common::signals::track(staging.path());
    // Images are written in parallel: the tree of kolla's 188 images is ~370 small files.
    use rayon::prelude::*;
    images
        .par_iter()
        .try_for_each(|(image, dockerfile)| -> Result<()> {
            if let Some(signal) = crate::common::signals::interrupted() {
                return Err(Error::Interrupted { signal });
            }
            let dir = staging.path().join(&image.dir);
            std::fs::create_dir_all(&dir).map_err(write_err(&dir))?;
            std::fs::write(dir.join("Dockerfile"), dockerfile)
                .map_err(write_err(&dir.join("Dockerfile")))?;
            for sub in dirs {
                let sub = dir.join(sub);
                std::fs::create_dir_all(&sub).map_err(write_err(&sub))?;
            }
            let own = image.context_files.iter().map(|rel| {
                let source = tree
                    .file(&format!("{}/{rel}", image.dir))
                    .expect("context files come from the tree");
                (rel.as_str(), source)
            });
            let added = extra
                .0
                .get(&image.name)
                .into_iter()
                .flatten()
                .map(|(rel, path)| (rel.as_str(), path.as_path()));
            for (rel, source) in own.chain(added) {
                let target = dir.join(rel);
                // (the image's own folder exists already: one mkdir less per file)
                if let Some(parent) = target.parent().filter(|p| *p != dir) {
                    std::fs::create_dir_all(parent).map_err(write_err(parent))?;
                }
                // A symlink stays a symlink (what the engine is sent), never its target's content.
                let meta = std::fs::symlink_metadata(source).map_err(write_err(source))?;
                if meta.file_type().is_symlink() {
                    let link = std::fs::read_link(source).map_err(write_err(source))?;
                    std::os::unix::fs::symlink(link, &target).map_err(write_err(&target))?;
                } else {
                    std::fs::copy(source, &target).map_err(write_err(&target))?;
                }
            }
            Ok(())
        })?;
    let final_dir = work_dir.join("docker");
    // Swap the finished tree in; the old one is removed only once the new one is in place.
    let old = work_dir.join(format!(".docker.old-{}", std::process::id()));
    if final_dir.exists() {
        std::fs::rename(&final_dir, &old).map_err(write_err(&final_dir))?;
    }
    let staged = staging.keep();
    std::fs::rename(&staged, &final_dir).map_err(write_err(&final_dir))?;
    if old.exists() {
        std::fs::remove_dir_all(&old).map_err(write_err(&old))?;
    }
    Ok(final_dir)
}
