//! Step 5: freeze the autoscalers. The old group is pinned (min = max = desired), the new
//! nodes are protected from Cluster Autoscaler's scale-down, and the HPAs of affected
//! Deployments are raised to the surge count. Originals go on the objects before they change.

use ngm_core::model::{NodeGroupKind, Timestamp};
use ngm_core::plan::Action;
use ngm_core::plan::freeze::{
    plan_freeze_hpas, plan_pin_asgs, plan_pin_managed, plan_protect_new_nodes,
};
use ngm_core::plan::preflight::affected_deployments;
use ngm_core::plan::scope::managed_group_selector;
use ngm_core::state::{MigrationState, Phase};

use super::{executor, new_group, source_nodes};
use crate::error::StepError;
use crate::observe::observe_with_nodes;
use crate::world::World;

const STEP: &str = "freeze";

/// Step 5.
pub async fn freeze(
    mut state: MigrationState,
    world: &World,
    _now: Timestamp,
) -> Result<MigrationState, StepError> {
    let new_name = new_group(&state, STEP)?.name.clone();
    let exec_name = state.execution.name.clone();
    let mut actions: Vec<Action> = Vec::new();

    match state.source.kind {
        NodeGroupKind::Managed => {
            let g = world
                .eks
                .describe_nodegroup(&state.request.cluster.name, &state.source.name)
                .await?
                .ok_or_else(|| StepError::SourceGroupNotFound {
                    name: state.source.name.clone(),
                })?;
            let arn = g.arn.clone().unwrap_or_default();
            let (pin, original) = plan_pin_managed(&g.name, &arn, g.scaling, &g.tags, &exec_name);
            state.originals.old_group_scaling = Some(original);
            actions.extend(pin);
        }
        NodeGroupKind::SelfManagedAsg => {
            let mut asgs = Vec::new();
            for n in &state.source.asg_names {
                if let Some(a) = world.asg.describe(n).await? {
                    asgs.push(a);
                }
            }
            let cluster = state.request.cluster.name.clone();
            actions.extend(plan_pin_asgs(
                &asgs,
                &cluster,
                &exec_name,
                &mut state.originals,
            ));
        }
    }

    let new_nodes = world
        .kube
        .list_nodes(&managed_group_selector(&new_name))
        .await?;
    actions.extend(plan_protect_new_nodes(&new_nodes, &exec_name));

    let old_nodes = source_nodes(&state, world).await?;
    let view = observe_with_nodes(world.kube.as_ref(), old_nodes).await?;
    let affected = affected_deployments(&view.old_pods, &view.replicasets, &state.request.policy);
    let hpas = world.kube.list_hpas().await?;
    actions.extend(plan_freeze_hpas(
        &hpas,
        &view.workloads,
        &affected,
        &state.request.policy,
        &exec_name,
    ));

    executor(&state, world, STEP).run_all(&actions).await?;

    // Counted from the world, so a retried call reports the same numbers.
    let frozen = hpas
        .iter()
        .filter(|h| h.target().is_some_and(|t| affected.contains(&t)))
        .count();
    state.counts.hpas_frozen = u32::try_from(frozen).unwrap_or(u32::MAX);
    state.phase = Phase::Frozen;
    state.pending = None;
    Ok(state)
}
