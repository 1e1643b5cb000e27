//! The critical path: the least time any migrator could take on this cluster, from the twin's
//! own log of the run. It is the sum of what no migrator can overlap (docs/bench.md):
//!
//! 1. the new group, from CreateNodegroup to ACTIVE (every desired node in service and Ready);
//! 2. the slowest surged pod, from its binding to a new node to Ready;
//! 3. the load balancers' phase, as they themselves need it: the new targets' registration to
//!    healthy, then the old targets' draining for the requests actually in flight (no new
//!    request reaches a deregistered target once its propagation ends, and its in-flight ones
//!    finish by themselves);
//! 4. the retired pods' termination: from the graceful delete to the pod gone (its preStop
//!    hook, then its in-flight work);
//! 5. the old group's deletion, from the end of EKS's drain (at once for emptied nodes) to
//!    404.
//!
//! Each part is measured as the fastest the cluster did it in the run (the least over the
//! groups created, the most over the pods and load balancers, which all must finish); a part
//! the run did not exercise is `None` and counts 0.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::eks::{GroupEvent, GroupEventKind};
use crate::lb::LbInfo;
use crate::lb::targets::PhaseSpan;
use crate::store::{EventKind, Resource, is_pod_ready};

/// What the critical path needs of the objects' history.
#[derive(Debug, Default)]
pub(crate) struct PhaseLog {
    /// Nodes by the moment they were added (the twin adds a Node when its kubelet is Ready).
    nodes_added: HashMap<String, DateTime<Utc>>,
    nodes_gone: HashSet<String>,
    /// (namespace, pod) → (bound at, node), for pods first seen bound during the run.
    bound: HashMap<(String, String), (DateTime<Utc>, String)>,
    /// Pods seen before the run started (the recorder's seed): not surged.
    seeded: HashSet<(String, String)>,
    /// Seconds from binding to the first Ready, per non-DaemonSet pod bound to a node added
    /// during the run.
    surged_ready: Vec<f64>,
    ready_seen: HashSet<(String, String)>,
    /// (namespace, pod) → when its graceful deletion began.
    deleting: HashMap<(String, String), DateTime<Utc>>,
    /// Seconds from the graceful delete to the pod gone, for pods that ended by themselves
    /// (not with a node that went: those are force-deleted by the pod garbage collector).
    terminations: Vec<f64>,
    /// Pods (not DaemonSets', not finished) that went with their node: force-deleted by the
    /// pod garbage collector after the node was gone, whatever they were doing.
    pub(crate) lost_with_nodes: u64,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn secs(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}

fn daemon(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|r| r.iter().any(|o| s(o, "/kind") == "DaemonSet"))
}

impl PhaseLog {
    /// The recorder's seed: pods that exist when the run starts.
    pub(crate) fn seed(&mut self, pod: &Value) {
        self.seeded.insert((
            s(pod, "/metadata/namespace").to_string(),
            s(pod, "/metadata/name").to_string(),
        ));
    }

    pub(crate) fn observe(
        &mut self,
        kind: EventKind,
        resource: Resource,
        obj: &Value,
        now: DateTime<Utc>,
    ) {
        match resource {
            Resource::Node => {
                let name = s(obj, "/metadata/name").to_string();
                match kind {
                    EventKind::Added => {
                        self.nodes_added.entry(name).or_insert(now);
                    }
                    EventKind::Deleted => {
                        self.nodes_gone.insert(name);
                    }
                    EventKind::Modified => {}
                }
            }
            Resource::Pod => self.observe_pod(kind, obj, now),
            _ => {}
        }
    }

    fn observe_pod(&mut self, kind: EventKind, pod: &Value, now: DateTime<Utc>) {
        let key = (
            s(pod, "/metadata/namespace").to_string(),
            s(pod, "/metadata/name").to_string(),
        );
        let node = s(pod, "/spec/nodeName");
        if kind == EventKind::Deleted {
            let with_node = self.nodes_gone.contains(node);
            if let Some(from) = self.deleting.remove(&key)
                && !with_node
            {
                self.terminations.push(secs(from, now));
            }
            let finished = matches!(s(pod, "/status/phase"), "Succeeded" | "Failed");
            if with_node && !finished && !daemon(pod) {
                self.lost_with_nodes += 1;
            }
            return;
        }
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            self.deleting.entry(key.clone()).or_insert(now);
        }
        if self.seeded.contains(&key) || node.is_empty() || daemon(pod) {
            return;
        }
        let (bound_at, _) = self
            .bound
            .entry(key.clone())
            .or_insert_with(|| (now, node.to_string()));
        let bound_at = *bound_at;
        if is_pod_ready(pod) && self.nodes_added.contains_key(node) && self.ready_seen.insert(key) {
            self.surged_ready.push(secs(bound_at, now));
        }
    }
}

/// The critical path of one run, in simulated seconds.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CriticalPath {
    /// CreateNodegroup to ACTIVE, the fastest group created in the run.
    pub new_group_seconds: Option<f64>,
    /// The slowest surged pod, bound to Ready.
    pub surged_pod_seconds: Option<f64>,
    /// The slowest load balancer: its new targets to healthy, plus its old targets' drain of
    /// the requests in flight.
    pub load_balancer_seconds: Option<f64>,
    /// The slowest retired pod, graceful delete to gone.
    pub termination_seconds: Option<f64>,
    /// DeleteNodegroup to gone, the fastest group deleted in the run.
    pub deletion_seconds: Option<f64>,
    pub total_seconds: f64,
}

fn max(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    v.into_iter()
        .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.max(x))))
}

fn min(v: impl IntoIterator<Item = f64>) -> Option<f64> {
    v.into_iter()
        .fold(None, |m, x| Some(m.map_or(x, |m: f64| m.min(x))))
}

/// Seconds between one kind of group event and a later one, per group, for events at or
/// after `since`.
fn group_spans(
    history: &[GroupEvent],
    since: DateTime<Utc>,
    from: GroupEventKind,
    to: GroupEventKind,
) -> Vec<f64> {
    let mut started: HashMap<&str, DateTime<Utc>> = HashMap::new();
    let mut out = Vec::new();
    for e in history.iter().filter(|e| e.at >= since) {
        if e.kind == from {
            started.insert(&e.group, e.at);
        } else if e.kind == to
            && let Some(t) = started.remove(e.group.as_str())
        {
            out.push(secs(t, e.at));
        }
    }
    out
}

impl CriticalPath {
    pub(crate) fn compute(
        log: &PhaseLog,
        history: &[GroupEvent],
        balancers: &[LbInfo],
        since: DateTime<Utc>,
    ) -> Self {
        let new_group = min(group_spans(
            history,
            since,
            GroupEventKind::Created,
            GroupEventKind::Active,
        ));
        // What the deletion needs of itself: from the end of EKS's drain (which a migrator that
        // emptied the nodes first does not wait for) to the group gone.
        let deletion = min(group_spans(
            history,
            since,
            GroupEventKind::Drained,
            GroupEventKind::Gone,
        ));
        let lb = max(balancers.iter().filter_map(|b| {
            let since_run = |spans: &[PhaseSpan]| {
                max(spans.iter().filter(|p| p.at >= since).map(|p| p.seconds))
            };
            let healthy = since_run(&b.phase.to_healthy);
            let drained = since_run(&b.phase.drained);
            (healthy.is_some() || drained.is_some())
                .then(|| healthy.unwrap_or(0.0) + drained.unwrap_or(0.0))
        }));
        let surged = max(log.surged_ready.iter().copied());
        let termination = max(log.terminations.iter().copied());
        let total = [new_group, surged, lb, termination, deletion]
            .iter()
            .map(|p| p.unwrap_or(0.0))
            .sum();
        Self {
            new_group_seconds: new_group,
            surged_pod_seconds: surged,
            load_balancer_seconds: lb,
            termination_seconds: termination,
            deletion_seconds: deletion,
            total_seconds: total,
        }
    }
}

#[cfg(test)]
#[path = "critical_tests.rs"]
mod tests;
