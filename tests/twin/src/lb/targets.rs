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
//! - a target that fails `unhealthy_threshold` checks from `initial` turns `unhealthy` (ALB guide,
//!   `target-group-health-checks.md`: initial, then healthy or unhealthy);
//! - when every registered target is unhealthy, an ALB or NLB "fails open" and routes to all of
//!   them; a CLB does not (CLB guide, `ts-elb-error-message.md`, "There are no healthy
//!   instances"). Fail-open covers unhealthy targets only, not initial or draining ones (LBC
//!   `docs/deploy/pod_readiness_gate.md`);
//! - an NLB registers a new target only after `registration_seconds` (90–180 s,
//!   aws-load-balancer-controller#1834) and keeps sending new connections to a deregistered one
//!   for `deregistration_propagation_seconds` (≈100 s: aws/containers-roadmap#470 found 120 s of
//!   delay the least that loses nothing; NLB guide
//!   `target-group-register-targets.md`: "It can take a few minutes for the deregistration
//!   process to complete and for the load balancer to stop routing requests");
//! - a CLB completes a deregistration as soon as the instance has no request in flight, and
//!   says so (CLB guide, `config-conn-drain.md`); an ALB target shows `draining` for the whole
//!   delay even when nothing is in flight (ALB guide, `load-balancer-target-groups.md`), and
//!   an NLB has no early completion.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::settings::LbSettings;
use crate::clock::secs_delta;

fn secs_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_milliseconds() as f64 / 1000.0
}
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
    /// Checks passed, and failed, in a row.
    ok_run: u32,
    fail_run: u32,
    /// Health checks start only once the registration has propagated (NLB).
    checks_from: DateTime<Utc>,
    registered_at: DateTime<Utc>,
}

/// A deregistered target while its deregistration delay runs.
#[derive(Clone, Debug)]
struct Draining {
    instance_id: Option<String>,
    /// The end of the deregistration delay.
    until: DateTime<Utc>,
    /// New requests still reach it until then (NLB propagation).
    routed_until: DateTime<Utc>,
    deregistered_at: DateTime<Utc>,
    /// It was routed to when deregistered, and its drain is not logged yet.
    to_log: bool,
}

/// How long one target took for what the critical path counts (`report::critical`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PhaseSpan {
    /// When it began: the registration, or the deregistration.
    pub at: DateTime<Utc>,
    pub seconds: f64,
}

/// A load balancer's part of the critical path: each target registered while the twin ran,
/// registration to first healthy; each routed target deregistered, deregistration to the
/// moment it got no new request and had none in flight (or its delay ended).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LbPhase {
    pub to_healthy: Vec<PhaseSpan>,
    pub drained: Vec<PhaseSpan>,
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
    /// Draining targets by node.
    draining: BTreeMap<String, Draining>,
    /// Every deregistration per node, to cut requests the delay did not cover.
    deregistrations: HashMap<String, Vec<DateTime<Utc>>>,
    next_check: Option<DateTime<Utc>>,
    cursor: usize,
    phase: LbPhase,
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
            phase: LbPhase::default(),
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
            if let Some(id) = self.deregister(&node, now) {
                changes.deregistered.push((node, id));
            }
        }
        for (node, (instance, passes)) in wanted {
            if self.register(node, instance.clone(), now, seed && passes, seed) {
                changes
                    .registered
                    .push((node.to_string(), instance.clone()));
            }
        }
        self.expire_drains(now);
        changes
    }

    /// Deregisters one target, which drains for the deregistration delay; `None` when it was
    /// not registered, else its instance id (or IP).
    pub fn deregister(&mut self, node: &str, now: DateTime<Utc>) -> Option<Option<String>> {
        let t = self.registered.remove(node)?;
        let until = now + secs_delta(f64::from(self.settings.deregistration_delay_seconds));
        // The propagation delays a change of the routing: a target that was not routed to
        // (initial, unhealthy) gets nothing while its deregistration propagates.
        let propagation = if t.healthy {
            self.settings
                .deregistration_propagation_seconds
                .min(f64::from(self.settings.deregistration_delay_seconds))
        } else {
            0.0
        };
        let routed_until = now + secs_delta(propagation);
        self.deregistrations
            .entry(node.to_string())
            .or_default()
            .push(now);
        self.draining.insert(
            node.to_string(),
            Draining {
                instance_id: t.instance_id.clone(),
                until,
                routed_until,
                deregistered_at: now,
                to_log: t.healthy,
            },
        );
        Some(t.instance_id)
    }

    /// Registers one target unless it is registered already (false then). `healthy`: as
    /// already checked (`seed`: a target of a load balancer that existed before the twin
    /// started); otherwise it starts `initial`.
    pub fn register(
        &mut self,
        node: &str,
        instance: Option<String>,
        now: DateTime<Utc>,
        healthy: bool,
        seed: bool,
    ) -> bool {
        if self.registered.contains_key(node) {
            return false;
        }
        // Registered again: the drain that was running is over, and its end cuts nothing.
        if self.draining.remove(node).is_some()
            && let Some(ts) = self.deregistrations.get_mut(node)
        {
            let delay = secs_delta(f64::from(self.settings.deregistration_delay_seconds));
            ts.retain(|t| *t + delay <= now);
        }
        let checks_from = if seed {
            now
        } else {
            now + secs_delta(self.settings.registration_seconds)
        };
        self.registered.insert(
            node.to_string(),
            Target {
                instance_id: instance,
                healthy,
                initial: !seed,
                ok_run: 0,
                fail_run: 0,
                checks_from,
                registered_at: now,
            },
        );
        true
    }

    /// Ends the drains whose deregistration delay is over.
    pub fn expire_drains(&mut self, now: DateTime<Utc>) {
        for d in self.draining.values_mut() {
            if d.until <= now && d.to_log {
                d.to_log = false;
                self.phase.drained.push(PhaseSpan {
                    at: d.deregistered_at,
                    seconds: secs_between(d.deregistered_at, d.until),
                });
            }
        }
        self.draining.retain(|_, d| d.until > now);
    }

    /// Logs the drains that no longer matter to traffic: no new request reaches the target
    /// and none is in flight through it (`busy(node)`). Call before anything ends a drain.
    pub fn note_drained(&mut self, now: DateTime<Utc>, busy: impl Fn(&str) -> bool) {
        for (node, d) in &mut self.draining {
            if d.to_log && now >= d.routed_until && now < d.until && !busy(node) {
                d.to_log = false;
                self.phase.drained.push(PhaseSpan {
                    at: d.deregistered_at,
                    seconds: secs_between(d.deregistered_at, now),
                });
            }
        }
    }

    /// What the critical path counts of this load balancer so far.
    pub fn phase(&self) -> &LbPhase {
        &self.phase
    }

    /// The target registered, or draining, with this instance id (or IP).
    pub fn key_of(&self, id: &str) -> Option<String> {
        self.registered
            .iter()
            .filter(|(_, t)| t.instance_id.as_deref() == Some(id))
            .map(|(k, _)| k)
            .chain(
                self.draining
                    .iter()
                    .filter(|(_, d)| d.instance_id.as_deref() == Some(id))
                    .map(|(k, _)| k),
            )
            .next()
            .cloned()
    }

    /// Whether `node` is registered (in any state but draining).
    pub fn is_registered(&self, node: &str) -> bool {
        self.registered.contains_key(node)
    }

    /// A CLB ends the drain of an instance with nothing in flight at once (`busy(node)`: a
    /// request is in flight through it); other kinds keep the state for the whole delay.
    /// A drain that ends this way cut nothing, so its delay no longer ends anything: a request
    /// sent after the instance is registered again is not cut when that delay would have run out.
    pub fn finish_idle_drains(&mut self, now: DateTime<Utc>, busy: impl Fn(&str) -> bool) {
        if self.settings.kind != LbKind::Clb {
            return;
        }
        let idle: Vec<String> = self.draining.keys().filter(|n| !busy(n)).cloned().collect();
        let delay = secs_delta(f64::from(self.settings.deregistration_delay_seconds));
        for node in idle {
            self.draining.remove(&node);
            if let Some(ts) = self.deregistrations.get_mut(&node) {
                ts.retain(|t| *t + delay <= now);
            }
        }
    }

    /// When the next registration propagates or a draining target stops getting requests.
    pub fn next_change(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let registering = self.registered.values().map(|t| t.checks_from);
        let routed = self.draining.values().map(|d| d.routed_until);
        registering.chain(routed).filter(|t| *t > now).min()
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
            if now < t.checks_from {
                continue;
            }
            if passes(node) {
                t.ok_run += 1;
                t.fail_run = 0;
            } else {
                t.fail_run += 1;
                t.ok_run = 0;
            }
            if !t.healthy && t.ok_run >= up {
                if t.initial {
                    self.phase.to_healthy.push(PhaseSpan {
                        at: t.registered_at,
                        seconds: secs_between(t.registered_at, now),
                    });
                }
                t.healthy = true;
                t.initial = false;
            } else if (t.healthy || t.initial) && t.fail_run >= down {
                t.healthy = false;
                t.initial = false;
            }
        }
        self.next_check = Some(now + secs_delta(self.settings.health_check_interval_seconds));
    }

    /// Picks the target for a new request at `now`, round-robin among the healthy ones (and
    /// the draining ones the deregistration has not reached yet).
    pub fn pick(&mut self, now: DateTime<Utc>) -> Pick {
        let still_routed = self
            .draining
            .iter()
            .filter(|(_, d)| d.routed_until > now)
            .map(|(n, _)| n);
        let healthy: Vec<&String> = self
            .registered
            .iter()
            .filter(|(_, t)| t.healthy)
            .map(|(n, _)| n)
            .chain(still_routed)
            .collect();
        let fail_open = matches!(self.settings.kind, LbKind::Alb | LbKind::Nlb);
        let pool: Vec<&String> = if healthy.is_empty() && fail_open {
            // Fail-open covers unhealthy targets, not initial ones.
            self.registered
                .iter()
                .filter(|(_, t)| !t.initial)
                .map(|(n, _)| n)
                .collect()
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
    /// deregistered and its deregistration delay ended while the request ran.
    pub fn cut_by_deregistration(
        &self,
        node: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> bool {
        let delay = secs_delta(f64::from(self.settings.deregistration_delay_seconds));
        self.deregistrations.get(node).is_some_and(|ts| {
            ts.iter()
                .any(|t| *t <= end && *t + delay >= start && *t + delay < end)
        })
    }

    /// When the load balancer resets a connection to `node` opened at `opened`: at the end of
    /// the first deregistration delay still running then, if this kind closes what outlives
    /// it ([`LbSettings::closes_connections_at_drain_end`]). A drain that ended early (nothing
    /// in flight, no connection) is forgotten, and ends nothing.
    pub fn connections_cut_at(&self, node: &str, opened: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if !self.settings.closes_connections_at_drain_end {
            return None;
        }
        let delay = secs_delta(f64::from(self.settings.deregistration_delay_seconds));
        self.deregistrations
            .get(node)?
            .iter()
            .map(|t| *t + delay)
            .filter(|end| *end > opened)
            .min()
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

    /// Every target with its instance id and state, as the emulator should report them.
    pub fn instance_states(&self) -> BTreeMap<String, TargetState> {
        let states = self.states();
        let ids = self
            .registered
            .iter()
            .map(|(n, t)| (n, &t.instance_id))
            .chain(self.draining.iter().map(|(n, d)| (n, &d.instance_id)));
        ids.filter_map(|(n, id)| Some((id.clone()?, *states.get(n)?)))
            .collect()
    }

    /// The end of the latest deregistration delay still running, if any.
    pub fn draining_until(&self) -> Option<DateTime<Utc>> {
        self.draining.values().map(|d| d.until).max()
    }
}

#[cfg(test)]
#[path = "phase_tests.rs"]
mod phase_tests;

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
            assert_eq!(g.pick(t0()), Pick::Node("b".into()));
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
        for _ in 1..g.settings.unhealthy_threshold {
            g.check(t0(), |_| false);
            assert_eq!(g.states()["a"], TargetState::Healthy);
        }
        g.check(t0(), |_| false);
        assert_eq!(g.states()["a"], TargetState::Unhealthy);
    }

    #[test]
    fn a_new_target_gets_traffic_only_once_it_passes_its_checks() {
        let mut g = group(LbKind::Clb, 300);
        g.sync(&[("a".into(), None, true)], t0(), false);
        assert_eq!(g.states()["a"], TargetState::Initial);
        assert_eq!(g.pick(t0()), Pick::NoTarget, "a CLB does not fail open");
        g.check(t0(), |_| true);
        g.check(t0(), |_| true);
        assert_eq!(g.pick(t0()), Pick::Node("a".into()));
    }

    #[test]
    fn an_nlb_fails_open_when_every_target_is_unhealthy() {
        let mut g = group(LbKind::Nlb, 300);
        g.sync(&[("a".into(), None, false)], t0(), true);
        assert_eq!(g.pick(t0()), Pick::Node("a".into()));
        let mut empty = group(LbKind::Nlb, 300);
        assert_eq!(empty.pick(t0()), Pick::NoTarget);
    }

    /// ALB guide, `target-group-health-checks.md`: a target in `initial` that fails its checks
    /// turns `unhealthy`; LBC `docs/deploy/pod_readiness_gate.md`: fail-open does not cover
    /// `initial` targets.
    #[test]
    fn an_initial_target_that_fails_turns_unhealthy_and_fail_open_skips_initial_ones() {
        let mut g = group(LbKind::Alb, 300);
        g.sync(&[("a".into(), None, false)], t0(), false);
        assert_eq!(
            g.pick(t0()),
            Pick::NoTarget,
            "initial targets get no traffic"
        );
        for _ in 0..g.settings.unhealthy_threshold {
            g.check(t0(), |_| false);
        }
        assert_eq!(g.states()["a"], TargetState::Unhealthy);
        assert_eq!(
            g.pick(t0()),
            Pick::Node("a".into()),
            "fails open once unhealthy"
        );
    }

    /// CLB guide, `config-conn-drain.md`: the drain ends when the instance has served its
    /// in-flight requests; ALB guide, `load-balancer-target-groups.md`: the target shows
    /// `draining` until the delay ends even with nothing in flight; the NLB guide has no early
    /// completion.
    #[test]
    fn a_clb_ends_an_idle_drain_at_once_and_alb_and_nlb_keep_draining_for_the_delay() {
        for (kind, busy, ends) in [
            (LbKind::Clb, false, true),
            (LbKind::Clb, true, false),
            (LbKind::Alb, false, false),
            (LbKind::Nlb, false, false),
        ] {
            let mut g = group(kind, 300);
            g.sync(
                &[("a".into(), None, true), ("b".into(), None, true)],
                t0(),
                true,
            );
            g.sync(&[("b".into(), None, true)], t0(), false);
            g.finish_idle_drains(t0(), |_| busy);
            assert_eq!(
                g.states().contains_key("a"),
                !ends,
                "{kind:?} busy={busy}: {:?}",
                g.states()
            );
        }
    }

    /// CLB guide, `config-conn-drain.md`: an idle drain ends at once and cuts nothing; an
    /// instance registered again later (a rollback putting the old nodes back) serves new
    /// requests past the moment the original delay would have ended.
    #[test]
    fn a_clb_drain_that_ended_early_cuts_nothing_after_the_instance_returns() {
        let mut g = group(LbKind::Clb, 300);
        let both = [("a".into(), None, true), ("b".into(), None, true)];
        g.sync(&both, t0(), true);
        g.sync(&[("b".into(), None, true)], t0(), false);
        g.finish_idle_drains(t0() + secs_delta(1.0), |_| false);
        g.sync(&both, t0() + secs_delta(100.0), false);
        let start = t0() + secs_delta(299.5);
        assert!(!g.cut_by_deregistration("a", start, start + secs_delta(1.0)));
        // A busy drain still ends at the delay and cuts what outlives it.
        let mut g = group(LbKind::Clb, 300);
        g.sync(&both, t0(), true);
        g.sync(&[("b".into(), None, true)], t0(), false);
        g.finish_idle_drains(t0() + secs_delta(1.0), |_| true);
        assert!(g.cut_by_deregistration("a", t0(), t0() + secs_delta(301.0)));
    }

    /// aws-load-balancer-controller#1834 (NLB registration 90–180 s) and
    /// aws/containers-roadmap#470 (new connections reach a deregistered NLB target for about
    /// 120 s).
    #[test]
    fn an_nlb_registers_late_and_keeps_routing_to_a_deregistered_target_for_a_while() {
        let mut g = group(LbKind::Nlb, 300);
        g.settings.registration_seconds = 120.0;
        g.settings.deregistration_propagation_seconds = 120.0;
        g.sync(&[("old".into(), None, true)], t0(), true);
        g.sync(
            &[("old".into(), None, true), ("new".into(), None, true)],
            t0(),
            false,
        );
        for _ in 0..g.settings.healthy_threshold {
            g.check(t0() + secs_delta(60.0), |_| true);
        }
        assert_eq!(
            g.states()["new"],
            TargetState::Initial,
            "not registered yet"
        );
        for _ in 0..g.settings.healthy_threshold {
            g.check(t0() + secs_delta(130.0), |_| true);
        }
        assert_eq!(g.states()["new"], TargetState::Healthy);
        let cut = t0() + secs_delta(200.0);
        g.sync(&[("new".into(), None, true)], cut, false);
        let picks: Vec<Pick> = (0..4).map(|_| g.pick(cut + secs_delta(60.0))).collect();
        assert!(picks.contains(&Pick::Node("old".into())), "{picks:?}");
        let later: Vec<Pick> = (0..4).map(|_| g.pick(cut + secs_delta(121.0))).collect();
        assert!(
            later.iter().all(|p| *p == Pick::Node("new".into())),
            "{later:?}"
        );
    }

    /// ELB propagation delays a change of the routing (NLB guide,
    /// `target-group-register-targets.md`): a target that was never routed to (still
    /// `initial`) gets nothing while its deregistration propagates; a healthy one keeps
    /// getting new connections then. ngm deregisters targets the Load Balancer Controller
    /// registered again, and the controller deregisters them as their pods stop.
    #[test]
    fn a_deregistered_target_gets_traffic_while_it_propagates_only_if_it_had_some() {
        let mut g = group(LbKind::Alb, 300);
        g.settings.deregistration_propagation_seconds = 10.0;
        g.sync(&[("a".into(), None, true)], t0(), true);
        g.register("b", None, t0(), false, false);
        assert_eq!(g.states()["b"], TargetState::Initial);
        let at = t0() + secs_delta(1.0);
        g.deregister("a", at);
        g.deregister("b", at);
        let picks: Vec<Pick> = (0..6).map(|_| g.pick(at + secs_delta(5.0))).collect();
        assert!(
            picks.iter().all(|p| *p == Pick::Node("a".into())),
            "{picks:?}"
        );
        assert_eq!(g.pick(at + secs_delta(11.0)), Pick::NoTarget);
    }
}
