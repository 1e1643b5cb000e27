//! The ReplicaSet controller: keeps `spec.replicas` active pods, deleting surplus pods in
//! [`ranking`](super::ranking) order with a graceful delete (never an eviction: PDBs do not
//! apply to scale-down), and keeps `status` current.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::objects::{controller_ref, pod_from_template};
use super::podutil::{controller_of, is_active, is_ready, key, ready_since};
use super::ranking::pods_to_delete;
use super::runner::Ctx;
use crate::clock::secs_delta;
use crate::store::{DeleteOptions, Resource};

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let sets: Vec<Arc<ReplicaSet>> = ctx.cache.replicasets.values().cloned().collect();
    for rs in sets {
        if rs.metadata.deletion_timestamp.is_some() {
            continue;
        }
        sync(ctx, &rs);
    }
}

/// Pods of every ReplicaSet that shares `rs`'s Deployment (the "related pods" ranks count).
fn related_pods(ctx: &Ctx<'_>, rs: &ReplicaSet, ns: &str) -> Vec<Arc<Pod>> {
    let Some(deploy) = controller_of(&rs.metadata).map(|o| o.uid.clone()) else {
        return Vec::new();
    };
    ctx.cache
        .replicasets
        .values()
        .filter(|r| r.metadata.namespace.as_deref() == Some(ns))
        .filter(|r| controller_of(&r.metadata).is_some_and(|o| o.uid == deploy))
        .filter_map(|r| r.metadata.uid.as_deref())
        .flat_map(|uid| ctx.owned(uid).iter().cloned())
        .collect()
}

/// Whether a pod counts as available: Ready for at least `minReadySeconds`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: chrono::DateTime<chrono::Utc>) -> bool {
    is_ready(pod)
        && ready_since(pod).is_none_or(|t| t + secs_delta(f64::from(min_ready_seconds)) <= now)
}

fn sync(ctx: &mut Ctx<'_>, rs: &ReplicaSet) {
    let (ns, name) = key(&rs.metadata);
    let uid = rs.metadata.uid.clone().unwrap_or_default();
    let Some(spec) = rs.spec.as_ref() else {
        return;
    };
    let want = spec.replicas.unwrap_or(1).max(0) as usize;
    let owned: Vec<Arc<Pod>> = ctx.owned(&uid).to_vec();
    let active: Vec<&Pod> = owned
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| is_active(p))
        .collect();
    if active.len() < want {
        if let Some(template) = &spec.template {
            let owner = controller_ref("apps/v1", "ReplicaSet", &rs.metadata);
            for _ in active.len()..want {
                let pod =
                    pod_from_template(template, &ns, None, &format!("{name}-"), owner.clone(), &[]);
                let _ = ctx.store.create(Resource::Pod, &ns, pod);
            }
        }
    } else if active.len() > want {
        let related_arcs = related_pods(ctx, rs, &ns);
        let related: Vec<&Pod> = if related_arcs.is_empty() {
            active.clone()
        } else {
            related_arcs.iter().map(|p| p.as_ref()).collect()
        };
        for victim in pods_to_delete(&active, &related, active.len() - want, ctx.now) {
            let (pns, pname) = key(&victim.metadata);
            let opts = DeleteOptions {
                uid: victim.metadata.uid.clone(),
                ..DeleteOptions::default()
            };
            let _ = ctx.store.delete(Resource::Pod, &pns, &pname, &opts);
        }
    }

    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let ready = active.iter().filter(|p| is_ready(p)).count();
    let available = active
        .iter()
        .filter(|p| is_available(p, min_ready, ctx.now))
        .count();
    if available < ready && min_ready > 0 {
        ctx.wake_in(1.0);
    }
    let status = json!({
        "replicas": active.len(),
        "fullyLabeledReplicas": active.len(),
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": rs.metadata.generation.unwrap_or(1),
    });
    let _ = ctx.store.mutate(Resource::ReplicaSet, &ns, &name, |v| {
        let conditions = v.pointer("/status/conditions").cloned();
        v["status"] = status;
        if let Some(c) = conditions {
            v["status"]["conditions"] = c;
        }
        Ok(())
    });
}
