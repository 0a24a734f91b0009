//! The vocabulary of a run as the user sees it: what happened to each image's build and push, and
//! the events the scheduler sends the reporter.

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Built {
        image_id: String,
        seconds: f64,
        attempts: u32,
    },
    /// The engine already has this exact image: nothing was sent to the builder.
    Fresh,
    /// `--skip-existing`: an image with this tag exists (whatever its inputs).
    Existing,
    Failed {
        error: String,
        attempts: u32,
        seconds: f64,
        log_tail: Vec<String>,
    },
    /// Not built because an image it needs failed (or was cancelled).
    ParentFailed {
        parent: String,
    },
    Cancelled,
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(
            self,
            Outcome::Built { .. } | Outcome::Fresh | Outcome::Existing
        )
    }

    pub fn status(&self) -> &'static str {
        match self {
            Outcome::Built { .. } => "built",
            Outcome::Fresh => "fresh",
            Outcome::Existing => "skipped",
            Outcome::Failed { .. } => "error",
            Outcome::ParentFailed { .. } => "parent_error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// What happened to an image's push.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    Pushed {
        seconds: f64,
        attempts: u32,
        /// The manifest digest the registry stored, when the engine told it.
        digest: Option<String>,
    },
    Failed {
        error: String,
        attempts: u32,
    },
    Cancelled,
}

/// What the coordinator tells the reporter.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Started {
        task: usize,
        attempt: u32,
    },
    Log {
        task: usize,
        line: String,
    },
    Retrying {
        task: usize,
        attempt: u32,
        error: String,
    },
    Finished {
        task: usize,
        outcome: Outcome,
    },
    PushStarted {
        task: usize,
    },
    Pushed {
        task: usize,
        outcome: PushOutcome,
    },
    /// Heartbeat for redrawing progress.
    Tick,
}

/// What a reporter needs to name an image: `subjects[task]` for the `task` index of an event.
#[derive(Debug, Clone, PartialEq)]
pub struct Subject {
    pub name: String,
    /// The full reference it is tagged and pushed as.
    pub reference: String,
}

/// What a run says outside the scheduler: the render, bootstrap, pull, export and tagging
/// stages, configuration notes and warnings, and the closing summary.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A cargo-style status line: `verb` right-aligned, then `text` (`  Exporting 3 images`).
    Status { verb: &'static str, text: String },
    /// Something the user should know (which kolla release's defaults apply, files read).
    Note(String),
    /// Something probably wrong that does not stop the run.
    Warning(String),
    /// Something that failed; shown even with `--quiet`.
    Error(String),
    /// The end-of-run table.
    Summary(String),
}

/// Receives everything a run reports: the scheduler's per-image events and the stages'
/// notices. Implemented by the progress display (the only writer to the terminal) and by tests.
pub trait Reporter {
    fn event(&mut self, subjects: &[Subject], event: &Event);
    fn notice(&self, notice: &Notice);
    /// The coordinator starts on `total` images; build logs go to `logs_dir`. Nothing by default
    /// (a reporter that draws no bars and keeps no logs).
    fn begin(&mut self, total: usize, logs_dir: Option<std::path::PathBuf>) {
        let _ = (total, logs_dir);
    }
    /// The coordinator is done: whatever `begin` drew is cleared.
    fn finish(&mut self) {}
}

/// What an export wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportReport {
    pub bytes: u64,
    pub blobs: usize,
    /// Manifest digest per exported reference.
    pub manifests: std::collections::BTreeMap<String, String>,
    /// How many images came whole from the export cache, from the loopback registry they were
    /// pushed to (new layers only), and from the engine's save.
    pub from_cache: usize,
    pub from_registry: usize,
    pub saved: usize,
}
