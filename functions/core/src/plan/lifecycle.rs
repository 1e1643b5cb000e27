//! Steps 1, 2, 3 and 10 around the groups themselves: the per-cluster lock, creating (or
//! adopting) the new group, waiting for it, and deleting the old one once it is empty.
//!
//! The lock is a record in a table ([`LockPort`](crate::ports::LockPort)) keyed by the cluster
//! ARN and held on a lease: whoever starts a run (the API, the AMI watcher) takes it under the
//! execution name it is about to start, validate-and-plan takes or renews it under the same
//! name, and restore or rollback delete it. A lease that has run out may be taken over.

use serde::{Deserialize, Serialize};

use crate::model::{
    NodeGroupKind, NodeGroupSpec, NodeGroupStatus, NodeView, PodPhase, PodView, ServiceView,
    Timestamp,
};
use crate::plan::action::Action;
use crate::plan::drain::{Eligibility, eligibility};
use crate::plan::newgroup::{
    CREATED_BY_TAG, client_request_token, launch_template_overrides, same_shape,
};
use crate::ports::LockRecord;
use crate::request::{MigrationRequest, OnPdbBlocked, Policy};

/// Waits whose limits the steps set, not the request: the new group becoming ready (45 min),
/// the surge becoming ready (30 min) and the old group disappearing (30 min). `ngm-steps`
/// checks that its timeouts add up to this.
pub const STEP_WAITS_SECS: u64 = (45 + 30 + 30) * 60;
pub use crate::plan::deadlines::OPERATOR_WAIT_SECS;
/// The LB drain wait assumed before the load balancers are read: the longest AWS default (NLB
/// TCP idle timeout, 350 s) plus the 300 s deregistration delay, rounded up.
pub const ASSUMED_LB_DRAIN_SECS: u64 = 15 * 60;
/// Slack for Lambda retries, Wait-state floors between polls, the restore and the rollback.
pub const LEASE_MARGIN_SECS: u64 = 60 * 60;

/// How long a run may hold the per-cluster lock: every wait it may go through at its limit,
/// plus a margin. `lb_drain_seconds` is the planned LB drain wait, `None` before it is known.
/// A run still going after this is presumed dead, and the next migration may take over.
pub fn lease_seconds(req: &MigrationRequest, lb_drain_seconds: Option<u64>) -> u64 {
    let policy = &req.policy;
    let lb = policy
        .lb_drain_seconds_override
        .or(lb_drain_seconds)
        .unwrap_or(ASSUMED_LB_DRAIN_SECS);
    let operator = if policy.on_pdb_blocked == OnPdbBlocked::WaitForOperator {
        OPERATOR_WAIT_SECS
    } else {
        0
    };
    STEP_WAITS_SECS
        .saturating_add(lb)
        .saturating_add(policy.drain_deadline_seconds)
        .saturating_add(operator)
        .saturating_add(LEASE_MARGIN_SECS)
}

/// The per-cluster lock's key: the cluster's ARN, unique across regions and accounts.
pub fn lock_key(cluster_arn: &str) -> String {
    cluster_arn.to_string()
}

/// What to do about the per-cluster lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockDecision {
    /// Write this record with the table's conditional acquire: nobody holds the lock, its lease
    /// has run out (a crashed run), or this execution holds it on a shorter lease (a renewal).
    Acquire { record: LockRecord },
    /// This execution already holds it long enough: nothing to write.
    Held,
    /// Another execution holds a live lease.
    Busy {
        holder: String,
        lease_until: Timestamp,
    },
}

/// Plans taking the lock for `execution` until `lease_until`, from the record read.
pub fn plan_lock(
    key: &str,
    current: Option<&LockRecord>,
    execution: &str,
    now: Timestamp,
    lease_until: Timestamp,
) -> LockDecision {
    let mut acquired_at = now;
    if let Some(c) = current {
        if c.holder == execution {
            if c.lease_until >= lease_until {
                return LockDecision::Held;
            }
            acquired_at = c.acquired_at;
        } else if c.lease_until >= now {
            return LockDecision::Busy {
                holder: c.holder.clone(),
                lease_until: c.lease_until,
            };
        }
    }
    LockDecision::Acquire {
        record: LockRecord {
            key: key.to_string(),
            holder: execution.to_string(),
            // The caller knows the execution's ARN; the plan only decides.
            holder_arn: None,
            acquired_at,
            lease_until,
            state: None,
        },
    }
}

/// Whether `execution` should delete the record read: only its own.
pub fn plan_unlock(current: Option<&LockRecord>, execution: &str) -> bool {
    current.is_some_and(|c| c.holder == execution)
}

/// What step 2 does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
// Built once per invocation and consumed at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum CreateDecision {
    /// Create the launch template version first (if any), then the group. The step puts the
    /// created version into `spec.launchTemplate.version` before creating the group.
    Create {
        launch_template: Option<Action>,
        spec: Box<NodeGroupSpec>,
        client_request_token: String,
    },
    /// A group with this name exists and is ours (an earlier try of this step) or has the same
    /// shape: use it. `created_by_ngm` decides whether a rollback may delete it.
    Adopt { created_by_ngm: bool },
    /// A different group already has the name.
    Conflict { reason: String },
}

/// Step 2's plan from the derived spec and whatever group already has its name.
pub fn plan_create_group(
    req: &MigrationRequest,
    derived: &NodeGroupSpec,
    existing: Option<&NodeGroupSpec>,
    execution: &str,
) -> CreateDecision {
    if let Some(e) = existing {
        let ours = e.tags.get(CREATED_BY_TAG).map(String::as_str) == Some(execution);
        // A version we created ourselves is a new number, so compare without it.
        let mut shape = derived.clone();
        if shape
            .launch_template
            .as_ref()
            .is_some_and(|l| l.version.is_none())
        {
            shape.launch_template = e.launch_template.clone();
        }
        return if ours || same_shape(e, &shape) {
            CreateDecision::Adopt {
                created_by_ngm: ours,
            }
        } else {
            CreateDecision::Conflict {
                reason: format!("node group {} already exists with a different spec", e.name),
            }
        };
    }
    let mut spec = derived.clone();
    spec.tags
        .insert(CREATED_BY_TAG.to_string(), execution.to_string());
    let launch_template = match (launch_template_overrides(req), &derived.launch_template) {
        (Some(overrides), Some(lt)) => Some(Action::CreateLaunchTemplateVersion {
            template: lt.clone(),
            overrides,
            client_token: client_request_token(execution, "launch-template-version"),
        }),
        _ => None,
    };
    CreateDecision::Create {
        launch_template,
        spec: Box::new(spec),
        client_request_token: client_request_token(execution, "create-nodegroup"),
    }
}

/// Step 3's condition: ACTIVE, and at least `desired` Ready nodes. `Err` carries why not;
/// [`group_failed`] says when waiting is pointless.
pub fn group_ready(group: Option<&NodeGroupSpec>, new_nodes: &[NodeView]) -> Result<(), String> {
    let Some(g) = group else {
        return Err("the new group does not exist yet".into());
    };
    if g.status != NodeGroupStatus::Active {
        return Err(format!("node group {} is {:?}", g.name, g.status));
    }
    let ready = new_nodes.iter().filter(|n| n.ready).count();
    let want = usize::try_from(g.scaling.desired).unwrap_or(0);
    if ready < want {
        return Err(format!("{ready} of {want} nodes of {} are Ready", g.name));
    }
    Ok(())
}

/// A status the group will not recover from by waiting.
pub fn group_failed(group: Option<&NodeGroupSpec>) -> Option<String> {
    let g = group?;
    matches!(
        g.status,
        NodeGroupStatus::CreateFailed | NodeGroupStatus::Degraded | NodeGroupStatus::DeleteFailed
    )
    .then(|| format!("node group {} is {:?}", g.name, g.status))
}

/// Step 10's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
// Built once per invocation and consumed at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum DeleteDecision {
    Delete {
        action: Action,
    },
    /// Pods ngm must move are still there.
    Wait {
        remaining: usize,
    },
}

/// A live pod that was not Ready when ngm marked it and is still not Ready: it served nothing
/// before the migration, so waiting for it would only wait for a crash loop.
pub fn broken_before(p: &PodView) -> bool {
    !p.terminating
        && !p.ready
        && p.annotations
            .get(crate::marks::READY_BEFORE)
            .map(String::as_str)
            == Some("false")
}

/// Delete the old group only once nothing but skipped pods (DaemonSet, mirror, out of scope)
/// remains: EKS's own drain on delete lasts minutes and then terminates regardless of PDBs.
pub fn plan_delete_old(
    kind: NodeGroupKind,
    name: &str,
    old_pods: &[PodView],
    policy: &Policy,
) -> DeleteDecision {
    let remaining = old_pods
        .iter()
        .filter(|p| p.terminating || !matches!(eligibility(p, policy), Eligibility::Skip { .. }))
        .filter(|p| !p.is_mirror && p.owner_kind() != Some("DaemonSet"))
        .filter(|p| !broken_before(p))
        .count();
    if remaining > 0 {
        return DeleteDecision::Wait { remaining };
    }
    let action = match kind {
        NodeGroupKind::Managed => Action::DeleteNodegroup {
            name: name.to_string(),
        },
        NodeGroupKind::SelfManagedAsg => Action::DeleteAsg {
            name: name.to_string(),
        },
    };
    DeleteDecision::Delete { action }
}

/// The longest ngm waits for the pods it stops before the old group goes (their grace periods,
/// capped, plus this margin).
pub const LEFT_PODS_STOP_MARGIN_SECS: u64 = 30;
/// The cap on the grace period that wait allows for.
pub const LEFT_PODS_STOP_MAX_GRACE_SECS: u64 = 600;

/// Pods still on the old nodes once only skipped ones remain, which would otherwise die with
/// their instances: a terminated instance's pods stay Ready endpoints until the node lifecycle
/// controller notices, about 50 s later, and requests sent to them meanwhile time out. ngm
/// evicts them first, so that their preStop hooks run and every endpoint consumer drops them:
/// - DaemonSet pods behind a Service (an ingress or proxy run per node); other daemons (agents,
///   the CNI, kube-proxy) serve no Service and are left to go with their nodes;
/// - every other pod ngm left in place (opted out, out of scope, without a controller).
///
/// Mirror pods cannot be evicted. A pod created at or after `started` replaces one ngm already
/// evicted: its DaemonSet tolerates ngm's taint and would put it back each time, so it goes
/// with its node.
pub fn pods_to_stop<'a>(
    old_pods: &'a [PodView],
    services: &[ServiceView],
    started: Timestamp,
) -> Vec<&'a PodView> {
    let serves = |p: &PodView| services.iter().any(|s| s.selects(p));
    old_pods
        .iter()
        .filter(|p| !p.is_mirror)
        .filter(|p| matches!(p.phase, PodPhase::Running | PodPhase::Pending))
        .filter(|p| p.created_at.is_none_or(|c| c < started))
        .filter(|p| p.owner_kind() != Some("DaemonSet") || serves(p))
        .collect()
}

/// How long ngm waits for the pods it stops: their longest grace period (capped) plus a margin.
pub fn stop_wait_secs(pods: &[&PodView]) -> u64 {
    let grace = pods
        .iter()
        .map(|p| u64::try_from(p.shutdown.grace_seconds).unwrap_or(0))
        .max()
        .unwrap_or(0)
        .min(LEFT_PODS_STOP_MAX_GRACE_SECS);
    grace + LEFT_PODS_STOP_MARGIN_SECS
}

#[cfg(test)]
mod tests;
