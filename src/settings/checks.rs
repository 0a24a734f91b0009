//! The checks of the run as a whole: settings that are each fine alone but ask for something the
//! others (or the files they name) do not give. They run once every section is resolved, before
//! any template is rendered or engine called, so a mistyped path is reported first.

use crate::common::error::{Error, Result};
use crate::settings::Settings;

/// Every check, in the order the run would meet them.
pub(super) fn check(settings: &Settings) -> Result<()> {
    regexes_compile(&settings.selection.regexes)?;
    release_is_buildable(settings)?;
    ca_certificates_are_readable(settings)?;
    base_replacements_are_readable(settings)?;
    constraints_exist(settings)?;
    if settings.actions.template_only && settings.work_dir.is_none() {
        return Err(Error::Setting {
            key: "work-dir".into(),
            message: "`--template-only` needs `--work-dir DIR` to write into".into(),
        });
    }
    if settings.actions.builds() {
        pushes_have_a_registry(settings)?;
    }
    Ok(())
}

/// The regexes given select images only once the tree is rendered; a mistyped one is said first.
fn regexes_compile(regexes: &[String]) -> Result<()> {
    for pattern in regexes {
        regex::Regex::new(pattern).map_err(|e| Error::BadRegex {
            pattern: pattern.clone(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// A release row saying the distro has no packages of the release: nothing `binary` is built
/// (or listed as buildable) under this release's tag from another release's packages.
fn release_is_buildable(settings: &Settings) -> Result<()> {
    let unbuildable = settings
        .release
        .as_ref()
        .and_then(|r| r.unbuildable.as_ref());
    match unbuildable {
        Some(reason)
            if !settings.selection.enable_unbuildable && !settings.actions.template_only =>
        {
            let naming = &settings.naming;
            Err(Error::Setting {
                key: "install-type".into(),
                message: format!(
                    "`{}` images of OpenStack {} are unbuildable on {}: {reason} \
                     (--enable-unbuildable builds them anyway)",
                    naming.install_type, naming.openstack_release, naming.base
                ),
            })
        }
        _ => Ok(()),
    }
}

fn ca_certificates_are_readable(settings: &Settings) -> Result<()> {
    for cert in &settings.build.ca_certificates {
        if !cert.is_file() || std::fs::File::open(cert).is_err() {
            return Err(Error::Setting {
                key: "ca-certificate".into(),
                message: format!("`{}` is not a readable file", cert.display()),
            });
        }
    }
    Ok(())
}

/// kolla's `apt_sources_list` / `apt_preferences`: files `base` gets instead of its own.
fn base_replacements_are_readable(settings: &Settings) -> Result<()> {
    for (name, path) in &settings.base_replacements {
        if !path.is_file() || std::fs::File::open(path).is_err() {
            let key = match name.as_str() {
                "sources.list" => "apt_sources_list",
                _ => "apt_preferences",
            };
            return Err(Error::Setting {
                key: key.into(),
                message: format!("`{}` is not a readable file", path.display()),
            });
        }
    }
    Ok(())
}

/// The selected release's pins, which `base` gets as `upper-constraints.txt`.
fn constraints_exist(settings: &Settings) -> Result<()> {
    match &settings.release {
        Some(release) if !release.constraints.is_file() => Err(Error::Setting {
            key: "openstack-release".into(),
            message: format!(
                "the constraints file of OpenStack {}, `{}`, is missing \
                 (scripts/make-constraints.sh {} writes it)",
                release.name,
                release.constraints.display(),
                release.name
            ),
        }),
        _ => Ok(()),
    }
}

/// `--push` needs a registry to push to, and a pool of engines one to hand images over through.
fn pushes_have_a_registry(settings: &Settings) -> Result<()> {
    if settings.naming.registry.is_some() {
        return Ok(());
    }
    if settings.build.push {
        return Err(Error::Setting {
            key: "push".into(),
            message: "`--push` needs `--registry HOST:PORT` to push to".into(),
        });
    }
    let engines = settings.build.engines.len();
    if engines > 1 {
        return Err(Error::Setting {
            key: "registry".into(),
            message: format!(
                "{engines} engines (`--engine`) hand images over through a registry: give \
                 `--registry HOST:PORT`, one that every engine reaches"
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use clap::Parser;

    use crate::config::FileConfig;
    use crate::config::cli::Cli;
    use crate::settings::Settings;

    /// The error (its text) of resolving `args` over a tree at `tree` (a path that need not
    /// exist), or `None` when the settings resolve.
    fn error_of(args: &[&str], tree: &Path) -> Option<String> {
        let cli = Cli::try_parse_from(std::iter::once("kolla-build").chain(args.iter().copied()))
            .unwrap();
        let settings = Settings::merge(
            cli,
            FileConfig::default(),
            Some(tree.to_path_buf()),
            BTreeMap::new(),
            tree,
        );
        settings.err().map(|e| e.to_string())
    }

    #[track_caller]
    fn assert_refused(args: &[&str], tree: &Path, needles: &[&str]) {
        let err = error_of(args, tree).unwrap_or_else(|| panic!("{args:?} resolved"));
        for needle in needles {
            assert!(err.contains(needle), "{args:?}: {err}");
        }
    }

    #[test]
    fn pushes_and_pools_need_a_registry_when_the_run_builds() {
        let tree = Path::new("/nonexistent-tree");
        assert_refused(
            &["--push"],
            tree,
            &["`push`", "needs `--registry HOST:PORT`"],
        );
        let pool = ["--engine", "unix:///a.sock", "--engine", "unix:///b.sock"];
        assert_refused(&pool, tree, &["`registry`", "2 engines (`--engine`)"]);
        // Nothing is pushed or handed over when the run only lists.
        assert_eq!(error_of(&["--push", "--list-images"], tree), None);
        assert_eq!(error_of(&["--push", "--registry", "r:5000"], tree), None);
    }

    #[test]
    fn ca_certificates_must_be_readable_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("ca.crt");
        let missing = missing.to_str().unwrap();
        assert_refused(
            &["--list-images", "--ca-certificate", missing],
            dir.path(),
            &["`ca-certificate`", "is not a readable file", missing],
        );
        // A directory is no certificate either.
        let folder = dir.path().to_str().unwrap();
        assert_refused(
            &["--list-images", "--ca-certificate", folder],
            dir.path(),
            &["is not a readable file"],
        );
        std::fs::write(dir.path().join("ca.crt"), "pem").unwrap();
        assert_eq!(
            error_of(&["--list-images", "--ca-certificate", missing], dir.path()),
            None
        );
    }

    #[test]
    fn regexes_must_compile() {
        let tree = Path::new("/nonexistent-tree");
        assert_refused(&["--list-images", "nova-(api"], tree, &["nova-(api"]);
        assert_eq!(
            error_of(&["--list-images", "nova-(api|conductor)"], tree),
            None
        );
    }

    #[test]
    fn template_only_needs_a_work_dir() {
        let tree = Path::new("/nonexistent-tree");
        assert_refused(
            &["--template-only"],
            tree,
            &["`work-dir`", "`--template-only` needs `--work-dir DIR`"],
        );
        assert_eq!(
            error_of(&["--template-only", "--work-dir", "out"], tree),
            None
        );
    }

    /// A tree with a releases table: 2025.1 has binary packages on debian, not on rocky.
    fn tree_with_releases(dir: &Path, constraints: bool) {
        std::fs::create_dir_all(dir.join("base/constraints")).unwrap();
        std::fs::write(
            dir.join(crate::tree::releases::RELEASES_FILE),
            "default = \"2025.1\"\n\
             [releases.\"2025.1\"]\ncodename = \"epoxy\"\nconstraints = \"constraints/2025.1.txt\"\n\
             [releases.\"2025.1\".debian]\nimage = \"debian\"\ntag = \"trixie\"\nbinary = true\n\
             [releases.\"2025.1\".rocky]\nimage = \"rocky\"\ntag = \"10\"\nbinary = false\n\
             unbuildable = \"no packages yet\"\n",
        )
        .unwrap();
        if constraints {
            std::fs::write(dir.join("base/constraints/2025.1.txt"), "pbr==1\n").unwrap();
        }
    }

    #[test]
    fn an_unbuildable_release_is_refused_unless_enabled_or_only_rendered() {
        let dir = tempfile::tempdir().unwrap();
        tree_with_releases(dir.path(), true);
        let rocky = ["--list-images", "-b", "rocky", "-t", "binary"];
        assert_refused(
            &rocky,
            dir.path(),
            &["`install-type`", "unbuildable on rocky: no packages yet"],
        );
        let enabled = [&rocky[..], &["--enable-unbuildable"]].concat();
        assert_eq!(error_of(&enabled, dir.path()), None);
        let rendered = [
            "--template-only",
            "--work-dir",
            "o",
            "-b",
            "rocky",
            "-t",
            "binary",
        ];
        assert_eq!(error_of(&rendered, dir.path()), None);
        assert_eq!(
            error_of(
                &["--list-images", "-b", "rocky", "-t", "source"],
                dir.path()
            ),
            None
        );
    }

    #[test]
    fn the_release_constraints_file_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        tree_with_releases(dir.path(), false);
        assert_refused(
            &["--list-images"],
            dir.path(),
            &[
                "`openstack-release`",
                "constraints file of OpenStack 2025.1",
                "is missing",
            ],
        );
    }
}
