use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    kolla_build::app::run(kolla_build::cli::Cli::parse())
}
