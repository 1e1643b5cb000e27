//! Shared set-up for the load-balancer, probe and report tests: a scenario booted on a manual
//! clock with the controllers running, the load balancers and probe on top, the API served
//! over HTTP for the real kube client, and helpers that move simulated time in small steps.

#![allow(dead_code)]

use std::time::Duration;

use ngm_twin::clock::Clock;
use ngm_twin::lb::{Balancers, LbConfig, TargetState};
use ngm_twin::scenario::{Scenario, wait_until};
use ngm_twin::server::{ServerHandle, serve_local};
use ngm_twin::sim::{Sim, SimConfig};
use ngm_twin::store::{Resource, Store};
use serde_json::Value;

pub struct Twin {
    pub scenario: Scenario,
    pub clock: Clock,
    pub store: Store,
    pub sim: Sim,
    pub nodes: Vec<String>,
}

/// A cluster of `nodes` m5.large nodes in three zones, plus `rest` (workloads, services and
/// traffic, as scenario YAML).
pub fn scenario(nodes: u32, rest: &str) -> Scenario {
    let yaml = format!(
        "name: lb-test\ncluster:\n  name: twin\n  nodeGroups:\n    - {{ name: old, instanceTypes: [m5.large], zones: [us-west-2a, us-west-2b, us-west-2c], amiRelease: 1.33.4-20251001, desiredSize: {nodes} }}\n{rest}"
    );
    Scenario::parse(&yaml).expect("test scenario is valid")
}

/// Boots the scenario on a manual clock and waits until every workload is Ready.
pub async fn boot(scenario: Scenario) -> Twin {
    let clock = Clock::manual_default();
    let store = Store::new(clock.clone());
    let sim = ngm_twin::sim::start(&store, SimConfig::default());
    let applied = scenario
        .apply(&store, &clock, Duration::from_secs(30))
        .await
        .expect("scenario settles");
    let nodes = applied.nodes.into_iter().flat_map(|(_, n)| n).collect();
    Twin {
        scenario,
        clock,
        store,
        sim,
        nodes,
    }
}

impl Twin {
    /// The load balancers and probe of the scenario, started now.
    pub fn balancers(&self) -> Balancers {
        Balancers::start(
            &self.store,
            self.sim.inflight().clone(),
            LbConfig::from_scenario(&self.scenario),
        )
    }

    pub fn balancers_with(&self, config: LbConfig) -> Balancers {
        Balancers::start(&self.store, self.sim.inflight().clone(), config)
    }

    /// Moves simulated time forward by `secs` in steps of `step` seconds, letting the
    /// controllers and the probe run after each step.
    pub async fn run_for(&self, secs: f64, step: f64) {
        let steps = (secs / step).ceil() as u64;
        for _ in 0..steps {
            self.clock.advance(Duration::from_secs_f64(step));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Polls `cond` (simulated time frozen) for up to 10 real seconds.
    pub async fn settle(&self, what: &str, mut cond: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Polls `cond` while moving simulated time in `step`-second steps, for up to 20 real
    /// seconds.
    pub async fn eventually(&self, what: &str, step: f64, cond: impl FnMut() -> bool) {
        let ok = wait_until(
            &self.clock,
            Duration::from_secs(20),
            Duration::from_secs_f64(step),
            cond,
        )
        .await;
        assert!(ok, "timed out waiting for {what}");
    }

    /// Pods of the namespace on a node.
    pub fn pods_on(&self, ns: &str, node: &str) -> Vec<Value> {
        self.store
            .list_all(Resource::Pod, Some(ns))
            .iter()
            .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node))
            .map(|p| (**p).clone())
            .collect()
    }
}

/// The API over HTTP and a real kube client for it.
pub async fn kube(store: &Store) -> (kube::Client, ServerHandle) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let (url, handle) = serve_local(store.clone()).await.expect("serve");
    let mut config = kube::Config::new(url.parse().expect("url"));
    config.default_retry = false;
    (kube::Client::try_from(config).expect("client"), handle)
}

pub fn state_of(lbs: &Balancers, ns: &str, svc: &str, node: &str) -> Option<TargetState> {
    lbs.targets(ns, svc).and_then(|t| t.get(node).copied())
}

/// Labels `node` out of every external load balancer (Kubernetes'
/// `node.kubernetes.io/exclude-from-external-load-balancers`).
pub fn exclude_from_lbs(store: &Store, node: &str) {
    store
        .mutate(Resource::Node, "", node, |v| {
            v["metadata"]["labels"][ngm_twin::lb::EXCLUDE_LABEL] = serde_json::json!("true");
            Ok(())
        })
        .expect("label");
}

pub fn name_of(obj: &Value) -> String {
    obj.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}
