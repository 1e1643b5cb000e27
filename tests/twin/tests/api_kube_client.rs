//! The twin's Kubernetes API driven by the real kube client over HTTP: selectors, paging,
//! the three patch types, optimistic concurrency, Status bodies, watch, graceful delete and
//! the scale/status subresources. Each test names the upstream behaviour it follows.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use ngm_twin::server::{ServerHandle, serve_local};
use ngm_twin::store::{Resource, Store};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn twin() -> (Store, kube::Client, ServerHandle) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = Store::default();
    let (url, handle) = serve_local(store.clone()).await.expect("serve");
    let mut config = kube::Config::new(url.parse().expect("url"));
    // kube 5 retries 429s up to 15 times with growing backoff by default; an eviction 429
    // must reach the caller at once, so ngm (and these tests) switch that off.
    config.default_retry = false;
    let client = kube::Client::try_from(config).expect("client");
    (store, client, handle)
}

fn node(name: &str) -> Value {
    json!({
        "metadata": { "name": name, "labels": { "kubernetes.io/hostname": name } },
        "spec": { "taints": [{ "key": "dedicated", "value": "infra", "effect": "NoSchedule" }] },
        "status": { "conditions": [
            { "type": "MemoryPressure", "status": "False" },
            { "type": "Ready", "status": "True" },
        ] },
    })
}

fn pod(name: &str, node: &str, labels: Value, phase: &str) -> Value {
    json!({
        "metadata": { "name": name, "labels": labels },
        "spec": { "nodeName": node, "containers": [{ "name": "app", "image": "nginx" }] },
        "status": { "phase": phase, "conditions": [
            { "type": "PodScheduled", "status": "True" },
            { "type": "Ready", "status": "True" },
        ] },
    })
}

fn names<K: kube::Resource>(items: &[K]) -> Vec<String> {
    let mut n: Vec<String> = items
        .iter()
        .map(|i| i.meta().name.clone().unwrap_or_default())
        .collect();
    n.sort();
    n
}

/// A raw HTTP exchange, to see the exact status line and body the twin sends.
async fn raw(url: &str, method: &str, path: &str, content_type: &str, body: &str) -> (u16, Value) {
    let addr = url.trim_start_matches("http://");
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    let code = out[9..12].parse().expect("status code");
    let (_, body) = out.split_once("\r\n\r\n").expect("head/body");
    (code, serde_json::from_str(body.trim()).expect("json body"))
}

#[tokio::test]
async fn label_selectors_filter_by_equality_and_set_based_requirements() {
    let (store, client, _h) = twin().await;
    for (name, labels) in [
        ("a", json!({ "app": "web", "tier": "front" })),
        ("b", json!({ "app": "web", "tier": "back" })),
        ("c", json!({ "app": "db" })),
        ("d", json!({})),
    ] {
        store
            .create(Resource::Pod, "default", pod(name, "n1", labels, "Running"))
            .unwrap();
    }
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let cases = [
        ("app=web", vec!["a", "b"]),
        ("app==web,tier=front", vec!["a"]),
        // Upstream: `!=` and `notin` also select objects without the key.
        ("app!=web", vec!["c", "d"]),
        ("tier in (front,back)", vec!["a", "b"]),
        ("app notin (web)", vec!["c", "d"]),
        ("tier", vec!["a", "b"]),
        ("!tier", vec!["c", "d"]),
        ("app in (web,db),!tier", vec!["c"]),
    ];
    for (selector, want) in cases {
        let got = pods
            .list(&ListParams::default().labels(selector))
            .await
            .unwrap();
        assert_eq!(names(&got.items), want, "selector {selector:?}");
    }
}

#[tokio::test]
async fn field_selectors_filter_pods_by_node_phase_name_and_namespace() {
    let (store, client, _h) = twin().await;
    store.ensure_namespace("other");
    store
        .create(
            Resource::Pod,
            "default",
            pod("a", "n1", json!({}), "Running"),
        )
        .unwrap();
    store
        .create(
            Resource::Pod,
            "default",
            pod("b", "n2", json!({}), "Running"),
        )
        .unwrap();
    store
        .create(
            Resource::Pod,
            "default",
            pod("c", "n1", json!({}), "Succeeded"),
        )
        .unwrap();
    store
        .create(Resource::Pod, "other", pod("d", "n1", json!({}), "Running"))
        .unwrap();
    let all: Api<Pod> = Api::all(client);
    let cases = [
        ("spec.nodeName=n1", vec!["a", "c", "d"]),
        ("spec.nodeName=n1,status.phase!=Succeeded", vec!["a", "d"]),
        (
            "status.phase==Running,metadata.namespace=default",
            vec!["a", "b"],
        ),
        ("metadata.name=b", vec!["b"]),
    ];
    for (selector, want) in cases {
        let got = all
            .list(&ListParams::default().fields(selector))
            .await
            .unwrap();
        assert_eq!(names(&got.items), want, "selector {selector:?}");
    }
    // Upstream rejects fields it does not index with 400 BadRequest.
    let err = all
        .list(&ListParams::default().fields("spec.hostname=x"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 400),
        "unsupported field accepted"
    );
}

#[tokio::test]
async fn a_paginated_list_returns_every_pod_exactly_once_across_pages() {
    let (store, client, _h) = twin().await;
    for i in 0..23 {
        store
            .create(
                Resource::Pod,
                "default",
                pod(
                    &format!("p{i:02}"),
                    "n1",
                    json!({ "app": "web" }),
                    "Running",
                ),
            )
            .unwrap();
    }
    let pods: Api<Pod> = Api::all(client);
    let first = pods.list(&ListParams::default().limit(10)).await.unwrap();
    let first_rv = first.metadata.resource_version.clone();
    assert_eq!(first.metadata.remaining_item_count, Some(13));
    let mut seen = names(&first.items);
    let mut token = first.metadata.continue_.clone();
    let mut pages = 1;
    // A write between pages does not change the snapshot version the pages report.
    store
        .create(
            Resource::Pod,
            "default",
            pod("zz-late", "n1", json!({}), "Running"),
        )
        .unwrap();
    while let Some(t) = token.take().filter(|t| !t.is_empty()) {
        let page = pods
            .list(&ListParams::default().limit(10).continue_token(&t))
            .await
            .unwrap();
        assert_eq!(page.metadata.resource_version, first_rv);
        seen.extend(names(&page.items));
        token = page.metadata.continue_.clone();
        pages += 1;
    }
    assert!(pages >= 3, "only {pages} pages");
    let mut dedup = seen.clone();
    dedup.dedup();
    assert_eq!(seen, dedup, "a pod came back twice");
    assert!(
        seen.iter().filter(|n| n.starts_with('p')).count() == 23,
        "missing pods: {seen:?}"
    );
}

#[tokio::test]
async fn strategic_merge_patch_merges_pod_conditions_by_type() {
    let (store, client, _h) = twin().await;
    store
        .create(
            Resource::Pod,
            "default",
            pod("a", "n1", json!({}), "Running"),
        )
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // PodStatus.conditions has patchMergeKey=type: one entry changes, the other stays.
    let patch = json!({ "status": { "conditions": [{ "type": "Ready", "status": "False" }] } });
    pods.patch_status("a", &PatchParams::default(), &Patch::Strategic(patch))
        .await
        .unwrap();
    let p = pods.get("a").await.unwrap();
    let conds: Vec<(String, String)> = p
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| (c.type_, c.status))
        .collect();
    assert_eq!(
        conds,
        vec![
            ("PodScheduled".into(), "True".into()),
            ("Ready".into(), "False".into())
        ]
    );
}

#[tokio::test]
async fn strategic_merge_patch_replaces_node_taints_whole_because_upstream_declares_them_atomic() {
    let (store, client, _h) = twin().await;
    store.create(Resource::Node, "", node("n1")).unwrap();
    let nodes: Api<Node> = Api::all(client);
    // NodeSpec.taints has no patchMergeKey upstream: a strategic patch that wants to keep an
    // existing taint must repeat it, which is what kubectl taint does.
    let ngm = json!({ "key": "ngm.io/migrating", "value": "true", "effect": "NoSchedule" });
    nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "spec": { "taints": [ngm] } })),
        )
        .await
        .unwrap();
    let taints = nodes.get("n1").await.unwrap().spec.unwrap().taints.unwrap();
    assert_eq!(
        taints.iter().map(|t| t.key.as_str()).collect::<Vec<_>>(),
        vec!["ngm.io/migrating"]
    );
    // `$patch: delete` in a keyed list removes one element (conditions by type).
    nodes
        .patch_status(
            "n1",
            &PatchParams::default(),
            &Patch::Strategic(json!({ "status": { "conditions": [{ "type": "MemoryPressure", "$patch": "delete" }] } })),
        )
        .await
        .unwrap();
    let conds = nodes
        .get("n1")
        .await
        .unwrap()
        .status
        .unwrap()
        .conditions
        .unwrap();
    assert_eq!(
        conds.iter().map(|c| c.type_.as_str()).collect::<Vec<_>>(),
        vec!["Ready"]
    );
}

#[tokio::test]
async fn merge_patch_sets_and_removes_labels_and_cordons_a_node() {
    let (store, client, _h) = twin().await;
    store.create(Resource::Node, "", node("n1")).unwrap();
    let nodes: Api<Node> = Api::all(client);
    let patch = json!({
        "metadata": { "labels": { "node.kubernetes.io/exclude-from-external-load-balancers": "true", "kubernetes.io/hostname": null } },
        "spec": { "unschedulable": true },
    });
    let n = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let labels = n.metadata.labels.unwrap();
    assert_eq!(
        labels
            .get("node.kubernetes.io/exclude-from-external-load-balancers")
            .map(String::as_str),
        Some("true")
    );
    assert!(
        !labels.contains_key("kubernetes.io/hostname"),
        "null did not remove the label"
    );
    assert_eq!(n.spec.unwrap().unschedulable, Some(true));
    // A merge patch replaces lists whole (RFC 7386): the taints are gone after `[]`.
    let n = nodes
        .patch(
            "n1",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "taints": [] } })),
        )
        .await
        .unwrap();
    assert!(n.spec.unwrap().taints.unwrap_or_default().is_empty());
}

#[tokio::test]
async fn json_patch_applies_its_operations_and_a_failed_test_op_changes_nothing() {
    let (store, client, _h) = twin().await;
    store.create(Resource::Node, "", node("n1")).unwrap();
    let send = |ops: Value| {
        let req = http::Request::patch("/api/v1/nodes/n1")
            .header("Content-Type", "application/json-patch+json")
            .body(serde_json::to_vec(&ops).unwrap())
            .unwrap();
        client.request_text(req)
    };
    send(json!([
        { "op": "add", "path": "/metadata/annotations", "value": { "a": "1" } },
        { "op": "replace", "path": "/spec/taints/0/value", "value": "batch" },
    ]))
    .await
    .unwrap();
    let n = store.get(Resource::Node, "", "n1").unwrap();
    assert_eq!(n.pointer("/metadata/annotations/a"), Some(&json!("1")));
    assert_eq!(n.pointer("/spec/taints/0/value"), Some(&json!("batch")));
    let rv = store.resource_version();
    let err = send(json!([
        { "op": "test", "path": "/spec/taints/0/value", "value": "infra" },
        { "op": "remove", "path": "/spec/taints" },
    ]))
    .await
    .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(s) if s.code == 422),
        "failed test op not refused"
    );
    assert_eq!(
        store.resource_version(),
        rv,
        "a refused patch wrote something"
    );
}

#[tokio::test]
async fn a_replace_with_a_stale_resource_version_is_refused_with_409_conflict() {
    let (store, client, _h) = twin().await;
    store.create(Resource::Node, "", node("n1")).unwrap();
    let nodes: Api<Node> = Api::all(client);
    let mut stale = nodes.get("n1").await.unwrap();
    let mut fresh = stale.clone();
    fresh
        .metadata
        .labels
        .get_or_insert_default()
        .insert("x".into(), "1".into());
    let written = nodes
        .replace("n1", &PostParams::default(), &fresh)
        .await
        .unwrap();
    assert_ne!(
        written.metadata.resource_version,
        stale.metadata.resource_version
    );
    stale
        .metadata
        .labels
        .get_or_insert_default()
        .insert("y".into(), "2".into());
    let err = nodes
        .replace("n1", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (409, "Conflict"));
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
        }
        other => panic!("expected a 409 Status, got {other}"),
    }
    // A patch carrying the stale resourceVersion is a failed precondition too.
    let rv = stale.metadata.resource_version.clone().unwrap();
    let patch = json!({ "metadata": { "resourceVersion": rv, "labels": { "z": "3" } } });
    let err = nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap_err();
    assert!(matches!(err, kube::Error::Api(s) if s.code == 409));
}

#[tokio::test]
async fn every_error_carries_a_kubernetes_status_body() {
    let (store, _client, h) = twin().await;
    store.create(Resource::Node, "", node("n1")).unwrap();
    let url = h.url();
    let cases = [
        ("GET", "/api/v1/nodes/missing", "", 404, "NotFound"),
        ("GET", "/apis/nope/v1/things", "", 404, "NotFound"),
        ("GET", "/no/such/path", "", 404, "NotFound"),
        (
            "POST",
            "/api/v1/nodes",
            r#"{"metadata":{"name":"n1"}}"#,
            409,
            "AlreadyExists",
        ),
        (
            "GET",
            "/api/v1/pods?labelSelector=a%20in%20b",
            "",
            400,
            "BadRequest",
        ),
        ("POST", "/api/v1/nodes", "not json", 400, "BadRequest"),
        (
            "PATCH",
            "/api/v1/nodes/n1",
            "{}",
            415,
            "UnsupportedMediaType",
        ),
    ];
    for (method, path, body, code, reason) in cases {
        let (got, status) = raw(&url, method, path, "application/json", body).await;
        assert_eq!(got, code, "{method} {path}");
        assert_eq!(status["kind"], "Status", "{method} {path}");
        assert_eq!(status["apiVersion"], "v1");
        assert_eq!(status["status"], "Failure");
        assert_eq!(status["code"], code);
        assert_eq!(status["reason"], reason, "{method} {path}");
        assert!(status["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let (_, status) = raw(&url, "GET", "/api/v1/nodes/missing", "", "").await;
    assert_eq!(status["message"], "nodes \"missing\" not found");
    assert_eq!(status["details"]["name"], "missing");
}

#[tokio::test]
async fn watch_delivers_added_modified_and_deleted_events_after_the_list_version() {
    let (store, client, _h) = twin().await;
    store.create(Resource::Node, "", node("before")).unwrap();
    let nodes: Api<Node> = Api::all(client);
    let list = nodes.list(&ListParams::default()).await.unwrap();
    let rv = list.metadata.resource_version.unwrap();
    let stream = nodes
        .watch(&WatchParams::default().timeout(10), &rv)
        .await
        .unwrap();
    store.create(Resource::Node, "", node("n1")).unwrap();
    store
        .mutate(Resource::Node, "", "n1", |n| {
            n["spec"]["unschedulable"] = json!(true);
            Ok(())
        })
        .unwrap();
    store.remove_now(Resource::Node, "", "n1");
    let events: Vec<_> = tokio::time::timeout(
        Duration::from_secs(10),
        stream.take(3).try_collect::<Vec<_>>(),
    )
    .await
    .expect("watch stalled")
    .unwrap();
    let kinds: Vec<String> = events
        .iter()
        .map(|e| match e {
            WatchEvent::Added(n) => format!("ADDED {}", n.metadata.name.clone().unwrap()),
            WatchEvent::Modified(n) => format!("MODIFIED {}", n.metadata.name.clone().unwrap()),
            WatchEvent::Deleted(n) => format!("DELETED {}", n.metadata.name.clone().unwrap()),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(kinds, vec!["ADDED n1", "MODIFIED n1", "DELETED n1"]);
}

#[tokio::test]
async fn deleting_a_scheduled_pod_is_graceful_until_the_kubelet_removes_it() {
    let (store, client, _h) = twin().await;
    store
        .create(
            Resource::Pod,
            "default",
            pod("a", "n1", json!({}), "Running"),
        )
        .unwrap();
    store
        .create(
            Resource::Pod,
            "default",
            pod("unscheduled", "", json!({}), "Pending"),
        )
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let before = store.clock().now();
    pods.delete("a", &DeleteParams::default().grace_period(20))
        .await
        .unwrap();
    let p = pods
        .get("a")
        .await
        .expect("a terminating pod is still readable");
    // Upstream sets deletionTimestamp to now + grace period.
    let ts = p.metadata.deletion_timestamp.expect("deletionTimestamp").0;
    let grace = (ts.as_millisecond() - before.timestamp_millis()) as f64 / 1000.0;
    assert!(
        (19.0..=21.5).contains(&grace),
        "deletionTimestamp {grace}s ahead"
    );
    assert_eq!(p.metadata.deletion_grace_period_seconds, Some(20));
    store.remove_now(Resource::Pod, "default", "a");
    assert!(matches!(pods.get("a").await, Err(kube::Error::Api(s)) if s.code == 404));
    // An unscheduled pod has nothing to stop: it goes at once.
    pods.delete("unscheduled", &DeleteParams::default())
        .await
        .unwrap();
    assert!(
        store
            .try_get(Resource::Pod, "default", "unscheduled")
            .is_none()
    );
}

#[tokio::test]
async fn the_scale_subresource_reads_and_patches_deployment_replicas() {
    let (store, client, _h) = twin().await;
    let dep = json!({
        "metadata": { "name": "web" },
        "spec": { "replicas": 2, "selector": { "matchLabels": { "app": "web" } },
                  "template": { "metadata": { "labels": { "app": "web" } }, "spec": { "containers": [{ "name": "c", "image": "nginx" }] } } },
        "status": { "replicas": 2 },
    });
    store.create(Resource::Deployment, "default", dep).unwrap();
    let deps: Api<Deployment> = Api::namespaced(client, "default");
    let scale = deps.get_scale("web").await.unwrap();
    assert_eq!(scale.spec.unwrap().replicas, Some(2));
    assert_eq!(scale.status.unwrap().selector.as_deref(), Some("app=web"));
    let generation =
        store.get(Resource::Deployment, "default", "web").unwrap()["metadata"]["generation"]
            .clone();
    let scaled = deps
        .patch_scale(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({ "spec": { "replicas": 4 } })),
        )
        .await
        .unwrap();
    assert_eq!(scaled.spec.unwrap().replicas, Some(4));
    let stored = store.get(Resource::Deployment, "default", "web").unwrap();
    assert_eq!(stored["spec"]["replicas"], 4);
    // A spec change bumps metadata.generation, as upstream.
    assert_eq!(
        stored["metadata"]["generation"].as_i64(),
        generation.as_i64().map(|g| g + 1)
    );
}

#[tokio::test]
async fn the_main_resource_ignores_status_and_the_status_subresource_ignores_spec() {
    let (store, client, _h) = twin().await;
    store.create(Resource::Node, "", node("n1")).unwrap();
    let nodes: Api<Node> = Api::all(client);
    let patch = json!({ "spec": { "unschedulable": true }, "status": { "conditions": [] } });
    nodes
        .patch("n1", &PatchParams::default(), &Patch::Merge(patch.clone()))
        .await
        .unwrap();
    let n = store.get(Resource::Node, "", "n1").unwrap();
    assert_eq!(n["spec"]["unschedulable"], true);
    assert_eq!(
        n["status"]["conditions"].as_array().map(Vec::len),
        Some(2),
        "main resource wrote status"
    );
    let patch = json!({ "spec": { "unschedulable": false }, "status": { "conditions": [] } });
    nodes
        .patch_status("n1", &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
    let n = store.get(Resource::Node, "", "n1").unwrap();
    assert_eq!(
        n["spec"]["unschedulable"], true,
        "status subresource wrote spec"
    );
    assert_eq!(n["status"]["conditions"].as_array().map(Vec::len), Some(0));
}

#[tokio::test]
async fn a_fault_rule_fails_the_chosen_calls_and_every_call_is_counted() {
    let (store, client, _h) = twin().await;
    store.create(Resource::Node, "", node("n1")).unwrap();
    store.faults().add(
        ngm_twin::store::FaultRule::new("get", "nodes", 429)
            .after(1)
            .times(2),
    );
    let nodes: Api<Node> = Api::all(client);
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(match nodes.get("n1").await {
            Ok(_) => 200,
            Err(kube::Error::Api(s)) => s.code,
            Err(e) => panic!("{e}"),
        });
    }
    assert_eq!(codes, vec![200, 429, 429, 200]);
    nodes.list(&ListParams::default()).await.unwrap();
    assert_eq!(store.requests().count("get", "nodes"), 4);
    assert_eq!(store.requests().count("list", "nodes"), 1);
}

/// batch/v1 Jobs are served like every other kind: discovery (`/apis` lists the `batch`
/// group; `/apis/batch/v1` lists `jobs`, namespaced, in category `all`, with `jobs/status`, as
/// the API server's legacy discovery does), create with the API server's defaults
/// (pkg/apis/batch/v1/defaults.go `SetDefaults_Job`, pkg/registry/batch/job/strategy.go
/// `generateSelector`), get, list, patch and watch through the kube client.
#[tokio::test]
async fn jobs_are_served_as_batch_v1_with_discovery_create_get_list_patch_and_watch() {
    use k8s_openapi::api::batch::v1::Job;
    let (store, client, h) = twin().await;
    store.ensure_namespace("default");
    let (code, groups) = raw(&h.url(), "GET", "/apis", "", "").await;
    assert_eq!(code, 200);
    assert!(
        groups["groups"].as_array().is_some_and(|g| g
            .iter()
            .any(|g| g["name"] == "batch" && g["preferredVersion"]["groupVersion"] == "batch/v1")),
        "{groups}"
    );
    let (code, list) = raw(&h.url(), "GET", "/apis/batch/v1", "", "").await;
    assert_eq!(code, 200);
    let resources = list["resources"].as_array().cloned().unwrap_or_default();
    let jobs = resources
        .iter()
        .find(|r| r["name"] == "jobs")
        .expect("jobs listed");
    assert_eq!(jobs["kind"], "Job");
    assert_eq!(jobs["namespaced"], true);
    assert_eq!(jobs["categories"], json!(["all"]));
    assert!(resources.iter().any(|r| r["name"] == "jobs/status"));

    let api: Api<Job> = Api::namespaced(client, "default");
    let body: Job = serde_json::from_value(json!({
        "metadata": { "name": "backup" },
        "spec": { "template": { "spec": {
            "restartPolicy": "Never",
            "containers": [{ "name": "work", "image": "busybox" }],
        } } },
    }))
    .expect("job");
    let stream = api
        .watch(&WatchParams::default().timeout(10), "0")
        .await
        .expect("watch");
    let created = api
        .create(&PostParams::default(), &body)
        .await
        .expect("create");
    let spec = created.spec.clone().unwrap_or_default();
    assert_eq!(spec.completions, Some(1));
    assert_eq!(spec.parallelism, Some(1));
    assert_eq!(spec.backoff_limit, Some(6));
    let uid = created.metadata.uid.clone().unwrap_or_default();
    assert_eq!(
        spec.selector
            .and_then(|s| s.match_labels)
            .and_then(|m| m.get("batch.kubernetes.io/controller-uid").cloned()),
        Some(uid)
    );
    let got = api.get("backup").await.expect("get");
    assert_eq!(got.metadata.uid, created.metadata.uid);
    assert_eq!(
        names(&api.list(&ListParams::default()).await.expect("list").items),
        ["backup"]
    );
    let patched = api
        .patch(
            "backup",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "team": "ops" } } })),
        )
        .await
        .expect("patch");
    assert_eq!(
        patched.metadata.labels.unwrap_or_default().get("team"),
        Some(&"ops".to_string())
    );
    let first = tokio::time::timeout(
        Duration::from_secs(10),
        stream.take(1).try_collect::<Vec<_>>(),
    )
    .await
    .expect("watch stalled")
    .expect("events");
    assert!(
        matches!(&first[0], WatchEvent::Added(j) if j.metadata.name.as_deref() == Some("backup")),
        "{first:?}"
    );
}
