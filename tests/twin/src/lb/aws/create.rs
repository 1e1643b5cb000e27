//! Creating the load balancers in the emulator, with their attributes.

use aws_sdk_elasticloadbalancing as elb;
use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::types::{
    Action, ActionTypeEnum, ListenerAttribute, LoadBalancerAttribute, LoadBalancerTypeEnum,
    ProtocolEnum, TargetGroupAttribute, TargetTypeEnum,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{AwsError, AwsLb, AwsTarget, Key, Mirror, call_err, lb_name};
use crate::lb::settings::LbSettings;
use crate::scenario::LbKind;

impl Mirror {
    pub(super) async fn create_classic(
        &self,
        key: &Key,
        s: &LbSettings,
        node_port: i32,
        port: i32,
    ) -> Result<AwsLb, AwsError> {
        let name = lb_name("a", &key.0, &key.1);
        let listener = elb::types::Listener::builder()
            .protocol("TCP")
            .load_balancer_port(port)
            .instance_protocol("TCP")
            .instance_port(node_port)
            .build()
            .map_err(|e| call_err("CreateLoadBalancer")(&e))?;
        let tag = elb::types::Tag::builder()
            .key("kubernetes.io/service-name")
            .value(format!("{}/{}", key.0, key.1))
            .build()
            .map_err(|e| call_err("CreateLoadBalancer")(&e))?;
        let out = self
            .classic
            .create_load_balancer()
            .load_balancer_name(&name)
            .listeners(listener)
            .availability_zones(format!("{}a", self.target.region))
            .tags(tag)
            .send()
            .await
            .map_err(|e| call_err("CreateLoadBalancer")(&e))?;
        let settings = elb::types::ConnectionSettings::builder()
            .idle_timeout(s.idle_timeout_seconds as i32)
            .build()
            .map_err(|e| call_err("ModifyLoadBalancerAttributes")(&e))?;
        // A zero draining timeout means connection draining is off (in-flight requests cut).
        let draining = elb::types::ConnectionDraining::builder()
            .enabled(s.deregistration_delay_seconds > 0)
            .timeout(s.deregistration_delay_seconds.max(1) as i32)
            .build();
        let attrs = elb::types::LoadBalancerAttributes::builder()
            .connection_settings(settings)
            .connection_draining(draining)
            .build();
        self.classic
            .modify_load_balancer_attributes()
            .load_balancer_name(&name)
            .load_balancer_attributes(attrs)
            .send()
            .await
            .map_err(|e| call_err("ModifyLoadBalancerAttributes")(&e))?;
        Ok(AwsLb {
            dns_name: out.dns_name().unwrap_or_default().to_string(),
            name,
            ..AwsLb::default()
        })
    }

    pub(super) async fn create_v2(
        &self,
        key: &Key,
        s: &LbSettings,
        node_port: i32,
        port: i32,
    ) -> Result<AwsLb, AwsError> {
        let (vpc, subnets) = self.network().await?.clone();
        let nlb = s.kind == LbKind::Nlb;
        let name = lb_name("k8s", &key.0, &key.1);
        let tag = elbv2::types::Tag::builder()
            .key("kubernetes.io/service-name")
            .value(format!("{}/{}", key.0, key.1))
            .build();
        let lb = self
            .v2
            .create_load_balancer()
            .name(&name)
            .r#type(if nlb {
                LoadBalancerTypeEnum::Network
            } else {
                LoadBalancerTypeEnum::Application
            })
            .set_subnets(Some(subnets))
            .tags(tag)
            .send()
            .await
            .map_err(|e| call_err("CreateLoadBalancer")(&e))?;
        let lb = lb
            .load_balancers()
            .first()
            .cloned()
            .ok_or_else(|| call_err("CreateLoadBalancer")(&"no load balancer returned"))?;
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        let protocol = if nlb {
            ProtocolEnum::Tcp
        } else {
            ProtocolEnum::Http
        };
        let tg = self
            .v2
            .create_target_group()
            .name(lb_name("tg", &key.0, &key.1))
            .protocol(protocol.clone())
            .port(node_port)
            .vpc_id(vpc)
            .target_type(if s.ip_targets {
                TargetTypeEnum::Ip
            } else {
                TargetTypeEnum::Instance
            })
            .health_check_interval_seconds(s.health_check_interval_seconds.round() as i32)
            .healthy_threshold_count(s.healthy_threshold as i32)
            .unhealthy_threshold_count(s.unhealthy_threshold as i32)
            .send()
            .await
            .map_err(|e| call_err("CreateTargetGroup")(&e))?;
        let tg_arn = tg
            .target_groups()
            .first()
            .and_then(|t| t.target_group_arn())
            .unwrap_or_default()
            .to_string();
        let attribute =
            |k: &str, v: String| TargetGroupAttribute::builder().key(k).value(v).build();
        let mut attributes = vec![attribute(
            "deregistration_delay.timeout_seconds",
            s.deregistration_delay_seconds.to_string(),
        )];
        if nlb {
            attributes.push(attribute(
                crate::lb::settings::CONNECTION_TERMINATION,
                s.closes_connections_at_drain_end.to_string(),
            ));
        }
        self.v2
            .modify_target_group_attributes()
            .target_group_arn(&tg_arn)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| call_err("ModifyTargetGroupAttributes")(&e))?;
        let listener = self
            .v2
            .create_listener()
            .load_balancer_arn(&arn)
            .protocol(protocol)
            .port(port)
            .default_actions(
                Action::builder()
                    .r#type(ActionTypeEnum::Forward)
                    .target_group_arn(&tg_arn)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| call_err("CreateListener")(&e))?;
        let listener_arn = listener
            .listeners()
            .first()
            .and_then(|l| l.listener_arn())
            .unwrap_or_default()
            .to_string();
        if nlb {
            // The NLB's TCP idle timeout is a listener attribute.
            self.v2
                .modify_listener_attributes()
                .listener_arn(&listener_arn)
                .attributes(
                    ListenerAttribute::builder()
                        .key("tcp.idle_timeout.seconds")
                        .value(s.idle_timeout_seconds.to_string())
                        .build(),
                )
                .send()
                .await
                .map_err(|e| call_err("ModifyListenerAttributes")(&e))?;
        } else {
            self.v2
                .modify_load_balancer_attributes()
                .load_balancer_arn(&arn)
                .attributes(
                    LoadBalancerAttribute::builder()
                        .key("idle_timeout.timeout_seconds")
                        .value(s.idle_timeout_seconds.to_string())
                        .build(),
                )
                .send()
                .await
                .map_err(|e| call_err("ModifyLoadBalancerAttributes")(&e))?;
        }
        Ok(AwsLb {
            name,
            dns_name: lb.dns_name().unwrap_or_default().to_string(),
            arn: Some(arn),
            target_group_arn: Some(tg_arn),
            listener_arn: Some(listener_arn),
            target_port: s.ip_targets.then_some(node_port),
        })
    }
}

/// moto's default subnet in each zone of the region (`DescribeSubnets`, `defaultForAz`), so the
/// cluster's subnets are ones EC2 knows (ngm reads their zones).
pub async fn default_subnets_by_zone(
    target: &AwsTarget,
) -> Result<std::collections::BTreeMap<String, String>, AwsError> {
    let fail = call_err("DescribeSubnets");
    let response = query(target, "Action=DescribeSubnets&Version=2016-11-15").await?;
    let field = |item: &str, tag: &str| -> Option<String> {
        let start = item.find(&format!("<{tag}>"))? + tag.len() + 2;
        let end = item[start..].find(&format!("</{tag}>"))? + start;
        Some(item[start..end].to_string())
    };
    let mut out = std::collections::BTreeMap::new();
    for item in response.split("<item>").skip(1) {
        if field(item, "defaultForAz").as_deref() != Some("true") {
            continue;
        }
        if let (Some(id), Some(zone)) = (field(item, "subnetId"), field(item, "availabilityZone")) {
            out.entry(zone).or_insert(id);
        }
    }
    if out.is_empty() {
        return Err(fail(&"moto listed no default subnet"));
    }
    Ok(out)
}

/// One EC2 Query call to moto (the twin does not link the EC2 SDK); the body of the answer.
async fn query(target: &AwsTarget, body: &str) -> Result<String, AwsError> {
    let fail = call_err("EC2 query");
    let url = url::Url::parse(&target.endpoint_url).map_err(|e| fail(&e))?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=twin/20260101/{}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        target.region,
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| fail(&e))?;
    conn.write_all(request.as_bytes())
        .await
        .map_err(|e| fail(&e))?;
    let mut response = String::new();
    conn.read_to_string(&mut response)
        .await
        .map_err(|e| fail(&e))?;
    Ok(response)
}

/// The default VPC and its subnets, from EC2 `DescribeSubnets` (an ALB or NLB needs subnets and
/// a target group a VPC). The twin does not link the EC2 SDK, so this is one plain Query call.
pub(super) async fn describe_subnets(
    target: &AwsTarget,
) -> Result<(String, Vec<String>), AwsError> {
    let fail = call_err("DescribeSubnets");
    let response = query(target, "Action=DescribeSubnets&Version=2016-11-15").await?;
    // Each subnet item carries one subnetId and one vpcId, in that order.
    let ids = |tag: &str| -> Result<Vec<String>, AwsError> {
        let re = regex::Regex::new(&format!("<{tag}>([^<]+)</{tag}>")).map_err(|e| fail(&e))?;
        Ok(re
            .captures_iter(&response)
            .map(|c| c[1].to_string())
            .collect())
    };
    let mut vpc: Option<String> = None;
    let mut subnets = Vec::new();
    for (s, v) in ids("subnetId")?.into_iter().zip(ids("vpcId")?) {
        if vpc.get_or_insert_with(|| v.clone()) == &v && subnets.len() < 3 {
            subnets.push(s);
        }
    }
    match vpc {
        Some(v) if !subnets.is_empty() => Ok((v, subnets)),
        _ => Err(fail(&"no subnet in the default VPC")),
    }
}
