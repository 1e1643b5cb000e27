//! `ngm`: the operator's command line. `ngm schema` prints the MigrationRequest JSON Schema;
//! `ngm validate FILE|-` checks a request and prints every problem with its field path;
//! `ngm local run` runs a whole migration on the cluster twin.

use std::io::Read;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod local;

#[derive(Debug, Parser)]
#[command(
    name = "ngm",
    version,
    about = "Zero-downtime EKS node-group migrations"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the JSON Schema of a MigrationRequest.
    Schema,
    /// Check a MigrationRequest (a file, or - for standard input): prints `ok`, or every
    /// problem on its own line with its field path and exits 1.
    Validate {
        /// The request file, or `-` for standard input.
        file: String,
    },
    /// Runs on this machine, against the cluster twin.
    Local {
        #[command(subcommand)]
        command: local::LocalCommand,
    },
}

fn read_input(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        Ok(s)
    } else {
        std::fs::read_to_string(file).map_err(|e| format!("cannot read {file}: {e}"))
    }
}

fn main() -> ExitCode {
    match Cli::parse().command {
        Command::Local { command } => local::main(command),
        Command::Schema => {
            let schema = ngm_core::request::request_schema();
            match serde_json::to_string_pretty(&schema) {
                Ok(s) => {
                    println!("{s}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("ngm: cannot print the schema: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Validate { file } => {
            let json = match read_input(&file) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("ngm: {e}");
                    return ExitCode::from(2);
                }
            };
            match ngm_core::request::check_request(&json) {
                Ok(_) => {
                    println!("ok");
                    ExitCode::SUCCESS
                }
                Err(problems) => {
                    for p in problems {
                        println!("{p}");
                    }
                    ExitCode::from(1)
                }
            }
        }
    }
}
