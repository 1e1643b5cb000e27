//! `ngm approve` and `ngm abort` on the wire: a stand-in Step Functions endpoint records what
//! the CLI sends (moto accepts any task token, so it cannot tell a right call from a wrong one).

use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use serde_json::Value;

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

async fn record(
    State(seen): State<Seen>,
    headers: HeaderMap,
    body: Bytes,
) -> (StatusCode, &'static str) {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    seen.lock()
        .unwrap_or_else(|e| e.into_inner())
        .push((target, body));
    (StatusCode::OK, "{}")
}

async fn endpoint() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/", post(record))
        .with_state(seen.clone());
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
    assert!(seen[0].1["output"].is_string(), "{seen:?}");
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
