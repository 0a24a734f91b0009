//! The command: settings in, actions out, errors mapped to exit codes.

use std::io::Write;
use std::process::ExitCode;

use crate::common::error::{Error, Result};
use crate::config::cli::Cli;
use crate::config::report_cli::ReportCli;
use crate::graph::listing;
use crate::graph::selection::Status;
use crate::prepare::workdir;
use crate::prepare::{Prepared, prepare};
use crate::report::event::{Notice, Reporter};
use crate::report::progress::{Display, Progress};
use crate::settings::{Actions, Settings};

/// Runs kolla-build with parsed arguments; prints errors and returns the exit code.
pub fn run(cli: Cli) -> ExitCode {
    crate::common::signals::install();
    // Where a build's summary goes, in case the settings themselves are the error.
    let builds = !(cli.template_only
        || cli.list_images
        || cli.list_dependencies
        || cli.save_dependency.is_some());
    let absolute = |f: &std::path::PathBuf| {
        std::env::current_dir()
            .map(|cwd| cwd.join(f))
            .unwrap_or_else(|_| f.clone())
    };
    let summary_file = cli.summary_json_file.as_ref().map(absolute);
    let report_file = cli.report.as_ref().map(absolute);
    let quiet = cli.quiet;
    let json_on_stdout = cli.format == Some(crate::common::types::SummaryFormat::Json);
    let settings = match Settings::resolve(cli) {
        Ok(settings) => settings,
        Err(err) => {
            if builds {
                let early = Progress::new(Display::detect(quiet));
                crate::build::write_summary_to(
                    summary_file.as_deref(),
                    json_on_stdout,
                    report_file.as_deref(),
                    &err,
                    &early,
                    &early.clock(),
                );
            }
            return report(&err);
        }
    };
    let mut progress = Progress::new(Display::detect(settings.quiet));
    progress.set_debug(settings.debug);
    for notice in &settings.notices {
        progress.notice(notice);
    }
    match execute(&settings, &mut progress) {
        Ok(code) => code,
        // A closed stdout (`| head`) ends the output, not successfully written work.
        Err(Error::Write { path, source })
            if path.as_os_str() == "<stdout>" && crate::report::output::is_broken_pipe(&source) =>
        {
            ExitCode::SUCCESS
        }
        Err(err) => report(&err),
    }
}

/// `kolla-build report SUMMARY.json -o FILE.html`: the picture of an earlier run.
pub fn run_report(cli: ReportCli) -> ExitCode {
    match crate::report::timeline::write_from_summary_file(&cli.summary, &cli.output) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => report(&err),
    }
}

fn report(err: &Error) -> ExitCode {
    crate::report::output::eprintln(&error_text(err));
    ExitCode::from(err.exit_code())
}

fn error_text(err: &Error) -> String {
    let text = err.to_string();
    if matches!(err, Error::Template(_) | Error::Templates { .. }) {
        text.trim_end().to_string()
    } else {
        format!("error: {}", text.trim_end())
    }
}

/// The run as a sequence: prepare (the settings are checked already), then each action asked.
fn execute(settings: &Settings, progress: &mut Progress) -> Result<ExitCode> {
    let prepared = prepare_or_summarize(settings, progress)?;
    for notice in &prepared.notices {
        progress.notice(notice);
    }
    let actions = &settings.actions;
    if actions.template_only {
        write_templates(settings, &prepared, progress)?;
    }
    if let Some(path) = &actions.save_dependency {
        let dot = listing::dot(&prepared.graph, &prepared.selection);
        crate::common::fs::write_atomically(path, dot.as_bytes())?;
    }
    print_listings(actions, &prepared)?;
    if actions.builds() {
        let clock = progress.clock();
        return crate::build::build(settings, &prepared, progress, &clock);
    }
    Ok(ExitCode::SUCCESS)
}

/// [`prepare`], or its error (a signal's, if one came) with a build's summary written.
fn prepare_or_summarize(settings: &Settings, progress: &Progress) -> Result<Prepared> {
    let builds = settings.actions.builds();
    let prepared = match prepare(settings) {
        Ok(prepared) => prepared,
        Err(err) => {
            let err = match crate::common::signals::interrupted() {
                Some(signal) => Error::Interrupted { signal },
                None => err,
            };
            if builds {
                crate::build::write_error_summary(
                    settings,
                    None,
                    &err,
                    progress,
                    &progress.clock(),
                );
            }
            return Err(err);
        }
    };
    if let Some(signal) = crate::common::signals::interrupted() {
        let err = Error::Interrupted { signal };
        if builds {
            crate::build::write_error_summary(
                settings,
                Some(&prepared),
                &err,
                progress,
                &progress.clock(),
            );
        }
        return Err(err);
    }
    Ok(prepared)
}

/// `--template-only`: the selected images' Dockerfiles and files into `--work-dir`.
fn write_templates(settings: &Settings, prepared: &Prepared, progress: &Progress) -> Result<()> {
    let work_dir = settings
        .work_dir
        .as_deref()
        .expect("settings are refused with --template-only and no --work-dir");
    let images: Vec<_> = prepared
        .selection
        .ids_with(Status::Matched)
        .map(|id| {
            let name = prepared.graph.name(id);
            (
                prepared
                    .tree
                    .image(name)
                    .expect("graph images come from the tree"),
                prepared.dockerfiles[name].as_str(),
            )
        })
        .collect();
    let dir = workdir::write_tree(
        work_dir,
        &prepared.tree,
        &images,
        &prepared.extra_files,
        &prepared.context_dirs,
    )?;
    progress.notice(&Notice::Note(format!(
        "Rendered {} images for {} {} in {} ms into {}",
        images.len(),
        settings.naming.base,
        settings.naming.install_type,
        prepared.render_time.as_millis(),
        dir.display()
    )));
    Ok(())
}

/// `--list-images` and `--list-dependencies`, on stdout.
fn print_listings(actions: &Actions, prepared: &Prepared) -> Result<()> {
    let (graph, selection) = (&prepared.graph, &prepared.selection);
    let stdout_err = |source| Error::Write {
        path: "<stdout>".into(),
        source,
    };
    let mut stdout = std::io::stdout().lock();
    if actions.list_images {
        stdout
            .write_all(listing::image_list(graph, selection).as_bytes())
            .map_err(stdout_err)?;
    }
    if actions.list_dependencies {
        let json = serde_json::to_string_pretty(&listing::dependency_tree(graph, selection))
            .expect("JSON values serialize");
        writeln!(stdout, "{json}").map_err(stdout_err)?;
    }
    Ok(())
}
