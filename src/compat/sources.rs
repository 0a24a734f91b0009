//! kolla's source sections resolved into what the fetch stage fetches, per image.
//!
//! kolla registers the options `type` (url|git|local), `location`, `reference`, `enabled`,
//! `version` and `sha256` (a dict keyed by debian architecture) for every section of its
//! `SOURCES` table (`kolla/common/sources.py`, `sources.yaml` from kolla 23) and for every image.
//! An image's own section gives its `<image>-archive`; the sections named `<image>-plugin-*` and
//! `<image>-additions-*` give its plugins and additions (`kolla_worker.build_image_list`). A
//! section whose `type` is unset gives nothing. The user's file overrides a default option by
//! option; `$name` and `${name}` are interpolated as oslo does: the section's own options first
//! (`${version}`), then the caller's lookup (`$tarballs_base`, `${openstack_branch}`,
//! `${debian_arch}`...).
//!
//! This is pure: no file or network is read here. Where kolla crashes (a plugin section without
//! `type`, a git source without `reference`, a source without `location`) we answer instead:
//! a plugin or addition without `type` is skipped like an image's own section without one, the
//! others are errors naming the image and the section.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::compat::oslo::{self, OsloError};

/// How a source is had (kolla's `type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SourceKind {
    /// Downloaded; the bytes land in the context as they are.
    Url,
    /// Cloned at `reference` and tarred under `<section>-archive-<reference>`.
    Git,
    /// A directory (tarred under its own name) or a file (copied).
    Local,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Url => "url",
            SourceKind::Git => "git",
            SourceKind::Local => "local",
        }
    }
}

/// How kolla tars a directory source, a git checkout and the plugins/additions trees (a field
/// of each row of `kolla.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceTar {
    /// uid/gid 0, user and group `root` (kolla 20-22's `reset_userinfo`).
    Owner,
    /// Also the owner-write bit on every member (kolla 23's `normalize_tarinfo`, which also
    /// sets mtime 0; this tool writes mtime 0 for both).
    Normalized,
}

/// One resolved source section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// The section (`keystone-base`, `horizon-plugin-blazar-dashboard`): the archive is
    /// `<section>-archive` in the image's context.
    pub section: String,
    pub kind: SourceKind,
    /// URL, git remote or local path, interpolated.
    pub location: String,
    /// The git reference (tag, branch or commit); `None` for the other kinds.
    pub reference: Option<String>,
    /// A disabled source is not fetched and gives no archive (kolla skips it).
    pub enabled: bool,
    /// Expected sha256 per debian architecture (`amd64`, `arm64`); empty: not checked.
    pub sha256: BTreeMap<String, String>,
}

/// Everything one image gets from its sections.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImageSources {
    pub image: String,
    /// The image's own section, when it has a `type`.
    pub source: Option<Source>,
    /// `<image>-plugin-*`, sorted by section (kolla takes them in set order).
    pub plugins: Vec<Source>,
    /// `<image>-additions-*`, sorted by section.
    pub additions: Vec<Source>,
}

/// A section kolla would crash on or reject, named with its image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image `{image}`, section [{section}]: {message}")]
pub struct SourceConfigError {
    pub image: String,
    pub section: String,
    pub message: String,
}

/// The raw options of one section, as written (before interpolation). Other keys of kolla's
/// table (`lts_branch` in kolla 23, for its own version bumps) are not source options.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct SectionOptions {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub location: Option<String>,
    pub reference: Option<String>,
    pub enabled: Option<bool>,
    pub version: Option<String>,
    pub sha256: Option<BTreeMap<String, String>>,
}

/// kolla's default `SOURCES` table: section → options.
pub type SourceDefaults = BTreeMap<String, SectionOptions>;

/// The default SOURCES table of the kolla a tree belongs to, read from its installed package
/// (`<package>/common/<sources_defaults>`); `None` when no package was found beside the tree
/// (then only the user's sections give sources).
pub fn defaults_for(
    kolla: &crate::compat::Kolla,
) -> Result<Option<SourceDefaults>, crate::common::error::Error> {
    let Some(package) = kolla.installation.as_ref().and_then(|i| i.package.as_ref()) else {
        return Ok(None);
    };
    load_defaults(&package.join("common"), &kolla.release.sources_defaults).map(Some)
}

/// The default SOURCES table of an installed kolla: `dir` is its `kolla/common/`, `file` the
/// row's `sources_defaults` (`sources.py` or `sources.yaml`).
pub fn load_defaults(
    dir: &Path,
    file: &str,
) -> Result<SourceDefaults, crate::common::error::Error> {
    let path = dir.join(file);
    if file.ends_with(".py") {
        load_defaults_py(&path)
    } else {
        load_defaults_yaml(&path)
    }
}

/// Reads kolla 20-22's `kolla/common/sources.py`: the literal `SOURCES = {...}` (strings, with
/// Python's adjacent-literal concatenation, nested dicts, booleans and comments; nothing is run).
pub fn load_defaults_py(path: &Path) -> Result<SourceDefaults, crate::common::error::Error> {
    let text =
        std::fs::read_to_string(path).map_err(|source| crate::common::error::Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let bad = |message: String| crate::common::error::Error::Config {
        path: path.to_path_buf(),
        message,
    };
    let start = text
        .find("SOURCES = {")
        .ok_or_else(|| bad("no `SOURCES = {` in it".into()))?;
    let tokens =
        py_literal::tokens(&text[start + "SOURCES = ".len()..]).map_err(|e| bad(e.to_string()))?;
    let value = py_literal::parse(&tokens).map_err(|e| bad(e.to_string()))?;
    let json = serde_json::to_value(&value).map_err(|e| bad(e.to_string()))?;
    let raw: BTreeMap<String, serde_json::Value> =
        serde_json::from_value(json).map_err(|e| bad(e.to_string()))?;
    let mut table = SourceDefaults::new();
    for (section, options) in raw {
        let options: SectionOptions =
            serde_json::from_value(options).map_err(|e| bad(format!("[{section}]: {e}")))?;
        table.insert(section, options);
    }
    Ok(table)
}

/// Just enough of Python's literal syntax for kolla's SOURCES dict.
mod py_literal {
    use std::collections::BTreeMap;

    #[derive(Debug, Clone, PartialEq)]
    pub(super) enum Token {
        Str(String),
        Bool(bool),
        Punct(char),
    }

    #[derive(Debug, Clone, PartialEq, serde::Serialize)]
    #[serde(untagged)]
    pub(super) enum Value {
        Str(String),
        Bool(bool),
        Dict(BTreeMap<String, Value>),
    }

    /// Why the SOURCES literal cannot be read (the caller names the file).
    #[derive(Debug, Clone, PartialEq, thiserror::Error)]
    pub(super) enum LiteralError {
        #[error("a string at byte {at} never ends")]
        UnendedString { at: usize },
        #[error("`{0}` is not a literal kolla uses here")]
        UnknownWord(String),
        #[error("unexpected `{found}` at byte {at}")]
        UnexpectedChar { found: char, at: usize },
        #[error("the `{{` of SOURCES is never closed")]
        UnclosedSources,
        #[error("a dict key that is not a string")]
        KeyNotString,
        #[error("no `:` after `{0}`")]
        NoColon(String),
        #[error("unexpected {0:?} in a dict")]
        UnexpectedInDict(Option<Token>),
        #[error("a `(` without its `)`")]
        UnclosedParen,
        #[error("unexpected {0:?}")]
        UnexpectedToken(Option<Token>),
    }

    /// The tokens up to the end of the first balanced `{...}`.
    pub(super) fn tokens(text: &str) -> Result<Vec<Token>, LiteralError> {
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '#' => {
                    for (_, c) in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '\'' | '"' => {
                    let mut s = String::new();
                    loop {
                        match chars.next() {
                            Some((_, '\\')) => {
                                if let Some((_, e)) = chars.next() {
                                    s.push(e);
                                }
                            }
                            Some((_, q)) if q == c => break,
                            Some((_, ch)) => s.push(ch),
                            None => return Err(LiteralError::UnendedString { at }),
                        }
                    }
                    out.push(Token::Str(s));
                }
                '{' | '}' | ':' | ',' | '(' | ')' => {
                    out.push(Token::Punct(c));
                    if c == '{' {
                        depth += 1;
                    } else if c == '}' {
                        depth = depth.saturating_sub(1);
                        if depth == 0 {
                            return Ok(out);
                        }
                    }
                }
                c if c.is_whitespace() => {}
                c if c.is_ascii_alphabetic() => {
                    let mut word = c.to_string();
                    while let Some((_, n)) = chars
                        .peek()
                        .copied()
                        .filter(|(_, n)| n.is_ascii_alphanumeric())
                    {
                        word.push(n);
                        chars.next();
                    }
                    match word.as_str() {
                        "True" => out.push(Token::Bool(true)),
                        "False" => out.push(Token::Bool(false)),
                        other => return Err(LiteralError::UnknownWord(other.to_string())),
                    }
                }
                other => return Err(LiteralError::UnexpectedChar { found: other, at }),
            }
        }
        Err(LiteralError::UnclosedSources)
    }

    pub(super) fn parse(tokens: &[Token]) -> Result<Value, LiteralError> {
        let mut at = 0;
        let value = value(tokens, &mut at)?;
        Ok(value)
    }

    fn value(tokens: &[Token], at: &mut usize) -> Result<Value, LiteralError> {
        match tokens.get(*at) {
            Some(Token::Punct('{')) => {
                *at += 1;
                let mut map = BTreeMap::new();
                loop {
                    if tokens.get(*at) == Some(&Token::Punct('}')) {
                        *at += 1;
                        return Ok(Value::Dict(map));
                    }
                    let Value::Str(key) = value(tokens, at)? else {
                        return Err(LiteralError::KeyNotString);
                    };
                    if tokens.get(*at) != Some(&Token::Punct(':')) {
                        return Err(LiteralError::NoColon(key));
                    }
                    *at += 1;
                    map.insert(key, value(tokens, at)?);
                    match tokens.get(*at) {
                        Some(Token::Punct(',')) => *at += 1,
                        Some(Token::Punct('}')) => {}
                        other => return Err(LiteralError::UnexpectedInDict(other.cloned())),
                    }
                }
            }
            Some(Token::Punct('(')) => {
                *at += 1;
                let inner = value(tokens, at)?;
                if tokens.get(*at) != Some(&Token::Punct(')')) {
                    return Err(LiteralError::UnclosedParen);
                }
                *at += 1;
                Ok(inner)
            }
            Some(Token::Str(_)) => {
                // Adjacent literals are one string.
                let mut s = String::new();
                while let Some(Token::Str(part)) = tokens.get(*at) {
                    s.push_str(part);
                    *at += 1;
                }
                Ok(Value::Str(s))
            }
            Some(Token::Bool(b)) => {
                *at += 1;
                Ok(Value::Bool(*b))
            }
            other => Err(LiteralError::UnexpectedToken(other.cloned())),
        }
    }
}

/// Reads kolla 23's `kolla/common/sources.yaml`.
pub fn load_defaults_yaml(path: &Path) -> Result<SourceDefaults, crate::common::error::Error> {
    let text =
        std::fs::read_to_string(path).map_err(|source| crate::common::error::Error::Read {
            path: path.to_path_buf(),
            source,
        })?;
    let raw: BTreeMap<String, serde_norway::Value> =
        serde_norway::from_str(&text).map_err(|e| crate::common::error::Error::Config {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
    let mut table = SourceDefaults::new();
    for (section, value) in raw {
        // Versions are numbers in places (`version: 1.2`): oslo reads every value as text.
        let value = stringify_scalars(value);
        let options: SectionOptions =
            serde_norway::from_value(value).map_err(|e| crate::common::error::Error::Config {
                path: path.to_path_buf(),
                message: format!("[{section}]: {e}"),
            })?;
        table.insert(section, options);
    }
    Ok(table)
}

fn stringify_scalars(value: serde_norway::Value) -> serde_norway::Value {
    use serde_norway::Value;
    match value {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Mapping(map) => Value::Mapping(
            map.into_iter()
                .map(|(k, v)| {
                    let keep_bool = k.as_str() == Some("enabled");
                    let v = if keep_bool { v } else { stringify_scalars(v) };
                    (k, v)
                })
                .collect(),
        ),
        other => other,
    }
}

/// What [`resolve`] gives: the images' sources, and the sections that could not be resolved
/// (the caller fails those images and their descendants, and builds the rest).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolved {
    pub images: Vec<ImageSources>,
    pub errors: Vec<SourceConfigError>,
}

/// Resolves the sources of `images` from kolla's defaults and the user's sections (raw INI
/// values as [`oslo::raw_values`] gives them: section → option → value, not interpolated).
/// `lookup(name)` gives an option of the `[DEFAULT]` group, interpolated (`tarballs_base`,
/// `locals_base`, `openstack_branch`, `debian_arch`...).
pub fn resolve(
    images: &[String],
    defaults: &SourceDefaults,
    user: &BTreeMap<String, BTreeMap<String, String>>,
    lookup: &mut dyn FnMut(&str) -> Result<String, OsloError>,
) -> Resolved {
    let sections: Vec<&str> = defaults
        .keys()
        .chain(user.keys())
        .map(String::as_str)
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut resolved = Resolved::default();
    for image in images {
        let mut one = ImageSources {
            image: image.clone(),
            ..ImageSources::default()
        };
        let mut failed = false;
        let mut section_source = |section: &str| -> Option<Source> {
            match resolve_section(section, defaults.get(section), user.get(section), lookup) {
                Ok(source) => source,
                Err(error) => {
                    resolved.errors.push(SourceConfigError {
                        image: image.clone(),
                        section: section.to_string(),
                        message: error.to_string(),
                    });
                    failed = true;
                    None
                }
            }
        };
        one.source = section_source(image);
        let plugin = format!("{image}-plugin-");
        let addition = format!("{image}-additions-");
        for section in &sections {
            if section.len() > plugin.len() && section.starts_with(&plugin) {
                one.plugins.extend(section_source(section));
            } else if section.len() > addition.len() && section.starts_with(&addition) {
                one.additions.extend(section_source(section));
            }
        }
        if !failed {
            resolved.images.push(one);
        }
    }
    resolved
}

/// Why one section cannot be resolved (the caller names the image and the section).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum SectionError {
    #[error("`{name}`: {error}")]
    Interpolation {
        name: &'static str,
        error: OsloError,
    },
    #[error("`type = {0}` is not a source type: write url, git or local")]
    UnknownType(String),
    #[error("`type = {}` needs a `location`", .0.as_str())]
    NoLocation(SourceKind),
    #[error("`type = git` needs a `reference` (a tag, branch or commit)")]
    NoReference,
    #[error("`enabled = {0}` is not a boolean: write true or false")]
    NotABoolean(String),
    #[error("`sha256`: {0}")]
    Sha256(DictError),
}

/// A `DictOpt` item without its `:`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{pair}` is not `architecture:sum`")]
struct DictError {
    pair: String,
}

/// One section: the user's options over the defaults, interpolated. `Ok(None)`: no `type`.
fn resolve_section(
    section: &str,
    default: Option<&SectionOptions>,
    user: Option<&BTreeMap<String, String>>,
    lookup: &mut dyn FnMut(&str) -> Result<String, OsloError>,
) -> Result<Option<Source>, SectionError> {
    let raw = |name: &str| -> Option<String> {
        if let Some(value) = user.and_then(|u| u.get(name)) {
            return Some(value.clone());
        }
        let d = default?;
        match name {
            "type" => d.kind.clone(),
            "location" => d.location.clone(),
            "reference" => d.reference.clone(),
            "version" => d.version.clone(),
            "enabled" => d
                .enabled
                .map(|e| if e { "true" } else { "false" }.to_string()),
            "sha256" => d.sha256.as_ref().map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            }),
            _ => None,
        }
    };
    let value = |name: &'static str, lookup: &mut dyn FnMut(&str) -> Result<String, OsloError>| {
        get(section, name, &raw, lookup, 0)
            .map_err(|error| SectionError::Interpolation { name, error })
            .map(|v| v.filter(|v| !v.is_empty()))
    };
    let Some(kind) = value("type", lookup)? else {
        return Ok(None);
    };
    let kind = match kind.as_str() {
        "url" => SourceKind::Url,
        "git" => SourceKind::Git,
        "local" => SourceKind::Local,
        _ => return Err(SectionError::UnknownType(kind)),
    };
    let location = value("location", lookup)?.ok_or(SectionError::NoLocation(kind))?;
    let reference = match kind {
        SourceKind::Git => Some(value("reference", lookup)?.ok_or(SectionError::NoReference)?),
        _ => None,
    };
    let enabled = match value("enabled", lookup)? {
        None => true,
        Some(text) => parse_bool(&text).ok_or(SectionError::NotABoolean(text))?,
    };
    let sha256 = match value("sha256", lookup)? {
        None => BTreeMap::new(),
        Some(text) => parse_dict(&text).map_err(SectionError::Sha256)?,
    };
    Ok(Some(Source {
        section: section.to_string(),
        kind,
        location,
        reference,
        enabled,
        sha256,
    }))
}

/// The source options of a section are looked up in the section; anything else in `[DEFAULT]`.
fn get(
    section: &str,
    name: &str,
    raw: &dyn Fn(&str) -> Option<String>,
    lookup: &mut dyn FnMut(&str) -> Result<String, OsloError>,
    depth: usize,
) -> Result<Option<String>, OsloError> {
    if depth > 16 {
        return Err(format!("`${name}` refers to itself").into());
    }
    let Some(text) = raw(name) else {
        return Ok(None);
    };
    oslo::interpolate(&text, section, &mut |group, option| {
        let option = option.replace('-', "_");
        if group == section
            && matches!(
                option.as_str(),
                "type" | "location" | "reference" | "enabled" | "version" | "sha256"
            )
            && let Some(value) = get(section, &option, raw, lookup, depth + 1)?
        {
            return Ok(value);
        }
        lookup(&option)
    })
    .map(Some)
}

/// oslo's `BoolOpt` words.
fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "1" => Some(true),
        "false" | "no" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// oslo's `DictOpt`: `key:value,key:value`.
fn parse_dict(text: &str) -> Result<BTreeMap<String, String>, DictError> {
    let mut map = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once(':').ok_or_else(|| DictError {
            pair: pair.to_string(),
        })?;
        map.insert(k.trim().to_string(), v.trim().to_string());
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> SourceDefaults {
        let mut d = SourceDefaults::new();
        d.insert(
            "keystone-base".into(),
            SectionOptions {
                kind: Some("url".into()),
                location: Some(
                    "$tarballs_base/openstack/keystone/keystone-${openstack_branch}.tar.gz".into(),
                ),
                ..SectionOptions::default()
            },
        );
        d.insert(
            "etcd".into(),
            SectionOptions {
                kind: Some("url".into()),
                version: Some("3.5.16".into()),
                location: Some("https://example.test/v${version}/etcd-${debian_arch}.tgz".into()),
                sha256: Some([("amd64".to_string(), "aa".to_string())].into()),
                ..SectionOptions::default()
            },
        );
        d.insert(
            "horizon-plugin-b".into(),
            SectionOptions {
                kind: Some("url".into()),
                location: Some("$tarballs_base/b.tar.gz".into()),
                ..SectionOptions::default()
            },
        );
        d
    }

    fn lookup(name: &str) -> Result<String, OsloError> {
        match name {
            "tarballs_base" => Ok("https://tarballs.example".into()),
            "locals_base" => Ok("/srv/src".into()),
            "openstack_branch" => Ok("stable-2025.1".into()),
            "debian_arch" => Ok("amd64".into()),
            _ => Err(format!("`${name}` is not an option kolla-build knows").into()),
        }
    }

    fn user(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
        oslo::raw_values(text)
    }

    #[test]
    fn defaults_are_interpolated_with_the_section_first() {
        let images = vec!["keystone-base".to_string(), "etcd".to_string()];
        let r = resolve(&images, &defaults(), &user(""), &mut lookup);
        assert_eq!(r.errors, []);
        let keystone = r.images[0].source.as_ref().unwrap();
        assert_eq!(
            keystone.location,
            "https://tarballs.example/openstack/keystone/keystone-stable-2025.1.tar.gz"
        );
        assert_eq!(keystone.kind, SourceKind::Url);
        assert!(keystone.enabled);
        let etcd = r.images[1].source.as_ref().unwrap();
        assert_eq!(etcd.location, "https://example.test/v3.5.16/etcd-amd64.tgz");
        assert_eq!(etcd.sha256["amd64"], "aa");
    }

    #[test]
    fn the_users_options_override_one_by_one() {
        let text = "[keystone-base]\ntype = git\nlocation = $locals_base/keystone\n\
                    reference = stable/2025.1\n[etcd]\nversion = 3.6.0\nenabled = no\n";
        let images = vec!["keystone-base".to_string(), "etcd".to_string()];
        let r = resolve(&images, &defaults(), &user(text), &mut lookup);
        assert_eq!(r.errors, []);
        let keystone = r.images[0].source.as_ref().unwrap();
        assert_eq!(keystone.kind, SourceKind::Git);
        assert_eq!(keystone.location, "/srv/src/keystone");
        assert_eq!(keystone.reference.as_deref(), Some("stable/2025.1"));
        let etcd = r.images[1].source.as_ref().unwrap();
        assert_eq!(etcd.location, "https://example.test/v3.6.0/etcd-amd64.tgz");
        assert!(!etcd.enabled);
    }

    #[test]
    fn plugins_and_additions_are_found_by_prefix_and_sorted() {
        let text = "[horizon-plugin-a]\ntype = local\nlocation = /p/a\n\
                    [horizon-additions-x]\ntype = url\nlocation = http://h/x.tar\n\
                    [horizon-plugin-untyped]\nenabled = false\n\
                    [horizon-base-plugin-z]\ntype = local\nlocation = /z\n";
        let images = vec!["horizon".to_string()];
        let r = resolve(&images, &defaults(), &user(text), &mut lookup);
        assert_eq!(r.errors, []);
        let h = &r.images[0];
        assert_eq!(h.source, None);
        let plugins: Vec<&str> = h.plugins.iter().map(|p| p.section.as_str()).collect();
        assert_eq!(plugins, ["horizon-plugin-a", "horizon-plugin-b"]);
        assert_eq!(h.additions[0].section, "horizon-additions-x");
    }

    #[test]
    fn sections_kolla_crashes_on_are_errors_naming_image_and_section() {
        let text = "[a]\ntype = git\nlocation = /r\n[b]\ntype = url\n[c]\ntype = svn\n\
                    location = x\n[d]\ntype = url\nlocation = $nowhere/x\n[e]\ntype = url\n\
                    location = x\nsha256 = amd64\n";
        let images: Vec<String> = ["a", "b", "c", "d", "e", "f"].map(String::from).into();
        let r = resolve(&images, &SourceDefaults::new(), &user(text), &mut lookup);
        let failed: Vec<(&str, &str)> = r
            .errors
            .iter()
            .map(|e| (e.image.as_str(), e.section.as_str()))
            .collect();
        assert_eq!(
            failed,
            [("a", "a"), ("b", "b"), ("c", "c"), ("d", "d"), ("e", "e")]
        );
        assert!(r.errors[0].to_string().contains("needs a `reference`"));
        assert!(r.errors[3].to_string().contains("nowhere"));
        // `f` has no section: no source, no error.
        assert_eq!(r.images.len(), 1);
        assert_eq!(r.images[0].image, "f");
    }

    #[test]
    fn section_errors_name_the_option_and_say_what_to_write() {
        let text = "[a]\ntype = svn\nlocation = x\n[b]\ntype = url\n[c]\ntype = git\n\
                    location = /r\n[d]\ntype = url\nlocation = x\nenabled = maybe\n[e]\n\
                    type = url\nlocation = x\nsha256 = amd64:aa, arm64\n";
        let images: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).into();
        let r = resolve(&images, &SourceDefaults::new(), &user(text), &mut lookup);
        let messages: Vec<String> = r.errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            [
                "image `a`, section [a]: `type = svn` is not a source type: write url, git or local",
                "image `b`, section [b]: `type = url` needs a `location`",
                "image `c`, section [c]: `type = git` needs a `reference` (a tag, branch or commit)",
                "image `d`, section [d]: `enabled = maybe` is not a boolean: write true or false",
                "image `e`, section [e]: `sha256`: `arm64` is not `architecture:sum`",
            ]
        );
        assert_eq!(r.images, []);
    }

    #[test]
    fn a_defaults_literal_kolla_would_not_write_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                "SOURCES = {'a': {'type': 'url'}",
                "the `{` of SOURCES is never closed",
            ),
            (
                "SOURCES = {'a': None}",
                "`None` is not a literal kolla uses here",
            ),
            ("SOURCES = {'a': 'b' ; }", "unexpected `;` at byte 10"),
            ("SOURCES = {'a': 'b}", "a string at byte 6 never ends"),
            ("SOURCES = {'a' 'b'}", "no `:` after `ab`"),
            ("SOURCES = {True: 'b'}", "a dict key that is not a string"),
            ("SOURCES = {'a': ('b' }", "a `(` without its `)`"),
            (
                "SOURCES = {'a': 'b' 'c': 'd'}",
                "unexpected Some(Punct(':')) in a dict",
            ),
            ("SOURCES = {'a': }", "unexpected Some(Punct('}'))"),
        ];
        for (text, message) in cases {
            let path = dir.path().join("sources.py");
            std::fs::write(&path, text).unwrap();
            let error = load_defaults(dir.path(), "sources.py")
                .unwrap_err()
                .to_string();
            assert!(
                error.contains(message) && error.contains("sources.py"),
                "{text}: {error}"
            );
        }
    }

    #[test]
    fn the_defaults_literal_of_kolla_20_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources.py");
        std::fs::write(
            &path,
            "# licence\nimport os\n\nSOURCES = {\n    'openstack-base': {\n        'type': 'url',\n\
             \x20       'location': ('$tarballs_base/openstack/requirements/'\n\
             \x20                    'requirements-${openstack_branch}.tar.gz')},\n\
             \x20   'etcd': {\n        # NOTE: one minor at a time\n        'version': '3.5.16',\n\
             \x20       'type': 'url',\n        'sha256': {\n            'amd64': 'aa',  # noqa\n\
             \x20           'arm64': 'bb'},  # noqa: E501\n        'enabled': False,\n\
             \x20       'location': \"https://x/v${version}\"},\n}\n\nUSERS = {'a': 1}\n",
        )
        .unwrap();
        let table = load_defaults(dir.path(), "sources.py").unwrap();
        assert_eq!(
            table["openstack-base"].location.as_deref(),
            Some("$tarballs_base/openstack/requirements/requirements-${openstack_branch}.tar.gz")
        );
        let etcd = &table["etcd"];
        assert_eq!(etcd.version.as_deref(), Some("3.5.16"));
        assert_eq!(etcd.sha256.as_ref().unwrap()["arm64"], "bb");
        assert_eq!(etcd.enabled, Some(false));
        assert_eq!(etcd.location.as_deref(), Some("https://x/v${version}"));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn the_defaults_file_of_kolla_23_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sources.yaml");
        std::fs::write(
            &path,
            "etcd:\n  version: 3.6\n  type: url\n  sha256:\n    amd64: ab\n  location: x\n\
             gnocchi-base:\n  type: git\n  reference: 4.6.4\n  location: y\n  enabled: false\n",
        )
        .unwrap();
        let table = load_defaults_yaml(&path).unwrap();
        assert_eq!(table["etcd"].version.as_deref(), Some("3.6"));
        assert_eq!(table["etcd"].sha256.as_ref().unwrap()["amd64"], "ab");
        assert_eq!(table["gnocchi-base"].enabled, Some(false));
    }
}
