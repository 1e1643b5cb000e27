//! The new group's spec (a copy of the source plus the request's overrides), its derived name,
//! and the idempotency tokens for creating it.

use crate::digest::{Fnv, hex_of};
use crate::model::{
    CapacityType, Labels, LaunchTemplateOverrides, LaunchTemplateRef, NodeGroupKind, NodeGroupSpec,
    NodeGroupStatus, Taint, TaintEffect,
};
use crate::request::{LaunchTemplateChoice, MigrationRequest};

/// Tag on every group ngm creates, valued with the execution name.
pub const CREATED_BY_TAG: &str = "ngm.io/created-by";
/// Tag on the new group naming the group it replaces.
pub const MIGRATED_FROM_TAG: &str = "ngm.io/migrated-from";

/// Length of the hash suffix on derived names.
const SUFFIX_LEN: usize = 6;

/// The new group's name: the request's, or the source's base plus a short hash of the request's
/// target, so a re-run of the same request derives the same name.
pub fn target_name(req: &MigrationRequest) -> String {
    if let Some(name) = &req.target.name {
        return name.clone();
    }
    let source = req.source.name();
    let target_json = serde_json::to_string(&req.target).unwrap_or_default();
    let suffix = &hex_of([source, &target_json])[..SUFFIX_LEN];
    let base = strip_derived_suffix(source);
    // Self-managed ASG names may hold characters EKS names cannot.
    let mut base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if !base.starts_with(|c: char| c.is_ascii_alphanumeric()) {
        base.insert(0, 'g');
    }
    base.truncate(63 - SUFFIX_LEN - 1);
    format!("{base}-{suffix}")
}

/// `ng-a-1f2e3d` → `ng-a`, so repeated migrations do not grow the name.
fn strip_derived_suffix(name: &str) -> &str {
    match name.rsplit_once('-') {
        Some((base, tail))
            if tail.len() == SUFFIX_LEN
                && !base.is_empty()
                && tail
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()) =>
        {
            base
        }
        _ => name,
    }
}

/// An idempotency token for one mutation of one step of one execution (EKS
/// `clientRequestToken`, EC2 `ClientToken`): the same execution and step always give the same
/// token, so a retried call is recognised instead of repeated.
pub fn client_request_token(execution: &str, step: &str) -> String {
    let mut h = Fnv::new();
    h.write_str(execution).write_str(step);
    let step: String = step
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .take(24)
        .collect();
    format!("ngm-{step}-{}", h.hex())
}

fn arm_family(instance_type: &str) -> bool {
    // Graviton families carry a `g` right after the generation digit: m7g, c6gn, t4g, r8gd.
    let family = instance_type.split('.').next().unwrap_or_default();
    let mut chars = family.chars().skip_while(|c| c.is_ascii_alphabetic());
    chars.find(|c| !c.is_ascii_digit()) == Some('g')
}

fn taint_from_request(key: &str, value: &Option<String>, effect: &str) -> Option<Taint> {
    TaintEffect::parse(effect).map(|effect| Taint {
        key: key.to_string(),
        value: value.clone(),
        effect,
    })
}

/// The spec of the new managed group: the source's, with the request's overrides applied.
///
/// For a launch template `newVersion` (or a `customAmiId`), the template reference carries the
/// source template with `version: None`; the step fills in the version it created.
pub fn derive_target(req: &MigrationRequest, source: &NodeGroupSpec) -> NodeGroupSpec {
    let t = &req.target;
    let self_managed = source.kind == NodeGroupKind::SelfManagedAsg;

    let launch_template = match &t.launch_template {
        Some(LaunchTemplateChoice::UseAsIs(sel)) => Some(LaunchTemplateRef {
            id: sel.id.clone(),
            name: sel.name.clone(),
            version: sel.version.clone(),
        }),
        Some(LaunchTemplateChoice::NewVersion(_)) => {
            source.launch_template.clone().map(|lt| LaunchTemplateRef {
                version: None,
                ..lt
            })
        }
        None if t.custom_ami_id.is_some() => {
            source.launch_template.clone().map(|lt| LaunchTemplateRef {
                version: None,
                ..lt
            })
        }
        // A self-managed group's template carries an instance profile and a bootstrap script,
        // both of which EKS refuses in a managed group's template, so it is not reused.
        None if self_managed => None,
        None => source.launch_template.clone(),
    };

    let lt_instance_type = matches!(
        &t.launch_template,
        Some(LaunchTemplateChoice::NewVersion(c)) if c.instance_type.is_some()
    );
    let instance_types = if lt_instance_type {
        Vec::new()
    } else {
        t.instance_types
            .clone()
            .unwrap_or_else(|| source.instance_types.clone())
    };

    let custom_image = t
        .custom_ami_id
        .clone()
        .or_else(|| match &t.launch_template {
            Some(LaunchTemplateChoice::NewVersion(c)) => c.image_id.clone(),
            _ => None,
        });
    let ami_type = if custom_image.is_some() {
        Some("CUSTOM".to_string())
    } else if let Some(a) = &t.ami_type {
        Some(a.clone())
    } else if self_managed {
        // The family its nodes run (Bottlerocket, NVIDIA, arm64), else AL2023 for the arch.
        let arm = instance_types.first().is_some_and(|i| arm_family(i));
        source.ami_type.clone().or_else(|| {
            Some(
                if arm {
                    "AL2023_ARM_64_STANDARD"
                } else {
                    "AL2023_x86_64_STANDARD"
                }
                .to_string(),
            )
        })
    } else {
        source.ami_type.clone()
    };
    let release_version = if custom_image.is_some() {
        None
    } else if let Some(r) = &t.release_version {
        Some(r.clone())
    } else if ami_type == source.ami_type && !self_managed {
        source.release_version.clone()
    } else {
        // A different AMI family has its own releases; EKS picks the latest.
        None
    };

    let mut tags: Labels = source
        .tags
        .iter()
        .filter(|(k, _)| crate::marks::carried_tag(k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    tags.insert(MIGRATED_FROM_TAG.to_string(), source.name.clone());

    NodeGroupSpec {
        name: target_name(req),
        arn: None,
        kind: NodeGroupKind::Managed,
        instance_types,
        ami_type,
        release_version,
        custom_ami_id: custom_image,
        disk_size: if launch_template.is_some() {
            None
        } else {
            source.disk_size
        },
        launch_template,
        capacity_type: t
            .capacity_type
            .or(source.capacity_type)
            .or(Some(CapacityType::OnDemand)),
        scaling: t.scaling.unwrap_or(source.scaling),
        subnets: t.subnets.clone().unwrap_or_else(|| source.subnets.clone()),
        labels: t.labels.clone().unwrap_or_else(|| source.labels.clone()),
        taints: match &t.taints {
            Some(list) => list
                .iter()
                .filter_map(|x| taint_from_request(&x.key, &x.value, &x.effect))
                .collect(),
            None => source.taints.clone(),
        },
        version: source.version.clone(),
        status: NodeGroupStatus::Creating,
        asg_names: Vec::new(),
        tags,
        node_role_arn: t
            .node_role_arn
            .clone()
            .or_else(|| source.node_role_arn.clone()),
        on_demand_share: None,
    }
}

/// The launch-template changes the new group needs, if any.
pub fn launch_template_overrides(req: &MigrationRequest) -> Option<LaunchTemplateOverrides> {
    let t = &req.target;
    let mut overrides = match &t.launch_template {
        Some(LaunchTemplateChoice::NewVersion(c)) => c.to_overrides(),
        Some(LaunchTemplateChoice::UseAsIs(_)) => return None,
        None => LaunchTemplateOverrides::default(),
    };
    if let Some(ami) = &t.custom_ami_id {
        overrides.image_id = Some(ami.clone());
    }
    (!overrides.is_empty()).then_some(overrides)
}

fn sorted<T: Ord + Clone>(v: &[T]) -> Vec<T> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// Whether two specs would run the same nodes: everything but name, status and bookkeeping.
pub fn same_shape(a: &NodeGroupSpec, b: &NodeGroupSpec) -> bool {
    a.kind == b.kind
        && sorted(&a.instance_types) == sorted(&b.instance_types)
        && a.ami_type == b.ami_type
        && a.release_version == b.release_version
        && a.custom_ami_id == b.custom_ami_id
        && a.launch_template == b.launch_template
        && a.capacity_type.unwrap_or(CapacityType::OnDemand)
            == b.capacity_type.unwrap_or(CapacityType::OnDemand)
        && a.scaling == b.scaling
        && sorted(&a.subnets) == sorted(&b.subnets)
        && a.labels == b.labels
        && sorted(&a.taints) == sorted(&b.taints)
        && a.node_role_arn == b.node_role_arn
}

#[cfg(test)]
mod tests;
