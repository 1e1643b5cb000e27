//! The template gives each function the environment its `main` reads and the grants its ports
//! call, and no more: checked against the code (the `NGM_*` names its sources read) and against
//! the calls listed here from `functions/ami-watch`, `functions/resize-api`,
//! `functions/steps/src/start.rs` and `functions/adapters/src/aws/lock.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ngm_infra_tests::{
    functions_by_binary, list, repo, resources, role_of, statements, tagged, template,
};
use serde_yaml::Value;

const TRIGGERS: &[&str] = &["ami-watch", "resize-api"];

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The value a function's environment gives `var` under a tag (`Ref`, `Sub`), or "".
fn env_tagged(f: &Value, var: &str, tag: &str) -> String {
    env(f)
        .get(var)
        .and_then(|v| tagged(v, tag))
        .map(|v| s(v).to_string())
        .unwrap_or_default()
}

fn env(f: &Value) -> BTreeMap<String, Value> {
    f["Properties"]["Environment"]["Variables"]
        .as_mapping()
        .into_iter()
        .flatten()
        .map(|(k, v)| (s(k).to_string(), v.clone()))
        .collect()
}

/// Every `"NGM_..."` string literal in the `.rs` files under `dir`.
fn ngm_names_in(dir: &Path, out: &mut BTreeSet<String>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()));
    for e in entries.filter_map(Result::ok) {
        let p = e.path();
        if p.is_dir() {
            ngm_names_in(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            for rest in text.split("\"NGM_").skip(1) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                    .collect();
                if rest[name.len()..].starts_with('"') {
                    out.insert(format!("NGM_{name}"));
                }
            }
        }
    }
}

/// The `NGM_*` variables a function's binary can read: its own crate, plus the step harness
/// (`functions/lambda`) for the step functions.
fn names_read_by(bin: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    ngm_names_in(&repo().join(format!("functions/{bin}/src")), &mut out);
    if !TRIGGERS.contains(&bin) {
        ngm_names_in(&repo().join("functions/lambda/src"), &mut out);
    }
    out
}

/// What each `main` refuses to start without.
fn required(bin: &str) -> &'static [&'static str] {
    match bin {
        "ami-watch" => &["NGM_CLUSTERS", "NGM_STATE_MACHINE_ARN", "NGM_LOCK_TABLE"],
        "resize-api" => &["NGM_STATE_MACHINE_ARN", "NGM_LOCK_TABLE"],
        // functions/lambda's Config::from_env.
        _ => &["NGM_LOCK_TABLE"],
    }
}

#[test]
fn every_function_gets_the_variables_its_main_requires_and_only_ones_its_code_reads() {
    let t = template();
    let fns = functions_by_binary(&t);
    assert_eq!(
        fns.len(),
        17,
        "the 14 steps, cleanup, ami-watch and resize-api"
    );
    for (bin, f) in fns {
        let vars = env(f);
        for want in required(&bin) {
            assert!(vars.contains_key(*want), "{bin}: {want} is not set");
        }
        let read = names_read_by(&bin);
        assert!(
            read.contains("NGM_LOCK_TABLE"),
            "{bin}: found no NGM_ names in its code ({read:?})"
        );
        for name in vars.keys().filter(|k| k.starts_with("NGM_")) {
            assert!(
                read.contains(name),
                "{bin}: the template sets {name}, which its code never reads ({read:?})"
            );
        }
        // The twin's overrides of the cluster endpoint and the clock have no place in AWS.
        for local in ["NGM_CLUSTER_ENDPOINT", "NGM_CLUSTER_CA", "NGM_CLOCK"] {
            assert!(!vars.contains_key(local), "{bin} sets {local}");
        }
    }
}

#[test]
fn every_function_is_told_the_stacks_lock_table() {
    let t = template();
    let tables = resources(&t, "AWS::DynamoDB::Table");
    let table = tables[0].0.as_str();
    for (bin, f) in functions_by_binary(&t) {
        assert_eq!(env_tagged(f, "NGM_LOCK_TABLE", "Ref"), table, "{bin}");
    }
}

#[test]
fn the_triggers_watch_the_stacks_cluster_and_start_the_stacks_state_machine() {
    let t = template();
    let machines = resources(&t, "AWS::Serverless::StateMachine");
    let name = tagged(&machines[0].1["Properties"]["Name"], "Sub")
        .map(s)
        .unwrap_or_default();
    assert_eq!(name, "${AWS::StackName}-migration");
    let fns: BTreeMap<String, &Value> = functions_by_binary(&t).into_iter().collect();
    for bin in TRIGGERS {
        let arn = env_tagged(fns[*bin], "NGM_STATE_MACHINE_ARN", "Sub");
        assert_eq!(
            arn,
            format!(
                "arn:${{AWS::Partition}}:states:${{AWS::Region}}:${{AWS::AccountId}}:stateMachine:{name}"
            ),
            "{bin}"
        );
    }
    assert_eq!(
        env_tagged(fns["ami-watch"], "NGM_CLUSTERS", "Ref"),
        "ClusterName"
    );
}

/// (action, resource) pairs a function's role grants, without its log and trace plumbing.
fn grants(t: &Value, f: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for st in statements(role_of(t, f)) {
        for a in list(&st["Action"]) {
            let a = s(&a).to_string();
            if a.starts_with("logs:") || a.starts_with("xray:") {
                continue;
            }
            for r in list(&st["Resource"]) {
                let r = match &r {
                    Value::Tagged(tv) => format!("{} {}", tv.tag, s(&tv.value)),
                    other => s(other).to_string(),
                };
                out.insert((a.clone(), r));
            }
        }
    }
    out
}

const CLUSTER: &str =
    "!Sub arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:cluster/${ClusterName}";
const NODEGROUPS: &str =
    "!Sub arn:${AWS::Partition}:eks:${AWS::Region}:${AWS::AccountId}:nodegroup/${ClusterName}/*/*";
const MACHINE: &str = "!Sub arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:stateMachine:${AWS::StackName}-migration";
const EXECUTIONS: &str = "!Sub arn:${AWS::Partition}:states:${AWS::Region}:${AWS::AccountId}:execution:${AWS::StackName}-migration:*";
const LOCK: &str = "!GetAtt LockTable.Arn";

fn pairs(list: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    list.iter()
        .map(|(a, r)| ((*a).to_string(), (*r).to_string()))
        .collect()
}

#[test]
fn the_triggers_are_granted_exactly_the_calls_their_ports_make_on_the_narrowest_resources() {
    let t = template();
    let fns: BTreeMap<String, &Value> = functions_by_binary(&t).into_iter().collect();
    let lock = [
        ("dynamodb:GetItem", LOCK),
        ("dynamodb:PutItem", LOCK),
        ("dynamodb:DeleteItem", LOCK),
    ];
    let ssm_eks =
        "!Sub arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/eks/optimized-ami/*";
    let ssm_br =
        "!Sub arn:${AWS::Partition}:ssm:${AWS::Region}::parameter/aws/service/bottlerocket/*";
    let mut watch = vec![
        ("eks:DescribeCluster", CLUSTER),
        ("eks:ListNodegroups", CLUSTER),
        ("eks:DescribeNodegroup", NODEGROUPS),
        ("ssm:GetParameter", ssm_eks),
        ("ssm:GetParameter", ssm_br),
        ("states:StartExecution", MACHINE),
        ("states:DescribeExecution", EXECUTIONS),
    ];
    watch.extend(lock);
    assert_eq!(grants(&t, fns["ami-watch"]), pairs(&watch), "ami-watch");
    let mut api = vec![
        ("eks:DescribeCluster", CLUSTER),
        ("states:StartExecution", MACHINE),
        ("states:DescribeExecution", EXECUTIONS),
        ("states:GetExecutionHistory", EXECUTIONS),
    ];
    api.extend(lock);
    assert_eq!(grants(&t, fns["resize-api"]), pairs(&api), "resize-api");
}

#[test]
fn only_the_lock_users_are_granted_dynamodb_and_only_on_the_lock_table() {
    let t = template();
    // The triggers take the lock before StartExecution; validate-and-plan takes it and gives it
    // back when the run ends there; restore, rollback and cleanup give it back; every step (and
    // cleanup between rounds) renews it with the new state (functions/lambda's renew_lock).
    let take = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
    ];
    let take_and_renew = [
        "dynamodb:GetItem",
        "dynamodb:PutItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
    ];
    let give_back = [
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
        "dynamodb:UpdateItem",
    ];
    let renew = ["dynamodb:GetItem", "dynamodb:UpdateItem"];
    for (bin, f) in functions_by_binary(&t) {
        let granted: BTreeSet<(String, String)> = grants(&t, f)
            .into_iter()
            .filter(|(a, _)| a.starts_with("dynamodb:"))
            .collect();
        let want: &[&str] = match bin.as_str() {
            "ami-watch" | "resize-api" => &take,
            "validate-and-plan" => &take_and_renew,
            "restore" | "rollback" | "cleanup" => &give_back,
            _ => &renew,
        };
        let want: Vec<(&str, &str)> = want.iter().map(|a| (*a, LOCK)).collect();
        assert_eq!(granted, pairs(&want), "{bin}");
    }
}

#[test]
fn whoever_may_take_over_or_clean_up_may_ask_whether_an_execution_still_runs() {
    let t = template();
    for (bin, f) in functions_by_binary(&t) {
        let describes = grants(&t, f).contains(&(
            "states:DescribeExecution".to_string(),
            EXECUTIONS.to_string(),
        ));
        let wanted = matches!(
            bin.as_str(),
            "validate-and-plan" | "cleanup" | "ami-watch" | "resize-api"
        );
        assert_eq!(describes, wanted, "{bin}");
    }
}

#[test]
fn no_role_tags_the_cluster_or_lists_executions() {
    let t = template();
    for (bin, f) in functions_by_binary(&t) {
        for (a, r) in grants(&t, f) {
            if a == "eks:TagResource" || a == "eks:UntagResource" {
                assert_eq!(r, NODEGROUPS, "{bin}: {a} beyond node groups");
            }
            assert_ne!(a, "states:ListExecutions", "{bin}");
        }
    }
}
