//! `ngm bench`: ngm beside the EKS managed update, a drain-based rotation and a replacement,
//! each on a fresh twin of the same scenario (docs/bench.md).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

/// `ngm bench --scenario`'s default speed: a debug build's invocation of about 250 ms counts
/// as about a second, what a warm Lambda and its state transition take in AWS; at the
/// scenarios' 60x it would count as 15 s and measure this machine, not ngm.
const SCENARIO_SPEED: f64 = 5.0;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The scenario (default: the Pulumi tutorial's cluster).
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// The strategies to run, in order, comma-separated.
    #[arg(long, default_value = "ngm,mng-update,drain-rotation,replace")]
    strategies: String,
    /// Write the figures as JSON here (a top-level `strategies` array).
    #[arg(long)]
    report: Option<PathBuf>,
    /// Simulated seconds per wall second (default: 5 for a scenario, so that a function's
    /// invocation, which runs in real time, counts about what it takes in AWS; the generated
    /// clusters of --scale run at 60).
    #[arg(long)]
    speed: Option<f64>,
    /// Generate clusters of these sizes in nodes (30 pods a node, a PDB on every tenth
    /// Deployment, two load balancers with traffic) and run every strategy on each, instead of
    /// --scenario.
    #[arg(long, value_delimiter = ',', conflicts_with = "scenario")]
    scale: Vec<u32>,
    /// With --scale: write the chart of duration against size here (SVG).
    #[arg(long, default_value = "bench-scale.svg")]
    chart: PathBuf,
    /// Where the function binaries are (default: beside this executable).
    #[arg(long)]
    functions_dir: Option<PathBuf>,
    /// Print the table in Markdown too (for the README).
    #[arg(long)]
    markdown: bool,
}

pub fn main(args: BenchArgs) -> ExitCode {
    let strategies = match ngm_local::bench::parse_strategies(&args.strategies) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("ngm: --strategies: {e}");
            return ExitCode::from(2);
        }
    };
    if !args.scale.is_empty() {
        return scale(args, strategies);
    }
    let scenario = args
        .scenario
        .unwrap_or_else(|| ngm_local::repo_root().join(crate::local::DEFAULT_SCENARIO));
    if !scenario.is_file() {
        eprintln!("ngm: --scenario: {} is not a file", scenario.display());
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ngm: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let opts = ngm_local::bench::BenchOptions {
        scenario,
        strategies,
        speed: Some(args.speed.unwrap_or(SCENARIO_SPEED)),
        functions_dir: args.functions_dir,
        wall_limit: Duration::from_secs(1800),
    };
    let report = match runtime.block_on(ngm_local::bench::bench(&opts)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ngm: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.report {
        let body = serde_json::to_string_pretty(&report).unwrap_or_default();
        if let Err(e) = std::fs::write(path, body + "\n") {
            eprintln!("ngm: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let mut text = ngm_local::bench::table::render(&report);
    if args.markdown {
        text.push('\n');
        text.push_str(&ngm_local::bench::table::markdown(&report));
    }
    match crate::emit(text.trim_end()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}

fn write(path: &std::path::Path, body: &str) -> Result<(), ExitCode> {
    std::fs::write(path, body).map_err(|e| {
        eprintln!("ngm: {}: {e}", path.display());
        ExitCode::from(2)
    })
}

fn scale(args: BenchArgs, strategies: Vec<ngm_local::bench::Strategy>) -> ExitCode {
    if let Some(bad) = args.scale.iter().find(|n| **n < 3) {
        eprintln!("ngm: --scale {bad}: at least 3 nodes (one per zone of the generated cluster)");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ngm: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let dir = std::env::temp_dir().join(format!("ngm-bench-scale-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("ngm: {}: {e}", dir.display());
        return ExitCode::from(2);
    }
    let opts = ngm_local::bench::BenchOptions {
        scenario: PathBuf::new(),
        strategies,
        speed: args.speed,
        functions_dir: args.functions_dir,
        wall_limit: Duration::from_secs(3 * 3600),
    };
    let points = match runtime.block_on(ngm_local::bench::bench_scale(&opts, &args.scale, &dir)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("ngm: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(path) = &args.report {
        let body = serde_json::to_string_pretty(&serde_json::json!({ "scale": points }))
            .unwrap_or_default();
        if let Err(code) = write(path, &(body + "\n")) {
            return code;
        }
    }
    if let Err(code) = write(&args.chart, &ngm_local::bench::scale::chart(&points)) {
        return code;
    }
    let mut text = ngm_local::bench::scale::render(&points);
    text.push_str(&format!("chart: {}\n", args.chart.display()));
    match crate::emit(text.trim_end()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(code) => code,
    }
}
