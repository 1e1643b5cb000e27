//! The scenario's faults, each installed where it acts:
//! - Kubernetes call faults go into the store's fault rules (the scenario part does this as it
//!   creates the workloads, [`crate::scenario::Scenario::install_kubernetes_faults`]);
//! - AWS call faults, failed node-group creation and never-ready nodes go into the EKS part;
//! - pod kills are timers armed when the run begins.
//!
//! A fault the twin cannot inject is an error, not a silent no-op: a scenario that expects it
//! would otherwise pass without ever exercising it.

use std::time::Duration;

use serde_json::Value;
use tokio::task::JoinHandle;

use super::TwinError;
use crate::eks::{CallFault, Eks};
use crate::scenario::{Api, Fault, Scenario};
use crate::store::{Resource, Store};

/// The node group a fault without `nodegroup` means: "the next one created", which for a
/// migration scenario is the request's target group (`migration.target.name`).
fn next_group(scenario: &Scenario, named: &Option<String>) -> Result<String, TwinError> {
    if let Some(name) = named {
        return Ok(name.clone());
    }
    scenario
        .migration
        .as_ref()
        .and_then(|m| m.pointer("/target/name"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| {
            TwinError::UnsupportedFault(
                "a node-group fault without `nodegroup` needs migration.target.name".into(),
            )
        })
}

/// Checks every fault can be injected, before anything starts.
pub fn check(scenario: &Scenario) -> Result<(), TwinError> {
    for f in &scenario.faults {
        match f {
            Fault::Throttle {
                api: Api::Aws,
                call,
                after,
                ..
            }
            | Fault::Fail {
                api: Api::Aws,
                call,
                after,
                ..
            } => {
                aws_operation(call)?;
                if *after > 0 {
                    return Err(TwinError::UnsupportedFault(format!(
                        "{call}: `after` is supported for Kubernetes calls only"
                    )));
                }
                if let Fault::Fail {
                    code: Some(code), ..
                } = f
                    && *code != 500
                {
                    return Err(TwinError::UnsupportedFault(format!(
                        "{call}: an AWS failure answers 500 (code {code} asked)"
                    )));
                }
            }
            Fault::FailNodegroupCreation { nodegroup } => {
                next_group(scenario, nodegroup)?;
            }
            Fault::NodeNeverReady { nodegroup, .. } => {
                next_group(scenario, nodegroup)?;
            }
            Fault::KillPod { pod, .. } => {
                pod.split_once('/').ok_or_else(|| {
                    TwinError::UnsupportedFault(format!("killPod {pod}: expected namespace/name"))
                })?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// `eks:CreateNodegroup` → `CreateNodegroup`; the other AWS services are moto's, which
/// cannot be faulted.
fn aws_operation(call: &str) -> Result<&str, TwinError> {
    match call.split_once(':') {
        Some(("eks", op)) if !op.is_empty() => Ok(op),
        _ => Err(TwinError::UnsupportedFault(format!(
            "{call}: only `eks:<Operation>` calls can be faulted (the rest is moto)"
        ))),
    }
}

/// Installs the AWS-side faults into the EKS part. Called once the initial node groups are
/// up, so they act on ngm's calls only.
pub fn install_aws(scenario: &Scenario, eks: &Eks) -> Result<(), TwinError> {
    for f in &scenario.faults {
        match f {
            Fault::Throttle {
                api: Api::Aws,
                call,
                times,
                ..
            } => eks
                .faults()
                .fail_call(aws_operation(call)?, CallFault::Throttle, *times),
            Fault::Fail {
                api: Api::Aws,
                call,
                times,
                ..
            } => eks
                .faults()
                .fail_call(aws_operation(call)?, CallFault::ServerError, *times),
            Fault::FailNodegroupCreation { nodegroup } => {
                eks.faults().fail_create(&next_group(scenario, nodegroup)?);
            }
            // The EKS part holds every node of the group back, whatever `count` says.
            Fault::NodeNeverReady { nodegroup, .. } => {
                eks.faults().never_ready(&next_group(scenario, nodegroup)?);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Arms the pod kills, timed from now (the start of the migration). A killed pod vanishes at
/// once, as a crashed container's pod does for its in-flight requests; its controller
/// replaces it.
pub fn arm_kills(scenario: &Scenario, store: &Store) -> Vec<JoinHandle<()>> {
    scenario
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::KillPod { pod, at_seconds } => {
                let (ns, name) = pod.split_once('/')?;
                let (ns, name) = (ns.to_string(), name.to_string());
                let store = store.clone();
                let at = Duration::from_secs_f64(at_seconds.max(0.0));
                Some(tokio::spawn(async move {
                    store.clock().sleep(at).await;
                    if store.remove_now(Resource::Pod, &ns, &name).is_none() {
                        tracing::warn!(namespace = %ns, pod = %name, "pod to kill was not found");
                    }
                }))
            }
            _ => None,
        })
        .collect()
}
