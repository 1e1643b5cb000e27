//! The AWS Load Balancer Controller's IP targets: the pods are the targets, registered and
//! deregistered by the controller after its own lag, with readiness gates it sets once a target
//! is healthy.

mod lb_support;

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use lb_support::*;
use ngm_twin::clock::Clock;
use ngm_twin::lb::{Balancers, FailureReason, LbConfig, TargetState};
use ngm_twin::sim::SimConfig;
use ngm_twin::store::{Resource, Store};
use serde_json::Value;

/// `web` (3 replicas, `stop` added to its fields) behind an Ingress ALB in IP mode, with
/// traffic.
fn web(stop: &str) -> String {
    format!(
        "{}traffic:\n  - {{ service: apps/web, requestsPerSecond: 20, requestSeconds: 0.2 }}\n",
        web_alone(stop)
    )
}

/// `web` without traffic.
fn web_alone(stop: &str) -> String {
    format!(
        "
workloads:
  - {{ kind: Deployment, name: web, namespace: apps, replicas: 3, startupSeconds: 2, terminationGracePeriodSeconds: 30, onSigterm: stopAccepting, {stop} }}
services:
  - {{ name: web, namespace: apps, workload: web, type: ClusterIP, loadBalancer: {{ kind: ALB, targetType: ip, through: ingress }} }}
"
    )
}

/// Deletes one `web` pod after 10 s and runs 40 s more: the failures, and the pod's target
/// states seen meanwhile.
async fn delete_a_web_pod(stop: &str) -> (ngm_twin::lb::ProbeStats, Vec<Option<TargetState>>) {
    let twin = boot(scenario(3, &web(stop))).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    twin.run_for(10.0, 0.25).await;
    let victim = twin
        .store
        .list_all(Resource::Pod, Some("apps"))
        .first()
        .cloned()
        .expect("a web pod");
    let uid = victim
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        lbs.targets("apps", "web")
            .and_then(|t| t.get(&uid).copied()),
        Some(TargetState::Healthy),
        "the pod itself is a healthy target"
    );
    Api::<Pod>::namespaced(client, "apps")
        .delete(&name_of(&victim), &DeleteParams::default())
        .await
        .expect("delete");
    let mut seen = Vec::new();
    for _ in 0..8 {
        twin.run_for(1.0, 0.25).await;
        seen.push(
            lbs.targets("apps", "web")
                .and_then(|t| t.get(&uid).copied()),
        );
    }
    twin.run_for(32.0, 0.25).await;
    (lbs.stop().await, seen)
}

// Upstream: aws-load-balancer-controller `pkg/backend/endpoint_resolver.go` (a terminating
// endpoint is not a target) and `resource_manager.go` (the reconciler deregisters what is no
// longer an endpoint), acting 2 s after the change; an ALB then routes to the target for a few
// seconds more (aws-load-balancer-controller#1064: a 5 s preStop sleep is not enough, 25 s is;
// #1719, #2106). A pod whose preStop outlasts both loses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pods_target_drains_after_the_controllers_lag_and_the_alb_routes_on_meanwhile() {
    let (short, seen) = delete_a_web_pod("preStopSeconds: 5").await;
    assert_eq!(seen[0], Some(TargetState::Healthy), "{seen:?}");
    assert!(
        seen[3..].iter().all(|s| *s == Some(TargetState::Draining)),
        "{seen:?}"
    );
    assert!(
        short.count(FailureReason::Refused) > 0,
        "the ALB still sends connections the stopped process refuses: {:?}",
        short.services
    );
    assert_eq!(short.failed(), short.count(FailureReason::Refused));
    let (long, _) = delete_a_web_pod("preStopSeconds: 20").await;
    assert_eq!(long.failed(), 0, "{:?}", long.services);
}

fn condition<'a>(pod: &'a Value, kind: &str) -> Option<&'a Value> {
    pod.pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c["type"] == kind)
}

// Upstream: kubernetes `pkg/kubelet/status/generate.go`, `GeneratePodReadyCondition` (a pod
// is Ready only once every readiness gate's condition is True: `ReadinessGatesNotReady`);
// aws-load-balancer-controller `docs/deploy/pod_readiness_gate.md` and
// `calculateReadinessGateTransition` (the controller sets the gate True once the target is
// healthy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gated_pod_turns_ready_only_once_its_target_is_healthy() {
    let s = scenario(3, &web_alone("preStopSeconds: 20, readinessGate: true"));
    let clock = Clock::manual_default();
    let store = Store::new(clock.clone());
    let sim = ngm_twin::sim::start(&store, SimConfig::default());
    s.create(&store).expect("scenario objects");
    let running = |store: &Store| {
        store
            .list_all(Resource::Pod, Some("apps"))
            .iter()
            .filter(|p| condition(p, "ContainersReady").is_some_and(|c| c["status"] == "True"))
            .count()
    };
    for _ in 0..200 {
        clock.advance(Duration::from_millis(250));
        tokio::time::sleep(Duration::from_millis(2)).await;
        if running(&store) == 3 {
            break;
        }
    }
    assert_eq!(running(&store), 3, "containers ready");
    for p in store.list_all(Resource::Pod, Some("apps")) {
        let ready = condition(&p, "Ready").cloned().unwrap_or_default();
        assert_eq!(ready["status"], "False", "{ready}");
        assert_eq!(ready["reason"], "ReadinessGatesNotReady", "{ready}");
    }
    let lbs = Balancers::start(&store, sim.inflight().clone(), LbConfig::from_scenario(&s));
    for _ in 0..400 {
        clock.advance(Duration::from_millis(250));
        tokio::time::sleep(Duration::from_millis(2)).await;
        if s.settled(&store).is_ok() {
            break;
        }
    }
    s.settled(&store).expect("gated pods turn Ready");
    let gate = ngm_twin::lb::ip::readiness_gate("apps", "web");
    for p in store.list_all(Resource::Pod, Some("apps")) {
        assert_eq!(
            condition(&p, &gate).map(|c| c["status"].clone()),
            Some("True".into())
        );
    }
    assert!(
        lbs.targets("apps", "web")
            .is_some_and(|t| t.len() == 3 && t.values().all(|s| *s == TargetState::Healthy))
    );
    assert_eq!(
        store
            .list_all(Resource::TargetGroupBinding, Some("apps"))
            .len(),
        1,
        "the controller's binding"
    );
    lbs.stop().await;
}
