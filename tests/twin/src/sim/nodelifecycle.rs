//! What happens to a Node whose EC2 instance terminated. The kubelet stops posting status, and
//! nothing in the API changes until the node lifecycle controller notices:
//! - after `--node-monitor-grace-period` (50 s, kube-controller-manager's default since
//!   Kubernetes 1.32; kubernetes/kubernetes#121793) it sets the node's Ready condition to
//!   Unknown and every pod on it to not Ready (`pkg/controller/nodelifecycle/
//!   node_lifecycle_controller.go`, `MarkPodsNotReady` in `pkg/controller/util/node/
//!   controller_utils.go`); only then do the EndpointSlices drop those pods;
//! - the cloud node lifecycle controller, every `--node-monitor-period` (5 s), deletes a node
//!   that is not Ready and whose instance no longer exists (`k8s.io/cloud-provider/controllers/
//!   nodelifecycle/node_lifecycle_controller.go`, `InstanceExistsByProviderID` in
//!   cloud-provider-aws);
//! - the pod garbage collector deletes pods bound to a node that has been gone for its 40 s
//!   quarantine (`pkg/controller/podgc/gc_controller.go`, `gcOrphaned`, `quarantineTime`).
//!
//! Until then the pods are Ready endpoints, and requests sent to them time out.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::objects::set_condition;
use super::podutil::{key, node_name};
use super::runner::Ctx;
use crate::clock::secs_delta;
use crate::store::Resource;

/// kube-controller-manager `--node-monitor-grace-period`.
pub const NODE_MONITOR_GRACE_SECONDS: f64 = 50.0;
/// `--node-monitor-period`, the cloud node lifecycle controller's period.
pub const NODE_MONITOR_PERIOD_SECONDS: f64 = 5.0;
/// The pod garbage collector's quarantine for pods of a deleted node.
pub const POD_GC_QUARANTINE_SECONDS: f64 = 40.0;

/// When the pod garbage collector removes the pods of a node deleted at `deleted_at`.
pub fn orphans_removed_at(deleted_at: DateTime<Utc>) -> DateTime<Utc> {
    deleted_at + secs_delta(POD_GC_QUARANTINE_SECONDS)
}

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let dead = ctx.store.dead_instances().snapshot();
    let now = ctx.now;
    for (node, d) in dead {
        if d.deleted_at.is_some() {
            continue;
        }
        if ctx.cache.nodes.get("", &node).is_none() {
            // Deleted by someone else meanwhile.
            ctx.store
                .dead_instances()
                .update(&node, |x| x.deleted_at = Some(now));
            ctx.wake_at(orphans_removed_at(now));
            continue;
        }
        let not_ready_due = d.terminated_at + secs_delta(NODE_MONITOR_GRACE_SECONDS);
        if now < not_ready_due {
            ctx.wake_at(not_ready_due);
            continue;
        }
        let not_ready_at = match d.not_ready_at {
            Some(t) => t,
            None => {
                mark_not_ready(ctx, &node);
                ctx.store
                    .dead_instances()
                    .update(&node, |x| x.not_ready_at = Some(now));
                now
            }
        };
        let delete_due = not_ready_at + secs_delta(NODE_MONITOR_PERIOD_SECONDS);
        if now < delete_due {
            ctx.wake_at(delete_due);
            continue;
        }
        ctx.store.remove_now(Resource::Node, "", &node);
        ctx.store
            .dead_instances()
            .update(&node, |x| x.deleted_at = Some(now));
        ctx.wake_at(orphans_removed_at(now));
    }
}

/// The node's Ready condition goes Unknown, and each of its pods' Ready goes False.
fn mark_not_ready(ctx: &mut Ctx<'_>, node: &str) {
    let now = ctx.now;
    let ts = crate::store::timestamp(now);
    let _ = ctx.store.mutate(Resource::Node, "", node, |n| {
        if let Some(conds) = n
            .pointer_mut("/status/conditions")
            .and_then(|c| c.as_array_mut())
        {
            for c in conds {
                c["status"] = json!("Unknown");
                c["reason"] = json!("NodeStatusUnknown");
                c["message"] = json!("Kubelet stopped posting node status.");
                c["lastTransitionTime"] = json!(ts);
            }
        }
        Ok(())
    });
    let pods: Vec<(String, String)> = ctx
        .cache
        .pods
        .values()
        .filter(|p| node_name(p) == Some(node))
        .map(|p| key(&p.metadata))
        .collect();
    for (ns, name) in pods {
        let _ = ctx.store.mutate(Resource::Pod, &ns, &name, |v| {
            set_condition(v, "Ready", "False", None, None, now);
            Ok(())
        });
    }
}

/// Whether every terminated instance's Node has been deleted and its pods collected: the
/// cluster's own controllers have nothing left to do about them.
pub fn settled(store: &crate::store::Store) -> bool {
    let now = store.clock().now();
    store
        .dead_instances()
        .snapshot()
        .values()
        .all(|d| d.deleted_at.is_some_and(|t| now >= orphans_removed_at(t)))
}
