//! Decoding: each input shape, and each malformed one refused with its name.

use serde_json::json;

use super::*;

const NOW: Timestamp = Timestamp(1_767_225_600);

fn request() -> Value {
    json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"managedNodeGroup": "ng-a"},
        "target": {"instanceTypes": ["c5.xlarge"]},
    })
}

fn start(request: Value) -> Value {
    json!({
        "execution": {
            "name": "exec-1",
            "arn": "arn:aws:states:eu-west-1:111122223333:execution:ngm:exec-1",
            "startedAt": "2026-01-01T00:00:10.123Z",
        },
        "request": request,
    })
}

fn state_json() -> Value {
    let s = decode(
        "validate-and-plan",
        Accepts::StateOrStart,
        start(request()),
        NOW,
    )
    .unwrap_or_else(|d| panic!("{}", d.error_message));
    serde_json::to_value(s).unwrap_or_else(|e| panic!("{e}"))
}

fn error_type(r: Result<MigrationState, Diagnostic>) -> String {
    match r {
        Ok(_) => "Ok".into(),
        Err(d) => d.error_type,
    }
}

#[test]
fn the_start_envelope_becomes_a_fresh_state_with_the_execution_start_time() {
    let s = decode(
        "validate-and-plan",
        Accepts::StateOrStart,
        start(request()),
        NOW,
    )
    .unwrap_or_else(|d| panic!("{}", d.error_message));
    assert_eq!(s.execution.name, "exec-1");
    assert_eq!(s.execution.started_at, Timestamp(1_767_225_610));
    assert_eq!(s.request.cluster.name, "prod");
    assert_eq!(s.source.name, "ng-a");
    assert_eq!(s.schema_version, ngm_core::state::SCHEMA_VERSION);
}

#[test]
fn a_start_without_a_start_time_starts_now() {
    let mut env = start(request());
    env["execution"]
        .as_object_mut()
        .map(|o| o.remove("startedAt"));
    let s = decode("validate-and-plan", Accepts::StateOrStart, env, NOW)
        .unwrap_or_else(|d| panic!("{}", d.error_message));
    assert_eq!(s.execution.started_at, NOW);
}

#[test]
fn an_invalid_request_is_named_invalid_request_with_every_field() {
    let mut bad = request();
    bad["cluster"]["region"] = json!("nowhere");
    bad["target"] = json!({"scaling": {"min": 0, "max": 0, "desired": 0}});
    let d = decode("validate-and-plan", Accepts::StateOrStart, start(bad), NOW)
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(d.error_type, "InvalidRequest");
    assert!(
        d.error_message
            .starts_with("validate-and-plan: invalid request: ")
    );
    assert!(
        d.error_message.contains("cluster.region"),
        "{}",
        d.error_message
    );
}

#[test]
fn an_unknown_request_field_is_an_invalid_request() {
    let mut bad = request();
    bad["surprise"] = json!(1);
    let r = decode("validate-and-plan", Accepts::StateOrStart, start(bad), NOW);
    assert_eq!(error_type(r), "InvalidRequest");
}

#[test]
fn a_later_step_refuses_the_start_envelope_as_an_invalid_state() {
    let r = decode("drain", Accepts::State, start(request()), NOW);
    assert_eq!(error_type(r), "InvalidState");
}

#[test]
fn a_state_round_trips_through_every_step_kind() {
    for accepts in [
        Accepts::State,
        Accepts::StateOrStart,
        Accepts::StateOrCaught,
    ] {
        let s = decode("x", accepts, state_json(), NOW)
            .unwrap_or_else(|d| panic!("{accepts:?}: {}", d.error_message));
        assert_eq!(serde_json::to_value(&s).ok(), Some(state_json()));
    }
}

#[test]
fn non_objects_unknown_fields_and_other_schema_versions_are_invalid_states() {
    let mut unknown = state_json();
    unknown["extra"] = json!(true);
    let mut version = state_json();
    version["schemaVersion"] = json!(99);
    for bad in [json!([1]), json!("x"), unknown, version] {
        let r = decode("drain", Accepts::State, bad.clone(), NOW);
        assert_eq!(error_type(r), "InvalidState", "{bad}");
    }
}

#[test]
fn caught_is_accepted_by_rollback_only() {
    let mut s = state_json();
    s[CAUGHT_KEY] = json!({"Error": "Unexpected", "Cause": "boom"});
    assert_eq!(
        error_type(decode("drain", Accepts::State, s.clone(), NOW)),
        "InvalidState"
    );
    assert_eq!(
        error_type(decode("rollback", Accepts::StateOrCaught, s, NOW)),
        "Ok"
    );
}

#[test]
fn a_caught_lambda_error_becomes_the_failure_with_its_step() {
    let mut s = state_json();
    let cause = json!({
        "errorType": "DeadlineExceeded",
        "errorMessage": "check-surge: the surge did not happen before the deadline: 2 pods pending",
    });
    s[CAUGHT_KEY] = json!({"Error": "DeadlineExceeded", "Cause": cause.to_string()});
    let st = decode("rollback", Accepts::StateOrCaught, s, NOW)
        .unwrap_or_else(|d| panic!("{}", d.error_message));
    assert_eq!(
        st.failure,
        Some(Failure {
            step: "check-surge".into(),
            error: "DeadlineExceeded".into(),
            message: "the surge did not happen before the deadline: 2 pods pending".into(),
        })
    );
}

#[test]
fn a_caught_service_error_keeps_its_cause_and_an_unknown_step() {
    let mut s = state_json();
    s[CAUGHT_KEY] = json!({"Error": "States.Timeout", "Cause": "Task timed out"});
    let st = decode("rollback", Accepts::StateOrCaught, s, NOW)
        .unwrap_or_else(|d| panic!("{}", d.error_message));
    let f = st.failure.unwrap_or_else(|| panic!("no failure"));
    assert_eq!(
        (f.step.as_str(), f.error.as_str(), f.message.as_str()),
        ("unknown", "States.Timeout", "Task timed out")
    );
}

#[test]
fn a_rollback_round_keeps_the_first_failure() {
    let mut s = state_json();
    s["failure"] = json!({"step": "drain", "error": "PdbBlocked", "message": "first"});
    s[CAUGHT_KEY] = json!({"Error": "Unexpected", "Cause": "second"});
    let st = decode("rollback", Accepts::StateOrCaught, s, NOW)
        .unwrap_or_else(|d| panic!("{}", d.error_message));
    assert_eq!(st.failure.map(|f| f.message), Some("first".to_string()));
}

#[test]
fn a_step_error_keeps_its_stable_name_and_says_which_step() {
    let d = diagnostic(
        "drain",
        &StepError::Throttled {
            op: "ListPods".into(),
        },
    );
    assert_eq!(d.error_type, "Throttled");
    assert_eq!(d.error_message, "drain: ListPods was throttled");
}
