//! Step 1's pre-flight report: everything that would make the migration fail or hurt, found
//! before anything is touched.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::model::{
    DaemonSetView, LoadBalancerInfo, NodeView, PdbView, PodPhase, PodView, PreStop, ReplicaSetView,
    Resources, Scaling, ServiceView, WorkloadKind, WorkloadRef, WorkloadView,
};
use crate::plan::drain::{Eligibility, eligibility};
use crate::plan::fit::{Move, NewNode, spread_miss};
use crate::plan::lbdrain::{DrainWait, lb_drain_wait, lb_wait};
use crate::plan::scope::{in_scope, owning_workload};
use crate::plan::surge::original_replicas;
use crate::request::Policy;
use crate::state::PreflightSummary;

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    Blocking,
    Warning,
    Info,
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Finding {
    pub severity: Severity,
    /// Stable kebab-case name: `surge-capacity`, `pdb-blocks`, `no-controller`, `empty-dir`,
    /// `volume-zone`, `daemonsets`, `load-balancer`, `drain-wait`, `clb-draining-off`,
    /// `nlb-short-deregistration-delay`, `no-prestop`, `short-grace`, `short-prestop`,
    /// `no-readiness-gate`, `vpc-lattice-source`, `do-not-disrupt`, `safe-to-evict-false`,
    /// `instance-type`, `max-pods`, `pod-too-big`, `node-selector`, `unmanaged-node-label`,
    /// `taint-not-tolerated`, `anti-affinity`, `topology-spread`, `host-path`, `local-pv`,
    /// `karpenter`, `long-job`, `jobs-selector`.
    pub kind: String,
    pub message: String,
}

/// Capacity the new group needs at the peak of the surge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurgeCapacity {
    pub needed: Resources,
    pub at_desired: Resources,
    pub at_max: Resources,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreflightReport {
    pub findings: Vec<Finding>,
    pub capacity: SurgeCapacity,
    pub drain_wait: DrainWait,
    pub deployments_to_surge: u32,
    pub pods_to_move: u32,
}

impl PreflightReport {
    /// No blocking finding.
    pub fn ok(&self) -> bool {
        !self
            .findings
            .iter()
            .any(|f| f.severity == Severity::Blocking)
    }

    /// What goes into the state: counts and the first `max` findings, worst first.
    pub fn summary(&self, max: usize) -> PreflightSummary {
        let count = |s| {
            u32::try_from(self.findings.iter().filter(|f| f.severity == s).count())
                .unwrap_or(u32::MAX)
        };
        let mut sorted: Vec<&Finding> = self.findings.iter().collect();
        sorted.sort_by_key(|f| f.severity);
        PreflightSummary {
            ok: self.ok(),
            blocking: count(Severity::Blocking),
            warnings: count(Severity::Warning),
            findings: sorted
                .into_iter()
                .take(max)
                .map(|f| f.message.clone())
                .collect(),
            drain_wait_seconds: self.drain_wait.seconds,
        }
    }
}

/// What pre-flight reads.
#[derive(Debug, Clone, Copy)]
pub struct PreflightInputs<'a> {
    pub policy: &'a Policy,
    pub old_nodes: &'a [NodeView],
    pub old_pods: &'a [PodView],
    pub replicasets: &'a [ReplicaSetView],
    /// Deployments and StatefulSets.
    pub workloads: &'a [WorkloadView],
    pub daemonsets: &'a [DaemonSetView],
    pub pdbs: &'a [PdbView],
    /// Load balancers in front of Services that select pods on the old nodes.
    pub load_balancers: &'a [LoadBalancerInfo],
    /// Every Service (the workloads behind one are checked for how they stop).
    pub services: &'a [ServiceView],
    /// `(namespace, name)` of the Services with an IP TargetGroupBinding (the Load Balancer
    /// Controller registers their pods: Ingress ALBs, `nlb-target-type: ip`, bindings).
    pub ip_services: &'a BTreeSet<(String, String)>,
    /// Allocatable of one node of the new group, when `new_node` cannot say (an old node's).
    pub new_node_allocatable: Resources,
    /// A node of the new group, built from its spec; `None` when its instance type is unknown.
    pub new_node: Option<&'a NewNode>,
    /// The old group's own node labels (its spec's).
    pub old_group_labels: &'a crate::model::Labels,
    /// Every PersistentVolume (a claim on a local one ties its pod to a node).
    pub volumes: &'a [crate::model::VolumeView],
    /// Karpenter's NodePools; `None` when Karpenter is not installed.
    pub node_pools: Option<&'a [crate::model::NodePoolView]>,
    pub new_scaling: Scaling,
    /// Zones of the new group's subnets.
    pub new_zones: &'a BTreeSet<String>,
}

fn finding(severity: Severity, kind: &str, message: String) -> Finding {
    Finding {
        severity,
        kind: kind.to_string(),
        message,
    }
}

fn names(pods: &[&PodView], max: usize) -> String {
    let mut s: Vec<String> = pods.iter().take(max).map(|p| p.key()).collect();
    if pods.len() > max {
        s.push(format!("and {} more", pods.len() - max));
    }
    s.join(", ")
}

/// Builds the report.
pub fn plan_preflight(i: PreflightInputs<'_>) -> PreflightReport {
    let mut findings = Vec::new();
    let movable: Vec<&PodView> = i
        .old_pods
        .iter()
        .filter(|p| matches!(eligibility(p, i.policy), Eligibility::Evict { .. }))
        .collect();

    // Deployments surged, and the rest that moves by eviction.
    let mut surged: BTreeSet<WorkloadRef> = BTreeSet::new();
    let mut evicted_requests = Resources::default();
    for p in &movable {
        match owning_workload(p, i.replicasets) {
            Some(w) if w.kind == WorkloadKind::Deployment => {
                surged.insert(w);
            }
            _ => evicted_requests = evicted_requests.plus(p.requests),
        }
    }
    let mut surge_requests = Resources::default();
    for w in i
        .workloads
        .iter()
        .filter(|w| surged.contains(&w.workload_ref()))
    {
        let original = original_replicas(w);
        let extra = i.policy.surge_replicas(original) - original;
        surge_requests = surge_requests.plus(w.pod_requests.times(i64::from(extra)));
    }
    // DaemonSet pods take the same share of every new node as of an old one.
    let old_count = i64::try_from(i.old_nodes.len()).unwrap_or(1).max(1);
    let ds_pods: Vec<&PodView> = i
        .old_pods
        .iter()
        .filter(|p| p.owner_kind() == Some("DaemonSet"))
        .collect();
    let ds_total = ds_pods
        .iter()
        .fold(Resources::default(), |acc, p| acc.plus(p.requests));
    let ds_per_node = Resources {
        cpu_millis: ds_total.cpu_millis / old_count,
        memory_bytes: ds_total.memory_bytes / old_count,
    };
    let ds_pods_per_node = (i64::try_from(ds_pods.len()).unwrap_or(0) + old_count - 1) / old_count;
    let allocatable = i.new_node.map_or(i.new_node_allocatable, |n| n.allocatable);
    let per_node = Resources {
        cpu_millis: (allocatable.cpu_millis - ds_per_node.cpu_millis).max(0),
        memory_bytes: (allocatable.memory_bytes - ds_per_node.memory_bytes).max(0),
    };
    let needed = surge_requests.plus(evicted_requests);
    let capacity = SurgeCapacity {
        needed,
        at_desired: per_node.times(i64::from(i.new_scaling.desired)),
        at_max: per_node.times(i64::from(i.new_scaling.max)),
    };
    let fits =
        |r: Resources| needed.cpu_millis <= r.cpu_millis && needed.memory_bytes <= r.memory_bytes;
    if !fits(capacity.at_max) {
        findings.push(finding(
            Severity::Blocking,
            "surge-capacity",
            format!(
                "the new group cannot hold the surge even at its max of {} nodes: {}m CPU and {} MiB needed, {}m and {} MiB available",
                i.new_scaling.max,
                needed.cpu_millis,
                needed.memory_bytes >> 20,
                capacity.at_max.cpu_millis,
                capacity.at_max.memory_bytes >> 20
            ),
        ));
    } else if !fits(capacity.at_desired) {
        findings.push(finding(
            Severity::Warning,
            "surge-capacity",
            format!(
                "the surge needs more than the new group's desired {} nodes; it relies on the autoscaler to scale it up",
                i.new_scaling.desired
            ),
        ));
    }
    if let Some(new) = i.new_node {
        let moves = moves(&i, &movable, &surged);
        findings.extend(pod_count_findings(
            new,
            &moves,
            ds_pods_per_node,
            i.new_scaling,
        ));
        findings.extend(placement_findings(&i, new, per_node, &moves));
    }

    findings.extend(local_volume_findings(
        &movable,
        i.volumes,
        i.replicasets,
        i.policy,
    ));
    if let Some(pools) = i.node_pools.filter(|p| !p.is_empty()) {
        findings.push(karpenter_finding(pools, !fits(capacity.at_desired)));
    }
    pdb_findings(&i, &movable, &surged, &mut findings);
    findings.extend(opt_out_findings(&movable, i.replicasets, i.policy));
    findings.extend(job_findings(&movable, i.replicasets, i.policy));

    for p in i.old_pods {
        match eligibility(p, i.policy) {
            Eligibility::Error { reason } => {
                let kind = if p.owner.is_none() {
                    "no-controller"
                } else {
                    "empty-dir"
                };
                findings.push(finding(Severity::Blocking, kind, reason));
            }
            Eligibility::Evict { warnings } => {
                for w in warnings {
                    let kind = if p.owner.is_none() {
                        "no-controller"
                    } else {
                        "empty-dir"
                    };
                    findings.push(finding(Severity::Warning, kind, w));
                }
            }
            Eligibility::Skip { .. } => {}
        }
    }

    let zone_of: BTreeMap<&str, &str> = i
        .old_nodes
        .iter()
        .filter_map(|n| n.zone.as_deref().map(|z| (n.name.as_str(), z)))
        .collect();
    for p in movable
        .iter()
        .filter(|p| p.owner_kind() == Some("StatefulSet") && !p.pvc_names.is_empty())
    {
        // EBS volumes are zonal, so a running pod's claims live in its node's zone.
        let zone = p.node_name.as_deref().and_then(|n| zone_of.get(n)).copied();
        if let Some(z) = zone.filter(|z| !i.new_zones.contains(*z)) {
            findings.push(finding(
                Severity::Blocking,
                "volume-zone",
                format!(
                    "{} has volumes in {z}, where the new group has no subnet",
                    p.key()
                ),
            ));
        }
    }

    if !i.daemonsets.is_empty() {
        findings.push(finding(
            Severity::Info,
            "daemonsets",
            format!(
                "{} DaemonSets are skipped by the drain; their pods behind a Service are evicted \
                 before the old group is deleted, the others go with the old nodes",
                i.daemonsets.len()
            ),
        ));
    }
    for lb in i.load_balancers {
        findings.push(finding(
            Severity::Info,
            "load-balancer",
            format!(
                "{} ({:?}) keeps old connections up to {} s",
                lb.dns_name,
                lb.kind,
                lb_wait(lb)
            ),
        ));
    }
    findings.extend(traffic_risks(i.load_balancers, i.policy));
    findings.extend(workload_risks(
        &movable,
        i.services,
        i.ip_services,
        i.replicasets,
        i.policy,
    ));
    let drain_wait = lb_drain_wait(i.load_balancers, i.policy.lb_drain_seconds_override);
    findings.push(finding(
        Severity::Info,
        "drain-wait",
        format!(
            "old nodes leave the load balancers {} s before pods are retired",
            drain_wait.seconds
        ),
    ));

    PreflightReport {
        findings,
        capacity,
        drain_wait,
        deployments_to_surge: u32::try_from(surged.len()).unwrap_or(u32::MAX),
        pods_to_move: u32::try_from(movable.len()).unwrap_or(u32::MAX),
    }
}

/// Pods whose owners asked the autoscalers not to disrupt them (`karpenter.sh/do-not-disrupt:
/// "true"`, `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`): a migration evicts them
/// all the same, so each workload (or bare pod) is named, once per annotation, and blocks
/// unless `policy.acceptRisks` accepts it.
/// Pods that run to completion: what the drain will do with them, and a selector that takes
/// pods which never finish (a Deployment's restart for ever: `restartPolicy` is `Always`).
fn job_findings(
    movable: &[&PodView],
    replicasets: &[ReplicaSetView],
    policy: &Policy,
) -> Vec<Finding> {
    use crate::request::JobMode;
    let jobs = &policy.jobs;
    let mut out = Vec::new();
    let never_finish: BTreeSet<String> = movable
        .iter()
        .filter(|p| jobs.covers(p))
        .filter(|p| {
            matches!(
                p.owner_kind(),
                Some("ReplicaSet" | "StatefulSet" | "DaemonSet")
            )
        })
        .map(|p| {
            owning_workload(p, replicasets)
                .map_or_else(|| format!("Pod {}", p.key()), |w| w.to_string())
        })
        .collect();
    for owner in never_finish {
        out.push(finding(
            Severity::Blocking,
            "jobs-selector",
            format!(
                "policy.jobs.selector matches the pods of {owner}, whose containers restart for \
                 ever: they never finish, so there is nothing to wait for; narrow the selector"
            ),
        ));
    }
    let running: Vec<&PodView> = movable
        .iter()
        .copied()
        .filter(|p| jobs.covers(p) && !matches!(p.phase, PodPhase::Succeeded | PodPhase::Failed))
        .collect();
    if running.is_empty() {
        return out;
    }
    out.push(match jobs.mode {
        JobMode::WaitToFinish => finding(
            Severity::Info,
            "long-job",
            format!(
                "{} pod(s) that run to completion are on the old nodes ({}): the drain leaves \
                 them to finish for up to {} s and evicts those still running then; the old \
                 group is deleted once they have gone",
                running.len(),
                names(&running, 5),
                jobs.finish_within_seconds
            ),
        ),
        JobMode::Evict => finding(
            Severity::Warning,
            "long-job",
            format!(
                "{} pod(s) that run to completion are on the old nodes ({}): the drain evicts \
                 them, their Jobs start them again on the new nodes and the work they had done \
                 is lost; policy.jobs.mode waitToFinish lets them finish first",
                running.len(),
                names(&running, 5)
            ),
        ),
    });
    out
}

fn opt_out_findings(
    movable: &[&PodView],
    replicasets: &[ReplicaSetView],
    policy: &Policy,
) -> Vec<Finding> {
    use crate::marks::{CA_SAFE_TO_EVICT, KARPENTER_DO_NOT_DISRUPT};
    let rules: [(&str, &str, &str, &str); 2] = [
        (
            "do-not-disrupt",
            KARPENTER_DO_NOT_DISRUPT,
            "true",
            "its owner asked Karpenter never to disrupt it voluntarily",
        ),
        (
            "safe-to-evict-false",
            CA_SAFE_TO_EVICT,
            "false",
            "its owner asked Cluster Autoscaler never to evict it",
        ),
    ];
    let mut out = Vec::new();
    for (kind, key, value, why) in rules {
        let mut by_owner: BTreeMap<String, Vec<&PodView>> = BTreeMap::new();
        for p in movable
            .iter()
            .filter(|p| p.annotations.get(key).map(String::as_str) == Some(value))
        {
            let owner = owning_workload(p, replicasets)
                .map_or_else(|| format!("Pod {}", p.key()), |w| w.to_string());
            by_owner.entry(owner).or_default().push(p);
        }
        for (owner, pods) in by_owner {
            let (severity, verdict) = if policy.accepts(kind) {
                (
                    Severity::Warning,
                    format!("evicted all the same, as policy.acceptRisks [{kind}] says"),
                )
            } else {
                (
                    Severity::Blocking,
                    format!(
                        "the migration would evict it, so it refuses; accept it with policy.acceptRisks: [{kind}]"
                    ),
                )
            };
            out.push(finding(
                severity,
                kind,
                format!(
                    "{owner} has {key}: \"{value}\" on {} pod(s) of the old nodes ({}): {why}; {verdict}",
                    pods.len(),
                    names(&pods, 3)
                ),
            ));
        }
    }
    out
}

fn pdb_findings(
    i: &PreflightInputs<'_>,
    movable: &[&PodView],
    surged: &BTreeSet<WorkloadRef>,
    findings: &mut Vec<Finding>,
) {
    for pdb in i.pdbs {
        let covered: Vec<&PodView> = movable.iter().copied().filter(|p| pdb.covers(p)).collect();
        if covered.is_empty() {
            continue;
        }
        let never = pdb
            .max_unavailable
            .is_some_and(|m| m.resolve(pdb.expected_pods) <= 0)
            || pdb
                .min_available
                .is_some_and(|m| m.resolve(pdb.expected_pods) >= pdb.expected_pods);
        // Surged Deployments leave by scale-down, which PDBs do not govern; the rest must be evicted.
        let must_evict: Vec<&PodView> = covered
            .iter()
            .copied()
            .filter(|p| !owning_workload(p, i.replicasets).is_some_and(|w| surged.contains(&w)))
            .collect();
        let who = format!("{}/{}", pdb.namespace, pdb.name);
        // A request that waits for an operator has chosen to have blocked pods forced out
        // (`ngm approve --action force`), so such a PDB is expected, not fatal.
        let operator = i.policy.on_pdb_blocked == crate::request::OnPdbBlocked::WaitForOperator;
        if never && !must_evict.is_empty() && operator {
            findings.push(finding(
                Severity::Warning,
                "pdb-blocks",
                format!(
                    "PDB {who} never allows an eviction; the drain will wait for an operator to force {}",
                    names(&must_evict, 5)
                ),
            ));
        } else if never && !must_evict.is_empty() {
            findings.push(finding(
                Severity::Blocking,
                "pdb-blocks",
                format!(
                    "PDB {who} never allows an eviction; it would block {}",
                    names(&must_evict, 5)
                ),
            ));
        } else if never {
            findings.push(finding(
                Severity::Warning,
                "pdb-blocks",
                format!(
                    "PDB {who} never allows an eviction; {} can leave only by the scale-down",
                    names(&covered, 5)
                ),
            ));
        } else if pdb.disruptions_allowed <= 0 && !must_evict.is_empty() {
            findings.push(finding(
                Severity::Warning,
                "pdb-blocks",
                format!(
                    "PDB {who} allows no disruption now ({} of {} healthy); it blocks {} until more are ready",
                    pdb.current_healthy,
                    pdb.desired_healthy,
                    names(&must_evict, 5)
                ),
            ));
        }
    }
}

/// Whether pods are in scope; re-exported for steps computing the affected set.
pub fn affected_deployments(
    old_pods: &[PodView],
    replicasets: &[ReplicaSetView],
    policy: &Policy,
) -> BTreeSet<WorkloadRef> {
    old_pods
        .iter()
        .filter(|p| !p.terminating && in_scope(p, policy))
        .filter_map(|p| owning_workload(p, replicasets))
        .filter(|w| w.kind == WorkloadKind::Deployment)
        .collect()
}

#[cfg(test)]
mod tests;

/// Load balancers that drop requests at the cut-over whatever ngm does, blocking or warning as
/// `policy.onTrafficRisk` says:
/// - a CLB with connection draining off cuts the requests in flight through an instance the
///   moment it leaves (CLB guide, `config-conn-drain.md`: "any in-flight requests made to
///   instances that are de-registering or unhealthy are not completed"); the in-tree provider
///   turns it off unless the Service asks (cloud-provider-aws `pkg/providers/v1/aws.go`);
/// - an NLB target group whose deregistration delay is shorter than the time an NLB keeps
///   sending new connections to a deregistered target resets those connections when the delay
///   ends (aws/containers-roadmap#470: 120 s is the least delay that loses nothing).
pub fn traffic_risks(lbs: &[LoadBalancerInfo], policy: &Policy) -> Vec<Finding> {
    use crate::model::LbKind;
    use crate::plan::lbdrain::NLB_DEREGISTRATION_PROPAGATION_SECS;
    let severity = risk_severity(policy.on_traffic_risk);
    let mut out = Vec::new();
    for lb in lbs {
        match lb.kind {
            LbKind::Clb if lb.classic_draining.as_ref().is_some_and(|d| !d.enabled) => {
                out.push(finding(
                    severity,
                    "clb-draining-off",
                    format!(
                        "{}: connection draining is off, so requests in flight through an old \
                         node are cut when it leaves; turn it on (Service annotation \
                         service.beta.kubernetes.io/aws-load-balancer-connection-draining-enabled: \
                         \"true\") or set policy.onTrafficRisk to warn",
                        lb.dns_name
                    ),
                ));
            }
            LbKind::Nlb => {
                for tg in &lb.target_groups {
                    let delay = tg
                        .deregistration_delay_secs
                        .unwrap_or(crate::plan::lbdrain::DEFAULT_DEREGISTRATION_SECS);
                    if delay < NLB_DEREGISTRATION_PROPAGATION_SECS {
                        out.push(finding(
                            severity,
                            "nlb-short-deregistration-delay",
                            format!(
                                "{} target group {}: deregistration delay {delay} s is shorter \
                                 than the {NLB_DEREGISTRATION_PROPAGATION_SECS} s an NLB keeps \
                                 sending new connections to a deregistered target, so those are \
                                 reset when it ends; raise it or set policy.onTrafficRisk to warn",
                                lb.dns_name, tg.arn
                            ),
                        ));
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// The severity a risk finding gets under `onTrafficRisk` / `onWorkloadRisk`.
fn risk_severity(policy: crate::request::TrafficRiskPolicy) -> Severity {
    match policy {
        crate::request::TrafficRiskPolicy::Block => Severity::Blocking,
        crate::request::TrafficRiskPolicy::Warn => Severity::Warning,
    }
}

/// The readiness gate the AWS Load Balancer Controller injects for IP targets.
pub const LBC_READINESS_GATE_PREFIX: &str = "target-health.elbv2.k8s.aws/";

/// Whether the Load Balancer Controller registers the Service's pods themselves (IP targets):
/// `aws-load-balancer-nlb-target-type: ip`, or the older `aws-load-balancer-type: nlb-ip`.
pub fn ip_targets(svc: &ServiceView) -> bool {
    let a = |k: &str| svc.annotations.get(k).map(String::as_str);
    a("service.beta.kubernetes.io/aws-load-balancer-nlb-target-type") == Some("ip")
        || a("service.beta.kubernetes.io/aws-load-balancer-type") == Some("nlb-ip")
}

/// Workloads behind a Service that drop requests when their pods stop, on this migration as on
/// any rollout, blocking or warning as `policy.onWorkloadRisk` says. Each workload is named
/// once per reason, with the Services it is behind:
/// - `no-prestop`: every consumer of the Service's endpoints (kube-proxy, the load balancers,
///   ingress controllers) sees a pod leave after its own delay, and the pod gets SIGTERM at
///   once without a preStop hook, so requests sent meanwhile fail (kubernetes.io, "Pod
///   Lifecycle", termination of Pods; "Explore Termination Behavior for Pods And Their
///   Endpoints");
/// - `short-grace`: the preStop sleep takes the whole grace period, so the kubelet kills the
///   process (after a 2 s extension) without time to finish what is in flight (kubernetes.io,
///   "Pod Lifecycle": "If the preStop hook is still running after the grace period expires");
/// - `short-prestop`: behind an NLB with IP targets, the pod is the target, and an NLB keeps
///   sending it new connections up to 120 s after deregistration (aws/containers-roadmap#470,
///   aws-load-balancer-controller#1834), so its preStop must last that long;
/// - `no-readiness-gate`: with IP targets and no `target-health.elbv2.k8s.aws/` readiness gate,
///   a new pod counts as Ready before its target is healthy, so the old pods can go while the
///   target group has only initial targets (aws-load-balancer-controller docs, "Pod readiness
///   gate").
pub fn workload_risks(
    movable: &[&PodView],
    services: &[ServiceView],
    ip_services: &BTreeSet<(String, String)>,
    replicasets: &[ReplicaSetView],
    policy: &Policy,
) -> Vec<Finding> {
    use crate::plan::lbdrain::NLB_DEREGISTRATION_PROPAGATION_SECS;
    let severity = risk_severity(policy.on_workload_risk);
    // One pod per workload (bare pods stand for themselves), with the Services it is behind.
    let mut behind: BTreeMap<String, (&PodView, Vec<&ServiceView>)> = BTreeMap::new();
    for p in movable {
        let selected: Vec<&ServiceView> = services.iter().filter(|s| s.selects(p)).collect();
        if selected.is_empty() {
            continue;
        }
        let who = owning_workload(p, replicasets)
            .map_or_else(|| format!("pod {}", p.key()), |w| w.to_string());
        behind.entry(who).or_insert((p, selected));
    }
    let mut out = Vec::new();
    for (who, (pod, svcs)) in behind {
        let svc_names = format!(
            "Service{} {}",
            if svcs.len() == 1 { "" } else { "s" },
            svcs.iter()
                .map(|s| format!("{}/{}", s.namespace, s.name))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let grace = pod.shutdown.grace_seconds;
        match pod.shutdown.pre_stop {
            PreStop::None => out.push(finding(
                severity,
                "no-prestop",
                format!(
                    "{who} (behind {svc_names}) has no preStop hook: its pods get SIGTERM the \
                     moment they are deleted, while kube-proxy and the load balancers still send \
                     them requests until they see the endpoint go, so some requests fail on any \
                     rollout, this migration included; add a preStop sleep of a few seconds"
                ),
            )),
            PreStop::Sleep { seconds } if i64::from(seconds) >= grace => out.push(finding(
                severity,
                "short-grace",
                format!(
                    "{who} (behind {svc_names}): its preStop sleep of {seconds} s uses up its \
                     {grace} s grace period, so its process is killed without time to finish \
                     the requests in flight; raise terminationGracePeriodSeconds above the sleep"
                ),
            )),
            _ => {}
        }
        let bound = |s: &ServiceView| ip_services.contains(&(s.namespace.clone(), s.name.clone()));
        let nlb_ip = svcs.iter().any(|s| ip_targets(s));
        if !nlb_ip && !svcs.iter().any(|s| bound(s)) {
            continue;
        }
        if nlb_ip
            && let PreStop::Sleep { seconds } = pod.shutdown.pre_stop
            && u64::from(seconds) < NLB_DEREGISTRATION_PROPAGATION_SECS
        {
            out.push(finding(
                severity,
                "short-prestop",
                format!(
                    "{who} (behind {svc_names}) is an NLB's IP target, and an NLB keeps sending \
                     new connections to a deregistered target for up to \
                     {NLB_DEREGISTRATION_PROPAGATION_SECS} s; its preStop sleep of {seconds} s \
                     ends before that, so those connections are refused"
                ),
            ));
        }
        if !pod
            .readiness_gates
            .iter()
            .any(|g| g.starts_with(LBC_READINESS_GATE_PREFIX))
        {
            out.push(finding(
                severity,
                "no-readiness-gate",
                format!(
                    "{who} (behind {svc_names}) has IP targets but no {LBC_READINESS_GATE_PREFIX} \
                     readiness gate: a new pod counts as Ready before its target is healthy, so \
                     old pods can leave while the target group has only initial targets; label \
                     its namespace elbv2.k8s.aws/pod-readiness-gate-inject: enabled"
                ),
            ));
        }
    }
    out
}

/// The pods of one workload (or one bare pod) that leave the old nodes.
struct Leaving<'a> {
    who: String,
    pods: Vec<&'a PodView>,
    /// Pods the surge adds on the new group while these still run.
    surged: u32,
}

fn moves<'a>(
    i: &PreflightInputs<'a>,
    movable: &[&'a PodView],
    surged: &BTreeSet<WorkloadRef>,
) -> Vec<Leaving<'a>> {
    let mut by_owner: BTreeMap<String, Leaving<'a>> = BTreeMap::new();
    for p in movable
        .iter()
        .copied()
        .filter(|p| p.owner_kind() != Some("DaemonSet"))
    {
        let owner = owning_workload(p, i.replicasets);
        let who = owner
            .as_ref()
            .map_or_else(|| format!("Pod {}", p.key()), ToString::to_string);
        let extra = owner
            .filter(|w| surged.contains(w))
            .and_then(|w| i.workloads.iter().find(|v| v.workload_ref() == w))
            .map_or(0, |v| {
                let original = original_replicas(v);
                u32::try_from(i.policy.surge_replicas(original) - original).unwrap_or(0)
            });
        by_owner
            .entry(who.clone())
            .or_insert_with(|| Leaving {
                who,
                pods: Vec::new(),
                surged: extra,
            })
            .pods
            .push(p);
    }
    by_owner.into_values().collect()
}

/// EKS's max pods per node against the pods that end on the new group, beside its DaemonSets'.
fn pod_count_findings(
    new: &NewNode,
    moves: &[Leaving<'_>],
    ds_pods_per_node: i64,
    scaling: crate::model::Scaling,
) -> Vec<Finding> {
    let needed: i64 = moves
        .iter()
        .map(|m| i64::from(m.surged).max(i64::try_from(m.pods.len()).unwrap_or(i64::MAX)))
        .sum();
    let room = (new.max_pods - ds_pods_per_node).max(0);
    let at = |nodes: i32| room * i64::from(nodes);
    let what = format!(
        "{needed} pods must run on the new group; a {} node takes {} pods (EKS's max pods) of \
         which {ds_pods_per_node} are DaemonSet pods",
        new.instance_type.name, new.max_pods
    );
    if needed > at(scaling.max) {
        vec![finding(
            Severity::Blocking,
            "max-pods",
            format!(
                "{what}, so even its max of {} nodes holds only {}",
                scaling.max,
                at(scaling.max)
            ),
        )]
    } else if needed > at(scaling.desired) {
        vec![finding(
            Severity::Warning,
            "max-pods",
            format!(
                "{what}, so its desired {} nodes hold only {}; it relies on the autoscaler",
                scaling.desired,
                at(scaling.desired)
            ),
        )]
    } else {
        Vec::new()
    }
}

/// Each leaving workload put through the scheduler's filters against a node of the new group;
/// one finding per workload and reason that rules every new node out.
fn placement_findings(
    i: &PreflightInputs<'_>,
    new: &NewNode,
    per_node: Resources,
    moves: &[Leaving<'_>],
) -> Vec<Finding> {
    use crate::request::AcceptedRisk;
    let zone_of_node: BTreeMap<String, String> = i
        .old_nodes
        .iter()
        .filter_map(|n| n.zone.clone().map(|z| (n.name.clone(), z)))
        .collect();
    let old_label_keys: BTreeSet<&String> =
        i.old_nodes.iter().flat_map(|n| n.labels.keys()).collect();
    let refuse = "and the migration refuses before creating anything";
    let mut out = Vec::new();
    for m in moves {
        let Some(p) = m.pods.first().copied() else {
            continue;
        };
        let who = &m.who;
        let r = p.requests;
        if r.cpu_millis > per_node.cpu_millis || r.memory_bytes > per_node.memory_bytes {
            out.push(finding(
                Severity::Blocking,
                "pod-too-big",
                format!(
                    "{who} requests {}m CPU and {} MiB per pod, more than a {} node of the new \
                     group offers beside its DaemonSets ({}m, {} MiB): its pods would stay \
                     Pending, {refuse}; choose a larger instance type",
                    r.cpu_millis,
                    r.memory_bytes >> 20,
                    new.instance_type.name,
                    per_node.cpu_millis,
                    per_node.memory_bytes >> 20
                ),
            ));
        } else if p.placement.gpus > new.gpus {
            out.push(finding(
                Severity::Blocking,
                "pod-too-big",
                format!(
                    "{who} requests {} nvidia.com/gpu per pod and a {} node has {}: its pods \
                     would stay Pending, {refuse}; choose a GPU instance type",
                    p.placement.gpus, new.instance_type.name, new.gpus
                ),
            ));
        }
        if let Some((key, why)) = new.selection_miss(p) {
            // The old nodes carry it, but neither their group nor Kubernetes set it.
            let unmanaged = !new.labels.contains_key(&key)
                && !new.unknown_values.contains(&key)
                && !i.old_group_labels.contains_key(&key)
                && old_label_keys.contains(&key);
            if unmanaged && i.policy.accepts(AcceptedRisk::UnmanagedNodeLabel.kind()) {
                out.push(finding(
                    Severity::Warning,
                    AcceptedRisk::UnmanagedNodeLabel.kind(),
                    format!(
                        "{who}: {why}; the old nodes carry {key} from outside their group, and \
                         policy.acceptRisks [unmanaged-node-label] says something labels the \
                         new nodes too"
                    ),
                ));
            } else if unmanaged {
                out.push(finding(
                    Severity::Blocking,
                    AcceptedRisk::UnmanagedNodeLabel.kind(),
                    format!(
                        "{who}: {why}; the old nodes carry {key}, but not from their group's \
                         labels, so its pods would stay Pending unless something labels the new \
                         nodes too, {refuse}; add {key} to target.labels, or accept it with \
                         policy.acceptRisks: [unmanaged-node-label]"
                    ),
                ));
            } else {
                out.push(finding(
                    Severity::Blocking,
                    "node-selector",
                    format!(
                        "{who}: {why}, so no node of the new group can take its pods, {refuse}; \
                         set the label in target.labels or change the selector"
                    ),
                ));
            }
        }
        if let Some(t) = new.untolerated(p) {
            out.push(finding(
                Severity::Blocking,
                "taint-not-tolerated",
                format!(
                    "{who} does not tolerate the new group's taint {}{}:{}, so no node of the \
                     new group can take its pods, {refuse}",
                    t.key,
                    t.value
                        .as_deref()
                        .map(|v| format!("={v}"))
                        .unwrap_or_default(),
                    t.effect.kube_name()
                ),
            ));
        }
        let mv = Move {
            pod: p,
            on_old: &m.pods,
            surged: m.surged,
        };
        if let Some((kind, why)) = spread_miss(mv, new, &zone_of_node) {
            out.push(finding(
                Severity::Blocking,
                kind,
                format!("{who}: {why}, {refuse}"),
            ));
        }
        if !p.placement.host_paths.is_empty() {
            out.push(finding(
                Severity::Warning,
                "host-path",
                format!(
                    "{who} mounts hostPath {}: what its pods write there stays on the old node \
                     and is deleted with it",
                    p.placement.host_paths.join(", ")
                ),
            ));
        }
    }
    out
}

/// Pods whose claims are bound to a local PersistentVolume: its node affinity ties the pod to
/// that node (kubernetes.io, "Volumes", local), so once evicted it can never run again, and
/// the data goes with the old group. Each workload is named once; it blocks unless
/// `policy.acceptRisks` accepts `local-storage`.
fn local_volume_findings(
    movable: &[&PodView],
    volumes: &[crate::model::VolumeView],
    replicasets: &[ReplicaSetView],
    policy: &Policy,
) -> Vec<Finding> {
    use crate::request::AcceptedRisk;
    let local: BTreeMap<(&str, &str), &crate::model::VolumeView> = volumes
        .iter()
        .filter(|v| v.local_path.is_some())
        .filter_map(|v| {
            v.claim
                .as_ref()
                .map(|(ns, name)| ((ns.as_str(), name.as_str()), v))
        })
        .collect();
    let mut by_owner: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in movable {
        for claim in &p.pvc_names {
            if let Some(v) = local.get(&(p.namespace.as_str(), claim.as_str())) {
                let who = owning_workload(p, replicasets)
                    .map_or_else(|| format!("Pod {}", p.key()), |w| w.to_string());
                by_owner.entry(who).or_default().push(format!(
                    "{} (claim {claim} of {}, {} on {})",
                    v.name,
                    p.name,
                    v.local_path.as_deref().unwrap_or_default(),
                    if v.nodes.is_empty() {
                        "its node".to_string()
                    } else {
                        v.nodes.join(", ")
                    }
                ));
            }
        }
    }
    let accepted = policy.accepts(AcceptedRisk::LocalStorage.kind());
    by_owner
        .into_iter()
        .map(|(who, vols)| {
            let (severity, verdict) = if accepted {
                (
                    Severity::Warning,
                    "evicted all the same, as policy.acceptRisks [local-storage] says: delete \
                     each claim so that its pod can start on a new node, empty"
                        .to_string(),
                )
            } else {
                (
                    Severity::Blocking,
                    "the migration refuses before creating anything; move the data off the old \
                     nodes first, or accept its loss with policy.acceptRisks: [local-storage]"
                        .to_string(),
                )
            };
            finding(
                severity,
                "local-pv",
                format!(
                    "{who} keeps its data on local PersistentVolume(s) {}: a local volume's node \
                     affinity ties each pod to its node, so once evicted it can never start \
                     again, and the data is deleted with the old group; {verdict}",
                    vols.join("; ")
                ),
            )
        })
        .collect()
}

/// Karpenter is installed: what it may do during the migration and what ngm does about it.
fn karpenter_finding(pools: &[crate::model::NodePoolView], surge_needs_more: bool) -> Finding {
    let names: Vec<String> = pools
        .iter()
        .map(|p| {
            if p.node_class_group == "eks.amazonaws.com" {
                format!("{} (EKS Auto Mode)", p.name)
            } else {
                p.name.clone()
            }
        })
        .collect();
    let (severity, capacity) = if surge_needs_more {
        (
            Severity::Warning,
            "the surge needs more than the new group's desired size, so Karpenter may well \
             launch its own nodes for the surged pods before the group's autoscaler acts",
        )
    } else {
        (
            Severity::Info,
            "the new group's desired size holds the surge, so Karpenter should have nothing \
             to launch",
        )
    };
    finding(
        severity,
        "karpenter",
        format!(
            "Karpenter NodePools {} are installed: Karpenter launches nodes for any pod left \
             unschedulable that a NodePool admits; {capacity}. ngm leaves Karpenter alone: it \
             moves only the old group's pods, never drains Karpenter's nodes, and refuses pods \
             marked karpenter.sh/do-not-disrupt unless the request accepts it",
            names.join(", ")
        ),
    )
}
