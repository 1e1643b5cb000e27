//! The traffic probe: steady streams of requests on the twin's clock, with every failure
//! counted by reason and by the path it took.
//!
//! A stream enters through its Service's load balancer (round-robin among healthy target
//! nodes, then kube-proxy on that node: `Local`, a ready pod on that node; `Cluster`, any
//! ready pod), or from a pod through the Service's ClusterIP (kube-proxy on the client's
//! node), or as DNS lookups to a kube-dns Service the same way. A chained stream goes on from
//! the pod it reached (an ingress controller) to a backend Service's endpoints, as the
//! ingress controller picks them. Every consumer routes by the EndpointSlices as it last saw
//! them ([`World::routable_endpoints`]), so a connection can reach a pod whose process no
//! longer takes it: it is refused.
//!
//! A request holds each pod it reached for its duration (registered in [`InFlight`] so the
//! kubelet keeps a terminating pod until the request is done or its grace period ends). It is
//! judged when it ends: it failed if a node or pod on its path went before then (a process
//! that exits on SIGTERM cuts it), or if its target's deregistration delay ended first.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Balancer;
use super::targets::Pick;
use super::world::{Consumer, PodView, World};
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
    /// kube-proxy (or the ingress controller) found no endpoint to send it to (`Local`: none
    /// on that node).
    NoEndpoint,
    /// The target was deregistered and its deregistration delay ended first.
    DrainTimeout,
    /// The request outlasted the load balancer's idle timeout.
    IdleTimeout,
    /// A consumer that had not yet seen the endpoint go sent the connection to a pod whose
    /// process no longer took connections (it had SIGTERM after its preStop hook, or was
    /// gone): connection refused.
    Refused,
    /// The pod's process exited on SIGTERM with the request in flight (no graceful
    /// shutdown): connection reset.
    Aborted,
}

impl FailureReason {
    /// Failures a workload causes itself, on any rollout, by how its pods stop (no preStop
    /// hook long enough for its consumers' lag, no graceful shutdown): what pre-flight names.
    pub fn is_workloads_own(self) -> bool {
        matches!(self, Self::Refused | Self::Aborted)
    }
}

/// How a stream reaches its Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Via {
    /// Through the Service's load balancer (and the node port).
    #[default]
    LoadBalancer,
    /// From a pod to the Service's ClusterIP, through kube-proxy.
    ClusterIp,
    /// DNS lookups from a pod to the kube-dns Service's ClusterIP, through kube-proxy.
    Dns,
}

/// The requests of one stream.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceTraffic {
    /// `namespace/name` of the Service the stream enters.
    pub service: String,
    /// How: `loadBalancer`, `clusterIp` or `dns`, and ` → namespace/name` of the backend
    /// Service of a chained stream.
    pub stream: String,
    pub sent: u64,
    pub succeeded: u64,
    pub failed: u64,
    /// Still running when the figures were taken (neither succeeded nor failed yet).
    pub in_flight: u64,
    pub failures: BTreeMap<FailureReason, u64>,
    /// Failures on a pod, by the pod's workload (`Deployment shop/cart`) and reason.
    #[serde(default)]
    pub by_workload: BTreeMap<String, BTreeMap<FailureReason, u64>>,
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
    /// The stream, as [`ServiceTraffic::stream`].
    #[serde(default)]
    pub stream: String,
    /// Every hop the request took, as far as it got: `CLB shop/web → node n1 → pod shop/web-x`.
    #[serde(default)]
    pub path: String,
    pub reason: FailureReason,
    /// The node of the hop that failed (the target node when the load balancer failed).
    pub node: Option<String>,
    /// `namespace/name` of the pod of the hop that failed, when one was chosen.
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
    pub via: Via,
    /// A chained stream: the pods of `service` proxy each request on to this Service's
    /// endpoints, (namespace, name).
    pub backend: Option<(String, String)>,
    pub interval_seconds: f64,
    pub request_seconds: f64,
    pub next: Option<DateTime<Utc>>,
    pub(crate) cursor: usize,
    pub(crate) backend_cursor: usize,
}

impl Stream {
    fn name(&self) -> String {
        let via = match self.via {
            Via::LoadBalancer => "loadBalancer",
            Via::ClusterIp => "clusterIp",
            Via::Dns => "dns",
        };
        match &self.backend {
            Some((ns, svc)) => format!("{via} → {ns}/{svc}"),
            None => via.to_string(),
        }
    }
}

/// One pod a request reached.
struct Hop {
    uid: String,
    /// `namespace/name`.
    pod: String,
    node: Option<String>,
    workload: String,
    _guard: InFlightGuard,
}

/// Where a failed request failed.
#[derive(Default)]
struct At {
    node: Option<String>,
    pod: Option<String>,
    workload: Option<String>,
}

impl At {
    fn node(node: &str) -> Self {
        Self {
            node: Some(node.to_string()),
            ..Self::default()
        }
    }
    fn pod(p: &PodView) -> Self {
        Self {
            node: p.node.clone(),
            pod: Some(format!("{}/{}", p.namespace, p.name)),
            workload: Some(p.workload.clone()),
        }
    }
    fn hop(h: &Hop) -> Self {
        Self {
            node: h.node.clone(),
            pod: Some(h.pod.clone()),
            workload: Some(h.workload.clone()),
        }
    }
}

struct Pending {
    end: DateTime<Utc>,
    seq: u64,
    stream: usize,
    start: DateTime<Utc>,
    /// The load balancer's target node.
    node: Option<String>,
    /// The pods reached, in order (the ingress pod, then the backend's).
    hops: Vec<Hop>,
    path: String,
    idle_cut: bool,
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
    /// No request is sent while set.
    pub paused: bool,
}

impl Probe {
    pub fn new(streams: Vec<Stream>, paused: bool) -> Self {
        let stats = streams
            .iter()
            .map(|s| ServiceTraffic {
                service: format!("{}/{}", s.namespace, s.service),
                stream: s.name(),
                ..ServiceTraffic::default()
            })
            .collect();
        Self {
            streams,
            stats,
            paused,
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
        let start = self
            .streams
            .iter()
            .filter(|_| !self.paused)
            .filter_map(|s| s.next)
            .min();
        let end = self.pending.peek().map(|Reverse(p)| p.end);
        start.into_iter().chain(end).min()
    }

    fn fail(
        &mut self,
        stream: usize,
        start: DateTime<Utc>,
        reason: FailureReason,
        path: String,
        at: At,
    ) {
        let st = &mut self.stats[stream];
        st.failed += 1;
        *st.failures.entry(reason).or_default() += 1;
        if let Some(w) = &at.workload {
            *st.by_workload
                .entry(w.clone())
                .or_default()
                .entry(reason)
                .or_default() += 1;
        }
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(FailureSample {
                at: start,
                service: st.service.clone(),
                stream: st.stream.clone(),
                path,
                reason,
                node: at.node,
                pod: at.pod,
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
            if let Some(node) = &p.node {
                self.track(p.stream, node, false);
            }
            let gone = |t: Option<DateTime<Utc>>| t.is_some_and(|t| t <= p.end);
            let stream = &self.streams[p.stream];
            let lb = balancers.get(&(stream.namespace.clone(), stream.service.clone()));
            let verdict =
                if let Some(node) = p.node.as_ref().filter(|n| gone(world.node_gone_at(n))) {
                    Some((FailureReason::NodeGone, At::node(node)))
                } else {
                    p.hops.iter().find_map(|h| {
                        if h.node.as_ref().is_some_and(|n| gone(world.node_gone_at(n))) {
                            Some((FailureReason::NodeGone, At::hop(h)))
                        } else if gone(world.pods_gone.get(&h.uid).copied()) {
                            let reason = if world.pods_aborted.contains(&h.uid) {
                                FailureReason::Aborted
                            } else {
                                FailureReason::PodKilled
                            };
                            Some((reason, At::hop(h)))
                        } else {
                            None
                        }
                    })
                }
                .or_else(|| {
                    let node = p.node.as_ref()?;
                    let at = || p.hops.first().map_or_else(|| At::node(node), At::hop);
                    if lb.is_some_and(|lb| lb.group.cut_by_deregistration(node, p.start, p.end)) {
                        Some((FailureReason::DrainTimeout, at()))
                    } else if p.idle_cut {
                        Some((FailureReason::IdleTimeout, at()))
                    } else {
                        None
                    }
                });
            match verdict {
                Some((reason, at)) => self.fail(p.stream, p.start, reason, p.path, at),
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
        if self.paused {
            return;
        }
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

    /// Picks the pod a consumer sends a new connection to, round-robin by `cursor`: `Err`
    /// with the failure when there is none, or it does not take the connection.
    fn reach<'w>(
        world: &'w World,
        (ns, svc): (&str, &str),
        node: Option<&str>,
        consumer: Consumer,
        start: DateTime<Utc>,
        cursor: &mut usize,
    ) -> Result<&'w PodView, (FailureReason, At, Option<String>)> {
        let candidates = world.routable_endpoints(ns, svc, node, start, consumer);
        if candidates.is_empty() {
            return Err((
                FailureReason::NoEndpoint,
                node.map(At::node).unwrap_or_default(),
                None,
            ));
        }
        *cursor = cursor.wrapping_add(1);
        let ep = &candidates[*cursor % candidates.len()];
        // A pod removed after the request started (the probe runs behind the clock at times)
        // still took it then; one removed before, which the consumer has not seen go, no
        // longer answers.
        Self::answer(world, &ep.pod_uid, ep.node.as_deref(), start)
    }

    /// The pod a connection reached at `start`, if it takes it. A pod removed after the
    /// request started (the probe runs behind the clock at times) still took it then; one
    /// removed before, which the sender has not seen go, no longer answers.
    fn answer<'w>(
        world: &'w World,
        uid: &str,
        node: Option<&str>,
        start: DateTime<Utc>,
    ) -> Result<&'w PodView, (FailureReason, At, Option<String>)> {
        let existing = world.pods.get(uid).or_else(|| {
            world
                .pods_gone
                .get(uid)
                .filter(|gone| **gone > start)
                .and(world.pods_removed.get(uid))
        });
        let Some(pod) = existing else {
            let (at, hop) = match world.pods_removed.get(uid) {
                Some(p) => (At::pod(p), format!("pod {}/{} (gone)", p.namespace, p.name)),
                None => (
                    At {
                        node: node.map(str::to_string),
                        ..At::default()
                    },
                    "pod (gone)".to_string(),
                ),
            };
            // On a node that went too, nothing answers at all: it times out.
            let reason = if at
                .node
                .as_deref()
                .is_some_and(|n| world.node_gone_at(n).is_some())
            {
                FailureReason::NodeGone
            } else {
                FailureReason::Refused
            };
            return Err((reason, at, Some(hop)));
        };
        if pod
            .node
            .as_deref()
            .is_some_and(|n| world.node_gone_at(n).is_some_and(|t| t <= start))
        {
            let hop = format!("pod {}/{}", pod.namespace, pod.name);
            return Err((FailureReason::NodeGone, At::pod(pod), Some(hop)));
        }
        if !pod.accepts(start) {
            let hop = format!("pod {}/{}", pod.namespace, pod.name);
            return Err((FailureReason::Refused, At::pod(pod), Some(hop)));
        }
        Ok(pod)
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
        let (ns, svc, secs, via) = (
            s.namespace.clone(),
            s.service.clone(),
            s.request_seconds,
            s.via,
        );
        let backend = s.backend.clone();
        let mut path: Vec<String> = Vec::new();
        let mut idle_cut = false;
        // The load balancer's target node, and whether kube-proxy keeps to it (`Local`).
        let mut node = None;
        let mut local = false;
        // An IP target group's pick: the pod's UID.
        let mut ip_target: Option<String> = None;
        match via {
            Via::LoadBalancer => 'lb: {
                let Some(lb) = balancers.get_mut(&(ns.clone(), svc.clone())) else {
                    let path = format!("no load balancer for {ns}/{svc}");
                    return self.fail(i, start, FailureReason::NoTarget, path, At::default());
                };
                let kind = format!("{:?}", lb.group.settings.kind).to_uppercase();
                path.push(format!("{kind} {ns}/{svc}"));
                let n = match lb.group.pick(start) {
                    Pick::Node(n) => n,
                    Pick::NoTarget => {
                        return self.fail(
                            i,
                            start,
                            FailureReason::NoTarget,
                            path.join(" → "),
                            At::default(),
                        );
                    }
                };
                if lb.ip() {
                    // An IP target: the pod itself, no node port and no kube-proxy.
                    idle_cut = secs > f64::from(lb.group.settings.idle_timeout_seconds);
                    ip_target = Some(n);
                    break 'lb;
                }
                *self.stats[i].by_node.entry(n.clone()).or_default() += 1;
                path.push(format!("node {n}"));
                if world.node_gone_at(&n).is_some_and(|t| t <= start) {
                    return self.fail(
                        i,
                        start,
                        FailureReason::NodeGone,
                        path.join(" → "),
                        At::node(&n),
                    );
                }
                idle_cut = secs > f64::from(lb.group.settings.idle_timeout_seconds);
                local = lb.local;
                node = Some(n);
            }
            Via::ClusterIp => path.push(format!("clusterIP {ns}/{svc}")),
            Via::Dns => path.push(format!("dns {ns}/{svc}")),
        }
        let mut hops = Vec::new();
        let first = match &ip_target {
            Some(uid) => Self::answer(world, uid, None, start),
            None => {
                let mut cursor = self.streams[i].cursor;
                let first = Self::reach(
                    world,
                    (&ns, &svc),
                    node.as_deref().filter(|_| local),
                    Consumer::KubeProxy,
                    start,
                    &mut cursor,
                );
                self.streams[i].cursor = cursor;
                first
            }
        };
        let pod = match first {
            Ok(pod) => pod,
            Err((reason, at, hop)) => {
                path.extend(hop);
                let at = if at.node.is_none() {
                    node.as_deref().map(At::node).unwrap_or_default()
                } else {
                    at
                };
                return self.fail(i, start, reason, path.join(" → "), at);
            }
        };
        path.push(format!("pod {}/{}", pod.namespace, pod.name));
        hops.push(hop_of(pod, inflight));
        if let Some(uid) = ip_target {
            if let Some(n) = &pod.node {
                *self.stats[i].by_node.entry(n.clone()).or_default() += 1;
            }
            // The target the load balancer drains is the pod.
            node = Some(uid);
        }
        if let Some((bns, bsvc)) = &backend {
            path.push(format!("{bns}/{bsvc}"));
            let mut cursor = self.streams[i].backend_cursor;
            let second = Self::reach(
                world,
                (bns, bsvc),
                None,
                Consumer::Ingress,
                start,
                &mut cursor,
            );
            self.streams[i].backend_cursor = cursor;
            match second {
                Ok(pod) => {
                    path.push(format!("pod {}/{}", pod.namespace, pod.name));
                    hops.push(hop_of(pod, inflight));
                }
                Err((reason, at, hop)) => {
                    path.extend(hop);
                    return self.fail(i, start, reason, path.join(" → "), at);
                }
            }
        }
        if let Some(n) = &node {
            self.track(i, n, true);
        }
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            end: start + secs_delta(secs),
            seq: self.seq,
            stream: i,
            start,
            node,
            hops,
            path: path.join(" → "),
            idle_cut,
        }));
    }
}

fn hop_of(pod: &PodView, inflight: &InFlight) -> Hop {
    let uid = pod.uid.clone();
    Hop {
        _guard: inflight.begin(&uid),
        uid,
        pod: format!("{}/{}", pod.namespace, pod.name),
        node: pod.node.clone(),
        workload: pod.workload.clone(),
    }
}
