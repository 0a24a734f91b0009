//! One integration test binary (as just and ripgrep do): the real `kolla-build` binary run in
//! temporary directories, and the project's own template tree rendered for every variant.

mod caches;
mod cli;
mod engine;
mod fetch;
mod kolla_ansible;
mod kolla_cli;
mod kolla_compat;
mod kolla_peer;
mod kolla_tree;
mod layering;
mod patches;
mod podman;
mod real_tree;
mod reliability;
mod scaleout;
mod set_configs;
mod support;
mod timeline;
