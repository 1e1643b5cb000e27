use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::*;

fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default()
}

/// A Running, Ready pod on `node`, created and ready `age_s` seconds before `t0 + 1 day`.
struct P {
    name: &'static str,
    node: Option<&'static str>,
    phase: &'static str,
    ready: bool,
    cost: Option<&'static str>,
    age_s: i64,
    restarts: i32,
}

impl P {
    fn new(name: &'static str, node: &'static str) -> Self {
        Self {
            name,
            node: Some(node),
            phase: "Running",
            ready: true,
            cost: None,
            age_s: 3600,
            restarts: 0,
        }
    }
    fn pod(&self) -> Pod {
        let at = now() - TimeDelta::seconds(self.age_s);
        let ts = at.to_rfc3339();
        let mut annotations = serde_json::Map::new();
        if let Some(c) = self.cost {
            annotations.insert(DELETION_COST.into(), json!(c));
        }
        serde_json::from_value(json!({
            "metadata": {
                "name": self.name, "namespace": "default", "uid": format!("uid-{}", self.name),
                "creationTimestamp": ts, "annotations": annotations,
            },
            "spec": { "containers": [{"name": "c"}], "nodeName": self.node },
            "status": {
                "phase": self.phase,
                "conditions": [{"type": "Ready", "status": if self.ready {"True"} else {"False"}, "lastTransitionTime": ts}],
                "containerStatuses": [{"name": "c", "image": "i", "imageID": "", "ready": self.ready, "restartCount": self.restarts}],
            },
        }))
        .expect("test pod decodes")
    }
}

fn now() -> DateTime<Utc> {
    t0() + TimeDelta::days(1)
}

fn first_victim(a: P, b: P) -> String {
    let (pa, pb) = (a.pod(), b.pod());
    let pods = [&pa, &pb];
    let victims = pods_to_delete(&pods, &pods, 1, now());
    victims[0].metadata.name.clone().unwrap_or_default()
}

#[test]
fn scale_down_deletes_in_the_replicaset_controllers_documented_order() {
    // Each row: (why, pod deleted first, pod kept). Upstream: ActivePodsWithRanks.Less.
    let rows: Vec<(&str, P, P)> = vec![
        (
            "1. unassigned before assigned",
            P {
                node: None,
                phase: "Pending",
                ready: false,
                ..P::new("a", "")
            },
            P::new("b", "n1"),
        ),
        (
            "2. Pending before Running",
            P {
                phase: "Pending",
                ready: false,
                ..P::new("a", "n1")
            },
            P {
                ready: false,
                ..P::new("b", "n2")
            },
        ),
        (
            "2. Unknown before Running",
            P {
                phase: "Unknown",
                ..P::new("a", "n1")
            },
            P::new("b", "n2"),
        ),
        (
            "3. not ready before ready",
            P {
                ready: false,
                ..P::new("a", "n1")
            },
            P::new("b", "n2"),
        ),
        (
            "4. lower deletion cost first",
            P {
                cost: Some("-100"),
                age_s: 10_000,
                ..P::new("a", "n1")
            },
            P {
                age_s: 10,
                ..P::new("b", "n2")
            },
        ),
        (
            "4. invalid cost counts as 0",
            P {
                cost: Some("junk"),
                ..P::new("a", "n1")
            },
            P {
                cost: Some("5"),
                ..P::new("b", "n2")
            },
        ),
        (
            "6. ready more recently first",
            P {
                age_s: 60,
                ..P::new("a", "n1")
            },
            P {
                age_s: 7200,
                ..P::new("b", "n2")
            },
        ),
        (
            "7. more restarts first",
            P {
                restarts: 3,
                ..P::new("a", "n1")
            },
            P::new("b", "n2"),
        ),
    ];
    for (why, deleted, kept) in rows {
        let want = deleted.name;
        assert_eq!(first_victim(deleted, kept), want, "{why}");
        // The order is a property of the pods, not of their position in the list.
    }
}

#[test]
fn the_order_does_not_depend_on_the_input_order() {
    let a = P {
        ready: false,
        ..P::new("a", "n1")
    }
    .pod();
    let b = P::new("b", "n2").pod();
    for pods in [[&a, &b], [&b, &a]] {
        let victims = pods_to_delete(&pods, &pods, 1, now());
        assert_eq!(victims[0].metadata.name.as_deref(), Some("a"));
    }
}

#[test]
fn scale_down_prefers_pods_doubled_up_on_one_node() {
    // Upstream rank 5: a pod sharing its node with more related pods goes first.
    let a1 = P {
        age_s: 7200,
        ..P::new("a1", "crowded")
    }
    .pod();
    let a2 = P {
        age_s: 7200,
        ..P::new("a2", "crowded")
    }
    .pod();
    let b = P {
        age_s: 60,
        ..P::new("b", "alone")
    }
    .pod();
    let pods = [&b, &a1, &a2];
    let victims = pods_to_delete(&pods, &pods, 1, now());
    assert_ne!(victims[0].metadata.name.as_deref(), Some("b"));
}

#[test]
fn scale_down_ignores_taints_and_cordon_so_new_pods_can_be_picked() {
    // The trap: pods on a tainted, cordoned old node are not preferred. Two fresh pods on new
    // nodes and two old ones: without a deletion cost the newest (the new-node pods) go first.
    let old1 = P {
        age_s: 86_000,
        ..P::new("old1", "old-node")
    }
    .pod();
    let old2 = P {
        age_s: 86_000,
        ..P::new("old2", "old-node-2")
    }
    .pod();
    let new1 = P {
        age_s: 30,
        ..P::new("new1", "new-node")
    }
    .pod();
    let new2 = P {
        age_s: 30,
        ..P::new("new2", "new-node-2")
    }
    .pod();
    let pods = [&old1, &old2, &new1, &new2];
    let mut names: Vec<_> = pods_to_delete(&pods, &pods, 2, now())
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["new1", "new2"]);

    // With a negative pod-deletion-cost on the old pods, they go first.
    let old1 = P {
        age_s: 86_000,
        cost: Some("-1000"),
        ..P::new("old1", "old-node")
    }
    .pod();
    let old2 = P {
        age_s: 86_000,
        cost: Some("-1000"),
        ..P::new("old2", "old-node-2")
    }
    .pod();
    let pods = [&old1, &old2, &new1, &new2];
    let mut names: Vec<_> = pods_to_delete(&pods, &pods, 2, now())
        .iter()
        .filter_map(|p| p.metadata.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["old1", "old2"]);
}

#[test]
fn creation_times_in_the_same_power_of_two_bucket_fall_back_to_uid() {
    // LogarithmicScaleDown: 3000 s and 3100 s ago share a log2(ns) bucket, so the UID decides.
    let a = P {
        age_s: 3100,
        ..P::new("a", "n1")
    }
    .pod();
    let b = P {
        age_s: 3000,
        ..P::new("b", "n2")
    }
    .pod();
    let pods = [&b, &a];
    let victims = pods_to_delete(&pods, &pods, 1, now());
    assert_eq!(
        victims[0].metadata.name.as_deref(),
        Some("a"),
        "uid-a < uid-b"
    );
}

#[test]
fn asking_for_more_victims_than_pods_returns_them_all() {
    let a = P::new("a", "n1").pod();
    let pods = [&a];
    assert_eq!(pods_to_delete(&pods, &pods, 5, now()).len(), 1);
}
