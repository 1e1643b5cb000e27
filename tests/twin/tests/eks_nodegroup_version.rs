//! UpdateNodegroupVersion over the real aws-sdk-eks client, checked against the EKS user
//! guide's "Understand each phase of node updates"
//! (https://docs.aws.amazon.com/eks/latest/userguide/managed-node-update-behavior.html).

mod eks_support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_eks::types::{NodegroupScalingConfig, NodegroupUpdateConfig, UpdateStatus};
use chrono::{DateTime, Utc};
use eks_support::*;
use ngm_twin::eks::DrainStep;
use ngm_twin::lb::world::World;
use ngm_twin::store::Resource;
use serde_json::{Value, json};

const OLD: &str = "1.33.0-20251201";
const NEW: &str = "1.33.0-20260101";
const IMAGE_LABEL: &str = "eks.amazonaws.com/nodegroup-image";
const EXCLUDE: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// A group of `desired` nodes (max the same) at release [`OLD`] over the first `zones`
/// default subnets.
async fn group(h: &Harness, zones: usize, desired: i32, max_unavailable: Option<i32>) {
    let mut req = h
        .eks_client
        .create_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .node_role("arn:aws:iam::123456789012:role/node")
        .release_version(OLD)
        .scaling_config(
            NodegroupScalingConfig::builder()
                .min_size(1)
                .max_size(desired)
                .desired_size(desired)
                .build(),
        );
    for z in 0..zones {
        req = req.subnets(format!("subnet-0000000000000000{z}"));
    }
    if let Some(m) = max_unavailable {
        req = req.update_config(NodegroupUpdateConfig::builder().max_unavailable(m).build());
    }
    req.send().await.unwrap();
    h.wait_status("ng", "ACTIVE", 30).await;
}

async fn update_version(h: &Harness, force: bool) -> String {
    let out = h
        .eks_client
        .update_nodegroup_version()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .release_version(NEW)
        .force(force)
        .send()
        .await
        .unwrap();
    let u = out.update().unwrap();
    assert_eq!(u.r#type().map(|t| t.as_str()), Some("VersionUpdate"));
    assert_eq!(u.status(), Some(&UpdateStatus::InProgress));
    u.id().unwrap().to_string()
}

async fn describe(h: &Harness, id: &str) -> aws_sdk_eks::types::Update {
    h.eks_client
        .describe_update()
        .name(CLUSTER)
        .nodegroup_name("ng")
        .update_id(id)
        .send()
        .await
        .unwrap()
        .update()
        .cloned()
        .unwrap()
}

async fn wait_done(h: &Harness, id: &str, secs: u64) -> aws_sdk_eks::types::Update {
    eventually(secs, "the update to end", || async {
        let u = describe(h, id).await;
        (u.status() != Some(&UpdateStatus::InProgress)).then_some(u)
    })
    .await
}

async fn asg_size(h: &Harness) -> (i32, i32) {
    let out = h
        .asg_client
        .describe_auto_scaling_groups()
        .send()
        .await
        .unwrap();
    let g = &out.auto_scaling_groups()[0];
    (g.max_size().unwrap(), g.desired_capacity().unwrap())
}

fn name(n: &Value) -> String {
    n["metadata"]["name"].as_str().unwrap().to_string()
}

fn has_update_taint(n: &Value) -> bool {
    n["spec"]["taints"].as_array().is_some_and(|ts| {
        ts.iter().any(|t| {
            t["key"] == "eks.amazonaws.com/nodegroup"
                && t["value"] == "unschedulable"
                && t["effect"] == "NoSchedule"
        })
    })
}

/// What became of the old nodes while the update ran: when each was cordoned and when its
/// instance went, and the largest Auto Scaling group seen.
#[derive(Default)]
struct Watch {
    cordoned: BTreeMap<String, DateTime<Utc>>,
    gone: BTreeMap<String, DateTime<Utc>>,
    peak: (i32, i32),
    tainted_before_first_cordon: bool,
}

/// Records, on a thread of its own that only reads the store (so the times are not those of
/// a slow HTTP round trip), when each old node is cordoned and when its instance goes; the
/// caller's loop follows the Auto Scaling group and the update.
async fn watch_until_done(h: &Harness, id: &str, old: &[String], secs: u64) -> Watch {
    let shared = Arc::new(Mutex::new(Watch::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let nodes_thread = {
        let (store, clock, old) = (h.store.clone(), h.clock.clone(), old.to_vec());
        let (shared, stop) = (shared.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let now = clock.now();
                let nodes: Vec<Value> = store
                    .list_all(Resource::Node, None)
                    .iter()
                    .filter(|n| old.contains(&name(n)))
                    .map(|n| (**n).clone())
                    .collect();
                // Read after the nodes: a node seen cordoned had its predecessor gone already.
                let dead = store.dead_instances();
                let mut w = shared.lock().unwrap();
                for n in &nodes {
                    let nm = name(n);
                    if n["spec"]["unschedulable"] == json!(true) && !w.cordoned.contains_key(&nm) {
                        if w.cordoned.is_empty() {
                            // Every old node carries the update's mark before one is drained.
                            w.tainted_before_first_cordon = nodes
                                .iter()
                                .all(|o| has_update_taint(o) && label(o, EXCLUDE) == Some("true"));
                        }
                        w.cordoned.insert(nm.clone(), now);
                    }
                    if dead.contains(&nm) {
                        w.gone.entry(nm).or_insert(now);
                    }
                }
                drop(w);
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let (max, desired) = asg_size(h).await;
        {
            let mut w = shared.lock().unwrap();
            w.peak = (w.peak.0.max(max), w.peak.1.max(desired));
        }
        if describe(h, id).await.status() != Some(&UpdateStatus::InProgress) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "update still running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    nodes_thread.join().unwrap();
    std::mem::take(&mut *shared.lock().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_update_surges_by_twice_the_zones_replaces_old_nodes_one_at_a_time_and_scales_back()
 {
    let h = start().await;
    // Two zones, five nodes, maxUnavailable 1 (the default): the surge is 2 × 2 = 4.
    group(&h, 2, 5, None).await;
    let old: Vec<String> = h.group_nodes("ng").iter().map(name).collect();
    let id = update_version(&h, false).await;
    assert_eq!(h.status("ng").await.as_deref(), Some("UPDATING"));
    let w = watch_until_done(&h, &id, &old, 60).await;
    let u = describe(&h, &id).await;
    assert_eq!(u.status(), Some(&UpdateStatus::Successful), "{u:?}");
    assert_eq!(w.peak, (9, 9), "max and desired grow by twice the zones");
    assert!(
        w.tainted_before_first_cordon,
        "old nodes tainted and excluded first"
    );
    // Each old node was cordoned, then its instance terminated 60 s later, one at a time.
    assert_eq!(w.gone.len(), 5, "{:?}", w.gone);
    let mut spans: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    for n in &old {
        let (c, g) = (w.cordoned[n], w.gone[n]);
        let waited = (g - c).num_seconds();
        // 60 s, give or take what a loaded machine adds between the twin and this watcher.
        assert!(
            (57..80).contains(&waited),
            "{n}: terminated {waited} s after cordon"
        );
        spans.push((c, g));
    }
    spans.sort();
    assert!(
        spans.windows(2).all(|p| p[0].1 <= p[1].0),
        "overlap: {spans:?}"
    );
    // Scale down: back to the sizes before the update; the group is on the new release.
    assert_eq!(asg_size(&h).await, (5, 5));
    h.wait_status("ng", "ACTIVE", 5).await;
    let g = h
        .eks_client
        .describe_nodegroup()
        .cluster_name(CLUSTER)
        .nodegroup_name("ng")
        .send()
        .await
        .unwrap();
    let g = g.nodegroup().unwrap();
    assert_eq!(g.release_version(), Some(NEW));
    assert_eq!(g.scaling_config().unwrap().desired_size(), Some(5));
    eventually(30, "five Ready nodes on the new image", || async {
        let nodes = h.group_nodes("ng");
        let images: Vec<_> = nodes.iter().filter_map(|n| label(n, IMAGE_LABEL)).collect();
        let new_image = images.first().copied()?;
        (nodes.len() == 5
            && nodes.iter().all(is_ready)
            && nodes.iter().all(|n| !old.contains(&name(n)))
            && images.iter().all(|i| *i == new_image))
        .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_max_unavailable_above_twice_the_zones_sets_the_surge_and_drains_that_many_at_once() {
    let h = start().await;
    // One zone, three nodes, maxUnavailable 3: the surge is 3, not 2 × 1.
    group(&h, 1, 3, Some(3)).await;
    let old: Vec<String> = h.group_nodes("ng").iter().map(name).collect();
    let id = update_version(&h, false).await;
    let w = watch_until_done(&h, &id, &old, 60).await;
    let u = describe(&h, &id).await;
    assert_eq!(u.status(), Some(&UpdateStatus::Successful), "{u:?}");
    assert_eq!(w.peak, (6, 6));
    // All three were cordoned before any was terminated.
    let last_cordon = w.cordoned.values().max().unwrap();
    let first_gone = w.gone.values().min().unwrap();
    assert_eq!(w.cordoned.len(), 3);
    assert!(last_cordon < first_gone, "{:?} {:?}", w.cordoned, w.gone);
    assert_eq!(asg_size(&h).await, (3, 3));
}

/// One node running `web-a`, whose PDB allows no disruption.
fn blocked_pod(h: &Harness) -> String {
    let node = name(&h.group_nodes("ng")[0]);
    h.store
        .create(Resource::Pod, "default", web_pod("web-a", &node))
        .unwrap();
    let pdb = json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": { "name": "web", "namespace": "default" },
        "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "web" } } },
    });
    h.store
        .create(Resource::PodDisruptionBudget, "default", pdb)
        .unwrap();
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_pdb_fails_the_update_with_pod_eviction_failure_after_fifteen_minutes() {
    let h = start().await;
    group(&h, 1, 1, None).await;
    let node = blocked_pod(&h);
    let id = update_version(&h, false).await;
    let u = wait_done(&h, &id, 60).await;
    assert_eq!(u.status(), Some(&UpdateStatus::Failed));
    let e = &u.errors()[0];
    assert_eq!(
        e.error_code().map(|c| c.as_str()),
        Some("PodEvictionFailure")
    );
    assert!(
        e.error_message().unwrap().contains("default/web-a"),
        "{e:?}"
    );
    assert_eq!(e.resource_ids(), std::slice::from_ref(&node));
    let log = h.eks.drain_log();
    let blocked = log.iter().find(|r| r.step == DrainStep::Blocked).unwrap();
    assert_eq!(
        (blocked.pod.as_str(), blocked.pdb.as_deref()),
        ("web-a", Some("web"))
    );
    // "If the Pods don't leave the node within 15 minutes and there's no force flag, the
    // upgrade phase fails": the pod stays, on a node still running, never cordoned.
    let waited = (h.clock.now() - blocked.at).num_seconds();
    assert!(waited >= 900, "failed after {waited} s");
    assert!(!log.iter().any(|r| r.step == DrainStep::Terminated));
    assert!(!h.store.dead_instances().contains(&node));
    let n = h.store.get(Resource::Node, "", &node).unwrap();
    assert_ne!(n["spec"]["unschedulable"], json!(true));
    // The group is ACTIVE again, still on its release.
    h.wait_status("ng", "ACTIVE", 5).await;
    let g = h.eks.nodegroup("ng").unwrap();
    assert_eq!(g.spec.release_version, OLD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_force_a_blocked_pod_goes_with_its_instance_and_the_update_succeeds() {
    let h = start().await;
    group(&h, 1, 1, None).await;
    let node = blocked_pod(&h);
    let id = update_version(&h, true).await;
    let u = wait_done(&h, &id, 60).await;
    assert_eq!(u.status(), Some(&UpdateStatus::Successful), "{u:?}");
    let log = h.eks.drain_log();
    let terminated: Vec<_> = log
        .iter()
        .filter(|r| r.step == DrainStep::Terminated)
        .collect();
    assert_eq!(terminated.len(), 1, "{log:?}");
    assert_eq!(
        (terminated[0].pod.as_str(), terminated[0].node.as_str()),
        ("web-a", node.as_str())
    );
    assert!(h.store.dead_instances().contains(&node));
    assert_eq!(h.eks.nodegroup("ng").unwrap().spec.release_version, NEW);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_nodes_leave_the_load_balancers_when_tainted_as_upstream_excludes_them() {
    // kubernetes staging/src/k8s.io/cloud-provider/controllers/service/controller.go drops
    // nodes labelled `node.kubernetes.io/exclude-from-external-load-balancers`
    // (v1.LabelNodeExcludeBalancers) from every load balancer, cloud-provider-aws's service
    // controller included; the twin's balancers read the same label (`lb::world`).
    let h = start_with(|c| c.boot_time = Duration::from_secs(300)).await;
    group(&h, 1, 1, None).await;
    let node = blocked_pod(&h);
    let id = update_version(&h, false).await;
    eventually(30, "the old node marked", || async {
        let n = h.store.get(Resource::Node, "", &node).ok()?;
        has_update_taint(&n).then_some(())
    })
    .await;
    let world = World::load(&h.store);
    let nodes = world.nodes_as_of(h.clock.now());
    assert!(nodes[&node].excluded, "the old node is still a target");
    assert!(
        nodes
            .values()
            .filter(|n| n.name != node)
            .all(|n| !n.excluded)
    );
    assert_eq!(
        describe(&h, &id).await.status(),
        Some(&UpdateStatus::InProgress)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_version_is_idempotent_refused_while_updating_and_validated_as_eks_does() {
    let h = start_with(|c| c.boot_time = Duration::from_secs(300)).await;
    group(&h, 1, 1, None).await;
    let send = |ng: &str, release: &str, token: &str| {
        h.eks_client
            .update_nodegroup_version()
            .cluster_name(CLUSTER)
            .nodegroup_name(ng)
            .release_version(release)
            .client_request_token(token)
            .send()
    };
    let code = |e: &aws_sdk_eks::error::SdkError<_, _>| {
        use aws_sdk_eks::error::ProvideErrorMetadata;
        e.as_service_error().and_then(|s: &aws_sdk_eks::operation::update_nodegroup_version::UpdateNodegroupVersionError| s.code()).map(str::to_string)
    };
    // Unknown group, a release of another Kubernetes version, a downgrade.
    let e = send("nope", NEW, "t0").await.unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("ResourceNotFoundException"));
    let e = send("ng", "1.32.0-20260101", "t0").await.unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("InvalidParameterException"));
    let e = send("ng", "1.33.0-20250101", "t0").await.unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("InvalidParameterException"));

    let first = send("ng", NEW, "t1").await.unwrap();
    let id = first.update().unwrap().id().unwrap().to_string();
    assert_eq!(h.status("ng").await.as_deref(), Some("UPDATING"));
    // The same token answers the same update; another is refused while the group updates.
    let again = send("ng", NEW, "t1").await.unwrap();
    assert_eq!(again.update().unwrap().id(), Some(id.as_str()));
    let e = send("ng", NEW, "t2").await.unwrap_err();
    assert_eq!(code(&e).as_deref(), Some("ResourceInUseException"));
    let u = describe(&h, &id).await;
    let params: Vec<(String, String)> = u
        .params()
        .iter()
        .map(|p| {
            (
                p.r#type().unwrap().as_str().to_string(),
                p.value().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        params.contains(&("ReleaseVersion".into(), NEW.into())),
        "{params:?}"
    );
    assert!(
        params.contains(&("Version".into(), "1.33".into())),
        "{params:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_config_is_described_changed_and_validated() {
    let h = start().await;
    group(&h, 1, 1, None).await;
    let described = || async {
        let out = h
            .eks_client
            .describe_nodegroup()
            .cluster_name(CLUSTER)
            .nodegroup_name("ng")
            .send()
            .await
            .unwrap();
        out.nodegroup().unwrap().update_config().cloned().unwrap()
    };
    // "The default value is one node" (setup phase).
    assert_eq!(described().await.max_unavailable(), Some(1));
    let update = |c: NodegroupUpdateConfig| {
        h.eks_client
            .update_nodegroup_config()
            .cluster_name(CLUSTER)
            .nodegroup_name("ng")
            .update_config(c)
            .send()
    };
    let out = update(
        NodegroupUpdateConfig::builder()
            .max_unavailable_percentage(50)
            .build(),
    )
    .await
    .unwrap();
    let params = out.update().unwrap().params();
    assert_eq!(
        params[0].r#type().map(|t| t.as_str()),
        Some("MaxUnavailablePercentage")
    );
    h.wait_status("ng", "ACTIVE", 30).await;
    let c = described().await;
    assert_eq!(
        (c.max_unavailable(), c.max_unavailable_percentage()),
        (None, Some(50))
    );
    // One of the two, each at most 100 (API reference, NodegroupUpdateConfig).
    for bad in [
        NodegroupUpdateConfig::builder()
            .max_unavailable(1)
            .max_unavailable_percentage(10)
            .build(),
        NodegroupUpdateConfig::builder()
            .max_unavailable(101)
            .build(),
    ] {
        let e = update(bad).await.unwrap_err();
        assert!(
            e.as_service_error()
                .unwrap()
                .is_invalid_parameter_exception(),
            "{e:?}"
        );
    }
}
