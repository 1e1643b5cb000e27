//! Handler tests of the loops against the stateful fakes: every waiting loop fails with its own
//! error at its deadline; Retire and DeleteOld judge against what was Ready before the
//! migration; the operator's answers; batches with a continuation; and the harmless races (a
//! mark on an object just gone, a namespace being deleted).

use ngm_core::marks;
use ngm_core::model::Timestamp;
use ngm_core::plan::Action;
use ngm_core::plan::deadlines::{
    DRAIN_OVERRUN_SECS, GROUP_READY_SECS, OLD_GROUP_EMPTY_SECS, OLD_GROUP_GONE_SECS, RETIRE_SECS,
    ROLLBACK_SECS, SURGE_READY_SECS,
};
use ngm_core::ports::PortError;
use ngm_core::state::{MigrationState, OperatorAction, OperatorAnswer, Phase};

use super::tests::{T0, blocked_drain, ok, scenario, state_for, through_surge, web};
use super::*;
use crate::error::StepError;
use crate::fakes::{FakeCloud, deployment, managed_group};

fn name(r: Result<MigrationState, StepError>) -> String {
    match r {
        Ok(s) => format!("ok (pending {:?})", s.pending),
        Err(e) => e.error_type().to_string(),
    }
}

/// A cluster whose only Deployment has no PDB: nothing refuses its evictions.
fn unguarded() -> FakeCloud {
    let f = FakeCloud::new();
    f.add_cluster("prod")
        .add_managed_group(managed_group("ng-a", "m5.large", 3))
        .add_workload(deployment("default", "web", 3));
    f.reconcile();
    f
}

fn count(f: &FakeCloud, op: &str) -> usize {
    f.mutations()
        .iter()
        .filter(|m| m.starts_with(&format!("{op} ")))
        .count()
}

// -- Deadlines: one error per loop.

#[tokio::test]
async fn check_group_ready_fails_with_new_group_not_ready_at_its_deadline() {
    let f = scenario();
    let w = f.world();
    let s = ok(validate_and_plan(state_for(serde_json::json!({})), &w, T0).await);
    let s = ok(create_group(s, &w, T0).await);
    // No reconcile: the group stays CREATING.
    let s = ok(check_group_ready(s, &w, T0).await);
    assert!(s.pending.is_some());
    let late = T0.plus(GROUP_READY_SECS);
    assert_eq!(
        name(check_group_ready(s, &w, late).await),
        "NewGroupNotReady"
    );
}

#[tokio::test]
async fn check_surge_fails_with_surge_not_ready_at_its_deadline() {
    let f = scenario();
    let w = f.world();
    let s = ok(validate_and_plan(state_for(serde_json::json!({})), &w, T0).await);
    let s = ok(create_group(s, &w, T0).await);
    f.reconcile();
    let s = ok(check_group_ready(s, &w, T0).await);
    let s = ok(taint(s, &w, T0).await);
    let s = ok(freeze(s, &w, T0).await);
    let s = ok(surge(s, &w, T0).await);
    // No reconcile: the surged pods never start.
    let s = ok(check_surge(s, &w, T0).await);
    assert!(s.pending.is_some());
    let late = T0.plus(SURGE_READY_SECS);
    assert_eq!(name(check_surge(s, &w, late).await), "SurgeNotReady");
}

#[tokio::test]
async fn retire_fails_with_retire_stalled_when_the_scale_down_never_lands() {
    let f = scenario();
    let w = f.world();
    let mut now = T0;
    let s = through_surge(&f, &w, &mut now).await;
    let s = ok(cut_traffic(s, &w, now).await);
    let s = ok(retire(s, &w, now).await);
    // No reconcile: the controller never observes the scale-down.
    assert!(s.pending.is_some(), "{s:?}");
    let err = retire(s, &w, now.plus(RETIRE_SECS)).await.err();
    match err {
        Some(StepError::RetireStalled { reason }) => {
            assert!(
                reason.contains("coredns has not observed its new count")
                    && reason.contains("the HPA default/web has not acted"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}

/// Through the retire's scale-down, with `ready_before` recorded on web at the surge, then one
/// of web's replicas crash-looping.
async fn retire_with_a_crash_loop(ready_before: Option<&str>) -> (FakeCloud, MigrationState) {
    let f = scenario();
    let w = f.world();
    let mut now = T0;
    // One replica is already broken before the migration starts.
    f.edit(|s| {
        if let Some(p) = s
            .pods
            .values_mut()
            .find(|p| p.labels.get("app").map(String::as_str) == Some("web"))
        {
            p.ready = false;
        }
    });
    f.reconcile();
    let s = through_surge(&f, &w, &mut now).await;
    let web_wl = f.workload(&web()).unwrap_or_else(|| panic!("web"));
    assert_eq!(
        web_wl
            .annotations
            .get(marks::READY_BEFORE)
            .map(String::as_str),
        Some("2"),
        "the surge records what was Ready before"
    );
    if let Some(v) = ready_before {
        f.edit(|s| {
            if let Some(d) = s.workloads.get_mut(&web()) {
                d.annotations
                    .insert(marks::READY_BEFORE.to_string(), v.to_string());
            }
        });
    }
    let s = ok(cut_traffic(s, &w, now).await);
    let s = ok(retire(s, &w, now).await);
    // Two HPA syncs: the surge above the maximum handed back is clamped, then the HPA goes
    // where its load asks (3).
    f.reconcile();
    f.reconcile();
    // The crash loop goes on in one of the replicas left.
    f.edit(|s| {
        if let Some(p) = s
            .pods
            .values_mut()
            .find(|p| p.labels.get("app").map(String::as_str) == Some("web") && !p.terminating)
        {
            p.ready = false;
        }
    });
    f.reconcile();
    assert_eq!(f.workload(&web()).map(|d| d.ready_replicas), Some(2));
    (f, s)
}

#[tokio::test]
async fn retire_is_not_held_by_a_replica_that_was_broken_before_the_migration() {
    let (f, s) = retire_with_a_crash_loop(None).await;
    let w = f.world();
    let s = ok(retire(s, &w, T0.plus(60)).await);
    assert_eq!(s.pending, None, "{s:?}");
    assert_eq!(s.phase, Phase::Retired);
}

#[tokio::test]
async fn retire_waits_for_a_replica_that_was_ready_before_and_stalls_at_the_deadline() {
    let (f, s) = retire_with_a_crash_loop(Some("3")).await;
    let w = f.world();
    let s = ok(retire(s, &w, T0.plus(60)).await);
    assert!(s.pending.is_some(), "{s:?}");
    let err = retire(s, &w, T0.plus(RETIRE_SECS)).await.err();
    match err {
        Some(StepError::RetireStalled { reason }) => {
            assert!(reason.contains("has 2 of 3 Ready"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_drain_no_pdb_blocks_times_out_after_its_deadline_and_overrun() {
    let f = unguarded();
    let w = f.world();
    let s = ok(taint(
        state_for(serde_json::json!({"drainDeadlineSeconds": 600})),
        &w,
        T0,
    )
    .await);
    let s = ok(drain(s, &w, T0).await);
    assert_eq!(
        count(&f, "evict_pod"),
        1,
        "one pod of the ReplicaSet at a time"
    );
    // No reconcile: the evicted pod never finishes terminating, and nothing else may go.
    let s = ok(drain(s, &w, T0.plus(600 + DRAIN_OVERRUN_SECS - 1)).await);
    assert!(s.pending.is_some());
    let late = T0.plus(600 + DRAIN_OVERRUN_SECS);
    assert_eq!(name(drain(s, &w, late).await), "DrainTimedOut");
}

#[tokio::test]
async fn delete_old_waits_without_deleting_and_fails_with_old_group_not_empty() {
    let f = unguarded();
    let w = f.world();
    let s = ok(taint(state_for(serde_json::json!({})), &w, T0).await);
    let mut s = ok(drain(s, &w, T0).await);
    s.phase = Phase::Drained;
    s.pending = None;
    f.clear_calls();
    let s = ok(delete_old(s, &w, T0).await);
    assert!(s.pending.is_some());
    assert_eq!(s.phase, Phase::Drained);
    assert_eq!(count(&f, "delete_nodegroup"), 0, "{:?}", f.mutations());
    let late = T0.plus(OLD_GROUP_EMPTY_SECS);
    assert_eq!(name(delete_old(s, &w, late).await), "OldGroupNotEmpty");
    assert!(f.snapshot().nodegroups.contains_key("ng-a"));
}

#[tokio::test]
async fn check_deleted_fails_with_old_group_not_deleted_at_its_deadline() {
    let f = scenario();
    let w = f.world();
    let s = ok(check_deleted(state_for(serde_json::json!({})), &w, T0).await);
    assert!(s.pending.is_some());
    let late = T0.plus(OLD_GROUP_GONE_SECS);
    assert_eq!(name(check_deleted(s, &w, late).await), "OldGroupNotDeleted");
}

#[tokio::test]
async fn a_rollback_whose_drain_never_ends_fails_with_rollback_stalled() {
    let f = scenario();
    let w = f.world();
    let mut now = T0;
    let s = through_surge(&f, &w, &mut now).await;
    let s = ok(cut_traffic(s, &w, now).await);
    // A pod on a new node that its PDB never lets go.
    f.add_pdb("default", "stuck", 99);
    let new_node = f
        .snapshot()
        .nodes
        .keys()
        .find(|n| !n.starts_with("ng-a-node-"))
        .cloned()
        .unwrap_or_else(|| panic!("no new node"));
    f.edit(|w| {
        let mut p = w
            .pods
            .values()
            .find(|p| p.labels.get("app").map(String::as_str) == Some("web"))
            .cloned()
            .unwrap_or_else(|| panic!("no web pod"));
        p.name = "stuck-1".into();
        p.uid = "uid-stuck-1".into();
        p.node_name = Some(new_node);
        p.labels = [("app".to_string(), "stuck".to_string())].into();
        p.annotations.clear();
        if let Some(o) = p.owner.as_mut() {
            o.name = "stuck-rs".into();
        }
        w.pods.insert(("default".into(), "stuck-1".into()), p);
    });
    let mut s = ok(rollback(s, &w, now).await);
    let by = s
        .deadlines
        .rollback_by
        .unwrap_or_else(|| panic!("no deadline"));
    assert_eq!(by, now.plus(ROLLBACK_SECS + s.lb_drain_seconds));
    for _ in 0..20 {
        let Some(p) = s.pending.clone() else { break };
        now = now.plus(p.retry_after_seconds);
        f.reconcile();
        if now >= by {
            break;
        }
        s = ok(rollback(s, &w, now).await);
    }
    assert_eq!(name(rollback(s, &w, by).await), "RollbackStalled");
}

// -- The operator's answers.

async fn blocked_past_deadline() -> (FakeCloud, MigrationState, Timestamp) {
    let (f, s) = blocked_drain(
        serde_json::json!({"drainDeadlineSeconds": 600, "onPdbBlocked": "waitForOperator"}),
    )
    .await;
    let w = f.world();
    let s = ok(drain(s, &w, T0).await);
    let s = ok(drain(s, &w, T0.plus(601)).await);
    assert!(s.blocked.is_some() && s.pending.is_none(), "{s:?}");
    (f, s, T0.plus(700))
}

fn answer(action: OperatorAction, pod: Option<&str>) -> Option<OperatorAnswer> {
    Some(OperatorAnswer {
        action,
        pod: pod.map(String::from),
        by: Some("alice".into()),
    })
}

#[tokio::test]
async fn retry_sets_a_new_drain_deadline_and_evicts_again() {
    let (f, mut s, now) = blocked_past_deadline().await;
    let w = f.world();
    f.clear_calls();
    s.operator = answer(OperatorAction::Retry, None);
    let s = ok(drain(s, &w, now).await);
    assert_eq!(s.operator, None, "the answer is used up");
    assert_eq!(s.deadlines.drain_by, Some(now.plus(600)));
    assert_eq!(count(&f, "evict_pod"), 1, "{:?}", f.mutations());
    assert_eq!(count(&f, "delete_pod"), 0);
    // The PDB still refuses: the new deadline's clock runs from now.
    assert_eq!(s.blocked.as_ref().map(|b| b.since), Some(now));
    assert!(s.pending.is_some());
}

#[tokio::test]
async fn force_deletes_the_blocked_pod_once_and_the_drain_goes_on() {
    let (f, mut s, now) = blocked_past_deadline().await;
    let w = f.world();
    f.clear_calls();
    s.operator = answer(OperatorAction::Force, None);
    let s = ok(drain(s, &w, now).await);
    assert_eq!(f.mutations(), vec!["delete_pod default/db-0".to_string()]);
    assert_eq!(s.operator, None);
    assert_eq!(s.blocked, None);
    assert_eq!(s.deadlines.drain_by, Some(now.plus(600)));
    assert!(s.pending.is_some());
    f.reconcile();
    // The replacement comes up on a new node; the old nodes are empty then.
    let s = ok(drain(s, &w, now.plus(120)).await);
    assert_eq!(count(&f, "delete_pod"), 1, "one pod forced, once");
    assert_ne!(
        s.blocked.map(|b| b.pod),
        Some("default/db-0".to_string()),
        "db-0 was forced out"
    );
}

#[tokio::test]
async fn force_never_deletes_a_statefulset_ordinal_while_the_previous_is_terminating() {
    let (f, mut s, now) = blocked_past_deadline().await;
    let w = f.world();
    // A second ordinal of db on an old node, and the first already terminating.
    f.edit(|w| {
        let mut p = w.pods[&("default".to_string(), "db-0".to_string())].clone();
        p.name = "db-1".into();
        p.uid = "uid-db-1".into();
        w.pods.insert(("default".into(), "db-1".into()), p);
        if let Some(p0) = w.pods.get_mut(&("default".to_string(), "db-0".to_string())) {
            p0.terminating = true;
        }
    });
    f.clear_calls();
    s.operator = answer(OperatorAction::Force, Some("default/db-1"));
    let s = ok(drain(s, &w, now).await);
    assert_eq!(count(&f, "delete_pod"), 0, "{:?}", f.mutations());
    assert!(
        s.operator.is_some(),
        "the answer waits for the previous ordinal"
    );
    assert!(s.pending.is_some());
    f.reconcile();
    let s = ok(drain(s, &w, now.plus(120)).await);
    assert_eq!(f.mutations(), vec!["delete_pod default/db-1".to_string()]);
    assert_eq!(s.operator, None);
}

#[tokio::test]
async fn force_naming_a_pod_off_the_old_nodes_deletes_nothing_and_says_so() {
    let (f, mut s, now) = blocked_past_deadline().await;
    let w = f.world();
    f.clear_calls();
    s.operator = answer(OperatorAction::Force, Some("default/nope"));
    let s = ok(drain(s, &w, now).await);
    assert_eq!(count(&f, "delete_pod"), 0);
    assert!(
        s.findings.iter().any(|x| x.contains("default/nope")),
        "{:?}",
        s.findings
    );
}

#[tokio::test]
async fn rollback_answer_reaching_the_drain_fails_it_into_the_rollback() {
    let (f, mut s, now) = blocked_past_deadline().await;
    let w = f.world();
    s.operator = answer(OperatorAction::Rollback, None);
    assert_eq!(name(drain(s, &w, now).await), "PdbBlocked");
}

#[tokio::test]
async fn a_retry_with_no_time_left_in_the_execution_times_the_drain_out() {
    let (f, mut s, _) = blocked_past_deadline().await;
    let w = f.world();
    s.operator = answer(OperatorAction::Retry, None);
    let late = T0.plus(ngm_core::plan::deadlines::EXECUTION_TIMEOUT_SECS);
    assert_eq!(name(drain(s, &w, late).await), "DrainTimedOut");
}

// -- Batches with a continuation.

/// A cluster with `n` pods of one Deployment, through the surge.
async fn big(n: i32) -> (FakeCloud, MigrationState, Timestamp) {
    let f = scenario();
    let mut d = deployment("default", "big", n);
    d.pod_requests = ngm_core::model::Resources {
        cpu_millis: 1,
        memory_bytes: 1 << 20,
    };
    f.add_workload(d);
    f.reconcile();
    let w = f.world();
    let mut now = T0;
    // A new group that can hold them: EKS's max pods allow 57 of them per c5.xlarge node.
    let target = serde_json::json!({
        "instanceTypes": ["c5.xlarge"],
        "scaling": {"min": 3, "max": n / 50 + 3, "desired": 3},
    });
    let start = super::tests::state_with(target, serde_json::json!({}));
    let s = super::tests::through_surge_from(&f, &w, &mut now, start).await;
    let s = ok(cut_traffic(s, &w, now).await);
    (f, s, now)
}

#[tokio::test]
async fn retire_marks_a_large_cluster_in_batches_before_scaling_anything_down() {
    let (f, mut s, now) = big(1_100).await;
    let w = f.world();
    let mut invocations = 0;
    loop {
        f.clear_calls();
        s = ok(retire(s, &w, now).await);
        invocations += 1;
        let marked = count(&f, "annotate_pod");
        assert!(
            marked <= BATCH_MAX_ACTIONS,
            "{marked} marks in one invocation"
        );
        let Some(c) = s.continuation.clone() else {
            break;
        };
        assert_eq!(c.step, "retire");
        assert_eq!(c.batches, invocations);
        assert_eq!(
            count(&f, "scale_workload"),
            0,
            "no scale-down before every mark"
        );
        assert_eq!(s.pending, None, "a continuation is no wait");
        assert!(invocations < 10);
    }
    // 1,100 old big pods plus web's and coredns's 5.
    assert_eq!(invocations, 3);
    assert!(count(&f, "scale_workload") >= 1, "{:?}", f.mutations());
    assert_eq!(s.counts.pods_marked, 1_105);
    let marked = f
        .snapshot()
        .pods
        .values()
        .filter(|p| p.annotations.contains_key(marks::POD_DELETION_COST))
        .count();
    assert_eq!(marked, 1_105);
}

/// Marking is bounded work, not the wait: Retire's deadline starts with the scale-back, so
/// a large cluster whose marks take many invocations (each long on a loaded API server) still
/// gets the whole wait.
#[tokio::test]
async fn retires_deadline_starts_when_the_marks_are_done() {
    let (f, mut s, mut now) = big(1_100).await;
    let w = f.world();
    s = ok(retire(s, &w, now).await);
    assert!(s.continuation.is_some());
    assert_eq!(s.deadlines.retired_by, None, "no deadline while marking");
    // The marks took 20 minutes in all.
    while s.continuation.is_some() {
        now = now.plus(600);
        s = ok(retire(s, &w, now).await);
    }
    assert_eq!(
        s.deadlines.retired_by,
        Some(now.plus(ngm_core::plan::deadlines::RETIRE_SECS))
    );
}

#[tokio::test]
async fn rollback_unmarks_a_large_cluster_in_batches() {
    let (f, mut s, now) = big(1_100).await;
    let w = f.world();
    while {
        s = ok(retire(s, &w, now).await);
        s.continuation.is_some()
    } {}
    f.clear_calls();
    let mut invocations = 0;
    loop {
        f.clear_calls();
        s = ok(rollback(s, &w, now).await);
        invocations += 1;
        assert!(
            f.mutations().len() <= BATCH_MAX_ACTIONS + 1,
            "{}",
            f.mutations().len()
        );
        if s.continuation.is_none() {
            break;
        }
        assert_eq!(
            s.continuation.as_ref().map(|c| c.step.as_str()),
            Some("rollback")
        );
        assert!(invocations < 10);
    }
    assert!(invocations >= 3, "{invocations}");
    let left = f
        .snapshot()
        .pods
        .values()
        .filter(|p| p.annotations.contains_key(marks::EXECUTION))
        .count();
    assert_eq!(left, 0);
}

// -- Harmless races.

#[tokio::test]
async fn a_mark_on_a_pod_or_node_just_gone_counts_as_done() {
    let f = scenario();
    let w = f.world();
    let s = state_for(serde_json::json!({}));
    let exec = executor(&s, &w, "test");
    let gone_pod = Action::AnnotatePod {
        namespace: "default".into(),
        name: "gone".into(),
        annotations: [(marks::EXECUTION.to_string(), Some("x".to_string()))].into(),
    };
    let gone_node = Action::AddNodeTaints {
        node: "reclaimed-spot-node".into(),
        taints: vec![],
    };
    for a in [&gone_pod, &gone_node] {
        assert_eq!(exec.run(a).await, Ok(crate::exec::Outcome::Done), "{a:?}");
    }
    // An adapter that answers the 404 as NotFound is done too.
    f.fail_next(
        "annotate_pod",
        PortError::NotFound {
            what: "pod default/gone".into(),
        },
    );
    f.fail_next(
        "patch_node_taints",
        PortError::NotFound {
            what: "node reclaimed-spot-node".into(),
        },
    );
    for a in [&gone_pod, &gone_node] {
        assert_eq!(exec.run(a).await, Ok(crate::exec::Outcome::Done), "{a:?}");
    }
    // Anything else still fails.
    f.fail_next("evict_pod", PortError::NotFound { what: "pod".into() });
    let evict = Action::EvictPod {
        namespace: "default".into(),
        name: "x".into(),
        uid: "u".into(),
    };
    assert!(exec.run(&evict).await.is_err());
}

#[tokio::test]
async fn a_namespace_being_deleted_is_skipped_with_a_finding() {
    let f = unguarded();
    let w = f.world();
    let s = ok(taint(state_for(serde_json::json!({})), &w, T0).await);
    f.edit(|w| {
        w.terminating_namespaces.insert("default".into());
    });
    let s = ok(drain(s, &w, T0).await);
    assert_eq!(s.skipped_namespaces, vec!["default".to_string()]);
    assert!(
        s.findings
            .iter()
            .any(|x| x.contains("namespace default is being deleted")),
        "{:?}",
        s.findings
    );
    // The next round leaves the namespace to its controller: no eviction, and done.
    f.clear_calls();
    let s = ok(drain(s, &w, T0.plus(120)).await);
    assert_eq!(count(&f, "evict_pod"), 0);
    assert_eq!(s.phase, Phase::Drained);
    let s = ok(delete_old(s, &w, T0.plus(240)).await);
    assert_eq!(
        s.phase,
        Phase::OldGroupEmpty,
        "not held by the namespace's pods"
    );
}

/// CutTraffic's loop: nothing is cut while a new instance is not a healthy target (a CLB does
/// not fail open); once it is, the old nodes are labelled out; the step then waits until no old
/// instance is registered, and fails with `TargetsNotHealthy` if the gate never opens.
#[tokio::test]
async fn cut_traffic_gates_on_healthy_new_targets_then_observes_the_drain() {
    use ngm_core::model::{NodeView, TargetHealth, TargetHealthState as St};
    use ngm_core::plan::deadlines::TARGETS_HEALTHY_SECS;
    let f = scenario();
    let w = f.world();
    let mut now = T0;
    let s = through_surge(&f, &w, &mut now).await;
    let (old, new): (Vec<NodeView>, Vec<NodeView>) = f
        .snapshot()
        .nodes
        .into_values()
        .partition(|n| n.labels.contains_key(marks::RETIRING_LABEL));
    assert!(!old.is_empty() && !new.is_empty());
    let ids = |ns: &[NodeView]| -> Vec<String> {
        ns.iter()
            .filter_map(|n| n.instance_id().map(str::to_string))
            .collect()
    };
    let set = |old_state: Option<St>, new_state: St| {
        let mut t: Vec<TargetHealth> = ids(&new)
            .into_iter()
            .map(|id| TargetHealth {
                target_id: id,
                port: None,
                state: new_state.clone(),
            })
            .collect();
        if let Some(st) = old_state {
            t.extend(ids(&old).into_iter().map(|id| TargetHealth {
                target_id: id,
                port: None,
                state: st.clone(),
            }));
        }
        f.edit(|s| {
            s.target_health.insert("arn:tg/web".into(), t);
        });
    };
    let excluded = |f: &FakeCloud| {
        f.snapshot()
            .nodes
            .values()
            .filter(|n| n.labels.contains_key(marks::EXCLUDE_FROM_LB_LABEL))
            .count()
    };

    set(Some(St::Healthy), St::Initial);
    let s = ok(cut_traffic(s, &w, now).await);
    let reason = s
        .pending
        .as_ref()
        .map(|p| p.reason.clone())
        .unwrap_or_default();
    assert!(reason.contains("new targets not healthy yet"), "{reason}");
    assert_eq!(
        excluded(&f),
        0,
        "nothing cut before the new targets are healthy"
    );

    set(Some(St::Healthy), St::Healthy);
    now = now.plus(10);
    let s = ok(cut_traffic(s, &w, now).await);
    assert_eq!(excluded(&f), old.len());
    assert_eq!(s.deadlines.traffic_cut_at, Some(now));
    assert!(
        s.pending.is_some(),
        "the drain is not observed in the cut's own call"
    );

    set(Some(St::Draining), St::Healthy);
    let s = ok(cut_traffic(s, &w, now.plus(10)).await);
    let reason = s
        .pending
        .as_ref()
        .map(|p| p.reason.clone())
        .unwrap_or_default();
    assert!(reason.contains("draining"), "{reason}");

    set(None, St::Healthy);
    let s = ok(cut_traffic(s, &w, now.plus(20)).await);
    assert_eq!(s.pending, None, "drained: on to Retire");

    // The gate that never opens: its deadline, and nothing cut.
    let f2 = scenario();
    let w2 = f2.world();
    let mut now2 = T0;
    let s2 = through_surge(&f2, &w2, &mut now2).await;
    f2.edit(|s| {
        s.target_health.insert(
            "arn:tg/web".into(),
            ids(&old)
                .into_iter()
                .map(|id| TargetHealth {
                    target_id: id,
                    port: None,
                    state: St::Healthy,
                })
                .collect(),
        );
    });
    let s2 = ok(cut_traffic(s2, &w2, now2).await);
    assert!(s2.pending.is_some());
    let late = now2.plus(TARGETS_HEALTHY_SECS);
    assert_eq!(name(cut_traffic(s2, &w2, late).await), "TargetsNotHealthy");
    assert_eq!(excluded(&f2), 0);
}

/// A node that joins the old group after the taint (a Spot rebalance's replacement, with the
/// group's label and no mark of ngm's) is found by the group's label, tainted, cordoned and cut
/// from the load balancers by the next step, counted, named in the output, and drained with
/// the others, its pods evicted like theirs.
#[tokio::test]
async fn a_node_that_joins_the_old_group_late_is_tainted_cut_and_drained() {
    let f = scenario();
    let w = f.world();
    let mut now = T0;
    let s = through_surge(&f, &w, &mut now).await;
    let s = ok(cut_traffic(s, &w, now).await);
    let before = s.counts.old_nodes;
    // The replacement joins: a clean copy of an old node, with a pod scheduled on it.
    f.edit(|world| {
        let old = world
            .nodes
            .values()
            .find(|n| n.labels.get(marks::EKS_NODEGROUP_LABEL).map(String::as_str) == Some("ng-a"))
            .cloned()
            .unwrap_or_else(|| panic!("an old node"));
        let mut late = old.clone();
        late.name = "ng-a-late".into();
        late.labels
            .retain(|k, _| !k.starts_with("ngm.io/") && k != marks::EXCLUDE_FROM_LB_LABEL);
        late.annotations.clear();
        late.taints.clear();
        late.unschedulable = false;
        late.provider_id = Some("aws:///eu-west-1a/i-0late".into());
        world
            .node_owners
            .insert(late.name.clone(), world.node_owners[&old.name].clone());
        world.nodes.insert(late.name.clone(), late);
        let mut pod = world
            .pods
            .values()
            .find(|p| p.labels.get("app").map(String::as_str) == Some("web"))
            .cloned()
            .unwrap_or_else(|| panic!("a web pod"));
        pod.name = "web-late".into();
        pod.node_name = Some("ng-a-late".into());
        pod.annotations.clear();
        world
            .pods
            .insert((pod.namespace.clone(), pod.name.clone()), pod);
    });
    let mut s = ok(retire(s, &w, now).await);
    let late = f.snapshot().nodes["ng-a-late"].clone();
    assert!(late.unschedulable, "cordoned");
    assert!(
        late.taints.iter().any(|t| t.key == marks::TAINT_KEY),
        "tainted"
    );
    assert!(
        late.labels.contains_key(marks::EXCLUDE_FROM_LB_LABEL),
        "cut"
    );
    assert!(late.labels.contains_key(marks::RETIRING_LABEL));
    assert_eq!(s.counts.old_nodes, before + 1);
    assert!(
        s.findings
            .iter()
            .any(|n| n.contains("ng-a-late joined the old group")),
        "{:?}",
        s.findings
    );
    while s.pending.is_some() {
        f.reconcile();
        s = ok(retire(s, &w, now).await);
    }
    for _ in 0..20 {
        s = ok(drain(s, &w, now).await);
        if s.pending.is_none() {
            break;
        }
        f.reconcile();
        now = now.plus(30);
    }
    assert_eq!(s.phase, Phase::Drained);
    let left: Vec<_> = f
        .snapshot()
        .pods
        .values()
        .filter(|p| {
            p.node_name.as_deref() == Some("ng-a-late") && p.owner_kind() != Some("DaemonSet")
        })
        .map(|p| p.name.clone())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

// -- Pods that run to completion.

/// `unguarded()` with a Job's pod running on the first old node.
fn with_a_job() -> (FakeCloud, String) {
    let f = unguarded();
    let node = f.edit(|s| {
        // A copy of a web pod, made a Job's.
        let mut p = s
            .pods
            .values()
            .find(|p| p.name.starts_with("web"))
            .cloned()
            .unwrap_or_else(|| panic!("fixture: no web pod"));
        p.name = "etl-x1".into();
        p.uid = "uid-etl-x1".into();
        p.labels = [("job-name".to_string(), "etl".to_string())].into();
        p.owner = Some(ngm_core::model::OwnerRef {
            kind: "Job".into(),
            name: "etl".into(),
            uid: None,
        });
        let node = p.node_name.clone().unwrap_or_default();
        s.pods.insert(("default".into(), "etl-x1".into()), p);
        node
    });
    (f, node)
}

#[tokio::test]
async fn a_job_left_to_finish_holds_the_drain_until_it_has_finished() {
    let (f, _) = with_a_job();
    let w = f.world();
    let policy = serde_json::json!({"jobs": {"mode": "waitToFinish", "finishWithinSeconds": 1800}});
    let s = ok(taint(state_for(policy), &w, T0).await);
    let mut s = ok(drain(s, &w, T0).await);
    assert_eq!(s.deadlines.jobs_by, Some(T0.plus(1800)));
    assert_eq!(s.counts.pods_waited_for, 1);
    // Everything else is evicted over the rounds; the Job's pod never is.
    for k in 1..=20 {
        f.reconcile();
        s = ok(drain(s, &w, T0.plus(15 * k)).await);
    }
    assert!(
        f.mutations().iter().all(|m| !m.contains("etl-x1")),
        "{:?}",
        f.mutations()
    );
    let p = s
        .pending
        .clone()
        .unwrap_or_else(|| panic!("done early: {s:?}"));
    assert!(p.reason.contains("left to finish"), "{}", p.reason);
    // The pod finishes: the next round tidies it away, and the drain ends.
    f.edit(|snap| {
        if let Some(p) = snap.pods.get_mut(&("default".into(), "etl-x1".into())) {
            p.phase = ngm_core::model::PodPhase::Succeeded;
        }
    });
    s = ok(drain(s, &w, T0.plus(400)).await);
    f.reconcile();
    s = ok(drain(s, &w, T0.plus(415)).await);
    assert_eq!(s.phase, Phase::Drained, "{:?}", s.pending);
    assert_eq!(s.deadlines.jobs_by, Some(T0.plus(1800)), "set once");
}

#[tokio::test]
async fn a_job_still_running_at_the_end_of_its_wait_is_evicted() {
    let (f, _) = with_a_job();
    let w = f.world();
    let policy = serde_json::json!({"jobs": {"mode": "waitToFinish", "finishWithinSeconds": 600}});
    let s = ok(taint(state_for(policy), &w, T0).await);
    let s = ok(drain(s, &w, T0).await);
    assert!(f.mutations().iter().all(|m| !m.contains("etl-x1")));
    let _ = ok(drain(s, &w, T0.plus(600)).await);
    assert!(
        f.mutations()
            .iter()
            .any(|m| m == "evict_pod default/etl-x1"),
        "{:?}",
        f.mutations()
    );
}
