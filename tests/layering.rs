//! The shape of `src/`, read from the source (a tidy test, as rust-analyzer's): one folder per
//! stage, data flowing one way, a module may use its own stage and the stages before it, never
//! a later one, and no two modules may need each other (docs/ARCHITECTURE.md); only the
//! reporter writes to the terminal; errors are typed (no `Result<_, String>`); no file holds
//! more than 800 lines of non-test code.
//!
//! Every file under `src/` is read whole, `main.rs` and `lib.rs` included; only its test
//! modules (`#[cfg(test)] mod tests { ... }`, found by counting braces, or `#[cfg(test)] mod
//! tests;` in a file of its own), comments and literals are left out. Each check is a function
//! over one file's text, with a test of its own below that feeds it a small sample and sees it
//! fire.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// The stages in the order data flows; `app` (the top) may use all of them.
const STAGES: &[&str] = &[
    "common", "report", "tree", "config", "compat", "settings", "render", "graph", "prepare",
    "fetch", "engine", "publish", "build", "app",
];

/// The most lines of non-test code a file may hold.
const MAX_LINES: usize = 800;

/// Files still over `MAX_LINES` while their split is under way (issue 25): the lead empties this
/// list after merging the splits. An entry for a file that is no longer over fails the check too,
/// so the list cannot go stale.
const OVER_800_PENDING: &[&str] = &[];

/// The terminal writes outside `src/report/` that are meant, each (file, text of the line, why).
/// Each must be found exactly once: a second write of the same kind, or a removed one, fails.
const TERMINAL_WRITES_ALLOWED: &[(&str, &str, &str)] = &[
    (
        "app.rs",
        "crate::report::output::eprintln(&error_text(err));",
        "the run's last error line",
    ),
    (
        "app.rs",
        "let mut stdout = std::io::stdout().lock();",
        "the listings (--list-images, --list-dependencies) are the command's own output",
    ),
    (
        "main.rs",
        "eprintln!(",
        "the panic hook's last line, after the library itself panicked",
    ),
];

/// What writes to the terminal: the print macros, the handles, the reporter's low-level writes.
const TERMINAL_WRITES: &[&str] = &[
    "eprintln!",
    "eprint!",
    "println!",
    "print!(",
    "output::eprint",
    "output::println",
    "stderr()",
    "stdout()",
];

/// One file of `src/`: its path below `src/` and its non-test code.
struct Source {
    rel: String,
    code: NonTest,
}

fn sources() -> Vec<Source> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    let all: Vec<Source> = files
        .iter()
        .map(|file| Source {
            rel: file
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .into_owned(),
            code: non_test(&std::fs::read_to_string(file).unwrap()),
        })
        .collect();
    let test_files: Vec<String> = all
        .iter()
        .flat_map(|s| test_module_files(&s.rel, &s.code.text))
        .collect();
    all.into_iter()
        .filter(|s| !test_files.iter().any(|t| in_test_file(&s.rel, t)))
        .collect()
}

/// The test modules a file declares as files of their own (`#[cfg(test)] mod tests;`), as
/// paths below `src/` without `.rs`: `publish/export.rs` declaring `tests` gives
/// `publish/export/tests` (that file, or that folder's `mod.rs` and all under it).
fn test_module_files(rel: &str, code: &str) -> Vec<String> {
    let declared = Regex::new(
        r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+(\w+)\s*;",
    )
    .unwrap();
    let path = Path::new(rel);
    let dir = match path.file_name().and_then(|n| n.to_str()) {
        Some("mod.rs" | "lib.rs" | "main.rs") => path.parent().unwrap().to_path_buf(),
        _ => path.with_extension(""),
    };
    declared
        .captures_iter(code)
        .map(|c| dir.join(&c[1]).to_string_lossy().into_owned())
        .collect()
}

/// Whether `rel` is the test module file `test` (see `test_module_files`) or lies under it.
fn in_test_file(rel: &str, test: &str) -> bool {
    rel == format!("{test}.rs") || rel.starts_with(&format!("{test}/"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `build/mod.rs` → `build`, `build/schedule.rs` → `build::schedule`; `lib.rs` and `main.rs`
/// are no module of a stage.
fn module_of(rel: &str) -> Option<String> {
    let parts: Vec<String> = Path::new(rel)
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    match parts.as_slice() {
        [one] if one == "lib" || one == "main" => None,
        _ => Some(parts.join("::")),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading a file: comments and literals blanked, test modules cut out.

/// A file's non-test code: comments, string and character literals blanked (so a brace or a
/// `println!` in a string counts for nothing), test modules blanked; line numbers kept.
struct NonTest {
    /// The code, line for line as in the file.
    text: String,
    /// Lines outside test modules (blank and comment lines included: a reader reads them).
    lines: usize,
    /// The file as written, for messages.
    original: String,
}

impl NonTest {
    /// Line `n` (from 1) as written.
    fn line(&self, n: usize) -> String {
        self.original
            .lines()
            .nth(n - 1)
            .unwrap_or_default()
            .trim()
            .to_string()
    }
}

fn non_test(file: &str) -> NonTest {
    let masked = mask_comments_and_literals(file);
    let spans = test_module_spans(&masked);
    let chars: Vec<char> = masked.chars().collect();
    let in_test = |at: usize| {
        spans
            .iter()
            .any(|(start, end)| (*start..*end).contains(&at))
    };
    let text: String = chars
        .iter()
        .enumerate()
        .map(|(at, c)| if *c != '\n' && in_test(at) { ' ' } else { *c })
        .collect();
    // A line is test code when it starts and ends inside a test module.
    let mut lines = 0;
    let mut start = 0;
    for line in masked.split('\n') {
        let len = line.chars().count();
        let first = line.chars().take_while(|c| c.is_whitespace()).count();
        let test_line = in_test(start + first) && (len == first || in_test(start + len - 1));
        if !(test_line || (start + len == chars.len() && len == 0)) {
            lines += 1;
        }
        start += len + 1;
    }
    NonTest {
        text,
        lines,
        original: file.to_string(),
    }
}

/// `text` with the contents of comments, strings (raw and byte ones too) and character literals
/// replaced by spaces, newlines kept: what is left is code, in the same places.
fn mask_comments_and_literals(text: &str) -> String {
    let c: Vec<char> = text.chars().collect();
    let mut out = c.clone();
    let blank = |out: &mut Vec<char>, from: usize, to: usize| {
        for ch in &mut out[from..to] {
            if *ch != '\n' {
                *ch = ' ';
            }
        }
    };
    let ident = |ch: char| ch.is_alphanumeric() || ch == '_';
    let mut i = 0;
    while i < c.len() {
        let next = c.get(i + 1).copied();
        if c[i] == '/' && next == Some('/') {
            let end = (i..c.len()).find(|&j| c[j] == '\n').unwrap_or(c.len());
            blank(&mut out, i, end);
            i = end;
        } else if c[i] == '/' && next == Some('*') {
            // Block comments nest in Rust.
            let (mut depth, mut j) = (0, i);
            while j < c.len() {
                if c[j] == '/' && c.get(j + 1) == Some(&'*') {
                    depth += 1;
                    j += 2;
                } else if c[j] == '*' && c.get(j + 1) == Some(&'/') {
                    depth -= 1;
                    j += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    j += 1;
                }
            }
            blank(&mut out, i, j);
            i = j;
        } else if c[i] == 'r'
            && (i == 0 || !ident(c[i - 1]) || (c[i - 1] == 'b' && (i < 2 || !ident(c[i - 2]))))
            && matches!(next, Some('"' | '#'))
        {
            // A raw string r"..." or r#"..."# (not a raw identifier r#name).
            let hashes = c[i + 1..].iter().take_while(|ch| **ch == '#').count();
            if c.get(i + 1 + hashes) != Some(&'"') {
                i += 1 + hashes;
                continue;
            }
            let body = i + 2 + hashes;
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            let close: Vec<char> = close.chars().collect();
            let end = (body..c.len())
                .find(|&j| c[j..].starts_with(&close))
                .unwrap_or(c.len());
            blank(&mut out, body, end);
            i = end + close.len();
        } else if c[i] == '"' {
            let mut j = i + 1;
            while j < c.len() && c[j] != '"' {
                j += if c[j] == '\\' { 2 } else { 1 };
            }
            blank(&mut out, i + 1, j.min(c.len()));
            i = j + 1;
        } else if c[i] == '\'' {
            // A character literal ('x', '\n', '\u{7b}'), else a lifetime or a label ('a).
            let end = if next == Some('\\') {
                (i + 3..c.len()).find(|&j| c[j] == '\'')
            } else if c.get(i + 2) == Some(&'\'') {
                Some(i + 2)
            } else {
                None
            };
            match end {
                Some(end) => {
                    blank(&mut out, i + 1, end);
                    i = end + 1;
                }
                None => i += 1,
            }
        } else {
            i += 1;
        }
    }
    out.into_iter().collect()
}

/// Where the test modules of masked code are, as char ranges from their `#[cfg(test)]` to their
/// closing brace.
fn test_module_spans(masked: &str) -> Vec<(usize, usize)> {
    let head = Regex::new(
        r"#\[cfg\(test\)\]\s*(?:#\[[^\]]*\]\s*)*(?:pub(?:\([^)]*\))?\s+)?mod\s+\w+\s*\{",
    )
    .unwrap();
    let chars: Vec<char> = masked.chars().collect();
    let mut spans = Vec::new();
    for found in head.find_iter(masked) {
        let start = masked[..found.start()].chars().count();
        let open = masked[..found.end()].chars().count() - 1;
        let mut depth = 0;
        let mut end = chars.len();
        for (at, ch) in chars.iter().enumerate().skip(open) {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        spans.push((start, end));
    }
    spans
}

// ---------------------------------------------------------------------------------------------
// The checks: each takes code and says what is wrong.

/// Every `crate::a::b` path in `code`, as the longest known module it names.
fn used_modules(code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let path: String = code[at + "crate::".len()..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        let segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
        let found = (1..=segments.len())
            .rev()
            .map(|n| segments[..n].join("::"))
            .find(|candidate| known.contains(candidate));
        if let Some(module) = found {
            used.insert(module);
        }
    }
    used
}

fn stage_rank(module: &str) -> usize {
    let stage = module.split("::").next().unwrap();
    STAGES
        .iter()
        .position(|s| *s == stage)
        .unwrap_or_else(|| panic!("module `{module}` is in no stage: add its folder to STAGES"))
}

/// Each stage module and the modules its non-test code uses.
fn dependencies(sources: &[Source]) -> BTreeMap<String, BTreeSet<String>> {
    let modules: BTreeMap<String, &Source> = sources
        .iter()
        .filter_map(|s| module_of(&s.rel).map(|m| (m, s)))
        .collect();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, source)| {
            let mut used = used_modules(&source.code.text, &known);
            used.remove(module);
            (module.clone(), used)
        })
        .collect()
}

fn upward_uses(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut wrong = Vec::new();
    for (module, used) in deps {
        for target in used {
            if stage_rank(target) > stage_rank(module) {
                wrong.push(format!("{module} uses {target}"));
            }
        }
    }
    wrong
}

/// The import cycles, found depth-first with a stack of the modules being visited: an edge back
/// into the stack closes a cycle.
fn cycles(deps: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        module: &str,
        deps: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        cycles: &mut Vec<String>,
    ) {
        if done.contains(module) {
            return;
        }
        if let Some(at) = stack.iter().position(|m| m == module) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(module.to_string());
            cycles.push(cycle.join(" → "));
            return;
        }
        stack.push(module.to_string());
        for next in deps.get(module).into_iter().flatten() {
            visit(next, deps, stack, done, cycles);
        }
        stack.pop();
        done.insert(module.to_string());
    }
    let mut found = Vec::new();
    let mut done = BTreeSet::new();
    for module in deps.keys() {
        visit(module, deps, &mut Vec::new(), &mut done, &mut found);
    }
    found
}

/// The terminal writes of a file outside `report/`, as (line number, line).
fn terminal_writes(rel: &str, code: &NonTest) -> Vec<(usize, String)> {
    if rel.starts_with("report/") {
        return Vec::new();
    }
    code.text
        .lines()
        .enumerate()
        .filter(|(_, line)| TERMINAL_WRITES.iter().any(|w| line.contains(w)))
        .map(|(n, _)| (n + 1, code.line(n + 1)))
        .collect()
}

/// The writes of `found` (file, line number, line) no entry of `allowed` covers, and the entries
/// not found exactly once.
fn unallowed_writes(
    found: &[(String, usize, String)],
    allowed: &[(&str, &str, &str)],
) -> Vec<String> {
    let mut wrong: Vec<String> = found
        .iter()
        .filter(|(rel, _, line)| !allowed.iter().any(|(f, l, _)| f == rel && l == line))
        .map(|(rel, n, line)| format!("{rel}:{n}: {line}"))
        .collect();
    for (file, line, why) in allowed {
        let times = found
            .iter()
            .filter(|(rel, _, l)| rel == file && l == line)
            .count();
        if times != 1 {
            wrong.push(format!(
                "{file}: `{line}` ({why}) is allowed once, found {times} times"
            ));
        }
    }
    wrong
}

/// The lines of `code` with a `Result` whose error type is `String`, as (line number, line).
fn string_errors(code: &NonTest) -> Vec<(usize, String)> {
    let (code, original) = (&code.text, code);
    let chars: Vec<char> = code.chars().collect();
    let mut found = BTreeSet::new();
    for (at, _) in code.match_indices("Result<") {
        let at = code[..at].chars().count();
        if at > 0 && (chars[at - 1].is_alphanumeric() || chars[at - 1] == '_') {
            continue;
        }
        // The type arguments, split at the commas of the outer level (an `->` inside is no `>`).
        let mut args = vec![String::new()];
        let mut depth = 0;
        for (i, ch) in chars.iter().enumerate().skip(at + "Result<".len()) {
            match ch {
                '<' | '(' | '[' => depth += 1,
                '>' if chars[i - 1] == '-' => {}
                '>' | ')' | ']' if depth == 0 => break,
                '>' | ')' | ']' => depth -= 1,
                ',' if depth == 0 => {
                    args.push(String::new());
                    continue;
                }
                _ => {}
            }
            args.last_mut().unwrap().push(*ch);
        }
        let error = args
            .get(1)
            .map(|e| e.split_whitespace().collect::<String>());
        if matches!(
            error.as_deref(),
            Some("String" | "string::String" | "std::string::String")
        ) {
            found.insert(chars[..at].iter().filter(|c| **c == '\n').count());
        }
    }
    found
        .into_iter()
        .map(|n| (n + 1, original.line(n + 1)))
        .collect()
}

/// The files over `MAX_LINES` not in `pending`, and the entries of `pending` no longer over.
fn too_long(lengths: &[(String, usize)], pending: &[&str]) -> Vec<String> {
    let mut wrong: Vec<String> = lengths
        .iter()
        .filter(|(rel, lines)| *lines > MAX_LINES && !pending.contains(&rel.as_str()))
        .map(|(rel, lines)| format!("{rel}: {lines} lines (split it by concept)"))
        .collect();
    for rel in pending {
        match lengths.iter().find(|(r, _)| r == rel) {
            Some((_, lines)) if *lines > MAX_LINES => {}
            Some((_, lines)) => wrong.push(format!(
                "{rel}: {lines} lines, no longer over: remove it from OVER_800_PENDING"
            )),
            None => wrong.push(format!(
                "{rel}: no such file: remove it from OVER_800_PENDING"
            )),
        }
    }
    wrong
}

/// Whether a file names the Docker engine rather than the `Engine` trait.
fn names_the_docker_engine(rel: &str, code: &str) -> bool {
    let may = rel.starts_with("engine/") || rel == "build/engines.rs";
    !may && (code.contains("DockerEngine") || code.contains("bollard"))
}

// ---------------------------------------------------------------------------------------------
// The checks over `src/`.

#[test]
fn no_stage_uses_a_later_stage() {
    let wrong = upward_uses(&dependencies(&sources()));
    assert!(
        wrong.is_empty(),
        "imports against the flow ({}):\n  {}",
        STAGES.join(" → "),
        wrong.join("\n  ")
    );
}

#[test]
fn no_two_modules_need_each_other() {
    let found = cycles(&dependencies(&sources()));
    assert!(found.is_empty(), "import cycles:\n  {}", found.join("\n  "));
}

#[test]
fn only_the_reporter_writes_to_the_terminal() {
    // Everything a run says goes through `report` (bars on a terminal, plain lines elsewhere);
    // TERMINAL_WRITES_ALLOWED names the few writes of the command's own.
    let found: Vec<(String, usize, String)> = sources()
        .iter()
        .flat_map(|s| {
            terminal_writes(&s.rel, &s.code)
                .into_iter()
                .map(|(n, line)| (s.rel.clone(), n, line))
        })
        .collect();
    let wrong = unallowed_writes(&found, TERMINAL_WRITES_ALLOWED);
    assert!(
        wrong.is_empty(),
        "terminal writes outside the reporter (send them through `report`):\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn errors_are_typed_not_strings() {
    let wrong: Vec<String> = sources()
        .iter()
        .flat_map(|s| {
            string_errors(&s.code)
                .into_iter()
                .map(|(n, line)| format!("{}:{n}: {line}", s.rel))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "`Result<_, String>` outside tests (give the stage a typed error that names the thing \
         and says what to do):\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn no_file_is_over_800_lines_of_non_test_code() {
    let lengths: Vec<(String, usize)> = sources()
        .iter()
        .map(|s| (s.rel.clone(), s.code.lines))
        .collect();
    let wrong = too_long(&lengths, OVER_800_PENDING);
    assert!(
        wrong.is_empty(),
        "files over {MAX_LINES} lines of non-test code:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn only_the_engine_and_the_place_that_connects_name_the_docker_engine() {
    // Every engine call goes through the `Engine` trait (so the fake engine can stand in for
    // it); the concrete engine is named where it is implemented and where the run connects.
    let wrong: Vec<String> = sources()
        .into_iter()
        .filter(|s| names_the_docker_engine(&s.rel, &s.code.text))
        .map(|s| s.rel)
        .collect();
    assert!(
        wrong.is_empty(),
        "name the `Engine` trait, not the Docker engine or bollard, in:\n  {}",
        wrong.join("\n  ")
    );
}

// ---------------------------------------------------------------------------------------------
// The checks must be able to fail: each on a small made-up sample.

#[test]
fn reading_a_file_leaves_out_test_modules_comments_and_literals_only() {
    let file = r#"use crate::compat::Kolla;
// use crate::common::types::X;
fn f() { let s = "}}}"; let c = '}'; let r = r"{"; }

#[cfg(test)]
fn helper() -> Result<(), String> { Ok(()) }

#[cfg(test)]
mod tests {
    fn g() { let s = "{{"; let c = '{'; println!("{}", '\''); }
}

fn after() { println!("hi"); }
"#;
    let code = non_test(file);
    let lines: Vec<&str> = code.text.lines().collect();
    assert_eq!(lines[0], "use crate::compat::Kolla;");
    assert!(lines[1].trim().is_empty(), "a comment is blanked");
    assert_eq!(lines[2].matches('}').count(), 1, "{}", lines[2]);
    // A test helper outside a test module is read; the test module is not, and what follows it is.
    assert!(lines[5].contains("fn helper"));
    assert!(
        lines[7..11].iter().all(|l| l.trim().is_empty()),
        "{lines:?}"
    );
    assert!(lines[12].contains("fn after() { println!"));
    assert_eq!(code.lines, 13 - 4, "13 lines, 4 of them the test module");
}

#[test]
fn a_test_module_in_a_file_of_its_own_is_left_out() {
    let tests = test_module_files("publish/export.rs", "mod blob;\n#[cfg(test)]\nmod tests;\n");
    assert_eq!(tests, ["publish/export/tests"]);
    assert!(in_test_file("publish/export/tests.rs", &tests[0]));
    assert!(in_test_file("publish/export/tests/mod.rs", &tests[0]));
    assert!(!in_test_file("publish/export/blob.rs", &tests[0]));
    assert_eq!(
        test_module_files("build/mod.rs", "#[cfg(test)]\nmod fake;"),
        ["build/fake"]
    );
    assert!(test_module_files("lib.rs", "pub mod app;").is_empty());
}

#[test]
fn the_stage_checks_see_an_upward_use_and_a_cycle() {
    let known: BTreeSet<String> = ["tree::repos", "compat", "common::types"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let code = non_test(
        "use crate::compat::Kolla;\n// use crate::common::types::X;\nfn f() {}\n\
         #[cfg(test)]\nmod tests { use crate::common::types::X; }",
    );
    let used = used_modules(&code.text, &known);
    assert_eq!(used, BTreeSet::from(["compat".to_string()]));
    let deps = BTreeMap::from([
        ("tree::repos".to_string(), used),
        (
            "compat".to_string(),
            BTreeSet::from(["tree::repos".to_string()]),
        ),
    ]);
    assert_eq!(upward_uses(&deps), ["tree::repos uses compat"]);
    assert_eq!(cycles(&deps), ["compat → tree::repos → compat"]);
}

#[test]
fn the_terminal_check_sees_writes_and_holds_allowances_to_once() {
    let code = non_test(
        "fn f() {\n    let out = std::io::stdout();\n    println!(\"x\");\n    \
         let s = \"eprintln!\";\n}\n",
    );
    let found: Vec<(String, usize, String)> = terminal_writes("graph/listing.rs", &code)
        .into_iter()
        .map(|(n, line)| ("graph/listing.rs".to_string(), n, line))
        .collect();
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(terminal_writes("report/output.rs", &code).is_empty());
    let allowed = [(
        "graph/listing.rs",
        "let out = std::io::stdout();",
        "a listing",
    )];
    assert_eq!(
        unallowed_writes(&found, &allowed),
        ["graph/listing.rs:3: println!(\"x\");"]
    );
    let unused = [("app.rs", "eprintln!(", "gone")];
    assert_eq!(unallowed_writes(&[], &unused).len(), 1);
}

#[test]
fn the_error_check_sees_a_string_error_anywhere_in_a_type() {
    let code = non_test(
        "fn a() -> Result<Vec<String>, String> {}\n\
         fn b() -> std::result::Result<(), std::string::String> {}\n\
         fn c() -> Result<Box<dyn Fn(u8) -> u8>, String> {}\n\
         fn d() -> Result<String> {}\nfn e() -> io::Result<String> {}\n\
         fn f() -> Result<String, Error> {}\nfn g() -> MyResult<u8, String> {}\n\
         // fn h() -> Result<(), String>\n",
    );
    let lines: Vec<usize> = string_errors(&code).iter().map(|(n, _)| *n).collect();
    assert_eq!(lines, [1, 2, 3]);
}

#[test]
fn the_length_check_sees_a_long_file_and_a_stale_allowance() {
    let long = format!(
        "{}#[cfg(test)]\nmod tests {{\n{}}}\n",
        "fn f() {}\n".repeat(801),
        "\n".repeat(900)
    );
    let short = format!(
        "{}#[cfg(test)]\nmod tests {{\n{}}}\n",
        "fn f() {}\n".repeat(800),
        "\n".repeat(900)
    );
    let lengths = [
        ("a.rs".to_string(), non_test(&long).lines),
        ("b.rs".to_string(), non_test(&short).lines),
    ];
    assert_eq!(lengths[0].1, 801);
    assert_eq!(too_long(&lengths, &[]).len(), 1);
    assert!(too_long(&lengths, &["a.rs"]).is_empty());
    assert_eq!(
        too_long(&lengths, &["a.rs", "b.rs"]).len(),
        1,
        "b.rs is not over"
    );
}

#[test]
fn the_engine_check_sees_bollard_outside_the_engine() {
    assert!(names_the_docker_engine(
        "publish/mod.rs",
        "use bollard::Docker;"
    ));
    assert!(!names_the_docker_engine(
        "engine/docker.rs",
        "use bollard::Docker;"
    ));
    assert!(!names_the_docker_engine(
        "publish/mod.rs",
        "use crate::engine::Engine;"
    ));
}
