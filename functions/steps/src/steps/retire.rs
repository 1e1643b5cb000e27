//! Step 8: retire the old copies. Pods on old nodes get a negative pod-deletion-cost, each
//! surged Deployment goes back to its original count, and once the ReplicaSet controller has
//! acted the step checks which pods went: the cost is only a hint, and the controller ignores
//! taints and cordon, so new pods may have been taken (the drain then moves what is left).

use std::collections::BTreeSet;

use ngm_core::marks;
use ngm_core::model::{Timestamp, WorkloadRef};
use ngm_core::plan::retire::{plan_mark, plan_retire, verify_retire};
use ngm_core::plan::surge::{original_replicas, surged_by};
use ngm_core::state::{MigrationState, Phase};

use super::{POLL_SECS, executor, pending, retiring_nodes};
use crate::error::StepError;
use crate::observe::observe_with_nodes;
use crate::world::World;

const STEP: &str = "retire";

/// Step 8: `pending` until every surged Deployment is back at its original count.
pub async fn retire(
    mut state: MigrationState,
    world: &World,
    _now: Timestamp,
) -> Result<MigrationState, StepError> {
    let exec_name = state.execution.name.clone();
    let nodes = retiring_nodes(&state, world).await?;
    let retiring: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let view = observe_with_nodes(world.kube.as_ref(), nodes).await?;
    let surged: Vec<_> = view
        .workloads
        .iter()
        .filter(|w| surged_by(w, &exec_name))
        .collect();
    let refs: BTreeSet<WorkloadRef> = surged.iter().map(|w| w.workload_ref()).collect();
    let hpas = world.kube.list_hpas().await?;
    let mut actions = plan_mark(
        &view.old_pods,
        &view.replicasets,
        &refs,
        &state.request.policy,
        &exec_name,
    );
    let newly_marked = actions.len();
    actions.extend(plan_retire(&view.workloads, &hpas, &exec_name));
    executor(&state, world, STEP).run_all(&actions).await?;

    let cost = marks::RETIRE_COST.to_string();
    let already_marked = view
        .old_pods
        .iter()
        .filter(|p| p.annotations.get(marks::POD_DELETION_COST) == Some(&cost))
        .count();
    state.counts.pods_marked = u32::try_from(already_marked + newly_marked).unwrap_or(u32::MAX);
    state.counts.workloads_retired = u32::try_from(surged.len()).unwrap_or(u32::MAX);

    let mut lagging = Vec::new();
    for w in &surged {
        let pods = world
            .kube
            .list_pods(Some(&w.namespace), &w.selector)
            .await?;
        let live = pods.iter().filter(|p| !p.terminating).count();
        let original = original_replicas(w);
        let done = w.replicas == original
            && w.is_settled()
            && live <= usize::try_from(original).unwrap_or(0);
        if !done {
            lagging.push(w.workload_ref().to_string());
            continue;
        }
        let check = verify_retire(w, &pods, &retiring);
        if check.new_pods_taken {
            // The drain evicts what the scale-down left on old nodes; the surge is gone, so
            // capacity on new nodes comes back as the ReplicaSet replaces the evicted pods.
            tracing::warn!(step = STEP, workload = %check.workload, left_on_old = check.left_on_old, on_new = check.on_new, "scale-down took new pods despite the deletion cost");
        }
    }
    if let Some(first) = lagging.first() {
        state.pending = pending(
            POLL_SECS,
            format!("{first} is scaling back ({} in all)", lagging.len()),
        );
    } else {
        state.phase = Phase::Retired;
        state.pending = None;
    }
    Ok(state)
}
