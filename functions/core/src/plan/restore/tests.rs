use std::collections::BTreeMap;

use super::*;
use crate::fixtures::{NodeExt, PodExt, WorkloadExt, deployment, hpa, labels, node, pod};
use crate::plan::nodes::ngm_taint;

const EXEC: &str = "exec-1";

fn surged() -> WorkloadView {
    deployment("a", "web", 6)
        .annotate(marks::ORIGINAL_REPLICAS, "3")
        .annotate(marks::SURGED_REPLICAS, "6")
        .annotate(marks::EXECUTION, EXEC)
}

fn frozen_hpa() -> crate::model::HpaView {
    let mut h = hpa("a", "web", Some(6), 10);
    h.annotations = labels(&[
        (marks::ORIGINAL_HPA_MIN, "2"),
        (marks::ORIGINAL_HPA_MAX, "10"),
        (marks::EXECUTION, EXEC),
    ]);
    h
}

fn old_node() -> NodeView {
    node("old1", "ng-a")
        .label(marks::RETIRING_LABEL, "d")
        .taint(ngm_taint("d"))
        .annotate(marks::EXECUTION, EXEC)
        .annotate(marks::CORDONED, "true")
        .cordoned()
}

#[test]
fn restore_puts_everything_back() {
    let new = node("new1", "ng-b")
        .annotate(marks::EXECUTION, EXEC)
        .annotate(marks::CA_SCALE_DOWN_DISABLED, "true")
        .annotate(marks::SCALE_DOWN_DISABLED_BY_NGM, "true");
    let i = RestoreInputs {
        execution: EXEC,
        workloads: &[surged()],
        hpas: &[frozen_hpa()],
        nodes: &[new],
    };
    let actions = plan_restore(i);
    assert!(
        matches!(&actions[0], Action::PatchHpa { patch, .. } if patch.min_replicas == Some(Some(2)))
    );
    // The HPA's target keeps the HPA's count; only ngm's markers go.
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::ScaleWorkload { .. })),
        "{actions:?}"
    );
    assert!(actions.iter().any(
        |a| matches!(a, Action::AnnotateWorkload { workload, annotations }
        if *workload == surged().workload_ref() && annotations.get(marks::ORIGINAL_REPLICAS) == Some(&None))
    ));
    // Without an HPA, the count goes back.
    let alone = plan_restore(RestoreInputs {
        execution: EXEC,
        workloads: &[surged()],
        hpas: &[],
        nodes: &[],
    });
    assert!(alone.contains(&Action::ScaleWorkload {
        workload: surged().workload_ref(),
        from: 6,
        to: 3
    }));
    assert!(actions.iter().any(
        |a| matches!(a, Action::PatchNodeAnnotations { annotations, .. }
        if annotations.contains_key(marks::CA_SCALE_DOWN_DISABLED))
    ));
}

#[test]
fn restore_plans_nothing_once_the_world_is_restored() {
    let i = RestoreInputs {
        execution: EXEC,
        workloads: &[deployment("a", "web", 3)],
        hpas: &[hpa("a", "web", Some(2), 10)],
        nodes: &[node("new1", "ng-b")],
    };
    assert_eq!(plan_restore(i), vec![]);
}

#[test]
fn rollback_untaints_unpins_restores_and_deletes_the_group_per_policy() {
    let group_tags: BTreeMap<String, String> =
        [(marks::ORIGINAL_SCALING_TAG.to_string(), "2/6/3".to_string())].into();
    let marked = vec![
        pod("a", "web-1", "web", "old1")
            .annotate(marks::EXECUTION, EXEC)
            .annotate(marks::POD_DELETION_COST, "-1000")
            .annotate(marks::ORIGINAL_DELETION_COST, "none"),
    ];
    let new_group = NewGroupInfo {
        name: "ng-b".into(),
        created_by_ngm: true,
        arn: None,
        launch_template_version: None,
    };
    let run = |policy: &Policy, created: bool| {
        let i = RestoreInputs {
            execution: EXEC,
            workloads: &[surged()],
            hpas: &[frozen_hpa()],
            nodes: &[old_node()],
        };
        let g = NewGroupInfo {
            created_by_ngm: created,
            ..new_group.clone()
        };
        plan_rollback(
            i,
            &[node("new1", "ng-b")],
            OldGroup::Managed {
                name: "ng-a",
                arn: "arn:ng",
                scaling: Scaling {
                    min: 3,
                    max: 3,
                    desired: 3,
                },
                tags: &group_tags,
            },
            &marked,
            &Originals::default(),
            Some(&g),
            policy,
        )
    };
    let plan = run(&Policy::default(), true);
    let actions = &plan.restore;
    assert!(
        matches!(&actions[0], Action::RemoveNodeTaints { node, .. } if node == "old1"),
        "old nodes first: {actions:?}"
    );
    assert!(actions.iter().any(|a| matches!(
        a,
        Action::SetUnschedulable {
            unschedulable: false,
            ..
        }
    )));
    let original = Scaling {
        min: 2,
        max: 6,
        desired: 3,
    };
    assert!(actions.iter().any(
        |a| matches!(a, Action::UpdateNodegroupScaling { scaling, .. } if *scaling == original)
    ));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::AnnotatePod { .. }))
    );
    // The new nodes are tainted and drained before their group is deleted.
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::AddNodeTaints { node, .. } if node == "new1"))
    );
    assert!(plan.drain_new_nodes);
    assert_eq!(
        plan.finish[0],
        Action::DeleteNodegroup {
            name: "ng-b".into()
        }
    );
    assert_eq!(plan.finish.len(), 1, "{:?}", plan.finish);

    let keep = Policy {
        rollback_deletes_new_group: false,
        ..Policy::default()
    };
    for plan in [run(&keep, true), run(&Policy::default(), false)] {
        assert!(!plan.finish.contains(&Action::DeleteNodegroup {
            name: "ng-b".into()
        }));
        assert!(!plan.drain_new_nodes);
        assert!(
            !plan
                .restore
                .iter()
                .any(|a| matches!(a, Action::AddNodeTaints { .. }))
        );
    }
}

#[test]
fn the_restore_waits_until_each_hpa_handed_back_holds_its_target() {
    let mut h = hpa("a", "web", Some(2), 10);
    h.desired_replicas = 4;
    let w = surged();
    assert!(
        hpas_settled(std::slice::from_ref(&w), std::slice::from_ref(&h))
            .unwrap_err()
            .contains("asks for 4")
    );
    h.desired_replicas = 6;
    h.generation = 2;
    assert!(
        hpas_settled(std::slice::from_ref(&w), std::slice::from_ref(&h))
            .unwrap_err()
            .contains("not acted")
    );
    h.observed_generation = Some(2);
    assert_eq!(
        hpas_settled(std::slice::from_ref(&w), std::slice::from_ref(&h)),
        Ok(())
    );
    // Targets without ngm's markers are not waited for.
    h.desired_replicas = 1;
    assert_eq!(hpas_settled(&[deployment("a", "web", 6)], &[h]), Ok(()));
}
