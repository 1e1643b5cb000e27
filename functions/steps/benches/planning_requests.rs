//! How many Kubernetes requests planning a migration makes on a large twin, and how long it
//! takes. Prints figures; asserts nothing about time.
//!
//! cargo bench -p ngm-steps --bench planning_requests -- [NODES] [PODS]

use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use ngm_adapters::auth::mint_token;
use ngm_adapters::kube::{ClusterEndpoint, KubeAdapter, client_for_cluster};
use ngm_core::model::{ClusterInfo, LabelSelector};
use ngm_steps::observe::observe_cluster;
use ngm_twin::scenario::scale_scenario;
use ngm_twin::server::serve_local;

#[tokio::main]
async fn main() {
    let args: Vec<u32> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let nodes = args.first().copied().unwrap_or(1000);
    let pods = args.get(1).copied().unwrap_or(30_000);
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let start = Instant::now();
    let (store, sim, _) = scale_scenario(nodes, pods)
        .boot(Duration::from_secs(1800))
        .await
        .expect("boot");
    println!(
        "twin: {nodes} nodes, {pods} pods Ready in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let (url, _server) = serve_local(store.clone()).await.expect("serve");
    let cluster = ClusterInfo {
        name: "scale".into(),
        arn: String::new(),
        endpoint: url,
        ca_data: String::new(),
        version: "1.33".into(),
        tags: Default::default(),
    };
    let creds = Credentials::new("AKID", "SECRET", None, None, "bench");
    let token = mint_token(&creds, "us-west-2", "scale", SystemTime::now()).expect("token");
    let kube = KubeAdapter::new(
        client_for_cluster(&cluster, &token, &ClusterEndpoint::default()).expect("client"),
    );

    let before = store.requests().snapshot();
    let t = Instant::now();
    let view = observe_cluster(
        &kube,
        &LabelSelector::eq([("eks.amazonaws.com/nodegroup", "bulk")]),
    )
    .await
    .expect("observe");
    let took = t.elapsed();
    let after = store.requests().snapshot();
    let mut total = 0;
    println!(
        "planning read {} nodes, {} pods, {} workloads in {:.2} s",
        view.old_nodes.len(),
        view.old_pods.len(),
        view.workloads.len(),
        took.as_secs_f64()
    );
    for (key, n) in &after {
        let d = n - before.get(key).copied().unwrap_or(0);
        if d > 0 {
            println!("  {:<6} {:<28} {d}", key.0, key.1);
            total += d;
        }
    }
    println!("kubernetes requests for planning: {total}");
    sim.stop().await;
}
