//! The load balancers' mirror in the AWS emulator (moto), so ngm reads them through the real
//! ELB APIs: one ALB/NLB (with a target group and a listener) or CLB per Service, with the
//! scenario's idle timeout and deregistration delay as attributes, its registered instances
//! kept in step with the twin's target set, and the Service's
//! `status.loadBalancer.ingress[0].hostname` set to its DNS name.
//!
//! Moto deregisters at once (no draining state) and reports every target healthy; the twin's
//! own target states are the truth for traffic.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use aws_sdk_elasticloadbalancing as elb;
use aws_sdk_elasticloadbalancingv2 as elbv2;
use elbv2::types::TargetDescription;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::settings::LbSettings;
use super::targets::TargetState;
use crate::scenario::{LbKind, LbThrough};
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
    /// IP targets: the port they are registered with (the pods').
    pub target_port: Option<i32>,
}

/// Why an emulator call failed.
#[derive(Debug, thiserror::Error)]
pub enum AwsError {
    #[error("{call} failed: {detail}")]
    Call { call: &'static str, detail: String },
}

fn call_err(call: &'static str) -> impl Fn(&dyn std::fmt::Display) -> AwsError {
    move |e| AwsError::Call {
        call,
        detail: e.to_string(),
    }
}

pub(crate) type Key = (String, String);

/// What the traffic loop asks of the mirror, processed in order.
#[derive(Debug)]
pub(crate) enum AwsCmd {
    Ensure {
        key: Key,
        settings: LbSettings,
        node_port: i32,
        port: i32,
        /// Auto Scaling groups to attach it to once created, and whether as a traffic source
        /// (AttachTrafficSources) rather than through the legacy calls.
        attach: Vec<String>,
        as_traffic_source: bool,
        /// What asks for it: where its DNS name is written, and whether a
        /// TargetGroupBinding names its target group.
        through: LbThrough,
    },
    Register {
        key: Key,
        instances: Vec<String>,
    },
    Deregister {
        key: Key,
        instances: Vec<String>,
    },
    /// The target states the emulator must answer from now on, by instance id.
    Health {
        key: Key,
        node_port: i32,
        states: BTreeMap<String, TargetState>,
    },
}

/// What the mirror has created, and its errors.
#[derive(Debug, Default)]
pub(crate) struct AwsShared {
    pub lbs: Mutex<HashMap<Key, AwsLb>>,
    pub errors: Mutex<Vec<String>>,
    /// The InService instances of the Auto Scaling groups each load balancer is attached to.
    pub attached: Mutex<HashMap<Key, BTreeSet<String>>>,
    /// Registrations and deregistrations others made in the emulator, not applied yet.
    pub target_calls: Mutex<Vec<TargetCall>>,
}

/// A RegisterTargets or DeregisterTargets call someone else (ngm) made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TargetCall {
    pub deregister: bool,
    pub target_group_arn: String,
    /// The target ids (IPs for IP targets).
    pub ids: Vec<String>,
}

/// Follows ngm's RegisterTargets and DeregisterTargets calls through the wrapper's log
/// (tests/aws/moto_server.py `GET /ngm/target-calls`), so IP target groups drain what ngm
/// deregistered.
pub(crate) async fn watch_target_calls(target: AwsTarget, shared: Arc<AwsShared>) {
    let mut after = 0u64;
    loop {
        let path = format!("/ngm/target-calls?after={after}");
        if let Ok((200, text)) =
            crate::twin::moto::request(&target.endpoint_url, "GET", &path, None).await
            && let Ok(serde_json::Value::Array(calls)) = serde_json::from_str(&text)
        {
            let mut out = shared
                .target_calls
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            for c in calls {
                after = after.max(c["seq"].as_u64().unwrap_or(0));
                out.push(TargetCall {
                    deregister: c["action"] == "DeregisterTargets",
                    target_group_arn: c["targetGroupArn"].as_str().unwrap_or_default().to_string(),
                    ids: c["targets"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(|t| t["id"].as_str().map(str::to_string))
                        .collect(),
                });
            }
        }
        tokio::time::sleep(TARGET_CALL_POLL).await;
    }
}

/// How often ngm's target registrations are read from the wrapper, in wall time: at 120×, 2.4 s
/// of simulated time, well under any load balancer's propagation.
const TARGET_CALL_POLL: std::time::Duration = std::time::Duration::from_millis(20);

impl AwsShared {
    pub fn attached(&self, key: &Key) -> BTreeSet<String> {
        self.attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_default()
    }
}

/// How often the attachments are read from moto, in wall time (whoever attaches or detaches
/// a load balancer, ngm included, does it in moto).
const ATTACHMENT_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// Follows which load balancers each Auto Scaling group has attached (DescribeAutoScalingGroups'
/// `LoadBalancerNames`, `TargetGroupARNs` and `TrafficSources`) and their InService instances: an attached load
/// balancer registers the group's instances once InService and deregisters them on detach or
/// termination (ASG guide, `autoscaling-load-balancer.md`, `ec2-auto-scaling-lifecycle.md`).
pub(crate) async fn watch_attachments(target: AwsTarget, shared: Arc<AwsShared>) {
    let asg = crate::twin::groups::asg_client(&target.endpoint_url, &target.region);
    loop {
        // The load balancers known before the listing: each was attached at creation, so the
        // listing cannot predate its attachment.
        let lbs = shared.lbs.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let mut by_lb: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut pages = asg.describe_auto_scaling_groups().into_paginator().send();
        let mut ok = true;
        while let Some(page) = pages.next().await {
            let Ok(page) = page else {
                ok = false;
                break;
            };
            for g in page.auto_scaling_groups() {
                let ids: BTreeSet<String> = g
                    .instances()
                    .iter()
                    .filter(|i| i.lifecycle_state().map(|s| s.as_str()) == Some("InService"))
                    .filter_map(|i| i.instance_id().map(str::to_string))
                    .collect();
                // Every traffic source, however attached (the legacy lists do not show what
                // AttachTrafficSources attached).
                let sources = g.traffic_sources().iter().filter_map(|t| t.identifier());
                let legacy = g.load_balancer_names().iter().chain(g.target_group_arns());
                let all: BTreeSet<&str> = legacy.map(String::as_str).chain(sources).collect();
                for lb in all {
                    by_lb
                        .entry(lb.to_string())
                        .or_default()
                        .extend(ids.iter().cloned());
                }
            }
        }
        if ok {
            let mut attached = shared.attached.lock().unwrap_or_else(|e| e.into_inner());
            for (key, lb) in lbs {
                let id = lb.target_group_arn.clone().unwrap_or(lb.name);
                attached.insert(key, by_lb.get(&id).cloned().unwrap_or_default());
            }
        }
        tokio::time::sleep(ATTACHMENT_POLL).await;
    }
}

/// A name AWS accepts (32 characters, alphanumerics and hyphens), stable per service.
pub fn lb_name(prefix: &str, ns: &str, name: &str) -> String {
    let (ns8, name8, h) = name_parts(ns, name);
    format!("{prefix}-{ns8}-{name8}-{:08x}", h as u32)
}

/// What AWS-side names of a Service are made of: its namespace and name, alphanumerics only, 8
/// characters each, and a stable hash of both.
pub(crate) fn name_parts(ns: &str, name: &str) -> (String, String, u64) {
    let h = format!("{ns}/{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |a, b| {
            (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let clean = |s: &str| {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(8)
            .collect::<String>()
    };
    (clean(ns), clean(name), h)
}

/// A target as DescribeTargetHealth reports it, with AWS's reason codes (ALB guide,
/// `target-group-health-checks.md`, "Reason codes").
fn v2_health(id: &str, port: i32, st: TargetState) -> serde_json::Value {
    let (state, reason, description) = match st {
        TargetState::Initial => (
            "initial",
            Some("Elb.InitialHealthChecking"),
            Some("Initial health checks in progress"),
        ),
        TargetState::Healthy => ("healthy", None, None),
        TargetState::Unhealthy => (
            "unhealthy",
            Some("Target.FailedHealthChecks"),
            Some("Health checks failed"),
        ),
        TargetState::Draining => (
            "draining",
            Some("Target.DeregistrationInProgress"),
            Some("Target deregistration is in progress"),
        ),
    };
    let mut v = json!({ "id": id, "port": port, "state": state });
    if let Some(r) = reason {
        v["reason"] = json!(r);
    }
    if let Some(d) = description {
        v["description"] = json!(d);
    }
    v
}

/// An instance as DescribeInstanceHealth reports it: a draining instance is still `InService`
/// with "Instance deregistration currently in progress" (CLB guide, `config-conn-drain.md`).
fn classic_health(id: &str, st: TargetState) -> serde_json::Value {
    let (state, code, description) = match st {
        TargetState::Healthy => ("InService", "N/A", "N/A"),
        TargetState::Draining => (
            "InService",
            "N/A",
            "Instance deregistration currently in progress.",
        ),
        TargetState::Initial | TargetState::Unhealthy => (
            "OutOfService",
            "Instance",
            "Instance has failed at least the UnhealthyThreshold number of health checks consecutively.",
        ),
    };
    json!({ "id": id, "state": state, "reasonCode": code, "description": description })
}

/// Runs the mirror until the command channel closes.
mod create;
pub use create::default_subnets_by_zone;

pub(crate) async fn run(
    target: AwsTarget,
    store: Store,
    shared: Arc<AwsShared>,
    mut rx: mpsc::UnboundedReceiver<AwsCmd>,
) {
    let mirror = Mirror::new(&target);
    while let Some(cmd) = rx.recv().await {
        if let Err(e) = mirror.handle(&store, &shared, cmd).await {
            tracing::warn!(error = %e, "load balancer mirror call failed");
            shared
                .errors
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(e.to_string());
        }
    }
}

struct Mirror {
    target: AwsTarget,
    v2: elbv2::Client,
    classic: elb::Client,
    asg: aws_sdk_autoscaling::Client,
    network: tokio::sync::OnceCell<(String, Vec<String>)>,
}

impl Mirror {
    fn new(target: &AwsTarget) -> Self {
        let creds = aws_sdk_elasticloadbalancingv2::config::Credentials::new(
            "twin", "twin", None, None, "ngm-twin",
        );
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
            asg: crate::twin::groups::asg_client(&target.endpoint_url, &target.region),
            network: tokio::sync::OnceCell::new(),
        }
    }

    async fn handle(&self, store: &Store, shared: &AwsShared, cmd: AwsCmd) -> Result<(), AwsError> {
        let known = |key: &Key| {
            shared
                .lbs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(key)
                .cloned()
        };
        match cmd {
            AwsCmd::Ensure {
                key,
                settings,
                node_port,
                port,
                attach,
                as_traffic_source,
                through,
            } => {
                if known(&key).is_some() {
                    return Ok(());
                }
                let lb = match settings.kind {
                    LbKind::Clb => {
                        self.create_classic(&key, &settings, node_port, port)
                            .await?
                    }
                    LbKind::Alb | LbKind::Nlb => {
                        self.create_v2(&key, &settings, node_port, port).await?
                    }
                };
                let dns = lb.dns_name.clone();
                for group in &attach {
                    self.attach(&lb, group, as_traffic_source).await?;
                }
                shared
                    .lbs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), lb);
                if settings.ip_targets
                    && let Some(tg) = shared
                        .lbs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get(&key)
                        .and_then(|l| l.target_group_arn.clone())
                {
                    let binding = super::ip::binding_object(&key.0, &key.1, port, &tg);
                    let _ = store.create(Resource::TargetGroupBinding, &key.0, binding);
                }
                // The hostname is how ngm finds the load balancer through the ELB APIs.
                let host = json!({ "ingress": [{ "hostname": dns }] });
                let holder = match through {
                    LbThrough::Service => Some(Resource::Service),
                    LbThrough::Ingress => Some(Resource::Ingress),
                    LbThrough::TargetGroupBinding => None,
                };
                if let Some(resource) = holder {
                    let _ = store.mutate(resource, &key.0, &key.1, |obj| {
                        obj["status"]["loadBalancer"] = host.clone();
                        Ok(())
                    });
                }
                Ok(())
            }
            AwsCmd::Register { key, instances } | AwsCmd::Deregister { key, instances }
                if instances.is_empty() =>
            {
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
            AwsCmd::Health {
                key,
                node_port,
                states,
            } => match known(&key) {
                Some(lb) => self.report_health(&lb, node_port, &states).await,
                None => Ok(()),
            },
        }
    }

    /// Gives the wrapper (tests/aws/moto_server.py `POST /ngm/target-health`) the states
    /// DescribeTargetHealth and DescribeInstanceHealth answer: moto itself has no draining and
    /// reports every target healthy.
    async fn report_health(
        &self,
        lb: &AwsLb,
        node_port: i32,
        states: &BTreeMap<String, TargetState>,
    ) -> Result<(), AwsError> {
        let body = match &lb.target_group_arn {
            Some(tg) => json!({
                "targetGroupArn": tg,
                "targets": states.iter().map(|(id, st)| v2_health(id, node_port, *st)).collect::<Vec<_>>(),
            }),
            None => json!({
                "loadBalancerName": lb.name,
                "instances": states.iter().map(|(id, st)| classic_health(id, *st)).collect::<Vec<_>>(),
            }),
        };
        match crate::twin::moto::request(
            &self.target.endpoint_url,
            "POST",
            "/ngm/target-health",
            Some(&body),
        )
        .await
        {
            Ok((200, _)) => Ok(()),
            Ok((code, text)) => Err(call_err("POST /ngm/target-health")(&format!(
                "{code}: {text}"
            ))),
            Err(e) => Err(call_err("POST /ngm/target-health")(&e)),
        }
    }

    async fn register(&self, lb: &AwsLb, instances: &[String], add: bool) -> Result<(), AwsError> {
        if let Some(tg) = &lb.target_group_arn {
            let targets: Vec<TargetDescription> = instances
                .iter()
                .map(|i| {
                    TargetDescription::builder()
                        .id(i)
                        .set_port(lb.target_port)
                        .build()
                })
                .collect();
            if add {
                self.v2
                    .register_targets()
                    .target_group_arn(tg)
                    .set_targets(Some(targets))
                    .send()
                    .await
                    .map_err(|e| call_err("RegisterTargets")(&e))?;
            } else {
                self.v2
                    .deregister_targets()
                    .target_group_arn(tg)
                    .set_targets(Some(targets))
                    .send()
                    .await
                    .map_err(|e| call_err("DeregisterTargets")(&e))?;
            }
            return Ok(());
        }
        let list: Vec<elb::types::Instance> = instances
            .iter()
            .map(|i| elb::types::Instance::builder().instance_id(i).build())
            .collect();
        if add {
            self.classic
                .register_instances_with_load_balancer()
                .load_balancer_name(&lb.name)
                .set_instances(Some(list))
                .send()
                .await
                .map_err(|e| call_err("RegisterInstancesWithLoadBalancer")(&e))?;
        } else {
            self.classic
                .deregister_instances_from_load_balancer()
                .load_balancer_name(&lb.name)
                .set_instances(Some(list))
                .send()
                .await
                .map_err(|e| call_err("DeregisterInstancesFromLoadBalancer")(&e))?;
        }
        Ok(())
    }

    /// Attaches the load balancer (its target group, for an ALB or NLB) to an Auto Scaling
    /// group, as the scenario's setup does before the migration.
    async fn attach(&self, lb: &AwsLb, group: &str, as_source: bool) -> Result<(), AwsError> {
        if as_source {
            let (kind, id) = match &lb.target_group_arn {
                Some(tg) => ("elbv2", tg.as_str()),
                None => ("elb", lb.name.as_str()),
            };
            let source = aws_sdk_autoscaling::types::TrafficSourceIdentifier::builder()
                .identifier(id)
                .r#type(kind)
                .build();
            self.asg
                .attach_traffic_sources()
                .auto_scaling_group_name(group)
                .traffic_sources(source)
                .send()
                .await
                .map_err(|e| call_err("AttachTrafficSources")(&e))?;
            return Ok(());
        }
        match &lb.target_group_arn {
            Some(tg) => {
                self.asg
                    .attach_load_balancer_target_groups()
                    .auto_scaling_group_name(group)
                    .target_group_arns(tg)
                    .send()
                    .await
                    .map_err(|e| call_err("AttachLoadBalancerTargetGroups")(&e))?;
            }
            None => {
                self.asg
                    .attach_load_balancers()
                    .auto_scaling_group_name(group)
                    .load_balancer_names(&lb.name)
                    .send()
                    .await
                    .map_err(|e| call_err("AttachLoadBalancers")(&e))?;
            }
        }
        Ok(())
    }

    async fn network(&self) -> Result<&(String, Vec<String>), AwsError> {
        self.network
            .get_or_try_init(|| create::describe_subnets(&self.target))
            .await
    }
}
