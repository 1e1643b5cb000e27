//! Every waiting loop's limit, and the execution budget they add up to.
//!
//! Each loop of the state machine (a step that returns `pending` and is called again after a
//! Wait) sets an absolute deadline in the state the first time it runs and fails with its own
//! error name once the deadline has passed, so no loop runs until the history limit or the
//! execution's timeout. The request's own deadlines (the drain's, and the operator's day when
//! it waits for one) are checked at validation against [`EXECUTION_TIMEOUT_SECS`], which is
//! the state machine's `TimeoutSeconds`: a request whose waits cannot all fit is refused before
//! anything is touched.

use crate::model::Timestamp;
use crate::request::{OnPdbBlocked, Policy};

/// The state machine's `TimeoutSeconds` (48 hours). The ASL test reads both.
pub const EXECUTION_TIMEOUT_SECS: u64 = 48 * 3600;

/// CheckGroupReady: the new group ACTIVE with every node Ready (EKS takes minutes).
pub const GROUP_READY_SECS: u64 = 45 * 60;
/// CheckSurge: the surged pods Ready on new nodes.
pub const SURGE_READY_SECS: u64 = 30 * 60;
/// CutTraffic's health gate: the new group's targets healthy in every load balancer (an NLB
/// registers in 90–180 s, then needs its healthy threshold of checks; a CLB with AWS's
/// defaults 10 checks 30 s apart).
pub const TARGETS_HEALTHY_SECS: u64 = 15 * 60;
/// Retire: the surged Deployments back at their original counts.
pub const RETIRE_SECS: u64 = 30 * 60;
/// Drain: past the drain deadline, with no PodDisruptionBudget refusing, the pods still there
/// get this long (their termination grace, a StatefulSet's last ordinal) before `DrainTimedOut`.
pub const DRAIN_OVERRUN_SECS: u64 = 15 * 60;
/// DeleteOld, before DeleteNodegroup: the last pods leaving the old nodes.
pub const OLD_GROUP_EMPTY_SECS: u64 = 30 * 60;
/// CheckDeleted: EKS deleting the old group.
pub const OLD_GROUP_GONE_SECS: u64 = 30 * 60;
/// Restore: each HPA handed back holding its target where it asks (a sync or two of the HPA
/// controller, 15 s apart). Past it the restore goes on and says which did not.
pub const HPAS_SETTLED_SECS: u64 = 5 * 60;
/// Rollback's own waits besides the load-balancer drain (added to it): old nodes passing
/// their health checks, then the new nodes' pods leaving by eviction.
pub const ROLLBACK_SECS: u64 = 2 * 3600;
/// The operator's time to answer a PDB-blocked drain: `AwaitOperator`'s `TimeoutSeconds`.
pub const OPERATOR_WAIT_SECS: u64 = 24 * 3600;
/// The longest load-balancer drain wait: above any idle timeout (NLB TCP at most 6,000 s) or
/// deregistration delay (at most 3,600 s) plus margin. Also the most `lbDrainSecondsOverride`
/// may ask.
pub const MAX_LB_DRAIN_SECS: u64 = 7200;
/// Slack for Lambda retries with backoff, Wait floors between polls, the restore, the dry
/// parts of each step.
pub const MARGIN_SECS: u64 = 3600;
/// The shortest drain deadline a request may set.
pub const MIN_DRAIN_DEADLINE_SECS: u64 = 60;

/// Everything but the drain deadline and the operator's wait, with the LB drain wait at `lb`
/// (it is waited twice at most: after cut-traffic, and in a rollback).
pub fn fixed_waits_secs(lb: u64) -> u64 {
    GROUP_READY_SECS
        + SURGE_READY_SECS
        + TARGETS_HEALTHY_SECS
        + RETIRE_SECS
        + DRAIN_OVERRUN_SECS
        + OLD_GROUP_EMPTY_SECS
        // After the old group's deletion begins, CheckDeleted and the restore replace the
        // rollback, and take less.
        + ROLLBACK_SECS.max(OLD_GROUP_GONE_SECS + HPAS_SETTLED_SECS)
        + MARGIN_SECS
        + 2 * lb
}

/// The operator's wait a policy may go through.
pub fn operator_secs(policy: &Policy) -> u64 {
    if policy.on_pdb_blocked == OnPdbBlocked::WaitForOperator {
        OPERATOR_WAIT_SECS
    } else {
        0
    }
}

/// The LB drain wait a policy may go through: its override, else the longest there is.
pub fn lb_secs(policy: &Policy) -> u64 {
    policy
        .lb_drain_seconds_override
        .unwrap_or(MAX_LB_DRAIN_SECS)
}

/// How long the drain may run before its overrun: its deadline for PDBs, or the wait for pods
/// that run to completion (`jobs.finishWithinSeconds` with `waitToFinish`) if longer. The two
/// run side by side.
pub fn drain_window_secs(policy: &Policy) -> u64 {
    policy.drain_deadline_seconds.max(policy.jobs.wait_secs())
}

/// The longest an execution of this policy may take when every loop runs to its deadline.
pub fn execution_budget_secs(policy: &Policy) -> u64 {
    fixed_waits_secs(lb_secs(policy))
        .saturating_add(drain_window_secs(policy))
        .saturating_add(operator_secs(policy))
}

/// The longest drain deadline (or wait for Jobs) that fits in the execution with this policy's
/// other waits.
pub fn max_drain_deadline_secs(policy: &Policy) -> u64 {
    EXECUTION_TIMEOUT_SECS
        .saturating_sub(fixed_waits_secs(lb_secs(policy)))
        .saturating_sub(operator_secs(policy))
}

/// The latest instant a drain deadline may be set to (after an operator's `retry`), so that
/// what follows the drain (DeleteOld's wait and a rollback or the deletion) still fits before
/// the execution times out.
pub fn latest_drain_by(started_at: Timestamp, policy: &Policy) -> Timestamp {
    let after = DRAIN_OVERRUN_SECS
        + OLD_GROUP_EMPTY_SECS
        + ROLLBACK_SECS.max(OLD_GROUP_GONE_SECS)
        + lb_secs(policy)
        + MARGIN_SECS;
    started_at.plus(EXECUTION_TIMEOUT_SECS.saturating_sub(after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_drain_deadline_fills_the_execution_exactly() {
        for on in [
            OnPdbBlocked::WaitForOperator,
            OnPdbBlocked::Rollback,
            OnPdbBlocked::Force,
        ] {
            let mut p = Policy {
                on_pdb_blocked: on,
                ..Policy::default()
            };
            p.drain_deadline_seconds = max_drain_deadline_secs(&p);
            assert_eq!(execution_budget_secs(&p), EXECUTION_TIMEOUT_SECS, "{on:?}");
            assert!(p.drain_deadline_seconds >= MIN_DRAIN_DEADLINE_SECS);
        }
    }

    #[test]
    fn the_wait_for_jobs_and_the_drain_deadline_run_side_by_side() {
        let mut p = Policy::default();
        let base = execution_budget_secs(&p);
        // Evicting Jobs waits for nothing.
        p.jobs.finish_within_seconds = 7 * 3600;
        assert_eq!(execution_budget_secs(&p), base);
        p.jobs.mode = crate::request::JobMode::WaitToFinish;
        assert_eq!(
            execution_budget_secs(&p),
            base - p.drain_deadline_seconds + 7 * 3600
        );
        p.jobs.finish_within_seconds = 60;
        assert_eq!(execution_budget_secs(&p), base);
    }

    #[test]
    fn waiting_for_an_operator_leaves_a_day_less_for_the_drain() {
        let wait = Policy {
            on_pdb_blocked: OnPdbBlocked::WaitForOperator,
            ..Policy::default()
        };
        let roll = Policy::default();
        assert_eq!(
            max_drain_deadline_secs(&roll) - max_drain_deadline_secs(&wait),
            OPERATOR_WAIT_SECS
        );
    }

    #[test]
    fn a_retried_drain_still_leaves_room_for_what_follows() {
        let p = Policy::default();
        let start = Timestamp(1_000);
        let latest = latest_drain_by(start, &p);
        let after = latest.secs_since(start);
        assert!(after < EXECUTION_TIMEOUT_SECS);
        assert!(
            EXECUTION_TIMEOUT_SECS - after
                >= OLD_GROUP_EMPTY_SECS + ROLLBACK_SECS + MAX_LB_DRAIN_SECS
        );
    }
}
