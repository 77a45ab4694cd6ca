//! `lakeform`: the operator binary. Subcommands run the operator, print the CRDs, and run the
//! data-plane work (crawls, workflow steps) inside Jobs.

mod catalog;
mod cli;
mod cli_access;
mod cli_blueprint;
mod cli_forward;
mod cli_query;
mod controller;
mod desired;
mod engine;
mod storage;
mod tls;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // kube-client (ring) and the S3 stack may enable two rustls crypto backends; pick one for
    // the whole process before any TLS client is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
