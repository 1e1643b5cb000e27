//! `MigrationState`: the versioned envelope every Lambda takes and returns.
//!
//! It holds ids, counts, deadlines and the few originals that live on no Kubernetes object
//! (Auto Scaling sizes, suspended processes, autoscaler tags). Per-workload originals live on
//! the workloads as annotations ([`crate::marks`]), and nodes are found again by label, so the
//! state stays a few KiB however large the cluster (Step Functions caps it at 256 KiB).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{AsgInfo, NodeGroupKind, Scaling, Timestamp, TrafficSource};
use crate::request::MigrationRequest;

/// Bumped on every incompatible change of the envelope.
pub const SCHEMA_VERSION: u32 = 1;

/// The envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationState {
    pub schema_version: u32,
    pub execution: ExecutionRef,
    /// The input, never mutated.
    pub request: MigrationRequest,
    pub phase: Phase,
    pub source: SourceInfo,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_group: Option<NewGroupInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<LockInfo>,
    #[serde(default)]
    pub deadlines: Deadlines,
    #[serde(default)]
    pub originals: Originals,
    #[serde(default)]
    pub counts: Counts,
    /// Digest of the set of objects ngm annotated, to check a restore found them all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub marks_digest: Option<String>,
    /// Seconds the LB-drain Wait state waits.
    #[serde(default)]
    pub lb_drain_seconds: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<PreflightSummary>,
    /// Set when the step wants to be called again after a Wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<Failure>,
    /// The operator's answer to a PDB-blocked drain (`AwaitOperator`'s callback, kept with
    /// `ResultPath: $.operator`). The drain acts on it and clears it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator: Option<OperatorAnswer>,
    /// Set when a batched step (retire, rollback, restore) stopped at its per-invocation budget:
    /// the state machine calls the same step again at once, without a Wait.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<Continuation>,
    /// Things a step skipped on purpose and the report should say (a namespace being deleted,
    /// ...). At most [`MAX_FINDINGS`], each once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
    /// Namespaces found being deleted (an eviction answered 403 NamespaceTerminating): the
    /// drain and DeleteOld skip their pods, which the namespace controller deletes. At most
    /// [`MAX_FINDINGS`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped_namespaces: Vec<String>,
}

/// The most findings the state keeps (it must stay a few KiB).
pub const MAX_FINDINGS: usize = 20;

/// What the operator chose for a PDB-blocked drain (`ngm approve EXECUTION --action ...`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OperatorAnswer {
    pub action: OperatorAction,
    /// `namespace/name` of the pod to force; the blocked pod when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod: Option<String>,
    /// Who answered, for the record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
}

/// The operator's choices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OperatorAction {
    /// A new drain deadline, and the evictions start again.
    Retry,
    /// Delete one pod (the named one, else the blocked one) bypassing its PDB, then go on as
    /// after `retry`. A StatefulSet pod waits until no other pod of its set is terminating.
    Force,
    /// Roll the migration back.
    Rollback,
}

/// Where a batched step stopped. Opaque to the state machine, which only tests its presence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Continuation {
    /// The step that stopped (`retire`, `rollback`, `restore`).
    pub step: String,
    /// Invocations of this step in a row that stopped at the budget.
    pub batches: u32,
    /// Actions executed so far over those invocations.
    pub done: u64,
}

impl MigrationState {
    /// Records a namespace being deleted, once, with its finding.
    pub fn skip_namespace(&mut self, namespace: &str) {
        if self.skipped_namespaces.len() < MAX_FINDINGS
            && !self.skipped_namespaces.iter().any(|n| n == namespace)
        {
            self.skipped_namespaces.push(namespace.to_string());
            self.note(format!(
                "namespace {namespace} is being deleted: its pods were left to the namespace controller"
            ));
        }
    }

    /// Adds a finding once, keeping at most [`MAX_FINDINGS`].
    pub fn note(&mut self, finding: String) {
        if self.findings.len() < MAX_FINDINGS && !self.findings.contains(&finding) {
            self.findings.push(finding);
        }
    }
}

/// The Step Functions execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecutionRef {
    /// Execution name: unique per state machine, used in tokens, markers and the lock.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub started_at: Timestamp,
}

impl ExecutionRef {
    /// A short, label-safe digest of the execution name (label values are at most 63 chars).
    pub fn digest(&self) -> String {
        crate::digest::hex_of([self.name.as_str()])
    }
}

/// Where the migration is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    Validated,
    Planned,
    /// A dry run stops after planning.
    DryRunDone,
    CreatingGroup,
    GroupReady,
    Tainted,
    Frozen,
    Surged,
    TrafficCut,
    Retired,
    Drained,
    /// DeleteOld's wait is over: only skipped pods remain; DeleteNodegroup comes next.
    OldGroupEmpty,
    /// DeleteNodegroup (or DeleteAutoScalingGroup) was called.
    DeletingOldGroup,
    OldGroupDeleted,
    Restored,
    RolledBack,
}

/// The old group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SourceInfo {
    pub name: String,
    pub kind: NodeGroupKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The Auto Scaling groups behind it.
    #[serde(default)]
    pub asg_names: Vec<String>,
}

/// The new group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewGroupInfo {
    pub name: String,
    /// False when an existing group with the same spec was adopted; a rollback then keeps it.
    pub created_by_ngm: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    /// The launch template version ngm created for it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template_version: Option<i64>,
}

/// The per-cluster lock this execution holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LockInfo {
    pub cluster_arn: String,
    pub acquired_at: Timestamp,
}

/// Absolute deadlines, set when the step that starts waiting first runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Deadlines {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_ready_by: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub surge_ready_by: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_by: Option<Timestamp>,
    /// Drain, with `policy.jobs.mode: waitToFinish`: when pods that run to completion stop
    /// being left to finish and are evicted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jobs_by: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_group_gone_by: Option<Timestamp>,
    /// Rollback: when the new nodes have left the load balancers for long enough to delete
    /// them. They are excluded `lbDrainSeconds` before it, once the old nodes are back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_lb_drained_by: Option<Timestamp>,
    /// Retire: when the surged Deployments must be back at their original counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retired_by: Option<Timestamp>,
    /// DeleteOld, before the group's deletion: when the old nodes must be empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_group_empty_by: Option<Timestamp>,
    /// Rollback: when its own waits (the new nodes' drain) must be over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_by: Option<Timestamp>,
    /// CutTraffic's health gate: when the new targets must be healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_healthy_by: Option<Timestamp>,
    /// When CutTraffic labelled the old nodes out of the load balancers; the observed drain
    /// is bounded by it plus `lbDrainSeconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_cut_at: Option<Timestamp>,
    /// DeleteOld: when ngm began stopping the pods it left on the old nodes, and when it stops
    /// waiting for them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_pods_stop_started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub left_pods_stopped_by: Option<Timestamp>,
    /// Restore: when it stops waiting for the HPAs handed back to hold their targets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpas_settled_by: Option<Timestamp>,
}

/// Originals that live on no Kubernetes object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Originals {
    /// The old group's min/max/desired before it was pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_group_scaling: Option<Scaling>,
    /// Per old Auto Scaling group: processes that were already suspended before ngm.
    #[serde(default)]
    pub suspended_processes: BTreeMap<String, Vec<String>>,
    /// Per Auto Scaling group: each Cluster Autoscaler tag ngm changed, and its value before
    /// (`None` when it was absent).
    #[serde(default)]
    pub autoscaler_tags: BTreeMap<String, BTreeMap<String, Option<String>>>,
    /// The load balancers attached to the old Auto Scaling groups when CutTraffic first ran:
    /// ngm attaches the new group's to the same ones, detaches the old at the cut, and a
    /// rollback reverses both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_attachments: Option<LbAttachments>,
}

/// Load balancers attached to Auto Scaling groups.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LbAttachments {
    /// Classic load balancer names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub load_balancer_names: Vec<String>,
    /// Target group ARNs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub target_group_arns: Vec<String>,
    /// Traffic sources attached with AttachTrafficSources (the legacy lists above do not show
    /// them): they join and leave the same way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub traffic_sources: Vec<TrafficSource>,
}

impl LbAttachments {
    pub fn is_empty(&self) -> bool {
        self.load_balancer_names.is_empty()
            && self.target_group_arns.is_empty()
            && self.traffic_sources.is_empty()
    }

    /// Adds what `asg` has attached, each once: its legacy lists, and the traffic sources
    /// they do not show.
    pub fn add(&mut self, asg: &AsgInfo) {
        fn push<T: PartialEq + Clone>(to: &mut Vec<T>, x: &T) {
            if !to.contains(x) {
                to.push(x.clone());
            }
        }
        for n in &asg.load_balancer_names {
            push(&mut self.load_balancer_names, n);
        }
        for a in &asg.target_group_arns {
            push(&mut self.target_group_arns, a);
        }
        for t in &asg.traffic_sources {
            let legacy = asg.load_balancer_names.contains(&t.identifier)
                || asg.target_group_arns.contains(&t.identifier);
            if !legacy {
                push(&mut self.traffic_sources, t);
            }
        }
    }
}

/// What ngm did, counted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Counts {
    pub old_nodes: u32,
    pub new_nodes: u32,
    pub nodes_tainted: u32,
    pub nodes_excluded_from_lb: u32,
    pub hpas_frozen: u32,
    pub workloads_surged: u32,
    pub workloads_retired: u32,
    pub pods_marked: u32,
    pub pods_evicted: u32,
    pub pods_skipped: u32,
    pub pdb_blocks: u32,
    /// The most pods that run to completion the drain left to finish at once.
    #[serde(default)]
    pub pods_waited_for: u32,
    pub workloads_restored: u32,
    pub hpas_restored: u32,
}

impl Counts {
    /// Counts what a step did from the actions it executed.
    pub fn record(&mut self, actions: &[crate::plan::Action]) {
        use crate::plan::Action;
        let bump = |c: &mut u32| *c = c.saturating_add(1);
        for a in actions {
            match a {
                Action::AddNodeTaints { .. } => bump(&mut self.nodes_tainted),
                Action::PatchNodeLabels { labels, .. }
                    if labels
                        .get(crate::marks::EXCLUDE_FROM_LB_LABEL)
                        .is_some_and(Option::is_some) =>
                {
                    bump(&mut self.nodes_excluded_from_lb)
                }
                Action::ScaleWorkload { from, to, .. } if to > from => {
                    bump(&mut self.workloads_surged)
                }
                Action::ScaleWorkload { .. } => bump(&mut self.workloads_retired),
                Action::PatchHpa { patch, .. }
                    if patch.min_replicas.is_some_and(|m| m.is_some())
                        && patch.annotations.values().any(Option::is_some) =>
                {
                    bump(&mut self.hpas_frozen)
                }
                Action::PatchHpa { .. } => bump(&mut self.hpas_restored),
                Action::AnnotatePod { annotations, .. }
                    if annotations
                        .get(crate::marks::POD_DELETION_COST)
                        .is_some_and(Option::is_some) =>
                {
                    bump(&mut self.pods_marked)
                }
                Action::EvictPod { .. } | Action::DeletePod { .. } => bump(&mut self.pods_evicted),
                _ => {}
            }
        }
    }
}

/// The pre-flight report, cut down to what fits in the state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PreflightSummary {
    pub ok: bool,
    pub blocking: u32,
    pub warnings: u32,
    /// The first few findings, as sentences.
    #[serde(default)]
    pub findings: Vec<String>,
    pub drain_wait_seconds: u64,
}

/// Call again after this many seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Pending {
    pub retry_after_seconds: u64,
    pub reason: String,
}

/// An eviction a PDB keeps refusing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Blocked {
    /// `namespace/name`.
    pub pod: String,
    /// `namespace/name`, when the API named it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<String>,
    pub since: Timestamp,
}

/// Why the execution failed, for the rollback and the summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Failure {
    pub step: String,
    pub error: String,
    pub message: String,
}

impl MigrationState {
    /// The state a validated request starts with.
    pub fn new(execution: ExecutionRef, request: MigrationRequest) -> MigrationState {
        let source = SourceInfo {
            name: request.source.name().to_string(),
            kind: request.source.kind(),
            arn: None,
            asg_names: Vec::new(),
        };
        MigrationState {
            schema_version: SCHEMA_VERSION,
            execution,
            request,
            phase: Phase::Validated,
            source,
            new_group: None,
            lock: None,
            deadlines: Deadlines::default(),
            originals: Originals::default(),
            counts: Counts::default(),
            marks_digest: None,
            lb_drain_seconds: 0,
            preflight: None,
            pending: None,
            blocked: None,
            failure: None,
            operator: None,
            continuation: None,
            findings: Vec::new(),
            skipped_namespaces: Vec::new(),
        }
    }
}

/// The JSON Schema of the state envelope.
pub fn state_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(MigrationState))
        .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }))
}
