//! What a run needs around the state machine: the functions' timeouts from the SAM template,
//! the lock table in moto (and a lock another execution holds), the functions' calls as moto
//! counted them, and the operator's answer through the Step Functions callback API.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::settings::{HeldLock, OperatorAnswer};

/// Each function's `Timeout` from infra/template.yaml (`Globals.Function.Timeout`, overridden
/// by a function's own), by kebab name; and the global one.
pub fn function_timeouts(repo: &Path) -> Result<(Duration, BTreeMap<String, Duration>), String> {
    let path = repo.join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    timeouts_of(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn timeouts_of(text: &str) -> Result<(Duration, BTreeMap<String, Duration>), String> {
    let doc: serde_yaml::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let secs = |v: &serde_yaml::Value| v.as_u64().map(Duration::from_secs);
    let global = doc
        .get("Globals")
        .and_then(|g| g.get("Function"))
        .and_then(|f| f.get("Timeout"))
        .and_then(secs)
        .ok_or("no Globals.Function.Timeout")?;
    let mut out = BTreeMap::new();
    if let Some(serde_yaml::Value::Mapping(resources)) = doc.get("Resources") {
        for (id, r) in resources {
            let (Some(id), Some(kind)) = (id.as_str(), r.get("Type").and_then(|t| t.as_str()))
            else {
                continue;
            };
            if kind != "AWS::Serverless::Function" {
                continue;
            }
            if let Some(name) = ngm_core::asl::function_for_substitution(&format!("{id}Arn")) {
                let t = r
                    .get("Properties")
                    .and_then(|p| p.get("Timeout"))
                    .and_then(secs)
                    .unwrap_or(global);
                out.insert(name, t);
            }
        }
    }
    Ok((global, out))
}

/// The IAM actions each function's role allows (every `Action` in its role's policies, under
/// conditions too), from infra/template.yaml, by kebab name.
pub fn function_actions(repo: &Path) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    let path = repo.join("infra/template.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    actions_of(&text).map_err(|e| format!("{}: {e}", path.display()))
}

fn actions_of(text: &str) -> Result<BTreeMap<String, BTreeSet<String>>, String> {
    use serde_yaml::Value as Y;
    fn collect(v: &Y, out: &mut BTreeSet<String>) {
        match v {
            Y::Mapping(m) => {
                for (k, v) in m {
                    if k.as_str() == Some("Action") {
                        match v {
                            Y::String(a) => {
                                out.insert(a.clone());
                            }
                            Y::Sequence(xs) => {
                                out.extend(
                                    xs.iter().filter_map(|x| x.as_str().map(str::to_string)),
                                );
                            }
                            _ => {}
                        }
                    } else {
                        collect(v, out);
                    }
                }
            }
            Y::Sequence(xs) => xs.iter().for_each(|x| collect(x, out)),
            Y::Tagged(t) => collect(&t.value, out),
            _ => {}
        }
    }
    let doc: Y = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let resources = doc.get("Resources").ok_or("no Resources")?;
    let Y::Mapping(all) = resources else {
        return Err("Resources is not a mapping".into());
    };
    let mut out = BTreeMap::new();
    for (id, r) in all {
        let Some(id) = id.as_str() else { continue };
        if r.get("Type").and_then(Y::as_str) != Some("AWS::Serverless::Function") {
            continue;
        }
        let Some(name) = id
            .strip_suffix("Function")
            .map(ngm_core::asl::function_name)
        else {
            continue;
        };
        // `Role: !GetAtt XRole.Arn`.
        let role = match r.get("Properties").and_then(|p| p.get("Role")) {
            Some(Y::Tagged(t)) => t.value.as_str().and_then(|v| v.split('.').next()),
            _ => None,
        }
        .ok_or_else(|| format!("{id}: no `Role: !GetAtt <role>.Arn`"))?;
        let policies = all
            .get(role)
            .and_then(|r| r.get("Properties"))
            .and_then(|p| p.get("Policies"))
            .ok_or_else(|| format!("{id}: role {role} has no Policies"))?;
        let mut actions = BTreeSet::new();
        collect(policies, &mut actions);
        out.insert(name, actions);
    }
    Ok(out)
}

/// An SDK config for moto with the runner's own credentials (its calls are not the
/// functions': moto counts only user agents with `app/ngm-local`).
pub fn moto_conf(env: &BTreeMap<String, String>) -> Result<aws_config::SdkConfig, String> {
    let endpoint = env
        .get("AWS_ENDPOINT_URL")
        .ok_or("the twin runs without moto")?;
    Ok(aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(
            env.get("AWS_REGION").cloned().unwrap_or_default(),
        ))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("runner", "runner", None, None, "ngm-local"),
            ),
        )
        .build())
}

/// The lock table in moto, as the SAM template creates it in AWS.
pub async fn create_lock_table(conf: &aws_config::SdkConfig, table: &str) -> Result<(), String> {
    let client = aws_sdk_dynamodb::Client::new(conf);
    ngm_adapters::aws::lock::ensure_lock_table(&client, table)
        .await
        .map_err(|e| format!("creating the lock table: {e}"))
}

/// Writes the lock item of another execution (the table layout of
/// functions/adapters/src/aws/lock.rs: `pk`, `holder`, `holderArn`, `acquiredAt`,
/// `leaseUntil`, Unix seconds on the twin's clock).
pub async fn hold_lock(
    conf: &aws_config::SdkConfig,
    table: &str,
    cluster_arn: &str,
    holder: &HeldLock,
    holder_arn: &str,
    now: i64,
) -> Result<(), String> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let client = aws_sdk_dynamodb::Client::new(conf);
    let lease_until = now - holder.expired_seconds_ago;
    client
        .put_item()
        .table_name(table)
        .item("pk", AttributeValue::S(cluster_arn.to_string()))
        .item("holder", AttributeValue::S(holder.holder.clone()))
        .item("holderArn", AttributeValue::S(holder_arn.to_string()))
        .item(
            "acquiredAt",
            AttributeValue::N((lease_until - 3600).to_string()),
        )
        .item("leaseUntil", AttributeValue::N(lease_until.to_string()))
        .send()
        .await
        .map(|_| ())
        .map_err(|e| {
            format!(
                "writing the held lock: {}",
                aws_sdk_dynamodb::error::DisplayErrorContext(e)
            )
        })
}

/// The functions' calls to moto by `service:Operation` (tests/aws/moto_server.py counts the
/// requests whose user agent carries `app/ngm-local`), and by caller when moto breaks them
/// down (`app/ngm-local-<function>`); empty if moto cannot say.
pub async fn moto_request_counts(moto_url: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(addr) = moto_url.strip_prefix("http://") else {
        return Value::Null;
    };
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
        return Value::Null;
    };
    let request =
        format!("GET /ngm/requests HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    if conn.write_all(request.as_bytes()).await.is_err()
        || conn.read_to_string(&mut response).await.is_err()
    {
        return Value::Null;
    }
    response
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or(Value::Null)
}

/// `service:Operation` → count, from moto's answer: a flat map, or its `total`/`operations`
/// part when it also breaks the counts down by caller.
pub fn total_counts(v: &Value) -> BTreeMap<String, u64> {
    let flat = |m: &serde_json::Map<String, Value>| -> BTreeMap<String, u64> {
        m.iter()
            .filter_map(|(k, v)| v.as_u64().map(|n| (k.clone(), n)))
            .collect()
    };
    match v {
        Value::Object(m) => {
            for key in ["total", "operations", "counts"] {
                if let Some(Value::Object(inner)) = m.get(key) {
                    return flat(inner);
                }
            }
            flat(m)
        }
        _ => BTreeMap::new(),
    }
}

/// The callback's answer for `answer` (C2: `{"action": ..., "pod": ...}`), or `None` for a
/// SendTaskFailure.
pub fn operator_output(answer: OperatorAnswer, pod: Option<&str>) -> Option<Value> {
    match answer {
        OperatorAnswer::Abort => None,
        OperatorAnswer::Approve => Some(json!({})),
        OperatorAnswer::Retry => Some(json!({"action": "retry", "by": "ngm-local"})),
        OperatorAnswer::Rollback => Some(json!({"action": "rollback", "by": "ngm-local"})),
        OperatorAnswer::Force => {
            let mut v = json!({"action": "force", "by": "ngm-local"});
            if let Some(p) = pod {
                v["pod"] = json!(p);
            }
            Some(v)
        }
    }
}

/// The blocked pod a callback's detail names (`pod`, or the first of `blocked`/`pods`), as
/// `namespace/name`.
pub fn blocked_pod(detail: &Value) -> Option<String> {
    let as_pod = |v: &Value| -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Object(o) => {
                let name = o.get("name").or_else(|| o.get("pod"))?.as_str()?;
                let ns = o.get("namespace").and_then(Value::as_str);
                Some(ns.map_or_else(|| name.to_string(), |ns| format!("{ns}/{name}")))
            }
            _ => None,
        }
    };
    if let Some(p) = detail.get("pod").and_then(as_pod) {
        return Some(p);
    }
    for key in ["blocked", "pods", "blockedPods"] {
        if let Some(p) = detail
            .get(key)
            .and_then(Value::as_array)
            .and_then(|a| a.first())
            .and_then(as_pod)
        {
            return Some(p);
        }
    }
    None
}

/// Answers a task token through the Step Functions API, with the real SDK, as `ngm approve`
/// and `ngm abort` do.
pub async fn answer_operator(
    endpoint: &str,
    region: &str,
    token: &str,
    output: Option<Value>,
) -> Result<(), String> {
    let conf = aws_config::SdkConfig::builder()
        .behavior_version(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new("testing", "testing", None, None, "local"),
            ),
        )
        .build();
    let sfn = aws_sdk_sfn::Client::new(&conf);
    let shown = |e| format!("{}", aws_sdk_sfn::error::DisplayErrorContext(e));
    match output {
        Some(out) => sfn
            .send_task_success()
            .task_token(token)
            .output(out.to_string())
            .send()
            .await
            .map(|_| ())
            .map_err(shown),
        None => sfn
            .send_task_failure()
            .task_token(token)
            .error("OperatorAborted")
            .cause("the operator aborted the migration at the PDB-blocked drain")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}", aws_sdk_sfn::error::DisplayErrorContext(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts_come_from_the_template_globals_and_overrides() {
        let (global, t) = timeouts_of(
            "Globals:\n  Function:\n    Timeout: 120\nResources:\n  RetireFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      CodeUri: !Sub '${AWS::StackName}'\n  CleanupFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      Timeout: 300\n  LockTable:\n    Type: AWS::DynamoDB::Table\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(global, Duration::from_secs(120));
        assert_eq!(t["retire"], Duration::from_secs(120));
        assert_eq!(t["cleanup"], Duration::from_secs(300));
        assert_eq!(t.len(), 2);
        assert!(timeouts_of("Resources: {}\n").is_err());
    }

    #[test]
    fn a_functions_actions_are_its_roles_under_conditions_too() {
        let t = actions_of(
            "Resources:\n  RetireFunction:\n    Type: AWS::Serverless::Function\n    Properties:\n      Role: !GetAtt RetireRole.Arn\n  RetireRole:\n    Type: AWS::IAM::Role\n    Properties:\n      Policies:\n        - PolicyDocument:\n            Statement:\n              - Action: [eks:DescribeCluster, 'dynamodb:GetItem']\n              - !If\n                - HasVpc\n                - Action: ec2:CreateNetworkInterface\n                - !Ref AWS::NoValue\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let want: BTreeSet<String> = [
            "dynamodb:GetItem",
            "ec2:CreateNetworkInterface",
            "eks:DescribeCluster",
        ]
        .map(String::from)
        .into();
        assert_eq!(t["retire"], want);
        // A function without its role is an error, not an empty grant.
        assert!(actions_of("Resources:\n  RetireFunction:\n    Type: AWS::Serverless::Function\n    Properties: {}\n").is_err());
        // The repository's template, read as the runs read it.
        let real = function_actions(&crate::repo_root()).unwrap_or_else(|e| panic!("{e}"));
        for f in crate::run::FUNCTIONS {
            assert!(
                real.get(f as &str)
                    .is_some_and(|a| a.contains("eks:DescribeCluster")),
                "{f}"
            );
        }
        assert!(real["cut-traffic"].contains("autoscaling:AttachTrafficSources"));
    }

    #[test]
    fn the_repository_template_gives_every_step_a_timeout() {
        let (_, t) = function_timeouts(&crate::repo_root()).unwrap_or_else(|e| panic!("{e}"));
        for f in crate::run::FUNCTIONS {
            assert!(t.contains_key(f), "{f} has no timeout in the template");
        }
    }

    #[test]
    fn operator_answers_follow_the_callback_contract() {
        assert_eq!(operator_output(OperatorAnswer::Abort, None), None);
        assert_eq!(
            operator_output(OperatorAnswer::Force, Some("data/queue-1")),
            Some(json!({"action": "force", "by": "ngm-local", "pod": "data/queue-1"}))
        );
        assert_eq!(
            operator_output(OperatorAnswer::Retry, None).and_then(|v| v.get("action").cloned()),
            Some(json!("retry"))
        );
        assert_eq!(
            blocked_pod(&json!({"blocked": [{"namespace": "data", "name": "queue-1"}]})),
            Some("data/queue-1".to_string())
        );
        assert_eq!(
            blocked_pod(&json!({"pod": "data/queue-2"})),
            Some("data/queue-2".into())
        );
        assert_eq!(blocked_pod(&json!({"message": "x"})), None);
    }

    #[test]
    fn moto_counts_are_read_flat_or_from_their_total() {
        assert_eq!(
            total_counts(&json!({"autoscaling:DescribeAutoScalingGroups": 3})),
            BTreeMap::from([("autoscaling:DescribeAutoScalingGroups".to_string(), 3)])
        );
        assert_eq!(
            total_counts(
                &json!({"total": {"dynamodb:PutItem": 2}, "byCaller": {"x": {"dynamodb:PutItem": 2}}})
            ),
            BTreeMap::from([("dynamodb:PutItem".to_string(), 2)])
        );
    }
}
