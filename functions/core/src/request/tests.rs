use serde_json::json;

use super::*;
use crate::fixtures::{SpecExt, managed_source, request_with_target};

fn messages(r: Result<(), Vec<FieldError>>) -> Vec<String> {
    r.err()
        .unwrap_or_default()
        .into_iter()
        .map(|e| e.message)
        .collect()
}

fn base() -> serde_json::Value {
    json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"managedNodeGroup": "ng-a"},
    })
}

fn with(patch: serde_json::Value) -> serde_json::Value {
    let mut v = base();
    if let (Some(obj), Some(p)) = (v.as_object_mut(), patch.as_object()) {
        for (k, val) in p {
            obj.insert(k.clone(), val.clone());
        }
    }
    v
}

#[test]
fn a_minimal_request_gets_every_policy_default() {
    let req = check_request(&base().to_string()).unwrap_or_else(|e| panic!("{e:?}"));
    let p = &req.policy;
    assert_eq!(p.surge_factor, 2.0);
    assert_eq!(
        p.system_deployments,
        vec![
            NamespacedName::new("kube-system", "coredns"),
            NamespacedName::new("kube-system", "aws-load-balancer-controller"),
        ]
    );
    assert_eq!(p.opt_out_annotation, DEFAULT_OPT_OUT_ANNOTATION);
    assert_eq!(p.drain_deadline_seconds, 3600);
    assert_eq!(p.on_pdb_blocked, OnPdbBlocked::Rollback);
    assert_eq!(p.pods_without_controller, BarePodPolicy::Fail);
    assert_eq!(p.empty_dir, EmptyDirPolicy::Evict);
    assert!(p.rollback_deletes_new_group);
    assert!(!p.dry_run);
}

#[test]
fn validation_names_each_bad_field() {
    let cases: Vec<(&str, serde_json::Value, &str)> = vec![
        (
            "desired above max",
            json!({"target": {"scaling": {"min": 1, "max": 10, "desired": 12}}}),
            "target.scaling.desired (12) is above target.scaling.max (10)",
        ),
        (
            "min above max",
            json!({"target": {"scaling": {"min": 5, "max": 3, "desired": 3}}}),
            "target.scaling.min (5) is above target.scaling.max (3)",
        ),
        (
            "desired below min",
            json!({"target": {"scaling": {"min": 2, "max": 3, "desired": 1}}}),
            "target.scaling.desired (1) is below target.scaling.min (2)",
        ),
        (
            "name starting with a dash",
            json!({"target": {"name": "-bad"}}),
            "target.name (\"-bad\") must start with a letter or digit",
        ),
        (
            "name too long",
            json!({"target": {"name": "a".repeat(64)}}),
            "target.name must be 1–63 characters, got 64",
        ),
        (
            "reserved label prefix",
            json!({"target": {"labels": {"kubernetes.io/role": "x"}}}),
            "target.labels[\"kubernetes.io/role\"] (\"kubernetes.io/role\") uses the reserved prefix kubernetes.io/, which EKS refuses on node-group labels",
        ),
        (
            "eks reserved label prefix",
            json!({"target": {"labels": {"eks.amazonaws.com/x": "y"}}}),
            "target.labels[\"eks.amazonaws.com/x\"] (\"eks.amazonaws.com/x\") uses the reserved prefix eks.amazonaws.com/, which EKS refuses on node-group labels",
        ),
        (
            "bad taint effect",
            json!({"target": {"taints": [{"key": "a", "effect": "NoSchedule"}]}}),
            "target.taints[0].effect (\"NoSchedule\") must be NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE",
        ),
        (
            "too many taints",
            json!({"target": {"taints": (0..51).map(|i| json!({"key": format!("k{i}"), "effect": "NO_SCHEDULE"})).collect::<Vec<_>>()}}),
            "target.taints has 51 taints; EKS allows at most 50",
        ),
        (
            "malformed instance type",
            json!({"target": {"instanceTypes": ["m5large"]}}),
            "target.instanceTypes[0] (\"m5large\") is not an instance type such as m7g.large or c5.4xlarge",
        ),
        (
            "release and custom ami",
            json!({"target": {"releaseVersion": "1.33.0-20250704", "customAmiId": "ami-0123456789abcdef0"}}),
            "target.customAmiId and target.releaseVersion are both set; give one",
        ),
        (
            "surge factor below one",
            json!({"policy": {"surgeFactor": 0.5}}),
            "policy.surgeFactor (0.5) must be at least 1",
        ),
        (
            "absurd surge factor",
            json!({"policy": {"surgeFactor": 10}}),
            "policy.surgeFactor (10) is above 4",
        ),
        (
            "namespace both included and excluded",
            json!({"policy": {"namespaces": {"include": ["a"], "exclude": ["a"]}}}),
            "policy.namespaces lists a in both include and exclude",
        ),
        (
            "target named like the source",
            json!({"target": {"name": "ng-a"}}),
            "target.name (ng-a) is the source group's name",
        ),
        (
            "bad region",
            json!({"cluster": {"name": "prod", "region": "Ireland"}}),
            "cluster.region (\"Ireland\") is not an AWS region such as eu-west-1",
        ),
        (
            "drain deadline too short",
            json!({"policy": {"drainDeadlineSeconds": 5}}),
            "policy.drainDeadlineSeconds (5) must be at least 60",
        ),
        (
            "drain deadline and the operator's day beyond the execution's timeout",
            json!({"policy": {"drainDeadlineSeconds": 604800, "onPdbBlocked": "waitForOperator"}}),
            "policy.drainDeadlineSeconds (604800) does not fit in the execution's 172800 s timeout \
             with the other waits (onPdbBlocked waitForOperator adds a day for the operator): at \
             most 51300 with this policy",
        ),
        (
            "a wait for Jobs too short",
            json!({"policy": {"jobs": {"mode": "waitToFinish", "finishWithinSeconds": 10}}}),
            "policy.jobs.finishWithinSeconds (10) must be at least 60",
        ),
        (
            "a wait for Jobs beyond the execution's timeout",
            json!({"policy": {"jobs": {"mode": "waitToFinish", "finishWithinSeconds": 200000}}}),
            "policy.jobs.finishWithinSeconds (200000) does not fit in the execution's 172800 s \
             timeout with the other waits: at most 137700 with this policy",
        ),
        (
            "a Jobs selector that matches every pod",
            json!({"policy": {"jobs": {"selector": {}}}}),
            "policy.jobs.selector is empty, and an empty selector matches every pod: give \
             matchLabels or matchExpressions",
        ),
        (
            "a Jobs selector with In and no values",
            json!({"policy": {"jobs": {"selector": {"matchExpressions": [{"key": "batch", "operator": "In"}]}}}}),
            "policy.jobs.selector.matchExpressions[0].values must be non-empty for In and NotIn",
        ),
        (
            "a Jobs selector with a bad label key",
            json!({"policy": {"jobs": {"selector": {"matchLabels": {"-bad": "x"}}}}}),
            "policy.jobs.selector.matchLabels.-bad (\"-bad\") is not a valid key: an optional DNS \
             prefix and '/', then 1–63 alphanumerics, '-', '_' or '.'",
        ),
        (
            "empty launch template change",
            json!({"target": {"launchTemplate": {"newVersion": {}}}}),
            "target.launchTemplate.newVersion changes nothing; give at least one change",
        ),
        (
            "template with both id and name",
            json!({"target": {"launchTemplate": {"useAsIs": {"id": "lt-0123456789abcdef0", "name": "x"}}}}),
            "target.launchTemplate.useAsIs has both id and name; give one",
        ),
    ];
    for (name, patch, want) in cases {
        let got = match check_request(&with(patch).to_string()) {
            Ok(_) => vec![],
            Err(e) => e.into_iter().map(|e| e.message).collect(),
        };
        assert!(
            got.iter().any(|m| m == want),
            "{name}: want {want:?}, got {got:?}"
        );
    }
}

#[test]
fn the_largest_drain_deadline_allowed_fills_the_execution_and_one_second_more_is_refused() {
    use crate::plan::deadlines::{
        EXECUTION_TIMEOUT_SECS, execution_budget_secs, max_drain_deadline_secs,
    };
    for (on, lb) in [
        ("waitForOperator", None),
        ("rollback", None),
        ("force", Some(60)),
        ("waitForOperator", Some(0)),
    ] {
        let mut policy = json!({"onPdbBlocked": on});
        if let Some(lb) = lb {
            policy["lbDrainSecondsOverride"] = json!(lb);
        }
        let parsed = check_request(&with(json!({ "policy": policy.clone() })).to_string())
            .unwrap_or_else(|e| panic!("{on}: {e:?}"));
        let max = max_drain_deadline_secs(&parsed.policy);
        policy["drainDeadlineSeconds"] = json!(max);
        let ok = check_request(&with(json!({ "policy": policy.clone() })).to_string())
            .unwrap_or_else(|e| panic!("{on} at {max}: {e:?}"));
        assert_eq!(execution_budget_secs(&ok.policy), EXECUTION_TIMEOUT_SECS);
        policy["drainDeadlineSeconds"] = json!(max + 1);
        let errs = check_request(&with(json!({ "policy": policy })).to_string())
            .err()
            .unwrap_or_default();
        assert_eq!(errs.len(), 1, "{on}: {errs:?}");
        assert_eq!(errs[0].field, "policy.drainDeadlineSeconds");
        assert!(
            errs[0].message.contains(&format!("at most {max}")),
            "{errs:?}"
        );
    }
}

#[test]
fn validation_reports_every_problem_at_once() {
    let v = with(json!({
        "target": {
            "name": "-x",
            "instanceTypes": ["huge"],
            "scaling": {"min": 0, "max": 10, "desired": 12},
            "taints": [{"key": "a", "effect": "BAD"}]
        },
        "policy": {"surgeFactor": 0}
    }));
    let errs = check_request(&v.to_string()).err().unwrap_or_default();
    let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
    for f in [
        "target.name",
        "target.instanceTypes[0]",
        "target.scaling.desired",
        "target.taints[0].effect",
        "policy.surgeFactor",
    ] {
        assert!(fields.contains(&f), "missing {f} in {fields:?}");
    }
}

#[test]
fn parse_errors_name_the_field_path() {
    let cases = [
        (
            with(json!({"target": {"scaling": {"min": 1, "max": 2, "desired": 1, "extra": 1}}})),
            "target.scaling.extra",
        ),
        (
            with(json!({"target": {"instanceTypes": "m5.large"}})),
            "target.instanceTypes",
        ),
        (with(json!({"polcy": {}})), "polcy"),
        (with(json!({"source": {"selfManaged": "x"}})), "source"),
        (
            with(json!({"target": {"taints": [{"key": "a", "effect": "NO_SCHEDULE", "x": 1}]}})),
            "target.taints[0].x",
        ),
        (
            with(json!({"policy": {"onPdbBlocked": "pray"}})),
            "policy.onPdbBlocked",
        ),
    ];
    for (v, want) in cases {
        let errs = parse_request(&v.to_string()).err().unwrap_or_default();
        assert_eq!(errs.len(), 1, "{v}");
        assert_eq!(errs[0].field, want, "{}", errs[0].message);
        assert!(errs[0].message.starts_with(want), "{}", errs[0].message);
    }
    let unknown = parse_request(&with(json!({"polcy": {}})).to_string())
        .err()
        .unwrap_or_default();
    assert!(
        unknown[0].message.contains("unknown field `polcy`"),
        "{}",
        unknown[0].message
    );
}

#[test]
fn a_target_identical_to_the_source_is_nothing_to_do() {
    let source = managed_source();
    let same = request_with_target(json!({"releaseVersion": "1.33.0-20250601"}));
    assert_eq!(
        messages(validate_against_source(&same, &source)),
        vec!["target is identical to source node group ng-a (nothing to do)".to_string()]
    );
    let newer = request_with_target(json!({"releaseVersion": "1.33.0-20250704"}));
    assert_eq!(validate_against_source(&newer, &source), Ok(()));
}

#[test]
fn source_dependent_checks_explain_what_is_missing() {
    let no_lt = managed_source();
    let custom = request_with_target(json!({"customAmiId": "ami-0123456789abcdef0"}));
    assert!(
        messages(validate_against_source(&custom, &no_lt))
            .iter()
            .any(|m| m.starts_with("target.customAmiId needs a launch template"))
    );
    let with_lt = managed_source().with_launch_template("lt-web", "3");
    assert_eq!(validate_against_source(&custom, &with_lt), Ok(()));

    let asg = managed_source().self_managed();
    let req = crate::fixtures::request(json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"autoScalingGroup": "asg-a"}
    }));
    assert!(
        messages(validate_against_source(&req, &asg))
            .iter()
            .any(|m| m.starts_with("target.nodeRoleArn is required"))
    );

    // A source that mixes On-Demand and Spot needs the request to choose.
    let mut mixed = managed_source().self_managed();
    mixed.on_demand_share = Some(crate::model::OnDemandShare {
        base: 1,
        percent_above_base: 25,
    });
    let req = crate::fixtures::request(json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"autoScalingGroup": "asg-a"},
        "target": {"nodeRoleArn": "arn:aws:iam::111122223333:role/node"}
    }));
    let errs = messages(validate_against_source(&req, &mixed));
    assert!(
        errs.iter()
            .any(|m| m.starts_with("target.capacityType is needed")
                && m.contains("1 first, then 25 % of the rest")),
        "{errs:?}"
    );
    let chosen = crate::fixtures::request(json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"autoScalingGroup": "asg-a"},
        "target": {"nodeRoleArn": "arn:aws:iam::111122223333:role/node", "capacityType": "SPOT"}
    }));
    assert_eq!(validate_against_source(&chosen, &mixed), Ok(()));
}

#[test]
fn surge_replicas_round_up() {
    let mut p = Policy::default();
    assert_eq!(p.surge_replicas(3), 6);
    p.surge_factor = 1.5;
    assert_eq!(p.surge_replicas(3), 5);
    assert_eq!(p.surge_replicas(0), 0);
}
