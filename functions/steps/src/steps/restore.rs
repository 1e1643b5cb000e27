//! Step 11 (restore after success) and the rollback after a failure before step 10. Both read
//! the originals back from the objects, so a retry, or a run after a crash, restores the same.

use std::collections::BTreeSet;

use ngm_core::model::{NodeGroupKind, NodeView, Timestamp, WorkloadKind, WorkloadView};
use ngm_core::plan::deadlines::HPAS_SETTLED_SECS;
use ngm_core::plan::drain::{DrainClock, DrainOutcome, plan_drain};
use ngm_core::plan::freeze::restore_hpa;
use ngm_core::plan::nodes::plan_cut_traffic;
use ngm_core::plan::restore::{OldGroup, RestoreInputs, hpas_settled, plan_restore, plan_rollback};
use ngm_core::plan::{WaitDecision, wait_until};
use ngm_core::state::{MigrationState, Phase};

use super::nodes::new_group_asgs;
use super::plan::{cluster, release_lock};
use super::{
    POLL_SECS, batch, executor, new_nodes, pending, pods_on, retiring_nodes, source_nodes,
};
use crate::error::StepError;
use crate::world::World;
use ngm_core::plan::deadlines::ROLLBACK_SECS;

/// The HPA controller syncs every 15 s.
const HPA_POLL_SECS: u64 = 15;

/// Time for old nodes put back into the load balancers to pass their health checks (an ALB's
/// defaults: 5 healthy checks 30 s apart) before the new nodes leave them.
const ROLLBACK_LB_SETTLE_SECS: u64 = 180;

async fn all_workloads(world: &World) -> Result<Vec<WorkloadView>, StepError> {
    let mut w = world.kube.list_workloads(WorkloadKind::Deployment).await?;
    w.extend(world.kube.list_workloads(WorkloadKind::StatefulSet).await?);
    Ok(w)
}

fn union(mut a: Vec<NodeView>, b: Vec<NodeView>) -> Vec<NodeView> {
    let names: BTreeSet<String> = a.iter().map(|n| n.name.clone()).collect();
    a.extend(b.into_iter().filter(|n| !names.contains(&n.name)));
    a
}

/// Step 11: HPAs back to their originals and, `pending` until each holds its target where it
/// asks (bounded by `hpasSettledBy`, past which the output says which did not), the other
/// replicas back, every ngm mark removed from surviving objects, the lock released. An HPA's
/// target's count is never written.
pub async fn restore(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    let cluster = cluster(&state, world).await?;
    let workloads = all_workloads(world).await?;
    let hpas = world.kube.list_hpas().await?;
    // The markers on an HPA's target say which targets to wait for; they stay until the HPA
    // holds it.
    if let Err(reason) = hpas_settled(&workloads, &hpas) {
        let deadline = *state
            .deadlines
            .hpas_settled_by
            .get_or_insert(now.plus(HPAS_SETTLED_SECS));
        let handed_back: Vec<_> = hpas.iter().filter_map(restore_hpa).collect();
        executor(&state, world, "restore")
            .run_all(&handed_back)
            .await?;
        match wait_until(Err(reason), now, deadline, HPA_POLL_SECS) {
            WaitDecision::Again {
                retry_after_seconds,
                reason,
            } => {
                state.pending = pending(retry_after_seconds, reason);
                return Ok(state);
            }
            WaitDecision::Expired { reason } => {
                tracing::warn!(step = "restore", %reason, "HPAs not settled at the deadline");
                state.note(format!(
                    "the restore went on after {HPAS_SETTLED_SECS} s with an HPA not yet holding its target: {reason}"
                ));
            }
            WaitDecision::Done => {}
        }
    }
    // Once the old group is deleted its instances are terminated and their Nodes go with them:
    // taking the exclusion label off one that lingers would put a dead instance back in the
    // load balancers.
    let old_deleted = matches!(state.phase, Phase::OldGroupDeleted | Phase::Restored);
    let retiring = if old_deleted {
        Vec::new()
    } else {
        retiring_nodes(&state, world).await?
    };
    let nodes = union(new_nodes(&state, world).await?, retiring);
    let actions = plan_restore(RestoreInputs {
        execution: &state.execution.name,
        workloads: &workloads,
        hpas: &hpas,
        nodes: &nodes,
    });
    if !batch(&mut state, world, "restore", &actions)
        .await?
        .finished
    {
        return Ok(state);
    }
    release_lock(&mut state, world, &cluster.arn, "restore").await?;
    state.counts.workloads_restored = state.counts.workloads_surged;
    state.counts.hpas_restored = state.counts.hpas_frozen;
    state.phase = Phase::Restored;
    state.pending = None;
    tracing::info!(step = "restore", execution = %state.execution.name, counts = ?state.counts, "migration finished");
    Ok(state)
}

/// The rollback: old nodes back in service, old group unpinned, replicas and HPAs back, pod
/// marks gone (in batches: `continuation` while more remain); when ngm created the new group
/// and the policy says so, its nodes are drained (`pending` between rounds) and it is deleted;
/// then the lock is released. `RollbackStalled` when its waits run past its own deadline.
pub async fn rollback(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    const STEP: &str = "rollback";
    let rollback_by = *state
        .deadlines
        .rollback_by
        .get_or_insert(now.plus(ROLLBACK_SECS.saturating_add(state.lb_drain_seconds)));
    let exec_name = state.execution.name.clone();
    let policy = state.request.policy.clone();
    let cluster = cluster(&state, world).await?;
    let workloads = all_workloads(world).await?;
    let hpas = world.kube.list_hpas().await?;
    let new = new_nodes(&state, world).await?;
    let new_names: BTreeSet<String> = new.iter().map(|n| n.name.clone()).collect();
    let retiring_old: Vec<NodeView> = retiring_nodes(&state, world)
        .await?
        .into_iter()
        .filter(|n| !new_names.contains(&n.name))
        .collect();
    let old = union(source_nodes(&state, world).await?, retiring_old);
    let deletes_new = state
        .new_group
        .as_ref()
        .is_some_and(|g| g.created_by_ngm && policy.rollback_deletes_new_group);
    let nodes = if deletes_new {
        old.clone()
    } else {
        union(old.clone(), new.clone())
    };
    let on_old = pods_on(world, &old).await?;
    // IP targets: the old pods ngm took out at the cut serve again before the surge goes.
    if state.deadlines.traffic_cut_at.is_some()
        && !policy.dry_run
        && let Some((secs, reason)) = super::iptargets::bring_old_pods_back(world, &on_old).await?
    {
        if now < rollback_by {
            state.pending = pending(secs, reason);
            return Ok(state);
        }
        state.note(format!(
            "the rollback went on at its deadline with old pods not yet healthy targets: {reason}"
        ));
    }
    let marked: Vec<_> = on_old
        .into_iter()
        .filter(|p| p.annotations.get(ngm_core::marks::EXECUTION) == Some(&exec_name))
        .collect();

    let managed;
    let mut asgs = Vec::new();
    let old_group = match state.source.kind {
        NodeGroupKind::Managed => {
            managed = world
                .eks
                .describe_nodegroup(&state.request.cluster.name, &state.source.name)
                .await?
                .ok_or_else(|| StepError::InvalidState {
                    step: STEP,
                    reason: format!(
                        "old group {} is gone; nothing to roll back to",
                        state.source.name
                    ),
                })?;
            OldGroup::Managed {
                name: &managed.name,
                arn: managed.arn.as_deref().unwrap_or_default(),
                scaling: managed.scaling,
                tags: &managed.tags,
            }
        }
        NodeGroupKind::SelfManagedAsg => {
            for n in &state.source.asg_names {
                asgs.extend(world.asg.describe(n).await?);
            }
            OldGroup::SelfManaged { asgs: &asgs }
        }
    };
    let plan = plan_rollback(
        RestoreInputs {
            execution: &exec_name,
            workloads: &workloads,
            hpas: &hpas,
            nodes: &nodes,
        },
        &new,
        old_group,
        &marked,
        &state.originals,
        state.new_group.as_ref(),
        &policy,
    );
    let drained_by = (plan.drain_new_nodes && !policy.dry_run).then(|| {
        let lb = state.lb_drain_seconds;
        *state
            .deadlines
            .rollback_lb_drained_by
            .get_or_insert(now.plus(ROLLBACK_LB_SETTLE_SECS.saturating_add(lb)))
    });
    if !batch(&mut state, world, STEP, &plan.restore)
        .await?
        .finished
    {
        return Ok(state);
    }
    // The old groups rejoin the load balancers CutTraffic detached them from (attaching twice
    // is a no-op).
    let attachments = state.originals.lb_attachments.clone().unwrap_or_default();
    if !attachments.is_empty() && !policy.dry_run {
        for asg in &state.source.asg_names {
            world.asg.attach_load_balancers(asg, &attachments).await?;
        }
    }
    if plan.drain_new_nodes && !policy.dry_run {
        // The new nodes leave the load balancers the way the old ones did in cut-traffic, but
        // only once the old nodes (just put back) have had time to pass their health checks;
        // then the group is deleted no sooner than the LB drain after that.
        let lb = state.lb_drain_seconds;
        let drained_by = drained_by.unwrap_or(now);
        let exclude_at = Timestamp(
            drained_by
                .0
                .saturating_sub(i64::try_from(lb).unwrap_or(i64::MAX)),
        );
        if now < exclude_at {
            state.pending = pending(
                u64::try_from(exclude_at.0 - now.0).unwrap_or(POLL_SECS),
                "the old nodes are rejoining the load balancers".into(),
            );
            return Ok(state);
        }
        executor(&state, world, STEP)
            .run_all(&plan_cut_traffic(&new))
            .await?;
        if !attachments.is_empty() {
            for asg in new_group_asgs(&state, world).await? {
                world.asg.detach_load_balancers(&asg, &attachments).await?;
            }
        }
        // The deleted group would terminate its pods regardless of PDBs, so they leave by
        // eviction first; the rollback waits for the budgets until its own deadline.
        let pods = pods_on(world, &new).await?;
        let sets = world.kube.list_workloads(WorkloadKind::StatefulSet).await?;
        // Its own deadline is the rollback's; Jobs' pods are not waited for here.
        let clock = DrainClock {
            drain_by: now.plus(u64::MAX / 4),
            jobs_by: None,
            now,
        };
        let round = plan_drain(&pods, &sets, &policy, None, clock);
        // IP targets: each pod leaves its target groups before it is evicted.
        let (actions, held) = super::iptargets::hold_back(world, &pods, &round.actions).await?;
        // Thousands of pods take several invocations (`continuation`), as Retire's marks do.
        if !batch(&mut state, world, STEP, &actions).await?.finished {
            return Ok(state);
        }
        if let Some((secs, reason)) = held {
            if now >= rollback_by {
                return Err(StepError::RollbackStalled { reason });
            }
            state.pending = pending(secs, reason);
            return Ok(state);
        }
        match round.outcome {
            DrainOutcome::Done if now < drained_by => {
                state.pending = pending(
                    u64::try_from(drained_by.0 - now.0).unwrap_or(POLL_SECS),
                    "the new nodes are leaving the load balancers".into(),
                );
                return Ok(state);
            }
            DrainOutcome::Done => {}
            DrainOutcome::Refused { reasons } => return Err(StepError::DrainRefused { reasons }),
            // The drain is given no deadline of its own here; the rollback's covers it.
            DrainOutcome::TimedOut { .. }
            | DrainOutcome::Blocked { .. }
            | DrainOutcome::Continue { .. } => {
                if now >= rollback_by {
                    return Err(StepError::RollbackStalled {
                        reason:
                            "pods are still on the new group's nodes at the rollback's deadline"
                                .into(),
                    });
                }
                state.pending = pending(
                    POLL_SECS.min(15),
                    "pods are leaving the new group's nodes".into(),
                );
                return Ok(state);
            }
        }
    }
    executor(&state, world, STEP).run_all(&plan.finish).await?;
    release_lock(&mut state, world, &cluster.arn, STEP).await?;
    state.phase = Phase::RolledBack;
    state.pending = None;
    Ok(state)
}
