//! `ngm bench`: ngm beside what its users do today, each strategy on a fresh twin of the same
//! scenario, judged by the same twin (docs/bench.md).
//!
//! - `ngm`: the real state machine and functions ([`crate::run`]);
//! - `mng-update`, `drain-rotation`, `replace`: [`drivers`], over the real SDK clients.
//!
//! Each strategy's duration is divided by the critical path ([`ngm_twin::report::CriticalPath`]):
//! the one the twin computed in ngm's run when ngm ran (its log is the cleanest: nothing was
//! forced), else the strategy's own.

mod baseline;
mod drivers;
pub mod scale;
pub mod table;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use ngm_twin::report::{CriticalPath, Report};
use serde::Serialize;

use crate::run::{LocalError, RunOptions};

/// A way to move the workloads to the new group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    Ngm,
    MngUpdate,
    DrainRotation,
    Replace,
}

impl Strategy {
    pub const ALL: [Strategy; 4] = [
        Strategy::Ngm,
        Strategy::MngUpdate,
        Strategy::DrainRotation,
        Strategy::Replace,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Strategy::Ngm => "ngm",
            Strategy::MngUpdate => "mng-update",
            Strategy::DrainRotation => "drain-rotation",
            Strategy::Replace => "replace",
        }
    }
}

impl FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|k| k.name()).collect();
                format!("unknown strategy {s:?}: give some of {}", names.join(", "))
            })
    }
}

/// Parses `ngm,mng-update,...`: every name known, none twice, at least one.
pub fn parse_strategies(list: &str) -> Result<Vec<Strategy>, String> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim) {
        let s: Strategy = name.parse()?;
        if out.contains(&s) {
            return Err(format!("strategy {name:?} is given twice"));
        }
        out.push(s);
    }
    if out.is_empty() {
        return Err("no strategy given".into());
    }
    Ok(out)
}

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub scenario: PathBuf,
    pub strategies: Vec<Strategy>,
    pub speed: Option<f64>,
    pub functions_dir: Option<PathBuf>,
    /// Wall time allowed to each alternative.
    pub wall_limit: Duration,
}

/// One strategy's figures (the JSON report's `strategies[]`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyResult {
    pub name: String,
    /// `success`, `failed: ...`, `not applicable: ...`, or ngm's outcome.
    pub outcome: String,
    /// What the strategy left out or gave up on.
    pub notes: Vec<String>,
    pub sent_requests: u64,
    pub failed_requests: u64,
    /// Failed requests by stream (`service` or `service>backend`), then reason.
    pub failures: BTreeMap<String, BTreeMap<String, u64>>,
    pub pdb_violations: usize,
    /// Pods that went with their node instead of ending gracefully.
    pub forced_terminations: u64,
    /// ngm: the execution's start to its end; the others: their first call to their end.
    pub duration_seconds: f64,
    pub critical_path_seconds: f64,
    pub ratio: f64,
    /// The twin's critical path in this strategy's own run.
    pub critical_path: CriticalPath,
    pub kubernetes_requests: u64,
    /// Objects the strategy's Kubernetes gets and lists returned, and the objects the cluster
    /// had when the run began.
    pub objects_read: u64,
    pub cluster_objects: u64,
    pub aws_requests: u64,
    /// ngm only: states entered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state_transitions: Option<usize>,
    /// ngm only: each function's invocations, slowest, peak memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub functions: Option<BTreeMap<String, crate::host::FunctionStats>>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BenchReport {
    pub scenario: String,
    pub strategies: Vec<StrategyResult>,
}

fn failures(report: &Report) -> BTreeMap<String, BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for s in &report.traffic.services {
        if s.failed == 0 {
            continue;
        }
        let reasons: BTreeMap<String, u64> = s
            .failures
            .iter()
            .map(|(r, n)| {
                let name = serde_json::to_value(r)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_else(|| format!("{r:?}"));
                (name, *n)
            })
            .collect();
        out.insert(s.stream.clone(), reasons);
    }
    out
}

fn from_report(name: &str, outcome: String, notes: Vec<String>, report: &Report) -> StrategyResult {
    StrategyResult {
        name: name.to_string(),
        outcome,
        notes,
        sent_requests: report.traffic.sent(),
        failed_requests: report.traffic.failed(),
        failures: failures(report),
        pdb_violations: report.budget_violations.len(),
        forced_terminations: report.pods_lost_with_nodes,
        duration_seconds: 0.0,
        critical_path_seconds: report.critical_path.total_seconds,
        ratio: 0.0,
        critical_path: report.critical_path.clone(),
        kubernetes_requests: report.requests.kubernetes_total,
        objects_read: report.requests.kubernetes_objects_read.values().sum(),
        cluster_objects: report.cluster_objects,
        aws_requests: report.requests.eks_total,
        state_transitions: None,
        functions: None,
    }
}

async fn run_ngm(opts: &BenchOptions) -> Result<StrategyResult, LocalError> {
    let outcome = crate::run::run(RunOptions {
        scenario: opts.scenario.clone(),
        speed: opts.speed,
        functions_dir: opts.functions_dir.clone(),
        ..RunOptions::default()
    })
    .await?;
    let v = &outcome.verdict;
    let mut notes = v.expectation.clone();
    notes.extend(
        v.invariants
            .iter()
            .filter(|(_, c)| c.is_broken())
            .map(|(k, _)| format!("invariant {k} broke")),
    );
    let mut r = from_report(
        Strategy::Ngm.name(),
        v.outcome.name().to_string(),
        notes,
        &outcome.report,
    );
    r.duration_seconds = outcome
        .execution_seconds
        .unwrap_or(v.figures.simulated_seconds);
    r.aws_requests = v.figures.eks_requests + v.figures.aws_requests.values().sum::<u64>();
    r.state_transitions = Some(v.figures.state_transitions);
    r.functions = Some(v.figures.functions.clone());
    Ok(r)
}

async fn run_one(strategy: Strategy, opts: &BenchOptions) -> Result<StrategyResult, LocalError> {
    if strategy == Strategy::Ngm {
        return run_ngm(opts).await;
    }
    let scenario =
        ngm_twin::scenario::Scenario::load(&opts.scenario).map_err(|e| LocalError::Scenario {
            path: opts.scenario.clone(),
            reason: e.to_string(),
        })?;
    if let Some(why) = baseline::not_applicable(strategy, &scenario) {
        return Ok(StrategyResult {
            outcome: format!("not applicable: {why}"),
            ..from_report(
                strategy.name(),
                String::new(),
                Vec::new(),
                &Report::default(),
            )
        });
    }
    let run = baseline::run(strategy, &opts.scenario, opts.speed, opts.wall_limit).await?;
    let (outcome, notes) = match run.ended {
        Ok(notes) => ("success".to_string(), notes),
        Err(why) => (format!("failed: {why}"), Vec::new()),
    };
    let mut r = from_report(strategy.name(), outcome, notes, &run.report);
    r.duration_seconds = run.duration_seconds;
    r.aws_requests += run.aws_requests;
    Ok(r)
}

/// Runs every strategy of `opts` on its own twin, one after the other.
pub async fn bench(opts: &BenchOptions) -> Result<BenchReport, LocalError> {
    let mut strategies = Vec::new();
    for s in &opts.strategies {
        strategies.push(run_one(*s, opts).await?);
    }
    let reference = strategies
        .iter()
        .find(|r| r.name == Strategy::Ngm.name())
        .map(|r| r.critical_path.total_seconds)
        .filter(|t| *t > 0.0);
    for r in &mut strategies {
        r.critical_path_seconds = reference.unwrap_or(r.critical_path.total_seconds);
        r.ratio = if r.critical_path_seconds > 0.0 && r.duration_seconds > 0.0 {
            r.duration_seconds / r.critical_path_seconds
        } else {
            0.0
        };
    }
    Ok(BenchReport {
        scenario: opts.scenario.display().to_string(),
        strategies,
    })
}

/// Every strategy on a generated cluster of each size (`scale::scenario`), the scenarios
/// written to `dir`.
pub async fn bench_scale(
    opts: &BenchOptions,
    sizes: &[u32],
    dir: &Path,
) -> Result<Vec<scale::ScalePoint>, LocalError> {
    let mut points = Vec::new();
    for &nodes in sizes {
        let scenario = scale::scenario(nodes).map_err(LocalError::Io)?;
        let path = dir.join(format!("scale-{nodes}-nodes.yaml"));
        let text = serde_yaml::to_string(&scenario).map_err(|e| LocalError::Io(e.to_string()))?;
        std::fs::write(&path, text)
            .map_err(|e| LocalError::Io(format!("{}: {e}", path.display())))?;
        let report = bench(&BenchOptions {
            scenario: path,
            ..opts.clone()
        })
        .await?;
        let point = scale::ScalePoint {
            nodes,
            pods: nodes * scale::PODS_PER_NODE,
            report,
        };
        // Each size as it ends: a long run that is stopped keeps what it measured.
        eprint!("{}", scale::render(std::slice::from_ref(&point)));
        points.push(point);
    }
    Ok(points)
}

/// A strategy's row with nothing measured, for tests.
#[cfg(test)]
pub(crate) fn blank(name: &str) -> StrategyResult {
    from_report(name, "success".into(), Vec::new(), &Report::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strategies_are_parsed_in_order_and_refused_clearly() {
        assert_eq!(
            parse_strategies("replace, ngm").ok(),
            Some(vec![Strategy::Replace, Strategy::Ngm])
        );
        let all = parse_strategies("ngm,mng-update,drain-rotation,replace").unwrap_or_default();
        assert_eq!(all, Strategy::ALL.to_vec());
        let unknown = parse_strategies("ngm,blue-green").unwrap_err();
        assert!(unknown.contains("\"blue-green\"") && unknown.contains("drain-rotation"));
        assert!(parse_strategies("ngm,ngm").unwrap_err().contains("twice"));
        assert!(parse_strategies("").is_err());
    }

    fn result(name: &str, duration: f64, critical: f64) -> StrategyResult {
        let mut r = blank(name);
        r.duration_seconds = duration;
        r.critical_path.total_seconds = critical;
        r
    }

    #[test]
    fn the_table_has_a_row_per_strategy_and_says_each_failure() {
        let mut replace = result("replace", 190.0, 150.0);
        replace.failed_requests = 431;
        replace.failures.insert(
            "loadBalancer → apps/echoserver".into(),
            BTreeMap::from([("nodeGone".to_string(), 431)]),
        );
        let report = BenchReport {
            scenario: "s.yaml".into(),
            strategies: vec![result("ngm", 300.0, 150.0), replace],
        };
        let text = table::render(&report);
        let rows: Vec<&str> = text.lines().collect();
        assert!(rows[1].starts_with("strategy") && rows[1].contains("ratio"));
        assert!(rows[2].starts_with("ngm ") && rows[3].starts_with("replace "));
        assert!(text.contains(
            "replace: failed by stream and reason: loadBalancer → apps/echoserver: nodeGone 431"
        ));
        let md = table::markdown(&report);
        assert_eq!(md.lines().count(), 4);
        assert!(
            md.lines()
                .nth(3)
                .is_some_and(|l| l.starts_with("| replace | success | 0 | 431 |"))
        );
    }
}
