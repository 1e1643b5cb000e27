//! Shared helpers of the simulation tests: a store on a manual clock with the controllers
//! running, builders, and a bounded poll.

// Each test binary uses a different subset of the helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::time::Duration;

use ngm_twin::clock::Clock;
use ngm_twin::scenario::{Requests, Workload, WorkloadKind, wait_until, workload_objects};
use ngm_twin::sim::nodes::{NodeTemplate, register_node};
use ngm_twin::sim::{self, Sim, SimConfig};
use ngm_twin::store::{Resource, Store};
use serde_json::{Value, json};

pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn twin() -> (Store, Clock, Sim) {
    let clock = Clock::manual_default();
    let store = Store::new(clock.clone());
    let sim = sim::start(&store, SimConfig::default());
    (store, clock, sim)
}

pub fn node(store: &Store, zone: &str, group: &str) -> String {
    let t = NodeTemplate {
        nodegroup: Some(group.into()),
        instance_type: "m5.xlarge".into(),
        zone: zone.into(),
        ..NodeTemplate::default()
    };
    let n = register_node(store, &t).expect("node registers");
    n["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

pub fn workload(kind: WorkloadKind, name: &str, replicas: i32) -> Workload {
    Workload {
        kind,
        name: name.into(),
        namespace: "default".into(),
        replicas,
        completions: None,
        run_seconds: None,
        backoff_limit: None,
        labels: BTreeMap::new(),
        annotations: BTreeMap::new(),
        image: "app:1".into(),
        container_port: 8080,
        requests: Requests::default(),
        startup_seconds: Some(5.0),
        termination_grace_period_seconds: Some(30),
        pre_stop_seconds: None,
        on_sigterm: Default::default(),
        tolerations: Vec::new(),
        node_selector: BTreeMap::new(),
        affinity: None,
        topology_spread_constraints: Vec::new(),
        empty_dir: false,
        readiness_gate: false,
        opt_out: false,
        volume_claims: Vec::new(),
        storage_class: None,
        pod_management_policy: None,
        min_ready_seconds: None,
        hpa: None,
        pdb: None,
    }
}

pub fn create(store: &Store, w: &Workload) {
    for (r, obj) in workload_objects(w) {
        store
            .create(r, &w.namespace, obj)
            .expect("workload object is created");
    }
}

pub fn pods(store: &Store, prefix: &str) -> Vec<Value> {
    store
        .list_all(Resource::Pod, Some("default"))
        .iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
        })
        .map(|p| (**p).clone())
        .collect()
}

pub fn ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

pub fn ready_pods(store: &Store, prefix: &str) -> usize {
    pods(store, prefix)
        .iter()
        .filter(|p| ready(p) && p["metadata"]["deletionTimestamp"].is_null())
        .count()
}

pub async fn eventually(clock: &Clock, what: &str, cond: impl FnMut() -> bool) {
    assert!(
        wait_until(clock, DEADLINE, Duration::from_millis(500), cond).await,
        "timed out waiting for: {what}"
    );
}

pub fn set_replicas(store: &Store, resource: Resource, name: &str, n: i64) {
    store
        .mutate(resource, "default", name, |v| {
            v["spec"]["replicas"] = json!(n);
            Ok(())
        })
        .expect("scale");
}

pub fn taint_and_cordon(store: &Store, node: &str) {
    store
        .mutate(Resource::Node, "", node, |v| {
            v["spec"]["unschedulable"] = json!(true);
            v["spec"]["taints"] =
                json!([{ "key": "ngm.io/migrating", "value": "x", "effect": "NoSchedule" }]);
            Ok(())
        })
        .expect("taint");
}
