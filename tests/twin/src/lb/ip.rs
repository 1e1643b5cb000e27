//! The AWS Load Balancer Controller's IP targets: the pods themselves are a target group's
//! targets, registered and deregistered by the controller's TargetGroupBinding reconciler.
//!
//! Upstream behaviours followed (kubernetes-sigs/aws-load-balancer-controller):
//! - every target group the controller makes (a Service with `aws-load-balancer-type:
//!   external`, an Ingress backend) has a TargetGroupBinding named like the target group,
//!   `k8s-<namespace, 8>-<service, 8>-<hash, 10>`, in the Service's namespace
//!   (`pkg/ingress/model_build_target_group.go`, `pkg/deploy/elbv2/target_group_binding_manager.go`);
//! - the reconciler registers the Service's ready endpoints, and the not-ready ones whose
//!   containers are ready and that are not terminating (a pod held back by its readiness gate);
//!   terminating endpoints are deregistered (`pkg/backend/endpoint_resolver.go`);
//! - it compares them with the target group's targets, draining ones left out, so a target
//!   someone else deregistered is registered again; and it acts only when the endpoints change
//!   ("Skipping targetgroupbinding reconcile" when nothing changed,
//!   `pkg/targetgroupbinding/resource_manager.go`);
//! - it sets a pod's `target-health.elbv2.k8s.aws/<binding>` condition True once its target is
//!   healthy (`calculateReadinessGateTransition`), and does not look at targets already healthy
//!   again (`targets_manager.go`, `refreshUnhealthyTargets`).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::world::{EndpointView, World};

/// The readiness gate condition type's prefix (`pkg/targetgroupbinding/utils.go`).
pub const READINESS_GATE_PREFIX: &str = "target-health.elbv2.k8s.aws/";

/// The name the controller gives a Service's target group and its TargetGroupBinding:
/// `k8s-%.8s-%.8s-%.10s` of the namespace, the Service and a hash.
pub fn binding_name(ns: &str, svc: &str) -> String {
    let (ns8, svc8, h) = super::aws::name_parts(ns, svc);
    format!("k8s-{ns8}-{svc8}-{:010x}", h & 0xff_ffff_ffff)
}

/// The readiness gate of the pods behind a Service's IP target group.
pub fn readiness_gate(ns: &str, svc: &str) -> String {
    format!("{READINESS_GATE_PREFIX}{}", binding_name(ns, svc))
}

/// What the reconciler last acted on: each endpoint as it saw it, with whether its pod's
/// containers were ready (pod events enqueue the binding too).
pub type Seen = Vec<(String, bool, bool, bool)>;

/// The endpoints as the controller sees them at `now` (after its lag), and the targets it
/// wants registered: `(pod uid, pod IP)`.
pub fn wanted(
    world: &World,
    ns: &str,
    svc: &str,
    now: DateTime<Utc>,
) -> (Seen, BTreeMap<String, String>) {
    let view: Vec<EndpointView> =
        world.endpoints_seen(ns, svc, now, world.lag.load_balancer_controller_seconds);
    let mut seen: Seen = Vec::new();
    let mut out = BTreeMap::new();
    for e in &view {
        let pod = world.pods.get(&e.pod_uid);
        let containers = pod.is_some_and(|p| p.containers_ready);
        seen.push((e.pod_uid.clone(), e.ready, e.terminating, containers));
        let node_alive = e
            .node
            .as_deref()
            .is_none_or(|n| !world.dead.contains_key(n));
        let wanted = !e.terminating && node_alive && (e.ready || containers);
        if let Some(ip) = pod.and_then(|p| p.ip.clone()).filter(|_| wanted) {
            out.insert(e.pod_uid.clone(), ip);
        }
    }
    seen.sort();
    (seen, out)
}

/// Whether an IP target passes its health check at `now`: its pod is there, on a live node,
/// its containers ready and its process still taking connections.
pub fn passes(world: &World, uid: &str, now: DateTime<Utc>) -> bool {
    world.pods.get(uid).is_some_and(|p| {
        p.containers_ready
            && p.accepts(now)
            && p.node
                .as_deref()
                .is_none_or(|n| world.nodes.contains_key(n) && !world.dead.contains_key(n))
    })
}

/// The TargetGroupBinding the controller (or the user) made for a Service's target group.
pub fn binding_object(ns: &str, svc: &str, port: i32, target_group_arn: &str) -> Value {
    json!({
        "apiVersion": "elbv2.k8s.aws/v1beta1",
        "kind": "TargetGroupBinding",
        "metadata": { "name": binding_name(ns, svc), "namespace": ns },
        "spec": {
            "serviceRef": { "name": svc, "port": port },
            "targetGroupARN": target_group_arn,
            "targetType": "ip",
        },
    })
}

/// An Ingress of class `alb` with the Service as its default backend, in IP mode.
pub fn ingress_object(ns: &str, svc: &str, port: i32) -> Value {
    json!({
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": svc,
            "namespace": ns,
            "annotations": {
                "alb.ingress.kubernetes.io/target-type": "ip",
                "alb.ingress.kubernetes.io/scheme": "internet-facing",
            },
        },
        "spec": {
            "ingressClassName": "alb",
            "defaultBackend": { "service": { "name": svc, "port": { "number": port } } },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// aws-load-balancer-controller `pkg/ingress/model_build_target_group.go`: target group
    /// (and binding) names are `k8s-%.8s-%.8s-%.10s`.
    #[test]
    fn binding_names_follow_the_controllers_pattern() {
        let n = binding_name("shop-frontend", "checkout-api");
        assert!(n.starts_with("k8s-shopfron-checkout-"), "{n}");
        assert_eq!(n.len(), "k8s-shopfron-checkout-".len() + 10);
        assert_ne!(n, binding_name("shop-frontend", "checkout-apj"));
        assert_eq!(
            readiness_gate("a", "b"),
            format!("target-health.elbv2.k8s.aws/{}", binding_name("a", "b"))
        );
    }
}
