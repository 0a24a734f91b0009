//! Reads the images a rendered Dockerfile is built from. Unlike kolla's `split(' ')[1]` on the first
//! `FROM`, this follows the Dockerfile grammar: line continuations, `--platform=…`, `AS name`,
//! multi-stage files (a `FROM` naming an earlier stage is not an image) and `ARG`s declared
//! before the first `FROM` (`FROM ${BASE}`), with build args overriding their defaults.

use std::collections::BTreeMap;

/// One `FROM` of a Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// The image reference with ARGs substituted.
    pub image: String,
    /// Whether it names an earlier build stage rather than an image.
    pub is_stage: bool,
}

/// Every `FROM` of `dockerfile` in order.
pub fn froms(dockerfile: &str, build_args: &BTreeMap<String, String>) -> Vec<From> {
    let mut args: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<String> = Vec::new();
    let mut result = Vec::new();
    for instruction in instructions(dockerfile) {
        let mut words = instruction.split_whitespace();
        let Some(keyword) = words.next() else {
            continue;
        };
        if keyword.eq_ignore_ascii_case("ARG") && result.is_empty() {
            for decl in words {
                let (name, default) = match decl.split_once('=') {
                    Some((name, value)) => (name, unquote(value)),
                    None => (decl, String::new()),
                };
                let value = build_args.get(name).cloned().unwrap_or(default);
                args.insert(name.to_string(), value);
            }
        } else if keyword.eq_ignore_ascii_case("FROM") {
            let mut words = words.skip_while(|w| w.starts_with("--"));
            let Some(image) = words.next() else { continue };
            let image = substitute(image, &args);
            let is_stage = stages.iter().any(|s| s.eq_ignore_ascii_case(&image));
            if let (Some(as_kw), Some(stage)) = (words.next(), words.next()) {
                if as_kw.eq_ignore_ascii_case("AS") {
                    stages.push(stage.to_string());
                }
            }
            result.push(From { image, is_stage });
        }
    }
    result
}

/// Logical instructions: comments and blank lines dropped, `\` continuations joined.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || (trimmed.is_empty() && current.is_empty()) {
            continue;
        }
        match trimmed.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(trimmed);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    if !current.trim().is_empty() {
        out.push(current);
    }
    out
}

fn unquote(value: &str) -> String {
    let v = value.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|s| s.strip_suffix(q)) {
            return inner.to_string();
        }
    }
    v.to_string()
}

/// `$NAME`, `${NAME}`, `${NAME:-default}` and `${NAME:+alt}` as BuildKit expands them in FROM.
fn substitute(word: &str, args: &BTreeMap<String, String>) -> String {
    let re = regex::Regex::new(
        r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)(?::([-+])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))",
    )
    .expect("valid regex");
    re.replace_all(word, |caps: &regex::Captures<'_>| {
        let name = caps.get(1).or(caps.get(4)).map_or("", |m| m.as_str());
        let value = args.get(name).filter(|v| !v.is_empty());
        match (caps.get(2).map(|m| m.as_str()), value) {
            (Some("-"), None) => caps[3].to_string(),
            (Some("+"), Some(_)) => caps[3].to_string(),
            (Some("+"), None) => String::new(),
            (_, value) => value.cloned().unwrap_or_default(),
        }
    })
    .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn images(text: &str) -> Vec<(String, bool)> {
        froms(text, &BTreeMap::new())
            .into_iter()
            .map(|f| (f.image, f.is_stage))
            .collect()
    }

    #[test]
    fn plain_from() {
        assert_eq!(
            images("# c\nFROM kolla/base:1\nRUN x\n"),
            [("kolla/base:1".into(), false)]
        );
    }

    #[test]
    fn platform_flag_and_stage_name() {
        assert_eq!(
            images("FROM --platform=linux/amd64 kolla/base:1 AS build\nFROM build\n"),
            [("kolla/base:1".into(), false), ("build".into(), true)]
        );
    }

    #[test]
    fn continuation_and_lowercase_keyword() {
        assert_eq!(
            images("from \\\n  kolla/base:1 \\\n  as b\n"),
            [("kolla/base:1".into(), false)]
        );
    }

    #[test]
    fn args_before_from_are_substituted_and_build_args_win() {
        let text = "ARG BASE=kolla/base\nARG TAG=\"1\"\nFROM ${BASE}:$TAG\nFROM ${MISSING:-debian}:bookworm\n";
        assert_eq!(images(text)[0].0, "kolla/base:1");
        assert_eq!(images(text)[1].0, "debian:bookworm");
        let args = BTreeMap::from([("TAG".to_string(), "2".to_string())]);
        assert_eq!(froms(text, &args)[0].image, "kolla/base:2");
    }
}
