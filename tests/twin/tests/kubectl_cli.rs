//! kubectl v1.32 against the twin: discovery, table output, cordon and a drain that meets a
//! PodDisruptionBudget. kubectl must be on PATH (the image has it); without it these tests
//! fail, they do not skip.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use ngm_twin::kubeconfig::write_kubeconfig;
use ngm_twin::server::{ServerHandle, serve_local};
use ngm_twin::store::{EventKind, Resource, Store, is_pod_ready};
use serde_json::{Value, json};

struct Twin {
    store: Store,
    dir: PathBuf,
    _handle: ServerHandle,
}

async fn twin(tag: &str) -> Twin {
    let store = Store::default();
    let (url, handle) = serve_local(store.clone()).await.expect("serve");
    let dir = std::env::temp_dir().join(format!("ngm-twin-kubectl-{tag}-{}", handle.addr.port()));
    write_kubeconfig(&dir.join("kubeconfig"), &url).expect("kubeconfig");
    Twin {
        store,
        dir,
        _handle: handle,
    }
}

impl Twin {
    async fn kubectl(&self, args: &[&str]) -> Output {
        let kubeconfig = self.dir.join("kubeconfig");
        let cache = self.dir.join("cache");
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .arg("--cache-dir")
            .arg(&cache)
            .args(args)
            .output()
            .await;
        match out {
            Ok(o) => o,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!(
                    "kubectl is not on PATH: install kubectl (or Debian's kubernetes-client) to run these tests"
                )
            }
            Err(e) => panic!("running kubectl: {e}"),
        }
    }

    async fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args).await;
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "kubectl {args:?} failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    }
}

fn node(name: &str) -> Value {
    json!({
        "metadata": { "name": name },
        "status": {
            "conditions": [{ "type": "Ready", "status": "True" }],
            "nodeInfo": { "kubeletVersion": "v1.33.0-eks" },
        },
    })
}

fn pod(name: &str, node: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "labels": { "app": "web" },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": "rs-uid", "controller": true }],
        },
        "spec": { "nodeName": node, "terminationGracePeriodSeconds": 30, "containers": [{ "name": "c", "image": "nginx" }] },
        "status": { "phase": "Running", "conditions": [{ "type": "Ready", "status": "True" }] },
    })
}

#[tokio::test]
async fn kubectl_get_nodes_lists_every_node_with_its_readiness() {
    let t = twin("nodes").await;
    t.store
        .create(Resource::Node, "", node("ip-10-0-1-1"))
        .unwrap();
    let mut not_ready = node("ip-10-0-1-2");
    not_ready["status"]["conditions"][0]["status"] = json!("False");
    t.store.create(Resource::Node, "", not_ready).unwrap();
    let out = t.kubectl_ok(&["get", "nodes"]).await;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0][..2], ["NAME", "STATUS"], "{out}");
    assert_eq!(rows[1][..2], ["ip-10-0-1-1", "Ready"], "{out}");
    assert_eq!(rows[2][..2], ["ip-10-0-1-2", "NotReady"], "{out}");
}

#[tokio::test]
async fn kubectl_get_pods_across_all_namespaces_shows_each_pods_namespace() {
    let t = twin("pods").await;
    t.store.ensure_namespace("shop");
    t.store
        .create(Resource::Pod, "default", pod("web-1", "n1"))
        .unwrap();
    t.store
        .create(Resource::Pod, "shop", pod("cart-1", "n1"))
        .unwrap();
    let out = t.kubectl_ok(&["get", "pods", "-A"]).await;
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert!(
        rows.contains(&vec!["default", "web-1", "1/1", "Running", "0", rows[0][5]]),
        "{out}"
    );
    assert!(rows.iter().any(|r| r[..2] == ["shop", "cart-1"]), "{out}");
    // The short name resolves through discovery, and -o json gives the wire objects.
    let json_out = t
        .kubectl_ok(&["get", "po", "-n", "shop", "-o", "json"])
        .await;
    let list: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(list["items"][0]["metadata"]["name"], "cart-1");
}

#[tokio::test]
async fn kubectl_cordon_marks_the_node_unschedulable() {
    let t = twin("cordon").await;
    t.store.create(Resource::Node, "", node("n1")).unwrap();
    let out = t.kubectl_ok(&["cordon", "n1"]).await;
    assert!(out.contains("node/n1 cordoned"), "{out}");
    let n = t.store.get(Resource::Node, "", "n1").unwrap();
    assert_eq!(n["spec"]["unschedulable"], true);
    let out = t.kubectl_ok(&["uncordon", "n1"]).await;
    assert!(out.contains("uncordoned"), "{out}");
    let n = t.store.get(Resource::Node, "", "n1").unwrap();
    assert_ne!(n["spec"]["unschedulable"], true);
}

/// Stands in for the ReplicaSet controller and the kubelet: when a pod on `old` starts
/// terminating, a replacement starts on `new` and turns Ready shortly after, when the old
/// pod's grace period ends too. Returns the lowest number of healthy web pods it ever saw.
async fn replace_evicted_pods(store: Store, old: &'static str, new: &'static str) -> usize {
    let mut events = store.subscribe();
    let mut min_healthy = usize::MAX;
    let mut replaced = std::collections::BTreeSet::new();
    while let Ok(ev) = events.recv().await {
        if ev.resource != Resource::Pod {
            continue;
        }
        let healthy = store
            .list_all(Resource::Pod, Some("default"))
            .iter()
            .filter(|p| is_pod_ready(p) && p.pointer("/metadata/deletionTimestamp").is_none())
            .count();
        min_healthy = min_healthy.min(healthy);
        let terminating = ev.kind == EventKind::Modified
            && ev.object.pointer("/metadata/deletionTimestamp").is_some();
        let on_old = ev.object.pointer("/spec/nodeName").and_then(Value::as_str) == Some(old);
        if terminating && on_old && replaced.insert(ev.name().to_string()) {
            let name = ev.name().to_string();
            let replacement = format!("{name}-r");
            let mut starting = pod(&replacement, new);
            starting["status"]["conditions"][0]["status"] = json!("False");
            store.create(Resource::Pod, "default", starting).unwrap();
            let store = store.clone();
            tokio::spawn(async move {
                // The replacement's startup and the old pod's graceful shutdown, compressed.
                tokio::time::sleep(Duration::from_millis(500)).await;
                store
                    .mutate(Resource::Pod, "default", &replacement, |p| {
                        p["status"]["conditions"][0]["status"] = json!("True");
                        Ok(())
                    })
                    .unwrap();
                store.remove_now(Resource::Pod, "default", &name);
            });
        }
        let left_on_old = store
            .list_all(Resource::Pod, Some("default"))
            .iter()
            .filter(|p| p.pointer("/spec/nodeName").and_then(Value::as_str) == Some(old))
            .count();
        if left_on_old == 0 {
            break;
        }
    }
    min_healthy
}

#[tokio::test]
async fn kubectl_drain_waits_on_429_and_finishes_once_replacements_are_ready_elsewhere() {
    let t = twin("drain").await;
    t.store.create(Resource::Node, "", node("old")).unwrap();
    t.store.create(Resource::Node, "", node("new")).unwrap();
    t.store
        .create(Resource::Pod, "default", pod("web-1", "old"))
        .unwrap();
    t.store
        .create(Resource::Pod, "default", pod("web-2", "old"))
        .unwrap();
    let pdb = json!({ "metadata": { "name": "web-pdb" }, "spec": { "minAvailable": 1, "selector": { "matchLabels": { "app": "web" } } } });
    t.store
        .create(Resource::PodDisruptionBudget, "default", pdb)
        .unwrap();

    let replacer = tokio::spawn(replace_evicted_pods(t.store.clone(), "old", "new"));
    let out = t
        .kubectl(&[
            "drain",
            "old",
            "--ignore-daemonsets",
            "--delete-emptydir-data",
            "--timeout=90s",
        ])
        .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drain failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("node/old drained"), "{stdout}");
    // Both pods were evicted at once; the PDB allowed one, so kubectl met a 429 and retried.
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget"),
        "{stderr}"
    );
    let min_healthy = tokio::time::timeout(Duration::from_secs(10), replacer)
        .await
        .expect("replacer still running")
        .unwrap();
    assert!(
        min_healthy >= 1,
        "the PDB's minAvailable was broken: {min_healthy} healthy"
    );
    let codes: Vec<u16> = t.store.evictions().iter().map(|e| e.code).collect();
    assert!(
        codes.contains(&429) && codes.iter().filter(|c| **c == 201).count() == 2,
        "{codes:?}"
    );
    let pods = t.store.list_all(Resource::Pod, Some("default"));
    let placed: Vec<(&str, &str)> = pods
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap(),
                p["spec"]["nodeName"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(placed, vec![("web-1-r", "new"), ("web-2-r", "new")]);
    assert_eq!(
        t.store.get(Resource::Node, "", "old").unwrap()["spec"]["unschedulable"],
        true
    );
}
