//! `ngm-campaign [--base SCENARIO] [--jobs N] [--report FILE] [--only TEXT]... [--limit N]`:
//! the fault campaign (see `ngm_local::campaign`). Prints each run as it ends, then the matrix
//! (step × fault → outcome) and the total time; exits 1 if any run did not end in success or
//! an exact rollback.

use std::path::PathBuf;
use std::process::ExitCode;

use ngm_local::campaign::{CampaignOptions, campaign};

const USAGE: &str = "usage: ngm-campaign [--base SCENARIO] [--jobs N] [--report FILE] [--only TEXT]... [--limit N] [--work-dir DIR]";

fn parse() -> Result<(CampaignOptions, Option<PathBuf>), String> {
    let mut opts = CampaignOptions {
        base: ngm_local::repo_root().join("tests/scenarios/campaign-base.yaml"),
        jobs: 1,
        work_dir: std::env::temp_dir().join(format!(
            "ngm-campaign-{}",
            chrono::Utc::now().format("%Y%m%dT%H%M%S")
        )),
        only: Vec::new(),
        limit: None,
    };
    let mut report = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = || {
            args.next()
                .ok_or_else(|| format!("{a} needs a value\n{USAGE}"))
        };
        match a.as_str() {
            "--base" => opts.base = PathBuf::from(value()?),
            "--jobs" => {
                opts.jobs = value()?
                    .parse()
                    .map_err(|e| format!("--jobs: {e}\n{USAGE}"))?;
            }
            "--report" => report = Some(PathBuf::from(value()?)),
            "--only" => opts.only.push(value()?),
            "--limit" => {
                opts.limit = Some(
                    value()?
                        .parse()
                        .map_err(|e| format!("--limit: {e}\n{USAGE}"))?,
                );
            }
            "--work-dir" => opts.work_dir = PathBuf::from(value()?),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok((opts, report))
}

fn main() -> ExitCode {
    let (opts, report) = match parse() {
        Ok(x) => x,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ngm-campaign: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(campaign(&opts)) {
        Err(e) => {
            eprintln!("ngm-campaign: {e}");
            ExitCode::from(2)
        }
        Ok(r) => {
            println!("\n{}", r.matrix);
            for f in r.runs.iter().filter(|x| !x.passed) {
                println!("FAIL {}: {}", f.label, f.problems.join(" | "));
                if let Some(d) = &f.work_dir {
                    println!("     logs: {}", d.display());
                }
            }
            println!(
                "{} runs, {} failed, {:.0} s wall ({} at a time); work dir {}",
                r.runs.len(),
                r.failed,
                r.wall_seconds,
                r.jobs,
                opts.work_dir.display()
            );
            if let Some(path) = report {
                let body = serde_json::to_string_pretty(&r).unwrap_or_default();
                if let Err(e) = std::fs::write(&path, body) {
                    eprintln!("ngm-campaign: {}: {e}", path.display());
                    return ExitCode::from(2);
                }
            }
            if r.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
