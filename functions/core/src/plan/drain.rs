//! Step 9: drain what is left on the old nodes, kubectl-drain style: filters first, then act.
//!
//! Each filter looks at one pod and answers ok, skip, warn or error with a reason. Evictions go
//! through the Eviction API, which refuses (429) while a PDB is at its limit; StatefulSet pods
//! go one ordinal at a time, highest first, each only once the set is fully Ready again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model::{PodPhase, PodView, Timestamp, WorkloadKind, WorkloadView};
use crate::plan::action::Action;
use crate::plan::deadlines::{DRAIN_OVERRUN_SECS, latest_drain_by};
use crate::request::{BarePodPolicy, EmptyDirPolicy, OnPdbBlocked, Policy};
use crate::state::{Blocked, OperatorAction, OperatorAnswer};

/// A filter's answer for one pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "verdict", content = "reason")]
pub enum Verdict {
    Ok,
    Skip(String),
    Warn(String),
    Error(String),
}

/// A drain filter.
pub type Filter = fn(&PodView, &Policy) -> Verdict;

pub fn mirror_filter(p: &PodView, _: &Policy) -> Verdict {
    // The kubelet owns static pods; deleting the API mirror does nothing.
    if p.is_mirror {
        Verdict::Skip("mirror pod".into())
    } else {
        Verdict::Ok
    }
}

pub fn daemonset_filter(p: &PodView, _: &Policy) -> Verdict {
    // The DaemonSet controller would recreate it on the same node at once.
    if p.owner_kind() == Some("DaemonSet") {
        Verdict::Skip("DaemonSet pod".into())
    } else {
        Verdict::Ok
    }
}

pub fn terminating_filter(p: &PodView, _: &Policy) -> Verdict {
    if p.terminating {
        Verdict::Skip("already terminating".into())
    } else {
        Verdict::Ok
    }
}

pub fn namespace_filter(p: &PodView, policy: &Policy) -> Verdict {
    if policy.namespaces.allows(&p.namespace) {
        Verdict::Ok
    } else {
        Verdict::Skip(format!("namespace {} is out of scope", p.namespace))
    }
}

pub fn opt_out_filter(p: &PodView, policy: &Policy) -> Verdict {
    if p.annotations.contains_key(&policy.opt_out_annotation) {
        Verdict::Skip(format!("opted out with {}", policy.opt_out_annotation))
    } else {
        Verdict::Ok
    }
}

pub fn unreplicated_filter(p: &PodView, policy: &Policy) -> Verdict {
    // A finished bare pod holds nothing; evicting it only tidies up, as kubectl drain does.
    if p.owner.is_some() || matches!(p.phase, PodPhase::Succeeded | PodPhase::Failed) {
        return Verdict::Ok;
    }
    match policy.pods_without_controller {
        BarePodPolicy::Fail => Verdict::Error(format!("{} has no controller", p.key())),
        BarePodPolicy::Skip => Verdict::Skip("no controller (policy: skip)".into()),
        BarePodPolicy::Evict => Verdict::Warn(format!(
            "{} has no controller and will not come back",
            p.key()
        )),
    }
}

pub fn empty_dir_filter(p: &PodView, policy: &Policy) -> Verdict {
    if !p.has_empty_dir {
        return Verdict::Ok;
    }
    match policy.empty_dir {
        EmptyDirPolicy::Fail => Verdict::Error(format!("{} uses emptyDir", p.key())),
        EmptyDirPolicy::Evict => Verdict::Warn(format!("{} loses its emptyDir data", p.key())),
    }
}

/// The filters in kubectl's order: skips first, so a skipped pod never raises an error.
pub const FILTERS: &[Filter] = &[
    mirror_filter,
    daemonset_filter,
    terminating_filter,
    namespace_filter,
    opt_out_filter,
    unreplicated_filter,
    empty_dir_filter,
];

/// The combined answer for a pod.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "eligibility")]
pub enum Eligibility {
    Evict { warnings: Vec<String> },
    Skip { reason: String },
    Error { reason: String },
}

/// Runs [`FILTERS`]: the first skip wins, then any error, else evict with the warnings.
pub fn eligibility(p: &PodView, policy: &Policy) -> Eligibility {
    let mut warnings = Vec::new();
    let mut error = None;
    for f in FILTERS {
        match f(p, policy) {
            Verdict::Ok => {}
            Verdict::Skip(reason) => return Eligibility::Skip { reason },
            Verdict::Warn(w) => warnings.push(w),
            Verdict::Error(e) => {
                error.get_or_insert(e);
            }
        }
    }
    match error {
        Some(reason) => Eligibility::Error { reason },
        None => Eligibility::Evict { warnings },
    }
}

/// `web-3` → 3.
pub fn ordinal(pod_name: &str, set_name: &str) -> Option<u32> {
    pod_name
        .strip_prefix(set_name)?
        .strip_prefix('-')?
        .parse()
        .ok()
}

/// The drain's decision after this round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "outcome")]
pub enum DrainOutcome {
    /// Nothing ngm should evict is left.
    Done,
    /// Evict (or wait), then call again.
    Continue { retry_after_seconds: u64 },
    /// A PDB kept blocking past the deadline; the policy decides.
    Blocked {
        pod: String,
        pdb: Option<String>,
        then: OnPdbBlocked,
    },
    /// Pods the policy forbids evicting.
    Refused { reasons: Vec<String> },
    /// Past the deadline and its overrun, pods are still there and no PDB is refusing: the
    /// drain gives up (`DrainTimedOut`) instead of polling for ever.
    TimedOut { remaining: usize },
}

/// One drain round.
#[derive(Debug, Clone, PartialEq)]
pub struct DrainPlan {
    pub actions: Vec<Action>,
    pub skipped: usize,
    /// Pods left to finish (`jobs.mode: waitToFinish`), still running.
    pub waiting_for_jobs: usize,
    pub warnings: Vec<String>,
    pub outcome: DrainOutcome,
}

/// Evictions per round, so a Lambda call stays short on a large cluster.
pub const MAX_EVICTIONS_PER_ROUND: usize = 200;
/// Seconds between drain rounds.
pub const DRAIN_POLL_SECS: u64 = 15;
/// Seconds between rounds when only pods left to finish remain: a Job runs for minutes or
/// hours, and each round costs state transitions out of the execution's history.
pub const JOB_POLL_SECS: u64 = 60;

/// The drain's clock: the deadline for PDBs, and the end of the wait for pods that run to
/// completion (`None` when the policy evicts them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainClock {
    pub drain_by: Timestamp,
    pub jobs_by: Option<Timestamp>,
    pub now: Timestamp,
}

impl DrainClock {
    /// Whether `p` is still left to finish this round.
    fn waits_for(&self, p: &PodView, policy: &Policy) -> bool {
        self.jobs_by.is_some_and(|by| self.now < by) && policy.jobs.waits_for(p)
    }

    /// When the drain gives up on pods no PDB holds: the later of its two deadlines, plus the
    /// overrun.
    fn gives_up_at(&self) -> Timestamp {
        self.drain_by
            .max(self.jobs_by.unwrap_or(self.drain_by))
            .plus(DRAIN_OVERRUN_SECS)
    }
}

/// Plans one drain round over the pods still on retiring nodes.
pub fn plan_drain(
    old_pods: &[PodView],
    statefulsets: &[WorkloadView],
    policy: &Policy,
    blocked: Option<&Blocked>,
    clock: DrainClock,
) -> DrainPlan {
    let DrainClock { drain_by, now, .. } = clock;
    let mut skipped = 0;
    let mut waiting_for_jobs = 0;
    let mut warnings = Vec::new();
    let mut errors = Vec::new();
    let mut evictable: Vec<&PodView> = Vec::new();
    let mut terminating = 0;
    for p in old_pods {
        // A pod already leaving is neither skipped nor evicted: a retried round, finding the
        // pods it evicted terminating, tallies the same skips.
        let leaving = p.terminating && !p.is_mirror && p.owner_kind() != Some("DaemonSet");
        if leaving {
            terminating += 1;
        }
        match eligibility(p, policy) {
            Eligibility::Skip { .. } if leaving => {}
            Eligibility::Skip { .. } => skipped += 1,
            // Left to finish: neither evicted nor judged until its wait is over.
            _ if clock.waits_for(p, policy) => waiting_for_jobs += 1,
            Eligibility::Error { reason } => errors.push(reason),
            Eligibility::Evict { warnings: w } => {
                warnings.extend(w);
                evictable.push(p);
            }
        }
    }
    if !errors.is_empty() {
        return DrainPlan {
            actions: vec![],
            skipped,
            waiting_for_jobs,
            warnings,
            outcome: DrainOutcome::Refused { reasons: errors },
        };
    }

    let mut chosen: Vec<&PodView> = Vec::new();
    let mut by_set: BTreeMap<(&str, &str), Vec<&PodView>> = BTreeMap::new();
    let mut by_replicaset: BTreeMap<(&str, &str), Vec<&PodView>> = BTreeMap::new();
    for p in &evictable {
        match p.owner.as_ref() {
            Some(o) if o.kind == "StatefulSet" => by_set
                .entry((p.namespace.as_str(), o.name.as_str()))
                .or_default()
                .push(p),
            Some(o) if o.kind == "ReplicaSet" => by_replicaset
                .entry((p.namespace.as_str(), o.name.as_str()))
                .or_default()
                .push(p),
            _ => chosen.push(p),
        }
    }
    // A Deployment without a PDB would lose every pod here at once (nothing else limits
    // evictions), so its pods leave one at a time: the next only once the last has gone and
    // the ReplicaSet has had a round to start its replacement.
    for ((ns, rs), mut pods) in by_replicaset {
        let in_flight = old_pods.iter().any(|p| {
            p.terminating && p.namespace == ns && p.owner.as_ref().is_some_and(|o| o.name == rs)
        });
        if in_flight {
            continue;
        }
        pods.sort_by(|a, b| a.name.cmp(&b.name));
        chosen.push(pods[0]);
    }
    for ((ns, set), mut pods) in by_set {
        let settled = statefulsets
            .iter()
            .find(|s| s.kind == WorkloadKind::StatefulSet && s.namespace == ns && s.name == set)
            .is_some_and(WorkloadView::is_settled);
        // One ordinal at a time: only when every replica, including the last replacement, is
        // Ready. Past the deadline ngm stops waiting for that and lets the PDB decide, as
        // kubectl drain does: the eviction's 429 then names the PDB that blocks.
        let in_flight = old_pods.iter().any(|p| {
            p.terminating && p.namespace == ns && p.owner.as_ref().is_some_and(|o| o.name == set)
        });
        if (!settled || in_flight) && now < drain_by {
            continue;
        }
        pods.sort_by_key(|p| std::cmp::Reverse(ordinal(&p.name, set)));
        chosen.push(pods[0]);
    }
    chosen.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));

    let remaining = evictable.len() + terminating + waiting_for_jobs;
    if remaining == 0 {
        return DrainPlan {
            actions: vec![],
            skipped,
            waiting_for_jobs,
            warnings,
            outcome: DrainOutcome::Done,
        };
    }
    let overrun_over = now >= clock.gives_up_at();
    let refused = blocked.is_some() && policy.on_pdb_blocked != OnPdbBlocked::Force;
    if overrun_over && !refused {
        return DrainPlan {
            actions: vec![],
            skipped,
            waiting_for_jobs,
            warnings,
            outcome: DrainOutcome::TimedOut { remaining },
        };
    }
    if let Some(b) = blocked.filter(|_| now >= drain_by) {
        let actions = if policy.on_pdb_blocked == OnPdbBlocked::Force {
            // Deleting bypasses the PDB, so the one-ordinal-at-a-time rule is ngm's alone to
            // keep: never a StatefulSet pod while another of its set is still terminating.
            chosen
                .iter()
                .filter(|p| !set_in_flight(p, old_pods))
                .map(|p| Action::DeletePod {
                    namespace: p.namespace.clone(),
                    name: p.name.clone(),
                    uid: p.uid.clone(),
                })
                .collect()
        } else {
            vec![]
        };
        let outcome = if policy.on_pdb_blocked == OnPdbBlocked::Force {
            DrainOutcome::Continue {
                retry_after_seconds: DRAIN_POLL_SECS,
            }
        } else {
            DrainOutcome::Blocked {
                pod: b.pod.clone(),
                pdb: b.pdb.clone(),
                then: policy.on_pdb_blocked,
            }
        };
        return DrainPlan {
            actions,
            skipped,
            waiting_for_jobs,
            warnings,
            outcome,
        };
    }
    // Only pods left to finish: poll less often, and not past the end of their wait.
    let retry_after_seconds = match clock.jobs_by {
        Some(by) if chosen.is_empty() && terminating == 0 => {
            by.secs_since(now).clamp(DRAIN_POLL_SECS, JOB_POLL_SECS)
        }
        _ => DRAIN_POLL_SECS,
    };
    let actions = chosen
        .into_iter()
        .take(MAX_EVICTIONS_PER_ROUND)
        .map(|p| Action::EvictPod {
            namespace: p.namespace.clone(),
            name: p.name.clone(),
            uid: p.uid.clone(),
        })
        .collect();
    DrainPlan {
        actions,
        skipped,
        waiting_for_jobs,
        warnings,
        outcome: DrainOutcome::Continue {
            retry_after_seconds,
        },
    }
}

/// Whether another pod of `p`'s StatefulSet is still terminating.
pub fn set_in_flight(p: &PodView, pods: &[PodView]) -> bool {
    let Some(set) = p.owner.as_ref().filter(|o| o.kind == "StatefulSet") else {
        return false;
    };
    pods.iter().any(|o| {
        o.terminating
            && o.namespace == p.namespace
            && o.name != p.name
            && o.owner
                .as_ref()
                .is_some_and(|x| x.kind == "StatefulSet" && x.name == set.name)
    })
}

/// What the drain does with the operator's answer before its round.
#[derive(Debug, Clone, PartialEq)]
// Built once per invocation and consumed at once: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
pub enum OperatorPlan {
    /// A new deadline; the evictions start again. With `force`, `delete` goes first.
    Resume {
        drain_by: Timestamp,
        delete: Option<Action>,
        /// Said in the state's findings (a named pod that is not on the old nodes, ...).
        note: Option<String>,
    },
    /// `force` named a StatefulSet pod while another of its set is terminating: keep the
    /// answer and come back.
    WaitForSibling { pod: String },
    /// `rollback` (the state machine routes it to the rollback; a drain that sees it fails).
    Rollback,
    /// No time is left in the execution for another drain.
    NoTimeLeft,
}

/// Plans the operator's answer: `retry` renews the deadline (no later than the execution
/// leaves room for), `force` also deletes one pod (the named one, else the blocked one) with
/// its UID precondition, keeping one StatefulSet ordinal at a time.
pub fn plan_operator(
    answer: &OperatorAnswer,
    blocked: Option<&Blocked>,
    old_pods: &[PodView],
    policy: &Policy,
    started_at: Timestamp,
    now: Timestamp,
) -> OperatorPlan {
    if answer.action == OperatorAction::Rollback {
        return OperatorPlan::Rollback;
    }
    let latest = latest_drain_by(started_at, policy);
    if latest <= now {
        return OperatorPlan::NoTimeLeft;
    }
    let drain_by = now.plus(policy.drain_deadline_seconds).min(latest);
    if answer.action == OperatorAction::Retry {
        return OperatorPlan::Resume {
            drain_by,
            delete: None,
            note: None,
        };
    }
    let target = answer
        .pod
        .clone()
        .or_else(|| blocked.map(|b| b.pod.clone()));
    let Some(target) = target else {
        return OperatorPlan::Resume {
            drain_by,
            delete: None,
            note: Some("force named no pod and no eviction was blocked: retried".into()),
        };
    };
    let Some(pod) = old_pods.iter().find(|p| p.key() == target) else {
        return OperatorPlan::Resume {
            drain_by,
            delete: None,
            note: Some(format!(
                "force named {target}, which is not on the old nodes: nothing deleted, retried"
            )),
        };
    };
    if pod.terminating {
        return OperatorPlan::Resume {
            drain_by,
            delete: None,
            note: None,
        };
    }
    if set_in_flight(pod, old_pods) {
        return OperatorPlan::WaitForSibling { pod: target };
    }
    OperatorPlan::Resume {
        drain_by,
        delete: Some(Action::DeletePod {
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            uid: pod.uid.clone(),
        }),
        note: None,
    }
}

#[cfg(test)]
mod tests;
