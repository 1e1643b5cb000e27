//! Small predicates over typed pods and nodes, as `k8s.io/kubernetes/pkg/api/v1/pod` and the
//! node helpers define them.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};

use super::quantity::{amount_of, cpu_of};

/// The zone label every cloud node carries.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The annotation that sets how long a pod takes to become Ready after it starts.
pub const STARTUP_ANNOTATION: &str = "twin.ngm.io/startup-seconds";
/// Startup time when a pod says nothing.
pub const DEFAULT_STARTUP_SECONDS: f64 = 2.0;

/// A k8s-openapi timestamp as chrono.
pub fn from_time(t: &Time) -> DateTime<Utc> {
    DateTime::from_timestamp(t.0.as_second(), t.0.subsec_nanosecond().max(0) as u32)
        .unwrap_or_default()
}

/// A chrono timestamp as k8s-openapi's (whole seconds, as the API server stores them).
pub fn to_time(t: DateTime<Utc>) -> Time {
    Time(k8s_openapi::jiff::Timestamp::from_second(t.timestamp()).unwrap_or_default())
}

/// `namespace/name` of an object's metadata.
pub fn key(meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta) -> (String, String) {
    (
        meta.namespace.clone().unwrap_or_default(),
        meta.name.clone().unwrap_or_default(),
    )
}

/// The pod's phase ("Pending" when unset).
pub fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("Pending")
}

/// The node the pod is bound to, if any.
pub fn node_name(pod: &Pod) -> Option<&str> {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .filter(|n| !n.is_empty())
}

/// The pod's condition of this type, if any.
pub fn condition<'a>(
    pod: &'a Pod,
    kind: &str,
) -> Option<&'a k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == kind)
}

/// `podutil.IsPodReady`: the Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    condition(pod, "Ready").is_some_and(|c| c.status == "True")
}

/// The ContainersReady condition is True (every container passes its readiness probe).
pub fn containers_ready(pod: &Pod) -> bool {
    condition(pod, "ContainersReady").is_some_and(|c| c.status == "True")
}

/// `spec.readinessGates[].conditionType`.
pub fn readiness_gates(pod: &Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_ref())
        .map(|g| g.iter().map(|g| g.condition_type.clone()).collect())
        .unwrap_or_default()
}

/// Every readiness gate's condition is True: with its containers ready, the kubelet reports the
/// pod Ready only then (kubernetes `pkg/kubelet/status/generate.go`,
/// `GeneratePodReadyCondition`: `ReadinessGatesNotReady`).
pub fn gates_pass(pod: &Pod) -> bool {
    readiness_gates(pod).iter().all(|g| gate_true(pod, g))
}

/// The condition of readiness gate `gate` is True.
pub fn gate_true(pod: &Pod, gate: &str) -> bool {
    condition(pod, gate).is_some_and(|c| c.status == "True")
}

/// When the pod last became Ready (the Ready condition's transition time), if it is Ready.
pub fn ready_since(pod: &Pod) -> Option<DateTime<Utc>> {
    condition(pod, "Ready")
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(from_time)
}

/// Whether the pod is being deleted.
pub fn is_terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Phase Succeeded or Failed.
pub fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

/// `controller.FilterActivePods`: not terminal and not being deleted.
pub fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && !is_terminating(pod)
}

/// The owner reference with `controller: true`.
pub fn controller_of(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|o| o.controller == Some(true))
}

/// The highest restart count of the pod's containers.
pub fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.iter().map(|c| c.restart_count).max())
        .unwrap_or(0)
}

/// The pod's creation time (the epoch when unset).
pub fn created(pod: &Pod) -> DateTime<Utc> {
    pod.metadata
        .creation_timestamp
        .as_ref()
        .map(from_time)
        .unwrap_or_default()
}

/// CPU (millicores) and memory (bytes) the pod requests: the sum over its containers, or the
/// largest init container if that is more (the scheduler's effective request).
pub fn requests(pod: &Pod) -> (i64, i64) {
    let Some(spec) = pod.spec.as_ref() else {
        return (0, 0);
    };
    let of = |c: &k8s_openapi::api::core::v1::Container| {
        let r = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        (
            cpu_of(r.and_then(|r| r.get("cpu"))),
            amount_of(r.and_then(|r| r.get("memory"))),
        )
    };
    let (mut cpu, mut mem) = spec
        .containers
        .iter()
        .map(of)
        .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1));
    for init in spec.init_containers.iter().flatten() {
        let (c, m) = of(init);
        cpu = cpu.max(c);
        mem = mem.max(m);
    }
    (cpu, mem)
}

/// The pod's annotation value.
pub fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Seconds from start to Ready: the startup annotation, else the readiness probe's initial
/// delay, else [`DEFAULT_STARTUP_SECONDS`].
pub fn startup_seconds(pod: &Pod) -> f64 {
    if let Some(s) = annotation(pod, STARTUP_ANNOTATION).and_then(|s| s.parse::<f64>().ok()) {
        return s.max(0.0);
    }
    pod.spec
        .as_ref()
        .and_then(|s| s.containers.first())
        .and_then(|c| c.readiness_probe.as_ref())
        .and_then(|p| p.initial_delay_seconds)
        .map(f64::from)
        .unwrap_or(DEFAULT_STARTUP_SECONDS)
}

/// The annotation that gives a pod's container a finite piece of work (a Job's `runSeconds`):
/// it exits 0 this many seconds after it started. The app's code decides that, so nothing in
/// the pod spec says it.
pub const RUN_ANNOTATION: &str = "twin.ngm.io/run-seconds";

/// Seconds from container start to a successful exit, for a pod that carries
/// [`RUN_ANNOTATION`]; `None` for a server that runs until it is stopped.
pub fn run_seconds(pod: &Pod) -> Option<f64> {
    annotation(pod, RUN_ANNOTATION)
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| s.is_finite())
        .map(|s| s.max(0.0))
}

/// When the pod's containers started (the kubelet's `status.startTime`, set as they start).
pub fn started_at(pod: &Pod) -> Option<DateTime<Utc>> {
    pod.status
        .as_ref()
        .and_then(|s| s.start_time.as_ref())
        .map(from_time)
}

/// The annotation a scenario uses to say how a pod's process behaves on SIGTERM
/// ([`OnSigterm`]); the app's code decides that, so nothing in the pod spec says it.
pub const SIGTERM_ANNOTATION: &str = "twin.ngm.io/on-sigterm";

/// How a container's process behaves when it gets SIGTERM (after its preStop hook), as the
/// kubelet sends it (kubernetes.io, "Pod Lifecycle", termination of Pods: "the container
/// runtime sends a TERM signal to process 1 inside each container").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "camelCase")]
pub enum OnSigterm {
    /// The default action of SIGTERM, what a process with no handler does (most apps): it
    /// ends at once. Requests in flight are cut, new connections refused.
    #[default]
    Exit,
    /// A graceful server (Go's `http.Server.Shutdown`, Spring Boot's graceful shutdown):
    /// closes its listener at once (new connections refused) and exits once the requests in
    /// flight are done, or when the grace period ends.
    StopAccepting,
    /// Keeps accepting and serving until the grace period ends and the kubelet kills it (a
    /// lame-duck period: CoreDNS's `health { lameduck }`, Envoy's drain).
    FinishInFlight,
}

impl OnSigterm {
    pub fn of(pod: &Pod) -> Self {
        match annotation(pod, SIGTERM_ANNOTATION) {
            Some("stopAccepting") => Self::StopAccepting,
            Some("finishInFlight") => Self::FinishInFlight,
            _ => Self::Exit,
        }
    }

    /// The annotation's value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exit => "exit",
            Self::StopAccepting => "stopAccepting",
            Self::FinishInFlight => "finishInFlight",
        }
    }
}

/// Seconds the pod's preStop hook runs: the longest `sleep` action (or `exec: sleep N`).
pub fn prestop_seconds(pod: &Pod) -> f64 {
    let Some(spec) = pod.spec.as_ref() else {
        return 0.0;
    };
    spec.containers
        .iter()
        .filter_map(|c| c.lifecycle.as_ref()?.pre_stop.as_ref())
        .map(|h| {
            if let Some(s) = &h.sleep {
                return s.seconds as f64;
            }
            h.exec
                .as_ref()
                .and_then(|e| e.command.as_ref())
                .and_then(|cmd| {
                    let pos = cmd
                        .iter()
                        .position(|a| a == "sleep" || a.ends_with("/sleep"))?;
                    cmd.get(pos + 1)?.parse::<f64>().ok()
                })
                .unwrap_or(0.0)
        })
        .fold(0.0, f64::max)
}

/// The pod's grace period: `deletionGracePeriodSeconds` once deleting, else the spec's
/// `terminationGracePeriodSeconds`, else 30 (the API default).
pub fn grace_seconds(pod: &Pod) -> i64 {
    pod.metadata
        .deletion_grace_period_seconds
        .or_else(|| {
            pod.spec
                .as_ref()
                .and_then(|s| s.termination_grace_period_seconds)
        })
        .unwrap_or(30)
}

/// Whether the node's Ready condition is True.
pub fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Whether the node is cordoned.
pub fn node_unschedulable(node: &Node) -> bool {
    node.spec
        .as_ref()
        .and_then(|s| s.unschedulable)
        .unwrap_or(false)
}

/// The node's taints.
pub fn node_taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or(&[])
}

/// The node's label value.
pub fn node_label<'a>(node: &'a Node, key: &str) -> Option<&'a str> {
    node.metadata.labels.as_ref()?.get(key).map(String::as_str)
}

/// The pod's tolerations.
pub fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or(&[])
}

/// `Toleration.ToleratesTaint`: an empty key with `Exists` tolerates everything; an empty
/// effect matches every effect; `Exists` ignores the value; `Equal` (the default) compares it.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty())
        && effect != taint.effect
    {
        return false;
    }
    let key = t.key.as_deref().unwrap_or_default();
    let op = t.operator.as_deref().unwrap_or("Equal");
    if key.is_empty() {
        return op == "Exists";
    }
    if key != taint.key {
        return false;
    }
    match op {
        "Exists" => true,
        "Equal" | "" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// Whether any toleration tolerates the taint.
pub fn tolerated(tolerations: &[Toleration], taint: &Taint) -> bool {
    tolerations.iter().any(|t| tolerates(t, taint))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: &str) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(Into::into),
            effect: effect.into(),
            time_added: None,
        }
    }

    fn tol(
        key: Option<&str>,
        op: Option<&str>,
        value: Option<&str>,
        effect: Option<&str>,
    ) -> Toleration {
        Toleration {
            key: key.map(Into::into),
            operator: op.map(Into::into),
            value: value.map(Into::into),
            effect: effect.map(Into::into),
            toleration_seconds: None,
        }
    }

    #[test]
    fn tolerations_match_taints_as_core_v1_toleration_matching_defines() {
        let t = taint("ngm.io/migrating", Some("true"), "NoSchedule");
        let cases = [
            (
                tol(None, Some("Exists"), None, None),
                true,
                "empty key + Exists tolerates all",
            ),
            (
                tol(None, None, None, None),
                false,
                "empty key + Equal tolerates nothing",
            ),
            (
                tol(Some("ngm.io/migrating"), Some("Exists"), None, None),
                true,
                "Exists ignores value",
            ),
            (
                tol(Some("ngm.io/migrating"), None, Some("true"), None),
                true,
                "Equal by default",
            ),
            (
                tol(Some("ngm.io/migrating"), None, Some("false"), None),
                false,
                "Equal compares value",
            ),
            (
                tol(
                    Some("ngm.io/migrating"),
                    Some("Exists"),
                    None,
                    Some("NoExecute"),
                ),
                false,
                "effect must match",
            ),
            (
                tol(
                    Some("ngm.io/migrating"),
                    Some("Exists"),
                    None,
                    Some("NoSchedule"),
                ),
                true,
                "same effect",
            ),
            (
                tol(Some("other"), Some("Exists"), None, None),
                false,
                "other key",
            ),
        ];
        for (toleration, want, why) in cases {
            assert_eq!(tolerates(&toleration, &t), want, "{why}");
        }
    }
}
