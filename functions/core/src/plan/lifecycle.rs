//! Steps 1, 2, 3 and 10 around the groups themselves: the per-cluster lock, creating (or
//! adopting) the new group, waiting for it, and deleting the old one once it is empty.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::marks;
use crate::model::{NodeGroupKind, NodeGroupSpec, NodeGroupStatus, NodeView, PodView};
use crate::plan::action::Action;
use crate::plan::drain::{Eligibility, eligibility};
use crate::plan::newgroup::{
    CREATED_BY_TAG, client_request_token, launch_template_overrides, same_shape,
};
use crate::request::{MigrationRequest, Policy};

/// What to do about the per-cluster lock (a tag on the EKS cluster).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "decision")]
// Built once per invocation and consumed at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum LockDecision {
    /// Take it with this action.
    Acquire { action: Action },
    /// This execution already holds it.
    Held,
    /// Another running execution holds it.
    Busy { holder: String },
}

/// `holder_running` says whether the tag's holder is still a running execution; a lock left by
/// a finished or aborted run is taken over.
pub fn plan_lock(
    cluster_arn: &str,
    cluster_tags: &BTreeMap<String, String>,
    execution: &str,
    holder_running: bool,
) -> LockDecision {
    match cluster_tags.get(marks::LOCK_TAG) {
        Some(h) if h == execution => LockDecision::Held,
        Some(h) if holder_running => LockDecision::Busy { holder: h.clone() },
        _ => LockDecision::Acquire {
            action: Action::TagResource {
                arn: cluster_arn.to_string(),
                tags: [(marks::LOCK_TAG.to_string(), execution.to_string())].into(),
            },
        },
    }
}

/// Release the lock if this execution holds it.
pub fn plan_unlock(
    cluster_arn: &str,
    cluster_tags: &BTreeMap<String, String>,
    execution: &str,
) -> Vec<Action> {
    if cluster_tags.get(marks::LOCK_TAG).map(String::as_str) == Some(execution) {
        vec![Action::UntagResource {
            arn: cluster_arn.to_string(),
            keys: vec![marks::LOCK_TAG.to_string()],
        }]
    } else {
        vec![]
    }
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

#[cfg(test)]
mod tests;
