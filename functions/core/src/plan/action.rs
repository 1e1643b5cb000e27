//! The one action vocabulary every planner speaks. A step executes a plan's actions in order
//! through its ports; a dry run logs them instead.

use serde::{Deserialize, Serialize};

use crate::model::{
    EventType, Labels, LaunchTemplateOverrides, LaunchTemplateRef, NodeGroupSpec, ObjectRef,
    Scaling, Taint, WorkloadRef,
};
use crate::ports::{HpaPatch, MetadataPatch};

/// One external mutation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "action")]
pub enum Action {
    // EKS
    CreateNodegroup {
        spec: Box<NodeGroupSpec>,
        client_request_token: String,
    },
    UpdateNodegroupScaling {
        name: String,
        scaling: Scaling,
        client_request_token: String,
    },
    DeleteNodegroup {
        name: String,
    },
    TagResource {
        arn: String,
        tags: Labels,
    },
    UntagResource {
        arn: String,
        keys: Vec<String>,
    },
    // Auto Scaling
    UpdateAsgSize {
        name: String,
        scaling: Scaling,
    },
    SuspendProcesses {
        name: String,
        processes: Vec<String>,
    },
    ResumeProcesses {
        name: String,
        processes: Vec<String>,
    },
    TagAsg {
        name: String,
        tags: Labels,
    },
    UntagAsg {
        name: String,
        keys: Vec<String>,
    },
    DeleteAsg {
        name: String,
    },
    // EC2
    CreateLaunchTemplateVersion {
        template: LaunchTemplateRef,
        overrides: LaunchTemplateOverrides,
        client_token: String,
    },
    // Kubernetes
    PatchNodeLabels {
        node: String,
        labels: MetadataPatch,
    },
    PatchNodeAnnotations {
        node: String,
        annotations: MetadataPatch,
    },
    AddNodeTaints {
        node: String,
        taints: Vec<Taint>,
    },
    RemoveNodeTaints {
        node: String,
        taints: Vec<Taint>,
    },
    SetUnschedulable {
        node: String,
        unschedulable: bool,
    },
    AnnotateWorkload {
        workload: WorkloadRef,
        annotations: MetadataPatch,
    },
    ScaleWorkload {
        workload: WorkloadRef,
        from: i32,
        to: i32,
    },
    PatchHpa {
        namespace: String,
        name: String,
        patch: HpaPatch,
    },
    AnnotatePod {
        namespace: String,
        name: String,
        annotations: MetadataPatch,
    },
    EvictPod {
        namespace: String,
        name: String,
        uid: String,
    },
    DeletePod {
        namespace: String,
        name: String,
        uid: String,
    },
}

impl Action {
    /// The Kubernetes object this action changes and an Event to record on it, so that every
    /// object ngm changes carries an Event saying so.
    pub fn event(&self, execution: &str) -> Option<(ObjectRef, EventType, &'static str, String)> {
        let node = |n: &str| ObjectRef::node(n);
        let pod = |ns: &str, n: &str| ObjectRef {
            api_version: "v1".into(),
            kind: "Pod".into(),
            namespace: Some(ns.into()),
            name: n.into(),
            uid: None,
        };
        let (obj, reason, msg) = match self {
            Action::PatchNodeLabels { node: n, .. }
            | Action::PatchNodeAnnotations { node: n, .. } => (
                node(n),
                "NgmLabelled",
                "ngm updated this node's metadata".to_string(),
            ),
            Action::AddNodeTaints { node: n, .. } => (
                node(n),
                "NgmTainted",
                "ngm tainted this node for migration".to_string(),
            ),
            Action::RemoveNodeTaints { node: n, .. } => {
                (node(n), "NgmUntainted", "ngm removed its taint".to_string())
            }
            Action::SetUnschedulable {
                node: n,
                unschedulable,
            } => (
                node(n),
                if *unschedulable {
                    "NgmCordoned"
                } else {
                    "NgmUncordoned"
                },
                format!("ngm set unschedulable={unschedulable}"),
            ),
            Action::AnnotateWorkload { workload, .. } => (
                ObjectRef::workload(workload),
                "NgmAnnotated",
                "ngm recorded migration markers".to_string(),
            ),
            Action::ScaleWorkload { workload, from, to } => (
                ObjectRef::workload(workload),
                "NgmScaled",
                format!("ngm scaled from {from} to {to} replicas"),
            ),
            Action::PatchHpa {
                namespace, name, ..
            } => (
                ObjectRef {
                    api_version: "autoscaling/v2".into(),
                    kind: "HorizontalPodAutoscaler".into(),
                    namespace: Some(namespace.clone()),
                    name: name.clone(),
                    uid: None,
                },
                "NgmHpaPatched",
                "ngm changed this HPA's replica bounds".to_string(),
            ),
            Action::AnnotatePod {
                namespace, name, ..
            } => (
                pod(namespace, name),
                "NgmMarked",
                "ngm marked this pod for retirement".to_string(),
            ),
            Action::EvictPod {
                namespace, name, ..
            } => (
                pod(namespace, name),
                "NgmEvicted",
                "ngm evicted this pod from a retiring node".to_string(),
            ),
            Action::DeletePod {
                namespace, name, ..
            } => (
                pod(namespace, name),
                "NgmForceDeleted",
                "ngm deleted this pod past its PDB, as the request's policy allows".to_string(),
            ),
            _ => return None,
        };
        let kind = if matches!(self, Action::DeletePod { .. }) {
            EventType::Warning
        } else {
            EventType::Normal
        };
        Some((obj, kind, reason, format!("{msg} (execution {execution})")))
    }
}

/// Helper for building metadata patches.
pub fn set(pairs: &[(&str, String)]) -> MetadataPatch {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Some(v.clone())))
        .collect()
}

/// Helper for a patch removing `keys`.
pub fn remove(keys: &[&str]) -> MetadataPatch {
    keys.iter().map(|k| (k.to_string(), None)).collect()
}
