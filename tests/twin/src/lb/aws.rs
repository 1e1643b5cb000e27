//! The load balancers' mirror in the AWS emulator (moto), so ngm reads them through the real
//! ELB APIs: one ALB/NLB (with a target group and a listener) or CLB per Service, with the
//! scenario's idle timeout and deregistration delay as attributes, its registered instances
//! kept in step with the twin's target set, and the Service's
//! `status.loadBalancer.ingress[0].hostname` set to its DNS name.
//!
//! Moto deregisters at once (no draining state) and reports every target healthy; the twin's
//! own target states are the truth for traffic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_sdk_elasticloadbalancing as elb;
use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::types::{
    Action, ActionTypeEnum, ListenerAttribute, LoadBalancerAttribute, LoadBalancerTypeEnum, ProtocolEnum,
    TargetDescription, TargetGroupAttribute, TargetTypeEnum,
};
use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::settings::LbSettings;
use crate::scenario::LbKind;
use crate::store::{Resource, Store};

/// Where the emulator is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsTarget {
    /// `http://127.0.0.1:PORT` of moto.
    pub endpoint_url: String,
    pub region: String,
}

/// A load balancer as created in the emulator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsLb {
    pub name: String,
    pub dns_name: String,
    /// ELBv2 load balancer ARN (ALB/NLB).
    pub arn: Option<String>,
    pub target_group_arn: Option<String>,
    pub listener_arn: Option<String>,
}

/// Why an emulator call failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{call} failed: {detail}")]
    Call { call: &'static str, detail: String },
}

fn call_err(call: &'static str) -> impl Fn(&dyn std::fmt::Display) -> AwsError {
    move |e| AwsError::Call { call, detail: e.to_string() }
}

pub(crate) type Key = (String, String);

/// What the traffic loop asks of the mirror, processed in order.
#[derive(Debug)]
pub(crate) enum AwsCmd {
    Ensure { key: Key, settings: LbSettings, node_port: i32, port: i32 },
    Register { key: Key, instances: Vec<String> },
    Deregister { key: Key, instances: Vec<String> },
}

/// What the mirror has created, and its errors.
#[derive(Debug, Default)]
pub(crate) struct AwsShared {
    pub lbs: Mutex<HashMap<Key, AwsLb>>,
    pub errors: Mutex<Vec<String>>,
}

/// A name AWS accepts (32 characters, alphanumerics and hyphens), stable per service.
pub fn lb_name(prefix: &str, ns: &str, name: &str) -> String {
    let h = format!("{ns}/{name}").bytes().fold(0xcbf2_9ce4_8422_2325u64, |a, b| (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    let clean = |s: &str, n: usize| s.chars().filter(char::is_ascii_alphanumeric).take(n).collect::<String>();
    format!("{prefix}-{}-{}-{:08x}", clean(ns, 8), clean(name, 8), h as u32)
}

/// Runs the mirror until the command channel closes.
pub(crate) async fn run(target: AwsTarget, store: Store, shared: Arc<AwsShared>, mut rx: mpsc::UnboundedReceiver<AwsCmd>) {
    let mirror = Mirror::new(&target);
    while let Some(cmd) = rx.recv().await {
        if let Err(e) = mirror.handle(&store, &shared, cmd).await {
            tracing::warn!(error = %e, "load balancer mirror call failed");
            shared.errors.lock().unwrap_or_else(|e| e.into_inner()).push(e.to_string());
        }
    }
}

struct Mirror {
    target: AwsTarget,
    v2: elbv2::Client,
    classic: elb::Client,
    network: tokio::sync::OnceCell<(String, Vec<String>)>,
}

impl Mirror {
    fn new(target: &AwsTarget) -> Self {
        let creds = aws_sdk_elasticloadbalancingv2::config::Credentials::new("twin", "twin", None, None, "ngm-twin");
        let v2 = elbv2::Config::builder()
            .behavior_version(elbv2::config::BehaviorVersion::latest())
            .region(elbv2::config::Region::new(target.region.clone()))
            .credentials_provider(creds.clone())
            .endpoint_url(target.endpoint_url.clone())
            .build();
        let classic = elb::Config::builder()
            .behavior_version(elb::config::BehaviorVersion::latest())
            .region(elb::config::Region::new(target.region.clone()))
            .credentials_provider(creds)
            .endpoint_url(target.endpoint_url.clone())
            .build();
        Self {
            target: target.clone(),
            v2: elbv2::Client::from_conf(v2),
            classic: elb::Client::from_conf(classic),
            network: tokio::sync::OnceCell::new(),
        }
    }

    async fn handle(&self, store: &Store, shared: &AwsShared, cmd: AwsCmd) -> Result<(), AwsError> {
        let known = |key: &Key| shared.lbs.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned();
        match cmd {
            AwsCmd::Ensure { key, settings, node_port, port } => {
                if known(&key).is_some() {
                    return Ok(());
                }
                let lb = match settings.kind {
                    LbKind::Clb => self.create_classic(&key, &settings, node_port, port).await?,
                    LbKind::Alb | LbKind::Nlb => self.create_v2(&key, &settings, node_port, port).await?,
                };
                let dns = lb.dns_name.clone();
                shared.lbs.lock().unwrap_or_else(|e| e.into_inner()).insert(key.clone(), lb);
                // The hostname is how ngm finds the load balancer through the ELB APIs.
                let _ = store.mutate(Resource::Service, &key.0, &key.1, |svc| {
                    svc["status"]["loadBalancer"] = json!({ "ingress": [{ "hostname": dns }] });
                    Ok(())
                });
                Ok(())
            }
            AwsCmd::Register { key, instances } | AwsCmd::Deregister { key, instances } if instances.is_empty() => {
                let _ = key;
                Ok(())
            }
            AwsCmd::Register { key, instances } => match known(&key) {
                Some(lb) => self.register(&lb, &instances, true).await,
                None => Ok(()),
            },
            AwsCmd::Deregister { key, instances } => match known(&key) {
                Some(lb) => self.register(&lb, &instances, false).await,
                None => Ok(()),
            },
        }
    }

    async fn register(&self, lb: &AwsLb, instances: &[String], add: bool) -> Result<(), AwsError> {
        if let Some(tg) = &lb.target_group_arn {
            let targets: Vec<TargetDescription> = instances.iter().map(|i| TargetDescription::builder().id(i).build()).collect();
            if add {
                self.v2.register_targets().target_group_arn(tg).set_targets(Some(targets)).send().await.map_err(|e| call_err("RegisterTargets")(&e))?;
            } else {
                self.v2.deregister_targets().target_group_arn(tg).set_targets(Some(targets)).send().await.map_err(|e| call_err("DeregisterTargets")(&e))?;
            }
            return Ok(());
        }
        let list: Vec<elb::types::Instance> = instances.iter().map(|i| elb::types::Instance::builder().instance_id(i).build()).collect();
        if add {
            self.classic.register_instances_with_load_balancer().load_balancer_name(&lb.name).set_instances(Some(list)).send().await.map_err(|e| call_err("RegisterInstancesWithLoadBalancer")(&e))?;
        } else {
            self.classic.deregister_instances_from_load_balancer().load_balancer_name(&lb.name).set_instances(Some(list)).send().await.map_err(|e| call_err("DeregisterInstancesFromLoadBalancer")(&e))?;
        }
        Ok(())
    }

    async fn create_classic(&self, key: &Key, s: &LbSettings, node_port: i32, port: i32) -> Result<AwsLb, AwsError> {
        let name = lb_name("a", &key.0, &key.1);
        let listener = elb::types::Listener::builder()
            .protocol("TCP")
            .load_balancer_port(port)
            .instance_protocol("TCP")
            .instance_port(node_port)
            .build()
            .map_err(|e| call_err("CreateLoadBalancer")(&e))?;
        let tag = elb::types::Tag::builder().key("kubernetes.io/service-name").value(format!("{}/{}", key.0, key.1)).build().map_err(|e| call_err("CreateLoadBalancer")(&e))?;
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
        let attrs = elb::types::LoadBalancerAttributes::builder().connection_settings(settings).connection_draining(draining).build();
        self.classic
            .modify_load_balancer_attributes()
            .load_balancer_name(&name)
            .load_balancer_attributes(attrs)
            .send()
            .await
            .map_err(|e| call_err("ModifyLoadBalancerAttributes")(&e))?;
        Ok(AwsLb { dns_name: out.dns_name().unwrap_or_default().to_string(), name, ..AwsLb::default() })
    }

    async fn network(&self) -> Result<&(String, Vec<String>), AwsError> {
        self.network.get_or_try_init(|| describe_subnets(&self.target)).await
    }

    async fn create_v2(&self, key: &Key, s: &LbSettings, node_port: i32, port: i32) -> Result<AwsLb, AwsError> {
        let (vpc, subnets) = self.network().await?.clone();
        let nlb = s.kind == LbKind::Nlb;
        let name = lb_name("k8s", &key.0, &key.1);
        let tag = elbv2::types::Tag::builder().key("kubernetes.io/service-name").value(format!("{}/{}", key.0, key.1)).build();
        let lb = self
            .v2
            .create_load_balancer()
            .name(&name)
            .r#type(if nlb { LoadBalancerTypeEnum::Network } else { LoadBalancerTypeEnum::Application })
            .set_subnets(Some(subnets))
            .tags(tag)
            .send()
            .await
            .map_err(|e| call_err("CreateLoadBalancer")(&e))?;
        let lb = lb.load_balancers().first().cloned().ok_or_else(|| call_err("CreateLoadBalancer")(&"no load balancer returned"))?;
        let arn = lb.load_balancer_arn().unwrap_or_default().to_string();
        let protocol = if nlb { ProtocolEnum::Tcp } else { ProtocolEnum::Http };
        let tg = self
            .v2
            .create_target_group()
            .name(lb_name("tg", &key.0, &key.1))
            .protocol(protocol.clone())
            .port(node_port)
            .vpc_id(vpc)
            .target_type(TargetTypeEnum::Instance)
            .health_check_interval_seconds(s.health_check_interval_seconds.round() as i32)
            .healthy_threshold_count(s.healthy_threshold as i32)
            .unhealthy_threshold_count(s.unhealthy_threshold as i32)
            .send()
            .await
            .map_err(|e| call_err("CreateTargetGroup")(&e))?;
        let tg_arn = tg.target_groups().first().and_then(|t| t.target_group_arn()).unwrap_or_default().to_string();
        self.v2
            .modify_target_group_attributes()
            .target_group_arn(&tg_arn)
            .attributes(TargetGroupAttribute::builder().key("deregistration_delay.timeout_seconds").value(s.deregistration_delay_seconds.to_string()).build())
            .send()
            .await
            .map_err(|e| call_err("ModifyTargetGroupAttributes")(&e))?;
        let listener = self
            .v2
            .create_listener()
            .load_balancer_arn(&arn)
            .protocol(protocol)
            .port(port)
            .default_actions(Action::builder().r#type(ActionTypeEnum::Forward).target_group_arn(&tg_arn).build())
            .send()
            .await
            .map_err(|e| call_err("CreateListener")(&e))?;
        let listener_arn = listener.listeners().first().and_then(|l| l.listener_arn()).unwrap_or_default().to_string();
        if nlb {
            // The NLB's TCP idle timeout is a listener attribute.
            self.v2
                .modify_listener_attributes()
                .listener_arn(&listener_arn)
                .attributes(ListenerAttribute::builder().key("tcp.idle_timeout.seconds").value(s.idle_timeout_seconds.to_string()).build())
                .send()
                .await
                .map_err(|e| call_err("ModifyListenerAttributes")(&e))?;
        } else {
            self.v2
                .modify_load_balancer_attributes()
                .load_balancer_arn(&arn)
                .attributes(LoadBalancerAttribute::builder().key("idle_timeout.timeout_seconds").value(s.idle_timeout_seconds.to_string()).build())
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
        })
    }
}

/// The default VPC and its subnets, from EC2 `DescribeSubnets` (an ALB or NLB needs subnets and
/// a target group a VPC). The twin does not link the EC2 SDK, so this is one plain Query call.
async fn describe_subnets(target: &AwsTarget) -> Result<(String, Vec<String>), AwsError> {
    let fail = call_err("DescribeSubnets");
    let url = url::Url::parse(&target.endpoint_url).map_err(|e| fail(&e))?;
    let host = url.host_str().unwrap_or("127.0.0.1").to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let body = "Action=DescribeSubnets&Version=2016-11-15";
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=twin/20260101/{}/ec2/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        target.region,
        body.len()
    );
    let mut conn = tokio::net::TcpStream::connect((host.as_str(), port)).await.map_err(|e| fail(&e))?;
    conn.write_all(request.as_bytes()).await.map_err(|e| fail(&e))?;
    let mut response = String::new();
    conn.read_to_string(&mut response).await.map_err(|e| fail(&e))?;
    // Each subnet item carries one subnetId and one vpcId, in that order.
    let ids = |tag: &str| -> Result<Vec<String>, AwsError> {
        let re = regex::Regex::new(&format!("<{tag}>([^<]+)</{tag}>")).map_err(|e| fail(&e))?;
        Ok(re.captures_iter(&response).map(|c| c[1].to_string()).collect())
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
