//! A run on the whole twin: the report compiled from the probe, the load balancers and EKS,
//! and the scenario's faults installed where they act.

use std::time::Duration;

use aws_sdk_eks::config::{BehaviorVersion, Credentials, Region};
use ngm_twin::scenario::Scenario;
use ngm_twin::store::Resource;
use ngm_twin::twin::{Twin, TwinError, TwinOptions};
use serde_json::Value;

const BASE: &str = r#"
name: faults
cluster:
  name: faults
  region: us-west-2
  speed: 120
  nodeGroups:
    - name: standard
      instanceTypes: [m5.xlarge]
      zones: [us-west-2a, us-west-2b]
      amiRelease: 1.33.4-20251001
      desiredSize: 2
workloads:
  - kind: Deployment
    name: web
    replicas: 2
    startupSeconds: 5
    terminationGracePeriodSeconds: 5
  - kind: StatefulSet
    name: db
    replicas: 1
    startupSeconds: 5
services:
  - name: web
    workload: web
    type: LoadBalancer
    loadBalancer: { kind: NLB }
traffic:
  - service: web
    requestsPerSecond: 10
migration:
  cluster: { name: faults, region: us-west-2 }
  source: { managedNodeGroup: standard }
  target: { name: performant, instanceTypes: [m5.xlarge] }
"#;

fn scenario(faults: &str) -> Scenario {
    Scenario::parse(&format!("{BASE}faults:\n{faults}")).expect("scenario")
}

async fn start(faults: &str) -> Twin {
    Twin::start(Some(scenario(faults)), TwinOptions::default())
        .await
        .expect("the twin boots")
}

fn eks_client(twin: &Twin) -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(twin.url())
            .build(),
    )
}

async fn eventually(secs: u64, what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undisturbed_run_reports_traffic_served_and_every_invariant_held() {
    let mut twin = start("  []\n").await;
    twin.begin_run();
    let balancers = twin.balancers().expect("load balancers run");
    eventually(30, "the probe to send 20 requests", async || {
        balancers.stats().sent() >= 20
    })
    .await;
    eventually(30, "the NLB to exist in moto", async || {
        let errors = balancers.aws_errors();
        assert!(errors.is_empty(), "moto refused: {errors:?}");
        balancers.aws("default", "web").is_some()
    })
    .await;
    let report = twin.finish_run().await.expect("a run was begun");
    assert_eq!(report.scenario.as_deref(), Some("faults"));
    assert!(report.traffic.sent() >= 20);
    assert_eq!(report.traffic.failed(), 0, "{:?}", report.traffic);
    assert!(report.invariants.zero_downtime);
    assert!(report.invariants.budgets_respected);
    assert!(report.invariants.objects_restored, "{:?}", report.changes);
    assert_eq!(report.load_balancers.len(), 1);
    assert_eq!(report.load_balancers[0].service, "default/web");
    assert!(
        report.load_balancers[0].dns_name.is_some(),
        "the NLB exists in moto"
    );
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_creation_fault_ends_the_migration_target_group_create_failed() {
    let twin = start("  - { kind: failNodegroupCreation }\n").await;
    let eks = eks_client(&twin);
    eks.create_nodegroup()
        .cluster_name("faults")
        .nodegroup_name("performant")
        .node_role("arn:aws:iam::123456789012:role/node")
        .subnets(ngm_twin::twin::groups::subnet_id("us-west-2a"))
        .instance_types("m5.xlarge")
        .send()
        .await
        .expect("CreateNodegroup is accepted");
    eventually(30, "performant to be CREATE_FAILED", async || {
        let out = eks
            .describe_nodegroup()
            .cluster_name("faults")
            .nodegroup_name("performant")
            .send()
            .await
            .expect("DescribeNodegroup");
        out.nodegroup().and_then(|g| g.status()).map(|s| s.as_str()) == Some("CREATE_FAILED")
    })
    .await;
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_aws_call_fault_answers_the_named_eks_operation_with_a_server_error() {
    let twin =
        start("  - { kind: fail, api: aws, call: \"eks:ListNodegroups\", times: 1 }\n").await;
    let eks = eks_client(&twin);
    // The SDK retries a 500 once, so one call shows two requests and then succeeds.
    let out = eks
        .list_nodegroups()
        .cluster_name("faults")
        .send()
        .await
        .expect("ListNodegroups succeeds on the retry");
    assert_eq!(out.nodegroups(), ["standard".to_string()]);
    let counted = twin.eks().expect("eks").counters().get("ListNodegroups");
    assert_eq!(counted, 2, "the faulted request and its retry");
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_kill_fires_its_seconds_after_the_run_begins() {
    let mut twin = start("  - { kind: killPod, pod: default/db-0, atSeconds: 30 }\n").await;
    let store = twin.store().clone();
    let uid = |store: &ngm_twin::store::Store| {
        store
            .try_get(Resource::Pod, "default", "db-0")
            .and_then(|p| {
                p.pointer("/metadata/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
    };
    let before = uid(&store).expect("db-0 runs");
    twin.begin_run();
    let start = store.clock().now();
    eventually(30, "db-0 to be killed", async || {
        uid(&store).as_ref() != Some(&before)
    })
    .await;
    let waited = store.clock().seconds_since(start);
    assert!(
        waited >= 29.0,
        "killed after only {waited} simulated seconds"
    );
    eventually(30, "the StatefulSet to bring db-0 back", async || {
        uid(&store).is_some_and(|u| u != before)
    })
    .await;
    twin.shutdown().await.expect("shutdown");
}

#[tokio::test]
async fn a_fault_on_an_aws_service_the_twin_cannot_fail_is_refused_before_anything_starts() {
    let s = scenario("  - { kind: throttle, api: aws, call: \"s3:GetObject\" }\n");
    let err = Twin::start(Some(s), TwinOptions::default())
        .await
        .expect_err("s3 cannot be faulted");
    assert!(matches!(err, TwinError::UnsupportedFault(_)), "{err}");
}
