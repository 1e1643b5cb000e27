//! The verdict on a run: the outcome against the scenario's expectation, I1–I6, and the
//! figures (time, traffic, transitions, requests, each function's memory).
//!
//! Whatever an injected fault explains (a killed or crash-looping pod's failed requests, a
//! function error the host or the twin injected) is counted apart from what ngm caused, and
//! only the latter breaks an invariant. Nothing is reported restored unless I3/I4 held, and
//! the lock is reported released only when the AWS side was read and no lock was left.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use ngm_twin::lb::FailureReason;
use ngm_twin::report::Report;
use ngm_twin::scenario::{Fault, Scenario};
use serde::Serialize;
use serde_json::Value;

use crate::aws_world::{self, AwsWorld, Promise, SourceGroup};
use crate::expect::{Expectation, Outcome};
use crate::host::{FunctionStats, SlowInvocation};
use crate::idempotence::IdempotenceCheck;
use crate::interp::StateEvent;
use crate::watch::{self, ExecutionRun};
use crate::world::{self, WorldState};

/// Whether an invariant held, broke, or was not exercised by this run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Check {
    Holds,
    Broken(Vec<String>),
    NotExercised(String),
}

impl Check {
    fn from_problems(problems: Vec<String>) -> Self {
        if problems.is_empty() {
            Check::Holds
        } else {
            Check::Broken(problems)
        }
    }
    pub fn is_broken(&self) -> bool {
        matches!(self, Check::Broken(_))
    }
}

/// The cleanup state machine's run after an ABORTED, FAILED or TIMED_OUT execution.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CleanupRun {
    /// SUCCEEDED, FAILED...; or why it did not run.
    pub status: String,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub transitions: usize,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub wall_seconds: f64,
    pub simulated_seconds: f64,
    /// The most the twin's HPA controller ran behind its 15 s period, in simulated seconds:
    /// the twin runs in scaled real time, so a busy machine delays its controllers. A scenario
    /// whose truth depends on their timing bounds it in `expect.figures`.
    pub controller_lag_seconds: f64,
    /// Nodes the twin's Cluster Autoscaler asked for, and nodes it removed, during the run.
    pub autoscaler_nodes_added: u64,
    pub autoscaler_nodes_removed: u64,
    /// Jobs' pods that ended before finishing their work (evicted, deleted, lost with their
    /// node), the simulated seconds of work they had done, and the Jobs that completed.
    pub jobs: u64,
    pub job_pods_interrupted: u64,
    pub job_lost_work_seconds: f64,
    pub jobs_completed: u64,
    pub requests_sent: u64,
    pub requests_failed: u64,
    /// Failed requests an injected fault explains (a pod the scenario kills or crash-loops).
    pub requests_failed_injected: u64,
    /// Failed requests a workload caused itself by how its pods stop (refused after SIGTERM,
    /// cut by a process that exits on it), on workloads the pre-flight named: counted apart
    /// (DESIGN I1), by workload.
    pub requests_failed_workload: u64,
    pub workload_failures: BTreeMap<String, u64>,
    /// Keep-alive connections opened, reset, and reset for a reason counted apart (a pod the
    /// scenario breaks, a workload the pre-flight named).
    pub connections_opened: u64,
    pub connections_reset: u64,
    pub connections_reset_apart: u64,
    pub pdb_violations: usize,
    /// State transitions (states entered), what Step Functions bills.
    pub state_transitions: usize,
    pub cleanup_transitions: usize,
    pub kubernetes_requests: u64,
    pub eks_requests: u64,
    /// EKS calls that change something (every operation but `Describe*`/`List*`/`Get*`).
    pub eks_writes: u64,
    /// AWS calls that change something or try to, EKS's included (a refused conditional
    /// write counts: it was attempted).
    pub aws_writes: u64,
    /// The functions' other AWS calls (served by moto), by `service:Operation`.
    pub aws_requests: BTreeMap<String, u64>,
    pub evictions: u64,
    /// Faults injected: by the Lambda host, and answers the twin gave because of a fault.
    pub injected_faults: u64,
    /// Function errors by type; and how many of them injected faults explain.
    pub function_errors: BTreeMap<String, u64>,
    pub function_errors_injected: u64,
    pub functions: BTreeMap<String, FunctionStats>,
    /// Invocations over a quarter of their function's timeout.
    pub slow_invocations: Vec<SlowInvocation>,
    /// Migrations the AMI watcher started, and those that SUCCEEDED (`workflow.amiReleases`;
    /// absent when the scenario's `migration:` ran).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations_started: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub migrations_succeeded: Option<u64>,
}

impl Figures {
    /// The figures by the names `expect.figures` uses.
    pub fn named(&self) -> BTreeMap<String, f64> {
        #[allow(clippy::cast_precision_loss)]
        let f = |x: u64| x as f64;
        let mut m = BTreeMap::from([
            ("sentRequests".to_string(), f(self.requests_sent)),
            (
                "controllerLagSeconds".to_string(),
                self.controller_lag_seconds,
            ),
            ("failedRequests".to_string(), f(self.requests_failed)),
            (
                "autoscalerNodesAdded".to_string(),
                f(self.autoscaler_nodes_added),
            ),
            (
                "autoscalerNodesRemoved".to_string(),
                f(self.autoscaler_nodes_removed),
            ),
            (
                "jobPodsInterrupted".to_string(),
                f(self.job_pods_interrupted),
            ),
            ("jobLostWorkSeconds".to_string(), self.job_lost_work_seconds),
            ("jobsCompleted".to_string(), f(self.jobs_completed)),
            (
                "ngmFailedRequests".to_string(),
                f(self.requests_failed
                    - self.requests_failed_injected
                    - self.requests_failed_workload),
            ),
            (
                "workloadFailedRequests".to_string(),
                f(self.requests_failed_workload),
            ),
            (
                "injectedFailedRequests".to_string(),
                f(self.requests_failed_injected),
            ),
            ("connectionsOpened".to_string(), f(self.connections_opened)),
            ("connectionsReset".to_string(), f(self.connections_reset)),
            (
                "ngmConnectionsReset".to_string(),
                f(self.connections_reset - self.connections_reset_apart),
            ),
            (
                "budgetViolations".to_string(),
                f(self.pdb_violations as u64),
            ),
            ("evictions".to_string(), f(self.evictions)),
            (
                "stateTransitions".to_string(),
                f(self.state_transitions as u64),
            ),
            (
                "cleanupTransitions".to_string(),
                f(self.cleanup_transitions as u64),
            ),
            (
                "kubernetesRequests".to_string(),
                f(self.kubernetes_requests),
            ),
            ("eksRequests".to_string(), f(self.eks_requests)),
            ("eksWrites".to_string(), f(self.eks_writes)),
            ("awsWrites".to_string(), f(self.aws_writes)),
            (
                "awsRequests".to_string(),
                f(self.eks_requests + self.aws_requests.values().sum::<u64>()),
            ),
            ("simulatedSeconds".to_string(), self.simulated_seconds),
            ("injectedFaults".to_string(), f(self.injected_faults)),
            (
                "slowInvocations".to_string(),
                f(self.slow_invocations.len() as u64),
            ),
        ]);
        for (name, s) in &self.functions {
            m.insert(format!("invocations.{name}"), f(s.invocations));
        }
        for (e, n) in &self.function_errors {
            m.insert(format!("errors.{e}"), f(*n));
        }
        if let (Some(started), Some(ok)) = (self.migrations_started, self.migrations_succeeded) {
            m.insert("migrationsStarted".into(), f(started));
            m.insert("migrationsSucceeded".into(), f(ok));
        }
        m
    }
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub scenario: String,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Problems with the outcome against the scenario's `expect:`.
    pub expectation: Vec<String>,
    pub invariants: BTreeMap<String, Check>,
    /// What was put back, only when I3/I4 held.
    pub restored: Vec<String>,
    /// What is left to put back when I3/I4 did not hold.
    pub left: Vec<String>,
    pub cleanup: Option<CleanupRun>,
    pub operator_answers: Vec<String>,
    pub figures: Figures,
    pub output: Option<Value>,
    /// The migrations the AMI watcher started, in order; the outcome is the last one's.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub executions: Vec<ExecutionRun>,
}

pub struct Inputs<'a> {
    pub scenario: &'a Scenario,
    pub expectation: Option<&'a Expectation>,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub report: &'a Report,
    pub world_before: WorldState,
    pub world: WorldState,
    /// The AWS side before and after, or why it could not be read.
    pub aws: Result<(AwsWorld, AwsWorld), String>,
    pub functions: BTreeMap<String, FunctionStats>,
    pub slow: Vec<SlowInvocation>,
    pub aws_requests: BTreeMap<String, u64>,
    /// The IAM actions each function's role allows (infra/template.yaml), by kebab name.
    pub granted: &'a BTreeMap<String, BTreeSet<String>>,
    pub idempotence: Vec<IdempotenceCheck>,
    pub operator_answers: Vec<Result<(), String>>,
    pub events: &'a [StateEvent],
    pub cleanup: Option<CleanupRun>,
    pub wall: Duration,
    pub simulated: Duration,
    /// The migrations the AMI watcher started, in order (empty when the scenario's
    /// `migration:` ran); `status`, `events` and the rest are then the last one's, the events
    /// every one's.
    pub executions: Vec<ExecutionRun>,
}

fn last_entered(events: &[StateEvent]) -> Option<&str> {
    events
        .iter()
        .rev()
        .find(|e| e.kind == "StateEntered")
        .and_then(|e| e.state.as_deref())
}

/// The workloads and pods the scenario's faults break on purpose.
fn injected_pods(scenario: &Scenario) -> Vec<String> {
    let mut out = Vec::new();
    for f in &scenario.faults {
        if let Fault::KillPod { pod, .. } = f {
            out.push(pod.clone());
        }
    }
    // Twin faults this crate does not know by type (crashLoop...) name a `workload`.
    if let Ok(Value::Array(faults)) = serde_json::to_value(&scenario.faults) {
        for f in faults {
            if let Some(w) = f.get("workload").and_then(Value::as_str) {
                out.push(format!("{w}-"));
            }
        }
    }
    out
}

/// The workloads the pre-flight named as dropping requests by how their pods stop, from the
/// execution's output or, when it has none (it failed), the history
/// (`preflight.findings`: each such finding starts with the workload,
/// `Deployment shop/cart (behind Service shop/cart) has no preStop hook...`).
fn named_workloads(output: Option<&Value>, events: &[StateEvent]) -> Vec<String> {
    output
        .and_then(|o| o.get("preflight"))
        .or_else(|| events.iter().find_map(|e| e.preflight.as_ref()))
        .and_then(|p| p.get("findings"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .filter_map(|f| f.split_once(" (behind ").map(|(who, _)| who.to_string()))
        .collect()
}

/// Failures the named workloads caused themselves, by workload.
fn workload_failures(report: &Report, named: &[String]) -> BTreeMap<String, u64> {
    own_failures(
        report.traffic.services.iter().map(|s| &s.by_workload),
        named,
    )
}

/// Keep-alive connections reset by how their workload's pods stop, on named workloads.
fn workload_resets(report: &Report, named: &[String]) -> BTreeMap<String, u64> {
    own_failures(
        report
            .traffic
            .services
            .iter()
            .filter_map(|s| s.connections.as_ref())
            .map(|c| &c.by_workload),
        named,
    )
}

fn own_failures<'a>(
    by_workload: impl Iterator<Item = &'a BTreeMap<String, BTreeMap<FailureReason, u64>>>,
    named: &[String],
) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for by in by_workload {
        for (w, reasons) in by {
            if !named.contains(w) {
                continue;
            }
            let n: u64 = reasons
                .iter()
                .filter(|(r, _)| r.is_workloads_own())
                .map(|(_, n)| n)
                .sum();
            if n > 0 {
                *out.entry(w.clone()).or_default() += n;
            }
        }
    }
    out
}

/// Every AWS call (`service:Operation`, to EKS or moto) a function made that its role in the
/// template does not allow: in AWS it would have been refused with AccessDenied.
fn ungranted(
    by_caller: &BTreeMap<String, BTreeMap<String, u64>>,
    granted: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (caller, calls) in by_caller {
        let Some(function) = caller.strip_prefix("app/ngm-local-") else {
            continue;
        };
        let aws = calls.keys().filter(|c| {
            c.split_once(':')
                .is_some_and(|(svc, op)| !svc.contains(' ') && !op.contains(' '))
        });
        match granted.get(function) {
            None => out.push(format!("{function}: no role in infra/template.yaml")),
            Some(allowed) => out.extend(
                aws.filter(|c| !allowed.contains(c.as_str()))
                    .map(|c| format!("{function}: {c} is not granted by its role")),
            ),
        }
    }
    out
}

/// Answers the twin gave because of an injected fault (`requests.injected`, a number or a
/// breakdown whose numbers add up), read from the report's JSON so that any shape counts.
pub fn twin_injected(report: &Report) -> u64 {
    fn sum(v: &Value) -> u64 {
        match v {
            Value::Number(n) => n.as_u64().unwrap_or(0),
            Value::Object(m) => m
                .get("total")
                .map_or_else(|| m.values().map(sum).sum(), sum),
            Value::Array(a) => a.iter().map(sum).sum(),
            _ => 0,
        }
    }
    serde_json::to_value(report)
        .ok()
        .and_then(|r| r.pointer("/requests/injected").map(sum))
        .unwrap_or(0)
}

/// What the run promised on the AWS side, by outcome and by what the world shows.
fn promise(outcome: Outcome, world: &WorldState, keep_new_group: bool) -> Option<Promise> {
    match outcome {
        Outcome::Success => Some(Promise::Migrated),
        Outcome::DryRun | Outcome::RolledBack => Some(Promise::AsBefore { keep_new_group }),
        // After an abort, a timeout or a failure, cleanup rolled back while the old group
        // existed and restored once it was gone.
        Outcome::Aborted | Outcome::TimedOut | Outcome::Failed => {
            if world.source_nodes.is_empty() && !world.source_group_exists {
                Some(Promise::Migrated)
            } else {
                Some(Promise::AsBefore { keep_new_group })
            }
        }
    }
}

impl Verdict {
    pub fn compile(i: Inputs<'_>) -> Self {
        let outcome = Outcome::of(&i.status, last_entered(i.events));
        let r = i.report;
        let migration = i.scenario.migration.clone().unwrap_or_default();
        let keep_new_group = migration
            .pointer("/policy/rollbackDeletesNewGroup")
            .and_then(Value::as_bool)
            == Some(false);
        let source = world::source_group(i.scenario);
        let source_group = if migration.pointer("/source/autoScalingGroup").is_some() {
            SourceGroup::SelfManaged(source.clone())
        } else {
            SourceGroup::Managed(source.clone())
        };

        // Failures an injected fault explains.
        let broken_on_purpose = injected_pods(i.scenario);
        let injected = |reason: FailureReason, pod: Option<&String>| {
            matches!(reason, FailureReason::PodKilled | FailureReason::NoEndpoint)
                && pod.is_some_and(|p| {
                    broken_on_purpose
                        .iter()
                        .any(|b| p == b || (b.ends_with('-') && p.starts_with(b.as_str())))
                })
        };
        // Every failure, by its group (the samples stop at 200).
        let injected_count = |connection: bool| -> u64 {
            r.traffic
                .failure_groups
                .iter()
                .filter(|g| g.connection == connection && injected(g.reason, g.pod.as_ref()))
                .map(|g| g.count)
                .sum()
        };
        let injected_failures = injected_count(false);
        let injected_resets = injected_count(true);
        let host_injected: u64 = i.functions.values().map(|s| s.faults_injected).sum();
        let twin_injected = twin_injected(r);
        let mut function_errors: BTreeMap<String, u64> = BTreeMap::new();
        for s in i.functions.values() {
            for (e, n) in &s.errors {
                *function_errors.entry(e.clone()).or_default() += n;
            }
        }
        // A timeout the host injected surfaces as Sandbox.Timedout; a throttle or a 5xx the
        // twin or moto injected surfaces (after the adapters' own retries) as Throttled or
        // Transient: at most one such error per injected answer.
        let host_timeouts: u64 = i.functions.values().map(|s| s.timeouts_injected).sum();
        let retryable: u64 = ["Throttled", "Transient"]
            .iter()
            .filter_map(|e| function_errors.get(*e))
            .sum();
        let timed_out = function_errors
            .get("Sandbox.Timedout")
            .copied()
            .unwrap_or(0);
        let function_errors_injected = timed_out.min(host_timeouts) + retryable.min(twin_injected);

        let named = named_workloads(i.output.as_ref(), i.events);
        let workload_failures = workload_failures(r, &named);
        let workload_failed: u64 = workload_failures.values().sum();
        let (connections_opened, connections_reset) = r.traffic.connections();
        let resets_apart = injected_resets + workload_resets(r, &named).values().sum::<u64>();
        let ngm_resets = connections_reset.saturating_sub(resets_apart);
        let mut invariants = BTreeMap::new();
        let ngm_failed = r
            .traffic
            .failed()
            .saturating_sub(injected_failures)
            .saturating_sub(workload_failed);
        invariants.insert(
            "I1 zero downtime".into(),
            if r.traffic.sent() == 0 {
                Check::NotExercised("the scenario sends no traffic".into())
            } else if ngm_failed == 0 && ngm_resets == 0 {
                Check::Holds
            } else {
                let requests = (ngm_failed > 0).then(|| format!(
                    "{ngm_failed} of {} requests failed ({injected_failures} more on pods the scenario breaks, {workload_failed} on workloads the pre-flight named)",
                    r.traffic.sent()
                ));
                let resets = (ngm_resets > 0).then(|| format!(
                    "{ngm_resets} of {connections_opened} keep-alive connections were reset ({resets_apart} more on pods the scenario breaks or workloads the pre-flight named)"
                ));
                Check::Broken(
                    requests
                        .into_iter()
                        .chain(resets)
                        .chain(r.traffic.samples.iter().take(5).map(|s| format!("{s:?}")))
                        .collect(),
                )
            },
        );
        invariants.insert(
            "IAM every AWS call granted".into(),
            Check::from_problems(ungranted(&r.requests.by_caller, i.granted)),
        );
        invariants.insert(
            "I2 budgets respected".into(),
            Check::from_problems(
                r.budget_violations
                    .iter()
                    .map(|v| format!("{v:?}"))
                    .collect(),
            ),
        );
        let promise = promise(outcome, &i.world, keep_new_group);
        let mut restore = Vec::new();
        let changes = r.changes_by_ngm();
        for c in &changes.changed {
            restore.push(format!(
                "{}{} changed: {:?} → {:?}",
                c.object, c.path, c.before, c.after
            ));
        }
        for o in changes.added.iter().chain(&changes.removed) {
            if o.kind != "Node" {
                restore.push(format!("{o} added or removed"));
            }
        }
        restore.extend(
            i.world
                .marks_left
                .iter()
                .map(|m| format!("left behind: {m}")),
        );
        let mut lock_ok = false;
        match promise {
            Some(Promise::Migrated) => {
                restore.extend(world::migrated_problems(&source, &i.world_before, &i.world))
            }
            Some(Promise::AsBefore { .. }) => {
                restore.extend(world::as_before_problems(&i.world));
            }
            None => {}
        }
        match (&i.aws, promise) {
            (Ok((before, after)), Some(p)) => {
                let aws = aws_world::problems(p, &source_group, before, after);
                lock_ok = !aws.iter().any(|x| x.starts_with("lock "));
                restore.extend(aws);
            }
            (Err(e), _) => restore.push(format!("the AWS side could not be read: {e}")),
            (Ok(_), None) => {}
        }
        let restore_check = Check::from_problems(restore.clone());
        let holds = restore_check == Check::Holds;
        invariants.insert("I3/I4 restore".into(), restore_check);
        invariants.insert(
            "I5 idempotence".into(),
            if i.idempotence.is_empty() {
                Check::NotExercised(
                    "steps ran once (set workflow.twice, or a lostResponse fault, to rerun them)"
                        .into(),
                )
            } else {
                Check::from_problems(
                    i.idempotence
                        .iter()
                        .filter(|c| !c.holds())
                        .map(|c| format!("{c:?}"))
                        .collect(),
                )
            },
        );
        invariants.insert(
            "I6 no long waits in a Lambda".into(),
            Check::from_problems(
                i.slow
                    .iter()
                    .filter(|s| !s.injected)
                    .map(|s| {
                        format!(
                            "{}: an invocation took {} ms (budget {} ms, a quarter of its {} s timeout){}",
                            s.function,
                            s.millis,
                            s.budget_millis,
                            s.budget_millis * 4 / 1000,
                            if s.timed_out { "; it timed out" } else { "" }
                        )
                    })
                    .collect(),
            ),
        );
        if let Some(last) = i.executions.last() {
            let earlier = &i.executions[..i.executions.len() - 1];
            let check = match earlier.iter().find(|r| r.status != "SUCCEEDED") {
                Some(r) => Check::Broken(vec![format!(
                    "{} ended {}, yet the next release was migrated",
                    r.name, r.status
                )]),
                None if last.status == "SUCCEEDED" => {
                    Check::from_problems(watch::chain_problems(&i.executions, &r.node_groups))
                }
                None => Check::NotExercised(format!("{} ended {}", last.name, last.status)),
            };
            invariants.insert(
                "AMI watcher: the group left is on the last release, still opted in".into(),
                check,
            );
        }
        let restored = if holds {
            restored_summary(outcome, promise, i.events, i.cleanup.as_ref(), lock_ok)
        } else {
            Vec::new()
        };
        let figures = Figures {
            wall_seconds: i.wall.as_secs_f64(),
            simulated_seconds: i.simulated.as_secs_f64(),
            controller_lag_seconds: r.controller_lag_seconds,
            autoscaler_nodes_added: r.cluster_autoscaler.nodes_added,
            autoscaler_nodes_removed: r.cluster_autoscaler.nodes_removed,
            jobs: r.jobs.len() as u64,
            job_pods_interrupted: r.jobs.iter().map(|j| u64::from(j.pods_interrupted)).sum(),
            job_lost_work_seconds: r.jobs.iter().map(|j| j.lost_work_seconds).sum(),
            jobs_completed: r.jobs.iter().filter(|j| j.completed).count() as u64,
            requests_sent: r.traffic.sent(),
            requests_failed: r.traffic.failed(),
            requests_failed_injected: injected_failures.min(r.traffic.failed()),
            requests_failed_workload: workload_failed,
            workload_failures,
            connections_opened,
            connections_reset,
            connections_reset_apart: resets_apart.min(connections_reset),
            pdb_violations: r.budget_violations.len(),
            state_transitions: i.events.iter().filter(|e| e.kind == "StateEntered").count(),
            cleanup_transitions: i.cleanup.as_ref().map_or(0, |c| c.transitions),
            kubernetes_requests: r.requests.kubernetes_total,
            eks_requests: r.requests.eks_total,
            eks_writes: writes(r.requests.eks.iter()),
            aws_writes: writes(r.requests.eks.iter()) + writes(i.aws_requests.iter()),
            aws_requests: i.aws_requests,
            evictions: r.evictions.requested,
            injected_faults: host_injected + twin_injected,
            function_errors,
            function_errors_injected,
            functions: i.functions,
            slow_invocations: i.slow,
            migrations_started: (!i.executions.is_empty()).then_some(i.executions.len() as u64),
            migrations_succeeded: (!i.executions.is_empty()).then(|| {
                i.executions
                    .iter()
                    .filter(|r| r.status == "SUCCEEDED")
                    .count() as u64
            }),
        };
        let expectation = match i.expectation {
            Some(exp) => {
                let mut p = exp.check(
                    outcome,
                    i.error.as_deref(),
                    i.cause.as_deref(),
                    &figures.named(),
                );
                if outcome == Outcome::DryRun
                    && i.output.as_ref().and_then(|o| o.get("preflight")).is_none()
                {
                    p.push("a dry run must return the pre-flight report".into());
                }
                p
            }
            None => Vec::new(),
        };
        Verdict {
            scenario: i.scenario.name.clone(),
            outcome,
            error: i.error,
            cause: i.cause,
            expectation,
            invariants,
            restored,
            left: if holds { Vec::new() } else { restore },
            cleanup: i.cleanup,
            operator_answers: i
                .operator_answers
                .into_iter()
                .map(|a| a.map_or_else(|e| format!("failed: {e}"), |()| "answered".into()))
                .collect(),
            figures,
            output: i.output,
            executions: i.executions,
        }
    }

    /// The run passes when the outcome is the expected one and no invariant broke.
    pub fn passed(&self) -> bool {
        self.expectation.is_empty() && !self.invariants.values().any(Check::is_broken)
    }

    /// The human summary `ngm local run` prints.
    pub fn summary(&self) -> String {
        let f = &self.figures;
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line(format!(
            "\n{}: {}{}",
            self.scenario,
            self.outcome,
            self.error
                .as_ref()
                .map(|e| format!(" ({e}: {})", self.cause.as_deref().unwrap_or("")))
                .unwrap_or_default()
        ));
        if let Some(c) = &self.cleanup {
            line(format!(
                "  cleanup: {}{} ({} transitions)",
                c.status,
                c.error
                    .as_ref()
                    .map(|e| format!(" ({e}: {})", c.cause.as_deref().unwrap_or("")))
                    .unwrap_or_default(),
                c.transitions
            ));
        }
        for r in &self.executions {
            line(format!("  {}", r.line()));
        }
        for e in &self.expectation {
            line(format!("  FAIL expectation: {e}"));
        }
        for (name, c) in &self.invariants {
            match c {
                Check::Holds => line(format!("  ok   {name}")),
                Check::NotExercised(why) => line(format!("  n/a  {name}: {why}")),
                Check::Broken(p) => {
                    line(format!("  FAIL {name}"));
                    for x in p.iter().take(10) {
                        line(format!("         {x}"));
                    }
                }
            }
        }
        line(format!(
            "  requests: {} sent, {} failed ({} on pods the scenario breaks, {} on workloads the pre-flight named); PDB violations: {}",
            f.requests_sent,
            f.requests_failed,
            f.requests_failed_injected,
            f.requests_failed_workload,
            f.pdb_violations
        ));
        for (w, n) in &f.workload_failures {
            line(format!("    {w}: {n} requests failed by how its pods stop"));
        }
        if f.connections_opened > 0 {
            line(format!(
                "  keep-alive connections: {} opened, {} reset ({} on pods the scenario breaks or workloads the pre-flight named)",
                f.connections_opened, f.connections_reset, f.connections_reset_apart
            ));
        }
        if f.autoscaler_nodes_added + f.autoscaler_nodes_removed > 0 {
            line(format!(
                "  cluster autoscaler: {} node(s) added, {} removed",
                f.autoscaler_nodes_added, f.autoscaler_nodes_removed
            ));
        }
        if f.jobs > 0 {
            line(format!(
                "  jobs: {} of {} completed; {} pod(s) interrupted, {:.0} s of work lost",
                f.jobs_completed, f.jobs, f.job_pods_interrupted, f.job_lost_work_seconds
            ));
        }
        if !self.restored.is_empty() {
            line(format!("  restored: {}", self.restored.join("; ")));
        }
        if !self.left.is_empty() {
            line(format!(
                "  NOT restored, left as it is ({} problems): {}",
                self.left.len(),
                self.left
                    .iter()
                    .take(8)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join("; ")
            ));
        }
        for a in &self.operator_answers {
            line(format!("  operator callback: {a}"));
        }
        let other_aws: u64 = f.aws_requests.values().sum();
        line(format!(
            "  time: {:.1} s wall, {:.0} s simulated (twin controllers up to {:.0} s late); {} state transitions (+{} in cleanup)",
            f.wall_seconds,
            f.simulated_seconds,
            f.controller_lag_seconds,
            f.state_transitions,
            f.cleanup_transitions
        ));
        line(format!(
            "  requests by the functions: {} Kubernetes ({} evictions); {} AWS ({} EKS; {})",
            f.kubernetes_requests,
            f.evictions,
            f.eks_requests + other_aws,
            f.eks_requests,
            f.aws_requests
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        let errors: u64 = f.function_errors.values().sum();
        line(format!(
            "  faults injected: {}; function errors: {} ({} explained by injected faults, {} by ngm)",
            f.injected_faults,
            errors,
            f.function_errors_injected,
            errors - f.function_errors_injected.min(errors)
        ));
        line("  functions (invocations, slowest, peak memory):".into());
        for (name, st) in &f.functions {
            if st.invocations == 0 {
                continue;
            }
            line(format!(
                "    {name:<18} {:>3} × {:>5} ms  {:>6} KiB{}",
                st.invocations,
                st.max_millis,
                st.peak_rss_kib.unwrap_or_default(),
                if st.errors.is_empty() {
                    String::new()
                } else {
                    format!("  errors {:?}", st.errors)
                }
            ));
        }
        line(format!(
            "verdict: {}",
            if self.passed() { "PASS" } else { "FAIL" }
        ));
        s
    }
}

/// What the run put back, said only once I3/I4 held.
fn restored_summary(
    outcome: Outcome,
    promise: Option<Promise>,
    events: &[StateEvent],
    cleanup: Option<&CleanupRun>,
    lock_released: bool,
) -> Vec<String> {
    let ran = |s: &str| {
        events
            .iter()
            .any(|e| e.kind == "StateExited" && e.state.as_deref() == Some(s))
    };
    let mut out = Vec::new();
    match promise {
        Some(Promise::Migrated) if ran("Restore") || cleanup.is_some() => out.push(
            "replicas, HPAs and autoscaler settings equal their originals; ngm marks removed; the AWS side as promised"
                .into(),
        ),
        Some(Promise::AsBefore { .. }) if outcome != Outcome::DryRun => out.push(
            "old nodes untainted and unlabelled; replicas, HPAs, autoscalers and the AWS side as before"
                .into(),
        ),
        _ => {}
    }
    if let Some(c) = cleanup {
        out.push(format!("by the cleanup machine ({})", c.status));
    }
    if lock_released && outcome != Outcome::DryRun {
        out.push("lock released".into());
    }
    out
}

/// Whether an AWS operation (`DescribeNodegroup`, or `service:Operation`) only reads.
fn reads_only(operation: &str) -> bool {
    let op = operation.rsplit(':').next().unwrap_or(operation);
    ["Describe", "List", "Get", "BatchGet", "Query", "Scan"]
        .iter()
        .any(|p| op.starts_with(p))
}

/// How many of these calls (by operation) change something.
fn writes<'a>(calls: impl Iterator<Item = (&'a String, &'a u64)>) -> u64 {
    calls
        .filter(|(op, _)| !reads_only(op))
        .map(|(_, n)| n)
        .sum()
}

#[cfg(test)]
mod tests;
