//! The Docker reference grammar (distribution/reference), checked before any image is named, so a
//! bad namespace, prefix, tag, registry or image directory is an error naming the value instead
//! of an engine refusal (or a silently flattened graph) later.
//!
//! ```text
//! reference       := name [ ":" tag ]
//! name            := [domain "/"] path-component ["/" path-component]*   (at most 255 bytes)
//! domain          := domain-component ["." domain-component]* [":" port-number]
//! domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
//! path-component  := alpha-numeric [separator alpha-numeric]*
//! alpha-numeric   := /[a-z0-9]+/
//! separator       := /[_.]|__|[-]*/
//! tag             := /[\w][\w.-]{0,127}/
//! ```

crate::common::error::message_error!(
    /// An image reference (or part of one) that breaks the distribution grammar.
    ReferenceError
);

/// The longest name (domain and path) a registry accepts.
pub const MAX_NAME: usize = 255;

fn is_alnum(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// One `/`-separated part of a repository path: lower-case letters and digits, separated by one
/// `.` or `_`, two `_`, or any number of `-`.
pub fn path_component(value: &str) -> Result<(), ReferenceError> {
    let rule = "lower-case letters and digits, separated by `.`, `_`, `__` or dashes, \
                starting and ending with a letter or digit";
    let chars: Vec<char> = value.chars().collect();
    if chars.is_empty() {
        return Err(format!("an empty path component; expected {rule}").into());
    }
    let mut i = 0;
    let mut expect_alnum = true;
    while i < chars.len() {
        if expect_alnum {
            if !is_alnum(chars[i]) {
                return Err(bad_char(value, chars[i], rule).into());
            }
            while i < chars.len() && is_alnum(chars[i]) {
                i += 1;
            }
            expect_alnum = false;
        } else {
            let start = i;
            match chars[i] {
                '.' => i += 1,
                '_' => {
                    i += 1;
                    if i < chars.len() && chars[i] == '_' {
                        i += 1;
                    }
                }
                '-' => {
                    while i < chars.len() && chars[i] == '-' {
                        i += 1;
                    }
                }
                other => return Err(bad_char(value, other, rule).into()),
            }
            if i == chars.len() {
                return Err(format!(
                    "`{value}` ends with `{}`; expected {rule}",
                    chars[start..].iter().collect::<String>()
                )
                .into());
            }
            expect_alnum = true;
        }
    }
    Ok(())
}

fn bad_char(value: &str, c: char, rule: &str) -> String {
    if c.is_ascii_uppercase() {
        format!("`{value}` has the upper-case `{c}`; expected {rule}")
    } else {
        format!("`{value}` has `{}`; expected {rule}", c.escape_default())
    }
}

/// A repository path of one or more components (`kolla`, `team/kolla`).
pub fn path(value: &str) -> Result<(), ReferenceError> {
    value.split('/').try_for_each(path_component)
}

/// A registry: `host`, `host:port`, an IPv4 address, or `[v6]:port`.
pub fn domain(value: &str) -> Result<(), ReferenceError> {
    let rule = "a host name (letters, digits, `-` inside, `.` between parts) or an IP address, \
                with an optional `:port`";
    let (host, port) = match value.rsplit_once(':') {
        Some((host, port)) if !port.contains(']') => (host, Some(port)),
        _ => (value, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) || port.len() > 5 {
            return Err(format!("`{value}` has the port `{port}`; expected {rule}").into());
        }
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return if v6.parse::<std::net::Ipv6Addr>().is_ok() {
            Ok(())
        } else {
            Err(format!("`{value}` is not a valid IPv6 address; expected {rule}").into())
        };
    }
    let component_ok = |c: &str| {
        !c.is_empty()
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '-')
            && !c.starts_with('-')
            && !c.ends_with('-')
    };
    if host.is_empty() || !host.split('.').all(component_ok) {
        return Err(format!("`{value}` is not a valid registry; expected {rule}").into());
    }
    Ok(())
}

/// A tag: 1 to 128 word characters, `.` or `-`, not starting with `.` or `-`.
pub fn tag(value: &str) -> Result<(), ReferenceError> {
    let ok = !value.is_empty()
        && value.len() <= 128
        && !value.starts_with(['.', '-'])
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{value}`: a Docker tag is 1-128 characters of [A-Za-z0-9_.-], not starting with `.` or `-`"
        ).into())
    }
}

/// A whole name (`registry/namespace/prefixname`), including the length limit.
pub fn name(value: &str) -> Result<(), ReferenceError> {
    if value.len() > MAX_NAME {
        return Err(format!(
            "`{value}` is {} bytes long; a Docker image name is at most {MAX_NAME}",
            value.len()
        )
        .into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each of `good` passes `check`, each of `bad` fails it.
    #[track_caller]
    fn assert_grammar(check: fn(&str) -> Result<(), ReferenceError>, good: &[&str], bad: &[&str]) {
        for value in good {
            assert!(check(value).is_ok(), "{value}");
        }
        for value in bad {
            assert!(check(value).is_err(), "{value}");
        }
    }

    #[test]
    fn path_components_follow_the_grammar() {
        assert_grammar(
            path_component,
            &[
                "kolla",
                "debian-binary-keystone",
                "a.b",
                "a_b",
                "a__b",
                "a---b",
                "0x",
            ],
            &[
                "", "UP", "a b", "-a", "a-", "a..b", "a___b", "a/b", "é", ".a", "a_",
            ],
        );
        let err = path_component("UP PER-x").unwrap_err();
        assert!(
            err.contains("`UP PER-x`") && err.contains("upper-case `U`"),
            "{err}"
        );
    }

    #[test]
    fn domains_tags_and_paths() {
        assert_grammar(
            domain,
            &[
                "127.0.0.1:4000",
                "registry.example.com",
                "localhost",
                "[::1]:5000",
                "Reg-1.io",
            ],
            &[
                "",
                "a_b.io",
                "-a.io",
                "host:",
                "host:port",
                "a..b",
                "[zz]:1",
            ],
        );
        assert_grammar(tag, &["2024.1", "_x"], &["-x", "", &"a".repeat(129)]);
        assert_grammar(path, &["team/kolla"], &["team//kolla"]);
        assert_grammar(name, &["a/b"], &[&"a".repeat(256)]);
    }
}
