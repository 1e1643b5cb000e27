use ngm_core::model::{ExecutionStatus, Timestamp};
use ngm_core::ports::{LockPort, PortError, SfnPort};
use ngm_core::request::parse_request;

use super::*;
use crate::fakes::FakeCloud;

const SM: &str = "arn:aws:states:eu-west-1:111122223333:stateMachine:ngm";
const CLUSTER: &str = "arn:aws:eks:eu-west-1:111122223333:cluster/prod";
const T0: Timestamp = Timestamp(1_700_000_000);

fn req() -> MigrationRequest {
    parse_request(
        r#"{"cluster":{"name":"prod","region":"eu-west-1"},"source":{"managedNodeGroup":"ng-a"}}"#,
    )
    .unwrap_or_else(|e| panic!("{e:?}"))
}

#[test]
fn execution_names_keep_to_step_functions_rules() {
    assert_eq!(
        execution_name(&["ami", "prod", "ng a", "1.33.0/2025"]),
        "ami-prod-ng-a-1.33.0-2025"
    );
    let long = "x".repeat(100);
    let a = execution_name(&["ami", &long, "1"]);
    let b = execution_name(&["ami", &long, "2"]);
    assert_eq!(a.len(), 80);
    assert_ne!(a, b);
}

#[tokio::test]
async fn two_starts_for_one_cluster_start_exactly_one_migration() {
    let f = FakeCloud::new();
    let one = start_locked(&f, &f, SM, CLUSTER, "run-1", &req(), T0).await;
    let two = start_locked(&f, &f, SM, CLUSTER, "run-2", &req(), T0).await;
    assert!(matches!(one, Ok(StartOutcome::Started { .. })), "{one:?}");
    assert_eq!(
        two,
        Ok(StartOutcome::Locked {
            holder: "run-1".into()
        })
    );
    assert_eq!(f.snapshot().executions.len(), 1);
}

#[tokio::test]
async fn the_same_start_twice_is_one_execution() {
    let f = FakeCloud::new();
    let one = start_locked(&f, &f, SM, CLUSTER, "run-1", &req(), T0).await;
    let again = start_locked(&f, &f, SM, CLUSTER, "run-1", &req(), T0.plus(60)).await;
    assert_eq!(one, again);
    assert_eq!(f.snapshot().executions.len(), 1);
}

#[tokio::test]
async fn a_failed_start_releases_the_lock() {
    let f = FakeCloud::new();
    f.fail_next(
        "start_execution",
        PortError::AccessDenied {
            op: "states:StartExecution".into(),
        },
    );
    let r = start_locked(&f, &f, SM, CLUSTER, "run-1", &req(), T0).await;
    assert!(matches!(r, Err(PortError::AccessDenied { .. })), "{r:?}");
    assert_eq!(f.read(CLUSTER).await, Ok(None));
}

#[tokio::test]
async fn a_finished_execution_of_the_same_name_is_not_run_again_nor_left_locked() {
    let f = FakeCloud::new();
    let arn = f.start_execution(SM, "run-1", "{}").await;
    let arn = arn.unwrap_or_else(|e| panic!("{e}"));
    f.edit(|w| {
        for e in &mut w.executions {
            e.status = ExecutionStatus::Failed;
        }
    });
    let r = start_locked(&f, &f, SM, CLUSTER, "run-1", &req(), T0).await;
    assert_eq!(
        r,
        Ok(StartOutcome::AlreadyRan {
            execution_arn: arn,
            status: ExecutionStatus::Failed
        })
    );
    assert_eq!(f.read(CLUSTER).await, Ok(None));
}
