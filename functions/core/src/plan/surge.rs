//! Step 6: surge. Every affected Deployment runs `ceil(replicas × surgeFactor)` pods, system
//! Deployments first, with the original count recorded on the Deployment before it changes.

use std::collections::BTreeSet;

use crate::marks;
use crate::model::{PodView, WorkloadKind, WorkloadRef, WorkloadView};
use crate::plan::action::{Action, set};
use crate::plan::scope::namespace_in_scope;
use crate::request::Policy;

/// The replica count before ngm touched this workload, from its annotation or its spec.
pub fn original_replicas(w: &WorkloadView) -> i32 {
    w.annotations
        .get(marks::ORIGINAL_REPLICAS)
        .and_then(|v| v.parse().ok())
        .unwrap_or(w.replicas)
}

/// The Ready replicas before ngm touched this workload, from its annotation, else its original
/// count.
pub fn ready_before(w: &WorkloadView) -> i32 {
    w.annotations
        .get(marks::READY_BEFORE)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| original_replicas(w))
}

/// How many Ready replicas a wait on this workload asks for: its original count, but no more
/// than were Ready before the migration (a replica broken before ngm came cannot hold it).
pub fn ready_goal(w: &WorkloadView) -> i32 {
    original_replicas(w).min(ready_before(w)).max(0)
}

/// Whether this execution surged (or is surging) the workload.
pub fn surged_by(w: &WorkloadView, execution: &str) -> bool {
    w.annotations.get(marks::EXECUTION).map(String::as_str) == Some(execution)
        && w.annotations.contains_key(marks::ORIGINAL_REPLICAS)
}

/// The surge actions, system Deployments first (in the policy's order), then the others by
/// namespace and name. `affected` holds the Deployments with in-scope pods on old nodes.
pub fn plan_surge(
    workloads: &[WorkloadView],
    affected: &BTreeSet<WorkloadRef>,
    policy: &Policy,
    execution: &str,
) -> Vec<Action> {
    let mut chosen: Vec<&WorkloadView> = workloads
        .iter()
        .filter(|w| w.kind == WorkloadKind::Deployment)
        .filter(|w| affected.contains(&w.workload_ref()))
        .filter(|w| namespace_in_scope(&w.namespace, policy))
        .collect();
    let rank = |w: &WorkloadView| {
        policy
            .system_deployments
            .iter()
            .position(|s| s.namespace == w.namespace && s.name == w.name)
            .unwrap_or(usize::MAX)
    };
    chosen.sort_by(|a, b| (rank(a), &a.namespace, &a.name).cmp(&(rank(b), &b.namespace, &b.name)));

    let mut actions = Vec::new();
    for w in chosen {
        let original = original_replicas(w);
        if original == 0 {
            continue;
        }
        let target = policy.surge_replicas(original);
        let marked = surged_by(w, execution)
            && w.annotations.get(marks::SURGED_REPLICAS) == Some(&target.to_string());
        if !marked {
            let mut annotations = vec![
                (marks::ORIGINAL_REPLICAS, original.to_string()),
                (marks::SURGED_REPLICAS, target.to_string()),
                (marks::EXECUTION, execution.to_string()),
            ];
            // Recorded once, before the surge changes what is Ready.
            if !w.annotations.contains_key(marks::READY_BEFORE) {
                annotations.push((marks::READY_BEFORE, w.ready_replicas.to_string()));
            }
            actions.push(Action::AnnotateWorkload {
                workload: w.workload_ref(),
                annotations: set(&annotations),
            });
        }
        if w.replicas != target {
            actions.push(Action::ScaleWorkload {
                workload: w.workload_ref(),
                from: w.replicas,
                to: target,
            });
        }
    }
    actions
}

/// Ready pods of a workload that are not on a retiring node.
pub fn ready_off(pods: &[PodView], retiring_nodes: &BTreeSet<String>) -> i32 {
    let n = pods
        .iter()
        .filter(|p| p.ready && !p.terminating)
        .filter(|p| {
            p.node_name
                .as_ref()
                .is_some_and(|n| !retiring_nodes.contains(n))
        })
        .count();
    i32::try_from(n).unwrap_or(i32::MAX)
}

/// The surge is settled when every surged workload has at least its original count of Ready
/// pods off the old nodes, or as many as were Ready before the migration when fewer were. `progress` pairs each surged workload with [`ready_off`].
pub fn surge_settled(progress: &[(&WorkloadView, i32)]) -> Result<(), String> {
    let lagging: Vec<String> = progress
        .iter()
        .filter(|(w, ready)| *ready < ready_goal(w))
        .map(|(w, ready)| {
            format!(
                "{} has {ready}/{} ready on new nodes",
                w.workload_ref(),
                ready_goal(w)
            )
        })
        .collect();
    match lagging.split_first() {
        None => Ok(()),
        Some((first, [])) => Err(first.clone()),
        Some((first, rest)) => Err(format!("{first} (and {} more)", rest.len())),
    }
}

#[cfg(test)]
mod tests;
