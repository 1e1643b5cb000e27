//! Which pods a ReplicaSet deletes when it scales down: `getPodsToDelete` and
//! `ActivePodsWithRanks.Less` from `pkg/controller` (k8s 1.31+, LogarithmicScaleDown GA).
//!
//! The order never looks at taints, cordon or the node group: that is the trap ngm works
//! around with `controller.kubernetes.io/pod-deletion-cost`.

use std::cmp::Ordering;
use std::collections::HashMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

use super::podutil::{created, is_active, is_ready, max_restarts, node_name, phase, ready_since};

/// The annotation the ReplicaSet controller reads as a pod's deletion cost.
pub const DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

/// A candidate with its rank: how many related active pods share its node.
#[derive(Clone, Copy, Debug)]
pub struct Ranked<'a> {
    pub pod: &'a Pod,
    pub rank: usize,
}

/// `getPodDeletionCost`: the annotation as an int32; absent or invalid counts as 0.
pub fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(DELETION_COST))
        .and_then(|v| v.trim().parse::<i32>().ok())
        .unwrap_or(0)
}

/// `podPhaseToOrdinal`: Pending 0, Unknown 1, Running 2. Go's map lookup gives any other
/// phase 0 (the candidates are active pods, so Succeeded and Failed do not occur).
fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

/// `logarithmicRankDiff`'s rank of one instant: log2 of its age in nanoseconds, so instants
/// close in age share a bucket; an instant not in the past is -1.
fn log_rank(t: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let d = (now - t).num_nanoseconds().unwrap_or(i64::MAX);
    if d > 0 { (d as f64).log2() as i64 } else { -1 }
}

/// An instant's place in the order: `afterOrZero` puts an unknown (zero) time first, then the
/// log2 buckets, newest first.
fn time_key(t: Option<DateTime<Utc>>, now: DateTime<Utc>) -> i64 {
    match t {
        Some(t) if t.timestamp() != 0 || t.timestamp_subsec_nanos() != 0 => log_rank(t, now),
        _ => i64::MIN,
    }
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// The sort key of a candidate: ascending keys are deleted first.
type Key<'a> = (
    bool,
    u8,
    bool,
    i32,
    std::cmp::Reverse<usize>,
    i64,
    std::cmp::Reverse<i32>,
    i64,
    &'a str,
    &'a str,
    &'a str,
);

fn key<'a>(r: &Ranked<'a>, now: DateTime<Utc>) -> Key<'a> {
    let p = r.pod;
    let ready = is_ready(p);
    (
        // 1. Unassigned < assigned.
        node_name(p).is_some(),
        // 2. Pending < Unknown < Running.
        phase_ordinal(p),
        // 3. Not ready < ready.
        ready,
        // 4. Lower pod-deletion-cost < higher.
        deletion_cost(p),
        // 5. Doubled up (more related active pods on the node) < not doubled up.
        std::cmp::Reverse(r.rank),
        // 6. Ready for less time < ready for more time (log2 buckets; only between ready pods,
        //    and a not-ready pod never meets a ready one here, as 3 split them).
        if ready {
            time_key(ready_since(p), now)
        } else {
            0
        },
        // 7. More restarts < fewer restarts.
        std::cmp::Reverse(max_restarts(p)),
        // 8. Newer < older (log2 buckets).
        time_key(Some(created(p)), now),
        // Ties: the UID (upstream's tie-break within a bucket), then namespace and name, so
        // distinct pods never compare equal.
        uid(p),
        p.metadata.namespace.as_deref().unwrap_or_default(),
        p.metadata.name.as_deref().unwrap_or_default(),
    )
}

/// `ActivePodsWithRanks.Less`, as a total order: `Less` means "delete `a` before `b`".
///
/// Upstream's `Less` is not a strict weak order, and Rust's sort may panic on one that is not
/// (which crashed the twin's controllers at 600 pods). Its rules 6 and 8 compare two pods'
/// times in log2 buckets and fall back to the UID inside a bucket, but only when the times
/// differ; equal times fall through to the next rule. So with `a` and `b` ready at the same
/// instant (`a` restarted more, `a` < `b` by rule 7) and `c` ready a little later in the same
/// bucket, `b` < `c` and `c` < `a` by UID can close a cycle. Here each rule is a key and the
/// pods are compared key by key, which is the same order wherever upstream's is consistent:
/// rules 1–8 in upstream's sequence, buckets instead of instants, then the UID, then the
/// namespace and name, so two distinct pods are never equal.
pub fn deletion_order(a: &Ranked<'_>, b: &Ranked<'_>, now: DateTime<Utc>) -> Ordering {
    key(a, now).cmp(&key(b, now))
}

/// `getPodsRankedByRelatedPodsOnSameNode`: each candidate's rank is the number of active
/// related pods (those of every ReplicaSet of the same Deployment) on its node.
pub fn rank_by_related<'a>(candidates: &[&'a Pod], related: &[&Pod]) -> Vec<Ranked<'a>> {
    let mut on_node: HashMap<&str, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        *on_node.entry(node_name(p).unwrap_or_default()).or_default() += 1;
    }
    candidates
        .iter()
        .map(|pod| Ranked {
            pod,
            rank: on_node
                .get(node_name(pod).unwrap_or_default())
                .copied()
                .unwrap_or(0),
        })
        .collect()
}

/// `getPodsToDelete`: the `diff` candidates the ReplicaSet controller deletes first.
pub fn pods_to_delete<'a>(
    candidates: &[&'a Pod],
    related: &[&Pod],
    diff: usize,
    now: DateTime<Utc>,
) -> Vec<&'a Pod> {
    if diff >= candidates.len() {
        return candidates.to_vec();
    }
    let mut ranked = rank_by_related(candidates, related);
    ranked.sort_by_cached_key(|r| key(r, now));
    ranked.into_iter().take(diff).map(|r| r.pod).collect()
}

#[cfg(test)]
#[path = "ranking_tests.rs"]
mod tests;
