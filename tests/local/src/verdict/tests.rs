//! Each verdict rule, shown able to fail.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{TimeZone, Utc};
use ngm_twin::lb::{ConnectionStats, FailureSample, ProbeStats, ServiceTraffic};
use ngm_twin::report::{DrainCounts, EvictionCounts, Invariants, Requests};
use ngm_twin::sim::record::{FieldChange, ObjectRef, SnapshotDiff};
use serde_json::json;

use super::*;
use crate::aws_world::GroupState;
use crate::world::PodPlace;

fn scenario(extra: Value) -> Scenario {
    let mut base = json!({
        "name": "t",
        "cluster": {"name": "c", "nodeGroups": [
            {"name": "old", "instanceTypes": ["m5.large"], "zones": ["us-west-2a"], "amiRelease": "1.33.0-1", "desiredSize": 1}
        ]},
        "migration": {"cluster": {"name": "c"}, "source": {"managedNodeGroup": "old"}, "target": {"name": "new"}},
    });
    if let (Value::Object(b), Value::Object(e)) = (&mut base, extra) {
        b.extend(e);
    }
    serde_json::from_value(base).unwrap_or_else(|e| panic!("{e}"))
}

fn report() -> Report {
    let t = Utc
        .timestamp_opt(1_700_000_000, 0)
        .single()
        .unwrap_or_default();
    Report {
        scenario: Some("t".into()),
        started_at: t,
        finished_at: t,
        invariants: Invariants {
            zero_downtime: true,
            budgets_respected: true,
            objects_restored: true,
        },
        traffic: ProbeStats::default(),
        load_balancers: Vec::new(),
        evictions: EvictionCounts::default(),
        eks_drains: DrainCounts::default(),
        budget_violations: Vec::new(),
        budget_dips: Vec::new(),
        changes: SnapshotDiff::default(),
        namespaces_deleted_by_faults: Vec::new(),
        templates_changed_by_faults: Vec::new(),
        replicas_left_to_hpas: Vec::new(),
        controller_lag_seconds: 0.0,
        cluster_autoscaler: Default::default(),
        node_groups: Vec::new(),
        jobs: Vec::new(),
        critical_path: Default::default(),
        pods_lost_with_nodes: 0,
        cluster_objects: 0,
        requests: Requests::default(),
    }
}

fn place(group: &str, workload: &str) -> PodPlace {
    PodPlace {
        group: group.into(),
        workload: workload.into(),
    }
}

fn world_before() -> WorldState {
    WorldState {
        source_nodes: vec!["old-1".into()],
        source_group_exists: true,
        groups: BTreeSet::from(["old".into()]),
        pods: BTreeMap::from([("a/web-1".into(), place("old", "Deployment a/web"))]),
        marks_left: Vec::new(),
    }
}

fn world_migrated() -> WorldState {
    WorldState {
        source_nodes: Vec::new(),
        source_group_exists: false,
        groups: BTreeSet::from(["new".into()]),
        pods: BTreeMap::from([("a/web-2".into(), place("new", "Deployment a/web"))]),
        marks_left: Vec::new(),
    }
}

fn aws_before() -> AwsWorld {
    let mut w = AwsWorld::default();
    w.groups.insert("asg-old".into(), GroupState::default());
    w.nodegroups.insert(
        "old".into(),
        crate::aws_world::NodegroupState {
            status: "ACTIVE".into(),
            asg: "asg-old".into(),
            ..Default::default()
        },
    );
    w
}

fn aws_migrated() -> AwsWorld {
    let mut w = AwsWorld::default();
    w.groups.insert("asg-new".into(), GroupState::default());
    w
}

fn entered(state: &str) -> StateEvent {
    StateEvent {
        kind: "StateEntered".into(),
        at: 0,
        state: Some(state.into()),
        state_type: None,
        error: None,
        cause: None,
        attempt: None,
        preflight: None,
    }
}

fn exited(state: &str) -> StateEvent {
    StateEvent {
        kind: "StateExited".into(),
        ..entered(state)
    }
}

struct Case {
    scenario: Scenario,
    expectation: Option<Expectation>,
    status: &'static str,
    report: Report,
    world: WorldState,
    aws: Result<(AwsWorld, AwsWorld), String>,
    events: Vec<StateEvent>,
    functions: BTreeMap<String, FunctionStats>,
    slow: Vec<SlowInvocation>,
    cleanup: Option<CleanupRun>,
    output: Option<Value>,
}

impl Case {
    fn success() -> Self {
        Case {
            scenario: scenario(json!({})),
            expectation: None,
            status: "SUCCEEDED",
            report: report(),
            world: world_migrated(),
            aws: Ok((aws_before(), aws_migrated())),
            events: vec![entered("Restore"), exited("Restore"), entered("Migrated")],
            functions: BTreeMap::new(),
            slow: Vec::new(),
            cleanup: None,
            output: None,
        }
    }

    fn rolled_back() -> Self {
        Case {
            status: "FAILED",
            world: world_before(),
            aws: Ok((aws_before(), aws_before())),
            events: vec![
                entered("Rollback"),
                exited("Rollback"),
                entered("MigrationRolledBack"),
            ],
            ..Case::success()
        }
    }

    fn expect(mut self, v: Value) -> Self {
        self.expectation =
            Some(Expectation::parse(&v, &["retire"]).unwrap_or_else(|e| panic!("{e}")));
        self
    }

    fn verdict(self) -> Verdict {
        Verdict::compile(Inputs {
            scenario: &self.scenario,
            expectation: self.expectation.as_ref(),
            status: self.status.into(),
            output: self.output,
            error: (self.status != "SUCCEEDED").then(|| "RetireStalled".to_string()),
            cause: None,
            report: &self.report,
            world_before: world_before(),
            world: self.world,
            aws: self.aws,
            functions: self.functions,
            slow: self.slow,
            aws_requests: BTreeMap::new(),
            granted: &NOTHING_GRANTED,
            idempotence: Vec::new(),
            operator_answers: Vec::new(),
            events: &self.events,
            cleanup: self.cleanup,
            wall: Duration::from_secs(1),
            simulated: Duration::from_secs(60),
            executions: Vec::new(),
        })
    }
}

/// No function has a role: a case whose functions made no AWS call needs none.
static NOTHING_GRANTED: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();

// IAM: a call the function's role does not allow would be refused in AWS (AccessDenied), so
// the verdict names it, by function and call; Kubernetes calls and other callers are not IAM's.
#[test]
fn an_aws_call_its_role_does_not_grant_breaks_the_run() {
    let granted = BTreeMap::from([(
        "retire".to_string(),
        BTreeSet::from(["eks:DescribeCluster".to_string()]),
    )]);
    let by_caller = BTreeMap::from([
        (
            "app/ngm-local-retire".to_string(),
            BTreeMap::from([
                ("eks:DescribeCluster".to_string(), 3),
                ("elasticloadbalancing:DescribeTargetHealth".to_string(), 1),
            ]),
        ),
        (
            "ngm/retire".to_string(),
            BTreeMap::from([("create pods/eviction".to_string(), 2)]),
        ),
        (
            "app/ngm-local-rollback".to_string(),
            BTreeMap::from([("eks:DescribeCluster".to_string(), 1)]),
        ),
    ]);
    let mut c = Case::success();
    c.report.requests.by_caller = by_caller;
    let v = Verdict::compile(Inputs {
        granted: &granted,
        ..inputs(&c)
    });
    assert_eq!(
        broken(&v, "IAM"),
        [
            "retire: elasticloadbalancing:DescribeTargetHealth is not granted by its role",
            "rollback: no role in infra/template.yaml",
        ]
    );
}

// The twin's controller lag is a figure: a scenario whose truth depends on the controllers'
// timing bounds it, and a run past the bound fails.
#[test]
fn a_twin_that_fell_behind_a_scenarios_bound_fails_it() {
    let case = |lag: f64| {
        let mut c = Case::success().expect(json!({
            "outcome": "success",
            "figures": { "controllerLagSeconds": { "max": 15 } }
        }));
        c.report.controller_lag_seconds = lag;
        c.verdict()
    };
    assert!(!case(40.0).passed());
    assert!(
        case(40.0).summary().contains("controllerLagSeconds"),
        "{}",
        case(40.0).summary()
    );
    assert!(case(2.0).passed());
}

fn broken(v: &Verdict, invariant: &str) -> Vec<String> {
    match v.invariants.iter().find(|(k, _)| k.starts_with(invariant)) {
        Some((_, Check::Broken(p))) => p.clone(),
        _ => Vec::new(),
    }
}

#[test]
fn a_clean_success_passes_and_says_what_was_restored() {
    let v = Case::success()
        .expect(json!({"outcome": "success"}))
        .verdict();
    assert!(v.passed(), "{}", v.summary());
    assert!(v.summary().contains("restored:"), "{}", v.summary());
    assert!(v.summary().contains("lock released"), "{}", v.summary());
}

#[test]
fn figures_that_differ_fail_the_run() {
    let v = Case::success()
        .expect(json!({"outcome": "success", "figures": {"failedRequests": 999}}))
        .verdict();
    assert!(!v.passed());
    assert_eq!(
        v.expectation,
        vec!["figure failedRequests: expected 999, got 0"]
    );
}

/// Only calls that change something count as writes: reads of the lock and of the groups
/// do not, a refused conditional put does (it was attempted).
#[test]
fn writes_count_every_call_but_reads() {
    let mut c = Case::success();
    c.report.requests.eks = BTreeMap::from([
        ("DescribeNodegroup".into(), 3),
        ("ListNodegroups".into(), 1),
        ("CreateNodegroup".into(), 1),
    ]);
    c.report.requests.eks_total = 5;
    let v = c
        .expect(json!({"outcome": "success", "figures": {"eksWrites": 0}}))
        .verdict();
    assert_eq!(v.figures.named()["eksWrites"], 1.0);
    assert_eq!(v.figures.named()["awsWrites"], 1.0);
    assert_eq!(v.expectation, vec!["figure eksWrites: expected 0, got 1"]);
    assert!(reads_only("dynamodb:GetItem") && reads_only("states:DescribeExecution"));
    assert!(!reads_only("dynamodb:PutItem") && !reads_only("autoscaling:SuspendProcesses"));
}

#[test]
fn an_outcome_outside_the_alternatives_fails_and_one_inside_passes() {
    let v = Case::rolled_back()
        .expect(json!({"outcome": ["success", "rolledBack"]}))
        .verdict();
    assert!(v.passed(), "{}", v.summary());
    let v = Case::rolled_back()
        .expect(json!({"outcome": "success"}))
        .verdict();
    assert!(!v.passed());
}

#[test]
fn a_lock_left_behind_is_reported_and_nothing_is_called_restored() {
    let mut c = Case::rolled_back();
    let mut after = aws_before();
    after.locks.insert(
        "arn:c".into(),
        BTreeMap::from([("holder".into(), "exec".into())]),
    );
    c.aws = Ok((aws_before(), after));
    let v = c.verdict();
    assert!(!v.passed());
    assert!(v.restored.is_empty(), "{:?}", v.restored);
    let s = v.summary();
    assert!(
        !s.contains("lock released") && !s.contains("restored:"),
        "{s}"
    );
    assert!(
        s.contains("NOT restored") && s.contains("lock arn:c still held"),
        "{s}"
    );
}

#[test]
fn after_rollback_failed_the_summary_lists_what_is_left() {
    let mut c = Case::rolled_back();
    c.events = vec![entered("Rollback"), entered("RollbackFailed")];
    c.report.changes.changed.push(FieldChange {
        object: ObjectRef {
            kind: "Deployment".into(),
            namespace: "a".into(),
            name: "web".into(),
        },
        path: "/spec/replicas".into(),
        before: Some(json!(2)),
        after: Some(json!(4)),
    });
    c.world
        .marks_left
        .push("node old-1: taint ngm.io/migrating".into());
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Failed);
    assert!(v.restored.is_empty());
    assert_eq!(v.left.len(), 2, "{:?}", v.left);
    assert!(v.summary().contains("ngm.io/migrating"), "{}", v.summary());
}

#[test]
fn the_aws_side_is_part_of_i3() {
    let mut c = Case::success();
    let mut after = aws_migrated();
    after.groups.insert("asg-old".into(), GroupState::default());
    c.aws = Ok((aws_before(), after));
    let p = broken(&c.verdict(), "I3");
    assert!(
        p.iter().any(|x| x.contains("old Auto Scaling group")),
        "{p:?}"
    );
    let mut c = Case::success();
    c.aws = Err("moto is down".into());
    assert!(broken(&c.verdict(), "I3")[0].contains("could not be read"));
}

#[test]
fn a_second_untouched_group_does_not_break_i3() {
    let mut c = Case::success();
    c.world.groups.insert("other".into());
    c.world
        .pods
        .insert("b/batch-1".into(), place("other", "Deployment b/batch"));
    let v = Verdict::compile(Inputs {
        world_before: {
            let mut w = world_before();
            w.groups.insert("other".into());
            w.pods
                .insert("b/batch-1".into(), place("other", "Deployment b/batch"));
            w
        },
        ..inputs(&c)
    });
    assert!(v.passed(), "{}", v.summary());
}

fn inputs(c: &Case) -> Inputs<'_> {
    Inputs {
        scenario: &c.scenario,
        expectation: c.expectation.as_ref(),
        status: c.status.into(),
        output: None,
        error: None,
        cause: None,
        report: &c.report,
        world_before: world_before(),
        world: c.world.clone(),
        aws: c.aws.clone(),
        functions: c.functions.clone(),
        slow: c.slow.clone(),
        aws_requests: BTreeMap::new(),
        granted: &NOTHING_GRANTED,
        idempotence: Vec::new(),
        operator_answers: Vec::new(),
        events: &c.events,
        cleanup: c.cleanup.clone(),
        wall: Duration::from_secs(1),
        simulated: Duration::from_secs(1),
        executions: Vec::new(),
    }
}

#[test]
fn an_abort_cleaned_up_before_deletion_is_judged_as_a_rollback() {
    let mut c = Case::rolled_back();
    c.status = "ABORTED";
    c.events = vec![entered("Retire")];
    c.cleanup = Some(CleanupRun {
        status: "SUCCEEDED".into(),
        ..CleanupRun::default()
    });
    let v = c.expect(json!({"outcome": "aborted"})).verdict();
    assert_eq!(v.outcome, Outcome::Aborted);
    assert!(v.passed(), "{}", v.summary());
    assert!(
        v.restored.iter().any(|r| r.contains("cleanup")),
        "{:?}",
        v.restored
    );
    // The same abort with the new group left behind fails.
    let mut c = Case::rolled_back();
    c.status = "ABORTED";
    let mut after = aws_before();
    after.groups.insert("asg-new".into(), GroupState::default());
    c.aws = Ok((aws_before(), after));
    let p = broken(&c.verdict(), "I3");
    assert_eq!(
        p,
        vec!["left behind: Auto Scaling group asg-new".to_string()]
    );
}

#[test]
fn an_abort_after_the_old_group_went_is_judged_as_a_migration() {
    let mut c = Case::success();
    c.status = "ABORTED";
    c.events = vec![entered("CheckDeleted")];
    let v = c.verdict();
    assert_eq!(v.outcome, Outcome::Aborted);
    assert!(broken(&v, "I3").is_empty(), "{}", v.summary());
}

#[test]
fn failed_requests_on_a_killed_pod_are_counted_apart() {
    let sample = |pod: &str| FailureSample {
        at: Utc::now(),
        service: "a/web".into(),
        stream: "loadBalancer".into(),
        path: format!("ALB a/web → node n1 → pod {pod}"),
        reason: FailureReason::PodKilled,
        node: None,
        pod: Some(pod.into()),
        connection: false,
    };
    let mut c = Case::success();
    c.scenario =
        scenario(json!({"faults": [{"kind": "killPod", "pod": "a/web-1", "atSeconds": 5}]}));
    c.report.traffic = ProbeStats::with_failures(
        vec![ServiceTraffic {
            service: "a/web".into(),
            sent: 10,
            failed: 1,
            ..ServiceTraffic::default()
        }],
        vec![sample("a/web-1")],
    );
    let v = c.verdict();
    assert!(broken(&v, "I1").is_empty(), "{}", v.summary());
    assert_eq!(v.figures.requests_failed_injected, 1);
    assert_eq!(v.figures.named()["ngmFailedRequests"], 0.0);
    // The same failure on a pod no fault touched is ngm's.
    let mut c = Case::success();
    c.report.traffic = ProbeStats::with_failures(
        vec![ServiceTraffic {
            service: "a/web".into(),
            sent: 10,
            failed: 1,
            ..ServiceTraffic::default()
        }],
        vec![sample("a/web-2")],
    );
    assert!(!broken(&c.verdict(), "I1").is_empty());
}

// DESIGN I1: a request lost because a workload itself cannot stop gracefully is counted apart
// when the pre-flight named the workload; the same failure on a workload it did not name, or
// a failure of another kind on a named workload, is ngm's.
#[test]
fn failures_a_named_workload_causes_itself_are_counted_apart() {
    let traffic = |workload: &str, reason: FailureReason| ProbeStats {
        services: vec![ServiceTraffic {
            service: "shop/cart".into(),
            sent: 100,
            failed: 3,
            by_workload: BTreeMap::from([(workload.to_string(), BTreeMap::from([(reason, 3)]))]),
            ..ServiceTraffic::default()
        }],
        samples: Vec::new(),
        ..ProbeStats::default()
    };
    let named = json!({ "preflight": { "findings": [
        "Deployment shop/cart (behind Service shop/cart) has no preStop hook: its pods get SIGTERM"
    ] } });
    let case = |workload: &str, reason: FailureReason| {
        let mut c = Case::success();
        c.report.traffic = traffic(workload, reason);
        c.output = Some(named.clone());
        c.verdict()
    };
    let v = case("Deployment shop/cart", FailureReason::Refused);
    assert!(broken(&v, "I1").is_empty(), "{}", v.summary());
    assert_eq!(v.figures.named()["workloadFailedRequests"], 3.0);
    assert_eq!(v.figures.named()["ngmFailedRequests"], 0.0);
    assert_eq!(v.figures.workload_failures["Deployment shop/cart"], 3);
    assert!(
        v.summary()
            .contains("Deployment shop/cart: 3 requests failed")
    );
    let v = case("Deployment shop/cart", FailureReason::Aborted);
    assert!(broken(&v, "I1").is_empty(), "{}", v.summary());
    // A failed execution has no output: the report comes from the history.
    let mut c = Case::success();
    c.status = "FAILED";
    c.report.traffic = traffic("Deployment shop/cart", FailureReason::Refused);
    c.events.insert(
        0,
        StateEvent {
            preflight: named.get("preflight").cloned(),
            ..exited("ValidateAndPlan")
        },
    );
    let v = c.verdict();
    assert_eq!(v.figures.requests_failed_workload, 3, "{}", v.summary());
    // Not named by the pre-flight: ngm's.
    let v = case("Deployment shop/catalog", FailureReason::Refused);
    assert!(!broken(&v, "I1").is_empty(), "{}", v.summary());
    // Named, but the failure is not one of the workload's own making.
    let v = case("Deployment shop/cart", FailureReason::NodeGone);
    assert!(!broken(&v, "I1").is_empty(), "{}", v.summary());
    assert_eq!(v.figures.named()["ngmFailedRequests"], 3.0);
}

// A keep-alive connection reset with no request failed is still downtime (the client's next
// write meets a reset): I1 counts it, apart only when a named workload's own stop caused it.
#[test]
fn a_reset_keep_alive_connection_breaks_zero_downtime_unless_the_workload_caused_it() {
    let case = |workload: &str, reason: FailureReason| {
        let mut c = Case::success();
        c.report.traffic = ProbeStats {
            services: vec![ServiceTraffic {
                service: "shop/cart".into(),
                sent: 100,
                connections: Some(ConnectionStats {
                    opened: 10,
                    closed_gracefully: 7,
                    reset: 2,
                    resets: BTreeMap::from([(reason, 2)]),
                    by_workload: BTreeMap::from([(
                        workload.to_string(),
                        BTreeMap::from([(reason, 2)]),
                    )]),
                    open: 1,
                }),
                ..ServiceTraffic::default()
            }],
            samples: Vec::new(),
            ..ProbeStats::default()
        };
        c.output = Some(json!({ "preflight": { "findings": [
            "Deployment shop/cart (behind Service shop/cart) has no preStop hook: its pods get SIGTERM"
        ] } }));
        c.verdict()
    };
    let v = case("Deployment shop/cart", FailureReason::DrainTimeout);
    assert!(
        broken(&v, "I1")
            .iter()
            .any(|p| p.contains("2 of 10 keep-alive connections were reset")),
        "{}",
        v.summary()
    );
    assert_eq!(v.figures.named()["connectionsReset"], 2.0);
    assert_eq!(v.figures.named()["ngmConnectionsReset"], 2.0);
    let v = case("Deployment shop/cart", FailureReason::Aborted);
    assert!(broken(&v, "I1").is_empty(), "{}", v.summary());
    assert_eq!(v.figures.named()["ngmConnectionsReset"], 0.0);
    let v = case("Deployment shop/catalog", FailureReason::Aborted);
    assert!(!broken(&v, "I1").is_empty(), "{}", v.summary());
}

#[test]
fn function_errors_an_injected_fault_explains_are_counted_apart() {
    let mut c = Case::success();
    c.functions.insert(
        "retire".into(),
        FunctionStats {
            invocations: 3,
            errors: BTreeMap::from([("Sandbox.Timedout".into(), 1), ("Unexpected".into(), 1)]),
            faults_injected: 1,
            timeouts_injected: 1,
            ..FunctionStats::default()
        },
    );
    let v = c.verdict();
    assert_eq!(v.figures.function_errors_injected, 1);
    assert!(
        v.summary()
            .contains("function errors: 2 (1 explained by injected faults, 1 by ngm)"),
        "{}",
        v.summary()
    );
}

#[test]
fn a_slow_invocation_breaks_i6_unless_a_fault_made_it_slow() {
    let slow = |injected| SlowInvocation {
        function: "retire".into(),
        millis: 40_000,
        budget_millis: 30_000,
        timed_out: false,
        injected,
    };
    let mut c = Case::success();
    c.slow = vec![slow(false)];
    assert!(broken(&c.verdict(), "I6")[0].contains("retire: an invocation took 40000 ms"));
    let mut c = Case::success();
    c.slow = vec![slow(true)];
    assert!(broken(&c.verdict(), "I6").is_empty());
}

#[test]
fn twin_injected_answers_are_read_in_any_shape() {
    let mut r = report();
    assert_eq!(twin_injected(&r), 0);
    r.requests.kubernetes_total = 1;
    assert_eq!(twin_injected(&r), 0);
}

fn watched(name: &str, source: &str, release: &str, status: &str) -> ExecutionRun {
    ExecutionRun {
        name: name.into(),
        arn: format!("arn:{name}"),
        release: release.into(),
        target_release: Some(release.into()),
        source: source.into(),
        status: status.into(),
        outcome: Outcome::of(status, None),
        error: None,
        cause: None,
        transitions: 30,
    }
}

// A run the AMI watcher drove: its migrations are counted and each gets a line; the group left
// must be on the last release and still opted in, or the run fails.
#[test]
fn a_watcher_run_counts_its_migrations_and_judges_the_group_left() {
    let mut c = Case::success().expect(json!({"outcome": "success", "figures": {
        "migrationsStarted": 2, "migrationsSucceeded": 2
    }}));
    c.report.node_groups = vec![ngm_twin::report::GroupShape {
        name: "new".into(),
        release_version: "r2".into(),
        tags: BTreeMap::from([("ngm.io/auto-update".into(), "true".into())]),
        ..Default::default()
    }];
    let both = vec![
        watched("ami-1", "old", "r1", "SUCCEEDED"),
        watched("ami-2", "mid", "r2", "SUCCEEDED"),
    ];
    let v = Verdict::compile(Inputs {
        executions: both.clone(),
        ..inputs(&c)
    });
    assert!(v.passed(), "{}", v.summary());
    assert!(
        v.summary()
            .contains("execution ami-2 (release r2, from group mid): success"),
        "{}",
        v.summary()
    );
    c.report.node_groups[0].tags.clear();
    let v = Verdict::compile(Inputs {
        executions: both.clone(),
        ..inputs(&c)
    });
    assert!(!v.passed());
    assert_eq!(broken(&v, "AMI watcher").len(), 1, "{}", v.summary());
}

// An earlier migration that did not succeed fails the run whatever the last one did; a last
// one that failed is the outcome, and the figures say what the watcher got done.
#[test]
fn a_watcher_run_passes_only_when_every_migration_succeeded() {
    let c = Case::success().expect(json!({"outcome": "success", "figures": {
        "migrationsSucceeded": 2
    }}));
    let v = Verdict::compile(Inputs {
        executions: vec![
            watched("ami-1", "old", "r1", "FAILED"),
            watched("ami-2", "old", "r2", "SUCCEEDED"),
        ],
        ..inputs(&c)
    });
    assert!(!v.passed());
    assert!(broken(&v, "AMI watcher")[0].contains("ami-1 ended FAILED"));
    let failed = Case::rolled_back().expect(json!({"outcome": "success"}));
    let v = Verdict::compile(Inputs {
        executions: vec![
            watched("ami-1", "old", "r1", "SUCCEEDED"),
            watched("ami-2", "mid", "r2", "FAILED"),
        ],
        ..inputs(&failed)
    });
    assert_eq!(v.outcome, Outcome::RolledBack);
    assert!(!v.passed());
    let named = v.figures.named();
    assert_eq!(
        (named["migrationsStarted"], named["migrationsSucceeded"]),
        (2.0, 1.0)
    );
    // A run without the watcher does not measure them.
    assert!(
        !Case::success()
            .verdict()
            .figures
            .named()
            .contains_key("migrationsStarted")
    );
}
