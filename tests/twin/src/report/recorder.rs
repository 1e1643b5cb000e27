//! What the report needs that the store does not keep: each pod's readiness over time and its
//! labels after it is gone (to judge evictions and forced terminations), and the moments a
//! PDB's healthy count fell below what it requires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::sim::record::Snapshot;
use crate::store::{EventKind, LabelSelector, Resource, Store, WatchEvent, is_pod_ready};

/// A PDB whose `currentHealthy` fell below `desiredHealthy` (informational: a scale-down or
/// a lost node does this without any eviction).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetDip {
    pub namespace: String,
    pub pdb: String,
    pub at: DateTime<Utc>,
    pub current_healthy: i64,
    pub desired_healthy: i64,
}

/// (namespace, pod name) → readiness transitions, oldest first.
type Timelines = HashMap<(String, String), Vec<(DateTime<Utc>, bool)>>;

#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// Readiness transitions per (namespace, pod name), oldest first.
    ready: Timelines,
    /// Last known labels per (namespace, pod name).
    labels: HashMap<(String, String), Value>,
    /// PDBs currently below their desired healthy count.
    below: HashMap<(String, String), bool>,
    pub dips: Vec<BudgetDip>,
    /// Jobs and their pods.
    pub jobs: super::jobs::JobLog,
    /// What the critical path needs.
    pub(crate) phases: super::critical::PhaseLog,
    /// The `resourceVersion` of the last event observed.
    pub seen_rv: u64,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

impl Tracker {
    fn observe(&mut self, kind: EventKind, resource: Resource, obj: &Value, now: DateTime<Utc>) {
        self.phases.observe(kind, resource, obj, now);
        let key = (
            s(obj, "/metadata/namespace").to_string(),
            s(obj, "/metadata/name").to_string(),
        );
        match resource {
            Resource::Pod => {
                let ready = kind != EventKind::Deleted && is_pod_ready(obj);
                let line = self.ready.entry(key.clone()).or_default();
                if line.last().is_none_or(|(_, r)| *r != ready) {
                    line.push((now, ready));
                }
                if let Some(l) = obj.pointer("/metadata/labels") {
                    self.labels.insert(key, l.clone());
                }
            }
            Resource::PodDisruptionBudget if kind != EventKind::Deleted => {
                let n = |p: &str| obj.pointer(p).and_then(Value::as_i64);
                let (Some(current), Some(desired)) =
                    (n("/status/currentHealthy"), n("/status/desiredHealthy"))
                else {
                    return;
                };
                let below = current < desired;
                let was = self.below.insert(key.clone(), below).unwrap_or(false);
                if below && !was {
                    self.dips.push(BudgetDip {
                        namespace: key.0,
                        pdb: key.1,
                        at: now,
                        current_healthy: current,
                        desired_healthy: desired,
                    });
                }
            }
            _ => {}
        }
    }

    /// Whether the pod was Ready at `at`, by its last transition at or before then.
    pub fn was_ready(&self, ns: &str, pod: &str, at: DateTime<Utc>) -> Option<bool> {
        let line = self.ready.get(&(ns.to_string(), pod.to_string()))?;
        line.iter()
            .take_while(|(t, _)| *t <= at)
            .last()
            .map(|(_, r)| *r)
    }

    /// The PDB (in the store now) whose selector matches the pod's last known labels.
    pub fn covering_pdb(&self, store: &Store, ns: &str, pod: &str) -> Option<String> {
        let labels = self.labels.get(&(ns.to_string(), pod.to_string()))?;
        let probe = serde_json::json!({ "metadata": { "labels": labels } });
        store
            .list_all(Resource::PodDisruptionBudget, Some(ns))
            .iter()
            .find_map(|pdb| {
                let sel = pdb.pointer("/spec/selector");
                let matches = sel
                    .and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                    && LabelSelector::from_object(sel).is_ok_and(|s| s.matches_object(&probe));
                matches.then(|| s(pdb, "/metadata/name").to_string())
            })
    }
}

/// Records a run: the objects before it, and what happened during it. Start it before the
/// migration; [`Recorder::finish`] compiles the [`super::Report`].
pub struct Recorder {
    pub(crate) store: Store,
    pub(crate) before: Snapshot,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) scenario: Option<String>,
    /// Every object in the store when the run began, of every kind.
    pub(crate) objects_at_start: u64,
    pub(crate) tracker: Arc<Mutex<Tracker>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for Recorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recorder(since {})", self.started_at)
    }
}

impl Recorder {
    /// Snapshots every object's desired state and starts following changes. Must run inside
    /// a tokio runtime.
    pub fn start(store: &Store) -> Self {
        let mut rx = store.subscribe();
        let clock = store.clock().clone();
        let now = clock.now();
        let tracker = Arc::new(Mutex::new(Tracker::default()));
        {
            let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
            t.seen_rv = store.resource_version();
            for pod in store.list_all(Resource::Pod, None) {
                t.phases.seed(&pod);
            }
            for r in [Resource::Pod, Resource::PodDisruptionBudget] {
                for obj in store.list_all(r, None) {
                    t.observe(EventKind::Added, r, &obj, now);
                }
            }
            t.jobs.seed(store);
        }
        let task = {
            let tracker = tracker.clone();
            let events_store = store.clone();
            store.supervisor().spawn("report recorder", async move {
                loop {
                    match rx.recv().await {
                        Ok(WatchEvent {
                            kind,
                            resource,
                            object,
                            resource_version,
                            at,
                        }) => {
                            let mut t = tracker.lock().unwrap_or_else(|e| e.into_inner());
                            t.observe(kind, resource, &object, clock.now());
                            t.jobs
                                .observe(kind, resource, &object, Some(at), &events_store);
                            t.seen_rv = t.seen_rv.max(resource_version);
                        }
                        Err(RecvError::Lagged(n)) => {
                            tracing::warn!(missed = n, "report recorder lagged")
                        }
                        Err(RecvError::Closed) => return,
                    }
                }
            })
        };
        Self {
            store: store.clone(),
            before: Snapshot::take(store),
            objects_at_start: Resource::ALL
                .iter()
                .map(|r| store.list_all(*r, None).len() as u64)
                .sum(),
            started_at: now,
            scenario: None,
            tracker,
            task,
        }
    }

    /// Names the scenario in the report.
    pub fn named(mut self, scenario: &str) -> Self {
        self.scenario = Some(scenario.to_string());
        self
    }

    /// The snapshot taken at the start.
    pub fn before(&self) -> &Snapshot {
        &self.before
    }

    /// Waits (up to a second of real time) until every change made so far is observed, then
    /// stops following.
    pub(crate) async fn catch_up_and_stop(&self) {
        let target = self.store.resource_version();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(1);
        while self
            .tracker
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .seen_rv
            < target
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        }
        self.task.abort();
    }
}
