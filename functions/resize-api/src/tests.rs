use std::sync::Arc;

use async_trait::async_trait;
use ngm_core::model::{ExecutionStatus, Timestamp};
use ngm_core::ports::{EksPort, ExecutionProgress, PortResult, SfnHistoryPort};
use ngm_steps::fakes::FakeCloud;
use serde_json::json;

use super::*;

const SM: &str = "arn:aws:states:eu-west-1:111122223333:stateMachine:ngm";
const T0: Timestamp = Timestamp(1_700_000_000);

struct History(Option<ExecutionProgress>);

#[async_trait]
impl SfnHistoryPort for History {
    async fn progress(&self, _arn: &str) -> PortResult<Option<ExecutionProgress>> {
        Ok(self.0.clone())
    }
}

fn api(f: &FakeCloud, history: Option<ExecutionProgress>) -> Api {
    let eks = f.clone();
    Api {
        eks_for: Arc::new(move |_| Arc::new(eks.clone()) as Arc<dyn EksPort>),
        lock: Arc::new(f.clone()),
        sfn: Arc::new(f.clone()),
        history: Arc::new(History(history)),
        state_machine_arn: SM.into(),
    }
}

fn cloud() -> FakeCloud {
    let f = FakeCloud::new();
    f.add_cluster("prod");
    f
}

fn post(body: serde_json::Value, request_id: &str) -> Request {
    Request {
        method: "POST".into(),
        path: "/migrations".into(),
        body: Some(body.to_string()),
        request_id: request_id.into(),
        idempotency_key: None,
    }
}

fn resize() -> serde_json::Value {
    json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"managedNodeGroup": "ng-a"},
        "target": {"instanceTypes": ["m7g.large"]},
    })
}

#[test]
fn routes_answer_404_for_unknown_paths_and_405_for_other_methods() {
    assert_eq!(route("POST", "/migrations"), Route::Create);
    assert_eq!(route("POST", "/migrations/"), Route::Create);
    assert_eq!(
        route("GET", "/migrations/run-1"),
        Route::Get { id: "run-1".into() }
    );
    assert_eq!(
        route("GET", "/migrations"),
        Route::MethodNotAllowed { allow: "POST" }
    );
    assert_eq!(
        route("DELETE", "/migrations/run-1"),
        Route::MethodNotAllowed { allow: "GET" }
    );
    assert_eq!(route("GET", "/"), Route::NotFound);
    assert_eq!(route("GET", "/migrations/a/b"), Route::NotFound);
}

#[tokio::test]
async fn a_bad_body_lists_every_problem_with_its_field() {
    let f = cloud();
    let mut body = resize();
    body["target"]["scaling"] = json!({"min": 3, "max": 1, "desired": 9});
    body["policy"] = json!({"surgeFactor": 9.0});
    let r = handle(&api(&f, None), &post(body, "r1"), T0).await;
    assert_eq!(r.status, 400, "{}", r.body);
    let fields: Vec<&str> = r.body["errors"]
        .as_array()
        .map(|a| a.iter().filter_map(|e| e["field"].as_str()).collect())
        .unwrap_or_default();
    assert!(fields.len() >= 2, "{fields:?}");
    assert!(
        fields.iter().any(|f| f.starts_with("target.scaling")),
        "{fields:?}"
    );
    assert!(fields.contains(&"policy.surgeFactor"), "{fields:?}");
    assert!(f.snapshot().executions.is_empty());
}

#[tokio::test]
async fn unknown_fields_json_errors_and_unknown_clusters_are_400() {
    let f = cloud();
    for body in [
        json!({"cluster": {"name": "prod", "region": "eu-west-1"}, "source": {"managedNodeGroup": "a"}, "tagret": {}}),
        json!("not an object"),
        json!({"cluster": {"name": "nope", "region": "eu-west-1"}, "source": {"managedNodeGroup": "a"}}),
    ] {
        let r = handle(&api(&f, None), &post(body.clone(), "r1"), T0).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.body["errors"][0]["field"].is_string(), "{}", r.body);
    }
    let mut empty = post(json!({}), "r1");
    empty.body = None;
    assert_eq!(handle(&api(&f, None), &empty, T0).await.status, 400);
}

#[tokio::test]
async fn a_valid_resize_starts_once_and_a_second_while_locked_is_409() {
    let f = cloud();
    let a = api(&f, None);
    let first = handle(&a, &post(resize(), "r1"), T0).await;
    assert_eq!(first.status, 202, "{}", first.body);
    assert!(
        first.body["executionArn"]
            .as_str()
            .is_some_and(|s| s.starts_with("arn:aws:states:"))
    );
    let second = handle(&a, &post(resize(), "r2"), T0).await;
    assert_eq!(second.status, 409, "{}", second.body);
    assert_eq!(second.body["holder"], first.body["executionName"]);
    assert_eq!(f.snapshot().executions.len(), 1);
}

#[tokio::test]
async fn a_retry_with_the_same_idempotency_key_gets_the_same_execution() {
    let f = cloud();
    let a = api(&f, None);
    let mut req = post(resize(), "r1");
    req.idempotency_key = Some("k-1".into());
    let first = handle(&a, &req, T0).await;
    req.request_id = "r2".into();
    let again = handle(&a, &req, T0).await;
    assert_eq!(first.status, 202);
    assert_eq!(again, first);
}

#[tokio::test]
async fn status_reports_step_progress_and_failure() {
    let f = cloud();
    let started = handle(&api(&f, None), &post(resize(), "r1"), T0).await;
    let name = started.body["executionName"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let state = json!({
        "schemaVersion": 1,
        "execution": {"name": name, "startedAt": 1},
        "request": resize(),
        "phase": "drained",
        "source": {"name": "ng-a", "kind": "managed"},
        "counts": {"oldNodes": 3, "newNodes": 3, "nodesTainted": 3, "nodesExcludedFromLb": 3,
            "hpasFrozen": 0, "workloadsSurged": 2, "workloadsRetired": 2, "podsMarked": 4,
            "podsEvicted": 5, "podsSkipped": 1, "pdbBlocks": 0, "workloadsRestored": 0, "hpasRestored": 0},
    });
    f.edit(|w| {
        for e in &mut w.executions {
            e.status = ExecutionStatus::Failed;
            e.error = Some("PdbBlocked".into());
            e.cause = Some("web-1 is blocked".into());
        }
    });
    let history = ExecutionProgress {
        current_step: Some("Rollback".into()),
        last_output: Some(state.to_string()),
    };
    let get = Request {
        method: "GET".into(),
        path: format!("/migrations/{name}"),
        ..Request::default()
    };
    let r = handle(&api(&f, Some(history)), &get, T0).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], "FAILED");
    assert_eq!(r.body["currentStep"], "Rollback");
    assert_eq!(r.body["progress"]["podsEvicted"], 5);
    assert_eq!(r.body["progress"]["phase"], "drained");
    assert_eq!(r.body["failure"]["error"], "PdbBlocked");

    let missing = Request {
        path: "/migrations/nope".into(),
        ..get
    };
    assert_eq!(handle(&api(&f, None), &missing, T0).await.status, 404);
}

#[test]
fn a_405_carries_an_allow_header_and_a_json_body() {
    let r = to_event(&Response {
        status: 405,
        body: json!({"error": "MethodNotAllowed"}),
        allow: Some("GET"),
    });
    assert_eq!(r.status_code, 405);
    assert_eq!(
        r.headers.get("allow").and_then(|v| v.to_str().ok()),
        Some("GET")
    );
    assert_eq!(
        r.headers.get("content-type").and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
}
