use std::collections::BTreeSet;

use super::*;
use crate::fixtures::{PodExt, WorkloadExt, deployment, pod};
use crate::request::Policy;

const EXEC: &str = "exec-1";

fn affected(ws: &[&WorkloadView]) -> BTreeSet<WorkloadRef> {
    ws.iter().map(|w| w.workload_ref()).collect()
}

fn scales(actions: &[Action]) -> Vec<(String, i32, i32)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ScaleWorkload { workload, from, to } => {
                Some((workload.name.clone(), *from, *to))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn surge_scales_system_deployments_first_then_users_by_name() {
    let web = deployment("shop", "web", 3);
    let api = deployment("shop", "api", 2);
    let coredns = deployment("kube-system", "coredns", 2);
    let lbc = deployment("kube-system", "aws-load-balancer-controller", 1);
    let all = [web.clone(), api.clone(), lbc.clone(), coredns.clone()];
    let actions = plan_surge(
        &all,
        &affected(&[&web, &api, &coredns, &lbc]),
        &Policy::default(),
        EXEC,
    );
    assert_eq!(
        scales(&actions),
        vec![
            ("coredns".into(), 2, 4),
            ("aws-load-balancer-controller".into(), 1, 2),
            ("api".into(), 2, 4),
            ("web".into(), 3, 6),
        ]
    );
}

#[test]
fn surge_records_the_original_before_scaling() {
    let web = deployment("shop", "web", 3);
    let actions = plan_surge(
        std::slice::from_ref(&web),
        &affected(&[&web]),
        &Policy::default(),
        EXEC,
    );
    assert!(
        matches!(&actions[0], Action::AnnotateWorkload { annotations, .. }
        if annotations.get(marks::ORIGINAL_REPLICAS) == Some(&Some("3".into()))
        && annotations.get(marks::EXECUTION) == Some(&Some(EXEC.into())))
    );
    assert!(matches!(&actions[1], Action::ScaleWorkload { .. }));
}

#[test]
fn surge_cases() {
    let policy = Policy {
        surge_factor: 1.5,
        ..Policy::default()
    };
    type Case = (
        &'static str,
        WorkloadView,
        bool,
        Vec<(String, i32, i32)>,
        usize,
    );
    let cases: Vec<Case> = vec![
        (
            "unaffected deployments are left alone",
            deployment("a", "w", 3),
            false,
            vec![],
            0,
        ),
        (
            "zero replicas need no surge",
            deployment("a", "w", 0),
            true,
            vec![],
            0,
        ),
        (
            "factor rounds up",
            deployment("a", "w", 3),
            true,
            vec![("w".into(), 3, 5)],
            2,
        ),
        (
            "a second run is a no-op",
            deployment("a", "w", 5)
                .annotate(marks::ORIGINAL_REPLICAS, "3")
                .annotate(marks::SURGED_REPLICAS, "5")
                .annotate(marks::EXECUTION, EXEC),
            true,
            vec![],
            0,
        ),
        (
            "a crash after annotating resumes with the recorded original",
            deployment("a", "w", 3)
                .annotate(marks::ORIGINAL_REPLICAS, "3")
                .annotate(marks::SURGED_REPLICAS, "5")
                .annotate(marks::EXECUTION, EXEC),
            true,
            vec![("w".into(), 3, 5)],
            1,
        ),
        (
            "an aborted run's surge is not taken as the original",
            deployment("a", "w", 6)
                .annotate(marks::ORIGINAL_REPLICAS, "3")
                .annotate(marks::EXECUTION, "old-exec"),
            true,
            vec![("w".into(), 6, 5)],
            2,
        ),
    ];
    for (name, w, is_affected, want, n_actions) in cases {
        let set = if is_affected {
            affected(&[&w])
        } else {
            BTreeSet::new()
        };
        let actions = plan_surge(std::slice::from_ref(&w), &set, &policy, EXEC);
        assert_eq!(scales(&actions), want, "{name}");
        assert_eq!(actions.len(), n_actions, "{name}: {actions:?}");
    }
}

#[test]
fn surge_skips_excluded_namespaces() {
    let w = deployment("sandbox", "w", 2);
    let mut policy = Policy::default();
    policy.namespaces.exclude = vec!["sandbox".into()];
    assert_eq!(
        plan_surge(std::slice::from_ref(&w), &affected(&[&w]), &policy, EXEC),
        vec![]
    );
}

#[test]
fn surge_is_settled_only_when_new_nodes_hold_the_original_count() {
    let w = deployment("a", "w", 6).annotate(marks::ORIGINAL_REPLICAS, "3");
    let retiring: BTreeSet<String> = ["old1".to_string()].into();
    let pods = vec![
        pod("a", "p1", "w", "old1"),
        pod("a", "p2", "w", "old1"),
        pod("a", "p3", "w", "new1"),
        pod("a", "p4", "w", "new1"),
        pod("a", "p5", "w", "new2").not_ready(),
        pod("a", "p6", "w", "new2").terminating(),
    ];
    let ready = ready_off(&pods, &retiring);
    assert_eq!(ready, 2);
    assert_eq!(
        surge_settled(&[(&w, ready)]),
        Err("Deployment a/w has 2/3 ready on new nodes".into())
    );
    assert_eq!(surge_settled(&[(&w, 3)]), Ok(()));
}
