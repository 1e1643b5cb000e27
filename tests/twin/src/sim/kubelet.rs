//! The kubelets of every node, and pod garbage collection.
//!
//! - A pod bound to a Ready node starts (Running, with an IP) and turns Ready after its
//!   startup time.
//! - A pod being deleted is marked terminating at once, so the endpoint controller drops it
//!   from ready endpoints; its preStop runs; then its process gets SIGTERM and does what its
//!   [`OnSigterm`] says: exits at once, or serves the requests already in flight and exits
//!   when they are done, or serves on until its grace period ends. Then it is removed from
//!   the store.
//! - A pod bound to a node that no longer exists is removed (PodGC's orphaned pods).
//! - A pod on a node with a NoExecute taint it does not tolerate is deleted (taint manager).
//! - A pod a `crashLoop` fault picks never becomes Ready: its container exits at every
//!   start and is restarted after CrashLoopBackOff's back-off (10 s, doubling, at most 5 min:
//!   pkg/kubelet/kubelet.go `backOffPeriod` and `MaxContainerBackOff`), so its
//!   `restartCount` grows while it stays Running and not Ready.
//! - A pod with a run time (a Job's, [`run_seconds`]) exits 0 that long after its container
//!   started: with `restartPolicy: Never` the kubelet does not restart it and the pod's phase
//!   becomes Succeeded (kubernetes.io, "Pod Lifecycle", pod phase: "All containers in the Pod
//!   have terminated in success, and will not be restarted"; `pkg/kubelet/kubelet_pods.go`
//!   `getPhase`), its container terminated with exit code 0 and reason Completed, Ready False
//!   with reason PodCompleted (`pkg/kubelet/status/generate.go`). A pod being deleted does not
//!   finish its work: it ends as any pod does, and its work is lost.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use k8s_openapi::api::core::v1::Pod;
use serde_json::json;

use super::objects::set_condition;
use super::podutil::{
    OnSigterm, from_time, grace_seconds, is_terminal, key, node_name, node_ready, node_taints,
    phase, prestop_seconds, run_seconds, started_at, startup_seconds, tolerated, tolerations,
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
    let dead = ctx.store.dead_instances().snapshot();
    for pod in pods {
        let node = node_name(&pod).unwrap_or_default();
        let (ns, name) = key(&pod.metadata);
        if let Some(d) = dead.get(node) {
            // No kubelet runs there: nothing starts, turns ready or finishes terminating. The
            // pod garbage collector removes the pods once the Node has been gone for its
            // quarantine (`super::nodelifecycle`).
            if let Some(deleted) = d.deleted_at {
                let due = super::nodelifecycle::orphans_removed_at(deleted);
                if ctx.now >= due {
                    ctx.store.remove_now(Resource::Pod, &ns, &name);
                } else {
                    ctx.wake_at(due);
                }
            }
            continue;
        }
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
        if phase(&pod) == "Running"
            && let Some(done) = work_done_at(&pod)
        {
            if ctx.now >= done {
                complete(ctx, &pod, done);
                continue;
            }
            ctx.wake_at(done);
        }
        match phase(&pod) {
            "Pending" if node_ready(&n) => start(ctx, &pod, &n),
            "Running" if is_crash_looping(&pod) => crash_tick(ctx, &pod),
            // A pod held back only by its readiness gates waits for their conditions.
            "Running"
                if !super::podutil::is_ready(&pod)
                    && (!super::podutil::containers_ready(&pod)
                        || super::podutil::gates_pass(&pod)) =>
            {
                become_ready(ctx, &pod)
            }
            _ => {}
        }
    }
}

/// When a running pod with a run time has done its work: its start plus [`run_seconds`].
/// Under `restartPolicy: Always` an exiting container is restarted and the pod never
/// finishes (`getPhase`), so such a pod has no end.
pub fn work_done_at(pod: &Pod) -> Option<chrono::DateTime<chrono::Utc>> {
    let restart = pod
        .spec
        .as_ref()
        .and_then(|s| s.restart_policy.as_deref())
        .unwrap_or("Always");
    if restart == "Always" {
        return None;
    }
    Some(started_at(pod)? + secs_delta(run_seconds(pod)?))
}

/// The container exited 0 at `done` and, with `restartPolicy: Never` (a Job's), stays
/// terminated: the pod is Succeeded and no longer Ready.
fn complete(ctx: &mut Ctx<'_>, pod: &Pod, done: chrono::DateTime<chrono::Utc>) {
    let (ns, name) = key(&pod.metadata);
    let started = started_at(pod).map(timestamp).unwrap_or_default();
    let finished = timestamp(done);
    let statuses: Vec<serde_json::Value> = pod
        .spec
        .as_ref()
        .map(|s| s.containers.clone())
        .unwrap_or_default()
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "image": c.image.clone().unwrap_or_default(),
                "imageID": "",
                "containerID": format!("containerd://{}", c.name),
                "ready": false,
                "started": false,
                "restartCount": 0,
                "state": { "terminated": {
                    "exitCode": 0,
                    "reason": "Completed",
                    "startedAt": started,
                    "finishedAt": finished,
                    "containerID": format!("containerd://{}", c.name),
                } },
            })
        })
        .collect();
    let _ = ctx.store.mutate(Resource::Pod, &ns, &name, |v| {
        if v.pointer("/metadata/deletionTimestamp").is_some()
            || v.pointer("/status/phase").and_then(|p| p.as_str()) != Some("Running")
        {
            return Ok(());
        }
        v["status"]["phase"] = json!("Succeeded");
        v["status"]["containerStatuses"] = json!(statuses);
        set_condition(v, "PodReadyToStartContainers", "False", None, None, done);
        set_condition(
            v,
            "ContainersReady",
            "False",
            Some("PodCompleted"),
            None,
            done,
        );
        set_condition(v, "Ready", "False", Some("PodCompleted"), None, done);
        Ok(())
    });
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

/// The kubelet's restart back-off after a container's `restarts`-th restart crashed: 10 s,
/// doubling each time, at most 300 s (pkg/kubelet/kubelet.go: `backOffPeriod`,
/// `MaxContainerBackOff`).
pub fn crash_backoff_seconds(restarts: i32) -> f64 {
    (10.0 * 2f64.powi(restarts.clamp(0, 16))).min(300.0)
}

/// A duration as Go's `time.Duration.String` writes whole seconds (`10s`, `1m20s`, `5m0s`).
fn go_duration(secs: f64) -> String {
    let s = secs.round() as i64;
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

/// Whether the pod's container is in CrashLoopBackOff.
pub fn is_crash_looping(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.waiting.as_ref())
        .and_then(|w| w.reason.as_deref())
        == Some("CrashLoopBackOff")
}

/// Whether a `crashLoop` fault picks this pod, which is about to start. A StatefulSet's
/// highest ordinals crash; for other workloads, pods crash while fewer than `replicas` of the
/// workload's live pods do.
fn crash_decision(ctx: &mut Ctx<'_>, pod: &Pod) -> bool {
    let rules = ctx.store.crash_loops().rules();
    let (ns, name) = key(&pod.metadata);
    for (i, rule) in rules.iter().enumerate() {
        if !rule.matches(pod) {
            continue;
        }
        if let Some(sts) = &rule.stateful_set {
            let ordinal = name
                .strip_prefix(sts.as_str())
                .and_then(|r| r.strip_prefix('-'))
                .and_then(|o| o.parse::<usize>().ok());
            let replicas = ctx
                .cache
                .statefulsets
                .get(&ns, sts)
                .and_then(|s| s.spec.as_ref())
                .and_then(|s| s.replicas)
                .unwrap_or(1)
                .max(0) as usize;
            if ordinal.is_some_and(|o| o + rule.replicas >= replicas) {
                return true;
            }
            continue;
        }
        let crashing = ctx
            .cache
            .pods
            .values()
            .filter(|p| p.metadata.deletion_timestamp.is_none() && is_crash_looping(p))
            .filter(|p| rule.matches(p))
            .count()
            + ctx.crash_started.get(&i).copied().unwrap_or(0);
        if crashing < rule.replicas {
            *ctx.crash_started.entry(i).or_default() += 1;
            return true;
        }
    }
    false
}

/// Container statuses of a crash-looping pod after `restarts` restarts, the last crash at
/// `at`, as the kubelet reports them (kuberuntime_manager.go `doBackOff`).
fn crash_statuses(pod: &Pod, restarts: i32, at: &str) -> serde_json::Value {
    let (ns, name) = key(&pod.metadata);
    let uid = pod.metadata.uid.clone().unwrap_or_default();
    let backoff = go_duration(crash_backoff_seconds(restarts));
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
                "containerID": format!("containerd://{}-{restarts}", c.name),
                "ready": false,
                "started": false,
                "restartCount": restarts,
                "state": { "waiting": {
                    "reason": "CrashLoopBackOff",
                    "message": format!(
                        "back-off {backoff} restarting failed container={} pod={name}_{ns}({uid})",
                        c.name
                    ),
                } },
                "lastState": { "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": at,
                    "finishedAt": at,
                    "containerID": format!("containerd://{}-{restarts}", c.name),
                } },
            }))
            .collect::<Vec<_>>()
    )
}

/// A crash-looping pod: restarts its container once the back-off has passed (it crashes
/// again at once), and waits for the next restart.
fn crash_tick(ctx: &mut Ctx<'_>, pod: &Pod) {
    let status = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|c| c.first());
    let restarts = status.map_or(0, |c| c.restart_count);
    let last = status
        .and_then(|c| c.last_state.as_ref())
        .and_then(|s| s.terminated.as_ref())
        .and_then(|t| t.finished_at.as_ref())
        .map(from_time)
        .unwrap_or(ctx.now);
    let next = last + secs_delta(crash_backoff_seconds(restarts));
    if ctx.now < next {
        ctx.wake_at(next);
        return;
    }
    let (ns, name) = key(&pod.metadata);
    let now = ctx.now;
    let statuses = crash_statuses(pod, restarts + 1, &timestamp(now));
    let _ = ctx.store.mutate(Resource::Pod, &ns, &name, |v| {
        if v.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(());
        }
        v["status"]["containerStatuses"] = statuses;
        Ok(())
    });
    ctx.wake_in(crash_backoff_seconds(restarts + 1));
}

fn start(ctx: &mut Ctx<'_>, pod: &Pod, node: &k8s_openapi::api::core::v1::Node) {
    let (ns, name) = key(&pod.metadata);
    let now = ctx.now;
    let ip = next_pod_ip(ctx);
    let host = host_ip(node);
    let ts = timestamp(now);
    let crashes = crash_decision(ctx, pod);
    let statuses = if crashes {
        crash_statuses(pod, 0, &ts)
    } else {
        container_statuses(pod, false, &ts)
    };
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
    ctx.wake_in(if crashes {
        crash_backoff_seconds(0)
    } else {
        startup_seconds(pod)
    });
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
        set_ready_from_gates(v, now);
        Ok(())
    });
}

/// Sets the Ready condition of a pod whose containers are ready: True once every readiness
/// gate's condition is True, else False with `ReadinessGatesNotReady` (kubernetes
/// `pkg/kubelet/status/generate.go`, `GeneratePodReadyCondition`). The kubelet's status
/// manager recomputes it whenever a gate's condition changes.
pub fn set_ready_from_gates(v: &mut serde_json::Value, now: chrono::DateTime<chrono::Utc>) {
    let gates: Option<Pod> = serde_json::from_value(v.clone()).ok();
    if gates.as_ref().is_none_or(super::podutil::gates_pass) {
        set_condition(v, "Ready", "True", None, None, now);
    } else {
        set_condition(
            v,
            "Ready",
            "False",
            Some("ReadinessGatesNotReady"),
            Some("corresponding condition of pod readiness gate is not True"),
            now,
        );
    }
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
    let exited = now >= prestop_done
        && match OnSigterm::of(pod) {
            OnSigterm::Exit => true,
            OnSigterm::StopAccepting => ctx.inflight.count(&uid) == 0,
            OnSigterm::FinishInFlight => false,
        };
    if now >= deadline || exited {
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
