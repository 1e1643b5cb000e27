use chrono::Utc;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{Value, json};

use super::*;
use crate::sim::nodes::{NodeTemplate, build_node};

fn template(instance_type: &str, edit: impl FnOnce(&mut NodeTemplate)) -> Node {
    let mut t = NodeTemplate {
        instance_type: instance_type.into(),
        zone: "us-west-2a".into(),
        ..NodeTemplate::default()
    };
    edit(&mut t);
    let v = build_node(&t, Utc::now()).expect("known type");
    serde_json::from_value(v).expect("node decodes")
}

/// A ReplicaSet's pod requesting `cpu` and `memory`, with `extra` merged into its spec.
fn pod(cpu: &str, memory: &str, extra: Value) -> Pod {
    let mut spec = json!({ "containers": [{ "name": "c", "resources": { "requests": { "cpu": cpu, "memory": memory } } }] });
    if let (Some(base), Some(more)) = (spec.as_object_mut(), extra.as_object()) {
        base.extend(more.clone());
    }
    serde_json::from_value(json!({
        "metadata": {
            "name": "p", "namespace": "shop",
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "u1", "controller": true }]
        },
        "spec": spec,
        "status": { "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable" }] }
    }))
    .expect("pod decodes")
}

fn with_meta(mut p: Pod, edit: impl FnOnce(&mut Value)) -> Pod {
    let mut v = serde_json::to_value(&p).expect("encodes");
    edit(&mut v["metadata"]);
    p = serde_json::from_value(v).expect("decodes");
    p
}

fn group(name: &str, node: Node, desired: i32, max: i32, upcoming: i32) -> GroupOption {
    GroupOption {
        name: name.into(),
        template: node,
        desired,
        max,
        upcoming,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// kubernetes/autoscaler `cluster-autoscaler/cloudprovider/aws/README.md`, "Auto-Discovery
/// Setup": "will find the ASGs that have at least all the given tags"; values count only when
/// the flag gives one.
#[test]
fn discovery_needs_every_configured_tag_key() {
    let keys = strings(&[
        "k8s.io/cluster-autoscaler/enabled",
        "k8s.io/cluster-autoscaler/shop",
    ]);
    let tags = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let both = tags(&[
        ("k8s.io/cluster-autoscaler/enabled", "true"),
        ("k8s.io/cluster-autoscaler/shop", "owned"),
    ]);
    assert!(discovered(&both, &keys));
    let one = tags(&[("k8s.io/cluster-autoscaler/enabled", "true")]);
    assert!(
        !discovered(&one, &keys),
        "a group missing a key is not the autoscaler's"
    );
    let valued = strings(&["k8s.io/cluster-autoscaler/enabled=false"]);
    assert!(
        !discovered(&both, &valued),
        "a value in the filter must match"
    );
    assert_eq!(
        AutoscalerSettings::default().tags_for("shop"),
        keys,
        "the default keys name the cluster"
    );
}

/// `config/const.go` and `config/flags/flags.go` at cluster-autoscaler-1.36.1: scan 10 s,
/// unneeded 10 min, delay after add 10 min, threshold 0.5, max node provision time 15 min,
/// max graceful termination 600 s.
#[test]
fn an_empty_section_takes_upstreams_defaults() {
    let s: AutoscalerSettings = serde_json::from_value(json!({})).expect("parses");
    assert_eq!(s, AutoscalerSettings::default());
    assert_eq!(
        (
            s.scan_interval_seconds,
            s.scale_down_unneeded_seconds,
            s.scale_down_delay_after_add_seconds,
            s.utilization_threshold,
            s.max_node_provision_seconds,
            s.max_graceful_termination_seconds
        ),
        (10.0, 600.0, 600.0, 0.5, 900.0, 600.0)
    );
}

/// FAQ "How does scale-up work?": scale-up looks at pods whose PodScheduled condition is False
/// with reason Unschedulable; a pod merely not scheduled yet is not one.
#[test]
fn only_pods_marked_unschedulable_trigger_scale_up() {
    assert!(unschedulable(&pod("1", "1Gi", json!({}))));
    let fresh = {
        let mut v = serde_json::to_value(pod("1", "1Gi", json!({}))).expect("encodes");
        v["status"] = json!({ "phase": "Pending" });
        serde_json::from_value::<Pod>(v).expect("decodes")
    };
    assert!(!unschedulable(&fresh));
}

/// FAQ "How does scale-up work?": a template node per group; the group grows by the nodes
/// its pods need, never above its max (`cloudprovider/aws/README.md`: "Cluster Autoscaler will
/// respect the minimum and maximum values of each Auto Scaling Group").
#[test]
fn scale_up_adds_the_nodes_the_pods_need_up_to_the_max() {
    // m5.large: 1930m allocatable; three 1-CPU pods need three nodes.
    let pods: Vec<Pod> = (0..3).map(|_| pod("1", "1Gi", json!({}))).collect();
    let plan = plan_scale_up(
        &pods,
        &[],
        &[group("new", template("m5.large", |_| {}), 1, 6, 0)],
    );
    assert_eq!(
        plan,
        Some(ScaleUp {
            group: "new".into(),
            from: 1,
            to: 4,
            pods: 3
        })
    );
    let capped = plan_scale_up(
        &pods,
        &[],
        &[group("new", template("m5.large", |_| {}), 1, 3, 0)],
    );
    assert_eq!(
        capped.map(|s| (s.to, s.pods)),
        Some((3, 2)),
        "max 3: two nodes, two pods"
    );
    let full = plan_scale_up(
        &pods,
        &[],
        &[group("new", template("m5.large", |_| {}), 6, 6, 0)],
    );
    assert_eq!(full, None, "a group at its max is never raised");
}

/// FAQ "How does scale-up work?": the template node counts `nodeSelector`, required node
/// affinity and taints the pod must tolerate.
#[test]
fn a_group_whose_template_the_pods_cannot_use_is_not_raised() {
    let tainted = template("m5.large", |t| {
        t.taints = vec![("dedicated".into(), Some("gpu".into()), "NoSchedule".into())];
    });
    let labelled = template("m5.large", |t| {
        t.labels.insert("tier".into(), "web".into());
    });
    let plain = pod("500m", "512Mi", json!({}));
    assert_eq!(
        plan_scale_up(
            std::slice::from_ref(&plain),
            &[],
            &[group("gpu", tainted.clone(), 0, 5, 0)]
        ),
        None
    );
    let tolerant = pod(
        "500m",
        "512Mi",
        json!({ "tolerations": [{ "key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule" }] }),
    );
    assert!(plan_scale_up(&[tolerant], &[], &[group("gpu", tainted, 0, 5, 0)]).is_some());
    let selecting = pod(
        "500m",
        "512Mi",
        json!({ "nodeSelector": { "tier": "web" } }),
    );
    let options = [
        group("a-plain", template("m5.large", |_| {}), 0, 5, 0),
        group("b-web", labelled, 0, 5, 0),
    ];
    assert_eq!(
        plan_scale_up(&[selecting], &[], &options).map(|s| s.group),
        Some("b-web".into())
    );
}

/// CA counts the nodes it asked for that have not come yet (FAQ: nodes are expected within
/// `--max-node-provision-time`); pods they will hold need no second raise.
#[test]
fn pods_that_upcoming_nodes_will_hold_ask_for_nothing_more() {
    let pods: Vec<Pod> = (0..2).map(|_| pod("1", "1Gi", json!({}))).collect();
    let node = template("m5.large", |_| {});
    assert_eq!(
        plan_scale_up(&pods, &[], &[group("new", node.clone(), 3, 6, 2)]),
        None
    );
    assert_eq!(
        plan_scale_up(&pods, &[], &[group("new", node, 2, 6, 1)]).map(|s| (s.from, s.to)),
        Some((2, 3)),
        "one pod left over: one more node"
    );
}

/// `core/podlistprocessor/filter_out_schedulable.go`: a pod that fits on a node as it is now
/// needs no new node; one that does not fit there still does.
#[test]
fn pods_that_fit_on_an_existing_node_ask_for_nothing() {
    let pods = vec![pod("1", "1Gi", json!({}))];
    let node = template("m5.large", |_| {});
    let options = [group("new", node.clone(), 1, 6, 0)];
    let free = NodeInfo::new(node.clone());
    assert_eq!(
        plan_scale_up(&pods, std::slice::from_ref(&free), &options),
        None
    );
    let mut busy = NodeInfo::new(node);
    busy.add((1500, 0));
    assert!(plan_scale_up(&pods, &[busy], &options).is_some());
}

/// `--expander` defaults to `least-waste` (`config/flags/flags.go`, since CA 1.33.0): the
/// option leaving the least CPU and memory unused wins.
#[test]
fn least_waste_picks_the_group_the_pods_fill_best() {
    let pods: Vec<Pod> = (0..2).map(|_| pod("1500m", "5Gi", json!({}))).collect();
    let options = [
        group("big", template("m5.4xlarge", |_| {}), 0, 5, 0),
        group("small", template("m5.large", |_| {}), 0, 5, 0),
    ];
    assert_eq!(
        plan_scale_up(&pods, &[], &options).map(|s| (s.group, s.to)),
        Some(("small".into(), 2))
    );
}

/// `--scale-down-utilization-threshold`: "sum of requests ÷ allocatable, max of CPU and
/// memory" (`config/const.go`).
#[test]
fn utilization_is_the_larger_of_cpu_and_memory() {
    let mut n = NodeInfo::new(template("m5.large", |_| {}));
    n.add((193, n.memory_allocatable * 6 / 10));
    assert!((utilization(&n) - 0.6).abs() < 0.01);
}

/// FAQ "What types of pods can prevent CA from removing a node?".
#[test]
fn pods_that_keep_their_node() {
    let plain = pod("100m", "64Mi", json!({}));
    assert_eq!(blocker(&plain, None), None);
    assert_eq!(blocker(&plain, Some(("web", 1))), None);
    assert_eq!(
        blocker(&plain, Some(("web", 0))),
        Some(Blocker::Pdb("web".into()))
    );
    let annotated = |v: &str| {
        let v = v.to_string();
        with_meta(plain.clone(), move |m| {
            m["annotations"] = json!({ SAFE_TO_EVICT: v });
        })
    };
    assert_eq!(
        blocker(&annotated("false"), None),
        Some(Blocker::NotSafeToEvict)
    );
    let bare = with_meta(plain.clone(), |m| {
        m.as_object_mut().map(|o| o.remove("ownerReferences"));
    });
    assert_eq!(blocker(&bare, None), Some(Blocker::NoController));
    let system = with_meta(plain.clone(), |m| m["namespace"] = json!("kube-system"));
    assert_eq!(blocker(&system, None), Some(Blocker::KubeSystem));
    assert_eq!(blocker(&system, Some(("dns", 1))), None);
    let disk = pod(
        "100m",
        "64Mi",
        json!({ "volumes": [{ "name": "scratch", "emptyDir": {} }] }),
    );
    assert_eq!(blocker(&disk, None), Some(Blocker::LocalStorage));
    let ram = pod(
        "100m",
        "64Mi",
        json!({ "volumes": [{ "name": "scratch", "emptyDir": { "medium": "Memory" } }] }),
    );
    assert_eq!(blocker(&ram, None), None);
    // safe-to-evict: "true" lifts no-controller, local storage and kube-system, not a PDB.
    let safe_bare = with_meta(bare, |m| {
        m["annotations"] = json!({ SAFE_TO_EVICT: "true" })
    });
    assert_eq!(blocker(&safe_bare, None), None);
    assert_eq!(
        blocker(&safe_bare, Some(("web", 0))),
        Some(Blocker::Pdb("web".into()))
    );
}

/// FAQ: "pods that fit nowhere else" keep their node.
#[test]
fn a_pod_with_no_other_place_keeps_its_node() {
    let big = pod("1500m", "1Gi", json!({}));
    let mut others = vec![NodeInfo::new(template("m5.large", |_| {}))];
    assert_eq!(fit_elsewhere(&[&big], &mut others), Ok(()));
    assert_eq!(fit_elsewhere(&[&big], &mut others), Err(Blocker::NoPlace));
}

/// FAQ "How can I prevent Cluster Autoscaler from scaling down a particular node?"
/// (`cluster-autoscaler.kubernetes.io/scale-down-disabled: "true"`; `eligibility.go`).
#[test]
fn the_scale_down_disabled_annotation_opts_a_node_out() {
    let mut node = template("m5.large", |_| {});
    assert!(!scale_down_disabled(&node));
    node.metadata.annotations =
        Some([(SCALE_DOWN_DISABLED.to_string(), "true".to_string())].into());
    assert!(scale_down_disabled(&node));
}
