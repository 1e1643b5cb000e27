//! Step 8: retire the old copies. Pods on old nodes get a negative deletion cost, then each
//! surged Deployment goes back to its original count; the ReplicaSet controller deletes
//! lower-cost pods first, best effort only, so what went is verified afterwards.

use std::collections::BTreeSet;

use crate::marks;
use crate::model::{HpaView, PodView, ReplicaSetView, WorkloadKind, WorkloadRef, WorkloadView};
use crate::plan::action::{Action, remove, set};
use crate::plan::freeze::restore_hpa;
use crate::plan::scope::{in_scope, owning_workload};
use crate::plan::surge::{original_replicas, ready_goal, surged_by};
use crate::request::Policy;

/// Mark the pods on retiring nodes that belong to Deployments this execution surged.
pub fn plan_mark(
    old_pods: &[PodView],
    replicasets: &[ReplicaSetView],
    surged: &BTreeSet<WorkloadRef>,
    policy: &Policy,
    execution: &str,
) -> Vec<Action> {
    let cost = marks::RETIRE_COST.to_string();
    old_pods
        .iter()
        .filter(|p| !p.terminating && in_scope(p, policy))
        .filter(|p| owning_workload(p, replicasets).is_some_and(|w| surged.contains(&w)))
        .filter(|p| p.annotations.get(marks::POD_DELETION_COST) != Some(&cost))
        .map(|p| {
            let original = p
                .annotations
                .get(marks::POD_DELETION_COST)
                .cloned()
                .unwrap_or_else(|| marks::NONE.to_string());
            let mut annotations = vec![
                (marks::POD_DELETION_COST, cost.clone()),
                (marks::EXECUTION, execution.to_string()),
            ];
            if !p.annotations.contains_key(marks::READY_BEFORE) {
                annotations.push((marks::READY_BEFORE, p.ready.to_string()));
            }
            if !p.annotations.contains_key(marks::ORIGINAL_DELETION_COST) {
                annotations.push((marks::ORIGINAL_DELETION_COST, original));
            }
            Action::AnnotatePod {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                annotations: set(&annotations),
            }
        })
        .collect()
}

/// Scale each surged Deployment back to its original count, its HPA first (an HPA still
/// pinned at the surge would undo the scale-down). Annotations stay until the restore.
pub fn plan_retire(workloads: &[WorkloadView], hpas: &[HpaView], execution: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    for w in workloads
        .iter()
        .filter(|w| w.kind == WorkloadKind::Deployment && surged_by(w, execution))
    {
        let target = w.workload_ref();
        actions.extend(
            hpas.iter()
                .filter(|h| h.target().as_ref() == Some(&target))
                .filter_map(restore_hpa),
        );
        let original = original_replicas(w);
        if w.replicas != original {
            actions.push(Action::ScaleWorkload {
                workload: target,
                from: w.replicas,
                to: original,
            });
        }
    }
    actions
}

/// Whether a surged Deployment is back: at its original count, the controller caught up, no
/// more live pods than that, and as many Ready as before the migration (not more than the
/// original count): a replica broken before ngm came does not hold the retire.
pub fn retired(w: &WorkloadView, live_pods: usize) -> Result<(), String> {
    let original = original_replicas(w);
    if w.replicas != original {
        return Err(format!(
            "{} is at {} of {original} replicas",
            w.workload_ref(),
            w.replicas
        ));
    }
    if w.observed_generation < w.generation {
        return Err(format!(
            "{} has not observed its scale-down",
            w.workload_ref()
        ));
    }
    if live_pods > usize::try_from(original).unwrap_or(0) {
        return Err(format!(
            "{} still runs {live_pods} pods for {original}",
            w.workload_ref()
        ));
    }
    let goal = ready_goal(w);
    if w.ready_replicas < goal {
        return Err(format!(
            "{} has {} of {goal} Ready",
            w.workload_ref(),
            w.ready_replicas
        ));
    }
    Ok(())
}

/// What the scale-down actually removed, for one Deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetireCheck {
    pub workload: WorkloadRef,
    /// Pods still on retiring nodes: the drain evicts them.
    pub left_on_old: usize,
    /// Live pods off the old nodes.
    pub on_new: usize,
    /// The controller deleted new pods instead of old ones (the cost is only a hint).
    pub new_pods_taken: bool,
}

/// Checks one retired Deployment against its pods.
pub fn verify_retire(
    w: &WorkloadView,
    pods: &[PodView],
    retiring_nodes: &BTreeSet<String>,
) -> RetireCheck {
    let live: Vec<&PodView> = pods.iter().filter(|p| !p.terminating).collect();
    let left_on_old = live
        .iter()
        .filter(|p| {
            p.node_name
                .as_ref()
                .is_some_and(|n| retiring_nodes.contains(n))
        })
        .count();
    let on_new = live.len() - left_on_old;
    let original = usize::try_from(original_replicas(w)).unwrap_or(0);
    RetireCheck {
        workload: w.workload_ref(),
        left_on_old,
        on_new,
        new_pods_taken: left_on_old > 0 && on_new < original,
    }
}

/// Remove ngm's cost annotation from pods that survive a rollback, restoring any prior cost.
pub fn plan_unmark(pods: &[PodView], execution: &str) -> Vec<Action> {
    pods.iter()
        .filter(|p| p.annotations.get(marks::EXECUTION).map(String::as_str) == Some(execution))
        .map(|p| {
            let mut patch = remove(&[
                marks::EXECUTION,
                marks::ORIGINAL_DELETION_COST,
                marks::READY_BEFORE,
            ]);
            let restored = p
                .annotations
                .get(marks::ORIGINAL_DELETION_COST)
                .filter(|v| v.as_str() != marks::NONE)
                .cloned();
            patch.insert(marks::POD_DELETION_COST.to_string(), restored);
            Action::AnnotatePod {
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                annotations: patch,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
