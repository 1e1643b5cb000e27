//! Checks on `statemachine/migration.asl.json`: both ASL linters from npm accept it (and reject
//! a broken copy), its error names and function names are a contract with the Rust code, every
//! loop's deadline error has its Catch, the operator's answer and a continuation route where
//! they must (its Choice states are evaluated here), and its poll spacing keeps a 6-hour drain
//! under 2,000 history events and a whole execution under Step Functions' 25,000.

mod support;

use std::collections::BTreeSet;

use ngm_core::plan::deadlines;
use ngm_steps::steps::BATCH_MAX_ACTIONS;
use ngm_steps::{ALL_ERROR_NAMES, DEADLINE_ERROR_NAMES, LOCK_LOST, RETRYABLE_ERROR_NAMES};
use serde_json::{Map, Value, json};
use support::{lint, read, repo, substituted, substitutions};

/// Substitutions that name no function (supplied by the deployment template).
const OTHER_SUBSTITUTIONS: &[&str] = &["EventBusName"];
/// Lambda's own failures as Step Functions reports them (Developer Guide, "Handle Lambda service
/// exceptions"): the service errors, `Lambda.Unknown` for a crash or an out-of-memory, and
/// `Sandbox.Timedout` for a function that ran past its timeout.
const LAMBDA_SERVICE_ERRORS: &[&str] = &[
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
    "Lambda.Unknown",
    "Sandbox.Timedout",
];

fn asl_text() -> String {
    read("statemachine/migration.asl.json")
}

fn asl() -> Value {
    serde_json::from_str(&asl_text()).unwrap_or_else(|e| panic!("not JSON: {e}"))
}

fn states(asl: &Value) -> &Map<String, Value> {
    asl["States"]
        .as_object()
        .unwrap_or_else(|| panic!("no States"))
}

#[test]
fn both_asl_linters_accept_the_definition() {
    if let Some(problems) = lint(&substituted(&asl_text()), "migration.asl.json") {
        panic!("the linters found problems:\n{problems}");
    }
}

#[test]
fn both_asl_linters_reject_a_definition_with_a_dangling_transition() {
    let broken = substituted(&asl_text()).replace("\"Next\": \"Freeze\"", "\"Next\": \"Nowhere\"");
    let broken = broken.replace("\"Default\": \"Freeze\"", "\"Default\": \"Nowhere\"");
    assert_ne!(
        broken,
        substituted(&asl_text()),
        "the fixture must change something"
    );
    let problems = lint(&broken, "broken.asl.json").unwrap_or_else(|| panic!("accepted"));
    assert!(problems.contains("Nowhere"), "{problems}");
}

fn error_names(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "ErrorEquals" {
                    out.extend(
                        x.as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .map(String::from),
                    );
                } else {
                    error_names(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| error_names(x, out)),
        _ => {}
    }
}

#[test]
fn every_error_name_the_definition_matches_is_a_step_error_or_a_service_error() {
    let mut names = BTreeSet::new();
    error_names(&asl(), &mut names);
    assert!(!names.is_empty());
    for n in &names {
        let known = ALL_ERROR_NAMES.contains(&n.as_str())
            || n.starts_with("States.")
            || LAMBDA_SERVICE_ERRORS.contains(&n.as_str());
        assert!(known, "{n} is no step error (ngm_steps::ALL_ERROR_NAMES)");
    }
}

/// The Lambda Tasks: name, resource substitution.
fn lambda_tasks(asl: &Value) -> Vec<(String, String)> {
    states(asl)
        .iter()
        .filter(|(_, s)| s["Type"] == "Task")
        .filter_map(|(n, s)| {
            let r = s["Resource"].as_str()?;
            let name = r.strip_prefix("${")?.strip_suffix("FunctionArn}")?;
            Some((n.clone(), name.to_string()))
        })
        .collect()
}

#[test]
fn every_task_names_a_function_crate_and_every_function_crate_is_used() {
    let asl = asl();
    let mut used = BTreeSet::new();
    for (_, f) in lambda_tasks(&asl) {
        let dir = ngm_core::asl::function_name(&f);
        let manifest = repo().join("functions").join(&dir).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|_| panic!("${{{f}FunctionArn}} names no crate functions/{dir}"));
        assert!(
            text.contains(&format!("name = \"{dir}\"")),
            "functions/{dir} is not the package {dir}"
        );
        assert!(
            repo()
                .join("functions")
                .join(&dir)
                .join("src/main.rs")
                .exists(),
            "functions/{dir} is not a binary"
        );
        used.insert(dir);
    }
    // The cleanup machine (statemachine/cleanup.asl.json) runs the cleanup crate.
    let cleanup = std::fs::read_to_string(repo().join("statemachine/cleanup.asl.json"))
        .unwrap_or_else(|e| panic!("statemachine/cleanup.asl.json: {e}"));
    let cleanup: Value = serde_json::from_str(&cleanup).unwrap_or_else(|e| panic!("{e}"));
    for (_, f) in lambda_tasks(&cleanup) {
        used.insert(ngm_core::asl::function_name(&f));
    }
    for s in substitutions(&asl_text()) {
        assert!(
            s.ends_with("FunctionArn") || OTHER_SUBSTITUTIONS.contains(&s.as_str()),
            "unexpected substitution ${{{s}}}"
        );
    }
    // Every binary crate that depends on the harness is a step the machine runs.
    let dirs = std::fs::read_dir(repo().join("functions")).unwrap_or_else(|e| panic!("{e}"));
    for d in dirs.flatten() {
        let manifest = d.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        if text.contains("ngm-lambda") && d.path().join("src/main.rs").exists() {
            let name = d.file_name().to_string_lossy().to_string();
            assert!(used.contains(&name), "functions/{name} is run by no Task");
        }
    }
}

#[test]
fn every_lambda_task_retries_service_errors_and_the_retryable_step_errors() {
    let asl = asl();
    let tasks = lambda_tasks(&asl);
    assert_eq!(tasks.len(), 15, "{tasks:?}");
    for (name, _) in tasks {
        let mut retried = BTreeSet::new();
        error_names(&states(&asl)[&name]["Retry"], &mut retried);
        for n in LAMBDA_SERVICE_ERRORS.iter().chain(RETRYABLE_ERROR_NAMES) {
            assert!(retried.contains(*n), "{name} does not retry {n}");
        }
        for r in states(&asl)[&name]["Retry"]
            .as_array()
            .into_iter()
            .flatten()
        {
            assert!(r["BackoffRate"].as_f64() > Some(1.0), "{name}: no backoff");
            // Capped and spread, so that many executions retrying at once do not retry in step.
            assert!(r["MaxDelaySeconds"].as_u64().is_some(), "{name}: no cap");
            assert_eq!(r["JitterStrategy"], "FULL", "{name}");
        }
        let mut never = BTreeSet::new();
        error_names(&states(&asl)[&name]["Retry"], &mut never);
        assert!(!never.contains(LOCK_LOST), "{name} retries {LOCK_LOST}");
    }
}

/// States reachable from `from` by Next, Default, Choices and Catch.
fn successors(s: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for k in ["Next", "Default"] {
        out.extend(s[k].as_str().map(String::from));
    }
    for k in ["Choices", "Catch"] {
        for c in s[k].as_array().into_iter().flatten() {
            out.extend(c["Next"].as_str().map(String::from));
        }
    }
    out
}

/// `(errors, next, result path)` of each Catch of a state.
fn catches(s: &Value) -> Vec<(Vec<String>, String, String)> {
    s["Catch"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let mut names = BTreeSet::new();
            error_names(c, &mut names);
            (
                names.into_iter().collect(),
                c["Next"].as_str().unwrap_or_default().to_string(),
                c["ResultPath"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

/// The Catch that a Task's error `name` meets first (Catchers are tried in order).
fn caught_into(s: &Value, name: &str) -> Option<String> {
    catches(s)
        .into_iter()
        .find(|(names, _, _)| names.iter().any(|n| n == name || n == "States.ALL"))
        .map(|(_, next, _)| next)
}

#[test]
fn every_step_before_the_deletion_is_caught_into_the_rollback() {
    let asl = asl();
    let st = states(&asl);
    // Walk from the first step to DeleteOldGroup (the DeleteNodegroup call); every Task met on
    // the way must catch every error into Rollback, except LockLost.
    let mut seen = BTreeSet::new();
    let mut todo = vec!["CreateGroup".to_string()];
    while let Some(n) = todo.pop() {
        if n == "DeleteOldGroup" || n == "Rollback" || !seen.insert(n.clone()) {
            continue;
        }
        let s = &st[&n];
        if s["Type"] == "Task" {
            let all = catches(s);
            let last = all.last().unwrap_or_else(|| panic!("{n} catches nothing"));
            assert_eq!(
                last.0,
                ["States.ALL"],
                "{n}: the last Catch takes everything"
            );
            for (names, next, path) in &all {
                if names.iter().any(|x| x == LOCK_LOST) {
                    continue;
                }
                assert_eq!(next, "Rollback", "{n}: {names:?}");
                assert_eq!(path, "$.caught", "{n}: rollback reads $.caught");
            }
        }
        todo.extend(successors(s));
    }
    for must in ["Drain", "AwaitOperator", "DeleteOld", "OperatorRollback"] {
        assert!(
            seen.contains(must),
            "{must} not before the deletion: {seen:?}"
        );
    }
}

#[test]
fn delete_old_rolls_back_until_delete_nodegroup_was_called_and_not_after() {
    let asl = asl();
    let st = states(&asl);
    // The waiting half and the call are two Tasks of the same function.
    assert_eq!(st["DeleteOld"]["Resource"], "${DeleteOldFunctionArn}");
    assert_eq!(st["DeleteOldGroup"]["Resource"], "${DeleteOldFunctionArn}");
    assert_eq!(st["DeleteOld"]["Next"], "OldGroupEmpty?");
    assert_eq!(st["OldGroupEmpty?"]["Default"], "DeleteOldGroup");
    for name in [
        "Unexpected",
        "OldGroupNotEmpty",
        "Transient",
        "Lambda.Unknown",
    ] {
        assert_eq!(
            caught_into(&st["DeleteOld"], name).as_deref(),
            Some("Rollback"),
            "DeleteOld {name}"
        );
    }
    // Once DeleteNodegroup may have been called, the old group may be going: no rollback, a
    // Fail state the cleanup machine (started on FAILED) picks up.
    for task in ["DeleteOldGroup", "CheckDeleted", "Restore"] {
        for name in ["Unexpected", "OldGroupNotDeleted", "Transient"] {
            assert_eq!(
                caught_into(&st[task], name).as_deref(),
                Some("FailedAfterDeletion"),
                "{task} {name}"
            );
        }
    }
    assert_eq!(st["FailedAfterDeletion"]["Type"], "Fail");
}

#[test]
fn every_loop_deadline_error_has_its_own_catch_on_the_task_that_raises_it() {
    let asl = asl();
    let st = states(&asl);
    let raised_by = [
        ("NewGroupNotReady", "CheckGroupReady", "Rollback"),
        ("SurgeNotReady", "CheckSurge", "Rollback"),
        ("TargetsNotHealthy", "CutTraffic", "Rollback"),
        ("RetireStalled", "Retire", "Rollback"),
        ("DrainTimedOut", "Drain", "Rollback"),
        ("OldGroupNotEmpty", "DeleteOld", "Rollback"),
        ("OldGroupNotDeleted", "CheckDeleted", "FailedAfterDeletion"),
        ("RollbackStalled", "Rollback", "RollbackFailed"),
    ];
    let names: Vec<&str> = raised_by.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(names, DEADLINE_ERROR_NAMES, "one row per deadline error");
    for (name, task, into) in raised_by {
        let named = catches(&st[task])
            .into_iter()
            .find(|(names, _, _)| names.iter().any(|n| n == name))
            .unwrap_or_else(|| panic!("{task} has no Catch naming {name}"));
        assert_eq!(named.1, into, "{task} {name}");
        assert_eq!(caught_into(&st[task], name).as_deref(), Some(into));
        assert!(
            !RETRYABLE_ERROR_NAMES.contains(&name),
            "{name} must not be retried"
        );
    }
}

#[test]
fn lock_lost_ends_in_a_fail_state_without_rolling_back() {
    let asl = asl();
    let st = states(&asl);
    for (name, _) in lambda_tasks(&asl) {
        if name == "ValidateAndPlan" {
            // Nothing is changed yet; its Catch ends in NotStarted.
            assert_eq!(
                caught_into(&st[&name], LOCK_LOST).as_deref(),
                Some("NotStarted")
            );
            continue;
        }
        assert_eq!(
            caught_into(&st[&name], LOCK_LOST).as_deref(),
            Some("LostLock"),
            "{name}"
        );
    }
    let lost = &st["LostLock"];
    assert_eq!(lost["Type"], "Fail");
    assert_eq!(lost["ErrorPath"], "$.caught.Error");
}

// -- The Choice states, evaluated: the operators this definition uses, nothing more.

fn lookup<'a>(input: &'a Value, path: &str) -> Option<&'a Value> {
    let rest = path
        .strip_prefix("$.")
        .unwrap_or_else(|| panic!("path {path}"));
    rest.split('.').try_fold(input, |v, k| v.get(k))
}

fn holds(rule: &Value, input: &Value) -> bool {
    if let Some(all) = rule["And"].as_array() {
        return all.iter().all(|r| holds(r, input));
    }
    if let Some(any) = rule["Or"].as_array() {
        return any.iter().any(|r| holds(r, input));
    }
    if rule["Not"].is_object() {
        return !holds(&rule["Not"], input);
    }
    let var = rule["Variable"]
        .as_str()
        .unwrap_or_else(|| panic!("{rule}"));
    let v = lookup(input, var);
    if let Some(want) = rule["IsPresent"].as_bool() {
        return v.is_some() == want;
    }
    // Step Functions fails the execution when a compared path is absent (States.Runtime).
    let v = v.unwrap_or_else(|| panic!("{var} is absent: the Choice would fail at runtime"));
    if let Some(s) = rule["StringEquals"].as_str() {
        return v.as_str() == Some(s);
    }
    if let Some(n) = rule["NumericGreaterThanEquals"].as_f64() {
        return v.as_f64().is_some_and(|x| x >= n);
    }
    panic!("operator not evaluated here: {rule}")
}

/// The state a Choice goes to for `input`.
fn choose(st: &Map<String, Value>, choice: &str, input: &Value) -> String {
    let c = &st[choice];
    assert_eq!(c["Type"], "Choice", "{choice}");
    c["Choices"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|r| holds(r, input))
        .and_then(|r| r["Next"].as_str())
        .or_else(|| c["Default"].as_str())
        .unwrap_or_else(|| panic!("{choice} has no way out for {input}"))
        .to_string()
}

#[test]
fn the_operator_answer_is_kept_and_chooses_drain_or_rollback() {
    let asl = asl();
    let st = states(&asl);
    let s = &st["AwaitOperator"];
    assert_eq!(s["ResultPath"], "$.operator", "the answer is kept (C2)");
    assert_eq!(
        s["TimeoutSeconds"].as_u64(),
        Some(deadlines::OPERATOR_WAIT_SECS)
    );
    let next = s["Next"].as_str().unwrap_or_default();
    let cases = [
        (json!({"action": "retry"}), "Drain"),
        (
            json!({"action": "force", "pod": "shop/db-2", "by": "alice"}),
            "Drain",
        ),
        (
            json!({"action": "rollback", "by": "bob"}),
            "OperatorRollback",
        ),
        (json!({"action": "shrug"}), "OperatorAnswerUnknown"),
        (json!({"approved": true}), "OperatorAnswerUnknown"),
    ];
    for (answer, want) in cases {
        let input = json!({"phase": "retired", "blocked": {"pod": "a/b"}, "operator": answer});
        assert_eq!(choose(st, next, &input), want, "{answer}");
    }
    // Both Pass states hand the rollback a failure to report, as a Catch would.
    for pass in ["OperatorRollback", "OperatorAnswerUnknown"] {
        assert_eq!(st[pass]["Type"], "Pass");
        assert_eq!(st[pass]["ResultPath"], "$.caught");
        assert!(st[pass]["Result"]["Error"].is_string());
        assert_eq!(st[pass]["Next"], "Rollback");
    }
    // A timeout or `ngm abort` (SendTaskFailure) rolls back too.
    assert_eq!(
        caught_into(s, "States.Timeout").as_deref(),
        Some("Rollback")
    );
    assert_eq!(
        caught_into(s, "OperatorAborted").as_deref(),
        Some("Rollback")
    );
}

#[test]
fn a_continuation_goes_straight_back_to_its_step_without_a_wait() {
    let asl = asl();
    let st = states(&asl);
    let cont = json!({"step": "x", "batches": 1, "done": 500});
    for (task, choice, after) in [
        ("Retire", "Retired?", "Drain"),
        ("Rollback", "RolledBack?", "MigrationRolledBack"),
        ("Restore", "Restored?", "Migrated"),
    ] {
        assert_eq!(st[task]["Next"], choice);
        assert_eq!(choose(st, choice, &json!({"continuation": cont})), task);
        assert_eq!(choose(st, choice, &json!({})), after);
        if task != "Restore" {
            let waited = choose(
                st,
                choice,
                &json!({"pending": {"retryAfterSeconds": 60, "reason": "x"}}),
            );
            assert_eq!(st[&waited]["Type"], "Wait", "{task}");
        }
    }
}

#[test]
fn the_execution_timeout_is_the_budget_of_the_largest_policy_allowed() {
    let asl = asl();
    assert_eq!(
        asl["TimeoutSeconds"].as_u64(),
        Some(deadlines::EXECUTION_TIMEOUT_SECS)
    );
    let mut p = ngm_core::request::Policy {
        on_pdb_blocked: ngm_core::request::OnPdbBlocked::WaitForOperator,
        ..Default::default()
    };
    p.drain_deadline_seconds = deadlines::max_drain_deadline_secs(&p);
    assert_eq!(
        deadlines::execution_budget_secs(&p),
        deadlines::EXECUTION_TIMEOUT_SECS
    );
}

#[test]
fn the_operator_pause_is_a_task_token_callback_that_names_the_pod_and_pdb() {
    let asl = asl();
    let s = &states(&asl)["AwaitOperator"];
    assert!(
        s["Resource"]
            .as_str()
            .is_some_and(|r| r.ends_with(".waitForTaskToken"))
    );
    let detail = &s["Parameters"]["Entries"][0]["Detail"];
    assert_eq!(detail["taskToken.$"], "$$.Task.Token");
    // `blocked` carries `pod` and, when the API named it, `pdb` (MigrationState.blocked).
    assert_eq!(detail["blocked.$"], "$.blocked");
}

// Events Step Functions records per state (Developer Guide, "history events"): a Lambda Task
// enters, schedules, starts, succeeds and exits; a Choice and a Wait each enter and exit.
const TASK_EVENTS: u64 = 5;
const CHOICE_EVENTS: u64 = 2;
const WAIT_EVENTS: u64 = 2;
const SIX_HOURS: u64 = 6 * 3600;
const DRAIN_HISTORY_BUDGET: u64 = 2000;

/// The shortest wait on any path `task` → Choice → Wait → `task`: a fixed `Seconds`, or for a
/// `SecondsPath` the floor its Choice rule guarantees (`NumericGreaterThanEquals` on the same
/// path). An unguarded `SecondsPath` has floor 0.
fn poll_floor(st: &Map<String, Value>, task: &str) -> u64 {
    let choice_name = st[task]["Next"].as_str().unwrap_or_default();
    let choice = &st[choice_name];
    assert_eq!(
        choice["Type"], "Choice",
        "{task} is not followed by a Choice"
    );
    let mut targets: Vec<(String, Option<&Value>)> = choice["Choices"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| Some((r["Next"].as_str()?.to_string(), Some(r))))
        .collect();
    targets.extend(choice["Default"].as_str().map(|d| (d.to_string(), None)));
    let mut floor = None;
    for (target, rule) in targets {
        let w = &st[&target];
        if w["Type"] != "Wait" || w["Next"] != task {
            continue;
        }
        let secs = match (w["Seconds"].as_u64(), w["SecondsPath"].as_str(), rule) {
            (Some(s), _, _) => s,
            (None, Some(path), Some(r)) => guaranteed_minimum(r, path),
            _ => 0,
        };
        floor = Some(floor.map_or(secs, |f: u64| f.min(secs)));
    }
    floor.unwrap_or_else(|| panic!("{task} has no Choice → Wait → {task} loop"))
}

/// The `NumericGreaterThanEquals` a rule guarantees on `path`, directly or in an `And`.
fn guaranteed_minimum(rule: &Value, path: &str) -> u64 {
    if rule["Variable"] == path {
        return rule["NumericGreaterThanEquals"].as_u64().unwrap_or(0);
    }
    rule["And"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| guaranteed_minimum(r, path))
        .max()
        .unwrap_or(0)
}

#[test]
fn a_six_hour_drain_stays_under_two_thousand_history_events() {
    let asl = asl();
    let floor = poll_floor(states(&asl), "Drain");
    assert!(floor > 0, "drain polls have no floor");
    let per_poll = TASK_EVENTS + CHOICE_EVENTS + WAIT_EVENTS;
    let polls = SIX_HOURS.div_ceil(floor);
    let events = polls * per_poll;
    assert!(
        events < DRAIN_HISTORY_BUDGET,
        "{polls} polls of {per_poll} events at {floor} s = {events} events"
    );
    // The same spacing at the step's own 15 s rounds would not fit: the floor is what holds.
    assert!(SIX_HOURS.div_ceil(15) * per_poll > DRAIN_HISTORY_BUDGET);
}

const HISTORY_LIMIT: u64 = 25_000;

#[test]
fn batched_steps_over_ten_thousand_pods_stay_within_a_few_hundred_events() {
    let asl = asl();
    let st = states(&asl);
    let batches = 10_000u64.div_ceil(BATCH_MAX_ACTIONS as u64);
    for task in ["Retire", "Rollback", "Restore"] {
        let choice = st[task]["Next"].as_str().unwrap_or_default();
        assert_eq!(choose(st, choice, &json!({"continuation": {}})), task);
        // A batch is the Task and its Choice, no Wait.
        let events = batches * (TASK_EVENTS + CHOICE_EVENTS);
        assert!(events <= 500, "{task}: {batches} batches = {events} events");
    }
}

#[test]
fn a_whole_execution_with_every_loop_at_its_deadline_stays_under_the_history_limit() {
    use deadlines::*;
    let asl = asl();
    let st = states(&asl);
    let per_poll = TASK_EVENTS + CHOICE_EVENTS + WAIT_EVENTS;
    // The drain's polls over every retry an operator may ask: the deadline of a retry never
    // passes `latest_drain_by`, so all drains together fit between the start and it.
    let p = ngm_core::request::Policy::default();
    let drain_window = latest_drain_by(ngm_core::model::Timestamp(0), &p)
        .secs_since(ngm_core::model::Timestamp(0))
        + DRAIN_OVERRUN_SECS;
    let loops = [
        ("CheckGroupReady", GROUP_READY_SECS),
        ("CheckSurge", SURGE_READY_SECS),
        ("Retire", RETIRE_SECS),
        ("Drain", drain_window),
        ("DeleteOld", OLD_GROUP_EMPTY_SECS),
        ("CheckDeleted", OLD_GROUP_GONE_SECS),
        ("Rollback", ROLLBACK_SECS + 2 * MAX_LB_DRAIN_SECS),
    ];
    let mut total = 0;
    for (task, secs) in loops {
        let floor = poll_floor(st, task);
        assert!(floor >= 30, "{task} polls with no floor ({floor} s)");
        total += secs.div_ceil(floor) * per_poll;
    }
    // CutTraffic polls the load balancers faster: the gate every 10 s, the drain every 10 s for
    // two minutes and every 30 s after; the ASL's floor keeps every poll at 10 s or more.
    {
        use ngm_core::plan::lbdrain::*;
        let floor = poll_floor(st, "CutTraffic");
        assert!(
            floor >= GATE_POLL_SECS.min(DRAIN_FAST_POLL_SECS),
            "CutTraffic floor {floor}"
        );
        let polls = TARGETS_HEALTHY_SECS.div_ceil(GATE_POLL_SECS.max(floor))
            + DRAIN_FAST_WINDOW_SECS.div_ceil(DRAIN_FAST_POLL_SECS.max(floor))
            + MAX_LB_DRAIN_SECS.div_ceil(DRAIN_SLOW_POLL_SECS.max(floor));
        total += polls * per_poll;
    }
    // Batches of a 10,000-pod retire and rollback, and every Task once more per Lambda retry
    // allowance of a few failures each (3 events a failed attempt).
    let batches = 2 * 10_000u64.div_ceil(BATCH_MAX_ACTIONS as u64) * (TASK_EVENTS + CHOICE_EVENTS);
    let retries = 15 * 10 * 3;
    total += batches + retries;
    assert!(
        total < HISTORY_LIMIT,
        "{total} events with every loop at its deadline"
    );
}

#[test]
fn every_wait_loop_polls_its_own_task_with_the_delay_the_step_suggests() {
    let asl = asl();
    let st = states(&asl);
    for task in [
        "CheckGroupReady",
        "CheckSurge",
        "CutTraffic",
        "Retire",
        "Drain",
        "DeleteOld",
        "CheckDeleted",
        "Rollback",
    ] {
        // Panics when the loop is missing.
        let _ = poll_floor(st, task);
        let choice = &st[st[task]["Next"].as_str().unwrap_or_default()];
        let reads_pending = choice["Choices"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|r| r.to_string().contains("$.pending"));
        assert!(reads_pending, "{task}'s Choice does not read $.pending");
    }
    assert_eq!(st["TrafficCut?"]["Default"], "Retire");
}

#[test]
fn every_failure_ends_in_a_fail_state_that_says_why() {
    let asl = asl();
    let fails: Vec<(&String, &Value)> = states(&asl)
        .iter()
        .filter(|(_, s)| s["Type"] == "Fail")
        .collect();
    assert!(fails.len() >= 3);
    for (n, s) in fails {
        let has_error = s["Error"].is_string() || s["ErrorPath"].is_string();
        let has_cause = s["Cause"].is_string() || s["CausePath"].is_string();
        assert!(has_error && has_cause, "{n} does not say why");
    }
    // The rolled-back failure reports what rollback recorded from the Catch.
    assert_eq!(
        states(&asl)["MigrationRolledBack"]["ErrorPath"],
        "$.failure.error"
    );
}
