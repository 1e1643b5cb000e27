//! The one error type every step returns. Its variant names are the Lambda `error_type`s that
//! the state machine's Retry and Catch match, so they are a contract: rename one and the ASL
//! must change with it (the contract test reads [`ALL_ERROR_NAMES`]).

use ngm_core::ports::PortError;
use ngm_core::request::FieldError;
use thiserror::Error;

/// Why a step failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StepError {
    /// The request is malformed or inconsistent with the source group; nothing was touched.
    #[error("invalid request: {}", join(.errors))]
    InvalidRequest { errors: Vec<FieldError> },
    /// The state handed to a step lacks what an earlier step should have put there.
    #[error("invalid state for step {step}: {reason}")]
    InvalidState { step: &'static str, reason: String },
    #[error("cluster {cluster} was not found")]
    ClusterNotFound { cluster: String },
    #[error("source group {name} was not found")]
    SourceGroupNotFound { name: String },
    /// The pre-flight report has blocking findings.
    #[error("pre-flight failed: {}", .findings.join("; "))]
    PreflightFailed { findings: Vec<String> },
    /// Another running execution holds the per-cluster lock.
    #[error("cluster is locked by execution {holder}")]
    ClusterLocked { holder: String },
    /// A different group already has the new group's name.
    #[error("{reason}")]
    TargetGroupConflict { reason: String },
    /// The new group reached a status it will not recover from.
    #[error("{reason}")]
    NewGroupFailed { reason: String },
    /// CheckGroupReady: the new group was not ACTIVE with every node Ready by its deadline.
    #[error("the new group was not ready by its deadline: {reason}")]
    NewGroupNotReady { reason: String },
    /// CheckSurge: the surged pods were not Ready on new nodes by the deadline.
    #[error("the surge was not ready by its deadline: {reason}")]
    SurgeNotReady { reason: String },
    /// CutTraffic: the new group's targets were not healthy in the load balancers by the
    /// deadline, so the old ones were never cut out.
    #[error("the new targets were not healthy by their deadline: {reason}")]
    TargetsNotHealthy { reason: String },
    /// Retire: the surged Deployments were not back at their original counts (judged against
    /// what was Ready before the migration) by the deadline.
    #[error("the old copies were not retired by the deadline: {reason}")]
    RetireStalled { reason: String },
    /// Drain: no PodDisruptionBudget blocks, yet pods are still on the old nodes past the
    /// drain deadline.
    #[error("the drain did not finish by its deadline: {reason}")]
    DrainTimedOut { reason: String },
    /// DeleteOld, before DeleteNodegroup: pods ngm must move were still on the old nodes at the
    /// deadline.
    #[error("the old group was not empty by the deadline: {reason}")]
    OldGroupNotEmpty { reason: String },
    /// CheckDeleted: the old group still existed at the deadline.
    #[error("the old group was not deleted by the deadline: {reason}")]
    OldGroupNotDeleted { reason: String },
    /// Rollback's own wait (the new nodes' drain and load-balancer exit) ran past its deadline.
    #[error("the rollback did not finish by its deadline: {reason}")]
    RollbackStalled { reason: String },
    /// A PodDisruptionBudget kept refusing an eviction past the drain deadline, and the policy
    /// says roll back.
    #[error("eviction of {pod} stayed blocked by PodDisruptionBudget {pdb} past the deadline")]
    PdbBlocked { pod: String, pdb: String },
    /// The policy forbids evicting some pods on the old nodes.
    #[error("the drain refuses: {}", .reasons.join("; "))]
    DrainRefused { reasons: Vec<String> },
    /// A port this step needs was not wired in.
    #[error("step needs the {port} port, which is not configured")]
    PortUnavailable { port: &'static str },
    /// Retryable: an AWS or Kubernetes API throttled ngm.
    #[error("{op} was throttled")]
    Throttled { op: String },
    /// Retryable: a timeout or a conflicting concurrent write.
    #[error("{op} failed transiently: {detail}")]
    Transient { op: String, detail: String },
    #[error("{what} was not found")]
    NotFound { what: String },
    #[error("{op} was denied")]
    AccessDenied { op: String },
    /// An API refused a call as invalid (a 4xx validation error).
    #[error("{op} was rejected: {detail}")]
    Rejected { op: String, detail: String },
    #[error("{op} failed: {detail}")]
    Unexpected { op: String, detail: String },
    /// This execution no longer holds the cluster's lock: the renewal after a step found
    /// another holder (or none). Never retried, and no rollback: whoever holds the lock owns
    /// the cluster now.
    #[error("execution {execution} no longer holds the cluster lock ({holder})")]
    LockLost { execution: String, holder: String },
}

/// Every `error_type` a step can return, in declaration order.
pub const ALL_ERROR_NAMES: &[&str] = &[
    "InvalidRequest",
    "InvalidState",
    "ClusterNotFound",
    "SourceGroupNotFound",
    "PreflightFailed",
    "ClusterLocked",
    "TargetGroupConflict",
    "NewGroupFailed",
    "NewGroupNotReady",
    "SurgeNotReady",
    "TargetsNotHealthy",
    "RetireStalled",
    "DrainTimedOut",
    "OldGroupNotEmpty",
    "OldGroupNotDeleted",
    "RollbackStalled",
    "PdbBlocked",
    "DrainRefused",
    "PortUnavailable",
    "Throttled",
    "Transient",
    "NotFound",
    "AccessDenied",
    "Rejected",
    "Unexpected",
    "LockLost",
];

/// The names the state machine retries with backoff; every other name is caught and rolled back.
pub const RETRYABLE_ERROR_NAMES: &[&str] = &["Throttled", "Transient"];

/// One error per waiting loop, each raised when that loop's deadline passes (the ASL catches
/// each by name).
pub const DEADLINE_ERROR_NAMES: &[&str] = &[
    "NewGroupNotReady",
    "SurgeNotReady",
    "TargetsNotHealthy",
    "RetireStalled",
    "DrainTimedOut",
    "OldGroupNotEmpty",
    "OldGroupNotDeleted",
    "RollbackStalled",
];

/// Never retried and never rolled back: another execution holds the cluster now.
pub const LOCK_LOST: &str = "LockLost";

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| e.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

impl StepError {
    /// The stable name the Lambda runtime reports as `error_type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            StepError::InvalidRequest { .. } => "InvalidRequest",
            StepError::InvalidState { .. } => "InvalidState",
            StepError::ClusterNotFound { .. } => "ClusterNotFound",
            StepError::SourceGroupNotFound { .. } => "SourceGroupNotFound",
            StepError::PreflightFailed { .. } => "PreflightFailed",
            StepError::ClusterLocked { .. } => "ClusterLocked",
            StepError::TargetGroupConflict { .. } => "TargetGroupConflict",
            StepError::NewGroupFailed { .. } => "NewGroupFailed",
            StepError::NewGroupNotReady { .. } => "NewGroupNotReady",
            StepError::SurgeNotReady { .. } => "SurgeNotReady",
            StepError::TargetsNotHealthy { .. } => "TargetsNotHealthy",
            StepError::RetireStalled { .. } => "RetireStalled",
            StepError::DrainTimedOut { .. } => "DrainTimedOut",
            StepError::OldGroupNotEmpty { .. } => "OldGroupNotEmpty",
            StepError::OldGroupNotDeleted { .. } => "OldGroupNotDeleted",
            StepError::RollbackStalled { .. } => "RollbackStalled",
            StepError::PdbBlocked { .. } => "PdbBlocked",
            StepError::DrainRefused { .. } => "DrainRefused",
            StepError::PortUnavailable { .. } => "PortUnavailable",
            StepError::Throttled { .. } => "Throttled",
            StepError::Transient { .. } => "Transient",
            StepError::NotFound { .. } => "NotFound",
            StepError::AccessDenied { .. } => "AccessDenied",
            StepError::Rejected { .. } => "Rejected",
            StepError::Unexpected { .. } => "Unexpected",
            StepError::LockLost { .. } => "LockLost",
        }
    }

    /// Whether the state machine should retry the step as it is.
    pub fn is_retryable(&self) -> bool {
        RETRYABLE_ERROR_NAMES.contains(&self.error_type())
    }
}

impl From<PortError> for StepError {
    fn from(e: PortError) -> StepError {
        match e {
            PortError::Throttled { op } => StepError::Throttled { op },
            PortError::Timeout { op } => StepError::Transient {
                op,
                detail: "timed out".into(),
            },
            PortError::Conflict { op, detail } => StepError::Transient { op, detail },
            // Outside an eviction (which answers through `EvictOutcome`), a 429 is a retry.
            PortError::PdbBlocked { pod, pdb } => StepError::Transient {
                op: format!("evict {pod}"),
                detail: format!("blocked by PodDisruptionBudget {pdb}"),
            },
            PortError::NotFound { what } | PortError::Gone { what } => StepError::NotFound { what },
            PortError::Invalid { op, detail } => StepError::Rejected { op, detail },
            PortError::AccessDenied { op } => StepError::AccessDenied { op },
            // A 5xx: the API could not answer now; the same call may succeed later.
            PortError::Unavailable { op, detail } => StepError::Transient { op, detail },
            PortError::Unexpected { op, detail } => StepError::Unexpected { op, detail },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one_of_each() -> Vec<StepError> {
        let s = String::new;
        vec![
            StepError::InvalidRequest { errors: vec![] },
            StepError::InvalidState {
                step: "x",
                reason: s(),
            },
            StepError::ClusterNotFound { cluster: s() },
            StepError::SourceGroupNotFound { name: s() },
            StepError::PreflightFailed { findings: vec![] },
            StepError::ClusterLocked { holder: s() },
            StepError::TargetGroupConflict { reason: s() },
            StepError::NewGroupFailed { reason: s() },
            StepError::NewGroupNotReady { reason: s() },
            StepError::SurgeNotReady { reason: s() },
            StepError::TargetsNotHealthy { reason: s() },
            StepError::RetireStalled { reason: s() },
            StepError::DrainTimedOut { reason: s() },
            StepError::OldGroupNotEmpty { reason: s() },
            StepError::OldGroupNotDeleted { reason: s() },
            StepError::RollbackStalled { reason: s() },
            StepError::PdbBlocked { pod: s(), pdb: s() },
            StepError::DrainRefused { reasons: vec![] },
            StepError::PortUnavailable { port: "ec2" },
            StepError::Throttled { op: s() },
            StepError::Transient {
                op: s(),
                detail: s(),
            },
            StepError::NotFound { what: s() },
            StepError::AccessDenied { op: s() },
            StepError::Rejected {
                op: s(),
                detail: s(),
            },
            StepError::Unexpected {
                op: s(),
                detail: s(),
            },
            StepError::LockLost {
                execution: s(),
                holder: s(),
            },
        ]
    }

    #[test]
    fn every_variant_has_a_distinct_listed_name() {
        let names: Vec<&str> = one_of_each().iter().map(StepError::error_type).collect();
        assert_eq!(names, ALL_ERROR_NAMES);
        let mut dedup = names.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(dedup.len(), names.len());
    }

    #[test]
    fn port_errors_map_retryable_ones_to_retried_names() {
        let op = || "DescribeNodegroup".to_string();
        let cases = [
            (PortError::Throttled { op: op() }, "Throttled", true),
            (PortError::Timeout { op: op() }, "Transient", true),
            (
                PortError::Conflict {
                    op: op(),
                    detail: "409".into(),
                },
                "Transient",
                true,
            ),
            (PortError::NotFound { what: op() }, "NotFound", false),
            (
                PortError::Invalid {
                    op: op(),
                    detail: "bad".into(),
                },
                "Rejected",
                false,
            ),
            (PortError::AccessDenied { op: op() }, "AccessDenied", false),
            (
                PortError::Unavailable {
                    op: op(),
                    detail: "500 Internal Server Error".into(),
                },
                "Transient",
                true,
            ),
            (
                PortError::Unexpected {
                    op: op(),
                    detail: "unreadable answer".into(),
                },
                "Unexpected",
                false,
            ),
        ];
        for (port, name, retry) in cases {
            let e = StepError::from(port.clone());
            assert_eq!(e.error_type(), name, "{port:?}");
            assert_eq!(e.is_retryable(), retry, "{port:?}");
            assert_eq!(port.is_retryable(), retry, "{port:?} agrees with core");
        }
    }

    #[test]
    fn invalid_request_lists_every_field_error() {
        let e = StepError::InvalidRequest {
            errors: vec![
                FieldError::new("target.scaling.max", "(0) must be at least 1"),
                FieldError::new("cluster.region", "is not a region"),
            ],
        };
        assert_eq!(
            e.to_string(),
            "invalid request: target.scaling.max (0) must be at least 1; cluster.region is not a region"
        );
    }
}
