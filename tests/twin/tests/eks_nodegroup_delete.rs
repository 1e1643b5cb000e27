//! DeleteNodegroup: DELETING while EKS's own drain runs, then 404 with the nodes gone.

mod eks_support;

use eks_support::*;
use ngm_twin::eks::DrainStep;
use ngm_twin::store::Resource;
use serde_json::json;

/// No instance of group `ng` runs, and its Nodes still linger (no node lifecycle controller
/// runs in this harness): each belongs to a terminated instance.
fn all_terminated(h: &Harness) -> bool {
    let nodes = h.all_group_nodes("ng");
    h.group_nodes("ng").is_empty()
        && !nodes.is_empty()
        && nodes.iter().all(|n| {
            n["metadata"]["name"]
                .as_str()
                .is_some_and(|name| h.store.dead_instances().contains(name))
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_goes_deleting_then_not_found_and_takes_nodes_and_asg_away() {
    let h = start().await;
    h.create("ng", 1, 3, 2).send().await.unwrap();
    h.wait_status("ng", "ACTIVE", 30).await;
    let out = h
        .eks_client
        .delete_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.nodegroup().unwrap().status().map(|s| s.as_str()),
        Some("DELETING")
    );
    assert_eq!(h.status("ng").await.as_deref(), Some("DELETING"));
    eventually(30, "the group to be gone", || async {
        h.status("ng").await.is_none().then_some(())
    })
    .await;
    // Every instance is terminated. Their Nodes linger until the node lifecycle controllers
    // delete them (`src/sim/nodelifecycle.rs`, tested in sim_kubelet), as on EKS.
    assert!(all_terminated(&h));
    let asgs = h
        .asg_client
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    assert!(asgs.auto_scaling_groups().is_empty());
    let err = h
        .eks_client
        .delete_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .unwrap()
            .is_resource_not_found_exception()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_delete_drain_evicts_only_within_the_pdb_then_terminates_the_rest_after_five_minutes() {
    let h = start().await;
    h.create("ng", 1, 1, 1).send().await.unwrap();
    h.wait_status("ng", "ACTIVE", 30).await;
    let node = h.group_nodes("ng")[0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_string();
    for p in ["web-a", "web-b"] {
        h.store
            .create(Resource::Pod, "default", web_pod(p, &node))
            .unwrap();
    }
    let pdb = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "web" } } },
    });
    h.store
        .create(Resource::PodDisruptionBudget, "default", pdb)
        .unwrap();

    let started = h.clock.now();
    h.eks_client
        .delete_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .send()
        .await
        .unwrap();
    // While the drain waits on the PDB the group stays DELETING and the node stays.
    eventually(30, "one pod evicted", || async {
        (h.store.list_all(Resource::Pod, None).len() == 1).then_some(())
    })
    .await;
    assert_eq!(h.status("ng").await.as_deref(), Some("DELETING"));
    assert!(!h.group_nodes("ng").is_empty());

    eventually(30, "the group to be gone", || async {
        h.status("ng").await.is_none().then_some(())
    })
    .await;
    // The blocked pod's instance is terminated under it: it is left on a dead node, for the
    // pod garbage collector once the node lifecycle controllers delete the Node.
    assert!(all_terminated(&h));
    let pods = h.store.list_all(Resource::Pod, None);
    assert_eq!(pods.len(), 1);
    assert!(
        pods.iter().all(|p| p["spec"]["nodeName"] == json!(node)),
        "{pods:?}"
    );

    let log = h.eks.drain_log();
    let steps = |s: DrainStep| log.iter().filter(|r| r.step == s).count();
    // minAvailable 1 of 2 healthy pods allows exactly one eviction.
    assert_eq!(steps(DrainStep::Evicted), 1, "{log:?}");
    assert_eq!(steps(DrainStep::Blocked), 1, "{log:?}");
    assert_eq!(steps(DrainStep::Terminated), 1, "{log:?}");
    let blocked = log.iter().find(|r| r.step == DrainStep::Blocked).unwrap();
    assert_eq!(blocked.pdb.as_deref(), Some("web"));
    // EKS gives up on the drain after 5 minutes and terminates anyway (EKS user guide).
    let terminated = log
        .iter()
        .find(|r| r.step == DrainStep::Terminated)
        .unwrap();
    let waited = (terminated.at - started).num_seconds();
    assert!((300..600).contains(&waited), "terminated after {waited} s");
    // No eviction was allowed while the budget allowed none (I2).
    assert!(
        h.store
            .evictions()
            .iter()
            .all(|e| e.code != 201 || e.disruptions_allowed.is_none_or(|a| a > 0))
    );
}
