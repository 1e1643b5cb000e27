//! Jobs run end to end on a store with every controller, a manual clock and bounded polls.
//! Each test names the upstream source of the behaviour it checks.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};

use super::*;
use crate::clock::Clock;
use crate::report::{Recorder, RunParts};
use crate::scenario::{Workload, wait_until, workload_objects};
use crate::sim::nodes::{NodeTemplate, register_node};
use crate::sim::{Sim, SimConfig};
use crate::store::Store;

const DEADLINE: Duration = Duration::from_secs(20);

fn twin() -> (Store, Clock, Sim) {
    let clock = Clock::manual_default();
    let store = Store::new(clock.clone());
    let sim = crate::sim::start(&store, SimConfig::default());
    (store, clock, sim)
}

fn node(store: &Store, zone: &str) -> String {
    let t = NodeTemplate {
        nodegroup: Some("g".into()),
        instance_type: "m5.xlarge".into(),
        zone: zone.into(),
        ..NodeTemplate::default()
    };
    let n = register_node(store, &t).expect("node registers");
    n["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// A Job from scenario YAML (`kind: Job` and `name: batch` are given).
fn job(store: &Store, yaml: &str) -> Workload {
    let w: Workload = serde_yaml::from_str(&format!("kind: Job\nname: batch\n{yaml}"))
        .unwrap_or_else(|e| panic!("workload: {e}"));
    for (r, obj) in workload_objects(&w) {
        store.create(r, &w.namespace, obj).expect("created");
    }
    w
}

/// Returns once the controllers have run a whole pass after this call: a new Job `sentinel`
/// has its pod, and the same pass reconciled every other Job. A check that something did NOT
/// happen after the clock moved is only meaningful after such a pass.
async fn after_a_pass(store: &Store, clock: &Clock) {
    let w: Workload = serde_yaml::from_str("kind: Job\nname: sentinel\nrunSeconds: 3600\n")
        .unwrap_or_else(|e| panic!("workload: {e}"));
    for (r, obj) in workload_objects(&w) {
        store.create(r, &w.namespace, obj).expect("created");
    }
    eventually(clock, 1, "the sentinel Job's pod", || {
        store
            .list_all(Resource::Pod, Some("default"))
            .iter()
            .any(|p| p["metadata"]["labels"][JOB_NAME_LABEL] == "sentinel")
    })
    .await;
}

async fn eventually(clock: &Clock, step_secs: u64, what: &str, cond: impl FnMut() -> bool) {
    let step = Duration::from_secs(step_secs);
    assert!(
        wait_until(clock, DEADLINE, step, cond).await,
        "timed out waiting for: {what}"
    );
}

fn job_pods(store: &Store) -> Vec<Value> {
    store
        .list_all(Resource::Pod, Some("default"))
        .iter()
        .filter(|p| p["metadata"]["labels"][JOB_NAME_LABEL] == "batch")
        .map(|p| (**p).clone())
        .collect()
}

fn in_phase(store: &Store, phase: &str) -> usize {
    job_pods(store)
        .iter()
        .filter(|p| p["status"]["phase"] == phase && p["metadata"]["deletionTimestamp"].is_null())
        .count()
}

fn status(store: &Store, field: &str) -> i64 {
    store
        .try_get(Resource::Job, "default", "batch")
        .and_then(|j| j["status"][field].as_i64())
        .unwrap_or(0)
}

fn has_condition(store: &Store, kind: &str, reason: &str) -> bool {
    store
        .try_get(Resource::Job, "default", "batch")
        .is_some_and(|j| {
            j["status"]["conditions"].as_array().is_some_and(|cs| {
                cs.iter()
                    .any(|c| c["type"] == kind && c["status"] == "True" && c["reason"] == reason)
            })
        })
}

fn running_pod(store: &Store) -> Option<Value> {
    job_pods(store)
        .into_iter()
        .find(|p| p["status"]["phase"] == "Running" && p["metadata"]["deletionTimestamp"].is_null())
}

fn started(pod: &Value) -> DateTime<Utc> {
    pod["status"]["startTime"]
        .as_str()
        .and_then(crate::store::parse_timestamp)
        .unwrap_or_default()
}

fn name_of(pod: &Value) -> String {
    pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// The API server's Job defaults and generated selector (pkg/apis/batch/v1/defaults.go
/// `SetDefaults_Job`; pkg/registry/batch/job/strategy.go `generateSelector`), and the pods
/// the Job controller makes from the template: `<job>-<random>`, the four Job labels, a
/// controller reference to the Job, `restartPolicy: Never` (kubernetes.io "Jobs", "Pod
/// Template": "Only a RestartPolicy equal to Never or OnFailure is allowed").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_is_defaulted_as_the_api_server_does_and_its_pods_carry_the_job_labels() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a");
    job(&store, "replicas: 2\ncompletions: 2\nrunSeconds: 60");
    let j = store
        .try_get(Resource::Job, "default", "batch")
        .expect("created");
    let uid = j["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert_eq!(j["spec"]["backoffLimit"], 6);
    assert_eq!(j["spec"]["completionMode"], "NonIndexed");
    assert_eq!(j["spec"]["suspend"], false);
    assert_eq!(j["spec"]["manualSelector"], false);
    assert_eq!(j["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
    assert_eq!(
        j["spec"]["selector"]["matchLabels"],
        json!({ CONTROLLER_UID_LABEL: uid })
    );
    let labels = &j["spec"]["template"]["metadata"]["labels"];
    assert_eq!(labels[JOB_NAME_LABEL], "batch");
    assert_eq!(labels[LEGACY_JOB_NAME_LABEL], "batch");
    assert_eq!(labels[CONTROLLER_UID_LABEL], uid.as_str());
    assert_eq!(labels[LEGACY_CONTROLLER_UID_LABEL], uid.as_str());
    assert_eq!(labels["app"], "batch");
    assert!(
        j["metadata"]["labels"].get(JOB_NAME_LABEL).is_none(),
        "defaulting copies the user's template labels before the strategy adds its own"
    );

    eventually(&clock, 1, "two running pods", || {
        in_phase(&store, "Running") == 2
    })
    .await;
    for p in job_pods(&store) {
        assert!(name_of(&p).starts_with("batch-"), "{}", name_of(&p));
        assert_eq!(p["spec"]["restartPolicy"], "Never");
        assert_eq!(p["metadata"]["labels"][CONTROLLER_UID_LABEL], uid.as_str());
        assert_eq!(p["metadata"]["labels"][LEGACY_JOB_NAME_LABEL], "batch");
        let owner = &p["metadata"]["ownerReferences"][0];
        assert_eq!(owner["apiVersion"], "batch/v1");
        assert_eq!(owner["kind"], "Job");
        assert_eq!(owner["uid"], uid.as_str());
        assert_eq!(owner["controller"], true);
    }
    sim.stop().await;
}

/// kubernetes.io "Jobs", "Parallel execution for Jobs" (fixed completion count: "the Job
/// is complete when there are `.spec.completions` successful Pods"; "no more than
/// parallelism" run at once) and job_controller.go `manageJob`; a pod that exits 0 under
/// `restartPolicy: Never` is Succeeded (pkg/kubelet/kubelet_pods.go `getPhase`) with its
/// container terminated `Completed`, exit code 0. The Job ends with `SuccessCriteriaMet`
/// then `Complete` (reason `CompletionsReached`, as test/e2e/apps/job.go waits for) and a
/// `completionTime`; only as many pods as completions were made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_that_finish_are_counted_and_replaced_only_while_completions_remain() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a");
    job(&store, "replicas: 2\ncompletions: 3\nrunSeconds: 60");
    eventually(&clock, 1, "two running", || {
        in_phase(&store, "Running") == 2
    })
    .await;
    assert_eq!(status(&store, "active"), 2);
    eventually(&clock, 1, "two succeeded", || {
        status(&store, "succeeded") == 2
    })
    .await;
    let done = job_pods(&store)
        .into_iter()
        .find(|p| p["status"]["phase"] == "Succeeded")
        .expect("a succeeded pod");
    let term = &done["status"]["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 0);
    assert_eq!(term["reason"], "Completed");
    let ready = done["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready").cloned())
        .unwrap_or_default();
    assert_eq!(ready["status"], "False");
    assert_eq!(ready["reason"], "PodCompleted");
    eventually(&clock, 1, "one pod for the last completion", || {
        status(&store, "active") == 1
    })
    .await;
    eventually(&clock, 1, "complete", || {
        has_condition(&store, "Complete", "CompletionsReached")
    })
    .await;
    assert!(has_condition(
        &store,
        "SuccessCriteriaMet",
        "CompletionsReached"
    ));
    assert_eq!(status(&store, "succeeded"), 3);
    assert_eq!(status(&store, "failed"), 0);
    assert_eq!(status(&store, "active"), 0);
    let j = store
        .try_get(Resource::Job, "default", "batch")
        .expect("job");
    assert!(j["status"]["completionTime"].is_string());
    assert!(j["status"]["startTime"].is_string());
    clock.advance(Duration::from_secs(600));
    after_a_pass(&store, &clock).await;
    assert_eq!(job_pods(&store).len(), 3, "no pod beyond the completions");
    assert_eq!(in_phase(&store, "Succeeded"), 3);
    sim.stop().await;
}

/// A finished pod holds nothing on its node: the scheduler's pod informer "returns only
/// non-terminal pods" (pkg/scheduler/scheduler.go `newPodInformer`, field selector
/// `status.phase!=Succeeded,status.phase!=Failed`), so a pod that succeeds leaves its node's
/// NodeInfo. The second pod of a Job that fits once at a time waits, then runs on the node the
/// first one left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_pod_frees_its_requests_for_the_next_one() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a");
    job(
        &store,
        "replicas: 2\ncompletions: 2\nrunSeconds: 30\nrequests: { cpu: '3', memory: 1Gi }",
    );
    eventually(&clock, 1, "one running, one unschedulable", || {
        in_phase(&store, "Running") == 1 && in_phase(&store, "Pending") == 1
    })
    .await;
    eventually(&clock, 1, "both succeeded", || {
        status(&store, "succeeded") == 2
    })
    .await;
    sim.stop().await;
}

/// kubernetes.io "Jobs", "Handling Pod and container failures" ("a Pod can be evicted... the
/// Job controller starts a new Pod"; with `podReplacementPolicy: TerminatingOrFailed` as soon
/// as it is terminating) and job_controller.go `isPodFailed` (a deleted pod counts as failed,
/// once: upstream holds it with the tracking finalizer until counted); the replacement comes
/// after the 10 s pod failure back-off (backoff_utils.go). The report's interrupted pod and
/// lost work are the evicted pod's 40 s of run time; its replacement starts the work over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_pod_counts_failed_once_and_its_replacement_starts_the_work_over() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a");
    job(
        &store,
        "replicas: 1\ncompletions: 1\nrunSeconds: 100\nterminationGracePeriodSeconds: 30",
    );
    eventually(&clock, 1, "running", || running_pod(&store).is_some()).await;
    let recorder = Recorder::start(&store);
    let first = running_pod(&store).expect("running");
    let start = started(&first);
    eventually(&clock, 1, "40 s of work", || {
        clock.now() - start >= TimeDelta::seconds(40)
    })
    .await;
    let evicted_at = clock.now();
    store
        .evict("default", &name_of(&first), &json!({}))
        .expect("no PDB: allowed");
    eventually(&clock, 0, "counted failed", || {
        status(&store, "failed") == 1
    })
    .await;
    assert_eq!(status(&store, "active"), 0, "the evicted pod is not active");
    eventually(&clock, 1, "a replacement", || {
        job_pods(&store)
            .iter()
            .any(|p| name_of(p) != name_of(&first) && p["metadata"]["deletionTimestamp"].is_null())
    })
    .await;
    let replacement = job_pods(&store)
        .into_iter()
        .find(|p| name_of(p) != name_of(&first))
        .expect("replacement");
    let created = replacement["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(crate::store::parse_timestamp)
        .unwrap_or_default();
    assert!(
        created - evicted_at >= TimeDelta::seconds(9),
        "made after the pod failure back-off, {}s after the eviction",
        (created - evicted_at).num_seconds()
    );
    eventually(&clock, 1, "the evicted pod gone", || {
        store
            .try_get(Resource::Pod, "default", &name_of(&first))
            .is_none()
    })
    .await;
    assert_eq!(status(&store, "failed"), 1, "counted once");
    eventually(&clock, 1, "complete", || {
        has_condition(&store, "Complete", "CompletionsReached")
    })
    .await;
    let replacement_start = store
        .try_get(Resource::Pod, "default", &name_of(&replacement))
        .map(|p| started(&p))
        .unwrap_or_default();
    let completed = store
        .try_get(Resource::Job, "default", "batch")
        .and_then(|j| crate::sim::job::completed_at(&j))
        .unwrap_or_default();
    assert!(
        completed - replacement_start >= TimeDelta::seconds(99),
        "the replacement did the whole 100 s again"
    );
    assert_eq!(status(&store, "succeeded"), 1);
    assert_eq!(status(&store, "failed"), 1);

    let report = recorder.finish(RunParts::default()).await;
    let summary = report.jobs.first().expect("the Job is reported");
    assert_eq!(
        (summary.namespace.as_str(), summary.name.as_str()),
        ("default", "batch")
    );
    assert_eq!(summary.completions, 1);
    assert_eq!(summary.succeeded, 1);
    assert_eq!(summary.failed, 1);
    assert_eq!(summary.pods_interrupted, 1);
    assert!(
        (39.0..=42.0).contains(&summary.lost_work_seconds),
        "{}",
        summary.lost_work_seconds
    );
    assert!(summary.completed);
    assert_eq!(summary.completed_at, Some(completed));
    assert!(
        report.invariants.objects_restored,
        "the Job's status and finished pods are not desired state: {:?}",
        report.changes
    );
    let json = serde_json::to_value(&report).expect("serializes");
    assert_eq!(json["jobs"][0]["podsInterrupted"], 1);
    assert!(json["jobs"][0]["lostWorkSeconds"].is_number());
    assert!(json["jobs"][0]["completedAt"].is_string());
    sim.stop().await;
}

/// kubernetes.io "Jobs", "Pod backoff failure policy" and job_controller.go `syncJob`: once
/// `failed > backoffLimit` the Job gets `FailureTarget`, then `Failed`, reason
/// `BackoffLimitExceeded` (`newFailureCondition`, `delayTerminalCondition`), and `manageJob`
/// makes no pod any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_backoff_limit_a_job_fails_and_makes_no_more_pods() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a");
    job(
        &store,
        "replicas: 1\ncompletions: 1\nrunSeconds: 1000\nbackoffLimit: 1\nterminationGracePeriodSeconds: 5",
    );
    for failures in 1..=2 {
        eventually(&clock, 1, "a running pod", || running_pod(&store).is_some()).await;
        let pod = running_pod(&store).expect("running");
        store
            .delete(
                Resource::Pod,
                "default",
                &name_of(&pod),
                &DeleteOptions::default(),
            )
            .expect("deleted");
        eventually(&clock, 0, "counted", || {
            status(&store, "failed") == failures
        })
        .await;
    }
    eventually(&clock, 1, "failed", || {
        has_condition(&store, "Failed", "BackoffLimitExceeded")
    })
    .await;
    assert!(has_condition(
        &store,
        "FailureTarget",
        "BackoffLimitExceeded"
    ));
    assert!(!has_condition(&store, "Complete", "CompletionsReached"));
    clock.advance(Duration::from_secs(3600));
    eventually(&clock, 1, "the deleted pods gone", || {
        job_pods(&store).is_empty()
    })
    .await;
    after_a_pass(&store, &clock).await;
    assert_eq!(job_pods(&store).len(), 0, "no new pod after the failure");
    assert_eq!(status(&store, "active"), 0);
    assert_eq!(status(&store, "failed"), 2);
    sim.stop().await;
}

/// The replacement is an ordinary pod the scheduler places: the NodeUnschedulable and
/// TaintToleration filters (pkg/scheduler/framework/plugins) keep it off a cordoned node
/// with ngm's NoSchedule taint. A Node deleted under a running pod takes the pod with it and
/// the Job counts it failed (`isPodFailed`); the report counts it interrupted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_avoids_a_cordoned_tainted_node_and_a_lost_node_counts_its_pod() {
    let (store, clock, sim) = twin();
    let a = node(&store, "us-west-2a");
    let b = node(&store, "us-west-2b");
    job(&store, "replicas: 1\ncompletions: 1\nrunSeconds: 1000");
    eventually(&clock, 1, "running", || running_pod(&store).is_some()).await;
    let recorder = Recorder::start(&store);
    let first = running_pod(&store).expect("running");
    let old = first["spec"]["nodeName"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let other = if old == a { b.clone() } else { a.clone() };
    store
        .mutate(Resource::Node, "", &old, |v| {
            v["spec"]["unschedulable"] = json!(true);
            v["spec"]["taints"] =
                json!([{ "key": "ngm.io/migrating", "value": "x", "effect": "NoSchedule" }]);
            Ok(())
        })
        .expect("cordon");
    store
        .evict("default", &name_of(&first), &json!({}))
        .expect("allowed");
    eventually(&clock, 1, "a replacement running", || {
        running_pod(&store).is_some_and(|p| name_of(&p) != name_of(&first))
    })
    .await;
    let second = running_pod(&store).expect("running");
    assert_eq!(second["spec"]["nodeName"], other.as_str());
    clock.advance(Duration::from_secs(30));
    store
        .delete(Resource::Node, "", &other, &DeleteOptions::default())
        .expect("node deleted");
    eventually(&clock, 0, "the lost pod counted", || {
        status(&store, "failed") == 2
    })
    .await;
    let report = recorder.finish(RunParts::default()).await;
    let summary = &report.jobs[0];
    assert_eq!(summary.pods_interrupted, 2);
    assert_eq!(summary.failed, 2);
    assert!(!summary.completed);
    assert!(summary.completed_at.is_none());
    sim.stop().await;
}

/// A pod lost with its instance is only gone for the API once the node lifecycle controller
/// and the pod garbage collector let it go (`super::nodelifecycle`); then the Job counts it
/// failed (`isPodFailed`) and replaces it. Its work stopped when the instance terminated,
/// which is what the report counts as lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_lost_with_its_instance_counts_failed_and_its_work_lost_up_to_the_termination() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a");
    node(&store, "us-west-2b");
    job(&store, "replicas: 1\ncompletions: 1\nrunSeconds: 1000");
    eventually(&clock, 1, "running", || running_pod(&store).is_some()).await;
    let recorder = Recorder::start(&store);
    let first = running_pod(&store).expect("running");
    let start = started(&first);
    eventually(&clock, 1, "30 s of work", || {
        clock.now() - start >= TimeDelta::seconds(30)
    })
    .await;
    let host = first["spec"]["nodeName"].as_str().unwrap_or_default();
    crate::sim::nodes::terminate_instance(&store, host);
    eventually(
        &clock,
        1,
        "counted failed once the pod is collected",
        || status(&store, "failed") == 1,
    )
    .await;
    assert!(
        clock.now() - start >= TimeDelta::seconds(30 + 90),
        "the API let go of the pod only after the grace periods"
    );
    eventually(&clock, 1, "a replacement running", || {
        running_pod(&store).is_some_and(|p| name_of(&p) != name_of(&first))
    })
    .await;
    let report = recorder.finish(RunParts::default()).await;
    let summary = &report.jobs[0];
    assert_eq!(summary.pods_interrupted, 1);
    assert!(
        (29.0..=32.0).contains(&summary.lost_work_seconds),
        "{}",
        summary.lost_work_seconds
    );
    sim.stop().await;
}

/// kubernetes.io "Jobs", "Suspending a Job" and job_controller.go `manageJob`: a suspended
/// Job deletes its active pods through `deleteJobPods`, which removes the tracking finalizer
/// first, so they count neither as failed nor as succeeded; the `Suspended` condition is True
/// (`JobSuspended`). Resumed, it makes pods again, sets `Suspended` False (`JobResumed`) and
/// restarts `startTime` ("Resumed jobs will always reset StartTime").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_suspended_job_deletes_its_pods_without_counting_them_and_resumes() {
    let (store, clock, sim) = twin();
    node(&store, "us-west-2a");
    job(&store, "replicas: 2\ncompletions: 4\nrunSeconds: 1000");
    eventually(&clock, 1, "two running", || {
        in_phase(&store, "Running") == 2
    })
    .await;
    let suspend = |on: bool| {
        store
            .mutate(Resource::Job, "default", "batch", |v| {
                v["spec"]["suspend"] = json!(on);
                Ok(())
            })
            .expect("patched");
    };
    suspend(true);
    eventually(&clock, 1, "suspended with no pod", || {
        has_condition(&store, "Suspended", "JobSuspended") && job_pods(&store).is_empty()
    })
    .await;
    assert_eq!(
        status(&store, "failed"),
        0,
        "deleted by the Job, not failed"
    );
    assert_eq!(status(&store, "active"), 0);
    clock.advance(Duration::from_secs(120));
    let resumed_at = clock.now();
    suspend(false);
    eventually(&clock, 1, "two running again", || {
        in_phase(&store, "Running") == 2
    })
    .await;
    let j = store
        .try_get(Resource::Job, "default", "batch")
        .expect("job");
    let cond = j["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Suspended").cloned())
        .unwrap_or_default();
    assert_eq!(cond["status"], "False");
    assert_eq!(cond["reason"], "JobResumed");
    let start = j["status"]["startTime"]
        .as_str()
        .and_then(crate::store::parse_timestamp)
        .unwrap_or_default();
    assert!(
        start >= resumed_at - TimeDelta::seconds(1),
        "startTime restarts"
    );
    sim.stop().await;
}
