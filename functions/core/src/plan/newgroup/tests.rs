use serde_json::json;

use super::*;
use crate::fixtures::{SpecExt, managed_source, request, request_with_target};

#[test]
fn derived_name_is_stable_and_strips_a_previous_suffix() {
    let req = request_with_target(json!({"releaseVersion": "1.33.0-20250704"}));
    let first = target_name(&req);
    assert_eq!(first, target_name(&req));
    assert!(
        first.starts_with("ng-a-") && first.len() == "ng-a-".len() + 6,
        "{first}"
    );

    let mut again = req.clone();
    again.source = crate::request::SourceGroup::ManagedNodeGroup(first.clone());
    let second = target_name(&again);
    assert!(second.starts_with("ng-a-") && second != first, "{second}");
}

#[test]
fn derived_name_differs_when_the_target_differs() {
    let a = request_with_target(json!({"releaseVersion": "1.33.0-20250704"}));
    let b = request_with_target(json!({"releaseVersion": "1.33.0-20250801"}));
    assert_ne!(target_name(&a), target_name(&b));
}

#[test]
fn derived_name_fits_eks_limits_for_long_asg_names() {
    let req = request(json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"autoScalingGroup": format!("_{}:x", "a".repeat(100))},
    }));
    let name = target_name(&req);
    assert!(name.len() <= 63, "{name}");
    assert_eq!(crate::request::rules::eks_name(&name, 63), Ok(()));
}

#[test]
fn client_request_token_is_per_execution_and_step() {
    let a = client_request_token("exec-1", "create-nodegroup");
    assert_eq!(a, client_request_token("exec-1", "create-nodegroup"));
    assert_ne!(a, client_request_token("exec-2", "create-nodegroup"));
    assert_ne!(a, client_request_token("exec-1", "scale-nodegroup"));
    assert!(a.len() <= 64, "{a}");
}

#[test]
fn target_copies_the_source_and_applies_overrides() {
    let source = managed_source();
    struct Case {
        name: &'static str,
        target: serde_json::Value,
        check: fn(&NodeGroupSpec, &NodeGroupSpec),
    }
    let cases = [
        Case {
            name: "release update keeps everything else",
            target: json!({"releaseVersion": "1.33.0-20250704"}),
            check: |s, d| {
                assert_eq!(d.release_version.as_deref(), Some("1.33.0-20250704"));
                assert_eq!(d.instance_types, s.instance_types);
                assert_eq!(d.labels, s.labels);
                assert_eq!(d.scaling, s.scaling);
                assert_eq!(d.disk_size, s.disk_size);
                assert_eq!(d.node_role_arn, s.node_role_arn);
            },
        },
        Case {
            name: "instance types and scaling replace the source's",
            target: json!({"instanceTypes": ["m7g.large"], "amiType": "AL2023_ARM_64_STANDARD",
                           "scaling": {"min": 1, "max": 9, "desired": 4}}),
            check: |_, d| {
                assert_eq!(d.instance_types, vec!["m7g.large".to_string()]);
                assert_eq!(
                    d.scaling,
                    crate::model::Scaling {
                        min: 1,
                        max: 9,
                        desired: 4
                    }
                );
                // A new AMI family has its own releases.
                assert_eq!(d.release_version, None);
            },
        },
        Case {
            name: "labels and taints replace, tags drop aws: and record the source",
            target: json!({"labels": {"team": "api"},
                           "taints": [{"key": "dedicated", "value": "api", "effect": "NO_SCHEDULE"}]}),
            check: |_, d| {
                assert_eq!(d.labels.get("team").map(String::as_str), Some("api"));
                assert_eq!(d.taints.len(), 1);
                assert_eq!(d.taints[0].effect, TaintEffect::NoSchedule);
                assert!(!d.tags.keys().any(|k| k.starts_with("aws:")));
                assert_eq!(
                    d.tags.get(MIGRATED_FROM_TAG).map(String::as_str),
                    Some("ng-a")
                );
                assert_eq!(d.tags.get("owner").map(String::as_str), Some("platform"));
            },
        },
    ];
    for c in cases {
        let derived = derive_target(&request_with_target(c.target), &source);
        assert_eq!(derived.kind, NodeGroupKind::Managed, "{}", c.name);
        assert_ne!(derived.name, source.name, "{}", c.name);
        (c.check)(&source, &derived);
    }
}

#[test]
fn new_launch_template_version_leaves_the_version_to_the_step() {
    let source = managed_source().with_launch_template("lt-web", "4");
    let req = request_with_target(json!({
        "launchTemplate": {"newVersion": {"imageId": "ami-0123456789abcdef0", "instanceType": "c5.xlarge"}}
    }));
    let d = derive_target(&req, &source);
    let lt = d
        .launch_template
        .clone()
        .unwrap_or_else(|| panic!("no template"));
    assert_eq!(lt.name.as_deref(), Some("lt-web"));
    assert_eq!(lt.version, None);
    assert!(d.instance_types.is_empty(), "the template carries the type");
    assert_eq!(d.ami_type.as_deref(), Some("CUSTOM"));
    assert_eq!(d.release_version, None);
    assert_eq!(d.disk_size, None);
    let o = launch_template_overrides(&req).unwrap_or_default();
    assert_eq!(o.image_id.as_deref(), Some("ami-0123456789abcdef0"));
    assert_eq!(o.instance_type.as_deref(), Some("c5.xlarge"));
}

#[test]
fn self_managed_source_gets_an_eks_optimized_ami_for_its_architecture() {
    let mut source = managed_source()
        .with_launch_template("lt-asg", "1")
        .self_managed();
    source.instance_types = vec!["c6gn.large".into()];
    let req = request(json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"autoScalingGroup": "asg-a"},
        "target": {"nodeRoleArn": "arn:aws:iam::111122223333:role/node"}
    }));
    let d = derive_target(&req, &source);
    assert_eq!(d.ami_type.as_deref(), Some("AL2023_ARM_64_STANDARD"));
    assert_eq!(d.launch_template, None);
    source.instance_types = vec!["m5.large".into()];
    assert_eq!(
        derive_target(&req, &source).ami_type.as_deref(),
        Some("AL2023_x86_64_STANDARD")
    );
}

#[test]
fn same_shape_ignores_names_and_order() {
    let a = managed_source();
    let mut b = a.clone();
    b.name = "other".into();
    b.subnets.reverse();
    b.status = NodeGroupStatus::Creating;
    assert!(same_shape(&a, &b));
    b.scaling.max += 1;
    assert!(!same_shape(&a, &b));
}

/// The operator's opt-in tags go with the group, so the next AMI release updates the new one
/// too; ngm's own bookkeeping tags stay behind.
#[test]
fn the_operators_ngm_tags_are_carried_to_the_new_group() {
    let mut source = managed_source();
    for (k, v) in [
        ("ngm.io/auto-update", "true"),
        ("ngm.io/maintenance-window", "Sun 02:00-06:00 UTC"),
        ("ngm.io/original-scaling", "1,3,2"),
        (
            "ngm.io/created-by",
            "arn:aws:states:eu-west-1:1:execution:x:y",
        ),
    ] {
        source.tags.insert(k.into(), v.into());
    }
    let d = derive_target(&request_with_target(json!({})), &source);
    assert_eq!(
        d.tags.get("ngm.io/auto-update").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        d.tags.get("ngm.io/maintenance-window").map(String::as_str),
        Some("Sun 02:00-06:00 UTC")
    );
    assert!(
        !d.tags.contains_key("ngm.io/original-scaling"),
        "{:?}",
        d.tags
    );
    assert_eq!(
        d.tags.get("ngm.io/created-by").map(String::as_str),
        None,
        "ngm marks its own groups itself"
    );
}
