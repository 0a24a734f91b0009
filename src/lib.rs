//! kolla-build: renders kolla-dialect Dockerfile templates for a base distro and install type,
//! orders the images by the parent in each `FROM` line, and builds them.
//!
//! Data flows one way: settings → tree → render → graph → selection → actions.

pub mod app;
pub mod blob_cache;
pub mod bootstrap;
pub mod build;
pub mod cli;
pub mod compat;
pub mod config;
pub mod context;
pub mod dockerfile;
pub mod engine;
pub mod error;
pub mod export;
pub mod graph;
pub mod listing;
pub mod output;
pub mod package_cache;
pub mod plan;
pub mod prepare;
pub mod progress;
pub mod publish;
pub mod reference;
pub mod releases;
pub mod render;
pub mod repos;
pub mod schedule;
pub mod selection;
pub mod settings;
pub mod signals;
pub mod summary;
pub mod tree;
pub mod types;
pub mod users;
pub mod workdir;
