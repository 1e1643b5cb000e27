//! `MigrationRequest`: the one input every entry point (console, API, EventBridge, ami-watch)
//! produces, its validation, and its JSON Schema.
//!
//! The request is only a description: anything omitted from `target` is copied from the source
//! group. Unknown fields are rejected everywhere so that a typo never silently changes nothing.

mod against_source;
mod parse;
mod policy;
pub mod rules;
mod schema;
mod validate;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::model::{CapacityType, LaunchTemplateOverrides, NodeGroupKind, Scaling};

pub use against_source::validate_against_source;
pub use parse::{check_request, parse_request};
pub use policy::{
    AcceptedRisk, BarePodPolicy, DEFAULT_OPT_OUT_ANNOTATION, EmptyDirPolicy, JobMode, JobPolicy,
    NamespaceFilter, NamespacedName, OnPdbBlocked, Policy, TrafficRiskPolicy,
};
pub use schema::request_schema;
pub use validate::{FieldError, validate};

/// A request to replace one node group with a new one, without downtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MigrationRequest {
    pub cluster: ClusterSelector,
    pub source: SourceGroup,
    /// What the new group changes. Anything omitted is copied from the source group.
    #[serde(default)]
    pub target: TargetSpec,
    #[serde(default)]
    pub policy: Policy,
}

/// The EKS cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClusterSelector {
    pub name: String,
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
}

/// The group to migrate away from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum SourceGroup {
    /// An EKS managed node group, by name.
    ManagedNodeGroup(String),
    /// A self-managed Auto Scaling group joined to the cluster, by name.
    AutoScalingGroup(String),
}

impl SourceGroup {
    pub fn name(&self) -> &str {
        match self {
            SourceGroup::ManagedNodeGroup(n) | SourceGroup::AutoScalingGroup(n) => n,
        }
    }

    pub fn kind(&self) -> NodeGroupKind {
        match self {
            SourceGroup::ManagedNodeGroup(_) => NodeGroupKind::Managed,
            SourceGroup::AutoScalingGroup(_) => NodeGroupKind::SelfManagedAsg,
        }
    }

    /// The request field naming this source, for error messages.
    pub fn field(&self) -> &'static str {
        match self {
            SourceGroup::ManagedNodeGroup(_) => "source.managedNodeGroup",
            SourceGroup::AutoScalingGroup(_) => "source.autoScalingGroup",
        }
    }
}

/// The new managed node group: overrides on top of a copy of the source.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TargetSpec {
    /// Name of the new group. Derived from the source when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// EC2 instance types, e.g. `m7g.large`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_types: Option<Vec<String>>,
    /// EKS AMI type, e.g. `AL2023_x86_64_STANDARD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_type: Option<String>,
    /// EKS-optimized AMI release, e.g. `1.33.0-20250704`. Excludes `customAmiId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_version: Option<String>,
    /// A custom AMI; it goes into a new launch template version. Excludes `releaseVersion`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_ami_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<LaunchTemplateChoice>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity_type: Option<CapacityType>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Scaling>,
    /// Subnet ids. They decide the zones the new group has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnets: Option<Vec<String>>,
    /// Kubernetes labels of the new group. Replaces the source's set when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<String, String>>,
    /// Taints of the new group. Replaces the source's list when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taints: Option<Vec<TaintRequest>>,
    /// IAM role of the new nodes. Copied from a managed source; required for a self-managed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_role_arn: Option<String>,
}

/// A taint, in EKS's spelling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaintRequest {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `NO_SCHEDULE`, `NO_EXECUTE` or `PREFER_NO_SCHEDULE`.
    #[schemars(extend("enum" = ["NO_SCHEDULE", "NO_EXECUTE", "PREFER_NO_SCHEDULE"]))]
    pub effect: String,
}

/// How the new group gets its launch template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub enum LaunchTemplateChoice {
    /// Use this template and version unchanged.
    UseAsIs(LaunchTemplateSelector),
    /// Create a new version of the source group's template with these changes.
    NewVersion(LaunchTemplateChanges),
}

/// A launch template by id or name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchTemplateSelector {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A version number, `$Latest` or `$Default` (the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// Changes for a new launch template version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LaunchTemplateChanges {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Base64-encoded user data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_group_ids: Vec<String>,
}

impl LaunchTemplateChanges {
    pub fn to_overrides(&self) -> LaunchTemplateOverrides {
        LaunchTemplateOverrides {
            image_id: self.image_id.clone(),
            instance_type: self.instance_type.clone(),
            user_data: self.user_data.clone(),
            key_name: self.key_name.clone(),
            security_group_ids: self.security_group_ids.clone(),
        }
    }
}

#[cfg(test)]
mod schema_tests;
#[cfg(test)]
mod tests;
