//! The fault campaign: for every step and every kind of call that step makes (learned from a
//! clean baseline run's per-caller counts), one run with a fault at that call, for each of a
//! throttle, a server error (500), a lost response and a Lambda timeout. Every run must end in
//! success or an exact rollback: never `RollbackFailed`, never a leftover (I3/I4 on the
//! cluster and the AWS side, lock included).
//!
//! Throttles and 500s hit one kind of call of one function (`function:` on the twin's faults,
//! C6): the twin (or moto, for the AWS services other than EKS) answers that call 429
//! (Kubernetes, with `Retry-After`) or `ThrottlingException`, or 500, the first times it is
//! made. A lost response and a
//! Lambda timeout hit the step's invocation in the Lambda host: the step ran, its answer never
//! came; or it was killed at its timeout (once as it answered, once half-way through).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::{Value, json};

use crate::expect::Outcome;
use crate::run::{FUNCTIONS, RunOptions, run};

/// The faults of the campaign.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    Throttle,
    ServerError,
    LostResponse,
    LambdaTimeout,
}

impl FaultKind {
    pub const ALL: [FaultKind; 4] = [
        FaultKind::Throttle,
        FaultKind::ServerError,
        FaultKind::LostResponse,
        FaultKind::LambdaTimeout,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Throttle => "throttle",
            FaultKind::ServerError => "500",
            FaultKind::LostResponse => "lost response",
            FaultKind::LambdaTimeout => "Lambda timeout",
        }
    }
}

/// Which API a call goes to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Api {
    /// `"<verb> <resource>"`, as the twin counts it.
    Kubernetes,
    /// `"eks:<Operation>"`, served by the twin.
    Eks,
    /// `"<service>:<Operation>"`, served by moto.
    Moto,
}

/// One kind of call a function makes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Call {
    pub api: Api,
    pub call: String,
}

/// One run of the campaign.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Cell {
    pub function: String,
    pub fault: FaultKind,
    /// The call it hits (throttle and 500); `None` for faults on the invocation.
    pub call: Option<Call>,
    /// For a Lambda timeout: kill the function this many milliseconds into the invocation
    /// (`None`: as it answers).
    pub at_millis: Option<u64>,
}

impl Cell {
    pub fn label(&self) -> String {
        let at = self.call.as_ref().map_or_else(
            || match self.at_millis {
                Some(ms) => format!(" (killed {ms} ms in)"),
                None if self.fault == FaultKind::LambdaTimeout => " (killed as it answered)".into(),
                None => String::new(),
            },
            |c| format!(" at {}", c.call),
        );
        format!("{} {}{at}", self.function, self.fault.name())
    }
}

/// How many times a throttle answers before the call passes: more than one call's worth of
/// SDK retries (3 attempts), so the step's own retry budget is what absorbs it.
pub const THROTTLES: u32 = 5;

/// The scenario of one cell: the base plus the fault, expecting success or a rollback.
pub fn cell_scenario(base: &Value, cell: &Cell) -> Value {
    let mut s = base.clone();
    let name = format!(
        "{}-{}",
        base.get("name")
            .and_then(Value::as_str)
            .unwrap_or("campaign"),
        slug(&cell.label())
    );
    s["name"] = json!(name);
    s["expect"] = json!({"outcome": ["success", "rolledBack"]});
    let push = |s: &mut Value, path: &[&str], v: Value| {
        let mut at = &mut *s;
        for p in path {
            if at.get(*p).is_none() {
                at[*p] = json!({});
            }
            at = &mut at[*p];
        }
        if !at.is_array() {
            *at = json!([]);
        }
        if let Some(a) = at.as_array_mut() {
            a.push(v);
        }
    };
    match (&cell.call, cell.fault) {
        (Some(call), FaultKind::Throttle | FaultKind::ServerError) => {
            // The twin serves Kubernetes and EKS and hands the other AWS calls' faults to moto.
            let throttle = cell.fault == FaultKind::Throttle;
            let mut f = json!({
                "kind": if throttle { "throttle" } else { "fail" },
                "api": if call.api == Api::Kubernetes { "kubernetes" } else { "aws" },
                "call": call.call,
                "times": if throttle { THROTTLES } else { 1 },
                "function": cell.function,
            });
            if !throttle {
                f["code"] = json!(500);
            }
            push(&mut s, &["faults"], f);
        }
        (_, FaultKind::LostResponse) => push(
            &mut s,
            &["workflow", "lambdaFaults"],
            json!({"function": cell.function, "kind": "lostResponse"}),
        ),
        (_, FaultKind::LambdaTimeout) => {
            let mut f = json!({"function": cell.function, "kind": "timeout"});
            if let Some(ms) = cell.at_millis {
                f["atMillis"] = json!(ms);
            }
            push(&mut s, &["workflow", "lambdaFaults"], f);
        }
        (None, _) => {}
    }
    s
}

fn slug(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').chars().take(60).collect()
}

/// `ngm/<function>` (Kubernetes, EKS) or `app/ngm-local-<function>` (AWS SDK), to a function.
fn caller_function(key: &str) -> Option<&str> {
    let f = key
        .rsplit_once("ngm-local-")
        .map(|(_, f)| f)
        .or_else(|| key.strip_prefix("ngm/"))?;
    let f = f.split(['/', ' ']).next().unwrap_or(f);
    FUNCTIONS.iter().find(|x| **x == f).copied()
}

/// Every leaf call under `v`: `{"verb": .., "resource": .., "count": n}` entries, `"verb
/// resource": n` (Kubernetes), `"service:Operation": n` (AWS) or `"Operation": n` under an
/// EKS part.
fn leaf_calls(v: &Value, eks_part: bool, out: &mut BTreeSet<Call>) {
    match v {
        Value::Array(items) => {
            for i in items {
                leaf_calls(i, eks_part, out);
            }
        }
        Value::Object(m) => {
            if let (Some(verb), Some(resource)) = (
                m.get("verb").and_then(Value::as_str),
                m.get("resource").and_then(Value::as_str),
            ) {
                if m.get("count").and_then(Value::as_u64).unwrap_or(1) > 0 {
                    out.insert(Call {
                        api: Api::Kubernetes,
                        call: format!("{verb} {resource}"),
                    });
                }
                return;
            }
            for (k, x) in m {
                match x {
                    Value::Number(n) if n.as_u64().unwrap_or(0) > 0 => {
                        if let Some((service, op)) = k.split_once(':') {
                            let api = if service == "eks" {
                                Api::Eks
                            } else {
                                Api::Moto
                            };
                            out.insert(Call {
                                api,
                                call: format!("{service}:{op}"),
                            });
                        } else if k.contains(' ') {
                            out.insert(Call {
                                api: Api::Kubernetes,
                                call: k.clone(),
                            });
                        } else if eks_part && k.chars().next().is_some_and(char::is_uppercase) {
                            out.insert(Call {
                                api: Api::Eks,
                                call: format!("eks:{k}"),
                            });
                        }
                    }
                    _ => leaf_calls(x, eks_part || k.eq_ignore_ascii_case("eks"), out),
                }
            }
        }
        _ => {}
    }
}

/// Each function's kinds of calls, from any per-caller breakdown in the twin's report and
/// moto's counts (keys naming `ngm/<function>` or `ngm-local-<function>`).
pub fn calls_by_function(
    twin_report: &Value,
    aws_calls: &Value,
) -> BTreeMap<String, BTreeSet<Call>> {
    let mut out: BTreeMap<String, BTreeSet<Call>> = BTreeMap::new();
    fn walk(v: &Value, out: &mut BTreeMap<String, BTreeSet<Call>>) {
        match v {
            Value::Object(m) => {
                for (k, x) in m {
                    if let Some(f) = caller_function(k) {
                        leaf_calls(x, false, out.entry(f.to_string()).or_default());
                    } else {
                        walk(x, out);
                    }
                }
            }
            Value::Array(a) => {
                for x in a {
                    // A list of `{caller, ...}` entries.
                    if let Some(f) = x
                        .get("caller")
                        .and_then(Value::as_str)
                        .and_then(caller_function)
                    {
                        leaf_calls(x, false, out.entry(f.to_string()).or_default());
                    } else {
                        walk(x, out);
                    }
                }
            }
            _ => {}
        }
    }
    walk(
        twin_report.get("requests").unwrap_or(&Value::Null),
        &mut out,
    );
    walk(aws_calls, &mut out);
    out
}

/// The cells for the steps a baseline run invoked and the calls each made.
pub fn plan(
    invoked: &BTreeMap<String, u64>,
    calls: &BTreeMap<String, BTreeSet<Call>>,
    slowest_millis: &BTreeMap<String, u64>,
) -> Vec<Cell> {
    let mut cells = Vec::new();
    for f in FUNCTIONS {
        if invoked.get(f).copied().unwrap_or(0) == 0 {
            continue;
        }
        for call in calls.get(f).into_iter().flatten() {
            for fault in [FaultKind::Throttle, FaultKind::ServerError] {
                cells.push(Cell {
                    function: f.to_string(),
                    fault,
                    call: Some(call.clone()),
                    at_millis: None,
                });
            }
        }
        cells.push(Cell {
            function: f.to_string(),
            fault: FaultKind::LostResponse,
            call: None,
            at_millis: None,
        });
        cells.push(Cell {
            function: f.to_string(),
            fault: FaultKind::LambdaTimeout,
            call: None,
            at_millis: None,
        });
        // Half-way through its slowest baseline invocation: killed mid-work.
        if let Some(ms) = slowest_millis.get(f).filter(|ms| **ms >= 20) {
            cells.push(Cell {
                function: f.to_string(),
                fault: FaultKind::LambdaTimeout,
                call: None,
                at_millis: Some(ms / 2),
            });
        }
    }
    cells
}

/// One cell's result.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CellResult {
    pub cell: Cell,
    pub label: String,
    /// The outcome, or `error` when the run could not be judged.
    pub outcome: String,
    pub error: Option<String>,
    /// Whether the run ended in success or an exact rollback with every invariant holding.
    pub passed: bool,
    /// What failed: the expectation, broken invariants, what was left.
    pub problems: Vec<String>,
    pub wall_seconds: f64,
    pub work_dir: Option<PathBuf>,
}

/// Runs one cell from the base scenario.
pub async fn run_cell(base: &Value, cell: &Cell, dir: &Path) -> CellResult {
    let started = Instant::now();
    let scenario = cell_scenario(base, cell);
    let name = scenario["name"].as_str().unwrap_or("cell").to_string();
    let path = dir.join(format!("{name}.yaml"));
    let written = serde_yaml::to_string(&scenario)
        .map_err(|e| e.to_string())
        .and_then(|y| std::fs::write(&path, y).map_err(|e| e.to_string()));
    let outcome = match written {
        Err(e) => Err(e),
        Ok(()) => run(RunOptions {
            scenario: path,
            work_dir: Some(dir.join(&name)),
            ..RunOptions::default()
        })
        .await
        .map_err(|e| e.to_string()),
    };
    let wall_seconds = started.elapsed().as_secs_f64();
    match outcome {
        Err(e) => CellResult {
            cell: cell.clone(),
            label: cell.label(),
            outcome: "error".into(),
            error: Some(e.clone()),
            passed: false,
            problems: vec![e],
            wall_seconds,
            work_dir: Some(dir.join(&name)),
        },
        Ok(o) => {
            let v = &o.verdict;
            let mut problems = v.expectation.clone();
            for (k, c) in &v.invariants {
                if let crate::verdict::Check::Broken(p) = c {
                    problems.push(format!("{k}: {}", p.join("; ")));
                }
            }
            CellResult {
                cell: cell.clone(),
                label: cell.label(),
                outcome: v.outcome.name().into(),
                error: v.error.clone(),
                passed: v.passed() && matches!(v.outcome, Outcome::Success | Outcome::RolledBack),
                problems,
                wall_seconds,
                work_dir: Some(o.work_dir),
            }
        }
    }
}

/// Runs every cell, `jobs` at a time.
pub async fn run_cells(base: &Value, cells: &[Cell], jobs: usize, dir: &Path) -> Vec<CellResult> {
    let base = std::sync::Arc::new(base.clone());
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(jobs.max(1)));
    let mut tasks = Vec::new();
    for cell in cells {
        let (base, sem, cell, dir) = (base.clone(), sem.clone(), cell.clone(), dir.to_path_buf());
        tasks.push(tokio::spawn(async move {
            let _permit = sem.acquire_owned().await;
            let r = run_cell(&base, &cell, &dir).await;
            println!(
                "  {:<6} {:<60} {:>6.1} s  {}{}",
                if r.passed { "ok" } else { "FAIL" },
                r.label,
                r.wall_seconds,
                r.outcome,
                r.error
                    .as_ref()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default()
            );
            r
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        if let Ok(r) = t.await {
            out.push(r);
        }
    }
    out
}

/// The matrix: per step, per fault, how many runs ended in each outcome, with failures marked.
pub fn matrix(results: &[CellResult]) -> String {
    let mut by: BTreeMap<&str, BTreeMap<FaultKind, Vec<&CellResult>>> = BTreeMap::new();
    for r in results {
        by.entry(r.cell.function.as_str())
            .or_default()
            .entry(r.cell.fault)
            .or_default()
            .push(r);
    }
    let mut s = format!("{:<18}", "step");
    for f in FaultKind::ALL {
        s.push_str(&format!(" | {:<24}", f.name()));
    }
    s.push('\n');
    for f in FUNCTIONS {
        let Some(row) = by.get(f) else { continue };
        s.push_str(&format!("{f:<18}"));
        for kind in FaultKind::ALL {
            let cell = row.get(&kind).map_or_else(
                || "-".to_string(),
                |rs| {
                    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
                    for r in rs {
                        *counts.entry(r.outcome.as_str()).or_default() += 1;
                    }
                    let failed = rs.iter().filter(|r| !r.passed).count();
                    let text: Vec<String> =
                        counts.iter().map(|(o, n)| format!("{o} {n}")).collect();
                    format!(
                        "{}{}",
                        if failed > 0 { "FAIL " } else { "" },
                        text.join(", ")
                    )
                },
            );
            s.push_str(&format!(" | {cell:<24}"));
        }
        s.push('\n');
    }
    s
}

/// The campaign's report.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CampaignReport {
    pub base: String,
    pub baseline: CellResult,
    /// Each function's kinds of calls in the baseline.
    pub calls: BTreeMap<String, BTreeSet<Call>>,
    pub runs: Vec<CellResult>,
    pub matrix: String,
    pub failed: usize,
    pub wall_seconds: f64,
    pub jobs: usize,
}

/// Options of a campaign.
#[derive(Clone, Debug)]
pub struct CampaignOptions {
    pub base: PathBuf,
    pub jobs: usize,
    pub work_dir: PathBuf,
    /// Only the cells whose label contains one of these (all when empty).
    pub only: Vec<String>,
    /// At most this many cells (after `only`).
    pub limit: Option<usize>,
}

/// Runs the baseline, plans the cells from it, and runs them.
pub async fn campaign(opts: &CampaignOptions) -> Result<CampaignReport, String> {
    let started = Instant::now();
    std::fs::create_dir_all(&opts.work_dir).map_err(|e| e.to_string())?;
    let text =
        std::fs::read_to_string(&opts.base).map_err(|e| format!("{}: {e}", opts.base.display()))?;
    let base: Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", opts.base.display()))?;
    println!("baseline: {}", opts.base.display());
    let report_path = opts.work_dir.join("baseline.json");
    let outcome = run(RunOptions {
        scenario: opts.base.clone(),
        report: Some(report_path.clone()),
        work_dir: Some(opts.work_dir.join("baseline")),
        ..RunOptions::default()
    })
    .await
    .map_err(|e| format!("the baseline did not run: {e}"))?;
    let v = &outcome.verdict;
    let baseline = CellResult {
        cell: Cell {
            function: "-".into(),
            fault: FaultKind::LostResponse,
            call: None,
            at_millis: None,
        },
        label: "baseline".into(),
        outcome: v.outcome.name().into(),
        error: v.error.clone(),
        passed: v.passed(),
        problems: v.expectation.clone(),
        wall_seconds: v.figures.wall_seconds,
        work_dir: Some(outcome.work_dir.clone()),
    };
    // A base that rolls back (`--base tests/scenarios/pdb-blocked-rollback.yaml`) puts the
    // rollback's calls in the campaign; it must still end exactly as its scenario expects.
    if !v.passed() || !matches!(v.outcome, Outcome::Success | Outcome::RolledBack) {
        return Err(format!(
            "the baseline must end cleanly in success or a rollback, as its scenario expects:\n{}",
            v.summary()
        ));
    }
    let twin_report = serde_json::to_value(&outcome.report).unwrap_or_default();
    let calls = calls_by_function(&twin_report, &outcome.aws_calls);
    let invoked: BTreeMap<String, u64> = v
        .figures
        .functions
        .iter()
        .map(|(k, s)| (k.clone(), s.invocations))
        .collect();
    let slowest: BTreeMap<String, u64> = v
        .figures
        .functions
        .iter()
        .map(|(k, s)| (k.clone(), s.max_millis))
        .collect();
    let mut cells = plan(&invoked, &calls, &slowest);
    if !opts.only.is_empty() {
        cells.retain(|c| opts.only.iter().any(|o| c.label().contains(o.as_str())));
    }
    if let Some(n) = opts.limit {
        cells.truncate(n);
    }
    println!(
        "{} runs ({} steps; calls per step: {}), {} at a time",
        cells.len(),
        invoked.values().filter(|n| **n > 0).count(),
        calls
            .iter()
            .map(|(f, c)| format!("{f} {}", c.len()))
            .collect::<Vec<_>>()
            .join(", "),
        opts.jobs
    );
    let runs = run_cells(&base, &cells, opts.jobs, &opts.work_dir).await;
    let failed = runs.iter().filter(|r| !r.passed).count();
    Ok(CampaignReport {
        base: opts.base.display().to_string(),
        baseline,
        calls,
        matrix: matrix(&runs),
        runs,
        failed,
        wall_seconds: started.elapsed().as_secs_f64(),
        jobs: opts.jobs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_learned_per_function_from_any_per_caller_breakdown() {
        let report = json!({"requests": {
            "kubernetesTotal": 10,
            "byCaller": {
                "ngm/taint": {"kubernetes": [{"verb": "patch", "resource": "nodes", "count": 3}, {"verb": "list", "resource": "nodes", "count": 0}], "eks": {"DescribeNodegroup": 1}},
                "ngm/drain": {"create pods/eviction": 4},
                "kubectl": {"get pods": 1}
            }
        }});
        let aws = json!({"total": {"autoscaling:DescribeAutoScalingGroups": 2},
            "byCaller": {"app/ngm-local-freeze": {"autoscaling:UpdateAutoScalingGroup": 1}}});
        let c = calls_by_function(&report, &aws);
        let names = |f: &str| -> Vec<String> {
            c.get(f)
                .into_iter()
                .flatten()
                .map(|x| x.call.clone())
                .collect()
        };
        assert_eq!(names("taint"), vec!["patch nodes", "eks:DescribeNodegroup"]);
        assert_eq!(names("drain"), vec!["create pods/eviction"]);
        assert_eq!(names("freeze"), vec!["autoscaling:UpdateAutoScalingGroup"]);
        assert_eq!(c.len(), 3, "{c:?}");
    }

    #[test]
    fn every_invoked_step_gets_every_fault() {
        let invoked = BTreeMap::from([("taint".to_string(), 1), ("drain".to_string(), 0)]);
        let calls = BTreeMap::from([(
            "taint".to_string(),
            BTreeSet::from([Call {
                api: Api::Kubernetes,
                call: "patch nodes".into(),
            }]),
        )]);
        let cells = plan(
            &invoked,
            &calls,
            &BTreeMap::from([("taint".to_string(), 100)]),
        );
        let labels: Vec<String> = cells.iter().map(Cell::label).collect();
        assert_eq!(
            labels,
            vec![
                "taint throttle at patch nodes",
                "taint 500 at patch nodes",
                "taint lost response",
                "taint Lambda timeout (killed as it answered)",
                "taint Lambda timeout (killed 50 ms in)",
            ]
        );
    }

    #[test]
    fn a_cell_scenario_carries_its_fault_and_accepts_success_or_rollback() {
        let base = json!({"name": "base", "faults": [], "expect": {"outcome": "success"}});
        let cell = Cell {
            function: "taint".into(),
            fault: FaultKind::Throttle,
            call: Some(Call {
                api: Api::Kubernetes,
                call: "patch nodes".into(),
            }),
            at_millis: None,
        };
        let s = cell_scenario(&base, &cell);
        assert_eq!(s["faults"][0]["kind"], "throttle");
        assert_eq!(s["faults"][0]["function"], "taint");
        assert_eq!(s["faults"][0]["times"], THROTTLES);
        assert_eq!(s["expect"]["outcome"], json!(["success", "rolledBack"]));
        let timeout = Cell {
            fault: FaultKind::LambdaTimeout,
            call: None,
            at_millis: Some(40),
            ..cell.clone()
        };
        let s = cell_scenario(&base, &timeout);
        assert_eq!(
            s["workflow"]["lambdaFaults"][0],
            json!({"function": "taint", "kind": "timeout", "atMillis": 40})
        );
        let moto = Cell {
            fault: FaultKind::ServerError,
            call: Some(Call {
                api: Api::Moto,
                call: "autoscaling:UpdateAutoScalingGroup".into(),
            }),
            ..cell
        };
        let s = cell_scenario(&base, &moto);
        assert_eq!(
            s["faults"][0],
            json!({"kind": "fail", "api": "aws", "call": "autoscaling:UpdateAutoScalingGroup",
                   "times": 1, "function": "taint", "code": 500})
        );
    }

    #[test]
    fn the_matrix_marks_a_failed_cell() {
        let r = |fault, outcome: &str, passed| CellResult {
            cell: Cell {
                function: "taint".into(),
                fault,
                call: None,
                at_millis: None,
            },
            label: String::new(),
            outcome: outcome.into(),
            error: None,
            passed,
            problems: Vec::new(),
            wall_seconds: 1.0,
            work_dir: None,
        };
        let m = matrix(&[
            r(FaultKind::Throttle, "success", true),
            r(FaultKind::Throttle, "success", true),
            r(FaultKind::ServerError, "failed", false),
        ]);
        let row = m.lines().nth(1).unwrap_or_default();
        assert!(row.starts_with("taint"), "{m}");
        assert!(
            row.contains("success 2") && row.contains("FAIL failed 1"),
            "{m}"
        );
    }
}
