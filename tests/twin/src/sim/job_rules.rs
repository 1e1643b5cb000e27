//! Pure rules of the Job controller (kubernetes `pkg/controller/job/job_controller.go` and
//! `backoff_utils.go`): how a pod counts, how many pods a Job wants, when it is done or
//! failed, the pod failure back-off, and the order surplus pods go in.

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::Pod;

use super::podutil::{
    condition, created, from_time, is_ready, max_restarts, node_name, phase, ready_since,
};

/// `DefaultJobPodFailureBackOff`.
pub const POD_FAILURE_BACKOFF_SECONDS: f64 = 10.0;
/// `MaxJobPodFailureBackOff`.
pub const MAX_POD_FAILURE_BACKOFF_SECONDS: f64 = 600.0;

/// How one of a Job's pods counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Not finished: it counts when it ends.
    Unfinished,
    Succeeded,
    Failed,
}

/// How a pod counts: Succeeded by its phase; failed when its phase is Failed, when it is being
/// deleted before it succeeded, or when it is gone from the API without having succeeded
/// (`isPodFailed` with `podReplacementPolicy: TerminatingOrFailed`).
pub fn outcome(phase: &str, terminating: bool, gone: bool) -> Outcome {
    match phase {
        "Succeeded" => Outcome::Succeeded,
        "Failed" => Outcome::Failed,
        _ if terminating || gone => Outcome::Failed,
        _ => Outcome::Unfinished,
    }
}

/// `manageJob`'s `wantActive`: with `completions`, `min(parallelism, completions -
/// succeeded)` and at least 0; without, `parallelism` until one pod succeeded, then whatever
/// is active.
pub fn want_active(parallelism: i32, completions: Option<i32>, succeeded: i32, active: i32) -> i32 {
    match completions {
        Some(c) => (c - succeeded).min(parallelism).max(0),
        None if succeeded > 0 => active,
        None => parallelism.max(0),
    }
}

/// Whether the Job is complete: `succeeded >= completions` (or, without completions, one
/// success) and nothing left active (`syncJob`).
pub fn is_complete(completions: Option<i32>, succeeded: i32, active: i32) -> bool {
    active == 0
        && match completions {
            Some(c) => succeeded >= c,
            None => succeeded > 0,
        }
}

/// `exceedsBackoffLimit := failed > backoffLimit`.
pub fn exceeds_backoff_limit(failed: i32, backoff_limit: i32) -> bool {
    failed > backoff_limit
}

/// The controller's pod failure back-off record (`backoffRecord`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backoff {
    pub failures_after_last_success: u32,
    pub last_failure: Option<DateTime<Utc>>,
}

impl Backoff {
    /// The record after pods newly ended at these times (`newBackoffRecord`): failures alone
    /// add up; a success resets the count to the failures after the last success.
    pub fn after(self, succeeded: &[DateTime<Utc>], failed: &[DateTime<Utc>]) -> Self {
        let mut failed = failed.to_vec();
        failed.sort();
        let Some(last_success) = succeeded.iter().max() else {
            return match failed.last() {
                None => self,
                Some(last) => Self {
                    failures_after_last_success: self.failures_after_last_success
                        + failed.len() as u32,
                    last_failure: Some(*last),
                },
            };
        };
        let after: Vec<&DateTime<Utc>> = failed.iter().filter(|t| *t > last_success).collect();
        Self {
            failures_after_last_success: after.len() as u32,
            last_failure: after.last().map(|t| **t),
        }
    }

    /// Seconds before a new pod may be made (`getRemainingTimeForFailuresCount`): 10 s
    /// doubling per failure after the first, at most 10 min, from the last failure.
    pub fn remaining(&self, now: DateTime<Utc>) -> f64 {
        let (n, Some(last)) = (self.failures_after_last_success, self.last_failure) else {
            return 0.0;
        };
        if n == 0 {
            return 0.0;
        }
        let delay = (POD_FAILURE_BACKOFF_SECONDS * 2f64.powi(n.min(32) as i32 - 1))
            .min(MAX_POD_FAILURE_BACKOFF_SECONDS);
        let elapsed = (now - last).num_milliseconds() as f64 / 1000.0;
        (delay - elapsed).max(0.0)
    }
}

/// When a pod ended (`getFinishedTime`): its containers' last `finishedAt`, else its Ready
/// False transition, else deletion time (`deletionTimestamp - deletionGracePeriodSeconds`);
/// a pod removed with none of those ended when it was seen gone (`gone_at`).
pub fn finished_time(pod: &Pod, gone_at: DateTime<Utc>) -> DateTime<Utc> {
    let statuses = pod
        .status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref());
    let terminated: Option<Vec<DateTime<Utc>>> = statuses.filter(|s| !s.is_empty()).and_then(|s| {
        s.iter()
            .map(|c| {
                c.state
                    .as_ref()?
                    .terminated
                    .as_ref()?
                    .finished_at
                    .as_ref()
                    .map(from_time)
            })
            .collect()
    });
    if let Some(t) = terminated.and_then(|ts| ts.into_iter().max()) {
        return t;
    }
    if let Some(t) = condition(pod, "Ready")
        .filter(|c| c.status == "False")
        .and_then(|c| c.last_transition_time.as_ref())
    {
        return from_time(t);
    }
    if let Some(t) = pod.metadata.deletion_timestamp.as_ref() {
        let grace = pod.metadata.deletion_grace_period_seconds.unwrap_or(0);
        return from_time(t) - chrono::TimeDelta::seconds(grace);
    }
    gone_at
}

/// Where a pod stands in [`removal_key`]'s order.
pub type RemovalKey = (
    bool,
    u8,
    bool,
    std::cmp::Reverse<Option<DateTime<Utc>>>,
    std::cmp::Reverse<i32>,
    std::cmp::Reverse<DateTime<Utc>>,
);

/// `controller.ActivePods`: the order in which surplus pods go, first first: unscheduled,
/// Pending before Unknown before Running, not ready, ready for less time, more restarts,
/// newer.
pub fn removal_key(pod: &Pod) -> RemovalKey {
    let phase_rank = match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    };
    (
        node_name(pod).is_some(),
        phase_rank,
        is_ready(pod),
        std::cmp::Reverse(ready_since(pod)),
        std::cmp::Reverse(max_restarts(pod)),
        std::cmp::Reverse(created(pod)),
    )
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::{Value, json};

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_225_600 + secs, 0).unwrap_or_default()
    }

    /// `manageJob` (pkg/controller/job/job_controller.go): `wantActive = completions -
    /// succeeded`, capped at `parallelism`, never below 0; without completions, `parallelism`
    /// until a pod succeeded, then what is active.
    #[test]
    fn active_pods_are_parallelism_capped_by_the_completions_left() {
        let cases = [
            (2, Some(5), 0, 0, 2, "parallelism caps"),
            (2, Some(5), 4, 2, 1, "one completion left"),
            (2, Some(5), 5, 0, 0, "all completions reached"),
            (2, Some(5), 7, 0, 0, "never below 0"),
            (3, None, 0, 0, 3, "work queue: parallelism"),
            (
                3,
                None,
                1,
                2,
                2,
                "work queue after a success: what is active",
            ),
        ];
        for (parallelism, completions, succeeded, active, want, why) in cases {
            assert_eq!(
                want_active(parallelism, completions, succeeded, active),
                want,
                "{why}"
            );
        }
        assert!(is_complete(Some(3), 3, 0));
        assert!(!is_complete(Some(3), 3, 1), "a pod still active");
        assert!(!is_complete(Some(3), 2, 0));
    }

    /// `isPodFailed` (job_controller.go, with `podReplacementPolicy: TerminatingOrFailed`):
    /// "Count deleted Pods as failures to account for orphan Pods that never have a chance to
    /// reach the Failed phase"; a pod that succeeded counts as succeeded even while deleted.
    #[test]
    fn a_pod_counts_by_its_phase_and_a_deleted_one_as_failed_unless_it_succeeded() {
        assert_eq!(outcome("Running", false, false), Outcome::Unfinished);
        assert_eq!(outcome("Pending", false, false), Outcome::Unfinished);
        assert_eq!(outcome("Succeeded", false, false), Outcome::Succeeded);
        assert_eq!(outcome("Succeeded", true, true), Outcome::Succeeded);
        assert_eq!(outcome("Failed", false, false), Outcome::Failed);
        assert_eq!(outcome("Running", true, false), Outcome::Failed, "evicted");
        assert_eq!(outcome("Pending", true, false), Outcome::Failed);
        assert_eq!(outcome("Running", false, true), Outcome::Failed, "lost");
    }

    /// `exceedsBackoffLimit := jobCtx.failed > *job.Spec.BackoffLimit` (job_controller.go
    /// `syncJob`): the Job fails on the failure after the limit, not at it.
    #[test]
    fn a_job_fails_only_once_its_failures_exceed_the_backoff_limit() {
        assert!(!exceeds_backoff_limit(6, 6));
        assert!(exceeds_backoff_limit(7, 6));
        assert!(exceeds_backoff_limit(1, 0));
        assert!(!exceeds_backoff_limit(0, 0));
    }

    /// `getRemainingTimeForFailuresCount` (pkg/controller/job/backoff_utils.go) with
    /// `DefaultJobPodFailureBackOff` 10 s and `MaxJobPodFailureBackOff` 10 min: 10 s after one
    /// failure, doubling per further failure, capped, counted from the last failure.
    #[test]
    fn the_pod_failure_backoff_doubles_from_ten_seconds_up_to_ten_minutes() {
        let after = |n: u32, elapsed: i64| {
            Backoff {
                failures_after_last_success: n,
                last_failure: Some(t(0)),
            }
            .remaining(t(elapsed))
        };
        assert_eq!(after(0, 0), 0.0);
        assert_eq!(after(1, 0), 10.0);
        assert_eq!(after(1, 4), 6.0);
        assert_eq!(after(1, 11), 0.0);
        assert_eq!(after(2, 0), 20.0);
        assert_eq!(after(3, 0), 40.0);
        assert_eq!(after(7, 0), 600.0, "640 s is capped at 10 min");
        assert_eq!(after(40, 0), 600.0);
        assert_eq!(Backoff::default().remaining(t(0)), 0.0);
    }

    /// `newBackoffRecord` (backoff_utils.go): failures alone add up and move the last failure;
    /// a success resets the count to the failures that ended after it.
    #[test]
    fn a_success_resets_the_backoff_to_the_failures_after_it() {
        let one = Backoff::default().after(&[], &[t(5)]);
        assert_eq!(one.failures_after_last_success, 1);
        assert_eq!(one.last_failure, Some(t(5)));
        let three = one.after(&[], &[t(9), t(7)]);
        assert_eq!(three.failures_after_last_success, 3);
        assert_eq!(three.last_failure, Some(t(9)));
        let reset = three.after(&[t(20)], &[t(10)]);
        assert_eq!(
            reset,
            Backoff::default(),
            "the failure was before the success"
        );
        let after = three.after(&[t(20)], &[t(10), t(25), t(30)]);
        assert_eq!(after.failures_after_last_success, 2);
        assert_eq!(after.last_failure, Some(t(30)));
        assert_eq!(three.after(&[], &[]), three);
    }

    /// `getFinishedTime` (backoff_utils.go): the containers' last `finishedAt`, else the Ready
    /// False transition, else `deletionTimestamp - deletionGracePeriodSeconds`.
    #[test]
    fn a_pod_ended_when_its_containers_finished_or_its_deletion_was_asked() {
        let pod = |v: Value| -> Pod { serde_json::from_value(v).expect("pod decodes") };
        let finished = pod(json!({
            "metadata": { "name": "p" },
            "status": { "containerStatuses": [
                { "name": "a", "image": "", "imageID": "", "ready": false, "restartCount": 0,
                  "state": { "terminated": { "exitCode": 0, "finishedAt": "2026-01-01T00:01:40Z" } } },
            ] },
        }));
        assert_eq!(finished_time(&finished, t(999)), t(100));
        let deleted = pod(json!({
            "metadata": { "name": "p", "deletionTimestamp": "2026-01-01T00:01:10Z",
                          "deletionGracePeriodSeconds": 30 },
            "status": { "conditions": [{ "type": "Ready", "status": "True" }] },
        }));
        assert_eq!(finished_time(&deleted, t(999)), t(40));
        let lost = pod(json!({ "metadata": { "name": "p" } }));
        assert_eq!(finished_time(&lost, t(999)), t(999));
    }
}
