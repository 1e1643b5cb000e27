//! Checks that need the source group: the target must be reachable from it and differ from it.

use super::validate::Errors;
use super::{FieldError, LaunchTemplateChoice, MigrationRequest};
use crate::model::{NodeGroupKind, NodeGroupSpec};
use crate::plan::newgroup::{derive_target, same_shape};

/// Checks that need the source group: the target must be reachable from it and differ from it.
pub fn validate_against_source(
    req: &MigrationRequest,
    source: &NodeGroupSpec,
) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    let t = &req.target;
    if t.custom_ami_id.is_some()
        && source.launch_template.is_none()
        && !matches!(t.launch_template, Some(LaunchTemplateChoice::UseAsIs(_)))
    {
        e.add(
            "target.customAmiId",
            format!(
                "needs a launch template, and source group {} has none; give target.launchTemplate.useAsIs",
                source.name
            ),
        );
    }
    if matches!(t.launch_template, Some(LaunchTemplateChoice::NewVersion(_)))
        && source.launch_template.is_none()
    {
        e.add(
            "target.launchTemplate.newVersion",
            format!(
                "needs a launch template on source group {}, which has none",
                source.name
            ),
        );
    }
    if let Some(share) = source.on_demand_share
        && share.capacity_type().is_none()
        && t.capacity_type.is_none()
    {
        e.add(
            "target.capacityType",
            format!(
                "is needed: source group {} mixes On-Demand ({} first, then {} % of the rest) \
                 and Spot, and a managed group holds only one kind; set ON_DEMAND or SPOT",
                source.name, share.base, share.percent_above_base
            ),
        );
    }
    if source.node_role_arn.is_none() && t.node_role_arn.is_none() {
        e.add(
            "target.nodeRoleArn",
            format!(
                "is required: the node role of source group {} cannot be read",
                source.name
            ),
        );
    }
    if source.kind == NodeGroupKind::Managed {
        let derived = derive_target(req, source);
        if same_shape(source, &derived) {
            e.add(
                "target",
                format!(
                    "is identical to source node group {} (nothing to do)",
                    source.name
                ),
            );
        }
    }
    e.finish()
}
