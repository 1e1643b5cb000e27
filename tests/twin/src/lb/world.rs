//! What the load balancers and kube-proxy see of the cluster: nodes, pods and EndpointSlices,
//! kept current from the store's event stream, plus the moment each node and pod disappeared
//! (so a request can tell whether its node or pod went before it finished).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use serde_json::Value;

use k8s_openapi::api::core::v1::Pod;

use crate::clock::secs_delta;
use crate::sim::endpoints::SERVICE_NAME_LABEL;
use crate::sim::nodes::instance_id_of;
use crate::sim::podutil::{grace_seconds, prestop_seconds};
use crate::store::{EventKind, Resource, Store, WatchEvent, parse_timestamp};

/// The label that takes a node out of every external load balancer, whatever its value
/// (Kubernetes 1.19+, and the AWS Load Balancer Controller honours it too).
pub const EXCLUDE_LABEL: &str = "node.kubernetes.io/exclude-from-external-load-balancers";

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
    pub namespace: String,
    pub name: String,
    pub node: Option<String>,
    /// `deletionTimestamp` is set: the pod is terminating.
    pub deleting_at: Option<DateTime<Utc>>,
    /// Terminating: when its preStop hook ends and its process gets SIGTERM and stops taking
    /// new connections (`deletionTimestamp` is the end of the grace period, which starts with
    /// the preStop hook).
    pub accepting_until: Option<DateTime<Utc>>,
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

/// The cluster as the load balancers see it.
#[derive(Debug, Default)]
pub struct World {
    pub nodes: BTreeMap<String, NodeView>,
    pub pods: HashMap<String, PodView>,
    /// EndpointSlices by (namespace, slice name): (service name, endpoints).
    slices: BTreeMap<(String, String), (String, Vec<EndpointView>)>,
    /// Slice names by (namespace, service name).
    by_service: HashMap<(String, String), BTreeSet<String>>,
    /// When each removed node was seen to go, by name (the latest removal).
    pub nodes_gone: HashMap<String, DateTime<Utc>>,
    /// When each removed pod was seen to go, by UID.
    pub pods_gone: HashMap<String, DateTime<Utc>>,
    /// Nodes whose instance terminated, and when: their Node and pods may still be in the API,
    /// Ready, but nothing there answers (`crate::sim::nodelifecycle`).
    pub dead: BTreeMap<String, DateTime<Utc>>,
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
    let accepting_until = deleting_at.and_then(|end| {
        let pod: Pod = serde_json::from_value(v.clone()).ok()?;
        let grace = grace_seconds(&pod) as f64;
        Some(end - secs_delta(grace) + secs_delta(prestop_seconds(&pod).min(grace)))
    });
    PodView {
        namespace: s(v, "/metadata/namespace").to_string(),
        name: s(v, "/metadata/name").to_string(),
        node: Some(s(v, "/spec/nodeName"))
            .filter(|n| !n.is_empty())
            .map(str::to_string),
        deleting_at,
        accepting_until,
    }
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
        fresh.dead = std::mem::take(&mut self.dead);
        for name in self.nodes.keys().filter(|n| !fresh.nodes.contains_key(*n)) {
            fresh.nodes_gone.insert(name.clone(), now);
        }
        for uid in self.pods.keys().filter(|u| !fresh.pods.contains_key(*u)) {
            fresh.pods_gone.entry(uid.clone()).or_insert(now);
        }
        *self = fresh;
    }

    /// Applies one store event seen at `now`.
    pub fn apply(&mut self, ev: &WatchEvent, now: DateTime<Utc>) {
        self.apply_object(ev.resource, ev.kind, &ev.object, Some(now));
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
                        self.pods_gone.insert(uid, at);
                    }
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
                if let Some((old, _)) = self.slices.remove(&key)
                    && let Some(set) = self.by_service.get_mut(&(key.0.clone(), old))
                {
                    set.remove(&key.1);
                }
                if !deleted && !service.is_empty() {
                    self.by_service
                        .entry((key.0.clone(), service.clone()))
                        .or_default()
                        .insert(key.1.clone());
                    self.slices.insert(key, (service, endpoints_of(v)));
                }
            }
            _ => {}
        }
    }

    /// When `node` stopped answering, if it did: its Node was removed, or its instance
    /// terminated (the Node may linger).
    pub fn node_gone_at(&self, node: &str) -> Option<DateTime<Utc>> {
        match (self.nodes_gone.get(node), self.dead.get(node)) {
            (Some(a), Some(b)) => Some(*a.min(b)),
            (a, b) => a.or(b).copied(),
        }
    }

    /// Every endpoint of a service, from all its EndpointSlices.
    pub fn endpoints(&self, ns: &str, service: &str) -> Vec<&EndpointView> {
        let Some(names) = self.by_service.get(&(ns.to_string(), service.to_string())) else {
            return Vec::new();
        };
        names
            .iter()
            .filter_map(|n| self.slices.get(&(ns.to_string(), n.clone())))
            .flat_map(|(_, eps)| eps.iter())
            .collect()
    }

    /// The endpoints kube-proxy forwards to: `ready`, and of a pod that exists and is not
    /// terminating. The EndpointSlice controller runs a pass after the kubelet, so a slice can
    /// list a pod that is terminating or already gone for a moment; in a cluster the pod's
    /// process outlives that lag, in the twin it need not, so the pod's own state wins.
    pub fn ready_endpoints(&self, ns: &str, service: &str) -> Vec<&EndpointView> {
        self.endpoints(ns, service)
            .into_iter()
            .filter(|e| e.ready)
            .filter(|e| {
                self.pods
                    .get(&e.pod_uid)
                    .is_some_and(|p| p.deleting_at.is_none())
            })
            .collect()
    }

    /// The endpoints kube-proxy forwards a new connection to, on `node` only when given
    /// (`externalTrafficPolicy: Local`): the ready ones; when there is none, the serving and
    /// terminating ones (kubernetes `pkg/proxy/topology.go`, `CategorizeEndpoints`: "if there
    /// are no ready endpoints, fall back to serving terminating endpoints"), of pods that still
    /// exist and still take connections at `now` (their preStop hook still runs: after it the
    /// process has SIGTERM and its readiness fails).
    pub fn routable_endpoints(
        &self,
        ns: &str,
        service: &str,
        node: Option<&str>,
        now: DateTime<Utc>,
    ) -> Vec<&EndpointView> {
        let on_node = |e: &&EndpointView| node.is_none_or(|n| e.node.as_deref() == Some(n));
        let ready: Vec<&EndpointView> = self
            .ready_endpoints(ns, service)
            .into_iter()
            .filter(on_node)
            .collect();
        if !ready.is_empty() {
            return ready;
        }
        self.endpoints(ns, service)
            .into_iter()
            .filter(on_node)
            .filter(|e| e.serving)
            // The pod's own state wins over a slice that has not caught up with its deletion
            // (as in `ready_endpoints`): it is terminating once its deletion started.
            .filter(|e| {
                self.pods
                    .get(&e.pod_uid)
                    .and_then(|p| p.accepting_until)
                    .is_some_and(|t| now < t)
            })
            .collect()
    }

    /// Whether `node` has a ready local endpoint of the service (what kube-proxy's health
    /// check node port answers for `externalTrafficPolicy: Local`: terminating endpoints do
    /// not count, so the load balancer stops sending new connections to the node).
    pub fn has_local_endpoint(&self, ns: &str, service: &str, node: &str) -> bool {
        self.ready_endpoints(ns, service)
            .iter()
            .any(|e| e.node.as_deref() == Some(node))
    }
}
