//! Planning reads the cluster in requests that grow with nodes plus workloads.

use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use ngm_adapters::auth::mint_token;
use ngm_adapters::kube::{ClusterEndpoint, KubeAdapter, client_for_cluster};
use ngm_core::model::{ClusterInfo, LabelSelector};
use ngm_steps::observe::{PER_NODE_POD_LIST_LIMIT, observe_cluster};

// The first test relies on 12 old nodes being listed per node.
const _: () = assert!(12 <= PER_NODE_POD_LIST_LIMIT);
use ngm_twin::scenario::scale_scenario;
use ngm_twin::server::serve_local;

async fn adapter(url: String) -> KubeAdapter {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cluster = ClusterInfo {
        name: "scale".into(),
        arn: String::new(),
        endpoint: url,
        ca_data: String::new(),
        version: "1.33".into(),
        tags: Default::default(),
    };
    let creds = Credentials::new("AKID", "SECRET", None, None, "test");
    let token = mint_token(&creds, "us-west-2", "scale", SystemTime::now()).unwrap();
    KubeAdapter::new(client_for_cluster(&cluster, &token, &ClusterEndpoint::default()).unwrap())
}

fn list_requests(store: &ngm_twin::store::Store) -> u64 {
    store
        .requests()
        .snapshot()
        .iter()
        .filter(|((verb, _), _)| verb == "list")
        .map(|(_, n)| n)
        .sum()
}

#[tokio::test]
async fn planning_a_small_group_lists_pods_once_per_old_node() {
    let scenario = scale_scenario(12, 240);
    let (store, sim, _) = scenario.boot(Duration::from_secs(120)).await.expect("boot");
    // The cluster is settled: the controllers stop, so that at 600x they do not starve the
    // server of the one test thread (only the requests are counted here).
    sim.stop().await;
    let (url, _server) = serve_local(store.clone()).await.unwrap();
    let kube = adapter(url).await;
    let before = list_requests(&store);
    let view = observe_cluster(
        &kube,
        &LabelSelector::eq([("eks.amazonaws.com/nodegroup", "bulk")]),
    )
    .await
    .unwrap();
    assert_eq!(view.old_nodes.len(), 12);
    assert_eq!(view.old_pods.len(), 240);
    assert_eq!(view.workloads.len(), 8);
    // nodes, 12 per-node pod lists, deployments, statefulsets, replicasets, daemonsets, pdbs,
    // services: every list fits one page here.
    assert_eq!(list_requests(&store) - before, 1 + 12 + 6);
}

#[tokio::test]
async fn planning_a_large_group_lists_all_pods_in_pages_instead_of_per_node() {
    let scenario = scale_scenario(80, 1200);
    let (store, sim, _) = scenario.boot(Duration::from_secs(240)).await.expect("boot");
    sim.stop().await;
    let (url, _server) = serve_local(store.clone()).await.unwrap();
    let kube = adapter(url).await.with_page_size(500);
    let before = list_requests(&store);
    let view = observe_cluster(
        &kube,
        &LabelSelector::eq([("eks.amazonaws.com/nodegroup", "bulk")]),
    )
    .await
    .unwrap();
    assert_eq!(view.old_nodes.len(), 80);
    assert_eq!(view.old_pods.len(), 1200);
    // 1,200 pods at 500 a page is 3 requests, not 80.
    assert_eq!(list_requests(&store) - before, 1 + 3 + 6);
}
