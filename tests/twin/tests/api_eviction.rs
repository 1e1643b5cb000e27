//! The eviction subresource and PodDisruptionBudget arithmetic, as the API server and the
//! disruption controller implement them (pkg/registry/core/pod/storage/eviction.go,
//! pkg/controller/disruption).

use chrono::Utc;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, EvictParams, PostParams, Preconditions};
use ngm_twin::server::{ServerHandle, serve_local};
use ngm_twin::store::{Resource, Store, compute_pdb_status};
use serde_json::{Value, json};

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

fn pod_json(name: &str, ready: bool, phase: &str) -> Value {
    json!({
        "metadata": {
            "name": name,
            "labels": { "app": "web" },
            "ownerReferences": [{ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-rs", "uid": "rs-uid", "controller": true }],
        },
        "spec": { "nodeName": "n1", "containers": [{ "name": "c", "image": "nginx" }] },
        "status": { "phase": phase, "conditions": [{ "type": "Ready", "status": if ready { "True" } else { "False" } }] },
    })
}

fn pdb_json(name: &str, budget: Value) -> Value {
    let mut spec = budget;
    spec["selector"] = json!({ "matchLabels": { "app": "web" } });
    json!({ "metadata": { "name": name }, "spec": spec })
}

/// Three Ready web pods guarded by one PDB.
fn seed(store: &Store, budget: Value) {
    for name in ["a", "b", "c"] {
        store
            .create(Resource::Pod, "default", pod_json(name, true, "Running"))
            .unwrap();
    }
    store
        .create(
            Resource::PodDisruptionBudget,
            "default",
            pdb_json("web-pdb", budget),
        )
        .unwrap();
}

fn eviction(name: &str, uid: Option<&str>) -> Value {
    let mut e =
        json!({ "apiVersion": "policy/v1", "kind": "Eviction", "metadata": { "name": name } });
    if let Some(uid) = uid {
        e["deleteOptions"] = json!({ "preconditions": { "uid": uid } });
    }
    e
}

async fn evict(pods: &Api<Pod>, name: &str, uid: Option<&str>) -> Result<(), kube::Error> {
    pods.create_subresource::<Value, Value>(
        "eviction",
        name,
        &PostParams::default(),
        &eviction(name, uid),
    )
    .await
    .map(|_| ())
}

fn code(r: Result<(), kube::Error>) -> u16 {
    match r {
        Ok(()) => 201,
        Err(kube::Error::Api(s)) => s.code,
        Err(other) => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn eviction_answers_201_and_deletes_the_pod_gracefully_when_the_pdb_allows_it() {
    let (store, client, _h) = twin().await;
    seed(&store, json!({ "minAvailable": 2 }));
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let status = pods
        .evict("a", &EvictParams::default())
        .await
        .expect("eviction allowed");
    assert_eq!(status.code, 201);
    let a = store.get(Resource::Pod, "default", "a").unwrap();
    assert!(
        a.pointer("/metadata/deletionTimestamp").is_some(),
        "evicted pod not terminating"
    );
    // The eviction spent the one allowed disruption at once.
    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client, "default");
    let st = pdbs.get("web-pdb").await.unwrap().status.unwrap();
    assert_eq!(
        (
            st.current_healthy,
            st.desired_healthy,
            st.disruptions_allowed
        ),
        (2, 2, 0)
    );
}

#[tokio::test]
async fn eviction_answers_429_naming_the_pdb_when_it_allows_no_disruption() {
    let (store, client, _h) = twin().await;
    seed(&store, json!({ "minAvailable": 3 }));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let err = pods.evict("a", &EvictParams::default()).await.unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("not an API error")
    };
    assert_eq!((s.code, s.reason.as_str()), (429, "TooManyRequests"));
    assert_eq!(
        s.message,
        "Cannot evict pod as it would violate the pod's disruption budget."
    );
    let causes = s.details.expect("details").causes;
    assert!(
        causes.iter().any(|c| c.reason == "DisruptionBudget"
            && c.message
                == "The disruption budget web-pdb needs 3 healthy pods and has 3 currently"),
        "{causes:?}"
    );
    assert!(
        store
            .get(Resource::Pod, "default", "a")
            .unwrap()
            .pointer("/metadata/deletionTimestamp")
            .is_none()
    );
    let log = store.evictions();
    assert_eq!(
        log.last().map(|r| (r.code, r.pdb.clone())),
        Some((429, Some("web-pdb".into())))
    );
}

#[tokio::test]
async fn eviction_answers_404_for_a_pod_that_is_gone() {
    let (store, client, _h) = twin().await;
    seed(&store, json!({ "minAvailable": 1 }));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    assert_eq!(code(evict(&pods, "missing", None).await), 404);
}

#[tokio::test]
async fn eviction_answers_409_when_the_uid_precondition_does_not_match() {
    let (store, client, _h) = twin().await;
    seed(&store, json!({ "minAvailable": 1 }));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    assert_eq!(
        code(evict(&pods, "a", Some("some-older-pod-uid")).await),
        409
    );
    let uid = store.get(Resource::Pod, "default", "a").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(code(evict(&pods, "a", Some(&uid)).await), 201);
}

#[tokio::test]
async fn eviction_ignores_kube_rs_snake_case_delete_options_like_any_unknown_field() {
    // kube-rs 5 `Api::evict` sends `delete_options`; policy/v1 Eviction names the field
    // `deleteOptions`, and the API server drops unknown fields, so the precondition is lost.
    let (store, client, _h) = twin().await;
    seed(&store, json!({ "minAvailable": 1 }));
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let dp = DeleteParams {
        preconditions: Some(Preconditions {
            uid: Some("wrong".into()),
            resource_version: None,
        }),
        ..DeleteParams::default()
    };
    let ep = EvictParams {
        delete_options: Some(dp),
        ..EvictParams::default()
    };
    assert!(
        pods.evict("a", &ep).await.is_ok(),
        "the snake_case precondition was honoured"
    );
}

#[tokio::test]
async fn eviction_answers_500_when_more_than_one_pdb_matches() {
    let (store, client, _h) = twin().await;
    seed(&store, json!({ "minAvailable": 1 }));
    store
        .create(
            Resource::PodDisruptionBudget,
            "default",
            pdb_json("second", json!({ "maxUnavailable": 1 })),
        )
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let err = pods.evict("a", &EvictParams::default()).await.unwrap_err();
    let kube::Error::Api(s) = err else {
        panic!("not an API error")
    };
    assert_eq!(s.code, 500);
    assert!(
        s.message
            .starts_with("This pod has more than one PodDisruptionBudget"),
        "{}",
        s.message
    );
}

#[tokio::test]
async fn two_concurrent_evictions_cannot_spend_one_allowed_disruption() {
    let (store, client, _h) = twin().await;
    seed(&store, json!({ "maxUnavailable": 1 }));
    store
        .create(
            Resource::ReplicaSet,
            "default",
            json!({ "metadata": { "name": "web-rs" }, "spec": { "replicas": 3 } }),
        )
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    let (x, y) = tokio::join!(evict(&pods, "a", None), evict(&pods, "b", None));
    let mut codes = vec![code(x), code(y)];
    codes.sort();
    assert_eq!(codes, vec![201, 429]);
}

#[tokio::test]
async fn a_pod_that_is_not_ready_is_evictable_while_the_budget_is_healthy_by_default() {
    let (store, client, _h) = twin().await;
    for (name, ready) in [("a", true), ("b", true), ("sick", false)] {
        store
            .create(Resource::Pod, "default", pod_json(name, ready, "Running"))
            .unwrap();
    }
    store
        .create(
            Resource::PodDisruptionBudget,
            "default",
            pdb_json("web-pdb", json!({ "minAvailable": 2 })),
        )
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    // IfHealthyBudget (the default): currentHealthy 2 >= desiredHealthy 2.
    assert_eq!(
        code(evict(&pods, "a", None).await),
        429,
        "a Ready pod would break the budget"
    );
    assert_eq!(code(evict(&pods, "sick", None).await), 201);
}

#[tokio::test]
async fn a_pod_that_is_not_ready_waits_for_an_unhealthy_budget_unless_the_policy_is_always_allow() {
    let (store, client, _h) = twin().await;
    for (name, ready) in [("a", true), ("sick", false)] {
        store
            .create(Resource::Pod, "default", pod_json(name, ready, "Running"))
            .unwrap();
    }
    store
        .create(
            Resource::PodDisruptionBudget,
            "default",
            pdb_json("web-pdb", json!({ "minAvailable": 2 })),
        )
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    assert_eq!(code(evict(&pods, "sick", None).await), 429);
    store
        .mutate(Resource::PodDisruptionBudget, "default", "web-pdb", |p| {
            p["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
            Ok(())
        })
        .unwrap();
    assert_eq!(code(evict(&pods, "sick", None).await), 201);
}

#[tokio::test]
async fn a_pending_pod_is_evicted_without_consulting_the_budget() {
    let (store, client, _h) = twin().await;
    seed(&store, json!({ "minAvailable": 3 }));
    store
        .create(Resource::Pod, "default", pod_json("new", false, "Pending"))
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client, "default");
    assert_eq!(code(evict(&pods, "new", None).await), 201);
}

struct Case {
    name: &'static str,
    budget: Value,
    /// (ready, terminating, has a controller)
    pods: Vec<(bool, bool, bool)>,
    scale: i32,
    want: (i32, i32, i32, i32),
}

fn typed_pod(i: usize, ready: bool, terminating: bool, owned: bool) -> Pod {
    let mut p = pod_json(&format!("p{i}"), ready, "Running");
    p["metadata"]["namespace"] = json!("default");
    if terminating {
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    if !owned {
        p["metadata"]["ownerReferences"] = json!([]);
    }
    serde_json::from_value(p).unwrap()
}

#[test]
fn pdb_status_follows_the_disruption_controller_for_integers_and_percentages() {
    let all_ready = |n| vec![(true, false, true); n];
    let cases = vec![
        Case {
            name: "minAvailable int counts matching pods",
            budget: json!({ "minAvailable": 2 }),
            pods: all_ready(3),
            scale: 3,
            want: (3, 2, 3, 1),
        },
        Case {
            name: "minAvailable % rounds up of the scale",
            budget: json!({ "minAvailable": "50%" }),
            pods: all_ready(3),
            scale: 3,
            want: (3, 2, 3, 1),
        },
        Case {
            name: "minAvailable 100% allows none",
            budget: json!({ "minAvailable": "100%" }),
            pods: all_ready(3),
            scale: 3,
            want: (3, 3, 3, 0),
        },
        Case {
            name: "maxUnavailable int",
            budget: json!({ "maxUnavailable": 1 }),
            pods: all_ready(3),
            scale: 3,
            want: (3, 2, 3, 1),
        },
        Case {
            name: "maxUnavailable % rounds up",
            budget: json!({ "maxUnavailable": "34%" }),
            pods: all_ready(4),
            scale: 4,
            want: (4, 2, 4, 2),
        },
        Case {
            name: "maxUnavailable 10% of 3 still allows one",
            budget: json!({ "maxUnavailable": "10%" }),
            pods: all_ready(3),
            scale: 3,
            want: (3, 2, 3, 1),
        },
        Case {
            name: "maxUnavailable 0 allows none",
            budget: json!({ "maxUnavailable": 0 }),
            pods: all_ready(3),
            scale: 3,
            want: (3, 3, 3, 0),
        },
        Case {
            name: "expected comes from the scale, not the pods",
            budget: json!({ "maxUnavailable": 1 }),
            pods: all_ready(3),
            scale: 4,
            want: (4, 3, 3, 0),
        },
        Case {
            name: "a pod that is not Ready is not healthy",
            budget: json!({ "minAvailable": 2 }),
            pods: vec![
                (true, false, true),
                (false, false, true),
                (true, false, true),
            ],
            scale: 3,
            want: (3, 2, 2, 0),
        },
        Case {
            name: "a terminating pod is not healthy",
            budget: json!({ "minAvailable": 1 }),
            pods: vec![(true, true, true), (true, false, true)],
            scale: 2,
            want: (2, 1, 1, 0),
        },
        Case {
            name: "a bare pod under maxUnavailable fails safe",
            budget: json!({ "maxUnavailable": 1 }),
            pods: vec![(true, false, false), (true, false, true)],
            scale: 2,
            want: (0, 0, 2, 0),
        },
        Case {
            name: "a bare pod under an integer minAvailable is fine",
            budget: json!({ "minAvailable": 1 }),
            pods: vec![(true, false, false), (true, false, false)],
            scale: 0,
            want: (2, 1, 2, 1),
        },
    ];
    for case in cases {
        let pdb: PodDisruptionBudget =
            serde_json::from_value(pdb_json("web-pdb", case.budget.clone())).unwrap();
        let pods: Vec<Pod> = case
            .pods
            .iter()
            .enumerate()
            .map(|(i, (ready, term, owned))| typed_pod(i, *ready, *term, *owned))
            .collect();
        let scale = case.scale;
        let scale_of =
            move |o: &OwnerReference| (o.name == "web-rs").then(|| ("dep-uid".to_string(), scale));
        let st = compute_pdb_status(&pdb, &pods, &scale_of, Utc::now());
        assert_eq!(
            (
                st.expected_pods,
                st.desired_healthy,
                st.current_healthy,
                st.disruptions_allowed
            ),
            case.want,
            "{}",
            case.name
        );
        let allowed = st
            .conditions
            .unwrap_or_default()
            .into_iter()
            .find(|c| c.type_ == "DisruptionAllowed")
            .unwrap();
        assert_eq!(allowed.status == "True", case.want.3 > 0, "{}", case.name);
    }
}
