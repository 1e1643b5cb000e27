//! A load balancer's kind and timing attributes: from the scenario, else from the Service's
//! AWS annotations, else AWS's defaults.

use serde::Serialize;
use serde_json::Value;

use crate::scenario::{LbKind, LoadBalancerSpec};

/// Health checks every 10 s, 2 results in a row to change state: what the AWS Load Balancer
/// Controller and the in-tree provider configure for `externalTrafficPolicy: Local` services
/// (they probe kube-proxy's `healthCheckNodePort`).
pub const HEALTH_CHECK_INTERVAL_SECONDS: f64 = 10.0;
pub const HEALTHY_THRESHOLD: u32 = 2;
pub const UNHEALTHY_THRESHOLD: u32 = 2;

/// Annotations read when the scenario says nothing (in-tree AWS provider and AWS LB
/// Controller names).
pub const ANN_LB_KIND: &str = "twin.ngm.io/lb-kind";
pub const ANN_LB_TYPE: &str = "service.beta.kubernetes.io/aws-load-balancer-type";
pub const ANN_IDLE: &str = "service.beta.kubernetes.io/aws-load-balancer-connection-idle-timeout";
pub const ANN_DRAINING: &str =
    "service.beta.kubernetes.io/aws-load-balancer-connection-draining-timeout";
pub const ANN_TG_ATTRIBUTES: &str =
    "service.beta.kubernetes.io/aws-load-balancer-target-group-attributes";

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
}

impl Default for LbSettings {
    fn default() -> Self {
        Self::from_spec(&LoadBalancerSpec::default())
    }
}

fn annotation<'a>(svc: &'a Value, key: &str) -> Option<&'a str> {
    svc.pointer("/metadata/annotations")?.get(key)?.as_str()
}

impl LbSettings {
    /// Settings from a scenario's `loadBalancer` block (AWS defaults for what it omits: ALB
    /// and CLB idle 60 s, NLB TCP idle 350 s, deregistration delay 300 s).
    pub fn from_spec(spec: &LoadBalancerSpec) -> Self {
        Self {
            kind: spec.kind,
            idle_timeout_seconds: spec.idle_timeout(),
            deregistration_delay_seconds: spec.deregistration_delay(),
            health_check_interval_seconds: spec
                .health_check_interval_seconds
                .map(f64::from)
                .unwrap_or(HEALTH_CHECK_INTERVAL_SECONDS),
            healthy_threshold: HEALTHY_THRESHOLD,
            unhealthy_threshold: UNHEALTHY_THRESHOLD,
        }
    }

    /// Settings read from a Service's annotations (a Service the scenario did not describe).
    /// Without any, the in-tree provider's default: a CLB.
    pub fn from_service(svc: &Value) -> Self {
        let kind = match (annotation(svc, ANN_LB_KIND), annotation(svc, ANN_LB_TYPE)) {
            (Some("alb"), _) => LbKind::Alb,
            (Some("nlb"), _) | (None, Some("nlb" | "external")) => LbKind::Nlb,
            _ => LbKind::Clb,
        };
        let num = |key: &str| annotation(svc, key).and_then(|v| v.trim().parse::<u32>().ok());
        let delay = annotation(svc, ANN_TG_ATTRIBUTES)
            .and_then(|attrs| {
                attrs
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .find(|(k, _)| k.trim() == "deregistration_delay.timeout_seconds")
                    .and_then(|(_, v)| v.trim().parse().ok())
            })
            .or_else(|| num(ANN_DRAINING));
        Self::from_spec(&LoadBalancerSpec {
            kind,
            idle_timeout_seconds: num(ANN_IDLE),
            deregistration_delay_seconds: delay,
            health_check_interval_seconds: None,
        })
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
    use serde_json::json;

    use super::*;

    #[test]
    fn defaults_are_the_aws_ones_per_kind() {
        let nlb = LbSettings::from_spec(&LoadBalancerSpec {
            kind: LbKind::Nlb,
            ..LoadBalancerSpec::default()
        });
        assert_eq!(
            (nlb.idle_timeout_seconds, nlb.deregistration_delay_seconds),
            (350, 300)
        );
        let alb = LbSettings::from_spec(&LoadBalancerSpec {
            kind: LbKind::Alb,
            ..LoadBalancerSpec::default()
        });
        assert_eq!(alb.idle_timeout_seconds, 60);
    }

    #[test]
    fn service_annotations_set_kind_and_timings() {
        let svc = json!({ "metadata": { "annotations": {
            ANN_LB_TYPE: "external",
            ANN_TG_ATTRIBUTES: "preserve_client_ip.enabled=true, deregistration_delay.timeout_seconds=45",
        } } });
        let s = LbSettings::from_service(&svc);
        assert_eq!(
            (
                s.kind,
                s.deregistration_delay_seconds,
                s.idle_timeout_seconds
            ),
            (LbKind::Nlb, 45, 350)
        );
        let clb = LbSettings::from_service(
            &json!({ "metadata": { "annotations": { ANN_IDLE: "20", ANN_DRAINING: "90" } } }),
        );
        assert_eq!(
            (
                clb.kind,
                clb.idle_timeout_seconds,
                clb.deregistration_delay_seconds
            ),
            (LbKind::Clb, 20, 90)
        );
    }
}
