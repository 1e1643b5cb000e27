//! The object store behind the twin's Kubernetes API: every object as its wire JSON, keyed by
//! resource kind, namespace and name, with one global `resourceVersion` counter and a stream
//! of watch events.
//!
//! Everything that writes (the HTTP layer, the simulated controllers, the kubelet) goes
//! through a [`Store`] handle, so `resourceVersion`, `generation`, `uid` and watch events stay
//! consistent whoever writes. Objects are held as `Arc<Value>`: reads and lists hand out
//! shared pointers, not deep copies, which keeps a 30,000-pod list cheap.
//!
//! Upstream behaviours followed here (each tested):
//! - a write carrying a stale `metadata.resourceVersion` fails with 409 Conflict;
//! - a write that changes nothing does not bump `resourceVersion` and emits no event;
//! - `metadata.generation` increases only when `spec` changes;
//! - a pod with a grace period is deleted gracefully: `deletionTimestamp` is set to
//!   now + grace and the kubelet removes it later ([`Store::remove_now`]);
//! - creating in a namespace that does not exist is refused (NamespaceLifecycle admission).

mod delete;
mod error;
mod evict;
mod faults;
pub mod instances;
mod job_defaults;
mod list;
pub mod load;
mod patch;
mod pdb;
mod resource;
mod selector;
mod typed;
mod write;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::clock::Clock;

pub use delete::{DeleteOptions, DeleteOutcome};
pub use error::ApiError;
pub use evict::{EvictionOutcome, EvictionRecord};
pub use faults::{
    CrashLoopRule, CrashLoops, FaultAnswer, FaultRule, Faults, InjectedCount, InjectedLog,
    RequestCounts, UNKNOWN_CALLER, caller_function, function_matches, kubernetes_caller,
    seeded_draw,
};
pub use patch::{PatchKind, apply_patch, strategic_merge};
pub use pdb::{compute_pdb_status, is_pod_ready, pdb_status_json, scaled_value};
pub use resource::Resource;
pub use selector::{FieldSelector, LabelSelector, Requirement};
pub use write::Part;

/// How many watch events are kept for watches that resume from an older `resourceVersion`.
const HISTORY: usize = 100_000;
/// Capacity of the live event channel; a receiver that falls further behind gets `Lagged`.
const CHANNEL: usize = 1 << 17;

/// The kind of a watch event, as it appears in the `type` field on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Added,
    Modified,
    Deleted,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change to one object. `object` is the object after the change (for `Deleted`, its last
/// state carrying the deletion's `resourceVersion`).
#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub kind: EventKind,
    pub resource: Resource,
    pub object: Arc<Value>,
    pub resource_version: u64,
    /// When the change happened, on the store's clock (a watcher that runs late still knows).
    pub at: chrono::DateTime<chrono::Utc>,
}

impl WatchEvent {
    /// The object's namespace ("" for cluster-scoped objects).
    pub fn namespace(&self) -> &str {
        self.object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// Parameters of a list call, as in the query string of `GET /api/v1/pods`.
#[derive(Clone, Debug, Default)]
pub struct ListParams {
    /// `None` lists across all namespaces.
    pub namespace: Option<String>,
    pub label_selector: Option<String>,
    pub field_selector: Option<String>,
    pub limit: Option<usize>,
    pub continue_token: Option<String>,
}

/// One page of a list.
#[derive(Clone, Debug)]
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    /// The list's `metadata.resourceVersion`; on later pages, the first page's snapshot.
    pub resource_version: u64,
    /// `metadata.continue`, set when more items follow.
    pub continue_token: Option<String>,
    /// `metadata.remainingItemCount`, given (as upstream) only for lists without selectors.
    pub remaining_item_count: Option<u64>,
}

type Key = (String, String);

pub(crate) struct State {
    clock: Clock,
    rv: u64,
    objects: BTreeMap<Resource, BTreeMap<Key, Arc<Value>>>,
    history: VecDeque<WatchEvent>,
    /// Every event with a `resourceVersion` above this is still in `history`.
    history_floor: u64,
}

struct Inner {
    state: Mutex<State>,
    events: broadcast::Sender<WatchEvent>,
    clock: Clock,
    requests: RequestCounts,
    faults: Faults,
    evictions: evict::EvictionLog,
    supervisor: crate::supervisor::Supervisor,
    crash_loops: CrashLoops,
    dead: instances::DeadInstances,
    load: load::Load,
}

/// A shared handle on the store. Cheap to clone; all clones see the same objects.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store(rv={})", self.resource_version())
    }
}

impl Default for Store {
    fn default() -> Self {
        Self::new(Clock::scaled(1.0))
    }
}

/// The RFC 3339 form the API server uses for timestamps (`2026-01-01T00:00:00Z`).
pub fn timestamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Parses an API timestamp.
pub fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn key_of(resource: Resource, ns: &str, name: &str) -> Key {
    let ns = if resource.namespaced() { ns } else { "" };
    (ns.to_string(), name.to_string())
}

impl State {
    fn map(&self, resource: Resource) -> Option<&BTreeMap<Key, Arc<Value>>> {
        self.objects.get(&resource)
    }

    fn get(&self, resource: Resource, ns: &str, name: &str) -> Option<&Arc<Value>> {
        self.map(resource)?.get(&key_of(resource, ns, name))
    }

    /// Objects of a kind in one namespace (or all), in key order.
    fn iter_ns<'a>(
        &'a self,
        resource: Resource,
        ns: Option<&'a str>,
    ) -> Box<dyn Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a> {
        self.iter_after(resource, ns, None)
    }

    /// Like [`State::iter_ns`], starting strictly after `after` (a continue token's key).
    fn iter_after<'a>(
        &'a self,
        resource: Resource,
        ns: Option<&'a str>,
        after: Option<&Key>,
    ) -> Box<dyn Iterator<Item = (&'a Key, &'a Arc<Value>)> + 'a> {
        use std::ops::Bound;
        let Some(map) = self.map(resource) else {
            return Box::new(std::iter::empty());
        };
        let ns = ns.filter(|_| resource.namespaced());
        let start = match (after, ns) {
            (Some(k), _) => Bound::Excluded(k.clone()),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let iter = map.range((start, Bound::Unbounded));
        match ns {
            None => Box::new(iter),
            Some(ns) => Box::new(
                iter.skip_while(move |(k, _)| k.0.as_str() < ns)
                    .take_while(move |(k, _)| k.0 == ns),
            ),
        }
    }

    fn record(&mut self, events: &broadcast::Sender<WatchEvent>, event: WatchEvent) {
        if self.history.len() >= HISTORY
            && let Some(old) = self.history.pop_front()
        {
            self.history_floor = old.resource_version;
        }
        self.history.push_back(event.clone());
        // No receiver is not an error: nobody is watching yet.
        let _ = events.send(event);
    }
}

impl Store {
    /// An empty store (with the namespaces every cluster has) on the given clock.
    pub fn new(clock: Clock) -> Self {
        let (events, _) = broadcast::channel(CHANNEL);
        let store = Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State {
                    clock: clock.clone(),
                    rv: 0,
                    objects: BTreeMap::new(),
                    history: VecDeque::new(),
                    history_floor: 0,
                }),
                events,
                clock,
                requests: RequestCounts::default(),
                faults: Faults::default(),
                evictions: evict::EvictionLog::default(),
                supervisor: crate::supervisor::Supervisor::default(),
                crash_loops: CrashLoops::default(),
                dead: instances::DeadInstances::default(),
                load: load::Load::default(),
            }),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            store.ensure_namespace(ns);
        }
        store
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves a consistent map (writes are single inserts).
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn sender(&self) -> &broadcast::Sender<WatchEvent> {
        &self.inner.events
    }

    /// The clock timestamps are taken from.
    pub fn clock(&self) -> &Clock {
        &self.inner.clock
    }

    /// Request counters by verb and resource, for the report.
    pub fn requests(&self) -> &RequestCounts {
        &self.inner.requests
    }

    /// Fault injection rules checked by the HTTP layer.
    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// The supervisor every task working on this store runs under (a panic in any of them
    /// is fatal to the run: [`crate::supervisor::Supervisor::fatal`]).
    pub fn supervisor(&self) -> &crate::supervisor::Supervisor {
        &self.inner.supervisor
    }

    /// The `crashLoop` faults the kubelet applies.
    /// Nodes whose instance terminated (their Node may still be in the API).
    pub fn dead_instances(&self) -> &instances::DeadInstances {
        &self.inner.dead
    }

    /// The request rate each Service receives (the probe's and the HPA's metric).
    pub fn load(&self) -> &load::Load {
        &self.inner.load
    }

    pub fn crash_loops(&self) -> &CrashLoops {
        &self.inner.crash_loops
    }

    pub(crate) fn evictions_log(&self) -> &evict::EvictionLog {
        &self.inner.evictions
    }

    /// The current global `resourceVersion`.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// The object, or 404.
    pub fn get(&self, resource: Resource, ns: &str, name: &str) -> Result<Arc<Value>, ApiError> {
        self.try_get(resource, ns, name)
            .ok_or_else(|| ApiError::not_found(resource, name))
    }

    /// The object, if it exists.
    pub fn try_get(&self, resource: Resource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock().get(resource, ns, name).cloned()
    }

    /// Every object of a kind in a namespace (`None`: all namespaces), unfiltered.
    pub fn list_all(&self, resource: Resource, ns: Option<&str>) -> Vec<Arc<Value>> {
        self.lock()
            .iter_ns(resource, ns)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Objects of a kind selected by a label selector, in one namespace or all.
    pub fn list_selected(
        &self,
        resource: Resource,
        ns: Option<&str>,
        selector: &LabelSelector,
    ) -> Vec<Arc<Value>> {
        self.lock()
            .iter_ns(resource, ns)
            .filter(|(_, v)| selector.matches_object(v))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Creates the namespace if it does not exist.
    pub fn ensure_namespace(&self, name: &str) {
        if self.try_get(Resource::Namespace, "", name).is_none() {
            let ns = json!({
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": { "name": name },
                "spec": { "finalizers": ["kubernetes"] },
                "status": { "phase": "Active" },
            });
            // A concurrent creator winning the race is fine.
            let _ = self.create(Resource::Namespace, "", ns);
        }
    }

    /// The current simulated time, formatted for a timestamp field.
    pub fn now_timestamp(&self) -> String {
        timestamp(self.inner.clock.now())
    }
}
