use super::*;
use crate::fixtures::{PodExt, WorkloadExt, deployment, pod};
use crate::model::PodView;
use crate::request::{BarePodPolicy, EmptyDirPolicy, Policy};

fn policy() -> Policy {
    Policy::default()
}

/// The drain's clock with its deadline at `drain_by`, Jobs evicted.
fn at(drain_by: i64, now: i64) -> DrainClock {
    DrainClock {
        drain_by: Timestamp(drain_by),
        jobs_by: None,
        now: Timestamp(now),
    }
}

#[test]
fn eligibility_follows_the_filters() {
    let bare_skip = Policy {
        pods_without_controller: BarePodPolicy::Skip,
        ..policy()
    };
    let bare_evict = Policy {
        pods_without_controller: BarePodPolicy::Evict,
        ..policy()
    };
    let empty_fail = Policy {
        empty_dir: EmptyDirPolicy::Fail,
        ..policy()
    };
    let mut excluded = policy();
    excluded.namespaces.exclude = vec!["a".into()];
    let p = || pod("a", "p", "web", "old1");
    type Case = (&'static str, PodView, Policy, fn(&Eligibility) -> bool);
    let cases: Vec<Case> = vec![
        (
            "plain pod",
            p(),
            policy(),
            |e| matches!(e, Eligibility::Evict { warnings } if warnings.is_empty()),
        ),
        (
            "daemonset",
            p().owned_by("DaemonSet", "ds"),
            policy(),
            |e| matches!(e, Eligibility::Skip { reason } if reason == "DaemonSet pod"),
        ),
        (
            "mirror",
            p().mirror(),
            policy(),
            |e| matches!(e, Eligibility::Skip { reason } if reason == "mirror pod"),
        ),
        ("terminating", p().terminating(), policy(), |e| {
            matches!(e, Eligibility::Skip { .. })
        }),
        (
            "opt-out",
            p().annotate("ngm.io/skip-migration", ""),
            policy(),
            |e| matches!(e, Eligibility::Skip { reason } if reason.contains("opted out")),
        ),
        (
            "excluded namespace",
            p(),
            excluded,
            |e| matches!(e, Eligibility::Skip { reason } if reason.contains("out of scope")),
        ),
        (
            "bare pod, fail",
            p().bare(),
            policy(),
            |e| matches!(e, Eligibility::Error { reason } if reason == "a/p has no controller"),
        ),
        ("bare pod, skip", p().bare(), bare_skip, |e| {
            matches!(e, Eligibility::Skip { .. })
        }),
        (
            "bare pod, evict",
            p().bare(),
            bare_evict,
            |e| matches!(e, Eligibility::Evict { warnings } if warnings.len() == 1),
        ),
        (
            "emptyDir, evict",
            p().empty_dir(),
            policy(),
            |e| matches!(e, Eligibility::Evict { warnings } if warnings[0].contains("emptyDir")),
        ),
        ("emptyDir, fail", p().empty_dir(), empty_fail, |e| {
            matches!(e, Eligibility::Error { .. })
        }),
        (
            "opted-out bare pod is skipped, not refused",
            p().bare().annotate("ngm.io/skip-migration", ""),
            policy(),
            |e| matches!(e, Eligibility::Skip { .. }),
        ),
    ];
    for (name, pod, pol, check) in cases {
        let e = eligibility(&pod, &pol);
        assert!(check(&e), "{name}: {e:?}");
    }
}

fn evicted(plan: &DrainPlan) -> Vec<String> {
    plan.actions
        .iter()
        .filter_map(|a| match a {
            Action::EvictPod { name, .. } | Action::DeletePod { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

fn sts_pod(name: &str) -> PodView {
    pod("a", name, "db", "old1").owned_by("StatefulSet", "db")
}

#[test]
fn statefulsets_go_highest_ordinal_first_and_only_when_ready() {
    let db = deployment("a", "db", 3).statefulset();
    let pods = vec![
        sts_pod("db-0"),
        sts_pod("db-2"),
        sts_pod("db-10"),
        pod("a", "web-1", "web", "old1"),
    ];
    let plan = plan_drain(
        &pods,
        std::slice::from_ref(&db),
        &policy(),
        None,
        at(100, 0),
    );
    assert_eq!(
        evicted(&plan),
        vec!["db-10".to_string(), "web-1".to_string()]
    );

    // A replacement not Ready yet: the set waits.
    let plan = plan_drain(&pods, &[db.clone().ready(2)], &policy(), None, at(100, 0));
    assert_eq!(evicted(&plan), vec!["web-1".to_string()]);

    // A member still terminating: the set waits.
    let mut pods2 = pods.clone();
    pods2[2] = sts_pod("db-10").terminating();
    let plan = plan_drain(
        &pods2,
        std::slice::from_ref(&db),
        &policy(),
        None,
        at(100, 0),
    );
    assert_eq!(evicted(&plan), vec!["web-1".to_string()]);
}

#[test]
fn drain_is_done_when_only_skipped_pods_remain() {
    let pods = vec![
        pod("a", "ds-1", "ds", "old1").owned_by("DaemonSet", "ds"),
        pod("a", "m", "m", "old1").mirror(),
    ];
    let plan = plan_drain(&pods, &[], &policy(), None, at(100, 0));
    assert_eq!(plan.outcome, DrainOutcome::Done);
    assert_eq!(plan.skipped, 2);
    // A pod still terminating keeps the drain going.
    let plan = plan_drain(
        &[pod("a", "w", "w", "old1").terminating()],
        &[],
        &policy(),
        None,
        at(100, 0),
    );
    assert!(matches!(plan.outcome, DrainOutcome::Continue { .. }));
}

#[test]
fn a_refused_pod_stops_the_drain_with_its_reason() {
    let plan = plan_drain(
        &[
            pod("a", "p", "w", "old1").bare(),
            pod("a", "q", "w", "old1"),
        ],
        &[],
        &policy(),
        None,
        at(100, 0),
    );
    assert_eq!(plan.actions, vec![]);
    assert_eq!(
        plan.outcome,
        DrainOutcome::Refused {
            reasons: vec!["a/p has no controller".into()]
        }
    );
}

#[test]
fn a_pdb_blocked_past_the_deadline_follows_the_policy() {
    let pods = vec![pod("a", "web-1", "web", "old1")];
    let blocked = Blocked {
        pod: "a/web-1".into(),
        pdb: Some("a/web-pdb".into()),
        since: Timestamp(10),
    };
    // Before the deadline: keep evicting.
    let plan = plan_drain(&pods, &[], &policy(), Some(&blocked), at(100, 50));
    assert_eq!(evicted(&plan), vec!["web-1".to_string()]);
    for (then, want_blocked, want_delete) in [
        (OnPdbBlocked::Rollback, true, false),
        (OnPdbBlocked::WaitForOperator, true, false),
        (OnPdbBlocked::Force, false, true),
    ] {
        let p = Policy {
            on_pdb_blocked: then,
            ..policy()
        };
        let plan = plan_drain(&pods, &[], &p, Some(&blocked), at(100, 100));
        assert_eq!(
            matches!(plan.outcome, DrainOutcome::Blocked { .. }),
            want_blocked,
            "{then:?}"
        );
        assert_eq!(
            plan.actions
                .iter()
                .any(|a| matches!(a, Action::DeletePod { .. })),
            want_delete,
            "{then:?}"
        );
        if let DrainOutcome::Blocked { pod, pdb, .. } = &plan.outcome {
            assert_eq!(
                (pod.as_str(), pdb.as_deref()),
                ("a/web-1", Some("a/web-pdb"))
            );
        }
    }
}

#[test]
fn evictions_are_batched_per_round() {
    let pods: Vec<PodView> = (0..450)
        .map(|i| pod("a", &format!("p{i:03}"), &format!("w{i}"), "old1"))
        .collect();
    let plan = plan_drain(&pods, &[], &policy(), None, at(100, 0));
    assert_eq!(plan.actions.len(), MAX_EVICTIONS_PER_ROUND);
}

#[test]
fn a_deployments_pods_leave_one_at_a_time() {
    let pods = vec![
        pod("a", "web-2", "web", "old1"),
        pod("a", "web-1", "web", "old1"),
        pod("a", "api-1", "api", "old2"),
    ];
    let plan = plan_drain(&pods, &[], &policy(), None, at(100, 0));
    let evicted: Vec<&str> = plan
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::EvictPod { name, .. } => Some(name.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(evicted, vec!["api-1", "web-1"]);

    // While web-1 terminates, web-2 waits; api has nothing left.
    let pods = vec![
        pod("a", "web-1", "web", "old1").terminating(),
        pod("a", "web-2", "web", "old1"),
    ];
    let plan = plan_drain(&pods, &[], &policy(), None, at(100, 0));
    assert!(plan.actions.is_empty(), "{:?}", plan.actions);
    assert!(matches!(plan.outcome, DrainOutcome::Continue { .. }));
}

#[test]
fn ordinals_parse_from_pod_names() {
    assert_eq!(ordinal("db-12", "db"), Some(12));
    assert_eq!(ordinal("db-x", "db"), None);
    assert_eq!(ordinal("other-1", "db"), None);
}

/// A policy that leaves Jobs' pods (and pods labelled `batch=long`) to finish.
fn waiting() -> Policy {
    let mut p = policy();
    p.jobs.mode = crate::request::JobMode::WaitToFinish;
    p.jobs.finish_within_seconds = 3600;
    p.jobs.selector = Some(crate::model::LabelSelector::eq([("batch", "long")]));
    p
}

fn job_pod(name: &str) -> PodView {
    pod("a", name, "etl", "old1").owned_by("Job", "etl")
}

/// The drain's clock with the PDB deadline at 100 and the wait for Jobs ending at `jobs_by`.
fn with_jobs(jobs_by: i64, now: i64) -> DrainClock {
    DrainClock {
        jobs_by: Some(Timestamp(jobs_by)),
        ..at(100, now)
    }
}

#[test]
fn pods_that_run_to_completion_are_left_to_finish_while_the_rest_is_evicted() {
    let mut labelled = pod("a", "spark-driver", "spark", "old1");
    labelled.labels.insert("batch".into(), "long".into());
    let pods = vec![
        job_pod("etl-abc"),
        labelled,
        pod("a", "web-1", "web", "old1"),
    ];
    let plan = plan_drain(&pods, &[], &waiting(), None, with_jobs(3600, 0));
    assert_eq!(evicted(&plan), vec!["web-1".to_string()]);
    assert_eq!(plan.waiting_for_jobs, 2);
    assert_eq!(
        plan.outcome,
        DrainOutcome::Continue {
            retry_after_seconds: DRAIN_POLL_SECS
        }
    );

    // Only they are left: the drain polls less often, and never past their wait.
    let plan = plan_drain(&pods[..2], &[], &waiting(), None, with_jobs(3600, 0));
    assert!(plan.actions.is_empty());
    assert_eq!(
        plan.outcome,
        DrainOutcome::Continue {
            retry_after_seconds: JOB_POLL_SECS
        }
    );
    let plan = plan_drain(&pods[..2], &[], &waiting(), None, with_jobs(3600, 3570));
    assert_eq!(
        plan.outcome,
        DrainOutcome::Continue {
            retry_after_seconds: 30
        }
    );
}

#[test]
fn the_same_pods_are_evicted_at_once_when_the_policy_evicts_jobs() {
    let pods = vec![job_pod("etl-abc"), job_pod("etl-def")];
    // `jobs_by` is None when the mode is `evict`; a clock with one still evicts by the policy.
    for clock in [at(100, 0), with_jobs(3600, 0)] {
        let plan = plan_drain(&pods, &[], &policy(), None, clock);
        assert_eq!(
            evicted(&plan),
            vec!["etl-abc".to_string(), "etl-def".to_string()]
        );
        assert_eq!(plan.waiting_for_jobs, 0);
    }
}

#[test]
fn a_finished_job_pod_is_tidied_and_a_running_one_is_evicted_when_its_wait_is_over() {
    let mut done = job_pod("etl-done");
    done.phase = crate::model::PodPhase::Succeeded;
    let pods = vec![done, job_pod("etl-running")];
    let plan = plan_drain(&pods, &[], &waiting(), None, with_jobs(3600, 0));
    assert_eq!(evicted(&plan), vec!["etl-done".to_string()]);
    assert_eq!(plan.waiting_for_jobs, 1);

    let plan = plan_drain(&pods, &[], &waiting(), None, with_jobs(3600, 3600));
    assert_eq!(
        evicted(&plan),
        vec!["etl-done".to_string(), "etl-running".to_string()]
    );
    assert_eq!(plan.waiting_for_jobs, 0);
}

#[test]
fn a_job_left_to_finish_is_not_timed_out_by_the_shorter_pdb_deadline() {
    let pods = vec![job_pod("etl-abc")];
    // Far past the PDB deadline (100) and its overrun, inside the Jobs' wait.
    let now = 100 + i64::try_from(DRAIN_OVERRUN_SECS).unwrap() + 10;
    let plan = plan_drain(&pods, &[], &waiting(), None, with_jobs(7200, now));
    assert!(matches!(plan.outcome, DrainOutcome::Continue { .. }));
    // Past the later deadline's overrun, a pod that would not go times the drain out.
    let stuck = vec![job_pod("etl-abc").terminating()];
    let end = 7200 + i64::try_from(DRAIN_OVERRUN_SECS).unwrap();
    let plan = plan_drain(&stuck, &[], &waiting(), None, with_jobs(7200, end));
    assert_eq!(plan.outcome, DrainOutcome::TimedOut { remaining: 1 });
}

#[test]
fn skips_come_before_the_wait_and_a_waited_pod_is_not_judged_until_its_wait_ends() {
    let mut p = waiting();
    p.pods_without_controller = BarePodPolicy::Fail;
    let opted_out = job_pod("etl-out").annotate(crate::request::DEFAULT_OPT_OUT_ANNOTATION, "");
    let mut bare = pod("a", "batch-1", "b", "old1").bare();
    bare.labels.insert("batch".into(), "long".into());
    let pods = vec![opted_out, bare];
    let plan = plan_drain(&pods, &[], &p, None, with_jobs(3600, 0));
    assert_eq!(plan.skipped, 1);
    assert_eq!(plan.waiting_for_jobs, 1);
    assert!(matches!(plan.outcome, DrainOutcome::Continue { .. }));
    // Once its wait is over, the bare pod meets the policy for pods without a controller.
    let plan = plan_drain(&pods, &[], &p, None, with_jobs(3600, 3600));
    assert!(matches!(plan.outcome, DrainOutcome::Refused { .. }));
}
