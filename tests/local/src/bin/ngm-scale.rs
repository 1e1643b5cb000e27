//! `ngm-scale PODS`: prints the YAML scenario of a PODS-pod migration (`ngm_local::scale`), for
//! `ngm local run --scenario` (scripts/retire-10k runs it at 10,000 pods).

use std::process::ExitCode;

fn main() -> ExitCode {
    let pods = std::env::args().nth(1).and_then(|a| a.parse::<u32>().ok());
    let Some(pods) = pods.filter(|p| *p > 0) else {
        eprintln!("usage: ngm-scale PODS");
        return ExitCode::from(2);
    };
    match ngm_local::scale::retire_scenario(pods)
        .and_then(|s| serde_yaml::to_string(&s).map_err(|e| e.to_string()))
    {
        Ok(yaml) => {
            print!("{yaml}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ngm-scale: {e}");
            ExitCode::from(2)
        }
    }
}
