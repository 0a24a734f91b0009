//! The shape of `src/`: one folder per stage, data flowing one way. A module may use its own
//! stage and the stages before it, never a later one, and no two modules may need each other
//! (docs/ARCHITECTURE.md). Read from the `crate::` paths of the non-test code.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The stages in the order data flows; `app` (the top) may use all of them.
const STAGES: &[&str] = &[
    "common", "report", "tree", "config", "compat", "settings", "render", "graph", "prepare",
    "fetch", "engine", "publish", "build", "app",
];

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

/// `src/build/mod.rs` → `build`, `src/build/schedule.rs` → `build::schedule`.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .filter(|p| p != "mod")
        .collect();
    match parts.as_slice() {
        [one] if one == "lib" || one == "main" => None,
        _ => Some(parts.join("::")),
    }
}

/// The code a module runs in production: its lines up to its test module, without comments.
fn production_code(text: &str) -> String {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

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

fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .filter_map(|f| module_of(&src, f).map(|m| (m, f.clone())))
        .collect();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(module, file)| {
            let code = production_code(&std::fs::read_to_string(file).unwrap());
            let mut used = used_modules(&code, &known);
            used.remove(module);
            (module.clone(), used)
        })
        .collect()
}

#[test]
fn no_stage_uses_a_later_stage() {
    let mut wrong = Vec::new();
    for (module, used) in dependencies() {
        for target in used {
            if stage_rank(&target) > stage_rank(&module) {
                wrong.push(format!("{module} uses {target}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the flow ({}):\n  {}",
        STAGES.join(" → "),
        wrong.join("\n  ")
    );
}

#[test]
fn no_two_modules_need_each_other() {
    let deps = dependencies();
    // Depth-first search with a stack of the modules being visited: an edge back into the
    // stack closes a cycle.
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
    let mut cycles = Vec::new();
    let mut done = BTreeSet::new();
    for module in deps.keys() {
        visit(module, &deps, &mut Vec::new(), &mut done, &mut cycles);
    }
    assert!(
        cycles.is_empty(),
        "import cycles:\n  {}",
        cycles.join("\n  ")
    );
}

#[test]
fn the_checker_sees_a_cycle_and_an_upward_use() {
    // The check itself must be able to fail: a made-up pair of modules breaking both rules.
    let known: BTreeSet<String> = ["tree::repos", "compat", "common::types"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let code = "use crate::compat::Kolla;\n// use crate::common::types::X;\nfn f() {}";
    let used = used_modules(&production_code(code), &known);
    assert_eq!(used, BTreeSet::from(["compat".to_string()]));
    assert!(stage_rank("compat") > stage_rank("tree::repos"));
    let tail = "fn g() {}\n#[cfg(test)]\nmod tests { use crate::compat::Kolla; }";
    assert!(used_modules(&production_code(tail), &known).is_empty());
}

#[test]
fn only_the_reporter_writes_to_the_terminal() {
    // Everything a run says goes through `report` (bars on a terminal, plain lines elsewhere);
    // `app` writes the command's own output (lists on stdout) and the last error line.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let writes = [
        "eprintln!",
        "eprint!",
        "println!",
        "print!(",
        "output::eprint",
        "output::println",
        "stderr()",
    ];
    let mut wrong = Vec::new();
    for file in files {
        let Some(module) = module_of(&src, &file) else {
            continue;
        };
        if module.starts_with("report") {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(&file).unwrap());
        for (n, line) in code.lines().enumerate() {
            let allowed = module == "app" && line.contains("output::eprintln(&error_text(");
            if !allowed && writes.iter().any(|w| line.contains(w)) {
                wrong.push(format!("{module}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "terminal writes outside the reporter:\n  {}",
        wrong.join("\n  ")
    );
}

#[test]
fn only_the_engine_and_the_place_that_connects_name_the_docker_engine() {
    // Every engine call goes through the `Engine` trait (so the fake engine can stand in for
    // it); the concrete engine is named where it is implemented and where the run connects.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong = Vec::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        if rel.starts_with("engine/") || rel == "build/engines.rs" {
            continue;
        }
        let code = production_code(&std::fs::read_to_string(&file).unwrap());
        if code.contains("DockerEngine") || code.contains("bollard") {
            wrong.push(rel);
        }
    }
    assert!(
        wrong.is_empty(),
        "name the `Engine` trait, not the Docker engine or bollard, in:\n  {}",
        wrong.join("\n  ")
    );
}
