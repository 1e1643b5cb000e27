//! The Deployment controller: one ReplicaSet per pod-template hash, rolling updates within
//! maxSurge/maxUnavailable ([`workloads::rolling_step`](super::workloads::rolling_step)),
//! plain scaling, and the status `kubectl rollout status` reads.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, ReplicaSet};
use serde_json::{Value, json};

use super::objects::{controller_ref, set_condition, template_hash};
use super::podutil::{controller_of, key};
use super::runner::Ctx;
use super::workloads::{RolloutState, fenceposts, rolling_step, scaled};
use crate::store::Resource;

/// The label that ties a ReplicaSet and its pods to one template.
pub const TEMPLATE_HASH_LABEL: &str = "pod-template-hash";

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let deployments: Vec<Arc<Deployment>> = ctx.cache.deployments.values().cloned().collect();
    for d in deployments {
        if d.metadata.deletion_timestamp.is_none() {
            sync(ctx, &d);
        }
    }
}

fn status_i32(
    rs: &ReplicaSet,
    f: impl Fn(&k8s_openapi::api::apps::v1::ReplicaSetStatus) -> Option<i32>,
) -> i32 {
    rs.status.as_ref().and_then(f).unwrap_or(0)
}

fn spec_replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0)
}

fn new_replicaset(d: &Deployment, spec: &DeploymentSpec, hash: &str) -> Value {
    let (ns, name) = key(&d.metadata);
    let mut template = serde_json::to_value(&spec.template).unwrap_or(json!({}));
    template["metadata"]["labels"][TEMPLATE_HASH_LABEL] = json!(hash);
    let mut selector = serde_json::to_value(&spec.selector).unwrap_or(json!({}));
    selector["matchLabels"][TEMPLATE_HASH_LABEL] = json!(hash);
    let mut labels = spec
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    labels.insert(TEMPLATE_HASH_LABEL.into(), hash.into());
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{name}-{hash}"),
            "namespace": ns,
            "labels": labels,
            "annotations": { "deployment.kubernetes.io/revision": "1" },
            "ownerReferences": [controller_ref("apps/v1", "Deployment", &d.metadata)],
        },
        "spec": {
            "replicas": 0,
            "minReadySeconds": spec.min_ready_seconds.unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    })
}

fn set_replicas(ctx: &Ctx<'_>, rs: &ReplicaSet, replicas: i32) {
    if spec_replicas(rs) == replicas {
        return;
    }
    let (ns, name) = key(&rs.metadata);
    let _ = ctx.store.mutate(Resource::ReplicaSet, &ns, &name, |v| {
        v["spec"]["replicas"] = json!(replicas);
        Ok(())
    });
}

fn sync(ctx: &mut Ctx<'_>, d: &Deployment) {
    let (ns, name) = key(&d.metadata);
    let uid = d.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = d.spec.as_ref() else {
        return;
    };
    let hash = template_hash(&spec.template);
    let mut owned: Vec<Arc<ReplicaSet>> = ctx
        .cache
        .replicasets
        .values()
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|r| controller_of(&r.metadata).is_some_and(|o| o.uid == uid))
        .cloned()
        .collect();
    owned.sort_by_key(|r| r.metadata.creation_timestamp.clone());
    let is_new = |r: &ReplicaSet| {
        r.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(TEMPLATE_HASH_LABEL))
            .map(String::as_str)
            == Some(hash.as_str())
    };
    let Some(new_rs) = owned.iter().find(|r| is_new(r)).cloned() else {
        let _ = ctx
            .store
            .create(Resource::ReplicaSet, &ns, new_replicaset(d, spec, &hash));
        return;
    };
    let old: Vec<Arc<ReplicaSet>> = owned.iter().filter(|r| !is_new(r)).cloned().collect();
    let replicas = spec.replicas.unwrap_or(1).max(0);
    let paused = spec.paused.unwrap_or(false);
    let strategy = spec.strategy.as_ref();
    let recreate = strategy.and_then(|s| s.type_.as_deref()) == Some("Recreate");
    let ru = strategy.and_then(|s| s.rolling_update.as_ref());
    let (max_surge, max_unavailable) = fenceposts(
        scaled(ru.and_then(|r| r.max_surge.as_ref()), 25, replicas, true),
        scaled(
            ru.and_then(|r| r.max_unavailable.as_ref()),
            25,
            replicas,
            false,
        ),
    );

    if !paused {
        if recreate {
            let old_pods: usize = old
                .iter()
                .map(|r| status_i32(r, |s| Some(s.replicas)) as usize)
                .sum();
            for r in &old {
                set_replicas(ctx, r, 0);
            }
            if old_pods == 0 {
                set_replicas(ctx, &new_rs, replicas);
            }
        } else {
            let state = RolloutState {
                replicas,
                max_surge,
                max_unavailable,
                new_spec: spec_replicas(&new_rs),
                new_available: status_i32(&new_rs, |s| s.available_replicas),
                old: old
                    .iter()
                    .map(|r| (spec_replicas(r), status_i32(r, |s| s.available_replicas)))
                    .collect(),
            };
            let (new_target, old_targets) = rolling_step(&state);
            set_replicas(ctx, &new_rs, new_target);
            for (r, t) in old.iter().zip(old_targets) {
                set_replicas(ctx, r, t);
            }
        }
    }

    let all = owned.iter();
    let sum = |f: &dyn Fn(&ReplicaSet) -> i32| all.clone().map(|r| f(r)).sum::<i32>();
    let total = sum(&|r| status_i32(r, |s| Some(s.replicas)));
    let ready = sum(&|r| status_i32(r, |s| s.ready_replicas));
    let available = sum(&|r| status_i32(r, |s| s.available_replicas));
    let updated = status_i32(&new_rs, |s| Some(s.replicas));
    let complete = updated == replicas && total == replicas && available == replicas;
    let now = ctx.now;
    let _ = ctx.store.mutate(Resource::Deployment, &ns, &name, |v| {
        let mut status = json!({
            "observedGeneration": d.metadata.generation.unwrap_or(1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "unavailableReplicas": (replicas - available).max(0),
            "conditions": v.pointer("/status/conditions").cloned().unwrap_or(json!([])),
        });
        let mut holder = json!({ "status": status.take() });
        let has_min = available >= replicas - max_unavailable;
        set_condition(
            &mut holder,
            "Available",
            if has_min { "True" } else { "False" },
            Some(if has_min {
                "MinimumReplicasAvailable"
            } else {
                "MinimumReplicasUnavailable"
            }),
            Some(if has_min {
                "Deployment has minimum availability."
            } else {
                "Deployment does not have minimum availability."
            }),
            now,
        );
        let rs_name = new_rs.metadata.name.clone().unwrap_or_default();
        let (reason, message) = if complete {
            (
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{rs_name}\" has successfully progressed."),
            )
        } else {
            (
                "ReplicaSetUpdated",
                format!("ReplicaSet \"{rs_name}\" is progressing."),
            )
        };
        set_condition(
            &mut holder,
            "Progressing",
            "True",
            Some(reason),
            Some(&message),
            now,
        );
        v["status"] = holder["status"].take();
        Ok(())
    });
}
