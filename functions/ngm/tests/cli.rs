//! The `ngm` binary, run as an operator runs it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

fn ngm(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ngm"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("ngm runs");
    let mut input = child.stdin.take().unwrap();
    if let Some(s) = stdin {
        input.write_all(s.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn repo(path: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(path)
        .display()
        .to_string()
}

#[test]
fn schema_prints_the_committed_request_schema() {
    let out = ngm(&["schema"], None);
    assert!(out.status.success());
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let committed: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(repo("statemachine/request.schema.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(printed, committed);
}

#[test]
fn validate_says_ok_for_every_committed_example() {
    let dir = repo("statemachine/examples");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "json") {
            let out = ngm(&["validate", path.to_str().unwrap()], None);
            assert_eq!(
                String::from_utf8_lossy(&out.stdout).trim(),
                "ok",
                "{}",
                path.display()
            );
            assert!(out.status.success());
            seen += 1;
        }
    }
    assert!(seen >= 6, "expected the example inputs, found {seen}");
}

#[test]
fn validate_prints_every_problem_with_its_field_and_exits_1() {
    let bad = r#"{
      "cluster": {"name": "prod", "region": "us-east-1"},
      "source": {"managedNodeGroup": "-bad"},
      "target": {
        "instanceTypes": ["c5-4xlarge"],
        "scaling": {"min": 1, "max": 10, "desired": 12},
        "labels": {"kubernetes.io/role": "x"},
        "taints": [{"key": "a", "effect": "SOMETIMES"}]
      }
    }"#;
    let out = ngm(&["validate", "-"], Some(bad));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("target.scaling.desired (12) is above target.scaling.max (10)"),
        "{text}"
    );
}

#[test]
fn validate_reports_each_semantic_problem_on_its_own_line() {
    let bad = r#"{
      "cluster": {"name": "prod", "region": "us-east-1"},
      "source": {"managedNodeGroup": "-bad"},
      "target": {
        "instanceTypes": ["c5-4xlarge"],
        "scaling": {"min": 1, "max": 10, "desired": 12},
        "labels": {"kubernetes.io/role": "x"}
      }
    }"#;
    let out = ngm(&["validate", "-"], Some(bad));
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() >= 4, "{text}");
    for field in [
        "source.managedNodeGroup",
        "target.instanceTypes[0]",
        "target.scaling.desired",
        "target.labels",
    ] {
        assert!(
            lines.iter().any(|l| l.starts_with(field)),
            "no line for {field}: {text}"
        );
    }
}

#[test]
fn validate_rejects_unknown_fields_naming_them() {
    let out = ngm(
        &["validate", "-"],
        Some(r#"{"cluster": {"name": "p", "region": "us-east-1", "zone": "a"}}"#),
    );
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("zone"), "{text}");
}

#[test]
fn validate_of_a_missing_file_is_a_usage_error() {
    let out = ngm(&["validate", "/nonexistent/request.json"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/request.json"));
}

/// `ngm schema | head` and `ngm validate bad.json | head`: the reader is gone before ngm
/// writes. ngm ends quietly, with no panic and nothing on standard error: success for the
/// schema, and still 1 (rejected) for a request with problems.
#[test]
fn a_reader_that_has_gone_ends_the_command_quietly() {
    for (args, code) in [(vec!["schema"], 0), (vec!["validate", "-"], 1)] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ngm"))
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ngm runs");
        // Close the read end first: every write ngm makes meets a broken pipe.
        drop(child.stdout.take());
        let mut input = child.stdin.take().unwrap();
        input.write_all(b"{\"cluster\": {}}").unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert_eq!(out.status.code(), Some(code), "{args:?}");
    }
}
