//! The scheduler's filters and scores as pure functions over typed pods and nodes
//! (`pkg/scheduler/framework/plugins`: NodeUnschedulable, TaintToleration, NodeAffinity,
//! VolumeZone, NodeResourcesFit, NodeResourcesLeastAllocated).

use std::fmt;

use k8s_openapi::api::core::v1::{Node, NodeSelectorRequirement, NodeSelectorTerm, Pod, Taint};

use super::podutil::{
    ZONE_LABEL, node_label, node_ready, node_taints, node_unschedulable, tolerated, tolerations,
};
use super::quantity::{amount_of, cpu_of};

/// A node as the scheduler sees it: allocatable resources and what bound pods already use.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub node: Node,
    pub name: String,
    pub cpu_allocatable: i64,
    pub memory_allocatable: i64,
    pub pods_allocatable: i64,
    pub cpu_used: i64,
    pub memory_used: i64,
    pub pods_used: i64,
}

impl NodeInfo {
    /// A node with nothing bound to it yet.
    pub fn new(node: Node) -> Self {
        let alloc = node.status.as_ref().and_then(|s| s.allocatable.as_ref());
        let cpu_allocatable = cpu_of(alloc.and_then(|a| a.get("cpu")));
        let memory_allocatable = amount_of(alloc.and_then(|a| a.get("memory")));
        let pods_allocatable = alloc
            .and_then(|a| a.get("pods"))
            .map(|q| amount_of(Some(q)))
            .unwrap_or(110);
        Self {
            name: node.metadata.name.clone().unwrap_or_default(),
            node,
            cpu_allocatable,
            memory_allocatable,
            pods_allocatable,
            cpu_used: 0,
            memory_used: 0,
            pods_used: 0,
        }
    }

    /// Accounts a pod's requests to this node.
    pub fn add(&mut self, (cpu, memory): (i64, i64)) {
        self.cpu_used += cpu;
        self.memory_used += memory;
        self.pods_used += 1;
    }

    pub fn zone(&self) -> Option<&str> {
        node_label(&self.node, ZONE_LABEL)
    }
}

/// Why a node cannot take a pod (the reasons upstream prints in `0/N nodes are available`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unfit {
    NotReady,
    Unschedulable,
    Taint(String),
    NodeSelector,
    VolumeZone,
    Cpu,
    Memory,
    Pods,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotReady => f.write_str("node(s) were not ready"),
            Self::Unschedulable => f.write_str("node(s) were unschedulable"),
            Self::Taint(t) => write!(f, "node(s) had untolerated taint {{{t}}}"),
            Self::NodeSelector => f.write_str("node(s) didn't match Pod's node affinity/selector"),
            Self::VolumeZone => f.write_str("node(s) had volume node affinity conflict"),
            Self::Cpu => f.write_str("Insufficient cpu"),
            Self::Memory => f.write_str("Insufficient memory"),
            Self::Pods => f.write_str("Too many pods"),
        }
    }
}

fn taint_text(t: &Taint) -> String {
    match t.value.as_deref() {
        Some(v) if !v.is_empty() => format!("{}: {}", t.key, v),
        _ => t.key.clone(),
    }
}

/// `NodeSelectorRequirement` against a value that may be absent (labels) — In, NotIn, Exists,
/// DoesNotExist, Gt, Lt.
fn requirement_matches(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or(&[]);
    match r.operator.as_str() {
        "In" => value.is_some_and(|v| values.iter().any(|x| x == v)),
        "NotIn" => value.is_none_or(|v| !values.iter().any(|x| x == v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        "Gt" | "Lt" => {
            let (Some(v), Some(bound)) = (
                value.and_then(|v| v.parse::<i64>().ok()),
                values.first().and_then(|b| b.parse::<i64>().ok()),
            ) else {
                return false;
            };
            if r.operator == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// One `NodeSelectorTerm`: every expression and field requirement holds. An empty term
/// matches nothing, as upstream.
fn term_matches(term: &NodeSelectorTerm, node: &Node) -> bool {
    let exprs = term.match_expressions.as_deref().unwrap_or(&[]);
    let fields = term.match_fields.as_deref().unwrap_or(&[]);
    if exprs.is_empty() && fields.is_empty() {
        return false;
    }
    exprs
        .iter()
        .all(|r| requirement_matches(r, node_label(node, &r.key)))
        && fields.iter().all(|r| {
            let value = (r.key == "metadata.name")
                .then_some(node.metadata.name.as_deref())
                .flatten();
            requirement_matches(r, value)
        })
}

/// NodeAffinity filter: `nodeSelector` labels all equal, and (if set) one of the required
/// node-affinity terms matches.
pub fn matches_node_selection(pod: &Pod, node: &Node) -> bool {
    let Some(spec) = pod.spec.as_ref() else {
        return true;
    };
    if let Some(sel) = &spec.node_selector
        && !sel
            .iter()
            .all(|(k, v)| node_label(node, k) == Some(v.as_str()))
    {
        return false;
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    match required {
        Some(sel) => sel
            .node_selector_terms
            .iter()
            .any(|t| term_matches(t, node)),
        None => true,
    }
}

/// The first NoSchedule/NoExecute taint the pod does not tolerate.
pub fn untolerated_taint<'a>(pod: &Pod, node: &'a Node) -> Option<&'a Taint> {
    node_taints(node).iter().find(|t| {
        matches!(t.effect.as_str(), "NoSchedule" | "NoExecute") && !tolerated(tolerations(pod), t)
    })
}

/// Whether the pod tolerates the `node.kubernetes.io/unschedulable` taint, which lets it onto
/// a cordoned node (NodeUnschedulable plugin; DaemonSet pods carry this toleration).
fn tolerates_unschedulable(pod: &Pod) -> bool {
    let taint = Taint {
        key: "node.kubernetes.io/unschedulable".into(),
        effect: "NoSchedule".into(),
        value: None,
        time_added: None,
    };
    tolerated(tolerations(pod), &taint)
}

/// Every filter, in upstream's order; `Ok` when the node can take the pod. `volume_zone` is
/// the zone the pod's volumes are pinned to, if any.
pub fn fits(
    pod: &Pod,
    request: (i64, i64),
    node: &NodeInfo,
    volume_zone: Option<&str>,
) -> Result<(), Unfit> {
    if !node_ready(&node.node) {
        return Err(Unfit::NotReady);
    }
    if node_unschedulable(&node.node) && !tolerates_unschedulable(pod) {
        return Err(Unfit::Unschedulable);
    }
    if let Some(t) = untolerated_taint(pod, &node.node) {
        return Err(Unfit::Taint(taint_text(t)));
    }
    if !matches_node_selection(pod, &node.node) {
        return Err(Unfit::NodeSelector);
    }
    if let Some(zone) = volume_zone
        && node.zone() != Some(zone)
    {
        return Err(Unfit::VolumeZone);
    }
    if node.pods_used + 1 > node.pods_allocatable {
        return Err(Unfit::Pods);
    }
    if node.cpu_used + request.0 > node.cpu_allocatable {
        return Err(Unfit::Cpu);
    }
    if node.memory_used + request.1 > node.memory_allocatable {
        return Err(Unfit::Memory);
    }
    Ok(())
}

/// Higher is better. LeastAllocated (the free share of CPU and memory after placing the pod,
/// 0..100), minus a spread penalty per sibling already on the node (as the default
/// topology-spread constraints push replicas apart), minus a penalty per untolerated
/// PreferNoSchedule taint.
pub fn score(pod: &Pod, request: (i64, i64), node: &NodeInfo, siblings_on_node: usize) -> i64 {
    let free = |alloc: i64, used: i64| {
        if alloc <= 0 {
            0
        } else {
            ((alloc - used).max(0) * 100) / alloc
        }
    };
    let least_allocated = (free(node.cpu_allocatable, node.cpu_used + request.0)
        + free(node.memory_allocatable, node.memory_used + request.1))
        / 2;
    let prefer_no = node_taints(&node.node)
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(tolerations(pod), t))
        .count() as i64;
    least_allocated - 100 * siblings_on_node as i64 - 1000 * prefer_no
}

/// Picks the best node for a pod: index into `nodes`, or the failure message upstream puts
/// on the `PodScheduled=False` condition.
pub fn pick_node(
    pod: &Pod,
    request: (i64, i64),
    nodes: &[NodeInfo],
    volume_zone: Option<&str>,
    siblings_on: &dyn Fn(&str) -> usize,
) -> Result<usize, String> {
    let mut best: Option<(i64, usize)> = None;
    let mut reasons: std::collections::BTreeMap<String, usize> = Default::default();
    for (i, node) in nodes.iter().enumerate() {
        match fits(pod, request, node, volume_zone) {
            Ok(()) => {
                let s = score(pod, request, node, siblings_on(&node.name));
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, i));
                }
            }
            Err(why) => *reasons.entry(why.to_string()).or_default() += 1,
        }
    }
    best.map(|(_, i)| i)
        .ok_or_else(|| unschedulable_message(nodes.len(), &reasons))
}

/// `0/3 nodes are available: 3 node(s) had untolerated taint {k: v}.`
pub fn unschedulable_message(
    total: usize,
    reasons: &std::collections::BTreeMap<String, usize>,
) -> String {
    let parts: Vec<String> = reasons.iter().map(|(r, n)| format!("{n} {r}")).collect();
    if parts.is_empty() {
        format!("0/{total} nodes are available.")
    } else {
        format!("0/{total} nodes are available: {}.", parts.join(", "))
    }
}

#[cfg(test)]
#[path = "scheduling_tests.rs"]
mod tests;
