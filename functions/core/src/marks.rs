//! The names of every annotation, label, taint and tag ngm writes.
//!
//! Originals are recorded on the objects themselves (so a crash loses nothing and the state
//! stays small), and every object ngm touches carries [`EXECUTION`] so a sweep can find
//! markers left by an aborted run.

/// On every object ngm changed: the execution name.
pub const EXECUTION: &str = "ngm.io/execution";
/// On a workload: `spec.replicas` before the surge.
pub const ORIGINAL_REPLICAS: &str = "ngm.io/original-replicas";
/// On a workload: `status.readyReplicas` when ngm first surged it; on a pod: `true` or `false`,
/// whether it was Ready when ngm marked it. Waits judge progress against this, so a replica
/// that was already broken before the migration does not hold them.
pub const READY_BEFORE: &str = "ngm.io/ready-before";
/// On a workload: the replica count ngm surged it to.
pub const SURGED_REPLICAS: &str = "ngm.io/surged-replicas";
/// On an HPA: `spec.minReplicas` before the freeze (`default` when it was unset).
pub const ORIGINAL_HPA_MIN: &str = "ngm.io/original-hpa-min";
/// On an HPA: `spec.maxReplicas` before the freeze.
pub const ORIGINAL_HPA_MAX: &str = "ngm.io/original-hpa-max";
/// Value of [`ORIGINAL_HPA_MIN`] when `minReplicas` was unset.
pub const UNSET: &str = "default";

/// The ReplicaSet controller deletes pods with a lower cost first (best effort).
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";
/// The cost ngm gives pods on old nodes.
pub const RETIRE_COST: i32 = -1000;
/// On a pod: its deletion cost before ngm marked it (`none` when it had none).
pub const ORIGINAL_DELETION_COST: &str = "ngm.io/original-pod-deletion-cost";
/// Value of original-value annotations when the original was absent.
pub const NONE: &str = "none";

/// Taint ngm puts on old nodes (NoSchedule), valued with the execution digest.
pub const TAINT_KEY: &str = "ngm.io/migrating";
/// Label ngm puts on old nodes so later steps find them without listing names in the state.
pub const RETIRING_LABEL: &str = "ngm.io/retiring";
/// On a node ngm cordoned (it was schedulable before).
pub const CORDONED: &str = "ngm.io/cordoned";
/// On a node ngm added [`EXCLUDE_FROM_LB_LABEL`] to (it lacked it before).
pub const EXCLUDED_FROM_LB: &str = "ngm.io/excluded-from-lb";

/// The AWS Load Balancer Controller and the cloud provider drop a node carrying this label
/// from load balancers, whatever its value; cordon alone does not since Kubernetes 1.19.
pub const EXCLUDE_FROM_LB_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Cluster Autoscaler skips scale-down of a node with this annotation set to `true`.
pub const CA_SCALE_DOWN_DISABLED: &str = "cluster-autoscaler.kubernetes.io/scale-down-disabled";
/// A pod's owner asks Cluster Autoscaler not to evict it to scale a node down (`"false"`).
pub const CA_SAFE_TO_EVICT: &str = "cluster-autoscaler.kubernetes.io/safe-to-evict";
/// A pod's owner asks Karpenter not to disrupt it voluntarily (`"true"`).
pub const KARPENTER_DO_NOT_DISRUPT: &str = "karpenter.sh/do-not-disrupt";
/// On a node ngm set [`CA_SCALE_DOWN_DISABLED`] on (it lacked it before).
pub const SCALE_DOWN_DISABLED_BY_NGM: &str = "ngm.io/scale-down-disabled";
/// Cluster Autoscaler auto-discovery tag on an Auto Scaling group.
pub const CA_ENABLED_TAG: &str = "k8s.io/cluster-autoscaler/enabled";

/// The Cluster Autoscaler auto-discovery tag naming the cluster.
pub fn ca_cluster_tag(cluster: &str) -> String {
    format!("k8s.io/cluster-autoscaler/{cluster}")
}

/// Tag on the old group (EKS node group or Auto Scaling group): its `min/max/desired` before
/// ngm pinned it.
pub const ORIGINAL_SCALING_TAG: &str = "ngm.io/original-scaling";
/// Tag on an old Auto Scaling group: the Cluster Autoscaler tags ngm removed, `k=v,k=v`.
pub const ORIGINAL_CA_TAGS_TAG: &str = "ngm.io/original-ca-tags";
/// Auto Scaling processes ngm suspends on an old self-managed group: rebalancing and scheduled
/// or alarm-driven scaling would launch or terminate nodes mid-migration.
pub const SUSPENDED_PROCESSES: &[&str] = &["AZRebalance", "ScheduledActions", "AlarmNotification"];

/// Label EKS puts on every node of a managed node group.
pub const EKS_NODEGROUP_LABEL: &str = "eks.amazonaws.com/nodegroup";
/// Annotation the kubelet puts on a static pod's mirror.
pub const MIRROR_POD_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// Opt-in tag on a node group: the AMI watcher migrates it when a new EKS AMI is released (only
/// the value `true` opts in).
pub const AUTO_UPDATE_TAG: &str = "ngm.io/auto-update";
/// Maintenance-window tag on a node group, e.g. `Sun 02:00-06:00 UTC`.
pub const WINDOW_TAG: &str = "ngm.io/maintenance-window";
/// The operator's `ngm.io/` tags: a new group carries them on, so that the next AMI release
/// updates it too. ngm's own bookkeeping tags (`ngm.io/original-*`, `ngm.io/created-by`...) are
/// not copied.
pub const OPERATOR_TAGS: &[&str] = &[AUTO_UPDATE_TAG, WINDOW_TAG];

/// Whether a source group's tag goes to the new group: not AWS's, and of ngm's only the
/// operator's.
pub fn carried_tag(key: &str) -> bool {
    !key.starts_with("aws:") && (!key.starts_with("ngm.io/") || OPERATOR_TAGS.contains(&key))
}
