//! Steps 2, 3 and 10 on the groups themselves: create (or adopt) the new group, wait until it
//! is ACTIVE with every node Ready, delete the old group once it is empty, wait until it is gone.

use ngm_core::model::{NodeGroupKind, NodeGroupStatus, Timestamp};
use ngm_core::plan::lifecycle::{
    CreateDecision, DeleteDecision, group_failed, group_ready, plan_create_group, plan_delete_old,
    pods_to_stop, stop_wait_secs,
};
use ngm_core::plan::newgroup::{derive_target, launch_template_overrides};
use ngm_core::plan::scope::managed_group_selector;
use ngm_core::plan::{Action, wait_until};
use ngm_core::state::{MigrationState, NewGroupInfo, Phase};

use super::plan::resolve_source;
use super::{
    GROUP_READY_TIMEOUT_SECS, OLD_GROUP_GONE_TIMEOUT_SECS, POLL_SECS, executor, new_group,
    old_nodes, pending, pods_on, settle_wait,
};
use crate::error::StepError;
use crate::exec::Outcome;
use crate::world::World;
use ngm_core::plan::deadlines::OLD_GROUP_EMPTY_SECS;

/// Step 2.
pub async fn create_group(
    mut state: MigrationState,
    world: &World,
    _now: Timestamp,
) -> Result<MigrationState, StepError> {
    const STEP: &str = "create-group";
    let (source, _) = resolve_source(&state, world).await?;
    let derived = derive_target(&state.request, &source);
    let cluster = state.request.cluster.name.clone();
    let existing = world
        .eks
        .describe_nodegroup(&cluster, &derived.name)
        .await?;
    let exec = executor(&state, world, STEP);
    let decision = plan_create_group(
        &state.request,
        &derived,
        existing.as_ref(),
        &state.execution.name,
    );
    let info = match decision {
        CreateDecision::Conflict { reason } => {
            return Err(StepError::TargetGroupConflict { reason });
        }
        CreateDecision::Adopt { created_by_ngm } => {
            let e = existing.as_ref();
            // The version an earlier try created is the one the group runs.
            let version = e
                .filter(|_| created_by_ngm && launch_template_overrides(&state.request).is_some())
                .and_then(|g| g.launch_template.as_ref())
                .and_then(|lt| lt.version.as_deref())
                .and_then(|v| v.parse().ok());
            NewGroupInfo {
                name: derived.name.clone(),
                created_by_ngm,
                arn: e.and_then(|g| g.arn.clone()),
                launch_template_version: version,
            }
        }
        CreateDecision::Create {
            launch_template,
            mut spec,
            client_request_token,
        } => {
            let mut version = None;
            if let Some(lt) = launch_template
                && let Outcome::TemplateVersion(v) = exec.run(&lt).await?
            {
                if let Some(r) = spec.launch_template.as_mut() {
                    r.version = Some(v.version.to_string());
                }
                version = Some(v.version);
            }
            let action = Action::CreateNodegroup {
                spec: spec.clone(),
                client_request_token,
            };
            let arn = match exec.run(&action).await? {
                Outcome::Group(g) => g.arn,
                _ => None,
            };
            NewGroupInfo {
                name: spec.name.clone(),
                created_by_ngm: true,
                arn,
                launch_template_version: version,
            }
        }
    };
    state.new_group = Some(info);
    state.phase = Phase::CreatingGroup;
    state.pending = None;
    Ok(state)
}

/// Step 3: `pending` until the new group is ACTIVE with all its nodes Ready.
pub async fn check_group_ready(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    const STEP: &str = "check-group-ready";
    let name = new_group(&state, STEP)?.name.clone();
    let deadline = *state
        .deadlines
        .group_ready_by
        .get_or_insert(now.plus(GROUP_READY_TIMEOUT_SECS));
    let group = world
        .eks
        .describe_nodegroup(&state.request.cluster.name, &name)
        .await?;
    if let Some(reason) = group_failed(group.as_ref()) {
        return Err(StepError::NewGroupFailed { reason });
    }
    let nodes = world
        .kube
        .list_nodes(&managed_group_selector(&name))
        .await?;
    let decision = wait_until(
        group_ready(group.as_ref(), &nodes),
        now,
        deadline,
        POLL_SECS,
    );
    if settle_wait(&mut state, decision, |reason| StepError::NewGroupNotReady {
        reason,
    })? {
        state.phase = Phase::GroupReady;
        state.counts.new_nodes = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
        if let Some(arn) = group.and_then(|g| g.arn)
            && let Some(g) = state.new_group.as_mut()
        {
            g.arn = Some(arn);
        }
    }
    Ok(state)
}

/// Step 10, in two Tasks of the state machine. The first (`DeleteOld`, from `drained`) waits
/// until only skipped pods remain on the old nodes (`pending`; `OldGroupNotEmpty` past its
/// deadline) and moves to `oldGroupEmpty` without deleting anything, so a failure there still
/// rolls back. The second (`DeleteOldGroup`, from `oldGroupEmpty`) deletes the group.
pub async fn delete_old(
    state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    match state.phase {
        Phase::OldGroupEmpty | Phase::DeletingOldGroup => delete_old_group(state, world).await,
        _ => await_old_empty(state, world, now).await,
    }
}

async fn await_old_empty(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    let deadline = *state
        .deadlines
        .old_group_empty_by
        .get_or_insert(now.plus(OLD_GROUP_EMPTY_SECS));
    let nodes = old_nodes(&mut state, world, "delete-old").await?;
    // Pods of a namespace being deleted go with it; they hold nothing.
    let pods: Vec<_> = pods_on(world, &nodes)
        .await?
        .into_iter()
        .filter(|p| !state.skipped_namespaces.contains(&p.namespace))
        .collect();
    let condition = match plan_delete_old(
        state.source.kind,
        &state.source.name,
        &pods,
        &state.request.policy,
    ) {
        DeleteDecision::Wait { remaining } => {
            Err(format!("{remaining} pods still run on the old nodes"))
        }
        DeleteDecision::Delete { .. } => Ok(()),
    };
    if settle_wait(
        &mut state,
        wait_until(condition, now, deadline, POLL_SECS),
        |reason| StepError::OldGroupNotEmpty { reason },
    )? && stop_left_pods(&mut state, world, &pods, now).await?
    {
        state.phase = Phase::OldGroupEmpty;
    }
    Ok(state)
}

/// Evicts the pods that would otherwise die with the old instances ([`pods_to_stop`]) and
/// waits until they are gone, bounded by their grace periods: `Ok(true)` once the old group
/// may be deleted, `Ok(false)` with `pending` set while they stop.
async fn stop_left_pods(
    state: &mut MigrationState,
    world: &World,
    pods: &[ngm_core::model::PodView],
    now: Timestamp,
) -> Result<bool, StepError> {
    let started = *state.deadlines.left_pods_stop_started_at.get_or_insert(now);
    let services = world.kube.list_services().await?;
    let left = pods_to_stop(pods, &services, started);
    if left.is_empty() {
        state.pending = None;
        return Ok(true);
    }
    let by = *state
        .deadlines
        .left_pods_stopped_by
        .get_or_insert(now.plus(stop_wait_secs(&left)));
    let names: Vec<String> = left.iter().take(5).map(|p| p.key()).collect();
    if now >= by {
        let reason = format!(
            "{} pods ngm left on the old nodes did not stop within {} s ({}); they go with \
             their instances",
            left.len(),
            by.secs_since(started),
            names.join(", ")
        );
        tracing::warn!(step = "delete-old", %reason, "pods left in place");
        state.note(reason);
        state.pending = None;
        return Ok(true);
    }
    let evict: Vec<Action> = left
        .iter()
        .filter(|p| !p.terminating)
        .map(|p| Action::EvictPod {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
        })
        .collect();
    if !evict.is_empty() {
        executor(state, world, "delete-old").run_all(&evict).await?;
    }
    state.pending = pending(
        POLL_SECS.min(by.secs_since(now).max(1)),
        format!(
            "{} pods ngm left on the old nodes are stopping before their instances terminate: {}",
            left.len(),
            names.join(", ")
        ),
    );
    Ok(false)
}

async fn delete_old_group(
    mut state: MigrationState,
    world: &World,
) -> Result<MigrationState, StepError> {
    const STEP: &str = "delete-old";
    let action = match state.source.kind {
        NodeGroupKind::Managed => Action::DeleteNodegroup {
            name: state.source.name.clone(),
        },
        NodeGroupKind::SelfManagedAsg => Action::DeleteAsg {
            name: state.source.name.clone(),
        },
    };
    // Check before writing: a group already deleting (or gone) needs no second call.
    let deleting = match state.source.kind {
        NodeGroupKind::Managed => world
            .eks
            .describe_nodegroup(&state.request.cluster.name, &state.source.name)
            .await?
            .is_none_or(|g| g.status == NodeGroupStatus::Deleting),
        NodeGroupKind::SelfManagedAsg => world.asg.describe(&state.source.name).await?.is_none(),
    };
    if !deleting {
        executor(&state, world, STEP).run(&action).await?;
    }
    state.phase = Phase::DeletingOldGroup;
    state.pending = None;
    Ok(state)
}

/// Step 10's wait: `pending` until the old group no longer exists.
pub async fn check_deleted(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    let deadline = *state
        .deadlines
        .old_group_gone_by
        .get_or_insert(now.plus(OLD_GROUP_GONE_TIMEOUT_SECS));
    let name = &state.source.name;
    let exists = match state.source.kind {
        NodeGroupKind::Managed => world
            .eks
            .describe_nodegroup(&state.request.cluster.name, name)
            .await?
            .is_some(),
        NodeGroupKind::SelfManagedAsg => world.asg.describe(name).await?.is_some(),
    };
    let condition = if exists {
        Err(format!("old group {name} still exists"))
    } else {
        Ok(())
    };
    let decision = wait_until(condition, now, deadline, POLL_SECS);
    if settle_wait(&mut state, decision, |reason| {
        StepError::OldGroupNotDeleted { reason }
    })? {
        state.phase = Phase::OldGroupDeleted;
    }
    Ok(state)
}
