//! Auto Scaling groups, launch templates, load balancers and Step Functions executions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Labels, LaunchTemplateRef, Scaling, Timestamp};

/// One instance of an Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsgInstance {
    pub instance_id: String,
    /// Auto Scaling lifecycle state (`InService`, `Terminating`...).
    pub lifecycle_state: String,
    pub availability_zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
}

/// An Auto Scaling group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AsgInfo {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
    pub scaling: Scaling,
    #[serde(default)]
    pub instances: Vec<AsgInstance>,
    #[serde(default)]
    pub tags: Labels,
    /// Names of suspended scaling processes (`AZRebalance`, `Launch`...).
    #[serde(default)]
    pub suspended_processes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub launch_template: Option<LaunchTemplateRef>,
    /// Instance types of a mixed-instances policy, if any.
    #[serde(default)]
    pub override_instance_types: Vec<String>,
    /// The mixed-instances policy's On-Demand share, if the group has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_demand_share: Option<OnDemandShare>,
    #[serde(default)]
    pub subnets: Vec<String>,
    #[serde(default)]
    pub availability_zones: Vec<String>,
    /// Classic load balancers attached to the group (their instances follow the group).
    #[serde(default)]
    pub load_balancer_names: Vec<String>,
    /// ELB target groups attached to the group.
    #[serde(default)]
    pub target_group_arns: Vec<String>,
    /// Every traffic source of the group (`TrafficSources`), however attached: what
    /// AttachTrafficSources attached is in neither list above.
    #[serde(default)]
    pub traffic_sources: Vec<TrafficSource>,
}

/// A mixed-instances policy's `InstancesDistribution`: the first `base` instances are
/// On-Demand, then `percent_above_base` % of the rest; the others are Spot (EC2 Auto Scaling
/// `InstancesDistribution`; unset, they are 0 and 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OnDemandShare {
    pub base: i32,
    pub percent_above_base: i32,
}

impl OnDemandShare {
    /// The one capacity type a managed group could keep, or `None` for a real mix.
    pub fn capacity_type(self) -> Option<super::CapacityType> {
        match (self.base, self.percent_above_base) {
            (_, 100) => Some(super::CapacityType::OnDemand),
            (0, 0) => Some(super::CapacityType::Spot),
            _ => None,
        }
    }
}

/// A traffic source of an Auto Scaling group (Auto Scaling `TrafficSourceIdentifier`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrafficSource {
    /// A Classic Load Balancer's name, or an ELB or VPC Lattice target group's ARN.
    pub identifier: String,
    /// `elb`, `elbv2` or `vpc-lattice`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// One version of an EC2 launch template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchTemplateVersion {
    pub id: String,
    pub name: String,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    pub has_user_data: bool,
    /// The full `LaunchTemplateData`, as JSON, for cloning.
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Changes applied on top of a source launch template version.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaunchTemplateOverrides {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_type: Option<String>,
    /// Base64-encoded user data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_name: Option<String>,
    #[serde(default)]
    pub security_group_ids: Vec<String>,
}

impl LaunchTemplateOverrides {
    /// True when nothing would change.
    pub fn is_empty(&self) -> bool {
        self.image_id.is_none()
            && self.instance_type.is_none()
            && self.user_data.is_none()
            && self.key_name.is_none()
            && self.security_group_ids.is_empty()
    }
}

/// Load-balancer flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LbKind {
    Alb,
    Nlb,
    Clb,
}

/// A target group and the attribute that governs draining.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetGroupInfo {
    pub arn: String,
    /// `deregistration_delay.timeout_seconds`; `None` when unread (AWS default is 300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistration_delay_secs: Option<u64>,
    /// `instance` or `ip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
}

/// Classic ELB connection draining.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassicDraining {
    pub enabled: bool,
    pub timeout_secs: u64,
}

/// A load balancer in front of a Service, with the attributes that bound how long an old
/// connection may live.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancerInfo {
    /// ARN for ALB/NLB, name for a classic ELB.
    pub id: String,
    pub kind: LbKind,
    pub dns_name: String,
    /// ALB `idle_timeout.timeout_seconds` or CLB idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_secs: Option<u64>,
    /// NLB listener `tcp.idle_timeout.seconds` (the longest across listeners).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_idle_timeout_secs: Option<u64>,
    #[serde(default)]
    pub target_groups: Vec<TargetGroupInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classic_draining: Option<ClassicDraining>,
}

/// Target health state, ELBv2 and classic mapped onto one enum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetHealthState {
    Initial,
    Healthy,
    Unhealthy,
    Unused,
    Draining,
    Unavailable,
    Other(String),
}

/// One registered target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TargetHealth {
    /// Instance id or IP.
    pub target_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    pub state: TargetHealthState,
}

/// Step Functions execution status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ExecutionStatus {
    Running,
    Succeeded,
    Failed,
    TimedOut,
    Aborted,
    PendingRedrive,
}

/// A Step Functions execution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionInfo {
    pub arn: String,
    pub name: String,
    pub status: ExecutionStatus,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}
