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
use crate::sim::podutil::OnSigterm;
use crate::sim::{InFlight, InFlightGuard};
use crate::store::load::RateSchedule;

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
    /// A keep-alive stream's connections.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<ConnectionStats>,
}

/// How a keep-alive stream's connections ended.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionStats {
    pub opened: u64,
    /// Closed when idle by their server (on SIGTERM, by a process that shuts down
    /// gracefully) or at their age limit: the client just opens another.
    pub closed_gracefully: u64,
    /// Ended by anything else: the node or the pod gone, the process exiting on SIGTERM, the
    /// load balancer at the end of a deregistration delay.
    pub reset: u64,
    pub resets: BTreeMap<FailureReason, u64>,
    /// Resets by the workload of the pod at the connection's end, and reason.
    #[serde(default)]
    pub by_workload: BTreeMap<String, BTreeMap<FailureReason, u64>>,
    /// Still open when the figures were taken.
    pub open: u64,
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
    /// A keep-alive connection reset (`at`: when), not a request.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connection: bool,
}

/// Every failure alike (the same stream, path, reason, node and pod), counted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureGroup {
    pub service: String,
    pub stream: String,
    pub path: String,
    pub reason: FailureReason,
    pub node: Option<String>,
    pub pod: Option<String>,
    /// Keep-alive connection resets, not requests.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connection: bool,
    pub count: u64,
    /// When the first and the last of them started (a reset: when it happened).
    pub first: DateTime<Utc>,
    pub last: DateTime<Utc>,
}

/// The probe's figures.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStats {
    pub services: Vec<ServiceTraffic>,
    /// The first failures, at most 200.
    pub samples: Vec<FailureSample>,
    /// Every failure, grouped by stream, path, reason, node and pod, in order of first.
    #[serde(default)]
    pub failure_groups: Vec<FailureGroup>,
}

impl ProbeStats {
    /// Figures with these failures, each counted in its group (a report built by hand).
    pub fn with_failures(services: Vec<ServiceTraffic>, failures: Vec<FailureSample>) -> Self {
        let mut probe = Probe::default();
        for f in failures {
            probe.record(f);
        }
        let mut stats = probe.stats();
        stats.services = services;
        stats
    }

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
    /// Keep-alive connections opened, and reset, over every stream.
    pub fn connections(&self) -> (u64, u64) {
        self.services
            .iter()
            .filter_map(|s| s.connections.as_ref())
            .fold((0, 0), |(o, r), c| (o + c.opened, r + c.reset))
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
    /// Requests per second, changing at set times after the migration starts.
    pub rate: RateSchedule,
    pub request_seconds: f64,
    pub next: Option<DateTime<Utc>>,
    pub(crate) cursor: usize,
    pub(crate) backend_cursor: usize,
    /// Keep-alive: one slot per connection, `None` until the slot's next request opens one.
    /// Empty: every request has its own connection.
    pub(crate) conns: Vec<Option<Conn>>,
    pub(crate) conn_cursor: usize,
    /// A keep-alive connection's age limit.
    pub max_age_seconds: Option<f64>,
}

impl Stream {
    /// A stream at `rate` requests per second of `request_seconds` each, to a Service, each
    /// request on its own connection.
    pub fn new(
        (namespace, service): (String, String),
        via: Via,
        backend: Option<(String, String)>,
        rate: RateSchedule,
        request_seconds: f64,
    ) -> Self {
        Self {
            namespace,
            service,
            via,
            backend,
            rate,
            request_seconds,
            next: None,
            cursor: 0,
            backend_cursor: 0,
            conns: Vec::new(),
            conn_cursor: 0,
            max_age_seconds: None,
        }
    }

    /// The requests go over `connections` keep-alive connections in turn, each closed by its
    /// client once `max_age_seconds` old.
    pub fn keep_alive(mut self, connections: u32, max_age_seconds: Option<f64>) -> Self {
        self.conns = (0..connections.max(1)).map(|_| None).collect();
        self.max_age_seconds = max_age_seconds;
        self
    }

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

/// A keep-alive connection: pinned, from the moment it opened, to the load balancer's target
/// (its connection tracking) and to the pod kube-proxy's conntrack entry chose. kube-proxy
/// leaves established TCP connections alone when the endpoint goes (it clears conntrack
/// entries for UDP only: `pkg/proxy/conntrack`), so only the pod, its node, the load balancer
/// or the client end it.
#[derive(Clone, Debug)]
pub(crate) struct Conn {
    opened: DateTime<Utc>,
    /// The load balancer's target: a node, or the pod's UID for an IP target.
    target: Option<String>,
    uid: String,
    /// `namespace/name`.
    pod: String,
    node: Option<String>,
    workload: String,
    path: String,
    /// When the last request sent on it ends.
    busy_until: DateTime<Utc>,
    /// The node its requests count for in [`ServiceTraffic::by_node`], behind a load balancer.
    counted_node: Option<String>,
}

/// How a keep-alive connection ended.
enum Close {
    Graceful,
    Reset(FailureReason),
}

/// Where a new connection went: the load balancer's target and the pod that took it.
struct Route<'w> {
    /// The load balancer's target: a node, or the pod's UID for an IP target.
    target: Option<String>,
    pod: &'w PodView,
    path: Vec<String>,
    idle_cut: bool,
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

/// (service, stream, path, reason, node, pod, connection).
type GroupKey = (
    String,
    String,
    String,
    FailureReason,
    Option<String>,
    Option<String>,
    bool,
);

/// The probe's state: its streams, the requests in flight and the figures.
#[derive(Default)]
pub struct Probe {
    pub streams: Vec<Stream>,
    pending: BinaryHeap<Reverse<Pending>>,
    stats: Vec<ServiceTraffic>,
    samples: Vec<FailureSample>,
    /// Every failure, by what [`FailureGroup`] groups it by: count, first and last.
    groups: BTreeMap<GroupKey, (u64, DateTime<Utc>, DateTime<Utc>)>,
    seq: u64,
    /// Requests in flight by (namespace, service, target node).
    busy: HashMap<(String, String, String), u32>,
    /// No request is sent while set.
    pub paused: bool,
    /// When the migration started (streams' ramps count from it).
    pub started: Option<DateTime<Utc>>,
}

impl Probe {
    pub fn new(streams: Vec<Stream>, paused: bool) -> Self {
        let stats = streams
            .iter()
            .map(|s| ServiceTraffic {
                service: format!("{}/{}", s.namespace, s.service),
                stream: s.name(),
                connections: (!s.conns.is_empty()).then(ConnectionStats::default),
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
        for (st, s) in services.iter_mut().zip(&self.streams) {
            if let Some(c) = &mut st.connections {
                c.open = s.conns.iter().flatten().count() as u64;
            }
        }
        let mut failure_groups: Vec<FailureGroup> = self
            .groups
            .iter()
            .map(
                |((service, stream, path, reason, node, pod, connection), (count, first, last))| {
                    FailureGroup {
                        service: service.clone(),
                        stream: stream.clone(),
                        path: path.clone(),
                        reason: *reason,
                        node: node.clone(),
                        pod: pod.clone(),
                        connection: *connection,
                        count: *count,
                        first: *first,
                        last: *last,
                    }
                },
            )
            .collect();
        failure_groups.sort_by_key(|g| g.first);
        ProbeStats {
            services,
            samples: self.samples.clone(),
            failure_groups,
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
        let sample = FailureSample {
            at: start,
            service: st.service.clone(),
            stream: st.stream.clone(),
            path,
            reason,
            node: at.node,
            pod: at.pod,
            connection: false,
        };
        self.record(sample);
    }

    /// Counts a failure in its group, and keeps it as a sample while there is room.
    fn record(&mut self, f: FailureSample) {
        let key = (
            f.service.clone(),
            f.stream.clone(),
            f.path.clone(),
            f.reason,
            f.node.clone(),
            f.pod.clone(),
            f.connection,
        );
        let g = self.groups.entry(key).or_insert((0, f.at, f.at));
        g.0 += 1;
        g.1 = g.1.min(f.at);
        g.2 = g.2.max(f.at);
        if self.samples.len() < MAX_SAMPLES {
            self.samples.push(f);
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
        if !self.paused {
            for i in 0..self.streams.len() {
                let mut due = *self.streams[i].next.get_or_insert(now);
                while due <= now {
                    self.send(i, due, balancers, world, inflight);
                    let elapsed = self
                        .started
                        .map(|s| (due - s).num_milliseconds() as f64 / 1e3);
                    due += secs_delta(1.0 / self.streams[i].rate.at(elapsed).max(1e-3));
                }
                self.streams[i].next = Some(due);
            }
        }
        self.settle_connections(now, balancers, world);
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

    /// Routes a new connection of stream `i` at `start`: through the load balancer to its
    /// target, then kube-proxy (or straight to the pod for an IP target), or through the
    /// ClusterIP. `None` when it failed there (counted).
    fn route<'w>(
        &mut self,
        i: usize,
        start: DateTime<Utc>,
        balancers: &mut HashMap<(String, String), Balancer>,
        world: &'w World,
    ) -> Option<Route<'w>> {
        let s = &self.streams[i];
        let (ns, svc, secs, via) = (
            s.namespace.clone(),
            s.service.clone(),
            s.request_seconds,
            s.via,
        );
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
                    self.fail(i, start, FailureReason::NoTarget, path, At::default());
                    return None;
                };
                let kind = format!("{:?}", lb.group.settings.kind).to_uppercase();
                path.push(format!("{kind} {ns}/{svc}"));
                let n = match lb.group.pick(start) {
                    Pick::Node(n) => n,
                    Pick::NoTarget => {
                        let path = path.join(" → ");
                        self.fail(i, start, FailureReason::NoTarget, path, At::default());
                        return None;
                    }
                };
                idle_cut = secs > f64::from(lb.group.settings.idle_timeout_seconds);
                if lb.ip() {
                    // An IP target: the pod itself, no node port and no kube-proxy.
                    ip_target = Some(n);
                    break 'lb;
                }
                *self.stats[i].by_node.entry(n.clone()).or_default() += 1;
                path.push(format!("node {n}"));
                if world.node_gone_at(&n).is_some_and(|t| t <= start) {
                    let path = path.join(" → ");
                    self.fail(i, start, FailureReason::NodeGone, path, At::node(&n));
                    return None;
                }
                local = lb.local;
                node = Some(n);
            }
            Via::ClusterIp => path.push(format!("clusterIP {ns}/{svc}")),
            Via::Dns => path.push(format!("dns {ns}/{svc}")),
        }
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
                self.fail(i, start, reason, path.join(" → "), at);
                return None;
            }
        };
        path.push(format!("pod {}/{}", pod.namespace, pod.name));
        if let Some(uid) = ip_target {
            if let Some(n) = &pod.node {
                *self.stats[i].by_node.entry(n.clone()).or_default() += 1;
            }
            // The target the load balancer drains is the pod.
            node = Some(uid);
        }
        Some(Route {
            target: node,
            pod,
            path,
            idle_cut,
        })
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
        if !self.streams[i].conns.is_empty() {
            return self.send_keep_alive(i, start, balancers, world, inflight);
        }
        let Some(route) = self.route(i, start, balancers, world) else {
            return;
        };
        let (mut path, node, idle_cut) = (route.path, route.target, route.idle_cut);
        let mut hops = vec![hop_of(route.pod, inflight)];
        if let Some((bns, bsvc)) = self.streams[i].backend.clone() {
            path.push(format!("{bns}/{bsvc}"));
            let mut cursor = self.streams[i].backend_cursor;
            let second = Self::reach(
                world,
                (&bns, &bsvc),
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
        self.pend(i, start, node, hops, path.join(" → "), idle_cut);
    }

    fn pend(
        &mut self,
        i: usize,
        start: DateTime<Utc>,
        node: Option<String>,
        hops: Vec<Hop>,
        path: String,
        idle_cut: bool,
    ) {
        if let Some(n) = &node {
            self.track(i, n, true);
        }
        self.seq += 1;
        self.pending.push(Reverse(Pending {
            end: start + secs_delta(self.streams[i].request_seconds),
            seq: self.seq,
            stream: i,
            start,
            node,
            hops,
            path,
            idle_cut,
        }));
    }

    /// Sends a request of a keep-alive stream on its next connection, opening one if that
    /// slot has none (or its connection ended by `start`).
    fn send_keep_alive(
        &mut self,
        i: usize,
        start: DateTime<Utc>,
        balancers: &mut HashMap<(String, String), Balancer>,
        world: &World,
        inflight: &InFlight,
    ) {
        let slot = self.streams[i].conn_cursor % self.streams[i].conns.len();
        self.streams[i].conn_cursor = self.streams[i].conn_cursor.wrapping_add(1);
        self.settle(i, slot, start, balancers, world);
        if self.streams[i].conns[slot].is_none() {
            let Some(route) = self.route(i, start, balancers, world) else {
                return;
            };
            let pod = route.pod;
            let counted_node = match self.streams[i].via {
                Via::LoadBalancer if balancers_ip(balancers, &self.streams[i]) => pod.node.clone(),
                Via::LoadBalancer => route.target.clone(),
                _ => None,
            };
            let conn = Conn {
                counted_node,
                opened: start,
                target: route.target,
                uid: pod.uid.clone(),
                pod: format!("{}/{}", pod.namespace, pod.name),
                node: pod.node.clone(),
                workload: pod.workload.clone(),
                path: route.path.join(" → "),
                busy_until: start,
            };
            if let Some(t) = &conn.target {
                self.track(i, t, true);
            }
            if let Some(c) = &mut self.stats[i].connections {
                c.opened += 1;
            }
            self.streams[i].conns[slot] = Some(conn);
        } else if let Some(n) = self.streams[i].conns[slot]
            .as_ref()
            .and_then(|c| c.counted_node.clone())
        {
            // The load balancer forwards it to the same target.
            *self.stats[i].by_node.entry(n).or_default() += 1;
        }
        let end = start + secs_delta(self.streams[i].request_seconds);
        let Some(c) = self.streams[i].conns[slot].as_mut() else {
            return;
        };
        c.busy_until = c.busy_until.max(end);
        let hop = Hop {
            _guard: inflight.begin(&c.uid),
            uid: c.uid.clone(),
            pod: c.pod.clone(),
            node: c.node.clone(),
            workload: c.workload.clone(),
        };
        let (target, path) = (c.target.clone(), c.path.clone());
        self.pend(i, start, target, vec![hop], path, false);
    }

    /// Ends connection `slot` of stream `i` if it ended by `now`, and counts how.
    fn settle(
        &mut self,
        i: usize,
        slot: usize,
        now: DateTime<Utc>,
        balancers: &HashMap<(String, String), Balancer>,
        world: &World,
    ) {
        let stream = &self.streams[i];
        let Some(c) = &stream.conns[slot] else {
            return;
        };
        let lb = (stream.via == Via::LoadBalancer)
            .then(|| balancers.get(&(stream.namespace.clone(), stream.service.clone())))
            .flatten();
        let Some((at, close)) =
            connection_end(c, lb, world, stream.max_age_seconds).filter(|(at, _)| *at <= now)
        else {
            return;
        };
        let Some(c) = self.streams[i].conns[slot].take() else {
            return;
        };
        if let Some(t) = &c.target {
            self.track(i, t, false);
        }
        let st = &mut self.stats[i];
        let Some(cs) = &mut st.connections else {
            return;
        };
        match close {
            Close::Graceful => cs.closed_gracefully += 1,
            Close::Reset(reason) => {
                cs.reset += 1;
                *cs.resets.entry(reason).or_default() += 1;
                *cs.by_workload
                    .entry(c.workload.clone())
                    .or_default()
                    .entry(reason)
                    .or_default() += 1;
                let sample = FailureSample {
                    at,
                    service: st.service.clone(),
                    stream: st.stream.clone(),
                    path: format!("{} (keep-alive)", c.path),
                    reason,
                    node: c.node.clone(),
                    pod: Some(c.pod.clone()),
                    connection: true,
                };
                self.record(sample);
            }
        }
    }

    /// Ends every keep-alive connection that ended by `now` (so a draining target with no
    /// connection left finishes its drain).
    pub fn settle_connections(
        &mut self,
        now: DateTime<Utc>,
        balancers: &HashMap<(String, String), Balancer>,
        world: &World,
    ) {
        for i in 0..self.streams.len() {
            for slot in 0..self.streams[i].conns.len() {
                self.settle(i, slot, now, balancers, world);
            }
        }
    }
}

/// Whether the stream's load balancer has IP targets (its connections' targets are pods).
fn balancers_ip(balancers: &HashMap<(String, String), Balancer>, s: &Stream) -> bool {
    balancers
        .get(&(s.namespace.clone(), s.service.clone()))
        .is_some_and(Balancer::ip)
}

/// When and how a keep-alive connection ends, as far as is known: the first of
/// - a reset: its load balancer target's node or its pod's node gone (a terminated instance
///   answers nothing, and its conntrack state is lost with it), its pod removed, its process
///   exiting on SIGTERM, or its load balancer closing it at the end of a deregistration delay
///   ([`TargetGroup::connections_cut_at`](super::targets::TargetGroup::connections_cut_at));
/// - a graceful close, once no request is in flight on it: its server shutting down on
///   SIGTERM ([`OnSigterm::StopAccepting`]: Go's `http.Server.Shutdown` "closing all idle
///   connections"), or its age limit. A lame-duck server ([`OnSigterm::FinishInFlight`])
///   keeps serving it until it is killed.
fn connection_end(
    c: &Conn,
    lb: Option<&Balancer>,
    world: &World,
    max_age: Option<f64>,
) -> Option<(DateTime<Utc>, Close)> {
    let ip = lb.is_some_and(Balancer::ip);
    let mut resets: Vec<(DateTime<Utc>, FailureReason)> = Vec::new();
    let lb_node = c.target.as_deref().filter(|_| !ip);
    for n in lb_node.into_iter().chain(c.node.as_deref()) {
        resets.extend(world.node_gone_at(n).map(|t| (t, FailureReason::NodeGone)));
    }
    if let Some(t) = world.pods_gone.get(&c.uid) {
        let reason = if world.pods_aborted.contains(&c.uid) {
            FailureReason::Aborted
        } else {
            FailureReason::PodKilled
        };
        resets.push((*t, reason));
    }
    let view = world
        .pods
        .get(&c.uid)
        .or_else(|| world.pods_removed.get(&c.uid));
    let sigterm = view.and_then(|v| v.accepting_until.map(|t| (t, v.on_sigterm)));
    if let Some((t, OnSigterm::Exit)) = sigterm {
        resets.push((t, FailureReason::Aborted));
    }
    if let (Some(lb), Some(target)) = (lb, &c.target) {
        resets.extend(
            lb.group
                .connections_cut_at(target, c.opened)
                .map(|t| (t, FailureReason::DrainTimeout)),
        );
    }
    let mut graceful: Vec<DateTime<Utc>> = Vec::new();
    if let Some((t, OnSigterm::StopAccepting)) = sigterm {
        graceful.push(t.max(c.busy_until));
    }
    if let Some(age) = max_age {
        graceful.push((c.opened + secs_delta(age)).max(c.busy_until));
    }
    let reset = resets.into_iter().min_by_key(|(t, _)| *t);
    let graceful = graceful.into_iter().min();
    match (graceful, reset) {
        (Some(g), Some((r, _))) if g < r => Some((g, Close::Graceful)),
        (_, Some((r, reason))) => Some((r, Close::Reset(reason))),
        (Some(g), None) => Some((g, Close::Graceful)),
        (None, None) => None,
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
