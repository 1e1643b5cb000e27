//! The StatefulSet controller: pods `name-0..n-1`, created and removed in ordinal order
//! ([`workloads::statefulset_actions`](super::workloads::statefulset_actions)), each with
//! its claims from `volumeClaimTemplates` (`<template>-<set>-<ordinal>`), which the scheduler
//! pins to the zone of the first node that runs them.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::objects::{controller_ref, pod_from_template};
use super::podutil::{is_ready, is_terminating, key, phase};
use super::runner::Ctx;
use super::workloads::{OrdinalState, StsAction, statefulset_actions};
use crate::store::{DeleteOptions, Resource};

pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";
pub const POD_INDEX_LABEL: &str = "apps.kubernetes.io/pod-index";

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let sets: Vec<Arc<StatefulSet>> = ctx.cache.statefulsets.values().cloned().collect();
    for s in sets {
        if s.metadata.deletion_timestamp.is_none() {
            sync(ctx, &s);
        }
    }
}

fn ordinal_of(set: &str, pod: &Pod) -> Option<i32> {
    pod.metadata
        .name
        .as_deref()?
        .strip_prefix(set)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

fn state_of(pod: &Pod) -> OrdinalState {
    if is_terminating(pod) {
        OrdinalState::Terminating
    } else if phase(pod) == "Running" && is_ready(pod) {
        OrdinalState::Ready
    } else {
        OrdinalState::NotReady
    }
}

/// The claim a pod of this set mounts for a volume claim template.
pub fn claim_name(template: &str, set: &str, ordinal: i32) -> String {
    format!("{template}-{set}-{ordinal}")
}

fn sync(ctx: &mut Ctx<'_>, s: &StatefulSet) {
    let (ns, name) = key(&s.metadata);
    let uid = s.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = s.spec.as_ref() else {
        return;
    };
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");
    let pods: Vec<Arc<Pod>> = ctx.owned(&uid).to_vec();
    let states: Vec<(i32, OrdinalState)> = pods
        .iter()
        .filter_map(|p| ordinal_of(&name, p).map(|o| (o, state_of(p))))
        .collect();
    for action in statefulset_actions(&states, replicas, parallel) {
        match action {
            StsAction::Create(i) => {
                let pod_name = format!("{name}-{i}");
                let mut pod = pod_from_template(
                    &spec.template,
                    &ns,
                    Some(&pod_name),
                    "",
                    controller_ref("apps/v1", "StatefulSet", &s.metadata),
                    &[
                        (POD_NAME_LABEL, pod_name.clone()),
                        (POD_INDEX_LABEL, i.to_string()),
                    ],
                );
                pod["spec"]["hostname"] = json!(pod_name);
                if let Some(svc) = spec.service_name.as_deref().filter(|s| !s.is_empty()) {
                    pod["spec"]["subdomain"] = json!(svc);
                }
                for t in spec.volume_claim_templates.iter().flatten() {
                    let tname = t.metadata.name.clone().unwrap_or_default();
                    let claim = claim_name(&tname, &name, i);
                    let template = serde_json::to_value(t).unwrap_or_default();
                    super::volumes::ensure_claim(ctx.store, &ns, &claim, &template);
                    let volume =
                        json!({ "name": tname, "persistentVolumeClaim": { "claimName": claim } });
                    match pod["spec"]["volumes"].as_array_mut() {
                        Some(vs) => vs.push(volume),
                        None => pod["spec"]["volumes"] = json!([volume]),
                    }
                }
                let _ = ctx.store.create(Resource::Pod, &ns, pod);
            }
            StsAction::Delete(i) => {
                let _ = ctx.store.delete(
                    Resource::Pod,
                    &ns,
                    &format!("{name}-{i}"),
                    &DeleteOptions::default(),
                );
            }
            StsAction::Wait | StsAction::Nothing => {}
        }
    }
    let current = pods.len();
    let ready = pods
        .iter()
        .filter(|p| is_ready(p) && !is_terminating(p))
        .count();
    let status = json!({
        "observedGeneration": s.metadata.generation.unwrap_or(1),
        "replicas": current,
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": current,
        "updatedReplicas": current,
    });
    let _ = ctx.store.mutate(Resource::StatefulSet, &ns, &name, |v| {
        v["status"] = status;
        Ok(())
    });
}
