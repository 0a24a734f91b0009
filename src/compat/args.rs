//! The command line with the position of every option, so kolla's configuration files can be
//! read in oslo.config's order: oslo reads each `--config-file` and `--config-dir` where it stands
//! on the command line, so a file after `--namespace x` overrides it and one before does not,
//! and the multi-valued options add up in that order.

use std::collections::BTreeMap;
use std::ffi::OsString;

use clap::{CommandFactory, FromArgMatches, parser::ValueSource};

use crate::config::cli::Cli;

/// Parses the process's arguments (clap prints usage errors and exits, as `Cli::parse`).
pub fn parse() -> Cli {
    parse_from(std::env::args_os()).unwrap_or_else(|e| e.exit())
}

/// Parses `args` (the program name first) and records where each given option stands.
pub fn parse_from<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let mut matches = Cli::command().try_get_matches_from(args)?;
    let mut positions: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for id in matches.ids() {
        let id = id.as_str();
        if matches.value_source(id) != Some(ValueSource::CommandLine) {
            continue;
        }
        if let Some(indices) = matches.indices_of(id) {
            positions.insert(id.to_string(), indices.collect());
        }
    }
    let mut cli = Cli::from_arg_matches_mut(&mut matches)?;
    cli.positions = positions;
    // a kolla flag this tool does not honour stops the run here, as a usage error naming it
    if let Some(refused) = cli.refused() {
        return Err(Cli::command().error(clap::error::ErrorKind::ArgumentConflict, refused));
    }
    cli.apply_nosummary();
    Ok(cli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_follow_the_command_line() {
        let cli = parse_from([
            "kolla-build",
            "--namespace",
            "x",
            "--config-file",
            "a.conf",
            "--config-dir",
            "d",
            "--config-file",
            "b.conf",
            "--template-override",
            "o.j2",
        ])
        .unwrap();
        assert_eq!(cli.config_file.len(), 2);
        let at = |id: &str| cli.positions[id].clone();
        assert!(at("namespace")[0] < at("config_file")[0]);
        assert!(at("config_file")[0] < at("config_dir")[0]);
        assert!(at("config_dir")[0] < at("config_file")[1]);
        assert!(at("config_file")[1] < at("template_override")[0]);
        assert!(!cli.positions.contains_key("base"));
    }
}
