//! Nodes as EKS registers them, callable as a library API (the EKS part boots node-group
//! nodes with [`register_node`] and terminates them with [`remove_node`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::instances::instance_type;
use crate::store::{ApiError, Resource, Store, timestamp};

/// Label EKS puts on a managed node group's nodes.
pub const NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";
pub const INSTANCE_TYPE_LABEL: &str = "node.kubernetes.io/instance-type";
pub const CAPACITY_TYPE_LABEL: &str = "eks.amazonaws.com/capacityType";
pub const NODEGROUP_IMAGE_LABEL: &str = "eks.amazonaws.com/nodegroup-image";
/// Annotation recording the AMI release a node booted from (the twin's own bookkeeping).
pub const AMI_RELEASE_ANNOTATION: &str = "twin.ngm.io/ami-release";
/// Annotation recording the Auto Scaling group a node's instance belongs to.
pub const ASG_ANNOTATION: &str = "twin.ngm.io/asg";

/// Everything needed to register one node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeTemplate {
    /// Managed node group name (sets `eks.amazonaws.com/nodegroup`); `None` for self-managed.
    pub nodegroup: Option<String>,
    /// The Auto Scaling group behind the node, recorded as an annotation.
    pub asg: Option<String>,
    pub instance_type: String,
    pub zone: String,
    /// `ON_DEMAND` or `SPOT`.
    pub capacity_type: String,
    /// AMI id (sets `eks.amazonaws.com/nodegroup-image` on managed nodes).
    pub image_id: Option<String>,
    pub ami_release: Option<String>,
    /// Kubelet version, e.g. `v1.33.4-eks-1234567`.
    pub kubelet_version: String,
    pub labels: BTreeMap<String, String>,
    /// `(key, value, effect)` with Kubernetes effects (`NoSchedule`...).
    pub taints: Vec<(String, Option<String>, String)>,
    /// EC2 instance id; generated when `None`.
    pub instance_id: Option<String>,
    /// Fault: the node registers but its Ready condition never turns True.
    pub never_ready: bool,
    /// EKS AMI type the instance boots (`AL2023_x86_64_STANDARD`, `BOTTLEROCKET_ARM_64`...).
    pub ami_type: String,
}

impl Default for NodeTemplate {
    fn default() -> Self {
        Self {
            nodegroup: None,
            asg: None,
            instance_type: "m5.large".into(),
            zone: "us-west-2a".into(),
            capacity_type: "ON_DEMAND".into(),
            image_id: None,
            ami_release: None,
            kubelet_version: "v1.33.0-eks-twin".into(),
            labels: BTreeMap::new(),
            taints: Vec::new(),
            instance_id: None,
            never_ready: false,
            ami_type: "AL2023_x86_64_STANDARD".into(),
        }
    }
}

/// The node's private address: one process-wide sequence, so names never collide.
static NEXT_ADDRESS: AtomicU32 = AtomicU32::new(1);

fn next_ip() -> String {
    let n = NEXT_ADDRESS.fetch_add(1, Ordering::Relaxed);
    format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
}

fn region_of(zone: &str) -> &str {
    zone.trim_end_matches(|c: char| c.is_ascii_alphabetic())
}

/// An instance id derived from the IP: `i-` and 17 hex digits, as EC2's.
fn instance_id_for(ip: &str) -> String {
    let n: u64 = ip
        .split('.')
        .fold(0, |acc, o| (acc << 8) | o.parse::<u64>().unwrap_or(0));
    format!("i-0{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// The Ready condition (and the pressure conditions a healthy kubelet reports).
pub fn node_conditions(ready: bool, now: DateTime<Utc>) -> Value {
    let ts = timestamp(now);
    let cond = |t: &str, status: &str, reason: &str, message: &str| {
        json!({
            "type": t, "status": status, "reason": reason, "message": message,
            "lastHeartbeatTime": ts, "lastTransitionTime": ts,
        })
    };
    json!([
        cond(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available"
        ),
        cond(
            "DiskPressure",
            "False",
            "KubeletHasNoDiskPressure",
            "kubelet has no disk pressure"
        ),
        cond(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available"
        ),
        if ready {
            cond(
                "Ready",
                "True",
                "KubeletReady",
                "kubelet is posting ready status",
            )
        } else {
            cond(
                "Ready",
                "False",
                "KubeletNotReady",
                "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady",
            )
        },
    ])
}

/// The node object a template registers as (pure: no store).
pub fn build_node(t: &NodeTemplate, now: DateTime<Utc>) -> Result<Value, ApiError> {
    let itype = instance_type(&t.instance_type).ok_or_else(|| {
        ApiError::bad_request(format!("unknown instance type {}", t.instance_type))
    })?;
    let ip = next_ip();
    let region = region_of(&t.zone);
    let name = format!("ip-{}.{region}.compute.internal", ip.replace('.', "-"));
    let instance_id = t
        .instance_id
        .clone()
        .unwrap_or_else(|| instance_id_for(&ip));
    let mut labels: BTreeMap<String, String> = BTreeMap::from([
        ("kubernetes.io/arch".into(), itype.arch.into()),
        ("kubernetes.io/os".into(), "linux".into()),
        ("kubernetes.io/hostname".into(), name.clone()),
        ("beta.kubernetes.io/arch".into(), itype.arch.into()),
        ("beta.kubernetes.io/os".into(), "linux".into()),
        (INSTANCE_TYPE_LABEL.into(), t.instance_type.clone()),
        (
            "beta.kubernetes.io/instance-type".into(),
            t.instance_type.clone(),
        ),
        ("topology.kubernetes.io/zone".into(), t.zone.clone()),
        ("topology.kubernetes.io/region".into(), region.into()),
        (
            "failure-domain.beta.kubernetes.io/zone".into(),
            t.zone.clone(),
        ),
        (
            "failure-domain.beta.kubernetes.io/region".into(),
            region.into(),
        ),
        (CAPACITY_TYPE_LABEL.into(), t.capacity_type.clone()),
    ]);
    if let Some(ng) = &t.nodegroup {
        labels.insert(NODEGROUP_LABEL.into(), ng.clone());
        if let Some(image) = &t.image_id {
            labels.insert(NODEGROUP_IMAGE_LABEL.into(), image.clone());
        }
    }
    labels.extend(t.labels.clone());
    let mut annotations =
        BTreeMap::from([("node.alpha.kubernetes.io/ttl".to_string(), "0".to_string())]);
    if let Some(r) = &t.ami_release {
        annotations.insert(AMI_RELEASE_ANNOTATION.into(), r.clone());
    }
    if let Some(asg) = &t.asg {
        annotations.insert(ASG_ANNOTATION.into(), asg.clone());
    }
    let taints: Vec<Value> = t
        .taints
        .iter()
        .map(|(k, v, e)| match v {
            Some(v) => json!({ "key": k, "value": v, "effect": e }),
            None => json!({ "key": k, "effect": e }),
        })
        .collect();
    let (cpu, mem_mib, pods) = itype.allocatable();
    let mut spec = json!({ "providerID": format!("aws:///{}/{instance_id}", t.zone) });
    if !taints.is_empty() {
        spec["taints"] = json!(taints);
    }
    Ok(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": { "name": name, "labels": labels, "annotations": annotations },
        "spec": spec,
        "status": {
            "capacity": {
                "cpu": itype.vcpu.to_string(),
                "memory": format!("{}Mi", itype.memory_mib),
                "pods": itype.max_pods.to_string(),
                "ephemeral-storage": "83873772Ki",
            },
            "allocatable": {
                "cpu": format!("{cpu}m"),
                "memory": format!("{mem_mib}Mi"),
                "pods": pods.to_string(),
                "ephemeral-storage": "76224326324",
            },
            "conditions": node_conditions(!t.never_ready, now),
            "addresses": [
                { "type": "InternalIP", "address": ip },
                { "type": "Hostname", "address": name },
                { "type": "InternalDNS", "address": name },
            ],
            "nodeInfo": {
                "architecture": itype.arch,
                "operatingSystem": "linux",
                "osImage": os_image(&t.ami_type, &t.kubelet_version),
                "kernelVersion": "6.1.0",
                "containerRuntimeVersion": "containerd://1.7.27",
                "kubeletVersion": t.kubelet_version,
                "kubeProxyVersion": t.kubelet_version,
                "machineID": instance_id, "systemUUID": instance_id, "bootID": instance_id,
            },
        },
    }))
}

/// `status.nodeInfo.osImage`: the kubelet reports `PRETTY_NAME` of the image's
/// `/etc/os-release` (kubernetes `pkg/kubelet/nodestatus/setters.go`, `NodeInfo`, through
/// `GetOperatingSystem`); Bottlerocket's is `Bottlerocket OS <version> (aws-k8s-<minor>)`.
pub fn os_image(ami_type: &str, kubelet_version: &str) -> String {
    if ami_type.starts_with("BOTTLEROCKET") {
        let minor: String = kubelet_version
            .trim_start_matches('v')
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".");
        format!("Bottlerocket OS 1.49.0 (aws-k8s-{minor})")
    } else {
        "Amazon Linux 2023.9.20251105".to_string()
    }
}

/// Registers a node as its kubelet would; returns the stored node.
pub fn register_node(store: &Store, t: &NodeTemplate) -> Result<std::sync::Arc<Value>, ApiError> {
    let node = build_node(t, store.clock().now())?;
    store.create(Resource::Node, "", node)
}

/// Terminates a node's instance. The Node and its pods stay in the API, Ready, until the node
/// lifecycle controller notices (`super::nodelifecycle`); requests sent to them time out.
pub fn terminate_instance(store: &Store, name: &str) {
    store.dead_instances().terminate(name, store.clock().now());
}

/// Deletes a Node and every pod bound to it at once (a crash test's shortcut: a terminated
/// instance goes through [`terminate_instance`]); in-flight requests on those pods fail.
/// Returns the names of the pods that went with it.
pub fn remove_node(store: &Store, name: &str) -> Vec<(String, String)> {
    let mut gone = Vec::new();
    for pod in store.list_all(Resource::Pod, None) {
        if pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(name) {
            let ns = pod
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let pname = pod
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if store.remove_now(Resource::Pod, ns, pname).is_some() {
                gone.push((ns.to_string(), pname.to_string()));
            }
        }
    }
    store.remove_now(Resource::Node, "", name);
    gone
}

/// Sets a node's Ready condition (a kubelet that stops or resumes posting status).
pub fn set_node_ready(store: &Store, name: &str, ready: bool) -> Result<(), ApiError> {
    let now = store.clock().now();
    store.mutate(Resource::Node, "", name, |node| {
        node["status"]["conditions"] = node_conditions(ready, now);
        Ok(())
    })?;
    Ok(())
}

/// The EC2 instance id in a node's `providerID` (`aws:///<zone>/<id>`).
pub fn instance_id_of(node: &Value) -> Option<&str> {
    node.pointer("/spec/providerID")
        .and_then(Value::as_str)?
        .rsplit('/')
        .next()
        .filter(|s| s.starts_with("i-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_managed_node_carries_the_labels_and_provider_id_eks_sets() {
        let t = NodeTemplate {
            nodegroup: Some("standard".into()),
            instance_type: "t3.2xlarge".into(),
            zone: "us-west-2b".into(),
            image_id: Some("ami-0123".into()),
            ..NodeTemplate::default()
        };
        let node = build_node(&t, Utc::now()).expect("known instance type");
        let label = |k: &str| node["metadata"]["labels"][k].as_str().map(str::to_string);
        assert_eq!(label(NODEGROUP_LABEL).as_deref(), Some("standard"));
        assert_eq!(label(INSTANCE_TYPE_LABEL).as_deref(), Some("t3.2xlarge"));
        assert_eq!(
            label("topology.kubernetes.io/zone").as_deref(),
            Some("us-west-2b")
        );
        assert_eq!(label(CAPACITY_TYPE_LABEL).as_deref(), Some("ON_DEMAND"));
        assert_eq!(label(NODEGROUP_IMAGE_LABEL).as_deref(), Some("ami-0123"));
        let provider = node["spec"]["providerID"].as_str().unwrap_or_default();
        assert!(provider.starts_with("aws:///us-west-2b/i-"), "{provider}");
        assert_eq!(instance_id_of(&node).map(|i| i.len()), Some(19));
        assert_eq!(node["status"]["allocatable"]["cpu"], "7910m");
    }

    #[test]
    fn a_self_managed_node_has_no_nodegroup_label() {
        let node = build_node(&NodeTemplate::default(), Utc::now()).expect("known type");
        assert!(node["metadata"]["labels"].get(NODEGROUP_LABEL).is_none());
    }

    #[test]
    fn a_never_ready_node_reports_ready_false() {
        let t = NodeTemplate {
            never_ready: true,
            ..NodeTemplate::default()
        };
        let node = build_node(&t, Utc::now()).expect("known type");
        let ready = node["status"]["conditions"]
            .as_array()
            .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"))
            .map(|c| c["status"].clone());
        assert_eq!(ready, Some(json!("False")));
    }
}
