//! The project's own template tree: every image renders for every base x install type, parses
//! with a real Dockerfile parser, and its FROM chain ends at `base`'s external image.

use clap::Parser;
use kolla_build::common::types::{BaseDistro, InstallType};
use kolla_build::config::FileConfig;
use kolla_build::config::cli::Cli;
use kolla_build::graph::selection::Status;
use kolla_build::prepare::{Prepared, prepare};
use kolla_build::settings::Settings;

use crate::support::REPO;

/// The images the tree must have (issue 2).
const REQUIRED: &[&str] = &[
    "base",
    "openstack-base",
    "keystone-base",
    "keystone",
    "keystone-fernet",
    "keystone-ssh",
    "glance-base",
    "glance-api",
    "placement-base",
    "placement-api",
    "nova-base",
    "nova-api",
    "nova-conductor",
    "nova-scheduler",
    "nova-compute",
    "nova-novncproxy",
    "neutron-base",
    "neutron-server",
    "neutron-openvswitch-agent",
    "neutron-dhcp-agent",
    "neutron-l3-agent",
    "neutron-metadata-agent",
    "heat-base",
    "heat-api",
    "heat-api-cfn",
    "heat-engine",
    "horizon",
    "mariadb-server",
    "memcached",
    "rabbitmq",
    "haproxy",
    "keepalived",
    "cron",
    "kolla-toolbox",
    "openvswitch-base",
    "openvswitch-db-server",
    "openvswitch-vswitchd",
];

fn variants() -> impl Iterator<Item = (BaseDistro, InstallType)> {
    BaseDistro::ALL
        .into_iter()
        .flat_map(|b| InstallType::ALL.into_iter().map(move |t| (b, t)))
}

fn prepare_variant(
    base: BaseDistro,
    install_type: InstallType,
    extra: &[&str],
) -> (Settings, Prepared) {
    let mut args = vec![
        "kolla-build",
        "-b",
        base.as_str(),
        "-t",
        install_type.as_str(),
        "--images-dir",
        REPO,
    ];
    args.extend(extra);
    let cli = Cli::try_parse_from(args).unwrap();
    let file = FileConfig::load(&std::path::Path::new(REPO).join("build.toml")).unwrap();
    let settings = Settings::merge(
        cli,
        file,
        Some(REPO.into()),
        Default::default(),
        std::path::Path::new(REPO),
    )
    .unwrap();
    let prepared = prepare(&settings).unwrap_or_else(|e| panic!("{base} {install_type}: {e}"));
    (settings, prepared)
}

#[test]
fn every_required_image_exists_in_every_variant() {
    for (base, install_type) in variants() {
        let (_, prepared) = prepare_variant(base, install_type, &["--enable-unbuildable"]);
        for name in REQUIRED {
            assert!(
                prepared.dockerfiles.contains_key(*name),
                "{base} {install_type}: no image `{name}`"
            );
        }
    }
}

#[test]
fn every_dockerfile_parses_and_chains_to_the_base_image() {
    for (base, install_type) in variants() {
        let (settings, prepared) = prepare_variant(base, install_type, &["--enable-unbuildable"]);
        let external = format!(
            "{}:{}",
            settings.naming.base_image, settings.naming.base_tag
        );
        for (name, text) in &prepared.dockerfiles {
            let parsed = dockerfile_parser::Dockerfile::parse(text).unwrap_or_else(|e| {
                panic!("{base} {install_type} {name}: does not parse: {e}\n{text}")
            });
            assert!(!parsed.instructions.is_empty(), "{name}: empty Dockerfile");
            let froms: Vec<_> = parsed.iter_stages().map(|s| s.instructions.len()).collect();
            assert!(!froms.is_empty(), "{name}: no stage");
            // Walk up the graph to the root: it must be `base`, built FROM the external image.
            let graph = &prepared.graph;
            let mut id = graph.id(name).unwrap();
            let mut hops = 0;
            while let Some(parent) = graph.node(id).parent {
                id = parent;
                hops += 1;
                assert!(hops < 10, "{name}: FROM chain too deep");
            }
            assert_eq!(
                graph.name(id),
                "base",
                "{base} {install_type}: {name} does not descend from base"
            );
            assert_eq!(graph.node(id).external.as_deref(), Some(external.as_str()));
        }
    }
}

#[test]
fn profiles_select_their_services_in_every_variant() {
    for (base, install_type) in variants() {
        for profile in ["infra", "main", "aux", "default", "gate"] {
            let (_, prepared) = prepare_variant(base, install_type, &["-p", profile]);
            let matched = prepared.selection.ids_with(Status::Matched).count();
            assert!(
                matched > 0,
                "{base} {install_type}: profile {profile} selects nothing"
            );
        }
        let (_, prepared) = prepare_variant(base, install_type, &["-p", "default"]);
        let names: Vec<&str> = prepared
            .selection
            .ids_with(Status::Matched)
            .map(|id| prepared.graph.name(id))
            .collect();
        for service in [
            "keystone",
            "glance-api",
            "nova-api",
            "neutron-server",
            "mariadb-server",
            "rabbitmq",
            "horizon",
            "placement-api",
            "heat-api",
            "openvswitch-vswitchd",
        ] {
            let unbuildable = prepared
                .graph
                .id(service)
                .is_some_and(|id| prepared.selection.status[id] == Status::Unbuildable);
            assert!(
                names.contains(&service) || unbuildable,
                "{base} {install_type}: default lacks {service}"
            );
        }
    }
}

#[test]
fn snapshots_of_key_images() {
    for (base, install_type) in variants() {
        let (_, prepared) = prepare_variant(base, install_type, &["--enable-unbuildable"]);
        for image in ["keystone", "nova-api", "mariadb-server"] {
            insta::assert_snapshot!(
                format!("{base}-{install_type}-{image}"),
                prepared.dockerfiles[image]
            );
        }
    }
}

/// The pins (`name` -> the constraints line) of a release's constraints file, read through
/// base/releases.toml, as base copies it to /requirements/upper-constraints.txt.
fn pinned_names(release: &str) -> std::collections::BTreeSet<String> {
    let releases: toml::Table =
        toml::from_str(&std::fs::read_to_string(format!("{REPO}/base/releases.toml")).unwrap())
            .unwrap();
    let file = releases["releases"][release]["constraints"]
        .as_str()
        .unwrap();
    let text = std::fs::read_to_string(format!("{REPO}/base/{file}")).unwrap();
    text.lines()
        .filter(|line| !line.trim_start().starts_with('#') && line.contains("=="))
        .map(|line| normalized(line.split("==").next().unwrap()))
        .collect()
}

/// PEP 503 name: lower case, runs of `-_.` as one `-`; extras and specifiers cut off.
fn normalized(requirement: &str) -> String {
    let name = requirement
        .split(['[', '=', '<', '>', '!', '~', ';', ' '])
        .next()
        .unwrap();
    let re = regex::Regex::new(r"[-_.]+").unwrap();
    re.replace_all(&name.to_lowercase(), "-").into_owned()
}

/// Every `pip install` of a rendered Dockerfile: (the words before `pip`, those after `install`).
fn pip_installs(dockerfile: &str) -> Vec<(Vec<String>, Vec<String>)> {
    // The PyPI cache's optional index (`${ftp_proxy:+--index-url "$ftp_proxy"}`) is one shell
    // word with spaces inside; it names no package.
    let text = dockerfile.replace("\\\n", " ");
    let text = regex::Regex::new(r"\$\{ftp_proxy:\+[^}]*\}")
        .unwrap()
        .replace_all(&text, "");
    let mut installs = Vec::new();
    for command in text.split(['\n', ';', '|']).flat_map(|c| c.split("&&")) {
        let words: Vec<String> = command
            .split_whitespace()
            .map(|w| w.trim_matches(['\'', '"']).to_string())
            .collect();
        let Some(pip) = words
            .iter()
            .position(|w| w == "pip" || w.ends_with("/pip") || w == "pip3")
        else {
            continue;
        };
        if words.get(pip + 1).map(String::as_str) == Some("install")
            || words[pip + 1..]
                .first()
                .is_some_and(|w| w.starts_with("--"))
                && words[pip + 1..].iter().any(|w| w == "install")
        {
            let from = pip
                + 1
                + words[pip + 1..]
                    .iter()
                    .position(|w| w == "install")
                    .unwrap();
            installs.push((words[..pip].to_vec(), words[from + 1..].to_vec()));
        }
    }
    installs
}

/// Issue 27 point 0: what a build pip-installs is pinned, so that two builds minutes apart
/// install the same versions (a fresh clone's CI once failed when pip 26.3 appeared on PyPI
/// between two builds of the same image). Every `pip install` of every image, for every
/// release, base and install type, reads the release's constraints with `-c`, and every package
/// it names (pip, setuptools and wheel included) is pinned there.
#[test]
fn every_pip_install_is_pinned_by_the_releases_constraints() {
    let releases: toml::Table =
        toml::from_str(&std::fs::read_to_string(format!("{REPO}/base/releases.toml")).unwrap())
            .unwrap();
    let mut build_tools_checked = 0;
    for release in releases["releases"].as_table().unwrap().keys() {
        let pinned = pinned_names(release);
        for (base, install_type) in variants() {
            let (_, prepared) = prepare_variant(
                base,
                install_type,
                &["--enable-unbuildable", "--openstack-release", release],
            );
            for (image, text) in &prepared.dockerfiles {
                for (before, args) in pip_installs(text) {
                    let at =
                        format!("{release} {base} {install_type} {image}: pip install {args:?}");
                    let c = args.iter().position(|a| a == "-c" || a == "--constraint");
                    assert!(
                        c.is_some_and(|c| args[c + 1] == "/requirements/upper-constraints.txt"),
                        "{at}: not constrained by the release's upper-constraints.txt"
                    );
                    // `-c` does not reach pip's isolated build environments; PIP_CONSTRAINT
                    // does (or no isolation: the venv's pinned tools build the sdist).
                    let constrained_env = "PIP_CONSTRAINT=/requirements/upper-constraints.txt";
                    assert!(
                        before.iter().any(|w| w == constrained_env)
                            || args.iter().any(|a| a == "--no-build-isolation"),
                        "{at}: sdists would build with unpinned setuptools/wheel (no PIP_CONSTRAINT)"
                    );
                    let skip_value =
                        |i: usize| i > 0 && ["-c", "--constraint"].contains(&args[i - 1].as_str());
                    for (i, arg) in args.iter().enumerate() {
                        if arg.starts_with('-') || skip_value(i) {
                            continue;
                        }
                        assert!(
                            pinned.contains(&normalized(arg)),
                            "{at}: `{arg}` is not pinned in {release}'s constraints"
                        );
                    }
                    if install_type == InstallType::Source
                        && image == "openstack-base"
                        && ["pip", "setuptools", "wheel"]
                            .iter()
                            .all(|t| args.iter().any(|a| a == t))
                    {
                        build_tools_checked += 1;
                    }
                }
            }
        }
    }
    // The parser must have seen what it checks: each release's source openstack-base, for every
    // base, upgrades the venv's build tools first.
    let expected = releases["releases"].as_table().unwrap().len() * BaseDistro::ALL.len();
    assert_eq!(
        build_tools_checked, expected,
        "openstack-base's `pip install pip setuptools wheel` not found in every source variant"
    );
}
