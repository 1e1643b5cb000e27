//! Cleanup over the stateful fakes: a migration stopped after the surge (the state comes from
//! the lock record, as the harness left it) is rolled back exactly; a second cleanup does
//! nothing; a lock held by another execution is left alone and only our marks go; a running
//! execution is refused.

use ngm_core::marks;
use ngm_core::model::{ExecutionInfo, ExecutionStatus, NodeView, Timestamp};
use ngm_core::ports::LockRecord;
use ngm_core::request::parse_request;
use ngm_core::state::{ExecutionRef, MigrationState, Phase};
use ngm_steps::fakes::{FakeCloud, Snapshot, cluster_arn, deployment, managed_group};
use ngm_steps::steps::{
    check_group_ready, check_surge, create_group, freeze, surge, taint, validate_and_plan,
};
use ngm_steps::{StepError, World};
use serde_json::json;

use super::*;

const T0: Timestamp = Timestamp(1_700_000_000);
const ARN: &str = "arn:aws:states:eu-west-1:111122223333:execution:ngm-migration:exec-1";

fn scenario() -> FakeCloud {
    let f = FakeCloud::new();
    f.add_cluster("prod")
        .add_managed_group(managed_group("ng-a", "m5.large", 3))
        .add_workload(deployment("default", "web", 3))
        .add_hpa("default", "web", Some(3), 4)
        .add_pdb("default", "web", 2)
        .add_daemonset("kube-system", "aws-node");
    f.reconcile();
    f
}

fn request() -> serde_json::Value {
    json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"managedNodeGroup": "ng-a"},
        "target": {"instanceTypes": ["c5.xlarge"]},
    })
}

fn start() -> MigrationState {
    let req = parse_request(&request().to_string()).unwrap_or_else(|e| panic!("{e:?}"));
    MigrationState::new(
        ExecutionRef {
            name: "exec-1".into(),
            arn: Some(ARN.into()),
            started_at: T0,
        },
        req,
    )
}

fn ok<T>(r: Result<T, StepError>) -> T {
    r.unwrap_or_else(|e| panic!("{}: {e}", e.error_type()))
}

/// One step as the Lambda harness runs it: the step, then the lock renewal with its state.
async fn harness(
    s: Result<MigrationState, StepError>,
    w: &World,
    now: Timestamp,
) -> MigrationState {
    let s = ok(s);
    ok(ngm_lambda::renew_lock(&s, w, now).await);
    s
}

/// Steps 1 to 6, each followed by the harness's renewal, then the execution "stops".
async fn stopped_after_the_surge(f: &FakeCloud, w: &World) -> Timestamp {
    let mut t = T0;
    let s = harness(validate_and_plan(start(), w, t).await, w, t).await;
    let s = harness(create_group(s, w, t).await, w, t).await;
    let mut s = s;
    for _ in 0..20 {
        f.reconcile();
        s = harness(check_group_ready(s, w, t).await, w, t).await;
        match &s.pending {
            Some(p) => t = t.plus(p.retry_after_seconds),
            None => break,
        }
    }
    let s = harness(taint(s, w, t).await, w, t).await;
    let s = harness(freeze(s, w, t).await, w, t).await;
    let mut s = harness(surge(s, w, t).await, w, t).await;
    for _ in 0..20 {
        f.reconcile();
        s = harness(check_surge(s, w, t).await, w, t).await;
        match &s.pending {
            Some(p) => t = t.plus(p.retry_after_seconds),
            None => break,
        }
    }
    assert_eq!(s.phase, Phase::Surged);
    t
}

fn event() -> Cleanup {
    ok(decode(json!({
        "executionArn": ARN,
        "status": "ABORTED",
        "input": request().to_string(),
    })))
}

/// Runs cleanup rounds as the cleanup machine does, letting time pass on `pending`.
async fn run(f: &FakeCloud, w: &World, mut now: Timestamp) -> Result<Cleanup, StepError> {
    let mut c = event();
    for _ in 0..40 {
        c = cleanup(c, w, now).await?;
        if c.outcome.is_some() {
            return Ok(c);
        }
        if let Some(p) = &c.pending {
            now = now.plus(p.retry_after_seconds);
        }
        f.reconcile();
    }
    panic!("cleanup still going after 40 rounds: {:?}", c.pending);
}

fn marks_on(n: &NodeView) -> Vec<String> {
    let mut found: Vec<String> = n
        .labels
        .keys()
        .chain(n.annotations.keys())
        .filter(|k| k.starts_with("ngm.io/"))
        .cloned()
        .collect();
    found.extend(
        n.taints
            .iter()
            .filter(|t| t.key.starts_with("ngm.io/"))
            .map(|t| t.key.clone()),
    );
    found
}

fn assert_back_as_before(before: &Snapshot, after: &Snapshot) {
    for (r, wl) in &before.workloads {
        assert_eq!(after.workloads[r].replicas, wl.replicas, "{r}");
        assert_eq!(after.workloads[r].annotations, wl.annotations, "{r}");
    }
    assert_eq!(after.hpa_specs(), before.hpa_specs());
    for n in after.nodes.values() {
        assert_eq!(marks_on(n), Vec::<String>::new(), "{}", n.name);
    }
}

#[tokio::test]
async fn a_migration_stopped_after_the_surge_is_rolled_back_from_the_locks_state() {
    let f = scenario();
    let w = f.world();
    let before = f.snapshot();
    let now = stopped_after_the_surge(&f, &w).await;
    let key = cluster_arn("prod");
    let stored = f.snapshot().locks.get(&key).and_then(|r| r.state.clone());
    assert!(
        stored.is_some_and(|s| s.contains("\"surged\"")),
        "the harness left the last state in the lock record"
    );
    assert!(
        f.snapshot().nodes.values().any(|n| !marks_on(n).is_empty()),
        "the run marked the old nodes"
    );

    let c = ok(run(&f, &w, now).await);
    assert_eq!(c.outcome, Some(Outcome::RolledBack), "{:?}", c.findings);
    f.reconcile();
    let after = f.snapshot();
    assert_back_as_before(&before, &after);
    assert!(after.locks.is_empty(), "lock released: {:?}", after.locks);
    assert!(after.nodegroups.contains_key("ng-a"));
    assert_eq!(
        after.nodegroups["ng-a"].scaling, before.nodegroups["ng-a"].scaling,
        "the old group is unpinned"
    );

    // A second cleanup (EventBridge delivers at least once) changes nothing.
    f.clear_calls();
    let again = ok(run(&f, &w, now).await);
    assert_eq!(again.outcome, Some(Outcome::Swept));
    assert!(f.mutations().is_empty(), "{:?}", f.mutations());
}

#[tokio::test]
async fn a_lock_held_by_another_execution_is_left_alone_and_only_our_marks_go() {
    let f = scenario();
    let w = f.world();
    let before = f.snapshot();
    let now = stopped_after_the_surge(&f, &w).await;
    // Another execution holds the lock now (ours was released and taken, say by an operator).
    let key = cluster_arn("prod");
    let theirs = LockRecord {
        key: key.clone(),
        holder: "exec-2".into(),
        holder_arn: Some(ARN.replace("exec-1", "exec-2")),
        acquired_at: now,
        lease_until: now.plus(3600),
        state: Some("{}".into()),
    };
    f.edit(|s| s.locks.insert(key.clone(), theirs.clone()));

    let c = ok(run(&f, &w, now).await);
    assert_eq!(c.outcome, Some(Outcome::Swept), "{:?}", c.findings);
    // Two HPA syncs: the surge above the maximum handed back is clamped first, then the HPA
    // goes where its load asks. ngm writes neither.
    f.reconcile();
    f.reconcile();
    let after = f.snapshot();
    assert_eq!(
        after.locks.get(&key),
        Some(&theirs),
        "their lock is untouched"
    );
    assert_eq!(
        after.hpa_specs(),
        before.hpa_specs(),
        "our HPA freeze is undone"
    );
    for n in after.nodes.values() {
        assert_eq!(marks_on(n), Vec::<String>::new(), "{}", n.name);
    }
    let web = before
        .workloads
        .keys()
        .find(|r| r.name == "web")
        .cloned()
        .unwrap_or_else(|| panic!("no web"));
    assert_eq!(
        after.workloads[&web].replicas,
        before.workloads[&web].replicas
    );
    assert!(
        !after.workloads[&web]
            .annotations
            .contains_key(marks::EXECUTION)
    );
}

#[tokio::test]
async fn a_running_execution_is_not_cleaned_up() {
    let f = scenario();
    let w = f.world();
    let now = stopped_after_the_surge(&f, &w).await;
    f.edit(|s| {
        s.executions.push(ExecutionInfo {
            arn: ARN.into(),
            name: "exec-1".into(),
            status: ExecutionStatus::Running,
            started_at: T0,
            stopped_at: None,
            input: None,
            output: None,
            error: None,
            cause: None,
        })
    });
    f.clear_calls();
    let e = run(&f, &w, now).await.err();
    assert_eq!(e.as_ref().map(StepError::error_type), Some("InvalidState"));
    assert!(f.mutations().is_empty(), "{:?}", f.mutations());
}

#[tokio::test]
async fn a_lock_taken_for_an_execution_that_finished_no_step_is_released() {
    let f = scenario();
    let w = f.world();
    let key = cluster_arn("prod");
    f.edit(|s| {
        s.locks.insert(
            key.clone(),
            LockRecord {
                key: key.clone(),
                holder: "exec-1".into(),
                holder_arn: Some(ARN.into()),
                acquired_at: T0,
                lease_until: T0.plus(3600),
                state: None,
            },
        )
    });
    let c = ok(run(&f, &w, T0).await);
    assert_eq!(c.outcome, Some(Outcome::Released));
    assert!(f.snapshot().locks.is_empty());
}

#[test]
fn a_malformed_event_is_refused_by_name() {
    for bad in [
        json!({"executionArn": "not-an-arn", "input": request().to_string()}),
        json!({"executionArn": ARN}),
        json!({"executionArn": ARN, "input": "{\"cluster\": 1}"}),
        json!({"input": request().to_string()}),
    ] {
        let e = decode(bad.clone()).err();
        assert!(
            matches!(
                e.as_ref().map(StepError::error_type),
                Some("InvalidState" | "InvalidRequest")
            ),
            "{bad}: {e:?}"
        );
    }
}

#[test]
fn the_answer_carries_what_the_cleanup_machine_branches_on() {
    let mut c = event();
    let v = ok(encode(&c));
    assert!(v.get("pending").is_none() && v.get("continuation").is_none());
    c.pending = Some(ngm_core::state::Pending {
        retry_after_seconds: 30,
        reason: "pods are leaving".into(),
    });
    let v = ok(encode(&c));
    assert_eq!(v["pending"]["retryAfterSeconds"], 30);
    assert_eq!(
        ok(decode(v)),
        c,
        "a round's answer is the next round's input"
    );
}
