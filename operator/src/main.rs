//! `lakeform`: the operator binary. Subcommands run the operator, print the CRDs, and run the
//! data-plane work (crawls, workflow steps) inside Jobs.

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
