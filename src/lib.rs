//! kolla-build: renders kolla-dialect Dockerfile templates for a base distro and install type,
//! orders the images by the parent in each `FROM` line, and builds them.
//!
//! One folder per stage, in the order data flows (docs/ARCHITECTURE.md; `tests/layering.rs`
//! keeps a stage from importing a later one):
//! common → report → tree → config → compat → settings → render → graph → prepare → engine →
//! publish → build → app.

pub mod app;
pub mod build;
pub mod common;
pub mod compat;
pub mod config;
pub mod engine;
pub mod fetch;
pub mod graph;
pub mod prepare;
pub mod publish;
pub mod render;
pub mod report;
pub mod settings;
pub mod tree;
