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

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 3,
    }
}

/// `logarithmicRankDiff`: compares how long ago two instants were in powers of two of
/// nanoseconds, so instants close in age compare equal.
fn log_rank_diff(t1: DateTime<Utc>, t2: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
    let rank = |t: DateTime<Utc>| {
        let d = (now - t).num_nanoseconds().unwrap_or(i64::MAX);
        if d > 0 { (d as f64).log2() as i64 } else { -1 }
    };
    rank(t1) - rank(t2)
}

fn uid(pod: &Pod) -> &str {
    pod.metadata.uid.as_deref().unwrap_or_default()
}

/// `ActivePodsWithRanks.Less`, as an ordering: `Less` means "delete `a` before `b`".
pub fn deletion_order(a: &Ranked<'_>, b: &Ranked<'_>, now: DateTime<Utc>) -> Ordering {
    let (pa, pb) = (a.pod, b.pod);
    // 1. Unassigned < assigned.
    let (na, nb) = (node_name(pa), node_name(pb));
    if na != nb && (na.is_none() || nb.is_none()) {
        return if na.is_none() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    // 2. Pending < Unknown < Running.
    let by_phase = phase_ordinal(pa).cmp(&phase_ordinal(pb));
    if by_phase != Ordering::Equal {
        return by_phase;
    }
    // 3. Not ready < ready.
    let by_ready = is_ready(pa).cmp(&is_ready(pb));
    if by_ready != Ordering::Equal {
        return by_ready;
    }
    // 4. Lower pod-deletion-cost < higher.
    let by_cost = deletion_cost(pa).cmp(&deletion_cost(pb));
    if by_cost != Ordering::Equal {
        return by_cost;
    }
    // 5. Doubled up (more related pods on the node) < not doubled up.
    if a.rank != b.rank {
        return b.rank.cmp(&a.rank);
    }
    // 6. Ready for less time < ready for more time (log2 buckets, then UID).
    if is_ready(pa) && is_ready(pb) {
        let (ra, rb) = (ready_since(pa), ready_since(pb));
        if ra != rb {
            match (ra, rb) {
                (Some(ra), Some(rb)) => {
                    let diff = log_rank_diff(ra, rb, now);
                    return if diff == 0 {
                        uid(pa).cmp(uid(pb))
                    } else {
                        diff.cmp(&0)
                    };
                }
                // `afterOrZero`: an unknown time sorts first.
                (None, _) => return Ordering::Less,
                (_, None) => return Ordering::Greater,
            }
        }
    }
    // 7. More restarts < fewer restarts.
    let by_restarts = max_restarts(pb).cmp(&max_restarts(pa));
    if by_restarts != Ordering::Equal {
        return by_restarts;
    }
    // 8. Newer < older (log2 buckets, then UID).
    let (ca, cb) = (created(pa), created(pb));
    if ca != cb {
        let diff = log_rank_diff(ca, cb, now);
        return if diff == 0 {
            uid(pa).cmp(uid(pb))
        } else {
            diff.cmp(&0)
        };
    }
    Ordering::Equal
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
    ranked.sort_by(|a, b| deletion_order(a, b, now));
    ranked.into_iter().take(diff).map(|r| r.pod).collect()
}

#[cfg(test)]
#[path = "ranking_tests.rs"]
mod tests;
