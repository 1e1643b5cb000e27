//! Validation that reports every problem at once, each naming its field path.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::rules;
use super::{LaunchTemplateChoice, MigrationRequest, SourceGroup, TargetSpec};
use crate::model::TaintEffect;

/// EKS refuses more than 50 taints on a node group.
const MAX_TAINTS: usize = 50;
/// A surge above this many copies is a typo, not a plan.
const MAX_SURGE_FACTOR: f64 = 4.0;
use crate::plan::deadlines::{
    EXECUTION_TIMEOUT_SECS, MAX_LB_DRAIN_SECS, MIN_DRAIN_DEADLINE_SECS, max_drain_deadline_secs,
};

/// One problem with a request: the field path and a sentence that starts with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// `field` followed by `rest`, e.g. `target.scaling.max (0) must be at least 1`.
    pub fn new(field: impl Into<String>, rest: impl fmt::Display) -> FieldError {
        let field = field.into();
        FieldError {
            message: format!("{field} {rest}"),
            field,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

#[derive(Default)]
pub(super) struct Errors(Vec<FieldError>);

impl Errors {
    pub(super) fn add(&mut self, field: impl Into<String>, rest: impl fmt::Display) {
        self.0.push(FieldError::new(field, rest));
    }

    fn rule(&mut self, field: impl Into<String>, result: Result<(), String>) {
        if let Err(reason) = result {
            self.add(field, reason);
        }
    }

    pub(super) fn finish(self) -> Result<(), Vec<FieldError>> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(self.0)
        }
    }
}

/// Checks everything that can be checked without reading the cluster.
pub fn validate(req: &MigrationRequest) -> Result<(), Vec<FieldError>> {
    let mut e = Errors::default();
    e.rule("cluster.name", rules::eks_name(&req.cluster.name, 100));
    e.rule("cluster.region", rules::region(&req.cluster.region));
    match &req.source {
        SourceGroup::ManagedNodeGroup(n) => e.rule(req.source.field(), rules::eks_name(n, 63)),
        SourceGroup::AutoScalingGroup(n) => e.rule(req.source.field(), rules::asg_name(n)),
    }
    validate_target(&req.target, &req.source, &mut e);
    validate_policy(req, &mut e);
    e.finish()
}

fn validate_target(t: &TargetSpec, source: &SourceGroup, e: &mut Errors) {
    if let Some(name) = &t.name {
        e.rule("target.name", rules::eks_name(name, 63));
        if matches!(source, SourceGroup::ManagedNodeGroup(s) if s == name) {
            e.add(
                "target.name",
                format!("({name}) is the source group's name"),
            );
        }
    }
    if let Some(types) = &t.instance_types {
        if types.is_empty() {
            e.add("target.instanceTypes", "must not be empty when given");
        }
        let mut seen = BTreeSet::new();
        for (i, ty) in types.iter().enumerate() {
            e.rule(
                format!("target.instanceTypes[{i}]"),
                rules::instance_type(ty),
            );
            if !seen.insert(ty) {
                e.add(
                    format!("target.instanceTypes[{i}]"),
                    format!("({ty}) is listed twice"),
                );
            }
        }
    }
    if let Some(ami) = &t.ami_type {
        e.rule("target.amiType", rules::ami_type(ami));
    }
    if let Some(ami) = &t.custom_ami_id {
        e.rule("target.customAmiId", rules::ami_id(ami));
        if t.release_version.is_some() {
            e.add(
                "target.customAmiId",
                "and target.releaseVersion are both set; give one",
            );
        }
    }
    if let Some(rv) = &t.release_version
        && (rv.is_empty() || rv.chars().any(char::is_whitespace))
    {
        e.add(
            "target.releaseVersion",
            format!("({rv:?}) is not a release version"),
        );
    }
    if let Some(lt) = &t.launch_template {
        validate_launch_template(lt, t, e);
    }
    if let Some(s) = &t.scaling {
        validate_scaling(s.min, s.max, s.desired, e);
    }
    if let Some(subnets) = &t.subnets {
        if subnets.is_empty() {
            e.add("target.subnets", "must not be empty when given");
        }
        for (i, s) in subnets.iter().enumerate() {
            e.rule(format!("target.subnets[{i}]"), rules::subnet_id(s));
        }
    }
    if let Some(labels) = &t.labels {
        for (k, v) in labels {
            let field = format!("target.labels[{k:?}]");
            e.rule(field.clone(), rules::label_key(k));
            e.rule(field.clone(), rules::unreserved_label_key(k));
            e.rule(field, rules::label_value(v));
        }
    }
    if let Some(taints) = &t.taints {
        if taints.len() > MAX_TAINTS {
            e.add(
                "target.taints",
                format!(
                    "has {} taints; EKS allows at most {MAX_TAINTS}",
                    taints.len()
                ),
            );
        }
        let mut seen = BTreeSet::new();
        for (i, taint) in taints.iter().enumerate() {
            e.rule(
                format!("target.taints[{i}].key"),
                rules::label_key(&taint.key),
            );
            if let Some(v) = &taint.value {
                e.rule(format!("target.taints[{i}].value"), rules::label_value(v));
            }
            let effect = match taint.effect.as_str() {
                "NO_SCHEDULE" | "NO_EXECUTE" | "PREFER_NO_SCHEDULE" => {
                    TaintEffect::parse(&taint.effect)
                }
                other => {
                    e.add(
                        format!("target.taints[{i}].effect"),
                        format!(
                            "({other:?}) must be NO_SCHEDULE, NO_EXECUTE or PREFER_NO_SCHEDULE"
                        ),
                    );
                    None
                }
            };
            if let Some(effect) = effect
                && !seen.insert((taint.key.clone(), effect))
            {
                e.add(
                    format!("target.taints[{i}]"),
                    format!("repeats key {} with effect {}", taint.key, taint.effect),
                );
            }
        }
    }
    if let Some(role) = &t.node_role_arn
        && !(role.starts_with("arn:") && role.contains(":iam::") && role.contains(":role/"))
    {
        e.add(
            "target.nodeRoleArn",
            format!("({role:?}) is not an IAM role ARN"),
        );
    }
}

fn validate_launch_template(lt: &LaunchTemplateChoice, t: &TargetSpec, e: &mut Errors) {
    match lt {
        LaunchTemplateChoice::UseAsIs(sel) => {
            let f = "target.launchTemplate.useAsIs";
            match (&sel.id, &sel.name) {
                (Some(_), Some(_)) => e.add(f, "has both id and name; give one"),
                (None, None) => e.add(f, "needs an id or a name"),
                (Some(id), None) => e.rule(format!("{f}.id"), rules::launch_template_id(id)),
                (None, Some(name)) if name.len() < 3 || name.len() > 128 => {
                    e.add(format!("{f}.name"), "must be 3–128 characters")
                }
                (None, Some(_)) => {}
            }
            if let Some(v) = &sel.version {
                e.rule(format!("{f}.version"), rules::launch_template_version(v));
            }
            if t.custom_ami_id.is_some() {
                e.add(
                    "target.customAmiId",
                    "cannot be combined with target.launchTemplate.useAsIs; put the image in that template",
                );
            }
        }
        LaunchTemplateChoice::NewVersion(changes) => {
            let f = "target.launchTemplate.newVersion";
            if changes.to_overrides().is_empty() {
                e.add(f, "changes nothing; give at least one change");
            }
            if let Some(image) = &changes.image_id {
                e.rule(format!("{f}.imageId"), rules::ami_id(image));
                if t.custom_ami_id.is_some() {
                    e.add(
                        "target.customAmiId",
                        format!("and {f}.imageId are both set; give one"),
                    );
                }
            }
            if let Some(ty) = &changes.instance_type {
                e.rule(format!("{f}.instanceType"), rules::instance_type(ty));
                if t.instance_types.is_some() {
                    e.add(
                        "target.instanceTypes",
                        format!(
                            "cannot be set when {f}.instanceType is; EKS takes one or the other"
                        ),
                    );
                }
            }
            if let Some(data) = &changes.user_data {
                e.rule(format!("{f}.userData"), rules::base64(data));
            }
            for (i, sg) in changes.security_group_ids.iter().enumerate() {
                e.rule(
                    format!("{f}.securityGroupIds[{i}]"),
                    rules::security_group_id(sg),
                );
            }
        }
    }
}

fn validate_scaling(min: i32, max: i32, desired: i32, e: &mut Errors) {
    let f = "target.scaling";
    if min < 0 {
        e.add(format!("{f}.min"), format!("({min}) must not be negative"));
    }
    if max < 1 {
        e.add(format!("{f}.max"), format!("({max}) must be at least 1"));
    }
    if min > max {
        e.add(
            format!("{f}.min"),
            format!("({min}) is above {f}.max ({max})"),
        );
    }
    if desired > max {
        e.add(
            format!("{f}.desired"),
            format!("({desired}) is above {f}.max ({max})"),
        );
    }
    if desired < min {
        e.add(
            format!("{f}.desired"),
            format!("({desired}) is below {f}.min ({min})"),
        );
    }
}

fn validate_policy(req: &MigrationRequest, e: &mut Errors) {
    let p = &req.policy;
    if !p.surge_factor.is_finite() || p.surge_factor < 1.0 {
        e.add(
            "policy.surgeFactor",
            format!("({}) must be at least 1", p.surge_factor),
        );
    } else if p.surge_factor > MAX_SURGE_FACTOR {
        e.add(
            "policy.surgeFactor",
            format!("({}) is above {MAX_SURGE_FACTOR}", p.surge_factor),
        );
    }
    for (i, d) in p.system_deployments.iter().enumerate() {
        e.rule(
            format!("policy.systemDeployments[{i}].namespace"),
            rules::dns_label(&d.namespace),
        );
        e.rule(
            format!("policy.systemDeployments[{i}].name"),
            rules::dns_subdomain(&d.name),
        );
    }
    for (list, field) in [
        (&p.namespaces.include, "include"),
        (&p.namespaces.exclude, "exclude"),
    ] {
        for (i, ns) in list.iter().enumerate() {
            e.rule(
                format!("policy.namespaces.{field}[{i}]"),
                rules::dns_label(ns),
            );
        }
    }
    for ns in p
        .namespaces
        .include
        .iter()
        .filter(|n| p.namespaces.exclude.contains(n))
    {
        e.add(
            "policy.namespaces",
            format!("lists {ns} in both include and exclude"),
        );
    }
    e.rule(
        "policy.optOutAnnotation",
        rules::label_key(&p.opt_out_annotation),
    );
    let lb_ok = p
        .lb_drain_seconds_override
        .is_none_or(|s| s <= MAX_LB_DRAIN_SECS);
    if !lb_ok {
        e.add(
            "policy.lbDrainSecondsOverride",
            format!(
                "({}) is above {MAX_LB_DRAIN_SECS}",
                p.lb_drain_seconds_override.unwrap_or_default()
            ),
        );
    }
    validate_jobs(p, lb_ok, e);
    if p.drain_deadline_seconds < MIN_DRAIN_DEADLINE_SECS {
        e.add(
            "policy.drainDeadlineSeconds",
            format!(
                "({}) must be at least {MIN_DRAIN_DEADLINE_SECS}",
                p.drain_deadline_seconds
            ),
        );
    } else if lb_ok && p.drain_deadline_seconds > max_drain_deadline_secs(p) {
        // Every loop has a deadline; together with the drain's and the operator's they must
        // end before the state machine's TimeoutSeconds, or a timeout would cut a rollback.
        let operator = if p.on_pdb_blocked == super::OnPdbBlocked::WaitForOperator {
            " (onPdbBlocked waitForOperator adds a day for the operator)"
        } else {
            ""
        };
        e.add(
            "policy.drainDeadlineSeconds",
            format!(
                "({}) does not fit in the execution's {EXECUTION_TIMEOUT_SECS} s timeout with the \
                 other waits{operator}: at most {} with this policy",
                p.drain_deadline_seconds,
                max_drain_deadline_secs(p)
            ),
        );
    }
}

fn validate_jobs(p: &super::Policy, lb_ok: bool, e: &mut Errors) {
    let j = &p.jobs;
    if j.mode == super::JobMode::WaitToFinish {
        let max = max_drain_deadline_secs(p);
        if j.finish_within_seconds < MIN_DRAIN_DEADLINE_SECS {
            e.add(
                "policy.jobs.finishWithinSeconds",
                format!(
                    "({}) must be at least {MIN_DRAIN_DEADLINE_SECS}",
                    j.finish_within_seconds
                ),
            );
        } else if lb_ok && j.finish_within_seconds > max {
            e.add(
                "policy.jobs.finishWithinSeconds",
                format!(
                    "({}) does not fit in the execution's {EXECUTION_TIMEOUT_SECS} s timeout with \
                     the other waits: at most {max} with this policy",
                    j.finish_within_seconds
                ),
            );
        }
    }
    let Some(sel) = &j.selector else { return };
    if sel.is_empty() {
        e.add(
            "policy.jobs.selector",
            "is empty, and an empty selector matches every pod: give matchLabels or matchExpressions",
        );
    }
    for (k, v) in &sel.match_labels {
        e.rule(
            format!("policy.jobs.selector.matchLabels.{k}"),
            rules::label_key(k),
        );
        e.rule(
            format!("policy.jobs.selector.matchLabels.{k}"),
            rules::label_value(v),
        );
    }
    for (i, r) in sel.match_expressions.iter().enumerate() {
        let field = format!("policy.jobs.selector.matchExpressions[{i}]");
        e.rule(format!("{field}.key"), rules::label_key(&r.key));
        // As the API server's ValidateLabelSelectorRequirement.
        use crate::model::SelectorOperator as Op;
        match r.operator {
            Op::In | Op::NotIn if r.values.is_empty() => {
                e.add(
                    format!("{field}.values"),
                    "must be non-empty for In and NotIn",
                );
            }
            Op::Exists | Op::DoesNotExist if !r.values.is_empty() => {
                e.add(
                    format!("{field}.values"),
                    "must be empty for Exists and DoesNotExist",
                );
            }
            _ => {}
        }
        for (n, v) in r.values.iter().enumerate() {
            e.rule(format!("{field}.values[{n}]"), rules::label_value(v));
        }
    }
}
