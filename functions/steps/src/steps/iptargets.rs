//! IP targets (issue #10): the AWS Load Balancer Controller registers the pods themselves in
//! the target groups of its Ingress ALBs, `nlb-target-type: ip` NLBs and TargetGroupBindings.
//! The exclusion label does not take a pod out, so ngm deregisters the old pods' targets itself
//! at the cut, before any of them stops serving, and keeps them out until they are gone: the
//! controller registers a ready endpoint again at its next reconcile, and a target registered
//! again is `initial` (no traffic) for at least two health checks, which every round of
//! CutTraffic, Retire and Drain outpaces.

use std::collections::BTreeSet;

use ngm_core::model::{LoadBalancerInfo, PodView, ServiceView, TargetHealthState};
use ngm_core::plan::Action;
use ngm_core::plan::lbdrain::{GATE_POLL_SECS, LbTargets, ip_propagation_secs};

use crate::error::StepError;
use crate::world::World;

/// One IP target group in front of old pods.
#[derive(Debug, Clone)]
pub(crate) struct IpSet {
    /// Its targets, with the new pods expected healthy.
    pub targets: LbTargets,
    pub arn: String,
    /// The old pods' IPs.
    pub old: BTreeSet<String>,
    /// Its load balancer, attributes read (for the drain's bound).
    pub lb: Option<LoadBalancerInfo>,
}

impl IpSet {
    /// The old pods' targets still registered (healthy, initial or unhealthy), with their
    /// ports: what to deregister.
    pub fn old_registered(&self) -> Vec<(String, Option<i32>)> {
        self.targets
            .targets
            .iter()
            .filter(|t| self.old.contains(&t.target_id))
            .filter(|t| {
                matches!(
                    t.state,
                    TargetHealthState::Healthy
                        | TargetHealthState::Initial
                        | TargetHealthState::Unhealthy
                )
            })
            .map(|t| (t.target_id.clone(), t.port))
            .collect()
    }
}

/// The IP target groups (through their TargetGroupBindings) whose Service selects one of the
/// `old` pods, read now: each with its other ready pods expected as healthy targets.
pub(crate) async fn ip_sets(
    world: &World,
    services: &[ServiceView],
    old: &[PodView],
    read_lb: bool,
) -> Result<Vec<IpSet>, StepError> {
    let leaving: BTreeSet<&str> = old.iter().map(|p| p.uid.as_str()).collect();
    let mut out = Vec::new();
    for b in world.kube.list_target_group_bindings().await? {
        if !b.ip() {
            continue;
        }
        let Some(svc) = services
            .iter()
            .find(|s| s.namespace == b.namespace && s.name == b.service)
        else {
            continue;
        };
        let old_ips: BTreeSet<String> = old
            .iter()
            .filter(|p| svc.selects(p))
            .filter_map(|p| p.pod_ip.clone())
            .collect();
        if old_ips.is_empty() {
            continue;
        }
        let pods = super::service_pods(world, svc).await?;
        let expected: BTreeSet<String> = pods
            .iter()
            .filter(|p| p.ready && !p.terminating && !leaving.contains(p.uid.as_str()))
            .filter_map(|p| p.pod_ip.clone())
            .collect();
        out.push(IpSet {
            targets: LbTargets {
                name: format!("{}/{} (IP targets)", b.namespace, b.name),
                targets: world.elb.target_health(&b.target_group_arn).await?,
                expected,
            },
            lb: if read_lb {
                world.elb.by_target_group(&b.target_group_arn).await?
            } else {
                None
            },
            arn: b.target_group_arn,
            old: old_ips,
        });
    }
    Ok(out)
}

/// Deregisters the old pods' targets still registered, in each set with another ready pod
/// (with none, a single replica or every replica leaving, taking them out would leave the load
/// balancer nothing: they go as their own preStop allows). What it deregistered, by set.
pub(crate) async fn deregister_old<'s>(
    world: &World,
    sets: &'s [IpSet],
) -> Result<Vec<(&'s IpSet, Vec<(String, Option<i32>)>)>, StepError> {
    let mut out = Vec::new();
    for set in sets {
        let targets = set.old_registered();
        if targets.is_empty() || set.targets.expected.is_empty() {
            continue;
        }
        world.elb.set_targets(&set.arn, &targets, true).await?;
        out.push((set, targets));
    }
    Ok(out)
}

/// From the cut on, in every round of Retire and Drain, before any old pod is removed: the
/// old pods the controller registered again go out again. `Some((seconds, reason))` when one
/// had to: no old pod may stop before the load balancer has stopped routing to it, a poll for
/// a target that got no traffic yet (initial), else the load balancer's propagation time.
pub(crate) async fn keep_old_pods_out(
    world: &World,
    old_pods: &[PodView],
) -> Result<Option<(u64, String)>, StepError> {
    Ok(take_out(world, old_pods)
        .await?
        .map(|(secs, reason, _)| (secs, reason)))
}

/// Deregisters `pods`' targets still registered in IP target groups: how long until the load
/// balancers stop routing to them, why, and their IPs; `None` when none was registered.
async fn take_out(
    world: &World,
    pods: &[PodView],
) -> Result<Option<(u64, String, BTreeSet<String>)>, StepError> {
    if pods.is_empty() {
        return Ok(None);
    }
    let services = world.kube.list_services().await?;
    let sets = ip_sets(world, &services, pods, false).await?;
    let mut wait: Option<u64> = None;
    let mut names = Vec::new();
    let mut held = BTreeSet::new();
    for (set, targets) in deregister_old(world, &sets).await? {
        held.extend(targets.iter().map(|(ip, _)| ip.clone()));
        names.push(format!("{} ({} targets)", set.targets.name, targets.len()));
        let served = set
            .targets
            .targets
            .iter()
            .any(|t| set.old.contains(&t.target_id) && t.state != TargetHealthState::Initial);
        let secs = if served {
            let kind = world.elb.by_target_group(&set.arn).await?.map(|lb| lb.kind);
            ip_propagation_secs(kind)
        } else {
            GATE_POLL_SECS
        };
        wait = Some(wait.map_or(secs, |w| w.max(secs)));
    }
    Ok(wait.map(|secs| {
        let reason = format!(
            "pods about to stop were still targets; deregistered from {}, waiting {secs} s for \
             the load balancer to stop routing to them",
            names.join(", ")
        );
        tracing::info!(%reason, "pods taken out of their IP target groups");
        (secs, reason, held)
    }))
}

/// Rollback, once traffic was cut: the old pods that still serve go back into their IP target
/// groups before anything of the new group leaves, or the load balancer would be left with
/// targets still in their initial health checks (which get no traffic, failing open or not).
/// `Some((seconds, reason))` while one is not healthy yet.
pub(crate) async fn bring_old_pods_back(
    world: &World,
    old_pods: &[PodView],
) -> Result<Option<(u64, String)>, StepError> {
    let serving: Vec<PodView> = old_pods
        .iter()
        .filter(|p| p.ready && !p.terminating)
        .cloned()
        .collect();
    if serving.is_empty() {
        return Ok(None);
    }
    let services = world.kube.list_services().await?;
    let mut waiting = Vec::new();
    for set in ip_sets(world, &services, &serving, false).await? {
        let targets = &set.targets.targets;
        let any_port = targets.iter().find_map(|t| t.port);
        let state_of = |ip: &str| targets.iter().find(|t| t.target_id == ip).map(|t| &t.state);
        let missing: Vec<(String, Option<i32>)> = set
            .old
            .iter()
            .filter(|ip| {
                !matches!(
                    state_of(ip),
                    Some(
                        TargetHealthState::Healthy
                            | TargetHealthState::Initial
                            | TargetHealthState::Unhealthy
                    )
                )
            })
            .map(|ip| {
                let port = targets
                    .iter()
                    .find(|t| &t.target_id == ip)
                    .and_then(|t| t.port)
                    .or(any_port);
                (ip.clone(), port)
            })
            .collect();
        world.elb.set_targets(&set.arn, &missing, false).await?;
        let unhealthy = set
            .old
            .iter()
            .filter(|ip| state_of(ip) != Some(&TargetHealthState::Healthy))
            .count();
        if unhealthy > 0 {
            waiting.push(format!(
                "{}: {unhealthy} old pods not healthy targets yet",
                set.targets.name
            ));
        }
    }
    Ok((!waiting.is_empty()).then(|| (GATE_POLL_SECS, waiting.join("; "))))
}

/// The pod an eviction or deletion removes.
fn removes(action: &Action) -> Option<(&str, &str)> {
    match action {
        Action::EvictPod {
            namespace, name, ..
        }
        | Action::DeletePod {
            namespace, name, ..
        } => Some((namespace, name)),
        _ => None,
    }
}

/// Before a round evicts or deletes pods: the ones that are still registered targets of an IP
/// target group are deregistered and held back (their actions dropped from this round); the
/// others go. `Some((seconds, reason))` when some were held: how long until the load balancer
/// stops routing to them (a poll for a target still initial, else its propagation time).
pub(crate) async fn hold_back(
    world: &World,
    pods: &[PodView],
    actions: &[Action],
) -> Result<(Vec<Action>, Option<(u64, String)>), StepError> {
    let leaving: Vec<PodView> = pods
        .iter()
        .filter(|p| {
            actions
                .iter()
                .filter_map(removes)
                .any(|(ns, name)| p.namespace == ns && p.name == name)
        })
        .cloned()
        .collect();
    let Some((secs, reason, held_ips)) = take_out(world, &leaving).await? else {
        return Ok((actions.to_vec(), None));
    };
    let held: BTreeSet<(&str, &str)> = leaving
        .iter()
        .filter(|p| p.pod_ip.as_ref().is_some_and(|ip| held_ips.contains(ip)))
        .map(|p| (p.namespace.as_str(), p.name.as_str()))
        .collect();
    let go = actions
        .iter()
        .filter(|a| removes(a).is_none_or(|k| !held.contains(&k)))
        .cloned()
        .collect();
    Ok((go, Some((secs, reason))))
}
