//! What the load balancers and kube-proxy see of the cluster: nodes, pods and EndpointSlices,
//! kept current from the store's event stream, plus the moment each node and pod disappeared
//! (so a request can tell whether its node or pod went before it finished).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};

use chrono::{DateTime, Utc};
use serde_json::Value;

use k8s_openapi::api::core::v1::Pod;

use crate::clock::secs_delta;
use crate::scenario::EndpointLag;
use crate::sim::endpoints::SERVICE_NAME_LABEL;
use crate::sim::nodes::instance_id_of;
use crate::sim::podutil::{
    OnSigterm, containers_ready, gate_true, grace_seconds, prestop_seconds, readiness_gates,
};
use crate::store::{EventKind, Resource, Store, WatchEvent, parse_timestamp};

/// The label that takes a node out of every external load balancer, whatever its value
/// (Kubernetes 1.19+, and the AWS Load Balancer Controller honours it too).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

/// Seconds of slice history kept beyond the longest lag: the probe and load-balancer loop can
/// run behind the clock on a loaded machine (at 120×, 30 s is a quarter of a second of wall
/// time), and a request is routed as of its own start.
const HISTORY_SLACK_SECONDS: f64 = 30.0;

/// One node as a load balancer sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub name: String,
    /// The EC2 instance id from `spec.providerID` (what instance targets are registered by).
    pub instance_id: Option<String>,
    /// Carries [`EXCLUDE_LABEL`].
    pub excluded: bool,
}

/// One pod, as far as routing needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodView {
    pub uid: String,
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// `deletionTimestamp` is set: the pod is terminating.
    pub deleting_at: Option<DateTime<Utc>>,
    /// Terminating: when its preStop hook ends and its process gets SIGTERM and stops taking
    /// new connections (`deletionTimestamp` is the end of the grace period, which starts with
    /// the preStop hook).
    pub accepting_until: Option<DateTime<Utc>>,
    /// Terminating: when its deletion began (`deletionTimestamp` less the grace period).
    pub terminating_since: Option<DateTime<Utc>>,
    /// What its process does on SIGTERM.
    pub on_sigterm: OnSigterm,
    /// The workload it belongs to, as ngm's pre-flight names it (`Deployment shop/cart`,
    /// `DaemonSet kube-system/x`), or `pod ns/name` for a bare pod.
    pub workload: String,
    /// `status.podIP`: what an IP target is registered by.
    pub ip: Option<String>,
    /// The ContainersReady condition is True.
    pub containers_ready: bool,
    /// Its readiness gates whose condition is not True yet.
    pub gates_pending: BTreeSet<String>,
}

impl PodView {
    /// Whether its process takes a new connection at `t`: not terminating; or, terminating,
    /// its preStop hook still runs (SIGTERM not sent yet) or it serves on after SIGTERM.
    pub fn accepts(&self, t: DateTime<Utc>) -> bool {
        match self.accepting_until {
            None => true,
            Some(_) if self.on_sigterm == OnSigterm::FinishInFlight => true,
            Some(until) => t < until,
        }
    }
}

/// One endpoint of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointView {
    pub pod_uid: String,
    pub node: Option<String>,
    /// `conditions.ready`: serving and not terminating.
    pub ready: bool,
    /// `conditions.serving` (nil: as `ready`).
    pub serving: bool,
    /// `conditions.terminating` (nil: false).
    pub terminating: bool,
}

/// One version of an EndpointSlice.
#[derive(Debug)]
struct SliceVersion {
    /// When it was seen (`None`: there from the start).
    at: Option<DateTime<Utc>>,
    service: String,
    endpoints: Vec<EndpointView>,
}

/// Who reads the EndpointSlices, each after its own lag ([`EndpointLag`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumer {
    KubeProxy,
    Ingress,
}

/// The cluster as the load balancers see it.
#[derive(Debug, Default)]
pub struct World {
    pub nodes: BTreeMap<String, NodeView>,
    pub pods: HashMap<String, PodView>,
    /// EndpointSlices by (namespace, slice name): every version a consumer may still act on,
    /// oldest first (a deleted slice's last version lists nothing).
    slices: BTreeMap<(String, String), VecDeque<SliceVersion>>,
    /// Slice names by (namespace, service name), of every version kept.
    by_service: HashMap<(String, String), BTreeSet<String>>,
    /// Slices whose oldest versions were dropped: for a moment before the oldest kept one,
    /// that one is the best known.
    pruned: HashSet<(String, String)>,
    /// How long each consumer takes to see a slice change.
    pub lag: EndpointLag,
    /// When each removed node was seen to go, by name (the latest removal).
    pub nodes_gone: HashMap<String, DateTime<Utc>>,
    /// When each removed pod was seen to go, by UID.
    pub pods_gone: HashMap<String, DateTime<Utc>>,
    /// Removed pods whose process exited on SIGTERM ([`OnSigterm::Exit`]) before their grace
    /// period ended, by UID: what was in flight there was cut by the process, not the kubelet.
    pub pods_aborted: HashSet<String>,
    /// Removed pods as they last were, by UID: a consumer that has not seen one go still
    /// sends it connections, and the report names it.
    pub pods_removed: HashMap<String, PodView>,
    /// Nodes whose instance terminated, and when: their Node and pods may still be in the API,
    /// Ready, but nothing there answers (`crate::sim::nodelifecycle`).
    pub dead: BTreeMap<String, DateTime<Utc>>,
    /// Node changes, oldest first: when, which node, and its view before (None: it did not
    /// exist), for the controllers that see nodes late ([`World::nodes_as_of`]).
    node_changes: VecDeque<(DateTime<Utc>, String, Option<NodeView>)>,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn node_view(v: &Value) -> NodeView {
    NodeView {
        name: s(v, "/metadata/name").to_string(),
        instance_id: instance_id_of(v).map(str::to_string),
        excluded: v
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .is_some_and(|l| l.contains_key(EXCLUDE_LABEL)),
    }
}

fn pod_view(v: &Value) -> PodView {
    let deleting_at = v
        .pointer("/metadata/deletionTimestamp")
        .and_then(Value::as_str)
        .and_then(parse_timestamp);
    let pod: Option<Pod> = serde_json::from_value(v.clone()).ok();
    let grace = pod.as_ref().map_or(30.0, |p| grace_seconds(p) as f64);
    let terminating_since = deleting_at.map(|end| end - secs_delta(grace));
    let accepting_until = terminating_since
        .map(|start| start + secs_delta(pod.as_ref().map_or(0.0, prestop_seconds).min(grace)));
    let (namespace, name) = (s(v, "/metadata/namespace"), s(v, "/metadata/name"));
    PodView {
        uid: s(v, "/metadata/uid").to_string(),
        namespace: namespace.to_string(),
        name: name.to_string(),
        node: Some(s(v, "/spec/nodeName"))
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        deleting_at,
        accepting_until,
        on_sigterm: pod.as_ref().map(OnSigterm::of).unwrap_or_default(),
        terminating_since,
        ip: Some(s(v, "/status/podIP"))
            .filter(|ip| !ip.is_empty())
            .map(str::to_string),
        containers_ready: pod.as_ref().is_some_and(containers_ready),
        gates_pending: pod
            .as_ref()
            .map(|p| {
                readiness_gates(p)
                    .into_iter()
                    .filter(|g| !gate_true(p, g))
                    .collect()
            })
            .unwrap_or_default(),
        workload: workload_of(v).unwrap_or_else(|| format!("pod {namespace}/{name}")),
    }
}

/// The pod's workload from its controller reference: a ReplicaSet stands for its Deployment
/// (its name less the `pod-template-hash` suffix, as the Deployment controller names it).
fn workload_of(v: &Value) -> Option<String> {
    let ns = s(v, "/metadata/namespace");
    let owner = v
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o.get("controller").and_then(Value::as_bool) == Some(true))?;
    let (kind, name) = (s(owner, "/kind"), s(owner, "/name"));
    if kind == "ReplicaSet" {
        let hash = s(v, "/metadata/labels/pod-template-hash");
        if let Some(deployment) = name
            .strip_suffix(&format!("-{hash}"))
            .filter(|_| !hash.is_empty())
        {
            return Some(format!("Deployment {ns}/{deployment}"));
        }
    }
    Some(format!("{kind} {ns}/{name}"))
}

fn endpoints_of(slice: &Value) -> Vec<EndpointView> {
    slice
        .get("endpoints")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let uid = e.pointer("/targetRef/uid").and_then(Value::as_str)?;
            // Upstream: a nil `ready` is to be read as ready, a nil `serving` as `ready`.
            let ready = e
                .pointer("/conditions/ready")
                .and_then(Value::as_bool)
                .unwrap_or(true);
            Some(EndpointView {
                pod_uid: uid.to_string(),
                node: e
                    .get("nodeName")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                ready,
                serving: e
                    .pointer("/conditions/serving")
                    .and_then(Value::as_bool)
                    .unwrap_or(ready),
                terminating: e
                    .pointer("/conditions/terminating")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            })
        })
        .collect()
}

impl World {
    /// Reads every node, pod and EndpointSlice of the store.
    pub fn load(store: &Store) -> Self {
        let mut w = Self::default();
        for n in store.list_all(Resource::Node, None) {
            w.apply_object(Resource::Node, EventKind::Added, &n, None);
        }
        for p in store.list_all(Resource::Pod, None) {
            w.apply_object(Resource::Pod, EventKind::Added, &p, None);
        }
        for e in store.list_all(Resource::EndpointSlice, None) {
            w.apply_object(Resource::EndpointSlice, EventKind::Added, &e, None);
        }
        w
    }

    /// Re-reads the store after missing events, keeping the removal times already known and
    /// recording as gone (at `now`) whatever vanished meanwhile.
    pub fn reload(&mut self, store: &Store, now: DateTime<Utc>) {
        let mut fresh = Self::load(store);
        fresh.nodes_gone = std::mem::take(&mut self.nodes_gone);
        fresh.pods_gone = std::mem::take(&mut self.pods_gone);
        fresh.pods_aborted = std::mem::take(&mut self.pods_aborted);
        fresh.pods_removed = std::mem::take(&mut self.pods_removed);
        fresh.dead = std::mem::take(&mut self.dead);
        fresh.node_changes = std::mem::take(&mut self.node_changes);
        fresh.lag = self.lag;
        for name in self.nodes.keys().filter(|n| !fresh.nodes.contains_key(*n)) {
            fresh.nodes_gone.insert(name.clone(), now);
        }
        for uid in self.pods.keys().filter(|u| !fresh.pods.contains_key(*u)) {
            fresh.pods_gone.entry(uid.clone()).or_insert(now);
        }
        *self = fresh;
    }

    /// Applies one store event, as of when it happened (however late it is seen).
    pub fn apply(&mut self, ev: &WatchEvent) {
        self.apply_object(ev.resource, ev.kind, &ev.object, Some(ev.at));
    }

    fn apply_object(
        &mut self,
        resource: Resource,
        kind: EventKind,
        v: &Value,
        now: Option<DateTime<Utc>>,
    ) {
        let deleted = kind == EventKind::Deleted;
        match resource {
            Resource::Node => {
                let view = node_view(v);
                if let Some(at) = now {
                    let before = self.nodes.get(&view.name).cloned();
                    let after = (!deleted).then(|| view.clone());
                    if before != after {
                        self.node_changes.push_back((at, view.name.clone(), before));
                    }
                    let horizon = at - secs_delta(self.lag.max() + HISTORY_SLACK_SECONDS);
                    while self.node_changes.front().is_some_and(|c| c.0 <= horizon) {
                        self.node_changes.pop_front();
                    }
                }
                if deleted {
                    self.nodes.remove(&view.name);
                    if let Some(now) = now {
                        self.nodes_gone.insert(view.name, now);
                    }
                } else {
                    self.nodes_gone.remove(&view.name);
                    self.nodes.insert(view.name.clone(), view);
                }
            }
            Resource::Pod => {
                let uid = s(v, "/metadata/uid").to_string();
                if deleted {
                    let view = self.pods.remove(&uid).unwrap_or_else(|| pod_view(v));
                    // The kubelet removes a terminating pod with requests in flight only once
                    // its grace period is over, which can be earlier than we saw the event.
                    let at = match (now, view.deleting_at) {
                        (Some(n), Some(d)) => Some(n.min(d)),
                        (n, _) => n,
                    };
                    if let Some(at) = at {
                        let exited = view.on_sigterm == OnSigterm::Exit
                            && view.accepting_until.is_some_and(|t| at >= t)
                            && view.deleting_at.is_some_and(|d| at < d);
                        if exited {
                            self.pods_aborted.insert(uid.clone());
                        }
                        self.pods_gone.insert(uid.clone(), at);
                    }
                    self.pods_removed.insert(uid, view);
                } else {
                    self.pods.insert(uid, pod_view(v));
                }
            }
            Resource::EndpointSlice => {
                let key = (
                    s(v, "/metadata/namespace").to_string(),
                    s(v, "/metadata/name").to_string(),
                );
                let service = s(
                    v,
                    &format!("/metadata/labels/{}", SERVICE_NAME_LABEL.replace('/', "~1")),
                )
                .to_string();
                let endpoints = if deleted { Vec::new() } else { endpoints_of(v) };
                self.by_service
                    .entry((key.0.clone(), service.clone()))
                    .or_default()
                    .insert(key.1.clone());
                let versions = self.slices.entry(key.clone()).or_default();
                versions.push_back(SliceVersion {
                    at: now,
                    service,
                    endpoints,
                });
                if let Some(now) = now {
                    self.forget_before(&key, now);
                }
            }
            _ => {}
        }
    }

    /// Drops the versions of a slice no consumer acts on any more: those replaced before the
    /// longest lag, with [`HISTORY_SLACK_SECONDS`] to spare for a probe that runs behind the
    /// clock; a deleted slice goes once no one sees it.
    fn forget_before(&mut self, key: &(String, String), now: DateTime<Utc>) {
        let horizon = now - secs_delta(self.lag.max() + HISTORY_SLACK_SECONDS);
        let Some(versions) = self.slices.get_mut(key) else {
            return;
        };
        while versions.len() > 1 && versions[1].at.is_none_or(|t| t <= horizon) {
            versions.pop_front();
            self.pruned.insert(key.clone());
        }
        let services: BTreeSet<String> = versions.iter().map(|v| v.service.clone()).collect();
        let gone = versions.len() == 1
            && versions[0].endpoints.is_empty()
            && versions[0].at.is_none_or(|t| t <= horizon);
        if gone {
            self.slices.remove(key);
        }
        for ((ns, svc), names) in &mut self.by_service {
            if *ns == key.0 && (gone || !services.contains(svc)) {
                names.remove(&key.1);
            }
        }
    }

    /// The nodes as they were at `t` (a controller that sees them late).
    pub fn nodes_as_of(&self, t: DateTime<Utc>) -> BTreeMap<String, NodeView> {
        let mut nodes = self.nodes.clone();
        for (at, name, before) in self.node_changes.iter().rev() {
            if *at <= t {
                break;
            }
            match before {
                Some(v) => nodes.insert(name.clone(), v.clone()),
                None => nodes.remove(name),
            };
        }
        nodes
    }

    /// When the newest node change made by `t` happened.
    pub fn last_node_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.node_changes
            .iter()
            .rev()
            .map(|c| c.0)
            .find(|at| *at <= t)
    }

    /// When the first node change after `t` happened.
    pub fn next_node_change(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.node_changes.iter().map(|c| c.0).find(|at| *at > t)
    }

    /// When `node` stopped answering, if it did: its Node was removed, or its instance
    /// terminated (the Node may linger).
    pub fn node_gone_at(&self, node: &str) -> Option<DateTime<Utc>> {
        match (self.nodes_gone.get(node), self.dead.get(node)) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        }
    }

    /// Every endpoint of a service, from all its EndpointSlices, as a consumer with `lag`
    /// seconds of delay sees them at `now` (the latest version of each slice seen by
    /// `now - lag`).
    ///
    /// The EndpointSlice controller acts on a pod's deletion within milliseconds upstream; the
    /// twin's controllers can run behind the clock, so an endpoint whose pod was deleted by
    /// then is seen terminating (and one whose pod was gone by then, not at all) whatever the
    /// slice said: the lag is the consumer's alone.
    pub fn endpoints_seen(
        &self,
        ns: &str,
        service: &str,
        now: DateTime<Utc>,
        lag: f64,
    ) -> Vec<EndpointView> {
        let Some(names) = self.by_service.get(&(ns.to_string(), service.to_string())) else {
            return Vec::new();
        };
        let seen_by = now - secs_delta(lag);
        names
            .iter()
            .filter_map(|n| {
                let key = (ns.to_string(), n.clone());
                Some((self.slices.get(&key)?, self.pruned.contains(&key)))
            })
            .filter_map(|(versions, pruned)| {
                versions
                    .iter()
                    .rev()
                    .find(|v| v.at.is_none_or(|t| t <= seen_by))
                    .or_else(|| versions.front().filter(|_| pruned))
            })
            .filter(|v| v.service == service)
            .flat_map(|v| v.endpoints.iter())
            .filter(|e| {
                self.pods_gone
                    .get(&e.pod_uid)
                    .is_none_or(|gone| *gone > seen_by)
            })
            .map(|e| {
                let pod = self
                    .pods
                    .get(&e.pod_uid)
                    .or_else(|| self.pods_removed.get(&e.pod_uid));
                let deleted = pod
                    .and_then(|p| p.terminating_since)
                    .is_some_and(|t| t <= seen_by);
                if deleted && !e.terminating {
                    EndpointView {
                        ready: false,
                        terminating: true,
                        ..e.clone()
                    }
                } else {
                    e.clone()
                }
            })
            .collect()
    }

    /// The lag of a consumer.
    pub fn lag_of(&self, consumer: Consumer) -> f64 {
        match consumer {
            Consumer::KubeProxy => self.lag.kube_proxy_seconds,
            Consumer::Ingress => self.lag.ingress_seconds,
        }
    }

    /// The endpoints a consumer sends a new connection to at `now`, on `node` only when given
    /// (kube-proxy with `externalTrafficPolicy: Local`), by the slices as it last saw them:
    /// the ready ones; when there is none, the serving and terminating ones (kubernetes
    /// `pkg/proxy/topology.go`, `CategorizeEndpoints`: "if there are no ready endpoints, fall
    /// back to serving terminating endpoints") whose process still took connections when the
    /// consumer last looked (after that its readiness fails and `serving` turns false).
    ///
    /// What it picks may be gone or no longer accepting by now: the consumer has not seen
    /// that yet, and the request is refused ([`PodView::accepts`]).
    pub fn routable_endpoints(
        &self,
        ns: &str,
        service: &str,
        node: Option<&str>,
        now: DateTime<Utc>,
        consumer: Consumer,
    ) -> Vec<EndpointView> {
        let lag = self.lag_of(consumer);
        let on_node = |e: &&EndpointView| node.is_none_or(|n| e.node.as_deref() == Some(n));
        let seen = self.endpoints_seen(ns, service, now, lag);
        let ready: Vec<EndpointView> = seen
            .iter()
            .filter(|e| e.ready)
            .filter(on_node)
            .cloned()
            .collect();
        if !ready.is_empty() || consumer == Consumer::Ingress {
            return ready;
        }
        let looked = now - secs_delta(lag);
        seen.into_iter()
            .filter(|e| on_node(&e))
            .filter(|e| e.serving && e.terminating)
            .filter(|e| self.pods.get(&e.pod_uid).is_some_and(|p| p.accepts(looked)))
            .collect()
    }

    /// Whether `node` has a ready local endpoint of the service at `now`, as kube-proxy last
    /// saw the slices (what its health check node port answers for
    /// `externalTrafficPolicy: Local`: terminating endpoints do not count, so the load
    /// balancer stops sending new connections to the node).
    pub fn has_local_endpoint(
        &self,
        ns: &str,
        service: &str,
        node: &str,
        now: DateTime<Utc>,
    ) -> bool {
        self.endpoints_seen(ns, service, now, self.lag.kube_proxy_seconds)
            .iter()
            .any(|e| e.ready && e.node.as_deref() == Some(node))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;

    fn slice_event(at: DateTime<Utc>, version: u64) -> WatchEvent {
        WatchEvent {
            kind: EventKind::Modified,
            resource: Resource::EndpointSlice,
            object: Arc::new(json!({
                "metadata": {
                    "namespace": "apps", "name": "web-abc",
                    "labels": { SERVICE_NAME_LABEL: "web" },
                },
                "endpoints": [{
                    "targetRef": { "uid": "pod-1" },
                    "conditions": { "ready": true },
                    "nodeName": "n1",
                }],
            })),
            resource_version: version,
            at,
        }
    }

    /// A request is routed as of its own start, which can be well behind the newest change
    /// when the probe runs late on a loaded machine: the slice as it was then still routes it.
    #[test]
    fn a_request_behind_the_newest_changes_still_sees_the_slice_of_its_time() {
        let t0 = DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let mut w = World::default();
        w.apply(&slice_event(t0, 1));
        for i in 0..20u32 {
            w.apply(&slice_event(
                t0 + secs_delta(100.0 + f64::from(i)),
                2 + u64::from(i),
            ));
        }
        for behind in [1.0, 10.0, 60.0] {
            let at = t0 + secs_delta(120.0 - behind);
            let seen = w.endpoints_seen("apps", "web", at, 1.0);
            assert_eq!(seen.len(), 1, "{behind} s behind: {seen:?}");
        }
        // Before the slice existed, nothing.
        let mut fresh = World::default();
        fresh.apply(&slice_event(t0 + secs_delta(100.0), 1));
        assert!(
            fresh
                .endpoints_seen("apps", "web", t0 + secs_delta(50.0), 1.0)
                .is_empty()
        );
    }
}
