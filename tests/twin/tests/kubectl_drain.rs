//! `kubectl drain` against the whole twin with its real controllers running: the drain meets a
//! PodDisruptionBudget, waits on 429s, and finishes once the Deployment's replacements are
//! Ready on the other node. kubectl must be on PATH (the image has it); without it this test
//! fails, it does not skip.

use std::time::Duration;

use ngm_twin::scenario::Scenario;
use ngm_twin::sim::record::check_evictions;
use ngm_twin::store::{Resource, Store, is_pod_ready};
use ngm_twin::twin::{Twin, TwinOptions};
use serde_json::Value;

/// Two nodes, four replicas (two per node) under `maxUnavailable: 1`, with emptyDir data and
/// a DaemonSet, so the drain needs both `--ignore-daemonsets` and `--delete-emptydir-data`
/// and its second eviction must wait for the first pod's replacement.
const SCENARIO: &str = r#"
name: kubectl-drain
cluster:
  name: drain
  region: us-west-2
  speed: 30
  nodeGroups:
    - name: standard
      instanceTypes: [m5.xlarge]
      zones: [us-west-2a, us-west-2b]
      amiRelease: 1.33.4-20251001
      desiredSize: 2
workloads:
  - kind: Deployment
    name: web
    namespace: apps
    replicas: 4
    startupSeconds: 20
    terminationGracePeriodSeconds: 5
    emptyDir: true
    pdb: { maxUnavailable: 1 }
  - kind: DaemonSet
    name: node-agent
    namespace: kube-system
"#;

fn pods_on(store: &Store, node: &str, ns: &str) -> Vec<Value> {
    store
        .list_all(Resource::Pod, Some(ns))
        .into_iter()
        .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
        .map(|p| (*p).clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_drain_waits_on_429s_until_replacements_are_ready_on_another_node() {
    let scenario = Scenario::parse(SCENARIO).expect("scenario");
    let twin = Twin::start(Some(scenario), TwinOptions::default())
        .await
        .expect("the twin boots");
    let store = twin.store().clone();
    let nodes = twin.ready_nodes("standard");
    assert_eq!(nodes.len(), 2);
    let (drained, other) = nodes
        .iter()
        .map(|n| (n.clone(), pods_on(&store, n, "apps").len()))
        .find(|(_, n)| *n >= 2)
        .map(|(n, _)| {
            let other = nodes.iter().find(|o| **o != n).cloned().unwrap_or_default();
            (n, other)
        })
        .expect("a node runs at least two web pods, so one eviction must wait");

    let cache = std::env::temp_dir().join(format!("ngm-twin-drain-cache-{}", std::process::id()));
    let run = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(twin.kubeconfig())
        .arg("--cache-dir")
        .arg(&cache)
        .args([
            "drain",
            &drained,
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=120s",
        ])
        .output();
    let out = match tokio::time::timeout(Duration::from_secs(150), run).await {
        Ok(Ok(out)) => out,
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("kubectl is not on PATH: install kubectl (or Debian's kubernetes-client)")
        }
        Ok(Err(e)) => panic!("running kubectl: {e}"),
        Err(_) => panic!("kubectl drain did not finish within 150 s"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "kubectl drain failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains(&format!("node/{drained} drained")),
        "{stdout}"
    );

    let log = store.evictions();
    let blocked = log.iter().filter(|e| e.code == 429).count();
    let allowed = log.iter().filter(|e| e.code == 201).count();
    assert!(blocked >= 1, "the PDB never blocked an eviction: {log:?}");
    assert!(
        stderr.contains("disruption budget"),
        "kubectl did not report waiting on the PDB:\n{stderr}"
    );
    assert!(
        allowed >= 2,
        "both web pods on the node were evicted: {log:?}"
    );
    // I2: no eviction was allowed with no disruption to spend.
    assert_eq!(check_evictions(&log), Vec::new());

    assert!(
        pods_on(&store, &drained, "apps").is_empty(),
        "web pods are left on the drained node"
    );
    let daemon = pods_on(&store, &drained, "kube-system");
    assert_eq!(daemon.len(), 1, "the DaemonSet pod stays: drain skips it");
    let node = store.get(Resource::Node, "", &drained).expect("node");
    assert_eq!(
        node.pointer("/spec/unschedulable"),
        Some(&Value::Bool(true))
    );

    // The replacements: all four replicas Ready on the other node.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let ready = pods_on(&store, &other, "apps")
            .iter()
            .filter(|p| is_pod_ready(p))
            .count();
        if ready == 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{ready} of 4 web pods Ready on {other}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    twin.shutdown().await.expect("shutdown");
}
