//! Support for the offline checks on `infra/`: where the repository and the linters are, and the
//! SAM template read as YAML with its CloudFormation tags (`!Ref`, `!Sub`, `!GetAtt`, `!If`)
//! kept as tagged values.
//!
//! The linters come from `scripts/bootstrap`, which installs them into `$NGM_CACHE/venv-infra`
//! (`sam/` holds aws-sam-cli and cfn-lint, `checkov/` holds checkov). A missing linter fails the
//! test that needs it, with the command that installs it: these checks never pass by skipping.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_yaml::Value;

/// The repository root, found as every test crate finds it ([`ngm_testkit::moto::repo_root`]).
pub fn repo() -> PathBuf {
    ngm_testkit::moto::repo_root()
}

/// Reads a repository file, or panics naming it.
pub fn read(rel: &str) -> String {
    let p = repo().join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// `infra/template.yaml`, parsed.
pub fn template() -> Value {
    serde_yaml::from_str(&read("infra/template.yaml"))
        .unwrap_or_else(|e| panic!("infra/template.yaml is not YAML: {e}"))
}

/// The template's resources of `kind` (e.g. `AWS::Serverless::Function`), by logical id.
pub fn resources<'a>(template: &'a Value, kind: &str) -> Vec<(String, &'a Value)> {
    let Some(map) = template["Resources"].as_mapping() else {
        panic!("the template has no Resources mapping");
    };
    map.iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(id, r)| (id.as_str().unwrap_or_default().to_string(), r))
        .collect()
}

/// The value under a CloudFormation tag such as `!GetAtt`, `!Ref` or `!Sub`.
pub fn tagged<'a>(v: &'a Value, tag: &str) -> Option<&'a Value> {
    match v {
        Value::Tagged(t) if t.tag == tag => Some(&t.value),
        _ => None,
    }
}

/// Where `scripts/bootstrap` installs the linters: `NGM_INFRA_VENV`, else
/// `$NGM_CACHE/venv-infra`, else `~/.cache/ngm/venv-infra`.
pub fn infra_venv() -> PathBuf {
    if let Some(p) = std::env::var_os("NGM_INFRA_VENV") {
        return PathBuf::from(p);
    }
    let cache = std::env::var_os("NGM_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache/ngm")))
        .unwrap_or_else(|| PathBuf::from("/tmp/ngm-cache"));
    cache.join("venv-infra")
}

/// A linter's executable (`venv` is `sam` or `checkov`), or a panic that says how to get it.
pub fn tool(venv: &str, bin: &str) -> PathBuf {
    let p = infra_venv().join(venv).join("bin").join(bin);
    if !p.is_file() {
        panic!(
            "{bin} is missing at {}: run scripts/bootstrap (it installs tests/infra/requirements-{venv}.txt there), or set NGM_INFRA_VENV",
            p.display()
        );
    }
    p
}

/// Runs a linter offline from the repository root, with no AWS credentials or profile.
pub fn run(mut cmd: Command) -> Output {
    let nowhere = std::env::temp_dir().join("ngm-infra-no-aws-config");
    cmd.current_dir(repo())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_CONFIG_FILE", &nowhere)
        .env("AWS_SHARED_CREDENTIALS_FILE", &nowhere)
        .env("SAM_CLI_TELEMETRY", "0")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN");
    let shown = format!("{cmd:?}");
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {shown}: {e}"))
}

/// A command's output as text, for assertion messages.
pub fn shown(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A role's statements; a conditional `!If [cond, statement, AWS::NoValue]` counts as its
/// statement (the grant a deployment with that condition gets).
pub fn statements(role: &Value) -> Vec<Value> {
    let mut out = Vec::new();
    for p in role["Properties"]["Policies"]
        .as_sequence()
        .into_iter()
        .flatten()
    {
        for st in p["PolicyDocument"]["Statement"]
            .as_sequence()
            .into_iter()
            .flatten()
        {
            match tagged(st, "If") {
                Some(branches) => out.push(branches[1].clone()),
                None => out.push(st.clone()),
            }
        }
    }
    out
}

/// A scalar or a list, as a list (IAM accepts both for `Action` and `Resource`).
pub fn list(v: &Value) -> Vec<Value> {
    match v {
        Value::Sequence(s) => s.clone(),
        other => vec![other.clone()],
    }
}

/// The template's functions as (binary built, function resource).
pub fn functions_by_binary(template: &Value) -> Vec<(String, &Value)> {
    resources(template, "AWS::Serverless::Function")
        .into_iter()
        .map(|(_, f)| {
            let bin = f["Metadata"]["BuildProperties"]["Binary"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            (bin, f)
        })
        .collect()
}

/// The role resource a function runs as (`Role: !GetAtt <Role>.Arn`).
pub fn role_of<'a>(template: &'a Value, function: &Value) -> &'a Value {
    let role = tagged(&function["Properties"]["Role"], "GetAtt")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim_end_matches(".Arn");
    &template["Resources"][role]
}
