//! Plain observed views of the AWS and Kubernetes objects ngm reads.
//!
//! Adapters translate SDK and API types into these; nothing here mirrors an SDK type, and every
//! field is something a planner uses.

mod aws;
mod eks;
mod instances;
mod kube;
mod pdb;
mod placement;
mod quantity;
mod selector;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use aws::{
    AsgInfo, AsgInstance, ClassicDraining, ExecutionInfo, ExecutionStatus, LaunchTemplateOverrides,
    LaunchTemplateVersion, LbKind, LoadBalancerInfo, OnDemandShare, TargetGroupInfo, TargetHealth,
    TargetHealthState, TrafficSource,
};
pub use eks::{
    CapacityType, ClusterInfo, LaunchTemplateRef, NodeGroupKind, NodeGroupRef, NodeGroupSpec,
    NodeGroupStatus, Scaling, Taint, TaintEffect, UpdateStatus,
};
pub use instances::{Arch, INSTANCE_TYPES, InstanceType, NodeCapacity, instance_type};
pub use kube::{
    DaemonSetView, EndpointSliceView, EndpointView, EventType, HpaView, NodePoolView, NodeView,
    ObjectRef, OwnerRef, PodPhase, PodView, PreStop, ReplicaSetView, Resources, ServiceType,
    ServiceView, Shutdown, TargetGroupBindingView, TrafficPolicy, VolumeView, WorkloadKind,
    WorkloadRef, WorkloadView, hpa_of,
};
pub use pdb::{IntOrPercent, PdbView};
pub use placement::{
    NodeOperator, NodeRequirement, Placement, PodTerm, SpreadConstraint, Toleration,
};
pub use quantity::{QuantityError, parse_cpu_millis, parse_memory_bytes};
pub use selector::{LabelSelector, SelectorOperator, SelectorRequirement};

/// Labels, annotations or tags: ordered so that plans and digests are deterministic.
pub type Labels = BTreeMap<String, String>;

/// Seconds since the Unix epoch. Planners receive `now` as one of these and never read a clock.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(transparent)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// This instant moved `secs` seconds later (saturating).
    pub fn plus(self, secs: u64) -> Timestamp {
        Timestamp(
            self.0
                .saturating_add(i64::try_from(secs).unwrap_or(i64::MAX)),
        )
    }

    /// Whole seconds from `earlier` to `self`, zero when `earlier` is later.
    pub fn secs_since(self, earlier: Timestamp) -> u64 {
        u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0)
    }
}
