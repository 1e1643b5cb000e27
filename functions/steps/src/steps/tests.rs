//! Handler tests against the stateful fakes: each step's happy path, a whole migration step by
//! step (I3), a rollback mid-way (I4), each step twice on the same state (I5), dry run, and a
//! PDB blocking past the deadline.

use std::future::Future;

use ngm_core::marks;
use ngm_core::model::{NodeView, Timestamp, WorkloadKind, WorkloadRef};
use ngm_core::ports::PortError;
use ngm_core::request::parse_request;
use ngm_core::state::{ExecutionRef, MigrationState, Phase};

use super::*;
use crate::error::StepError;
use crate::fakes::{FakeCloud, Snapshot, cluster_arn, deployment, managed_group};
use crate::world::World;

pub(super) const T0: Timestamp = Timestamp(1_700_000_000);

pub(super) fn scenario() -> FakeCloud {
    let f = FakeCloud::new();
    f.add_cluster("prod")
        .add_managed_group(managed_group("ng-a", "m5.large", 3))
        .add_workload(deployment("kube-system", "coredns", 2))
        .add_workload(deployment("default", "web", 3))
        .add_hpa("default", "web", Some(3), 4)
        .add_pdb("default", "web", 2)
        .add_alb_service("default", "web", 60, 120)
        .add_daemonset("kube-system", "aws-node");
    f.reconcile();
    f
}

pub(super) fn state_for(policy: serde_json::Value) -> MigrationState {
    state_with(serde_json::json!({"instanceTypes": ["c5.xlarge"]}), policy)
}

pub(super) fn state_with(target: serde_json::Value, policy: serde_json::Value) -> MigrationState {
    let json = serde_json::json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"managedNodeGroup": "ng-a"},
        "target": target,
        "policy": policy,
    });
    let req = parse_request(&json.to_string()).unwrap_or_else(|e| panic!("fixture: {e:?}"));
    MigrationState::new(
        ExecutionRef {
            name: "exec-1".into(),
            arn: Some("arn:aws:states:eu-west-1:111122223333:execution:ngm:exec-1".into()),
            started_at: T0,
        },
        req,
    )
}

pub(super) fn web() -> WorkloadRef {
    WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "default".into(),
        name: "web".into(),
    }
}

/// Calls a polling step until it stops answering `pending`, letting time pass (and the fake's
/// controllers run) between calls. Bounded, so a step that never settles fails the test.
async fn settle<F, Fut>(
    f: &FakeCloud,
    mut state: MigrationState,
    now: &mut Timestamp,
    step: F,
) -> Result<MigrationState, StepError>
where
    F: Fn(MigrationState, Timestamp) -> Fut,
    Fut: Future<Output = Result<MigrationState, StepError>>,
{
    for _ in 0..20 {
        state = step(state, *now).await?;
        if state.continuation.is_some() {
            // The next batch, at once, as the state machine's Choice does.
            continue;
        }
        match &state.pending {
            Some(p) => {
                *now = now.plus(p.retry_after_seconds);
                f.reconcile();
            }
            None => return Ok(state),
        }
    }
    panic!("step still pending after 20 calls: {:?}", state.pending);
}

macro_rules! step {
    ($f:expr, $w:expr, $s:expr, $now:expr, $h:path) => {{
        let w: &World = $w;
        settle($f, $s, &mut $now, |s, t| async move { $h(s, w, t).await }).await
    }};
}

pub(super) fn ok<T>(r: Result<T, StepError>) -> T {
    r.unwrap_or_else(|e| panic!("{} : {e}", e.error_type()))
}

fn ngm_marks_on(n: &NodeView) -> Vec<String> {
    let mut found: Vec<String> = n
        .labels
        .keys()
        .chain(n.annotations.keys())
        .filter(|k| k.starts_with("ngm.io/") || k.as_str() == marks::EXCLUDE_FROM_LB_LABEL)
        .cloned()
        .collect();
    found.extend(
        n.taints
            .iter()
            .filter(|t| t.key.starts_with("ngm.io/"))
            .map(|t| t.key.clone()),
    );
    if n.unschedulable {
        found.push("unschedulable".into());
    }
    found
}

/// Runs steps 1 to 6 (through the surge being ready).
pub(super) async fn through_surge(f: &FakeCloud, w: &World, now: &mut Timestamp) -> MigrationState {
    through_surge_from(f, w, now, state_for(serde_json::json!({}))).await
}

pub(super) async fn through_surge_from(
    f: &FakeCloud,
    w: &World,
    now: &mut Timestamp,
    start: MigrationState,
) -> MigrationState {
    let mut t = *now;
    let s = ok(validate_and_plan(start, w, t).await);
    let s = ok(create_group(s, w, t).await);
    f.reconcile();
    let s = ok(step!(f, w, s, t, check_group_ready));
    let s = ok(taint(s, w, t).await);
    let s = ok(freeze(s, w, t).await);
    let s = ok(surge(s, w, t).await);
    f.reconcile();
    let s = ok(step!(f, w, s, t, check_surge));
    *now = t;
    s
}

#[tokio::test]
async fn a_whole_migration_restores_everything_and_removes_the_old_group() {
    let f = scenario();
    let w = f.world();
    let before = f.snapshot();
    let mut now = T0;
    let s = through_surge(&f, &w, &mut now).await;
    assert_eq!(
        f.workload(&web()).map(|d| d.replicas),
        Some(6),
        "surge survives the HPA"
    );
    let s = ok(cut_traffic(s, &w, now).await);
    assert_eq!(
        s.lb_drain_seconds,
        120 + 30,
        "longest of idle 60 and dereg 120, plus margin"
    );
    let s = ok(step!(&f, &w, s, now, retire));
    let s = ok(step!(&f, &w, s, now, drain));
    let s = ok(step!(&f, &w, s, now, delete_old));
    assert_eq!(s.phase, Phase::OldGroupEmpty, "the wait deletes nothing");
    assert!(f.snapshot().nodegroups.contains_key("ng-a"));
    // The state machine's DeleteOldGroup Task: the same function, now in oldGroupEmpty.
    let s = ok(delete_old(s, &w, now).await);
    assert_eq!(s.phase, Phase::DeletingOldGroup);
    f.reconcile();
    let s = ok(step!(&f, &w, s, now, check_deleted));
    assert_eq!(s.phase, Phase::OldGroupDeleted);
    let s = ok(restore(s, &w, now).await);
    assert_eq!(s.phase, Phase::Restored);
    assert_eq!(s.lock, None);
    f.reconcile();

    // I3: originals back, no marks, old group gone, every pod on the new group.
    let after = f.snapshot();
    for (r, wl) in &before.workloads {
        let now_wl = &after.workloads[r];
        assert_eq!(now_wl.replicas, wl.replicas, "{r}");
        assert_eq!(now_wl.annotations, wl.annotations, "{r}");
    }
    assert_eq!(after.hpa_specs(), before.hpa_specs());
    assert!(!after.nodegroups.contains_key("ng-a"));
    assert!(after.nodes.keys().all(|n| !n.starts_with("ng-a-node-")));
    for n in after.nodes.values() {
        assert_eq!(ngm_marks_on(n), Vec::<String>::new(), "{}", n.name);
    }
    assert!(after.locks.is_empty(), "{:?}", after.locks);
    let new = s
        .new_group
        .as_ref()
        .map(|g| g.name.clone())
        .unwrap_or_default();
    for p in after.pods.values() {
        let node = p.node_name.as_deref().unwrap_or_default();
        assert!(node.starts_with(&new), "{} runs on {node}", p.key());
    }
    let web_pods = after
        .pods
        .values()
        .filter(|p| p.labels.get("app").map(String::as_str) == Some("web"));
    assert_eq!(web_pods.count(), 3);
}

#[tokio::test]
async fn rollback_after_the_surge_puts_the_cluster_back_as_it_was() {
    let f = scenario();
    let w = f.world();
    let before = f.snapshot();
    let mut now = T0;
    let s = through_surge(&f, &w, &mut now).await;
    let s = ok(cut_traffic(s, &w, now).await);
    let s = ok(step!(&f, &w, s, now, rollback));
    assert_eq!(s.phase, Phase::RolledBack);
    f.reconcile();
    f.reconcile();

    // I4: nothing frozen, scaled up or tainted; the new group ngm created is gone.
    let after = f.snapshot();
    for (r, wl) in &before.workloads {
        assert_eq!(after.workloads[r].replicas, wl.replicas, "{r}");
        assert_eq!(after.workloads[r].annotations, wl.annotations, "{r}");
    }
    assert_eq!(after.hpa_specs(), before.hpa_specs());
    for (name, n) in &before.nodes {
        assert_eq!(after.nodes.get(name), Some(n), "{name}");
    }
    assert_eq!(after.nodegroups.get("ng-a"), before.nodegroups.get("ng-a"));
    assert_eq!(after.nodegroups.len(), 1, "the new group is deleted");
    assert_eq!(after.clusters, before.clusters);
    assert!(after.locks.is_empty(), "lock released: {:?}", after.locks);
    assert!(after.pods.values().all(|p| {
        p.node_name
            .as_deref()
            .is_some_and(|n| n.starts_with("ng-a-"))
    }));
    assert!(
        after
            .pods
            .values()
            .all(|p| !p.annotations.contains_key(marks::EXECUTION))
    );
}

/// Runs `step` twice on the same state and checks the world and the output are the same, and
/// that the second call changed nothing.
async fn twice<F, Fut>(f: &FakeCloud, s: &MigrationState, name: &str, step: F) -> MigrationState
where
    F: Fn(MigrationState) -> Fut,
    Fut: Future<Output = Result<MigrationState, StepError>>,
{
    let first = ok(step(s.clone()).await);
    let world: Snapshot = f.snapshot();
    f.clear_calls();
    let second = ok(step(s.clone()).await);
    assert_eq!(
        f.snapshot(),
        world,
        "{name}: the world changed on the second call"
    );
    assert_eq!(
        f.mutations(),
        Vec::<String>::new(),
        "{name}: second call mutated"
    );
    let (mut a, mut b) = (first.clone(), second);
    if name == "drain" {
        // A drain round's tally counts what this call evicted; a retry finds those pods
        // already leaving and evicts nothing, so only the tally differs.
        a.counts.pods_evicted = 0;
        b.counts.pods_evicted = 0;
    }
    assert_eq!(a, b, "{name}: output differs");
    first
}

#[tokio::test]
async fn every_step_run_twice_on_the_same_state_leaves_the_same_world_and_output() {
    let f = scenario();
    let w = &f.world();
    let mut now = T0;
    let s = twice(&f, &state_for(serde_json::json!({})), "validate", |s| {
        validate_and_plan(s, w, now)
    })
    .await;
    let s = twice(&f, &s, "create", |s| create_group(s, w, now)).await;
    let mut s = twice(&f, &s, "check-group-ready", |s| {
        check_group_ready(s, w, now)
    })
    .await;
    assert!(s.pending.is_some(), "CREATING until the controllers run");
    f.reconcile();
    now = now.plus(30);
    s = twice(&f, &s, "check-group-ready", |s| {
        check_group_ready(s, w, now)
    })
    .await;
    assert_eq!(s.phase, Phase::GroupReady);
    let s = twice(&f, &s, "taint", |s| taint(s, w, now)).await;
    let s = twice(&f, &s, "freeze", |s| freeze(s, w, now)).await;
    let s = twice(&f, &s, "surge", |s| surge(s, w, now)).await;
    f.reconcile();
    let s = twice(&f, &s, "check-surge", |s| check_surge(s, w, now)).await;
    assert_eq!(s.pending, None);
    let s = twice(&f, &s, "cut-traffic", |s| cut_traffic(s, w, now)).await;
    let mut s = twice(&f, &s, "retire", |s| retire(s, w, now)).await;
    while s.pending.is_some() {
        f.reconcile();
        s = twice(&f, &s, "retire", |s| retire(s, w, now)).await;
    }
    let mut s = twice(&f, &s, "drain", |s| drain(s, w, now)).await;
    for _ in 0..10 {
        if s.pending.is_none() {
            break;
        }
        f.reconcile();
        s = twice(&f, &s, "drain", |s| drain(s, w, now)).await;
    }
    assert_eq!(s.phase, Phase::Drained);
    let s = twice(&f, &s, "delete-old", |s| delete_old(s, w, now)).await;
    assert_eq!(s.phase, Phase::OldGroupEmpty);
    let s = twice(&f, &s, "delete-old-group", |s| delete_old(s, w, now)).await;
    f.reconcile();
    let s = twice(&f, &s, "check-deleted", |s| check_deleted(s, w, now)).await;
    assert_eq!(s.phase, Phase::OldGroupDeleted);
    let s = twice(&f, &s, "restore", |s| restore(s, w, now)).await;
    assert_eq!(s.phase, Phase::Restored);
}

#[tokio::test]
async fn a_dry_run_reports_and_changes_nothing() {
    let f = scenario();
    let w = f.world();
    let before = f.snapshot();
    let s = ok(validate_and_plan(state_for(serde_json::json!({"dryRun": true})), &w, T0).await);
    assert_eq!(s.phase, Phase::DryRunDone);
    let report = s.preflight.clone().unwrap_or_default();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.drain_wait_seconds, 150);
    assert_eq!(s.lock, None);
    // Every later step, handed a dry-run state, still only logs.
    let s = ok(create_group(s, &w, T0).await);
    let s = ok(taint(s, &w, T0).await);
    let s = ok(freeze(s, &w, T0).await);
    let _ = ok(surge(s, &w, T0).await);
    assert_eq!(f.snapshot(), before);
    assert_eq!(f.mutations(), Vec::<String>::new());
}

/// A StatefulSet pod whose PDB never allows a disruption, on a tainted old group.
pub(super) async fn blocked_drain(policy: serde_json::Value) -> (FakeCloud, MigrationState) {
    let f = scenario();
    let mut db = deployment("default", "db", 1);
    db.kind = WorkloadKind::StatefulSet;
    f.add_workload(db).add_pdb("default", "db", 1);
    f.reconcile();
    f.reconcile();
    let w = f.world();
    let s = ok(taint(state_for(policy), &w, T0).await);
    (f, s)
}

#[tokio::test]
async fn a_pdb_blocking_past_the_deadline_names_the_pod_and_the_pdb() {
    let (f, s) = blocked_drain(serde_json::json!({"drainDeadlineSeconds": 600})).await;
    let w = f.world();
    let s = ok(drain(s, &w, T0).await);
    let blocked = s
        .blocked
        .clone()
        .unwrap_or_else(|| panic!("not blocked: {s:?}"));
    assert_eq!(blocked.pod, "default/db-0");
    assert_eq!(blocked.pdb.as_deref(), Some("default/db-pdb"));
    assert!(s.pending.is_some(), "before the deadline the drain waits");
    let err = drain(s, &w, T0.plus(601)).await.err();
    assert_eq!(
        err,
        Some(StepError::PdbBlocked {
            pod: "default/db-0".into(),
            pdb: "default/db-pdb".into()
        })
    );
}

#[tokio::test]
async fn a_pdb_blocking_past_the_deadline_waits_for_an_operator_when_asked() {
    let (f, s) = blocked_drain(
        serde_json::json!({"drainDeadlineSeconds": 600, "onPdbBlocked": "waitForOperator"}),
    )
    .await;
    let w = f.world();
    let s = ok(drain(s, &w, T0).await);
    let s = ok(drain(s, &w, T0.plus(601)).await);
    assert_eq!(s.pending, None);
    assert_eq!(
        s.blocked.map(|b| b.pdb),
        Some(Some("default/db-pdb".to_string()))
    );
}

#[tokio::test]
async fn a_throttled_call_fails_with_a_retryable_name_and_the_retry_succeeds() {
    let f = scenario();
    let w = f.world();
    f.fail_next(
        "lock_acquire",
        PortError::Throttled {
            op: "dynamodb:PutItem".into(),
        },
    );
    let err = validate_and_plan(state_for(serde_json::json!({})), &w, T0)
        .await
        .err();
    assert_eq!(err.as_ref().map(StepError::error_type), Some("Throttled"));
    assert!(err.is_some_and(|e| e.is_retryable()));
    let s = ok(validate_and_plan(state_for(serde_json::json!({})), &w, T0).await);
    assert_eq!(s.phase, Phase::Planned);
    assert_eq!(
        f.snapshot()
            .locks
            .get(&cluster_arn("prod"))
            .map(|l| l.holder.as_str()),
        Some("exec-1")
    );
}

#[tokio::test]
async fn an_invalid_request_lists_every_field_error_before_touching_anything() {
    let f = scenario();
    let w = f.world();
    let mut s = state_for(serde_json::json!({"surgeFactor": 9.0, "drainDeadlineSeconds": 1}));
    s.request.cluster.region = "nowhere".into();
    let err = validate_and_plan(s, &w, T0).await.err();
    match err {
        Some(StepError::InvalidRequest { errors }) => assert!(errors.len() >= 3, "{errors:?}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(f.calls(), vec![]);
}

#[tokio::test]
async fn a_self_managed_group_is_pinned_then_restored_exactly_by_the_rollback() {
    let f = FakeCloud::new();
    f.add_cluster("prod")
        .add_self_managed_group("legacy-asg", "m5.large", 2)
        .add_workload(deployment("default", "web", 2));
    f.reconcile();
    let before = f.snapshot();
    let w = f.world();
    let json = serde_json::json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"autoScalingGroup": "legacy-asg"},
        "target": {"instanceTypes": ["m6i.large"], "nodeRoleArn": "arn:aws:iam::111122223333:role/node"},
    });
    let req = parse_request(&json.to_string()).unwrap_or_else(|e| panic!("{e:?}"));
    let mut s = state_for(serde_json::json!({}));
    s.request = req;
    s.source.name = "legacy-asg".into();
    s.source.kind = ngm_core::model::NodeGroupKind::SelfManagedAsg;
    let mut now = T0;
    let s = ok(validate_and_plan(s, &w, now).await);
    assert_eq!(s.source.asg_names, vec!["legacy-asg".to_string()]);
    assert_eq!(s.counts.old_nodes, 2);
    let s = ok(create_group(s, &w, now).await);
    f.reconcile();
    let s = ok(step!(&f, &w, s, now, check_group_ready));
    let s = ok(taint(s, &w, now).await);
    let s = ok(freeze(s, &w, now).await);
    let asg = f.snapshot().asgs["legacy-asg"].clone();
    assert_eq!((asg.scaling.min, asg.scaling.max), (2, 2), "pinned");
    assert!(
        !asg.tags.contains_key(marks::CA_ENABLED_TAG),
        "out of autoscaler discovery"
    );
    assert!(asg.suspended_processes.contains(&"AZRebalance".to_string()));
    let s = ok(step!(&f, &w, s, now, rollback));
    assert_eq!(s.phase, Phase::RolledBack);
    f.reconcile();
    let after = f.snapshot();
    assert_eq!(
        after.asgs, before.asgs,
        "scaling, tags and processes as before"
    );
    assert_eq!(after.nodes, before.nodes);
    assert_eq!(after.clusters, before.clusters);
}
