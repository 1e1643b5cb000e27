//! The invariant report of a run (issue 3 §7): the probe's failures (I1), every eviction and
//! forced termination checked against the PDBs (I2), the diff of every object's desired state
//! from before the run (I3 exact restore, I4 clean rollback), and the Kubernetes and EKS
//! requests by verb and resource. Written as JSON ([`Report::to_json`], fields documented in
//! the crate README, section "Report") and as a readable [`Report::summary`].
//!
//! Usage: [`Recorder::start`] before the migration, then [`Recorder::finish`] with the
//! [`RunParts`] the other parts produced (the probe's figures, the load balancers, EKS).

pub mod budgets;
pub mod recorder;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use budgets::{BudgetViolation, DrainCounts, EvictionCounts, ViolationKind};
pub use recorder::{BudgetDip, Recorder};

use crate::eks::{DrainRecord, Eks};
use crate::lb::{LbInfo, ProbeStats};
use crate::sim::record::{Snapshot, SnapshotDiff};

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
}

impl RunParts {
    /// Takes the EKS control plane's counters and drain log.
    pub fn with_eks(mut self, eks: &Eks) -> Self {
        self.eks_requests = eks.counters().snapshot();
        self.eks_drains = eks.drain_log();
        self
    }
}

/// The verdict on each invariant.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invariants {
    /// I1: no probe request failed.
    pub zero_downtime: bool,
    /// I2: no eviction or forced termination took a PDB below what it allows.
    pub budgets_respected: bool,
    /// I3/I4: no object's desired state changed, and none but Nodes appeared or vanished.
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
    /// By verb (`get`, `list`, `watch`, `create`, `update`, `patch`, `delete`) and resource
    /// (`pods`, `pods/eviction`, `deployments/scale`...).
    pub kubernetes: Vec<RequestCount>,
    pub eks_total: u64,
    /// By EKS operation name.
    pub eks: BTreeMap<String, u64>,
}

/// Everything a run is judged by.
#[derive(Clone, Debug, PartialEq, Serialize)]
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
    /// Desired state after the run against before it.
    pub changes: SnapshotDiff,
    pub requests: Requests,
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
        let requests = Requests {
            kubernetes_total: kubernetes.iter().map(|r| r.count).sum(),
            kubernetes,
            eks_total: parts.eks_requests.values().sum(),
            eks: parts.eks_requests,
        };
        let changes = self.before.diff(&after);
        let traffic = parts.traffic.unwrap_or_default();
        Report {
            scenario: self.scenario.clone(),
            started_at: self.started_at,
            finished_at: self.store.clock().now(),
            invariants: Invariants {
                zero_downtime: traffic.failed() == 0,
                budgets_respected: violations.is_empty(),
                objects_restored: restored(&changes),
            },
            traffic,
            load_balancers: parts.load_balancers,
            evictions: budgets::count_evictions(&evictions),
            eks_drains: budgets::count_drains(&parts.eks_drains),
            budget_violations: violations,
            budget_dips: tracker.dips.clone(),
            changes,
            requests,
        }
    }
}

/// Nodes come and go in a migration by design; every other object must be as before.
fn restored(d: &SnapshotDiff) -> bool {
    d.changed.is_empty() && d.added.iter().chain(&d.removed).all(|r| r.kind == "Node")
}

impl Report {
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
        let r = &self.requests;
        let _ = writeln!(
            out,
            "  requests: {} Kubernetes, {} EKS",
            r.kubernetes_total, r.eks_total
        );
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
