//! ELBv2 (ALB, NLB) and classic ELB: the load balancer in front of a Service, found by the DNS
//! name Kubernetes records in the Service status, and the attributes that bound how long an old
//! connection may live (idle timeouts, deregistration delay, connection draining).

use async_trait::async_trait;
use aws_sdk_elasticloadbalancing::Client as ClassicClient;
use aws_sdk_elasticloadbalancingv2::Client as V2Client;
use aws_sdk_elasticloadbalancingv2::types::{
    LoadBalancer, LoadBalancerTypeEnum, TargetHealthStateEnum,
};
use ngm_core::model::{
    ClassicDraining, LbKind, LoadBalancerInfo, TargetGroupInfo, TargetHealth, TargetHealthState,
};
use ngm_core::ports::{ElbPort, PortError, PortResult};

use super::none_if_missing;

#[derive(Debug, Clone)]
pub struct ElbAdapter {
    v2: V2Client,
    classic: ClassicClient,
}

impl ElbAdapter {
    pub fn new(v2: V2Client, classic: ClassicClient) -> Self {
        Self { v2, classic }
    }

    async fn find_v2(&self, dns: &str) -> PortResult<Option<LoadBalancer>> {
        let pages = crate::paginate!(
            "elasticloadbalancing:DescribeLoadBalancers",
            self.v2.describe_load_balancers()
        )?;
        for page in pages {
            if let Some(lb) = page
                .load_balancers()
                .iter()
                .find(|lb| lb.dns_name().is_some_and(|d| d.eq_ignore_ascii_case(dns)))
            {
                return Ok(Some(lb.clone()));
            }
        }
        Ok(None)
    }

    async fn v2_info(&self, lb: &LoadBalancer, dns: &str) -> PortResult<LoadBalancerInfo> {
        let arn = lb.load_balancer_arn().unwrap_or_default().to_owned();
        let kind = match lb.r#type() {
            Some(LoadBalancerTypeEnum::Network) => LbKind::Nlb,
            _ => LbKind::Alb,
        };
        let attrs = crate::send!(
            "elasticloadbalancing:DescribeLoadBalancerAttributes",
            self.v2
                .describe_load_balancer_attributes()
                .load_balancer_arn(&arn)
        )?;
        let idle = attrs
            .attributes()
            .iter()
            .find(|a| a.key() == Some("idle_timeout.timeout_seconds"))
            .and_then(|a| a.value())
            .and_then(|v| v.parse().ok());

        let groups = crate::send!(
            "elasticloadbalancing:DescribeTargetGroups",
            self.v2.describe_target_groups().load_balancer_arn(&arn)
        );
        // A load balancer with no target group yet has nothing to drain.
        let groups = none_if_missing(groups)?;
        let mut target_groups = Vec::new();
        for tg in groups.iter().flat_map(|g| g.target_groups()) {
            let tg_arn = tg.target_group_arn().unwrap_or_default().to_owned();
            let attrs = crate::send!(
                "elasticloadbalancing:DescribeTargetGroupAttributes",
                self.v2
                    .describe_target_group_attributes()
                    .target_group_arn(&tg_arn)
            )?;
            target_groups.push(TargetGroupInfo {
                deregistration_delay_secs: attrs
                    .attributes()
                    .iter()
                    .find(|a| a.key() == Some("deregistration_delay.timeout_seconds"))
                    .and_then(|a| a.value())
                    .and_then(|v| v.parse().ok()),
                target_type: tg.target_type().map(|t| t.as_str().to_owned()),
                arn: tg_arn,
            });
        }

        // An NLB's TCP idle timeout is a listener attribute (default 350 s).
        let mut tcp_idle = None;
        if kind == LbKind::Nlb {
            let listeners = crate::send!(
                "elasticloadbalancing:DescribeListeners",
                self.v2.describe_listeners().load_balancer_arn(&arn)
            )?;
            for l in listeners.listeners() {
                let attrs = crate::send!(
                    "elasticloadbalancing:DescribeListenerAttributes",
                    self.v2
                        .describe_listener_attributes()
                        .listener_arn(l.listener_arn().unwrap_or_default())
                )?;
                let secs: Option<u64> = attrs
                    .attributes()
                    .iter()
                    .find(|a| a.key() == Some("tcp.idle_timeout.seconds"))
                    .and_then(|a| a.value())
                    .and_then(|v| v.parse().ok());
                tcp_idle = tcp_idle.max(secs);
            }
        }
        Ok(LoadBalancerInfo {
            id: arn,
            kind,
            dns_name: dns.to_owned(),
            idle_timeout_secs: idle,
            tcp_idle_timeout_secs: tcp_idle,
            target_groups,
            classic_draining: None,
        })
    }

    async fn find_classic(&self, dns: &str) -> PortResult<Option<LoadBalancerInfo>> {
        self.find_classic_by(|lb| lb.dns_name().is_some_and(|d| d.eq_ignore_ascii_case(dns)))
            .await
    }

    async fn find_classic_by(
        &self,
        matches: impl Fn(&aws_sdk_elasticloadbalancing::types::LoadBalancerDescription) -> bool,
    ) -> PortResult<Option<LoadBalancerInfo>> {
        let pages = crate::paginate!(
            "elasticloadbalancing:DescribeLoadBalancers",
            self.classic.describe_load_balancers()
        )?;
        let mut found = None;
        for page in pages {
            if let Some(lb) = page
                .load_balancer_descriptions()
                .iter()
                .find(|lb| matches(lb))
            {
                found = lb
                    .load_balancer_name()
                    .map(|n| (n.to_owned(), lb.dns_name().unwrap_or_default().to_owned()));
                break;
            }
        }
        let Some((name, dns)) = found else {
            return Ok(None);
        };
        let dns = dns.as_str();
        let attrs = crate::send!(
            "elasticloadbalancing:DescribeLoadBalancerAttributes",
            self.classic
                .describe_load_balancer_attributes()
                .load_balancer_name(&name)
        )?;
        let a = attrs.load_balancer_attributes();
        Ok(Some(LoadBalancerInfo {
            id: name,
            kind: LbKind::Clb,
            dns_name: dns.to_owned(),
            idle_timeout_secs: a
                .and_then(|a| a.connection_settings())
                .and_then(|c| u64::try_from(c.idle_timeout()).ok()),
            tcp_idle_timeout_secs: None,
            target_groups: Vec::new(),
            classic_draining: a
                .and_then(|a| a.connection_draining())
                .map(|d| ClassicDraining {
                    enabled: d.enabled(),
                    timeout_secs: d
                        .timeout()
                        .and_then(|t| u64::try_from(t).ok())
                        .unwrap_or(300),
                }),
        }))
    }
}

fn state_of(s: Option<&TargetHealthStateEnum>) -> TargetHealthState {
    match s {
        Some(TargetHealthStateEnum::Initial) => TargetHealthState::Initial,
        Some(TargetHealthStateEnum::Healthy) => TargetHealthState::Healthy,
        Some(TargetHealthStateEnum::Unhealthy) => TargetHealthState::Unhealthy,
        Some(TargetHealthStateEnum::Unused) => TargetHealthState::Unused,
        Some(TargetHealthStateEnum::Draining) => TargetHealthState::Draining,
        Some(TargetHealthStateEnum::Unavailable) => TargetHealthState::Unavailable,
        Some(other) => TargetHealthState::Other(other.as_str().to_owned()),
        None => TargetHealthState::Other(String::new()),
    }
}

#[async_trait]
impl ElbPort for ElbAdapter {
    async fn find_load_balancer_by_dns(&self, dns: &str) -> PortResult<Option<LoadBalancerInfo>> {
        if let Some(lb) = self.find_v2(dns).await? {
            return self.v2_info(&lb, dns).await.map(Some);
        }
        self.find_classic(dns).await
    }

    async fn target_health(&self, target_group_arn: &str) -> PortResult<Vec<TargetHealth>> {
        let out = crate::send!(
            "elasticloadbalancing:DescribeTargetHealth",
            self.v2
                .describe_target_health()
                .target_group_arn(target_group_arn)
        )?;
        Ok(out
            .target_health_descriptions()
            .iter()
            .filter_map(|d| {
                let t = d.target()?;
                Some(TargetHealth {
                    target_id: t.id()?.to_owned(),
                    port: t.port(),
                    state: state_of(d.target_health().and_then(|h| h.state())),
                })
            })
            .collect())
    }

    async fn set_targets(
        &self,
        target_group_arn: &str,
        targets: &[(String, Option<i32>)],
        deregister: bool,
    ) -> PortResult<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let list: Vec<aws_sdk_elasticloadbalancingv2::types::TargetDescription> = targets
            .iter()
            .map(|(id, port)| {
                aws_sdk_elasticloadbalancingv2::types::TargetDescription::builder()
                    .id(id)
                    .set_port(*port)
                    .build()
            })
            .collect();
        if deregister {
            let answer = crate::send!(
                "elasticloadbalancing:DeregisterTargets",
                self.v2
                    .deregister_targets()
                    .target_group_arn(target_group_arn)
                    .set_targets(Some(list.clone()))
            );
            match answer {
                // Deregistered already (by the controller, or an earlier try).
                Err(PortError::Invalid { detail, .. }) if detail.contains("InvalidTarget") => {
                    Ok(())
                }
                Err(e) => Err(e),
                Ok(_) => Ok(()),
            }
        } else {
            crate::send!(
                "elasticloadbalancing:RegisterTargets",
                self.v2
                    .register_targets()
                    .target_group_arn(target_group_arn)
                    .set_targets(Some(list))
            )?;
            Ok(())
        }
    }

    async fn classic_by_name(&self, name: &str) -> PortResult<Option<LoadBalancerInfo>> {
        self.find_classic_by(|lb| lb.load_balancer_name() == Some(name))
            .await
    }

    async fn by_target_group(
        &self,
        target_group_arn: &str,
    ) -> PortResult<Option<LoadBalancerInfo>> {
        let groups = crate::send!(
            "elasticloadbalancing:DescribeTargetGroups",
            self.v2
                .describe_target_groups()
                .target_group_arns(target_group_arn)
        );
        let Some(groups) = none_if_missing(groups)? else {
            return Ok(None);
        };
        let Some(lb_arn) = groups
            .target_groups()
            .iter()
            .flat_map(|tg| tg.load_balancer_arns())
            .next()
            .cloned()
        else {
            // A target group no load balancer uses routes nothing.
            return Ok(None);
        };
        let lbs = crate::send!(
            "elasticloadbalancing:DescribeLoadBalancers",
            self.v2
                .describe_load_balancers()
                .load_balancer_arns(&lb_arn)
        );
        let Some(lb) = none_if_missing(lbs)?.and_then(|o| o.load_balancers().first().cloned())
        else {
            return Ok(None);
        };
        let dns = lb.dns_name().unwrap_or_default().to_owned();
        let mut info = self.v2_info(&lb, &dns).await?;
        info.target_groups.retain(|tg| tg.arn == target_group_arn);
        Ok(Some(info))
    }

    async fn classic_instance_health(&self, lb_name: &str) -> PortResult<Vec<TargetHealth>> {
        let out = crate::send!(
            "elasticloadbalancing:DescribeInstanceHealth",
            self.classic
                .describe_instance_health()
                .load_balancer_name(lb_name)
        )?;
        Ok(out
            .instance_states()
            .iter()
            .filter_map(|s| {
                Some(TargetHealth {
                    target_id: s.instance_id()?.to_owned(),
                    port: None,
                    state: match s.state() {
                        // A CLB reports a draining instance as InService with this description
                        // (CLB guide, "Configure connection draining").
                        Some("InService")
                            if s.description().is_some_and(|d| {
                                d.contains("deregistration currently in progress")
                            }) =>
                        {
                            TargetHealthState::Draining
                        }
                        Some("InService") => TargetHealthState::Healthy,
                        Some("OutOfService") => TargetHealthState::Unhealthy,
                        Some(other) => TargetHealthState::Other(other.to_owned()),
                        None => TargetHealthState::Other(String::new()),
                    },
                })
            })
            .collect())
    }
}
