//! One handler per step of docs/design.md §2, and what they share: finding the old and new nodes,
//! the load balancers in front of the old pods, and the pending answer of a polling step.

use std::collections::BTreeSet;

use ngm_core::model::{
    LabelSelector, LoadBalancerInfo, NodeGroupKind, NodeView, PodView, ServiceType, ServiceView,
};
use ngm_core::plan::nodes::{plan_cut_traffic, plan_taint};
use ngm_core::plan::scope::{is_source_node, managed_group_selector, retiring_selector};
use ngm_core::plan::{WaitDecision, deadlines};
use ngm_core::state::{Continuation, MigrationState, NewGroupInfo, Pending};

use crate::error::StepError;
use crate::exec::Executor;
use crate::world::World;

pub mod drain;
pub mod freeze;
pub mod group;
pub mod nodes;
pub mod plan;
pub mod restore;
pub mod retire;
pub mod surge;

pub use drain::drain;
pub use freeze::freeze;
pub use group::{check_deleted, check_group_ready, create_group, delete_old};
pub use nodes::{cut_traffic, taint};
pub use plan::validate_and_plan;
pub use restore::{restore, rollback};
pub use retire::retire;
pub use surge::{check_surge, surge};

/// How long each wait may last before the step fails, in seconds
/// (`ngm_core::plan::deadlines`).
pub const GROUP_READY_TIMEOUT_SECS: u64 = deadlines::GROUP_READY_SECS;
pub const SURGE_READY_TIMEOUT_SECS: u64 = deadlines::SURGE_READY_SECS;
pub const OLD_GROUP_GONE_TIMEOUT_SECS: u64 = deadlines::OLD_GROUP_GONE_SECS;
/// Seconds between polls. Spaced so that hours of waiting stay far below Step Functions'
/// 25,000-event history limit.
pub const POLL_SECS: u64 = 30;

/// Most writes one invocation of a batched step (retire, rollback, restore) makes. At about
/// 10 ms a patch this is 5 s of writes, and the time cap below holds on a slower API server.
pub const BATCH_MAX_ACTIONS: usize = 500;
/// Wall-clock cap of one batch's writes: with the observation before it, an invocation stays
/// under a quarter of the 120 s Lambda timeout (infra/template.yaml).
pub const BATCH_MAX_SECS: u64 = 15;

/// Runs one batch of `actions` and records the continuation: `finished` when all ran (the
/// continuation is cleared), else the step must be called again at once.
pub(crate) async fn batch(
    state: &mut MigrationState,
    world: &World,
    step: &'static str,
    actions: &[ngm_core::plan::Action],
) -> Result<crate::exec::Batch, StepError> {
    let prev = state.continuation.take().filter(|c| c.step == step);
    let b = executor(state, world, step)
        .run_batch(
            actions,
            BATCH_MAX_ACTIONS,
            std::time::Duration::from_secs(BATCH_MAX_SECS),
        )
        .await?;
    if b.finished {
        return Ok(b);
    }
    let (batches, done) = prev.map_or((0, 0), |c| (c.batches, c.done));
    state.continuation = Some(Continuation {
        step: step.to_string(),
        batches: batches.saturating_add(1),
        done: done.saturating_add(u64::try_from(b.done).unwrap_or(u64::MAX)),
    });
    state.pending = None;
    tracing::info!(
        step,
        done = b.done,
        left = actions.len() - b.done,
        "batch budget reached; continuing"
    );
    Ok(b)
}

pub(crate) fn executor<'a>(
    state: &'a MigrationState,
    world: &'a World,
    step: &'static str,
) -> Executor<'a> {
    Executor {
        world,
        cluster: &state.request.cluster.name,
        execution: &state.execution.name,
        step,
        dry_run: state.request.policy.dry_run,
    }
}

pub(crate) fn pending(secs: u64, reason: String) -> Option<Pending> {
    Some(Pending {
        retry_after_seconds: secs,
        reason,
    })
}

/// Applies a wait decision to the state: `Ok(true)` when the awaited condition holds (pending
/// cleared), `Ok(false)` when the state machine should come back later (pending set), and
/// the loop's own deadline error (`expired` builds it from the reason) once the deadline has
/// passed.
pub(crate) fn settle_wait(
    state: &mut MigrationState,
    decision: WaitDecision,
    expired: fn(String) -> StepError,
) -> Result<bool, StepError> {
    match decision {
        WaitDecision::Done => {
            state.pending = None;
            Ok(true)
        }
        WaitDecision::Again {
            retry_after_seconds,
            reason,
        } => {
            state.pending = pending(retry_after_seconds, reason);
            Ok(false)
        }
        WaitDecision::Expired { reason } => Err(expired(reason)),
    }
}

pub(crate) fn new_group<'a>(
    state: &'a MigrationState,
    step: &'static str,
) -> Result<&'a NewGroupInfo, StepError> {
    state.new_group.as_ref().ok_or(StepError::InvalidState {
        step,
        reason: "the state names no new group; create-group has not run".into(),
    })
}

/// The old group's nodes found by what the group is: its own label (a managed group's
/// `eks.amazonaws.com/nodegroup`) and its Auto Scaling groups' instances, so a node that
/// joined late (a Spot rebalance, a health replacement) is found whether or not its label is
/// the one expected.
pub(crate) async fn source_nodes(
    state: &MigrationState,
    world: &World,
) -> Result<Vec<NodeView>, StepError> {
    let mut ids = BTreeSet::new();
    let names = if state.source.asg_names.is_empty()
        && state.source.kind == NodeGroupKind::SelfManagedAsg
    {
        vec![state.source.name.clone()]
    } else {
        state.source.asg_names.clone()
    };
    for n in &names {
        if let Some(a) = world.asg.describe(n).await? {
            ids.extend(a.instances.into_iter().map(|i| i.instance_id));
        }
    }
    match state.source.kind {
        NodeGroupKind::Managed => {
            let mut nodes = world
                .kube
                .list_nodes(&managed_group_selector(&state.source.name))
                .await?;
            if !ids.is_empty() {
                let known: BTreeSet<String> = nodes.iter().map(|n| n.name.clone()).collect();
                let members = world.kube.list_nodes(&LabelSelector::default()).await?;
                nodes.extend(members.into_iter().filter(|n| {
                    !known.contains(&n.name) && n.instance_id().is_some_and(|id| ids.contains(id))
                }));
            }
            Ok(nodes)
        }
        NodeGroupKind::SelfManagedAsg => {
            let all = world.kube.list_nodes(&LabelSelector::default()).await?;
            Ok(all
                .into_iter()
                .filter(|n| is_source_node(n, state.source.kind, &state.source.name, &ids))
                .collect())
        }
    }
}

/// The old nodes, for every step from Taint on: those this execution marked, and any node of
/// the old group ([`source_nodes`]) that joined since (a Spot rebalance, a health
/// replacement). Such a late joiner is tainted, labelled and cordoned at once, and cut from
/// the load balancers when the cut is done, so it gets no new pod, and the drain and the
/// deletion's checks then treat it as any old node. The state counts it and says so.
pub(crate) async fn old_nodes(
    state: &mut MigrationState,
    world: &World,
    step: &'static str,
) -> Result<Vec<NodeView>, StepError> {
    let marked = retiring_nodes(state, world).await?;
    let known: BTreeSet<String> = marked.iter().map(|n| n.name.clone()).collect();
    let new: BTreeSet<String> = new_nodes(state, world)
        .await?
        .into_iter()
        .map(|n| n.name)
        .collect();
    let late: Vec<NodeView> = source_nodes(state, world)
        .await?
        .into_iter()
        .filter(|n| !known.contains(&n.name) && !new.contains(&n.name))
        .collect();
    if late.is_empty() {
        return Ok(marked);
    }
    let cut = state.deadlines.traffic_cut_at.is_some();
    let mut actions = plan_taint(&late, &state.execution.name, &state.execution.digest());
    if cut {
        actions.extend(plan_cut_traffic(&late));
    }
    executor(state, world, step).run_all(&actions).await?;
    for n in &late {
        tracing::warn!(step, node = %n.name, cut, "a node joined the old group after the taint; tainted");
        state.note(format!(
            "node {} joined the old group after the taint (a Spot rebalance or a replacement): ngm tainted and cordoned it{} and drains it with the others",
            n.name,
            if cut { ", cut it from the load balancers" } else { "" }
        ));
    }
    let added = u32::try_from(late.len()).unwrap_or(u32::MAX);
    state.counts.old_nodes = state.counts.old_nodes.saturating_add(added);
    state.counts.nodes_tainted = state.counts.nodes_tainted.saturating_add(added);
    if cut {
        state.counts.nodes_excluded_from_lb =
            state.counts.nodes_excluded_from_lb.saturating_add(added);
    }
    retiring_nodes(state, world).await
}

/// The new group's nodes (none before create-group named it).
pub(crate) async fn new_nodes(
    state: &MigrationState,
    world: &World,
) -> Result<Vec<NodeView>, StepError> {
    match &state.new_group {
        Some(g) => Ok(world
            .kube
            .list_nodes(&managed_group_selector(&g.name))
            .await?),
        None => Ok(Vec::new()),
    }
}

/// The nodes this execution labelled as retiring.
pub(crate) async fn retiring_nodes(
    state: &MigrationState,
    world: &World,
) -> Result<Vec<NodeView>, StepError> {
    Ok(world
        .kube
        .list_nodes(&retiring_selector(&state.execution.digest()))
        .await?)
}

/// Lists of pods by node in flight at once: a 120-node group is read in about 15 round
/// trips instead of 120, and the API server sees no burst.
const NODE_LISTS_IN_FLIGHT: usize = 8;

/// Pods on the given nodes, one list per node (`spec.nodeName`, which the API server's watch
/// cache indexes), several at a time, in the nodes' order.
pub(crate) async fn pods_on(world: &World, nodes: &[NodeView]) -> Result<Vec<PodView>, StepError> {
    use futures::{StreamExt, TryStreamExt};
    let lists: Vec<Vec<PodView>> = futures::stream::iter(nodes)
        .map(|n| world.kube.list_pods_on_node(&n.name))
        .buffered(NODE_LISTS_IN_FLIGHT)
        .try_collect()
        .await?;
    Ok(lists.into_iter().flatten().collect())
}

/// The load balancers in front of Services that select any of `pods`, attributes read.
pub(crate) async fn load_balancers_for(
    world: &World,
    services: &[ServiceView],
    pods: &[PodView],
) -> Result<Vec<LoadBalancerInfo>, StepError> {
    Ok(fronting(world, services, pods)
        .await?
        .into_iter()
        .map(|(_, lb)| lb)
        .collect())
}

/// The pods a Service selects, now.
pub(crate) async fn service_pods(
    world: &World,
    svc: &ServiceView,
) -> Result<Vec<PodView>, StepError> {
    let selector = ngm_core::model::LabelSelector {
        match_labels: svc.selector.clone(),
        match_expressions: Vec::new(),
    };
    Ok(world
        .kube
        .list_pods(Some(&svc.namespace), &selector)
        .await?)
}

/// The same load balancers, each with the Service it fronts (the first, when several share it).
pub(crate) async fn fronting<'s>(
    world: &World,
    services: &'s [ServiceView],
    pods: &[PodView],
) -> Result<Vec<(&'s ServiceView, LoadBalancerInfo)>, StepError> {
    let mut seen = BTreeSet::new();
    let mut lbs = Vec::new();
    for s in services {
        if s.service_type != ServiceType::LoadBalancer || !pods.iter().any(|p| s.selects(p)) {
            continue;
        }
        for dns in &s.lb_hostnames {
            if seen.insert(dns.clone())
                && let Some(lb) = world.elb.find_load_balancer_by_dns(dns).await?
            {
                lbs.push((s, lb));
            }
        }
    }
    Ok(lbs)
}

pub(crate) mod iptargets;
#[cfg(test)]
mod lock_tests;
#[cfg(test)]
mod loops_tests;
#[cfg(test)]
mod tests;
