//! The scheduler pass: binds every pending pod to the best node
//! ([`scheduling::pick_node`](super::scheduling::pick_node)), accounting each binding before
//! the next so one pass never overcommits a node, and pins the pod's volumes to the zone.
//! A pod that fits nowhere stays Pending with `PodScheduled=False`, reason Unschedulable.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::objects::set_condition;
use super::podutil::{
    controller_of, created, is_terminal, is_terminating, key, node_name, requests,
};
use super::runner::Ctx;
use super::scheduling::{NodeInfo, fits, pick_node, unschedulable_message};
use super::shared::pod_claims;
use super::volumes::{LOCAL_PV_CONFLICT, bind_at_first_consumer};
use crate::store::Resource;

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let mut pending: Vec<Arc<Pod>> = ctx
        .cache
        .pods
        .values()
        .filter(|p| node_name(p).is_none() && !is_terminating(p) && !is_terminal(p))
        .filter(|p| {
            p.spec
                .as_ref()
                .and_then(|s| s.scheduler_name.as_deref())
                .is_none_or(|s| s == "default-scheduler")
        })
        .cloned()
        .collect();
    if pending.is_empty() {
        return;
    }
    // FIFO by creation, as the scheduling queue orders pods of equal priority.
    pending.sort_by_key(|p| created(p));

    let mut nodes: Vec<NodeInfo> = ctx
        .cache
        .nodes
        .values()
        .map(|n| NodeInfo::new((**n).clone()))
        .collect();
    let index: HashMap<String, usize> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.clone(), i))
        .collect();
    let mut siblings: HashMap<(String, String), usize> = HashMap::new();
    // A finished pod holds nothing: the scheduler's pod informer "returns only non-terminal
    // pods" (pkg/scheduler/scheduler.go `newPodInformer`).
    for p in ctx.cache.pods.values().filter(|p| !is_terminal(p)) {
        let Some(node) = node_name(p) else {
            continue;
        };
        if let Some(i) = index.get(node) {
            nodes[*i].add(requests(p));
        }
        if let Some(owner) = controller_of(&p.metadata) {
            *siblings
                .entry((owner.uid.clone(), node.to_string()))
                .or_default() += 1;
        }
    }

    for pod in pending {
        let (ns, name) = key(&pod.metadata);
        let claims = pod_claims(&pod);
        let zones: Vec<String> = claims
            .iter()
            .filter_map(|c| ctx.volumes.zone(&ns, c))
            .collect();
        let now = ctx.now;
        let zone = match zones.as_slice() {
            [] => None,
            [first, rest @ ..] if rest.iter().all(|z| z == first) => Some(first.clone()),
            _ => {
                let _ = ctx.store.mutate(Resource::Pod, &ns, &name, |v| {
                    set_condition(
                        v,
                        "PodScheduled",
                        "False",
                        Some("Unschedulable"),
                        Some("pod's volumes are pinned to different zones"),
                        now,
                    );
                    Ok(())
                });
                continue;
            }
        };
        let owner = controller_of(&pod.metadata)
            .map(|o| o.uid.clone())
            .unwrap_or_default();
        let req = requests(&pod);
        let siblings_on = |node: &str| {
            siblings
                .get(&(owner.clone(), node.to_string()))
                .copied()
                .unwrap_or(0)
        };
        // A claim bound to a local volume holds the pod to that volume's node.
        let local_node = claims.iter().find_map(|c| ctx.volumes.node(&ns, c));
        let picked = match &local_node {
            None => pick_node(&pod, req, &nodes, zone.as_deref(), &siblings_on),
            Some(n) => match index.get(n) {
                Some(&i) => fits(&pod, req, &nodes[i], zone.as_deref())
                    .map(|()| i)
                    .map_err(|why| {
                        unschedulable_message(nodes.len(), &[(why.to_string(), 1)].into())
                    }),
                None => Err(unschedulable_message(
                    nodes.len(),
                    &[(LOCAL_PV_CONFLICT.to_string(), nodes.len())].into(),
                )),
            },
        };
        match picked {
            Ok(i) => {
                let node = nodes[i].name.clone();
                let bound = ctx.store.mutate(Resource::Pod, &ns, &name, |v| {
                    // Another writer may have bound or deleted it meanwhile.
                    if v.pointer("/spec/nodeName")
                        .and_then(|n| n.as_str())
                        .is_some_and(|n| !n.is_empty())
                    {
                        return Ok(());
                    }
                    v["spec"]["nodeName"] = json!(node);
                    set_condition(v, "PodScheduled", "True", None, None, now);
                    Ok(())
                });
                if bound.is_ok() {
                    nodes[i].add(req);
                    if !owner.is_empty() {
                        *siblings.entry((owner.clone(), node.clone())).or_default() += 1;
                    }
                    if let Some(z) = nodes[i].zone() {
                        for c in &claims {
                            bind_at_first_consumer(ctx.store, ctx.volumes, &ns, c, &node, z);
                        }
                    }
                }
            }
            Err(message) => {
                let _ = ctx.store.mutate(Resource::Pod, &ns, &name, |v| {
                    set_condition(
                        v,
                        "PodScheduled",
                        "False",
                        Some("Unschedulable"),
                        Some(&message),
                        now,
                    );
                    Ok(())
                });
            }
        }
    }
}
