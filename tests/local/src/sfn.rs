//! The Step Functions API the functions see in a local run (`AWS_ENDPOINT_URL_SFN`): enough of
//! it to answer `DescribeExecution` about the executions the runner knows, the migration (RUNNING
//! until it ends), its cleanup, and a scenario's other holder of the cluster lock, so the lock's
//! takeover rule ("not while the holder is RUNNING") meets the same answers it would in AWS;
//! and `StartExecution` of the machines the runner accepts starts for (the AMI watcher's), with
//! AWS's idempotency: the same name and input as a RUNNING execution answers that execution,
//! anything else under a taken name is `ExecutionAlreadyExists`. A started execution is only
//! recorded RUNNING here; the runner takes it ([`Executions::take_started`]) and drives it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use ngm_twin::clock::Clock;
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

/// Why StartExecution refused: the error code AWS answers with, and its message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

fn refuse(code: &'static str, message: String) -> Refusal {
    Refusal { code, message }
}

#[derive(Default)]
struct Book {
    by_arn: BTreeMap<String, ExecutionInfo>,
    /// The state machines StartExecution may start, and the clock their start dates are on.
    machines: BTreeSet<String>,
    clock: Option<Clock>,
    /// ARNs StartExecution started, in order, not yet taken by the runner.
    started: Vec<String>,
}

/// The executions by ARN.
#[derive(Clone, Default)]
pub struct Executions(Arc<Mutex<Book>>);

/// The characters StartExecution refuses in a name (API reference, StartExecution `name`:
/// whitespace, brackets `<>{}[]`, wildcards `?*`, the special characters of this string and
/// control characters).
fn bad_name_char(c: char) -> bool {
    c.is_whitespace() || c.is_control() || "<>{}[]?*\"#%\\^|~`$&,;:/".contains(c)
}

impl Executions {
    fn lock(&self) -> std::sync::MutexGuard<'_, Book> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn insert(&self, arn: &str, info: ExecutionInfo) {
        self.lock().by_arn.insert(arn.to_string(), info);
    }

    /// Ends an execution with `status` at `stop`.
    pub fn end(&self, arn: &str, status: &str, stop: f64) {
        if let Some(e) = self.lock().by_arn.get_mut(arn) {
            e.status = status.to_string();
            e.stop = Some(stop);
        }
    }

    /// The simulated seconds from the first start to the last stop of the executions of
    /// `state_machine_arn` that started at or after `since` (Unix seconds); `None` while one
    /// has not ended or none started.
    pub fn span(&self, state_machine_arn: &str, since: f64) -> Option<f64> {
        let book = self.lock();
        let runs: Vec<&ExecutionInfo> = book
            .by_arn
            .values()
            .filter(|e| e.state_machine_arn == state_machine_arn && e.start >= since)
            .collect();
        let first = runs.iter().map(|e| e.start).reduce(f64::min)?;
        let last = runs
            .iter()
            .map(|e| e.stop)
            .collect::<Option<Vec<f64>>>()?
            .into_iter()
            .reduce(f64::max)?;
        Some(last - first)
    }

    /// Lets StartExecution start `state_machine_arn`, dating its starts by `clock`.
    pub fn accept_starts(&self, state_machine_arn: &str, clock: Clock) {
        let mut book = self.lock();
        book.machines.insert(state_machine_arn.to_string());
        book.clock = Some(clock);
    }

    /// StartExecution: the execution's ARN and start date (Unix seconds), or AWS's refusal.
    pub fn start(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: Option<&str>,
    ) -> Result<(String, f64), Refusal> {
        let mut book = self.lock();
        if !book.machines.contains(state_machine_arn) {
            return Err(refuse(
                "StateMachineDoesNotExist",
                format!("State Machine Does Not Exist: '{state_machine_arn}'"),
            ));
        }
        if name.is_empty() || name.chars().count() > 80 || name.chars().any(bad_name_char) {
            return Err(refuse("InvalidName", format!("Invalid Name: '{name}'")));
        }
        let input = input.unwrap_or("{}");
        if serde_json::from_str::<Value>(input).is_err() {
            return Err(refuse(
                "InvalidExecutionInput",
                "Invalid State Machine Execution Input: the input is not JSON".into(),
            ));
        }
        let arn =
            ngm_adapters::aws::sfn_execution_arn(state_machine_arn, name).ok_or_else(|| {
                refuse(
                    "InvalidArn",
                    format!("Invalid Arn: '{state_machine_arn}' is not a state machine ARN"),
                )
            })?;
        if let Some(e) = book.by_arn.get(&arn) {
            return if e.status == "RUNNING" && e.input == input {
                Ok((arn, e.start))
            } else {
                Err(refuse(
                    "ExecutionAlreadyExists",
                    format!("Execution Already Exists: '{arn}'"),
                ))
            };
        }
        #[allow(clippy::cast_precision_loss)]
        let start = book
            .clock
            .as_ref()
            .map_or(0.0, |c| c.now().timestamp_millis() as f64 / 1000.0);
        book.by_arn.insert(
            arn.clone(),
            ExecutionInfo {
                name: name.to_string(),
                state_machine_arn: state_machine_arn.to_string(),
                status: "RUNNING".into(),
                start,
                stop: None,
                input: input.to_string(),
            },
        );
        book.started.push(arn.clone());
        Ok((arn, start))
    }

    /// The executions StartExecution started since the last call, in order, by ARN.
    pub fn take_started(&self) -> Vec<(String, ExecutionInfo)> {
        let mut book = self.lock();
        let arns = std::mem::take(&mut book.started);
        arns.into_iter()
            .filter_map(|a| book.by_arn.get(&a).cloned().map(|e| (a, e)))
            .collect()
    }

    pub fn describe(&self, arn: &str) -> Option<Value> {
        self.lock().by_arn.get(arn).map(|e| {
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
        "StartExecution" => {
            let text = |k: &str| req.get(k).and_then(Value::as_str);
            // Without a name, AWS makes one up (a UUID); the runner's counter does.
            let generated;
            let name = match text("name") {
                Some(n) => n,
                None => {
                    generated = format!("{:032x}", execs.lock().by_arn.len() + 1);
                    generated.as_str()
                }
            };
            match execs.start(
                text("stateMachineArn").unwrap_or_default(),
                name,
                text("input"),
            ) {
                Ok((arn, start)) => reply(
                    StatusCode::OK,
                    &json!({"executionArn": arn, "startDate": start}),
                ),
                Err(r) => reply(
                    StatusCode::BAD_REQUEST,
                    &json!({"__type": r.code, "message": r.message}),
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

    const MACHINE: &str = "arn:aws:states:us-west-2:000000000000:stateMachine:ngm-migration";
    const EXECUTION: &str = "arn:aws:states:us-west-2:000000000000:execution:ngm-migration:ami-1";

    fn accepting() -> Executions {
        let e = Executions::default();
        e.accept_starts(MACHINE, Clock::manual_default());
        e
    }

    #[test]
    fn a_start_is_recorded_running_on_the_twins_clock_and_taken_once() {
        let e = accepting();
        let (arn, start) = e
            .start(MACHINE, "ami-1", Some(r#"{"a":1}"#))
            .unwrap_or_else(|r| panic!("{r:?}"));
        assert_eq!(arn, EXECUTION);
        assert!((start - 1_767_225_600.0).abs() < f64::EPSILON, "{start}");
        let d = e.describe(EXECUTION).unwrap_or_default();
        assert_eq!(
            (d["status"].clone(), d["input"].clone(), d["name"].clone()),
            (json!("RUNNING"), json!(r#"{"a":1}"#), json!("ami-1"))
        );
        let taken = e.take_started();
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].0, EXECUTION);
        assert!(e.take_started().is_empty());
    }

    // API reference, StartExecution: "if you call StartExecution with the same name and input
    // as a running execution, the call succeeds and return the same response as the original
    // request. If the execution is closed or if the input is different, it returns a 400
    // ExecutionAlreadyExists error."
    #[test]
    fn a_taken_name_answers_the_running_execution_only_for_the_same_input() {
        let e = accepting();
        let first = e.start(MACHINE, "ami-1", Some("{}"));
        assert_eq!(e.start(MACHINE, "ami-1", None), first);
        assert_eq!(e.take_started().len(), 1, "a repeat starts nothing");
        let other = e.start(MACHINE, "ami-1", Some(r#"{"b":2}"#));
        assert_eq!(other.map_err(|r| r.code), Err("ExecutionAlreadyExists"));
        e.end(EXECUTION, "SUCCEEDED", 2.0);
        let closed = e.start(MACHINE, "ami-1", Some("{}"));
        assert_eq!(closed.map_err(|r| r.code), Err("ExecutionAlreadyExists"));
    }

    #[test]
    fn an_unknown_machine_a_bad_name_or_input_is_refused() {
        let e = accepting();
        let code = |m: &str, n: &str, i: &str| e.start(m, n, Some(i)).map_err(|r| r.code);
        assert_eq!(
            code(
                "arn:aws:states:us-west-2:000000000000:stateMachine:other",
                "x",
                "{}"
            ),
            Err("StateMachineDoesNotExist")
        );
        assert_eq!(code(MACHINE, "a b", "{}"), Err("InvalidName"));
        assert_eq!(code(MACHINE, "a:b", "{}"), Err("InvalidName"));
        assert_eq!(code(MACHINE, &"n".repeat(81), "{}"), Err("InvalidName"));
        assert_eq!(
            code(MACHINE, "x", "{not json"),
            Err("InvalidExecutionInput")
        );
        assert!(e.take_started().is_empty());
        assert!(Executions::default().start(MACHINE, "x", None).is_err());
    }

    /// The served API through the adapter the watcher starts migrations with.
    async fn adapter(url: &str) -> ngm_adapters::aws::SfnAdapter {
        let conf = aws_config::SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-west-2"))
            .endpoint_url(url)
            .credentials_provider(
                aws_credential_types::provider::SharedCredentialsProvider::new(
                    aws_credential_types::Credentials::new("t", "t", None, None, "test"),
                ),
            )
            .build();
        ngm_adapters::aws::SfnAdapter::new(aws_sdk_sfn::Client::new(&conf))
    }

    #[tokio::test]
    async fn the_sfn_adapter_starts_repeats_and_is_refused_as_by_aws() {
        use ngm_core::model::ExecutionStatus;
        use ngm_core::ports::{PortError, SfnPort};
        let e = accepting();
        let (url, task) = serve(e.clone()).await.unwrap_or_else(|err| panic!("{err}"));
        let sfn = adapter(&url).await;
        let arn = sfn
            .start_execution(MACHINE, "ami-1", "{}")
            .await
            .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(arn, EXECUTION);
        let d = sfn.describe_execution(&arn).await.ok().flatten();
        assert_eq!(d.map(|d| d.status), Some(ExecutionStatus::Running));
        // A repeat while it runs, and after it ended (the adapter reads the ended execution's
        // input through DescribeExecution): the same execution.
        let again = sfn.start_execution(MACHINE, "ami-1", "{}").await;
        assert_eq!(again.ok().as_deref(), Some(EXECUTION));
        e.end(EXECUTION, "SUCCEEDED", 2.0);
        let after = sfn.start_execution(MACHINE, "ami-1", "{}").await;
        assert_eq!(after.ok().as_deref(), Some(EXECUTION));
        let d = sfn.describe_execution(EXECUTION).await.ok().flatten();
        assert_eq!(d.map(|d| d.status), Some(ExecutionStatus::Succeeded));
        let other = sfn.start_execution(MACHINE, "ami-1", r#"{"b":2}"#).await;
        assert!(
            matches!(other, Err(PortError::Conflict { .. })),
            "{other:?}"
        );
        assert_eq!(e.take_started().len(), 1);
        task.abort();
    }
}
