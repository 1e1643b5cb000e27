//! Starting a migration from outside the state machine (the resize API, the AMI watcher): take
//! the cluster's lock for the execution name about to start, then StartExecution. Taking the
//! lock first is what makes two concurrent starts for one cluster start exactly one migration;
//! validate-and-plan then finds the lock already held by its own execution.

use ngm_core::model::{ExecutionStatus, Timestamp};
use ngm_core::plan::lifecycle::{LockDecision, lease_seconds, lock_key, plan_lock};
use ngm_core::ports::{LockAcquired, LockPort, PortError, SfnPort};
use ngm_core::request::MigrationRequest;

/// Step Functions execution names: 1 to 80 characters, none of whitespace, `<>{}[]?*"#%\^|~`$&,;:/`
/// or control characters. Every other character becomes `-`; a name too long is cut and ends
/// with a digest of the whole, so two long names stay distinct.
pub fn execution_name(parts: &[&str]) -> String {
    let raw = parts.join("-");
    let clean: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if clean.len() <= 80 {
        return clean;
    }
    let digest = ngm_core::hex_of([raw.as_str()]);
    let keep = 80 - digest.len() - 1;
    format!("{}-{digest}", &clean[..keep])
}

/// `arn:aws:states:r:a:stateMachine:sm` and `name` give the execution's ARN
/// `arn:aws:states:r:a:execution:sm:name`, known before StartExecution.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> Option<String> {
    let (head, sm) = state_machine_arn.rsplit_once(":stateMachine:")?;
    Some(format!("{head}:execution:{sm}:{name}"))
}

/// What a start did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// The execution runs (just started, or a repeat of the same start).
    Started { execution_arn: String },
    /// Another execution holds the cluster's lock.
    Locked { holder: String },
    /// An execution with this name and input already ran and has finished; it is not run again
    /// (the lock taken for it is released).
    AlreadyRan {
        execution_arn: String,
        status: ExecutionStatus,
    },
}

/// Takes the lock on `cluster_arn` for `name`, then starts the execution with `req` as input.
/// A start that fails releases the lock again, so a bad start never blocks the cluster.
pub async fn start_locked(
    lock: &dyn LockPort,
    sfn: &dyn SfnPort,
    state_machine_arn: &str,
    cluster_arn: &str,
    name: &str,
    req: &MigrationRequest,
    now: Timestamp,
) -> Result<StartOutcome, PortError> {
    let key = lock_key(cluster_arn);
    let lease_until = now.plus(lease_seconds(req, None));
    // A dry run changes nothing and never takes the lock.
    let current = if req.policy.dry_run {
        None
    } else {
        lock.read(&key).await?
    };
    match plan_lock(&key, current.as_ref(), name, now, lease_until) {
        LockDecision::Busy { holder, .. } => return Ok(StartOutcome::Locked { holder }),
        LockDecision::Held => {}
        LockDecision::Acquire { .. } if req.policy.dry_run => {}
        LockDecision::Acquire { mut record } => {
            record.holder_arn = execution_arn(state_machine_arn, name);
            if let LockAcquired::HeldBy(other) = lock.acquire(&record, now).await? {
                return Ok(StartOutcome::Locked {
                    holder: other.map_or_else(|| "another execution".into(), |o| o.holder),
                });
            }
        }
    }
    let input = serde_json::to_string(req).map_err(|e| PortError::Invalid {
        op: "states:StartExecution".into(),
        detail: e.to_string(),
    })?;
    let arn = match sfn.start_execution(state_machine_arn, name, &input).await {
        Ok(arn) => arn,
        Err(e) => {
            lock.release(&key, name).await?;
            return Err(e);
        }
    };
    // The same name and input as a finished execution answers with that execution.
    if let Some(info) = sfn.describe_execution(&arn).await?
        && info.status != ExecutionStatus::Running
    {
        lock.release(&key, name).await?;
        return Ok(StartOutcome::AlreadyRan {
            execution_arn: arn,
            status: info.status,
        });
    }
    tracing::info!(execution = %name, execution_arn = %arn, cluster = %cluster_arn, "migration started");
    Ok(StartOutcome::Started { execution_arn: arn })
}

#[cfg(test)]
mod tests;
