//! The Cluster Autoscaler's rules as pure functions (kubernetes/autoscaler `cluster-autoscaler`,
//! AWS provider; docs/research/cluster-awareness.md §1 and §8 hold the sources). The loop that
//! reads the world and acts on these rules is [`crate::eks::Eks::start_autoscaler`].
//!
//! - Discovery: an Auto Scaling group is the autoscaler's only if it carries every configured
//!   tag key (`cloudprovider/aws/README.md`, "Auto-Discovery Setup").
//! - Scale-up: for pods the scheduler marked `PodScheduled=False`, reason `Unschedulable`
//!   (FAQ "How does scale-up work?"), after the pods that nodes already asked for will hold,
//!   one group is raised by as many template nodes as its pods need, never above its max; the
//!   group is chosen by the default expander, `least-waste` (`config/flags/flags.go`).
//! - Scale-down: a node under the utilization threshold (the larger of its CPU and memory
//!   requests over allocatable, `config/const.go`), whose pods all may move and fit elsewhere
//!   (FAQ "What types of pods can prevent CA from removing a node?"), and that does not carry
//!   `cluster-autoscaler.kubernetes.io/scale-down-disabled: "true"` (FAQ; `eligibility.go`).

use std::fmt;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde::{Deserialize, Serialize};

use super::podutil::{annotation, condition, controller_of, is_terminal, node_name, requests};
use super::scheduling::{NodeInfo, fits};

/// Node annotation that keeps the autoscaler from removing the node (FAQ, "How can I prevent
/// Cluster Autoscaler from scaling down a particular node?").
pub const SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
/// Pod annotation: `"false"` blocks its node's removal, `"true"` lifts the no-controller,
/// local-storage and kube-system blocks (FAQ).
pub const SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// The taint the autoscaler puts on a node it is removing (`utils/taints/taints.go`).
pub const TO_BE_DELETED_TAINT: &str = "ToBeDeletedByClusterAutoscaler";

/// The autoscaler's flags the twin models, with upstream's defaults (`config/const.go`,
/// `config/flags/flags.go` at cluster-autoscaler-1.36.1). A scenario turns the autoscaler on
/// with a `cluster.clusterAutoscaler:` section; every field may be left out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AutoscalerSettings {
    /// `--scan-interval` (10 s).
    #[serde(default = "AutoscalerSettings::default_scan")]
    pub scan_interval_seconds: f64,
    /// `--scale-down-unneeded-time` (10 min).
    #[serde(default = "AutoscalerSettings::default_ten_minutes")]
    pub scale_down_unneeded_seconds: f64,
    /// `--scale-down-delay-after-add` (10 min).
    #[serde(default = "AutoscalerSettings::default_ten_minutes")]
    pub scale_down_delay_after_add_seconds: f64,
    /// `--scale-down-utilization-threshold` (0.5).
    #[serde(default = "AutoscalerSettings::default_threshold")]
    pub utilization_threshold: f64,
    /// `--max-node-provision-time` (15 min).
    #[serde(default = "AutoscalerSettings::default_provision")]
    pub max_node_provision_seconds: f64,
    /// `--max-graceful-termination-sec` (600 s): how long it waits for evicted pods to go.
    #[serde(default = "AutoscalerSettings::default_ten_minutes")]
    pub max_graceful_termination_seconds: f64,
    /// The tag keys of `--node-group-auto-discovery=asg:tag=...` (`key` or `key=value`);
    /// `${cluster}` stands for the cluster's name. Default: `k8s.io/cluster-autoscaler/enabled`
    /// and `k8s.io/cluster-autoscaler/${cluster}` (`cloudprovider/aws/README.md`).
    #[serde(default = "AutoscalerSettings::default_tags")]
    pub discovery_tags: Vec<String>,
}

impl AutoscalerSettings {
    fn default_scan() -> f64 {
        10.0
    }
    fn default_ten_minutes() -> f64 {
        600.0
    }
    fn default_threshold() -> f64 {
        0.5
    }
    fn default_provision() -> f64 {
        900.0
    }
    fn default_tags() -> Vec<String> {
        vec![
            "k8s.io/cluster-autoscaler/enabled".into(),
            "k8s.io/cluster-autoscaler/${cluster}".into(),
        ]
    }

    /// The discovery tags with `${cluster}` filled in.
    pub fn tags_for(&self, cluster: &str) -> Vec<String> {
        self.discovery_tags
            .iter()
            .map(|t| t.replace("${cluster}", cluster))
            .collect()
    }
}

impl Default for AutoscalerSettings {
    fn default() -> Self {
        Self {
            scan_interval_seconds: Self::default_scan(),
            scale_down_unneeded_seconds: Self::default_ten_minutes(),
            scale_down_delay_after_add_seconds: Self::default_ten_minutes(),
            utilization_threshold: Self::default_threshold(),
            max_node_provision_seconds: Self::default_provision(),
            max_graceful_termination_seconds: Self::default_ten_minutes(),
            discovery_tags: Self::default_tags(),
        }
    }
}

/// Whether a group with these tags is discovered: it carries every key, and the value where a
/// filter gives one ("will find the ASGs that have at least all the given tags").
pub fn discovered(tags: &[(String, String)], filters: &[String]) -> bool {
    filters.iter().all(|f| {
        let (key, value) = match f.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (f.as_str(), None),
        };
        tags.iter()
            .any(|(k, v)| k == key && value.is_none_or(|want| v == want))
    })
}

/// A pod the scheduler could not place: unbound, not terminal or terminating, and
/// `PodScheduled=False` with reason `Unschedulable` (FAQ "How does scale-up work?").
pub fn unschedulable(pod: &Pod) -> bool {
    node_name(pod).is_none()
        && !is_terminal(pod)
        && pod.metadata.deletion_timestamp.is_none()
        && condition(pod, "PodScheduled")
            .is_some_and(|c| c.status == "False" && c.reason.as_deref() == Some("Unschedulable"))
}

/// A group the autoscaler may raise, as its simulation sees it.
#[derive(Clone, Debug)]
pub struct GroupOption {
    /// The Auto Scaling group's name.
    pub name: String,
    /// A node as the group would launch it: its instance type's allocatable, its labels and
    /// taints.
    pub template: Node,
    pub desired: i32,
    pub max: i32,
    /// Nodes asked for that are not Ready yet (and not given up on).
    pub upcoming: i32,
}

/// A raise of one group's desired capacity.
#[derive(Clone, Debug, PartialEq)]
pub struct ScaleUp {
    pub group: String,
    pub from: i32,
    pub to: i32,
    /// The pending pods the new nodes are for.
    pub pods: usize,
}

/// Places `pod` on the first node of `nodes` it fits (first fit, as the binpacking estimator).
fn place(pod: &Pod, nodes: &mut [NodeInfo]) -> bool {
    let req = requests(pod);
    match nodes.iter_mut().find(|n| fits(pod, req, n, None).is_ok()) {
        Some(n) => {
            n.add(req);
            true
        }
        None => false,
    }
}

/// `least-waste` (`expander/waste`): the share of the new nodes' CPU and of their memory that
/// the pods leave unused, summed; lower is better.
fn waste(nodes: &[NodeInfo]) -> f64 {
    let share = |alloc: i64, used: i64| {
        if alloc <= 0 {
            0.0
        } else {
            (alloc - used) as f64 / alloc as f64
        }
    };
    let cpu: (i64, i64) = nodes
        .iter()
        .fold((0, 0), |a, n| (a.0 + n.cpu_allocatable, a.1 + n.cpu_used));
    let mem: (i64, i64) = nodes.iter().fold((0, 0), |a, n| {
        (a.0 + n.memory_allocatable, a.1 + n.memory_used)
    });
    share(cpu.0, cpu.1) + share(mem.0, mem.1)
}

/// The scale-up for `pending` pods (oldest first), if any group can help. Pods that fit on
/// an `existing` node as it is now (`core/podlistprocessor/filter_out_schedulable.go`) or on
/// the groups' upcoming nodes are taken out first, so nodes already asked for are not asked
/// for again; then each group below its max is binpacked with new template nodes (at most
/// `max - desired`), and the option that wastes least wins. Upstream breaks a tie at random;
/// the twin takes the first group by name, so a run can be replayed.
pub fn plan_scale_up(
    pending: &[Pod],
    existing: &[NodeInfo],
    groups: &[GroupOption],
) -> Option<ScaleUp> {
    let mut upcoming: Vec<NodeInfo> =
        existing
            .iter()
            .cloned()
            .chain(groups.iter().flat_map(|g| {
                (0..g.upcoming.max(0)).map(move |_| NodeInfo::new(g.template.clone()))
            }))
            .collect();
    let left: Vec<&Pod> = pending
        .iter()
        .filter(|p| !place(p, &mut upcoming))
        .collect();
    if left.is_empty() {
        return None;
    }
    let mut best: Option<(f64, ScaleUp)> = None;
    let mut sorted: Vec<&GroupOption> = groups.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for g in sorted {
        let room = usize::try_from(g.max - g.desired).unwrap_or(0);
        if room == 0 {
            continue;
        }
        let empty = NodeInfo::new(g.template.clone());
        let mut nodes: Vec<NodeInfo> = Vec::new();
        let mut helped = 0;
        for pod in &left {
            let req = requests(pod);
            if fits(pod, req, &empty, None).is_err() {
                continue;
            }
            if place(pod, &mut nodes) {
                helped += 1;
            } else if nodes.len() < room {
                let mut n = empty.clone();
                n.add(req);
                nodes.push(n);
                helped += 1;
            }
        }
        if nodes.is_empty() {
            continue;
        }
        let w = waste(&nodes);
        if best.as_ref().is_none_or(|(bw, _)| w < *bw) {
            let added = i32::try_from(nodes.len()).unwrap_or(i32::MAX);
            best = Some((
                w,
                ScaleUp {
                    group: g.name.clone(),
                    from: g.desired,
                    to: g.desired + added,
                    pods: helped,
                },
            ));
        }
    }
    best.map(|(_, s)| s)
}

/// The node's utilization: the larger of its pods' CPU and memory requests over its
/// allocatable (`--scale-down-utilization-threshold` compares against this).
pub fn utilization(node: &NodeInfo) -> f64 {
    let share = |used: i64, alloc: i64| {
        if alloc <= 0 {
            1.0
        } else {
            used as f64 / alloc as f64
        }
    };
    share(node.cpu_used, node.cpu_allocatable).max(share(node.memory_used, node.memory_allocatable))
}

/// Whether scale-down leaves the pod where it is: DaemonSet and mirror pods stay with their
/// node, terminal pods count for nothing (`simulator/drainability/rules`).
pub fn stays(pod: &Pod) -> bool {
    let daemon = controller_of(&pod.metadata).is_some_and(|o| o.kind == "DaemonSet");
    let mirror = annotation(pod, "kubernetes.io/config.mirror").is_some();
    daemon || mirror || is_terminal(pod)
}

/// Why a pod keeps its node (FAQ, "What types of pods can prevent CA from removing a node?").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Blocker {
    /// `cluster-autoscaler.kubernetes.io/safe-to-evict: "false"`.
    NotSafeToEvict,
    /// No controller would recreate it.
    NoController,
    /// A `hostPath`, or an `emptyDir` not of medium `Memory`.
    LocalStorage,
    /// A kube-system pod no PDB covers.
    KubeSystem,
    /// Its PDB allows no disruption now.
    Pdb(String),
    /// It fits on no other node.
    NoPlace,
}

impl fmt::Display for Blocker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotSafeToEvict => f.write_str("pod is annotated safe-to-evict: false"),
            Self::NoController => f.write_str("pod has no controller"),
            Self::LocalStorage => f.write_str("pod has local storage"),
            Self::KubeSystem => f.write_str("kube-system pod without a PDB"),
            Self::Pdb(name) => write!(f, "PDB {name} allows no disruption"),
            Self::NoPlace => f.write_str("pod fits on no other node"),
        }
    }
}

fn local_storage(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .is_some_and(|vs| {
            vs.iter().any(|v| {
                v.host_path.is_some()
                    || v.empty_dir
                        .as_ref()
                        .is_some_and(|e| e.medium.as_deref() != Some("Memory"))
            })
        })
}

/// What keeps a moving pod on its node, if anything. `pdb` is the PDB covering it, with its
/// `disruptionsAllowed`. `safe-to-evict: "true"` lifts the no-controller, local-storage and
/// kube-system blocks, not a PDB (the eviction still asks it).
pub fn blocker(pod: &Pod, pdb: Option<(&str, i64)>) -> Option<Blocker> {
    let safe = annotation(pod, SAFE_TO_EVICT);
    if safe == Some("false") {
        return Some(Blocker::NotSafeToEvict);
    }
    if safe != Some("true") {
        if controller_of(&pod.metadata).is_none() {
            return Some(Blocker::NoController);
        }
        if local_storage(pod) {
            return Some(Blocker::LocalStorage);
        }
        if pod.metadata.namespace.as_deref() == Some("kube-system") && pdb.is_none() {
            return Some(Blocker::KubeSystem);
        }
    }
    match pdb {
        Some((name, allowed)) if allowed < 1 => Some(Blocker::Pdb(name.to_string())),
        _ => None,
    }
}

/// Places the moving pods on `others` (accounting each), or names the first that fits nowhere.
pub fn fit_elsewhere(pods: &[&Pod], others: &mut [NodeInfo]) -> Result<(), Blocker> {
    for pod in pods {
        if !place(pod, others) {
            return Err(Blocker::NoPlace);
        }
    }
    Ok(())
}

/// Whether the node's annotation opts it out of scale-down.
pub fn scale_down_disabled(node: &Node) -> bool {
    node.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(SCALE_DOWN_DISABLED))
        .is_some_and(|v| v == "true")
}

#[cfg(test)]
#[path = "autoscaler_tests.rs"]
mod tests;
