//! The Job controller, as kubernetes `pkg/controller/job/job_controller.go` runs a
//! NonIndexed `batch/v1` Job with the default `podReplacementPolicy: TerminatingOrFailed`:
//! - `manageJob`: it keeps `min(parallelism, completions - succeeded)` active pods (not
//!   terminal, not being deleted); a pod being deleted is replaced at once, surplus pods go in
//!   `controller.ActivePods` order, and a Job that is suspended keeps none;
//! - after failures, new pods wait out the pod failure back-off: 10 s, doubling with every
//!   failure since the last success, at most 10 min, from the last failure
//!   (`DefaultJobPodFailureBackOff`, `MaxJobPodFailureBackOff`, `backoff_utils.go`);
//! - `trackJobStatusAndRemoveFinalizers`: a pod that ended Succeeded counts into
//!   `status.succeeded`; one that is Failed, or deleted before it succeeded (`isPodFailed`:
//!   "Count deleted Pods as failures"), into `status.failed`, each exactly once;
//! - `failed > backoffLimit` fails the Job (`BackoffLimitExceeded`): its active pods are
//!   deleted, no new ones made, `FailureTarget` is set, then `Failed` once no pod of it is
//!   terminating; `succeeded >= completions` with none active sets `SuccessCriteriaMet`, then
//!   `Complete` and `completionTime` once none is terminating (`delayTerminalCondition`, on
//!   since JobPodReplacementPolicy and JobManagedBy are enabled by default).
//!
//! Upstream holds each uncounted pod with the `batch.kubernetes.io/job-tracking` finalizer so
//! it cannot vanish before it is counted. The twin's kubelet and pod garbage collection
//! remove pods outright, so the controller tracks its pods by UID instead ([`JobMemory`]),
//! and reads the final state of a deleted pod from the informer's delete
//! ([`super::cache::Cache::deleted_pods`]): the count is the same.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

pub use super::job_rules::{
    Backoff, MAX_POD_FAILURE_BACKOFF_SECONDS, Outcome, POD_FAILURE_BACKOFF_SECONDS,
    exceeds_backoff_limit, finished_time, is_complete, outcome, removal_key, want_active,
};
use super::objects::{controller_ref, pod_from_template};
use super::podutil::{
    controller_of, from_time, is_active, is_ready, is_terminal, is_terminating, key, phase,
};
use super::runner::Ctx;
use crate::store::{DeleteOptions, Resource, timestamp};

/// The labels the API server gives a Job's pod template (`generateSelector`).
pub const JOB_NAME_LABEL: &str = "batch.kubernetes.io/job-name";
pub const CONTROLLER_UID_LABEL: &str = "batch.kubernetes.io/controller-uid";
pub const LEGACY_JOB_NAME_LABEL: &str = "job-name";
pub const LEGACY_CONTROLLER_UID_LABEL: &str = "controller-uid";

/// What the controller remembers between passes: per Job (by UID), the pods it has not
/// counted yet with their last known state (upstream: those still holding the tracking
/// finalizer), the pods it is done with, and the pod failure back-off.
#[derive(Debug, Default)]
pub struct JobMemory {
    jobs: HashMap<String, Tracking>,
}

#[derive(Debug, Default)]
struct Tracking {
    uncounted: BTreeMap<String, Arc<Pod>>,
    done: HashSet<String>,
    backoff: Backoff,
}

pub fn reconcile(ctx: &mut Ctx<'_>, memory: &mut JobMemory) {
    let jobs: Vec<Arc<Job>> = ctx.cache.jobs.values().cloned().collect();
    let live: HashSet<String> = jobs.iter().filter_map(|j| j.metadata.uid.clone()).collect();
    memory.jobs.retain(|uid, _| live.contains(uid));
    for job in jobs {
        let uid = job.metadata.uid.clone().unwrap_or_default();
        let tracking = memory.jobs.entry(uid).or_default();
        sync(ctx, &job, tracking);
    }
}

fn condition_true(job: &Job, kind: &str) -> bool {
    job.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == kind && c.status == "True"))
}

/// `IsJobFinished`: Complete or Failed is True.
pub fn is_finished(job: &Job) -> bool {
    condition_true(job, "Complete") || condition_true(job, "Failed")
}

/// Takes in what the cache shows of the Job's pods (and the final state of those deleted
/// since the last pass) and says how each uncounted one stands, with when it ended.
fn observe(
    ctx: &Ctx<'_>,
    uid: &str,
    tracking: &mut Tracking,
) -> Vec<(String, Outcome, DateTime<Utc>)> {
    let mut present = HashSet::new();
    for pod in ctx.owned(uid) {
        let puid = pod.metadata.uid.clone().unwrap_or_default();
        present.insert(puid.clone());
        if !tracking.done.contains(&puid) {
            tracking.uncounted.insert(puid, pod.clone());
        }
    }
    for pod in &ctx.deleted_pods {
        let puid = pod.metadata.uid.clone().unwrap_or_default();
        if controller_of(&pod.metadata).is_some_and(|o| o.uid == uid)
            && !present.contains(&puid)
            && let Some(last) = tracking.uncounted.get_mut(&puid)
        {
            *last = pod.clone();
        }
    }
    tracking
        .uncounted
        .iter()
        .map(|(puid, pod)| {
            let gone = !present.contains(puid);
            let o = outcome(phase(pod), is_terminating(pod), gone);
            (puid.clone(), o, finished_time(pod, ctx.now))
        })
        .collect()
}

/// Moves pods to `done`: counted, or let go uncounted (`deleteJobPods` removes the finalizer
/// before the delete).
fn release(tracking: &mut Tracking, uids: impl IntoIterator<Item = String>) {
    for u in uids {
        tracking.uncounted.remove(&u);
        tracking.done.insert(u);
    }
}

fn sync(ctx: &mut Ctx<'_>, job: &Job, tracking: &mut Tracking) {
    if job.metadata.deletion_timestamp.is_some() || is_finished(job) {
        return;
    }
    let Some(spec) = job.spec.as_ref() else {
        return;
    };
    let (ns, name) = key(&job.metadata);
    let uid = job.metadata.uid.clone().unwrap_or_default();
    let status = job.status.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let backoff_limit = spec.backoff_limit.unwrap_or(6);
    let suspended = spec.suspend == Some(true);
    let now = ctx.now;

    let seen = observe(ctx, &uid, tracking);
    let count = |o: Outcome| seen.iter().filter(|(_, x, _)| *x == o).count() as i32;
    let succeeded = status.succeeded.unwrap_or(0) + count(Outcome::Succeeded);
    let mut failed = status.failed.unwrap_or(0) + count(Outcome::Failed);
    let success_met = condition_true(job, "SuccessCriteriaMet");
    let failing = !success_met
        && (condition_true(job, "FailureTarget") || exceeds_backoff_limit(failed, backoff_limit));
    let mut ended: Vec<(String, Outcome, DateTime<Utc>)> = Vec::new();
    for (puid, o, at) in seen {
        // A failing Job counts every pod that has not succeeded as failed, as it deletes it.
        let o = match o {
            Outcome::Unfinished if failing => {
                failed += 1;
                Outcome::Failed
            }
            o => o,
        };
        if o != Outcome::Unfinished {
            ended.push((puid, o, at));
        }
    }
    let times = |want: Outcome| -> Vec<DateTime<Utc>> {
        ended
            .iter()
            .filter(|(_, o, _)| *o == want)
            .map(|(_, _, t)| *t)
            .collect()
    };
    tracking.backoff = tracking
        .backoff
        .after(&times(Outcome::Succeeded), &times(Outcome::Failed));
    release(tracking, ended.into_iter().map(|(u, _, _)| u));

    let pods: Vec<Arc<Pod>> = ctx.owned(&uid).to_vec();
    let mut active: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| is_active(p))
        .collect();
    let mut terminating = pods
        .iter()
        .filter(|p| is_terminating(p) && !is_terminal(p))
        .count() as i32;
    let mut ready = active.iter().filter(|p| is_ready(p)).count() as i32;
    let mut new_pods = 0i32;
    if failing || success_met {
        // `deleteActivePods`: a finished Job keeps no pod running.
        release(
            tracking,
            active.iter().filter_map(|p| p.metadata.uid.clone()),
        );
        for p in active.drain(..) {
            delete_pod(ctx, p);
            terminating += 1;
        }
        ready = 0;
    } else {
        let want = if suspended {
            0
        } else {
            want_active(
                parallelism,
                spec.completions,
                succeeded,
                active.len() as i32,
            )
        };
        let have = active.len() as i32;
        if have > want {
            active.sort_by_cached_key(|p| removal_key(p));
            let surplus: Vec<&Pod> = active.drain(..(have - want) as usize).collect();
            release(
                tracking,
                surplus.iter().filter_map(|p| p.metadata.uid.clone()),
            );
            for p in surplus {
                if is_ready(p) {
                    ready -= 1;
                }
                delete_pod(ctx, p);
                terminating += 1;
            }
        } else if want > have {
            let wait = tracking.backoff.remaining(now);
            if wait > 0.0 {
                ctx.wake_in(wait);
            } else {
                new_pods = create_pods(ctx, job, &ns, &name, (want - have) as usize, tracking);
            }
        }
    }
    let active_count = active.len() as i32 + new_pods;
    let complete =
        success_met || (!failing && is_complete(spec.completions, succeeded, active_count));
    let update = StatusUpdate {
        start: status.start_time.as_ref().map(from_time),
        active: active_count,
        ready,
        terminating,
        succeeded,
        failed,
        failing,
        complete,
        suspended,
        now,
    };
    let _ = ctx.store.mutate(Resource::Job, &ns, &name, |v| {
        update.apply(v);
        Ok(())
    });
}

fn delete_pod(ctx: &Ctx<'_>, pod: &Pod) {
    let (ns, name) = key(&pod.metadata);
    let opts = DeleteOptions {
        uid: pod.metadata.uid.clone(),
        ..DeleteOptions::default()
    };
    let _ = ctx.store.delete(Resource::Pod, &ns, &name, &opts);
}

/// Creates `n` pods from the Job's template (`<job>-<random>`), owned by the Job; returns how
/// many were made.
fn create_pods(
    ctx: &Ctx<'_>,
    job: &Job,
    ns: &str,
    name: &str,
    n: usize,
    tracking: &mut Tracking,
) -> i32 {
    let Some(template) = job.spec.as_ref().map(|s| &s.template) else {
        return 0;
    };
    let owner = controller_ref("batch/v1", "Job", &job.metadata);
    let mut made = 0;
    for _ in 0..n {
        let pod = pod_from_template(template, ns, None, &format!("{name}-"), owner.clone(), &[]);
        let Ok(stored) = ctx.store.create(Resource::Pod, ns, pod) else {
            continue;
        };
        if let Ok(p) = serde_json::from_value::<Pod>((*stored).clone()) {
            let puid = p.metadata.uid.clone().unwrap_or_default();
            tracking.uncounted.insert(puid, Arc::new(p));
        }
        made += 1;
    }
    made
}

/// The status a sync writes.
struct StatusUpdate {
    start: Option<DateTime<Utc>>,
    active: i32,
    ready: i32,
    terminating: i32,
    succeeded: i32,
    failed: i32,
    failing: bool,
    complete: bool,
    suspended: bool,
    now: DateTime<Utc>,
}

impl StatusUpdate {
    fn apply(&self, v: &mut Value) {
        if !v.get("status").is_some_and(Value::is_object) {
            v["status"] = json!({});
        }
        let st = &mut v["status"];
        let now = self.now;
        // The first sync of a Job that is not suspended starts it.
        if self.start.is_none() && !self.suspended {
            st["startTime"] = json!(timestamp(now));
        }
        // `active`, `succeeded` and `failed` are `omitempty`; `ready` and `terminating` are
        // pointers, always written by this controller.
        for (field, n) in [
            ("active", self.active),
            ("succeeded", self.succeeded),
            ("failed", self.failed),
        ] {
            match st.as_object_mut() {
                Some(m) if n == 0 => {
                    m.remove(field);
                }
                _ => st[field] = json!(n),
            }
        }
        st["ready"] = json!(self.ready);
        st["terminating"] = json!(self.terminating);
        st["uncountedTerminatedPods"] = json!({});
        let mut conditions: Vec<Value> = st
            .get("conditions")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let suspended = if self.suspended {
            ("True", "JobSuspended", "Job suspended")
        } else {
            ("False", "JobResumed", "Job resumed")
        };
        if !self.failing
            && !self.complete
            && ensure_condition(&mut conditions, "Suspended", suspended, now)
            && !self.suspended
        {
            // "Resumed jobs will always reset StartTime to current time."
            st["startTime"] = json!(timestamp(now));
        }
        if self.failing {
            let why = (
                "True",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            );
            ensure_condition(&mut conditions, "FailureTarget", why, now);
            if self.terminating == 0 {
                ensure_condition(&mut conditions, "Failed", why, now);
            }
        } else if self.complete {
            let why = (
                "True",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            );
            ensure_condition(&mut conditions, "SuccessCriteriaMet", why, now);
            if self.terminating == 0 {
                let added = ensure_condition(&mut conditions, "Complete", why, now);
                if added {
                    st["completionTime"] = json!(timestamp(now));
                }
            }
        }
        if !conditions.is_empty() {
            st["conditions"] = Value::Array(conditions);
        }
    }
}

/// `ensureJobConditionStatus`: sets the condition when its status, reason or message differ
/// (both times to now); never adds one that would be False. True when it changed the list.
fn ensure_condition(
    list: &mut Vec<Value>,
    kind: &str,
    (status, reason, message): (&str, &str, &str),
    now: DateTime<Utc>,
) -> bool {
    let fresh = json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastProbeTime": timestamp(now), "lastTransitionTime": timestamp(now),
    });
    match list.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => {
            let same = c["status"] == status && c["reason"] == reason && c["message"] == message;
            if !same {
                *c = fresh;
            }
            !same
        }
        None if status != "False" => {
            list.push(fresh);
            true
        }
        None => false,
    }
}

/// When the Job finished successfully, if it did.
pub fn completed_at(job: &Value) -> Option<DateTime<Utc>> {
    job.pointer("/status/completionTime")
        .and_then(Value::as_str)
        .and_then(crate::store::parse_timestamp)
}

/// Whether a Job's `Complete` condition is True (wire JSON).
pub fn completed(job: &Value) -> bool {
    job.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Complete" && c["status"] == "True")
        })
}

/// Simulated seconds from `a` to `b` (0 when `b` is earlier).
pub fn seconds_between(a: DateTime<Utc>, b: DateTime<Utc>) -> f64 {
    ((b - a).num_milliseconds() as f64 / 1000.0).max(0.0)
}

#[cfg(test)]
#[path = "job_tests.rs"]
mod tests;
