//! The traffic probe: a steady stream of requests to each service through its load balancer,
//! on the twin's clock, with every failure counted by reason.
//!
//! A request picks a target node (round-robin among healthy targets), then an endpoint as
//! kube-proxy on that node would (`Local`: a ready pod on that node; `Cluster`: any ready pod),
//! and holds the pod for its duration (registered in [`InFlight`] so the kubelet keeps a
//! terminating pod until the request is done or its grace period ends). It is judged when it
//! ends: it failed if its node or pod went before then, or if its target's deregistration
//! delay ended first.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Balancer;
use super::targets::Pick;
use super::world::World;
use crate::clock::secs_delta;
use crate::sim::{InFlight, InFlightGuard};

/// How many failures are kept as samples for the report.
const MAX_SAMPLES: usize = 200;

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum FailureReason {
    /// The load balancer had no healthy target (or none at all, or the service has no LB).
    NoTarget,
    /// The target node, or the node of the pod serving it, was removed or its instance
    /// terminated before the request finished (it times out: a terminated instance's pods stay
    /// endpoints until the node lifecycle controller marks them not ready).
    NodeGone,
    /// The pod was removed before the request finished (grace period over, or killed).
    PodKilled,
    /// kube-proxy on the target node found no ready endpoint (`Local`: none on that node).
    NoEndpoint,
    /// The target was deregistered and its deregistration delay ended first.
    DrainTimeout,
    /// The request outlasted the load balancer's idle timeout.
    IdleTimeout,
}

/// The requests of one service.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTraffic {
    /// `namespace/name`.
    pub service: String,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Still running when the figures were taken (neither succeeded nor failed yet).
    pub in_flight: u64,
    pub failures: BTreeMap<FailureReason, u64>,
    /// Requests the load balancer sent to each target node.
    pub by_node: BTreeMap<String, u64>,
}

/// One failed request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureSample {
    /// Simulated time the request started.
    pub at: DateTime<Utc>,
    pub service: String,
    pub reason: FailureReason,
    pub node: Option<String>,
    /// `namespace/name` of the pod, when one was chosen.
    pub pod: Option<String>,
}

/// The probe's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStats {
    pub services: Vec<ServiceTraffic>,
    /// The first failures, at most 200.
    pub samples: Vec<FailureSample>,
}

impl ProbeStats {
    pub fn sent(&self) -> u64 {
        self.services.iter().map(|s| s.sent).sum()
    }
    pub fn failed(&self) -> u64 {
        self.services.iter().map(|s| s.failed).sum()
    }
    /// Failures with this reason, over every service.
    pub fn count(&self, reason: FailureReason) -> u64 {
        self.services
            .iter()
            .filter_map(|s| s.failures.get(&reason))
            .sum()
    }
    pub fn service(&self, key: &str) -> Option<&ServiceTraffic> {
        self.services.iter().find(|s| s.service == key)
    }
}

/// One stream of requests.
#[derive(Clone, Debug)]
pub struct Stream {
    pub namespace: String,
    pub service: String,
    pub interval_seconds: f64,
    pub request_seconds: f64,
    pub next: Option<DateTime<Utc>>,
}

struct Pending {
    end: DateTime<Utc>,
    seq: u64,
    stream: usize,
    start: DateTime<Utc>,
    node: String,
    pod_uid: String,
    pod: String,
    pod_node: Option<String>,
    idle_cut: bool,
    _guard: InFlightGuard,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.end, self.seq) == (other.end, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.end, self.seq).cmp(&(other.end, other.seq))
    }
}

/// The probe's state: its streams, the requests in flight and the figures.
#[derive(Default)]
pub struct Probe {
    pub streams: Vec<Stream>,
    pending: BinaryHeap<Reverse<Pending>>,
    stats: Vec<ServiceTraffic>,
    samples: Vec<FailureSample>,
    seq: u64,
    /// Requests in flight by (namespace, service, target node).
    busy: HashMap<(String, String, String), u32>,
}

impl Probe {
    pub fn new(streams: Vec<Stream>) -> Self {
        let stats = streams
            .iter()
            .map(|s| ServiceTraffic {
                service: format!("{}/{}", s.namespace, s.service),
                ..ServiceTraffic::default()
            })
            .collect();
        Self {
            streams,
            stats,
            ..Self::default()
        }
    }

    /// The figures so far.
    pub fn stats(&self) -> ProbeStats {
        let mut services = self.stats.clone();
        for Reverse(p) in &self.pending {
            services[p.stream].in_flight += 1;
        }
        ProbeStats {
            services,
            samples: self.samples.clone(),
        }
    }

    /// Whether a request to the service is in flight through `node`.
    pub fn busy(&self, ns: &str, service: &str, node: &str) -> bool {
        self.busy
            .get(&(ns.to_string(), service.to_string(), node.to_string()))
            .is_some_and(|n| *n > 0)
    }

    fn track(&mut self, stream: usize, node: &str, up: bool) {
        let s = &self.streams[stream];
        let key = (s.namespace.clone(), s.service.clone(), node.to_string());
        if up {
            *self.busy.entry(key).or_default() += 1;
        } else if let Some(n) = self.busy.get_mut(&key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.busy.remove(&key);
            }
        }
    }

    /// The next moment something is due: a request to send or one to finish.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let start = self.streams.iter().filter_map(|s| s.next).min();
        let end = self.pending.peek().map(|Reverse(p)| p.end);
        start.into_iter().chain(end).min()
    }

    fn fail(
        &mut self,
        stream: usize,
        at: DateTime<Utc>,
        reason: FailureReason,
        node: Option<String>,
        pod: Option<String>,
    ) {
        let st = &mut self.stats[stream];
        st.failed += 1;
        *st.failures.entry(reason).or_default() += 1;
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(FailureSample {
                at,
                service: st.service.clone(),
                reason,
                node,
                pod,
            });
        }
    }

    /// Judges every request that has ended by `now`, in order of its end.
    pub fn complete_due(
        &mut self,
        now: DateTime<Utc>,
        balancers: &HashMap<(String, String), Balancer>,
        world: &World,
    ) {
        while self.pending.peek().is_some_and(|Reverse(p)| p.end <= now) {
            let Some(Reverse(p)) = self.pending.pop() else {
                break;
            };
            self.track(p.stream, &p.node, false);
            let gone = |t: Option<&DateTime<Utc>>| t.is_some_and(|t| *t <= p.end);
            let stream = &self.streams[p.stream];
            let lb = balancers.get(&(stream.namespace.clone(), stream.service.clone()));
            let reason = if gone(world.node_gone_at(&p.node).as_ref())
                || p.pod_node
                    .as_ref()
                    .is_some_and(|n| gone(world.node_gone_at(n).as_ref()))
            {
                Some(FailureReason::NodeGone)
            } else if gone(world.pods_gone.get(&p.pod_uid)) {
                Some(FailureReason::PodKilled)
            } else if lb.is_some_and(|lb| lb.group.cut_by_deregistration(&p.node, p.start, p.end)) {
                Some(FailureReason::DrainTimeout)
            } else if p.idle_cut {
                Some(FailureReason::IdleTimeout)
            } else {
                None
            };
            match reason {
                Some(r) => self.fail(
                    p.stream,
                    p.start,
                    r,
                    Some(p.node.clone()),
                    Some(p.pod.clone()),
                ),
                None => self.stats[p.stream].succeeded += 1,
            }
        }
    }

    /// Sends every request due by `now`.
    pub fn issue_due(
        &mut self,
        now: DateTime<Utc>,
        balancers: &mut HashMap<(String, String), Balancer>,
        world: &World,
        inflight: &InFlight,
    ) {
        for i in 0..self.streams.len() {
            let interval = secs_delta(self.streams[i].interval_seconds);
            let mut due = *self.streams[i].next.get_or_insert(now);
            while due <= now {
                self.send(i, due, balancers, world, inflight);
                due += interval;
            }
            self.streams[i].next = Some(due);
        }
    }

    fn send(
        &mut self,
        i: usize,
        start: DateTime<Utc>,
        balancers: &mut HashMap<(String, String), Balancer>,
        world: &World,
        inflight: &InFlight,
    ) {
        self.stats[i].sent += 1;
        let s = &self.streams[i];
        let (ns, svc, secs) = (s.namespace.clone(), s.service.clone(), s.request_seconds);
        let Some(lb) = balancers.get_mut(&(ns.clone(), svc.clone())) else {
            return self.fail(i, start, FailureReason::NoTarget, None, None);
        };
        let node = match lb.group.pick(start) {
            Pick::Node(n) => n,
            Pick::NoTarget => return self.fail(i, start, FailureReason::NoTarget, None, None),
        };
        *self.stats[i].by_node.entry(node.clone()).or_default() += 1;
        if !world.nodes.contains_key(&node) || world.dead.contains_key(&node) {
            return self.fail(i, start, FailureReason::NodeGone, Some(node), None);
        }
        // Local: kube-proxy only forwards to pods on the node the request arrived at.
        let candidates =
            world.routable_endpoints(&ns, &svc, lb.local.then_some(node.as_str()), start);
        if candidates.is_empty() {
            return self.fail(i, start, FailureReason::NoEndpoint, Some(node), None);
        }
        lb.endpoint_cursor = lb.endpoint_cursor.wrapping_add(1);
        let ep = candidates[lb.endpoint_cursor % candidates.len()];
        let Some(pod) = world.pods.get(&ep.pod_uid) else {
            // `routable_endpoints` lists only pods that exist.
            return self.fail(i, start, FailureReason::PodKilled, Some(node), None);
        };
        let idle_cut = secs > f64::from(lb.group.settings.idle_timeout_seconds);
        self.track(i, &node, true);
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            end: start + secs_delta(secs),
            seq: self.seq,
            stream: i,
            start,
            node,
            pod_uid: ep.pod_uid.clone(),
            pod: format!("{}/{}", pod.namespace, pod.name),
            pod_node: pod.node.clone(),
            idle_cut,
            _guard: inflight.begin(&ep.pod_uid),
        }));
    }
}
