//! The invariant report of a run (issue 3 §7): the probe's failures (I1), every eviction and
//! forced termination checked against the PDBs (I2), the diff of every object's desired state
//! from before the run (I3 exact restore, I4 clean rollback), and the Kubernetes and EKS
//! requests by verb and resource. Written as JSON ([`Report::to_json`], fields documented in
//! the crate README, section "Report") and as a readable [`Report::summary`].
//!
//! Usage: [`Recorder::start`] before the migration, then [`Recorder::finish`] with the
//! [`RunParts`] the other parts produced (the probe's figures, the load balancers, EKS).

pub mod budgets;
pub mod critical;
pub mod jobs;
pub mod recorder;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use budgets::{BudgetViolation, DrainCounts, EvictionCounts, ViolationKind};
pub use critical::CriticalPath;
pub use jobs::JobSummary;
pub use recorder::{BudgetDip, Recorder};

use crate::eks::{AutoscalerAction, AutoscalerStep, DrainRecord, Eks};
use crate::lb::{LbInfo, ProbeStats};
use crate::sim::record::{FieldChange, Snapshot, SnapshotDiff};
use crate::store::InjectedCount;

/// What the other parts of the twin contribute to the report.
#[derive(Clone, Debug, Default)]
pub struct RunParts {
    /// The probe's figures ([`crate::lb::Balancers::stop`]); `None` if no probe ran.
    pub traffic: Option<ProbeStats>,
    /// The load balancers ([`crate::lb::Balancers::describe`]).
    pub load_balancers: Vec<LbInfo>,
    /// EKS requests by operation ([`Eks::counters`]).
    pub eks_requests: BTreeMap<String, u64>,
    /// EKS's own drains ([`Eks::drain_log`]).
    pub eks_drains: Vec<DrainRecord>,
    /// The Cluster Autoscaler's actions ([`Eks::autoscaler_log`]).
    pub autoscaler: Vec<AutoscalerAction>,
    /// The managed node groups at the end ([`Eks::group_shapes`]).
    pub node_groups: Vec<GroupShape>,
    /// When each managed group was created, became ACTIVE, was asked to go and went.
    pub group_history: Vec<crate::eks::GroupEvent>,
    /// EKS requests by caller, then `eks:<Operation>`.
    pub eks_by_caller: BTreeMap<String, BTreeMap<String, u64>>,
    /// Answers EKS gave because of an injected fault.
    pub eks_injected: Vec<InjectedCount>,
    /// ngm's calls to moto by `service:Operation` (tests/aws/moto_server.py).
    pub aws_requests: BTreeMap<String, u64>,
    /// ngm's calls to moto by caller, then `service:Operation`.
    pub aws_by_caller: BTreeMap<String, BTreeMap<String, u64>>,
    /// Answers moto gave because of an injected fault.
    pub aws_injected: Vec<InjectedCount>,
}

impl RunParts {
    /// Takes the EKS control plane's counters and drain log.
    pub fn with_eks(mut self, eks: &Eks) -> Self {
        self.eks_requests = eks.counters().snapshot();
        self.eks_drains = eks.drain_log();
        self.autoscaler = eks.autoscaler_log();
        self.node_groups = eks.group_shapes();
        self.group_history = eks.group_history();
        self.eks_by_caller = eks.counters().by_caller();
        self.eks_injected = eks.faults().injected().snapshot();
        self
    }
}

impl RunParts {
    /// Takes ngm's call counts and injected answers from the moto wrapper
    /// (tests/aws/moto_server.py); a moto that cannot say leaves them empty.
    pub async fn with_moto(mut self, moto_url: &str) -> Self {
        use crate::twin::moto::get_json;
        fn parse<T: serde::de::DeserializeOwned + Default>(v: Option<serde_json::Value>) -> T {
            v.and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default()
        }
        self.aws_requests = parse(get_json(moto_url, "/ngm/requests").await);
        self.aws_by_caller = parse(get_json(moto_url, "/ngm/requests?by=caller").await);
        self.aws_injected = parse(get_json(moto_url, "/ngm/injected").await);
        self
    }
}

/// The verdict on each invariant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invariants {
    /// I1: no probe request failed.
    pub zero_downtime: bool,
    /// I2: no eviction or forced termination took a PDB below what it allows.
    pub budgets_respected: bool,
    /// I3/I4: no object's desired state changed, and none but Nodes appeared or vanished
    /// (objects of a namespace a `deleteNamespace` fault deleted aside: ngm did not do that).
    pub objects_restored: bool,
}

/// One request counter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestCount {
    pub verb: String,
    pub resource: String,
    pub count: u64,
}

/// Requests the twin served.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requests {
    pub kubernetes_total: u64,
    /// Objects returned by get and list requests, by caller (watches not counted).
    pub kubernetes_objects_read: BTreeMap<String, u64>,
    /// By verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`) and resource
    /// (`pods`, `pods/eviction`, `deployments/scale`...).
    pub kubernetes: Vec<RequestCount>,
    pub eks_total: u64,
    /// By EKS operation name.
    pub eks: BTreeMap<String, u64>,
    /// ngm's calls to the AWS services moto serves, by `service:Operation` (empty when the
    /// moto in use does not count them).
    pub aws: BTreeMap<String, u64>,
    /// Every API together, by caller (`ngm/<function>` on Kubernetes, the AWS app id
    /// `app/ngm-local-<function>` on AWS, `unknown` when the request names none), then by
    /// call as fault rules name them (`create pods/eviction`, `eks:DescribeNodegroup`,
    /// `autoscaling:UpdateAutoScalingGroup`).
    pub by_caller: BTreeMap<String, BTreeMap<String, u64>>,
    /// The answers the twin (and moto) gave because of an injected fault, which the verdict
    /// counts apart from the failures ngm caused.
    pub injected: Injected,
}

/// Answers given because of injected faults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Injected {
    pub total: u64,
    /// By fault, API, call, caller and code.
    pub answers: Vec<InjectedCount>,
}

/// Adds `from`'s per-caller counts into `into`.
fn merge_by_caller(
    into: &mut BTreeMap<String, BTreeMap<String, u64>>,
    from: &BTreeMap<String, BTreeMap<String, u64>>,
) {
    for (caller, calls) in from {
        let entry = into.entry(caller.clone()).or_default();
        for (call, n) in calls {
            *entry.entry(call.clone()).or_default() += n;
        }
    }
}

/// Everything a run is judged by.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub scenario: Option<String>,
    /// Simulated time the recording started and ended.
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub invariants: Invariants,
    pub traffic: ProbeStats,
    pub load_balancers: Vec<LbInfo>,
    pub evictions: EvictionCounts,
    pub eks_drains: DrainCounts,
    pub budget_violations: Vec<BudgetViolation>,
    pub budget_dips: Vec<BudgetDip>,
    /// Desired state after the run against before it (everything, the deleted namespaces'
    /// objects included).
    pub changes: SnapshotDiff,
    /// Namespaces a `deleteNamespace` fault deleted; `objectsRestored` leaves them out.
    pub namespaces_deleted_by_faults: Vec<String>,
    /// Deployments (`namespace/name`) whose pod template a `badRollout` fault changed;
    /// `objectsRestored` leaves their `/spec/template` out (every other field still counts).
    pub templates_changed_by_faults: Vec<String>,
    /// Workloads an HPA scales that end at its `status.desiredReplicas` (`namespace/name`, as
    /// `Kind namespace/name`): their replica count is the HPA's to set (kubernetes.io,
    /// "Horizontal Pod Autoscaling", "Migrating Deployments and StatefulSets to horizontal
    /// autoscaling"), so `objectsRestored` judges it against the HPA, not against the count
    /// before the run. A target left anywhere else still counts as a change.
    pub replicas_left_to_hpas: Vec<String>,
    /// The most the twin's periodic controllers ran behind their period, in simulated
    /// seconds (see [`crate::store::load::Load::record_lag`]).
    pub controller_lag_seconds: f64,
    /// What the Cluster Autoscaler did while the run was recorded (empty when none runs).
    pub cluster_autoscaler: AutoscalerSummary,
    /// The managed node groups at the end of the run, with what makes their shape.
    pub node_groups: Vec<GroupShape>,
    /// Every Job seen during the run: its counts at the end and the work its interrupted pods
    /// lost.
    pub jobs: Vec<JobSummary>,
    /// The least time any migrator could take on this cluster, from this run's log.
    pub critical_path: CriticalPath,
    /// Pods (not DaemonSets', not finished) that went with their node instead of ending
    /// gracefully: forced terminations, whoever caused them.
    pub pods_lost_with_nodes: u64,
    /// Every object in the cluster when the run began (what "objects read" is measured by).
    pub cluster_objects: u64,
    pub requests: Requests,
}

/// A managed node group's shape: what its nodes run and what it is tagged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupShape {
    pub name: String,
    pub ami_type: String,
    /// The EKS AMI release its nodes run (`releaseVersion`).
    pub release_version: String,
    pub capacity_type: String,
    pub instance_types: Vec<String>,
    pub tags: BTreeMap<String, String>,
}

/// The Cluster Autoscaler's actions in a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AutoscalerSummary {
    /// Nodes its scale-ups asked for.
    pub nodes_added: u64,
    /// Nodes it removed.
    pub nodes_removed: u64,
    /// Every action, in order.
    pub actions: Vec<AutoscalerAction>,
}

impl AutoscalerSummary {
    /// The actions taken since `since`.
    pub fn of(actions: &[AutoscalerAction], since: DateTime<Utc>) -> Self {
        let actions: Vec<AutoscalerAction> =
            actions.iter().filter(|a| a.at >= since).cloned().collect();
        let sum = |step: AutoscalerStep| {
            actions
                .iter()
                .filter(|a| a.step == step)
                .map(|a| u64::try_from((a.to - a.from).abs()).unwrap_or(0))
                .sum()
        };
        Self {
            nodes_added: sum(AutoscalerStep::ScaleUp),
            nodes_removed: sum(AutoscalerStep::ScaleDown),
            actions,
        }
    }
}

impl Recorder {
    /// Stops recording and compiles the report against the store as it is now.
    pub async fn finish(self, parts: RunParts) -> Report {
        self.catch_up_and_stop().await;
        let after = Snapshot::take(&self.store);
        let evictions = self.store.evictions();
        let tracker = self.tracker.lock().unwrap_or_else(|e| e.into_inner());
        let violations = budgets::violations(
            &evictions,
            &parts.eks_drains,
            |ns, pod, at| tracker.was_ready(ns, pod, at),
            |ns, pod| tracker.covering_pdb(&self.store, ns, pod),
        );
        let kubernetes: Vec<RequestCount> = self
            .store
            .requests()
            .snapshot()
            .into_iter()
            .map(|((verb, resource), count)| RequestCount {
                verb,
                resource,
                count,
            })
            .collect();
        let mut by_caller = self.store.requests().by_caller();
        merge_by_caller(&mut by_caller, &parts.eks_by_caller);
        merge_by_caller(&mut by_caller, &parts.aws_by_caller);
        let mut answers = self.store.faults().injected().snapshot();
        answers.extend(parts.eks_injected.iter().cloned());
        answers.extend(parts.aws_injected.iter().cloned());
        answers.sort();
        let requests = Requests {
            kubernetes_total: kubernetes.iter().map(|r| r.count).sum(),
            kubernetes_objects_read: self.store.requests().objects_read(),
            kubernetes,
            eks_total: parts.eks_requests.values().sum(),
            eks: parts.eks_requests,
            aws: parts.aws_requests,
            by_caller,
            injected: Injected {
                total: answers.iter().map(|a| a.count).sum(),
                answers,
            },
        };
        let changes = self.before.diff(&after);
        let deleted = self.store.faults().deleted_namespaces();
        let templates = self.store.faults().changed_templates();
        let hpa_owned = replicas_left_to_hpas(&self.store);
        let traffic = parts.traffic.unwrap_or_default();
        let critical_path = CriticalPath::compute(
            &tracker.phases,
            &parts.group_history,
            &parts.load_balancers,
            self.started_at,
        );
        Report {
            scenario: self.scenario.clone(),
            started_at: self.started_at,
            finished_at: self.store.clock().now(),
            invariants: Invariants {
                zero_downtime: traffic.failed() == 0,
                budgets_respected: violations.is_empty(),
                objects_restored: restored(&by_ngm(&changes, &deleted, &templates, &hpa_owned)),
            },
            traffic,
            load_balancers: parts.load_balancers,
            evictions: budgets::count_evictions(&evictions),
            eks_drains: budgets::count_drains(&parts.eks_drains),
            budget_violations: violations,
            budget_dips: tracker.dips.clone(),
            changes,
            namespaces_deleted_by_faults: deleted,
            templates_changed_by_faults: templates,
            replicas_left_to_hpas: hpa_owned,
            controller_lag_seconds: self.store.load().max_lag_seconds(),
            cluster_autoscaler: AutoscalerSummary::of(&parts.autoscaler, self.started_at),
            node_groups: parts.node_groups.clone(),
            jobs: tracker.jobs.summaries(&self.store),
            critical_path,
            pods_lost_with_nodes: tracker.phases.lost_with_nodes,
            cluster_objects: self.objects_at_start,
            requests,
        }
    }
}

/// See [`Report::replicas_left_to_hpas`].
fn replicas_left_to_hpas(store: &crate::store::Store) -> Vec<String> {
    let mut out = Vec::new();
    for h in store.list_all(crate::store::Resource::HorizontalPodAutoscaler, None) {
        let ns = h
            .pointer("/metadata/namespace")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("default");
        let (Some(kind), Some(name)) = (
            h.pointer("/spec/scaleTargetRef/kind")
                .and_then(serde_json::Value::as_str),
            h.pointer("/spec/scaleTargetRef/name")
                .and_then(serde_json::Value::as_str),
        ) else {
            continue;
        };
        let resource = match kind {
            "Deployment" => crate::store::Resource::Deployment,
            "StatefulSet" => crate::store::Resource::StatefulSet,
            _ => continue,
        };
        let observed = h.pointer("/status/observedGeneration") == h.pointer("/metadata/generation");
        let desired = h
            .pointer("/status/desiredReplicas")
            .and_then(serde_json::Value::as_i64);
        let replicas = store.try_get(resource, ns, name).and_then(|t| {
            t.pointer("/spec/replicas")
                .and_then(serde_json::Value::as_i64)
        });
        if observed && desired.is_some() && desired == replicas {
            out.push(format!("{kind} {ns}/{name}"));
        }
    }
    out.sort();
    out
}

/// The changes that are not a fault's doing: those in namespaces a fault deleted (and those
/// namespaces themselves) and a bad rollout's pod template are left out, and so is the replica
/// count of a workload its HPA holds where it wants it.
fn by_ngm(
    d: &SnapshotDiff,
    deleted_namespaces: &[String],
    templates: &[String],
    hpa_owned: &[String],
) -> SnapshotDiff {
    let hpa_replicas = |c: &FieldChange| {
        c.path == "/spec/replicas"
            && hpa_owned.contains(&format!(
                "{} {}/{}",
                c.object.kind, c.object.namespace, c.object.name
            ))
    };
    let in_deleted = |r: &crate::sim::record::ObjectRef| {
        deleted_namespaces.contains(&r.namespace)
            || (r.kind == "Namespace" && deleted_namespaces.contains(&r.name))
    };
    let template = |c: &FieldChange| {
        c.object.kind == "Deployment"
            && templates.contains(&format!("{}/{}", c.object.namespace, c.object.name))
            && (c.path == "/spec/template" || c.path.starts_with("/spec/template/"))
    };
    SnapshotDiff {
        added: d.added.iter().filter(|r| !in_deleted(r)).cloned().collect(),
        removed: d
            .removed
            .iter()
            .filter(|r| !in_deleted(r))
            .cloned()
            .collect(),
        changed: d
            .changed
            .iter()
            .filter(|c| !in_deleted(&c.object) && !template(c) && !hpa_replicas(c))
            .cloned()
            .collect(),
    }
}

/// Nodes come and go in a migration by design; every other object must be as before.
fn restored(d: &SnapshotDiff) -> bool {
    d.changed.is_empty() && d.added.iter().chain(&d.removed).all(|r| r.kind == "Node")
}

impl Report {
    /// `changes` without the faults' own: what ngm must have put back.
    pub fn changes_by_ngm(&self) -> SnapshotDiff {
        by_ngm(
            &self.changes,
            &self.namespaces_deleted_by_faults,
            &self.templates_changed_by_faults,
            &self.replicas_left_to_hpas,
        )
    }

    /// True when every invariant holds.
    pub fn is_clean(&self) -> bool {
        let i = &self.invariants;
        i.zero_downtime && i.budgets_respected && i.objects_restored
    }

    /// The report as pretty-printed JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    /// Writes the JSON report to `path`.
    pub fn write_json(&self, path: impl AsRef<Path>) -> std::io::Result<()> {
        std::fs::write(path, self.to_json())
    }

    /// A readable summary: the verdicts first, then what broke them, then the figures.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let mark = |ok: bool| if ok { "ok  " } else { "FAIL" };
        let i = &self.invariants;
        let secs = (self.finished_at - self.started_at).num_milliseconds() as f64 / 1000.0;
        let _ = writeln!(
            out,
            "twin report{} ({secs:.0} simulated seconds)",
            self.scenario
                .as_deref()
                .map(|s| format!(" for {s}"))
                .unwrap_or_default()
        );
        let t = &self.traffic;
        let _ = writeln!(
            out,
            "  {} I1 zero downtime: {} of {} requests failed",
            mark(i.zero_downtime),
            t.failed(),
            t.sent()
        );
        for s in t.services.iter().filter(|s| s.failed > 0) {
            let reasons: Vec<String> = s
                .failures
                .iter()
                .map(|(r, n)| format!("{r:?} {n}"))
                .collect();
            let _ = writeln!(
                out,
                "         {}: {} failed ({})",
                s.service,
                s.failed,
                reasons.join(", ")
            );
        }
        let e = &self.evictions;
        let _ = writeln!(
            out,
            "  {} I2 budgets respected: {} violation(s); evictions {} allowed, {} blocked, {} other",
            mark(i.budgets_respected),
            self.budget_violations.len(),
            e.allowed,
            e.blocked,
            e.other
        );
        for v in &self.budget_violations {
            let _ = writeln!(
                out,
                "         {:?} of {}/{} under PDB {} at {}",
                v.kind, v.namespace, v.pod, v.pdb, v.at
            );
        }
        let c = &self.changes;
        let _ = writeln!(
            out,
            "  {} I3/I4 objects restored: {} field(s) changed, {} object(s) added, {} removed",
            mark(i.objects_restored),
            c.changed.len(),
            c.added.len(),
            c.removed.len()
        );
        for ch in c.changed.iter().take(20) {
            let show = |v: &Option<serde_json::Value>| {
                v.as_ref()
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "(none)".into())
            };
            let _ = writeln!(
                out,
                "         {} {}: {} -> {}",
                ch.object,
                ch.path,
                show(&ch.before),
                show(&ch.after)
            );
        }
        if !self.namespaces_deleted_by_faults.is_empty() {
            let _ = writeln!(
                out,
                "         left aside: namespaces deleted by a fault: {}",
                self.namespaces_deleted_by_faults.join(", ")
            );
        }
        for r in c.added.iter().filter(|r| r.kind != "Node") {
            let _ = writeln!(out, "         added {r}");
        }
        for r in c.removed.iter().filter(|r| r.kind != "Node") {
            let _ = writeln!(out, "         removed {r}");
        }
        for lb in &self.load_balancers {
            let s = &lb.settings;
            let _ = writeln!(
                out,
                "  lb {} {:?} {}: idle {} s, deregistration {} s",
                lb.service,
                s.kind,
                lb.external_traffic_policy,
                s.idle_timeout_seconds,
                s.deregistration_delay_seconds
            );
        }
        let d = &self.eks_drains;
        let _ = writeln!(
            out,
            "  eks drains: {} evicted, {} blocked, {} terminated",
            d.evicted, d.blocked, d.terminated
        );
        let ca = &self.cluster_autoscaler;
        if !ca.actions.is_empty() {
            let _ = writeln!(
                out,
                "  cluster autoscaler: {} node(s) added, {} removed",
                ca.nodes_added, ca.nodes_removed
            );
            for a in &ca.actions {
                let _ = writeln!(
                    out,
                    "    {} {:?} {} {} -> {}{}: {}",
                    a.at.format("%H:%M:%S"),
                    a.step,
                    a.group,
                    a.from,
                    a.to,
                    a.node
                        .as_deref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default(),
                    a.detail
                );
            }
        }
        for j in &self.jobs {
            let _ = writeln!(
                out,
                "  job {}/{}: {}/{} succeeded, {} failed, {}; {} pod(s) interrupted, {:.0} s of work lost",
                j.namespace,
                j.name,
                j.succeeded,
                j.completions,
                j.failed,
                match j.completed_at {
                    Some(t) => format!("complete at {}", t.format("%H:%M:%S")),
                    None if j.completed => "complete".to_string(),
                    None => "not complete".to_string(),
                },
                j.pods_interrupted,
                j.lost_work_seconds
            );
        }
        let r = &self.requests;
        let _ = writeln!(
            out,
            "  requests: {} Kubernetes, {} EKS, {} other AWS; {} answered by an injected fault",
            r.kubernetes_total,
            r.eks_total,
            r.aws.values().sum::<u64>(),
            r.injected.total
        );
        for a in &r.injected.answers {
            let _ = writeln!(
                out,
                "         injected {} {} to {} by {}: {}",
                a.code, a.call, a.caller, a.fault, a.count
            );
        }
        for rc in r
            .kubernetes
            .iter()
            .filter(|rc| !matches!(rc.verb.as_str(), "get" | "list" | "watch"))
        {
            let _ = writeln!(out, "         {} {}: {}", rc.verb, rc.resource, rc.count);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sim::record::ObjectRef;

    fn change(kind: &str, ns: &str, name: &str, path: &str) -> FieldChange {
        FieldChange {
            object: ObjectRef {
                kind: kind.into(),
                namespace: ns.into(),
                name: name.into(),
            },
            path: path.into(),
            before: Some(json!(1)),
            after: Some(json!(2)),
        }
    }

    /// A bad rollout's template is the fault's doing; the same Deployment's replicas, or
    /// another Deployment's template, are still ngm's to put back.
    #[test]
    fn only_the_faults_own_changes_are_left_out() {
        let templates = ["shop/web".to_string()];
        let fault = change(
            "Deployment",
            "shop",
            "web",
            "/spec/template/spec/containers/0/image",
        );
        let d = SnapshotDiff {
            changed: vec![fault.clone()],
            ..SnapshotDiff::default()
        };
        assert!(restored(&by_ngm(&d, &[], &templates, &[])));
        assert!(!restored(&by_ngm(&d, &[], &[], &[])));
        for other in [
            change("Deployment", "shop", "web", "/spec/replicas"),
            change(
                "Deployment",
                "shop",
                "api",
                "/spec/template/spec/containers/0/image",
            ),
            change(
                "StatefulSet",
                "shop",
                "web",
                "/spec/template/metadata/labels/x",
            ),
        ] {
            let d = SnapshotDiff {
                changed: vec![fault.clone(), other.clone()],
                ..SnapshotDiff::default()
            };
            assert_eq!(by_ngm(&d, &[], &templates, &[]).changed, vec![other]);
        }
    }

    /// A workload its HPA holds at the HPA's desired count has its replicas judged by the HPA
    /// (kubernetes.io, "Horizontal Pod Autoscaling": the HPA manages `spec.replicas`); any
    /// other field of it, and another workload's replicas, still count.
    #[test]
    fn an_hpa_targets_replicas_are_the_hpas() {
        let owned = ["Deployment shop/web".to_string()];
        let replicas = change("Deployment", "shop", "web", "/spec/replicas");
        let d = SnapshotDiff {
            changed: vec![replicas.clone()],
            ..SnapshotDiff::default()
        };
        assert!(restored(&by_ngm(&d, &[], &[], &owned)));
        assert!(!restored(&by_ngm(&d, &[], &[], &[])));
        for other in [
            change("Deployment", "shop", "web", "/metadata/annotations/x"),
            change("Deployment", "shop", "api", "/spec/replicas"),
        ] {
            let d = SnapshotDiff {
                changed: vec![replicas.clone(), other.clone()],
                ..SnapshotDiff::default()
            };
            assert_eq!(by_ngm(&d, &[], &[], &owned).changed, vec![other]);
        }
    }
}
