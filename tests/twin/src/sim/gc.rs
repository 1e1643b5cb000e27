//! Garbage collection: dependents whose controller is gone are deleted (background
//! propagation, as the garbage collector does after `kubectl delete deployment`).

use std::collections::HashSet;

use super::podutil::{controller_of, is_terminating, key};
use super::runner::Ctx;
use crate::store::{DeleteOptions, Resource};

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let c = ctx.cache;
    let uids = |metas: Vec<Option<&String>>| -> HashSet<String> {
        metas.into_iter().flatten().cloned().collect()
    };
    let deployments = uids(
        c.deployments
            .values()
            .map(|d| d.metadata.uid.as_ref())
            .collect(),
    );
    let replicasets = uids(
        c.replicasets
            .values()
            .map(|d| d.metadata.uid.as_ref())
            .collect(),
    );
    let statefulsets = uids(
        c.statefulsets
            .values()
            .map(|d| d.metadata.uid.as_ref())
            .collect(),
    );
    let daemonsets = uids(
        c.daemonsets
            .values()
            .map(|d| d.metadata.uid.as_ref())
            .collect(),
    );
    let jobs = uids(c.jobs.values().map(|d| d.metadata.uid.as_ref()).collect());

    for rs in c.replicasets.values() {
        if let Some(owner) = controller_of(&rs.metadata)
            && owner.kind == "Deployment"
            && !deployments.contains(&owner.uid)
        {
            let (ns, name) = key(&rs.metadata);
            let _ = ctx
                .store
                .delete(Resource::ReplicaSet, &ns, &name, &DeleteOptions::default());
        }
    }
    for pod in c.pods.values().filter(|p| !is_terminating(p)) {
        let Some(owner) = controller_of(&pod.metadata) else {
            continue;
        };
        let alive = match owner.kind.as_str() {
            "ReplicaSet" => replicasets.contains(&owner.uid),
            "StatefulSet" => statefulsets.contains(&owner.uid),
            "DaemonSet" => daemonsets.contains(&owner.uid),
            "Job" => jobs.contains(&owner.uid),
            _ => true,
        };
        if !alive {
            let (ns, name) = key(&pod.metadata);
            let _ = ctx
                .store
                .delete(Resource::Pod, &ns, &name, &DeleteOptions::default());
        }
    }
}
