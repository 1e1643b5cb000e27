//! The narrow traits through which steps read and change the world.
//!
//! Each method is one call ngm makes, so a step's ports are also its IAM and RBAC checklist.
//! Adapters classify every SDK or API error once into [`PortError`]; a missing object is
//! `Ok(None)` on reads and success on deletes, never an error.

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::model::{
    AsgInfo, ClusterInfo, DaemonSetView, EndpointSliceView, EventType, ExecutionInfo,
    ExecutionStatus, HpaView, LabelSelector, Labels, LaunchTemplateOverrides, LaunchTemplateRef,
    LaunchTemplateVersion, LoadBalancerInfo, NodeGroupSpec, NodeView, ObjectRef, PdbView, PodView,
    ReplicaSetView, Scaling, ServiceView, Taint, TargetGroupBindingView, TargetHealth, Timestamp,
    UpdateStatus, WorkloadKind, WorkloadRef, WorkloadView,
};
use crate::state::LbAttachments;

/// A port failure, classified once by the adapter.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PortError {
    /// The object does not exist. Adapters usually answer `Ok(None)` instead.
    #[error("{what} was not found")]
    NotFound { what: String },
    #[error("{op} was throttled")]
    Throttled { op: String },
    #[error("{op} timed out")]
    Timeout { op: String },
    /// A stale write (409 on resourceVersion) or a resource busy with another update.
    #[error("{op} conflicted: {detail}")]
    Conflict { op: String, detail: String },
    /// Eviction answered 429: the PDB allows no disruption now.
    #[error("eviction of {pod} is blocked by PodDisruptionBudget {pdb}")]
    PdbBlocked { pod: String, pdb: String },
    /// Eviction answered 404, or 409 on the UID precondition: the pod is already gone.
    #[error("{what} is already gone")]
    Gone { what: String },
    /// A 4xx validation error.
    #[error("{op} was rejected: {detail}")]
    Invalid { op: String, detail: String },
    #[error("{op} was denied")]
    AccessDenied { op: String },
    /// A server-side failure (HTTP 5xx other than a throttle or a gateway timeout): the API
    /// could not answer now, and the same call may succeed later.
    #[error("{op} is unavailable: {detail}")]
    Unavailable { op: String, detail: String },
    #[error("{op} failed: {detail}")]
    Unexpected { op: String, detail: String },
}

impl PortError {
    /// Whether trying the same call again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            PortError::Throttled { .. }
                | PortError::Timeout { .. }
                | PortError::Unavailable { .. }
                | PortError::Conflict { .. }
                | PortError::PdbBlocked { .. }
        )
    }
}

/// Result of a port call.
pub type PortResult<T> = Result<T, PortError>;

/// What an eviction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EvictOutcome {
    /// 201: the pod is being deleted gracefully.
    Evicted,
    /// 429: a PDB allows no disruption now; `pdb` names it when the API said which.
    PdbBlocked { pdb: Option<String> },
    /// 404, or 409 on the UID precondition.
    AlreadyGone,
    /// 403 with cause `NamespaceTerminating`: the pod's namespace is being deleted, so the
    /// namespace controller deletes the pod itself. Not an error: the caller waits for the pod
    /// to go, as `kubectl drain` does (k8s.io/kubectl/pkg/drain/drain.go).
    NamespaceTerminating,
}

/// Annotation or label edits: `Some(v)` sets, `None` removes.
pub type MetadataPatch = BTreeMap<String, Option<String>>;

/// HPA fields ngm changes. `None` leaves a field alone; `min_replicas: Some(None)` removes
/// `spec.minReplicas` (restoring an HPA that relied on the API default of 1).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HpaPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<Option<i32>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas: Option<i32>,
    #[serde(default)]
    pub annotations: MetadataPatch,
}

/// EKS.
#[async_trait]
pub trait EksPort: Send + Sync {
    async fn describe_cluster(&self, cluster: &str) -> PortResult<Option<ClusterInfo>>;
    async fn describe_nodegroup(
        &self,
        cluster: &str,
        name: &str,
    ) -> PortResult<Option<NodeGroupSpec>>;
    async fn list_nodegroups(&self, cluster: &str) -> PortResult<Vec<String>>;
    /// CreateNodegroup; the same token with the same spec is idempotent on EKS's side.
    async fn create_nodegroup(
        &self,
        cluster: &str,
        spec: &NodeGroupSpec,
        client_request_token: &str,
    ) -> PortResult<NodeGroupSpec>;
    /// DeleteNodegroup; a group that is already gone (or already deleting) is `Ok`.
    async fn delete_nodegroup(&self, cluster: &str, name: &str) -> PortResult<()>;
    /// UpdateNodegroupConfig with a new scaling config; returns the update id.
    async fn update_nodegroup_scaling(
        &self,
        cluster: &str,
        name: &str,
        scaling: Scaling,
        client_request_token: &str,
    ) -> PortResult<String>;
    async fn describe_update(
        &self,
        cluster: &str,
        nodegroup: &str,
        update_id: &str,
    ) -> PortResult<UpdateStatus>;
    async fn tag_resource(&self, arn: &str, tags: &Labels) -> PortResult<()>;
    async fn untag_resource(&self, arn: &str, keys: &[String]) -> PortResult<()>;
    async fn list_tags(&self, arn: &str) -> PortResult<Labels>;
}

/// Auto Scaling.
#[async_trait]
pub trait AsgPort: Send + Sync {
    async fn describe(&self, name: &str) -> PortResult<Option<AsgInfo>>;
    async fn update_size(&self, name: &str, scaling: Scaling) -> PortResult<()>;
    async fn suspend_processes(&self, name: &str, processes: &[String]) -> PortResult<()>;
    async fn resume_processes(&self, name: &str, processes: &[String]) -> PortResult<()>;
    /// CreateOrUpdateTags, not propagated at launch.
    async fn tag(&self, name: &str, tags: &Labels) -> PortResult<()>;
    async fn untag(&self, name: &str, keys: &[String]) -> PortResult<()>;
    /// DeleteAutoScalingGroup with ForceDelete (ngm has drained it); gone is `Ok`.
    async fn delete(&self, name: &str) -> PortResult<()>;
    /// Attaches each the way it was found attached: AttachLoadBalancers,
    /// AttachLoadBalancerTargetGroups, AttachTrafficSources (already attached is `Ok`).
    async fn attach_load_balancers(
        &self,
        name: &str,
        attachments: &LbAttachments,
    ) -> PortResult<()>;
    /// DetachLoadBalancers, DetachLoadBalancerTargetGroups and DetachTrafficSources, with the
    /// load balancers' draining (not attached is `Ok`).
    async fn detach_load_balancers(
        &self,
        name: &str,
        attachments: &LbAttachments,
    ) -> PortResult<()>;
}

/// EC2 launch templates.
#[async_trait]
pub trait Ec2Port: Send + Sync {
    /// One version (`template.version` is a number, `$Latest` or `$Default`).
    async fn describe_launch_template_version(
        &self,
        template: &LaunchTemplateRef,
    ) -> PortResult<Option<LaunchTemplateVersion>>;
    /// CreateLaunchTemplateVersion from `template` (its version is the source) plus overrides.
    /// `client_token` makes a retry return the same version.
    async fn create_launch_template_version(
        &self,
        template: &LaunchTemplateRef,
        overrides: &LaunchTemplateOverrides,
        client_token: &str,
    ) -> PortResult<LaunchTemplateVersion>;
    /// The availability zone of each subnet (DescribeSubnets); unknown subnets are absent.
    async fn subnet_zones(&self, subnet_ids: &[String]) -> PortResult<BTreeMap<String, String>>;
    /// CreateLaunchTemplate named `name` whose data is `source`'s data plus overrides.
    async fn create_launch_template(
        &self,
        name: &str,
        source: &LaunchTemplateVersion,
        overrides: &LaunchTemplateOverrides,
        client_token: &str,
    ) -> PortResult<LaunchTemplateVersion>;
}

/// ELBv2 and classic ELB.
#[async_trait]
pub trait ElbPort: Send + Sync {
    /// The ALB/NLB (ELBv2) or classic ELB whose DNS name is `dns`, with its attributes read.
    async fn find_load_balancer_by_dns(&self, dns: &str) -> PortResult<Option<LoadBalancerInfo>>;
    async fn target_health(&self, target_group_arn: &str) -> PortResult<Vec<TargetHealth>>;
    async fn classic_instance_health(&self, lb_name: &str) -> PortResult<Vec<TargetHealth>>;
    /// A classic load balancer by name, attributes read.
    async fn classic_by_name(&self, name: &str) -> PortResult<Option<LoadBalancerInfo>>;
    /// The ALB or NLB of a target group, with that target group only, attributes read.
    async fn by_target_group(&self, target_group_arn: &str)
    -> PortResult<Option<LoadBalancerInfo>>;
    /// RegisterTargets (`deregister` false) or DeregisterTargets: `targets` are `(id, port)`,
    /// the port given for IP targets. Deregistering a target that is not registered is done.
    async fn set_targets(
        &self,
        target_group_arn: &str,
        targets: &[(String, Option<i32>)],
        deregister: bool,
    ) -> PortResult<()>;
}

/// SSM Parameter Store.
#[async_trait]
pub trait SsmPort: Send + Sync {
    async fn get_parameter(&self, name: &str) -> PortResult<Option<String>>;
}

/// Step Functions.
#[async_trait]
pub trait SfnPort: Send + Sync {
    /// StartExecution; an execution with this name and the same input already existing is `Ok`
    /// with its ARN.
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> PortResult<String>;
    async fn describe_execution(&self, execution_arn: &str) -> PortResult<Option<ExecutionInfo>>;
    async fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
    ) -> PortResult<Vec<ExecutionInfo>>;
    async fn send_task_success(&self, task_token: &str, output: &str) -> PortResult<()>;
    async fn send_task_failure(&self, task_token: &str, error: &str, cause: &str)
    -> PortResult<()>;
}

/// The cluster's Kubernetes API. Every list is paginated inside the adapter.
#[async_trait]
pub trait KubePort: Send + Sync {
    async fn list_nodes(&self, selector: &LabelSelector) -> PortResult<Vec<NodeView>>;
    /// Marking and unmarking (this, the annotation and taint patches, cordon and
    /// `annotate_pod`): a node or pod that no longer exists (404) is `Ok`, since there is
    /// nothing left to mark or unmark (a Spot node just reclaimed, a pod a rollout deleted).
    async fn patch_node_labels(&self, name: &str, labels: &MetadataPatch) -> PortResult<()>;
    async fn patch_node_annotations(
        &self,
        name: &str,
        annotations: &MetadataPatch,
    ) -> PortResult<()>;
    /// Adds `add` and removes every taint with the same key and effect as one in `remove`.
    /// A node that is gone is `Ok`.
    async fn patch_node_taints(
        &self,
        name: &str,
        add: &[Taint],
        remove: &[Taint],
    ) -> PortResult<()>;
    /// Cordon or uncordon; a node that is gone is `Ok`.
    async fn set_unschedulable(&self, name: &str, unschedulable: bool) -> PortResult<()>;

    /// Pods with `spec.nodeName=node` (a field selector), all namespaces.
    async fn list_pods_on_node(&self, node: &str) -> PortResult<Vec<PodView>>;
    /// Pods matching `selector`, in `namespace` or all namespaces.
    async fn list_pods(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> PortResult<Vec<PodView>>;
    /// A pod that is gone is `Ok`.
    async fn annotate_pod(
        &self,
        namespace: &str,
        name: &str,
        annotations: &MetadataPatch,
    ) -> PortResult<()>;
    /// Eviction with a UID precondition. Only a refusal that is none of the outcomes is an
    /// error.
    async fn evict_pod(&self, namespace: &str, name: &str, uid: &str) -> PortResult<EvictOutcome>;
    /// Graceful delete with a UID precondition, bypassing PDBs (only for `onPdbBlocked: force`);
    /// a pod already gone is `Ok`.
    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> PortResult<()>;

    async fn get_workload(&self, workload: &WorkloadRef) -> PortResult<Option<WorkloadView>>;
    /// Writes `spec.replicas` through the `/scale` subresource.
    async fn scale_workload(&self, workload: &WorkloadRef, replicas: i32) -> PortResult<()>;
    async fn patch_workload_annotations(
        &self,
        workload: &WorkloadRef,
        annotations: &MetadataPatch,
    ) -> PortResult<()>;
    /// Every Deployment or StatefulSet in the cluster.
    async fn list_workloads(&self, kind: WorkloadKind) -> PortResult<Vec<WorkloadView>>;

    async fn list_replicasets(&self, namespace: Option<&str>) -> PortResult<Vec<ReplicaSetView>>;
    async fn list_daemonsets(&self) -> PortResult<Vec<DaemonSetView>>;
    async fn list_hpas(&self) -> PortResult<Vec<HpaView>>;
    async fn patch_hpa(&self, namespace: &str, name: &str, patch: &HpaPatch) -> PortResult<()>;
    async fn list_pdbs(&self) -> PortResult<Vec<PdbView>>;
    async fn list_services(&self) -> PortResult<Vec<ServiceView>>;
    /// Every TargetGroupBinding; none when the Load Balancer Controller's CRD is not installed.
    async fn list_target_group_bindings(&self) -> PortResult<Vec<TargetGroupBindingView>>;
    /// Every PersistentVolume.
    async fn list_persistent_volumes(&self) -> PortResult<Vec<crate::model::VolumeView>>;
    /// Every Karpenter NodePool; `None` when Karpenter's CRD is not installed.
    async fn list_node_pools(&self) -> PortResult<Option<Vec<crate::model::NodePoolView>>>;
    async fn list_endpointslices(
        &self,
        namespace: &str,
        service: &str,
    ) -> PortResult<Vec<EndpointSliceView>>;
    async fn record_event(
        &self,
        object: &ObjectRef,
        event_type: EventType,
        reason: &str,
        message: &str,
    ) -> PortResult<()>;
}

/// The per-cluster lock as stored: who holds it, until when, and where its run is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LockRecord {
    /// The cluster's ARN.
    pub key: String,
    /// The holding execution's name.
    pub holder: String,
    /// The holding execution's ARN: what a takeover asks Step Functions about, and what
    /// cleanup and `ngm unlock` match. `None` only on records written before it was kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holder_arn: Option<String>,
    pub acquired_at: Timestamp,
    /// After this instant the lock may be taken over, once Step Functions says the holder's
    /// execution is no longer running: a crashed execution cannot hold it forever, and a slow
    /// one is never robbed of it.
    pub lease_until: Timestamp,
    /// The holder's latest `MigrationState` (JSON), written after every step: what cleanup
    /// rolls back or restores from when the execution ended without doing it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
}

/// What a conditional acquire answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAcquired {
    /// The record now names the caller as holder, until the requested lease end.
    Acquired,
    /// Someone else holds it: a live lease, or an expired one whose execution is still
    /// running. `None` when it was released again before it could be read back.
    HeldBy(Option<LockRecord>),
}

/// The per-cluster lock table.
#[async_trait]
pub trait LockPort: Send + Sync {
    /// One conditional write: it succeeds only when no record exists, or the record's holder
    /// is `record.holder`, or the record's lease ended before `now` AND Step Functions says
    /// the holder's execution (`holder_arn`) is not RUNNING (DescribeExecution; an execution
    /// that does not exist has ended). A takeover writes only over the exact record it judged,
    /// so a renewal racing it wins.
    async fn acquire(&self, record: &LockRecord, now: Timestamp) -> PortResult<LockAcquired>;
    /// Renews `holder`'s lease to `lease_until` and stores `state` (the latest
    /// `MigrationState` JSON), only while `holder` still holds the lock. `Ok(false)` when it
    /// does not (the record is gone or names another execution): the lock is lost.
    async fn renew(
        &self,
        key: &str,
        holder: &str,
        lease_until: Timestamp,
        state: &str,
    ) -> PortResult<bool>;
    /// Deletes the record only while `holder` holds it. `Ok(false)` when someone else holds it
    /// or nobody does.
    async fn release(&self, key: &str, holder: &str) -> PortResult<bool>;
    async fn read(&self, key: &str) -> PortResult<Option<LockRecord>>;
}

/// Where an execution is, from the newest events of its history.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionProgress {
    /// The state entered last.
    pub current_step: Option<String>,
    /// The output of the state exited last (a `MigrationState` once a step has run).
    pub last_output: Option<String>,
}

/// Step Functions execution history (`states:GetExecutionHistory`), kept apart from
/// [`SfnPort`] because only the resize API reads it.
#[async_trait]
pub trait SfnHistoryPort: Send + Sync {
    async fn progress(&self, execution_arn: &str) -> PortResult<Option<ExecutionProgress>>;
}
