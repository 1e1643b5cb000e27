//! The resource kinds the twin serves, with the names discovery advertises for them.

use std::fmt;

/// A Kubernetes resource kind served by the twin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Resource {
    Namespace,
    Node,
    Pod,
    Service,
    Endpoints,
    Event,
    EndpointSlice,
    Deployment,
    StatefulSet,
    ReplicaSet,
    DaemonSet,
    PodDisruptionBudget,
    HorizontalPodAutoscaler,
    Ingress,
    /// The AWS Load Balancer Controller's custom resource (`elbv2.k8s.aws/v1beta1`).
    TargetGroupBinding,
    PersistentVolumeClaim,
    PersistentVolume,
    /// Karpenter's custom resource (`karpenter.sh/v1`), served when a scenario installs it.
    NodePool,
    /// `batch/v1` Jobs, run by [`crate::sim::job`].
    Job,
}

impl Resource {
    /// Every resource, in discovery order.
    pub const ALL: [Resource; 19] = [
        Resource::Namespace,
        Resource::Node,
        Resource::Pod,
        Resource::Service,
        Resource::Endpoints,
        Resource::Event,
        Resource::EndpointSlice,
        Resource::Deployment,
        Resource::StatefulSet,
        Resource::ReplicaSet,
        Resource::DaemonSet,
        Resource::PodDisruptionBudget,
        Resource::HorizontalPodAutoscaler,
        Resource::Ingress,
        Resource::TargetGroupBinding,
        Resource::PersistentVolumeClaim,
        Resource::PersistentVolume,
        Resource::NodePool,
        Resource::Job,
    ];

    /// The API group ("" for core).
    pub fn group(self) -> &'static str {
        match self {
            Self::Namespace
            | Self::Node
            | Self::Pod
            | Self::Service
            | Self::Endpoints
            | Self::Event
            | Self::PersistentVolumeClaim
            | Self::PersistentVolume => "",
            Self::EndpointSlice => "discovery.k8s.io",
            Self::Deployment | Self::StatefulSet | Self::ReplicaSet | Self::DaemonSet => "apps",
            Self::PodDisruptionBudget => "policy",
            Self::HorizontalPodAutoscaler => "autoscaling",
            Self::Ingress => "networking.k8s.io",
            Self::TargetGroupBinding => "elbv2.k8s.aws",
            Self::NodePool => "karpenter.sh",
            Self::Job => "batch",
        }
    }

    /// The served version.
    pub fn version(self) -> &'static str {
        match self {
            Self::HorizontalPodAutoscaler => "v2",
            Self::TargetGroupBinding => "v1beta1",
            _ => "v1",
        }
    }

    /// `group/version`, or just the version for core.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::EndpointSlice => "discovery.k8s.io/v1",
            Self::Deployment | Self::StatefulSet | Self::ReplicaSet | Self::DaemonSet => "apps/v1",
            Self::PodDisruptionBudget => "policy/v1",
            Self::HorizontalPodAutoscaler => "autoscaling/v2",
            Self::Ingress => "networking.k8s.io/v1",
            Self::TargetGroupBinding => "elbv2.k8s.aws/v1beta1",
            Self::NodePool => "karpenter.sh/v1",
            Self::Job => "batch/v1",
            _ => "v1",
        }
    }

    /// The `kind` field of an object.
    pub fn kind(self) -> &'static str {
        match self {
            Self::Namespace => "Namespace",
            Self::Node => "Node",
            Self::Pod => "Pod",
            Self::Service => "Service",
            Self::Endpoints => "Endpoints",
            Self::Event => "Event",
            Self::EndpointSlice => "EndpointSlice",
            Self::Deployment => "Deployment",
            Self::StatefulSet => "StatefulSet",
            Self::ReplicaSet => "ReplicaSet",
            Self::DaemonSet => "DaemonSet",
            Self::PodDisruptionBudget => "PodDisruptionBudget",
            Self::HorizontalPodAutoscaler => "HorizontalPodAutoscaler",
            Self::Ingress => "Ingress",
            Self::TargetGroupBinding => "TargetGroupBinding",
            Self::PersistentVolumeClaim => "PersistentVolumeClaim",
            Self::PersistentVolume => "PersistentVolume",
            Self::NodePool => "NodePool",
            Self::Job => "Job",
        }
    }

    /// The plural name used in URLs ("pods").
    pub fn plural(self) -> &'static str {
        match self {
            Self::Namespace => "namespaces",
            Self::Node => "nodes",
            Self::Pod => "pods",
            Self::Service => "services",
            Self::Endpoints => "endpoints",
            Self::Event => "events",
            Self::EndpointSlice => "endpointslices",
            Self::Deployment => "deployments",
            Self::StatefulSet => "statefulsets",
            Self::ReplicaSet => "replicasets",
            Self::DaemonSet => "daemonsets",
            Self::PodDisruptionBudget => "poddisruptionbudgets",
            Self::HorizontalPodAutoscaler => "horizontalpodautoscalers",
            Self::Ingress => "ingresses",
            Self::TargetGroupBinding => "targetgroupbindings",
            Self::PersistentVolumeClaim => "persistentvolumeclaims",
            Self::PersistentVolume => "persistentvolumes",
            Self::NodePool => "nodepools",
            Self::Job => "jobs",
        }
    }

    /// The singular name discovery advertises (lower-case kind).
    pub fn singular(self) -> String {
        self.kind().to_ascii_lowercase()
    }

    /// Short names, as the real API server advertises them (kubectl resolves `po`, `deploy`...).
    pub fn short_names(self) -> &'static [&'static str] {
        match self {
            Self::Namespace => &["ns"],
            Self::Node => &["no"],
            Self::Pod => &["po"],
            Self::Service => &["svc"],
            Self::Endpoints => &["ep"],
            Self::Event => &["ev"],
            Self::EndpointSlice => &[],
            Self::Deployment => &["deploy"],
            Self::StatefulSet => &["sts"],
            Self::ReplicaSet => &["rs"],
            Self::DaemonSet => &["ds"],
            Self::PodDisruptionBudget => &["pdb"],
            Self::HorizontalPodAutoscaler => &["hpa"],
            Self::Ingress => &["ing"],
            Self::TargetGroupBinding | Self::NodePool | Self::Job => &[],
            Self::PersistentVolumeClaim => &["pvc"],
            Self::PersistentVolume => &["pv"],
        }
    }

    /// Whether objects of this kind live in a namespace.
    pub fn namespaced(self) -> bool {
        !matches!(
            self,
            Self::Namespace | Self::Node | Self::PersistentVolume | Self::NodePool
        )
    }

    /// Whether the kind has a `/status` subresource.
    pub fn has_status(self) -> bool {
        !matches!(self, Self::Endpoints | Self::Event | Self::EndpointSlice)
    }

    /// Whether the kind has a `/scale` subresource.
    pub fn has_scale(self) -> bool {
        matches!(
            self,
            Self::Deployment | Self::StatefulSet | Self::ReplicaSet
        )
    }

    /// The resource served at `group`/`plural` (any version the twin serves).
    pub fn from_plural(group: &str, plural: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.group() == group && r.plural() == plural)
    }

    /// The resource with this `kind`.
    pub fn from_kind(kind: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.kind() == kind)
    }

    /// The resource of a k8s-openapi type.
    pub fn of<K: k8s_openapi::Resource>() -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|r| r.kind() == K::KIND && r.group() == K::GROUP)
    }

    /// The group versions the twin serves, core first.
    pub fn group_versions() -> Vec<(&'static str, &'static str)> {
        let mut out: Vec<(&'static str, &'static str)> = Vec::new();
        for r in Self::ALL {
            let gv = (r.group(), r.version());
            if !out.contains(&gv) {
                out.push(gv);
            }
        }
        out
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.plural())
    }
}
