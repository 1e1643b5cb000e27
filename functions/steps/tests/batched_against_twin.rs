//! Retire and Rollback over many pods against the cluster twin, over HTTP with the real kube
//! client: each invocation makes at most one batch of writes and leaves a continuation until
//! the rest is done. Prints every invocation's duration and the number of invocations (figures,
//! not a timed test).
//!
//! The suite runs 1,500 pods; the 10,000-pod measurement of issue 9 is
//! `NGM_BATCH_PODS=10000 NGM_BATCH_NODES=120 cargo test --workspace --locked --test
//! batched_against_twin -- --nocapture`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use aws_credential_types::Credentials;
use ngm_adapters::auth::mint_token;
use ngm_adapters::kube::{ClusterEndpoint, KubeAdapter, client_for_cluster};
use ngm_core::marks;
use ngm_core::model::{ClusterInfo, LabelSelector, Timestamp, WorkloadKind};
use ngm_core::ports::KubePort;
use ngm_core::request::parse_request;
use ngm_core::state::{ExecutionRef, MigrationState, Phase};
use ngm_steps::World;
use ngm_steps::fakes::{FakeCloud, managed_group};
use ngm_steps::steps::{BATCH_MAX_ACTIONS, retire, rollback, taint};
use ngm_twin::scenario::scale_scenario;
use ngm_twin::server::serve_local;

const T0: Timestamp = Timestamp(1_700_000_000);

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn kube(url: String) -> KubeAdapter {
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
    let token = mint_token(&creds, "us-west-2", "scale", SystemTime::now()).expect("token");
    KubeAdapter::new(client_for_cluster(&cluster, &token, &ClusterEndpoint::default()).unwrap())
        .with_page_size(500)
}

fn state() -> MigrationState {
    let json = serde_json::json!({
        "cluster": {"name": "scale", "region": "us-west-2"},
        "source": {"managedNodeGroup": "bulk"},
        "target": {"instanceTypes": ["m6i.4xlarge"]},
    });
    let req = parse_request(&json.to_string()).expect("request");
    MigrationState::new(
        ExecutionRef {
            name: "batch-1".into(),
            arn: None,
            started_at: T0,
        },
        req,
    )
}

fn writes(store: &ngm_twin::store::Store) -> u64 {
    store
        .requests()
        .snapshot()
        .iter()
        .filter(|((verb, _), _)| verb == "patch" || verb == "update")
        .map(|(_, n)| n)
        .sum()
}

/// Runs `step` until it leaves no continuation; per invocation: seconds and writes.
async fn invocations<F, Fut>(
    store: &ngm_twin::store::Store,
    mut s: MigrationState,
    step: F,
) -> (MigrationState, Vec<(f64, u64)>)
where
    F: Fn(MigrationState) -> Fut,
    Fut: Future<Output = Result<MigrationState, ngm_steps::StepError>>,
{
    let mut runs = Vec::new();
    loop {
        let before = writes(store);
        let t = Instant::now();
        // As the Lambda harness runs a step: the invocation's budget is a quarter of the
        // 120 s timeout, for the adapters' calls and for the batches alike.
        let budget = tokio::time::Instant::now() + Duration::from_secs(120 / 4);
        let run = ngm_adapters::retry::within(budget, step(s));
        s = ngm_steps::exec::within_invocation(budget, run)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", e.error_type()));
        runs.push((t.elapsed().as_secs_f64(), writes(store) - before));
        if s.continuation.is_none() {
            return (s, runs);
        }
        assert!(runs.len() < 100, "no end to the continuation");
    }
}

fn print(what: &str, pods: u32, runs: &[(f64, u64)]) {
    let max = runs.iter().map(|r| r.0).fold(0.0, f64::max);
    println!(
        "{what} over {pods} pods: {} invocations, longest {max:.2} s (a quarter of the 120 s Lambda timeout is 30 s)",
        runs.len()
    );
    for (i, (secs, w)) in runs.iter().enumerate() {
        println!("  invocation {:>2}: {secs:>6.2} s, {w:>5} writes", i + 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retire_and_rollback_over_many_pods_go_in_batches_under_the_budget() {
    let pods = env_or("NGM_BATCH_PODS", 1_500);
    let nodes = env_or("NGM_BATCH_NODES", 20);
    let t = Instant::now();
    let (store, sim, _) = scale_scenario(nodes, pods)
        .boot(Duration::from_secs(1800))
        .await
        .expect("boot");
    println!(
        "twin: {nodes} nodes, {pods} pods Ready in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let (url, _server) = serve_local(store.clone()).await.expect("serve");
    let kube = Arc::new(kube(url).await);
    // AWS is a fake here (the old group, the lock); Kubernetes is the twin over HTTP.
    let aws = FakeCloud::new();
    aws.add_cluster("scale")
        .add_managed_group(managed_group("bulk", "m5.4xlarge", nodes as i32));
    let world = World {
        kube: kube.clone(),
        ..aws.world()
    };

    // The state Retire finds after the surge: old nodes tainted and labelled, every
    // Deployment marked as surged by this execution (at its own count: nothing to scale).
    let s = taint(state(), &world, T0).await.expect("taint");
    for d in kube
        .list_workloads(WorkloadKind::Deployment)
        .await
        .expect("list")
    {
        let patch = [
            (marks::ORIGINAL_REPLICAS, d.replicas.to_string()),
            (marks::SURGED_REPLICAS, d.replicas.to_string()),
            (marks::READY_BEFORE, d.replicas.to_string()),
            (marks::EXECUTION, "batch-1".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), Some(v)))
        .collect();
        kube.patch_workload_annotations(&d.workload_ref(), &patch)
            .await
            .expect("annotate");
    }
    let mut s = s;
    s.phase = Phase::TrafficCut;

    let (s, runs) = invocations(&store, s, |s| retire(s, &world, T0)).await;
    print("retire", pods, &runs);
    let want = u64::from(pods).div_ceil(BATCH_MAX_ACTIONS as u64);
    assert_eq!(runs.len() as u64, want, "one invocation per batch of marks");
    assert!(
        runs.iter().all(|r| r.1 <= BATCH_MAX_ACTIONS as u64),
        "{runs:?}"
    );
    assert_eq!(s.counts.pods_marked, pods);
    let on_old = kube
        .list_pods(None, &LabelSelector::default())
        .await
        .expect("pods");
    let marked = on_old
        .iter()
        .filter(|p| p.annotations.get(marks::EXECUTION).map(String::as_str) == Some("batch-1"))
        .count();
    assert_eq!(marked as u32, pods);

    let (s, runs) = invocations(&store, s, |s| rollback(s, &world, T0)).await;
    print("rollback", pods, &runs);
    assert!(runs.len() as u64 >= want, "{runs:?}");
    assert!(
        runs.iter().all(|r| r.1 <= BATCH_MAX_ACTIONS as u64),
        "{runs:?}"
    );
    assert_eq!(s.phase, Phase::RolledBack);
    let left = kube
        .list_pods(None, &LabelSelector::default())
        .await
        .expect("pods")
        .into_iter()
        .filter(|p| p.annotations.keys().any(|k| k.starts_with("ngm.io/")))
        .count();
    assert_eq!(left, 0, "every pod mark is gone");
    sim.stop().await;
}
