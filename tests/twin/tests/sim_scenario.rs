//! Scenario files load, and applying one builds the cluster they describe.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use ngm_twin::scenario::{Fault, Scenario, ScenarioError, scale_scenario};
use ngm_twin::sim::nodes::{
    CAPACITY_TYPE_LABEL, INSTANCE_TYPE_LABEL, NODEGROUP_IMAGE_LABEL, NODEGROUP_LABEL,
};
use ngm_twin::store::{ListParams, Resource};
use serde_json::Value;

fn scenario_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../scenarios")
        .join(name)
}

#[test]
fn every_scenario_file_in_the_repository_loads() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).expect("tests/scenarios exists") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_some_and(|e| e == "yaml") {
            Scenario::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 1);
}

#[test]
fn a_misspelt_field_is_refused() {
    let yaml = "name: x\ncluster:\n  name: c\n  nodeGroups: []\n  sped: 3\n";
    assert!(matches!(
        Scenario::parse(yaml),
        Err(ScenarioError::Parse(_))
    ));
}

#[test]
fn an_unknown_instance_type_is_refused() {
    let yaml = "name: x\ncluster:\n  name: c\n  nodeGroups:\n    - { name: g, instanceTypes: [z9.huge], zones: [us-west-2a], amiRelease: r, desiredSize: 1 }\n";
    assert!(matches!(
        Scenario::parse(yaml),
        Err(ScenarioError::Invalid(_))
    ));
}

#[test]
fn faults_and_the_expected_outcome_parse() {
    let yaml = r#"
name: faults
cluster:
  name: c
  nodeGroups:
    - { name: g, instanceTypes: [m5.large], zones: [us-west-2a], amiRelease: r, desiredSize: 1 }
faults:
  - { kind: throttle, api: aws, call: "eks:CreateNodegroup", times: 3 }
  - { kind: fail, api: kubernetes, call: "create pods/eviction", code: 500 }
  - { kind: failNodegroupCreation }
  - { kind: nodeNeverReady, count: 2 }
  - { kind: killPod, pod: apps/web-0, atSeconds: 120 }
expect: { outcome: rolledBack, error: NodegroupCreateFailed }
"#;
    let s = Scenario::parse(yaml).expect("valid");
    assert_eq!(s.faults.len(), 5);
    assert!(matches!(
        &s.faults[3],
        Fault::NodeNeverReady { count: 2, .. }
    ));
    assert_eq!(
        s.expect.and_then(|e| e.get("outcome").cloned()),
        Some(Value::from("rolledBack"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pulumi_tutorial_boots_with_eks_node_labels_and_ready_workloads() {
    let scenario = Scenario::load(scenario_path("pulumi-tutorial.yaml")).expect("loads");
    let (store, sim, applied) = scenario.boot(Duration::from_secs(60)).await.expect("boots");
    assert_eq!(applied.nodes[0].1.len(), 3);
    let nodes = store.list_all(Resource::Node, None);
    assert_eq!(nodes.len(), 3);
    for n in &nodes {
        let label = |k: &str| {
            n["metadata"]["labels"][k]
                .as_str()
                .unwrap_or_default()
                .to_string()
        };
        assert_eq!(label(NODEGROUP_LABEL), "standard");
        assert_eq!(label(INSTANCE_TYPE_LABEL), "t3.2xlarge");
        assert_eq!(label(CAPACITY_TYPE_LABEL), "ON_DEMAND");
        assert!(label(NODEGROUP_IMAGE_LABEL).starts_with("ami-"));
        assert!(
            n["spec"]["providerID"]
                .as_str()
                .is_some_and(|p| p.starts_with("aws:///us-west-2"))
        );
    }
    let zones: std::collections::BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| {
            n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(zones.len(), 3, "one node per zone");
    let pods = store.list_all(Resource::Pod, None);
    // 3 ingress controllers, 3 echoservers and 2 CoreDNS replicas.
    assert_eq!(pods.len(), 8);
    assert!(pods.iter().all(|p| p["status"]["phase"] == "Running"));
    let slice = store
        .get(
            Resource::EndpointSlice,
            "ingress-nginx",
            "nginx-ingress-controller-twin",
        )
        .expect("slice");
    assert_eq!(slice["endpoints"].as_array().map(Vec::len), Some(3));
    let pdb = store
        .get(
            Resource::PodDisruptionBudget,
            "ingress-nginx",
            "nginx-ingress-controller",
        )
        .expect("pdb");
    assert_eq!(pdb["status"]["disruptionsAllowed"], 1);
    assert!(
        scenario
            .migration
            .as_ref()
            .and_then(|m| m.pointer("/source/managedNodeGroup"))
            .is_some()
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_scale_scenario_loads_and_lists_in_pages() {
    // A tenth of the benchmark (100 nodes, 3,000 pods) keeps the test quick in debug builds.
    let scenario = scale_scenario(100, 3000);
    let started = Instant::now();
    let (store, sim, _) = scenario
        .boot(Duration::from_secs(240))
        .await
        .expect("boots");
    let loaded = started.elapsed();
    let mut params = ListParams {
        limit: Some(500),
        ..ListParams::default()
    };
    let mut total = 0;
    loop {
        let page = store.list(Resource::Pod, &params).expect("list");
        total += page.items.len();
        match page.continue_token {
            Some(t) => params.continue_token = Some(t),
            None => break,
        }
    }
    assert_eq!(total, 3000);
    let per_node = store.list_all(Resource::Pod, None).iter().fold(
        std::collections::HashMap::<String, usize>::new(),
        |mut m, p| {
            *m.entry(
                p["spec"]["nodeName"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
            .or_default() += 1;
            m
        },
    );
    assert!(
        per_node.values().all(|n| *n <= 40),
        "pods spread: max {:?}",
        per_node.values().max()
    );
    eprintln!("scale 100 nodes / 3000 pods loaded in {loaded:?}");
    let _: Option<Value> = None;
    sim.stop().await;
}
