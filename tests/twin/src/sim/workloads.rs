//! Pure rules of the workload controllers: rolling-update arithmetic, StatefulSet ordinals,
//! DaemonSet placement and the HPA clamp. The controllers around them only read and write.

use k8s_openapi::api::core::v1::{Node, Pod, Toleration};

use super::podutil::tolerated;
use super::scheduling::matches_node_selection;

/// `intstr.GetScaledValueFromIntOrPercent` for a Deployment's maxSurge/maxUnavailable.
pub fn scaled(
    v: Option<&k8s_openapi::apimachinery::pkg::util::intstr::IntOrString>,
    default_pct: i32,
    total: i32,
    round_up: bool,
) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let pct = match v {
        Some(IntOrString::Int(i)) => return *i,
        Some(IntOrString::String(s)) => s
            .trim_end_matches('%')
            .parse::<i32>()
            .unwrap_or(default_pct),
        None => default_pct,
    };
    let product = i64::from(pct) * i64::from(total);
    let out = if round_up {
        (product + 99).div_euclid(100)
    } else {
        product.div_euclid(100)
    };
    out as i32
}

/// `deploymentutil.ResolveFenceposts`: maxSurge rounds up, maxUnavailable down, and both 0
/// becomes maxUnavailable 1 so a rollout can progress.
pub fn fenceposts(max_surge: i32, max_unavailable: i32) -> (i32, i32) {
    if max_surge == 0 && max_unavailable == 0 {
        (0, 1)
    } else {
        (max_surge, max_unavailable)
    }
}

/// The ReplicaSets of one Deployment, as the rollout sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RolloutState {
    pub replicas: i32,
    pub max_surge: i32,
    pub max_unavailable: i32,
    /// `spec.replicas` of the ReplicaSet matching the current template.
    pub new_spec: i32,
    pub new_available: i32,
    /// `(spec.replicas, available)` of every older ReplicaSet, oldest first.
    pub old: Vec<(i32, i32)>,
}

/// `RollingUpdate` one step: the new ReplicaSet's target and each old one's target.
///
/// Upstream (`pkg/controller/deployment/rolling.go` `rolloutRolling`), with every count
/// taken from the ReplicaSets' `spec.replicas` (`GetReplicaCountForReplicaSets`):
/// - `reconcileNewReplicaSet` first: the new RS grows while the total stays within
///   `replicas + maxSurge` (`NewRSNewReplicas`), or shrinks to `replicas`; if it changed,
///   that is the whole pass;
/// - else `reconcileOldReplicaSets`: nothing goes unless `maxScaledDown = all - (replicas -
///   maxUnavailable) - newUnavailable` is positive; then `cleanupUnhealthyReplicas` removes
///   unavailable old replicas, oldest RS first, at most `maxScaledDown` of them; then
///   `scaleDownOldReplicaSetsForRollingUpdate` removes available ones while the available
///   count of all ReplicaSets stays above `replicas - maxUnavailable`.
///
/// With no old replicas left, the new RS simply takes `replicas` (a plain scale).
pub fn rolling_step(s: &RolloutState) -> (i32, Vec<i32>) {
    let old_total: i32 = s.old.iter().map(|(spec, _)| *spec).sum();
    let old_specs: Vec<i32> = s.old.iter().map(|(spec, _)| *spec).collect();
    if old_total == 0 {
        return (s.replicas, s.old.iter().map(|_| 0).collect());
    }
    let all = s.new_spec + old_total;
    let new_target = if s.new_spec >= s.replicas {
        s.replicas
    } else {
        let room = (s.replicas + s.max_surge - all).max(0);
        s.new_spec + room.min(s.replicas - s.new_spec)
    };
    if new_target != s.new_spec {
        return (new_target, old_specs);
    }
    let min_available = s.replicas - s.max_unavailable;
    let new_unavailable = (s.new_spec - s.new_available).max(0);
    let max_scaled_down = all - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return (new_target, old_specs);
    }
    let mut targets = old_specs;
    let mut cleanup_left = max_scaled_down;
    for (target, (spec, available)) in targets.iter_mut().zip(&s.old) {
        let unhealthy = (spec - available).max(0);
        let take = cleanup_left.min(unhealthy);
        *target -= take;
        cleanup_left -= take;
    }
    let available: i32 = s.new_available + s.old.iter().map(|(_, a)| *a).sum::<i32>();
    let mut remove = (available - min_available).max(0);
    for target in &mut targets {
        let take = remove.min(*target);
        *target -= take;
        remove -= take;
    }
    (new_target, targets)
}

/// What a StatefulSet controller does next (one action per pass for OrderedReady).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StsAction {
    Create(i32),
    Delete(i32),
    Wait,
    Nothing,
}

/// State of one ordinal's pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrdinalState {
    Missing,
    Terminating,
    NotReady,
    Ready,
}

/// The next actions of a StatefulSet (`stateful_set_control.go`): create missing ordinals
/// `0..replicas` lowest first and delete ordinals `>= replicas` highest first. With
/// `OrderedReady` (the default) it does one thing at a time and waits while any pod is not
/// Running and Ready or is terminating; with `Parallel` it does everything at once.
pub fn statefulset_actions(
    pods: &[(i32, OrdinalState)],
    replicas: i32,
    parallel: bool,
) -> Vec<StsAction> {
    let state = |i: i32| {
        pods.iter()
            .find(|(o, _)| *o == i)
            .map(|(_, s)| *s)
            .unwrap_or(OrdinalState::Missing)
    };
    let mut out = Vec::new();
    for i in 0..replicas {
        match state(i) {
            OrdinalState::Missing => {
                out.push(StsAction::Create(i));
                if !parallel {
                    return out;
                }
            }
            OrdinalState::Terminating | OrdinalState::NotReady if !parallel => {
                return vec![StsAction::Wait];
            }
            _ => {}
        }
    }
    let mut condemned: Vec<(i32, OrdinalState)> = pods
        .iter()
        .copied()
        .filter(|(o, _)| *o >= replicas)
        .collect();
    condemned.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (ordinal, st) in condemned {
        if st == OrdinalState::Terminating {
            if !parallel {
                return vec![StsAction::Wait];
            }
            continue;
        }
        out.push(StsAction::Delete(ordinal));
        if !parallel {
            return out;
        }
    }
    if out.is_empty() {
        vec![StsAction::Nothing]
    } else {
        out
    }
}

/// The tolerations the DaemonSet controller adds to every daemon pod
/// (`util.AddOrUpdateDaemonPodTolerations`).
pub fn daemon_tolerations(own: &[Toleration], host_network: bool) -> Vec<Toleration> {
    let mut out = own.to_vec();
    let mut add = |key: &str, effect: &str| {
        if !out
            .iter()
            .any(|t| t.key.as_deref() == Some(key) && t.effect.as_deref() == Some(effect))
        {
            out.push(Toleration {
                key: Some(key.into()),
                operator: Some("Exists".into()),
                effect: Some(effect.into()),
                value: None,
                toleration_seconds: None,
            });
        }
    };
    add("node.kubernetes.io/not-ready", "NoExecute");
    add("node.kubernetes.io/unreachable", "NoExecute");
    add("node.kubernetes.io/disk-pressure", "NoSchedule");
    add("node.kubernetes.io/memory-pressure", "NoSchedule");
    add("node.kubernetes.io/pid-pressure", "NoSchedule");
    add("node.kubernetes.io/unschedulable", "NoSchedule");
    if host_network {
        add("node.kubernetes.io/network-unavailable", "NoSchedule");
    }
    out
}

/// `NodeShouldRunDaemonPod`: the node matches the pod's node selection and every NoSchedule
/// and NoExecute taint is tolerated (with the daemon tolerations already on `pod`).
/// Readiness and cordon do not matter.
pub fn should_run_daemon_pod(pod: &Pod, node: &Node) -> bool {
    let tols = super::podutil::tolerations(pod);
    matches_node_selection(pod, node)
        && super::podutil::node_taints(node)
            .iter()
            .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
            .all(|t| tolerated(tols, t))
}

/// `NodeShouldRunDaemonPod`'s second answer (kubernetes `pkg/controller/daemon/
/// daemon_controller.go`): a daemon pod already on the node keeps running unless the node no
/// longer matches its node selection or has a NoExecute taint it does not tolerate. A NoSchedule
/// taint (ngm's, a cordon) stops new daemon pods, not the running ones.
pub fn should_continue_running_daemon_pod(pod: &Pod, node: &Node) -> bool {
    let tols = super::podutil::tolerations(pod);
    matches_node_selection(pod, node)
        && super::podutil::node_taints(node)
            .iter()
            .filter(|t| t.effect == "NoExecute")
            .all(|t| tolerated(tols, t))
}

/// The HPA's replica decision with steady metrics. Upstream (`horizontal.go`): a target at 0
/// replicas disables autoscaling (`None`); above `maxReplicas` → `maxReplicas`; below
/// `minReplicas` (default 1) → `minReplicas`; inside the range the metrics decide, and the
/// twin's metrics always recommend the current count.
pub fn hpa_desired(current: i32, min: Option<i32>, max: i32) -> Option<i32> {
    let min = min.unwrap_or(1);
    if current == 0 && min != 0 {
        return None;
    }
    Some(if current > max {
        max
    } else if current < min {
        min
    } else {
        current
    })
}

#[cfg(test)]
#[path = "workloads_tests.rs"]
mod tests;
