//! Values printed the way Python prints them: kolla's templates and its `handle_repos` run in
//! Python, and our output must equal theirs byte for byte.

use minijinja::value::{Value, ValueKind};

/// Python's `str()` of a value, as Jinja2 prints it (and kolla's Python writes repos.yaml
/// values).
pub fn py_str(value: &Value) -> String {
    match value.kind() {
        ValueKind::Bool if value.is_true() => "True".into(),
        ValueKind::Bool => "False".into(),
        ValueKind::None => "None".into(),
        ValueKind::Seq => {
            let items: Vec<String> = value
                .try_iter()
                .map(|items| items.map(|v| py_repr(&v)).collect())
                .unwrap_or_default();
            format!("[{}]", items.join(", "))
        }
        ValueKind::Map => {
            let items: Vec<String> = value
                .try_iter()
                .map(|keys| {
                    keys.map(|k| {
                        let v = value.get_item(&k).unwrap_or_default();
                        format!("{}: {}", py_repr(&k), py_repr(&v))
                    })
                    .collect()
                })
                .unwrap_or_default();
            format!("{{{}}}", items.join(", "))
        }
        _ => value.to_string(),
    }
}

/// Python's `repr()`: strings quoted the way Python quotes them.
pub fn py_repr(value: &Value) -> String {
    match value.as_str() {
        Some(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\t' => out.push_str("\\t"),
                    '\r' => out.push_str("\\r"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        None => py_str(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn str_and_repr_follow_python() {
        assert_eq!(py_str(&Value::from(true)), "True");
        assert_eq!(py_str(&Value::from(())), "None");
        assert_eq!(py_str(&Value::from(1.0)), "1.0");
        assert_eq!(py_str(&Value::from(vec!["a", "it's"])), "['a', \"it's\"]");
        assert_eq!(py_repr(&Value::from("x")), "'x'");
    }
}
