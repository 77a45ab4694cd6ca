//! Command-line interface.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

/// lakeform — Lake Formation for Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "lakeform", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the CustomResourceDefinitions as YAML, or write one file per CRD into a folder.
    Crds {
        /// Write `<name>.yaml` files into this folder instead of printing.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Print the version.
    Version,
    /// Helpers for debugging Jobs and the test environment.
    #[command(hide = true)]
    Debug {
        #[command(subcommand)]
        command: DebugCommand,
    },
}

#[derive(Subcommand, Debug)]
enum DebugCommand {
    /// Print `NAME=value` for each named environment variable (`NAME=` when unset).
    Env {
        /// Variable names.
        names: Vec<String>,
    },
}

/// Run a parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Crds { out } => crds(out),
        Command::Version => {
            println!("lakeform {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Debug {
            command: DebugCommand::Env { names },
        } => {
            let mut stdout = std::io::stdout().lock();
            for name in names {
                let value = std::env::var(&name).unwrap_or_default();
                writeln!(stdout, "{name}={value}")?;
            }
            Ok(())
        }
    }
}

fn crds(out: Option<PathBuf>) -> anyhow::Result<()> {
    let crds = lakeform_api::crd::all();
    match out {
        Some(dir) => {
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            for crd in &crds {
                let path = dir.join(lakeform_api::crd::file_name(crd));
                std::fs::write(&path, lakeform_api::crd::to_yaml(crd)?)
                    .with_context(|| format!("writing {}", path.display()))?;
                println!("wrote {}", path.display());
            }
        }
        None => {
            let docs = crds
                .iter()
                .map(lakeform_api::crd::to_yaml)
                .collect::<Result<Vec<_>, _>>()?;
            print!("{}", docs.join("---\n"));
        }
    }
    Ok(())
}
