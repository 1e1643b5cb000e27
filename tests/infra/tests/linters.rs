//! The template passes the three linters issue 5 names, offline and without AWS credentials:
//! `cfn-lint`, `sam validate --lint` and `checkov --skip-download`, where every check checkov
//! skips carries a reason in the template and is skipped only where it would otherwise fail.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use ngm_infra_tests::{read, run, shown, tool};
use serde_json::Value;

/// A scratch copy of the template under the system temp dir, named for this test.
fn scratch(name: &str, text: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ngm-infra-{}-{name}.yaml", std::process::id()));
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", p.display()));
    p
}

#[test]
fn cfn_lint_finds_nothing_in_the_template() {
    let mut cmd = Command::new(tool("sam", "cfn-lint"));
    cmd.arg("infra/template.yaml");
    let out = run(cmd);
    assert!(out.status.success(), "cfn-lint: {}", shown(&out));
}

#[test]
fn cfn_lint_reports_a_role_that_does_not_exist() {
    // The control for the test above: the same linter, same flags, does report a real fault.
    let text = read("infra/template.yaml");
    let good = "Role: !GetAtt DrainRole.Arn";
    assert!(
        text.contains(good),
        "the drain function's role moved; update this control"
    );
    let p = scratch(
        "no-such-role",
        &text.replace(good, "Role: !GetAtt NoSuchRole.Arn"),
    );
    let mut cmd = Command::new(tool("sam", "cfn-lint"));
    cmd.arg(&p);
    let out = run(cmd);
    let _ = std::fs::remove_file(&p);
    assert!(
        !out.status.success(),
        "cfn-lint accepted a missing role: {}",
        shown(&out)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NoSuchRole"),
        "{}",
        shown(&out)
    );
}

#[test]
fn sam_validate_lint_accepts_the_template_offline_without_credentials() {
    let mut cmd = Command::new(tool("sam", "sam"));
    cmd.args(["validate", "--lint", "--template", "infra/template.yaml"]);
    let out = run(cmd);
    assert!(out.status.success(), "sam validate --lint: {}", shown(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("is a valid SAM Template"),
        "{}",
        shown(&out)
    );
}

/// checkov's JSON report on `file` (one report, or the CloudFormation one of several).
fn checkov(file: &Path) -> Value {
    let mut cmd = Command::new(tool("checkov", "checkov"));
    cmd.args(["--skip-download", "--output", "json", "--file"])
        .arg(file);
    let out = run(cmd);
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("checkov printed no JSON report ({e}): {}", shown(&out)));
    match report {
        Value::Array(reports) => reports
            .into_iter()
            .find(|r| r["check_type"] == "cloudformation")
            .unwrap_or_else(|| panic!("checkov ran no CloudFormation checks: {}", shown(&out))),
        r => r,
    }
}

/// (check id, resource) of the report's `kind` ("failed_checks" or "skipped_checks").
fn checks(report: &Value, kind: &str) -> BTreeSet<(String, String)> {
    report["results"][kind]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["check_id"].as_str().unwrap_or_default().to_string(),
                        c["resource"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn checkov_passes_and_every_skipped_check_says_why() {
    let report = checkov(Path::new("infra/template.yaml"));
    let failed = checks(&report, "failed_checks");
    assert!(failed.is_empty(), "checkov failed checks: {failed:#?}");
    let passed = report["results"]["passed_checks"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(passed > 50, "checkov ran only {passed} checks: {report}");
    for c in report["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let why = c["check_result"]["suppress_comment"].as_str().unwrap_or("");
        assert!(
            why.split_whitespace().count() >= 8,
            "{} on {} is skipped without a reason: {why:?}",
            c["check_id"],
            c["resource"]
        );
    }
}

/// The template with every `checkov:` metadata block removed.
fn without_skips(text: &str) -> String {
    let mut out = Vec::new();
    let mut skipping: Option<usize> = None;
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(at) = skipping {
            if line.trim().is_empty() || indent > at {
                continue;
            }
            skipping = None;
        }
        if line.trim() == "checkov:" {
            skipping = Some(indent);
            continue;
        }
        out.push(line);
    }
    out.join("\n") + "\n"
}

#[test]
fn every_checkov_skip_is_one_that_would_otherwise_fail() {
    let text = read("infra/template.yaml");
    let skipped = checks(&checkov(Path::new("infra/template.yaml")), "skipped_checks");
    assert!(
        !skipped.is_empty(),
        "no skips found: the comparison below would prove nothing"
    );
    let bare = without_skips(&text);
    assert!(!bare.contains("checkov:"), "a skip block survived");
    let p = scratch("no-skips", &bare);
    let failed = checks(&checkov(&p), "failed_checks");
    let _ = std::fs::remove_file(&p);
    let stale: Vec<_> = skipped.difference(&failed).collect();
    let unexplained: Vec<_> = failed.difference(&skipped).collect();
    assert!(
        stale.is_empty(),
        "skips of checks that pass anyway: {stale:#?}"
    );
    assert!(
        unexplained.is_empty(),
        "failures only the skips hide?: {unexplained:#?}"
    );
}
