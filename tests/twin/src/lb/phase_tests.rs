//! What a target group logs for the critical path (`report::critical`): a new target's
//! registration to its first healthy check, and a routed target's deregistration to the
//! moment no request reaches it and none is in flight through it.

use super::*;

/// A target group with the AWS defaults of its kind (health checks, NLB propagation).
fn group(kind: LbKind, delay: u32) -> TargetGroup {
    TargetGroup::new(LbSettings::from_spec(
        &crate::scenario::LoadBalancerSpec {
            kind,
            deregistration_delay_seconds: Some(delay),
            ..Default::default()
        },
        false,
    ))
}

fn t(s: f64) -> DateTime<Utc> {
    DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default() + secs_delta(s)
}

/// ALB guide, `target-group-health-checks.md`: a registered target is `initial` until it
/// passes `HealthyThresholdCount` checks, `HealthCheckIntervalSeconds` apart.
#[test]
fn a_new_target_logs_the_time_its_health_checks_took() {
    let mut g = group(LbKind::Alb, 300);
    let (interval, up) = (
        g.settings.health_check_interval_seconds,
        g.settings.healthy_threshold,
    );
    g.sync(&[("a".into(), None, true)], t(0.0), false);
    for i in 0..up {
        assert!(g.phase().to_healthy.is_empty(), "healthy after {i} checks");
        g.check(t(f64::from(i) * interval), |_| true);
    }
    let spans = &g.phase().to_healthy;
    assert_eq!(spans.len(), 1);
    assert_eq!(spans[0].at, t(0.0));
    assert!((spans[0].seconds - f64::from(up - 1) * interval).abs() < 1e-9);
    // A target seeded healthy (a load balancer older than the run) logs nothing.
    let mut seeded = group(LbKind::Alb, 300);
    seeded.sync(&[("b".into(), None, true)], t(0.0), true);
    seeded.check(t(0.0), |_| true);
    assert!(seeded.phase().to_healthy.is_empty());
}

/// CLB guide, `config-conn-drain.md`: a deregistered instance gets no new request; the
/// requests in flight finish, and then nothing more is needed of the drain.
#[test]
fn a_deregistered_target_is_drained_when_its_last_request_ends() {
    let mut g = group(LbKind::Clb, 300);
    g.sync(
        &[("a".into(), None, true), ("b".into(), None, true)],
        t(0.0),
        true,
    );
    g.sync(&[("b".into(), None, true)], t(10.0), false);
    g.note_drained(t(11.0), |n| n == "a");
    assert!(g.phase().drained.is_empty(), "a request is still in flight");
    g.note_drained(t(12.5), |_| false);
    assert_eq!(
        g.phase().drained,
        vec![PhaseSpan {
            at: t(10.0),
            seconds: 2.5
        }]
    );
    // Logged once.
    g.note_drained(t(20.0), |_| false);
    assert_eq!(g.phase().drained.len(), 1);
}

/// NLB guide, `target-group-register-targets.md`: new connections keep reaching a
/// deregistered target while the deregistration propagates, so it is not drained before.
#[test]
fn an_nlb_target_is_not_drained_while_its_deregistration_propagates() {
    let mut g = group(LbKind::Nlb, 300);
    let propagation = g.settings.deregistration_propagation_seconds;
    assert!(propagation > 0.0);
    g.sync(
        &[("a".into(), None, true), ("b".into(), None, true)],
        t(0.0),
        true,
    );
    g.sync(&[("b".into(), None, true)], t(0.0), false);
    g.note_drained(t(propagation / 2.0), |_| false);
    assert!(g.phase().drained.is_empty());
    g.note_drained(t(propagation), |_| false);
    assert_eq!(g.phase().drained.len(), 1);
    assert!((g.phase().drained[0].seconds - propagation).abs() < 1e-9);
}

/// ELB "Deregistration delay": requests still in flight when the delay ends are closed, so a
/// busy target's drain ends with the delay.
#[test]
fn a_busy_target_is_drained_when_its_delay_ends() {
    let mut g = group(LbKind::Alb, 30);
    g.sync(
        &[("a".into(), None, true), ("b".into(), None, true)],
        t(0.0),
        true,
    );
    g.sync(&[("b".into(), None, true)], t(0.0), false);
    g.note_drained(t(29.0), |_| true);
    g.expire_drains(t(31.0));
    assert_eq!(
        g.phase().drained,
        vec![PhaseSpan {
            at: t(0.0),
            seconds: 30.0
        }]
    );
}

#[test]
fn a_target_that_was_never_routed_to_needs_no_drain() {
    let mut g = group(LbKind::Clb, 300);
    g.sync(&[("a".into(), None, false)], t(0.0), false);
    g.sync(&[], t(5.0), false);
    g.note_drained(t(6.0), |_| false);
    g.expire_drains(t(400.0));
    assert!(g.phase().drained.is_empty());
}
