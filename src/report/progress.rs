//! What a person sees while images build: on a terminal an overall bar and one line per running
//! image with its current build step; elsewhere (CI logs) one plain line per event. Per-image logs
//! go to `--logs-dir`; a failure prints the last lines of its build output.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::report::event::{Event, Notice, Outcome, PushOutcome, Reporter, Subject};
use crate::report::timing::RunClock;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Display {
    Bars,
    Plain,
    Quiet,
}

impl Display {
    /// Bars on a terminal, plain lines otherwise, nothing but errors with `--quiet`.
    pub fn detect(quiet: bool) -> Display {
        if quiet {
            Display::Quiet
        } else if std::io::stderr().is_terminal() {
            Display::Bars
        } else {
            Display::Plain
        }
    }
}

pub struct Progress {
    display: Display,
    multi: MultiProgress,
    overall: ProgressBar,
    running: BTreeMap<usize, ProgressBar>,
    logs_dir: Option<PathBuf>,
    log_files: BTreeMap<usize, File>,
    /// Errors while writing logs are reported once, not per line.
    log_error_shown: bool,
    /// The times of the run, for the summary and `--report` (shared with whoever writes them).
    clock: std::sync::Arc<RunClock>,
    /// `--debug`: every build's output on stderr too, prefixed with its image.
    debug: bool,
}

impl Progress {
    /// The reporter of a whole run; the bars appear once [`Reporter::begin`] says how many
    /// images are built.
    pub fn new(display: Display) -> Progress {
        let multi = MultiProgress::with_draw_target(match display {
            Display::Bars => ProgressDrawTarget::stderr_with_hz(8),
            _ => ProgressDrawTarget::hidden(),
        });
        Progress {
            display,
            multi,
            overall: ProgressBar::hidden(),
            running: BTreeMap::new(),
            logs_dir: None,
            log_files: BTreeMap::new(),
            log_error_shown: false,
            debug: false,
            clock: std::sync::Arc::new(RunClock::start()),
        }
    }

    /// `--debug`: echo build output lines (`keystone | Step 3/9 : RUN ...`).
    pub fn set_debug(&mut self, debug: bool) {
        self.debug = debug;
    }

    pub fn display(&self) -> Display {
        self.display
    }

    /// A status line in cargo's style (`   Building keystone`), above the bars.
    fn status(&self, verb: &str, text: &str) {
        let line = format!("{verb:>12} {text}");
        match self.display {
            Display::Bars => self.multi.println(line).unwrap_or(()),
            Display::Plain => crate::report::output::eprintln(&line),
            Display::Quiet => {}
        }
    }

    /// A line of its own (notes, warnings); nothing with `--quiet`.
    fn line(&self, text: &str) {
        match self.display {
            Display::Bars => self.multi.suspend(|| crate::report::output::eprintln(text)),
            Display::Plain => crate::report::output::eprintln(text),
            Display::Quiet => {}
        }
    }

    /// Errors are shown even with `--quiet`.
    fn error(&self, text: &str) {
        match self.display {
            Display::Bars => self.multi.suspend(|| crate::report::output::eprintln(text)),
            _ => crate::report::output::eprintln(text),
        }
    }

    fn log(&mut self, task: usize, name: &str, line: &str) {
        let Some(dir) = &self.logs_dir else { return };
        let file = match self.log_files.entry(task) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                match File::create(dir.join(format!("{name}.log"))) {
                    Ok(file) => e.insert(file),
                    Err(err) => return self.log_failed(name, &err),
                }
            }
        };
        if let Err(err) = writeln!(file, "{line}") {
            self.log_failed(name, &err);
        }
    }

    fn log_failed(&mut self, name: &str, e: &std::io::Error) {
        if !self.log_error_shown {
            self.log_error_shown = true;
            self.error(&format!(
                "warning: cannot write the build log of `{name}`: {e}"
            ));
        }
    }
}

impl Progress {
    /// When what happened: the clock this reporter feeds from the events and notices it sees.
    pub fn clock(&self) -> std::sync::Arc<RunClock> {
        self.clock.clone()
    }
}

impl Reporter for Progress {
    /// The scheduler starts: an overall bar for `total` images; build logs go to `logs_dir`.
    fn begin(&mut self, total: usize, logs_dir: Option<PathBuf>) {
        self.overall = self.multi.add(ProgressBar::new(total as u64));
        self.overall.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} images  {msg}",
            )
            .expect("valid template"),
        );
        self.logs_dir = logs_dir;
        self.clock.scheduling();
    }

    fn finish(&mut self) {
        self.overall.finish_and_clear();
        let _ = self.multi.clear();
    }

    fn notice(&self, notice: &Notice) {
        self.clock.notice(notice);
        match notice {
            Notice::Status { verb, text } => self.status(verb, text),
            Notice::Note(text) => self.line(text),
            Notice::Warning(text) => self.line(&format!("warning: {text}")),
            Notice::Error(text) => self.error(&format!("error: {text}")),
            Notice::Summary(table) => {
                if self.display != Display::Quiet {
                    crate::report::output::eprint(&format!("\n{table}"));
                }
            }
        }
    }

    fn event(&mut self, subjects: &[Subject], event: &Event) {
        self.clock.event(subjects, event);
        match event {
            Event::Started { task, attempt } => {
                self.started(*task, &subjects[*task].name, *attempt)
            }
            Event::Log { task, line } => self.logged(*task, &subjects[*task].name, line),
            Event::Retrying {
                task,
                attempt,
                error,
            } => {
                let first = error.lines().next().unwrap_or_default();
                self.status(
                    "Retrying",
                    &format!("{} after attempt {attempt}: {first}", subjects[*task].name),
                );
            }
            Event::Finished { task, outcome } => {
                self.finished(*task, &subjects[*task].name, outcome)
            }
            Event::PushStarted { task } => self.status("Pushing", &subjects[*task].reference),
            Event::Pushed { task, outcome } => self.pushed(&subjects[*task], outcome),
            Event::Tick => {
                let active: Vec<&str> = self
                    .running
                    .keys()
                    .map(|i| subjects[*i].name.as_str())
                    .collect();
                self.overall.set_message(active.join(", "));
            }
        }
    }
}

/// One method per event: what the reporter draws or writes for it.
impl Progress {
    fn started(&mut self, task: usize, name: &str, attempt: u32) {
        if attempt == 1 {
            self.status("Building", name);
        }
        if self.display == Display::Bars && !self.running.contains_key(&task) {
            let bar = self
                .multi
                .insert_before(&self.overall, ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template("  {spinner} {msg}").expect("valid template"),
            );
            bar.set_message(format!("{name}: starting"));
            bar.enable_steady_tick(Duration::from_millis(250));
            self.running.insert(task, bar);
        }
    }

    fn logged(&mut self, task: usize, name: &str, line: &str) {
        self.log(task, name, line);
        if self.debug {
            self.line(&format!("{name} | {line}"));
        }
        if line.starts_with("Step ") {
            if let Some(bar) = self.running.get(&task) {
                let step: String = line.chars().take(100).collect();
                bar.set_message(format!("{name}: {step}"));
            }
        }
    }

    fn finished(&mut self, task: usize, name: &str, outcome: &Outcome) {
        if let Some(bar) = self.running.remove(&task) {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.overall.inc(1);
        match outcome {
            Outcome::Built { seconds, .. } => {
                self.status("Built", &format!("{name} in {seconds:.1}s"))
            }
            Outcome::Fresh => self.status("Fresh", name),
            Outcome::Existing => self.status("Skipped", &format!("{name} (exists)")),
            Outcome::Cancelled => self.status("Cancelled", name),
            Outcome::ParentFailed { parent } => {
                self.status("Skipped", &format!("{name} (parent `{parent}` failed)"))
            }
            Outcome::Failed {
                error, log_tail, ..
            } => {
                let mut text = format!("error: building `{name}` failed: {error}");
                if !log_tail.is_empty() {
                    text.push_str(&format!(
                        "\n--- last {} lines of the build log ---",
                        log_tail.len()
                    ));
                    for line in log_tail {
                        text.push_str(&format!("\n  {line}"));
                    }
                }
                self.error(&text);
                if let Some(dir) = &self.logs_dir {
                    link_failed_log(dir, name);
                }
            }
        }
    }

    fn pushed(&self, subject: &Subject, outcome: &PushOutcome) {
        match outcome {
            PushOutcome::Pushed { seconds, .. } => {
                self.status("Pushed", &format!("{} in {seconds:.1}s", subject.reference))
            }
            PushOutcome::Failed { error, .. } => self.error(&format!(
                "error: pushing `{}` failed: {error}",
                subject.reference
            )),
            PushOutcome::Cancelled => {
                self.status("Cancelled", &format!("push of {}", subject.name))
            }
        }
    }
}

/// `000_FAILED_<name>.log -> <name>.log`, as kolla does, so failures sort first.
fn link_failed_log(dir: &std::path::Path, name: &str) {
    #[cfg(unix)]
    {
        let link = dir.join(format!("000_FAILED_{name}.log"));
        let _ = std::fs::remove_file(&link);
        let _ = std::os::unix::fs::symlink(format!("{name}.log"), link);
    }
}
