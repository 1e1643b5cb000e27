//! Steps 4 and 7 on the old nodes: taint, label and cordon them; then, once the new targets are
//! healthy, label them out of the external load balancers and watch the drain.

use std::collections::BTreeSet;

use ngm_core::marks;
use ngm_core::model::{LbKind, LoadBalancerInfo, ServiceView, Timestamp, TrafficPolicy};
use ngm_core::plan::lbdrain::{
    GATE_POLL_SECS, LbTargets, drain_poll_secs, lb_drain_wait, min_cut_seconds,
    new_targets_healthy, old_targets_drained,
};
use ngm_core::plan::nodes::{plan_cut_traffic, plan_taint};
use ngm_core::plan::wait::wait_until;
use ngm_core::plan::{WaitDecision, deadlines};
use ngm_core::state::{LbAttachments, MigrationState, Phase};

use super::iptargets::{deregister_old, ip_sets};
use super::{
    executor, fronting, new_nodes, old_nodes, pending, pods_on, settle_wait, source_nodes,
};
use crate::error::StepError;
use crate::world::World;

/// Step 4.
pub async fn taint(
    mut state: MigrationState,
    world: &World,
    _now: Timestamp,
) -> Result<MigrationState, StepError> {
    let old = source_nodes(&state, world).await?;
    let actions = plan_taint(&old, &state.execution.name, &state.execution.digest());
    executor(&state, world, "taint").run_all(&actions).await?;
    state.counts.old_nodes = u32::try_from(old.len()).unwrap_or(u32::MAX);
    state.counts.nodes_tainted = state.counts.old_nodes;
    state.phase = Phase::Tainted;
    state.pending = None;
    Ok(state)
}

/// Step 7, a loop. First the health gate: every load balancer in front of the old nodes has
/// the new group's nodes as healthy targets (`TargetsNotHealthy` past its deadline, nothing
/// cut). Then the cut: the old nodes are labelled out of the load balancers. Then the observed
/// drain: pending until no old instance is registered in any of them, and at least the
/// propagation time an NLB needs, bounded by `lbDrainSeconds` (the idle timeouts and
/// deregistration delays plus margin) after the cut. `policy.lbDrainSecondsOverride` skips the
/// observation and waits exactly that long after the cut.
pub async fn cut_traffic(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    let nodes = old_nodes(&mut state, world, "cut-traffic").await?;
    let old: BTreeSet<String> = nodes
        .iter()
        .filter_map(|n| n.instance_id())
        .map(str::to_string)
        .collect();
    let pods = pods_on(world, &nodes).await?;
    let services = world.kube.list_services().await?;
    let fronts = fronting(world, &services, &pods).await?;
    // The load balancers attached to the old Auto Scaling groups, read once, before the cut
    // detaches them.
    if state.originals.lb_attachments.is_none() {
        state.originals.lb_attachments = Some(source_attachments(&state, world).await?);
    }
    let attachments = state.originals.lb_attachments.clone().unwrap_or_default();
    let attached = attached_lbs(world, &attachments).await?;
    // IP target groups: the old pods are their targets. Those with copies Ready elsewhere (the
    // surged workloads) are cut here; the others (a StatefulSet's) leave one by one as the
    // drain evicts them.
    let ip: Vec<_> = ip_sets(world, &services, &pods, true)
        .await?
        .into_iter()
        .filter(|s| !s.targets.expected.is_empty())
        .collect();
    let lbs: Vec<LoadBalancerInfo> = fronts
        .iter()
        .map(|(_, lb)| lb.clone())
        .chain(attached.iter().cloned())
        .chain(ip.iter().filter_map(|s| s.lb.clone()))
        .collect();
    // Old instances and old pods' IPs: the targets that must leave.
    let old: BTreeSet<String> = old
        .into_iter()
        .chain(ip.iter().flat_map(|s| s.old.iter().cloned()))
        .collect();
    let fixed = state.request.policy.lb_drain_seconds_override;
    let bound = lb_drain_wait(&lbs, fixed);
    state.lb_drain_seconds = bound.seconds;
    let new_asgs = if attachments.is_empty() {
        Vec::new()
    } else {
        new_group_asgs(&state, world).await?
    };

    let cut_at = match state.deadlines.traffic_cut_at {
        Some(at) => at,
        None => {
            // The new group's Auto Scaling groups join the old one's load balancers (again, on
            // a retry: attaching twice is a no-op).
            for asg in &new_asgs {
                world.asg.attach_load_balancers(asg, &attachments).await?;
            }
            let deadline = *state
                .deadlines
                .targets_healthy_by
                .get_or_insert(now.plus(deadlines::TARGETS_HEALTHY_SECS));
            let ready = match fixed {
                Some(_) => Ok(()),
                None => {
                    let mut health = read_targets(&state, world, &fronts, &attached).await?;
                    health.extend(ip.iter().map(|s| s.targets.clone()));
                    new_targets_healthy(&health, &old)
                }
            };
            let decision = wait_until(ready, now, deadline, GATE_POLL_SECS);
            if !settle_wait(&mut state, decision, |reason| {
                StepError::TargetsNotHealthy { reason }
            })? {
                return Ok(state);
            }
            executor(&state, world, "cut-traffic")
                .run_all(&plan_cut_traffic(&nodes))
                .await?;
            // The old pods leave their IP target groups while they still serve.
            let n: usize = deregister_old(world, &ip)
                .await?
                .iter()
                .map(|(_, t)| t.len())
                .sum();
            if n > 0 {
                tracing::info!(
                    step = "cut-traffic",
                    targets = n,
                    "old pods deregistered from IP target groups"
                );
            }
            // The old groups leave the load balancers they were attached to, with draining.
            if !attachments.is_empty() {
                for asg in &state.source.asg_names {
                    world.asg.detach_load_balancers(asg, &attachments).await?;
                }
            }
            tracing::info!(step = "cut-traffic", bound = bound.seconds, set_by = ?bound.set_by, "old nodes cut out of the load balancers");
            state.counts.nodes_excluded_from_lb = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
            state.phase = Phase::TrafficCut;
            state.deadlines.traffic_cut_at = Some(now);
            now
        }
    };

    let until = cut_at.plus(bound.seconds);
    let floor = cut_at.plus(fixed.unwrap_or_else(|| min_cut_seconds(&lbs)));
    let drained = if fixed.is_some() {
        Err(format!(
            "the fixed load-balancer drain wait runs {} s more",
            until.secs_since(now)
        ))
    } else if now == cut_at {
        Err("the load balancers have not seen the cut yet".to_string())
    } else {
        // The controller registers a ready old pod again at its next reconcile: out again.
        deregister_old(world, &ip).await?;
        let mut health = read_targets(&state, world, &fronts, &attached).await?;
        health.extend(ip.iter().map(|s| s.targets.clone()));
        old_targets_drained(&health, &old).and_then(|()| {
            if now < floor {
                Err(format!(
                    "an NLB routes new connections to the old targets {} s more",
                    floor.secs_since(now)
                ))
            } else {
                Ok(())
            }
        })
    };
    let poll = if fixed.is_some() {
        until.secs_since(now)
    } else {
        drain_poll_secs(now.secs_since(cut_at))
    };
    match wait_until(drained, now, until, poll) {
        WaitDecision::Done => state.pending = None,
        WaitDecision::Again {
            retry_after_seconds,
            reason,
        } => state.pending = pending(retry_after_seconds, reason),
        WaitDecision::Expired { reason } => {
            // Past the bound the load balancers have closed every old connection.
            if fixed.is_none() {
                tracing::warn!(step = "cut-traffic", %reason, "drain bound reached");
                state.note(format!(
                    "the load-balancer drain reached its bound of {} s: {reason}",
                    bound.seconds
                ));
            }
            state.pending = None;
        }
    }
    Ok(state)
}

/// The target sets in front of the old nodes: each CLB, and each instance target group of an
/// ALB or NLB, with the new group's instances expected to pass its health check.
async fn read_targets(
    state: &MigrationState,
    world: &World,
    fronts: &[(&ServiceView, LoadBalancerInfo)],
    attached: &[LoadBalancerInfo],
) -> Result<Vec<LbTargets>, StepError> {
    let new = new_nodes(state, world).await?;
    let mut out = Vec::new();
    // Attached to the Auto Scaling groups: every Ready new instance is expected healthy.
    let ready_new: BTreeSet<String> = new
        .iter()
        .filter(|n| n.ready)
        .filter_map(|n| n.instance_id())
        .map(str::to_string)
        .collect();
    for lb in attached {
        out.extend(target_sets(world, lb, &ready_new).await?);
    }
    for (svc, lb) in fronts {
        let mut expected: BTreeSet<String> = new
            .iter()
            .filter(|n| n.ready && !n.labels.contains_key(marks::EXCLUDE_FROM_LB_LABEL))
            .filter_map(|n| n.instance_id())
            .map(str::to_string)
            .collect();
        if svc.external_traffic_policy == Some(TrafficPolicy::Local) {
            // kube-proxy's health check node port passes only where a ready pod serves.
            let pods = super::service_pods(world, svc).await?;
            let serving: BTreeSet<&str> = pods
                .iter()
                .filter(|p| p.ready && !p.terminating)
                .filter_map(|p| p.node_name.as_deref())
                .collect();
            expected = new
                .iter()
                .filter(|n| serving.contains(n.name.as_str()))
                .filter_map(|n| n.instance_id())
                .map(str::to_string)
                .filter(|id| expected.contains(id))
                .collect();
        }
        out.extend(target_sets(world, lb, &expected).await?);
    }
    Ok(out)
}

/// One load balancer's target sets: a CLB's instances, or each instance target group of an ALB
/// or NLB (IP targets are pods, not instances).
async fn target_sets(
    world: &World,
    lb: &LoadBalancerInfo,
    expected: &BTreeSet<String>,
) -> Result<Vec<LbTargets>, StepError> {
    let mut out = Vec::new();
    match lb.kind {
        LbKind::Clb => out.push(LbTargets {
            name: lb.dns_name.clone(),
            targets: world.elb.classic_instance_health(&lb.id).await?,
            expected: expected.clone(),
        }),
        LbKind::Alb | LbKind::Nlb => {
            let several = lb.target_groups.len() > 1;
            for tg in &lb.target_groups {
                if tg.target_type.as_deref() == Some("ip") {
                    continue;
                }
                out.push(LbTargets {
                    name: if several {
                        format!("{} ({})", lb.dns_name, tg.arn)
                    } else {
                        lb.dns_name.clone()
                    },
                    targets: world.elb.target_health(&tg.arn).await?,
                    expected: expected.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// What is attached to the old group's Auto Scaling groups now.
pub(crate) async fn source_attachments(
    state: &MigrationState,
    world: &World,
) -> Result<LbAttachments, StepError> {
    let mut out = LbAttachments::default();
    for name in &state.source.asg_names {
        if let Some(a) = world.asg.describe(name).await? {
            out.add(&a);
        }
    }
    Ok(out)
}

/// The attached load balancers, attributes read (one gone meanwhile is skipped). A VPC
/// Lattice traffic source has none ngm can read: it joins and leaves with the groups, and the
/// pre-flight names it.
pub(crate) async fn attached_lbs(
    world: &World,
    attachments: &LbAttachments,
) -> Result<Vec<LoadBalancerInfo>, StepError> {
    let mut out = Vec::new();
    let sources = |kind: &'static str| {
        attachments
            .traffic_sources
            .iter()
            .filter(move |t| t.kind == kind)
            .map(|t| &t.identifier)
    };
    for name in attachments.load_balancer_names.iter().chain(sources("elb")) {
        out.extend(world.elb.classic_by_name(name).await?);
    }
    for arn in attachments.target_group_arns.iter().chain(sources("elbv2")) {
        out.extend(world.elb.by_target_group(arn).await?);
    }
    Ok(out)
}

/// The new group's Auto Scaling groups, as EKS names them.
pub(crate) async fn new_group_asgs(
    state: &MigrationState,
    world: &World,
) -> Result<Vec<String>, StepError> {
    let Some(g) = &state.new_group else {
        return Ok(Vec::new());
    };
    Ok(world
        .eks
        .describe_nodegroup(&state.request.cluster.name, &g.name)
        .await?
        .map(|n| n.asg_names)
        .unwrap_or_default())
}
