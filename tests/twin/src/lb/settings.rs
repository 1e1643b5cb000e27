//! A load balancer's kind and timing attributes: from the scenario, else from the Service's
//! AWS annotations, else AWS's defaults.

use serde::Serialize;
use serde_json::Value;

use crate::scenario::{LbKind, LoadBalancerSpec, TargetType};

/// Health checks as the provisioner of each kind sets them: `(interval s, healthy threshold,
/// unhealthy threshold)`.
/// - CLB, in-tree (cloud-provider-aws `pkg/providers/v1/aws_loadbalancer.go`,
///   `defaultElbHC*`): 10 s, 2, 6.
/// - NLB, in-tree (`pkg/providers/v1/aws.go`, `buildNLBHealthCheckConfiguration`): 30 s, 3, 3;
///   with `externalTrafficPolicy: Local` (kube-proxy's `healthCheckNodePort`) 10 s, 2, 2.
/// - ALB, AWS Load Balancer Controller Ingress (`pkg/ingress/model_builder.go`,
///   `defaultHealthCheck*`): 15 s, 2, 2.
pub fn health_check_defaults(kind: LbKind, local: bool) -> (f64, u32, u32) {
    match (kind, local) {
        (LbKind::Clb, _) => (10.0, 2, 6),
        (LbKind::Nlb, false) => (30.0, 3, 3),
        (LbKind::Nlb, true) => (10.0, 2, 2),
        (LbKind::Alb, _) => (15.0, 2, 2),
    }
}

/// An NLB target's registration propagates after 90–180 s (aws-load-balancer-controller#1834,
/// maintainer: "The NLB target registration can take from 90 to 180 seconds"); the twin takes
/// the middle. ALB and CLB: at once.
pub const NLB_REGISTRATION_SECONDS: u32 = 120;
/// An NLB keeps sending new connections to a deregistered target for a while (NLB guide
/// `target-group-register-targets.md`: "It can take a few minutes for the deregistration
/// process to complete and for the load balancer to stop routing requests"). Users measured
/// that a deregistration delay of 120 s is the least that loses nothing
/// (aws/containers-roadmap#470: "the effective minimum delay seems to be 120 seconds"), so new
/// connections stop somewhat before 120 s: the twin takes 100 s. ALB: "The load balancer stops
/// routing requests to a target as soon as you deregister it."
pub const NLB_DEREGISTRATION_PROPAGATION_SECONDS: u32 = 100;
/// An ALB keeps routing to a deregistered IP target for a few seconds after the Load Balancer
/// Controller's DeregisterTargets: users found a 5 s preStop sleep not enough and 25 s enough
/// (aws-load-balancer-controller#1064), the time being the controller's plus the ELB API's
/// propagation (#1719, #2106). The twin takes 10 s, on top of the controller's own lag
/// ([`crate::scenario::EndpointLag::load_balancer_controller_seconds`]).
pub const ALB_IP_DEREGISTRATION_PROPAGATION_SECONDS: u32 = 10;

/// Annotations read when the scenario says nothing (in-tree AWS provider and AWS LB
/// Controller names).
pub const ANN_LB_KIND: &str = "twin.ngm.io/lb-kind";
pub const ANN_LB_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";
pub const ANN_IDLE: &str = "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout";
pub const ANN_DRAINING: &str =
    "service.beta.kubernetes.io/aws-load-balancer-connection-draining-timeout";
pub const ANN_DRAINING_ENABLED: &str =
    "service.beta.kubernetes.io/aws-load-balancer-connection-draining-enabled";
pub const ANN_NLB_TARGET_TYPE: &str =
    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type";
pub const ANN_TG_ATTRIBUTES: &str =
    "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes";
/// The NLB target-group attribute that resets open connections at the delay's end.
pub const CONNECTION_TERMINATION: &str = "deregistration_delay.connection_termination.enabled";

/// One load balancer's settings, all durations in simulated seconds.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LbSettings {
    pub kind: LbKind,
    /// ALB/CLB idle timeout, or the NLB listener's TCP idle timeout.
    pub idle_timeout_seconds: u32,
    /// Target-group deregistration delay; for a CLB the connection-draining timeout (0:
    /// draining disabled, in-flight requests are cut at once).
    pub deregistration_delay_seconds: u32,
    pub health_check_interval_seconds: f64,
    pub healthy_threshold: u32,
    pub unhealthy_threshold: u32,
    /// Seconds before a new target's health checks start.
    pub registration_seconds: f64,
    /// Seconds a deregistered target still gets new requests.
    pub deregistration_propagation_seconds: f64,
    /// The targets are pods (the Load Balancer Controller's IP targets), not nodes.
    pub ip_targets: bool,
    /// What happens to a connection still open to a target when its deregistration delay
    /// ends: a CLB closes it ("the load balancer forcibly closes connections to the
    /// deregistering instance", CLB guide `config-conn-drain.md`; at once with draining off);
    /// an NLB leaves it open unless `deregistration_delay.connection_termination.enabled`
    /// (NLB guide, "Deregistration delay"). An ALB ends the client's connection itself, so
    /// none is pinned to a target.
    pub closes_connections_at_drain_end: bool,
}

impl Default for LbSettings {
    fn default() -> Self {
        Self::from_spec(&LoadBalancerSpec::default(), false)
    }
}

fn annotation<'a>(svc: &'a Value, key: &str) -> Option<&'a str> {
    svc.pointer("/metadata/annotations")?.get(key)?.as_str()
}

impl LbSettings {
    /// Settings from a scenario's `loadBalancer` block (AWS defaults for what it omits: ALB
    /// and CLB idle 60 s, NLB TCP idle 350 s, deregistration delay 300 s; health checks and
    /// propagation by kind, [`health_check_defaults`]). `local`: `externalTrafficPolicy: Local`.
    pub fn from_spec(spec: &LoadBalancerSpec, local: bool) -> Self {
        let ip = spec.target_type == TargetType::Ip;
        // kube-proxy's health check node port plays no part with IP targets.
        let (interval, up, down) = match (spec.kind, ip) {
            // The Load Balancer Controller's NLB (`pkg/service/model_builder.go`): 10 s, 3/3.
            (LbKind::Nlb, true) => (10.0, 3, 3),
            _ => health_check_defaults(spec.kind, local && !ip),
        };
        let nlb = |secs: u32| if spec.kind == LbKind::Nlb { secs } else { 0 };
        let propagation = match (spec.kind, ip) {
            (LbKind::Nlb, _) => NLB_DEREGISTRATION_PROPAGATION_SECONDS,
            (LbKind::Alb, true) => ALB_IP_DEREGISTRATION_PROPAGATION_SECONDS,
            _ => 0,
        };
        Self {
            kind: spec.kind,
            idle_timeout_seconds: spec.idle_timeout(),
            deregistration_delay_seconds: spec.deregistration_delay(),
            health_check_interval_seconds: spec
                .health_check_interval_seconds
                .map_or(interval, f64::from),
            healthy_threshold: spec.healthy_threshold.unwrap_or(up).max(1),
            unhealthy_threshold: spec.unhealthy_threshold.unwrap_or(down).max(1),
            registration_seconds: f64::from(
                spec.registration_seconds
                    .unwrap_or(nlb(NLB_REGISTRATION_SECONDS)),
            ),
            deregistration_propagation_seconds: f64::from(
                spec.deregistration_propagation_seconds
                    .unwrap_or(propagation),
            ),
            ip_targets: ip,
            closes_connections_at_drain_end: match spec.kind {
                LbKind::Clb => true,
                LbKind::Nlb => spec.connection_termination,
                LbKind::Alb => false,
            },
        }
    }

    /// Settings read from a Service's annotations (a Service the scenario did not describe).
    /// Without any, the in-tree provider's default: a CLB.
    pub fn from_service(svc: &Value, local: bool) -> Self {
        let ip = annotation(svc, ANN_NLB_TARGET_TYPE) == Some("ip")
            || annotation(svc, ANN_LB_TYPE) == Some("nlb-ip");
        let kind = match (annotation(svc, ANN_LB_KIND), annotation(svc, ANN_LB_TYPE)) {
            (Some("alb"), _) => LbKind::Alb,
            (Some("nlb"), _) | (None, Some("nlb" | "nlb-ip" | "external")) => LbKind::Nlb,
            _ => LbKind::Clb,
        };
        let num = |key: &str| annotation(svc, key).and_then(|v| v.trim().parse::<u32>().ok());
        let tg_attribute = |key: &str| {
            annotation(svc, ANN_TG_ATTRIBUTES).and_then(|attrs| {
                attrs
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| k.trim() == key)
                    .map(|(_, v)| v.trim().to_string())
            })
        };
        let delay = tg_attribute("deregistration_delay.timeout_seconds")
            .and_then(|v| v.parse().ok())
            .or_else(|| num(ANN_DRAINING));
        let connection_termination =
            tg_attribute(CONNECTION_TERMINATION).is_some_and(|v| v == "true");
        // The in-tree CLB turns connection draining off unless the Service turns it on
        // (cloud-provider-aws `pkg/providers/v1/aws.go`: `ConnectionDraining{Enabled: false}`);
        // on, without a timeout, AWS's 300 s applies.
        let delay = match kind {
            LbKind::Clb if annotation(svc, ANN_DRAINING_ENABLED) != Some("true") => Some(0),
            _ => delay,
        };
        Self::from_spec(
            &LoadBalancerSpec {
                kind,
                idle_timeout_seconds: num(ANN_IDLE),
                deregistration_delay_seconds: delay,
                target_type: if ip {
                    TargetType::Ip
                } else {
                    TargetType::Instance
                },
                connection_termination,
                ..LoadBalancerSpec::default()
            },
            local,
        )
    }

    /// The longest time a connection can outlive a node's removal from the target set: what
    /// ngm must wait after excluding nodes.
    pub fn drain_wait_seconds(&self) -> u32 {
        self.idle_timeout_seconds
            .max(self.deregistration_delay_seconds)
    }
}

#[cfg(test)]
mod tests {
    /// Health checks and propagation follow each provisioner's upstream figures: in-tree CLB
    /// (cloud-provider-aws `aws_loadbalancer.go`, `defaultElbHC*`: 10 s, 2/6), in-tree NLB
    /// (`aws.go`, `buildNLBHealthCheckConfiguration`: 30 s 3/3, Local 10 s 2/2), LBC Ingress ALB
    /// (`pkg/ingress/model_builder.go`: 15 s 2/2); NLB registration (LBC#1834) and
    /// deregistration propagation (containers-roadmap#470).
    #[test]
    fn health_checks_and_propagation_follow_the_provisioner_of_each_kind() {
        let of = |kind, local| {
            let s = LbSettings::from_spec(
                &LoadBalancerSpec {
                    kind,
                    ..LoadBalancerSpec::default()
                },
                local,
            );
            (
                s.health_check_interval_seconds,
                s.healthy_threshold,
                s.unhealthy_threshold,
                s.registration_seconds,
                s.deregistration_propagation_seconds,
            )
        };
        assert_eq!(of(LbKind::Clb, false), (10.0, 2, 6, 0.0, 0.0));
        assert_eq!(of(LbKind::Nlb, false), (30.0, 3, 3, 120.0, 100.0));
        assert_eq!(of(LbKind::Nlb, true), (10.0, 2, 2, 120.0, 100.0));
        assert_eq!(of(LbKind::Alb, true), (15.0, 2, 2, 0.0, 0.0));
        let given = LbSettings::from_spec(
            &LoadBalancerSpec {
                kind: LbKind::Clb,
                health_check_interval_seconds: Some(30),
                healthy_threshold: Some(10),
                unhealthy_threshold: Some(2),
                ..LoadBalancerSpec::default()
            },
            false,
        );
        assert_eq!(
            (
                given.health_check_interval_seconds,
                given.healthy_threshold,
                given.unhealthy_threshold
            ),
            (30.0, 10, 2)
        );
    }

    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_are_the_aws_ones_per_kind() {
        let nlb = LbSettings::from_spec(
            &LoadBalancerSpec {
                kind: LbKind::Nlb,
                ..LoadBalancerSpec::default()
            },
            false,
        );
        assert_eq!(
            (nlb.idle_timeout_seconds, nlb.deregistration_delay_seconds),
            (350, 300)
        );
        let alb = LbSettings::from_spec(
            &LoadBalancerSpec {
                kind: LbKind::Alb,
                ..LoadBalancerSpec::default()
            },
            false,
        );
        assert_eq!(alb.idle_timeout_seconds, 60);
    }

    #[test]
    fn service_annotations_set_kind_and_timings() {
        let svc = json!({ "metadata": { "annotations": {
            ANN_LB_TYPE: "external",
            ANN_TG_ATTRIBUTES: "preserve_client_ip.enabled=true, deregistration_delay.timeout_seconds=45",
        } } });
        let s = LbSettings::from_service(&svc, false);
        assert_eq!(
            (
                s.kind,
                s.deregistration_delay_seconds,
                s.idle_timeout_seconds
            ),
            (LbKind::Nlb, 45, 350)
        );
        let clb = LbSettings::from_service(
            &json!({ "metadata": { "annotations": {
                ANN_IDLE: "20", ANN_DRAINING: "90", ANN_DRAINING_ENABLED: "true",
            } } }),
            false,
        );
        assert_eq!(
            (
                clb.kind,
                clb.idle_timeout_seconds,
                clb.deregistration_delay_seconds
            ),
            (LbKind::Clb, 20, 90)
        );
        // cloud-provider-aws `pkg/providers/v1/aws.go`: the in-tree CLB's connection draining
        // is off unless `...-connection-draining-enabled: "true"`.
        let off = LbSettings::from_service(
            &json!({ "metadata": { "annotations": { ANN_DRAINING: "90" } } }),
            false,
        );
        assert_eq!(off.deregistration_delay_seconds, 0);
    }

    /// NLB guide, "Deregistration delay": connection termination is off by default (open
    /// connections outlive the delay) and the target-group attribute turns it on; CLB guide
    /// `config-conn-drain.md`: the CLB forcibly closes what is still open when the timeout ends.
    #[test]
    fn who_closes_connections_at_the_end_of_a_drain() {
        let nlb = |attrs: &str| {
            LbSettings::from_service(
                &json!({ "metadata": { "annotations": {
                    ANN_LB_TYPE: "external", ANN_TG_ATTRIBUTES: attrs,
                } } }),
                false,
            )
            .closes_connections_at_drain_end
        };
        assert!(!nlb("deregistration_delay.timeout_seconds=45"));
        assert!(nlb(
            "deregistration_delay.timeout_seconds=45, deregistration_delay.connection_termination.enabled=true"
        ));
        let clb = LbSettings::from_service(&json!({ "metadata": {} }), false);
        assert!(clb.closes_connections_at_drain_end);
        let alb = LbSettings::from_spec(
            &LoadBalancerSpec {
                kind: LbKind::Alb,
                ..LoadBalancerSpec::default()
            },
            false,
        );
        assert!(!alb.closes_connections_at_drain_end);
    }
}
