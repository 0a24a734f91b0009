//! kolla's whole command line: every flag `kolla-build --help` lists in each maintained kolla
//! release (installed from PyPI into the peers' virtualenvs, see `kolla_peer.rs`) is given to our
//! binary, with a plausible value where it takes one and `--list-images` so nothing builds, in
//! both of oslo's spellings (`-` and `_`) and its short form. Each must be accepted, or refused
//! with our "is not supported because" message; never clap's "unexpected argument". Every flag
//! also has its row in docs/KOLLA-COMPAT.md.

use std::collections::BTreeMap;
use std::process::Command;

use crate::kolla_peer::{PEER_SPECS, Peer};
use crate::support::{BIN, REPO, Test};

/// A flag of kolla's `--help`: its long name (as kolla spells it), its short form, and whether
/// it takes a value.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KollaFlag {
    long: String,
    short: Option<char>,
    takes_value: bool,
}

/// The flags of an argparse `--help` text: the option lines (`  --base BASE, -b BASE  help`,
/// `  --cache               help`), from the options section.
fn flags_of_help(help: &str) -> Vec<KollaFlag> {
    let line = regex::Regex::new(r"^  (-[-A-Za-z].*?)(?:\s{2,}|$)").unwrap();
    let part = regex::Regex::new(r"^(--?[A-Za-z][A-Za-z0-9_-]*)(?: (\S+))?$").unwrap();
    let mut flags = Vec::new();
    for text in help
        .lines()
        .skip_while(|l| !l.starts_with("options:") && !l.starts_with("optional arguments:"))
    {
        let Some(c) = line.captures(text) else {
            continue;
        };
        let (mut long, mut short, mut takes_value) = (None, None, false);
        for spelling in c[1].split(", ") {
            let Some(p) = part.captures(spelling.trim()) else {
                continue;
            };
            takes_value |= p.get(2).is_some();
            match p[1].strip_prefix("--") {
                Some(name) => long = Some(name.to_string()),
                None => short = p[1].chars().nth(1),
            }
        }
        if let Some(long) = long {
            flags.push(KollaFlag {
                long,
                short,
                takes_value,
            });
        }
    }
    flags
}

/// A value our binary can take for a kolla flag (kolla's own choices where it has some).
fn plausible_value(test: &Test, name: &str) -> String {
    let path = |rel: &str| test.path().join(rel).display().to_string();
    match name.replace('_', "-").as_str() {
        "base" => "debian".into(),
        "base-arch" => std::env::consts::ARCH.into(),
        "debian-arch" => "amd64".into(),
        "base-image" => "debian".into(),
        "base-tag" => "trixie".into(),
        "build-args" => "HTTP_PROXY:http://proxy:3128".into(),
        "config-file" => path("build.toml"),
        "config-dir" => path("conf.d"),
        "docker-dir" => path("overlay"),
        "locals-base" | "patches-path" => path("images"),
        "work-dir" | "logs-dir" => path("out"),
        "save-dependency" => path("deps.dot"),
        "summary-json-file" => path("summary.json"),
        "template-override" => path("override.j2"),
        "repos-yaml" => path("repos.yaml"),
        "engine" => "docker".into(),
        "podman-base-url" => "unix:///run/podman/podman.sock".into(),
        "format" => "json".into(),
        "profile" => "gate".into(),
        "threads" | "push-threads" | "retries" | "timeout" => "2".into(),
        "network-mode" => "host".into(),
        "registry" => "127.0.0.1:4000".into(),
        "tag" => "t1".into(),
        "namespace" => "ns".into(),
        "image-name-prefix" => "x-".into(),
        "openstack-release" => "2025.1".into(),
        "openstack-release-codename" => "epoxy".into(),
        "openstack-branch" => "stable-2025.1".into(),
        "openstack-branch-slashed" => "stable/2025.1".into(),
        "tarballs-base" => "https://tarballs.opendev.org".into(),
        "platform" => "linux/amd64".into(),
        "buildkit-builder" => "builder".into(),
        "shell-completion" => "bash".into(),
        other => panic!(
            "kolla's --{other} takes a value this test has none for: add one to plausible_value"
        ),
    }
}

/// How our binary took a command line: `Ok` accepted (or refused with our reason, in `Err`'s
/// absence of clap's own errors), `Err` with the output otherwise.
enum Outcome {
    Accepted,
    Refused(String),
}

fn run_ours(test: &Test, args: &[String]) -> Result<Outcome, String> {
    let out = Command::new(BIN)
        .args(args)
        .current_dir(test.path())
        .env_remove("DOCKER_HOST")
        .env("HOME", test.path())
        .output()
        .expect("run kolla-build");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Ok(Outcome::Accepted);
    }
    match stderr
        .lines()
        .find(|l| l.contains("is not supported because"))
    {
        Some(line) if !stderr.contains("unexpected argument") => {
            Ok(Outcome::Refused(line.to_string()))
        }
        _ => Err(format!("{args:?} exited {:?}:\n{stderr}", out.status)),
    }
}

#[test]
fn every_flag_of_kolla_s_help_is_accepted_or_refused_with_a_reason() {
    // Every release's --help, installed as the peers are (same virtualenvs, same cache).
    let started = std::time::Instant::now();
    let helps: Vec<(String, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = PEER_SPECS
            .iter()
            .map(|spec| scope.spawn(move || Peer::install(spec)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let peer = h.join().expect("installing a peer panicked");
                let out = Command::new(&peer.bin)
                    .arg("--help")
                    .output()
                    .expect("run kolla-build --help");
                assert!(out.status.success(), "kolla {} --help failed", peer.version);
                (
                    peer.version,
                    String::from_utf8_lossy(&out.stdout).into_owned(),
                )
            })
            .collect()
    });
    eprintln!(
        "kolla's --help read in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Each flag once, with the releases that have it.
    let mut flags: BTreeMap<String, (KollaFlag, Vec<String>)> = BTreeMap::new();
    for (version, help) in &helps {
        let found = flags_of_help(help);
        assert!(
            found.len() > 60 && found.iter().any(|f| f.long == "nopull"),
            "kolla {version}: only {} flags read from --help:\n{help}",
            found.len()
        );
        for flag in found {
            flags
                .entry(flag.long.clone())
                .or_insert_with(|| (flag, Vec::new()))
                .1
                .push(version.clone());
        }
    }

    let test = Test::small_tree();
    test.write("conf.d/site.conf", "")
        .write("override.j2", "{% extends parent_template %}\n")
        .write("repos.yaml", "{}\n")
        .write(
            "overlay/extra/Dockerfile.j2",
            "FROM {{ namespace }}/{{ image_prefix }}base:{{ tag }}\n",
        );
    std::fs::create_dir_all(test.path().join("out")).unwrap();
    let docs = std::fs::read_to_string(format!("{REPO}/docs/KOLLA-COMPAT.md")).unwrap();
    let docs: Vec<&str> = docs.lines().filter(|l| l.starts_with('|')).collect();

    let mut problems = Vec::new();
    let mut refused = Vec::new();
    let mut tried = 0;
    for (name, (flag, versions)) in &flags {
        if matches!(name.as_str(), "help" | "version") {
            continue;
        }
        let in_first_cell = |row: &str| {
            row.split('|')
                .nth(1)
                .is_some_and(|cell| cell.contains(&format!("`--{name}`")))
        };
        if !docs.iter().any(|row| in_first_cell(row)) {
            problems.push(format!(
                "docs/KOLLA-COMPAT.md has no row `| `--{name}`` (kolla {versions:?})"
            ));
        }
        let value = flag.takes_value.then(|| plausible_value(&test, name));
        let mut spellings = vec![format!("--{name}")];
        let other = if name.contains('_') {
            name.replace('_', "-")
        } else {
            name.replace('-', "_")
        };
        if other != *name {
            spellings.push(format!("--{other}"));
        }
        if let Some(short) = flag.short {
            spellings.push(format!("-{short}"));
        }
        for spelling in spellings {
            let mut args = vec!["--list-images".to_string(), spelling.clone()];
            args.extend(value.clone());
            if name.contains("template") && name.contains("only") {
                // it writes there
                args.extend(["--work-dir".to_string(), plausible_value(&test, "work-dir")]);
            }
            tried += 1;
            match run_ours(&test, &args) {
                Ok(Outcome::Accepted) => {}
                Ok(Outcome::Refused(line)) => refused.push(format!("{spelling}: {line}")),
                Err(e) => problems.push(format!("kolla {versions:?} `{spelling}`: {e}")),
            }
        }
    }
    eprintln!(
        "{} flags of kolla {:?}, {tried} command lines; refused:\n  {}",
        flags.len(),
        helps.iter().map(|(v, _)| v.as_str()).collect::<Vec<_>>(),
        refused.join("\n  ")
    );
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    // The refusals are the ones documented, no more: a flag refused by accident fails here.
    let refused_flags: Vec<&str> = refused.iter().filter_map(|r| r.split('`').nth(1)).collect();
    for flag in &refused_flags {
        assert!(
            [
                "--squash",
                "--buildkit",
                "--buildkit-builder",
                "--platform",
                "--shell-completion"
            ]
            .contains(flag),
            "refused unexpectedly: {refused:?}"
        );
    }
}

#[test]
fn flags_of_help_reads_argparse_option_lines() {
    let help = "usage: kolla-build [-h]\n\npositional arguments:\n  regex    Build only\n\n\
                options:\n  -h, --help            show this help message and exit\n  \
                --base BASE, -b BASE  The distro type\n  --base-arch BASE_ARCH\n                        \
                The base architecture\n  --cache               Use the cache\n  \
                --network_mode NETWORK_MODE\n                        The network mode\n";
    let flags = flags_of_help(help);
    let names: Vec<(&str, Option<char>, bool)> = flags
        .iter()
        .map(|f| (f.long.as_str(), f.short, f.takes_value))
        .collect();
    assert_eq!(
        names,
        [
            ("help", Some('h'), false),
            ("base", Some('b'), true),
            ("base-arch", None, true),
            ("cache", None, false),
            ("network_mode", None, true),
        ]
    );
}

/// kolla's engine names pick an engine URL: `docker` DOCKER_HOST's (as docker.from_env does),
/// `podman` `--podman-base-url`'s (either spelling); checked where an unreachable engine is
/// named, before any work.
#[test]
fn engine_names_pick_the_docker_and_the_podman_url() {
    let test = Test::small_tree();
    for (args, docker_host, url) in [
        (
            &["--engine", "docker"][..],
            "unix:///nonexistent/docker.sock",
            "unix:///nonexistent/docker.sock",
        ),
        (
            &[
                "--engine",
                "podman",
                "--podman_base_url",
                "unix:///nonexistent/podman.sock",
            ][..],
            "unix:///nonexistent/docker.sock",
            "unix:///nonexistent/podman.sock",
        ),
        (
            &[
                "--engine=podman",
                "--podman-base-url",
                "unix:///nonexistent/p2.sock",
            ][..],
            "unix:///nonexistent/docker.sock",
            "unix:///nonexistent/p2.sock",
        ),
    ] {
        let out = Command::new(BIN)
            .args(args)
            .arg("cron")
            .current_dir(test.path())
            .env("DOCKER_HOST", docker_host)
            .output()
            .expect("run kolla-build");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!(
                "error: cannot reach the container engine at {url}"
            )),
            "{args:?}: {stderr}"
        );
    }
}
