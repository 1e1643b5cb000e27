use std::collections::BTreeMap;

use serde_json::json;

use super::*;
use crate::fixtures::{NodeExt, PodExt, SpecExt, managed_source, node, pod, request_with_target};
use crate::plan::newgroup::derive_target;

const EXEC: &str = "exec-1";

#[test]
fn lock_is_taken_kept_or_refused() {
    let none = BTreeMap::new();
    assert!(matches!(
        plan_lock("arn:c", &none, EXEC, false),
        LockDecision::Acquire { .. }
    ));
    let mine: BTreeMap<String, String> = [(marks::LOCK_TAG.to_string(), EXEC.to_string())].into();
    assert_eq!(plan_lock("arn:c", &mine, EXEC, true), LockDecision::Held);
    let theirs: BTreeMap<String, String> =
        [(marks::LOCK_TAG.to_string(), "other".to_string())].into();
    assert_eq!(
        plan_lock("arn:c", &theirs, EXEC, true),
        LockDecision::Busy {
            holder: "other".into()
        }
    );
    assert!(matches!(
        plan_lock("arn:c", &theirs, EXEC, false),
        LockDecision::Acquire { .. }
    ));
    assert_eq!(plan_unlock("arn:c", &theirs, EXEC), vec![]);
    assert_eq!(plan_unlock("arn:c", &mine, EXEC).len(), 1);
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
