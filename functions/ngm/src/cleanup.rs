//! `ngm cleanup EXECUTION_ARN` and `ngm unlock CLUSTER`: what an operator runs after a
//! migration ended badly, by hand. `cleanup` starts the same cleanup state machine the
//! EventBridge rule starts (refusing while the execution is RUNNING); `unlock` deletes the
//! cluster's lock only once its holder's execution has ended, and otherwise says which
//! execution holds it.

use ngm_core::model::{ExecutionStatus, Timestamp};
use ngm_core::plan::lifecycle::lock_key;
use ngm_core::ports::{EksPort, LockPort, SfnPort};
use serde_json::json;

/// The cleanup state machine, when `--cleanup-machine` is not given (else derived from the
/// execution's ARN: the stack names its machines `STACK-migration` and `STACK-cleanup`).
pub const CLEANUP_MACHINE_VAR: &str = "NGM_CLEANUP_STATE_MACHINE_ARN";
/// The lock table, when `--lock-table` is not given.
pub const LOCK_TABLE_VAR: &str = "NGM_LOCK_TABLE";

/// `arn:...:execution:STACK-migration:NAME` gives `arn:...:stateMachine:STACK-cleanup`.
pub fn cleanup_machine_for(execution_arn: &str) -> Option<String> {
    let (head, rest) = execution_arn.split_once(":execution:")?;
    let (machine, _name) = rest.split_once(':')?;
    let stack = machine.strip_suffix("-migration")?;
    Some(format!("{head}:stateMachine:{stack}-cleanup"))
}

/// The cleanup execution's name: the same for every cleanup of one execution, so starting it
/// twice starts it once.
pub fn cleanup_name(execution_arn: &str) -> String {
    let name = execution_arn.rsplit_once(':').map_or("", |(_, n)| n);
    let mut out = format!("cleanup-{name}");
    if out.len() > 80 {
        let digest = ngm_core::hex_of([execution_arn]);
        out.truncate(80 - digest.len() - 1);
        out = format!("{out}-{digest}");
    }
    out
}

/// Starts the cleanup of `execution_arn` on `machine` (or the derived one).
pub async fn cleanup(
    sfn: &dyn SfnPort,
    execution_arn: &str,
    machine: Option<&str>,
) -> Result<String, String> {
    if !execution_arn.contains(":execution:") {
        return Err(format!("{execution_arn} is not an execution ARN"));
    }
    let info = sfn
        .describe_execution(execution_arn)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no execution {execution_arn}"))?;
    if info.status == ExecutionStatus::Running {
        return Err(format!(
            "execution {execution_arn} is still RUNNING; stop it first (aws stepfunctions stop-execution)"
        ));
    }
    let machine = match machine {
        Some(m) => m.to_string(),
        None => cleanup_machine_for(execution_arn).ok_or_else(|| {
            format!(
                "cannot derive the cleanup state machine from {execution_arn}: pass --cleanup-machine or set {CLEANUP_MACHINE_VAR}"
            )
        })?,
    };
    let input = json!({
        "executionArn": execution_arn,
        "status": status_name(info.status),
        "input": info.input.unwrap_or_default(),
    })
    .to_string();
    let started = sfn
        .start_execution(&machine, &cleanup_name(execution_arn), &input)
        .await
        .map_err(|e| e.to_string())?;
    Ok(started)
}

/// Deletes the lock of `cluster` (a name, looked up with DescribeCluster, or the cluster's
/// ARN) once its holder's execution has ended.
pub async fn unlock(
    lock: &dyn LockPort,
    sfn: &dyn SfnPort,
    eks: &dyn EksPort,
    cluster: &str,
    now: Timestamp,
) -> Result<String, String> {
    let arn = if cluster.starts_with("arn:") {
        cluster.to_string()
    } else {
        eks.describe_cluster(cluster)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("no cluster {cluster}"))?
            .arn
    };
    let key = lock_key(&arn);
    let Some(record) = lock.read(&key).await.map_err(|e| e.to_string())? else {
        return Ok(format!("{cluster} is not locked"));
    };
    let holder = format!(
        "{} ({})",
        record.holder,
        record
            .holder_arn
            .as_deref()
            .unwrap_or("no execution ARN recorded")
    );
    let ended = match &record.holder_arn {
        Some(a) => match sfn.describe_execution(a).await.map_err(|e| e.to_string())? {
            Some(i) if i.status == ExecutionStatus::Running => false,
            Some(_) | None => true,
        },
        // Written before holder ARNs were kept: only the lease can tell.
        None => record.lease_until < now,
    };
    if !ended {
        return Err(format!(
            "{cluster} is locked by execution {holder}, which is still running; stop it (and let the cleanup run) instead"
        ));
    }
    if lock
        .release(&key, &record.holder)
        .await
        .map_err(|e| e.to_string())?
    {
        Ok(format!("released the lock of {cluster} held by {holder}"))
    } else {
        Err(format!(
            "the lock of {cluster} changed hands while unlocking; run ngm unlock again"
        ))
    }
}

/// The status as Step Functions and EventBridge spell it.
pub fn status_name(s: ExecutionStatus) -> &'static str {
    match s {
        ExecutionStatus::Running => "RUNNING",
        ExecutionStatus::Succeeded => "SUCCEEDED",
        ExecutionStatus::Failed => "FAILED",
        ExecutionStatus::TimedOut => "TIMED_OUT",
        ExecutionStatus::Aborted => "ABORTED",
        ExecutionStatus::PendingRedrive => "PENDING_REDRIVE",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cleanup_machine_sits_next_to_the_migration_machine() {
        assert_eq!(
            cleanup_machine_for("arn:aws:states:eu-west-1:1:execution:prod-ngm-migration:run-7"),
            Some("arn:aws:states:eu-west-1:1:stateMachine:prod-ngm-cleanup".into())
        );
        assert_eq!(
            cleanup_machine_for("arn:aws:states:eu-west-1:1:execution:other:run-7"),
            None
        );
    }

    #[test]
    fn a_cleanup_name_is_stable_and_fits_step_functions() {
        let arn = "arn:aws:states:eu-west-1:1:execution:s-migration:run-7";
        assert_eq!(cleanup_name(arn), "cleanup-run-7");
        let long = format!("{arn}{}", "x".repeat(90));
        let n = cleanup_name(&long);
        assert!(n.len() <= 80, "{n}");
        assert_eq!(n, cleanup_name(&long));
        assert_ne!(n, cleanup_name(&format!("{long}y")));
    }
}
