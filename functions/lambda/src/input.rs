//! The event a function receives, turned into a `MigrationState` before anything is touched,
//! and step errors turned into the `Diagnostic` whose `error_type` the state machine matches.
//!
//! Three shapes arrive:
//! - a `MigrationState`, from the previous state;
//! - for validate-and-plan, the start envelope the first state builds from the execution input
//!   and the context object: `{"execution": {name, arn, startedAt}, "request": {...}}`;
//! - for rollback, a state carrying `caught`, the error output a Catch put at `$.caught`
//!   (`{"Error", "Cause"}`); it becomes the state's `failure`.

use lambda_runtime::Diagnostic;
use ngm_core::model::Timestamp;
use ngm_core::request::check_request;
use ngm_core::state::{ExecutionRef, Failure, MigrationState};
use ngm_steps::StepError;
use serde::Deserialize;
use serde_json::Value;

/// Where the state machine's Catch puts the error output (`ResultPath`).
pub const CAUGHT_KEY: &str = "caught";

/// What a function accepts besides a plain state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    State,
    /// The start envelope too (validate-and-plan).
    StateOrStart,
    /// A state with the Catch's `caught` (rollback).
    StateOrCaught,
}

/// The Lambda error for a step error: `error_type` is the stable name Retry and Catch match,
/// and the message starts with the step, so a rollback can say which step failed.
pub fn diagnostic(step: &str, err: &StepError) -> Diagnostic {
    Diagnostic {
        error_type: err.error_type().to_string(),
        error_message: format!("{step}: {err}"),
    }
}

fn invalid_state(step: &'static str, reason: String) -> Diagnostic {
    diagnostic(step, &StepError::InvalidState { step, reason })
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StartExecution {
    name: String,
    #[serde(default)]
    arn: Option<String>,
    /// `$$.Execution.StartTime` (RFC 3339) or Unix seconds.
    #[serde(default)]
    started_at: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartEnvelope {
    execution: StartExecution,
    request: Value,
}

#[derive(Deserialize)]
struct Caught {
    #[serde(rename = "Error", default)]
    error: String,
    #[serde(rename = "Cause", default)]
    cause: String,
}

/// A Lambda error's `Cause` as Step Functions reports it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LambdaCause {
    error_message: String,
}

fn started_at(v: Option<&Value>, now: Timestamp) -> Result<Timestamp, String> {
    match v {
        None | Some(Value::Null) => Ok(now),
        Some(Value::Number(n)) => n
            .as_i64()
            .map(Timestamp)
            .ok_or_else(|| format!("execution.startedAt {n} is not whole seconds")),
        Some(Value::String(s)) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| Timestamp(t.timestamp()))
            .map_err(|e| format!("execution.startedAt {s:?} is not RFC 3339: {e}")),
        Some(other) => Err(format!("execution.startedAt {other} is not a time")),
    }
}

fn from_start(
    step: &'static str,
    payload: Value,
    now: Timestamp,
) -> Result<MigrationState, Diagnostic> {
    let env: StartEnvelope = serde_json::from_value(payload)
        .map_err(|e| invalid_state(step, format!("the start envelope is malformed: {e}")))?;
    let request = check_request(&env.request.to_string())
        .map_err(|errors| diagnostic(step, &StepError::InvalidRequest { errors }))?;
    let started_at =
        started_at(env.execution.started_at.as_ref(), now).map_err(|r| invalid_state(step, r))?;
    Ok(MigrationState::new(
        ExecutionRef {
            name: env.execution.name,
            arn: env.execution.arn,
            started_at,
        },
        request,
    ))
}

/// The failure a Catch recorded. A step's message starts with `step: `; a Lambda service
/// error's does not, so its step is unknown.
fn failure_from(caught: Caught) -> Failure {
    let message = serde_json::from_str::<LambdaCause>(&caught.cause)
        .map_or(caught.cause, |c| c.error_message);
    let (step, message) = match message.split_once(": ") {
        Some((s, rest)) if is_step_name(s) => (s.to_string(), rest.to_string()),
        _ => ("unknown".to_string(), message),
    };
    Failure {
        step,
        error: caught.error,
        message,
    }
}

fn is_step_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
}

/// Decodes the event for `step`. A malformed event is `InvalidState`, a bad request
/// `InvalidRequest`; either is reported before any client is built.
pub fn decode(
    step: &'static str,
    accepts: Accepts,
    mut payload: Value,
    now: Timestamp,
) -> Result<MigrationState, Diagnostic> {
    let Some(obj) = payload.as_object_mut() else {
        return Err(invalid_state(step, "the input is not a JSON object".into()));
    };
    if accepts == Accepts::StateOrStart && !obj.contains_key("schemaVersion") {
        return from_start(step, payload, now);
    }
    let caught = match (accepts, obj.remove(CAUGHT_KEY)) {
        (Accepts::StateOrCaught, Some(c)) => Some(
            serde_json::from_value::<Caught>(c)
                .map_err(|e| invalid_state(step, format!("{CAUGHT_KEY} is malformed: {e}")))?,
        ),
        (_, Some(_)) => {
            return Err(invalid_state(
                step,
                format!("{CAUGHT_KEY} is only accepted by rollback"),
            ));
        }
        (_, None) => None,
    };
    let mut state: MigrationState = serde_json::from_value(payload)
        .map_err(|e| invalid_state(step, format!("the input is not a MigrationState: {e}")))?;
    if state.schema_version != ngm_core::state::SCHEMA_VERSION {
        return Err(invalid_state(
            step,
            format!(
                "schemaVersion {} is not {}",
                state.schema_version,
                ngm_core::state::SCHEMA_VERSION
            ),
        ));
    }
    if let Some(c) = caught {
        // A rollback retried after its own pending round keeps the first failure.
        state.failure.get_or_insert_with(|| failure_from(c));
    }
    Ok(state)
}

#[cfg(test)]
mod tests;
