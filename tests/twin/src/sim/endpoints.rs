//! The Endpoints and EndpointSlice controllers: for every Service with a selector, the pods
//! it selects that have an IP. EndpointSlice conditions follow upstream: `serving` is the
//! pod's Ready condition, `terminating` is a set `deletionTimestamp`, and `ready` is serving
//! and not terminating, so a pod leaves the ready set the moment its deletion starts.
//! Endpoints (v1) lists ready pods in `addresses`, unready ones in `notReadyAddresses`, and
//! terminating ones not at all.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde_json::{Value, json};

use super::podutil::{ZONE_LABEL, is_ready, is_terminating, key, node_name};
use super::runner::Ctx;
use crate::store::Resource;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let services: Vec<Arc<Service>> = ctx.cache.services.values().cloned().collect();
    for svc in services {
        sync(ctx, &svc);
    }
}

fn selects(selector: &std::collections::BTreeMap<String, String>, pod: &Pod) -> bool {
    let labels = pod.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

fn pod_ip(pod: &Pod) -> Option<&str> {
    pod.status
        .as_ref()?
        .pod_ip
        .as_deref()
        .filter(|ip| !ip.is_empty())
}

/// The container port a service port targets on this pod (named ports resolved).
fn target_port(port: &ServicePort, pod: &Pod) -> i32 {
    match &port.target_port {
        Some(IntOrString::Int(p)) => *p,
        Some(IntOrString::String(name)) => pod
            .spec
            .as_ref()
            .into_iter()
            .flat_map(|s| s.containers.iter())
            .flat_map(|c| c.ports.iter().flatten())
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port)
            .unwrap_or(port.port),
        None => port.port,
    }
}

/// A pod that ended for good is no endpoint (`ShouldPodBeInEndpoints`, k8s.io/endpointslice
/// `utils.go`): Succeeded or Failed under `restartPolicy: Never`, Succeeded under `OnFailure`.
fn finished(pod: &Pod) -> bool {
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    match restart {
        "Never" => matches!(super::podutil::phase(pod), "Succeeded" | "Failed"),
        "OnFailure" => super::podutil::phase(pod) == "Succeeded",
        _ => false,
    }
}

/// `(ip, ready, serving, terminating, pod)` for every selected pod with an IP, by name.
fn endpoints_of<'a>(
    ctx: &'a Ctx<'_>,
    ns: &str,
    selector: &std::collections::BTreeMap<String, String>,
) -> Vec<&'a Arc<Pod>> {
    let mut pods: Vec<&Arc<Pod>> = ctx
        .cache
        .pods
        .items
        .range((ns.to_string(), String::new())..)
        .take_while(|((pns, _), _)| pns == ns)
        .map(|(_, p)| p)
        .filter(|p| selects(selector, p) && pod_ip(p).is_some() && !finished(p))
        .collect();
    pods.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    pods
}

fn sync(ctx: &mut Ctx<'_>, svc: &Service) {
    let (ns, name) = key(&svc.metadata);
    let Some(spec) = svc.spec.as_ref() else {
        return;
    };
    let Some(selector) = spec.selector.as_ref().filter(|s| !s.is_empty()) else {
        return;
    };
    let ports = spec.ports.clone().unwrap_or_default();
    let pods = endpoints_of(ctx, &ns, selector);
    let target_ref = |p: &Pod| json!({ "kind": "Pod", "namespace": ns, "name": p.metadata.name, "uid": p.metadata.uid });

    let first = pods.first().map(|p| p.as_ref());
    let ep_ports: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut v = json!({ "port": first.map(|f| target_port(p, f)).unwrap_or(p.port), "protocol": p.protocol.clone().unwrap_or("TCP".into()) });
            if let Some(n) = &p.name {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    let address = |p: &Pod| {
        let mut a = json!({ "ip": pod_ip(p), "targetRef": target_ref(p) });
        if let Some(n) = node_name(p) {
            a["nodeName"] = json!(n);
        }
        a
    };
    let ready: Vec<Value> = pods
        .iter()
        .filter(|p| is_ready(p) && !is_terminating(p))
        .map(|p| address(p))
        .collect();
    let not_ready: Vec<Value> = pods
        .iter()
        .filter(|p| !is_ready(p) && !is_terminating(p))
        .map(|p| address(p))
        .collect();
    let mut subset = json!({ "ports": ep_ports });
    if !ready.is_empty() {
        subset["addresses"] = json!(ready);
    }
    if !not_ready.is_empty() {
        subset["notReadyAddresses"] = json!(not_ready);
    }
    let subsets = if ready.is_empty() && not_ready.is_empty() {
        json!([])
    } else {
        json!([subset])
    };
    upsert(
        ctx,
        Resource::Endpoints,
        &ns,
        &name,
        json!({
            "apiVersion": "v1", "kind": "Endpoints",
            "metadata": { "name": name, "namespace": ns, "labels": { SERVICE_NAME_LABEL: name } },
            "subsets": subsets,
        }),
        &["subsets"],
    );

    let slice_endpoints: Vec<Value> = pods
        .iter()
        .map(|p| {
            let serving = is_ready(p);
            let terminating = is_terminating(p);
            let mut e = json!({
                "addresses": [pod_ip(p)],
                "conditions": { "ready": serving && !terminating, "serving": serving, "terminating": terminating },
                "targetRef": target_ref(p),
            });
            if let Some(n) = node_name(p) {
                e["nodeName"] = json!(n);
                if let Some(z) = ctx.cache.nodes.get("", n).and_then(|node| super::podutil::node_label(node, ZONE_LABEL)) {
                    e["zone"] = json!(z);
                }
            }
            e
        })
        .collect();
    let slice_ports: Vec<Value> = ports
        .iter()
        .map(|p| {
            let mut v = json!({ "port": first.map(|f| target_port(p, f)).unwrap_or(p.port), "protocol": p.protocol.clone().unwrap_or("TCP".into()) });
            if let Some(n) = &p.name {
                v["name"] = json!(n);
            }
            v
        })
        .collect();
    let slice_name = format!("{name}-twin");
    upsert(
        ctx,
        Resource::EndpointSlice,
        &ns,
        &slice_name,
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": slice_name, "namespace": ns,
                "labels": { SERVICE_NAME_LABEL: name, "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io" },
                "ownerReferences": [super::objects::controller_ref("v1", "Service", &svc.metadata)],
            },
            "addressType": "IPv4",
            "endpoints": slice_endpoints,
            "ports": slice_ports,
        }),
        &["endpoints", "ports"],
    );
}

/// Creates the object, or rewrites the given top-level fields (a no-op write is skipped by
/// the store).
fn upsert(
    ctx: &Ctx<'_>,
    resource: Resource,
    ns: &str,
    name: &str,
    desired: Value,
    fields: &[&str],
) {
    if ctx.store.try_get(resource, ns, name).is_none() {
        let _ = ctx.store.create(resource, ns, desired);
        return;
    }
    let _ = ctx.store.mutate(resource, ns, name, |v| {
        for f in fields {
            v[*f] = desired[*f].clone();
        }
        Ok(())
    });
}
