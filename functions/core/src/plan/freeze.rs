//! Step 5: freeze the autoscalers, and its undo.
//!
//! Cluster Autoscaler is kept off the old group by pinning min = max = desired (and, on a
//! self-managed group, removing its auto-discovery tags), and off the new nodes by the
//! scale-down-disabled annotation. HPAs get `minReplicas` raised to the surge count, or they
//! would scale the surge straight back. Every original goes on the object first.

use std::collections::{BTreeMap, BTreeSet};

use crate::marks;
use crate::model::{AsgInfo, HpaView, NodeView, Scaling, WorkloadRef, WorkloadView};
use crate::plan::action::{Action, set};
use crate::plan::newgroup::client_request_token;
use crate::plan::surge::original_replicas;
use crate::ports::HpaPatch;
use crate::request::Policy;
use crate::state::Originals;

/// `min/max/desired`, as stored in [`marks::ORIGINAL_SCALING_TAG`].
pub fn format_scaling(s: Scaling) -> String {
    format!("{}/{}/{}", s.min, s.max, s.desired)
}

pub fn parse_scaling(s: &str) -> Option<Scaling> {
    let mut it = s.split('/').map(|p| p.parse::<i32>().ok());
    let (min, max, desired) = (it.next()??, it.next()??, it.next()??);
    it.next().is_none().then_some(Scaling { min, max, desired })
}

/// The pinned size: nothing to add, nothing to remove.
pub fn pinned(current: Scaling) -> Scaling {
    Scaling {
        min: current.desired,
        max: current.desired.max(1),
        desired: current.desired,
    }
}

/// Pin a managed old group. Returns the actions and the original to keep in the state.
pub fn plan_pin_managed(
    name: &str,
    arn: &str,
    current: Scaling,
    tags: &BTreeMap<String, String>,
    execution: &str,
) -> (Vec<Action>, Scaling) {
    let original = tags
        .get(marks::ORIGINAL_SCALING_TAG)
        .and_then(|t| parse_scaling(t))
        .unwrap_or(current);
    let mut actions = Vec::new();
    if !tags.contains_key(marks::ORIGINAL_SCALING_TAG) {
        actions.push(Action::TagResource {
            arn: arn.to_string(),
            tags: [
                (
                    marks::ORIGINAL_SCALING_TAG.to_string(),
                    format_scaling(original),
                ),
                (marks::EXECUTION.to_string(), execution.to_string()),
            ]
            .into(),
        });
    }
    if current != pinned(current) {
        actions.push(Action::UpdateNodegroupScaling {
            name: name.to_string(),
            scaling: pinned(current),
            client_request_token: client_request_token(execution, "pin-old-group"),
        });
    }
    (actions, original)
}

/// Pin self-managed old Auto Scaling groups, suspend the processes that would replace nodes, and
/// take them out of Cluster Autoscaler's auto-discovery. Fills `originals`.
pub fn plan_pin_asgs(
    asgs: &[AsgInfo],
    cluster: &str,
    execution: &str,
    originals: &mut Originals,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let ca_keys = [
        marks::CA_ENABLED_TAG.to_string(),
        marks::ca_cluster_tag(cluster),
    ];
    for asg in asgs {
        let original = asg
            .tags
            .get(marks::ORIGINAL_SCALING_TAG)
            .and_then(|t| parse_scaling(t))
            .unwrap_or(asg.scaling);
        originals.old_group_scaling.get_or_insert(original);
        let ca_present: Vec<(&String, &String)> = asg
            .tags
            .iter()
            .filter(|(k, _)| ca_keys.contains(k))
            .collect();
        let recorded_ca = asg.tags.get(marks::ORIGINAL_CA_TAGS_TAG);
        let ca_originals: BTreeMap<String, Option<String>> = match recorded_ca {
            Some(rec) => parse_tag_list(rec),
            None => ca_present
                .iter()
                .map(|(k, v)| ((*k).clone(), Some((*v).clone())))
                .collect(),
        };
        if !ca_originals.is_empty() {
            originals
                .autoscaler_tags
                .entry(asg.name.clone())
                .or_insert_with(|| ca_originals.clone());
        }
        let suspended_before: Vec<String> = originals
            .suspended_processes
            .entry(asg.name.clone())
            .or_insert_with(|| asg.suspended_processes.clone())
            .clone();

        let mut tags = BTreeMap::new();
        if !asg.tags.contains_key(marks::ORIGINAL_SCALING_TAG) {
            tags.insert(
                marks::ORIGINAL_SCALING_TAG.to_string(),
                format_scaling(original),
            );
        }
        if recorded_ca.is_none() && !ca_present.is_empty() {
            tags.insert(
                marks::ORIGINAL_CA_TAGS_TAG.to_string(),
                format_tag_list(&ca_originals),
            );
        }
        if !tags.is_empty() {
            tags.insert(marks::EXECUTION.to_string(), execution.to_string());
            actions.push(Action::TagAsg {
                name: asg.name.clone(),
                tags,
            });
        }
        if !ca_present.is_empty() {
            actions.push(Action::UntagAsg {
                name: asg.name.clone(),
                keys: ca_present.iter().map(|(k, _)| (*k).clone()).collect(),
            });
        }
        let to_suspend: Vec<String> = marks::SUSPENDED_PROCESSES
            .iter()
            .map(|p| p.to_string())
            .filter(|p| !asg.suspended_processes.contains(p) && !suspended_before.contains(p))
            .collect();
        if !to_suspend.is_empty() {
            actions.push(Action::SuspendProcesses {
                name: asg.name.clone(),
                processes: to_suspend,
            });
        }
        if asg.scaling != pinned(asg.scaling) {
            actions.push(Action::UpdateAsgSize {
                name: asg.name.clone(),
                scaling: pinned(asg.scaling),
            });
        }
    }
    actions
}

fn format_tag_list(tags: &BTreeMap<String, Option<String>>) -> String {
    tags.iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(",")
}

fn parse_tag_list(s: &str) -> BTreeMap<String, Option<String>> {
    s.split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), Some(v.to_string())))
        .collect()
}

/// Keep Cluster Autoscaler from removing new nodes while the migration runs.
pub fn plan_protect_new_nodes(new_nodes: &[NodeView], execution: &str) -> Vec<Action> {
    new_nodes
        .iter()
        .filter(|n| !n.annotations.contains_key(marks::CA_SCALE_DOWN_DISABLED))
        .map(|n| Action::PatchNodeAnnotations {
            node: n.name.clone(),
            annotations: set(&[
                (marks::CA_SCALE_DOWN_DISABLED, "true".to_string()),
                (marks::SCALE_DOWN_DISABLED_BY_NGM, "true".to_string()),
                (marks::EXECUTION, execution.to_string()),
            ]),
        })
        .collect()
}

/// The HPA's `minReplicas` before ngm, from its annotation or its spec (`None` = unset).
pub fn original_hpa(h: &HpaView) -> (Option<i32>, i32) {
    let min = match h
        .annotations
        .get(marks::ORIGINAL_HPA_MIN)
        .map(String::as_str)
    {
        Some(marks::UNSET) => None,
        Some(v) => v.parse().ok().or(h.min_replicas),
        None => h.min_replicas,
    };
    let max = h
        .annotations
        .get(marks::ORIGINAL_HPA_MAX)
        .and_then(|v| v.parse().ok())
        .unwrap_or(h.max_replicas);
    (min, max)
}

/// Raise the HPAs of affected Deployments so they keep the surge.
pub fn plan_freeze_hpas(
    hpas: &[HpaView],
    workloads: &[WorkloadView],
    affected: &BTreeSet<WorkloadRef>,
    policy: &Policy,
    execution: &str,
) -> Vec<Action> {
    let mut actions = Vec::new();
    for h in hpas {
        let Some(target) = h.target().filter(|t| affected.contains(t)) else {
            continue;
        };
        let Some(w) = workloads.iter().find(|w| w.workload_ref() == target) else {
            continue;
        };
        // Raising minReplicas makes the HPA scale the Deployment at once, so its replica
        // count before ngm must be on it first: surge and rollback read it from there.
        if !w.annotations.contains_key(marks::ORIGINAL_REPLICAS) {
            actions.push(Action::AnnotateWorkload {
                workload: w.workload_ref(),
                annotations: set(&[
                    (marks::ORIGINAL_REPLICAS, w.replicas.to_string()),
                    (marks::EXECUTION, execution.to_string()),
                ]),
            });
        }
        let surge = policy.surge_replicas(original_replicas(w));
        let (orig_min, orig_max) = original_hpa(h);
        let min = orig_min.unwrap_or(1).max(surge);
        let max = orig_max.max(min);
        let annotated = h.annotations.get(marks::EXECUTION).map(String::as_str) == Some(execution)
            && h.annotations.contains_key(marks::ORIGINAL_HPA_MIN);
        if annotated && h.min_replicas == Some(min) && h.max_replicas == max {
            continue;
        }
        let mut patch = HpaPatch {
            min_replicas: (h.min_replicas != Some(min)).then_some(Some(min)),
            max_replicas: (h.max_replicas != max).then_some(max),
            annotations: Default::default(),
        };
        if !annotated {
            patch.annotations = set(&[
                (
                    marks::ORIGINAL_HPA_MIN,
                    orig_min.map_or(marks::UNSET.to_string(), |m| m.to_string()),
                ),
                (marks::ORIGINAL_HPA_MAX, orig_max.to_string()),
                (marks::EXECUTION, execution.to_string()),
            ]);
        }
        actions.push(Action::PatchHpa {
            namespace: h.namespace.clone(),
            name: h.name.clone(),
            patch,
        });
    }
    actions
}

/// Put one HPA back as it was and drop ngm's annotations; `None` when it carries none.
pub fn restore_hpa(h: &HpaView) -> Option<Action> {
    if !h.annotations.contains_key(marks::ORIGINAL_HPA_MIN) {
        return None;
    }
    let (min, max) = original_hpa(h);
    let patch = HpaPatch {
        min_replicas: (h.min_replicas != min).then_some(min),
        max_replicas: (h.max_replicas != max).then_some(max),
        annotations: crate::plan::action::remove(&[
            marks::ORIGINAL_HPA_MIN,
            marks::ORIGINAL_HPA_MAX,
            marks::EXECUTION,
        ]),
    };
    Some(Action::PatchHpa {
        namespace: h.namespace.clone(),
        name: h.name.clone(),
        patch,
    })
}

/// Undo [`plan_pin_asgs`] on Auto Scaling groups that survive (rollback).
pub fn plan_unpin_asgs(asgs: &[AsgInfo], originals: &Originals) -> Vec<Action> {
    let mut actions = Vec::new();
    for asg in asgs {
        let scaling = asg
            .tags
            .get(marks::ORIGINAL_SCALING_TAG)
            .and_then(|t| parse_scaling(t))
            .or(originals.old_group_scaling);
        if let Some(s) = scaling.filter(|s| *s != asg.scaling) {
            actions.push(Action::UpdateAsgSize {
                name: asg.name.clone(),
                scaling: s,
            });
        }
        let before = originals
            .suspended_processes
            .get(&asg.name)
            .cloned()
            .unwrap_or_default();
        let resume: Vec<String> = marks::SUSPENDED_PROCESSES
            .iter()
            .map(|p| p.to_string())
            .filter(|p| asg.suspended_processes.contains(p) && !before.contains(p))
            .collect();
        if !resume.is_empty() {
            actions.push(Action::ResumeProcesses {
                name: asg.name.clone(),
                processes: resume,
            });
        }
        let ca: BTreeMap<String, Option<String>> = match asg.tags.get(marks::ORIGINAL_CA_TAGS_TAG) {
            Some(rec) => parse_tag_list(rec),
            None => originals
                .autoscaler_tags
                .get(&asg.name)
                .cloned()
                .unwrap_or_default(),
        };
        let retag: BTreeMap<String, String> = ca
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v)))
            .filter(|(k, v)| asg.tags.get(k) != Some(v))
            .collect();
        if !retag.is_empty() {
            actions.push(Action::TagAsg {
                name: asg.name.clone(),
                tags: retag,
            });
        }
        let ours: Vec<String> = [
            marks::ORIGINAL_SCALING_TAG,
            marks::ORIGINAL_CA_TAGS_TAG,
            marks::EXECUTION,
        ]
        .into_iter()
        .filter(|k| asg.tags.contains_key(*k))
        .map(String::from)
        .collect();
        if !ours.is_empty() {
            actions.push(Action::UntagAsg {
                name: asg.name.clone(),
                keys: ours,
            });
        }
    }
    actions
}

/// Undo [`plan_pin_managed`] on a managed group that survives (rollback).
pub fn plan_unpin_managed(
    name: &str,
    arn: &str,
    current: Scaling,
    tags: &BTreeMap<String, String>,
    originals: &Originals,
    execution: &str,
) -> Vec<Action> {
    let mut actions = Vec::new();
    let original = tags
        .get(marks::ORIGINAL_SCALING_TAG)
        .and_then(|t| parse_scaling(t))
        .or(originals.old_group_scaling);
    if let Some(s) = original.filter(|s| *s != current) {
        actions.push(Action::UpdateNodegroupScaling {
            name: name.to_string(),
            scaling: s,
            client_request_token: client_request_token(execution, "unpin-old-group"),
        });
    }
    let ours: Vec<String> = [marks::ORIGINAL_SCALING_TAG, marks::EXECUTION]
        .into_iter()
        .filter(|k| tags.contains_key(*k))
        .map(String::from)
        .collect();
    if !ours.is_empty() {
        actions.push(Action::UntagResource {
            arn: arn.to_string(),
            keys: ours,
        });
    }
    actions
}

#[cfg(test)]
mod tests;
