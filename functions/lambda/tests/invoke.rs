//! The harness around a real step handler, over the stateful fakes: what reaches Step Functions
//! for a good input, a bad one, and a failing step.

use std::cell::Cell;

use ngm_core::model::Timestamp;
use ngm_core::ports::PortError;
use ngm_core::state::{MigrationState, Phase};
use ngm_lambda::{Step, invoke};
use ngm_steps::fakes::{FakeCloud, deployment, managed_group};
use ngm_steps::steps::validate_and_plan;
use ngm_steps::{StepError, World};
use serde_json::{Value, json};

const NOW: Timestamp = Timestamp(1_767_225_600);

fn cloud() -> FakeCloud {
    let f = FakeCloud::new();
    f.add_cluster("prod")
        .add_managed_group(managed_group("ng-a", "m5.large", 2))
        .add_workload(deployment("default", "web", 2));
    f.reconcile();
    f
}

fn start(region: &str) -> Value {
    json!({
        "execution": {"name": "exec-1", "startedAt": "2026-01-01T00:00:00Z"},
        "request": {
            "cluster": {"name": "prod", "region": region},
            "source": {"managedNodeGroup": "ng-a"},
            "target": {"instanceTypes": ["c5.xlarge"]},
            "policy": {"dryRun": true},
        },
    })
}

async fn run_first(
    f: &FakeCloud,
    payload: Value,
    built: &Cell<u32>,
) -> Result<Value, lambda_runtime::Diagnostic> {
    let step = Step::first("validate-and-plan", validate_and_plan);
    invoke(&step, "req-1", payload, NOW, async |_: &MigrationState| {
        built.set(built.get() + 1);
        Ok::<World, StepError>(f.world())
    })
    .await
}

#[tokio::test]
async fn a_start_envelope_runs_the_first_step_and_returns_the_new_state() {
    let f = cloud();
    let built = Cell::new(0);
    let out = run_first(&f, start("eu-west-1"), &built)
        .await
        .unwrap_or_else(|d| panic!("{}: {}", d.error_type, d.error_message));
    let state: MigrationState =
        serde_json::from_value(out).unwrap_or_else(|e| panic!("output is not a state: {e}"));
    assert_eq!(state.phase, Phase::DryRunDone);
    assert_eq!(state.execution.name, "exec-1");
    assert_eq!(built.get(), 1);
    assert!(f.mutations().is_empty(), "{:?}", f.mutations());
}

#[tokio::test]
async fn a_bad_request_is_refused_before_any_client_is_built() {
    let f = cloud();
    let built = Cell::new(0);
    let d = run_first(&f, start("not-a-region"), &built)
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(d.error_type, "InvalidRequest");
    assert_eq!(built.get(), 0);
    assert!(f.calls().is_empty(), "{:?}", f.calls());
}

#[tokio::test]
async fn a_step_error_leaves_with_its_stable_name_not_a_type_name() {
    let f = cloud();
    f.fail_next(
        "describe_cluster",
        PortError::Throttled {
            op: "DescribeCluster".into(),
        },
    );
    let d = run_first(&f, start("eu-west-1"), &Cell::new(0))
        .await
        .err()
        .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(d.error_type, "Throttled");
    assert_eq!(
        d.error_message,
        "validate-and-plan: DescribeCluster was throttled"
    );
}

#[tokio::test]
async fn a_world_that_cannot_be_built_is_reported_by_name() {
    let step = Step::first("validate-and-plan", validate_and_plan);
    let d = invoke(
        &step,
        "req-1",
        start("eu-west-1"),
        NOW,
        async |_: &MigrationState| {
            Err::<World, StepError>(StepError::ClusterNotFound {
                cluster: "prod".into(),
            })
        },
    )
    .await
    .err()
    .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(d.error_type, "ClusterNotFound");
}

/// A step that changes nothing, to watch what the harness does around it.
async fn unchanged(
    s: MigrationState,
    _: &World,
    _: Timestamp,
) -> Result<MigrationState, StepError> {
    Ok(s)
}

#[tokio::test]
async fn every_step_renews_the_lock_with_its_state_and_fails_with_lock_lost_once_it_is_gone() {
    let f = cloud();
    let mut env = start("eu-west-1");
    env["request"]["policy"]["dryRun"] = json!(false);
    let taken = run_first(&f, env, &Cell::new(0))
        .await
        .unwrap_or_else(|d| panic!("{}: {}", d.error_type, d.error_message));
    let key = ngm_steps::fakes::cluster_arn("prod");
    let stored = f.snapshot().locks.get(&key).and_then(|r| r.state.clone());
    let stored: Option<Value> = stored.and_then(|s| serde_json::from_str(&s).ok());
    assert_eq!(
        stored.as_ref(),
        Some(&taken),
        "the lock holds the state returned"
    );

    let step = Step::new("freeze", unchanged);
    let later = Timestamp(NOW.0 + 600);
    let out = invoke(
        &step,
        "req-2",
        taken.clone(),
        later,
        async |_: &MigrationState| Ok::<World, StepError>(f.world()),
    )
    .await
    .unwrap_or_else(|d| panic!("{}: {}", d.error_type, d.error_message));
    let renewed = f.snapshot().locks.get(&key).map(|r| r.lease_until);
    assert!(
        renewed > Some(later),
        "lease renewed past {later:?}: {renewed:?}"
    );
    assert_eq!(out, taken);

    // Someone else holds the lock now: the step's answer is LockLost, naming them.
    f.edit(|s| {
        if let Some(r) = s.locks.get_mut(&key) {
            r.holder = "exec-2".into();
        }
    });
    let d = invoke(&step, "req-3", taken, later, async |_: &MigrationState| {
        Ok::<World, StepError>(f.world())
    })
    .await
    .err()
    .unwrap_or_else(|| panic!("accepted"));
    assert_eq!(d.error_type, "LockLost");
    assert!(d.error_message.contains("exec-2"), "{}", d.error_message);
}
