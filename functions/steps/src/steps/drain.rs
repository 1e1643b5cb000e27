//! Step 9: drain what is left on the old nodes through the Eviction API, in bounded rounds.
//! A PDB that keeps refusing past the deadline is named (pod and PDB) and handled as the
//! request chose: wait for an operator, roll back, or force.

use ngm_core::model::{PodView, Timestamp, WorkloadKind};
use ngm_core::plan::Action;
use ngm_core::plan::deadlines::DRAIN_OVERRUN_SECS;
use ngm_core::plan::drain::{
    DRAIN_POLL_SECS, DrainClock, DrainOutcome, OperatorPlan, plan_drain, plan_operator,
};
use ngm_core::ports::EvictOutcome;
use ngm_core::request::{JobMode, OnPdbBlocked};
use ngm_core::state::{Blocked, MigrationState, Phase};

use super::{executor, old_nodes, pending, pods_on};
use crate::error::StepError;
use crate::exec::Outcome;
use crate::world::World;

const STEP: &str = "drain";

/// Step 9. Returns `pending` between rounds; with `waitForOperator` past the deadline it
/// returns `blocked` set and no `pending`, for the state machine's task-token pause. The
/// operator's answer (`operator`) is acted on first: `retry` renews the deadline, `force` also
/// deletes one pod. `DrainTimedOut` when pods stay past the deadline with no PDB refusing.
pub async fn drain(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    let policy = state.request.policy.clone();
    let nodes = old_nodes(&mut state, world, "drain").await?;
    // Pods of a namespace being deleted are the namespace controller's to delete.
    let pods: Vec<PodView> = pods_on(world, &nodes)
        .await?
        .into_iter()
        .filter(|p| !state.skipped_namespaces.contains(&p.namespace))
        .collect();
    if let Some(answer) = state.operator.clone() {
        let plan = plan_operator(
            &answer,
            state.blocked.as_ref(),
            &pods,
            &policy,
            state.execution.started_at,
            now,
        );
        tracing::info!(step = STEP, answer = ?answer, plan = ?plan, "operator answered");
        match plan {
            OperatorPlan::Rollback => {
                let b = state.blocked.clone();
                return Err(StepError::PdbBlocked {
                    pod: b.as_ref().map_or_else(String::new, |b| b.pod.clone()),
                    pdb: b.and_then(|b| b.pdb).unwrap_or_else(|| "(unnamed)".into()),
                });
            }
            OperatorPlan::NoTimeLeft => {
                return Err(StepError::DrainTimedOut {
                    reason: "the operator answered, but the execution has no time left for another drain".into(),
                });
            }
            OperatorPlan::WaitForSibling { pod } => {
                state.pending = pending(
                    DRAIN_POLL_SECS,
                    format!(
                        "forcing {pod} waits until the previous pod of its StatefulSet has gone"
                    ),
                );
                return Ok(state);
            }
            OperatorPlan::Resume {
                drain_by,
                delete,
                note,
            } => {
                if let Some(n) = note {
                    state.note(n);
                }
                state.deadlines.drain_by = Some(drain_by);
                state.blocked = None;
                state.operator = None;
                if let Some(a) = delete {
                    executor(&state, world, STEP).run(&a).await?;
                    state.counts.pods_evicted = state.counts.pods_evicted.saturating_add(1);
                    // The next round sees the forced pod terminating, so a StatefulSet's next
                    // ordinal waits for it.
                    state.pending = pending(
                        DRAIN_POLL_SECS,
                        "a pod was forced out; the drain resumes".into(),
                    );
                    return Ok(state);
                }
            }
        }
    }
    let drain_by = *state
        .deadlines
        .drain_by
        .get_or_insert(now.plus(policy.drain_deadline_seconds));
    // The wait for pods that run to completion starts with the drain too; an operator's
    // `retry` renews the PDB deadline, not this one.
    let jobs_by = (policy.jobs.mode == JobMode::WaitToFinish).then(|| {
        *state
            .deadlines
            .jobs_by
            .get_or_insert(now.plus(policy.jobs.finish_within_seconds))
    });
    let sets = world.kube.list_workloads(WorkloadKind::StatefulSet).await?;
    let clock = DrainClock {
        drain_by,
        jobs_by,
        now,
    };
    let plan = plan_drain(&pods, &sets, &policy, state.blocked.as_ref(), clock);
    state.counts.pods_waited_for = state
        .counts
        .pods_waited_for
        .max(u32::try_from(plan.waiting_for_jobs).unwrap_or(u32::MAX));
    state.counts.pods_skipped = u32::try_from(plan.skipped).unwrap_or(u32::MAX);

    // IP targets: a pod leaves its target groups, and the load balancer stops routing to it,
    // before it is evicted.
    let (actions, held) = super::iptargets::hold_back(world, &pods, &plan.actions).await?;
    let exec = executor(&state, world, STEP);
    let mut first_block: Option<(String, Option<String>)> = None;
    let (mut blocks, mut evicted) = (0u32, 0u32);
    let mut terminating_namespaces = Vec::new();
    for action in &actions {
        match exec.run(action).await? {
            Outcome::Evict(EvictOutcome::PdbBlocked { pdb }) => {
                blocks = blocks.saturating_add(1);
                if first_block.is_none()
                    && let Action::EvictPod {
                        namespace, name, ..
                    } = action
                {
                    let key = format!("{namespace}/{name}");
                    let pdb = match pdb {
                        Some(p) => Some(p),
                        None => covering_pdb(world, &pods, namespace, name).await?,
                    };
                    first_block = Some((key, pdb));
                }
            }
            Outcome::Evict(EvictOutcome::Evicted) | Outcome::Done => {
                evicted = evicted.saturating_add(1);
            }
            // As kubectl drain does: the namespace controller deletes the pod; wait for it.
            Outcome::Evict(EvictOutcome::NamespaceTerminating) => {
                if let Action::EvictPod { namespace, .. } = action {
                    terminating_namespaces.push(namespace.clone());
                }
            }
            _ => {}
        }
    }
    for ns in &terminating_namespaces {
        state.skip_namespace(ns);
    }
    state.counts.pdb_blocks = state.counts.pdb_blocks.saturating_add(blocks);
    state.counts.pods_evicted = state.counts.pods_evicted.saturating_add(evicted);
    if !plan.actions.is_empty() {
        state.blocked = first_block.map(|(pod, pdb)| Blocked {
            // The first refusal of this pod starts the clock; later ones keep it.
            since: state
                .blocked
                .as_ref()
                .filter(|b| b.pod == pod)
                .map_or(now, |b| b.since),
            pod,
            pdb,
        });
    }

    match plan.outcome {
        DrainOutcome::Done => {
            state.phase = Phase::Drained;
            state.pending = None;
            state.blocked = None;
        }
        DrainOutcome::Continue {
            retry_after_seconds,
        } => {
            if let Some((secs, reason)) = held {
                state.pending = pending(secs.max(retry_after_seconds), reason);
                return Ok(state);
            }
            let reason = match &state.blocked {
                Some(b) => format!(
                    "eviction of {} is blocked by PodDisruptionBudget {}",
                    b.pod,
                    b.pdb.as_deref().unwrap_or("(unnamed)")
                ),
                None if plan.actions.is_empty() && plan.waiting_for_jobs > 0 => format!(
                    "{} pods that run to completion are left to finish (policy.jobs), for {} s more at most",
                    plan.waiting_for_jobs,
                    jobs_by.map_or(0, |t| t.secs_since(now))
                ),
                None => "pods are leaving the old nodes".to_string(),
            };
            state.pending = pending(retry_after_seconds, reason);
        }
        DrainOutcome::Blocked { pod, pdb, then } => {
            tracing::warn!(step = STEP, pod = %pod, pdb = ?pdb, "eviction blocked past the drain deadline");
            match then {
                OnPdbBlocked::WaitForOperator => state.pending = None,
                OnPdbBlocked::Rollback | OnPdbBlocked::Force => {
                    return Err(StepError::PdbBlocked {
                        pod,
                        pdb: pdb.unwrap_or_else(|| "(unnamed)".into()),
                    });
                }
            }
        }
        DrainOutcome::Refused { reasons } => return Err(StepError::DrainRefused { reasons }),
        DrainOutcome::TimedOut { remaining } => {
            return Err(StepError::DrainTimedOut {
                reason: format!(
                    "{remaining} pods are still on the old nodes {DRAIN_OVERRUN_SECS} s past the drain deadline, and no PodDisruptionBudget refuses their eviction"
                ),
            });
        }
    }
    Ok(state)
}

/// The PDB covering a pod, when the eviction answer did not name it.
async fn covering_pdb(
    world: &World,
    pods: &[PodView],
    namespace: &str,
    name: &str,
) -> Result<Option<String>, StepError> {
    let Some(pod) = pods
        .iter()
        .find(|p| p.namespace == namespace && p.name == name)
    else {
        return Ok(None);
    };
    Ok(world
        .kube
        .list_pdbs()
        .await?
        .into_iter()
        .find(|p| p.covers(pod))
        .map(|p| format!("{}/{}", p.namespace, p.name)))
}
