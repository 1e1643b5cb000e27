//! How a migration behaves: what to surge first, what may be evicted, and what to do when blocked.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{LabelSelector, PodPhase, PodView};

/// The annotation a pod carries to be left out of the migration.
pub const DEFAULT_OPT_OUT_ANNOTATION: &str = "ngm.io/skip-migration";

/// A namespaced object name.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespacedName {
    pub namespace: String,
    pub name: String,
}

impl NamespacedName {
    pub fn new(namespace: &str, name: &str) -> NamespacedName {
        NamespacedName {
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

/// Which namespaces ngm migrates actively. Empty `include` means all. Pods out of scope are left
/// alone; the old group's deletion terminates them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NamespaceFilter {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

impl NamespaceFilter {
    pub fn allows(&self, namespace: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|n| n == namespace))
            && !self.exclude.iter().any(|n| n == namespace)
    }
}

/// What to do when a PDB still blocks an eviction at the drain deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum OnPdbBlocked {
    /// Pause on a task token (a day at most) until an operator answers with
    /// `ngm approve EXECUTION --action retry|force|rollback`: `retry` sets a new drain deadline
    /// and evicts again, `force` deletes the blocked (or named) pod and goes on, `rollback` rolls
    /// back. No answer, or `ngm abort`, rolls back.
    WaitForOperator,
    /// Roll the whole migration back.
    Rollback,
    /// Delete the blocked pods, bypassing the PDB.
    Force,
}

/// What to do with pods that no controller would recreate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum BarePodPolicy {
    /// Refuse to migrate (the pre-flight report fails).
    Fail,
    /// Leave them; the old group's deletion terminates them.
    Skip,
    /// Evict them; they are gone for good.
    Evict,
}

/// What to do with pods that use emptyDir volumes.
///
/// The default is `evict`: emptyDir is scratch space by contract, and EKS's own managed-node-group
/// updates evict such pods too. `fail` is for clusters that keep data there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum EmptyDirPolicy {
    Fail,
    Evict,
}

/// What to do with a pre-flight finding that drops requests whatever ngm does: `block` refuses
/// the migration in pre-flight, `warn` reports it and goes on. `onTrafficRisk` rules on load
/// balancers (connection draining off, a deregistration delay shorter than its propagation),
/// `onWorkloadRisk` on workloads (no preStop hook behind a Service, a grace period the preStop
/// uses up, no readiness gate in IP mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum TrafficRiskPolicy {
    Block,
    Warn,
}

/// What the drain does with pods that run to completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum JobMode {
    /// Evict them with the rest, as kubectl drain and EKS's managed-node-group updates do: the
    /// Job controller starts each again on the new nodes, and the work it had done is lost.
    Evict,
    /// Leave them running on the old nodes (tainted `NoSchedule`, so nothing new lands there)
    /// until they end or `finishWithinSeconds` has passed since the drain began; those still
    /// running then are evicted. The old group is deleted only once they have gone.
    WaitToFinish,
}

/// Pods that run to completion: those of Jobs (owned by a `batch/v1` Job, so also a CronJob's),
/// and those `selector` matches (a batch system's own pods: a workflow engine's, a Spark
/// driver's). A selector matching a Deployment's, StatefulSet's or DaemonSet's pods is refused
/// at pre-flight: their containers restart for ever, so they never finish.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct JobPolicy {
    pub mode: JobMode,
    /// With `waitToFinish`: how long after the drain begins running pods may still finish. At
    /// least 60; at most what `drainDeadlineSeconds` may be (validation says the limit).
    pub finish_within_seconds: u64,
    /// Pods of other owners (or none) that are waited for like Jobs' pods.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

impl Default for JobPolicy {
    fn default() -> JobPolicy {
        JobPolicy {
            mode: JobMode::Evict,
            finish_within_seconds: 3600,
            selector: None,
        }
    }
}

impl JobPolicy {
    /// Whether `p` runs to completion by this policy (a Job's pod, or one the selector
    /// matches), whatever its phase.
    pub fn covers(&self, p: &PodView) -> bool {
        p.owner_kind() == Some("Job")
            || self.selector.as_ref().is_some_and(|s| s.matches(&p.labels))
    }

    /// Whether the drain leaves `p` to finish: covered, still running, not yet leaving, and
    /// the policy waits.
    pub fn waits_for(&self, p: &PodView) -> bool {
        self.mode == JobMode::WaitToFinish
            && self.covers(p)
            && !p.terminating
            && !matches!(p.phase, PodPhase::Succeeded | PodPhase::Failed)
    }

    /// The seconds the drain may wait for running pods, with this policy.
    pub fn wait_secs(&self) -> u64 {
        match self.mode {
            JobMode::Evict => 0,
            JobMode::WaitToFinish => self.finish_within_seconds,
        }
    }
}

/// A blocking pre-flight finding a request may accept by name: the migration then goes on and
/// the finding stays in the report as a warning.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum AcceptedRisk {
    /// Pods annotated `karpenter.sh/do-not-disrupt: "true"` are evicted all the same.
    DoNotDisrupt,
    /// Pods annotated `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"` are evicted
    /// all the same.
    SafeToEvictFalse,
    /// Pods that select a node label the old nodes carry but the new group does not set
    /// (something else labels the nodes) move all the same.
    UnmanagedNodeLabel,
    /// Pods whose data lives on the old node (a local PersistentVolume, a `hostPath`) are
    /// evicted all the same, and that data is lost with the old group.
    LocalStorage,
}

impl AcceptedRisk {
    /// The finding kind it accepts.
    pub fn kind(self) -> &'static str {
        match self {
            Self::DoNotDisrupt => "do-not-disrupt",
            Self::SafeToEvictFalse => "safe-to-evict-false",
            Self::UnmanagedNodeLabel => "unmanaged-node-label",
            Self::LocalStorage => "local-storage",
        }
    }
}

/// The migration policy. Every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Policy {
    /// Deployments surged before all others, in this order.
    pub system_deployments: Vec<NamespacedName>,
    /// Each Deployment runs `ceil(replicas × surgeFactor)` pods during the surge. 1 to 4.
    pub surge_factor: f64,
    pub namespaces: NamespaceFilter,
    /// Pods carrying this annotation (any value) are left out of the migration.
    pub opt_out_annotation: String,
    /// How long the drain may wait on PDBs before `onPdbBlocked` applies. At least 60; at most
    /// what fits in the execution's 48-hour timeout with every other wait at its limit (and the
    /// operator's day with `waitForOperator`): validation says the limit.
    pub drain_deadline_seconds: u64,
    pub on_pdb_blocked: OnPdbBlocked,
    pub pods_without_controller: BarePodPolicy,
    pub empty_dir: EmptyDirPolicy,
    pub on_traffic_risk: TrafficRiskPolicy,
    /// Workloads that drop requests on any rollout, this one included. `warn` by default: such
    /// a workload loses the same requests on its own next deploy, and refusing would stop every
    /// automatic AMI migration of the cluster over it; the findings name each one.
    pub on_workload_risk: TrafficRiskPolicy,
    /// Pods that run to completion (Jobs'): evicted, or left to finish up to a deadline.
    pub jobs: JobPolicy,
    /// Seconds to wait after excluding old nodes from load balancers, instead of the value
    /// computed from the load balancers' idle timeouts and deregistration delays.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lb_drain_seconds_override: Option<u64>,
    /// Whether a rollback deletes the new group (only ever one ngm created).
    pub rollback_deletes_new_group: bool,
    /// Plan and report only; change nothing.
    pub dry_run: bool,
    /// Blocking pre-flight findings accepted by name (`do-not-disrupt`,
    /// `safe-to-evict-false`, `unmanaged-node-label`, `local-storage`): they warn instead.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accept_risks: Vec<AcceptedRisk>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            system_deployments: vec![
                NamespacedName::new("kube-system", "coredns"),
                NamespacedName::new("kube-system", "aws-load-balancer-controller"),
            ],
            surge_factor: 2.0,
            namespaces: NamespaceFilter::default(),
            opt_out_annotation: DEFAULT_OPT_OUT_ANNOTATION.to_string(),
            drain_deadline_seconds: 3600,
            on_pdb_blocked: OnPdbBlocked::Rollback,
            pods_without_controller: BarePodPolicy::Fail,
            empty_dir: EmptyDirPolicy::Evict,
            on_traffic_risk: TrafficRiskPolicy::Block,
            on_workload_risk: TrafficRiskPolicy::Warn,
            jobs: JobPolicy::default(),
            lb_drain_seconds_override: None,
            rollback_deletes_new_group: true,
            dry_run: false,
            accept_risks: Vec::new(),
        }
    }
}

impl Policy {
    /// Whether the request accepts the blocking finding of this kind.
    pub fn accepts(&self, kind: &str) -> bool {
        self.accept_risks.iter().any(|r| r.kind() == kind)
    }

    /// The surged replica count for a workload of `replicas`.
    pub fn surge_replicas(&self, replicas: i32) -> i32 {
        let factor = if self.surge_factor.is_finite() && self.surge_factor >= 1.0 {
            self.surge_factor
        } else {
            1.0
        };
        let surged = (f64::from(replicas) * factor).ceil();
        if surged >= f64::from(i32::MAX) {
            i32::MAX
        } else {
            // Finite, non-negative and below i32::MAX: the cast is exact.
            surged as i32
        }
    }
}
