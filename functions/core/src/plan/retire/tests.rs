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

#[test]
fn retire_restores_the_hpa_before_scaling_back() {
    let mut h = hpa("a", "web", Some(6), 10);
    h.annotations = labels(&[
        (marks::ORIGINAL_HPA_MIN, "2"),
        (marks::ORIGINAL_HPA_MAX, "10"),
        (marks::EXECUTION, EXEC),
    ]);
    let actions = plan_retire(&[surged_web(), deployment("a", "other", 4)], &[h], EXEC);
    assert_eq!(actions.len(), 2, "{actions:?}");
    assert!(
        matches!(&actions[0], Action::PatchHpa { patch, .. } if patch.min_replicas == Some(Some(2)))
    );
    assert!(matches!(
        &actions[1],
        Action::ScaleWorkload { from: 6, to: 3, .. }
    ));
    // Already back: nothing to do.
    let back = surged_web();
    let back = crate::model::WorkloadView {
        replicas: 3,
        ..back
    };
    assert_eq!(plan_retire(&[back], &[], EXEC), vec![]);
}

#[test]
fn verification_notices_when_the_controller_took_new_pods() {
    let w = surged_web();
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
