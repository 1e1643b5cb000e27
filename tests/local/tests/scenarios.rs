//! Every scenario in `tests/scenarios/`, end to end: the real ASL in aws-local-stepfunctions,
//! the real function binaries (built by `cargo build --workspace --bins`, which
//! `scripts/test` runs first), the twin and moto. Each run is judged on its expected outcome
//! and I1–I6; the tests then check what is particular to each scenario.

use std::path::PathBuf;

use ngm_local::expect::Outcome;
use ngm_local::verdict::Check;
use ngm_local::{RunOptions, RunOutcome, run};
use ngm_twin::lb::ServiceTraffic;

fn scenario(name: &str) -> PathBuf {
    ngm_local::repo_root()
        .join("tests/scenarios")
        .join(format!("{name}.yaml"))
}

async fn run_scenario(name: &str) -> RunOutcome {
    run_path(name, scenario(name)).await
}

/// Runs a scenario file and prints its verdict (with the run's time: `-- --nocapture`).
async fn run_path(name: &str, path: PathBuf) -> RunOutcome {
    let outcome = run(RunOptions {
        scenario: path,
        ..RunOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    println!(
        "scenario {name}: {:.1} s wall, {:.0} s simulated{}",
        outcome.verdict.figures.wall_seconds,
        outcome.verdict.figures.simulated_seconds,
        outcome.verdict.summary()
    );
    assert!(
        outcome.verdict.passed(),
        "{name} failed (logs in {}):\n{}",
        outcome.work_dir.display(),
        outcome.verdict.summary()
    );
    outcome
}

/// The migration succeeded, and traffic ran through it without one failed request.
fn succeeded_without_a_failed_request(o: &RunOutcome) {
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(o.verdict.figures.requests_sent > 0);
    assert_eq!(o.verdict.figures.requests_failed, 0);
}

/// The migration succeeded and ngm lost no request: every failed one is a workload's own
/// (refused or cut by how its pods stop) on a workload the pre-flight named (DESIGN I1).
fn succeeded_losing_only_named_workloads_requests(o: &RunOutcome) {
    assert_eq!(o.verdict.outcome, Outcome::Success);
    let f = &o.verdict.figures;
    assert!(f.requests_sent > 0);
    assert_eq!(
        f.named()["ngmFailedRequests"],
        0.0,
        "{}",
        o.verdict.summary()
    );
    assert_eq!(
        f.requests_failed,
        f.requests_failed_workload,
        "{}",
        o.verdict.summary()
    );
}

/// The stream's figures (`service` and `stream` as the report names them).
fn stream<'a>(o: &'a RunOutcome, service: &str, stream: &str) -> &'a ServiceTraffic {
    o.report
        .traffic
        .services
        .iter()
        .find(|s| s.service == service && s.stream == stream)
        .unwrap_or_else(|| panic!("no stream {stream} to {service}: {:?}", o.report.traffic))
}

/// One function's log of the run.
fn function_log(o: &RunOutcome, function: &str) -> String {
    let path = o.work_dir.join(format!("functions/{function}.log"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn holds(o: &RunOutcome, invariant: &str) -> bool {
    o.verdict
        .invariants
        .iter()
        .any(|(k, v)| k.starts_with(invariant) && *v == Check::Holds)
}

#[tokio::test(flavor = "multi_thread")]
async fn pulumi_tutorial_moves_nginx_to_the_new_group_without_a_failed_request() {
    let o = run_scenario("pulumi-tutorial").await;
    succeeded_without_a_failed_request(&o);
    assert!(holds(&o, "I1") && holds(&o, "I2") && holds(&o, "I3"));
    // The echoserver hop behind the ingress controller, and DNS lookups through kube-dns.
    let chained = stream(
        &o,
        "ingress-nginx/nginx-ingress-controller",
        "loadBalancer → apps/echoserver",
    );
    let dns = stream(&o, "kube-system/kube-dns", "dns");
    assert!(
        chained.sent > 1000 && dns.sent > 1000,
        "{chained:?} {dns:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn small_deployments_with_long_grace_behind_an_nlb_lose_no_request() {
    let o = run_scenario("nlb-long-grace").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(holds(&o, "I1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_managed_group_moves_to_a_managed_group() {
    let o = run_scenario("self-managed-to-managed").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(holds(&o, "I3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blue_green_ami_update_keeps_nodeport_services_behind_a_clb_up() {
    let o = run_scenario("blue-green-clb-nodeport").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(holds(&o, "I1"));
    ends_with_only_healthy_targets(&o);
}

/// Every load balancer ends with healthy targets only, none draining: the new group's
/// instances took over (for attached load balancers, only ngm's attachment can have put them
/// there).
fn ends_with_only_healthy_targets(o: &RunOutcome) {
    assert!(!o.report.load_balancers.is_empty());
    for lb in &o.report.load_balancers {
        assert!(!lb.targets.is_empty(), "{} has no target", lb.service);
        assert!(
            lb.targets
                .values()
                .all(|t| *t == ngm_twin::lb::TargetState::Healthy),
            "{}: {:?}",
            lb.service,
            lb.targets
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_target_group_attached_to_a_self_managed_group_moves_to_the_managed_group() {
    let o = run_scenario("self-managed-tg-attached").await;
    succeeded_losing_only_named_workloads_requests(&o);
    ends_with_only_healthy_targets(&o);
}

/// A CLB and a target group attached with AttachTrafficSources show only in the group's traffic
/// sources: ngm finds them there, attaches the managed group to them the same way and detaches
/// the self-managed group with DetachTrafficSources (the verdict's AWS promise checks that the
/// new group holds them as traffic sources).
#[tokio::test(flavor = "multi_thread")]
async fn load_balancers_attached_as_traffic_sources_move_as_traffic_sources() {
    let o = run_scenario("traffic-sources-attached").await;
    succeeded_without_a_failed_request(&o);
    ends_with_only_healthy_targets(&o);
    let calls = &o.verdict.figures.aws_requests;
    for call in [
        "autoscaling:AttachTrafficSources",
        "autoscaling:DetachTrafficSources",
    ] {
        assert!(
            calls.get(call).is_some_and(|n| *n >= 1),
            "{call}: {calls:?}"
        );
    }
    assert!(holds(&o, "I3"), "{:?}", o.verdict.invariants);
}

/// A CLB does not fail open and, with AWS's defaults, needs 300 s of passing checks before a
/// new instance is InService: the old nodes may leave only after that (the health gate).
#[tokio::test(flavor = "multi_thread")]
async fn local_traffic_behind_a_clb_with_slow_checks_waits_for_the_new_instances() {
    let o = run_scenario("clb-local-slow-checks").await;
    succeeded_without_a_failed_request(&o);
    // The gate answered "not healthy yet" (naming the new instances) before the cut, which
    // happened once. Counting calls would depend on the machine's speed; the replies do not.
    let log = function_log(&o, "cut-traffic");
    let cut_line = log
        .lines()
        .position(|l| l.contains("old nodes cut out of the load balancers"))
        .expect("the old nodes were cut out");
    let waits = log
        .lines()
        .take(cut_line)
        .filter(|l| l.contains("new targets not healthy yet"))
        .count();
    assert!(
        waits >= 1,
        "the cut did not wait for the new instances:\n{log}"
    );
    assert_eq!(
        log.matches("old nodes cut out of the load balancers")
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_surge_survives_the_hpa_and_the_hpa_comes_back_exactly() {
    let o = run_scenario("hpa").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    // I3's object diff covers the HPA's min/max and the Deployment's replicas.
    assert!(holds(&o, "I3"));
    assert!(
        o.report.changes.changed.is_empty(),
        "{:?}",
        o.report.changes
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pdb_blocked_past_the_deadline_rolls_back_and_names_pod_and_pdb() {
    let o = run_scenario("pdb-blocked-rollback").await;
    assert_eq!(o.verdict.outcome, Outcome::RolledBack);
    assert_eq!(o.verdict.error.as_deref(), Some("PdbBlocked"));
    let cause = o.verdict.cause.clone().unwrap_or_default();
    assert!(
        cause.contains("data/queue-") && cause.contains("data/queue"),
        "{cause}"
    );
    assert!(holds(&o, "I3/I4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pdb_blocked_drain_waits_for_the_operator_and_rolls_back_on_abort() {
    let o = run_scenario("pdb-blocked-operator").await;
    assert_eq!(o.verdict.outcome, Outcome::RolledBack);
    assert_eq!(o.verdict.error.as_deref(), Some("OperatorAborted"));
    assert_eq!(o.verdict.operator_answers, vec!["answered".to_string()]);
    assert!(
        o.events
            .iter()
            .any(|e| e.kind == "StateEntered" && e.state.as_deref() == Some("AwaitOperator"))
    );
    assert!(holds(&o, "I3/I4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn statefulset_pods_come_back_in_the_zones_of_their_volumes() {
    let o = run_scenario("statefulset-zones").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(o.verdict.figures.evictions >= 3, "{:?}", o.verdict.figures);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_changes_nothing_and_returns_the_preflight_report() {
    let o = run_scenario("dry-run").await;
    assert_eq!(o.verdict.outcome, Outcome::DryRun);
    let output = o.verdict.output.clone().unwrap_or_default();
    assert!(output.get("preflight").is_some(), "{output}");
    assert!(o.report.changes.is_empty(), "{:?}", o.report.changes);
    assert!(!o.report.requests.eks.contains_key("CreateNodegroup"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fault_at_every_step_still_ends_in_success() {
    let o = run_scenario("faults-every-step").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    let f = &o.verdict.figures.functions;
    for (name, s) in f.iter().filter(|(_, s)| s.invocations > 0) {
        assert!(s.faults_injected >= 1, "{name} got no fault: {s:?}");
    }
    let retried = o.events.iter().filter(|e| e.kind == "StateRetried").count();
    assert!(
        retried >= 2 * f.values().filter(|s| s.invocations > 0).count(),
        "{retried}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_step_run_twice_leaves_the_same_world_and_output() {
    let o = run_scenario("idempotence").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(holds(&o, "I5"), "{:?}", o.verdict.invariants);
}

fn entered(o: &RunOutcome, state: &str) -> bool {
    o.events
        .iter()
        .any(|e| e.kind == "StateEntered" && e.state.as_deref() == Some(state))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_untouched_group_stays_as_it_was() {
    let o = run_scenario("campaign-base").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    // I3 holds only if the batch group's pods, scaling and Auto Scaling group are untouched.
    assert!(holds(&o, "I3"), "{:?}", o.verdict.invariants);
}

/// console-abort.yaml stopped in `state` instead: the run must end ABORTED, the cleanup
/// machine must run and succeed, and I3/I4 (cluster and AWS side) must hold.
async fn abort_at(state: &str) {
    let text = std::fs::read_to_string(scenario("console-abort")).unwrap_or_default();
    let text = text
        .replace("atState: Retire", &format!("atState: {state}"))
        .replace(
            "name: console-abort",
            &format!("name: console-abort-{}", state.to_lowercase()),
        );
    let dir = std::env::temp_dir().join(format!("ngm-abort-{}-{}", state, std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("scenario.yaml");
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{e}"));
    let o = run_path(&format!("console-abort at {state}"), path).await;
    assert_eq!(o.verdict.outcome, Outcome::Aborted);
    assert!(entered(&o, state), "never reached {state}");
    let cleanup = o.verdict.cleanup.clone().unwrap_or_default();
    assert_eq!(cleanup.status, "SUCCEEDED", "{cleanup:?}");
    assert!(holds(&o, "I3/I4"), "{:?}", o.verdict.invariants);
    assert!(
        o.verdict.restored.iter().any(|r| r == "lock released"),
        "{:?}",
        o.verdict.restored
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_while_the_group_is_created_is_cleaned_up_exactly() {
    abort_at("CheckGroupReady").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_during_the_freeze_is_cleaned_up_exactly() {
    abort_at("Freeze").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_during_the_taint_is_cleaned_up_exactly() {
    abort_at("Taint").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_during_the_surge_is_cleaned_up_exactly() {
    abort_at("CheckSurge").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_while_traffic_is_cut_is_cleaned_up_exactly() {
    abort_at("CutTraffic").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_during_retire_is_cleaned_up_exactly() {
    abort_at("Retire").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_during_the_drain_is_cleaned_up_exactly() {
    abort_at("Drain").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_before_the_old_group_is_deleted_is_cleaned_up_exactly() {
    abort_at("DeleteOld").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_while_the_old_group_goes_ends_in_a_restore() {
    abort_at("CheckDeleted").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_console_abort_during_the_restore_is_finished_by_cleanup() {
    abort_at("Restore").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_execution_that_times_out_is_cleaned_up_exactly() {
    let o = run_scenario("execution-timeout").await;
    assert_eq!(o.verdict.outcome, Outcome::TimedOut);
    assert_eq!(
        o.verdict.cleanup.as_ref().map(|c| c.status.as_str()),
        Some("SUCCEEDED")
    );
    assert!(holds(&o, "I3/I4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_retry_sets_a_new_deadline_and_evicts_again() {
    let o = run_scenario("approve-retry").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(!o.verdict.operator_answers.is_empty());
    assert!(
        o.verdict.operator_answers.iter().all(|a| a == "answered"),
        "{:?}",
        o.verdict.operator_answers
    );
    assert!(
        o.verdict.figures.evictions >= 3,
        "{:?}",
        o.verdict.figures.evictions
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_force_deletes_the_blocked_pods_one_at_a_time() {
    let o = run_scenario("approve-force").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(
        o.verdict.operator_answers.len() >= 3,
        "{:?}",
        o.verdict.operator_answers
    );
    assert_eq!(o.verdict.figures.pdb_violations, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_rollout_on_new_nodes_does_not_hold_the_migration() {
    let o = run_scenario("stuck-rollout").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(!entered(&o, "Rollback"));
    assert!(holds(&o, "I3/I4"));
}

/// EKS user guide, "Managed node groups", Spot: a rebalance recommendation launches a
/// replacement into the old group mid-drain. ngm finds it by the group's label and Auto
/// Scaling membership, taints, cuts and drains it; without that, the CLB kept sending it
/// requests until it was terminated with the group (275 failed in the twin).
#[tokio::test(flavor = "multi_thread")]
async fn a_spot_replacement_that_joins_the_old_group_mid_drain_is_tainted_cut_and_drained() {
    let o = run_scenario("spot-replacement-mid-drain").await;
    succeeded_without_a_failed_request(&o);
    let found = ["cut-traffic", "retire", "drain", "delete-old"]
        .iter()
        .filter(|f| o.work_dir.join(format!("functions/{f}.log")).exists())
        .any(|f| function_log(&o, f).contains("a node joined the old group after the taint"));
    assert!(found, "no step took the late node in");
}

/// An HPA scaling on rising load (kubernetes `pkg/controller/podautoscaler/horizontal.go`):
/// ngm taints before it raises the minimum, hands the HPA back its own minimum and never
/// writes the replicas after that, so the migration ends with the count the HPA asks for,
/// above the count before the run, and loses no request.
#[tokio::test(flavor = "multi_thread")]
async fn an_hpa_under_rising_load_is_handed_back_and_never_fought() {
    let o = run_scenario("hpa-rising-load").await;
    succeeded_without_a_failed_request(&o);
    assert!(!entered(&o, "Rollback"));
    assert_eq!(
        o.report.replicas_left_to_hpas,
        vec!["Deployment shop/api".to_string()]
    );
    let retire = function_log(&o, "retire");
    assert!(
        !retire.contains("scaleWorkload"),
        "ngm wrote the HPA target's replicas"
    );
}

/// The Cluster Autoscaler (kubernetes/autoscaler cluster-autoscaler, FAQ "How does scale-up
/// work?"): the new group starts at one node of a max of six; the surge's Unschedulable pods
/// make the autoscaler raise it, and the migration waits for them and loses no request.
/// Neither group loses a node to it (the old one is at its minimum and pinned, the new nodes
/// are annotated scale-down-disabled).
#[tokio::test(flavor = "multi_thread")]
async fn a_surge_that_needs_the_cluster_autoscaler_waits_for_its_nodes() {
    let o = run_scenario("surge-needs-cluster-autoscaler").await;
    succeeded_without_a_failed_request(&o);
    let ca = &o.report.cluster_autoscaler;
    assert!(ca.nodes_added >= 2, "{:?}", ca.actions);
    assert!(
        ca.actions
            .iter()
            .filter(|a| a.step == ngm_twin::eks::AutoscalerStep::ScaleUp)
            .all(|a| a.group.starts_with("eks-workers-b-") && a.to <= 6),
        "{:?}",
        ca.actions
    );
    assert_eq!(ca.nodes_removed, 0, "{:?}", ca.actions);
}

/// kubernetes.io "Pod Lifecycle" (termination of Pods): without a preStop hook a pod gets
/// SIGTERM while its endpoint's consumers still send it requests. With `onWorkloadRisk: block`
/// pre-flight names the workload and refuses, touching nothing; a workload with a preStop sleep
/// is not named.
#[tokio::test(flavor = "multi_thread")]
async fn a_workload_with_no_prestop_is_named_and_blocks_when_the_policy_says_so() {
    let o = run_scenario("no-prestop-named").await;
    assert_eq!(o.verdict.error.as_deref(), Some("PreflightFailed"));
    let cause = o.verdict.cause.clone().unwrap_or_default();
    assert!(cause.contains("Deployment shop/cart"), "{cause}");
    assert!(cause.contains("no preStop hook"), "{cause}");
    assert!(!cause.contains("shop/catalog"), "{cause}");
    assert!(o.report.changes.is_empty(), "{:?}", o.report.changes);
}

/// A refusal: ValidateAndPlan's one invocation fails with PreflightFailed before any other step
/// runs, within a minute of its own time on the twin's clock (`speed` simulated seconds per
/// wall second; the local harness's state transitions and process starts are not AWS's and are
/// left out), with nothing created or changed. Returns the cause.
async fn refused_within_a_minute_with_nothing_created(name: &str) -> String {
    let o = run_scenario(name).await;
    assert_eq!(o.verdict.error.as_deref(), Some("PreflightFailed"));
    assert!(o.report.changes.is_empty(), "{:?}", o.report.changes);
    let speed = ngm_twin::scenario::Scenario::load(scenario(name))
        .map(|s| s.cluster.speed)
        .unwrap_or_else(|e| panic!("{e}"));
    let functions = &o.verdict.figures.functions;
    assert_eq!(functions["validate-and-plan"].invocations, 1);
    let invoked: Vec<&String> = functions
        .iter()
        .filter(|(_, f)| f.invocations > 0)
        .map(|(name, _)| name)
        .collect();
    assert!(
        invoked
            .iter()
            .all(|f| *f == "validate-and-plan" || *f == "cleanup"),
        "{invoked:?}"
    );
    let simulated = functions["validate-and-plan"].max_millis as f64 / 1000.0 * speed;
    assert!(simulated < 60.0, "refused after {simulated:.0} simulated s");
    o.verdict.cause.clone().unwrap_or_default()
}

/// Karpenter's `karpenter.sh/do-not-disrupt`: the pre-flight names the workload and the
/// annotation, says how to accept the risk, and refuses.
#[tokio::test(flavor = "multi_thread")]
async fn a_do_not_disrupt_workload_is_refused_by_name_within_a_minute_with_nothing_created() {
    let cause = refused_within_a_minute_with_nothing_created("preflight-do-not-disrupt").await;
    assert!(cause.contains("Deployment media/encoder"), "{cause}");
    assert!(cause.contains("karpenter.sh/do-not-disrupt"), "{cause}");
    assert!(cause.contains("acceptRisks: [do-not-disrupt]"), "{cause}");
    assert!(!cause.contains("media/web"), "{cause}");
}

/// A pod bigger than a node of the target's instance type (its allocatable after the EKS
/// AMI's reservations) is named, although the group's total capacity would hold the surge.
#[tokio::test(flavor = "multi_thread")]
async fn a_pod_bigger_than_a_new_node_is_refused_by_name() {
    let cause = refused_within_a_minute_with_nothing_created("preflight-pod-too-big").await;
    assert!(
        cause.contains("[pod-too-big] Deployment media/encoder"),
        "{cause}"
    );
    assert!(!cause.contains("surge-capacity"), "{cause}");
    assert!(!cause.contains("media/web"), "{cause}");
}

/// A nodeSelector the target group cannot meet: pinned to the old group's EKS name, or on a
/// label the request's `target.labels` dropped.
#[tokio::test(flavor = "multi_thread")]
async fn a_node_selector_the_target_lacks_is_refused_by_name() {
    let cause = refused_within_a_minute_with_nothing_created("preflight-missing-label").await;
    assert!(
        cause.contains("[node-selector] Deployment shop/reports"),
        "{cause}"
    );
    assert!(
        cause.contains("[node-selector] Deployment shop/search"),
        "{cause}"
    );
    assert!(!cause.contains("shop/web"), "{cause}");
}

/// Required zone anti-affinity leaves the surge no zone while the old pods run.
#[tokio::test(flavor = "multi_thread")]
async fn anti_affinity_that_leaves_the_surge_no_zone_is_refused_by_name() {
    let cause = refused_within_a_minute_with_nothing_created("preflight-anti-affinity").await;
    assert!(
        cause.contains("[anti-affinity] Deployment bank/ledger"),
        "{cause}"
    );
    assert!(!cause.contains("bank/web"), "{cause}");
}

/// A StatefulSet volume in a zone where the request gives the new group no subnet.
#[tokio::test(flavor = "multi_thread")]
async fn a_volume_in_a_zone_without_a_subnet_is_refused_by_name() {
    let cause = refused_within_a_minute_with_nothing_created("preflight-zone-without-subnet").await;
    assert!(cause.contains("[volume-zone] streaming/kafka-"), "{cause}");
    assert!(cause.contains("us-east-2c"), "{cause}");
}

/// Pods on local PersistentVolumes (the twin binds `local-storage` claims to their first
/// node's local volume) are named with their volumes and nodes.
#[tokio::test(flavor = "multi_thread")]
async fn a_statefulset_on_local_volumes_is_refused_by_name() {
    let cause = refused_within_a_minute_with_nothing_created("preflight-local-pv").await;
    assert!(
        cause.contains("[local-pv] StatefulSet cache/redis"),
        "{cause}"
    );
    assert!(
        cause.contains("data-redis-0") && cause.contains("data-redis-1"),
        "{cause}"
    );
    assert!(cause.contains("acceptRisks: [local-storage]"), "{cause}");
}

/// A self-managed Bottlerocket Spot group (mixed instances, all Spot) becomes a managed group
/// of the same shape although the request names none of it: Bottlerocket from the nodes'
/// os-release name, Spot from the mixed-instances policy, the same instance types, and the
/// operator's `ngm.io/` tag.
#[tokio::test(flavor = "multi_thread")]
async fn a_bottlerocket_spot_self_managed_group_keeps_its_shape() {
    let o = run_scenario("self-managed-bottlerocket-spot").await;
    assert_eq!(o.verdict.outcome, Outcome::Success);
    let new = o
        .report
        .node_groups
        .iter()
        .find(|g| g.name == "spot-managed")
        .unwrap_or_else(|| panic!("{:?}", o.report.node_groups));
    assert_eq!(new.ami_type, "BOTTLEROCKET_x86_64");
    assert_eq!(new.capacity_type, "SPOT");
    assert_eq!(new.instance_types, vec!["m5.large", "m5.xlarge"]);
    assert_eq!(
        new.tags
            .get("ngm.io/maintenance-window")
            .map(String::as_str),
        Some("Sun 02:00-06:00 UTC")
    );
}

/// DESIGN I1: a workload without a preStop hook drops requests by itself on any rollout
/// (kube-proxy's lag; its process exits on SIGTERM); the pre-flight names it, the migration
/// goes on under the default policy, and the report puts every failure on it.
#[tokio::test(flavor = "multi_thread")]
async fn a_workload_with_no_prestop_is_named_and_its_own_failures_are_attributed_to_it() {
    let o = run_scenario("no-prestop-attributed").await;
    succeeded_losing_only_named_workloads_requests(&o);
    let by = &o.verdict.figures.workload_failures;
    assert!(
        by.get("Deployment shop/cart").is_some_and(|n| *n > 0),
        "{by:?}"
    );
    assert_eq!(by.len(), 1, "{by:?}");
    assert_eq!(stream(&o, "shop/catalog", "loadBalancer").failed, 0);
    assert!(
        o.report.traffic.samples.iter().all(|s| s
            .pod
            .as_deref()
            .is_some_and(|p| p.starts_with("shop/cart-"))
            && s.path.starts_with("ALB shop/cart → node ")),
        "{:?}",
        o.report.traffic.samples
    );
}

/// An ingress controller proxies to its backends' endpoints itself, with its own lag (8 s
/// here); both hops stay up when every pod's preStop outlasts the lag of what sends to it.
#[tokio::test(flavor = "multi_thread")]
async fn an_ingress_and_its_backends_move_without_a_failed_request_on_either_hop() {
    let o = run_scenario("ingress-chained").await;
    succeeded_without_a_failed_request(&o);
    for backend in ["shop/storefront", "shop/search"] {
        let s = stream(
            &o,
            "ingress-nginx/ingress-nginx-controller",
            &format!("loadBalancer → {backend}"),
        );
        assert!(s.sent > 1000, "{s:?}");
    }
}

/// CoreDNS moves within its PDB while lookups go to kube-dns, and pods call an internal API
/// through its ClusterIP, both through kube-proxy: no lookup and no call fails.
#[tokio::test(flavor = "multi_thread")]
async fn dns_lookups_and_cluster_ip_calls_survive_the_move() {
    let o = run_scenario("coredns-dns").await;
    succeeded_without_a_failed_request(&o);
    assert!(stream(&o, "kube-system/kube-dns", "dns").sent > 1000);
    assert!(stream(&o, "internal/api", "clusterIp").sent > 1000);
    assert!(holds(&o, "I2"));
}

/// Keep-alive connections through a CLB (Cluster), an NLB that resets at its delay's end
/// (Local) and a ClusterIP: the old nodes stay in service until the connections through them
/// have left, and the old pods close theirs gracefully on SIGTERM: none is reset.
#[tokio::test(flavor = "multi_thread")]
async fn keep_alive_connections_all_close_gracefully() {
    let o = run_scenario("keepalive-streams").await;
    succeeded_without_a_failed_request(&o);
    for (service, via) in [
        ("shop/api", "loadBalancer"),
        ("shop/api", "clusterIp"),
        ("shop/feed", "loadBalancer"),
    ] {
        let s = stream(&o, service, via);
        let c = s.connections.as_ref().expect("a keep-alive stream");
        assert_eq!(c.reset, 0, "{service} {via}: {c:?}");
        // Every connection pinned to an old pod or node closed and another opened.
        assert!(c.closed_gracefully >= 4, "{service} {via}: {c:?}");
    }
    assert!(
        holds(&o, "I1") && holds(&o, "I2"),
        "{:?}",
        o.verdict.invariants
    );
}

/// The AWS Load Balancer Controller's IP targets are the pods, and no node label takes one
/// out (aws-load-balancer-controller `pkg/backend/endpoint_resolver.go`): ngm deregisters each
/// old pod's target while the pod still serves, so pods whose preStop is shorter than the
/// controller's and the ALB's lag lose nothing; a StatefulSet's pods leave one by one.
#[tokio::test(flavor = "multi_thread")]
async fn old_pods_leave_an_ingress_albs_ip_target_group_before_they_stop() {
    let o = run_scenario("ingress-alb-ip").await;
    succeeded_without_a_failed_request(&o);
    assert!(stream(&o, "shop/storefront", "loadBalancer").sent > 1000);
    assert!(stream(&o, "shop/sessions", "loadBalancer").sent > 300);
    let deregistrations = o
        .verdict
        .figures
        .aws_requests
        .get("elasticloadbalancing:DeregisterTargets")
        .copied()
        .unwrap_or(0);
    assert!(deregistrations >= 3, "{:?}", o.verdict.figures.aws_requests);
    assert!(holds(&o, "I3"), "{:?}", o.verdict.invariants);
}

/// An NLB's IP target group through a TargetGroupBinding, without readiness gates, and an
/// `nlb-target-type: ip` Service: the cut waits until the new pods are healthy targets (an NLB
/// registers a target 90–180 s late, aws-load-balancer-controller#1834), and the old ones leave
/// before their pods stop, however short their preStop.
#[tokio::test(flavor = "multi_thread")]
async fn an_nlbs_ip_target_group_through_a_binding_moves_without_a_failed_request() {
    let o = run_scenario("nlb-ip-tgb").await;
    succeeded_without_a_failed_request(&o);
    assert!(stream(&o, "pay/ledger", "loadBalancer").sent > 1000);
    assert!(stream(&o, "pay/gateway", "loadBalancer").sent > 500);
    let named = o
        .events
        .iter()
        .find_map(|e| e.preflight.clone())
        .unwrap_or_default()
        .to_string();
    assert!(
        named.contains("Deployment pay/ledger (behind Service pay/ledger) has IP targets but no"),
        "pre-flight names the missing readiness gate: {named}"
    );
    assert!(
        named.contains("Deployment pay/gateway (behind Service pay/gateway) is an NLB's IP target"),
        "pre-flight names the preStop shorter than the NLB's propagation: {named}"
    );
}

/// Stopped after the old pods left the ALB's IP target group: the cleanup's rollback puts them
/// back and waits until they are healthy targets before the surged pods go.
#[tokio::test(flavor = "multi_thread")]
async fn an_abort_after_the_ip_cut_puts_the_old_pods_back_first() {
    let o = run_scenario("ingress-alb-ip-abort").await;
    assert_eq!(o.verdict.outcome, Outcome::Aborted);
    assert_eq!(o.verdict.figures.requests_failed, 0);
    assert!(o.verdict.figures.requests_sent > 1000);
    let cleanup = o.verdict.cleanup.clone().unwrap_or_default();
    assert_eq!(cleanup.status, "SUCCEEDED", "{cleanup:?}");
    assert!(holds(&o, "I3/I4"), "{:?}", o.verdict.invariants);
}

/// kubernetes `pkg/controller/nodelifecycle`: a terminated instance's pods stay Ready
/// endpoints for the node monitor grace period, so the DaemonSet ingress pods on the old nodes
/// must be stopped (evicted: preStop, endpoints updated) before the old group is deleted, and
/// their DaemonSet must not put them back (`NodeShouldRunDaemonPod`: ngm's NoSchedule taint).
#[tokio::test(flavor = "multi_thread")]
async fn a_daemonset_ingress_is_stopped_on_the_old_nodes_before_they_terminate() {
    let o = run_scenario("daemonset-ingress").await;
    succeeded_without_a_failed_request(&o);
    // One ingress pod per old node (the Deployment leaves by the scale-down, not evictions).
    assert_eq!(o.report.evictions.allowed, 2, "{:?}", o.report.evictions);
    let log = function_log(&o, "delete-old");
    assert!(
        log.contains("are stopping before their instances terminate"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_lease_whose_holder_still_runs_is_not_taken_over() {
    let o = run_scenario("lease-held").await;
    assert_eq!(o.verdict.error.as_deref(), Some("ClusterLocked"));
    assert!(entered(&o, "NotStarted"));
    // I3/I4's AWS side compares the lock item: still the other execution's.
    assert!(holds(&o, "I3/I4"), "{:?}", o.verdict.invariants);
}

/// kubernetes.io, "Jobs", "Handling Pod and container failures": an evicted Job pod is
/// counted failed and started again from the beginning. With `policy.jobs.mode:
/// waitToFinish` the drain leaves the two running pods to finish on the tainted old nodes, the
/// Job's next pods start on the new group, and the old group goes only once they have ended:
/// no pod interrupted, no work lost, no request failed.
#[tokio::test(flavor = "multi_thread")]
async fn a_jobs_running_pods_are_left_to_finish_and_its_next_pods_start_on_the_new_group() {
    let o = run_scenario("job-waited-for").await;
    succeeded_without_a_failed_request(&o);
    let job = o
        .report
        .jobs
        .iter()
        .find(|j| j.name == "nightly-etl")
        .unwrap_or_else(|| panic!("no job in the report: {:?}", o.report.jobs));
    assert_eq!(job.pods_interrupted, 0, "{job:?}");
    assert!(job.succeeded >= 2, "the first two pods finished: {job:?}");
    assert!(
        function_log(&o, "drain").contains("left to finish"),
        "the drain never waited for the Job"
    );
}

/// The same cluster under the default `evict`: the run still succeeds without a failed
/// request, and the judge sees what the wait avoids: both running pods interrupted, their work
/// lost (so the zeros of `job-waited-for` are measured, not given).
#[tokio::test(flavor = "multi_thread")]
async fn evicting_a_jobs_running_pods_is_seen_as_work_lost() {
    let o = run_scenario("job-evicted").await;
    succeeded_without_a_failed_request(&o);
    let f = &o.verdict.figures;
    assert_eq!(f.job_pods_interrupted, 2, "{}", o.verdict.summary());
    assert!(f.job_lost_work_seconds >= 60.0, "{}", o.verdict.summary());
}

/// The AMI watcher, run on its schedule's event after each of two releases: it migrates the
/// opted-in group, then the group that migration created (the opt-in tag carried to it), each
/// through StartExecution under its deterministic name; the group left is on the second
/// release, still opted in, and no request failed.
#[tokio::test(flavor = "multi_thread")]
async fn an_auto_update_twice_in_a_row_migrates_the_group_the_first_one_created() {
    let o = run_scenario("auto-update-twice").await;
    succeeded_without_a_failed_request(&o);
    let runs = &o.verdict.executions;
    let ended: Vec<(&str, &str, &str)> = runs
        .iter()
        .map(|r| (r.name.as_str(), r.release.as_str(), r.status.as_str()))
        .collect();
    assert_eq!(ended.len(), 2, "{runs:?}");
    assert_eq!(
        ended[0],
        (
            "ami-fleet-general-1.33.5-20251105",
            "1.33.5-20251105",
            "SUCCEEDED"
        )
    );
    assert_eq!((ended[1].1, ended[1].2), ("1.33.5-20251201", "SUCCEEDED"));
    assert_eq!(runs[0].source, "general");
    assert!(
        runs[1].source != "general" && runs[1].source.starts_with("general-"),
        "{runs:?}"
    );
    let groups = &o.report.node_groups;
    assert_eq!(groups.len(), 1, "{groups:?}");
    let left = &groups[0];
    assert_eq!(left.release_version, "1.33.5-20251201");
    assert_eq!(
        left.tags.get("ngm.io/auto-update").map(String::as_str),
        Some("true")
    );
    assert_eq!(left.tags.get("ngm.io/migrated-from"), Some(&runs[1].source));
    assert!(
        holds(&o, "AMI watcher") && holds(&o, "IAM"),
        "{:?}",
        o.verdict.invariants
    );
    assert_eq!(o.verdict.figures.functions["ami-watch"].invocations, 2);
}
