//! I2, budgets respected: the checks of evictions and forced terminations against PDBs.
//!
//! Upstream rules (pkg/registry/core/pod/storage/eviction.go, pkg/controller/disruption):
//! - an allowed eviction of a Ready pod under a PDB spends one of its `disruptionsAllowed`; one
//!   allowed with none left took the budget below what it allows;
//! - a pod that is not Ready may be evicted with no disruption left (it is not counted as
//!   healthy, so evicting it takes nothing away), so that is no violation;
//! - a pod that EKS terminated after its drain timed out went without any PDB check: if a PDB
//!   covered it, the budget was not respected.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::eks::{DrainRecord, DrainStep};
use crate::store::EvictionRecord;

/// How a budget was broken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum ViolationKind {
    /// An eviction was allowed with no disruption left.
    Eviction,
    /// EKS terminated a PDB-covered pod when its drain timed out.
    ForcedTermination,
}

/// One disruption that took a PDB below what it allows.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetViolation {
    pub kind: ViolationKind,
    pub at: DateTime<Utc>,
    pub namespace: String,
    pub pod: String,
    pub pdb: String,
    /// The PDB's `disruptionsAllowed` when the eviction was decided.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disruptions_allowed: Option<i64>,
}

/// Counts of the eviction log.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EvictionCounts {
    pub requested: u64,
    /// Answered 201.
    pub allowed: u64,
    /// Answered 429 (a PDB allowed no disruption).
    pub blocked: u64,
    /// Any other answer (404 gone, 409 UID mismatch, 500 several PDBs...).
    pub other: u64,
}

/// Counts of EKS's own drains.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainCounts {
    pub evicted: u64,
    pub blocked: u64,
    /// Pods still there when the drain timed out, terminated with their instance.
    pub terminated: u64,
}

pub fn count_evictions(log: &[EvictionRecord]) -> EvictionCounts {
    let mut c = EvictionCounts {
        requested: log.len() as u64,
        ..EvictionCounts::default()
    };
    for e in log {
        match e.code {
            201 => c.allowed += 1,
            429 => c.blocked += 1,
            _ => c.other += 1,
        }
    }
    c
}

pub fn count_drains(log: &[DrainRecord]) -> DrainCounts {
    let mut c = DrainCounts::default();
    for d in log {
        match d.step {
            DrainStep::Evicted => c.evicted += 1,
            DrainStep::Blocked => c.blocked += 1,
            DrainStep::Terminated => c.terminated += 1,
        }
    }
    c
}

/// Every budget violation. `was_ready(ns, pod, at)` says whether the pod was Ready when the
/// eviction was decided (`None`: unknown, taken as Ready); `covering_pdb(ns, pod)` names the
/// PDB that covered a pod, if any.
pub fn violations(
    evictions: &[EvictionRecord],
    drains: &[DrainRecord],
    was_ready: impl Fn(&str, &str, DateTime<Utc>) -> Option<bool>,
    covering_pdb: impl Fn(&str, &str) -> Option<String>,
) -> Vec<BudgetViolation> {
    let mut out: Vec<BudgetViolation> = evictions
        .iter()
        .filter(|e| e.code == 201 && e.disruptions_allowed.unwrap_or(0) < 1)
        .filter(|e| was_ready(&e.namespace, &e.pod, e.at) != Some(false))
        .filter_map(|e| {
            Some(BudgetViolation {
                kind: ViolationKind::Eviction,
                at: e.at,
                namespace: e.namespace.clone(),
                pod: e.pod.clone(),
                pdb: e.pdb.clone()?,
                disruptions_allowed: e.disruptions_allowed,
            })
        })
        .collect();
    out.extend(
        drains
            .iter()
            .filter(|d| d.step == DrainStep::Terminated)
            .filter_map(|d| {
                Some(BudgetViolation {
                    kind: ViolationKind::ForcedTermination,
                    at: d.at,
                    namespace: d.namespace.clone(),
                    pod: d.pod.clone(),
                    pdb: d
                        .pdb
                        .clone()
                        .or_else(|| covering_pdb(&d.namespace, &d.pod))?,
                    disruptions_allowed: None,
                })
            }),
    );
    out.sort_by_key(|v| v.at);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(code: u16, allowed: Option<i64>) -> EvictionRecord {
        EvictionRecord {
            at: DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default(),
            namespace: "apps".into(),
            pod: "web-1".into(),
            pdb: Some("web".into()),
            code,
            disruptions_allowed: allowed,
        }
    }

    #[test]
    fn an_allowed_eviction_of_a_ready_pod_with_no_disruption_left_is_a_violation() {
        let v = violations(&[rec(201, Some(0))], &[], |_, _, _| Some(true), |_, _| None);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].kind, ViolationKind::Eviction);
    }

    #[test]
    fn blocked_evictions_spent_budgets_and_unready_pods_are_not_violations() {
        let log = [rec(429, Some(0)), rec(201, Some(1))];
        assert!(violations(&log, &[], |_, _, _| Some(true), |_, _| None).is_empty());
        assert!(
            violations(
                &[rec(201, Some(0))],
                &[],
                |_, _, _| Some(false),
                |_, _| None
            )
            .is_empty()
        );
    }

    #[test]
    fn a_forced_termination_of_a_covered_pod_is_a_violation() {
        let d = DrainRecord {
            at: rec(201, None).at,
            node: "n".into(),
            namespace: "apps".into(),
            pod: "web-1".into(),
            step: DrainStep::Terminated,
            pdb: None,
        };
        assert_eq!(
            violations(
                &[],
                std::slice::from_ref(&d),
                |_, _, _| None,
                |_, _| Some("web".into())
            )
            .len(),
            1
        );
        assert!(violations(&[], &[d], |_, _, _| None, |_, _| None).is_empty());
    }
}
