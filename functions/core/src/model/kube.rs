//! Kubernetes objects reduced to what the planners read.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::{LabelSelector, Labels, Taint, Timestamp};

/// CPU and memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl Resources {
    pub fn plus(self, other: Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_add(other.cpu_millis),
            memory_bytes: self.memory_bytes.saturating_add(other.memory_bytes),
        }
    }

    pub fn times(self, n: i64) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_mul(n),
            memory_bytes: self.memory_bytes.saturating_mul(n),
        }
    }
}

/// A node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeView {
    pub name: String,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    #[serde(default)]
    pub taints: Vec<Taint>,
    pub unschedulable: bool,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// `topology.kubernetes.io/zone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub allocatable: Resources,
    /// `status.nodeInfo.osImage` (`Amazon Linux 2023...`, `Bottlerocket OS 1.x (aws-k8s-1.33)`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_image: Option<String>,
    /// Allocatable `nvidia.com/gpu`.
    #[serde(default)]
    pub gpus: i64,
}

impl NodeView {
    /// The EC2 instance id from a `aws:///zone/i-...` provider id.
    pub fn instance_id(&self) -> Option<&str> {
        self.provider_id
            .as_deref()
            .and_then(|p| p.rsplit('/').next())
            .filter(|id| id.starts_with("i-"))
    }
}

/// A pod's owner reference (the controller one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OwnerRef {
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

/// Pod phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PodPhase {
    Pending,
    Running,
    Succeeded,
    Failed,
    Unknown,
}

/// A pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodView {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// `status.podIP`: what an IP target (AWS Load Balancer Controller) is registered by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_ip: Option<String>,
    pub phase: PodPhase,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    /// The controller owner reference, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerRef>,
    /// Carries `kubernetes.io/config.mirror` (a static pod's API mirror).
    pub is_mirror: bool,
    pub has_empty_dir: bool,
    #[serde(default)]
    pub pvc_names: Vec<String>,
    /// `metadata.deletionTimestamp` is set.
    pub terminating: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    pub requests: Resources,
    /// How the pod stops: its preStop hooks and grace period.
    #[serde(default)]
    pub shutdown: Shutdown,
    /// `spec.readinessGates[].conditionType`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub readiness_gates: Vec<String>,
    /// Which nodes can take it.
    #[serde(default)]
    pub placement: super::Placement,
}

/// A container's preStop hook, as far as its length can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum PreStop {
    /// No container has one.
    #[default]
    None,
    /// The longest hook sleeps this long (`sleep` action, or an exec of `sleep N`).
    Sleep { seconds: u32 },
    /// A hook whose length cannot be read (an HTTP call, a script).
    Other,
}

/// How a pod stops once deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Shutdown {
    pub pre_stop: PreStop,
    /// `terminationGracePeriodSeconds` (the API defaults it to 30).
    pub grace_seconds: i64,
}

impl Default for Shutdown {
    fn default() -> Self {
        Self {
            pre_stop: PreStop::None,
            grace_seconds: 30,
        }
    }
}

impl PodView {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn owner_kind(&self) -> Option<&str> {
        self.owner.as_ref().map(|o| o.kind.as_str())
    }
}

/// Deployment or StatefulSet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
}

impl fmt::Display for WorkloadKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
        })
    }
}

/// A scalable workload by kind, namespace and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRef {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for WorkloadRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// A Deployment or StatefulSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadView {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
    /// `spec.replicas` (Kubernetes defaults a missing value to 1).
    pub replicas: i32,
    pub ready_replicas: i32,
    #[serde(default)]
    pub updated_replicas: i32,
    pub generation: i64,
    pub observed_generation: i64,
    pub selector: LabelSelector,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub annotations: Labels,
    /// Sum of one pod's container requests.
    pub pod_requests: Resources,
    /// A StatefulSet with volumeClaimTemplates.
    #[serde(default)]
    pub has_volume_claims: bool,
}

impl WorkloadView {
    pub fn workload_ref(&self) -> WorkloadRef {
        WorkloadRef {
            kind: self.kind,
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    /// The controller has seen the latest spec and every desired replica is ready.
    pub fn is_settled(&self) -> bool {
        self.observed_generation >= self.generation && self.ready_replicas >= self.replicas
    }
}

/// A ReplicaSet (read to map a pod's owner to its Deployment).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaSetView {
    pub namespace: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<OwnerRef>,
    pub replicas: i32,
    pub ready_replicas: i32,
}

/// A DaemonSet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetView {
    pub namespace: String,
    pub name: String,
    pub desired_scheduled: i32,
    pub number_ready: i32,
}

/// A HorizontalPodAutoscaler (autoscaling/v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaView {
    pub namespace: String,
    pub name: String,
    /// `scaleTargetRef.kind`.
    pub target_kind: String,
    pub target_name: String,
    /// `spec.minReplicas`; the API defaults a missing value to 1.
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    pub current_replicas: i32,
    /// `status.desiredReplicas`: what the HPA last asked its target for.
    pub desired_replicas: i32,
    /// `metadata.generation`, and `status.observedGeneration`: the HPA controller has acted
    /// on its spec (a minimum ngm handed back) once they match.
    #[serde(default)]
    pub generation: i64,
    #[serde(default)]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub annotations: Labels,
}

impl HpaView {
    /// The workload this HPA scales, when it is a Deployment or StatefulSet.
    pub fn target(&self) -> Option<WorkloadRef> {
        let kind = match self.target_kind.as_str() {
            "Deployment" => WorkloadKind::Deployment,
            "StatefulSet" => WorkloadKind::StatefulSet,
            _ => return None,
        };
        Some(WorkloadRef {
            kind,
            namespace: self.namespace.clone(),
            name: self.target_name.clone(),
        })
    }

    /// Effective minReplicas (the API default is 1).
    pub fn effective_min(&self) -> i32 {
        self.min_replicas.unwrap_or(1)
    }

    /// Whether the HPA has acted on its current spec and its target is at the count it asks
    /// for: the workload is where the HPA, not ngm, wants it.
    pub fn holds(&self, target: &WorkloadView) -> Result<(), String> {
        if self.observed_generation.unwrap_or(0) < self.generation {
            return Err(format!(
                "the HPA {}/{} has not acted on its spec yet",
                self.namespace, self.name
            ));
        }
        if target.replicas != self.desired_replicas {
            return Err(format!(
                "{} is at {} replicas, its HPA asks for {}",
                target.workload_ref(),
                target.replicas,
                self.desired_replicas
            ));
        }
        Ok(())
    }
}

/// The HPA that scales `w`, if any.
pub fn hpa_of<'a>(hpas: &'a [HpaView], w: &WorkloadView) -> Option<&'a HpaView> {
    let r = w.workload_ref();
    hpas.iter().find(|h| h.target().as_ref() == Some(&r))
}

/// Service type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    LoadBalancer,
    ExternalName,
}

/// `externalTrafficPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrafficPolicy {
    Cluster,
    Local,
}

/// An AWS Load Balancer Controller TargetGroupBinding (`elbv2.k8s.aws/v1beta1`): the
/// controller makes one for every target group of a Service or Ingress it manages, and users
/// make them for target groups made elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupBindingView {
    pub namespace: String,
    pub name: String,
    /// `spec.serviceRef.name`, in the binding's namespace.
    pub service: String,
    pub target_group_arn: String,
    /// `spec.targetType`: `instance` or `ip` (unset: the target group's own type).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
}

impl TargetGroupBindingView {
    /// Whether its targets are the pods themselves.
    pub fn ip(&self) -> bool {
        self.target_type.as_deref() == Some("ip")
    }
}

/// A PersistentVolume, as far as where its data lives.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeView {
    pub name: String,
    /// `spec.local.path` or `spec.hostPath.path`: the data is on one node's disk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
    /// The `kubernetes.io/hostname` values of its required node affinity.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    /// `spec.claimRef`: `(namespace, name)` of the claim bound to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<(String, String)>,
}

/// A Karpenter NodePool (`karpenter.sh/v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodePoolView {
    pub name: String,
    /// `spec.template.spec.nodeClassRef.group`: `karpenter.k8s.aws` (Karpenter) or
    /// `eks.amazonaws.com` (EKS Auto Mode).
    #[serde(default)]
    pub node_class_group: String,
}

/// A Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceView {
    pub namespace: String,
    pub name: String,
    pub service_type: ServiceType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_traffic_policy: Option<TrafficPolicy>,
    /// `status.loadBalancer.ingress[].hostname`.
    #[serde(default)]
    pub lb_hostnames: Vec<String>,
    #[serde(default)]
    pub selector: Labels,
    #[serde(default)]
    pub annotations: Labels,
}

impl ServiceView {
    /// Whether the Service sends traffic to `pod`: same namespace, and a selector (a Service
    /// without one has its endpoints managed by hand) whose every label the pod carries.
    pub fn selects(&self, pod: &PodView) -> bool {
        self.namespace == pod.namespace
            && !self.selector.is_empty()
            && self
                .selector
                .iter()
                .all(|(k, v)| pod.labels.get(k) == Some(v))
    }
}

/// One endpoint of an EndpointSlice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointView {
    #[serde(default)]
    pub addresses: Vec<String>,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_name: Option<String>,
    /// `targetRef.name` when it is a pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_name: Option<String>,
}

/// An EndpointSlice of a Service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSliceView {
    pub namespace: String,
    pub name: String,
    pub service: String,
    #[serde(default)]
    pub endpoints: Vec<EndpointView>,
}

/// Any object an Event can be recorded on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uid: Option<String>,
}

impl ObjectRef {
    pub fn node(name: &str) -> ObjectRef {
        ObjectRef {
            api_version: "v1".into(),
            kind: "Node".into(),
            namespace: None,
            name: name.into(),
            uid: None,
        }
    }

    pub fn workload(w: &WorkloadRef) -> ObjectRef {
        ObjectRef {
            api_version: "apps/v1".into(),
            kind: w.kind.to_string(),
            namespace: Some(w.namespace.clone()),
            name: w.name.clone(),
            uid: None,
        }
    }
}

/// Kubernetes Event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum EventType {
    Normal,
    Warning,
}
