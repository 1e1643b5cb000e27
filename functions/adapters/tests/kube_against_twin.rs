//! The Kubernetes adapter against the cluster twin's HTTP API, through the real kube client
//! built the way the functions build it (`client_for_cluster` with an endpoint override).

use std::time::SystemTime;

use aws_credential_types::Credentials;
use ngm_adapters::auth::mint_token;
use ngm_adapters::kube::{ClusterEndpoint, KubeAdapter, client_for_cluster};
use ngm_core::model::{
    ClusterInfo, EventType, LabelSelector, ObjectRef, SelectorOperator, SelectorRequirement, Taint,
    TaintEffect, WorkloadKind, WorkloadRef,
};
use ngm_core::ports::{EvictOutcome, HpaPatch, KubePort, MetadataPatch};
use ngm_twin::server::{ServerHandle, serve_local};
use ngm_twin::store::{Resource, Store};
use serde_json::{Value, json};

async fn twin() -> (Store, KubeAdapter, ServerHandle) {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let store = Store::default();
    let (url, handle) = serve_local(store.clone()).await.expect("serve");
    let cluster = ClusterInfo {
        name: "prod".into(),
        arn: "arn:aws:eks:us-east-1:123456789012:cluster/prod".into(),
        endpoint: "https://ABC.gr7.us-east-1.eks.amazonaws.com".into(),
        ca_data: String::new(),
        version: "1.33".into(),
        tags: Default::default(),
    };
    let creds = Credentials::new("AKID", "SECRET", None, None, "test");
    let token = mint_token(&creds, "us-east-1", "prod", SystemTime::now()).unwrap();
    let endpoint = ClusterEndpoint {
        url: Some(url),
        ca_data: Some(String::new()),
    };
    let client = client_for_cluster(&cluster, &token, &endpoint).expect("client");
    (store, KubeAdapter::new(client), handle)
}

fn node(name: &str, group: &str, taints: Value) -> Value {
    json!({
        "metadata": {"name": name, "labels": {
            "eks.amazonaws.com/nodegroup": group,
            "topology.kubernetes.io/zone": "us-east-1a",
        }},
        "spec": {"providerID": format!("aws:///us-east-1a/i-{name}"), "taints": taints},
        "status": {
            "conditions": [{"type": "Ready", "status": "True"}],
            "allocatable": {"cpu": "8", "memory": "32Gi"},
        },
    })
}

fn pod(name: &str, node: &str, app: &str) -> Value {
    json!({
        "metadata": {"name": name, "labels": {"app": app}, "ownerReferences": [{
            "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": format!("{app}-rs"),
            "uid": format!("{app}-rs-uid"), "controller": true,
        }]},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "nginx",
            "resources": {"requests": {"cpu": "250m", "memory": "64Mi"}}}]},
        "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]},
    })
}

fn seed_nodes(store: &Store) {
    let eks_taint = json!([{"key": "dedicated", "value": "web", "effect": "NoSchedule"}]);
    for i in 0..5 {
        store
            .create(
                Resource::Node,
                "",
                node(&format!("old-{i}"), "blue", eks_taint.clone()),
            )
            .unwrap();
    }
    for i in 0..2 {
        store
            .create(
                Resource::Node,
                "",
                node(&format!("new-{i}"), "green", json!([])),
            )
            .unwrap();
    }
}

#[tokio::test]
async fn lists_nodes_by_equality_and_set_selectors_across_pages() {
    let (store, kube, _server) = twin().await;
    seed_nodes(&store);
    let kube = kube.with_page_size(2);

    let blue = kube
        .list_nodes(&LabelSelector::eq([(
            "eks.amazonaws.com/nodegroup",
            "blue",
        )]))
        .await
        .unwrap();
    assert_eq!(blue.len(), 5);
    assert!(
        blue.iter()
            .all(|n| n.ready && n.instance_id().is_some_and(|i| i.starts_with("i-old")))
    );
    assert_eq!(blue[0].allocatable.cpu_millis, 8000);
    assert_eq!(blue[0].taints.len(), 1);
    // 5 items at 2 per page is 3 requests: the adapter followed `continue`.
    assert_eq!(store.requests().count("list", "nodes"), 3);

    let set = LabelSelector {
        match_labels: Default::default(),
        match_expressions: vec![SelectorRequirement {
            key: "eks.amazonaws.com/nodegroup".into(),
            operator: SelectorOperator::In,
            values: vec!["green".into(), "purple".into()],
        }],
    };
    let green = kube.list_nodes(&set).await.unwrap();
    let mut names: Vec<_> = green.iter().map(|n| n.name.clone()).collect();
    names.sort();
    assert_eq!(names, vec!["new-0", "new-1"]);
    assert_eq!(
        kube.list_nodes(&LabelSelector::default())
            .await
            .unwrap()
            .len(),
        7
    );
}

#[tokio::test]
async fn taint_patch_keeps_the_groups_own_taints_and_is_a_no_op_when_present() {
    let (store, kube, _server) = twin().await;
    seed_nodes(&store);
    let ngm = Taint {
        key: "ngm.io/retiring".into(),
        value: Some("e1".into()),
        effect: TaintEffect::NoSchedule,
    };

    kube.patch_node_taints("old-0", std::slice::from_ref(&ngm), &[])
        .await
        .unwrap();
    let node = store.get(Resource::Node, "", "old-0").unwrap();
    let taints = node["spec"]["taints"].as_array().unwrap();
    assert_eq!(taints.len(), 2, "{taints:?}");
    assert!(taints.iter().any(|t| t["key"] == "dedicated"));
    assert!(
        taints
            .iter()
            .any(|t| t["key"] == "ngm.io/retiring" && t["effect"] == "NoSchedule")
    );

    let patches = store.requests().count("patch", "nodes");
    kube.patch_node_taints("old-0", std::slice::from_ref(&ngm), &[])
        .await
        .unwrap();
    assert_eq!(
        store.requests().count("patch", "nodes"),
        patches,
        "second taint must not write"
    );

    kube.patch_node_taints("old-0", &[], std::slice::from_ref(&ngm))
        .await
        .unwrap();
    let node = store.get(Resource::Node, "", "old-0").unwrap();
    assert_eq!(
        node["spec"]["taints"],
        json!([{"key": "dedicated", "value": "web", "effect": "NoSchedule"}])
    );
}

#[tokio::test]
async fn label_merge_patch_sets_and_removes_and_uncordon_removes_unschedulable() {
    let (store, kube, _server) = twin().await;
    seed_nodes(&store);
    let exclude = "node.kubernetes.io/exclude-from-external-load-balancers";
    let set: MetadataPatch = [(exclude.to_owned(), Some("ngm".to_owned()))].into();
    kube.patch_node_labels("old-1", &set).await.unwrap();
    kube.set_unschedulable("old-1", true).await.unwrap();
    let node = store.get(Resource::Node, "", "old-1").unwrap();
    assert_eq!(node["metadata"]["labels"][exclude], "ngm");
    assert_eq!(
        node["metadata"]["labels"]["eks.amazonaws.com/nodegroup"],
        "blue"
    );
    assert_eq!(node["spec"]["unschedulable"], true);

    let unset: MetadataPatch = [(exclude.to_owned(), None)].into();
    kube.patch_node_labels("old-1", &unset).await.unwrap();
    kube.set_unschedulable("old-1", false).await.unwrap();
    let node = store.get(Resource::Node, "", "old-1").unwrap();
    assert!(node["metadata"]["labels"].get(exclude).is_none());
    // Uncordon removes the field, as `kubectl uncordon` does.
    assert!(node["spec"].get("unschedulable").is_none(), "{node}");
}

#[tokio::test]
async fn pods_are_read_per_node_and_per_selector() {
    let (store, kube, _server) = twin().await;
    seed_nodes(&store);
    for i in 0..6 {
        let node = if i < 4 { "old-0" } else { "new-0" };
        store
            .create(
                Resource::Pod,
                "default",
                pod(&format!("web-{i}"), node, "web"),
            )
            .unwrap();
    }
    store
        .create(Resource::Pod, "default", pod("db-0", "old-0", "db"))
        .unwrap();
    let on_old = kube
        .clone()
        .with_page_size(2)
        .list_pods_on_node("old-0")
        .await
        .unwrap();
    assert_eq!(on_old.len(), 5);
    assert!(
        on_old
            .iter()
            .all(|p| p.node_name.as_deref() == Some("old-0"))
    );
    assert_eq!(on_old[0].requests.cpu_millis, 250);
    assert_eq!(
        on_old[0].owner.as_ref().map(|o| o.kind.as_str()),
        Some("ReplicaSet")
    );

    let web = kube
        .list_pods(Some("default"), &LabelSelector::eq([("app", "web")]))
        .await
        .unwrap();
    assert_eq!(web.len(), 6);
    let mark: MetadataPatch = [(
        "controller.kubernetes.io/pod-deletion-cost".to_owned(),
        Some("-1000".to_owned()),
    )]
    .into();
    kube.annotate_pod("default", "web-0", &mark).await.unwrap();
    let p = store.get(Resource::Pod, "default", "web-0").unwrap();
    assert_eq!(
        p["metadata"]["annotations"]["controller.kubernetes.io/pod-deletion-cost"],
        "-1000"
    );
}

fn pdb(min_available: i64) -> Value {
    json!({"metadata": {"name": "web-pdb"}, "spec": {
        "minAvailable": min_available, "selector": {"matchLabels": {"app": "web"}}}})
}

#[tokio::test]
async fn eviction_answers_evicted_blocked_with_the_pdb_and_gone_for_404_and_409() {
    let (store, kube, _server) = twin().await;
    seed_nodes(&store);
    for i in 0..3 {
        store
            .create(
                Resource::Pod,
                "default",
                pod(&format!("web-{i}"), "old-0", "web"),
            )
            .unwrap();
    }
    // minAvailable 2 of 3 healthy pods allows exactly one disruption.
    store
        .create(Resource::PodDisruptionBudget, "default", pdb(2))
        .unwrap();
    let uid = |name: &str| {
        store.get(Resource::Pod, "default", name).unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap()
            .to_owned()
    };

    let first = kube
        .evict_pod("default", "web-0", &uid("web-0"))
        .await
        .unwrap();
    assert_eq!(first, EvictOutcome::Evicted);
    let evicted = store.try_get(Resource::Pod, "default", "web-0");
    assert!(evicted.is_none_or(|p| p["metadata"]["deletionTimestamp"].is_string()));

    let second = kube
        .evict_pod("default", "web-1", &uid("web-1"))
        .await
        .unwrap();
    assert_eq!(
        second,
        EvictOutcome::PdbBlocked {
            pdb: Some("web-pdb".into())
        }
    );
    assert!(
        store.get(Resource::Pod, "default", "web-1").unwrap()["metadata"]["deletionTimestamp"]
            .is_null()
    );

    let wrong_uid = kube
        .evict_pod("default", "web-2", "not-its-uid")
        .await
        .unwrap();
    assert_eq!(
        wrong_uid,
        EvictOutcome::AlreadyGone,
        "409 on the UID precondition"
    );
    assert!(
        store.get(Resource::Pod, "default", "web-2").unwrap()["metadata"]["deletionTimestamp"]
            .is_null()
    );

    let missing = kube.evict_pod("default", "web-9", "x").await.unwrap();
    assert_eq!(missing, EvictOutcome::AlreadyGone, "404");
}

#[tokio::test]
async fn workloads_scale_through_the_scale_subresource_and_hpas_and_events_are_written() {
    let (store, kube, _server) = twin().await;
    store.create(Resource::Deployment, "default", json!({
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                {"name": "c", "image": "nginx", "resources": {"requests": {"cpu": "100m"}}}]}}},
    })).unwrap();
    store.create(Resource::HorizontalPodAutoscaler, "default", json!({
        "metadata": {"name": "web"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 2, "maxReplicas": 5},
    })).unwrap();
    let web = WorkloadRef {
        kind: WorkloadKind::Deployment,
        namespace: "default".into(),
        name: "web".into(),
    };

    let view = kube.get_workload(&web).await.unwrap().expect("deployment");
    assert_eq!(view.replicas, 3);
    assert_eq!(view.pod_requests.cpu_millis, 100);
    kube.scale_workload(&web, 6).await.unwrap();
    assert_eq!(store.requests().count("patch", "deployments/scale"), 1);
    assert_eq!(kube.get_workload(&web).await.unwrap().unwrap().replicas, 6);
    let missing = WorkloadRef {
        name: "nope".into(),
        ..web.clone()
    };
    assert_eq!(kube.get_workload(&missing).await.unwrap(), None);

    let patch = HpaPatch {
        min_replicas: Some(Some(6)),
        max_replicas: Some(6),
        annotations: [("ngm.io/original-hpa".to_owned(), Some("2/5".to_owned()))].into(),
    };
    kube.patch_hpa("default", "web", &patch).await.unwrap();
    let hpas = kube.list_hpas().await.unwrap();
    assert_eq!((hpas[0].min_replicas, hpas[0].max_replicas), (Some(6), 6));
    assert_eq!(
        hpas[0]
            .annotations
            .get("ngm.io/original-hpa")
            .map(String::as_str),
        Some("2/5")
    );

    kube.record_event(
        &ObjectRef::workload(&web),
        EventType::Normal,
        "Surged",
        "scaled to 6",
    )
    .await
    .unwrap();
    let events = store.list_all(Resource::Event, Some("default"));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["involvedObject"]["name"], "web");
    assert_eq!(events[0]["reason"], "Surged");
}

#[tokio::test]
async fn a_step_lists_pods_per_node_so_requests_grow_with_nodes_not_nodes_times_pods() {
    let (store, kube, _server) = twin().await;
    seed_nodes(&store);
    for n in 0..5 {
        for i in 0..20 {
            store
                .create(
                    Resource::Pod,
                    "default",
                    pod(&format!("p-{n}-{i}"), &format!("old-{n}"), "web"),
                )
                .unwrap();
        }
    }
    let before = store.requests().count("list", "pods");
    let nodes = kube
        .list_nodes(&LabelSelector::eq([(
            "eks.amazonaws.com/nodegroup",
            "blue",
        )]))
        .await
        .unwrap();
    let mut total = 0;
    for n in &nodes {
        total += kube.list_pods_on_node(&n.name).await.unwrap().len();
    }
    assert_eq!(total, 100);
    assert_eq!(
        store.requests().count("list", "pods") - before,
        5,
        "one list per node"
    );
}

#[tokio::test]
async fn replicasets_daemonsets_pdbs_services_and_endpointslices_are_read_as_views() {
    let (store, kube, _server) = twin().await;
    store.create(Resource::ReplicaSet, "default", json!({
        "metadata": {"name": "web-7d9", "ownerReferences": [{"apiVersion": "apps/v1",
            "kind": "Deployment", "name": "web", "uid": "d-uid", "controller": true}]},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}},
    })).unwrap();
    store.create(Resource::DaemonSet, "kube-system", json!({
        "metadata": {"name": "aws-node"},
        "spec": {"selector": {"matchLabels": {"k8s-app": "aws-node"}},
            "template": {"metadata": {"labels": {"k8s-app": "aws-node"}}, "spec": {"containers": [{"name": "c", "image": "cni"}]}}},
    })).unwrap();
    store
        .create(
            Resource::PodDisruptionBudget,
            "default",
            json!({
                "metadata": {"name": "web-pdb"},
                "spec": {"maxUnavailable": "25%", "selector": {"matchExpressions": [
                    {"key": "app", "operator": "In", "values": ["web"]}]}},
            }),
        )
        .unwrap();
    store.create(Resource::Service, "default", json!({
        "metadata": {"name": "web"},
        "spec": {"type": "LoadBalancer", "externalTrafficPolicy": "Local", "selector": {"app": "web"},
            "ports": [{"port": 80}]},
        "status": {"loadBalancer": {"ingress": [{"hostname": "web-123.elb.us-east-1.amazonaws.com"}]}},
    })).unwrap();
    store.create(Resource::EndpointSlice, "default", json!({
        "metadata": {"name": "web-abc", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [
            {"addresses": ["10.0.0.1"], "conditions": {"ready": true}, "nodeName": "old-0",
             "targetRef": {"kind": "Pod", "name": "web-0", "namespace": "default"}},
            {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "terminating": true}, "nodeName": "old-1"},
        ],
    })).unwrap();

    let rs = kube.list_replicasets(None).await.unwrap();
    assert_eq!(
        rs[0]
            .owner
            .as_ref()
            .map(|o| (o.kind.as_str(), o.name.as_str())),
        Some(("Deployment", "web"))
    );
    assert_eq!(rs[0].replicas, 3);
    let ds = kube.list_daemonsets().await.unwrap();
    assert_eq!(
        (ds[0].namespace.as_str(), ds[0].name.as_str()),
        ("kube-system", "aws-node")
    );
    let pdbs = kube.list_pdbs().await.unwrap();
    assert_eq!(
        pdbs[0].max_unavailable,
        Some(ngm_core::model::IntOrPercent::Percent(25))
    );
    assert_eq!(pdbs[0].selector.match_expressions.len(), 1);
    let svcs = kube.list_services().await.unwrap();
    assert_eq!(
        svcs[0].service_type,
        ngm_core::model::ServiceType::LoadBalancer
    );
    assert_eq!(
        svcs[0].external_traffic_policy,
        Some(ngm_core::model::TrafficPolicy::Local)
    );
    assert_eq!(
        svcs[0].lb_hostnames,
        vec!["web-123.elb.us-east-1.amazonaws.com".to_owned()]
    );
    let slices = kube.list_endpointslices("default", "web").await.unwrap();
    assert_eq!(slices.len(), 1);
    assert_eq!(slices[0].service, "web");
    let eps = &slices[0].endpoints;
    assert!(eps[0].ready && eps[0].pod_name.as_deref() == Some("web-0"));
    assert!(!eps[1].ready && eps[1].terminating);
}
