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
