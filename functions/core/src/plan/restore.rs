//! Step 11 (restore after success) and the rollback. Both read the originals back from the
//! objects' annotations and tags, so they work from an empty state too, and both plan nothing
//! once everything is back.

use std::collections::BTreeMap;

use crate::marks;
use crate::model::{AsgInfo, HpaView, NodeView, PodView, Scaling, WorkloadView, hpa_of};
use crate::plan::action::{Action, remove};
use crate::plan::freeze::{plan_unpin_asgs, plan_unpin_managed, restore_hpa};
use crate::plan::nodes::{plan_taint, plan_untaint};
use crate::plan::retire::plan_unmark;
use crate::plan::surge::original_replicas;
use crate::request::Policy;
use crate::state::{NewGroupInfo, Originals};

/// What the restore reads.
#[derive(Debug, Clone, Copy)]
pub struct RestoreInputs<'a> {
    pub execution: &'a str,
    /// Deployments and StatefulSets carrying ngm annotations.
    pub workloads: &'a [WorkloadView],
    pub hpas: &'a [HpaView],
    /// Every node ngm may have marked (new nodes, and old ones on a rollback).
    pub nodes: &'a [NodeView],
}

/// Scale each workload ngm surged back to its original count and drop the markers. Markers
/// of any execution are swept, so an aborted run's leftovers go too. An HPA's target only
/// loses the markers: its count is the HPA's (handed back by [`restore_hpa`]), and writing the
/// count from before the migration would rewind the HPA by however long the run took.
pub fn restore_workloads(workloads: &[WorkloadView], hpas: &[HpaView]) -> Vec<Action> {
    let mut actions = Vec::new();
    for w in workloads
        .iter()
        .filter(|w| w.annotations.contains_key(marks::ORIGINAL_REPLICAS))
    {
        let original = original_replicas(w);
        if w.replicas != original && hpa_of(hpas, w).is_none() {
            actions.push(Action::ScaleWorkload {
                workload: w.workload_ref(),
                from: w.replicas,
                to: original,
            });
        }
        actions.push(Action::AnnotateWorkload {
            workload: w.workload_ref(),
            annotations: remove(&[
                marks::ORIGINAL_REPLICAS,
                marks::SURGED_REPLICAS,
                marks::READY_BEFORE,
                marks::EXECUTION,
            ]),
        });
    }
    actions
}

/// Whether every HPA ngm handed back holds its target where it asks (see
/// [`HpaView::holds`]): the restore waits for it before it takes its markers off the targets.
pub fn hpas_settled(workloads: &[WorkloadView], hpas: &[HpaView]) -> Result<(), String> {
    let lagging: Vec<String> = workloads
        .iter()
        .filter(|w| w.annotations.contains_key(marks::ORIGINAL_REPLICAS))
        .filter_map(|w| hpa_of(hpas, w).and_then(|h| h.holds(w).err()))
        .collect();
    match lagging.split_first() {
        None => Ok(()),
        Some((first, [])) => Err(first.clone()),
        Some((first, rest)) => Err(format!("{first} (and {} more)", rest.len())),
    }
}

/// After success: HPAs, workloads, new nodes. The step releases the lock after these.
pub fn plan_restore(i: RestoreInputs<'_>) -> Vec<Action> {
    let mut actions: Vec<Action> = i.hpas.iter().filter_map(restore_hpa).collect();
    actions.extend(restore_workloads(i.workloads, i.hpas));
    actions.extend(plan_untaint(i.nodes, i.execution));
    actions
}

/// The old group as the rollback sees it.
#[derive(Debug, Clone, Copy)]
pub enum OldGroup<'a> {
    Managed {
        name: &'a str,
        arn: &'a str,
        scaling: Scaling,
        tags: &'a BTreeMap<String, String>,
    },
    SelfManaged {
        asgs: &'a [AsgInfo],
    },
}

/// The rollback, in two halves around a drain of the new nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct RollbackPlan {
    /// Old nodes back in service, old group unpinned, HPAs and replicas back, pod marks gone,
    /// and (when the new group goes) the new nodes tainted and cordoned.
    pub restore: Vec<Action>,
    /// Drain the new nodes with [`crate::plan::drain::plan_drain`] before `finish`, because
    /// deleting a group terminates its pods without regard to PDBs.
    pub drain_new_nodes: bool,
    /// Delete the new group (if ngm created it and the policy says so). The step releases the
    /// lock after these.
    pub finish: Vec<Action>,
}

/// After a failure before the old group's deletion: everything back as it was, except what the
/// policy keeps.
pub fn plan_rollback(
    i: RestoreInputs<'_>,
    new_nodes: &[NodeView],
    old: OldGroup<'_>,
    marked_pods: &[PodView],
    originals: &Originals,
    new_group: Option<&NewGroupInfo>,
    policy: &Policy,
) -> RollbackPlan {
    let mut restore = plan_untaint(i.nodes, i.execution);
    restore.extend(match old {
        OldGroup::Managed {
            name,
            arn,
            scaling,
            tags,
        } => plan_unpin_managed(name, arn, scaling, tags, originals, i.execution),
        OldGroup::SelfManaged { asgs } => plan_unpin_asgs(asgs, originals),
    });
    restore.extend(i.hpas.iter().filter_map(restore_hpa));
    restore.extend(restore_workloads(i.workloads, i.hpas));
    restore.extend(plan_unmark(marked_pods, i.execution));
    let mut finish = Vec::new();
    let delete = new_group.filter(|g| g.created_by_ngm && policy.rollback_deletes_new_group);
    if let Some(g) = delete {
        // The new nodes go the way the old ones were meant to: no new pods, then a drain.
        let digest = crate::digest::hex_of([i.execution]);
        restore.extend(plan_taint(new_nodes, i.execution, &digest));
        finish.push(Action::DeleteNodegroup {
            name: g.name.clone(),
        });
    }
    RollbackPlan {
        restore,
        drain_new_nodes: delete.is_some(),
        finish,
    }
}

#[cfg(test)]
mod tests;
