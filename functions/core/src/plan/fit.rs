//! Whether the pods of the old group can run on the new group's nodes, checked before anything
//! exists: a node of the new group is built from its spec (instance type, labels, taints,
//! zones), and each pod is put through the scheduler filters that a node group decides
//! (NodeResourcesFit, NodeAffinity, TaintToleration, InterPodAffinity, PodTopologySpread;
//! kubernetes `pkg/scheduler/framework/plugins`).

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{
    CapacityType, InstanceType, NodeGroupKind, NodeGroupSpec, NodeOperator, NodeRequirement,
    PodView, Resources, Scaling, Taint, TaintEffect, instance_type,
};

/// Labels every node gets from the kubelet and the AWS cloud provider (kubernetes.io,
/// "Well-Known Labels, Annotations and Taints").
pub const HOSTNAME_LABEL: &str = "kubernetes.io/hostname";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const LEGACY_ZONE_LABEL: &str = "failure-domain.beta.kubernetes.io/zone";
/// The EKS managed node group label (EKS User Guide, "Managed node update behavior").
pub const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";

/// A node of the new group as the scheduler will see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewNode {
    /// The smallest of the group's instance types: a pod must fit whichever EC2 launches.
    pub instance_type: &'static InstanceType,
    pub allocatable: Resources,
    pub max_pods: i64,
    pub gpus: i64,
    /// Every label the nodes carry, with the values they can take (several for the zone and
    /// the instance type).
    pub labels: BTreeMap<String, BTreeSet<String>>,
    /// Labels each node carries with a value ngm cannot know ahead (its hostname, its image).
    pub unknown_values: BTreeSet<String>,
    pub taints: Vec<Taint>,
    pub zones: BTreeSet<String>,
    pub scaling: Scaling,
}

/// Why a new node cannot be described.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NewNodeError {
    /// The instance type is in a launch template ngm did not read.
    NoInstanceType,
    UnknownInstanceType(String),
}

impl std::fmt::Display for NewNodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoInstanceType => f.write_str(
                "the new group's instance type is not known (it is in a launch template), so \
                 pods are sized against an old node",
            ),
            Self::UnknownInstanceType(t) => write!(
                f,
                "instance type {t} is not in ngm's table, so pods are sized against an old node"
            ),
        }
    }
}

impl NewNode {
    /// A node of `target`, in one of `zones`.
    pub fn of(target: &NodeGroupSpec, zones: &BTreeSet<String>) -> Result<NewNode, NewNodeError> {
        let mut types = Vec::new();
        for name in &target.instance_types {
            types.push(
                instance_type(name)
                    .ok_or_else(|| NewNodeError::UnknownInstanceType(name.clone()))?,
            );
        }
        let smallest = types
            .iter()
            .copied()
            .min_by_key(|t| (t.memory_mib, t.vcpus))
            .ok_or(NewNodeError::NoInstanceType)?;
        let managed_eks_ami = target.kind == NodeGroupKind::Managed
            && target.custom_ami_id.is_none()
            && target.ami_type.as_deref() != Some("CUSTOM");
        let capacity = smallest.node(managed_eks_ami);
        let one = |v: &str| BTreeSet::from([v.to_string()]);
        let mut labels: BTreeMap<String, BTreeSet<String>> = target
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), one(v)))
            .collect();
        let os = if target
            .ami_type
            .as_deref()
            .is_some_and(|a| a.starts_with("WINDOWS"))
        {
            "windows"
        } else {
            "linux"
        };
        let arch = smallest.arch.label();
        let type_names: BTreeSet<String> = types.iter().map(|t| t.name.to_string()).collect();
        let regions: BTreeSet<String> = zones
            .iter()
            .map(|z| {
                z.trim_end_matches(|c: char| c.is_ascii_alphabetic())
                    .to_string()
            })
            .collect();
        for (k, v) in [
            ("kubernetes.io/os", one(os)),
            ("beta.kubernetes.io/os", one(os)),
            ("kubernetes.io/arch", one(arch)),
            ("beta.kubernetes.io/arch", one(arch)),
            ("node.kubernetes.io/instance-type", type_names.clone()),
            ("beta.kubernetes.io/instance-type", type_names),
            (ZONE_LABEL, zones.clone()),
            (LEGACY_ZONE_LABEL, zones.clone()),
            ("topology.ebs.csi.aws.com/zone", zones.clone()),
            ("topology.kubernetes.io/region", regions.clone()),
            ("failure-domain.beta.kubernetes.io/region", regions),
        ] {
            labels.entry(k.to_string()).or_insert(v);
        }
        let mut unknown_values: BTreeSet<String> = [
            HOSTNAME_LABEL,
            "topology.k8s.aws/zone-id",
            "k8s.io/cloud-provider-aws",
        ]
        .into_iter()
        .map(str::to_string)
        .collect();
        if target.kind == NodeGroupKind::Managed {
            labels
                .entry(NODEGROUP_LABEL.to_string())
                .or_insert_with(|| one(&target.name));
            let capacity_type = match target.capacity_type.unwrap_or(CapacityType::OnDemand) {
                CapacityType::Spot => "SPOT",
                CapacityType::OnDemand => "ON_DEMAND",
            };
            labels
                .entry("eks.amazonaws.com/capacityType".to_string())
                .or_insert_with(|| one(capacity_type));
            unknown_values.insert("eks.amazonaws.com/nodegroup-image".to_string());
            if target.launch_template.is_some() {
                unknown_values.insert("eks.amazonaws.com/sourceLaunchTemplateId".to_string());
                unknown_values.insert("eks.amazonaws.com/sourceLaunchTemplateVersion".to_string());
            }
        }
        Ok(NewNode {
            instance_type: smallest,
            allocatable: capacity.allocatable,
            max_pods: capacity.max_pods,
            gpus: capacity.gpus,
            labels,
            unknown_values,
            taints: target.taints.clone(),
            zones: zones.clone(),
            scaling: target.scaling,
        })
    }

    /// Whether one requirement can hold on some node of the group.
    fn requirement_holds(&self, r: &NodeRequirement) -> bool {
        if let Some(values) = self.labels.get(&r.key) {
            let number = |v: &String| v.parse::<i64>().ok();
            let bound = r.values.first().and_then(number);
            return match r.operator {
                NodeOperator::In => values.iter().any(|v| r.values.contains(v)),
                NodeOperator::NotIn => values.iter().any(|v| !r.values.contains(v)),
                NodeOperator::Exists => true,
                NodeOperator::DoesNotExist => false,
                NodeOperator::Gt => values
                    .iter()
                    .any(|v| number(v).zip(bound).is_some_and(|(v, b)| v > b)),
                NodeOperator::Lt => values
                    .iter()
                    .any(|v| number(v).zip(bound).is_some_and(|(v, b)| v < b)),
            };
        }
        if self.unknown_values.contains(&r.key) {
            // A new node's hostname is new: no value an old node had can match it.
            return match r.operator {
                NodeOperator::In => r.key != HOSTNAME_LABEL,
                NodeOperator::DoesNotExist => false,
                _ => true,
            };
        }
        matches!(r.operator, NodeOperator::NotIn | NodeOperator::DoesNotExist)
    }

    fn describe(&self, key: &str) -> String {
        match self.labels.get(key) {
            Some(v) => format!(
                "the new nodes have {key}={}",
                v.iter().cloned().collect::<Vec<_>>().join("|")
            ),
            None if self.unknown_values.contains(key) => {
                format!("the new nodes' {key} is their own")
            }
            None => format!("the new nodes do not carry {key}"),
        }
    }

    /// Why the pod's node selection (NodeAffinity filter) rules out every new node, if it does:
    /// the first requirement no new node meets, and its key.
    pub fn selection_miss(&self, pod: &PodView) -> Option<(String, String)> {
        for (k, v) in &pod.placement.node_selector {
            let r = NodeRequirement {
                key: k.clone(),
                operator: NodeOperator::In,
                values: vec![v.clone()],
            };
            if !self.requirement_holds(&r) {
                return Some((
                    k.clone(),
                    format!("nodeSelector {k}={v}: {}", self.describe(k)),
                ));
            }
        }
        let terms = &pod.placement.required_node_terms;
        if terms.is_empty() {
            return None;
        }
        let mut first_miss = None;
        for term in terms {
            match term.iter().find(|r| !self.requirement_holds(r)) {
                None => return None,
                Some(r) => {
                    first_miss.get_or_insert_with(|| {
                        (
                            r.key.clone(),
                            format!(
                                "required node affinity {} {:?} [{}]: {}",
                                r.key,
                                r.operator,
                                r.values.join(", "),
                                self.describe(&r.key)
                            ),
                        )
                    });
                }
            }
        }
        first_miss
    }

    /// The first of the group's taints the pod does not tolerate (TaintToleration filter:
    /// `NoSchedule` and `NoExecute` count).
    pub fn untolerated(&self, pod: &PodView) -> Option<&Taint> {
        self.taints.iter().find(|t| {
            matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute)
                && !pod.placement.tolerates(t)
        })
    }
}

/// Where the pods of one workload go, to check its spread and anti-affinity rules.
#[derive(Debug, Clone, Copy)]
pub struct Move<'a> {
    /// One of its pods on the old nodes (its spec stands for all).
    pub pod: &'a PodView,
    /// Its pods on the old nodes.
    pub on_old: &'a [&'a PodView],
    /// Pods added on the new nodes while the old ones still run (the surge); 0 when the pods
    /// move by eviction.
    pub surged: u32,
}

/// Why a workload's required anti-affinity or `DoNotSchedule` spread cannot be met on the new
/// group at its max size, while its old pods still run (they count until they are gone): the
/// finding kind (`anti-affinity`, `topology-spread`) and the reason.
pub fn spread_miss(
    m: Move<'_>,
    new: &NewNode,
    zone_of_node: &BTreeMap<String, String>,
) -> Option<(&'static str, String)> {
    let own = |selector: &crate::model::LabelSelector| selector.matches(&m.pod.labels);
    let max_nodes = i64::from(new.scaling.max);
    let on_old = i64::try_from(m.on_old.len()).unwrap_or(i64::MAX);
    let surged = i64::from(m.surged);
    let zone_of = |p: &PodView| {
        p.node_name
            .as_ref()
            .and_then(|n| zone_of_node.get(n))
            .cloned()
    };
    for term in m.pod.placement.anti_affinity.iter().filter(|t| {
        own(&t.selector) && (t.namespaces.is_empty() || t.namespaces.contains(&m.pod.namespace))
    }) {
        match term.topology_key.as_str() {
            HOSTNAME_LABEL => {
                // Every pod on its own node: all that end on the new group, or the surge.
                let needed = surged.max(on_old);
                if needed > max_nodes {
                    return Some((
                        "anti-affinity",
                        format!(
                            "required pod anti-affinity on {HOSTNAME_LABEL} puts each pod on a node \
                         of its own, and {needed} must run on the new group, whose max is \
                         {max_nodes} nodes"
                        ),
                    ));
                }
            }
            ZONE_LABEL | LEGACY_ZONE_LABEL if surged > 0 => {
                let taken: BTreeSet<String> = m.on_old.iter().filter_map(|p| zone_of(p)).collect();
                let free: Vec<&String> = new.zones.iter().filter(|z| !taken.contains(*z)).collect();
                if surged > i64::try_from(free.len()).unwrap_or(i64::MAX) {
                    return Some((
                        "anti-affinity",
                        format!(
                            "required pod anti-affinity on {} allows one pod per zone; its old pods \
                         hold {} and keep them until the surge is done, so only {} of the {surged} \
                         surged pods can be placed",
                            term.topology_key,
                            taken.into_iter().collect::<Vec<_>>().join(", "),
                            free.len()
                        ),
                    ));
                }
            }
            _ => {}
        }
    }
    for c in m.pod.placement.spread.iter().filter(|c| own(&c.selector)) {
        if surged == 0 {
            continue;
        }
        // Domains and their counts: the old pods where they are, the new group's empty.
        let (mut counts, new_domains): (BTreeMap<String, i64>, Vec<String>) =
            match c.topology_key.as_str() {
                ZONE_LABEL | LEGACY_ZONE_LABEL => {
                    let mut counts: BTreeMap<String, i64> =
                        zone_of_node.values().map(|z| (z.clone(), 0)).collect();
                    for p in m.on_old {
                        if let Some(z) = zone_of(p) {
                            *counts.entry(z).or_default() += 1;
                        }
                    }
                    for z in &new.zones {
                        counts.entry(z.clone()).or_default();
                    }
                    (counts, new.zones.iter().cloned().collect())
                }
                HOSTNAME_LABEL => {
                    let mut counts: BTreeMap<String, i64> =
                        zone_of_node.keys().map(|n| (n.clone(), 0)).collect();
                    for p in m.on_old {
                        if let Some(n) = &p.node_name {
                            *counts.entry(n.clone()).or_default() += 1;
                        }
                    }
                    let new_nodes: Vec<String> =
                        (0..max_nodes).map(|i| format!("\u{0}new-{i}")).collect();
                    for n in &new_nodes {
                        counts.insert(n.clone(), 0);
                    }
                    (counts, new_nodes)
                }
                _ => continue,
            };
        for placed in 0..surged {
            let min = counts.values().copied().min().unwrap_or(0);
            let Some(best) = new_domains
                .iter()
                .min_by_key(|d| counts.get(*d).copied().unwrap_or(0))
                .cloned()
            else {
                break;
            };
            let at = counts.get(&best).copied().unwrap_or(0);
            if at + 1 - min > i64::from(c.max_skew) {
                return Some((
                    "topology-spread",
                    format!(
                        "topology spread on {} (maxSkew {}, DoNotSchedule) counts the old pods where \
                     they run until they are gone, so only {placed} of the {surged} surged pods \
                     can be placed on the new group",
                        c.topology_key, c.max_skew
                    ),
                ));
            }
            counts.insert(best, at + 1);
        }
    }
    None
}

#[cfg(test)]
mod tests;
