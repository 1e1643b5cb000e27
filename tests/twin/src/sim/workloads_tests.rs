use k8s_openapi::api::core::v1::{Node, Pod, Toleration};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::json;

use super::*;

#[test]
fn max_surge_rounds_up_and_max_unavailable_rounds_down() {
    // Deployment defaults: 25% each (deploymentutil.ResolveFenceposts).
    assert_eq!(scaled(None, 25, 3, true), 1);
    assert_eq!(scaled(None, 25, 3, false), 0);
    assert_eq!(
        scaled(Some(&IntOrString::String("50%".into())), 25, 5, true),
        3
    );
    assert_eq!(scaled(Some(&IntOrString::Int(2)), 25, 10, false), 2);
    assert_eq!(fenceposts(0, 0), (0, 1));
}

#[test]
fn a_plain_scale_sets_the_only_replicaset_to_the_deployment_count() {
    let s = RolloutState {
        replicas: 6,
        max_surge: 2,
        max_unavailable: 1,
        new_spec: 3,
        new_available: 3,
        old: vec![],
    };
    assert_eq!(rolling_step(&s), (6, vec![]));
}

#[test]
fn a_rollout_surges_the_new_replicaset_within_max_surge() {
    // 3 replicas, maxSurge 1, maxUnavailable 0: the new RS may reach 1 while old holds 3.
    let s = RolloutState {
        replicas: 3,
        max_surge: 1,
        max_unavailable: 0,
        new_spec: 0,
        new_available: 0,
        old: vec![(3, 3)],
    };
    assert_eq!(rolling_step(&s), (1, vec![3]));
}

#[test]
fn a_rollout_shrinks_old_replicasets_only_as_new_pods_become_available() {
    let waiting = RolloutState {
        replicas: 3,
        max_surge: 1,
        max_unavailable: 0,
        new_spec: 1,
        new_available: 0,
        old: vec![(3, 3)],
    };
    assert_eq!(
        rolling_step(&waiting),
        (1, vec![3]),
        "new pod not available yet"
    );
    let ready = RolloutState {
        new_available: 1,
        ..waiting
    };
    assert_eq!(
        rolling_step(&ready),
        (1, vec![2]),
        "one new available: one old can go"
    );
}

/// `cleanupUnhealthyReplicas` removes unavailable old replicas first, but only within
/// `maxScaledDown` (rolling.go `reconcileOldReplicaSets`).
#[test]
fn unhealthy_old_pods_are_cleaned_up_first_within_max_scaled_down() {
    let s = RolloutState {
        replicas: 3,
        max_surge: 1,
        max_unavailable: 0,
        new_spec: 1,
        new_available: 1,
        old: vec![(3, 2)],
    };
    assert_eq!(rolling_step(&s), (1, vec![2]));
}

/// A rollout whose new pod never becomes available, and one of whose old pods was just
/// evicted: `maxScaledDown` is 3 - 2 - 1 = 0, so upstream scales nothing; the old
/// ReplicaSet keeps its count and replaces the evicted pod (rolling.go: "if maxScaledDown
/// <= 0 { return false, nil }").
#[test]
fn a_stalled_rollout_keeps_the_old_replicaset_when_an_old_pod_goes() {
    let s = RolloutState {
        replicas: 2,
        max_surge: 1,
        max_unavailable: 0,
        new_spec: 1,
        new_available: 0,
        old: vec![(2, 1)],
    };
    assert_eq!(rolling_step(&s), (1, vec![2]));
}

/// The new ReplicaSet's growth is the whole pass: old ones shrink in a later one
/// (rolling.go `rolloutRolling` returns once `reconcileNewReplicaSet` scaled).
#[test]
fn scaling_the_new_replicaset_up_is_a_pass_of_its_own() {
    let s = RolloutState {
        replicas: 4,
        max_surge: 1,
        max_unavailable: 1,
        new_spec: 0,
        new_available: 0,
        old: vec![(4, 4)],
    };
    assert_eq!(rolling_step(&s), (1, vec![4]));
}

fn st(states: &[(i32, OrdinalState)]) -> Vec<(i32, OrdinalState)> {
    states.to_vec()
}

/// (why, ordinals and their states, replicas, parallel, expected actions)
type StsRow = (
    &'static str,
    Vec<(i32, OrdinalState)>,
    i32,
    bool,
    Vec<StsAction>,
);

#[test]
fn statefulset_follows_ordered_ready_semantics() {
    use OrdinalState::*;
    use StsAction::*;
    let rows: Vec<StsRow> = vec![
        (
            "creates ordinal 0 first",
            st(&[]),
            3,
            false,
            vec![Create(0)],
        ),
        (
            "waits for 0 to be Ready before 1",
            st(&[(0, NotReady)]),
            3,
            false,
            vec![Wait],
        ),
        (
            "then creates 1",
            st(&[(0, Ready)]),
            3,
            false,
            vec![Create(1)],
        ),
        (
            "recreates a deleted ordinal with its name",
            st(&[(0, Ready), (2, Ready)]),
            3,
            false,
            vec![Create(1)],
        ),
        (
            "waits while a pod terminates",
            st(&[(0, Ready), (1, Terminating), (2, Ready)]),
            3,
            false,
            vec![Wait],
        ),
        (
            "scale-down removes the highest ordinal first",
            st(&[(0, Ready), (1, Ready), (2, Ready)]),
            1,
            false,
            vec![Delete(2)],
        ),
        (
            "one at a time",
            st(&[(0, Ready), (1, Ready), (2, Terminating)]),
            1,
            false,
            vec![Wait],
        ),
        (
            "Parallel creates all at once",
            st(&[]),
            3,
            true,
            vec![Create(0), Create(1), Create(2)],
        ),
        (
            "Parallel deletes all condemned at once",
            st(&[(0, Ready), (1, Ready), (2, Ready)]),
            1,
            true,
            vec![Delete(2), Delete(1)],
        ),
        (
            "steady",
            st(&[(0, Ready), (1, Ready)]),
            2,
            false,
            vec![Nothing],
        ),
    ];
    for (why, pods, replicas, parallel, want) in rows {
        assert_eq!(
            statefulset_actions(&pods, replicas, parallel),
            want,
            "{why}"
        );
    }
}

fn node(taints: serde_json::Value, unschedulable: bool) -> Node {
    serde_json::from_value(json!({
        "metadata": { "name": "n1", "labels": { "kubernetes.io/os": "linux" } },
        "spec": { "taints": taints, "unschedulable": unschedulable },
    }))
    .expect("node decodes")
}

fn daemon_pod(own: Vec<Toleration>) -> Pod {
    let tols = daemon_tolerations(&own, false);
    serde_json::from_value(json!({ "metadata": { "name": "ds" }, "spec": { "containers": [{ "name": "c" }], "tolerations": tols } }))
        .expect("pod decodes")
}

#[test]
fn daemon_pods_tolerate_the_usual_node_taints_but_not_a_custom_one() {
    let pod = daemon_pod(vec![]);
    let rows = [
        ("cordoned node", node(json!([]), true), true),
        (
            "unschedulable taint",
            node(
                json!([{ "key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule" }]),
                true,
            ),
            true,
        ),
        (
            "not-ready NoExecute",
            node(
                json!([{ "key": "node.kubernetes.io/not-ready", "effect": "NoExecute" }]),
                false,
            ),
            true,
        ),
        (
            "memory pressure",
            node(
                json!([{ "key": "node.kubernetes.io/memory-pressure", "effect": "NoSchedule" }]),
                false,
            ),
            true,
        ),
        (
            "custom ngm NoSchedule",
            node(
                json!([{ "key": "ngm.io/migrating", "value": "x", "effect": "NoSchedule" }]),
                false,
            ),
            false,
        ),
        (
            "PreferNoSchedule never excludes",
            node(
                json!([{ "key": "soft", "effect": "PreferNoSchedule" }]),
                false,
            ),
            true,
        ),
    ];
    for (why, n, want) in rows {
        assert_eq!(should_run_daemon_pod(&pod, &n), want, "{why}");
    }
    let tolerant = daemon_pod(vec![Toleration {
        operator: Some("Exists".into()),
        ..Toleration::default()
    }]);
    assert!(should_run_daemon_pod(
        &tolerant,
        &node(
            json!([{ "key": "ngm.io/migrating", "effect": "NoSchedule" }]),
            false
        )
    ));
}

/// kubernetes `pkg/controller/daemon/daemon_controller.go`, `NodeShouldRunDaemonPod`: an
/// untolerated NoSchedule taint means "do not run a new one" but "let the running one continue";
/// only an untolerated NoExecute taint ends it.
#[test]
fn a_running_daemon_pod_survives_a_noschedule_taint_but_not_a_noexecute_one() {
    let pod = daemon_pod(vec![]);
    let no_schedule = node(
        json!([{ "key": "ngm.io/migrating", "value": "x", "effect": "NoSchedule" }]),
        false,
    );
    assert!(!should_run_daemon_pod(&pod, &no_schedule));
    assert!(should_continue_running_daemon_pod(&pod, &no_schedule));
    let no_execute = node(
        json!([{ "key": "ngm.io/migrating", "value": "x", "effect": "NoExecute" }]),
        false,
    );
    assert!(!should_continue_running_daemon_pod(&pod, &no_execute));
}

#[test]
fn hpa_clamps_outside_its_range_and_leaves_the_inside_to_metrics() {
    let rows = [
        ("above max scales down to max", 10, Some(2), 5, Some(5)),
        ("below min scales up to min", 1, Some(3), 5, Some(3)),
        ("inside the range nothing changes", 4, Some(2), 5, Some(4)),
        ("minReplicas defaults to 1", 1, None, 5, Some(1)),
        (
            "minReplicas 0 (scale-to-zero) keeps a target at zero",
            0,
            Some(0),
            5,
            Some(0),
        ),
        ("a target at zero disables autoscaling", 0, Some(2), 5, None),
    ];
    for (why, current, min, max, want) in rows {
        assert_eq!(hpa_desired(current, min, max), want, "{why}");
    }
}
