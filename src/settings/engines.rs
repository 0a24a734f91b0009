//! The engines section: which container engines the run builds on, how many builds each runs at
//! once, and how each is spoken to (plain or TLS).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::common::error::{Error, Result};
use crate::common::types::DEFAULT_ENGINE_URL;
use crate::config::cli::{Cli, engine_url_of, is_engine_name};
use crate::config::options::{DEFAULT_PODMAN_BASE_URL, DEFAULT_THREADS, ENGINE_URL_ENV};
use crate::config::{EngineEntry, FileConfig};
use crate::report::event::Notice;

/// One engine of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineSpec {
    pub url: String,
    /// Builds at once on it.
    pub threads: usize,
    /// TLS client files (`ca.pem`, `cert.pem`, `key.pem`): the engine is spoken to over TLS.
    pub tls_dir: Option<PathBuf>,
}

/// Where TLS client files are looked for when an engine's URL asks for TLS but no `tls_dir`
/// names them, and whether `DOCKER_HOST` asks for TLS: Docker's own environment
/// (`DOCKER_CERT_PATH`, else `~/.docker`; `DOCKER_TLS_VERIFY`), so a shell set up for the
/// `docker` CLI works as it is.
struct TlsDefaults {
    cert_dir: PathBuf,
    verify: bool,
}

impl TlsDefaults {
    fn from_env(env: &BTreeMap<String, String>) -> TlsDefaults {
        let cert_dir = env
            .get("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| env.get("HOME").map(|h| Path::new(h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        let verify = env.get("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        TlsDefaults { cert_dir, verify }
    }

    /// The TLS files of `url`: the given directory, else the default one for an `https://` URL
    /// (or a `tcp://` one under `DOCKER_TLS_VERIFY`), else none (plain).
    fn for_url(&self, url: &str, given: Option<PathBuf>, verify_tcp: bool) -> Option<PathBuf> {
        let wants_tls = url.starts_with("https://") || (verify_tcp && url.starts_with("tcp://"));
        given.or_else(|| wants_tls.then(|| self.cert_dir.clone()))
    }
}

fn engine_error(message: String) -> Error {
    Error::Setting {
        key: "engine".into(),
        message,
    }
}

/// The engines of the run: `--engine` URLs (taking `threads` and `arch` from a `[[engine]]`
/// table of the same URL), else the file's `[[engine]]` tables, else the one engine of
/// `--engine-url` (or `DOCKER_HOST`). Engines of another arch than `base_arch` are left out,
/// with a warning. `threads` is each engine's default number of builds at once.
pub(super) fn resolve(
    cli: &Cli,
    file: &FileConfig,
    env: &BTreeMap<String, String>,
    base_arch: &str,
    notices: &mut Vec<Notice>,
) -> Result<Vec<EngineSpec>> {
    let threads = cli.threads.or(file.threads).unwrap_or(DEFAULT_THREADS);
    if threads == 0 {
        return Err(Error::Setting {
            key: "threads".into(),
            message: "must be at least 1".into(),
        });
    }
    let engine_urls_given = cli.engine.iter().any(|e| !is_engine_name(e));
    if engine_urls_given && cli.engine_url.is_some() {
        return Err(engine_error(
            "give the engines with `--engine` (repeatable) or the one engine with \
             `--engine-url`, not both"
                .into(),
        ));
    }
    let tls = TlsDefaults::from_env(env);
    let url = cli
        .engine_url
        .clone()
        .or(file.engine_url.clone())
        .or_else(|| env.get(ENGINE_URL_ENV).cloned())
        .unwrap_or_else(|| DEFAULT_ENGINE_URL.to_string());
    // kolla's `--engine docker|podman` (and `engine =` in its file) name an engine's URL.
    let podman_url = file
        .podman_base_url
        .clone()
        .unwrap_or_else(|| DEFAULT_PODMAN_BASE_URL.to_string());
    let given: Vec<String> = (cli.engine.iter())
        .map(|e| engine_url_of(e, &url, &podman_url))
        .collect();
    let from_file: Vec<EngineEntry> = (file.engine.clone().unwrap_or_default().into_iter())
        .map(|e| EngineEntry {
            url: engine_url_of(&e.url, &url, &podman_url),
            ..e
        })
        .collect();
    let entries = entries(&given, from_file);
    if entries.is_empty() {
        return Ok(vec![EngineSpec {
            // DOCKER_TLS_VERIFY applies to the one engine of DOCKER_HOST, as in the docker CLI.
            tls_dir: tls.for_url(&url, None, tls.verify),
            url,
            threads,
        }]);
    }
    let mut engines: Vec<EngineSpec> = Vec::new();
    for entry in entries {
        check_entry(&entry, &engines)?;
        if let Some(arch) = entry.arch.as_deref().filter(|a| *a != base_arch) {
            notices.push(Notice::Warning(format!(
                "the engine at {} is {arch}, not {base_arch}: not used for this run",
                entry.url
            )));
            continue;
        }
        engines.push(EngineSpec {
            tls_dir: tls.for_url(&entry.url, entry.tls_dir, false),
            url: entry.url,
            threads: entry.threads.unwrap_or(threads),
        });
    }
    if engines.is_empty() {
        return Err(engine_error(format!(
            "no engine is {base_arch} (the `arch` of every `[[engine]]`)"
        )));
    }
    Ok(engines)
}

/// The `[[engine]]` entries of the run: one per `--engine` (its table's, if the file has one of
/// the same URL), else the file's tables.
fn entries(cli: &[String], file: Vec<EngineEntry>) -> Vec<EngineEntry> {
    if cli.is_empty() {
        return file;
    }
    cli.iter()
        .map(|url| {
            file.iter()
                .find(|e| e.url == *url)
                .cloned()
                .unwrap_or(EngineEntry {
                    url: url.clone(),
                    threads: None,
                    arch: None,
                    tls_dir: None,
                })
        })
        .collect()
}

fn check_entry(entry: &EngineEntry, earlier: &[EngineSpec]) -> Result<()> {
    if entry.url.is_empty() {
        return Err(engine_error("an engine without a URL".into()));
    }
    if earlier.iter().any(|e| e.url == entry.url) {
        return Err(engine_error(format!("`{}` is given twice", entry.url)));
    }
    if entry.threads == Some(0) {
        return Err(engine_error(format!(
            "`{}`: threads must be at least 1",
            entry.url
        )));
    }
    Ok(())
}
