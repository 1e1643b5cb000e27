//! UpdateNodegroupConfig and DescribeUpdate over the real aws-sdk-eks client.

mod eks_support;

use std::time::Duration;

use aws_sdk_eks::types::{
    NodegroupScalingConfig, Taint, TaintEffect, UpdateLabelsPayload, UpdateStatus,
    UpdateTaintsPayload,
};
use eks_support::*;
use ngm_twin::store::Resource;
use serde_json::json;

fn scaling(min: i32, max: i32, desired: i32) -> NodegroupScalingConfig {
    NodegroupScalingConfig::builder()
        .min_size(min)
        .max_size(max)
        .desired_size(desired)
        .build()
}

async fn update_status(h: &Harness, id: &str) -> UpdateStatus {
    h.eks_client
        .describe_update()
        .name(CLUSTER)
        .nodegroup_name("ng")
        .update_id(id)
        .send()
        .await
        .expect("describe update")
        .update()
        .and_then(|u| u.status())
        .cloned()
        .expect("status")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_up_keeps_the_group_updating_until_the_new_nodes_are_ready() {
    // A 5-minute boot (3 s of wall time) leaves room to observe UPDATING on a busy machine.
    let h = start_with(|c| c.boot_time = Duration::from_secs(300)).await;
    h.create("ng", 1, 6, 2).send().await.unwrap();
    h.wait_status("ng", "ACTIVE", 30).await;
    let out = h
        .eks_client
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .scaling_config(scaling(1, 6, 4))
        .send()
        .await
        .unwrap();
    let update = out.update().unwrap();
    let id = update.id().unwrap().to_string();
    assert_eq!(update.status(), Some(&UpdateStatus::InProgress));
    assert!(
        update.params().iter().any(
            |p| p.r#type().map(|t| t.as_str()) == Some("DesiredSize") && p.value() == Some("4")
        )
    );
    // EKS reports UPDATING while an update is in progress.
    assert_eq!(h.status("ng").await.as_deref(), Some("UPDATING"));
    assert_eq!(
        h.group_nodes("ng").len(),
        2,
        "new nodes joined before booting"
    );
    // A second update while one is in progress is refused.
    let err = h
        .eks_client
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .scaling_config(scaling(1, 6, 5))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_in_use_exception(),
        "{err:?}"
    );

    h.wait_status("ng", "ACTIVE", 30).await;
    let nodes = h.group_nodes("ng");
    assert_eq!(nodes.len(), 4);
    assert!(nodes.iter().all(is_ready));
    assert_eq!(update_status(&h, &id).await, UpdateStatus::Successful);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scaling_down_removes_nodes_with_their_pods_and_shrinks_the_asg() {
    let h = start().await;
    h.create("ng", 1, 4, 3).send().await.unwrap();
    h.wait_status("ng", "ACTIVE", 30).await;
    for (i, n) in h.group_nodes("ng").iter().enumerate() {
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("p{i}"), "namespace": "default" },
            "spec": { "nodeName": n["metadata"]["name"], "terminationGracePeriodSeconds": 0, "containers": [{ "name": "c", "image": "x" }] },
            "status": { "phase": "Running" },
        });
        h.store.create(Resource::Pod, "default", pod).unwrap();
    }
    let out = h
        .eks_client
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .scaling_config(scaling(1, 4, 1))
        .send()
        .await
        .unwrap();
    let id = out.update().unwrap().id().unwrap().to_string();
    h.wait_status("ng", "ACTIVE", 30).await;
    let nodes = h.group_nodes("ng");
    assert_eq!(nodes.len(), 1);
    // Pods without a PDB are evicted by the drain; none is left bound to a removed node.
    let survivor = nodes[0]["metadata"]["name"].as_str().unwrap().to_string();
    let pods = h.store.list_all(Resource::Pod, None);
    assert!(
        pods.iter()
            .all(|p| p["spec"]["nodeName"] == survivor.as_str()),
        "{pods:?}"
    );
    // The removed nodes' instances are terminated; their Nodes linger (no node lifecycle
    // controller runs here).
    assert_eq!(h.all_group_nodes("ng").len(), 3);
    assert_eq!(update_status(&h, &id).await, UpdateStatus::Successful);
    let asg = h
        .asg_client
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let g = &asg.auto_scaling_groups()[0];
    assert_eq!(g.desired_capacity(), Some(1));
    assert_eq!(g.instances().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn label_and_taint_updates_reach_the_existing_nodes() {
    let h = start().await;
    h.create("ng", 1, 2, 2)
        .labels("old", "1")
        .send()
        .await
        .unwrap();
    h.wait_status("ng", "ACTIVE", 30).await;
    h.eks_client
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .labels(
            UpdateLabelsPayload::builder()
                .add_or_update_labels("new", "2")
                .remove_labels("old")
                .build(),
        )
        .taints(
            UpdateTaintsPayload::builder()
                .add_or_update_taints(
                    Taint::builder()
                        .key("ngm/retiring")
                        .value("x")
                        .effect(TaintEffect::NoExecute)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    h.wait_status("ng", "ACTIVE", 30).await;
    for n in h.group_nodes("ng") {
        assert_eq!(label(&n, "new"), Some("2"));
        assert_eq!(label(&n, "old"), None);
        assert!(
            n["spec"]["taints"]
                .as_array()
                .unwrap()
                .iter()
                .any(|t| t["key"] == "ngm/retiring" && t["effect"] == "NoExecute")
        );
    }
    let g = h
        .eks_client
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .send()
        .await
        .unwrap();
    let g = g.nodegroup().unwrap();
    assert_eq!(
        g.labels().unwrap().get("new").map(String::as_str),
        Some("2")
    );
    assert_eq!(g.taints().len(), 1);
    // Reserved prefixes are refused on update too.
    let err = h
        .eks_client
        .update_nodegroup_config()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .labels(
            UpdateLabelsPayload::builder()
                .add_or_update_labels("kubernetes.io/role", "x")
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_invalid_parameter_exception()
    );
}
