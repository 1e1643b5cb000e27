//! Every consumer of EndpointSlices acts on a change after its own lag, and a pod's process
//! does what its SIGTERM handling says: the requests that meet a stopping pod fail or not
//! accordingly.

mod lb_support;

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use lb_support::*;
use ngm_twin::lb::{FailureReason, ProbeStats};
use ngm_twin::scenario::Scenario;
use ngm_twin::store::Resource;

/// `web` (3 replicas, `stop` added to its fields) behind an ALB.
fn web(stop: &str, request_seconds: f64) -> String {
    format!(
        "
workloads:
  - {{ kind: Deployment, name: web, namespace: apps, replicas: 3, startupSeconds: 2, terminationGracePeriodSeconds: 30, {stop} }}
services:
  - {{ name: web, namespace: apps, workload: web, type: LoadBalancer, loadBalancer: {{ kind: ALB }} }}
traffic:
  - {{ service: apps/web, requestsPerSecond: 20, requestSeconds: {request_seconds} }}
"
    )
}

/// Boots `scenario`, runs 10 s, deletes one pod of `ns` whose name starts with `prefix` and
/// runs `after` s more: the figures, the pod deleted and when.
async fn delete_one(
    scenario: Scenario,
    ns: &str,
    prefix: &str,
    after: f64,
) -> (ProbeStats, String, DateTime<Utc>) {
    let twin = boot(scenario).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    twin.run_for(10.0, 0.25).await;
    let victim = twin
        .store
        .list_all(Resource::Pod, Some(ns))
        .iter()
        .map(|p| name_of(p))
        .find(|n| n.starts_with(prefix))
        .expect("a pod to delete");
    let t0 = twin.clock.now();
    Api::<Pod>::namespaced(client, ns)
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete");
    twin.run_for(after, 0.25).await;
    (lbs.stop().await, format!("{ns}/{victim}"), t0)
}

/// Deletes one `web` pod (`stop` and `request_seconds` as [`web`]) on 3 nodes and runs
/// `after` s more: the figures and the pod deleted.
async fn delete_a_web_pod(stop: &str, request_seconds: f64, after: f64) -> (ProbeStats, String) {
    let (stats, victim, _) = delete_one(
        scenario(3, &web(stop, request_seconds)),
        "apps",
        "web-",
        after,
    )
    .await;
    (stats, victim)
}

/// Seconds from `t0` to the start of the last failed request.
fn last_failure_after(stats: &ProbeStats, t0: DateTime<Utc>) -> f64 {
    stats
        .samples
        .iter()
        .map(|s| (s.at - t0).num_milliseconds() as f64 / 1000.0)
        .fold(0.0, f64::max)
}

fn only_own_failures_on(stats: &ProbeStats, victim: &str) {
    let own = stats.count(FailureReason::Refused) + stats.count(FailureReason::Aborted);
    assert_eq!(stats.failed(), own, "{:?}", stats.services);
    assert!(
        stats
            .samples
            .iter()
            .all(|s| s.pod.as_deref() == Some(victim)),
        "{:?}",
        stats.samples
    );
}

// Upstream: kubernetes.io, "Pod Lifecycle", termination of Pods, and the tutorial "Explore
// Termination Behavior for Pods And Their Endpoints": the endpoint's removal reaches
// kube-proxy after a delay (its rules are rewritten at most once per `minSyncPeriod`,
// kubernetes `pkg/proxy/apis/config/v1alpha1/defaults.go`), while a pod without a preStop
// hook gets SIGTERM at once. Connections kube-proxy sends it meanwhile are refused; a preStop
// sleep longer than the lag keeps the process up until nothing is sent there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kube_proxy_sends_to_a_deleted_pod_until_its_lag_is_over() {
    let lagged = |stop: &str| {
        let mut s = scenario(3, &web(stop, 0.1));
        s.cluster.endpoint_lag.kube_proxy_seconds = 3.0;
        s
    };
    let (stats, victim, t0) = delete_one(lagged("onSigterm: exit"), "apps", "web-", 20.0).await;
    assert!(
        stats.count(FailureReason::Refused) > 5,
        "{:?}",
        stats.services
    );
    only_own_failures_on(&stats, &victim);
    let last = last_failure_after(&stats, t0);
    assert!(
        (2.0..=3.6).contains(&last),
        "the last refused request came {last} s after the deletion"
    );
    let workload = &stats.services[0].by_workload;
    assert!(workload.contains_key("Deployment apps/web"), "{workload:?}");
    let path = &stats.samples[0].path;
    assert!(
        path.starts_with("ALB apps/web → node ") && path.contains(&format!("pod {victim}")),
        "{path}"
    );

    let (stats, _, _) = delete_one(lagged("preStopSeconds: 5"), "apps", "web-", 20.0).await;
    assert_eq!(stats.failed(), 0, "{:?}", stats.samples);
}

// Upstream: after the preStop hook the kubelet sends SIGTERM (kubernetes
// `pkg/kubelet/kuberuntime/kuberuntime_container.go`, `killContainer`); its default action
// ends the process (signal(7)), cutting the requests in flight; a server that shuts down
// gracefully (Go `net/http` `Server.Shutdown`: "closing all open listeners, then ... waiting
// indefinitely for connections to return to idle") finishes them within the grace period.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_exits_on_sigterm_cuts_what_is_in_flight_and_a_graceful_one_does_not() {
    let (stats, victim) = delete_a_web_pod("preStopSeconds: 2, onSigterm: exit", 4.0, 30.0).await;
    assert!(
        stats.count(FailureReason::Aborted) > 0,
        "{:?}",
        stats.services
    );
    assert_eq!(stats.failed(), stats.count(FailureReason::Aborted));
    only_own_failures_on(&stats, &victim);

    let (stats, _) =
        delete_a_web_pod("preStopSeconds: 2, onSigterm: stopAccepting", 4.0, 30.0).await;
    assert_eq!(stats.failed(), 0, "{:?}", stats.samples);
}

// Upstream: a process in a lame-duck period (CoreDNS `health { lameduck }`) keeps answering
// after SIGTERM until it exits or the kubelet kills it when the grace period ends
// (kubernetes.io, "Pod Lifecycle"), so kube-proxy's lag costs nothing even without a preStop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_finishes_in_flight_takes_connections_until_its_grace_ends() {
    let (stats, _) = delete_a_web_pod("onSigterm: finishInFlight", 0.1, 40.0).await;
    assert!(stats.sent() > 500);
    assert_eq!(stats.failed(), 0, "{:?}", stats.samples);
}

/// A ClusterIP Service `api` probed from pods, and CoreDNS behind kube-dns probed with DNS
/// lookups; neither has a load balancer.
const IN_CLUSTER: &str = "
workloads:
  - { kind: Deployment, name: api, namespace: apps, replicas: 3, startupSeconds: 2 }
  - { kind: Deployment, name: coredns, namespace: kube-system, replicas: 2, startupSeconds: 2, onSigterm: finishInFlight }
services:
  - { name: api, namespace: apps, workload: api, type: ClusterIP }
  - { name: kube-dns, namespace: kube-system, workload: coredns, type: ClusterIP }
traffic:
  - { service: apps/api, via: clusterIp, requestsPerSecond: 20, requestSeconds: 0.1 }
  - { service: kube-system/kube-dns, via: dns, requestsPerSecond: 20, requestSeconds: 0.01 }
";

// Upstream: traffic from a pod to a ClusterIP goes through kube-proxy on the pod's node, with
// the same lag (kubernetes.io, "Virtual IPs and Service Proxies"); DNS lookups reach CoreDNS
// through the kube-dns Service the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_ip_and_dns_streams_go_through_kube_proxy() {
    let (stats, victim, _) = delete_one(scenario(3, IN_CLUSTER), "apps", "api-", 20.0).await;
    let api = stats.service("apps/api").expect("api stream");
    assert_eq!(api.stream, "clusterIp");
    assert!(
        api.by_node.is_empty(),
        "no load balancer: {:?}",
        api.by_node
    );
    assert!(
        api.failures
            .get(&FailureReason::Refused)
            .is_some_and(|n| *n > 0),
        "{api:?}"
    );
    only_own_failures_on(&stats, &victim);
    assert!(
        stats.samples[0].path.starts_with("clusterIP apps/api → "),
        "{}",
        stats.samples[0].path
    );
    let dns = stats.service("kube-system/kube-dns").expect("dns stream");
    assert_eq!(dns.stream, "dns");
    assert!(dns.sent > 500 && dns.failed == 0, "{dns:?}");

    // CoreDNS keeps answering through its lame-duck period: a deleted replica drops nothing.
    let (stats, _, _) = delete_one(scenario(3, IN_CLUSTER), "kube-system", "coredns-", 40.0).await;
    let dns = stats.service("kube-system/kube-dns").expect("dns stream");
    assert!(dns.sent > 500 && dns.failed == 0, "{dns:?}");
}

/// An ingress controller behind a CLB proxying to `backend` (no preStop).
const CHAINED: &str = "
workloads:
  - { kind: Deployment, name: ingress, namespace: apps, replicas: 2, startupSeconds: 2, preStopSeconds: 10 }
  - { kind: Deployment, name: backend, namespace: apps, replicas: 3, startupSeconds: 2 }
services:
  - { name: ingress, namespace: apps, workload: ingress, type: LoadBalancer, loadBalancer: { kind: CLB } }
  - { name: backend, namespace: apps, workload: backend, type: ClusterIP }
traffic:
  - { service: apps/ingress, backend: apps/backend, requestsPerSecond: 20, requestSeconds: 0.1 }
";

// Upstream: an ingress controller proxies to the backend's endpoints itself, and ingress-nginx
// syncs them at most 0.3 times a second (`--sync-rate-limit`, ingress-nginx
// `cmd/nginx/flags.go`): a backend pod without a preStop refuses requests for longer than
// kube-proxy's lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ingress_controller_sends_to_a_deleted_backend_until_its_own_lag_is_over() {
    let (stats, victim, t0) = delete_one(scenario(3, CHAINED), "apps", "backend-", 20.0).await;
    let s = stats.service("apps/ingress").expect("chained stream");
    assert_eq!(s.stream, "loadBalancer → apps/backend");
    assert!(
        s.failures
            .get(&FailureReason::Refused)
            .is_some_and(|n| *n > 0),
        "{s:?}"
    );
    only_own_failures_on(&stats, &victim);
    let last = last_failure_after(&stats, t0);
    assert!(
        (2.5..=3.9).contains(&last),
        "the last refused request came {last} s after the deletion (ingress lag 3.3 s)"
    );
    let path = &stats.samples[0].path;
    assert!(
        path.starts_with("CLB apps/ingress → node ")
            && path.contains(" → pod apps/ingress-")
            && path.contains(&format!("apps/backend → pod {victim}")),
        "{path}"
    );
}
