use serde_json::json;

use super::*;
use crate::fixtures::{NodeExt, PodExt, SpecExt, managed_source, node, pod, request_with_target};
use crate::plan::newgroup::derive_target;

const EXEC: &str = "exec-1";

fn record(holder: &str, acquired_at: i64, lease_until: i64) -> LockRecord {
    LockRecord {
        key: "arn:c".into(),
        holder: holder.into(),
        holder_arn: None,
        acquired_at: Timestamp(acquired_at),
        lease_until: Timestamp(lease_until),
        state: None,
    }
}

#[test]
fn a_free_lock_is_acquired_until_the_lease_end() {
    assert_eq!(
        plan_lock("arn:c", None, EXEC, Timestamp(100), Timestamp(900)),
        LockDecision::Acquire {
            record: record(EXEC, 100, 900)
        }
    );
}

#[test]
fn a_live_lease_of_another_execution_is_busy() {
    let theirs = record("other", 0, 500);
    assert_eq!(
        plan_lock("arn:c", Some(&theirs), EXEC, Timestamp(500), Timestamp(900)),
        LockDecision::Busy {
            holder: "other".into(),
            lease_until: Timestamp(500)
        }
    );
}

#[test]
fn an_expired_lease_is_taken_over() {
    let theirs = record("other", 0, 499);
    assert_eq!(
        plan_lock("arn:c", Some(&theirs), EXEC, Timestamp(500), Timestamp(900)),
        LockDecision::Acquire {
            record: record(EXEC, 500, 900)
        }
    );
}

#[test]
fn the_holder_keeps_a_long_enough_lease_and_renews_a_short_one() {
    let mine = record(EXEC, 10, 900);
    assert_eq!(
        plan_lock("arn:c", Some(&mine), EXEC, Timestamp(500), Timestamp(900)),
        LockDecision::Held
    );
    assert_eq!(
        plan_lock("arn:c", Some(&mine), EXEC, Timestamp(500), Timestamp(1200)),
        LockDecision::Acquire {
            record: record(EXEC, 10, 1200)
        }
    );
}

#[test]
fn only_the_holder_releases() {
    assert!(plan_unlock(Some(&record(EXEC, 0, 1)), EXEC));
    assert!(!plan_unlock(Some(&record("other", 0, 1)), EXEC));
    assert!(!plan_unlock(None, EXEC));
}

#[test]
fn the_lease_covers_every_wait_of_the_request() {
    let mut req = request_with_target(json!({}));
    req.policy.drain_deadline_seconds = 1000;
    let base = lease_seconds(&req, Some(100));
    assert_eq!(base, STEP_WAITS_SECS + 100 + 1000 + LEASE_MARGIN_SECS);
    assert_eq!(
        lease_seconds(&req, None),
        base - 100 + ASSUMED_LB_DRAIN_SECS
    );
    req.policy.lb_drain_seconds_override = Some(7);
    assert_eq!(lease_seconds(&req, Some(100)), base - 100 + 7);
    req.policy.on_pdb_blocked = OnPdbBlocked::WaitForOperator;
    assert_eq!(
        lease_seconds(&req, Some(100)),
        base - 100 + 7 + OPERATOR_WAIT_SECS
    );
}

#[test]
fn create_adopts_its_own_group_and_refuses_a_stranger() {
    let req = request_with_target(json!({"releaseVersion": "1.33.0-20250704"}));
    let derived = derive_target(&req, &managed_source());
    let CreateDecision::Create {
        spec,
        client_request_token,
        launch_template,
    } = plan_create_group(&req, &derived, None, EXEC)
    else {
        panic!("expected create");
    };
    assert_eq!(
        spec.tags.get(CREATED_BY_TAG).map(String::as_str),
        Some(EXEC)
    );
    assert_eq!(
        client_request_token,
        crate::plan::newgroup::client_request_token(EXEC, "create-nodegroup")
    );
    assert_eq!(launch_template, None);

    let mut existing = (*spec).clone();
    existing.status = NodeGroupStatus::Creating;
    assert_eq!(
        plan_create_group(&req, &derived, Some(&existing), EXEC),
        CreateDecision::Adopt {
            created_by_ngm: true
        }
    );

    let mut same_shape_other = derived.clone();
    same_shape_other.tags.clear();
    assert_eq!(
        plan_create_group(&req, &derived, Some(&same_shape_other), EXEC),
        CreateDecision::Adopt {
            created_by_ngm: false
        }
    );

    let mut stranger = same_shape_other;
    stranger.instance_types = vec!["t3.nano".into()];
    assert!(matches!(
        plan_create_group(&req, &derived, Some(&stranger), EXEC),
        CreateDecision::Conflict { .. }
    ));
}

#[test]
fn create_versions_the_launch_template_first() {
    let source = managed_source().with_launch_template("lt-web", "4");
    let req = request_with_target(
        json!({"launchTemplate": {"newVersion": {"imageId": "ami-0123456789abcdef0"}}}),
    );
    let derived = derive_target(&req, &source);
    let CreateDecision::Create {
        launch_template:
            Some(Action::CreateLaunchTemplateVersion {
                template,
                overrides,
                ..
            }),
        ..
    } = plan_create_group(&req, &derived, None, EXEC)
    else {
        panic!("expected a template version");
    };
    assert_eq!(template.name.as_deref(), Some("lt-web"));
    assert_eq!(overrides.image_id.as_deref(), Some("ami-0123456789abcdef0"));
}

#[test]
fn group_is_ready_when_active_with_desired_ready_nodes() {
    let mut g = managed_source();
    g.scaling.desired = 2;
    let nodes = vec![node("n1", "ng-a"), node("n2", "ng-a").not_ready()];
    assert_eq!(
        group_ready(None, &nodes),
        Err("the new group does not exist yet".into())
    );
    assert_eq!(
        group_ready(Some(&g), &nodes),
        Err("1 of 2 nodes of ng-a are Ready".into())
    );
    assert_eq!(
        group_ready(Some(&g), &[node("n1", "ng-a"), node("n2", "ng-a")]),
        Ok(())
    );
    g.status = NodeGroupStatus::Creating;
    assert!(group_ready(Some(&g), &[]).is_err());
    assert_eq!(group_failed(Some(&g)), None);
    g.status = NodeGroupStatus::CreateFailed;
    assert!(group_failed(Some(&g)).is_some());
}

#[test]
fn old_group_is_deleted_only_when_nothing_movable_remains() {
    let policy = Policy::default();
    let ds = pod("a", "ds-1", "ds", "old1").owned_by("DaemonSet", "ds");
    let opted = pod("a", "o", "o", "old1").annotate("ngm.io/skip-migration", "");
    assert_eq!(
        plan_delete_old(
            NodeGroupKind::Managed,
            "ng-a",
            &[ds.clone(), opted],
            &policy
        ),
        DeleteDecision::Delete {
            action: Action::DeleteNodegroup {
                name: "ng-a".into()
            }
        }
    );
    let left = vec![ds.clone(), pod("a", "web-1", "web", "old1")];
    assert_eq!(
        plan_delete_old(NodeGroupKind::Managed, "ng-a", &left, &policy),
        DeleteDecision::Wait { remaining: 1 }
    );
    let going = vec![ds, pod("a", "web-1", "web", "old1").terminating()];
    assert_eq!(
        plan_delete_old(NodeGroupKind::SelfManagedAsg, "asg", &going, &policy),
        DeleteDecision::Wait { remaining: 1 }
    );
}

fn svc(ns: &str, app: &str) -> crate::model::ServiceView {
    crate::model::ServiceView {
        namespace: ns.into(),
        name: app.into(),
        service_type: crate::model::ServiceType::ClusterIP,
        external_traffic_policy: None,
        lb_hostnames: vec![],
        selector: [("app".to_string(), app.to_string())].into(),
        annotations: Default::default(),
    }
}

/// kubernetes `pkg/controller/nodelifecycle` (a terminated instance's pods stay Ready
/// endpoints for the node monitor grace period): what ngm leaves on the old nodes is stopped
/// first, except daemons that serve no Service, mirror pods, and a DaemonSet's replacement of a
/// pod already stopped.
#[test]
fn the_pods_left_on_the_old_nodes_are_stopped_unless_nothing_is_gained() {
    let started = Timestamp(1000);
    let ingress = pod("ingress", "ingress-abc", "ingress", "old1").owned_by("DaemonSet", "ingress");
    let agent = pod("kube-system", "fluent-bit-x", "fluent-bit", "old1")
        .owned_by("DaemonSet", "fluent-bit");
    let opted_out = pod("a", "batch-1", "batch", "old1").annotate("ngm.io/skip-migration", "");
    let mirror = pod("kube-system", "static-old1", "static", "old1").mirror();
    let mut replacement =
        pod("ingress", "ingress-def", "ingress", "old1").owned_by("DaemonSet", "ingress");
    replacement.created_at = Some(Timestamp(1030));
    let mut done = pod("a", "job-1", "job", "old1").bare();
    done.phase = crate::model::PodPhase::Succeeded;
    let pods = vec![ingress, agent, opted_out, mirror, replacement, done];
    let services = vec![svc("ingress", "ingress")];
    let names: Vec<String> = pods_to_stop(&pods, &services, started)
        .iter()
        .map(|p| p.key())
        .collect();
    assert_eq!(names, vec!["ingress/ingress-abc", "a/batch-1"]);
    // The wait allows for the longest grace period, capped.
    let long = pod("a", "slow", "slow", "old1").grace(7200);
    let short = pod("a", "quick", "quick", "old1").grace(20);
    assert_eq!(stop_wait_secs(&[&short]), 20 + LEFT_PODS_STOP_MARGIN_SECS);
    assert_eq!(
        stop_wait_secs(&[&short, &long]),
        LEFT_PODS_STOP_MAX_GRACE_SECS + LEFT_PODS_STOP_MARGIN_SECS
    );
}
