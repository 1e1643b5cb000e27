//! EKS clusters and node groups, and the self-managed Auto Scaling groups ngm treats as groups.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Labels;

/// Which kind of group a name refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum NodeGroupKind {
    /// An EKS managed node group.
    Managed,
    /// A self-managed Auto Scaling group joined to the cluster.
    SelfManagedAsg,
}

/// A node group (managed or self-managed) in a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeGroupRef {
    pub cluster: String,
    pub name: String,
    pub kind: NodeGroupKind,
}

/// An EKS cluster as DescribeCluster reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterInfo {
    pub name: String,
    pub arn: String,
    pub endpoint: String,
    /// The cluster CA bundle, base64-encoded PEM, exactly as EKS returns it.
    pub ca_data: String,
    /// Kubernetes minor version, e.g. `1.33`.
    pub version: String,
    pub tags: Labels,
}

/// min/max/desired of a group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scaling {
    pub min: i32,
    pub max: i32,
    pub desired: i32,
}

/// A launch template by id or name, and a version (`"3"`, `"$Latest"`, `"$Default"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LaunchTemplateRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// ON_DEMAND or SPOT, as EKS spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CapacityType {
    OnDemand,
    Spot,
}

/// A taint effect. Serialized in EKS's spelling; [`TaintEffect::kube_name`] gives Kubernetes'.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TaintEffect {
    NoSchedule,
    PreferNoSchedule,
    NoExecute,
}

impl TaintEffect {
    /// The spelling the Kubernetes API uses (`NoSchedule`...).
    pub fn kube_name(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NoSchedule",
            TaintEffect::PreferNoSchedule => "PreferNoSchedule",
            TaintEffect::NoExecute => "NoExecute",
        }
    }

    /// The spelling the EKS API uses (`NO_SCHEDULE`...).
    pub fn eks_name(self) -> &'static str {
        match self {
            TaintEffect::NoSchedule => "NO_SCHEDULE",
            TaintEffect::PreferNoSchedule => "PREFER_NO_SCHEDULE",
            TaintEffect::NoExecute => "NO_EXECUTE",
        }
    }

    /// Parses either spelling.
    pub fn parse(s: &str) -> Option<TaintEffect> {
        match s {
            "NoSchedule" | "NO_SCHEDULE" => Some(TaintEffect::NoSchedule),
            "PreferNoSchedule" | "PREFER_NO_SCHEDULE" => Some(TaintEffect::PreferNoSchedule),
            "NoExecute" | "NO_EXECUTE" => Some(TaintEffect::NoExecute),
            _ => None,
        }
    }
}

/// A node taint. Two taints are the same taint when key and effect match (as the API merges them).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: TaintEffect,
}

impl Taint {
    /// Whether `other` has the same key and effect.
    pub fn same_slot(&self, other: &Taint) -> bool {
        self.key == other.key && self.effect == other.effect
    }
}

/// A node group's lifecycle status.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NodeGroupStatus {
    Creating,
    Active,
    Updating,
    Deleting,
    CreateFailed,
    DeleteFailed,
    Degraded,
    Other(String),
}

impl NodeGroupStatus {
    /// Maps EKS's status string (`ACTIVE`, `CREATE_FAILED`...).
    pub fn from_eks(s: &str) -> NodeGroupStatus {
        match s {
            "CREATING" => NodeGroupStatus::Creating,
            "ACTIVE" => NodeGroupStatus::Active,
            "UPDATING" => NodeGroupStatus::Updating,
            "DELETING" => NodeGroupStatus::Deleting,
            "CREATE_FAILED" => NodeGroupStatus::CreateFailed,
            "DELETE_FAILED" => NodeGroupStatus::DeleteFailed,
            "DEGRADED" => NodeGroupStatus::Degraded,
            other => NodeGroupStatus::Other(other.to_string()),
        }
    }
}

/// A node group as ngm sees it: a managed group from DescribeNodegroup, or a self-managed group
/// reconstructed from its Auto Scaling group and launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeGroupSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub kind: NodeGroupKind,
    #[serde(default)]
    pub instance_types: Vec<String>,
    /// EKS AMI type (`AL2023_x86_64_STANDARD`, `BOTTLEROCKET_ARM_64`, `CUSTOM`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<String>,
    /// The image a custom launch template pins, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ami_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<LaunchTemplateRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<CapacityType>,
    pub scaling: Scaling,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub labels: Labels,
    #[serde(default)]
    pub taints: Vec<Taint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_size: Option<i32>,
    /// Kubernetes minor version of the group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub status: NodeGroupStatus,
    #[serde(default)]
    pub asg_names: Vec<String>,
    #[serde(default)]
    pub tags: Labels,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_role_arn: Option<String>,
    /// A self-managed group's mixed-instances On-Demand share (what its capacity type comes
    /// from).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_share: Option<super::OnDemandShare>,
}

/// The status of an asynchronous EKS update (UpdateNodegroupConfig).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum UpdateStatus {
    InProgress,
    Successful,
    Failed { errors: Vec<String> },
    Cancelled,
}
