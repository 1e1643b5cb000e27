//! A self-managed group: any Auto Scaling group tagged `kubernetes.io/cluster/<name>` gets a
//! Node for each InService instance, and loses it when the instance goes.

mod eks_support;

use std::collections::BTreeSet;

use aws_sdk_autoscaling::types::Tag;
use eks_support::*;
use ngm_twin::sim::nodes::ASG_ANNOTATION;
use ngm_twin::store::Resource;
use serde_json::{Value, json};

/// The self-managed group's Nodes whose instance runs (a terminated instance's Node lingers
/// until the node lifecycle controllers delete it; none runs in this harness).
fn self_managed_nodes(h: &Harness) -> Vec<Value> {
    h.store
        .list_all(Resource::Node, None)
        .into_iter()
        .filter(|n| {
            n.pointer("/metadata/annotations")
                .and_then(|a| a.get(ASG_ANNOTATION))
                .and_then(Value::as_str)
                == Some("legacy")
        })
        .filter(|n| {
            n["metadata"]["name"]
                .as_str()
                .is_some_and(|n| !h.store.dead_instances().contains(n))
        })
        .map(|n| (*n).clone())
        .collect()
}

async fn set_desired(h: &Harness, n: i32) {
    h.asg_client
        .set_desired_capacity()
        .auto_scaling_group_name("legacy")
        .desired_capacity(n)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_managed_asg_gains_and_loses_nodes_as_it_is_scaled_in_moto() {
    let h = start().await;
    let asg = &h.asg_client;
    asg.create_launch_configuration()
        .launch_configuration_name("legacy-lc")
        .image_id("ami-12345678")
        .instance_type("c5.xlarge")
        .send()
        .await
        .unwrap();
    let tag = |k: &str, v: &str| {
        Tag::builder()
            .resource_id("legacy")
            .resource_type("auto-scaling-group")
            .key(k)
            .value(v)
            .propagate_at_launch(true)
            .build()
    };
    asg.create_auto_scaling_group()
        .auto_scaling_group_name("legacy")
        .launch_configuration_name("legacy-lc")
        .min_size(0)
        .max_size(5)
        .desired_capacity(2)
        .availability_zones("us-east-1a")
        .availability_zones("us-east-1b")
        .tags(tag("kubernetes.io/cluster/twin", "owned"))
        .tags(tag(
            "k8s.io/cluster-autoscaler/node-template/label/role",
            "legacy",
        ))
        .send()
        .await
        .unwrap();

    let nodes = eventually(30, "two self-managed nodes", || async {
        let n = self_managed_nodes(&h);
        (n.len() == 2).then_some(n)
    })
    .await;
    let zones: BTreeSet<_> = nodes
        .iter()
        .filter_map(|n| label(n, "topology.kubernetes.io/zone"))
        .collect();
    assert_eq!(
        zones.len(),
        2,
        "instances not spread over the group's zones"
    );
    for n in &nodes {
        assert!(is_ready(n));
        // Self-managed nodes carry no managed-node-group label.
        assert_eq!(label(n, "eks.amazonaws.com/nodegroup"), None);
        assert_eq!(
            label(n, "node.kubernetes.io/instance-type"),
            Some("c5.xlarge")
        );
        assert_eq!(label(n, "role"), Some("legacy"));
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("on-{}", n["metadata"]["name"].as_str().unwrap()), "namespace": "default" },
            "spec": { "nodeName": n["metadata"]["name"], "containers": [{ "name": "c", "image": "x" }] },
            "status": { "phase": "Running" },
        });
        h.store.create(Resource::Pod, "default", pod).unwrap();
    }

    set_desired(&h, 3).await;
    eventually(30, "a third node", || async {
        (self_managed_nodes(&h).len() == 3).then_some(())
    })
    .await;

    set_desired(&h, 1).await;
    eventually(30, "scale-in to one node", || async {
        (self_managed_nodes(&h).len() == 1).then_some(())
    })
    .await;
    // The scaled-in instances are terminated under their pods: those pods stay on the dead
    // nodes until the node lifecycle controllers and the pod garbage collector act.
    let left = self_managed_nodes(&h)[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let pods = h.store.list_all(Resource::Pod, None);
    assert!(
        pods.iter().all(|p| {
            let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
            node == left || h.store.dead_instances().contains(node)
        }),
        "{pods:?}"
    );
}
