//! The scenario's faults, each installed where it acts:
//! - Kubernetes call faults go into the store's fault rules (the scenario part does this as it
//!   creates the workloads, [`crate::scenario::Scenario::install_kubernetes_faults`]);
//! - EKS call faults, failed node-group creation and never-ready nodes go into the EKS part;
//! - the other AWS services' call faults go to the moto wrapper (`POST /ngm/faults`);
//! - pod kills and namespace deletions are timers armed when the run begins.
//!
//! A fault the twin cannot inject is an error, not a silent no-op: a scenario that expects it
//! would otherwise pass without ever exercising it.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{TwinError, moto};
use crate::eks::{CallFault, CallRule, Eks};
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

/// The AWS services whose calls the moto wrapper can fail (named as the SigV4 scope names
/// them; ELB and ELBv2 share `elasticloadbalancing`).
pub const MOTO_SERVICES: [&str; 7] = [
    "autoscaling",
    "ec2",
    "elasticloadbalancing",
    "dynamodb",
    "states",
    "ssm",
    "sts",
];

/// Where an AWS call fault acts.
enum AwsTarget<'a> {
    /// The twin's EKS, by operation.
    Eks(&'a str),
    /// moto (tests/aws/moto_server.py `POST /ngm/faults`): service and operation.
    Moto(&'a str, &'a str),
}

/// `eks:CreateNodegroup` → the twin's EKS; `autoscaling:UpdateAutoScalingGroup` → moto.
fn aws_target(call: &str) -> Result<AwsTarget<'_>, TwinError> {
    match call.split_once(':') {
        Some(("eks", op)) if !op.is_empty() => Ok(AwsTarget::Eks(op)),
        Some((service, op)) if MOTO_SERVICES.contains(&service) && !op.is_empty() => {
            Ok(AwsTarget::Moto(service, op))
        }
        _ => Err(TwinError::UnsupportedFault(format!(
            "{call}: an AWS call is `<service>:<Operation>` with service eks or one of {}",
            MOTO_SERVICES.join(", ")
        ))),
    }
}

/// Checks every fault can be injected, before anything starts.
pub fn check(scenario: &Scenario) -> Result<(), TwinError> {
    for f in &scenario.faults {
        match f {
            Fault::Throttle {
                api: Api::Aws,
                call,
                ..
            } => {
                aws_target(call)?;
            }
            Fault::Fail {
                api: Api::Aws,
                call,
                code,
                ..
            } => {
                aws_target(call)?;
                let code = code.unwrap_or(500);
                if CallFault::from_code(code).is_none() {
                    return Err(TwinError::UnsupportedFault(format!(
                        "{call}: an AWS failure answers 429, 500 or 503 (code {code} asked)"
                    )));
                }
            }
            Fault::FaultRate { api, codes, .. } if api.aws() => {
                if let Some(c) = codes.iter().find(|c| CallFault::from_code(**c).is_none()) {
                    return Err(TwinError::UnsupportedFault(format!(
                        "faultRate on AWS: code {c} (AWS calls fail with 429, 500 or 503)"
                    )));
                }
            }
            Fault::FailNodegroupCreation { nodegroup } => {
                next_group(scenario, nodegroup)?;
            }
            Fault::NodeNeverReady { nodegroup, .. } => {
                next_group(scenario, nodegroup)?;
            }
            Fault::CapacityRebalance { nodegroup, .. } => {
                let managed = scenario.cluster.node_groups.iter().any(|g| {
                    &g.name == nodegroup && g.kind == crate::scenario::NodeGroupKind::Managed
                });
                if !managed {
                    return Err(TwinError::UnsupportedFault(format!(
                        "capacityRebalance {nodegroup}: not a managed node group of the scenario"
                    )));
                }
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

/// One `POST /ngm/faults` rule for the moto wrapper.
fn moto_rule(
    label: &str,
    service: &str,
    operation: &str,
    code: u16,
    times: u32,
    after: u32,
    function: &Option<String>,
) -> Value {
    json!({
        "label": label,
        "service": service,
        "operation": operation,
        "code": code,
        "times": times,
        "after": after,
        "function": function,
    })
}

/// Installs the AWS-side faults: EKS call faults, failed creations and never-ready nodes
/// into the EKS part, the other services' call faults into the moto wrapper (which fails only
/// ngm's calls, those carrying the `ngm-local` app id). Called once the initial node groups
/// are up, so they act on ngm's calls only.
pub async fn install_aws(scenario: &Scenario, eks: &Eks, moto_url: &str) -> Result<(), TwinError> {
    let mut moto_rules = Vec::new();
    for (i, f) in scenario.faults.iter().enumerate() {
        let label = format!("faults[{i}] {}", f.kind());
        match f {
            Fault::Throttle {
                api: Api::Aws,
                call,
                times,
                after,
                function,
            }
            | Fault::Fail {
                api: Api::Aws,
                call,
                times,
                after,
                function,
                ..
            } => {
                let code = match f {
                    Fault::Fail { code, .. } => code.unwrap_or(500),
                    _ => 429,
                };
                match aws_target(call)? {
                    AwsTarget::Eks(op) => {
                        let fault = CallFault::from_code(code).ok_or_else(|| {
                            TwinError::UnsupportedFault(format!("{call}: code {code}"))
                        })?;
                        eks.faults().add_rule(
                            CallRule::new(op, fault, *times)
                                .after(*after)
                                .function(function.as_deref())
                                .labelled(label),
                        );
                    }
                    AwsTarget::Moto(service, op) => moto_rules.push(moto_rule(
                        &label, service, op, code, *times, *after, function,
                    )),
                }
            }
            Fault::FaultRate {
                rate,
                seed,
                api,
                codes,
                function,
            } if api.aws() => {
                let faults = codes
                    .iter()
                    .filter_map(|c| CallFault::from_code(*c))
                    .collect();
                eks.faults().add_rule(
                    CallRule::rate(*rate, *seed, faults)
                        .function(function.as_deref())
                        .labelled(label.clone()),
                );
                moto_rules.push(json!({
                    "label": label,
                    "service": "*",
                    "operation": "*",
                    "rate": rate,
                    "seed": seed,
                    "codes": codes,
                    "function": function,
                }));
            }
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
    for rule in moto_rules {
        let (code, body) = moto::request(moto_url, "POST", "/ngm/faults", Some(&rule))
            .await
            .map_err(|e| TwinError::Aws(format!("installing a moto fault rule: {e}")))?;
        if code != 200 {
            return Err(TwinError::UnsupportedFault(format!(
                "moto refused the fault rule {rule}: {code} {body}"
            )));
        }
    }
    Ok(())
}

/// Arms the namespace deletions, timed from now (the start of the migration).
pub fn arm_namespace_deletions(scenario: &Scenario, store: &Store) -> Vec<JoinHandle<()>> {
    scenario
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::DeleteNamespace { namespace, at } => {
                let ns = namespace.clone();
                let store = store.clone();
                let at = Duration::from_secs_f64(at.max(0.0));
                let sup = store.supervisor().clone();
                Some(sup.spawn(format!("deleteNamespace {ns}"), async move {
                    store.clock().sleep(at).await;
                    store.faults().namespace_deleted_by_fault(&ns);
                    if let Err(e) = store.delete(
                        Resource::Namespace,
                        "",
                        &ns,
                        &crate::store::DeleteOptions::default(),
                    ) {
                        tracing::warn!(namespace = %ns, error = %e, "namespace to delete");
                    }
                }))
            }
            _ => None,
        })
        .collect()
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
                let sup = store.supervisor().clone();
                Some(sup.spawn(format!("killPod {ns}/{name}"), async move {
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

/// The broken image a `badRollout` deploys in place of `image`: its tag becomes `broken`.
fn broken_image(image: &str) -> String {
    let name = match image.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => name,
        _ => image,
    };
    format!("{name}:broken")
}

/// Arms the bad rollouts: at their time (or at the Deployment's first scale-back), every
/// container of the Deployment's pod template gets a broken image whose pods crash at every
/// start (a `CrashLoopRule` on that image), and the Deployment controller rolls it out as
/// upstream does: within maxSurge/maxUnavailable, so the rollout stalls with the new
/// ReplicaSet's pods never Ready (kubernetes `pkg/controller/deployment/rolling.go`; the
/// Deployments page's "Failed Deployment").
pub fn arm_bad_rollouts(scenario: &Scenario, store: &Store) -> Vec<JoinHandle<()>> {
    scenario
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::BadRollout {
                workload,
                at,
                after_scale_back,
            } => {
                let (ns, name) = workload.split_once('/')?;
                let (ns, name) = (ns.to_string(), name.to_string());
                let w = scenario
                    .workloads
                    .iter()
                    .find(|w| w.namespace == ns && w.name == name)?;
                let (labels, initial) = (w.pod_labels(), i64::from(w.replicas));
                let (store, workload) = (store.clone(), workload.clone());
                let (at, after_scale_back) =
                    (Duration::from_secs_f64(at.max(0.0)), *after_scale_back);
                let sup = store.supervisor().clone();
                Some(sup.spawn(format!("badRollout {workload}"), async move {
                    let replicas = |store: &Store| {
                        store
                            .try_get(Resource::Deployment, &ns, &name)
                            .and_then(|d| d.pointer("/spec/replicas").and_then(Value::as_i64))
                    };
                    store.clock().sleep(at).await;
                    if after_scale_back {
                        let mut highest = initial;
                        loop {
                            let Some(now) = replicas(&store) else { return };
                            highest = highest.max(now);
                            if highest > initial && now < highest {
                                break;
                            }
                            store.clock().sleep(Duration::from_secs(1)).await;
                        }
                    }
                    // The crash rule is in place before the template changes, so the first
                    // pod of the new ReplicaSet already crashes.
                    let first = store
                        .try_get(Resource::Deployment, &ns, &name)
                        .and_then(|d| {
                            d.pointer("/spec/template/spec/containers/0/image")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        })
                        .unwrap_or_default();
                    store.crash_loops().add(crate::store::CrashLoopRule {
                        namespace: ns.clone(),
                        labels,
                        replicas: usize::MAX,
                        stateful_set: None,
                        image: Some(broken_image(&first)),
                    });
                    store.faults().template_changed_by_fault(&workload);
                    let changed = store.mutate(Resource::Deployment, &ns, &name, |d| {
                        let containers = d
                            .pointer_mut("/spec/template/spec/containers")
                            .and_then(Value::as_array_mut);
                        for c in containers.into_iter().flatten() {
                            c["image"] =
                                json!(broken_image(c["image"].as_str().unwrap_or_default()));
                        }
                        Ok(())
                    });
                    if let Err(e) = changed {
                        tracing::warn!(%workload, error = %e, "Deployment to roll out badly");
                    }
                }))
            }
            _ => None,
        })
        .collect()
}

/// Arms the capacity rebalances: each waits until `afterEvictions` evictions were allowed in
/// the run, then runs [`Eks::capacity_rebalance`] on its group.
pub fn arm_rebalances(
    scenario: &Scenario,
    store: &Store,
    eks: Option<&crate::eks::Eks>,
) -> Vec<JoinHandle<()>> {
    let Some(eks) = eks else {
        return Vec::new();
    };
    scenario
        .faults
        .iter()
        .filter_map(|f| match f {
            Fault::CapacityRebalance {
                nodegroup,
                after_evictions,
            } => {
                let (store, eks) = (store.clone(), eks.clone());
                let (nodegroup, after) = (nodegroup.clone(), *after_evictions as usize);
                let sup = store.supervisor().clone();
                Some(sup.spawn(format!("capacityRebalance {nodegroup}"), async move {
                    let start = store.evictions().len();
                    loop {
                        let allowed = store.evictions()[start..]
                            .iter()
                            .filter(|e| e.code == 201)
                            .count();
                        if allowed >= after {
                            break;
                        }
                        store.clock().sleep(Duration::from_secs(1)).await;
                    }
                    match eks.capacity_rebalance(&nodegroup).await {
                        Ok(Some((old, new))) => tracing::info!(%nodegroup, recommended = %old, replacement = %new, "capacity rebalance done"),
                        Ok(None) => tracing::warn!(%nodegroup, "capacity rebalance found no node or no replacement"),
                        Err(e) => tracing::warn!(%nodegroup, error = %e, "capacity rebalance"),
                    }
                }))
            }
            _ => None,
        })
        .collect()
}
