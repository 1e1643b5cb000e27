//! The traffic probe counts every failed request with its reason.

mod lb_support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use lb_support::*;
use ngm_twin::lb::{FailureReason, ProbeStats};
use ngm_twin::store::Resource;
use serde_json::json;

fn web(grace: u32, lb: &str, request_seconds: u32) -> String {
    web_stopping(grace, lb, request_seconds, "")
}

/// As [`web`], with more fields for the workload (`preStopSeconds: 2, onSigterm: ...`).
fn web_stopping(grace: u32, lb: &str, request_seconds: u32, stop: &str) -> String {
    format!(
        "
workloads:
  - {{ kind: Deployment, name: web, namespace: apps, replicas: 3, startupSeconds: 2, terminationGracePeriodSeconds: {grace}, {stop} }}
services:
  - {{ name: web, namespace: apps, workload: web, type: LoadBalancer, loadBalancer: {lb} }}
traffic:
  - {{ service: apps/web, requestsPerSecond: 4, requestSeconds: {request_seconds} }}
"
    )
}

fn only(stats: &ProbeStats, reason: FailureReason) {
    assert!(stats.count(reason) > 0, "no {reason:?} failure: {stats:?}");
    assert_eq!(
        stats.failed(),
        stats.count(reason),
        "{:?}",
        stats.services[0].failures
    );
}

// Upstream: a load balancer with no registered target has nowhere to send a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_with_no_target_when_every_node_is_excluded() {
    only(&every_node_excluded(20.0).await, FailureReason::NoTarget);
}

/// Two nodes behind an ALB (10 s delay), both excluded once traffic runs; the figures
/// `after` seconds after every target drains.
async fn every_node_excluded(after: f64) -> ProbeStats {
    let twin = boot(scenario(
        2,
        &web(30, "{ kind: ALB, deregistrationDelaySeconds: 10 }", 1),
    ))
    .await;
    let lbs = twin.balancers();
    twin.run_for(5.0, 0.5).await;
    for n in &twin.nodes {
        exclude_from_lbs(&twin.store, n);
    }
    twin.eventually("no target left", 0.25, || {
        lbs.targets("apps", "web").is_some_and(|t| {
            t.values()
                .all(|s| *s == ngm_twin::lb::TargetState::Draining)
        })
    })
    .await;
    twin.run_for(after, 0.5).await;
    lbs.stop().await
}

// The report names every failed request (issue: "for every failed request it gives the
// stream, path, reason, node and pod"): past the 200 samples, the groups still count each one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failure_is_counted_in_its_group_past_the_samples() {
    let stats = every_node_excluded(75.0).await;
    assert!(stats.failed() > 200, "{}", stats.failed());
    assert_eq!(stats.samples.len(), 200);
    let counted: u64 = stats.failure_groups.iter().map(|g| g.count).sum();
    assert_eq!(counted, stats.failed());
    let g = &stats.failure_groups[0];
    assert_eq!(
        (g.reason, g.stream.as_str()),
        (FailureReason::NoTarget, "loadBalancer")
    );
    assert!(
        g.path.starts_with("ALB apps/web") && g.first <= g.last,
        "{g:?}"
    );
}

// Upstream: an instance that is terminated takes its pods and open connections with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_on_a_removed_node_fail_with_node_gone() {
    let twin = boot(scenario(3, &web(30, "{ kind: NLB }", 30))).await;
    let lbs = twin.balancers();
    twin.run_for(10.0, 0.5).await;
    ngm_twin::sim::nodes::remove_node(&twin.store, &twin.nodes[0]);
    twin.run_for(40.0, 0.5).await;
    only(&lbs.stop().await, FailureReason::NodeGone);
}

// Upstream (kubernetes `pkg/controller/nodelifecycle/node_lifecycle_controller.go`): a
// terminated instance's pods stay Ready endpoints until the node monitor grace period (50 s)
// ends, so kube-proxy on the other nodes keeps forwarding requests to them, and those time out;
// once the pods are marked not Ready nothing goes there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_forwarded_to_a_terminated_instances_pods_time_out_until_they_turn_not_ready() {
    let twin = boot(scenario(
        3,
        &web(30, "{ kind: ALB, deregistrationDelaySeconds: 5 }", 1),
    ))
    .await;
    let lbs = twin.balancers();
    let dead = twin.nodes[0].clone();
    let pods_there: Vec<String> = twin
        .store
        .list_all(Resource::Pod, Some("apps"))
        .iter()
        .filter(|p| p["spec"]["nodeName"] == json!(dead))
        .map(|p| format!("apps/{}", name_of(p)))
        .collect();
    assert!(!pods_there.is_empty(), "no pod on {dead}");
    // The node leaves the load balancer first, so only kube-proxy's forwarding reaches it.
    exclude_from_lbs(&twin.store, &dead);
    twin.run_for(20.0, 0.5).await;
    let t0 = twin.clock.now();
    ngm_twin::sim::nodes::terminate_instance(&twin.store, &dead);
    twin.run_for(90.0, 0.5).await;
    let stats = lbs.stop().await;
    only(&stats, FailureReason::NodeGone);
    assert!(
        stats
            .samples
            .iter()
            .all(|s| s.pod.as_ref().is_some_and(|p| pods_there.contains(p))),
        "{:?}",
        stats.samples
    );
    let after = |s: &ngm_twin::lb::FailureSample| (s.at - t0).num_milliseconds() as f64 / 1000.0;
    let last = stats.samples.iter().map(after).fold(0.0, f64::max);
    assert!(
        // 50 s of node monitor grace, then kube-proxy's 1 s lag.
        (40.0..=52.0).contains(&last),
        "the last failure came {last} s after the termination"
    );
}

// Upstream (pod termination): the kubelet keeps a terminating pod until its grace period
// ends; requests still in flight then are cut (here a graceful server, whose preStop outlasts
// kube-proxy's lag, so nothing is refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outliving_a_deleted_pods_grace_period_fail_with_pod_killed() {
    let stop = "preStopSeconds: 2, onSigterm: stopAccepting";
    let twin = boot(scenario(3, &web_stopping(5, "{ kind: NLB }", 30, stop))).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    twin.run_for(10.0, 0.5).await;
    let victim = name_of(&twin.store.list_all(Resource::Pod, Some("apps"))[0]);
    Api::<Pod>::namespaced(client, "apps")
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete");
    twin.run_for(40.0, 0.5).await;
    let stats = lbs.stop().await;
    only(&stats, FailureReason::PodKilled);
    assert!(
        stats
            .samples
            .iter()
            .all(|s| s.pod.as_deref() == Some(format!("apps/{victim}").as_str()))
    );
}

// Upstream (pod termination): a terminating pod leaves the endpoints at once, so once its
// consumers see that it gets no new request; a graceful server keeps serving the ones in
// flight until they finish within its grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_on_a_deleted_pod_finish_within_its_grace_period() {
    let stop = "preStopSeconds: 2, onSigterm: stopAccepting";
    let twin = boot(scenario(3, &web_stopping(60, "{ kind: NLB }", 30, stop))).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    twin.run_for(10.0, 0.5).await;
    let victim = name_of(&twin.store.list_all(Resource::Pod, Some("apps"))[0]);
    Api::<Pod>::namespaced(client, "apps")
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete");
    twin.settle("the pod to be terminating", || {
        twin.store
            .try_get(Resource::Pod, "apps", &victim)
            .is_some_and(|p| p.pointer("/metadata/deletionTimestamp").is_some())
    })
    .await;
    // The pod stays while the requests it holds run.
    twin.run_for(10.0, 0.5).await;
    assert!(
        twin.store.try_get(Resource::Pod, "apps", &victim).is_some(),
        "the pod went with requests in flight"
    );
    twin.run_for(40.0, 0.5).await;
    assert!(
        twin.store.try_get(Resource::Pod, "apps", &victim).is_none(),
        "the pod outlived its requests"
    );
    let stats = lbs.stop().await;
    assert_eq!(stats.failed(), 0, "{:?}", stats.samples);
}

// Upstream (kube-proxy): with no ready endpoint the connection is rejected on the node.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_fail_with_no_endpoint_when_the_service_has_no_ready_pod() {
    // Pods that stop gracefully (a preStop longer than kube-proxy's lag).
    let stop = "preStopSeconds: 2, onSigterm: stopAccepting";
    let twin = boot(scenario(2, &web_stopping(30, "{ kind: NLB }", 1, stop))).await;
    let lbs = twin.balancers();
    twin.run_for(5.0, 0.5).await;
    twin.store
        .mutate(Resource::Deployment, "apps", "web", |d| {
            d["spec"]["replicas"] = json!(0);
            Ok(())
        })
        .expect("scale to zero");
    twin.run_for(20.0, 0.5).await;
    // kube-proxy's fallback to terminating endpoints lasts until it sees them stop serving, one
    // lag after their preStop ends: the connections it sends then are refused.
    let stats = lbs.stop().await;
    assert!(
        stats.count(FailureReason::NoEndpoint) > 40,
        "{:?}",
        stats.services
    );
    let refused = stats.count(FailureReason::Refused);
    assert!(refused <= 4 * 2, "{:?}", stats.services);
    assert_eq!(
        stats.failed(),
        stats.count(FailureReason::NoEndpoint) + refused,
        "{:?}",
        stats.services
    );
}

// Upstream (ALB "Connection idle timeout"): a request that sends nothing for longer than the
// idle timeout is closed by the load balancer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_longer_than_the_idle_timeout_fail_with_idle_timeout() {
    let twin = boot(scenario(
        2,
        &web(30, "{ kind: ALB, idleTimeoutSeconds: 5 }", 10),
    ))
    .await;
    let lbs = twin.balancers();
    twin.run_for(20.0, 0.5).await;
    only(&lbs.stop().await, FailureReason::IdleTimeout);
}

/// One replica with a preStop sleep (`prestop` s) and a 10 s startup, behind an ALB.
fn single(prestop: u32) -> String {
    format!(
        "
workloads:
  - {{ kind: Deployment, name: web, namespace: apps, replicas: 1, startupSeconds: 10, preStopSeconds: {prestop}, terminationGracePeriodSeconds: 60 }}
services:
  - {{ name: web, namespace: apps, workload: web, type: LoadBalancer, loadBalancer: {{ kind: ALB }} }}
traffic:
  - {{ service: apps/web, requestsPerSecond: 4, requestSeconds: 1 }}
"
    )
}

/// Deletes the only pod, runs 40 s and returns the figures.
async fn delete_the_only_pod(prestop: u32) -> ProbeStats {
    let twin = boot(scenario(2, &single(prestop))).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    twin.run_for(10.0, 0.5).await;
    let victim = name_of(&twin.store.list_all(Resource::Pod, Some("apps"))[0]);
    Api::<Pod>::namespaced(client, "apps")
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete");
    twin.run_for(40.0, 0.5).await;
    lbs.stop().await
}

// Upstream (kubernetes `pkg/proxy/topology.go`, `CategorizeEndpoints`): with no ready endpoint
// kube-proxy falls back to the serving, terminating ones. A single replica whose preStop sleep
// outlasts its replacement's start keeps answering; without a preStop its process exits at
// once (cutting what is in flight), kube-proxy sends it connections until it sees that
// (refused), and then has no endpoint until the replacement is Ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_terminating_single_replica_serves_until_its_prestop_ends() {
    let with = delete_the_only_pod(20).await;
    assert!(with.sent() > 100);
    assert_eq!(with.failed(), 0, "{:?}", with.samples);
    let without = delete_the_only_pod(0).await;
    for reason in [FailureReason::NoEndpoint, FailureReason::Refused] {
        assert!(
            without.count(reason) > 0,
            "no {reason:?}: {:?}",
            without.services
        );
    }
    let own = [
        FailureReason::NoEndpoint,
        FailureReason::Refused,
        FailureReason::Aborted,
    ];
    assert_eq!(
        without.failed(),
        own.iter().map(|r| without.count(*r)).sum::<u64>(),
        "{:?}",
        without.services
    );
}
