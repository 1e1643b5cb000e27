//! Checks on `statemachine/migration.asl.json`: both ASL linters from npm accept it (and reject
//! a broken copy), its error names and function names are a contract with the Rust code, and
//! its poll spacing keeps a 6-hour drain under 2,000 history events.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ngm_steps::{ALL_ERROR_NAMES, RETRYABLE_ERROR_NAMES};
use serde_json::{Map, Value};

/// Substitutions that name no function (supplied by the deployment template).
const OTHER_SUBSTITUTIONS: &[&str] = &["EventBusName"];
const LAMBDA_SERVICE_ERRORS: &[&str] = &[
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn asl_text() -> String {
    let p = repo().join("statemachine/migration.asl.json");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn asl() -> Value {
    serde_json::from_str(&asl_text()).unwrap_or_else(|e| panic!("not JSON: {e}"))
}

fn states(asl: &Value) -> &Map<String, Value> {
    asl["States"]
        .as_object()
        .unwrap_or_else(|| panic!("no States"))
}

/// Every `${Name}` in the text.
fn substitutions(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("${") {
        let tail = &rest[i + 2..];
        let end = tail.find('}').unwrap_or_else(|| panic!("unclosed ${{"));
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// The definition with every substitution replaced by a well-formed value, as the linters
/// (and the deployed machine) see it.
fn substituted(text: &str) -> String {
    let mut out = text.to_string();
    for name in substitutions(text) {
        let value = match name.strip_suffix("FunctionArn") {
            Some(f) => format!("arn:aws:lambda:eu-west-1:111122223333:function:ngm-{f}"),
            None => "ngm-test-bus".to_string(),
        };
        out = out.replace(&format!("${{{name}}}"), &value);
    }
    out
}

fn linter(bin: &str) -> PathBuf {
    let p = repo().join("tests/asl/node_modules/.bin").join(bin);
    assert!(
        p.exists(),
        "{} is missing: run scripts/bootstrap (it installs tests/asl/package.json)",
        p.display()
    );
    p
}

/// Runs both linters on `text`; the problems they print, or `None` when both accept it.
fn lint(text: &str, name: &str) -> Option<String> {
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let runs = [
        Command::new(linter("statelint")).arg(&path).output(),
        Command::new(linter("asl-validator"))
            .arg("--json-path")
            .arg(&path)
            .output(),
    ];
    let mut problems = String::new();
    for out in runs {
        let out = out.unwrap_or_else(|e| panic!("cannot run a linter (node missing?): {e}"));
        if !out.status.success() {
            problems.push_str(&String::from_utf8_lossy(&out.stdout));
            problems.push_str(&String::from_utf8_lossy(&out.stderr));
        }
    }
    (!problems.is_empty()).then_some(problems)
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
    assert_eq!(tasks.len(), 14, "{tasks:?}");
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
        }
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

#[test]
fn every_step_before_the_deletion_is_caught_into_the_rollback() {
    let asl = asl();
    let st = states(&asl);
    // Walk from the first step to DeleteOld; every Task met on the way must catch into Rollback.
    let mut seen = BTreeSet::new();
    let mut todo = vec!["CreateGroup".to_string()];
    while let Some(n) = todo.pop() {
        if n == "DeleteOld" || n == "Rollback" || !seen.insert(n.clone()) {
            continue;
        }
        let s = &st[&n];
        if s["Type"] == "Task" {
            let catches: Vec<&str> = s["Catch"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| c["ErrorEquals"] == serde_json::json!(["States.ALL"]))
                .filter_map(|c| c["Next"].as_str())
                .collect();
            assert_eq!(catches, ["Rollback"], "{n}");
            assert_eq!(
                s["Catch"][0]["ResultPath"], "$.caught",
                "{n}: rollback reads $.caught"
            );
        }
        todo.extend(successors(s));
    }
    assert!(
        seen.contains("Drain") && seen.contains("AwaitOperator"),
        "{seen:?}"
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
    assert_eq!(
        s["ResultPath"],
        Value::Null,
        "the state passes through unchanged"
    );
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

#[test]
fn every_wait_loop_polls_its_own_task_with_the_delay_the_step_suggests() {
    let asl = asl();
    let st = states(&asl);
    for task in [
        "CheckGroupReady",
        "CheckSurge",
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
    assert_eq!(st["WaitLbDrain"]["SecondsPath"], "$.lbDrainSeconds");
    assert_eq!(st["CutTraffic"]["Next"], "WaitLbDrain");
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
