//! A Spot rebalance recommendation on a managed group, as EKS handles it (EKS user guide,
//! "Managed node groups", capacity types, Spot): a replacement node joins the group first, then
//! the recommended node is cordoned and drained, and its instance terminated.

mod eks_support;

use eks_support::*;
use ngm_twin::store::Resource;
use serde_json::{Value, json};

fn name(n: &Value) -> String {
    n["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebalance_adds_a_replacement_to_the_group_then_drains_and_terminates_the_busiest_node() {
    let h = start().await;
    h.create("spot", 1, 2, 2).send().await.unwrap();
    h.wait_status("spot", "ACTIVE", 30).await;
    let before: Vec<String> = h.group_nodes("spot").iter().map(name).collect();
    assert_eq!(before.len(), 2);
    // The busiest node gets the recommendation.
    let busy = before[1].clone();
    for i in 0..2 {
        h.store
            .create(
                Resource::Pod,
                "default",
                web_pod(&format!("web-{i}"), &busy),
            )
            .unwrap();
    }
    let done = h.eks.capacity_rebalance("spot").await.unwrap();
    let (recommended, replacement) = done.expect("a rebalance");
    assert_eq!(recommended, busy);
    assert!(
        !before.contains(&replacement),
        "the replacement is a new node"
    );
    // The reconciler sees the terminated instance go at its next pass.
    eventually(30, "the recommended node to go", || async {
        (h.group_nodes("spot").len() == 2).then_some(())
    })
    .await;
    let now: Vec<Value> = h.group_nodes("spot");
    let names: Vec<String> = now.iter().map(name).collect();
    assert!(names.contains(&replacement) && !names.contains(&recommended));
    // The replacement joined as any node of the group: its label, and no taint.
    let joined = now.iter().find(|n| name(n) == replacement).unwrap();
    assert_eq!(label(joined, "eks.amazonaws.com/nodegroup"), Some("spot"));
    assert!(
        joined["spec"]["taints"]
            .as_array()
            .is_none_or(Vec::is_empty)
    );
    // Its pods were evicted before the instance went.
    assert!(
        h.store
            .list_all(Resource::Pod, Some("default"))
            .iter()
            .all(|p| p["spec"]["nodeName"] != json!(busy)),
    );
    assert!(h.store.evictions().iter().filter(|e| e.code == 201).count() >= 2);
    // The group is back at its size.
    let asgs = h
        .asg_client
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let g = asgs
        .auto_scaling_groups()
        .iter()
        .find(|g| {
            g.auto_scaling_group_name()
                .is_some_and(|n| n.contains("spot"))
        })
        .unwrap();
    assert_eq!((g.desired_capacity(), g.max_size()), (Some(2), Some(2)));
}
