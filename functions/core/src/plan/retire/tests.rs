use std::collections::BTreeSet;

use super::*;
use crate::fixtures::{PodExt, WorkloadExt, deployment, hpa, labels, pod, replicaset};

const EXEC: &str = "exec-1";

fn surged_web() -> crate::model::WorkloadView {
    deployment("a", "web", 6)
        .annotate(marks::ORIGINAL_REPLICAS, "3")
        .annotate(marks::SURGED_REPLICAS, "6")
        .annotate(marks::EXECUTION, EXEC)
}

#[test]
fn mark_targets_only_old_pods_of_surged_deployments() {
    let rs = vec![replicaset("a", "web"), replicaset("a", "db")];
    let surged: BTreeSet<_> = [surged_web().workload_ref()].into();
    let pods = vec![
        pod("a", "web-1", "web", "old1"),
        pod("a", "web-2", "web", "old1").annotate(marks::POD_DELETION_COST, "-1000"),
        pod("a", "web-3", "web", "old1").terminating(),
        pod("a", "db-1", "db", "old1"),
        pod("a", "web-4", "web", "old1").annotate("ngm.io/skip-migration", "true"),
        pod("a", "web-5", "web", "old1").annotate(marks::POD_DELETION_COST, "5"),
    ];
    let actions = plan_mark(&pods, &rs, &surged, &Default::default(), EXEC);
    let names: Vec<&str> = actions
        .iter()
        .filter_map(|a| match a {
            Action::AnnotatePod { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(names, vec!["web-1", "web-5"]);
    assert!(
        matches!(&actions[1], Action::AnnotatePod { annotations, .. }
        if annotations.get(marks::ORIGINAL_DELETION_COST) == Some(&Some("5".into())))
    );
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

fn at(w: crate::model::WorkloadView, replicas: i32) -> crate::model::WorkloadView {
    crate::model::WorkloadView { replicas, ..w }
}

#[test]
fn retire_hands_the_hpa_back_and_never_scales_its_target() {
    let actions = plan_retire(
        &[surged_web(), deployment("a", "other", 4)],
        &[frozen_hpa()],
        EXEC,
    );
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert!(
        matches!(&actions[0], Action::PatchHpa { patch, .. } if patch.min_replicas == Some(Some(2)))
    );
    // Handed back, the HPA raised the count under load: ngm leaves it.
    let mut back = hpa("a", "web", Some(2), 10);
    back.desired_replicas = 9;
    assert_eq!(plan_retire(&[at(surged_web(), 9)], &[back], EXEC), vec![]);
}

#[test]
fn retire_scales_a_deployment_without_hpa_back_once() {
    let actions = plan_retire(&[surged_web()], &[], EXEC);
    assert_eq!(
        actions,
        vec![Action::ScaleWorkload {
            workload: surged_web().workload_ref(),
            from: 6,
            to: 3
        }]
    );
    // Already back: nothing to do.
    assert_eq!(plan_retire(&[at(surged_web(), 3)], &[], EXEC), vec![]);
    // Someone else set another count since (an operator, a KEDA-like scaler): left alone.
    assert_eq!(plan_retire(&[at(surged_web(), 5)], &[], EXEC), vec![]);
}

#[test]
fn a_workload_whose_pods_left_the_old_nodes_is_retired_whatever_its_count() {
    let mut w = at(surged_web(), 9);
    w.ready_replicas = 9;
    let mut h = hpa("a", "web", Some(2), 10);
    h.desired_replicas = 10;
    assert_eq!(retired(&w, Some(&h), 9, 0), Ok(()));
    // Pods still on old nodes: the HPA must hold the count first.
    assert!(
        retired(&w, Some(&h), 9, 2)
            .unwrap_err()
            .contains("asks for 10")
    );
}

#[test]
fn an_hpa_target_is_retired_once_the_hpa_acted_on_the_minimum_handed_back() {
    let mut w = at(surged_web(), 6);
    w.ready_replicas = 6;
    let mut h = hpa("a", "web", Some(2), 10);
    h.desired_replicas = 6;
    h.generation = 3;
    h.observed_generation = Some(2);
    assert!(
        retired(&w, Some(&h), 6, 3)
            .unwrap_err()
            .contains("not acted")
    );
    h.observed_generation = Some(3);
    // Rising load: the HPA keeps 6; the 3 old pods are the drain's.
    assert_eq!(retired(&w, Some(&h), 6, 3), Ok(()));
    // The HPA asks for 4: its target must get there, and its extra pods go first.
    h.desired_replicas = 4;
    assert!(retired(&w, Some(&h), 6, 3).is_err());
    let w4 = crate::model::WorkloadView {
        ready_replicas: 4,
        ..at(surged_web(), 4)
    };
    assert!(
        retired(&w4, Some(&h), 6, 1)
            .unwrap_err()
            .contains("still runs 6 pods for 4")
    );
    assert_eq!(retired(&w4, Some(&h), 4, 1), Ok(()));
}

#[test]
fn a_deployment_without_hpa_is_retired_off_its_surge() {
    let mut w = surged_web();
    w.ready_replicas = 6;
    assert!(retired(&w, None, 6, 3).unwrap_err().contains("at 6 of 3"));
    let mut w3 = at(surged_web(), 3);
    w3.ready_replicas = 3;
    assert!(
        retired(&w3, None, 4, 1)
            .unwrap_err()
            .contains("still runs 4 pods for 3")
    );
    assert_eq!(retired(&w3, None, 3, 1), Ok(()));
    // Scaled elsewhere by someone else: judged at that count.
    let mut w5 = at(surged_web(), 5);
    w5.ready_replicas = 5;
    assert_eq!(retired(&w5, None, 5, 2), Ok(()));
}

#[test]
fn verification_notices_when_the_controller_took_new_pods() {
    let w = at(surged_web(), 3);
    let retiring: BTreeSet<String> = ["old1".to_string()].into();
    let good = vec![
        pod("a", "n1", "web", "new1"),
        pod("a", "n2", "web", "new1"),
        pod("a", "n3", "web", "new2"),
    ];
    let check = verify_retire(&w, &good, &retiring);
    assert_eq!(
        (check.left_on_old, check.on_new, check.new_pods_taken),
        (0, 3, false)
    );
    let bad = vec![
        pod("a", "o1", "web", "old1"),
        pod("a", "n2", "web", "new1"),
        pod("a", "n3", "web", "new2"),
    ];
    let check = verify_retire(&w, &bad, &retiring);
    assert_eq!(
        (check.left_on_old, check.on_new, check.new_pods_taken),
        (1, 2, true)
    );
    // An HPA holding more than the original keeps old pods by design, not by mistake.
    let check = verify_retire(&at(surged_web(), 5), &bad, &retiring);
    assert!(!check.new_pods_taken);
}

#[test]
fn unmark_restores_a_prior_cost_or_removes_ours() {
    let pods = vec![
        pod("a", "p1", "web", "old1")
            .annotate(marks::EXECUTION, EXEC)
            .annotate(marks::POD_DELETION_COST, "-1000")
            .annotate(marks::ORIGINAL_DELETION_COST, "none"),
        pod("a", "p2", "web", "old1")
            .annotate(marks::EXECUTION, EXEC)
            .annotate(marks::POD_DELETION_COST, "-1000")
            .annotate(marks::ORIGINAL_DELETION_COST, "7"),
        pod("a", "p3", "web", "old1"),
    ];
    let actions = plan_unmark(&pods, EXEC);
    assert_eq!(actions.len(), 2);
    assert!(
        matches!(&actions[0], Action::AnnotatePod { annotations, .. }
        if annotations.get(marks::POD_DELETION_COST) == Some(&None))
    );
    assert!(
        matches!(&actions[1], Action::AnnotatePod { annotations, .. }
        if annotations.get(marks::POD_DELETION_COST) == Some(&Some("7".into())))
    );
}
