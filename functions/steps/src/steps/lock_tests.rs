//! The per-cluster lock through the handlers: taken in validate-and-plan, refused while another
//! execution's lease is live, taken over once it has run out, and released by restore and
//! rollback only when this execution holds it.

use ngm_core::model::Timestamp;
use ngm_core::plan::lifecycle::STEP_WAITS_SECS;
use ngm_core::ports::LockRecord;
use ngm_core::request::parse_request;
use ngm_core::state::{ExecutionRef, MigrationState, Phase};

use super::*;
use crate::error::StepError;
use crate::fakes::{FakeCloud, cluster_arn, deployment, managed_group};

const T0: Timestamp = Timestamp(1_700_000_000);

fn scenario() -> FakeCloud {
    let f = FakeCloud::new();
    f.add_cluster("prod")
        .add_managed_group(managed_group("ng-a", "m5.large", 2))
        .add_workload(deployment("default", "web", 2));
    f.reconcile();
    f
}

fn state() -> MigrationState {
    let json = serde_json::json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"managedNodeGroup": "ng-a"},
        "target": {"instanceTypes": ["c5.xlarge"]},
    });
    let req = parse_request(&json.to_string()).unwrap_or_else(|e| panic!("fixture: {e:?}"));
    MigrationState::new(
        ExecutionRef {
            name: "exec-1".into(),
            arn: None,
            started_at: T0,
        },
        req,
    )
}

fn held_by(f: &FakeCloud, holder: &str, lease_until: Timestamp) {
    let key = cluster_arn("prod");
    f.edit(|w| {
        w.locks.insert(
            key.clone(),
            LockRecord {
                key,
                holder: holder.into(),
                holder_arn: None,
                acquired_at: T0,
                lease_until,
                state: None,
            },
        )
    });
}

fn holder(f: &FakeCloud) -> Option<String> {
    f.snapshot()
        .locks
        .get(&cluster_arn("prod"))
        .map(|l| l.holder.clone())
}

#[tokio::test]
async fn a_live_lease_of_another_execution_refuses_the_run_with_cluster_locked() {
    let f = scenario();
    held_by(&f, "other", T0.plus(60));
    let err = validate_and_plan(state(), &f.world(), T0).await.err();
    assert_eq!(
        err,
        Some(StepError::ClusterLocked {
            holder: "other".into()
        })
    );
    assert_eq!(holder(&f).as_deref(), Some("other"));
    assert!(!f.mutations().iter().any(|m| m.starts_with("lock_acquire")));
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_with_a_new_lease() {
    let f = scenario();
    held_by(&f, "crashed", T0);
    let now = T0.plus(1);
    let s = validate_and_plan(state(), &f.world(), now).await;
    assert_eq!(s.map(|s| s.phase).ok(), Some(Phase::Planned));
    let lock = f.snapshot().locks.get(&cluster_arn("prod")).cloned();
    assert_eq!(lock.as_ref().map(|l| l.holder.as_str()), Some("exec-1"));
    assert!(lock.is_some_and(|l| l.lease_until.secs_since(now) > STEP_WAITS_SECS));
}

#[tokio::test]
async fn the_same_execution_taking_the_lock_again_writes_nothing() {
    let f = scenario();
    let w = f.world();
    let first = validate_and_plan(state(), &w, T0).await.ok();
    assert!(first.is_some());
    let before = f.snapshot();
    f.clear_calls();
    let again = validate_and_plan(state(), &w, T0).await.ok();
    assert_eq!(again, first);
    assert_eq!(f.snapshot(), before);
    assert_eq!(f.mutations(), Vec::<String>::new());
}

#[tokio::test]
async fn a_lock_taken_by_the_api_for_this_execution_is_kept() {
    let f = scenario();
    held_by(&f, "exec-1", T0.plus(10 * 24 * 3600));
    let s = validate_and_plan(state(), &f.world(), T0).await;
    assert_eq!(s.map(|s| s.phase).ok(), Some(Phase::Planned));
    assert_eq!(holder(&f).as_deref(), Some("exec-1"));
    assert!(!f.mutations().iter().any(|m| m.starts_with("lock_acquire")));
}

#[tokio::test]
async fn a_rollback_leaves_a_lock_that_another_execution_took_over() {
    let f = scenario();
    let w = f.world();
    let s = validate_and_plan(state(), &w, T0).await;
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    held_by(&f, "successor", T0.plus(3600));
    let s = rollback(s, &w, T0).await;
    assert_eq!(s.map(|s| s.phase).ok(), Some(Phase::RolledBack));
    assert_eq!(holder(&f).as_deref(), Some("successor"));
    assert!(!f.mutations().iter().any(|m| m.starts_with("lock_release")));
}

#[tokio::test]
async fn a_rollback_releases_the_lock_this_execution_holds() {
    let f = scenario();
    let w = f.world();
    let s = validate_and_plan(state(), &w, T0).await;
    let s = s.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(holder(&f).as_deref(), Some("exec-1"));
    let s = rollback(s, &w, T0).await;
    assert_eq!(s.map(|s| s.lock).ok(), Some(None));
    assert_eq!(holder(&f), None);
}

#[test]
fn the_lease_allows_for_every_wait_the_steps_time_out() {
    assert_eq!(
        GROUP_READY_TIMEOUT_SECS + SURGE_READY_TIMEOUT_SECS + OLD_GROUP_GONE_TIMEOUT_SECS,
        STEP_WAITS_SECS
    );
}

#[tokio::test]
async fn a_run_that_fails_against_its_source_gives_back_the_lock_its_starter_took() {
    let f = scenario();
    held_by(&f, "exec-1", T0.plus(3600));
    let mut s = state();
    s.request.source = ngm_core::request::SourceGroup::ManagedNodeGroup("gone".into());
    let err = validate_and_plan(s, &f.world(), T0).await.err();
    assert!(
        matches!(err, Some(StepError::SourceGroupNotFound { .. })),
        "{err:?}"
    );
    assert_eq!(holder(&f), None);
}

#[tokio::test]
async fn a_retryable_failure_keeps_the_lock_for_the_retry() {
    let f = scenario();
    held_by(&f, "exec-1", T0.plus(3600));
    f.fail_next(
        "list_pods_on_node",
        ngm_core::ports::PortError::Throttled { op: "list".into() },
    );
    let err = validate_and_plan(state(), &f.world(), T0).await.err();
    assert!(err.as_ref().is_some_and(StepError::is_retryable), "{err:?}");
    assert_eq!(holder(&f).as_deref(), Some("exec-1"));
}
