//! The end of a run: a table for people and kolla's JSON shape for CI parsers, with true statuses
//! (`parent_error`, `error` with its cause) and per-image detail.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::report::event::{Outcome, PushOutcome};

/// Serialized as the JSON summary; read back (`kolla-build report SUMMARY.json`) with every
/// field optional, so a summary of an older version still reads.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Summary {
    /// `success`, `failed` (some image did not build, push or export), `interrupted` (SIGINT or
    /// SIGTERM) or `error` (the run could not go on: engine down or lost, plan error...).
    pub status: String,
    /// Why the run stopped, for `interrupted` and `error`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Images the run lost when the engine stopped answering (not built, or cut off mid-build).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost: Vec<String>,
    /// In a run over several engines: the engines (URLs) that stopped answering during it, their
    /// work moved to the others.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lost_engines: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSummary>,
    pub built: Vec<Entry>,
    pub failed: Vec<Entry>,
    pub not_matched: Vec<Entry>,
    pub skipped: Vec<Entry>,
    pub unbuildable: Vec<Entry>,
    pub allowed_to_fail: Vec<Entry>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub export: Option<ExportSummary>,
    #[serde(skip)]
    pub export_error: Option<String>,
    /// When the run happened and what it cost the host (`report::timing`); the per-image times
    /// are in the entries.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timing: Option<RunTiming>,
}

/// The run as a whole, for the timeline (`--report`). Times are seconds from `started`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct RunTiming {
    /// When the run started (RFC 3339, UTC).
    pub started: String,
    /// From the start of the run to the summary.
    pub wall_seconds: f64,
    /// The CPU time the whole host spent meanwhile (every process, from `/proc/stat`), absent
    /// where the host does not tell. With remote engines it says nothing of their builds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_seconds: Option<f64>,
    /// The host's CPUs, to turn `cpu_seconds` into the CPU floor (the shortest wall time that
    /// CPU work could have taken).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpus: Option<usize>,
    /// The engines of the run and their build slots (`--threads` each).
    pub engines: Vec<EngineSlots>,
    /// The atomic push's tag moves: from the first to the last (the final tags of every image
    /// move together once everything is staged).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags_moved_from: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags_moved_to: Option<f64>,
}

/// One engine of a run.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct EngineSlots {
    pub url: String,
    /// How many builds it runs at once.
    pub threads: usize,
}

/// How the pushes of the run were published.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct PushSummary {
    /// `atomic` or `immediate`.
    pub mode: String,
    /// Whether the final tags were moved (always, for `immediate`, for what was pushed).
    pub tags_moved: bool,
    /// The staging tag of the atomic mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub staging_tag: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct ExportSummary {
    /// Whether the target was written (replaced); false when images were missing and
    /// `--export-partial` was not given, or the export failed.
    pub written: bool,
    /// Selected images that are not in the export (they did not build).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    pub bytes: u64,
    pub blobs: usize,
    /// Where the images were read from: the export cache, a loopback registry, the engine.
    pub from_cache: usize,
    pub from_registry: usize,
    pub saved: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Fields that are `None` are left out of the JSON.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Entry {
    pub name: String,
    pub status: Option<String>,
    pub reference: Option<String>,
    pub input_hash: Option<String>,
    pub fresh: Option<bool>,
    pub seconds: Option<f64>,
    pub attempts: Option<u32>,
    pub error: Option<String>,
    pub parent: Option<String>,
    /// `pushed`, `error` or `cancelled` when a push was asked for.
    pub push: Option<String>,
    pub push_seconds: Option<f64>,
    /// The manifest digest the registry stored for the push, when the engine told it.
    pub push_digest: Option<String>,
    /// The manifest digest the image was exported under, or `error`.
    pub export: Option<String>,
    /// With `--package-cache`: the bytes the package caches sent this image's build (counted
    /// by the tool's relay between the build and the caches). The engine itself does not tell
    /// what a build downloads; what the caches fetched from outside is in their logs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_bytes: Option<u64>,
    /// In a run over several engines: the engine (URL) that built the image.
    pub engine: Option<String>,
    /// The images of this run it is built on (FROM), for the timeline's critical path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<String>,
    /// Seconds from the start of the run (`timing.started`): when its parents were all done
    /// (it could start), when its build started (first attempt) and ended, when its push
    /// started and ended, when its final tag was in place. Absent for what did not happen.
    pub queued_at: Option<f64>,
    pub started_at: Option<f64>,
    pub finished_at: Option<f64>,
    pub push_started_at: Option<f64>,
    pub pushed_at: Option<f64>,
    pub tag_moved_at: Option<f64>,
}

impl Entry {
    pub fn named(name: &str) -> Entry {
        Entry {
            name: name.to_string(),
            ..Entry::default()
        }
    }
}

/// One built-or-not image, as the summary needs it.
pub struct Row<'a> {
    pub name: &'a str,
    pub reference: &'a str,
    pub input_hash: &'a str,
    pub outcome: &'a Outcome,
    pub push: Option<&'a PushOutcome>,
    /// The images of the run it is built on.
    pub parents: Vec<String>,
}

impl Summary {
    pub fn record(&mut self, row: Row<'_>) {
        let mut entry = Entry {
            name: row.name.to_string(),
            status: Some(row.outcome.status().to_string()),
            reference: Some(row.reference.to_string()),
            input_hash: Some(row.input_hash.to_string()),
            parents: row.parents,
            ..Entry::default()
        };
        match row.push {
            Some(PushOutcome::Pushed {
                seconds, digest, ..
            }) => {
                entry.push = Some("pushed".into());
                entry.push_seconds = Some((seconds * 10.0).round() / 10.0);
                entry.push_digest = digest.clone();
            }
            Some(PushOutcome::Failed { error, .. }) => {
                // As kolla: an image that built but did not push is a failure, `push_error`.
                entry.push = Some("error".into());
                entry.status = Some("push_error".into());
                entry.error = Some(error.clone());
                self.failed.push(entry);
                return;
            }
            Some(PushOutcome::Cancelled) => entry.push = Some("cancelled".into()),
            None => {}
        }
        match row.outcome {
            Outcome::Built {
                seconds, attempts, ..
            } => {
                entry.fresh = Some(false);
                entry.seconds = Some((seconds * 10.0).round() / 10.0);
                entry.attempts = Some(*attempts);
                self.built.push(entry);
            }
            Outcome::Fresh => {
                entry.fresh = Some(true);
                entry.seconds = Some(0.0);
                self.built.push(entry);
            }
            Outcome::Existing => self.skipped.push(entry),
            Outcome::Failed {
                error,
                seconds,
                attempts,
                ..
            } => {
                entry.error = Some(error.clone());
                entry.seconds = Some((seconds * 10.0).round() / 10.0);
                entry.attempts = Some(*attempts);
                self.failed.push(entry);
            }
            Outcome::ParentFailed { parent } => {
                entry.parent = Some(parent.clone());
                self.failed.push(entry);
            }
            Outcome::Cancelled => self.failed.push(entry),
        }
    }

    /// Records the bytes an image's build received from the package caches.
    pub fn record_network_bytes(&mut self, name: &str, bytes: u64) {
        if let Some(entry) = self
            .built
            .iter_mut()
            .chain(&mut self.failed)
            .find(|e| e.name == name)
        {
            entry.network_bytes = Some(bytes);
        }
    }

    /// Records the engine that built an image (a run over several engines).
    pub fn record_engine(&mut self, name: &str, engine: &str) {
        if let Some(entry) = self
            .built
            .iter_mut()
            .chain(&mut self.failed)
            .find(|e| e.name == name)
        {
            entry.engine = Some(engine.to_string());
        }
    }

    pub fn success(&self) -> bool {
        self.failed.is_empty() && self.export_error.is_none() && self.error.is_none()
    }

    /// Sets `status` from what was recorded.
    pub fn finish(&mut self) {
        if self.status.is_empty() {
            self.status = if self.success() { "success" } else { "failed" }.to_string();
        }
    }

    /// The run stopped on `error`: records it and marks every selected image not yet recorded
    /// (`names`) as `not_built`.
    pub fn stop(&mut self, error: &crate::common::error::Error, names: &[String]) {
        self.status = match error {
            crate::common::error::Error::Interrupted { .. } => "interrupted",
            _ => "error",
        }
        .to_string();
        self.error = Some(error.to_string().trim_end().to_string());
        let known: std::collections::BTreeSet<&str> = self
            .built
            .iter()
            .chain(&self.failed)
            .chain(&self.skipped)
            .map(|e| e.name.as_str())
            .collect();
        let missing: Vec<Entry> = names
            .iter()
            .filter(|n| !known.contains(n.as_str()))
            .map(|n| Entry {
                status: Some("not_built".into()),
                ..Entry::named(n)
            })
            .collect();
        self.failed.extend(missing);
    }

    /// The export was not written because images are missing: the previous file is kept.
    pub fn withhold_export(&mut self, error: String, missing: Vec<String>) {
        self.export_error = Some(error.clone());
        self.export = Some(ExportSummary {
            written: false,
            missing,
            error: Some(error),
            ..ExportSummary::default()
        });
    }

    /// In the atomic push mode, when the tags did not move: what was pushed is only staged.
    pub fn mark_staged(&mut self) {
        for entry in self.built.iter_mut().chain(self.failed.iter_mut()) {
            if entry.push.as_deref() == Some("pushed") {
                entry.push = Some("staged".into());
            }
        }
    }

    /// Records the export: each built image's manifest digest, or the error on all of them.
    pub fn record_export<E: std::fmt::Display>(
        &mut self,
        result: &Result<crate::report::event::ExportReport, E>,
        missing: Vec<String>,
    ) {
        for entry in &mut self.built {
            entry.export = Some(match result {
                Ok(report) => entry
                    .reference
                    .as_ref()
                    .and_then(|r| report.manifests.get(r).cloned())
                    .unwrap_or_else(|| "error".into()),
                Err(_) => "error".into(),
            });
        }
        match result {
            Ok(report) => {
                self.export = Some(ExportSummary {
                    written: true,
                    missing,
                    bytes: report.bytes,
                    blobs: report.blobs,
                    from_cache: report.from_cache,
                    from_registry: report.from_registry,
                    saved: report.saved,
                    error: None,
                })
            }
            Err(e) => {
                self.export_error = Some(e.to_string());
                self.export = Some(ExportSummary {
                    written: false,
                    missing,
                    bytes: 0,
                    blobs: 0,
                    from_cache: 0,
                    from_registry: 0,
                    saved: 0,
                    error: Some(e.to_string()),
                });
            }
        }
    }

    /// The table printed at the end of a build.
    pub fn table(&self, elapsed: f64) -> String {
        let mut out = String::new();
        let width = self
            .built
            .iter()
            .chain(&self.failed)
            .map(|e| e.name.len())
            .max()
            .unwrap_or(5)
            .max(5);
        out.push_str(&format!(
            "{:width$}  {:12}  {:>8}  {}\n",
            "IMAGE", "STATUS", "SECONDS", "DETAIL"
        ));
        for entry in self.built.iter().chain(&self.failed) {
            let status = entry.status.as_deref().unwrap_or("");
            let seconds = entry.seconds.map(|s| format!("{s:.1}")).unwrap_or_default();
            let detail = match (&entry.error, &entry.parent) {
                (Some(error), _) => error.lines().next().unwrap_or_default().to_string(),
                (None, Some(parent)) => format!("parent `{parent}` failed"),
                _ => {
                    let reference = entry.reference.clone().unwrap_or_default();
                    match &entry.engine {
                        Some(engine) => format!("{reference} on {engine}"),
                        None => reference,
                    }
                }
            };
            out.push_str(&format!(
                "{:width$}  {status:12}  {seconds:>8}  {detail}\n",
                entry.name
            ));
        }
        let fresh = self.built.iter().filter(|e| e.fresh == Some(true)).count();
        out.push_str(&format!(
            "{} built ({} fresh), {} failed, {} skipped, {} unbuildable, {} not matched in {elapsed:.1}s\n",
            self.built.len(),
            fresh,
            self.failed.len(),
            self.skipped.len(),
            self.unbuildable.len(),
            self.not_matched.len()
        ));
        for engine in &self.lost_engines {
            out.push_str(&format!(
                "lost engine {engine}: its work was moved to the others\n"
            ));
        }
        out
    }
}

impl Summary {
    /// The JSON summary to `path` (whole or not at all), else on stdout when JSON is the asked
    /// format; nothing otherwise.
    pub fn write(
        &self,
        path: Option<&std::path::Path>,
        json_on_stdout: bool,
    ) -> crate::common::error::Result<()> {
        if let Some(path) = path {
            let json = serde_json::to_string_pretty(self).expect("summary serializes");
            crate::common::fs::write_atomically(path, format!("{json}\n").as_bytes())?;
        } else if json_on_stdout {
            crate::report::output::println(
                &serde_json::to_string(self).expect("summary serializes"),
            );
        }
        Ok(())
    }

    /// [`Summary::write`], for a run that failed already: a failure to write is reported, not
    /// returned (the run's own error is the one to exit with).
    pub fn write_or_report(
        &self,
        path: Option<&std::path::Path>,
        json_on_stdout: bool,
        reporter: &dyn crate::report::event::Reporter,
    ) {
        if let Err(e) = self.write(path, json_on_stdout) {
            reporter.notice(&crate::report::event::Notice::Error(e.to_string()));
        }
    }
}

/// Why a file is not the JSON summary `--durations-from` takes.
#[derive(Debug, thiserror::Error)]
pub enum DurationsError {
    #[error("{0}")]
    NotJson(#[from] serde_json::Error),
    #[error("no `built` list: not a kolla-build summary")]
    NoBuiltList,
}

/// The build times of an earlier run, from its JSON summary (`--durations-from`): image name →
/// seconds, for the images it built (fresh ones took no time and say nothing of a build).
pub fn durations_of(text: &str) -> Result<BTreeMap<String, f64>, DurationsError> {
    let summary: serde_json::Value = serde_json::from_str(text)?;
    let built = summary
        .get("built")
        .and_then(|b| b.as_array())
        .ok_or(DurationsError::NoBuiltList)?;
    Ok(built
        .iter()
        .filter(|e| e.get("fresh").and_then(|f| f.as_bool()) != Some(true))
        .filter_map(|e| {
            Some((
                e.get("name")?.as_str()?.to_string(),
                e.get("seconds")?.as_f64()?,
            ))
        })
        .filter(|(_, seconds)| *seconds > 0.0)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_land_in_kollas_lists_with_detail() {
        let mut s = Summary::default();
        let built = Outcome::Built {
            image_id: "sha256:1".into(),
            seconds: 12.34,
            attempts: 1,
        };
        let failed = Outcome::Failed {
            error: "RUN exited 1".into(),
            attempts: 2,
            seconds: 3.0,
            log_tail: vec![],
        };
        let parent = Outcome::ParentFailed {
            parent: "keystone-base".into(),
        };
        s.record(Row {
            name: "base",
            reference: "k/base:1",
            input_hash: "aa",
            outcome: &Outcome::Fresh,
            push: None,
            parents: vec![],
        });
        s.record(Row {
            name: "keystone-base",
            reference: "k/kb:1",
            input_hash: "bb",
            outcome: &failed,
            push: None,
            parents: vec![],
        });
        s.record(Row {
            name: "keystone",
            reference: "k/k:1",
            input_hash: "cc",
            outcome: &parent,
            push: None,
            parents: vec![],
        });
        s.record(Row {
            name: "cron",
            reference: "k/c:1",
            input_hash: "dd",
            outcome: &built,
            push: None,
            parents: vec![],
        });
        let pushed = PushOutcome::Pushed {
            seconds: 1.0,
            attempts: 1,
            digest: Some("sha256:d1".into()),
        };
        let refused = PushOutcome::Failed {
            error: "connection refused".into(),
            attempts: 3,
        };
        s.record(Row {
            name: "memcached",
            reference: "k/m:1",
            input_hash: "ee",
            outcome: &built,
            push: Some(&pushed),
            parents: vec![],
        });
        s.record(Row {
            name: "rabbitmq",
            reference: "k/r:1",
            input_hash: "ff",
            outcome: &built,
            push: Some(&refused),
            parents: vec![],
        });
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["built"][0]["fresh"], true);
        assert_eq!(json["built"][1]["seconds"], 12.3);
        assert_eq!(json["failed"][0]["status"], "error");
        assert_eq!(json["failed"][0]["error"], "RUN exited 1");
        assert_eq!(json["failed"][1]["status"], "parent_error");
        assert_eq!(json["failed"][1]["parent"], "keystone-base");
        assert_eq!(json["built"][2]["push"], "pushed");
        assert_eq!(json["built"][2]["push_digest"], "sha256:d1");
        assert_eq!(json["failed"][2]["status"], "push_error");
        assert_eq!(json["failed"][2]["error"], "connection refused");
        assert!(!s.success());
        let table = s.table(20.0);
        assert!(table.contains("3 built (1 fresh), 3 failed"), "{table}");
        assert!(table.contains("parent `keystone-base` failed"), "{table}");
    }

    #[test]
    fn a_pool_run_names_the_engine_of_each_image_and_the_lost_engines() {
        let mut s = Summary::default();
        let built = Outcome::Built {
            image_id: "sha256:1".into(),
            seconds: 1.0,
            attempts: 1,
        };
        s.record(Row {
            name: "base",
            reference: "k/base:1",
            input_hash: "aa",
            outcome: &built,
            push: None,
            parents: vec![],
        });
        s.record_engine("base", "unix:///b.sock");
        s.lost_engines.push("unix:///c.sock".into());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["built"][0]["engine"], "unix:///b.sock");
        assert_eq!(json["lost_engines"], serde_json::json!(["unix:///c.sock"]));
        let table = s.table(1.0);
        assert!(table.contains("k/base:1 on unix:///b.sock"), "{table}");
        assert!(table.contains("lost engine unix:///c.sock"), "{table}");
        // A run on one engine says neither.
        let json = serde_json::to_value(Summary::default()).unwrap();
        assert!(json.get("lost_engines").is_none(), "{json}");
    }

    #[test]
    fn a_stopped_run_names_its_error_and_what_was_not_built() {
        let mut s = Summary::default();
        s.record(Row {
            name: "base",
            reference: "k/base:1",
            input_hash: "aa",
            outcome: &Outcome::Fresh,
            push: Some(&PushOutcome::Pushed {
                seconds: 1.0,
                attempts: 1,
                digest: None,
            }),
            parents: vec![],
        });
        s.mark_staged();
        s.withhold_export("not written".into(), vec!["cron".into()]);
        s.stop(
            &crate::common::error::Error::Interrupted { signal: 15 },
            &["base".into(), "cron".into()],
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["status"], "interrupted");
        assert!(json["error"].as_str().unwrap().contains("SIGTERM"));
        assert_eq!(json["built"][0]["push"], "staged");
        assert_eq!(json["failed"][0]["name"], "cron");
        assert_eq!(json["failed"][0]["status"], "not_built");
        assert_eq!(json["export"]["written"], false);
        assert_eq!(json["export"]["missing"][0], "cron");
        assert!(!s.success());
    }

    #[test]
    fn durations_come_from_the_built_images_of_a_summary() {
        let text = r#"{"status":"success","built":[
            {"name":"base","fresh":false,"seconds":17.2},
            {"name":"keystone","fresh":true,"seconds":0.0},
            {"name":"nova-api","seconds":88.0}],"failed":[{"name":"x","seconds":3.0}]}"#;
        let durations = durations_of(text).unwrap();
        assert_eq!(
            durations,
            BTreeMap::from([("base".to_string(), 17.2), ("nova-api".to_string(), 88.0)])
        );
        assert!(matches!(
            durations_of("{\"images\": []}"),
            Err(DurationsError::NoBuiltList)
        ));
        assert!(matches!(
            durations_of("not json"),
            Err(DurationsError::NotJson(_))
        ));
    }
}
