//! Every scenario in `tests/scenarios/`, end to end: the real ASL in aws-local-stepfunctions,
//! the real function binaries (built by `cargo build --workspace --bins`, which
//! `scripts/test` runs first), the twin and moto. Each run is judged on its expected outcome
//! and I1–I6; the tests then check what is particular to each scenario.

use std::path::PathBuf;

use ngm_local::verdict::Check;
use ngm_local::{RunOptions, RunOutcome, run};

fn scenario(name: &str) -> PathBuf {
    ngm_local::repo_root()
        .join("tests/scenarios")
        .join(format!("{name}.yaml"))
}

async fn run_scenario(name: &str) -> RunOutcome {
    let outcome = run(RunOptions {
        scenario: scenario(name),
        ..RunOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(
        outcome.verdict.passed(),
        "{name} failed (logs in {}):\n{}",
        outcome.work_dir.display(),
        outcome.verdict.summary()
    );
    outcome
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
    assert_eq!(o.verdict.outcome, "success");
    assert!(o.verdict.figures.requests_sent > 0);
    assert_eq!(o.verdict.figures.requests_failed, 0);
    assert!(holds(&o, "I1") && holds(&o, "I2") && holds(&o, "I3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn small_deployments_with_long_grace_behind_an_nlb_lose_no_request() {
    let o = run_scenario("nlb-long-grace").await;
    assert_eq!(o.verdict.outcome, "success");
    assert!(holds(&o, "I1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_self_managed_group_moves_to_a_managed_group() {
    let o = run_scenario("self-managed-to-managed").await;
    assert_eq!(o.verdict.outcome, "success");
    assert!(holds(&o, "I3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blue_green_ami_update_keeps_nodeport_services_behind_a_clb_up() {
    let o = run_scenario("blue-green-clb-nodeport").await;
    assert_eq!(o.verdict.outcome, "success");
    assert!(holds(&o, "I1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_surge_survives_the_hpa_and_the_hpa_comes_back_exactly() {
    let o = run_scenario("hpa").await;
    assert_eq!(o.verdict.outcome, "success");
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
    assert_eq!(o.verdict.outcome, "rolledBack");
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
    assert_eq!(o.verdict.outcome, "rolledBack");
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
    assert_eq!(o.verdict.outcome, "success");
    assert!(o.verdict.figures.evictions >= 3, "{:?}", o.verdict.figures);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dry_run_changes_nothing_and_returns_the_preflight_report() {
    let o = run_scenario("dry-run").await;
    assert_eq!(o.verdict.outcome, "dryRun");
    let output = o.verdict.output.clone().unwrap_or_default();
    assert!(output.get("preflight").is_some(), "{output}");
    assert!(o.report.changes.is_empty(), "{:?}", o.report.changes);
    assert!(!o.report.requests.eks.contains_key("CreateNodegroup"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fault_at_every_step_still_ends_in_success() {
    let o = run_scenario("faults-every-step").await;
    assert_eq!(o.verdict.outcome, "success");
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
    assert_eq!(o.verdict.outcome, "success");
    assert!(holds(&o, "I5"), "{:?}", o.verdict.invariants);
}
