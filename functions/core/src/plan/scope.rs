//! Which nodes belong to the old group, which workload owns a pod, and which pods the request
//! puts in scope.

use std::collections::BTreeSet;

use crate::marks;
use crate::model::{
    LabelSelector, NodeGroupKind, NodeView, PodView, ReplicaSetView, WorkloadKind, WorkloadRef,
};
use crate::request::Policy;

/// The selector of a managed group's nodes (EKS labels each one with its group name).
pub fn managed_group_selector(group: &str) -> LabelSelector {
    LabelSelector::eq([(marks::EKS_NODEGROUP_LABEL, group)])
}

/// The selector of the nodes this execution marked as retiring.
pub fn retiring_selector(execution_digest: &str) -> LabelSelector {
    LabelSelector::eq([(marks::RETIRING_LABEL, execution_digest)])
}

/// Whether `node` belongs to the source group: by the EKS label for a managed group, by its
/// instance id for a self-managed Auto Scaling group.
pub fn is_source_node(
    node: &NodeView,
    kind: NodeGroupKind,
    group: &str,
    asg_instance_ids: &BTreeSet<String>,
) -> bool {
    match kind {
        NodeGroupKind::Managed => {
            node.labels
                .get(marks::EKS_NODEGROUP_LABEL)
                .map(String::as_str)
                == Some(group)
        }
        NodeGroupKind::SelfManagedAsg => node
            .instance_id()
            .is_some_and(|id| asg_instance_ids.contains(id)),
    }
}

/// The Deployment or StatefulSet that owns `pod`, through its ReplicaSet for a Deployment.
pub fn owning_workload(pod: &PodView, replicasets: &[ReplicaSetView]) -> Option<WorkloadRef> {
    let owner = pod.owner.as_ref()?;
    match owner.kind.as_str() {
        "StatefulSet" => Some(WorkloadRef {
            kind: WorkloadKind::StatefulSet,
            namespace: pod.namespace.clone(),
            name: owner.name.clone(),
        }),
        "ReplicaSet" => {
            let rs = replicasets
                .iter()
                .find(|rs| rs.namespace == pod.namespace && rs.name == owner.name)?;
            let dep = rs.owner.as_ref().filter(|o| o.kind == "Deployment")?;
            Some(WorkloadRef {
                kind: WorkloadKind::Deployment,
                namespace: pod.namespace.clone(),
                name: dep.name.clone(),
            })
        }
        _ => None,
    }
}

/// Whether the request lets ngm migrate this pod actively.
pub fn in_scope(pod: &PodView, policy: &Policy) -> bool {
    policy.namespaces.allows(&pod.namespace)
        && !pod.annotations.contains_key(&policy.opt_out_annotation)
}

/// Whether a workload namespace is in scope (opt-out is per pod).
pub fn namespace_in_scope(namespace: &str, policy: &Policy) -> bool {
    policy.namespaces.allows(namespace)
}
