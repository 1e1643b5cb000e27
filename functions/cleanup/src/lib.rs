//! Cleanup after a migration execution that ended without cleaning up: stopped from the
//! console (ABORTED), timed out, or failed (a history overflow, `RollbackFailed`, a Lambda that
//! kept crashing). The cleanup state machine runs it, from an EventBridge rule on Step
//! Functions' "Execution Status Change", or by hand (`ngm cleanup EXECUTION_ARN`).
//!
//! It reads the per-cluster lock record of the cluster named in the execution's input:
//! - held by this execution: it takes the `MigrationState` the harness stored there after the
//!   execution's last finished step, and rolls back while the old group exists, or restores
//!   once it is gone, with the very step code of Rollback and Restore, which release the lock
//!   at the end. It answers `pending` (or a `continuation`) between rounds, and the machine
//!   calls it again after a Wait (or at once), as the migration machine does;
//! - free, or held by another execution: it touches nothing of anyone else's. It only looks for
//!   `ngm.io/*` marks of this execution on workloads, HPAs, nodes and pods, and removes them
//!   (putting back the originals they record).
//!
//! It refuses while the execution is still RUNNING, and it is idempotent: a second run finds
//! the lock released and no marks left, and does nothing.

use ngm_core::marks;
use ngm_core::model::{ExecutionStatus, NodeGroupKind, Timestamp, WorkloadKind};
use ngm_core::plan::lifecycle::lock_key;
use ngm_core::plan::restore::{RestoreInputs, plan_restore};
use ngm_core::plan::retire::plan_unmark;
use ngm_core::request::check_request;
use ngm_core::state::{Failure, MigrationState, Pending, Phase};
use ngm_steps::exec::Executor;
use ngm_steps::steps::{restore, rollback};
use ngm_steps::{StepError, World};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const STEP: &str = "cleanup";

/// How a cleanup ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// The old group was still there: everything is as before the migration.
    RolledBack,
    /// The old group was gone: the new group keeps the workloads, originals are back.
    Restored,
    /// The execution held the lock but had finished no step: nothing had changed.
    Released,
    /// The lock was free or someone else's; this execution's marks (if any) were removed.
    Swept,
}

/// The cleanup machine's input and output. The first round gets what the EventBridge rule
/// sends (`executionArn`, `status`, `input`); later rounds get what the previous one returned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cleanup {
    pub execution_arn: String,
    /// How the execution ended (ABORTED, FAILED, TIMED_OUT), as the event said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The execution's input (the migration request) as JSON text, as EventBridge delivers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    /// The state being rolled back or restored, between rounds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<MigrationState>,
    /// Call again after a Wait of this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending: Option<Pending>,
    /// Call again at once: a batched step stopped at its per-invocation budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub continuation: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// What was found and done, as sentences.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<String>,
}

fn invalid(reason: String) -> StepError {
    StepError::InvalidState { step: STEP, reason }
}

/// Decodes the event; a malformed one is refused before anything is called.
pub fn decode(event: Value) -> Result<Cleanup, StepError> {
    let c: Cleanup = serde_json::from_value(event)
        .map_err(|e| invalid(format!("the cleanup input is malformed: {e}")))?;
    if !c.execution_arn.contains(":execution:") {
        return Err(invalid(format!(
            "{} is not a Step Functions execution ARN",
            c.execution_arn
        )));
    }
    if c.state.is_none() && c.input.is_none() {
        return Err(invalid(
            "the cleanup input names no cluster: it needs the execution's input".into(),
        ));
    }
    c.cluster()?;
    Ok(c)
}

/// Encodes the answer.
pub fn encode(c: &Cleanup) -> Result<Value, StepError> {
    serde_json::to_value(c).map_err(|e| StepError::Unexpected {
        op: "encode the cleanup state".into(),
        detail: e.to_string(),
    })
}

impl Cleanup {
    /// The execution's name: the last segment of its ARN.
    pub fn execution_name(&self) -> &str {
        self.execution_arn
            .rsplit_once(':')
            .map_or(self.execution_arn.as_str(), |(_, n)| n)
    }

    /// The cluster's name and region, from the state or the execution's input.
    pub fn cluster(&self) -> Result<(String, String), StepError> {
        if let Some(s) = &self.state {
            let c = &s.request.cluster;
            return Ok((c.name.clone(), c.region.clone()));
        }
        let input = self.input.as_deref().unwrap_or_default();
        let req = check_request(input).map_err(|errors| StepError::InvalidRequest { errors })?;
        Ok((req.cluster.name, req.cluster.region))
    }
}

/// One round of cleanup.
pub async fn cleanup(mut c: Cleanup, world: &World, now: Timestamp) -> Result<Cleanup, StepError> {
    if c.outcome.is_some() {
        return Ok(c);
    }
    if let Some(info) = world.sfn.describe_execution(&c.execution_arn).await?
        && info.status == ExecutionStatus::Running
    {
        return Err(invalid(format!(
            "execution {} is still running; stop it first",
            c.execution_arn
        )));
    }
    let state = match c.state.take() {
        Some(s) => s,
        None => match first_round(&mut c, world).await? {
            Some(s) => s,
            None => return Ok(c),
        },
    };
    let done = matches!(
        state.phase,
        Phase::Restored | Phase::RolledBack | Phase::DryRunDone
    );
    let (out, outcome) = if done {
        // The execution finished its restore or rollback but did not end well afterwards.
        let cluster = cluster_arn(&state, world).await?;
        world
            .lock
            .release(&lock_key(&cluster), &state.execution.name)
            .await?;
        let outcome = if state.phase == Phase::Restored {
            Outcome::Restored
        } else {
            Outcome::RolledBack
        };
        (state, outcome)
    } else if old_group_exists(&state, world).await? {
        (rollback(state, world, now).await?, Outcome::RolledBack)
    } else {
        (restore(state, world, now).await?, Outcome::Restored)
    };
    // Rounds keep the stored state current, so a cleanup that dies is picked up where it was.
    ngm_lambda::renew_lock(&out, world, now).await?;
    c.pending = out.pending.clone();
    c.continuation = serde_json::to_value(&out)
        .ok()
        .and_then(|v| v.get("continuation").cloned())
        .filter(|v| !v.is_null());
    if c.pending.is_none() && c.continuation.is_none() {
        tracing::info!(step = STEP, execution = %c.execution_arn, outcome = ?outcome, "cleaned up");
        c.findings.push(format!("{:?}: {}", outcome, summary(&out)));
        c.outcome = Some(outcome);
    }
    c.state = Some(out);
    Ok(c)
}

fn summary(s: &MigrationState) -> String {
    format!(
        "phase {:?}, {} workloads and {} HPAs restored",
        s.phase, s.counts.workloads_restored, s.counts.hpas_restored
    )
}

async fn cluster_arn(state: &MigrationState, world: &World) -> Result<String, StepError> {
    let name = &state.request.cluster.name;
    let info =
        world
            .eks
            .describe_cluster(name)
            .await?
            .ok_or_else(|| StepError::ClusterNotFound {
                cluster: name.clone(),
            })?;
    Ok(info.arn)
}

/// The first round: what the lock record says. `Some(state)` to roll back or restore from;
/// `None` when this round already finished the cleanup.
async fn first_round(c: &mut Cleanup, world: &World) -> Result<Option<MigrationState>, StepError> {
    let (name, _) = c.cluster()?;
    let cluster =
        world
            .eks
            .describe_cluster(&name)
            .await?
            .ok_or_else(|| StepError::ClusterNotFound {
                cluster: name.clone(),
            })?;
    let key = lock_key(&cluster.arn);
    let exec = c.execution_name().to_string();
    let record = world.lock.read(&key).await?;
    let ours = record.as_ref().filter(|r| {
        r.holder_arn.as_deref() == Some(c.execution_arn.as_str())
            || (r.holder_arn.is_none() && r.holder == exec)
    });
    let Some(record) = ours else {
        let holder = record.map_or_else(|| "nobody".to_string(), |r| r.holder);
        c.findings.push(format!(
            "the lock of {name} is held by {holder}, not by {exec}: only {exec}'s marks are looked for"
        ));
        let removed = sweep(&exec, &name, world).await?;
        c.findings.push(format!(
            "{removed} changes removed marks of {exec} that were left behind"
        ));
        c.outcome = Some(Outcome::Swept);
        return Ok(None);
    };
    let Some(text) = &record.state else {
        // The harness stores the state after every step: none means no step finished.
        world.lock.release(&key, &record.holder).await?;
        c.findings.push(format!(
            "{exec} held the lock of {name} but finished no step: lock released"
        ));
        c.outcome = Some(Outcome::Released);
        return Ok(None);
    };
    let mut state: MigrationState = serde_json::from_str(text)
        .map_err(|e| invalid(format!("the state in the lock record is unreadable: {e}")))?;
    // A wait of the step that was running means nothing to the rollback or the restore.
    state.pending = None;
    state.blocked = None;
    let status = c.status.clone().unwrap_or_else(|| "ended".into());
    state.failure.get_or_insert_with(|| Failure {
        step: STEP.into(),
        error: status.clone(),
        message: format!("execution {} {status} without cleaning up", c.execution_arn),
    });
    c.findings.push(format!(
        "{exec} held the lock of {name}; its last state was {:?}",
        state.phase
    ));
    Ok(Some(state))
}

/// Whether the old group is still there, so the cleanup rolls back rather than restores.
async fn old_group_exists(state: &MigrationState, world: &World) -> Result<bool, StepError> {
    match state.source.kind {
        NodeGroupKind::Managed => Ok(world
            .eks
            .describe_nodegroup(&state.request.cluster.name, &state.source.name)
            .await?
            .is_some()),
        NodeGroupKind::SelfManagedAsg => {
            let names = if state.source.asg_names.is_empty() {
                vec![state.source.name.clone()]
            } else {
                state.source.asg_names.clone()
            };
            for n in &names {
                if world.asg.describe(n).await?.is_some() {
                    return Ok(true);
                }
            }
            Ok(false)
        }
    }
}

/// Removes every mark of execution `exec` (and puts back the originals it records) from
/// workloads, HPAs, nodes and the pods on those nodes. Objects marked by any other execution
/// are not touched. Returns how many changes it made.
pub async fn sweep(exec: &str, cluster: &str, world: &World) -> Result<usize, StepError> {
    let ours = |annotations: &ngm_core::model::Labels| {
        annotations.get(marks::EXECUTION).map(String::as_str) == Some(exec)
    };
    let mut workloads = world.kube.list_workloads(WorkloadKind::Deployment).await?;
    workloads.extend(world.kube.list_workloads(WorkloadKind::StatefulSet).await?);
    workloads.retain(|w| ours(&w.annotations));
    let mut hpas = world.kube.list_hpas().await?;
    hpas.retain(|h| ours(&h.annotations));
    let digest = ngm_core::hex_of([exec]);
    let mut nodes = world
        .kube
        .list_nodes(&ngm_core::model::LabelSelector::default())
        .await?;
    nodes.retain(|n| {
        n.labels.get(marks::RETIRING_LABEL) == Some(&digest)
            || ours(&n.annotations)
            || n.taints
                .iter()
                .any(|t| t.key == marks::TAINT_KEY && t.value.as_deref() == Some(digest.as_str()))
    });
    let mut pods = Vec::new();
    for n in &nodes {
        pods.extend(world.kube.list_pods_on_node(&n.name).await?);
    }
    let mut actions = plan_restore(RestoreInputs {
        execution: exec,
        workloads: &workloads,
        hpas: &hpas,
        nodes: &nodes,
    });
    actions.extend(plan_unmark(&pods, exec));
    let executor = Executor {
        world,
        cluster,
        execution: exec,
        step: STEP,
        dry_run: false,
    };
    executor.run_all(&actions).await?;
    Ok(actions.len())
}

#[cfg(test)]
mod tests;
