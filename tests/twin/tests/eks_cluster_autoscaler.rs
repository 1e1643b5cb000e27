//! The twin's Cluster Autoscaler against moto's Auto Scaling groups and the EKS control plane
//! (kubernetes/autoscaler `cluster-autoscaler`, AWS provider; docs/research/cluster-awareness.md
//! §1). No scheduler runs here: the pods are made Pending with the condition the scheduler
//! would set.

mod eks_support;

use std::time::Duration;

use aws_sdk_autoscaling::types::Tag;
use eks_support::*;
use ngm_twin::eks::AutoscalerStep;
use ngm_twin::scenario::AutoscalerSettings;
use ngm_twin::store::Resource;
use serde_json::{Value, json};

/// A ReplicaSet's pod requesting one CPU, which the scheduler could not place.
fn unschedulable_pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": name, "namespace": "default",
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true }]
        },
        "spec": { "containers": [{ "name": "c", "image": "x", "resources": { "requests": { "cpu": "1", "memory": "1Gi" } } }] },
        "status": { "phase": "Pending", "conditions": [{ "type": "PodScheduled", "status": "False", "reason": "Unschedulable" }] },
    })
}

fn fast() -> AutoscalerSettings {
    AutoscalerSettings {
        scale_down_unneeded_seconds: 60.0,
        scale_down_delay_after_add_seconds: 60.0,
        max_node_provision_seconds: 120.0,
        ..AutoscalerSettings::default()
    }
}

fn tag(group: &str, key: &str, value: &str) -> Tag {
    Tag::builder()
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .key(key)
        .value(value)
        .propagate_at_launch(true)
        .build()
}

impl Harness {
    /// A self-managed group of m5.large in one zone, with the Cluster Autoscaler's discovery
    /// tags when `discoverable`.
    async fn self_managed(&self, name: &str, desired: i32, max: i32, discoverable: bool) {
        let lc = format!("{name}-lc");
        self.asg_client
            .create_launch_configuration()
            .launch_configuration_name(&lc)
            .image_id("ami-12c6146b")
            .instance_type("m5.large")
            .send()
            .await
            .unwrap();
        let mut tags = vec![tag(
            name,
            &format!("kubernetes.io/cluster/{CLUSTER}"),
            "owned",
        )];
        if discoverable {
            tags.push(tag(name, "k8s.io/cluster-autoscaler/enabled", "true"));
            tags.push(tag(
                name,
                &format!("k8s.io/cluster-autoscaler/{CLUSTER}"),
                "owned",
            ));
        }
        self.asg_client
            .create_auto_scaling_group()
            .auto_scaling_group_name(name)
            .launch_configuration_name(&lc)
            .min_size(0)
            .max_size(max)
            .desired_capacity(desired)
            .availability_zones("us-east-1a")
            .set_tags(Some(tags))
            .send()
            .await
            .unwrap();
    }

    /// (desired, instances) of an Auto Scaling group whose name contains `part`.
    async fn size(&self, part: &str) -> (i32, usize) {
        let out = self
            .asg_client
            .describe_auto_scaling_groups()
            .send()
            .await
            .unwrap();
        let g = out
            .auto_scaling_groups()
            .iter()
            .find(|g| {
                g.auto_scaling_group_name()
                    .is_some_and(|n| n.contains(part))
            })
            .expect("the group exists");
        (
            g.desired_capacity().unwrap_or_default(),
            g.instances().len(),
        )
    }

    fn steps(&self, step: AutoscalerStep) -> Vec<ngm_twin::eks::AutoscalerAction> {
        self.eks
            .autoscaler_log()
            .into_iter()
            .filter(|a| a.step == step)
            .collect()
    }
}

/// FAQ "How does scale-up work?" (Unschedulable pods, a template node per group) and
/// `cloudprovider/aws/README.md` ("will respect the minimum and maximum values of each Auto
/// Scaling Group"); a managed group's `desiredSize` follows (EKS API reference,
/// `NodegroupScalingConfig`: "the desiredSize parameter is altered by the Cluster Autoscaler").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pods_raise_a_managed_group_up_to_its_max() {
    let h = start().await;
    h.create("ng", 1, 3, 1).send().await.unwrap();
    h.wait_status("ng", "ACTIVE", 30).await;
    // No scheduler binds the pods here: the new nodes stay empty, and must not be scaled
    // down before they are counted.
    let _ca = h.eks.start_autoscaler(AutoscalerSettings::default());
    for i in 0..4 {
        h.store
            .create(
                Resource::Pod,
                "default",
                unschedulable_pod(&format!("p{i}")),
            )
            .unwrap();
    }
    eventually(30, "the scale-up", || async {
        (!h.steps(AutoscalerStep::ScaleUp).is_empty()).then_some(())
    })
    .await;
    let up = &h.steps(AutoscalerStep::ScaleUp)[0];
    // Four one-CPU pods need four m5.large; the max leaves room for two.
    assert_eq!((up.from, up.to), (1, 3));
    eventually(30, "the nodes and desiredSize", || async {
        let desired = h
            .eks_client
            .describe_nodegroup()
            .cluster_name(CLUSTER)
            .nodegroup_name("ng")
            .send()
            .await
            .ok()?
            .nodegroup()?
            .scaling_config()?
            .desired_size()?;
        (desired == 3 && h.group_nodes("ng").len() == 3).then_some(())
    })
    .await;
    assert_eq!(h.size("ng").await.0, 3, "never above max");
}

/// `cloudprovider/aws/README.md`, "Auto-Discovery Setup": only groups with every tag key are
/// the autoscaler's. The untagged group sorts first, so it would win least-waste's tie.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_without_the_discovery_tags_is_never_raised() {
    let h = start().await;
    h.self_managed("a-plain", 0, 3, false).await;
    h.self_managed("b-tagged", 0, 3, true).await;
    let _ca = h.eks.start_autoscaler(fast());
    h.store
        .create(Resource::Pod, "default", unschedulable_pod("p0"))
        .unwrap();
    eventually(30, "the scale-up", || async {
        (!h.steps(AutoscalerStep::ScaleUp).is_empty()).then_some(())
    })
    .await;
    assert_eq!(h.steps(AutoscalerStep::ScaleUp)[0].group, "b-tagged");
    assert_eq!(h.size("a-plain").await, (0, 0));
}

/// docs/research/cluster-awareness.md §1.4: CA does not read SuspendedProcesses, so it raises
/// a group whose Launch is suspended; the group launches nothing (EC2 Auto Scaling guide,
/// `as-suspend-resume-processes.md`), and after `--max-node-provision-time` CA gives the
/// nodes up (FAQ) and lowers desired back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raise_of_a_group_with_launch_suspended_launches_nothing_and_is_given_up() {
    let h = start().await;
    h.self_managed("held", 0, 3, true).await;
    h.asg_client
        .suspend_processes()
        .auto_scaling_group_name("held")
        .scaling_processes("Launch")
        .send()
        .await
        .unwrap();
    let _ca = h.eks.start_autoscaler(fast());
    h.store
        .create(Resource::Pod, "default", unschedulable_pod("p0"))
        .unwrap();
    eventually(30, "the raise", || async {
        (!h.steps(AutoscalerStep::ScaleUp).is_empty()).then_some(())
    })
    .await;
    assert_eq!(
        h.size("held").await,
        (1, 0),
        "desired raised, nothing launched"
    );
    eventually(30, "the give-up", || async {
        (!h.steps(AutoscalerStep::GaveUp).is_empty()).then_some(())
    })
    .await;
    // One raise only: the pod was the upcoming node's until CA gave it up.
    assert_eq!(h.steps(AutoscalerStep::ScaleUp).len(), 1);
    assert_eq!(h.size("held").await, (0, 0));
}

/// Scale-down (FAQ "How does scale-down work?", "What types of pods can prevent CA from
/// removing a node?", "How can I prevent Cluster Autoscaler from scaling down a particular
/// node?"): of three idle nodes, the one annotated `scale-down-disabled` and the one holding
/// a pod with no controller stay; the third goes once unneeded for the unneeded time, its
/// instance terminated with desired decremented (`auto_scaling_groups.go`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_goes_unless_disabled_or_holding_a_pod_that_keeps_it() {
    let h = start().await;
    h.create("idle", 1, 3, 3).send().await.unwrap();
    h.wait_status("idle", "ACTIVE", 30).await;
    let mut names: Vec<String> = h
        .group_nodes("idle")
        .iter()
        .filter_map(|n| n["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    let (disabled, holding, free) = (names[0].clone(), names[1].clone(), names[2].clone());
    h.store
        .mutate(Resource::Node, "", &disabled, |n| {
            n["metadata"]["annotations"]["cluster-autoscaler.kubernetes.io/scale-down-disabled"] =
                json!("true");
            Ok(())
        })
        .unwrap();
    // A bare pod (no controller) keeps its node.
    h.store
        .create(Resource::Pod, "default", web_pod("bare", &holding))
        .unwrap();
    let _ca = h.eks.start_autoscaler(fast());
    eventually(30, "a scale-down", || async {
        (!h.steps(AutoscalerStep::ScaleDown).is_empty()).then_some(())
    })
    .await;
    eventually(30, "the node to go", || async {
        (h.group_nodes("idle").len() == 2).then_some(())
    })
    .await;
    // Three more unneeded times: nothing else may go.
    h.clock.sleep(Duration::from_secs(180)).await;
    let downs = h.steps(AutoscalerStep::ScaleDown);
    assert_eq!(downs.len(), 1);
    assert_eq!(downs[0].node.as_deref(), Some(free.as_str()));
    assert_eq!((downs[0].from, downs[0].to), (3, 2));
    assert_eq!(h.size("idle").await, (2, 2));
    // Its Node lingers here (no node lifecycle controller runs) with the taint CA put on it
    // before it drained it (`utils/taints/taints.go`).
    let gone = h
        .all_group_nodes("idle")
        .into_iter()
        .find(|n| n["metadata"]["name"] == json!(free))
        .expect("the removed node's object lingers");
    let taints = gone["spec"]["taints"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(
        taints
            .iter()
            .any(|t| t["key"] == "ToBeDeletedByClusterAutoscaler" && t["effect"] == "NoSchedule"),
        "{taints:?}"
    );
}

/// The group's minimum holds (README: "will respect the minimum and maximum values"): a pinned
/// group (min = max = desired, as ngm pins the old group) loses no idle node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_at_its_minimum_loses_no_node() {
    let h = start().await;
    h.create("pinned", 2, 2, 2).send().await.unwrap();
    h.wait_status("pinned", "ACTIVE", 30).await;
    let _ca = h.eks.start_autoscaler(fast());
    h.clock.sleep(Duration::from_secs(300)).await;
    assert!(h.steps(AutoscalerStep::ScaleDown).is_empty());
    assert_eq!(h.size("pinned").await, (2, 2));
}
