//! The kubelets of every node, and pod garbage collection.
//!
//! - A pod bound to a Ready node starts (Running, with an IP) and turns Ready after its
//!   startup time.
//! - A pod being deleted is marked terminating at once, so the endpoint controller drops it
//!   from ready endpoints; its preStop runs; after that it keeps serving the requests already
//!   in flight and exits when they are done, or when its grace period ends, whichever is
//!   first. Then it is removed from the store.
//! - A pod bound to a node that no longer exists is removed (PodGC's orphaned pods).
//! - A pod on a node with a NoExecute taint it does not tolerate is deleted (taint manager).

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::objects::set_condition;
use super::podutil::{
    from_time, grace_seconds, is_terminal, key, node_name, node_ready, node_taints, phase,
    prestop_seconds, startup_seconds, tolerated, tolerations,
};
use super::runner::Ctx;
use crate::clock::secs_delta;
use crate::store::{DeleteOptions, Resource, timestamp};

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let nodes: HashSet<&str> = ctx
        .cache
        .nodes
        .items
        .keys()
        .map(|(_, n)| n.as_str())
        .collect();
    let pods: Vec<Arc<Pod>> = ctx
        .cache
        .pods
        .values()
        .filter(|p| node_name(p).is_some())
        .cloned()
        .collect();
    for pod in pods {
        let node = node_name(&pod).unwrap_or_default();
        let (ns, name) = key(&pod.metadata);
        if !nodes.contains(node) {
            ctx.store.remove_now(Resource::Pod, &ns, &name);
            continue;
        }
        if pod.metadata.deletion_timestamp.is_some() {
            terminate(ctx, &pod);
            continue;
        }
        let Some(n) = ctx.cache.nodes.get("", node).cloned() else {
            continue;
        };
        if let Some(taint) = node_taints(&n)
            .iter()
            .find(|t| t.effect == "NoExecute" && !tolerated(tolerations(&pod), t))
        {
            let _ = taint;
            let opts = DeleteOptions {
                uid: pod.metadata.uid.clone(),
                ..DeleteOptions::default()
            };
            let _ = ctx.store.delete(Resource::Pod, &ns, &name, &opts);
            continue;
        }
        if is_terminal(&pod) {
            continue;
        }
        match phase(&pod) {
            "Pending" if node_ready(&n) => start(ctx, &pod, &n),
            "Running" if !super::podutil::is_ready(&pod) => become_ready(ctx, &pod),
            _ => {}
        }
    }
}

fn next_pod_ip(ctx: &Ctx<'_>) -> String {
    let n = ctx.pod_ips.fetch_add(1, Ordering::Relaxed);
    format!("100.64.{}.{}", (n >> 8) & 0xff, n & 0xff)
}

fn host_ip(node: &k8s_openapi::api::core::v1::Node) -> String {
    node.status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .and_then(|a| a.iter().find(|a| a.type_ == "InternalIP"))
        .map(|a| a.address.clone())
        .unwrap_or_default()
}

fn container_statuses(pod: &Pod, ready: bool, started_at: &str) -> serde_json::Value {
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default();
    json!(
        containers
            .iter()
            .map(|c| json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "containerID": format!("containerd://{}", c.name),
                "ready": ready,
                "started": true,
                "restartCount": 0,
                "state": { "running": { "startedAt": started_at } },
            }))
            .collect::<Vec<_>>()
    )
}

fn start(ctx: &mut Ctx<'_>, pod: &Pod, node: &k8s_openapi::api::core::v1::Node) {
    let (ns, name) = key(&pod.metadata);
    let now = ctx.now;
    let ip = next_pod_ip(ctx);
    let host = host_ip(node);
    let ts = timestamp(now);
    let statuses = container_statuses(pod, false, &ts);
    let _ = ctx.store.mutate(Resource::Pod, &ns, &name, |v| {
        if v.pointer("/status/phase").and_then(|p| p.as_str()) != Some("Pending")
            || v.pointer("/metadata/deletionTimestamp").is_some()
        {
            return Ok(());
        }
        v["status"]["phase"] = json!("Running");
        v["status"]["startTime"] = json!(ts);
        v["status"]["podIP"] = json!(ip);
        v["status"]["podIPs"] = json!([{ "ip": ip }]);
        v["status"]["hostIP"] = json!(host);
        v["status"]["hostIPs"] = json!([{ "ip": host }]);
        v["status"]["qosClass"] = json!("Burstable");
        v["status"]["containerStatuses"] = statuses;
        set_condition(v, "PodReadyToStartContainers", "True", None, None, now);
        set_condition(v, "Initialized", "True", None, None, now);
        set_condition(
            v,
            "ContainersReady",
            "False",
            Some("ContainersNotReady"),
            None,
            now,
        );
        set_condition(v, "Ready", "False", Some("ContainersNotReady"), None, now);
        set_condition(v, "PodScheduled", "True", None, None, now);
        Ok(())
    });
    ctx.wake_in(startup_seconds(pod));
}

fn become_ready(ctx: &mut Ctx<'_>, pod: &Pod) {
    let started = pod
        .status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(from_time)
        .unwrap_or(ctx.now);
    let ready_at = started + secs_delta(startup_seconds(pod));
    if ctx.now < ready_at {
        ctx.wake_at(ready_at);
        return;
    }
    let (ns, name) = key(&pod.metadata);
    let now = ctx.now;
    let _ = ctx.store.mutate(Resource::Pod, &ns, &name, |v| {
        if v.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(());
        }
        if let Some(cs) = v
            .pointer_mut("/status/containerStatuses")
            .and_then(|c| c.as_array_mut())
        {
            for c in cs {
                c["ready"] = json!(true);
            }
        }
        set_condition(v, "ContainersReady", "True", None, None, now);
        set_condition(v, "Ready", "True", None, None, now);
        Ok(())
    });
}

/// The moments of a pod's termination: (preStop done, grace period over).
pub fn termination_times(
    pod: &Pod,
) -> Option<(chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>)> {
    let deadline = from_time(pod.metadata.deletion_timestamp.as_ref()?);
    let grace = grace_seconds(pod);
    let started = deadline - chrono::TimeDelta::seconds(grace);
    let prestop_done = (started + secs_delta(prestop_seconds(pod))).min(deadline);
    Some((prestop_done, deadline))
}

fn terminate(ctx: &mut Ctx<'_>, pod: &Pod) {
    let (ns, name) = key(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    // A container that never started has no preStop to run and nothing in flight.
    if phase(pod) == "Pending" || is_terminal(pod) {
        ctx.store.remove_now(Resource::Pod, &ns, &name);
        return;
    }
    let Some((prestop_done, deadline)) = termination_times(pod) else {
        return;
    };
    let now = ctx.now;
    if now >= deadline || (now >= prestop_done && ctx.inflight.count(&uid) == 0) {
        ctx.store.remove_now(Resource::Pod, &ns, &name);
        return;
    }
    ctx.wake_at(if now < prestop_done {
        prestop_done
    } else {
        deadline
    });
}

/// Kills a pod outright, as a crashed node or an OOM-killed sandbox that takes the pod with
/// it: it is removed from the store at once and its in-flight requests fail. Its controller
/// replaces it.
pub fn kill_pod(store: &crate::store::Store, ns: &str, name: &str) -> bool {
    store.remove_now(Resource::Pod, ns, name).is_some()
}
