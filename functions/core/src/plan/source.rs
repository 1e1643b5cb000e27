//! A self-managed Auto Scaling group seen as a node group, so the rest of the planning treats
//! both kinds of source alike.

use crate::marks;
use crate::model::{
    AsgInfo, Labels, LaunchTemplateVersion, NodeGroupKind, NodeGroupSpec, NodeGroupStatus,
    NodeView, Taint,
};
use crate::request::rules::unreserved_label_key;

/// Labels every node of the group carries, minus the ones Kubernetes, EKS or ngm set (a new
/// managed group gets those by itself, and EKS refuses the reserved prefixes).
pub fn common_node_labels(nodes: &[NodeView]) -> Labels {
    let Some((first, rest)) = nodes.split_first() else {
        return Labels::new();
    };
    first
        .labels
        .iter()
        .filter(|(k, v)| rest.iter().all(|n| n.labels.get(*k) == Some(*v)))
        .filter(|(k, _)| unreserved_label_key(k).is_ok() && !k.starts_with("ngm.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Taints every node carries, minus the ones the node lifecycle controller or ngm set.
pub fn common_node_taints(nodes: &[NodeView]) -> Vec<Taint> {
    let Some((first, rest)) = nodes.split_first() else {
        return Vec::new();
    };
    first
        .taints
        .iter()
        .filter(|t| rest.iter().all(|n| n.taints.contains(t)))
        .filter(|t| !t.key.starts_with("node.kubernetes.io/") && t.key != marks::TAINT_KEY)
        .cloned()
        .collect()
}

/// The source spec of a self-managed group from its Auto Scaling group, its launch template
/// version and its nodes.
pub fn spec_from_asg(
    asg: &AsgInfo,
    template: Option<&LaunchTemplateVersion>,
    nodes: &[NodeView],
) -> NodeGroupSpec {
    let mut instance_types = asg.override_instance_types.clone();
    if instance_types.is_empty() {
        instance_types.extend(template.and_then(|t| t.instance_type.clone()));
    }
    if instance_types.is_empty() {
        let mut seen: Vec<String> = asg
            .instances
            .iter()
            .filter_map(|i| i.instance_type.clone())
            .collect();
        seen.sort();
        seen.dedup();
        instance_types = seen;
    }
    let tags = asg
        .tags
        .iter()
        .filter(|(k, _)| {
            !k.starts_with("aws:")
                && !k.starts_with("k8s.io/cluster-autoscaler/")
                && !k.starts_with("kubernetes.io/cluster/")
                && !k.starts_with("ngm.io/")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    NodeGroupSpec {
        name: asg.name.clone(),
        arn: asg.arn.clone(),
        kind: NodeGroupKind::SelfManagedAsg,
        instance_types,
        ami_type: None,
        release_version: None,
        custom_ami_id: template.and_then(|t| t.image_id.clone()),
        launch_template: asg.launch_template.clone(),
        capacity_type: None,
        scaling: asg.scaling,
        subnets: asg.subnets.clone(),
        labels: common_node_labels(nodes),
        taints: common_node_taints(nodes),
        disk_size: None,
        version: None,
        status: NodeGroupStatus::Active,
        asg_names: vec![asg.name.clone()],
        tags,
        node_role_arn: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{NodeExt, labels, node};
    use crate::model::{AsgInstance, Scaling, TaintEffect};

    #[test]
    fn an_asg_becomes_a_source_spec_with_only_portable_labels_and_tags() {
        let asg = AsgInfo {
            name: "asg-a".into(),
            arn: None,
            scaling: Scaling {
                min: 1,
                max: 4,
                desired: 2,
            },
            instances: vec![AsgInstance {
                instance_id: "i-1".into(),
                lifecycle_state: "InService".into(),
                availability_zone: "eu-west-1a".into(),
                instance_type: Some("m5.large".into()),
            }],
            tags: labels(&[
                ("team", "web"),
                ("k8s.io/cluster-autoscaler/enabled", "true"),
                ("kubernetes.io/cluster/prod", "owned"),
                ("aws:autoscaling:groupName", "asg-a"),
            ]),
            suspended_processes: vec![],
            launch_template: None,
            override_instance_types: vec![],
            subnets: vec!["subnet-0aaaaaaaaaaaaaaaa".into()],
            availability_zones: vec![],
            load_balancer_names: vec![],
            target_group_arns: vec![],
            traffic_sources: vec![],
        };
        let dedicated = Taint {
            key: "dedicated".into(),
            value: Some("web".into()),
            effect: TaintEffect::NoSchedule,
        };
        let nodes = vec![
            node("n1", "x")
                .label("workload", "web")
                .label("only", "n1")
                .taint(dedicated.clone()),
            node("n2", "x")
                .label("workload", "web")
                .taint(dedicated.clone())
                .cordoned(),
        ];
        let spec = spec_from_asg(&asg, None, &nodes);
        assert_eq!(spec.kind, NodeGroupKind::SelfManagedAsg);
        assert_eq!(spec.instance_types, vec!["m5.large".to_string()]);
        assert_eq!(spec.labels, labels(&[("workload", "web")]));
        assert_eq!(spec.taints, vec![dedicated]);
        assert_eq!(spec.tags, labels(&[("team", "web")]));
        assert_eq!(spec.node_role_arn, None);
    }
}
