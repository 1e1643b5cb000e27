use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::fixtures::{SpecExt, managed_source, pod};
use crate::model::{LabelSelector, PodTerm, SpreadConstraint, Toleration};

fn zones(z: &[&str]) -> BTreeSet<String> {
    z.iter().map(|s| s.to_string()).collect()
}

fn target() -> NodeGroupSpec {
    let mut t = managed_source();
    t.name = "ng-b".into();
    t
}

fn req(key: &str, op: NodeOperator, values: &[&str]) -> NodeRequirement {
    NodeRequirement {
        key: key.into(),
        operator: op,
        values: values.iter().map(|v| v.to_string()).collect(),
    }
}

#[test]
fn a_new_node_is_sized_by_the_smallest_type_of_the_group() {
    let mut t = target();
    t.instance_types = vec!["m5.xlarge".into(), "m5.large".into()];
    let n = NewNode::of(&t, &zones(&["eu-west-1a"])).expect("known types");
    assert_eq!(n.instance_type.name, "m5.large");
    assert_eq!(n.max_pods, 29);
    assert_eq!(
        n.labels.get("node.kubernetes.io/instance-type"),
        Some(&zones(&["m5.large", "m5.xlarge"]))
    );
    t.instance_types = vec!["z1.huge".into()];
    assert_eq!(
        NewNode::of(&t, &zones(&["eu-west-1a"])),
        Err(NewNodeError::UnknownInstanceType("z1.huge".into()))
    );
    t.instance_types.clear();
    assert_eq!(
        NewNode::of(&t, &zones(&["eu-west-1a"])),
        Err(NewNodeError::NoInstanceType)
    );
}

/// kubernetes `pkg/scheduler/framework/plugins/nodeaffinity/node_affinity.go`: `nodeSelector`
/// and the required terms both must hold; terms are ORed, their expressions ANDed.
#[test]
fn node_selection_is_checked_against_the_new_nodes_labels() {
    let n = NewNode::of(&target(), &zones(&["eu-west-1a", "eu-west-1b"])).expect("node");
    let mut p = pod("web", "w-1", "w", "old-1");
    p.placement
        .node_selector
        .insert("team".into(), "web".into());
    assert_eq!(n.selection_miss(&p), None);
    // A pod pinned to the old group by its EKS label never fits the new one.
    p.placement
        .node_selector
        .insert(NODEGROUP_LABEL.into(), "ng-a".into());
    let (key, why) = n.selection_miss(&p).expect("ruled out");
    assert_eq!(key, NODEGROUP_LABEL);
    assert!(why.contains("eks.amazonaws.com/nodegroup=ng-b"), "{why}");

    let mut q = pod("web", "w-2", "w", "old-1");
    q.placement.required_node_terms = vec![
        vec![req("disktype", NodeOperator::In, &["ssd"])],
        vec![req(
            ZONE_LABEL,
            NodeOperator::In,
            &["eu-west-1b", "eu-west-1c"],
        )],
    ];
    assert_eq!(n.selection_miss(&q), None, "the second term holds");
    q.placement.required_node_terms = vec![vec![
        req(ZONE_LABEL, NodeOperator::In, &["eu-west-1a"]),
        req("kubernetes.io/arch", NodeOperator::In, &["arm64"]),
    ]];
    let (key, _) = n.selection_miss(&q).expect("amd64 nodes");
    assert_eq!(key, "kubernetes.io/arch");
    // A new node's hostname is its own.
    q.placement.required_node_terms = vec![vec![req(
        HOSTNAME_LABEL,
        NodeOperator::In,
        &["ip-10-0-1-1"],
    )]];
    assert!(n.selection_miss(&q).is_some());
    q.placement.required_node_terms = vec![vec![
        req(HOSTNAME_LABEL, NodeOperator::NotIn, &["ip-10-0-1-1"]),
        req("gpu", NodeOperator::DoesNotExist, &[]),
    ]];
    assert_eq!(n.selection_miss(&q), None);
}

/// kubernetes `pkg/scheduler/framework/plugins/tainttoleration/taint_toleration.go`: only
/// `NoSchedule` and `NoExecute` taints filter.
#[test]
fn the_new_groups_taints_must_be_tolerated() {
    let mut t = target();
    t.taints = vec![
        Taint {
            key: "dedicated".into(),
            value: Some("batch".into()),
            effect: TaintEffect::NoSchedule,
        },
        Taint {
            key: "spot".into(),
            value: None,
            effect: TaintEffect::PreferNoSchedule,
        },
    ];
    let n = NewNode::of(&t, &zones(&["eu-west-1a"])).expect("node");
    let mut p = pod("b", "b-1", "b", "old-1");
    assert_eq!(n.untolerated(&p).map(|t| t.key.as_str()), Some("dedicated"));
    p.placement.tolerations.push(Toleration {
        key: Some("dedicated".into()),
        exists: false,
        value: Some("batch".into()),
        effect: None,
    });
    assert_eq!(n.untolerated(&p), None);
}

fn own(app: &str) -> LabelSelector {
    LabelSelector::eq([("app", app)])
}

fn old_zones(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(n, z)| (n.to_string(), z.to_string()))
        .collect()
}

/// kubernetes `pkg/scheduler/framework/plugins/interpodaffinity/filtering.go`: existing pods
/// that match a required anti-affinity term rule out their whole topology domain.
#[test]
fn zone_anti_affinity_leaves_no_zone_for_the_surge() {
    let n = NewNode::of(
        &target(),
        &zones(&["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    )
    .expect("node");
    let term = PodTerm {
        topology_key: ZONE_LABEL.into(),
        selector: own("db"),
        namespaces: vec![],
    };
    let pods: Vec<_> = [("db-1", "n1"), ("db-2", "n2"), ("db-3", "n3")]
        .into_iter()
        .map(|(name, node)| {
            let mut p = pod("d", name, "db", node);
            p.placement.anti_affinity = vec![term.clone()];
            p
        })
        .collect();
    let on_old: Vec<&_> = pods.iter().collect();
    let where_ = old_zones(&[
        ("n1", "eu-west-1a"),
        ("n2", "eu-west-1b"),
        ("n3", "eu-west-1c"),
    ]);
    let m = Move {
        pod: &pods[0],
        on_old: &on_old,
        surged: 3,
    };
    let (kind, why) = spread_miss(m, &n, &where_).expect("every zone is held");
    assert_eq!(kind, "anti-affinity");
    assert!(why.contains("only 0 of the 3 surged pods"), "{why}");
    // Two replicas leave one zone free: one surged pod fits, two do not.
    let two = &on_old[..2];
    let m = Move {
        pod: &pods[0],
        on_old: two,
        surged: 1,
    };
    assert_eq!(spread_miss(m, &n, &where_), None);
    let m = Move {
        pod: &pods[0],
        on_old: two,
        surged: 2,
    };
    assert!(spread_miss(m, &n, &where_).is_some());
}

#[test]
fn hostname_anti_affinity_needs_a_node_per_pod_within_the_max() {
    let mut t = target();
    t.scaling = Scaling {
        min: 1,
        max: 2,
        desired: 1,
    };
    let n = NewNode::of(&t, &zones(&["eu-west-1a"])).expect("node");
    let pods: Vec<_> = (0..3)
        .map(|i| {
            let mut p = pod("d", &format!("c-{i}"), "cache", &format!("n{i}"));
            p.placement.anti_affinity = vec![PodTerm {
                topology_key: HOSTNAME_LABEL.into(),
                selector: own("cache"),
                namespaces: vec![],
            }];
            p
        })
        .collect();
    let on_old: Vec<&_> = pods.iter().collect();
    let m = Move {
        pod: &pods[0],
        on_old: &on_old,
        surged: 3,
    };
    let (_, why) = spread_miss(m, &n, &BTreeMap::new()).expect("3 pods, 2 nodes");
    assert!(why.contains("max is 2 nodes"), "{why}");
    // A term that selects other pods is not this workload's spread.
    let mut other = pods[0].clone();
    other.placement.anti_affinity[0].selector = own("something-else");
    let m = Move {
        pod: &other,
        on_old: &on_old,
        surged: 3,
    };
    assert_eq!(spread_miss(m, &n, &BTreeMap::new()), None);
}

/// kubernetes `pkg/scheduler/framework/plugins/podtopologyspread/filtering.go`: a node passes
/// when `count(domain) + 1 − min(count) ≤ maxSkew`, counting every eligible domain; the
/// default `nodeTaintsPolicy: Ignore` keeps the tainted old nodes' zones in the count.
#[test]
fn zone_spread_over_fewer_new_zones_stops_the_surge() {
    let n = NewNode::of(&target(), &zones(&["eu-west-1a", "eu-west-1b"])).expect("node");
    let where_ = old_zones(&[
        ("n1", "eu-west-1a"),
        ("n2", "eu-west-1b"),
        ("n3", "eu-west-1c"),
    ]);
    let pods: Vec<_> = (0..6)
        .map(|i| {
            let mut p = pod("d", &format!("s-{i}"), "svc", &format!("n{}", i % 3 + 1));
            p.placement.spread = vec![SpreadConstraint {
                max_skew: 1,
                topology_key: ZONE_LABEL.into(),
                selector: own("svc"),
            }];
            p
        })
        .collect();
    let on_old: Vec<&_> = pods.iter().collect();
    let m = Move {
        pod: &pods[0],
        on_old: &on_old,
        surged: 6,
    };
    let (kind, why) = spread_miss(m, &n, &where_).expect("zone c holds the minimum");
    assert_eq!(kind, "topology-spread");
    assert!(why.contains("only 2 of the 6"), "{why}");
    // The same spread when the new group covers every zone of the old pods.
    let all = NewNode::of(
        &target(),
        &zones(&["eu-west-1a", "eu-west-1b", "eu-west-1c"]),
    )
    .expect("node");
    assert_eq!(spread_miss(m, &all, &where_), None);
}

#[test]
fn a_self_managed_or_custom_ami_node_keeps_the_eni_max_pods() {
    let mut t = target();
    t.instance_types = vec!["m5.4xlarge".into()];
    let managed = NewNode::of(&t, &zones(&["eu-west-1a"])).expect("node");
    assert_eq!(managed.max_pods, 110);
    let self_managed =
        NewNode::of(&t.clone().self_managed(), &zones(&["eu-west-1a"])).expect("node");
    assert_eq!(self_managed.max_pods, 234);
    assert!(!self_managed.labels.contains_key(NODEGROUP_LABEL));
}
