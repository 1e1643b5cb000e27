//! `externalTrafficPolicy` Local against Cluster when a node loses its last pod of a service.

mod lb_support;

use chrono::TimeDelta;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use lb_support::*;
use ngm_twin::lb::{FailureReason, TargetState};

// One pod per node (a DaemonSet) behind two NLBs, one per policy. A replacement pod takes
// 120 s to turn Ready, so the node stays without a local pod for longer than the checks need.
// It stops gracefully, with a preStop that outlasts kube-proxy's lag, so with `Cluster`
// nothing is sent to it once it stops.
const BOTH: &str = "
workloads:
  - { kind: DaemonSet, name: web, namespace: apps, startupSeconds: 120, terminationGracePeriodSeconds: 30, preStopSeconds: 2, onSigterm: stopAccepting }
services:
  - { name: web-local, namespace: apps, workload: web, type: LoadBalancer, externalTrafficPolicy: Local, loadBalancer: { kind: NLB } }
  - { name: web-cluster, namespace: apps, workload: web, type: LoadBalancer, externalTrafficPolicy: Cluster, loadBalancer: { kind: NLB } }
traffic:
  - { service: apps/web-local, requestsPerSecond: 5, requestSeconds: 1 }
  - { service: apps/web-cluster, requestsPerSecond: 5, requestSeconds: 1 }
";

// Upstream: with `externalTrafficPolicy: Local` kube-proxy only forwards to pods on the node
// the request reached, and its health-check node port fails once the node has none; the
// load balancer stops routing there only after its health checks notice (here 2 failures,
// 10 s apart). With `Cluster`, kube-proxy forwards to a ready pod on any node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_traffic_fails_until_the_health_check_notices_a_node_lost_its_pod_and_cluster_traffic_does_not()
 {
    let twin = boot(scenario(3, BOTH)).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    twin.run_for(30.0, 0.5).await;
    assert_eq!(
        lbs.stats().failed(),
        0,
        "a settled cluster serves every request"
    );

    let node = &twin.nodes[0];
    let pod = name_of(&twin.pods_on("apps", node)[0]);
    let pods: Api<Pod> = Api::namespaced(client, "apps");
    pods.delete(&pod, &DeleteParams::default())
        .await
        .expect("delete the node's pod");
    let deleted_at = twin.clock.now();
    twin.run_for(30.0, 0.5).await;
    assert_eq!(
        state_of(&lbs, "apps", "web-local", node),
        Some(TargetState::Unhealthy)
    );
    assert_eq!(
        state_of(&lbs, "apps", "web-cluster", node),
        Some(TargetState::Healthy)
    );
    let failed_then = lbs.stats().failed();
    twin.run_for(60.0, 0.5).await;

    let stats = lbs.stop().await;
    let local = stats.service("apps/web-local").expect("local stream");
    let cluster = stats.service("apps/web-cluster").expect("cluster stream");
    assert_eq!(cluster.failed, 0, "{:?}", cluster.failures);
    assert!(
        local.failed > 0,
        "requests reached the node before the checks noticed"
    );
    // No local endpoint; or, while kube-proxy falls back to the terminating one, one lag
    // after its preStop ended, refused.
    let no_endpoint = local
        .failures
        .get(&FailureReason::NoEndpoint)
        .copied()
        .unwrap_or(0);
    let refused = local
        .failures
        .get(&FailureReason::Refused)
        .copied()
        .unwrap_or(0);
    assert!(no_endpoint > 0, "{:?}", local.failures);
    assert_eq!(no_endpoint + refused, local.failed, "{:?}", local.failures);
    assert_eq!(
        stats.failed(),
        failed_then,
        "no failure once the target is unhealthy"
    );
    // Two failed checks 10 s apart: nothing fails 20 s after (plus slack for the steps the
    // loops may lag behind the clock), well before a third check.
    let window = deleted_at + TimeDelta::seconds(25);
    assert!(
        stats
            .samples
            .iter()
            .all(|s| s.at >= deleted_at && s.at <= window),
        "{:?}",
        stats.samples
    );
    assert!(
        stats
            .samples
            .iter()
            .all(|s| s.node.as_deref() == Some(node.as_str()))
    );
}
