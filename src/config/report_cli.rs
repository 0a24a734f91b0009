//! `kolla-build report SUMMARY.json -o FILE.html`: the picture of an earlier run, from its JSON
//! summary (`--summary-json-file`).
//!
//! kolla-build's positional arguments are image regexes, as kolla's are; `report` is the
//! subcommand only as the very first argument. To select the images that match `report`, put it
//! anywhere else (`kolla-build keystone report`) or after `--` (`kolla-build -- report`). kolla's
//! own tree has no image named like that.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::Parser;

/// The first argument that makes the subcommand.
pub const SUBCOMMAND: &str = "report";

#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "kolla-build report",
    version,
    about = "Draw an earlier run as one self-contained HTML page (no network): a lane per engine \
             and build slot, a bar per image coloured by outcome, the critical path marked",
    after_help = "Example:\n  kolla-build report nightly-summary.json -o nightly.html\n\n\
                  To select images matching `report` instead: kolla-build -- report"
)]
pub struct ReportCli {
    /// The JSON summary a run wrote with --summary-json-file
    #[arg(value_name = "SUMMARY.json")]
    pub summary: PathBuf,
    /// Where to write the page
    #[arg(short = 'o', long, value_name = "FILE.html")]
    pub output: PathBuf,
}

/// The subcommand's arguments when `args` (the program name first) start with `report`, else
/// `None` (a build, whose positionals are regexes).
pub fn parse_if_report(args: &[OsString]) -> Option<Result<ReportCli, clap::Error>> {
    // The usage line names the program as it is typed: `kolla-build report`.
    let program = OsString::from(format!("kolla-build {SUBCOMMAND}"));
    (args.get(1)? == SUBCOMMAND).then(|| {
        ReportCli::try_parse_from(std::iter::once(program).chain(args[2..].iter().cloned()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &[&str]) -> Vec<OsString> {
        std::iter::once("kolla-build")
            .chain(line.iter().copied())
            .map(OsString::from)
            .collect()
    }

    #[test]
    fn report_first_is_the_subcommand_anywhere_else_a_regex() {
        let parsed = parse_if_report(&args(&["report", "s.json", "-o", "r.html"]));
        assert_eq!(
            parsed.unwrap().unwrap(),
            ReportCli {
                summary: "s.json".into(),
                output: "r.html".into()
            }
        );
        assert!(parse_if_report(&args(&["keystone", "report"])).is_none());
        assert!(parse_if_report(&args(&["--", "report"])).is_none());
        assert!(parse_if_report(&args(&[])).is_none());
        let missing = parse_if_report(&args(&["report", "s.json"])).unwrap();
        let missing = missing.unwrap_err().to_string();
        assert!(missing.contains("--output"), "{missing}");
        assert!(missing.contains("Usage: kolla-build report"), "{missing}");
    }
}
