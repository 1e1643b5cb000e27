//! `ngm approve` and `ngm abort` on the wire: a stand-in Step Functions endpoint records what
//! the CLI sends (moto accepts any task token, so it cannot tell a right call from a wrong one)
//! and answers GetExecutionHistory with a canned history, from which `approve` takes the token.

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::{Value, json};

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

#[derive(Clone, Default)]
struct Stand {
    seen: Seen,
    /// The GetExecutionHistory answer.
    history: Arc<Value>,
}

async fn record(
    State(stand): State<Stand>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, String) {
    let seen = stand.seen;
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let answer = if target == "AWSStepFunctions.GetExecutionHistory" {
        stand.history.to_string()
    } else {
        "{}".to_string()
    };
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((target, body));
    (StatusCode::OK, answer)
}

async fn endpoint() -> (String, Seen) {
    endpoint_with(json!({"events": []})).await
}

async fn endpoint_with(history: Value) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let stand = Stand {
        seen: seen.clone(),
        history: Arc::new(history),
    };
    let app = Router::new().route("/", post(record)).with_state(stand);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

async fn ngm(url: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ngm"));
    cmd.args(args)
        .env("AWS_ENDPOINT_URL_SFN", url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing");
    tokio::task::spawn_blocking(move || cmd.output().expect("ngm runs"))
        .await
        .expect("join")
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_sends_task_success_for_the_token() {
    let (url, seen) = endpoint().await;
    let out = ngm(&url, &["approve", "tok-123"]).await;
    assert!(out.status.success(), "{out:?}");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "AWSStepFunctions.SendTaskSuccess");
    assert_eq!(seen[0].1["taskToken"], "tok-123");
    // Without --action the answer is a retry, in the shape the state machine keeps.
    let output: Value =
        serde_json::from_str(seen[0].1["output"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(output["action"], "retry", "{seen:?}");
}

const EXECUTION: &str = "arn:aws:states:us-east-1:111122223333:execution:ngm-migration:run-1";

/// A history, newest first as `reverseOrder` asks, of an execution waiting in AwaitOperator
/// (`exited`: it has left that state since).
fn history(exited: bool) -> Value {
    let params = json!({"Entries": [{"EventBusName": "ngm", "Source": "ngm",
        "DetailType": "ngm.drain.pdbBlocked",
        "Detail": {"taskToken": "tok-from-history", "execution": EXECUTION,
                   "blocked": {"pod": "shop/db-2"}}}]});
    let mut events = vec![];
    if exited {
        events.push(
            json!({"id": 12, "timestamp": 1.7e9, "type": "TaskStateExited",
            "stateExitedEventDetails": {"name": "AwaitOperator", "output": "{}"}}),
        );
    }
    events.push(
        json!({"id": 11, "timestamp": 1.7e9, "type": "TaskScheduled",
        "taskScheduledEventDetails": {"resourceType": "events",
            "resource": "putEvents.waitForTaskToken", "region": "us-east-1",
            "parameters": params.to_string()}}),
    );
    events.push(
        json!({"id": 10, "timestamp": 1.7e9, "type": "TaskStateEntered",
        "stateEnteredEventDetails": {"name": "AwaitOperator", "input": "{}"}}),
    );
    json!({ "events": events })
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_finds_the_token_of_the_executions_operator_wait_and_sends_the_answer() {
    let (url, seen) = endpoint_with(history(false)).await;
    let out = ngm(
        &url,
        &[
            "approve",
            EXECUTION,
            "--action",
            "force",
            "--pod",
            "shop/db-2",
            "--by",
            "alice",
        ],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].0, "AWSStepFunctions.GetExecutionHistory");
    assert_eq!(seen[0].1["executionArn"], EXECUTION);
    assert_eq!(seen[0].1["reverseOrder"], true);
    assert_eq!(seen[1].0, "AWSStepFunctions.SendTaskSuccess");
    assert_eq!(seen[1].1["taskToken"], "tok-from-history");
    let output: Value =
        serde_json::from_str(seen[1].1["output"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(
        output,
        json!({"action": "force", "pod": "shop/db-2", "by": "alice"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_rollback_sends_rollback() {
    let (url, seen) = endpoint_with(history(false)).await;
    let out = ngm(
        &url,
        &["approve", EXECUTION, "--action", "rollback", "--by", "bob"],
    )
    .await;
    assert!(out.status.success(), "{out:?}");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let output: Value =
        serde_json::from_str(seen[1].1["output"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(output, json!({"action": "rollback", "by": "bob"}));
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_refuses_an_execution_no_longer_waiting_and_sends_nothing() {
    let (url, seen) = endpoint_with(history(true)).await;
    let out = ngm(&url, &["approve", EXECUTION, "--action", "retry"]).await;
    assert!(!out.status.success(), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is not waiting for an operator"), "{err}");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert!(
        seen.iter()
            .all(|(t, _)| t != "AWSStepFunctions.SendTaskSuccess"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_refuses_a_pod_without_force_or_not_namespaced_before_any_call() {
    let (url, seen) = endpoint_with(history(false)).await;
    for args in [
        [
            "approve",
            EXECUTION,
            "--action",
            "retry",
            "--pod",
            "shop/db-2",
        ],
        ["approve", EXECUTION, "--action", "force", "--pod", "db-2"],
    ] {
        let out = ngm(&url, &args).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
    }
    assert!(seen.lock().unwrap_or_else(|e| e.into_inner()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn abort_sends_task_failure_with_the_operators_reason() {
    let (url, seen) = endpoint().await;
    let out = ngm(&url, &["abort", "tok-456", "--reason", "PDB owner says no"]).await;
    assert!(out.status.success(), "{out:?}");
    let seen = seen.lock().unwrap_or_else(|e| e.into_inner()).clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].0, "AWSStepFunctions.SendTaskFailure");
    assert_eq!(seen[0].1["taskToken"], "tok-456");
    assert_eq!(seen[0].1["error"], "OperatorAborted");
    assert_eq!(seen[0].1["cause"], "PDB owner says no");
}
