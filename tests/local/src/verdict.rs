//! The verdict on a run: the outcome against the scenario's expectation, I1–I6, and the
//! figures (time, traffic, transitions, requests, each function's memory).

use std::collections::BTreeMap;
use std::time::Duration;

use ngm_twin::report::Report;
use ngm_twin::scenario::{NodeGroupKind, Outcome as Expected, Scenario};
use ngm_twin::store::Resource;
use ngm_twin::twin::Twin;
use serde::Serialize;
use serde_json::Value;

use crate::host::FunctionStats;
use crate::idempotence::IdempotenceCheck;
use crate::interp::StateEvent;

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

/// What the twin's world looks like at the end, beyond the report's object diff.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorldState {
    /// Nodes still in the source group.
    pub source_nodes: Vec<String>,
    /// Whether EKS still has the source group (managed sources only).
    pub source_group_exists: bool,
    /// Non-DaemonSet pods, with the group of their node (`namespace/name` → group).
    pub pod_groups: BTreeMap<String, String>,
    /// Labels, annotations and taints with ngm's prefix left on nodes and pods.
    pub marks_left: Vec<String>,
}

const ASG_ANNOTATION: &str = "twin.ngm.io/asg";

fn node_group(node: &Value) -> String {
    let label = node
        .pointer("/metadata/labels/eks.amazonaws.com~1nodegroup")
        .and_then(Value::as_str);
    let asg = node
        .pointer(&format!(
            "/metadata/annotations/{}",
            ASG_ANNOTATION.replace('/', "~1")
        ))
        .and_then(Value::as_str);
    label.or(asg).unwrap_or_default().to_string()
}

fn marks(kind: &str, obj: &Value, out: &mut Vec<String>) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = obj.pointer(&format!("/metadata/{field}")) {
            for k in m.keys() {
                if k.starts_with("ngm.io/") || (k.contains(".ngm.io/") && !k.starts_with("twin.")) {
                    out.push(format!("{kind} {name}: {field} {k}"));
                }
            }
        }
    }
    if let Some(Value::Array(taints)) = obj.pointer("/spec/taints") {
        for t in taints {
            let key = t.get("key").and_then(Value::as_str).unwrap_or_default();
            if key.starts_with("ngm.io/") {
                out.push(format!("{kind} {name}: taint {key}"));
            }
        }
    }
}

/// Reads the end state from the twin.
pub fn world_checks(twin: &Twin, scenario: &Scenario) -> WorldState {
    let store = twin.store();
    let source = scenario
        .migration
        .as_ref()
        .and_then(|m| {
            m.pointer("/source/managedNodeGroup")
                .or_else(|| m.pointer("/source/autoScalingGroup"))
        })
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut w = WorldState::default();
    let mut node_groups = BTreeMap::new();
    for node in store.list_all(Resource::Node, None) {
        let name = node
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let group = node_group(&node);
        if group == source {
            w.source_nodes.push(name.clone());
        }
        marks("node", &node, &mut w.marks_left);
        node_groups.insert(name, group);
    }
    for pod in store.list_all(Resource::Pod, None) {
        marks("pod", &pod, &mut w.marks_left);
        let owner = pod
            .pointer("/metadata/ownerReferences/0/kind")
            .and_then(Value::as_str);
        if owner == Some("DaemonSet") {
            continue;
        }
        let s = |p: &str| pod.pointer(p).and_then(Value::as_str).unwrap_or_default();
        let node = s("/spec/nodeName");
        w.pod_groups.insert(
            format!("{}/{}", s("/metadata/namespace"), s("/metadata/name")),
            node_groups.get(node).cloned().unwrap_or_default(),
        );
    }
    let managed = scenario
        .cluster
        .node_groups
        .iter()
        .any(|g| g.name == source && g.kind == NodeGroupKind::Managed);
    w.source_group_exists = managed && twin.eks().and_then(|e| e.nodegroup(&source)).is_some();
    w
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Figures {
    pub wall_seconds: f64,
    pub simulated_seconds: f64,
    pub requests_sent: u64,
    pub requests_failed: u64,
    pub pdb_violations: usize,
    /// State transitions (states entered), what Step Functions bills.
    pub state_transitions: usize,
    pub kubernetes_requests: u64,
    pub eks_requests: u64,
    /// The functions' other AWS calls (served by moto), by `service:Operation`.
    pub aws_requests: BTreeMap<String, u64>,
    pub evictions: u64,
    pub functions: BTreeMap<String, FunctionStats>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    pub scenario: String,
    /// `success`, `rolledBack`, `failed` or `dryRun`.
    pub outcome: String,
    pub error: Option<String>,
    pub cause: Option<String>,
    /// Problems with the outcome against the scenario's `expect:`.
    pub expectation: Vec<String>,
    pub invariants: BTreeMap<String, Check>,
    /// What was put back: objects the run changed and then restored.
    pub restored: Vec<String>,
    pub operator_answers: Vec<String>,
    pub figures: Figures,
    pub output: Option<Value>,
}

pub struct Inputs<'a> {
    pub scenario: &'a Scenario,
    pub status: String,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub report: &'a Report,
    pub world: WorldState,
    pub functions: BTreeMap<String, FunctionStats>,
    pub aws_requests: BTreeMap<String, u64>,
    pub idempotence: Vec<IdempotenceCheck>,
    pub operator_answers: Vec<Result<(), String>>,
    pub events: &'a [StateEvent],
    pub wall: Duration,
    pub simulated: Duration,
    pub timeout: Duration,
}

fn last_entered(events: &[StateEvent]) -> Option<&str> {
    events
        .iter()
        .rev()
        .find(|e| e.kind == "StateEntered")
        .and_then(|e| e.state.as_deref())
}

impl Verdict {
    pub fn compile(i: Inputs<'_>) -> Self {
        let outcome = match (i.status.as_str(), last_entered(i.events)) {
            ("SUCCEEDED", Some("DryRunReport")) => "dryRun",
            ("SUCCEEDED", _) => "success",
            (_, Some("MigrationRolledBack")) => "rolledBack",
            _ => "failed",
        }
        .to_string();
        let mut expectation = Vec::new();
        if let Some(exp) = &i.scenario.expect {
            let want = match exp.outcome {
                Expected::Success => "success",
                Expected::RolledBack => "rolledBack",
                Expected::Failed => "failed",
            };
            let dry = i
                .scenario
                .migration
                .as_ref()
                .and_then(|m| m.pointer("/policy/dryRun"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let want = if dry && want == "success" {
                "dryRun"
            } else {
                want
            };
            if outcome != want {
                expectation.push(format!(
                    "expected {want}, got {outcome} ({}: {})",
                    i.error.as_deref().unwrap_or("-"),
                    i.cause.as_deref().unwrap_or("-")
                ));
            }
            if want == "dryRun" && i.output.as_ref().and_then(|o| o.get("preflight")).is_none() {
                expectation.push("a dry run must return the pre-flight report".into());
            }
            if let Some(err) = &exp.error
                && i.error.as_ref() != Some(err)
            {
                expectation.push(format!("expected error {err}, got {:?}", i.error));
            }
        }
        let r = i.report;
        let mut invariants = BTreeMap::new();
        let failures: Vec<String> = r
            .traffic
            .samples
            .iter()
            .take(5)
            .map(|s| format!("{:?}", s))
            .collect();
        invariants.insert(
            "I1 zero downtime".into(),
            if r.traffic.sent() == 0 {
                Check::NotExercised("the scenario sends no traffic".into())
            } else if r.traffic.failed() == 0 {
                Check::Holds
            } else {
                Check::Broken(
                    std::iter::once(format!(
                        "{} of {} requests failed",
                        r.traffic.failed(),
                        r.traffic.sent()
                    ))
                    .chain(failures)
                    .collect(),
                )
            },
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
        invariants.insert(
            "I3/I4 restore".into(),
            restore_check(&outcome, r, &i.world, i.scenario),
        );
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
        let budget = i.timeout / 4;
        invariants.insert(
            "I6 no long waits in a Lambda".into(),
            Check::from_problems(
                i.functions
                    .iter()
                    .filter(|(_, s)| {
                        s.errors.contains_key("Sandbox.Timedout")
                            || Duration::from_millis(s.max_millis) > budget
                    })
                    .map(|(f, s)| {
                        format!(
                            "{f}: slowest invocation {} ms (budget {} ms of a {} s timeout)",
                            s.max_millis,
                            budget.as_millis(),
                            i.timeout.as_secs()
                        )
                    })
                    .collect(),
            ),
        );
        let restored = if r.changes.changed.is_empty() {
            restored_summary(i.events)
        } else {
            Vec::new()
        };
        Verdict {
            scenario: i.scenario.name.clone(),
            outcome,
            error: i.error,
            cause: i.cause,
            expectation,
            invariants,
            restored,
            operator_answers: i
                .operator_answers
                .into_iter()
                .map(|a| a.map_or_else(|e| format!("failed: {e}"), |()| "answered".into()))
                .collect(),
            figures: Figures {
                wall_seconds: i.wall.as_secs_f64(),
                simulated_seconds: i.simulated.as_secs_f64(),
                requests_sent: r.traffic.sent(),
                requests_failed: r.traffic.failed(),
                pdb_violations: r.budget_violations.len(),
                state_transitions: i.events.iter().filter(|e| e.kind == "StateEntered").count(),
                kubernetes_requests: r.requests.kubernetes_total,
                eks_requests: r.requests.eks_total,
                aws_requests: i.aws_requests,
                evictions: r.evictions.requested,
                functions: i.functions,
            },
            output: i.output,
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
            "  requests through the load balancers: {} sent, {} failed; PDB violations: {}",
            f.requests_sent, f.requests_failed, f.pdb_violations
        ));
        if !self.restored.is_empty() {
            line(format!("  restored: {}", self.restored.join(", ")));
        }
        for a in &self.operator_answers {
            line(format!("  operator callback: {a}"));
        }
        let other_aws: u64 = f.aws_requests.values().sum();
        line(format!(
            "  time: {:.1} s wall, {:.0} s simulated; {} state transitions",
            f.wall_seconds, f.simulated_seconds, f.state_transitions
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

fn restore_check(outcome: &str, r: &Report, w: &WorldState, scenario: &Scenario) -> Check {
    let mut problems = Vec::new();
    for c in r.changes.changed.iter().take(10) {
        problems.push(format!(
            "{}{} changed: {:?} → {:?}",
            c.object, c.path, c.before, c.after
        ));
    }
    for o in r.changes.added.iter().chain(&r.changes.removed) {
        if o.kind != "Node" {
            problems.push(format!("{o} added or removed"));
        }
    }
    problems.extend(w.marks_left.iter().map(|m| format!("left behind: {m}")));
    match outcome {
        "success" => {
            if !w.source_nodes.is_empty() {
                problems.push(format!("old group still has nodes {:?}", w.source_nodes));
            }
            if w.source_group_exists {
                problems.push("the old node group still exists".into());
            }
            let target = scenario
                .migration
                .as_ref()
                .and_then(|m| m.pointer("/target/name"))
                .and_then(Value::as_str);
            if let Some(target) = target {
                for (pod, group) in &w.pod_groups {
                    if group != target {
                        problems.push(format!("pod {pod} runs on group {group:?}, not {target}"));
                    }
                }
            }
        }
        // I4: the old group is still there with its nodes (unmarked, checked above).
        _ => {
            if w.source_nodes.is_empty() {
                problems.push("the old group has no nodes left after a rollback".into());
            }
        }
    }
    Check::from_problems(problems)
}

/// What the run put back, by the restoring states that ran.
fn restored_summary(events: &[StateEvent]) -> Vec<String> {
    let ran = |s: &str| {
        events
            .iter()
            .any(|e| e.kind == "StateExited" && e.state.as_deref() == Some(s))
    };
    let mut out = Vec::new();
    if ran("Restore") {
        out.push("replicas, HPAs and autoscaler settings equal their originals; ngm marks removed; lock released".into());
    }
    if ran("Rollback") {
        out.push("old nodes untainted and unlabelled; replicas, HPAs and autoscalers as before; lock released".into());
    }
    out
}
