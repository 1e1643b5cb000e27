//! Injected Kubernetes faults answer as the real API server does, and what the real kube
//! client (kube-rs, which ngm uses) makes of them; every request is counted by caller
//! (`User-Agent`), `function:` rules hit one caller only, and every injected answer is logged.

use http::{HeaderName, HeaderValue};
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use ngm_twin::server::{ServerHandle, serve_local};
use ngm_twin::store::{FaultRule, Resource, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn twin() -> (Store, String, ServerHandle) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = Store::default();
    let (url, handle) = serve_local(store.clone()).await.expect("serve");
    store
        .create(Resource::Node, "", json!({ "metadata": { "name": "n1" } }))
        .expect("node");
    (store, url, handle)
}

/// A kube client as ngm builds one (no client-side retries), saying `User-Agent: agent`.
fn client(url: &str, agent: &str) -> kube::Client {
    let mut config = kube::Config::new(url.parse().expect("url"));
    config.default_retry = false;
    config.headers.push((
        HeaderName::from_static("user-agent"),
        HeaderValue::from_str(agent).expect("agent"),
    ));
    kube::Client::try_from(config).expect("client")
}

/// One raw `GET`: status line, headers (lower-cased names) and body.
async fn raw_get(url: &str, path: &str) -> (u16, Vec<(String, String)>, String) {
    let addr = url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(req.as_bytes()).await.expect("write");
    let mut resp = String::new();
    conn.read_to_string(&mut resp).await.expect("read");
    let (head, body) = resp.split_once("\r\n\r\n").expect("http response");
    let mut lines = head.lines();
    let code = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (code, headers, body.to_string())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// k8s.io/apiserver pkg/server/filters/maxinflight.go `tooManyRequests`: `Retry-After: 1` and
/// Go's `http.Error` text, "Too many requests, please try again later.", not a Status.
#[tokio::test]
async fn a_throttle_answers_as_the_max_in_flight_filter_in_plain_text_with_retry_after() {
    let (store, url, _h) = twin().await;
    store
        .faults()
        .add(FaultRule::new("get", "nodes", 429).times(1));
    let (code, headers, body) = raw_get(&url, "/api/v1/nodes/n1").await;
    assert_eq!(code, 429);
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(body, "Too many requests, please try again later.\n");
    assert!(
        serde_json::from_str::<Value>(&body).is_err(),
        "not a Status body"
    );
}

/// What kube-rs makes of that plain-text 429 (kube-client `handle_api_errors`): not a parsed
/// Status but one it reconstructs, with code 429, the text as the message and the reason
/// "Failed to parse error data". An adapter can read the code; `Retry-After` is not in the
/// error (a client layer has to take it from the response). An eviction blocked by a PDB is
/// a real Status (reason TooManyRequests, a DisruptionBudget cause), so the two differ.
#[tokio::test]
async fn the_kube_client_surfaces_the_plain_text_throttle_as_a_429_api_error() {
    let (store, url, _h) = twin().await;
    store
        .faults()
        .add(FaultRule::new("get", "nodes", 429).times(1));
    let nodes: Api<Node> = Api::all(client(&url, "ngm/taint"));
    match nodes.get("n1").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 429);
            assert_eq!(status.reason, "Failed to parse error data");
            assert_eq!(status.message, "Too many requests, please try again later.");
            assert!(status.details.is_none());
        }
        other => panic!("expected a 429 API error, got {other:?}"),
    }
    assert!(nodes.get("n1").await.is_ok(), "times: 1");
}

/// A 503 as k8s.io/apiserver pkg/server/filters/waitgroup.go answers while the API server
/// shuts down: Status `ServiceUnavailable` "apiserver is shutting down", `Retry-After: 1`;
/// a 500 as `apierrors.NewInternalError`: "Internal error occurred: ...", reason
/// InternalError. kube-rs parses both Status bodies.
#[tokio::test]
async fn server_errors_answer_status_bodies_as_the_api_server_does() {
    let (store, url, _h) = twin().await;
    store.faults().add(FaultRule::new("get", "nodes", 503));
    let (code, headers, body) = raw_get(&url, "/api/v1/nodes/n1").await;
    assert_eq!(code, 503);
    assert_eq!(header(&headers, "retry-after"), Some("1"));
    let status: Value = serde_json::from_str(&body).expect("a Status body");
    assert_eq!(status["reason"], "ServiceUnavailable");
    assert_eq!(status["message"], "apiserver is shutting down");

    store.faults().add(FaultRule::new("get", "nodes", 500));
    let nodes: Api<Node> = Api::all(client(&url, "ngm/taint"));
    match nodes.get("n1").await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 500);
            assert_eq!(status.reason, "InternalError");
            assert!(
                status.message.starts_with("Internal error occurred: "),
                "{}",
                status.message
            );
        }
        other => panic!("expected a 500 API error, got {other:?}"),
    }
}

/// C6: calls are counted by caller (`User-Agent: ngm/<function>`); a rule with `function`
/// fails that function's calls only, with `after` counted over that function's calls; the
/// report's log names the rule, the call, the caller and the code of each injected answer.
#[tokio::test]
async fn requests_are_counted_by_caller_and_function_rules_hit_only_their_function() {
    let (store, url, _h) = twin().await;
    store.faults().add(
        FaultRule::new("get", "nodes", 500)
            .after(1)
            .times(1)
            .function(Some("taint"))
            .labelled("faults[0] fail"),
    );
    let taint: Api<Node> = Api::all(client(&url, "ngm/taint"));
    let rollback: Api<Node> = Api::all(client(&url, "ngm/rollback"));
    assert!(rollback.get("n1").await.is_ok());
    assert!(taint.get("n1").await.is_ok(), "after: 1");
    assert!(rollback.get("n1").await.is_ok(), "another function");
    assert!(taint.get("n1").await.is_err(), "the rule fires");
    assert!(taint.get("n1").await.is_ok(), "times: 1");

    let by = store.requests().by_caller();
    assert_eq!(by["ngm/taint"]["get nodes"], 3);
    assert_eq!(by["ngm/rollback"]["get nodes"], 2);
    let injected = store.faults().injected().snapshot();
    assert_eq!(injected.len(), 1);
    let i = &injected[0];
    assert_eq!(
        (
            i.fault.as_str(),
            i.call.as_str(),
            i.caller.as_str(),
            i.code,
            i.count
        ),
        ("faults[0] fail", "get nodes", "ngm/taint", 500, 1)
    );
}

/// A scenario's `faultRate` on Kubernetes (with `function`) is installed with the other
/// Kubernetes faults and fails that function's calls, each one with one of its codes, named
/// in the injected-answers log by its place in the scenario.
#[tokio::test]
async fn a_scenario_fault_rate_fails_the_chosen_functions_calls_only() {
    let scenario = ngm_twin::scenario::Scenario::parse(
        r#"
name: rate
cluster:
  name: c
  nodeGroups:
    - { name: g, instanceTypes: [m5.large], zones: [us-west-2a], amiRelease: r, desiredSize: 1 }
faults:
  - { kind: faultRate, rate: 1.0, seed: 3, api: kubernetes, codes: [503, 429], function: retire }
"#,
    )
    .expect("scenario");
    let (store, url, _h) = twin().await;
    scenario.install_kubernetes_faults(&store);
    let retire: Api<Node> = Api::all(client(&url, "ngm/retire"));
    let drain: Api<Node> = Api::all(client(&url, "ngm/drain"));
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..20 {
        match retire.get("n1").await {
            Err(kube::Error::Api(s)) => {
                codes.insert(s.code);
            }
            other => panic!("rate 1.0 fails every call: {other:?}"),
        }
        assert!(drain.get("n1").await.is_ok(), "another function");
    }
    assert_eq!(codes, [429, 503].into_iter().collect());
    let injected = store.faults().injected();
    assert_eq!(injected.total(), 20);
    assert!(
        injected
            .snapshot()
            .iter()
            .all(|a| a.fault == "faults[0] faultRate" && a.caller == "ngm/retire")
    );
}
