//! What the state-machine checks share: the repository, a definition read from it, its
//! `${...}` substitutions filled as the deployment template fills them, and both ASL linters
//! from npm (installed by scripts/bootstrap into tests/asl).

// Each test crate that includes this module uses its own part of it.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A file of the repository (`statemachine/migration.asl.json`), as text.
pub fn read(relative: &str) -> String {
    let p = repo().join(relative);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// Every `${Name}` in the text.
pub fn substitutions(text: &str) -> BTreeSet<String> {
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
pub fn substituted(text: &str) -> String {
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
pub fn lint(text: &str, name: &str) -> Option<String> {
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
