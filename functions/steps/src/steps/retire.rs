//! Step 8: retire the old copies. Pods on old nodes get a negative pod-deletion-cost, each
//! surged Deployment goes back to its original count, and once the ReplicaSet controller has
//! acted the step checks which pods went: the cost is only a hint, and the controller ignores
//! taints and cordon, so new pods may have been taken (the drain then moves what is left).

use std::collections::BTreeSet;

use ngm_core::marks;
use ngm_core::model::{Timestamp, WorkloadKind, WorkloadRef, WorkloadView, hpa_of};
use ngm_core::plan::deadlines::RETIRE_SECS;
use ngm_core::plan::retire::{plan_mark, plan_retire, retired, verify_retire};
use ngm_core::plan::surge::surged_by;
use ngm_core::plan::{WaitDecision, wait_until};
use ngm_core::state::{MigrationState, Phase};

use super::{POLL_SECS, batch, executor, old_nodes, settle_wait};
use crate::error::StepError;
use crate::observe::observe_with_nodes;
use crate::world::World;

const STEP: &str = "retire";

/// Step 8: marks the old pods in batches (`continuation` while more remain), then hands each
/// surged Deployment back (its HPA, or its original count) and stays `pending` until each is
/// retired by [`retired`]: its pods off the old nodes, or its count settled where its owner
/// put it; `RetireStalled` past its deadline.
pub async fn retire(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    let exec_name = state.execution.name.clone();
    let nodes = old_nodes(&mut state, world, STEP).await?;
    let retiring: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let view = observe_with_nodes(world.kube.as_ref(), nodes).await?;
    if state.deadlines.traffic_cut_at.is_some()
        && let Some((secs, reason)) =
            super::iptargets::keep_old_pods_out(world, &view.old_pods).await?
    {
        state.pending = super::pending(secs, reason);
        return Ok(state);
    }
    let surged: Vec<_> = view
        .workloads
        .iter()
        .filter(|w| surged_by(w, &exec_name))
        .collect();
    let refs: BTreeSet<WorkloadRef> = surged.iter().map(|w| w.workload_ref()).collect();
    // Every mark lands before any scale-down, so the controller sees every cost; a large
    // cluster's marks take several invocations.
    let marks = plan_mark(
        &view.old_pods,
        &view.replicasets,
        &refs,
        &state.request.policy,
        &exec_name,
    );
    let cost = marks::RETIRE_COST.to_string();
    let already_marked = view
        .old_pods
        .iter()
        .filter(|p| p.annotations.get(marks::POD_DELETION_COST) == Some(&cost))
        .count();
    let b = batch(&mut state, world, STEP, &marks).await?;
    state.counts.pods_marked = u32::try_from(already_marked + b.done).unwrap_or(u32::MAX);
    if !b.finished {
        return Ok(state);
    }
    // The wait for the controllers starts with the scale-back: marking a large cluster's
    // pods is bounded work of its own (a continuation per batch), not part of that wait.
    let deadline = *state
        .deadlines
        .retired_by
        .get_or_insert(now.plus(RETIRE_SECS));
    let hpas = world.kube.list_hpas().await?;
    let actions = plan_retire(&view.workloads, &hpas, &exec_name);
    executor(&state, world, STEP).run_all(&actions).await?;
    // Judged by the objects as they are after the hand-back: an HPA just patched has not
    // acted yet, and a Deployment just scaled has not observed it.
    let (hpas, surged) = if actions.is_empty() {
        (hpas, surged.into_iter().cloned().collect::<Vec<_>>())
    } else {
        let fresh = world.kube.list_workloads(WorkloadKind::Deployment).await?;
        let fresh: Vec<WorkloadView> = fresh
            .into_iter()
            .filter(|w| refs.contains(&w.workload_ref()))
            .collect();
        (world.kube.list_hpas().await?, fresh)
    };
    state.counts.workloads_retired = u32::try_from(surged.len()).unwrap_or(u32::MAX);

    let mut lagging = Vec::new();
    for w in &surged {
        let pods = world
            .kube
            .list_pods(Some(&w.namespace), &w.selector)
            .await?;
        let live = pods.iter().filter(|p| !p.terminating).count();
        let check = verify_retire(w, &pods, &retiring);
        // Judged by its pods against what was Ready before the migration: a replica already
        // broken then (a crash loop) does not hold the retire.
        if let Err(why) = retired(w, hpa_of(&hpas, w), live, check.left_on_old) {
            lagging.push((w.workload_ref().to_string(), why));
            continue;
        }
        if check.new_pods_taken {
            // The drain evicts what the scale-down left on old nodes; the surge is gone, so
            // capacity on new nodes comes back as the ReplicaSet replaces the evicted pods.
            tracing::warn!(step = STEP, workload = %check.workload, left_on_old = check.left_on_old, on_new = check.on_new, "scale-down took new pods despite the deletion cost");
        }
    }
    // While waiting the reason only names the workloads (a retry then answers the same);
    // at the deadline it says what each one lacks.
    let condition = match lagging.split_first() {
        None => Ok(()),
        Some(((first, _), [])) => Err(format!("{first} is scaling back")),
        Some(((first, _), rest)) => {
            Err(format!("{first} is scaling back (and {} more)", rest.len()))
        }
    };
    let mut decision = wait_until(condition, now, deadline, POLL_SECS);
    if let WaitDecision::Expired { reason } = &mut decision {
        *reason = lagging
            .iter()
            .map(|(_, why)| why.as_str())
            .collect::<Vec<_>>()
            .join("; ");
    }
    if settle_wait(&mut state, decision, |reason| StepError::RetireStalled {
        reason,
    })? {
        state.phase = Phase::Retired;
    }
    Ok(state)
}
