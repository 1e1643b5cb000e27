//! Step 8: retire the old copies. Pods on old nodes get a negative deletion cost, then each
//! surged Deployment goes back: an HPA's target by handing the HPA back its own minimum (the
//! HPA then sets the count, and ngm never writes it again), any other back to its original
//! count, once. The ReplicaSet controller deletes lower-cost pods first, best effort only, so
//! what went is verified afterwards, and a workload is judged by its pods leaving the old
//! nodes, not by a count someone else may be setting.

use std::collections::BTreeSet;

use crate::marks;
use crate::model::{
    HpaView, PodView, ReplicaSetView, WorkloadKind, WorkloadRef, WorkloadView, hpa_of,
};
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

/// Hand each surged Deployment back. With an HPA: the HPA's own minimum and maximum, and
/// nothing else; from here on its count is the HPA's (load may be rising, and writing the
/// original count would halve the capacity the HPA just asked for). Without one: the original
/// count, written only while the Deployment is still at ngm's surge, so a count someone else
/// set meanwhile is left alone. Annotations stay until the restore.
pub fn plan_retire(workloads: &[WorkloadView], hpas: &[HpaView], execution: &str) -> Vec<Action> {
    let mut actions = Vec::new();
    for w in workloads
        .iter()
        .filter(|w| w.kind == WorkloadKind::Deployment && surged_by(w, execution))
    {
        if let Some(h) = hpa_of(hpas, w) {
            actions.extend(restore_hpa(h));
            continue;
        }
        let original = original_replicas(w);
        let at_surge = w
            .annotations
            .get(marks::SURGED_REPLICAS)
            .is_none_or(|s| *s == w.replicas.to_string());
        if w.replicas != original && at_surge {
            actions.push(Action::ScaleWorkload {
                workload: w.workload_ref(),
                from: w.replicas,
                to: original,
            });
        }
    }
    actions
}

/// Whether a surged Deployment is retired, judged by its pods. Done at once when none of its
/// live pods is left on a retiring node and as many are Ready as before the migration.
/// Otherwise once its count has settled where its owner put it (the HPA has acted on the
/// minimum handed back and its target is at the count it asks for; without an HPA, no longer
/// at ngm's surge), the controller has caught up, no more pods live than that count, and as
/// many are Ready as before (at most that count): the pods still on retiring nodes are then
/// the drain's. A replica broken before ngm came does not hold the retire.
pub fn retired(
    w: &WorkloadView,
    hpa: Option<&HpaView>,
    live_pods: usize,
    left_on_old: usize,
) -> Result<(), String> {
    let goal = ready_goal(w);
    let enough_ready = |goal: i32| {
        if w.ready_replicas < goal {
            Err(format!(
                "{} has {} of {goal} Ready",
                w.workload_ref(),
                w.ready_replicas
            ))
        } else {
            Ok(())
        }
    };
    if left_on_old == 0 && w.observed_generation >= w.generation {
        return enough_ready(goal);
    }
    match hpa {
        Some(h) => h.holds(w)?,
        None => {
            let surged = w
                .annotations
                .get(marks::SURGED_REPLICAS)
                .and_then(|s| s.parse::<i32>().ok());
            let original = original_replicas(w);
            if w.replicas != original && surged.is_none_or(|s| s == w.replicas) {
                return Err(format!(
                    "{} is at {} of {original} replicas",
                    w.workload_ref(),
                    w.replicas
                ));
            }
        }
    }
    if w.observed_generation < w.generation {
        return Err(format!(
            "{} has not observed its new count",
            w.workload_ref()
        ));
    }
    let count = usize::try_from(w.replicas).unwrap_or(0);
    if live_pods > count {
        return Err(format!(
            "{} still runs {live_pods} pods for {}",
            w.workload_ref(),
            w.replicas
        ));
    }
    enough_ready(goal.min(w.replicas))
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
        // A count kept above the original (an HPA under load) keeps old pods by design.
        new_pods_taken: left_on_old > 0 && on_new < original && w.replicas <= original_replicas(w),
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
