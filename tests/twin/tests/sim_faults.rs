//! The cluster-side faults: crash-looping replicas (a stuck rollout) and a namespace being
//! deleted. Each test names the upstream behaviour it follows.

use std::time::Duration;

use ngm_twin::scenario::{Scenario, ScenarioError, wait_until};
use ngm_twin::store::{DeleteOptions, Resource, Store};
use serde_json::{Value, json};

const DEADLINE: Duration = Duration::from_secs(30);

fn scenario(faults: &str) -> Scenario {
    let yaml = format!(
        r#"
name: faults
cluster:
  name: c
  speed: 600
  nodeGroups:
    - {{ name: g, instanceTypes: [m5.2xlarge], zones: [us-west-2a, us-west-2b], amiRelease: r, desiredSize: 2 }}
workloads:
  - {{ kind: Deployment, name: web, namespace: apps, replicas: 3, startupSeconds: 5 }}
  - {{ kind: StatefulSet, name: db, namespace: apps, replicas: 3, startupSeconds: 5 }}
  - {{ kind: Deployment, name: api, namespace: team, replicas: 2, startupSeconds: 5, terminationGracePeriodSeconds: 30, preStopSeconds: 20 }}
faults:
{faults}
"#
    );
    Scenario::parse(&yaml).expect("valid scenario")
}

fn pods(store: &Store, ns: &str, prefix: &str) -> Vec<Value> {
    store
        .list_all(Resource::Pod, Some(ns))
        .iter()
        .filter(|p| {
            p["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with(prefix))
                && p["metadata"]["deletionTimestamp"].is_null()
        })
        .map(|p| (**p).clone())
        .collect()
}

fn is_ready(p: &Value) -> bool {
    p["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn crash_looping(p: &Value) -> bool {
    p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"
}

fn restarts(p: &Value) -> i64 {
    p["status"]["containerStatuses"][0]["restartCount"]
        .as_i64()
        .unwrap_or(0)
}

/// pkg/kubelet (kuberuntime_manager.go `doBackOff`, kubelet.go `backOffPeriod` 10 s and
/// `MaxContainerBackOff` 300 s): a container that exits at every start stays Running and not
/// Ready, waits in CrashLoopBackOff ("back-off 10s restarting failed container=..."), and is
/// restarted after a doubling back-off, so its restartCount grows. The scenario settles with
/// the crashing replicas not Ready, and a replacement of a crashing pod crashes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_looping_replicas_never_become_ready_and_their_restarts_grow() {
    let s = scenario(
        "  - { kind: crashLoop, workload: apps/web, replicas: 1 }\n  - { kind: crashLoop, workload: apps/db, replicas: 1 }",
    );
    let (store, sim, _) = s
        .boot(DEADLINE)
        .await
        .expect("settles with the crashing replicas");
    let web = pods(&store, "apps", "web-");
    assert_eq!(web.len(), 3);
    assert_eq!(web.iter().filter(|p| is_ready(p)).count(), 2);
    let crashing: Vec<&Value> = web.iter().filter(|p| crash_looping(p)).collect();
    assert_eq!(crashing.len(), 1, "exactly one replica crash-loops");
    let c = crashing[0];
    assert_eq!(c["status"]["phase"], "Running");
    assert_eq!(c["status"]["containerStatuses"][0]["ready"], false);
    assert_eq!(
        c["status"]["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "Error"
    );
    let message = c["status"]["containerStatuses"][0]["state"]["waiting"]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(
        message.starts_with("back-off ") && message.contains("restarting failed container="),
        "{message}"
    );

    // OrderedReady: the highest ordinal crashes, so db-0 and db-1 run Ready.
    let db = pods(&store, "apps", "db-");
    let ready: Vec<&str> = db
        .iter()
        .filter(|p| is_ready(p))
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    assert_eq!(ready.len(), 2, "{ready:?}");
    assert!(
        db.iter()
            .any(|p| p["metadata"]["name"] == "db-2" && crash_looping(p))
    );

    // The restart count grows with the back-off: 10 s, 20 s, 40 s... of simulated time.
    let name = c["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let grew = wait_until(store.clock(), DEADLINE, Duration::ZERO, || {
        store
            .try_get(Resource::Pod, "apps", &name)
            .is_some_and(|p| restarts(&p) >= 3 && !is_ready(&p))
    })
    .await;
    assert!(grew, "restartCount reached 3 and the pod stayed not Ready");

    // Its replacement crashes too: the workload keeps one broken replica.
    store
        .delete(Resource::Pod, "apps", &name, &DeleteOptions::default())
        .expect("delete the crashing pod");
    let replaced = wait_until(store.clock(), DEADLINE, Duration::ZERO, || {
        let web = pods(&store, "apps", "web-");
        web.len() == 3
            && !web.iter().any(|p| p["metadata"]["name"] == name.as_str())
            && web.iter().filter(|p| crash_looping(p)).count() == 1
            && web.iter().filter(|p| is_ready(p)).count() == 2
    })
    .await;
    assert!(
        replaced,
        "a new pod took the crashing one's place, and crashes"
    );
    sim.stop().await;
}

#[test]
fn a_crash_loop_names_a_workload_of_the_scenario() {
    let yaml = "name: x\ncluster:\n  name: c\n  nodeGroups:\n    - { name: g, instanceTypes: [m5.large], zones: [us-west-2a], amiRelease: r, desiredSize: 1 }\nfaults:\n  - { kind: crashLoop, workload: apps/nope }\n";
    assert!(
        matches!(Scenario::parse(yaml), Err(ScenarioError::Invalid(m)) if m.contains("apps/nope"))
    );
}

/// k8s.io/apiserver pkg/admission/plugin/namespace/lifecycle/admission.go: in a Terminating
/// namespace every create, evictions included, is refused with 403 Forbidden and the status
/// cause `NamespaceTerminating`; pkg/controller/namespace (namespaced_resources_deleter.go)
/// deletes the namespace's content, pods gracefully, then the namespace goes. Immortal
/// namespaces may not be deleted at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_namespace_refuses_creates_and_evictions_then_empties_and_disappears() {
    let s = scenario("  - { kind: deleteNamespace, namespace: team, at: 0 }");
    let (store, sim, _) = s.boot(DEADLINE).await.expect("boots");
    assert_eq!(pods(&store, "team", "api-").len(), 2);
    let victim = pods(&store, "team", "api-")[0]["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let mut events = store.subscribe();
    let timers = ngm_twin::twin::faults::arm_namespace_deletions(&s, &store);
    let terminating = wait_until(store.clock(), DEADLINE, Duration::ZERO, || {
        store
            .try_get(Resource::Namespace, "", "team")
            .is_some_and(|n| n["status"]["phase"] == "Terminating")
    })
    .await;
    assert!(terminating, "the namespace turned Terminating");
    assert!(store.faults().is_fault_namespace("team"));

    let err = store
        .evict("team", &victim, &json!({ "metadata": { "name": victim } }))
        .expect_err("eviction refused");
    assert_eq!((err.code, err.reason), (403, "Forbidden"));
    assert_eq!(
        err.message,
        format!(
            "pods \"{victim}\" is forbidden: unable to create new content in namespace team because it is being terminated"
        )
    );
    let cause = &err.details.as_ref().expect("details")["causes"][0];
    assert_eq!(cause["reason"], "NamespaceTerminating");
    assert_eq!(cause["field"], "metadata.namespace");
    let err = store
        .create(
            Resource::Service,
            "team",
            json!({ "metadata": { "name": "x" }, "spec": { "ports": [{ "port": 80 }] } }),
        )
        .expect_err("create refused");
    assert_eq!(err.code, 403);

    // The pods are deleted gracefully (their 30 s grace period), then the namespace goes.
    let gone = wait_until(store.clock(), DEADLINE, Duration::ZERO, || {
        store.try_get(Resource::Namespace, "", "team").is_none()
    })
    .await;
    assert!(gone, "the namespace disappeared");
    assert!(store.list_all(Resource::Pod, Some("team")).is_empty());
    assert!(
        store
            .list_all(Resource::Deployment, Some("team"))
            .is_empty()
    );
    assert_eq!(
        pods(&store, "apps", "web-").len(),
        3,
        "other namespaces untouched"
    );
    let mut graceful = std::collections::BTreeSet::new();
    while let Ok(ev) = events.try_recv() {
        if ev.resource == Resource::Pod
            && ev.namespace() == "team"
            && ev.object["metadata"]["deletionGracePeriodSeconds"] == 30
        {
            graceful.insert(ev.name().to_string());
        }
    }
    assert_eq!(
        graceful.len(),
        2,
        "both pods were deleted with their grace period"
    );

    let err = store
        .delete(
            Resource::Namespace,
            "",
            "default",
            &DeleteOptions::default(),
        )
        .expect_err("immortal");
    assert_eq!(err.code, 403);
    for t in timers {
        let _ = t.await;
    }
    sim.stop().await;
}
