//! One load balancer's instance targets: registration, health checks and deregistration
//! draining, as pure state moved by the caller's clock.
//!
//! Upstream behaviours followed:
//! - a deregistered target drains for the deregistration delay (CLB: the connection-draining
//!   timeout): it gets no new requests, and requests in flight continue until they finish or
//!   the delay ends, when the load balancer closes them ("Deregistration delay", ELB docs);
//! - a target is routed to only while healthy: it turns unhealthy after `unhealthy_threshold`
//!   failed checks in a row, and healthy again after `healthy_threshold` passed checks; a newly
//!   registered target stays `initial` (no traffic) until it passes `healthy_threshold` checks;
//! - when every registered target is unhealthy, an ALB or NLB "fails open" and routes to all of
//!   them; a CLB does not.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::settings::LbSettings;
use crate::clock::secs_delta;
use crate::scenario::LbKind;

/// A target as `DescribeTargetHealth` would describe it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetState {
    Initial,
    Healthy,
    Unhealthy,
    Draining,
}

#[derive(Clone, Debug)]
struct Target {
    instance_id: Option<String>,
    healthy: bool,
    initial: bool,
    /// Consecutive check results that disagree with `healthy`.
    streak: u32,
}

/// A node entering or leaving the target set, for the AWS mirror.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetChanges {
    /// `(node, instance id)` newly registered.
    pub registered: Vec<(String, Option<String>)>,
    /// `(node, instance id)` deregistered (now draining).
    pub deregistered: Vec<(String, Option<String>)>,
}

impl TargetChanges {
    pub fn is_empty(&self) -> bool {
        self.registered.is_empty() && self.deregistered.is_empty()
    }
}

/// Where the load balancer sends a new request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Pick {
    Node(String),
    /// No registered target, or (CLB) none healthy.
    NoTarget,
}

/// One load balancer's target group.
#[derive(Clone, Debug)]
pub struct TargetGroup {
    pub settings: LbSettings,
    registered: BTreeMap<String, Target>,
    /// Draining targets: node → (instance id, end of the deregistration delay).
    draining: BTreeMap<String, (Option<String>, DateTime<Utc>)>,
    /// Every deregistration per node, to cut requests the delay did not cover.
    deregistrations: HashMap<String, Vec<DateTime<Utc>>>,
    next_check: Option<DateTime<Utc>>,
    cursor: usize,
}

impl TargetGroup {
    pub fn new(settings: LbSettings) -> Self {
        Self {
            settings,
            registered: BTreeMap::new(),
            draining: BTreeMap::new(),
            deregistrations: HashMap::new(),
            next_check: None,
            cursor: 0,
        }
    }

    /// Makes the registered set equal `eligible` (`(node, instance id, passes its health
    /// check now)`). `seed` registers targets as already checked (a load balancer that
    /// existed before the twin started); otherwise new targets start `initial`.
    pub fn sync(
        &mut self,
        eligible: &[(String, Option<String>, bool)],
        now: DateTime<Utc>,
        seed: bool,
    ) -> TargetChanges {
        let mut changes = TargetChanges::default();
        let wanted: BTreeMap<&str, (&Option<String>, bool)> = eligible
            .iter()
            .map(|(n, i, h)| (n.as_str(), (i, *h)))
            .collect();
        let leaving: Vec<String> = self
            .registered
            .keys()
            .filter(|n| !wanted.contains_key(n.as_str()))
            .cloned()
            .collect();
        for node in leaving {
            if let Some(t) = self.registered.remove(&node) {
                let until = now + secs_delta(f64::from(self.settings.deregistration_delay_seconds));
                self.deregistrations
                    .entry(node.clone())
                    .or_default()
                    .push(now);
                changes
                    .deregistered
                    .push((node.clone(), t.instance_id.clone()));
                self.draining.insert(node, (t.instance_id, until));
            }
        }
        for (node, (instance, passes)) in wanted {
            if self.registered.contains_key(node) {
                continue;
            }
            self.draining.remove(node);
            let healthy = seed && passes;
            self.registered.insert(
                node.to_string(),
                Target {
                    instance_id: instance.clone(),
                    healthy,
                    initial: !seed,
                    streak: 0,
                },
            );
            changes
                .registered
                .push((node.to_string(), instance.clone()));
        }
        self.draining.retain(|_, (_, until)| *until > now);
        changes
    }

    /// When the next health-check round is due (the first one is due at once).
    pub fn check_due(&self, now: DateTime<Utc>) -> bool {
        self.next_check.is_none_or(|t| now >= t)
    }

    pub fn next_check(&self) -> Option<DateTime<Utc>> {
        self.next_check
    }

    /// Runs one health-check round at `now` with `passes(node)` as each target's result.
    pub fn check(&mut self, now: DateTime<Utc>, passes: impl Fn(&str) -> bool) {
        let (up, down) = (
            self.settings.healthy_threshold,
            self.settings.unhealthy_threshold,
        );
        for (node, t) in &mut self.registered {
            if passes(node) == t.healthy {
                t.streak = 0;
                continue;
            }
            t.streak += 1;
            if t.streak >= if t.healthy { down } else { up } {
                t.healthy = !t.healthy;
                t.initial = false;
                t.streak = 0;
            }
        }
        self.next_check = Some(now + secs_delta(self.settings.health_check_interval_seconds));
    }

    /// Picks the target for a new request, round-robin among the healthy ones.
    pub fn pick(&mut self) -> Pick {
        let healthy: Vec<&String> = self
            .registered
            .iter()
            .filter(|(_, t)| t.healthy)
            .map(|(n, _)| n)
            .collect();
        let fail_open = matches!(self.settings.kind, LbKind::Alb | LbKind::Nlb);
        let pool: Vec<&String> = if healthy.is_empty() && fail_open {
            self.registered.keys().collect()
        } else {
            healthy
        };
        if pool.is_empty() {
            return Pick::NoTarget;
        }
        self.cursor = self.cursor.wrapping_add(1);
        Pick::Node(pool[self.cursor % pool.len()].clone())
    }

    /// Whether a request served by `node` from `start` to `end` was cut because the node was
    /// deregistered meanwhile and its deregistration delay ended before `end`.
    pub fn cut_by_deregistration(
        &self,
        node: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> bool {
        let delay = secs_delta(f64::from(self.settings.deregistration_delay_seconds));
        self.deregistrations
            .get(node)
            .is_some_and(|ts| ts.iter().any(|t| *t >= start && *t + delay < end))
    }

    /// Every target and its state, by node name.
    pub fn states(&self) -> BTreeMap<String, TargetState> {
        let mut out: BTreeMap<String, TargetState> = self
            .registered
            .iter()
            .map(|(n, t)| {
                let st = match (t.healthy, t.initial) {
                    (true, _) => TargetState::Healthy,
                    (false, true) => TargetState::Initial,
                    (false, false) => TargetState::Unhealthy,
                };
                (n.clone(), st)
            })
            .collect();
        for n in self.draining.keys() {
            out.insert(n.clone(), TargetState::Draining);
        }
        out
    }

    /// The end of the latest deregistration delay still running, if any.
    pub fn draining_until(&self) -> Option<DateTime<Utc>> {
        self.draining.values().map(|(_, t)| *t).max()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(kind: LbKind, delay: u32) -> TargetGroup {
        TargetGroup::new(LbSettings {
            kind,
            deregistration_delay_seconds: delay,
            ..LbSettings::default()
        })
    }

    fn t0() -> DateTime<Utc> {
        DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default()
    }

    #[test]
    fn a_node_that_leaves_drains_for_the_delay_and_gets_no_new_requests() {
        let mut g = group(LbKind::Nlb, 30);
        g.sync(
            &[("a".into(), None, true), ("b".into(), None, true)],
            t0(),
            true,
        );
        let ch = g.sync(&[("b".into(), None, true)], t0(), false);
        assert_eq!(ch.deregistered, vec![("a".to_string(), None)]);
        assert_eq!(g.states()["a"], TargetState::Draining);
        for _ in 0..4 {
            assert_eq!(g.pick(), Pick::Node("b".into()));
        }
        // A 20 s request fits in the 30 s delay; a 40 s one is cut.
        assert!(!g.cut_by_deregistration("a", t0(), t0() + secs_delta(20.0)));
        assert!(g.cut_by_deregistration("a", t0(), t0() + secs_delta(40.0)));
        g.sync(&[("b".into(), None, true)], t0() + secs_delta(31.0), false);
        assert!(!g.states().contains_key("a"));
    }

    #[test]
    fn a_target_turns_unhealthy_only_after_the_threshold_of_failed_checks() {
        let mut g = group(LbKind::Nlb, 300);
        g.sync(&[("a".into(), None, true)], t0(), true);
        g.check(t0(), |_| false);
        assert_eq!(g.states()["a"], TargetState::Healthy);
        g.check(t0(), |_| false);
        assert_eq!(g.states()["a"], TargetState::Unhealthy);
    }

    #[test]
    fn a_new_target_gets_traffic_only_once_it_passes_its_checks() {
        let mut g = group(LbKind::Clb, 300);
        g.sync(&[("a".into(), None, true)], t0(), false);
        assert_eq!(g.states()["a"], TargetState::Initial);
        assert_eq!(g.pick(), Pick::NoTarget, "a CLB does not fail open");
        g.check(t0(), |_| true);
        g.check(t0(), |_| true);
        assert_eq!(g.pick(), Pick::Node("a".into()));
    }

    #[test]
    fn an_nlb_fails_open_when_every_target_is_unhealthy() {
        let mut g = group(LbKind::Nlb, 300);
        g.sync(&[("a".into(), None, false)], t0(), true);
        assert_eq!(g.pick(), Pick::Node("a".into()));
        let mut empty = group(LbKind::Nlb, 300);
        assert_eq!(empty.pick(), Pick::NoTarget);
    }
}
