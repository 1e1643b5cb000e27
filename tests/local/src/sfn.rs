//! The Step Functions API the functions see in a local run (`AWS_ENDPOINT_URL_SFN`): enough of
//! it to answer `DescribeExecution` about the executions the runner knows, the migration (RUNNING
//! until it ends), its cleanup, and a scenario's other holder of the cluster lock, so the lock's
//! takeover rule ("not while the holder is RUNNING") meets the same answers it would in AWS.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

/// One execution as DescribeExecution reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct ExecutionInfo {
    pub name: String,
    pub state_machine_arn: String,
    /// RUNNING, SUCCEEDED, FAILED, TIMED_OUT or ABORTED.
    pub status: String,
    /// Unix seconds (simulated).
    pub start: f64,
    pub stop: Option<f64>,
    pub input: String,
}

/// The executions by ARN.
#[derive(Clone, Default)]
pub struct Executions(Arc<Mutex<BTreeMap<String, ExecutionInfo>>>);

impl Executions {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, ExecutionInfo>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn insert(&self, arn: &str, info: ExecutionInfo) {
        self.lock().insert(arn.to_string(), info);
    }

    /// Ends an execution with `status` at `stop`.
    pub fn end(&self, arn: &str, status: &str, stop: f64) {
        if let Some(e) = self.lock().get_mut(arn) {
            e.status = status.to_string();
            e.stop = Some(stop);
        }
    }

    pub fn describe(&self, arn: &str) -> Option<Value> {
        self.lock().get(arn).map(|e| {
            let mut v = json!({
                "executionArn": arn,
                "stateMachineArn": e.state_machine_arn,
                "name": e.name,
                "status": e.status,
                "startDate": e.start,
                "input": e.input,
            });
            if let Some(stop) = e.stop {
                v["stopDate"] = json!(stop);
            }
            v
        })
    }
}

fn reply(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(State(execs): State<Executions>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .trim_start_matches("AWSStepFunctions.")
        .to_string();
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    match target.as_str() {
        "DescribeExecution" => {
            let arn = req
                .get("executionArn")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match execs.describe(arn) {
                Some(v) => reply(StatusCode::OK, &v),
                None => reply(
                    StatusCode::BAD_REQUEST,
                    &json!({"__type": "ExecutionDoesNotExist", "message": format!("Execution Does Not Exist: '{arn}'")}),
                ),
            }
        }
        other => reply(
            StatusCode::BAD_REQUEST,
            &json!({"__type": "UnknownOperationException", "message": format!("{other} is not served by the local runner")}),
        ),
    }
}

/// Serves the API on 127.0.0.1; returns its URL.
pub async fn serve(execs: Executions) -> std::io::Result<(String, JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = Router::new().route("/", post(handle)).with_state(execs);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, task))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_execution_is_running_until_it_ends() {
        let e = Executions::default();
        e.insert(
            "arn:x",
            ExecutionInfo {
                name: "x".into(),
                state_machine_arn: "arn:sm".into(),
                status: "RUNNING".into(),
                start: 1.0,
                stop: None,
                input: "{}".into(),
            },
        );
        assert_eq!(e.describe("arn:x").unwrap_or_default()["status"], "RUNNING");
        e.end("arn:x", "ABORTED", 2.0);
        let d = e.describe("arn:x").unwrap_or_default();
        assert_eq!(
            (d["status"].clone(), d["stopDate"].clone()),
            (json!("ABORTED"), json!(2.0))
        );
        assert!(e.describe("arn:y").is_none());
    }
}
