//! Load-balancer targets driven over the real Kubernetes API: which nodes are targets, and
//! how a node that leaves drains.

mod lb_support;

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use lb_support::*;
use ngm_twin::lb::{EXCLUDE_LABEL, FailureReason, TargetState};
use serde_json::json;

const WEB: &str = "
workloads:
  - { kind: Deployment, name: web, namespace: apps, replicas: 3, startupSeconds: 2 }
services:
  - { name: web, namespace: apps, workload: web, type: LoadBalancer, loadBalancer: { kind: ALB, deregistrationDelaySeconds: 60, healthCheckIntervalSeconds: 10 } }
traffic:
  - { service: apps/web, requestsPerSecond: 3, requestSeconds: 20 }
";

async fn label(client: &kube::Client, node: &str, value: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "metadata": { "labels": { EXCLUDE_LABEL: value } } });
    nodes
        .patch(node, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("label node");
}

// Upstream: since Kubernetes 1.19 cordon no longer takes a node out of service load
// balancers; only `node.kubernetes.io/exclude-from-external-load-balancers` does, whatever
// its value (the AWS Load Balancer Controller ignores cordon too).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exclude_label_removes_a_node_from_the_targets_and_cordon_does_not() {
    let twin = boot(scenario(3, WEB)).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    let (cordoned, labelled) = (&twin.nodes[0], &twin.nodes[1]);
    twin.settle("every node registered", || {
        lbs.targets("apps", "web").is_some_and(|t| t.len() == 3)
    })
    .await;

    let nodes: Api<Node> = Api::all(client.clone());
    nodes.cordon(cordoned).await.expect("cordon");
    label(&client, labelled, "").await;
    twin.eventually("the labelled node to drain", 0.25, || {
        state_of(&lbs, "apps", "web", labelled) == Some(TargetState::Draining)
    })
    .await;
    twin.run_for(5.0, 0.5).await;
    assert_eq!(
        state_of(&lbs, "apps", "web", cordoned),
        Some(TargetState::Healthy),
        "cordon kept the node a target"
    );

    // After the 60 s deregistration delay the labelled node is no target at all.
    twin.run_for(65.0, 0.5).await;
    let targets = lbs.targets("apps", "web").expect("lb exists");
    assert!(!targets.contains_key(labelled.as_str()), "{targets:?}");
    assert_eq!(targets.len(), 2);

    // Removing the label registers the node again; it gets traffic once it passes its checks.
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({ "metadata": { "labels": { EXCLUDE_LABEL: null } } });
    nodes
        .patch(labelled, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("unlabel");
    twin.eventually("the node to come back", 0.25, || {
        state_of(&lbs, "apps", "web", labelled).is_some()
    })
    .await;
    // Two passed checks 10 s apart, from the next round.
    twin.run_for(35.0, 0.5).await;
    assert_eq!(
        state_of(&lbs, "apps", "web", labelled),
        Some(TargetState::Healthy)
    );
    assert_eq!(lbs.stop().await.failed(), 0);
}

// Upstream (ALB guide, "Deregistration delay" and `target-group-register-targets.md`: "The
// load balancer stops routing requests to a target as soon as you deregister it"): a
// deregistering target gets no new requests, and in-flight requests continue until they
// finish or the delay ends. (An NLB keeps routing for a while: `lb::targets` unit tests.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draining_node_gets_no_new_requests_and_its_in_flight_requests_finish() {
    let twin = boot(scenario(3, WEB)).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    let node = &twin.nodes[0];
    twin.run_for(30.0, 0.5).await;
    let sent_before = lbs.stats().services[0]
        .by_node
        .get(node.as_str())
        .copied()
        .unwrap_or(0);
    assert!(sent_before > 0, "the node got traffic before");

    label(&client, node, "true").await;
    twin.eventually("the node to drain", 0.25, || {
        state_of(&lbs, "apps", "web", node) == Some(TargetState::Draining)
    })
    .await;
    let at_exclusion = lbs.stats().services[0]
        .by_node
        .get(node.as_str())
        .copied()
        .unwrap_or(0);
    twin.run_for(90.0, 0.5).await;

    let stats = lbs.stop().await;
    let web = &stats.services[0];
    assert_eq!(
        web.by_node.get(node.as_str()).copied().unwrap_or(0),
        at_exclusion,
        "no new request after exclusion"
    );
    // 20 s requests fit in the 60 s delay: every in-flight one finished.
    assert_eq!(stats.failed(), 0, "{:?}", stats.samples);
    assert!(web.succeeded > sent_before);
}

// Upstream (ELB "Deregistration delay"): when the delay ends, the load balancer closes the
// connections still open on the deregistered target.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_longer_than_the_deregistration_delay_are_cut_when_it_ends() {
    let rest = WEB
        .replace(
            "deregistrationDelaySeconds: 60",
            "deregistrationDelaySeconds: 5",
        )
        .replace("requestSeconds: 20", "requestSeconds: 30");
    let twin = boot(scenario(3, &rest)).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    twin.run_for(10.0, 0.5).await;
    label(&client, &twin.nodes[0], "").await;
    twin.eventually("the node to drain", 0.25, || {
        state_of(&lbs, "apps", "web", &twin.nodes[0]) == Some(TargetState::Draining)
    })
    .await;
    twin.run_for(40.0, 0.5).await;
    let stats = lbs.stop().await;
    assert!(stats.count(FailureReason::DrainTimeout) > 0, "{stats:?}");
    assert_eq!(
        stats.failed(),
        stats.count(FailureReason::DrainTimeout),
        "{:?}",
        stats.services[0].failures
    );
    assert!(
        stats
            .samples
            .iter()
            .all(|s| s.node.as_deref() == Some(twin.nodes[0].as_str()))
    );
}

/// `WEB` behind an in-tree CLB, with the service controller `lag` seconds behind the nodes.
fn clb_with_lag(lag: f64) -> ngm_twin::scenario::Scenario {
    let rest = WEB
        .replace("kind: ALB", "kind: CLB")
        .replace("requestSeconds: 20", "requestSeconds: 0.2");
    let mut s = scenario(3, &rest);
    s.cluster.endpoint_lag.service_controller_seconds = lag;
    s
}

// kubernetes `staging/src/k8s.io/cloud-provider/controllers/service/controller.go`: a node
// whose exclusion changes is queued, and its load balancers are updated by the node worker
// (UpdateLoadBalancer per Service, in turn): the in-tree CLB keeps routing new requests to a
// labelled node until then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_controller_takes_a_node_out_after_its_lag() {
    let twin = boot(clb_with_lag(10.0)).await;
    let lbs = twin.balancers();
    let node = twin.nodes[0].clone();
    twin.run_for(15.0, 0.5).await;
    exclude_from_lbs(&twin.store, &node);
    let sent = |lbs: &ngm_twin::lb::Balancers| {
        lbs.stats().services[0]
            .by_node
            .get(node.as_str())
            .copied()
            .unwrap_or(0)
    };
    let at_label = sent(&lbs);
    twin.run_for(9.0, 0.25).await;
    assert_eq!(
        state_of(&lbs, "apps", "web", &node),
        Some(TargetState::Healthy),
        "still a target 9 s after the label"
    );
    assert!(sent(&lbs) > at_label, "new requests still reach it");
    twin.run_for(1.5, 0.25).await;
    // Deregistered once the controller saw the label (a CLB ends the drain of an instance
    // with nothing in flight at once).
    let state = state_of(&lbs, "apps", "web", &node);
    assert!(
        matches!(state, None | Some(TargetState::Draining)),
        "{state:?}"
    );
    let at_drain = sent(&lbs);
    twin.run_for(10.0, 0.25).await;
    assert_eq!(sent(&lbs), at_drain, "no new request once it drains");
    assert_eq!(lbs.stop().await.failed(), 0);
}
