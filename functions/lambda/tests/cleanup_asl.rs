//! Checks on `statemachine/cleanup.asl.json`: both ASL linters accept it, its one Task runs the
//! `cleanup` function crate, it retries for minutes (throttles, transient errors, Lambda
//! crashes and timeouts) with capped, jittered backoff, it loops through a Wait while the
//! function answers `pending` (and straight back on a `continuation`), and `LockLost` ends it
//! without another try.

mod support;

use std::collections::BTreeSet;

use ngm_steps::{ALL_ERROR_NAMES, RETRYABLE_ERROR_NAMES};
use serde_json::Value;
use support::{lint, read, repo, substituted};

fn text() -> String {
    read("statemachine/cleanup.asl.json")
}

fn asl() -> Value {
    serde_json::from_str(&text()).unwrap_or_else(|e| panic!("not JSON: {e}"))
}

#[test]
fn both_asl_linters_accept_the_cleanup_machine_and_reject_a_broken_copy() {
    assert_eq!(lint(&substituted(&text()), "cleanup.asl.json"), None);
    let broken =
        substituted(&text()).replace("\"Next\": \"WaitForCleanup\"", "\"Next\": \"Nowhere\"");
    assert!(lint(&broken, "cleanup-broken.asl.json").is_some());
}

fn state<'a>(asl: &'a Value, name: &str) -> &'a Value {
    let s = &asl["States"][name];
    assert!(s.is_object(), "no state {name}");
    s
}

#[test]
fn its_task_runs_the_cleanup_crate_and_matches_only_known_error_names() {
    let asl = asl();
    let task = state(&asl, "Cleanup");
    assert_eq!(task["Resource"], "${CleanupFunctionArn}");
    let manifest = std::fs::read_to_string(repo().join("functions/cleanup/Cargo.toml"))
        .unwrap_or_else(|e| panic!("functions/cleanup: {e}"));
    assert!(manifest.contains("name = \"cleanup\""));
    assert!(repo().join("functions/cleanup/src/main.rs").exists());
    let mut names = BTreeSet::new();
    for key in ["Retry", "Catch"] {
        for r in task[key].as_array().into_iter().flatten() {
            for n in r["ErrorEquals"].as_array().into_iter().flatten() {
                names.insert(n.as_str().unwrap_or_default().to_string());
            }
        }
    }
    for n in &names {
        assert!(
            ALL_ERROR_NAMES.contains(&n.as_str())
                || n.starts_with("Lambda.")
                || n.starts_with("States.")
                || n == "Sandbox.Timedout",
            "unknown error name {n}"
        );
    }
}

#[test]
fn it_retries_for_minutes_with_capped_jittered_backoff_and_never_retries_a_lost_lock() {
    let asl = asl();
    let task = state(&asl, "Cleanup");
    let retry = task["Retry"].as_array().cloned().unwrap_or_default();
    let mut retried = BTreeSet::new();
    let mut minutes = 0.0;
    for r in &retry {
        for n in r["ErrorEquals"].as_array().into_iter().flatten() {
            retried.insert(n.as_str().unwrap_or_default().to_string());
        }
        assert_eq!(r["JitterStrategy"], "FULL", "{r}");
        let max_delay = r["MaxDelaySeconds"].as_f64().unwrap_or(f64::MAX);
        assert!(max_delay <= 60.0, "{r}");
        // The least the retries can add up to with full jitter is nothing; the most, with
        // capped exponential backoff, must reach minutes.
        let (mut delay, mut total) = (r["IntervalSeconds"].as_f64().unwrap_or(1.0), 0.0);
        for _ in 1..r["MaxAttempts"].as_u64().unwrap_or(3) {
            total += delay.min(max_delay);
            delay *= r["BackoffRate"].as_f64().unwrap_or(2.0);
        }
        minutes = f64::max(minutes, total / 60.0);
    }
    assert!(minutes >= 10.0, "retries span only {minutes:.1} minutes");
    for n in RETRYABLE_ERROR_NAMES.iter().chain(&[
        "Lambda.ServiceException",
        "Lambda.AWSLambdaException",
        "Lambda.SdkClientException",
        "Lambda.TooManyRequestsException",
        "Lambda.Unknown",
        "Sandbox.Timedout",
    ]) {
        assert!(retried.contains(*n), "{n} is not retried");
    }
    assert!(!retried.contains("LockLost"));
    let lost = task["Catch"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| {
            c["ErrorEquals"]
                .as_array()
                .is_some_and(|e| e.iter().any(|n| n == "LockLost"))
        })
        .unwrap_or_else(|| panic!("LockLost is not caught"));
    let next = lost["Next"].as_str().unwrap_or_default();
    assert_eq!(state(&asl, next)["Type"], "Fail");
}

#[test]
fn it_waits_on_pending_and_goes_straight_back_on_a_continuation() {
    let asl = asl();
    assert_eq!(state(&asl, "Cleanup")["Next"], "Again?");
    let choice = state(&asl, "Again?");
    let rules: Vec<(String, String)> = choice["Choices"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["Variable"].as_str().unwrap_or_default().to_string(),
                c["Next"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert!(
        rules.contains(&("$.continuation".into(), "Cleanup".into())),
        "{rules:?}"
    );
    let wait = rules
        .iter()
        .find(|(v, _)| v == "$.pending")
        .map(|(_, n)| n.clone())
        .unwrap_or_else(|| panic!("no pending rule: {rules:?}"));
    let w = state(&asl, &wait);
    assert_eq!(w["Type"], "Wait");
    assert_eq!(w["SecondsPath"], "$.pending.retryAfterSeconds");
    assert_eq!(w["Next"], "Cleanup");
    assert_eq!(
        state(&asl, choice["Default"].as_str().unwrap_or_default())["Type"],
        "Succeed"
    );
}
