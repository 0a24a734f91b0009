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
