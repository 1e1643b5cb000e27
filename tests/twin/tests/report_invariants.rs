//! The report flags what breaks an invariant (a changed spec, a PDB taken below its budget, a
//! failed request) and stays clean when a run leaves everything as it was.

mod lb_support;

use k8s_openapi::api::apps::v1::Deployment;
use kube::api::{Api, Patch, PatchParams};
use lb_support::*;
use ngm_twin::report::{Recorder, RunParts};
use serde_json::{Value, json};

// Pods that stop gracefully (a preStop longer than kube-proxy's lag), so a clean run drops nothing.
const WEB: &str = "
workloads:
  - { kind: Deployment, name: web, namespace: apps, replicas: 3, startupSeconds: 2, preStopSeconds: 2, onSigterm: stopAccepting, pdb: { minAvailable: 2 } }
services:
  - { name: web, namespace: apps, workload: web, type: LoadBalancer, loadBalancer: { kind: NLB } }
traffic:
  - { service: apps/web, requestsPerSecond: 2, requestSeconds: 1 }
";

async fn scale(client: &kube::Client, replicas: i32) {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let patch = json!({ "spec": { "replicas": replicas } });
    deployments
        .patch_scale("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("scale");
}

// I3: a run that surges and scales back leaves every desired state as it was, so the diff is
// empty, and every request succeeded; the requests it made are counted by verb and resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_is_clean_when_a_run_restores_everything() {
    let twin = boot(scenario(3, WEB)).await;
    let recorder = Recorder::start(&twin.store).named("surge-and-back");
    let lbs = twin.balancers();
    let (client, _server) = kube(&twin.store).await;
    scale(&client, 6).await;
    twin.run_for(20.0, 0.5).await;
    scale(&client, 3).await;
    twin.run_for(60.0, 0.5).await;
    let parts = RunParts {
        load_balancers: lbs.describe(),
        ..RunParts::default()
    };
    let parts = RunParts {
        traffic: Some(lbs.stop().await),
        ..parts
    };
    let report = recorder.finish(parts).await;

    assert!(report.is_clean(), "{}", report.summary());
    assert!(report.changes.is_empty(), "{:?}", report.changes);
    assert!(report.traffic.sent() > 100);
    let patches = report
        .requests
        .kubernetes
        .iter()
        .find(|r| r.verb == "patch" && r.resource == "deployments/scale")
        .map(|r| r.count);
    assert_eq!(patches, Some(2));
    let json: Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    assert_eq!(json["invariants"]["zeroDowntime"], true);
    assert_eq!(
        json["loadBalancers"][0]["settings"]["deregistrationDelaySeconds"],
        300
    );
    assert!(report.summary().contains("I1 zero downtime: 0 of"));
}

// I3/I4: a spec that differs after the run (replicas left surged, a leftover annotation) is
// reported with its path, before and after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_flags_a_changed_spec_with_its_path() {
    let twin = boot(scenario(3, WEB)).await;
    let recorder = Recorder::start(&twin.store);
    let (client, _server) = kube(&twin.store).await;
    scale(&client, 5).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), "apps");
    let patch = json!({ "metadata": { "annotations": { "ngm.io/original-replicas": "3" } } });
    deployments
        .patch("web", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("annotate");
    twin.run_for(10.0, 0.5).await;
    let report = recorder.finish(RunParts::default()).await;

    assert!(!report.invariants.objects_restored);
    assert!(!report.is_clean());
    let replicas = report
        .changes
        .changed
        .iter()
        .find(|c| c.object.name == "web" && c.path == "/spec/replicas")
        .expect("replicas change");
    assert_eq!(
        (replicas.before.clone(), replicas.after.clone()),
        (Some(json!(3)), Some(json!(5)))
    );
    assert!(
        report
            .changes
            .changed
            .iter()
            .any(|c| c.path == "/annotations")
    );
    assert!(
        report.summary().contains("FAIL I3/I4 objects restored"),
        "{}",
        report.summary()
    );
}

// I1: failed requests break zero downtime and are listed with their reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_flags_failed_requests() {
    let twin = boot(scenario(2, WEB)).await;
    let recorder = Recorder::start(&twin.store);
    let lbs = twin.balancers();
    twin.run_for(5.0, 0.5).await;
    ngm_twin::sim::nodes::remove_node(&twin.store, &twin.nodes[0]);
    twin.run_for(10.0, 0.5).await;
    let report = recorder
        .finish(RunParts {
            traffic: Some(lbs.stop().await),
            ..RunParts::default()
        })
        .await;
    assert!(!report.invariants.zero_downtime);
    let json: Value = serde_json::from_str(&report.to_json()).expect("valid JSON");
    assert!(
        json["traffic"]["services"][0]["failed"]
            .as_u64()
            .is_some_and(|n| n > 0)
    );
    assert!(
        report.summary().contains("FAIL I1 zero downtime"),
        "{}",
        report.summary()
    );
}
