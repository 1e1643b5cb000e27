//! Keep-alive connections: pinned to the load balancer's target and to a pod from the moment
//! they open, and each reported as closed gracefully or reset.

mod lb_support;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use lb_support::*;
use ngm_twin::lb::{ConnectionStats, FailureReason, ProbeStats, TargetState};

/// `web` (3 replicas, `stop` added to its fields) behind `lb`, with a keep-alive stream
/// (`keep` added to its fields) `via` the load balancer or the ClusterIP.
fn web(stop: &str, lb: &str, via: &str, keep: &str) -> String {
    format!(
        "
workloads:
  - {{ kind: Deployment, name: web, namespace: apps, replicas: 3, startupSeconds: 2, terminationGracePeriodSeconds: 30, {stop} }}
services:
  - {{ name: web, namespace: apps, workload: web, type: LoadBalancer, loadBalancer: {{ {lb} }} }}
traffic:
  - {{ service: apps/web, via: {via}, requestsPerSecond: 20, requestSeconds: 0.2, connections: 6, {keep} }}
"
    )
}

fn connections(stats: &ProbeStats) -> ConnectionStats {
    stats.services[0]
        .connections
        .clone()
        .expect("a keep-alive stream reports its connections")
}

/// Boots `rest` on 3 nodes, runs 10 s, deletes one pod and runs 40 s more.
async fn delete_a_pod(rest: &str) -> ProbeStats {
    let twin = boot(scenario(3, rest)).await;
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    twin.run_for(10.0, 0.25).await;
    let victim = twin
        .store
        .list_all(ngm_twin::store::Resource::Pod, Some("apps"))
        .iter()
        .map(|p| name_of(p))
        .next()
        .expect("a pod");
    Api::<Pod>::namespaced(client, "apps")
        .delete(&victim, &DeleteParams::default())
        .await
        .expect("delete");
    twin.run_for(40.0, 0.25).await;
    lbs.stop().await
}

// Go's `net/http` `Server.Shutdown` ("closing all idle connections, and then waiting
// indefinitely for connections to return to idle"), and kube-proxy, which leaves established
// TCP connections alone when an endpoint goes (`pkg/proxy/conntrack` clears UDP entries only):
// a graceful server closes the connections pinned to it on SIGTERM, and the client opens new
// ones to the remaining pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_server_closes_the_connections_pinned_to_it_on_sigterm() {
    let stats = delete_a_pod(&web(
        "preStopSeconds: 5, onSigterm: stopAccepting",
        "kind: NLB",
        "clusterIp",
        "",
    ))
    .await;
    let c = connections(&stats);
    assert_eq!(c.reset, 0, "{c:?} {:?}", stats.samples);
    assert_eq!(stats.failed(), 0, "{:?}", stats.samples);
    // The ones pinned to the deleted pod closed, and the client opened others.
    assert!(c.closed_gracefully >= 1 && c.opened >= 7, "{c:?}");
    assert_eq!(c.opened, c.closed_gracefully + c.open, "{c:?}");
}

// A process with no SIGTERM handler ends at once (kubernetes.io, "Pod termination"): the
// connections pinned to it are reset, and the twin says by whom.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_that_exits_on_sigterm_resets_the_connections_pinned_to_it() {
    let stats = delete_a_pod(&web(
        "preStopSeconds: 5, onSigterm: exit",
        "kind: NLB",
        "clusterIp",
        "",
    ))
    .await;
    let c = connections(&stats);
    assert!(c.reset >= 1, "{c:?}");
    assert_eq!(
        c.resets.keys().collect::<Vec<_>>(),
        [&FailureReason::Aborted]
    );
    assert!(c.by_workload.contains_key("Deployment apps/web"), "{c:?}");
    let sample = stats
        .samples
        .iter()
        .find(|s| s.connection)
        .expect("a reset sample");
    assert!(sample.path.contains("keep-alive"), "{sample:?}");
}

/// Boots a CLB with a 30 s draining timeout in front of `web` and a keep-alive stream
/// through it (`keep` added), runs 10 s, excludes the first node and runs 45 s more: the
/// figures, and the seconds from the exclusion to the end of its drain (None: it never ended).
async fn drain_a_clb_node(keep: &str) -> (ProbeStats, Option<f64>) {
    let twin = boot(scenario(
        3,
        &web(
            "preStopSeconds: 5, onSigterm: stopAccepting",
            "kind: CLB, deregistrationDelaySeconds: 30",
            "loadBalancer",
            keep,
        ),
    ))
    .await;
    let lbs = twin.balancers();
    twin.run_for(10.0, 0.25).await;
    let node = twin.nodes[0].clone();
    exclude_from_lbs(&twin.store, &node);
    twin.eventually("the node to drain", 0.25, || {
        state_of(&lbs, "apps", "web", &node) == Some(TargetState::Draining)
    })
    .await;
    let mut drained = None;
    for i in 1..=180 {
        twin.run_for(0.25, 0.25).await;
        if drained.is_none() && state_of(&lbs, "apps", "web", &node).is_none() {
            drained = Some(f64::from(i) * 0.25);
        }
    }
    (lbs.stop().await, drained)
}

// CLB guide, `config-conn-drain.md`: connection draining keeps a deregistering instance's
// open connections until they close or the timeout ends, completes as soon as none is left,
// and "when the maximum time limit is reached, the load balancer forcibly closes connections
// to the deregistering instance". (The in-tree CLB's listener is TCP: connections are pinned.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clb_drain_lasts_while_connections_stay_and_resets_what_outlives_its_timeout() {
    let (stats, drained) = drain_a_clb_node("").await;
    let c = connections(&stats);
    assert!(c.reset >= 1, "{c:?}");
    assert_eq!(
        c.resets.keys().collect::<Vec<_>>(),
        [&FailureReason::DrainTimeout],
        "{c:?}"
    );
    let drained = drained.expect("the drain ends at its timeout");
    assert!(
        (29.0..=32.0).contains(&drained),
        "drained after {drained} s"
    );

    // Connections that age out (10 s) leave the drain early, and nothing is reset.
    let (stats, drained) = drain_a_clb_node("maxConnectionAgeSeconds: 10").await;
    let c = connections(&stats);
    assert_eq!(c.reset, 0, "{c:?} {:?}", stats.samples);
    assert_eq!(stats.failed(), 0, "{:?}", stats.samples);
    let drained = drained.expect("the drain ends once the connections left");
    assert!(drained <= 12.0, "drained after {drained} s");
}

/// Boots an NLB (10 s delay, `lb` added) in front of `web` with a keep-alive stream through
/// it, runs 10 s, excludes every node but the last, runs 30 s more and (`terminate`)
/// terminates the first node's instance and runs 10 s more.
async fn drain_nlb_nodes(lb: &str, terminate: bool) -> ProbeStats {
    let twin = boot(scenario(
        3,
        &web(
            "preStopSeconds: 5, onSigterm: stopAccepting",
            &format!("kind: NLB, deregistrationDelaySeconds: 10, {lb}"),
            "loadBalancer",
            "",
        ),
    ))
    .await;
    let lbs = twin.balancers();
    twin.run_for(10.0, 0.25).await;
    for node in &twin.nodes[..2] {
        exclude_from_lbs(&twin.store, node);
    }
    twin.run_for(30.0, 0.25).await;
    if terminate {
        ngm_twin::sim::nodes::terminate_instance(&twin.store, &twin.nodes[0]);
        twin.run_for(10.0, 0.25).await;
    }
    lbs.stop().await
}

// NLB guide, "Deregistration delay": with connection termination off (the default), the
// connections still open when the delay ends stay open; with
// `deregistration_delay.connection_termination.enabled`, the load balancer resets them then.
// Either way, a terminated instance takes its conntrack state, and the connections, with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_nlb_keeps_connections_past_the_delay_unless_told_and_an_instance_takes_its_own() {
    let kept = drain_nlb_nodes("", false).await;
    let c = connections(&kept);
    assert_eq!(c.reset, 0, "{c:?} {:?}", kept.samples);
    assert!(
        kept.services[0].by_node.len() == 3,
        "connections through every node: {:?}",
        kept.services[0].by_node
    );

    let cut = drain_nlb_nodes("connectionTermination: true", false).await;
    let c = connections(&cut);
    assert!(c.reset >= 1, "{c:?}");
    assert_eq!(
        c.resets.keys().collect::<Vec<_>>(),
        [&FailureReason::DrainTimeout],
        "{c:?}"
    );

    let gone = drain_nlb_nodes("", true).await;
    let c = connections(&gone);
    assert!(
        c.resets
            .get(&FailureReason::NodeGone)
            .is_some_and(|n| *n >= 1),
        "{c:?}"
    );
}

/// The error a scenario with `lb` and the keep-alive `traffic` fields gets, if any.
fn invalid(lb: &str, traffic: &str) -> Option<String> {
    let yaml = format!(
        "name: t\ncluster:\n  name: twin\n  nodeGroups:\n    - {{ name: old, instanceTypes: [m5.large], zones: [us-west-2a], amiRelease: 1.33.4-20251001, desiredSize: 1 }}\n\
workloads:\n  - {{ kind: Deployment, name: web, namespace: apps, replicas: 1 }}\n\
services:\n  - {{ name: web, namespace: apps, workload: web, type: LoadBalancer, loadBalancer: {{ {lb} }} }}\n\
traffic:\n  - {{ service: apps/web, requestsPerSecond: 1, {traffic} }}\n"
    );
    ngm_twin::scenario::Scenario::parse(&yaml)
        .err()
        .map(|e| e.to_string())
}

// Only layer 4 pins a connection: an ALB ends the client's connection and routes every request
// anew (ALB guide, "HTTP connections": front-end and back-end connections are separate), a DNS
// lookup is a datagram, and a chained stream's hops are separate connections.
#[test]
fn keep_alive_needs_a_path_that_pins_a_connection() {
    assert_eq!(invalid("kind: NLB", "connections: 2"), None);
    assert_eq!(invalid("kind: CLB", "via: clusterIp, connections: 2"), None);
    for (lb, traffic, says) in [
        (
            "kind: ALB",
            "connections: 2",
            "an ALB ends the client's connection",
        ),
        ("kind: NLB", "via: dns, connections: 2", "no keep-alive"),
        ("kind: NLB", "connections: 0", "at least 1"),
        (
            "kind: NLB",
            "maxConnectionAgeSeconds: 5",
            "needs connections",
        ),
        (
            "kind: NLB",
            "connections: 1, maxConnectionAgeSeconds: 0",
            "positive",
        ),
        (
            "kind: CLB, connectionTermination: true",
            "connections: 1",
            "NLB target-group attribute",
        ),
    ] {
        let err = invalid(lb, traffic).unwrap_or_else(|| panic!("{lb} / {traffic} passed"));
        assert!(err.contains(says), "{lb} / {traffic}: {err}");
    }
}
