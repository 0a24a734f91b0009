//! kolla-build.conf as kolla reads it (through oslo.config): which files are read, and `$name`
//! interpolation.
//!
//! - Without `--config-file`, the first of `~/.kolla/`, `~/`, `/etc/kolla/`, `/etc/` holding
//!   `kolla.conf`, and the first holding `kolla-build.conf` (oslo's project and program files),
//!   in that order.
//! - Without `--config-dir`, every `*.conf` (sorted) of the first `kolla.conf.d/` and the first
//!   `kolla-build.conf.d/` found in those folders; with `--config-dir DIR`, DIR's `*.conf` (a
//!   missing DIR is an error, as in oslo). Files are read before directories; later values win.
//! - `$name`, `${name}` and `${group.name}` in a value are replaced by that option's value (the
//!   command line's, else the files', else kolla's default); `$$` is a `$`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

crate::common::error::message_error!(
    /// An oslo.config interpolation that cannot be resolved.
    OsloError
);

/// The folders oslo.config searches for project `kolla`, in order.
pub fn search_dirs(home: Option<&Path>, root: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(home) = home {
        dirs.push(home.join(".kolla"));
        dirs.push(home.to_path_buf());
    }
    dirs.push(root.join("etc/kolla"));
    dirs.push(root.join("etc"));
    dirs
}

/// The files kolla-build reads when no `--config-file` is given.
pub fn default_files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    ["kolla.conf", "kolla-build.conf"]
        .iter()
        .filter_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| p.exists()))
        .collect()
}

/// The directories kolla-build reads when no `--config-dir` is given (those that exist).
pub fn default_dirs(dirs: &[PathBuf]) -> Vec<PathBuf> {
    ["kolla.conf.d", "kolla-build.conf.d"]
        .iter()
        .filter_map(|name| dirs.iter().map(|d| d.join(name)).find(|p| p.is_dir()))
        .collect()
}

/// The `*.conf` files of a config directory, sorted by path.
pub fn dir_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "conf") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Raw values of an INI text: section (`DEFAULT` for none) → key (`-` read as `_`) → last value.
pub fn raw_values(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut values: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = "DEFAULT".to_string();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            section = trimmed[1..trimmed.len() - 1].trim().to_string();
        } else if !trimmed.starts_with(['#', ';'])
            && !line.starts_with([' ', '\t'])
            && let Some((key, value)) = line.split_once('=')
        {
            values.entry(section.clone()).or_default().insert(
                key.trim().replace('-', "_"),
                unquote(value.trim()).to_string(),
            );
        }
    }
    values
}

fn unquote(value: &str) -> &str {
    for q in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(q) && value.ends_with(q) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

/// Replaces `$name`, `${name}` and `${group.name}` in `value` (oslo's `string.Template` with
/// names `[_a-z][._a-z0-9]*`, case-insensitive); `lookup(group, name)` gives an option's value,
/// already interpolated. An unknown name is an error, as in oslo.
pub fn interpolate(
    value: &str,
    group: &str,
    lookup: &mut dyn FnMut(&str, &str) -> Result<String, OsloError>,
) -> Result<String, OsloError> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, tail) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) if is_name(&braced[..end]) => (&braced[..end], &braced[end + 1..]),
                _ => {
                    out.push('$');
                    rest = after;
                    continue;
                }
            }
        } else {
            let len = name_len(after);
            if len == 0 {
                out.push('$');
                rest = after;
                continue;
            }
            (&after[..len], &after[len..])
        };
        let (group, option) = match name.split_once('.') {
            Some((g, o)) => (g, o),
            None => (group, name),
        };
        out.push_str(&lookup(group, option)?);
        rest = tail;
    }
    out.push_str(rest);
    Ok(out)
}

fn name_len(s: &str) -> usize {
    let mut chars = s.char_indices();
    match chars.next() {
        Some((_, c)) if c == '_' || c.is_ascii_alphabetic() => {}
        _ => return 0,
    }
    chars
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '.'))
        .map_or(s.len(), |(i, _)| i)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && name_len(s) == s.len()
}

/// Interpolates every value of an INI text line by line (keys, comments and section headers are
/// kept as written).
pub fn interpolate_text(
    text: &str,
    lookup: &mut dyn FnMut(&str, &str) -> Result<String, OsloError>,
) -> Result<String, OsloError> {
    let mut out = String::with_capacity(text.len());
    let mut section = "DEFAULT".to_string();
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed.starts_with('[') && trimmed.ends_with(']') {
            section = trimmed[1..trimmed.len() - 1].trim().to_string();
            out.push_str(line);
        } else if trimmed.starts_with(['#', ';']) || !line.contains('$') {
            out.push_str(line);
        } else if line.starts_with([' ', '\t']) {
            out.push_str(&interpolate(line, &section, lookup)?);
        } else if let Some((key, value)) = line.split_once('=') {
            out.push_str(key);
            out.push('=');
            out.push_str(
                &interpolate(value, &section, lookup)
                    .map_err(|e| format!("{}: {e}", key.trim()))?,
            );
        } else {
            out.push_str(line);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup_in<'a>(
        values: &'a BTreeMap<&'a str, &'a str>,
    ) -> impl FnMut(&str, &str) -> Result<String, OsloError> + 'a {
        |group, name| {
            values
                .get(format!("{group}.{name}").as_str())
                .or_else(|| values.get(format!("DEFAULT.{name}").as_str()))
                .map(|v| v.to_string())
                .ok_or_else(|| format!("no such option `{name}`").into())
        }
    }

    #[test]
    fn names_braces_groups_and_escapes() {
        let values = BTreeMap::from([
            ("DEFAULT.openstack_release", "2025.1"),
            ("DEFAULT.base", "rocky"),
            ("keystone-base.reference", "stable/2025.1"),
        ]);
        let mut lookup = lookup_in(&values);
        let mut expand = |raw: &str| interpolate(raw, "DEFAULT", &mut lookup);
        let cases = [
            ("$openstack_release-custom", "2025.1-custom"),
            ("${base}9", "rocky9"),
            ("cost: $$5 and $ alone", "cost: $5 and $ alone"),
        ];
        for (raw, expanded) in cases {
            assert_eq!(expand(raw).unwrap(), expanded, "{raw}");
        }
        assert_eq!(
            expand("x ${keystone-base.reference}").unwrap_or_default(),
            "x ${keystone-base.reference}"
        );
        assert!(expand("$nope").unwrap_err().contains("nope"));
    }

    #[test]
    fn text_keeps_keys_comments_and_sections() {
        let values = BTreeMap::from([("DEFAULT.namespace", "acme")]);
        let mut lookup = lookup_in(&values);
        let text = "[DEFAULT]\n# $namespace stays\nregistry = r.example/$namespace\n  $namespace\n";
        assert_eq!(
            interpolate_text(text, &mut lookup).unwrap(),
            "[DEFAULT]\n# $namespace stays\nregistry = r.example/acme\n  acme\n"
        );
        let raw = raw_values("[DEFAULT]\nbase-tag = \"10\"\n[x-user]\nuid = 1\n");
        assert_eq!(raw["DEFAULT"]["base_tag"], "10");
        assert_eq!(raw["x-user"]["uid"], "1");
    }

    #[test]
    fn default_files_take_the_first_folder_per_name() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let root = dir.path().join("root");
        std::fs::create_dir_all(home.join(".kolla")).unwrap();
        std::fs::create_dir_all(root.join("etc/kolla/kolla-build.conf.d")).unwrap();
        std::fs::write(home.join(".kolla/kolla-build.conf"), "").unwrap();
        std::fs::write(root.join("etc/kolla/kolla-build.conf"), "").unwrap();
        std::fs::write(root.join("etc/kolla.conf"), "").unwrap();
        let dirs = search_dirs(Some(&home), &root);
        assert_eq!(
            default_files(&dirs),
            [
                root.join("etc/kolla.conf"),
                home.join(".kolla/kolla-build.conf")
            ]
        );
        assert_eq!(
            default_dirs(&dirs),
            [root.join("etc/kolla/kolla-build.conf.d")]
        );
    }
}
