//! Steps 5 and 7 on the old nodes: taint, label and cordon them; then label them out of the
//! external load balancers and put the drain wait into the state for the Wait state.

use ngm_core::model::Timestamp;
use ngm_core::plan::lbdrain::lb_drain_wait;
use ngm_core::plan::nodes::{plan_cut_traffic, plan_taint};
use ngm_core::state::{MigrationState, Phase};

use super::{executor, load_balancers_for, pods_on, retiring_nodes, source_nodes};
use crate::error::StepError;
use crate::world::World;

/// Step 5.
pub async fn taint(
    mut state: MigrationState,
    world: &World,
    _now: Timestamp,
) -> Result<MigrationState, StepError> {
    let old = source_nodes(&state, world).await?;
    let actions = plan_taint(&old, &state.execution.name, &state.execution.digest());
    executor(&state, world, "taint").run_all(&actions).await?;
    state.counts.old_nodes = u32::try_from(old.len()).unwrap_or(u32::MAX);
    state.counts.nodes_tainted = state.counts.old_nodes;
    state.phase = Phase::Tainted;
    state.pending = None;
    Ok(state)
}

/// Step 7. `lbDrainSeconds` in the returned state is what the following Wait state waits.
pub async fn cut_traffic(
    mut state: MigrationState,
    world: &World,
    _now: Timestamp,
) -> Result<MigrationState, StepError> {
    let nodes = retiring_nodes(&state, world).await?;
    let actions = plan_cut_traffic(&nodes);
    executor(&state, world, "cut-traffic")
        .run_all(&actions)
        .await?;
    let pods = pods_on(world, &nodes).await?;
    let services = world.kube.list_services().await?;
    let lbs = load_balancers_for(world, &services, &pods).await?;
    let wait = lb_drain_wait(&lbs, state.request.policy.lb_drain_seconds_override);
    tracing::info!(step = "cut-traffic", seconds = wait.seconds, set_by = ?wait.set_by, "load-balancer drain wait");
    state.lb_drain_seconds = wait.seconds;
    state.counts.nodes_excluded_from_lb = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
    state.phase = Phase::TrafficCut;
    state.pending = None;
    Ok(state)
}
