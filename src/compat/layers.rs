//! Several kolla-build.conf files as oslo.config reads them (checked against oslo.config 10 with
//! kolla 20 to 23's options):
//!
//! - kolla's default files and directories first (when no `--config-file`, resp. no
//!   `--config-dir`, is given), then each `--config-file` and each `--config-dir` (its `*.conf`,
//!   sorted) **where it stands on the command line**;
//! - a single-valued option takes the value of the last file that sets it; for an option that is
//!   also a command-line flag, a file read after the flag overrides it, one read before does
//!   not;
//! - the multi-valued options (`template_override`, `docker_dir`, `profile`: kolla's `MultiOpt`s)
//!   add up across files and flags in command-line order (the same file twice counts twice);
//! - list options (`rpm_setup_config`, the `[profiles]` entries) are single values: the last file
//!   wins whole;
//! - a `[DEFAULT]` key written with `-` (`template-override`) is not the option: oslo looks
//!   options up by their `_` name in files, so kolla-build ignores it, and so does this (with a
//!   warning, [`ignored_keys`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::error::{Error, Result};
use crate::config::cli::Cli;

/// kolla's multi-valued options of `[DEFAULT]` (its `cfg.MultiOpt`s besides the positional
/// `regex`).
pub const MULTI: [&str; 3] = ["template_override", "docker_dir", "profile"];

/// One configuration file in oslo's reading order, with where it stands on the command line
/// (`0` for kolla's default files and folders, read before the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub path: PathBuf,
    pub position: usize,
}

/// The files to read, in oslo's order: the default files (without `--config-file`) and the
/// default folders' files (without `--config-dir`), then every `--config-file` and
/// `--config-dir` in command-line order. A `--config-dir` that does not exist is an error, as in
/// oslo.
pub fn layers(cli: &Cli, cwd: &Path, search: &[PathBuf]) -> Result<Vec<Layer>> {
    let mut out = Vec::new();
    if cli.config_file.is_empty() {
        out.extend(
            super::oslo::default_files(search)
                .into_iter()
                .map(|path| Layer { path, position: 0 }),
        );
    }
    let dir_files = |dir: &Path| {
        super::oslo::dir_files(dir).map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })
    };
    if cli.config_dir.is_empty() {
        for dir in super::oslo::default_dirs(search) {
            out.extend(
                dir_files(&dir)?
                    .into_iter()
                    .map(|path| Layer { path, position: 0 }),
            );
        }
    }
    // (position, is a folder, path); without recorded positions, files before folders.
    let at = |id: &str, i: usize| {
        cli.positions
            .get(id)
            .and_then(|p| p.get(i))
            .copied()
            .unwrap_or(0)
    };
    let mut given: Vec<(usize, bool, PathBuf)> = Vec::new();
    for (i, file) in cli.config_file.iter().enumerate() {
        given.push((at("config_file", i), false, cwd.join(file)));
    }
    for (i, dir) in cli.config_dir.iter().enumerate() {
        given.push((at("config_dir", i), true, cwd.join(dir)));
    }
    given.sort_by_key(|(position, is_dir, _)| (*position, *is_dir));
    for (position, is_dir, path) in given {
        if is_dir {
            out.extend(
                dir_files(&path)?
                    .into_iter()
                    .map(|path| Layer { path, position }),
            );
        } else {
            out.push(Layer { path, position });
        }
    }
    Ok(out)
}

/// One `key = value` of a file (with its continuation lines), by section.
struct Entry<'a> {
    section: String,
    key: String,
    /// A `[DEFAULT]` key written with `-`: oslo does not read it.
    dashed: bool,
    lines: Vec<&'a str>,
}

fn entries(text: &str) -> Vec<Entry<'_>> {
    let mut all = all_entries(text);
    all.retain(|e| !e.dashed);
    all
}

/// The `[DEFAULT]` keys of a file written with `-`, which oslo (and so kolla-build) ignores.
pub fn ignored_keys(text: &str) -> Vec<String> {
    all_entries(text)
        .into_iter()
        .filter(|e| e.dashed)
        .map(|e| e.key)
        .collect()
}

fn all_entries(text: &str) -> Vec<Entry<'_>> {
    let mut out: Vec<Entry> = Vec::new();
    let mut section = "DEFAULT".to_string();
    let mut open = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with(['#', ';']) {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if open && let Some(last) = out.last_mut() {
                last.lines.push(line);
            }
            continue;
        }
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            section = trimmed[1..trimmed.len() - 1].trim().to_string();
            open = false;
            continue;
        }
        let key = line.split_once('=').map_or(trimmed, |(k, _)| k).trim();
        out.push(Entry {
            dashed: section == "DEFAULT" && key.contains('-'),
            section: section.clone(),
            key: key.replace('-', "_"),
            lines: vec![line],
        });
        open = true;
    }
    out
}

fn is_multi(section: &str, key: &str) -> bool {
    section == "DEFAULT" && MULTI.contains(&key)
}

/// The files' texts (already interpolated), in reading order, merged into one INI text as oslo
/// sees them: each single-valued option as set by the last file that sets it (all its lines of
/// that file, the last of which wins), each multi-valued one with every file's lines in order.
pub fn merge(texts: &[&str]) -> String {
    let parsed: Vec<Vec<Entry>> = texts.iter().map(|t| entries(t)).collect();
    let mut last_file: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for (i, file) in parsed.iter().enumerate() {
        for e in file {
            last_file.insert((&e.section, &e.key), i);
        }
    }
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for (i, file) in parsed.iter().enumerate() {
        for e in file {
            if !is_multi(&e.section, &e.key)
                && last_file[&(e.section.as_str(), e.key.as_str())] != i
            {
                continue;
            }
            let lines = match sections.iter_mut().find(|(s, _)| *s == e.section) {
                Some((_, lines)) => lines,
                None => {
                    sections.push((&e.section, Vec::new()));
                    &mut sections.last_mut().expect("just pushed").1
                }
            };
            lines.extend(e.lines.iter().copied());
        }
    }
    let mut out = String::new();
    for (section, lines) in sections {
        out.push_str(&format!("[{section}]\n"));
        for line in lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The multi-valued entries of one file, as an INI text of their own (to parse them per file).
pub fn multi_only(text: &str) -> String {
    let mut out = String::from("[DEFAULT]\n");
    for e in entries(text)
        .into_iter()
        .filter(|e| is_multi(&e.section, &e.key))
    {
        for line in e.lines {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The `[DEFAULT]` options a file sets.
pub fn keys_set(text: &str) -> Vec<String> {
    entries(text)
        .into_iter()
        .filter(|e| e.section == "DEFAULT")
        .map(|e| e.key)
        .collect()
}

/// The last command-line position of a flag (by its option id), `None` if not given.
/// Without recorded positions a given flag counts as after every file (the flag wins).
/// A switch counts where its last spelling stands, `--X` or its inverse (`--noX`, `--no-X`).
pub fn flag_position(cli: &Cli, id: &str) -> Option<usize> {
    let ids = [id.to_string(), format!("no{id}"), format!("no_{id}")];
    ids.iter()
        .filter_map(|id| cli.positions.get(id)?.last().copied())
        .max()
        .or(Some(usize::MAX))
}

/// kolla's single-valued command-line options that a file read after the flag overrides: the
/// flag is dropped (returns whether it was given). Options this tool has as flags only, or that
/// kolla has in files only, are not in the list: there the flag wins.
pub fn drop_flag(cli: &mut Cli, key: &str) -> bool {
    fn take<T>(slot: &mut Option<T>) -> bool {
        slot.take().is_some()
    }
    fn off(on: &mut bool, inverse: &mut bool) -> bool {
        let given = *on || *inverse;
        (*on, *inverse) = (false, false);
        given
    }
    match key {
        "base" => take(&mut cli.base),
        "base_image" => take(&mut cli.base_image),
        "base_tag" => take(&mut cli.base_tag),
        "base_arch" => take(&mut cli.base_arch),
        "namespace" => take(&mut cli.namespace),
        "registry" => take(&mut cli.registry),
        "tag" => take(&mut cli.tag),
        "image_name_prefix" => take(&mut cli.image_name_prefix),
        "openstack_release" => take(&mut cli.openstack_release),
        "openstack_release_codename" => take(&mut cli.openstack_release_codename),
        "work_dir" => take(&mut cli.work_dir),
        "logs_dir" => take(&mut cli.logs_dir),
        "repos_yaml" => take(&mut cli.repos_yaml),
        "summary_json_file" => take(&mut cli.summary_json_file),
        "network_mode" => take(&mut cli.network_mode),
        "format" => take(&mut cli.format),
        "threads" => take(&mut cli.threads),
        "push_threads" => take(&mut cli.push_threads),
        "retries" => take(&mut cli.retries),
        "timeout" => take(&mut cli.timeout),
        "podman_base_url" => take(&mut cli.podman_base_url),
        "tarballs_base" => take(&mut cli.tarballs_base),
        "locals_base" => take(&mut cli.locals_base),
        "patches_path" => take(&mut cli.patches_path),
        "openstack_branch" => take(&mut cli.openstack_branch),
        "openstack_branch_slashed" => take(&mut cli.openstack_branch_slashed),
        "debian_arch" => take(&mut cli.debian_arch),
        // kolla's engine names only (URLs of a pool are this tool's)
        "engine"
            if cli
                .engine
                .iter()
                .all(|e| crate::config::cli::is_engine_name(e)) =>
        {
            let given = !cli.engine.is_empty();
            cli.engine.clear();
            given
        }
        // a switch and its inverse
        "skip_parents" => off(&mut cli.skip_parents, &mut cli.noskip_parents),
        "skip_existing" => off(&mut cli.skip_existing, &mut cli.noskip_existing),
        "enable_unbuildable" => off(&mut cli.enable_unbuildable, &mut cli.noenable_unbuildable),
        "keep" => off(&mut cli.keep, &mut cli.nokeep),
        "push" => off(&mut cli.push, &mut cli.nopush),
        "pull" => off(&mut cli.pull, &mut cli.no_pull),
        "cache" => off(&mut cli.cache, &mut cli.no_cache),
        "use_dumb_init" => off(&mut cli.use_dumb_init, &mut cli.nouse_dumb_init),
        "docker_healthchecks" => off(&mut cli.docker_healthchecks, &mut cli.nodocker_healthchecks),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_after_a_flag_or_its_inverse_overrides_it() {
        let mut cli = crate::compat::args::parse_from([
            "kolla-build",
            "--threads",
            "3",
            "--noskip-parents",
            "--config-file",
            "a.conf",
            "--pull",
        ])
        .unwrap();
        let file = cli.positions["config_file"][0];
        for key in ["threads", "skip_parents"] {
            assert!(
                flag_position(&cli, key).is_some_and(|at| at < file),
                "{key}"
            );
            assert!(drop_flag(&mut cli, key), "{key}");
        }
        assert_eq!(cli.threads, None);
        assert!(!cli.skip_parents && !cli.noskip_parents);
        // the flag after the file stays
        assert!(flag_position(&cli, "pull").is_some_and(|at| at > file));
        assert!(cli.pull);
    }

    #[test]
    fn later_files_win_and_multi_options_add_up() {
        let a = "[DEFAULT]\nnamespace = from_a\nmaintainer = m_a\ntemplate_override = a1.j2\n\
                 template_override = a2.j2\nrpm_setup_config = ra1,ra2\n[profiles]\nsite = x,y\n";
        let b = "# b\n[DEFAULT]\nnamespace = from_b\ntemplate_override = b1.j2\n\
                 rpm_setup_config = rb\n[profiles]\nsite = z\n";
        let merged = merge(&[a, b]);
        let (config, _) = crate::config::FileConfig::parse_ini(&merged).unwrap();
        assert_eq!(config.namespace.as_deref(), Some("from_b"));
        assert_eq!(config.maintainer.as_deref(), Some("m_a"));
        assert_eq!(
            config.template_override.unwrap(),
            ["a1.j2", "a2.j2", "b1.j2"].map(PathBuf::from)
        );
        // list options are single values: the last file's list, whole
        assert_eq!(config.rpm_setup_config.unwrap(), ["rb"]);
        assert_eq!(config.profiles.unwrap()["site"], ["z"]);
        // the other order
        let (config, _) = crate::config::FileConfig::parse_ini(&merge(&[b, a])).unwrap();
        assert_eq!(config.namespace.as_deref(), Some("from_a"));
        assert_eq!(
            config.template_override.unwrap(),
            ["b1.j2", "a1.j2", "a2.j2"].map(PathBuf::from)
        );
        assert_eq!(config.profiles.unwrap()["site"], ["x", "y"]);
        // the same file twice counts twice for a multi-valued option
        let (config, _) = crate::config::FileConfig::parse_ini(&merge(&[a, a])).unwrap();
        assert_eq!(config.template_override.unwrap().len(), 4);
    }

    #[test]
    fn continuation_lines_stay_with_their_key() {
        let a = "[DEFAULT]\nmaintainer = first\n  line\nnamespace = a\n";
        let b = "[DEFAULT]\nnamespace = b\n";
        let merged = merge(&[a, b]);
        assert_eq!(
            merged,
            "[DEFAULT]\nmaintainer = first\n  line\nnamespace = b\n"
        );
        assert_eq!(
            multi_only("[DEFAULT]\nprofile = a,b\nbase = x\n[other]\nprofile = c\n"),
            "[DEFAULT]\nprofile = a,b\n"
        );
        assert_eq!(keys_set("base_tag = 1\n[x]\ny = 2\n"), ["base_tag"]);
    }

    #[test]
    fn dashed_keys_are_not_options_in_files() {
        // oslo reads `template_override`, not `template-override`, from a file
        let a = "[DEFAULT]\ntemplate_override = a.j2\ntemplate-override = dash.j2\nbase-tag = 9\n";
        let merged = merge(&[a]);
        assert_eq!(merged, "[DEFAULT]\ntemplate_override = a.j2\n");
        assert_eq!(ignored_keys(a), ["template_override", "base_tag"]);
        assert!(keys_set(a).iter().all(|k| k != "base_tag"));
        assert_eq!(multi_only(a), "[DEFAULT]\ntemplate_override = a.j2\n");
        // section names and keys of other sections keep their dashes
        assert_eq!(
            merge(&["[keystone-user]\nuid = 1\n"]),
            "[keystone-user]\nuid = 1\n"
        );
    }

    #[test]
    fn files_and_folders_are_read_in_command_line_order() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("d");
        std::fs::create_dir_all(&d).unwrap();
        for name in ["20-b.conf", "10-a.conf", "notes.txt"] {
            std::fs::write(d.join(name), "").unwrap();
        }
        let read = |args: [&str; 4]| -> Vec<PathBuf> {
            let cli =
                super::super::args::parse_from(std::iter::once("kolla-build").chain(args)).unwrap();
            layers(&cli, dir.path(), &[])
                .unwrap()
                .into_iter()
                .map(|l| l.path.strip_prefix(dir.path()).unwrap().to_path_buf())
                .collect()
        };
        assert_eq!(
            read(["--config-dir", "d", "--config-file", "x.conf"]),
            ["d/10-a.conf", "d/20-b.conf", "x.conf"].map(PathBuf::from)
        );
        assert_eq!(
            read(["--config-file", "x.conf", "--config-dir", "d"]),
            ["x.conf", "d/10-a.conf", "d/20-b.conf"].map(PathBuf::from)
        );
        let missing =
            super::super::args::parse_from(["kolla-build", "--config-dir", "nope"]).unwrap();
        let err = layers(&missing, dir.path(), &[]).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }
}
