//! The committed schema and examples under `statemachine/` must match the code.

use std::path::PathBuf;

use super::{check_request, request_schema};

fn statemachine_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../statemachine")
}

#[test]
fn committed_request_schema_matches_the_types() {
    let path = statemachine_dir().join("request.schema.json");
    let generated = request_schema();
    if std::env::var_os("NGM_BLESS").is_some() {
        let text = serde_json::to_string_pretty(&generated).unwrap_or_default() + "\n";
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
    let committed: serde_json::Value = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or(serde_json::Value::Null);
    assert!(
        committed == generated,
        "{} is stale. Regenerate it with `NGM_BLESS=1 cargo test -p ngm-core committed_request_schema` \
         or `cargo run -p ngm -- schema > statemachine/request.schema.json`",
        path.display()
    );
}

#[test]
fn schema_lists_taint_effects_and_rejects_unknown_fields() {
    let s = request_schema().to_string();
    assert!(
        s.contains("\"NO_SCHEDULE\"") && s.contains("\"PREFER_NO_SCHEDULE\""),
        "{s}"
    );
    assert!(s.contains("\"additionalProperties\":false"), "{s}");
}

#[test]
fn every_example_request_parses_and_validates() {
    let dir = statemachine_dir().join("examples");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.map(|e| e.path()).unwrap_or_default();
        if path.extension().is_some_and(|x| x == "json") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Err(errs) = check_request(&text) {
                panic!("{}: {errs:?}", path.display());
            }
            names.push(
                path.file_stem()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    names.sort();
    for want in [
        "dry-run",
        "launch-template-new-version",
        "managed-ami-update",
        "resize-instance-types",
        "self-managed-to-managed",
        "wait-for-operator",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "missing example {want}: {names:?}"
        );
    }
}
