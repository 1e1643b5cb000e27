use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::fixtures::{NodeExt, WorkloadExt, deployment, hpa, labels, node};
use crate::model::{AsgInfo, Scaling};

const EXEC: &str = "exec-1";

fn sc(min: i32, max: i32, desired: i32) -> Scaling {
    Scaling { min, max, desired }
}

fn asg(name: &str, scaling: Scaling, tags: &[(&str, &str)], suspended: &[&str]) -> AsgInfo {
    AsgInfo {
        name: name.into(),
        arn: None,
        scaling,
        instances: vec![],
        tags: labels(tags),
        suspended_processes: suspended.iter().map(|s| s.to_string()).collect(),
        launch_template: None,
        override_instance_types: vec![],
        on_demand_share: None,
        subnets: vec![],
        availability_zones: vec![],
        load_balancer_names: vec![],
        target_group_arns: vec![],
        traffic_sources: vec![],
    }
}

#[test]
fn pinning_sets_min_and_max_to_desired() {
    let cases = [
        (sc(2, 6, 3), sc(3, 3, 3)),
        (sc(0, 5, 0), sc(0, 1, 0)),
        (sc(3, 3, 3), sc(3, 3, 3)),
    ];
    for (current, want) in cases {
        assert_eq!(pinned(current), want, "{current:?}");
    }
}

#[test]
fn managed_pin_tags_the_original_then_pins_and_is_idempotent() {
    let (actions, original) =
        plan_pin_managed("ng-a", "arn:ng", sc(2, 6, 3), &BTreeMap::new(), EXEC);
    assert_eq!(original, sc(2, 6, 3));
    assert!(matches!(&actions[0], Action::TagResource { tags, .. }
        if tags.get(marks::ORIGINAL_SCALING_TAG).map(String::as_str) == Some("2/6/3")));
    assert!(
        matches!(&actions[1], Action::UpdateNodegroupScaling { scaling, .. } if *scaling == sc(3, 3, 3))
    );

    // Second run, after a crash that lost the state: the tag still knows the original.
    let tags: BTreeMap<String, String> =
        [(marks::ORIGINAL_SCALING_TAG.to_string(), "2/6/3".to_string())].into();
    let (again, original) = plan_pin_managed("ng-a", "arn:ng", sc(3, 3, 3), &tags, EXEC);
    assert_eq!(again, vec![]);
    assert_eq!(original, sc(2, 6, 3));
}

#[test]
fn asg_pin_records_processes_and_autoscaler_tags_and_undo_restores_them() {
    let a = asg(
        "asg-a",
        sc(1, 5, 2),
        &[
            (marks::CA_ENABLED_TAG, "true"),
            ("k8s.io/cluster-autoscaler/prod", "owned"),
            ("team", "x"),
        ],
        &["AZRebalance"],
    );
    let mut originals = Originals::default();
    let actions = plan_pin_asgs(std::slice::from_ref(&a), "prod", EXEC, &mut originals);
    assert_eq!(originals.old_group_scaling, Some(sc(1, 5, 2)));
    assert_eq!(
        originals.suspended_processes["asg-a"],
        vec!["AZRebalance".to_string()]
    );
    assert_eq!(originals.autoscaler_tags["asg-a"].len(), 2);
    assert!(actions.contains(&Action::SuspendProcesses {
        name: "asg-a".into(),
        processes: vec!["ScheduledActions".into(), "AlarmNotification".into()],
    }));
    assert!(actions.contains(&Action::UpdateAsgSize {
        name: "asg-a".into(),
        scaling: sc(2, 2, 2)
    }));
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::UntagAsg { keys, .. } if keys.len() == 2))
    );

    // The world after the freeze.
    let frozen = asg(
        "asg-a",
        sc(2, 2, 2),
        &[
            ("team", "x"),
            (marks::ORIGINAL_SCALING_TAG, "1/5/2"),
            (
                marks::ORIGINAL_CA_TAGS_TAG,
                "k8s.io/cluster-autoscaler/enabled=true,k8s.io/cluster-autoscaler/prod=owned",
            ),
            (marks::EXECUTION, EXEC),
        ],
        &["AZRebalance", "ScheduledActions", "AlarmNotification"],
    );
    assert_eq!(
        plan_pin_asgs(std::slice::from_ref(&frozen), "prod", EXEC, &mut originals),
        vec![]
    );

    // Undo from the tags alone, with an empty state.
    let undo = plan_unpin_asgs(std::slice::from_ref(&frozen), &Originals::default());
    assert!(undo.contains(&Action::UpdateAsgSize {
        name: "asg-a".into(),
        scaling: sc(1, 5, 2)
    }));
    assert!(
        undo.iter().any(|a| matches!(a, Action::TagAsg { tags, .. }
        if tags.get(marks::CA_ENABLED_TAG).map(String::as_str) == Some("true") && tags.len() == 2))
    );
    assert!(
        undo.iter()
            .any(|a| matches!(a, Action::UntagAsg { keys, .. } if keys.len() == 3))
    );
    // AZRebalance was suspended before ngm: it stays suspended (from the state's originals).
    let undo = plan_unpin_asgs(std::slice::from_ref(&frozen), &originals);
    assert!(undo.contains(&Action::ResumeProcesses {
        name: "asg-a".into(),
        processes: vec!["ScheduledActions".into(), "AlarmNotification".into()],
    }));
}

#[test]
fn hpa_min_is_raised_to_the_surge_and_restored_exactly() {
    let w = deployment("a", "web", 3);
    let affected: BTreeSet<_> = [w.workload_ref()].into();
    let policy = crate::request::Policy::default();
    struct Case {
        name: &'static str,
        hpa: crate::model::HpaView,
        min: Option<Option<i32>>,
        max: Option<i32>,
    }
    let cases = [
        Case {
            name: "min below surge",
            hpa: hpa("a", "web", Some(2), 10),
            min: Some(Some(6)),
            max: None,
        },
        Case {
            name: "max raised with it",
            hpa: hpa("a", "web", Some(2), 4),
            min: Some(Some(6)),
            max: Some(6),
        },
        Case {
            name: "unset min",
            hpa: hpa("a", "web", None, 10),
            min: Some(Some(6)),
            max: None,
        },
        Case {
            name: "min already above surge",
            hpa: hpa("a", "web", Some(8), 10),
            min: None,
            max: None,
        },
    ];
    for c in cases {
        let actions = plan_freeze_hpas(
            std::slice::from_ref(&c.hpa),
            std::slice::from_ref(&w),
            &affected,
            &policy,
            EXEC,
        );
        // The Deployment's replica count goes on it before the HPA moves it.
        assert!(
            matches!(actions.first(), Some(Action::AnnotateWorkload { annotations, .. })
                if annotations.get(marks::ORIGINAL_REPLICAS) == Some(&Some(w.replicas.to_string()))),
            "{}: {actions:?}",
            c.name
        );
        let Some(patch) = actions.iter().find_map(|a| match a {
            Action::PatchHpa { patch, .. } => Some(patch),
            _ => None,
        }) else {
            panic!("{}: no patch in {actions:?}", c.name);
        };
        assert_eq!(patch.min_replicas, c.min, "{}", c.name);
        assert_eq!(patch.max_replicas, c.max, "{}", c.name);
        assert!(
            patch.annotations.contains_key(marks::ORIGINAL_HPA_MIN),
            "{}",
            c.name
        );
    }

    // After the freeze, an unset min restores to unset, not to 1.
    let mut frozen = hpa("a", "web", Some(6), 10);
    frozen.annotations = labels(&[
        (marks::ORIGINAL_HPA_MIN, marks::UNSET),
        (marks::ORIGINAL_HPA_MAX, "10"),
        (marks::EXECUTION, EXEC),
    ]);
    // A frozen Deployment carries its original count already.
    let mut w_frozen = w.clone();
    w_frozen
        .annotations
        .insert(marks::ORIGINAL_REPLICAS.into(), w.replicas.to_string());
    assert_eq!(
        plan_freeze_hpas(
            std::slice::from_ref(&frozen),
            std::slice::from_ref(&w_frozen),
            &affected,
            &policy,
            EXEC
        ),
        vec![]
    );
    let Some(Action::PatchHpa { patch, .. }) = restore_hpa(&frozen) else {
        panic!("no restore");
    };
    assert_eq!(patch.min_replicas, Some(None));
    assert_eq!(patch.max_replicas, None);
    assert_eq!(patch.annotations.len(), 3);
    assert_eq!(restore_hpa(&hpa("a", "web", Some(2), 4)), None);
}

#[test]
fn hpas_of_unaffected_workloads_are_not_touched() {
    let w = deployment("a", "web", 3).annotate(marks::ORIGINAL_REPLICAS, "3");
    let actions = plan_freeze_hpas(
        &[hpa("a", "web", Some(1), 5)],
        &[w],
        &BTreeSet::new(),
        &Default::default(),
        EXEC,
    );
    assert_eq!(actions, vec![]);
}

#[test]
fn new_nodes_are_protected_once_and_user_annotations_are_kept() {
    let fresh = node("new1", "ng-b");
    let user = node("new2", "ng-b").annotate(marks::CA_SCALE_DOWN_DISABLED, "true");
    let actions = plan_protect_new_nodes(&[fresh, user], EXEC);
    assert_eq!(actions.len(), 1);
    assert!(
        matches!(&actions[0], Action::PatchNodeAnnotations { node, annotations }
        if node == "new1" && annotations.contains_key(marks::SCALE_DOWN_DISABLED_BY_NGM))
    );
}

#[test]
fn scaling_tag_round_trips_and_rejects_junk() {
    assert_eq!(
        parse_scaling(&format_scaling(sc(1, 5, 2))),
        Some(sc(1, 5, 2))
    );
    assert_eq!(parse_scaling("1/5"), None);
    assert_eq!(parse_scaling("1/5/2/9"), None);
    assert_eq!(parse_scaling("a/b/c"), None);
}
