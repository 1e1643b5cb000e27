//! `GET /migrations/{id}`: DescribeExecution for the status and failure, the history's newest
//! events for the current step, and the last state output's counts for progress.

use ngm_core::state::MigrationState;
use serde_json::{Value, json};

use super::{Api, Response, error, port_error};

/// The execution ARN for a name (or an ARN given as is).
fn execution_arn(api: &Api, id: &str) -> Option<String> {
    if id.starts_with("arn:") {
        return Some(id.to_owned());
    }
    let (head, machine) = api.state_machine_arn.rsplit_once(":stateMachine:")?;
    Some(format!("{head}:execution:{machine}:{id}"))
}

/// Progress as an operator reads it, from a state output that is a `MigrationState`.
pub fn progress(output: Option<&str>) -> Value {
    let Some(state) = output.and_then(|o| serde_json::from_str::<MigrationState>(o).ok()) else {
        return Value::Null;
    };
    let c = &state.counts;
    json!({
        "phase": state.phase,
        "oldNodes": c.old_nodes,
        "newNodes": c.new_nodes,
        "nodesTainted": c.nodes_tainted,
        "nodesExcludedFromLoadBalancers": c.nodes_excluded_from_lb,
        "workloadsSurged": c.workloads_surged,
        "workloadsRetired": c.workloads_retired,
        "podsEvicted": c.pods_evicted,
        "pdbBlocks": c.pdb_blocks,
        "blocked": state.blocked,
        "failure": state.failure,
    })
}

pub(super) async fn get(api: &Api, id: &str) -> Response {
    let Some(arn) = execution_arn(api, id) else {
        return error(
            500,
            "Misconfigured",
            "the state machine ARN is not a state machine ARN",
        );
    };
    let info = match api.sfn.describe_execution(&arn).await {
        Ok(Some(i)) => i,
        Ok(None) => return error(404, "NotFound", format!("no migration {id}")),
        Err(e) => return port_error(&e),
    };
    let history = match api.history.progress(&arn).await {
        Ok(h) => h.unwrap_or_default(),
        Err(e) => return port_error(&e),
    };
    // A finished execution's output is the final state; otherwise the last state exited.
    let output = info.output.as_deref().or(history.last_output.as_deref());
    let failure = info
        .error
        .as_ref()
        .map(|e| json!({ "error": e, "cause": info.cause }));
    Response::json(
        200,
        json!({
            "executionArn": info.arn,
            "executionName": info.name,
            "status": info.status,
            "startedAt": info.started_at,
            "stoppedAt": info.stopped_at,
            "currentStep": history.current_step,
            "progress": progress(output),
            "failure": failure,
        }),
    )
}
