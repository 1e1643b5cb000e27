//! Workload controllers (Deployment, ReplicaSet, StatefulSet, DaemonSet, HPA, PDB status) on a
//! store with a manual clock; every wait polls with a bounded real-time deadline.

use std::time::Duration;

use ngm_twin::scenario::{HpaSpec, PdbSpec, WorkloadKind, wait_until};
use ngm_twin::store::{DeleteOptions, Resource};
use serde_json::json;

mod sim_support;
use sim_support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_gets_one_replicaset_and_ready_pods_spread_over_nodes() {
    let (store, clock, sim) = twin();
    let nodes: Vec<String> = ["us-west-2a", "us-west-2b", "us-west-2c"]
        .iter()
        .map(|z| node(&store, z, "g"))
        .collect();
    create(&store, &workload(WorkloadKind::Deployment, "web", 3));
    eventually(&clock, "3 ready pods", || ready_pods(&store, "web-") == 3).await;
    let rs = store.list_all(Resource::ReplicaSet, Some("default"));
    assert_eq!(rs.len(), 1, "one ReplicaSet per template");
    let mut used: Vec<String> = pods(&store, "web-")
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    used.sort();
    let mut all = nodes.clone();
    all.sort();
    assert_eq!(used, all, "replicas spread one per node");
    eventually(&clock, "deployment status", || {
        let d = store
            .get(Resource::Deployment, "default", "web")
            .expect("exists");
        d["status"]["availableReplicas"] == 3
            && d["status"]["updatedReplicas"] == 3
            && d["status"]["observedGeneration"] == d["metadata"]["generation"]
    })
    .await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_down_ignores_taints_and_deletes_the_newer_pods_unless_a_deletion_cost_says_otherwise()
 {
    let (store, clock, sim) = twin();
    let old = [
        node(&store, "us-west-2a", "old"),
        node(&store, "us-west-2b", "old"),
    ];
    create(&store, &workload(WorkloadKind::Deployment, "web", 2));
    eventually(&clock, "2 ready on old nodes", || {
        ready_pods(&store, "web-") == 2
    })
    .await;
    // Surge onto new nodes while the old ones are tainted and cordoned.
    for n in &old {
        taint_and_cordon(&store, n);
    }
    let new = [
        node(&store, "us-west-2a", "new"),
        node(&store, "us-west-2b", "new"),
    ];
    clock.advance(Duration::from_secs(3600));
    set_replicas(&store, Resource::Deployment, "web", 4);
    eventually(&clock, "4 ready", || ready_pods(&store, "web-") == 4).await;
    assert!(
        pods(&store, "web-")
            .iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .all(|p| {
                let n = p["spec"]["nodeName"].as_str().unwrap_or_default();
                old.iter().any(|o| o == n) || new.iter().any(|x| x == n)
            })
    );
    set_replicas(&store, Resource::Deployment, "web", 2);
    eventually(&clock, "two pods terminating", || {
        pods(&store, "web-")
            .iter()
            .filter(|p| !p["metadata"]["deletionTimestamp"].is_null())
            .count()
            == 2
            || pods(&store, "web-").len() == 2
    })
    .await;
    eventually(&clock, "2 pods left", || pods(&store, "web-").len() == 2).await;
    let left: Vec<String> = pods(&store, "web-")
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        left.iter().all(|n| old.contains(n)),
        "the ReplicaSet kept the old-node pods (the trap): {left:?}"
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_pod_deletion_cost_makes_scale_down_remove_the_old_node_pods() {
    let (store, clock, sim) = twin();
    let old = [
        node(&store, "us-west-2a", "old"),
        node(&store, "us-west-2b", "old"),
    ];
    create(&store, &workload(WorkloadKind::Deployment, "web", 2));
    eventually(&clock, "2 ready", || ready_pods(&store, "web-") == 2).await;
    for n in &old {
        taint_and_cordon(&store, n);
    }
    let _new = [
        node(&store, "us-west-2a", "new"),
        node(&store, "us-west-2b", "new"),
    ];
    clock.advance(Duration::from_secs(3600));
    set_replicas(&store, Resource::Deployment, "web", 4);
    eventually(&clock, "4 ready", || ready_pods(&store, "web-") == 4).await;
    for p in pods(&store, "web-") {
        if old.iter().any(|o| p["spec"]["nodeName"] == json!(o)) {
            let name = p["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            store
                .mutate(Resource::Pod, "default", &name, |v| {
                    v["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"] =
                        json!("-1000");
                    Ok(())
                })
                .expect("annotate");
        }
    }
    set_replicas(&store, Resource::Deployment, "web", 2);
    eventually(&clock, "2 pods left", || pods(&store, "web-").len() == 2).await;
    assert!(
        pods(&store, "web-")
            .iter()
            .all(|p| !old.iter().any(|o| p["spec"]["nodeName"] == json!(o)))
    );
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statefulset_starts_in_order_and_a_recreated_pod_stays_in_its_volume_zone() {
    let (store, clock, sim) = twin();
    let a = node(&store, "us-west-2a", "g");
    let _b = node(&store, "us-west-2b", "g");
    let mut w = workload(WorkloadKind::StatefulSet, "db", 2);
    w.volume_claims = vec!["data".into()];
    create(&store, &w);
    eventually(&clock, "db-0 exists", || {
        store.try_get(Resource::Pod, "default", "db-0").is_some()
    })
    .await;
    assert!(
        store.try_get(Resource::Pod, "default", "db-1").is_none(),
        "db-1 before db-0 was Ready"
    );
    eventually(&clock, "both ready", || ready_pods(&store, "db-") == 2).await;
    let zone_of = |node: &str| {
        store.get(Resource::Node, "", node).ok().and_then(|n| {
            n["metadata"]["labels"]["topology.kubernetes.io/zone"]
                .as_str()
                .map(str::to_string)
        })
    };
    let db0 = store.get(Resource::Pod, "default", "db-0").expect("db-0");
    let first_node = db0["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let zone = zone_of(&first_node);
    assert_eq!(
        db0["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "data-db-0"
    );
    // Cordon db-0's node and delete it: it comes back with the same name, and can only run in
    // its volume's zone, so it waits Pending instead of moving.
    store
        .mutate(Resource::Node, "", &first_node, |v| {
            v["spec"]["unschedulable"] = json!(true);
            Ok(())
        })
        .expect("cordon");
    let uid = db0["metadata"]["uid"].clone();
    store
        .delete(Resource::Pod, "default", "db-0", &DeleteOptions::default())
        .expect("delete");
    eventually(&clock, "db-0 recreated", || {
        store
            .try_get(Resource::Pod, "default", "db-0")
            .is_some_and(|p| p["metadata"]["uid"] != uid)
    })
    .await;
    eventually(&clock, "db-0 pending on volume zone", || {
        store
            .try_get(Resource::Pod, "default", "db-0")
            .is_some_and(|p| {
                p["status"]["conditions"]
                    .to_string()
                    .contains("volume node affinity conflict")
            })
    })
    .await;
    store
        .mutate(Resource::Node, "", &first_node, |v| {
            v["spec"]["unschedulable"] = json!(false);
            Ok(())
        })
        .expect("uncordon");
    eventually(&clock, "db-0 back in its zone", || {
        store
            .try_get(Resource::Pod, "default", "db-0")
            .is_some_and(|p| {
                ready(&p) && zone_of(p["spec"]["nodeName"].as_str().unwrap_or_default()) == zone
            })
    })
    .await;
    let _ = a;
    // Scale-down removes the highest ordinal.
    set_replicas(&store, Resource::StatefulSet, "db", 1);
    eventually(&clock, "db-1 gone", || {
        store.try_get(Resource::Pod, "default", "db-1").is_none()
    })
    .await;
    assert!(store.try_get(Resource::Pod, "default", "db-0").is_some());
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemonset_runs_on_cordoned_nodes_but_not_on_nodes_with_a_custom_taint() {
    let (store, clock, sim) = twin();
    let plain = node(&store, "us-west-2a", "g");
    let cordoned = node(&store, "us-west-2b", "g");
    store
        .mutate(Resource::Node, "", &cordoned, |v| {
            v["spec"]["unschedulable"] = json!(true);
            Ok(())
        })
        .expect("cordon");
    let tainted = node(&store, "us-west-2c", "g");
    taint_and_cordon(&store, &tainted);
    create(&store, &workload(WorkloadKind::DaemonSet, "agent", 1));
    eventually(&clock, "2 ready daemon pods", || {
        ready_pods(&store, "agent-") == 2
    })
    .await;
    let mut on: Vec<String> = pods(&store, "agent-")
        .iter()
        .map(|p| {
            p["spec"]["nodeName"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    on.sort();
    let mut want = vec![plain, cordoned];
    want.sort();
    assert_eq!(on, want);
    eventually(&clock, "DaemonSet status", || {
        store
            .get(Resource::DaemonSet, "default", "agent")
            .is_ok_and(|d| {
                d["status"]["desiredNumberScheduled"] == 2 && d["status"]["numberReady"] == 2
            })
    })
    .await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hpa_undoes_a_manual_scale_above_its_maximum() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a", "g");
    node(&store, "us-west-2b", "g");
    let mut w = workload(WorkloadKind::Deployment, "web", 2);
    w.hpa = Some(HpaSpec {
        min_replicas: Some(2),
        max_replicas: 3,
        requests_per_second_per_pod: None,
        service: None,
    });
    create(&store, &w);
    eventually(&clock, "2 ready", || ready_pods(&store, "web-") == 2).await;
    set_replicas(&store, Resource::Deployment, "web", 6);
    eventually(&clock, "HPA clamps to 3", || {
        store
            .get(Resource::Deployment, "default", "web")
            .is_ok_and(|d| d["spec"]["replicas"] == 3)
    })
    .await;
    eventually(&clock, "3 pods", || {
        pods(&store, "web-").len() == 3 && ready_pods(&store, "web-") == 3
    })
    .await;
    let h = store
        .get(Resource::HorizontalPodAutoscaler, "default", "web")
        .expect("hpa");
    assert_eq!(h["status"]["desiredReplicas"], 3);
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pdb_status_follows_the_pods() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a", "g");
    node(&store, "us-west-2b", "g");
    let mut w = workload(WorkloadKind::Deployment, "web", 3);
    w.pdb = Some(PdbSpec {
        min_available: Some(json!(2)),
        max_unavailable: None,
        unhealthy_pod_eviction_policy: None,
    });
    create(&store, &w);
    eventually(&clock, "PDB allows 1", || {
        store
            .get(Resource::PodDisruptionBudget, "default", "web")
            .is_ok_and(|p| {
                p["status"]["currentHealthy"] == 3 && p["status"]["disruptionsAllowed"] == 1
            })
    })
    .await;
    sim.stop().await;
}

fn load_hpa(w: &mut ngm_twin::scenario::Workload, min: i32, max: i32, per_pod: f64) {
    w.hpa = Some(HpaSpec {
        min_replicas: Some(min),
        max_replicas: max,
        requests_per_second_per_pod: Some(per_pod),
        service: None,
    });
}

fn spec_replicas(store: &ngm_twin::store::Store) -> i64 {
    store
        .get(Resource::Deployment, "default", "web")
        .ok()
        .and_then(|d| d["spec"]["replicas"].as_i64())
        .unwrap_or(-1)
}

fn set_hpa_min(store: &ngm_twin::store::Store, min: i64) {
    store
        .mutate(Resource::HorizontalPodAutoscaler, "default", "web", |v| {
            v["spec"]["minReplicas"] = json!(min);
            Ok(())
        })
        .expect("hpa min");
}

/// kubernetes `pkg/controller/podautoscaler/replica_calculator.go` (an Object metric with an
/// AverageValue target asks for ceil(value / target)) and `horizontal.go`
/// (`convertDesiredReplicasWithBehaviorRate`: up by at most max(4 pods, 100 %) per 15 s;
/// `stabilizeRecommendationWithBehaviors`: down only to the highest recommendation of the last
/// 300 s), with the defaults of `SetDefaults_HorizontalPodAutoscalerBehavior`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hpa_follows_its_load_up_at_its_rate_and_down_after_the_stabilization_window() {
    use ngm_twin::store::load::RateSchedule;
    let (store, clock, sim) = twin();
    for z in ["us-west-2a", "us-west-2b", "us-west-2c"] {
        node(&store, z, "g");
    }
    store.load().add(
        "default",
        "web",
        RateSchedule::new(40.0, vec![(60.0, 100.0), (200.0, 10.0)]),
    );
    store.load().start(clock.now());
    let start = clock.now();
    let mut w = workload(WorkloadKind::Deployment, "web", 2);
    load_hpa(&mut w, 1, 10, 10.0);
    create(&store, &w);
    eventually(&clock, "40 rps at 10 per pod: 4", || {
        spec_replicas(&store) == 4
    })
    .await;
    assert!((clock.now() - start).num_seconds() < 60);
    eventually(&clock, "100 rps: 8 first (twice 4)", || {
        spec_replicas(&store) == 8
    })
    .await;
    eventually(&clock, "then 10", || spec_replicas(&store) == 10).await;
    eventually(&clock, "the load drops at 200 s", || {
        (clock.now() - start).num_seconds() >= 200
    })
    .await;
    let held = wait_until(&clock, DEADLINE, Duration::from_secs(1), || {
        spec_replicas(&store) != 10
    })
    .await;
    let dropped_after = (clock.now() - start).num_seconds() - 200;
    assert!(held, "the HPA scales down in the end");
    assert!(
        dropped_after >= 285,
        "scale-down waits out the 300 s window of high recommendations, not {dropped_after} s"
    );
    assert_eq!(
        spec_replicas(&store),
        1,
        "10 rps at 10 per pod, down by up to 100 %"
    );
    sim.stop().await;
}

/// kubernetes `pkg/controller/podautoscaler/horizontal.go`, `reconcileAutoscaler`: a target
/// below `minReplicas` is raised to it without a metric recommendation being recorded, so once
/// the minimum goes back down the HPA scales to what its metric asks at its next sync.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raised_minimum_is_not_remembered_so_lowering_it_scales_back_at_once() {
    use ngm_twin::store::load::RateSchedule;
    let (store, clock, sim) = twin();
    for z in ["us-west-2a", "us-west-2b"] {
        node(&store, z, "g");
    }
    store
        .load()
        .add("default", "web", RateSchedule::new(20.0, vec![]));
    store.load().start(clock.now());
    let mut w = workload(WorkloadKind::Deployment, "web", 2);
    load_hpa(&mut w, 1, 10, 10.0);
    create(&store, &w);
    eventually(&clock, "2 ready", || ready_pods(&store, "web-") == 2).await;
    set_hpa_min(&store, 6);
    eventually(&clock, "raised to the minimum", || {
        spec_replicas(&store) == 6
    })
    .await;
    let raised = clock.now();
    eventually(&clock, "a minute at the minimum", || {
        (clock.now() - raised).num_seconds() >= 60 && spec_replicas(&store) == 6
    })
    .await;
    set_hpa_min(&store, 1);
    let lowered = clock.now();
    eventually(&clock, "back to the metric's 2", || {
        spec_replicas(&store) == 2
    })
    .await;
    let h = store
        .get(Resource::HorizontalPodAutoscaler, "default", "web")
        .expect("hpa");
    assert_eq!(
        h["status"]["observedGeneration"], h["metadata"]["generation"],
        "the status says the HPA acted on the spec: {h}"
    );
    assert_eq!(h["status"]["desiredReplicas"], 2);
    assert!(
        (clock.now() - lowered).num_seconds() <= 16,
        "within one sync, not after the stabilization window"
    );
    sim.stop().await;
}

/// kubernetes `pkg/controller/statefulset/stateful_pod_control.go` (claims created from the
/// templates), kubernetes.io "Volumes" § local (a local PersistentVolume's required node
/// affinity) and `pkg/scheduler/framework/plugins/volumebinding` ("node(s) didn't match
/// PersistentVolume's node affinity"): a pod on a local volume never leaves its node, and
/// once the node is gone it stays Pending.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_local_volume_holds_its_pod_to_its_node_even_after_the_node_is_gone() {
    let (store, clock, sim) = twin();
    let _a = node(&store, "us-west-2a", "g");
    let _b = node(&store, "us-west-2a", "g");
    let mut w = workload(WorkloadKind::StatefulSet, "cache", 1);
    w.volume_claims = vec!["data".into()];
    w.storage_class = Some("local-storage".into());
    create(&store, &w);
    eventually(&clock, "cache-0 ready", || {
        ready_pods(&store, "cache-") == 1
    })
    .await;
    let pod = store.get(Resource::Pod, "default", "cache-0").expect("pod");
    let home = pod["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let claim = store
        .get(Resource::PersistentVolumeClaim, "default", "data-cache-0")
        .expect("the controller created the claim");
    assert_eq!(claim["status"]["phase"], "Bound");
    let pv_name = claim["spec"]["volumeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let pv = store
        .get(Resource::PersistentVolume, "", &pv_name)
        .expect("pv");
    assert!(pv["spec"]["local"]["path"].is_string(), "{pv}");
    assert_eq!(
        pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]["values"]
            [0],
        home.as_str()
    );
    // The node goes (as with its group); the recreated pod has nowhere to run.
    store
        .delete(Resource::Node, "", &home, &DeleteOptions::default())
        .expect("delete node");
    store
        .delete(
            Resource::Pod,
            "default",
            "cache-0",
            &DeleteOptions::default(),
        )
        .expect("delete pod");
    eventually(&clock, "cache-0 pending on its volume's node", || {
        store
            .try_get(Resource::Pod, "default", "cache-0")
            .is_some_and(|p| {
                p["spec"]["nodeName"].is_null()
                    && p["status"]["conditions"]
                        .to_string()
                        .contains("didn't match PersistentVolume's node affinity")
            })
    })
    .await;
    sim.stop().await;
}
