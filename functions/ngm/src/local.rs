//! `ngm local run`: a whole migration on the cluster twin, no AWS account needed.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

/// The scenario `ngm local run` runs without `--scenario`.
pub const DEFAULT_SCENARIO: &str = "tests/scenarios/pulumi-tutorial.yaml";

#[derive(Debug, Subcommand)]
pub enum LocalCommand {
    /// Run the real state machine and function binaries against the twin: prints the timeline
    /// and a verdict (outcome, requests sent and failed, PDB violations, what was restored);
    /// exits 1 when the outcome is not the scenario's expected one or an invariant broke.
    Run {
        /// The scenario (default: the Pulumi tutorial's cluster).
        #[arg(long)]
        scenario: Option<PathBuf>,
        /// Write the verdict and the twin's report as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
        /// Simulated seconds per wall second (default: the scenario's `cluster.speed`).
        #[arg(long)]
        speed: Option<f64>,
        /// Where the function binaries are (default: beside this executable).
        #[arg(long)]
        functions_dir: Option<PathBuf>,
    },
}

pub fn main(cmd: LocalCommand) -> ExitCode {
    let LocalCommand::Run {
        scenario,
        report,
        speed,
        functions_dir,
    } = cmd;
    let scenario = scenario.unwrap_or_else(|| ngm_local::repo_root().join(DEFAULT_SCENARIO));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ngm: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    println!("ngm local run: {}", scenario.display());
    let opts = ngm_local::RunOptions {
        scenario,
        report,
        functions_dir,
        speed,
        print_timeline: true,
        ..Default::default()
    };
    match runtime.block_on(ngm_local::run(opts)) {
        Ok(outcome) => {
            print!("{}", outcome.verdict.summary());
            println!("logs: {}", outcome.work_dir.display());
            if outcome.verdict.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("ngm: {e}");
            ExitCode::from(2)
        }
    }
}
