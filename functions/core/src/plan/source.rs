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

/// The EKS AMI type that runs what the group's nodes run: Bottlerocket by the name its
/// os-release gives `status.nodeInfo.osImage` (`Bottlerocket OS 1.x (aws-k8s-1.33)`), NVIDIA
/// when a node offers `nvidia.com/gpu` or carries the GPU labels (nodeadm's
/// `nvidia.com/gpu.present`, Cluster Autoscaler's `k8s.amazonaws.com/accelerator`), and the
/// architecture by `kubernetes.io/arch`. `None` for Windows nodes or when there is no node.
pub fn ami_type_of(nodes: &[NodeView]) -> Option<String> {
    let first = nodes.first()?;
    fn label<'a>(n: &'a NodeView, k: &str) -> Option<&'a str> {
        n.labels.get(k).map(String::as_str)
    }
    if label(first, "kubernetes.io/os").is_some_and(|os| os != "linux") {
        return None;
    }
    let arch = match label(first, "kubernetes.io/arch") {
        Some("arm64") => "ARM_64",
        _ => "x86_64",
    };
    let bottlerocket = first
        .os_image
        .as_deref()
        .is_some_and(|o| o.starts_with("Bottlerocket"));
    let gpu = nodes.iter().any(|n| {
        n.gpus > 0
            || label(n, "nvidia.com/gpu.present") == Some("true")
            || n.labels.contains_key("k8s.amazonaws.com/accelerator")
    });
    Some(match (bottlerocket, gpu) {
        (true, false) => format!("BOTTLEROCKET_{arch}"),
        (true, true) => format!("BOTTLEROCKET_{arch}_NVIDIA"),
        (false, false) => format!("AL2023_{arch}_STANDARD"),
        (false, true) => format!("AL2023_{arch}_NVIDIA"),
    })
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
            marks::carried_tag(k)
                && !k.starts_with("k8s.io/cluster-autoscaler/")
                && !k.starts_with("kubernetes.io/cluster/")
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    NodeGroupSpec {
        name: asg.name.clone(),
        arn: asg.arn.clone(),
        kind: NodeGroupKind::SelfManagedAsg,
        instance_types,
        ami_type: ami_type_of(nodes),
        release_version: None,
        custom_ami_id: template.and_then(|t| t.image_id.clone()),
        launch_template: asg.launch_template.clone(),
        capacity_type: asg.on_demand_share.and_then(|s| s.capacity_type()),
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
        on_demand_share: asg.on_demand_share,
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
            on_demand_share: None,
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
        // Nodes without an os image or GPUs run AL2023 for their arch; no policy is On-Demand.
        assert_eq!(spec.ami_type.as_deref(), Some("AL2023_x86_64_STANDARD"));
        assert_eq!(spec.capacity_type, None);
    }

    /// EC2 Auto Scaling `InstancesDistribution`: base 0 and 0 % above it is all Spot; 100 %
    /// is all On-Demand; anything else mixes, which one managed group cannot (EKS User Guide,
    /// "Managed node group capacity types").
    #[test]
    fn a_mixed_instances_policy_gives_the_capacity_type_when_it_is_one_kind() {
        use crate::model::{CapacityType, OnDemandShare};
        let share = |base, percent_above_base| OnDemandShare {
            base,
            percent_above_base,
        };
        assert_eq!(share(0, 0).capacity_type(), Some(CapacityType::Spot));
        assert_eq!(share(2, 100).capacity_type(), Some(CapacityType::OnDemand));
        assert_eq!(share(0, 100).capacity_type(), Some(CapacityType::OnDemand));
        assert_eq!(share(1, 0).capacity_type(), None);
        assert_eq!(share(0, 50).capacity_type(), None);
    }

    /// Bottlerocket's os-release `PRETTY_NAME` is the node's `osImage`; NVIDIA by the GPU the
    /// node offers or nodeadm's label; the architecture by `kubernetes.io/arch`.
    #[test]
    fn the_ami_family_follows_what_the_nodes_run() {
        let bottlerocket = |n: crate::model::NodeView| crate::model::NodeView {
            os_image: Some("Bottlerocket OS 1.26.2 (aws-k8s-1.33)".into()),
            ..n
        };
        let arm = node("a", "x").label("kubernetes.io/arch", "arm64");
        assert_eq!(
            ami_type_of(&[bottlerocket(arm.clone())]).as_deref(),
            Some("BOTTLEROCKET_ARM_64")
        );
        let gpu = crate::model::NodeView {
            gpus: 1,
            ..node("g", "x").label("kubernetes.io/arch", "amd64")
        };
        assert_eq!(
            ami_type_of(&[bottlerocket(gpu.clone())]).as_deref(),
            Some("BOTTLEROCKET_x86_64_NVIDIA")
        );
        assert_eq!(ami_type_of(&[gpu]).as_deref(), Some("AL2023_x86_64_NVIDIA"));
        let labelled = node("l", "x").label("nvidia.com/gpu.present", "true");
        assert_eq!(
            ami_type_of(&[labelled]).as_deref(),
            Some("AL2023_x86_64_NVIDIA")
        );
        assert_eq!(
            ami_type_of(&[arm]).as_deref(),
            Some("AL2023_ARM_64_STANDARD")
        );
        let windows = node("w", "x").label("kubernetes.io/os", "windows");
        assert_eq!(ami_type_of(&[windows]), None);
        assert_eq!(ami_type_of(&[]), None);
    }
}
