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
use elbv2::types::TargetDescription;
use serde::Serialize;
use serde_json::json;
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
    },
    Register {
        key: Key,
        instances: Vec<String>,
    },
    Deregister {
        key: Key,
        instances: Vec<String>,
    },
}

/// What the mirror has created, and its errors.
#[derive(Debug, Default)]
pub(crate) struct AwsShared {
    pub lbs: Mutex<HashMap<Key, AwsLb>>,
    pub errors: Mutex<Vec<String>>,
}

/// A name AWS accepts (32 characters, alphanumerics and hyphens), stable per service.
pub fn lb_name(prefix: &str, ns: &str, name: &str) -> String {
    let h = format!("{ns}/{name}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |a, b| {
            (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
    let clean = |s: &str, n: usize| {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .take(n)
            .collect::<String>()
    };
    format!(
        "{prefix}-{}-{}-{:08x}",
        clean(ns, 8),
        clean(name, 8),
        h as u32
    )
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
                shared
                    .lbs
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key.clone(), lb);
                // The hostname is how ngm finds the load balancer through the ELB APIs.
                let _ = store.mutate(Resource::Service, &key.0, &key.1, |svc| {
                    svc["status"]["loadBalancer"] = json!({ "ingress": [{ "hostname": dns }] });
                    Ok(())
                });
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
        }
    }

    async fn register(&self, lb: &AwsLb, instances: &[String], add: bool) -> Result<(), AwsError> {
        if let Some(tg) = &lb.target_group_arn {
            let targets: Vec<TargetDescription> = instances
                .iter()
                .map(|i| TargetDescription::builder().id(i).build())
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

    async fn network(&self) -> Result<&(String, Vec<String>), AwsError> {
        self.network
            .get_or_try_init(|| create::describe_subnets(&self.target))
            .await
    }
}
