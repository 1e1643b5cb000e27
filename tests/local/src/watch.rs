//! The AMI watcher's part of a run (`workflow.amiReleases`): a release published as the
//! recommended one in moto's SSM, one scheduled tick of the real `ami-watch` through the Lambda
//! host, what it answered, and at the end whether the chain of migrations it started left the
//! opted-in group on the last release, still opted in.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use ngm_core::marks::AUTO_UPDATE_TAG;
use ngm_twin::report::GroupShape;
use ngm_twin::scenario::{NodeGroupKind, Scenario};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::expect::Outcome;

/// The watcher's name in the host (its binary, and `AmiWatchFunction` in the template).
pub const WATCH_FUNCTION: &str = "ami-watch";

/// The SSM public parameter holding the recommended release of an EKS AMI type, as AWS names
/// it (FACTS "SSM AMI parameters": AL2023 under `/aws/service/eks/optimized-ami/`, Bottlerocket
/// under `/aws/service/bottlerocket/`). Written from AWS's naming, not taken from ami-watch, so
/// that a watcher reading another parameter finds nothing and fails the run.
pub fn recommended_release_parameter(ami_type: &str, k8s: &str) -> Option<String> {
    let al2023 = |arch: &str, variant: &str| {
        format!(
            "/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/{variant}/recommended/release_version"
        )
    };
    let bottlerocket = |flavour: &str, arch: &str| {
        format!("/aws/service/bottlerocket/aws-k8s-{k8s}{flavour}/{arch}/latest/image_version")
    };
    Some(match ami_type {
        "AL2023_x86_64_STANDARD" => al2023("x86_64", "standard"),
        "AL2023_ARM_64_STANDARD" => al2023("arm64", "standard"),
        "AL2023_x86_64_NVIDIA" => al2023("x86_64", "nvidia"),
        "AL2023_ARM_64_NVIDIA" => al2023("arm64", "nvidia"),
        "AL2023_x86_64_NEURON" => al2023("x86_64", "neuron"),
        "BOTTLEROCKET_x86_64" => bottlerocket("", "x86_64"),
        "BOTTLEROCKET_ARM_64" => bottlerocket("", "arm64"),
        "BOTTLEROCKET_x86_64_NVIDIA" => bottlerocket("-nvidia", "x86_64"),
        "BOTTLEROCKET_ARM_64_NVIDIA" => bottlerocket("-nvidia", "arm64"),
        _ => return None,
    })
}

/// Where a release is published: the parameter of each AMI type among the scenario's managed
/// groups tagged `ngm.io/auto-update: "true"` (the groups ngm creates copy the AMI type).
pub fn release_parameters(scenario: &Scenario) -> Result<BTreeSet<String>, String> {
    let opted: Vec<_> = scenario
        .cluster
        .node_groups
        .iter()
        .filter(|g| {
            g.kind == NodeGroupKind::Managed
                && g.tags.get(AUTO_UPDATE_TAG).map(String::as_str) == Some("true")
        })
        .collect();
    if opted.is_empty() {
        return Err(format!(
            "workflow.amiReleases: no managed node group is tagged {AUTO_UPDATE_TAG}: \"true\", so the watcher has nothing to migrate"
        ));
    }
    opted
        .iter()
        .map(|g| {
            recommended_release_parameter(&g.ami_type, &scenario.cluster.version).ok_or_else(
                || {
                    format!(
                        "workflow.amiReleases: group {} has AMI type {}, which has no recommended-release parameter",
                        g.name, g.ami_type
                    )
                },
            )
        })
        .collect()
}

/// Publishes `release` at each of `parameters` in moto's SSM (tests/aws/moto_server.py
/// `POST /ngm/ssm-parameters`: AWS refuses PutParameter under `/aws/`).
pub async fn publish(
    moto_url: &str,
    region: &str,
    parameters: &BTreeSet<String>,
    release: &str,
) -> Result<(), String> {
    let values: serde_json::Map<String, Value> = parameters
        .iter()
        .map(|p| (p.clone(), json!(release)))
        .collect();
    let body = json!({ "region": region, "parameters": values });
    let answer =
        ngm_twin::twin::moto::request(moto_url, "POST", "/ngm/ssm-parameters", Some(&body)).await;
    match answer {
        Ok((200, _)) => Ok(()),
        Ok((code, answer)) => Err(format!(
            "publishing release {release} in moto's SSM: {code} {answer}"
        )),
        Err(e) => Err(format!("publishing release {release} in moto's SSM: {e}")),
    }
}

/// The event an EventBridge schedule sends (`aws_lambda_events` `CloudWatchEvent`), at `now`.
pub fn scheduled_event(region: &str, now: DateTime<Utc>, tick: usize) -> Value {
    json!({
        "version": "0",
        "id": format!("ngm-local-tick-{tick}"),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": "000000000000",
        "time": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "region": region,
        "resources": [format!("arn:aws:events:{region}:000000000000:rule/ngm-local-AmiWatchFunctionTick")],
        "detail": {},
    })
}

/// One group's line of a tick's answer (`ami_watch::GroupReport`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupReport {
    pub cluster: String,
    pub group: String,
    pub outcome: String,
    #[serde(default)]
    pub execution_arn: Option<String>,
}

/// Reads the watcher's answer: its group reports, or the function's or Lambda's error.
pub fn read_answer(code: u16, body: &str) -> Result<Vec<GroupReport>, String> {
    let v: Value = serde_json::from_str(body)
        .map_err(|e| format!("ami-watch answered {code} with no JSON ({e}): {body}"))?;
    if code != 200 {
        return Err(format!("Lambda answered {code}: {v}"));
    }
    if let Some(kind) = v.get("errorType").and_then(Value::as_str) {
        return Err(format!(
            "ami-watch failed: {kind}: {}",
            v.get("errorMessage")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ));
    }
    serde_json::from_value(v).map_err(|e| format!("ami-watch's answer is not its report: {e}"))
}

/// One scheduled tick through the host's Lambda Invoke API.
pub async fn tick(invoke_url: &str, event: &Value) -> Result<Vec<GroupReport>, String> {
    // The host's Invoke API is plain HTTP/1.1, as the twin's helper for moto's routes speaks it.
    let path = format!("/2015-03-31/functions/{WATCH_FUNCTION}/invocations");
    let (code, body) = ngm_twin::twin::moto::request(invoke_url, "POST", &path, Some(event))
        .await
        .map_err(|e| format!("invoking {WATCH_FUNCTION}: {e}"))?;
    read_answer(code, &body)
}

/// The reports as one line: `group: outcome; ...`.
pub fn describe(reports: &[GroupReport]) -> String {
    if reports.is_empty() {
        return "no opted-in group reported".into();
    }
    reports
        .iter()
        .map(|r| format!("{}: {}", r.group, r.outcome))
        .collect::<Vec<_>>()
        .join("; ")
}

/// One migration the watcher started, as it ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionRun {
    pub name: String,
    pub arn: String,
    /// The release published before the tick that started it.
    pub release: String,
    /// What its request asks for: `target.releaseVersion` and the source group.
    pub target_release: Option<String>,
    pub source: String,
    pub status: String,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub cause: Option<String>,
    pub transitions: usize,
}

impl ExecutionRun {
    /// The summary's line.
    pub fn line(&self) -> String {
        format!(
            "execution {} (release {}, from group {}): {}{}, {} transitions",
            self.name,
            self.release,
            self.source,
            self.outcome,
            self.error
                .as_ref()
                .map(|e| format!(" ({e}: {})", self.cause.as_deref().unwrap_or("")))
                .unwrap_or_default(),
            self.transitions
        )
    }
}

/// The request's source group and target release.
pub fn request_parts(input: &Value) -> (String, Option<String>) {
    let source = input
        .pointer("/source/managedNodeGroup")
        .or_else(|| input.pointer("/source/autoScalingGroup"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let release = input
        .pointer("/target/releaseVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    (source, release)
}

/// What the chain of migrations must leave once every one succeeded: each asked for the
/// release published before it, none of the groups they migrated from is left, and every
/// managed group still opted in (there must be one: the tag carries to each new group) is on
/// the last release.
pub fn chain_problems(runs: &[ExecutionRun], groups: &[GroupShape]) -> Vec<String> {
    let mut out = Vec::new();
    for r in runs {
        if r.target_release.as_deref() != Some(r.release.as_str()) {
            out.push(format!(
                "{} asked for release {:?}, not the published {}",
                r.name, r.target_release, r.release
            ));
        }
        if groups.iter().any(|g| g.name == r.source) {
            out.push(format!(
                "node group {}, which {} migrated, still exists",
                r.source, r.name
            ));
        }
    }
    let Some(last) = runs.last() else {
        return out;
    };
    let opted: Vec<&GroupShape> = groups
        .iter()
        .filter(|g| g.tags.get(AUTO_UPDATE_TAG).map(String::as_str) == Some("true"))
        .collect();
    if opted.is_empty() {
        out.push(format!(
            "no managed node group is left tagged {AUTO_UPDATE_TAG}=true (groups: {})",
            groups
                .iter()
                .map(|g| g.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for g in opted {
        if g.release_version != last.release {
            out.push(format!(
                "node group {} is on release {}, not the last published {}",
                g.name, g.release_version, last.release
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    #[test]
    fn parameters_follow_awss_naming_by_ami_type() {
        assert_eq!(
            recommended_release_parameter("AL2023_x86_64_STANDARD", "1.33").as_deref(),
            Some(
                "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/standard/recommended/release_version"
            )
        );
        assert_eq!(
            recommended_release_parameter("BOTTLEROCKET_ARM_64_NVIDIA", "1.32").as_deref(),
            Some("/aws/service/bottlerocket/aws-k8s-1.32-nvidia/arm64/latest/image_version")
        );
        assert_eq!(recommended_release_parameter("AL2_x86_64", "1.33"), None);
        assert_eq!(recommended_release_parameter("CUSTOM", "1.33"), None);
    }

    fn scenario(groups: Value) -> Scenario {
        serde_json::from_value(json!({
            "name": "t",
            "cluster": {"name": "c", "version": "1.32", "nodeGroups": groups},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn group(name: &str, ami: &str, tags: Value) -> Value {
        json!({"name": name, "instanceTypes": ["m5.large"], "zones": ["us-west-2a"],
               "amiType": ami, "amiRelease": "1.32.0-1", "desiredSize": 1, "tags": tags})
    }

    #[test]
    fn a_release_is_published_for_the_opted_in_managed_groups_only() {
        let s = scenario(json!([
            group(
                "a",
                "AL2023_ARM_64_STANDARD",
                json!({"ngm.io/auto-update": "true"})
            ),
            group(
                "b",
                "BOTTLEROCKET_x86_64",
                json!({"ngm.io/auto-update": "false"})
            ),
            group(
                "c",
                "AL2023_ARM_64_STANDARD",
                json!({"ngm.io/auto-update": "true"})
            ),
        ]));
        let p = release_parameters(&s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            p.into_iter().collect::<Vec<_>>(),
            vec![
                "/aws/service/eks/optimized-ami/1.32/amazon-linux-2023/arm64/standard/recommended/release_version"
            ]
        );
        let none = scenario(json!([group("b", "AL2023_x86_64_STANDARD", json!({}))]));
        let e = release_parameters(&none).err().unwrap_or_default();
        assert!(e.contains("ngm.io/auto-update"), "{e}");
        let custom = scenario(json!([group(
            "a",
            "CUSTOM",
            json!({"ngm.io/auto-update": "true"})
        )]));
        let e = release_parameters(&custom).err().unwrap_or_default();
        assert!(e.contains("CUSTOM"), "{e}");
    }

    #[test]
    fn the_watchers_answer_is_its_reports_or_its_error() {
        let ok = r#"[{"cluster":"c","group":"g","outcome":"started: r2","executionArn":"arn:x"},
                     {"cluster":"c","group":"h","outcome":"skipped: already on r2"}]"#;
        let reports = read_answer(200, ok).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(reports[0].execution_arn.as_deref(), Some("arn:x"));
        assert_eq!(
            describe(&reports),
            "g: started: r2; h: skipped: already on r2"
        );
        let failed = read_answer(
            200,
            r#"{"errorType":"ClusterNotFound","errorMessage":"cluster c does not exist"}"#,
        );
        assert!(
            failed
                .as_ref()
                .is_err_and(|e| e.contains("ClusterNotFound: cluster c")),
            "{failed:?}"
        );
        assert!(read_answer(500, r#"{"Type":"Service","message":"x"}"#).is_err());
        assert!(read_answer(200, "not json").is_err());
    }

    #[test]
    fn the_scheduled_event_is_read_as_a_cloudwatch_event_at_the_twins_time() {
        let now = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let e = scheduled_event("us-west-2", now, 1);
        assert_eq!(e["time"], "2026-01-01T00:00:00Z");
        assert_eq!(e["detail-type"], "Scheduled Event");
        assert_eq!(e["resources"].as_array().map(Vec::len), Some(1));
    }

    fn run(name: &str, source: &str, release: &str) -> ExecutionRun {
        ExecutionRun {
            name: name.into(),
            arn: format!("arn:{name}"),
            release: release.into(),
            target_release: Some(release.into()),
            source: source.into(),
            status: "SUCCEEDED".into(),
            outcome: Outcome::Success,
            error: None,
            cause: None,
            transitions: 30,
        }
    }

    fn shape(name: &str, release: &str, tags: &[(&str, &str)]) -> GroupShape {
        GroupShape {
            name: name.into(),
            release_version: release.into(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect::<BTreeMap<_, _>>(),
            ..GroupShape::default()
        }
    }

    #[test]
    fn a_chain_that_left_its_group_on_the_last_release_and_opted_in_holds() {
        let runs = [run("ami-1", "g", "r1"), run("ami-2", "g-1a2b3c", "r2")];
        let end = [shape("g-4d5e6f", "r2", &[(AUTO_UPDATE_TAG, "true")])];
        assert_eq!(chain_problems(&runs, &end), Vec::<String>::new());
    }

    #[test]
    fn a_lost_tag_a_stale_release_or_a_group_left_behind_breaks_the_chain() {
        let runs = [run("ami-1", "g", "r1"), run("ami-2", "g-1a2b3c", "r2")];
        let untagged = [shape("g-4d5e6f", "r2", &[])];
        let p = chain_problems(&runs, &untagged);
        assert!(
            p.len() == 1 && p[0].contains("no managed node group"),
            "{p:?}"
        );
        let stale = [shape("g-4d5e6f", "r1", &[(AUTO_UPDATE_TAG, "true")])];
        let p = chain_problems(&runs, &stale);
        assert!(
            p.len() == 1 && p[0].contains("not the last published r2"),
            "{p:?}"
        );
        let left = [
            shape("g-1a2b3c", "r1", &[]),
            shape("g-4d5e6f", "r2", &[(AUTO_UPDATE_TAG, "true")]),
        ];
        let p = chain_problems(&runs, &left);
        assert!(p.len() == 1 && p[0].contains("g-1a2b3c"), "{p:?}");
        let mut wrong = runs.clone();
        wrong[1].target_release = Some("r3".into());
        let end = [shape("g-4d5e6f", "r2", &[(AUTO_UPDATE_TAG, "true")])];
        let p = chain_problems(&wrong, &end);
        assert!(
            p.len() == 1 && p[0].contains("not the published r2"),
            "{p:?}"
        );
    }
}
