//! Step 7: how long to wait after old nodes leave the load balancers.
//!
//! A deregistered target keeps its open connections for the deregistration delay, and an idle
//! keep-alive connection lives for the idle timeout; the longest of these over every affected
//! load balancer, plus a margin for the controller to notice the label, bounds how long an old
//! node can still receive traffic.

use serde::{Deserialize, Serialize};

use std::collections::BTreeSet;

use crate::model::{LbKind, LoadBalancerInfo, TargetHealth, TargetHealthState};

/// AWS defaults when an attribute was not read: ALB and CLB idle 60 s, NLB TCP idle 350 s,
/// target-group deregistration delay 300 s, CLB connection draining 300 s.
pub const DEFAULT_IDLE_SECS: u64 = 60;
pub const DEFAULT_NLB_TCP_IDLE_SECS: u64 = 350;
pub const DEFAULT_DEREGISTRATION_SECS: u64 = 300;
/// Time for the load-balancer controller to see the exclusion label and deregister.
pub const MARGIN_SECS: u64 = 30;

/// The wait for one load balancer, without margin.
pub fn lb_wait(lb: &LoadBalancerInfo) -> u64 {
    let dereg = lb
        .target_groups
        .iter()
        .map(|tg| {
            tg.deregistration_delay_secs
                .unwrap_or(DEFAULT_DEREGISTRATION_SECS)
        })
        .max();
    match lb.kind {
        LbKind::Alb => lb
            .idle_timeout_secs
            .unwrap_or(DEFAULT_IDLE_SECS)
            .max(dereg.unwrap_or(DEFAULT_DEREGISTRATION_SECS)),
        LbKind::Nlb => lb
            .tcp_idle_timeout_secs
            .unwrap_or(DEFAULT_NLB_TCP_IDLE_SECS)
            .max(dereg.unwrap_or(DEFAULT_DEREGISTRATION_SECS)),
        LbKind::Clb => {
            let draining = lb
                .classic_draining
                .filter(|d| d.enabled)
                .map_or(0, |d| d.timeout_secs);
            lb.idle_timeout_secs
                .unwrap_or(DEFAULT_IDLE_SECS)
                .max(draining)
        }
    }
}

/// The drain wait and the load balancer that sets it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainWait {
    pub seconds: u64,
    /// The load balancer with the longest wait, or `None` (override, or no load balancer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_by: Option<String>,
}

/// The Wait state's seconds: the override if the request gives one, else the longest wait over
/// `lbs` plus [`MARGIN_SECS`], else zero when no load balancer fronts the old nodes.
pub fn lb_drain_wait(lbs: &[LoadBalancerInfo], override_secs: Option<u64>) -> DrainWait {
    if let Some(s) = override_secs {
        return DrainWait {
            seconds: s,
            set_by: None,
        };
    }
    lbs.iter()
        .map(|lb| (lb_wait(lb), lb))
        .max_by_key(|(w, _)| *w)
        .map_or(
            DrainWait {
                seconds: 0,
                set_by: None,
            },
            |(w, lb)| DrainWait {
                seconds: w + MARGIN_SECS,
                set_by: Some(lb.dns_name.clone()),
            },
        )
}

/// An NLB keeps sending new connections to a deregistered target for about 120 s, and its
/// target state does not show it (NLB guide, `target-group-register-targets.md`: "It can take
/// a few minutes for the deregistration process to complete and for the load balancer to stop
/// routing requests"; aws/containers-roadmap#470). The least time after the cut before the old
/// nodes' pods may go.
pub const NLB_DEREGISTRATION_PROPAGATION_SECS: u64 = 120;

/// An ALB keeps routing to a deregistered IP target for several seconds: users found a 5 s
/// preStop sleep too short and 25 s enough (aws-load-balancer-controller#1064, #2106).
pub const ALB_IP_DEREGISTRATION_PROPAGATION_SECS: u64 = 20;

/// How long after a deregistration an IP target may still get new requests, by the kind of
/// its load balancer (unknown: the longest, an NLB's).
pub fn ip_propagation_secs(kind: Option<LbKind>) -> u64 {
    match kind {
        Some(LbKind::Alb) => ALB_IP_DEREGISTRATION_PROPAGATION_SECS,
        _ => NLB_DEREGISTRATION_PROPAGATION_SECS,
    }
}

/// How often the health gate looks at the load balancers (their checks run every 10–30 s).
pub const GATE_POLL_SECS: u64 = 10;
/// The observed drain looks every 10 s for its first two minutes (a CLB ends a drain as soon
/// as nothing is in flight; NLB propagation ends then), then every 30 s (ALB and NLB targets
/// drain for their whole deregistration delay).
pub const DRAIN_FAST_POLL_SECS: u64 = 10;
pub const DRAIN_FAST_WINDOW_SECS: u64 = 120;
pub const DRAIN_SLOW_POLL_SECS: u64 = 30;

/// The observed drain's next poll, `since_cut` seconds after the cut.
pub fn drain_poll_secs(since_cut: u64) -> u64 {
    if since_cut < DRAIN_FAST_WINDOW_SECS {
        DRAIN_FAST_POLL_SECS
    } else {
        DRAIN_SLOW_POLL_SECS
    }
}

/// The least wait after the cut, whatever the target states say.
pub fn min_cut_seconds(lbs: &[LoadBalancerInfo]) -> u64 {
    if lbs.iter().any(|lb| lb.kind == LbKind::Nlb) {
        NLB_DEREGISTRATION_PROPAGATION_SECS
    } else {
        0
    }
}

/// One target set (a CLB, or one instance target group) as read around the cut-over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LbTargets {
    /// The load balancer's DNS name, and the target group when it has several.
    pub name: String,
    pub targets: Vec<TargetHealth>,
    /// The new group's instances that must be healthy targets before the old ones leave:
    /// Ready nodes that pass this load balancer's health check (`externalTrafficPolicy:
    /// Local`: the ones with a ready pod of the Service).
    pub expected: BTreeSet<String>,
}

fn registered(state: &TargetHealthState) -> bool {
    !matches!(state, TargetHealthState::Unused)
}

fn state_name(state: &TargetHealthState) -> String {
    match state {
        TargetHealthState::Other(s) => s.clone(),
        s => format!("{s:?}").to_lowercase(),
    }
}

/// The health gate: every load balancer that still routes to old instances has at least one
/// healthy target outside them, and every expected new instance is a healthy target. A CLB
/// does not fail open, so cutting the old nodes out before the new ones pass their checks
/// answers 503 until they do.
pub fn new_targets_healthy(lbs: &[LbTargets], old: &BTreeSet<String>) -> Result<(), String> {
    let mut waits = Vec::new();
    for lb in lbs {
        let fronts_old = lb.targets.iter().any(|t| {
            old.contains(&t.target_id)
                && matches!(
                    t.state,
                    TargetHealthState::Healthy | TargetHealthState::Initial
                )
        });
        if !fronts_old {
            continue;
        }
        let healthy: BTreeSet<&str> = lb
            .targets
            .iter()
            .filter(|t| !old.contains(&t.target_id) && t.state == TargetHealthState::Healthy)
            .map(|t| t.target_id.as_str())
            .collect();
        let missing: Vec<String> = lb
            .expected
            .iter()
            .filter(|id| !healthy.contains(id.as_str()))
            .map(|id| {
                let state = lb
                    .targets
                    .iter()
                    .find(|t| &t.target_id == id)
                    .map_or_else(|| "not registered".to_string(), |t| state_name(&t.state));
                format!("{id} {state}")
            })
            .collect();
        if healthy.is_empty() && missing.is_empty() {
            waits.push(format!(
                "{}: no healthy target outside the old group",
                lb.name
            ));
        } else if !missing.is_empty() {
            waits.push(format!(
                "{}: new targets not healthy yet: {}",
                lb.name,
                missing.join(", ")
            ));
        }
    }
    if waits.is_empty() {
        Ok(())
    } else {
        Err(waits.join("; "))
    }
}

/// The observed drain: no old instance is still registered (healthy, initial, unhealthy or
/// draining) in any load balancer. Unused and absent targets are gone.
pub fn old_targets_drained(lbs: &[LbTargets], old: &BTreeSet<String>) -> Result<(), String> {
    let left: Vec<String> = lbs
        .iter()
        .flat_map(|lb| {
            lb.targets
                .iter()
                .filter(|t| old.contains(&t.target_id) && registered(&t.state))
                .map(move |t| format!("{} {} on {}", t.target_id, state_name(&t.state), lb.name))
        })
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(format!("old targets still registered: {}", left.join(", ")))
    }
}

/// The optional confirmation: no old instance is still a healthy or initial target. Draining,
/// unused and absent targets are gone as far as new requests are concerned.
pub fn old_targets_gone(
    health: &[TargetHealth],
    old_instance_ids: &BTreeSet<String>,
) -> Result<(), String> {
    let live: Vec<&str> = health
        .iter()
        .filter(|t| old_instance_ids.contains(&t.target_id))
        .filter(|t| {
            matches!(
                t.state,
                TargetHealthState::Healthy | TargetHealthState::Initial
            )
        })
        .map(|t| t.target_id.as_str())
        .collect();
    if live.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "old instances still receive traffic: {}",
            live.join(", ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th(id: &str, state: TargetHealthState) -> TargetHealth {
        TargetHealth {
            target_id: id.into(),
            port: None,
            state,
        }
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| (*s).to_string()).collect()
    }

    #[test]
    fn the_gate_waits_for_every_expected_new_target_to_be_healthy() {
        use TargetHealthState::*;
        let old = set(&["i-old"]);
        let mut lb = LbTargets {
            name: "clb".into(),
            targets: vec![
                th("i-old", Healthy),
                th("i-new1", Healthy),
                th("i-new2", Unhealthy),
            ],
            expected: set(&["i-new1", "i-new2", "i-new3"]),
        };
        assert_eq!(
            new_targets_healthy(std::slice::from_ref(&lb), &old),
            Err("clb: new targets not healthy yet: i-new2 unhealthy, i-new3 not registered".into())
        );
        lb.targets[2].state = Healthy;
        lb.targets.push(th("i-new3", Healthy));
        assert_eq!(new_targets_healthy(std::slice::from_ref(&lb), &old), Ok(()));
        // Nothing expected (no local pod yet): at least one healthy target outside the old group.
        let none = LbTargets {
            name: "nlb".into(),
            targets: vec![th("i-old", Healthy), th("i-new1", Initial)],
            expected: BTreeSet::new(),
        };
        assert_eq!(
            new_targets_healthy(std::slice::from_ref(&none), &old),
            Err("nlb: no healthy target outside the old group".into())
        );
        // A load balancer that no longer routes to an old instance has nothing to gate.
        let cut = LbTargets {
            targets: vec![th("i-old", Draining)],
            ..none
        };
        assert_eq!(new_targets_healthy(&[cut], &old), Ok(()));
    }

    #[test]
    fn the_drain_is_over_when_no_old_instance_is_registered() {
        use TargetHealthState::*;
        let old = set(&["i-old"]);
        let lb = |state| LbTargets {
            name: "alb".into(),
            targets: vec![th("i-old", state), th("i-new", Healthy)],
            expected: BTreeSet::new(),
        };
        for st in [Healthy, Initial, Unhealthy, Draining] {
            assert!(
                old_targets_drained(&[lb(st.clone())], &old).is_err(),
                "{st:?}"
            );
        }
        assert_eq!(
            old_targets_drained(&[lb(Draining)], &old),
            Err("old targets still registered: i-old draining on alb".into())
        );
        assert_eq!(old_targets_drained(&[lb(Unused)], &old), Ok(()));
        let gone = LbTargets {
            targets: vec![th("i-new", Healthy)],
            ..lb(Unused)
        };
        assert_eq!(old_targets_drained(&[gone], &old), Ok(()));
    }

    #[test]
    fn old_targets_are_gone_once_none_is_healthy() {
        let old: BTreeSet<String> = ["i-old".to_string()].into();
        let t = |id: &str, state| TargetHealth {
            target_id: id.into(),
            port: Some(80),
            state,
        };
        assert_eq!(
            old_targets_gone(
                &[
                    t("i-new", TargetHealthState::Healthy),
                    t("i-old", TargetHealthState::Draining)
                ],
                &old
            ),
            Ok(())
        );
        assert_eq!(
            old_targets_gone(&[t("i-old", TargetHealthState::Healthy)], &old),
            Err("old instances still receive traffic: i-old".into())
        );
        assert_eq!(old_targets_gone(&[], &old), Ok(()));
    }
    use crate::model::{ClassicDraining, TargetGroupInfo};

    fn lb(
        kind: LbKind,
        idle: Option<u64>,
        tcp: Option<u64>,
        dereg: &[Option<u64>],
    ) -> LoadBalancerInfo {
        LoadBalancerInfo {
            id: "lb".into(),
            kind,
            dns_name: format!("{kind:?}.elb.amazonaws.com").to_lowercase(),
            idle_timeout_secs: idle,
            tcp_idle_timeout_secs: tcp,
            target_groups: dereg
                .iter()
                .map(|d| TargetGroupInfo {
                    arn: "tg".into(),
                    deregistration_delay_secs: *d,
                    target_type: None,
                })
                .collect(),
            classic_draining: None,
        }
    }

    #[test]
    fn wait_per_load_balancer_follows_its_attributes_and_aws_defaults() {
        let mut clb = lb(LbKind::Clb, Some(60), None, &[]);
        let cases = [
            ("alb defaults", lb(LbKind::Alb, None, None, &[None]), 300),
            (
                "alb short dereg, long idle",
                lb(LbKind::Alb, Some(400), None, &[Some(30)]),
                400,
            ),
            (
                "alb longest target group",
                lb(LbKind::Alb, Some(60), None, &[Some(30), Some(120)]),
                120,
            ),
            (
                "nlb default tcp idle",
                lb(LbKind::Nlb, None, None, &[Some(10)]),
                350,
            ),
            (
                "nlb long dereg",
                lb(LbKind::Nlb, None, Some(100), &[Some(600)]),
                600,
            ),
            ("clb without draining", clb.clone(), 60),
        ];
        for (name, l, want) in cases {
            assert_eq!(lb_wait(&l), want, "{name}");
        }
        clb.classic_draining = Some(ClassicDraining {
            enabled: true,
            timeout_secs: 300,
        });
        assert_eq!(lb_wait(&clb), 300);
        clb.classic_draining = Some(ClassicDraining {
            enabled: false,
            timeout_secs: 300,
        });
        assert_eq!(lb_wait(&clb), 60);
    }

    #[test]
    fn drain_wait_is_the_longest_plus_margin_or_the_override() {
        let a = lb(LbKind::Alb, Some(60), None, &[Some(30)]);
        let n = lb(LbKind::Nlb, None, Some(350), &[Some(300)]);
        let w = lb_drain_wait(&[a.clone(), n.clone()], None);
        assert_eq!(w.seconds, 350 + MARGIN_SECS);
        assert_eq!(w.set_by.as_deref(), Some(n.dns_name.as_str()));
        assert_eq!(lb_drain_wait(&[a, n], Some(45)).seconds, 45);
        assert_eq!(lb_drain_wait(&[], None).seconds, 0);
    }
}
