use chrono::Utc;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::*;
use crate::sim::nodes::{NodeTemplate, build_node};

fn node_with(edit: impl FnOnce(&mut Value)) -> NodeInfo {
    let t = NodeTemplate {
        instance_type: "m5.large".into(),
        zone: "us-west-2a".into(),
        ..NodeTemplate::default()
    };
    let mut v = build_node(&t, Utc::now()).expect("known type");
    edit(&mut v);
    let node: Node = serde_json::from_value(v).expect("node decodes");
    NodeInfo::new(node)
}

fn pod_with(spec: Value) -> Pod {
    let mut full = json!({ "containers": [{ "name": "c", "resources": { "requests": { "cpu": "100m", "memory": "64Mi" } } }] });
    if let (Some(base), Some(extra)) = (full.as_object_mut(), spec.as_object()) {
        base.extend(extra.clone());
    }
    serde_json::from_value(json!({ "metadata": { "name": "p" }, "spec": full }))
        .expect("pod decodes")
}

fn check(pod: &Pod, node: &NodeInfo, zone: Option<&str>) -> Result<(), Unfit> {
    fits(pod, crate::sim::podutil::requests(pod), node, zone)
}

/// (why, pod, node, volume zone, expected filter result)
type Row = (
    &'static str,
    Pod,
    NodeInfo,
    Option<&'static str>,
    Result<(), Unfit>,
);

#[test]
fn filters_follow_the_default_scheduler_plugins() {
    let plain = pod_with(json!({}));
    let ngm_taint = json!([{ "key": "ngm.io/migrating", "value": "true", "effect": "NoSchedule" }]);
    let rows: Vec<Row> = vec![
        (
            "a ready, empty node takes the pod",
            plain.clone(),
            node_with(|_| {}),
            None,
            Ok(()),
        ),
        (
            "a NotReady node takes nothing",
            plain.clone(),
            node_with(|n| {
                n["status"]["conditions"] = crate::sim::nodes::node_conditions(false, Utc::now())
            }),
            None,
            Err(Unfit::NotReady),
        ),
        (
            "NodeUnschedulable: a cordoned node refuses",
            plain.clone(),
            node_with(|n| n["spec"]["unschedulable"] = json!(true)),
            None,
            Err(Unfit::Unschedulable),
        ),
        (
            "NodeUnschedulable: unless the pod tolerates the unschedulable taint",
            pod_with(
                json!({ "tolerations": [{ "key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule" }] }),
            ),
            node_with(|n| n["spec"]["unschedulable"] = json!(true)),
            None,
            Ok(()),
        ),
        (
            "TaintToleration: an untolerated NoSchedule taint refuses",
            plain.clone(),
            node_with(|n| n["spec"]["taints"] = ngm_taint.clone()),
            None,
            Err(Unfit::Taint("ngm.io/migrating: true".into())),
        ),
        (
            "TaintToleration: NoExecute refuses too",
            plain.clone(),
            node_with(|n| n["spec"]["taints"] = json!([{ "key": "k", "effect": "NoExecute" }])),
            None,
            Err(Unfit::Taint("k".into())),
        ),
        (
            "TaintToleration: PreferNoSchedule never filters",
            plain.clone(),
            node_with(|n| {
                n["spec"]["taints"] = json!([{ "key": "k", "effect": "PreferNoSchedule" }])
            }),
            None,
            Ok(()),
        ),
        (
            "TaintToleration: a matching toleration admits",
            pod_with(
                json!({ "tolerations": [{ "key": "ngm.io/migrating", "operator": "Exists" }] }),
            ),
            node_with(|n| n["spec"]["taints"] = ngm_taint.clone()),
            None,
            Ok(()),
        ),
        (
            "NodeAffinity: nodeSelector must match every label",
            pod_with(
                json!({ "nodeSelector": { "node.kubernetes.io/instance-type": "c5.4xlarge" } }),
            ),
            node_with(|_| {}),
            None,
            Err(Unfit::NodeSelector),
        ),
        (
            "NodeAffinity: required In matches",
            pod_with(
                json!({ "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                { "matchExpressions": [{ "key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-west-2a", "us-west-2b"] }] }] } } } }),
            ),
            node_with(|_| {}),
            None,
            Ok(()),
        ),
        (
            "NodeAffinity: NotIn on the node's value refuses",
            pod_with(
                json!({ "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                { "matchExpressions": [{ "key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["us-west-2a"] }] }] } } } }),
            ),
            node_with(|_| {}),
            None,
            Err(Unfit::NodeSelector),
        ),
        (
            "NodeAffinity: DoesNotExist on a present label refuses; terms are ORed",
            pod_with(
                json!({ "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                { "matchExpressions": [{ "key": "kubernetes.io/os", "operator": "DoesNotExist" }] },
                { "matchExpressions": [{ "key": "missing", "operator": "Exists" }] }] } } } }),
            ),
            node_with(|_| {}),
            None,
            Err(Unfit::NodeSelector),
        ),
        (
            "NodeAffinity: matchFields metadata.name pins a DaemonSet pod",
            pod_with(
                json!({ "affinity": { "nodeAffinity": { "requiredDuringSchedulingIgnoredDuringExecution": { "nodeSelectorTerms": [
                { "matchFields": [{ "key": "metadata.name", "operator": "In", "values": ["other-node"] }] }] } } } }),
            ),
            node_with(|_| {}),
            None,
            Err(Unfit::NodeSelector),
        ),
        (
            "VolumeZone: a volume pinned to another zone refuses",
            plain.clone(),
            node_with(|_| {}),
            Some("us-west-2c"),
            Err(Unfit::VolumeZone),
        ),
        (
            "VolumeZone: the same zone admits",
            plain.clone(),
            node_with(|_| {}),
            Some("us-west-2a"),
            Ok(()),
        ),
        (
            "NodeResourcesFit: more CPU than allocatable refuses",
            pod_with(
                json!({ "containers": [{ "name": "c", "resources": { "requests": { "cpu": "3" } } }] }),
            ),
            node_with(|_| {}),
            None,
            Err(Unfit::Cpu),
        ),
        (
            "NodeResourcesFit: more memory than allocatable refuses",
            pod_with(
                json!({ "containers": [{ "name": "c", "resources": { "requests": { "memory": "16Gi" } } }] }),
            ),
            node_with(|_| {}),
            None,
            Err(Unfit::Memory),
        ),
    ];
    for (why, pod, node, zone, want) in rows {
        assert_eq!(check(&pod, &node, zone), want, "{why}");
    }
}

#[test]
fn requests_already_bound_count_against_allocatable() {
    let pod = pod_with(
        json!({ "containers": [{ "name": "c", "resources": { "requests": { "cpu": "1" } } }] }),
    );
    let mut node = node_with(|_| {});
    assert_eq!(check(&pod, &node, None), Ok(()));
    node.add((1000, 0));
    assert_eq!(
        check(&pod, &node, None),
        Err(Unfit::Cpu),
        "1930m allocatable, 1000m used"
    );
}

#[test]
fn replicas_spread_to_the_least_allocated_node_and_away_from_siblings() {
    let pod = pod_with(json!({}));
    let busy = {
        let mut n = node_with(|_| {});
        n.add((1500, 0));
        n
    };
    let idle = node_with(|_| {});
    let nodes = [busy.clone(), idle.clone()];
    assert_eq!(pick_node(&pod, (100, 0), &nodes, None, &|_| 0), Ok(1));
    // Two idle nodes: the one without a sibling wins.
    let (a, b) = (node_with(|_| {}), node_with(|_| {}));
    let with_sibling = a.name.clone();
    let nodes = [a, b];
    assert_eq!(
        pick_node(&pod, (100, 0), &nodes, None, &|n| usize::from(
            n == with_sibling
        )),
        Ok(1)
    );
}

#[test]
fn prefer_no_schedule_is_avoided_when_another_node_fits() {
    let pod = pod_with(json!({}));
    let soft =
        node_with(|n| n["spec"]["taints"] = json!([{ "key": "k", "effect": "PreferNoSchedule" }]));
    let nodes = [soft, node_with(|_| {})];
    assert_eq!(pick_node(&pod, (100, 0), &nodes, None, &|_| 0), Ok(1));
}

#[test]
fn a_pod_that_fits_nowhere_gets_the_upstream_style_message() {
    let pod = pod_with(json!({}));
    let nodes = [
        node_with(|n| {
            n["spec"]["taints"] = json!([{ "key": "ngm.io/old", "effect": "NoSchedule" }])
        }),
        node_with(|n| n["spec"]["unschedulable"] = json!(true)),
    ];
    let msg = pick_node(&pod, (100, 0), &nodes, None, &|_| 0).expect_err("nothing fits");
    assert_eq!(
        msg,
        "0/2 nodes are available: 1 node(s) had untolerated taint {ngm.io/old}, 1 node(s) were unschedulable."
    );
}
