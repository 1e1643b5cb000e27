//! Scheduler, kubelet and endpoints on a store with a manual clock; every wait polls with a
//! bounded real-time deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use ngm_twin::clock::Clock;
use ngm_twin::scenario::{
    OnSigterm, ServiceSpec, ServiceType, TrafficPolicy, Workload, WorkloadKind, service_object,
    wait_until,
};
use ngm_twin::sim::nodes::{NodeTemplate, register_node, remove_node, terminate_instance};
use ngm_twin::sim::{InFlightGuard, Sim};
use ngm_twin::store::{DeleteOptions, Resource, Store};
use serde_json::json;

mod sim_support;
use sim_support::*;

/// Every pod named `prefix…` is bound to `node`.
fn all_on(store: &Store, prefix: &str, node: &str) -> bool {
    pods(store, prefix)
        .iter()
        .all(|p| p["spec"]["nodeName"] == json!(node))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pod_leaves_the_endpoints_at_once_and_goes_after_its_prestop() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a", "g");
    let mut w = workload(WorkloadKind::Deployment, "web", 1);
    w.pre_stop_seconds = Some(20);
    create(&store, &w);
    let svc = ServiceSpec {
        name: "web".into(),
        namespace: "default".into(),
        workload: Some("web".into()),
        selector: BTreeMap::new(),
        type_: ServiceType::LoadBalancer,
        external_traffic_policy: TrafficPolicy::Cluster,
        port: 80,
        target_port: None,
        load_balancer: None,
    };
    store
        .create(Resource::Service, "default", service_object(&svc, &[w]))
        .expect("service");
    let ready_in_slice = |store: &Store| -> Vec<bool> {
        store
            .try_get(Resource::EndpointSlice, "default", "web-twin")
            .and_then(|s| {
                s["endpoints"]
                    .as_array()
                    .map(|e| e.iter().map(|e| e["conditions"]["ready"] == true).collect())
            })
            .unwrap_or_default()
    };
    eventually(&clock, "ready endpoint", || {
        ready_in_slice(&store) == [true]
    })
    .await;
    let pod = pods(&store, "web-").remove(0);
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let uid = pod["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    store
        .delete(Resource::Pod, "default", &name, &DeleteOptions::default())
        .expect("graceful delete");
    // Without advancing the clock, the endpoint turns not-ready.
    assert!(
        wait_until(
            &Clock::manual_default(),
            DEADLINE,
            Duration::ZERO,
            || ready_in_slice(&store).first() == Some(&false)
        )
        .await,
        "endpoint still ready"
    );
    let endpoints = store
        .get(Resource::Endpoints, "default", "web")
        .expect("endpoints");
    assert!(
        endpoints["subsets"]
            .as_array()
            .is_none_or(|s| s.iter().all(|s| s["addresses"].is_null())),
        "terminating pods leave Endpoints.addresses"
    );
    // It is still there during preStop...
    clock.advance(Duration::from_secs(10));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        store
            .try_get(Resource::Pod, "default", &name)
            .is_some_and(|p| p["metadata"]["uid"] == json!(uid)),
        "gone before preStop ended"
    );
    // ...and gone after it.
    eventually(&clock, "pod removed after preStop", || {
        store.try_get(Resource::Pod, "default", &name).is_none()
    })
    .await;
    sim.stop().await;
}

/// A one-replica `web` (changed by `tune`) on one node, Ready, with one request in flight on
/// its pod: the twin, the pod's name and the request.
async fn ready_pod_with_a_request(
    tune: impl FnOnce(&mut Workload),
) -> (Store, Clock, Sim, String, InFlightGuard) {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a", "g");
    let mut w = workload(WorkloadKind::Deployment, "web", 1);
    tune(&mut w);
    create(&store, &w);
    eventually(&clock, "ready", || ready_pods(&store, "web-") == 1).await;
    let pod = pods(&store, "web-").remove(0);
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let request = sim
        .inflight()
        .begin(pod["metadata"]["uid"].as_str().unwrap_or_default());
    (store, clock, sim, name, request)
}

// Upstream (kubernetes `pkg/kubelet/kuberuntime/kuberuntime_container.go`, `killContainer`):
// after the preStop hook the container gets SIGTERM and has until the grace period ends; a
// graceful server (`onSigterm: stopAccepting`, as Go's `Server.Shutdown`) serves what is in
// flight in that time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_pod_serves_its_in_flight_requests_until_they_end() {
    let (store, clock, sim, name, request) = ready_pod_with_a_request(|w| {
        w.pre_stop_seconds = Some(5);
        w.termination_grace_period_seconds = Some(60);
        w.on_sigterm = OnSigterm::StopAccepting;
    })
    .await;
    store
        .delete(Resource::Pod, "default", &name, &DeleteOptions::default())
        .expect("delete");
    clock.advance(Duration::from_secs(30));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        store.try_get(Resource::Pod, "default", &name).is_some(),
        "removed while a request was in flight"
    );
    drop(request);
    eventually(&clock, "removed once the request ended", || {
        store.try_get(Resource::Pod, "default", &name).is_none()
    })
    .await;
    sim.stop().await;
}

// Upstream: the kubelet runs the preStop hook, then stops the container with SIGTERM and
// SIGKILLs it when the grace period ends (kubernetes `pkg/kubelet/kuberuntime/
// kuberuntime_container.go`, `killContainer`); SIGTERM's default action ends the process
// (signal(7)), so a pod whose process has no handler (`onSigterm: exit`, the default) is gone
// once its preStop ends, whatever is in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_exits_on_sigterm_ends_its_pod_with_requests_in_flight() {
    let (store, clock, sim, name, _request) = ready_pod_with_a_request(|w| {
        w.pre_stop_seconds = Some(5);
        w.termination_grace_period_seconds = Some(60);
    })
    .await;
    let deleted_at = clock.now();
    store
        .delete(Resource::Pod, "default", &name, &DeleteOptions::default())
        .expect("delete");
    clock.advance(Duration::from_secs(3));
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        store.try_get(Resource::Pod, "default", &name).is_some(),
        "gone before its preStop ended"
    );
    eventually(&clock, "removed at SIGTERM", || {
        store.try_get(Resource::Pod, "default", &name).is_none()
    })
    .await;
    let after = (clock.now() - deleted_at).num_seconds();
    assert!(
        after < 10,
        "removed {after} s after the deletion, not at the preStop's end"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_ends_a_terminating_pod_even_with_requests_in_flight() {
    let (store, clock, sim, name, _stuck) = ready_pod_with_a_request(|w| {
        w.termination_grace_period_seconds = Some(30);
    })
    .await;
    store
        .delete(Resource::Pod, "default", &name, &DeleteOptions::default())
        .expect("delete");
    eventually(&clock, "removed at the grace deadline", || {
        store.try_get(Resource::Pod, "default", &name).is_none()
    })
    .await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_node_takes_its_pods_and_the_replicaset_replaces_them_elsewhere() {
    let (store, clock, sim) = twin();
    let a = node(&store, "us-west-2a", "g");
    let b = node(&store, "us-west-2b", "g");
    create(&store, &workload(WorkloadKind::Deployment, "web", 2));
    eventually(&clock, "2 ready", || ready_pods(&store, "web-") == 2).await;
    let gone = remove_node(&store, &a);
    assert_eq!(gone.len(), 1, "the node's pod went with it");
    eventually(&clock, "2 ready on the remaining node", || {
        ready_pods(&store, "web-") == 2 && all_on(&store, "web-", &b)
    })
    .await;
    sim.stop().await;
}

/// A terminated instance's Node and pods stay as they were until the node lifecycle controller
/// sees the kubelet go quiet: after `--node-monitor-grace-period` (50 s) the node turns Unknown
/// and its pods not Ready (kubernetes `pkg/controller/nodelifecycle/node_lifecycle_controller.go`,
/// `MarkPodsNotReady` in `pkg/controller/util/node/controller_utils.go`); the cloud node
/// lifecycle controller deletes the Node at its next 5 s pass (`k8s.io/cloud-provider`
/// `controllers/nodelifecycle/node_lifecycle_controller.go`), and the pod garbage collector
/// takes the pods 40 s later (`pkg/controller/podgc/gc_controller.go`, `quarantineTime`). Only
/// then does the ReplicaSet replace them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminated_instance_keeps_its_node_and_ready_pods_until_the_lifecycle_controllers_act() {
    let (store, clock, sim) = twin();
    let a = node(&store, "us-west-2a", "g");
    create(&store, &workload(WorkloadKind::Deployment, "web", 1));
    eventually(&clock, "1 ready", || ready_pods(&store, "web-") == 1).await;
    let b = node(&store, "us-west-2b", "g");
    let first = pods(&store, "web-").remove(0);
    let first_name = first["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let t0 = clock.now();
    terminate_instance(&store, &a);
    let since = |clock: &Clock| (clock.now() - t0).num_milliseconds() as f64 / 1000.0;
    let node_ready = |store: &Store| {
        store.try_get(Resource::Node, "", &a).map(|n| {
            n["status"]["conditions"]
                .as_array()
                .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
                .map(|c| c["status"].as_str().unwrap_or_default().to_string())
                .unwrap_or_default()
        })
    };
    eventually(&clock, "the pod not Ready", || {
        store
            .try_get(Resource::Pod, "default", &first_name)
            .is_some_and(|p| !ready(&p))
    })
    .await;
    let t = since(&clock);
    assert!((50.0..=52.0).contains(&t), "marked not ready after {t} s");
    assert_eq!(node_ready(&store).as_deref(), Some("Unknown"));
    eventually(&clock, "the Node deleted", || {
        store.try_get(Resource::Node, "", &a).is_none()
    })
    .await;
    let t = since(&clock);
    assert!((55.0..=57.5).contains(&t), "node deleted after {t} s");
    // The pod is still there, and the ReplicaSet has not replaced it.
    assert_eq!(pods(&store, "web-").len(), 1);
    eventually(&clock, "the pod collected", || {
        store
            .try_get(Resource::Pod, "default", &first_name)
            .is_none()
    })
    .await;
    let t = since(&clock);
    assert!((95.0..=98.0).contains(&t), "pod collected after {t} s");
    eventually(&clock, "replaced on the other node", || {
        ready_pods(&store, "web-") == 1 && all_on(&store, "web-", &b)
    })
    .await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_fits_nowhere_stays_pending_with_an_unschedulable_condition() {
    let (store, clock, sim) = twin();
    let n = node(&store, "us-west-2a", "g");
    taint_and_cordon(&store, &n);
    create(&store, &workload(WorkloadKind::Deployment, "web", 1));
    eventually(&clock, "PodScheduled=False", || {
        pods(&store, "web-").first().is_some_and(|p| {
            p["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter().any(|c| {
                    c["type"] == "PodScheduled"
                        && c["status"] == "False"
                        && c["reason"] == "Unschedulable"
                })
            })
        })
    })
    .await;
    assert_eq!(pods(&store, "web-")[0]["status"]["phase"], "Pending");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_never_becomes_ready_gets_no_pods() {
    let (store, clock, sim) = twin();
    let t = NodeTemplate {
        never_ready: true,
        ..NodeTemplate::default()
    };
    register_node(&store, &t).expect("registers");
    create(&store, &workload(WorkloadKind::Deployment, "web", 1));
    eventually(&clock, "unschedulable", || {
        pods(&store, "web-")
            .first()
            .is_some_and(|p| p["status"]["conditions"].to_string().contains("not ready"))
    })
    .await;
    let good = node(&store, "us-west-2b", "g");
    eventually(&clock, "ready on the good node", || {
        pods(&store, "web-")
            .first()
            .is_some_and(|p| ready(p) && p["spec"]["nodeName"] == json!(good))
    })
    .await;
    sim.stop().await;
}
