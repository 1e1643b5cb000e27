//! What happened to each Job during a run: its counts at the end, and the pods of it that
//! ended before finishing their work (evicted, deleted, lost with their node), with the
//! simulated seconds of work they took with them.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::store::{EventKind, Resource, Store, parse_timestamp};

/// One Job over the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JobSummary {
    pub namespace: String,
    pub name: String,
    /// `spec.completions` (0 for a work-queue Job that sets none).
    pub completions: i32,
    /// `status.succeeded` at the end (or when the Job was last seen).
    pub succeeded: i32,
    /// `status.failed`: pods that failed or were deleted before they succeeded.
    pub failed: i32,
    /// Pods of the Job that ended during the run before finishing their work: evicted,
    /// deleted, failed, or lost with their node.
    pub pods_interrupted: u32,
    /// The simulated seconds those pods had run (from their container start) when they were
    /// interrupted, summed: work done again by their replacements.
    pub lost_work_seconds: f64,
    /// The `Complete` condition is True.
    pub completed: bool,
    /// `status.completionTime`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<DateTime<Utc>>,
}

/// A Job pod as the log last saw it.
#[derive(Clone, Debug)]
struct JobPod {
    job: (String, String),
    node: Option<String>,
    started: Option<DateTime<Utc>>,
    /// It succeeded, or was interrupted (or ended before the recording): nothing more counts.
    ended: bool,
}

/// Follows Jobs and their pods through the store's events.
#[derive(Debug, Default)]
pub(crate) struct JobLog {
    /// The last state of every Job seen, by (namespace, name).
    jobs: BTreeMap<(String, String), Value>,
    /// Job pods by UID.
    pods: HashMap<String, JobPod>,
    /// Per Job: pods interrupted and the seconds of work they had done.
    interrupted: BTreeMap<(String, String), (u32, f64)>,
}

fn s<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn time_at(v: &Value, p: &str) -> Option<DateTime<Utc>> {
    v.pointer(p)
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
}

/// The (namespace, name) of the Job that controls this pod.
fn job_of(pod: &Value) -> Option<(String, String)> {
    let owner = pod
        .pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true && o["kind"] == "Job")?;
    Some((
        s(pod, "/metadata/namespace").to_string(),
        owner.get("name")?.as_str()?.to_string(),
    ))
}

impl JobLog {
    /// Takes in the store's Jobs and Job pods at the start of the recording; pods already
    /// finished or on their way out are not counted again.
    pub fn seed(&mut self, store: &Store) {
        for job in store.list_all(Resource::Job, None) {
            self.observe(EventKind::Added, Resource::Job, &job, None, store);
        }
        for pod in store.list_all(Resource::Pod, None) {
            self.observe(EventKind::Added, Resource::Pod, &pod, None, store);
        }
    }

    /// One store event at `at` (`None` while seeding, when nothing counts as interrupted).
    pub fn observe(
        &mut self,
        kind: EventKind,
        resource: Resource,
        obj: &Value,
        at: Option<DateTime<Utc>>,
        store: &Store,
    ) {
        match resource {
            Resource::Job => {
                let key = (
                    s(obj, "/metadata/namespace").to_string(),
                    s(obj, "/metadata/name").to_string(),
                );
                self.jobs.insert(key, obj.clone());
            }
            Resource::Pod => self.observe_pod(kind, obj, at, store),
            _ => {}
        }
    }

    fn observe_pod(
        &mut self,
        kind: EventKind,
        pod: &Value,
        at: Option<DateTime<Utc>>,
        store: &Store,
    ) {
        let Some(job) = job_of(pod) else {
            return;
        };
        let uid = s(pod, "/metadata/uid").to_string();
        let entry = self.pods.entry(uid).or_insert_with(|| JobPod {
            job,
            node: None,
            started: None,
            ended: false,
        });
        if let Some(n) = pod.pointer("/spec/nodeName").and_then(Value::as_str) {
            entry.node = Some(n.to_string());
        }
        if let Some(t) = time_at(pod, "/status/startTime") {
            entry.started = Some(t);
        }
        if entry.ended {
            return;
        }
        let phase = s(pod, "/status/phase");
        if phase == "Succeeded" {
            entry.ended = true;
            return;
        }
        let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
        let interrupted = deleting || phase == "Failed" || kind == EventKind::Deleted;
        if !interrupted {
            return;
        }
        entry.ended = true;
        let Some(mut when) = at else {
            return;
        };
        // A pod lost with its instance stopped working when the instance went, not when the
        // API let go of it.
        if kind == EventKind::Deleted
            && !deleting
            && let Some(dead) = entry
                .node
                .as_deref()
                .and_then(|n| store.dead_instances().snapshot().get(n).copied())
        {
            when = when.min(dead.terminated_at);
        }
        let ran = entry
            .started
            .map_or(0.0, |s| crate::sim::job::seconds_between(s, when));
        let slot = self.interrupted.entry(entry.job.clone()).or_default();
        slot.0 += 1;
        slot.1 += ran;
    }

    /// One summary per Job seen, by namespace and name; a Job still in the store is read as it
    /// is now.
    pub fn summaries(&self, store: &Store) -> Vec<JobSummary> {
        self.jobs
            .iter()
            .map(|((ns, name), last)| {
                let now = store.try_get(Resource::Job, ns, name);
                let job = now.as_deref().unwrap_or(last);
                let int = |p: &str| {
                    job.pointer(p)
                        .and_then(Value::as_i64)
                        .and_then(|n| i32::try_from(n).ok())
                        .unwrap_or(0)
                };
                let (pods, seconds) = self
                    .interrupted
                    .get(&(ns.clone(), name.clone()))
                    .copied()
                    .unwrap_or_default();
                JobSummary {
                    namespace: ns.clone(),
                    name: name.clone(),
                    completions: int("/spec/completions"),
                    succeeded: int("/status/succeeded"),
                    failed: int("/status/failed"),
                    pods_interrupted: pods,
                    lost_work_seconds: seconds,
                    completed: crate::sim::job::completed(job),
                    completed_at: crate::sim::job::completed_at(job),
                }
            })
            .collect()
    }
}
