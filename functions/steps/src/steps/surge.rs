//! Step 6: surge every affected Deployment (system ones first), then wait until each has its
//! original count of Ready pods off the old nodes.

use std::collections::BTreeSet;

use ngm_core::model::{Timestamp, WorkloadKind, WorkloadView};
use ngm_core::plan::preflight::affected_deployments;
use ngm_core::plan::surge::{plan_surge, ready_off, surge_settled, surged_by};
use ngm_core::plan::wait_until;
use ngm_core::state::{MigrationState, Phase};

use super::{POLL_SECS, SURGE_READY_TIMEOUT_SECS, executor, old_nodes, settle_wait};
use crate::error::StepError;
use crate::observe::observe_with_nodes;
use crate::world::World;

/// Step 6.
pub async fn surge(
    mut state: MigrationState,
    world: &World,
    _now: Timestamp,
) -> Result<MigrationState, StepError> {
    let nodes = old_nodes(&mut state, world, "surge").await?;
    let view = observe_with_nodes(world.kube.as_ref(), nodes).await?;
    let affected = affected_deployments(&view.old_pods, &view.replicasets, &state.request.policy);
    let actions = plan_surge(
        &view.workloads,
        &affected,
        &state.request.policy,
        &state.execution.name,
    );
    executor(&state, world, "surge").run_all(&actions).await?;
    let already = view
        .workloads
        .iter()
        .filter(|w| surged_by(w, &state.execution.name) && !affected.contains(&w.workload_ref()));
    let surged = affected.len() + already.count();
    state.counts.workloads_surged = u32::try_from(surged).unwrap_or(u32::MAX);
    state.phase = Phase::Surged;
    state.pending = None;
    Ok(state)
}

/// Step 6's wait: `pending` until every surged Deployment has its original count Ready off the
/// old nodes.
pub async fn check_surge(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    let deadline = *state
        .deadlines
        .surge_ready_by
        .get_or_insert(now.plus(SURGE_READY_TIMEOUT_SECS));
    let retiring: BTreeSet<String> = old_nodes(&mut state, world, "check-surge")
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
    let surged: Vec<WorkloadView> = world
        .kube
        .list_workloads(WorkloadKind::Deployment)
        .await?
        .into_iter()
        .filter(|w| surged_by(w, &state.execution.name))
        .collect();
    let mut progress = Vec::new();
    for w in &surged {
        let pods = world
            .kube
            .list_pods(Some(&w.namespace), &w.selector)
            .await?;
        progress.push((w, ready_off(&pods, &retiring)));
    }
    settle_wait(
        &mut state,
        wait_until(surge_settled(&progress), now, deadline, POLL_SECS),
        |reason| StepError::SurgeNotReady { reason },
    )?;
    Ok(state)
}
