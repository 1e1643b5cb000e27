use serde_json::json;

use super::*;
use crate::clock::secs_delta;
use crate::lb::LbSettings;
use crate::lb::targets::LbPhase;

fn t(s: f64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default() + secs_delta(s)
}

fn node(name: &str) -> Value {
    json!({ "metadata": { "name": name } })
}

fn pod(name: &str, node: &str, ready: bool) -> Value {
    json!({
        "metadata": { "namespace": "apps", "name": name },
        "spec": { "nodeName": node },
        "status": {
            "phase": "Running",
            "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }],
        },
    })
}

fn deleting(mut p: Value) -> Value {
    p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    p
}

#[test]
fn a_surged_pod_counts_from_its_binding_on_a_new_node_to_ready() {
    let mut log = PhaseLog::default();
    log.seed(&pod("old", "n-old", true));
    log.observe(EventKind::Added, Resource::Node, &node("n-new"), t(0.0));
    log.observe(
        EventKind::Added,
        Resource::Pod,
        &pod("web-1", "n-new", false),
        t(2.0),
    );
    log.observe(
        EventKind::Modified,
        Resource::Pod,
        &pod("web-1", "n-new", true),
        t(9.5),
    );
    // Seen again Ready: counted once.
    log.observe(
        EventKind::Modified,
        Resource::Pod,
        &pod("web-1", "n-new", true),
        t(30.0),
    );
    // A pod that was there before the run is not surged, nor one on an old node.
    log.observe(
        EventKind::Modified,
        Resource::Pod,
        &pod("old", "n-new", true),
        t(40.0),
    );
    log.observe(
        EventKind::Added,
        Resource::Pod,
        &pod("web-2", "n-old", false),
        t(3.0),
    );
    log.observe(
        EventKind::Modified,
        Resource::Pod,
        &pod("web-2", "n-old", true),
        t(60.0),
    );
    let mut ds = pod("agent", "n-new", false);
    ds["metadata"]["ownerReferences"] = json!([{ "kind": "DaemonSet", "name": "agent" }]);
    log.observe(EventKind::Added, Resource::Pod, &ds, t(1.0));
    ds["status"]["conditions"][0]["status"] = json!("True");
    log.observe(EventKind::Modified, Resource::Pod, &ds, t(80.0));
    assert_eq!(log.surged_ready, vec![7.5]);
}

/// A pod that ends by itself is a termination; one force-deleted by the pod garbage
/// collector after its node went (pkg/controller/podgc/gc_controller.go, `gcOrphaned`) is a
/// pod lost with its node.
#[test]
fn terminations_count_graceful_ends_and_pods_lost_with_their_node_apart() {
    let mut log = PhaseLog::default();
    log.seed(&pod("a", "n1", true));
    log.seed(&pod("b", "n2", true));
    log.seed(&pod("c", "n2", true));
    log.observe(
        EventKind::Modified,
        Resource::Pod,
        &deleting(pod("a", "n1", true)),
        t(10.0),
    );
    log.observe(
        EventKind::Deleted,
        Resource::Pod,
        &deleting(pod("a", "n1", false)),
        t(22.0),
    );
    log.observe(
        EventKind::Modified,
        Resource::Pod,
        &deleting(pod("b", "n2", true)),
        t(10.0),
    );
    log.observe(EventKind::Deleted, Resource::Node, &node("n2"), t(50.0));
    log.observe(
        EventKind::Deleted,
        Resource::Pod,
        &deleting(pod("b", "n2", false)),
        t(90.0),
    );
    let mut done = pod("c", "n2", false);
    done["status"]["phase"] = json!("Succeeded");
    log.observe(EventKind::Deleted, Resource::Pod, &done, t(90.0));
    assert_eq!(log.terminations, vec![12.0]);
    assert_eq!(log.lost_with_nodes, 1, "b went with n2; c had finished");
}

fn lb(healthy: &[(f64, f64)], drained: &[(f64, f64)]) -> LbInfo {
    let spans = |v: &[(f64, f64)]| {
        v.iter()
            .map(|(at, seconds)| PhaseSpan {
                at: t(*at),
                seconds: *seconds,
            })
            .collect()
    };
    LbInfo {
        service: "apps/web".into(),
        settings: LbSettings::default(),
        external_traffic_policy: "Cluster".into(),
        dns_name: None,
        targets: Default::default(),
        phase: LbPhase {
            to_healthy: spans(healthy),
            drained: spans(drained),
        },
    }
}

fn event(group: &str, at: f64, kind: GroupEventKind) -> GroupEvent {
    GroupEvent {
        group: group.into(),
        at: t(at),
        kind,
    }
}

#[test]
fn the_critical_path_adds_the_parts_no_migrator_can_overlap() {
    let log = PhaseLog {
        surged_ready: vec![4.0, 11.0],
        terminations: vec![30.0, 12.0],
        ..PhaseLog::default()
    };
    let history = [
        // A group made before the run does not count.
        event("old", -500.0, GroupEventKind::Created),
        event("old", -400.0, GroupEventKind::Active),
        event("new", 10.0, GroupEventKind::Created),
        event("new", 110.0, GroupEventKind::Active),
        event("old", 300.0, GroupEventKind::DeleteRequested),
        // EKS's drain is the drain's part, not the deletion's.
        event("old", 340.0, GroupEventKind::Drained),
        event("old", 345.0, GroupEventKind::Gone),
    ];
    let balancers = [
        // Spans from before the run are left out.
        lb(&[(-100.0, 500.0), (120.0, 20.0)], &[(200.0, 3.0)]),
        lb(&[(120.0, 10.0)], &[(200.0, 100.0)]),
    ];
    let c = CriticalPath::compute(&log, &history, &balancers, t(0.0));
    assert_eq!(c.new_group_seconds, Some(100.0));
    assert_eq!(c.surged_pod_seconds, Some(11.0));
    assert_eq!(c.load_balancer_seconds, Some(110.0));
    assert_eq!(c.termination_seconds, Some(30.0));
    assert_eq!(c.deletion_seconds, Some(5.0));
    assert!((c.total_seconds - 256.0).abs() < 1e-9);
    // Nothing exercised: every part None, total 0.
    let none = CriticalPath::compute(&PhaseLog::default(), &[], &[], t(0.0));
    assert_eq!(none, CriticalPath::default());
}
