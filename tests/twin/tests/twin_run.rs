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

/// An EKS client as a function of the local runner has it: app id `ngm-local-<function>`
/// (`AWS_SDK_UA_APP_ID`), and no SDK retries, so every answer is seen.
fn eks_as(twin: &Twin, function: &str) -> aws_sdk_eks::Client {
    aws_sdk_eks::Client::from_conf(
        aws_sdk_eks::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-west-2"))
            .credentials_provider(Credentials::new("test", "test", None, None, "test"))
            .endpoint_url(twin.url())
            .app_name(
                aws_sdk_eks::config::AppName::new(format!("ngm-local-{function}")).expect("app"),
            )
            .retry_config(aws_sdk_eks::config::retry::RetryConfig::disabled())
            .build(),
    )
}

fn asg_as(twin: &Twin, function: &str) -> aws_sdk_autoscaling::Client {
    use aws_sdk_autoscaling::config;
    aws_sdk_autoscaling::Client::from_conf(
        config::Builder::new()
            .behavior_version(config::BehaviorVersion::latest())
            .region(config::Region::new("us-west-2"))
            .credentials_provider(config::Credentials::new("test", "test", None, None, "t"))
            .endpoint_url(twin.moto_url().expect("moto"))
            .app_name(config::AppName::new(format!("ngm-local-{function}")).expect("app"))
            .retry_config(config::retry::RetryConfig::disabled())
            .build(),
    )
}

fn dynamodb_as(twin: &Twin, function: &str) -> aws_sdk_dynamodb::Client {
    use aws_sdk_dynamodb::config;
    aws_sdk_dynamodb::Client::from_conf(
        config::Builder::new()
            .behavior_version(config::BehaviorVersion::latest())
            .region(config::Region::new("us-west-2"))
            .credentials_provider(config::Credentials::new("test", "test", None, None, "t"))
            .endpoint_url(twin.moto_url().expect("moto"))
            .app_name(config::AppName::new(format!("ngm-local-{function}")).expect("app"))
            .retry_config(config::retry::RetryConfig::disabled())
            .build(),
    )
}

/// The error code an SDK error carries (`ThrottlingException`, `Throttling`...).
fn code<E: aws_sdk_eks::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_eks::error::SdkError<E, R>,
) -> Option<String> {
    e.as_service_error()
        .and_then(|s| s.code())
        .map(str::to_string)
}

/// C5/C6: `after` and `function` on an EKS fault: the first matching call of that function
/// passes, the next fails (503 ServiceUnavailableException, as EKS names it in its API
/// reference's common errors), other functions' calls never do. The report counts every
/// call by caller (the AWS SDK app id) and the injected answer apart, naming the fault.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_eks_fault_with_after_and_function_hits_only_that_functions_later_calls() {
    let mut twin = start(
        "  - { kind: fail, api: aws, call: \"eks:ListNodegroups\", code: 503, after: 1, times: 1, function: check-surge }\n",
    )
    .await;
    twin.begin_run();
    let surge = eks_as(&twin, "check-surge");
    let retire = eks_as(&twin, "retire");
    let list =
        async |c: &aws_sdk_eks::Client| c.list_nodegroups().cluster_name("faults").send().await;
    assert!(
        list(&surge).await.is_ok(),
        "after: 1 lets the first through"
    );
    assert!(list(&retire).await.is_ok());
    let err = list(&surge)
        .await
        .expect_err("the second call of check-surge fails");
    assert_eq!(code(&err).as_deref(), Some("ServiceUnavailableException"));
    assert!(list(&retire).await.is_ok(), "another function is never hit");
    assert!(list(&surge).await.is_ok(), "times: 1");
    let report = twin.finish_run().await.expect("report");
    let r = &report.requests;
    assert_eq!(
        r.by_caller["app/ngm-local-check-surge"]["eks:ListNodegroups"],
        3
    );
    assert_eq!(r.by_caller["app/ngm-local-retire"]["eks:ListNodegroups"], 2);
    assert_eq!(r.injected.total, 1);
    let a = &r.injected.answers[0];
    assert_eq!(
        (
            a.fault.as_str(),
            a.api.as_str(),
            a.call.as_str(),
            a.caller.as_str(),
            a.code
        ),
        (
            "faults[0] fail",
            "aws",
            "eks:ListNodegroups",
            "app/ngm-local-check-surge",
            503
        )
    );
    let json: Value = serde_json::from_str(&report.to_json()).expect("json");
    assert_eq!(json["requests"]["injected"]["total"], 1);
    assert!(json["requests"]["byCaller"]["app/ngm-local-retire"].is_object());
    twin.shutdown().await.expect("shutdown");
}

/// C6: the moto wrapper fails ngm's calls of another AWS service with that service's own
/// error: Auto Scaling (awsQuery) throttles with HTTP 400 `Throttling` ("Rate exceeded"),
/// DynamoDB (awsJson1_0) with 400 `ThrottlingException` or, on request,
/// `ProvisionedThroughputExceededException` (AWS "Common Errors" and the DynamoDB
/// "Error handling" pages). The twin's own calls to moto (its EKS reconciler lists the
/// same Auto Scaling groups all the time) are never failed, and moto's counts and injected
/// answers reach the twin's report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moto_call_fault_fails_ngms_calls_with_the_services_own_error() {
    let mut twin = start(
        "  - { kind: throttle, api: aws, call: \"autoscaling:DescribeAutoScalingGroups\", after: 1, times: 2, function: check-surge }\n",
    )
    .await;
    twin.begin_run();
    let moto = twin.moto_url().expect("moto").to_string();
    let rule = serde_json::json!({
        "service": "dynamodb", "operation": "GetItem", "code": 429,
        "error": "ProvisionedThroughputExceededException", "times": 1, "label": "by hand",
    });
    let (status, body) = ngm_twin::twin::moto::request(&moto, "POST", "/ngm/faults", Some(&rule))
        .await
        .expect("moto answers");
    assert_eq!(status, 200, "{body}");
    let bad = serde_json::json!({ "service": "s3", "operation": "GetObject", "code": 429 });
    let (status, _) = ngm_twin::twin::moto::request(&moto, "POST", "/ngm/faults", Some(&bad))
        .await
        .expect("moto answers");
    assert_eq!(status, 400, "an unknown service is refused");

    let asg = asg_as(&twin, "check-surge");
    let describe = async || asg.describe_auto_scaling_groups().send().await;
    assert!(describe().await.is_ok(), "after: 1");
    for _ in 0..2 {
        let err = describe().await.expect_err("throttled");
        let code = err.as_service_error().and_then(|e| {
            aws_sdk_autoscaling::error::ProvideErrorMetadata::code(e).map(str::to_string)
        });
        assert_eq!(code.as_deref(), Some("Throttling"));
        assert_eq!(err.raw_response().map(|r| r.status().as_u16()), Some(400));
    }
    assert!(describe().await.is_ok(), "times: 2");
    // The twin's nodes still follow their Auto Scaling groups: its own calls pass.
    assert_eq!(twin.ready_nodes("standard").len(), 2);

    let ddb = dynamodb_as(&twin, "cleanup");
    let err = ddb
        .get_item()
        .table_name("ngm-locks")
        .key(
            "cluster",
            aws_sdk_dynamodb::types::AttributeValue::S("faults".into()),
        )
        .send()
        .await
        .expect_err("faulted");
    let code = err
        .as_service_error()
        .and_then(|e| aws_sdk_dynamodb::error::ProvideErrorMetadata::code(e).map(str::to_string));
    assert_eq!(
        code.as_deref(),
        Some("ProvisionedThroughputExceededException")
    );

    let report = twin.finish_run().await.expect("report");
    let r = &report.requests;
    assert_eq!(r.aws["autoscaling:DescribeAutoScalingGroups"], 4);
    assert_eq!(
        r.by_caller["app/ngm-local-check-surge"]["autoscaling:DescribeAutoScalingGroups"],
        4
    );
    let injected: Vec<(String, String, u16, u64)> = r
        .injected
        .answers
        .iter()
        .map(|a| (a.fault.clone(), a.call.clone(), a.code, a.count))
        .collect();
    assert_eq!(
        injected,
        [
            (
                "by hand".to_string(),
                "dynamodb:GetItem".to_string(),
                400,
                1
            ),
            (
                "faults[0] throttle".to_string(),
                "autoscaling:DescribeAutoScalingGroups".to_string(),
                400,
                2
            ),
        ]
    );
    twin.shutdown().await.expect("shutdown");
}

/// C7: a panic in any twin task ends the run at once: `Twin::fatal` resolves with
/// `TaskPanicked`, naming the task and the panic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_twin_task_makes_fatal_resolve_with_its_name_and_message() {
    let twin = Twin::start(None, TwinOptions::default())
        .await
        .expect("an empty twin");
    assert!(
        futures::FutureExt::now_or_never(twin.fatal()).is_none(),
        "nothing panicked yet"
    );
    let _task = twin.store().supervisor().spawn("victim order", async {
        panic!("user-provided comparison function does not correctly implement a total order")
    });
    match twin.fatal().await {
        TwinError::TaskPanicked { task, message } => {
            assert_eq!(task, "victim order");
            assert!(message.contains("total order"), "{message}");
        }
        other => panic!("expected TaskPanicked, got {other}"),
    }
    twin.shutdown().await.expect("shutdown");
}

/// `${subnet:<zone>}` in the migration request is the twin's subnet in that zone, the one
/// EKS's DescribeCluster lists; an unknown zone fails the scenario before anything starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnet_placeholders_in_the_migration_request_resolve_to_the_twins_subnets() {
    let yaml = BASE.replace(
        "target: { name: performant, instanceTypes: [m5.xlarge] }",
        "target: { name: performant, instanceTypes: [m5.xlarge], subnets: [\"${subnet:us-west-2b}\"] }",
    );
    let twin = Twin::start(
        Some(Scenario::parse(&yaml).expect("scenario")),
        TwinOptions::default(),
    )
    .await
    .expect("boots");
    let request = twin
        .migration_request()
        .expect("resolves")
        .expect("a request");
    let subnet = request["target"]["subnets"][0].as_str().unwrap_or_default();
    let eks = twin.eks().expect("eks");
    assert_eq!(subnet, eks.config().subnet_in("us-west-2b"));
    assert!(subnet.starts_with("subnet-"), "{subnet}");
    let cluster = eks_client(&twin)
        .describe_cluster()
        .name("faults")
        .send()
        .await
        .expect("describe");
    let vpc_subnets = cluster
        .cluster()
        .and_then(|c| c.resources_vpc_config())
        .map(|v| v.subnet_ids().to_vec())
        .unwrap_or_default();
    assert!(vpc_subnets.iter().any(|s| s == subnet), "{vpc_subnets:?}");
    twin.shutdown().await.expect("shutdown");

    let unknown = BASE.replace(
        "target: { name: performant, instanceTypes: [m5.xlarge] }",
        "target: { name: performant, instanceTypes: [m5.xlarge], subnets: [\"${subnet:eu-west-1a}\"] }",
    );
    let err = Twin::start(
        Some(Scenario::parse(&unknown).expect("scenario")),
        TwinOptions::default(),
    )
    .await
    .expect_err("unknown zone");
    assert!(
        matches!(&err, TwinError::Request(m) if m.contains("eu-west-1a")),
        "{err}"
    );
}

/// A `deleteNamespace` fault fires `at` seconds after the run begins; the report lists the
/// namespace, keeps its removed objects in `changes`, and leaves them out of I3/I4
/// (`objectsRestored`): the fault removed them, not ngm.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_namespace_deleted_by_a_fault_is_reported_and_left_out_of_the_restore_check() {
    let yaml = format!(
        "{}faults:\n  - {{ kind: deleteNamespace, namespace: team, at: 10 }}\n",
        BASE.replace(
            "workloads:\n",
            "workloads:\n  - { kind: Deployment, name: api, namespace: team, replicas: 1, startupSeconds: 5, terminationGracePeriodSeconds: 5 }\n",
        )
    );
    let mut twin = Twin::start(
        Some(Scenario::parse(&yaml).expect("scenario")),
        TwinOptions::default(),
    )
    .await
    .expect("boots");
    let store = twin.store().clone();
    twin.begin_run();
    assert!(store.try_get(Resource::Namespace, "", "team").is_some());
    eventually(60, "the namespace to go", async || {
        store.try_get(Resource::Namespace, "", "team").is_none()
    })
    .await;
    let report = twin.finish_run().await.expect("report");
    assert_eq!(report.namespaces_deleted_by_faults, ["team".to_string()]);
    assert!(
        report
            .changes
            .removed
            .iter()
            .any(|r| r.kind == "Deployment" && r.namespace == "team" && r.name == "api"),
        "{:?}",
        report.changes.removed
    );
    assert!(report.invariants.objects_restored, "{}", report.summary());
    twin.shutdown().await.expect("shutdown");
}

/// A `badRollout` deploys an image that crashes at every start. The Deployment controller
/// rolls it out within maxSurge/maxUnavailable (2 replicas: surge 1, unavailable 0, kubernetes
/// `pkg/controller/deployment/util/deployment_util.go` `ResolveFenceposts`), so the new
/// ReplicaSet's one pod crash-loops, the old ReplicaSet keeps both Ready pods, and the rollout
/// never completes (kubernetes.io Deployments, "Failed Deployment"). The report leaves the
/// template change out of I3/I4 (`objectsRestored`) but keeps it in `changes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_rollout_stalls_with_a_crash_looping_surplus_pod_and_is_left_out_of_the_restore_check()
 {
    let mut twin = start("  - { kind: badRollout, workload: default/web, at: 5 }\n").await;
    let store = twin.store().clone();
    twin.begin_run();
    let web_pods = |store: &ngm_twin::store::Store| -> Vec<(String, bool, bool)> {
        store
            .list_all(Resource::Pod, Some("default"))
            .iter()
            .filter(|p| {
                p.pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_some_and(|n| n.starts_with("web-"))
                    && p.pointer("/metadata/deletionTimestamp").is_none()
            })
            .map(|p| {
                let image = p
                    .pointer("/spec/containers/0/image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let ready = p
                    .pointer("/status/conditions")
                    .and_then(Value::as_array)
                    .is_some_and(|c| {
                        c.iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    });
                let crashing = p
                    .pointer("/status/containerStatuses/0/state/waiting/reason")
                    .and_then(Value::as_str)
                    == Some("CrashLoopBackOff");
                (image, ready, crashing)
            })
            .collect()
    };
    let stalled = |pods: &[(String, bool, bool)]| {
        pods.len() == 3
            && pods
                .iter()
                .filter(|(i, ready, _)| !i.ends_with(":broken") && *ready)
                .count()
                == 2
            && pods
                .iter()
                .any(|(i, ready, crashing)| i.ends_with(":broken") && !ready && *crashing)
    };
    eventually(60, "the rollout to stall", async || {
        stalled(&web_pods(&store))
    })
    .await;
    // Ten simulated minutes later (600 s: the default progressDeadlineSeconds) it is still
    // stuck: the crash-looping pod never turns Ready, so the old pods stay.
    store.clock().sleep(Duration::from_secs(600)).await;
    let pods = web_pods(&store);
    assert!(stalled(&pods), "{pods:?}");
    let report = twin.finish_run().await.expect("report");
    assert_eq!(
        report.templates_changed_by_faults,
        ["default/web".to_string()]
    );
    assert!(
        report
            .changes
            .changed
            .iter()
            .any(|c| c.object.name == "web" && c.path.starts_with("/spec/template")),
        "{:?}",
        report.changes.changed
    );
    assert!(report.invariants.objects_restored, "{}", report.summary());
    twin.shutdown().await.expect("shutdown");
}
