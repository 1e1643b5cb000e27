//! Step 1, validate and plan: resolve the cluster and the old group, derive the new group's
//! spec, build the pre-flight report and take the per-cluster lock. A dry run stops here with
//! the report in the state, having changed nothing.

use std::collections::BTreeSet;

use ngm_core::model::{ClusterInfo, NodeGroupKind, NodeGroupSpec, NodeView, Resources, Timestamp};
use ngm_core::plan::fit::NewNode;
use ngm_core::plan::lifecycle::{LockDecision, lease_seconds, lock_key, plan_lock, plan_unlock};
use ngm_core::plan::newgroup::derive_target;
use ngm_core::plan::preflight::{
    Finding, PreflightInputs, PreflightReport, Severity, plan_preflight,
};
use ngm_core::plan::source::spec_from_asg;
use ngm_core::ports::LockAcquired;
use ngm_core::request::{validate, validate_against_source};
use ngm_core::state::{LockInfo, MigrationState, Phase};

use super::nodes::{attached_lbs, source_attachments};
use super::{load_balancers_for, source_nodes};
use crate::error::StepError;
use crate::observe::observe_with_nodes;
use crate::world::World;

const STEP: &str = "validate-and-plan";
/// Findings kept in the state (the full report goes to the log).
const MAX_FINDINGS: usize = 10;

pub(crate) async fn cluster(
    state: &MigrationState,
    world: &World,
) -> Result<ClusterInfo, StepError> {
    let name = &state.request.cluster.name;
    world
        .eks
        .describe_cluster(name)
        .await?
        .ok_or_else(|| StepError::ClusterNotFound {
            cluster: name.clone(),
        })
}

/// The old group as a spec, and its nodes.
pub(crate) async fn resolve_source(
    state: &MigrationState,
    world: &World,
) -> Result<(NodeGroupSpec, Vec<NodeView>), StepError> {
    let name = state.request.source.name();
    let not_found = || StepError::SourceGroupNotFound {
        name: name.to_string(),
    };
    let spec = match state.request.source.kind() {
        NodeGroupKind::Managed => world
            .eks
            .describe_nodegroup(&state.request.cluster.name, name)
            .await?
            .ok_or_else(not_found)?,
        NodeGroupKind::SelfManagedAsg => {
            let asg = world.asg.describe(name).await?.ok_or_else(not_found)?;
            let template = match (&asg.launch_template, world.ec2.as_deref()) {
                (Some(t), Some(ec2)) => ec2.describe_launch_template_version(t).await?,
                _ => None,
            };
            let mut s = state.clone();
            s.source.asg_names = vec![asg.name.clone()];
            let nodes = source_nodes(&s, world).await?;
            spec_from_asg(&asg, template.as_ref(), &nodes)
        }
    };
    let mut s = state.clone();
    s.source.asg_names.clone_from(&spec.asg_names);
    let nodes = source_nodes(&s, world).await?;
    Ok((spec, nodes))
}

/// Takes or renews the per-cluster lock for this execution until `now` plus the lease. A live
/// lease of another execution is busy; an expired one is taken over only when the lock port
/// finds its holder's execution ended (DescribeExecution). The API and the AMI watcher take the
/// lock before they start the execution, so a holder that is not running yet is normal, and its
/// lease is live then.
async fn take_lock(
    state: &mut MigrationState,
    world: &World,
    cluster_arn: &str,
    now: Timestamp,
) -> Result<(), StepError> {
    let key = lock_key(cluster_arn);
    let lease_until = now.plus(lease_seconds(&state.request, Some(state.lb_drain_seconds)));
    let current = world.lock.read(&key).await?;
    let exec = &state.execution.name;
    let record = match plan_lock(&key, current.as_ref(), exec, now, lease_until) {
        LockDecision::Busy { holder, .. } => return Err(StepError::ClusterLocked { holder }),
        LockDecision::Held => None,
        LockDecision::Acquire { mut record } => {
            record.holder_arn.clone_from(&state.execution.arn);
            Some(record)
        }
    };
    if let Some(record) = record {
        // The write is conditional: a run that took the lock since our read wins.
        match world.lock.acquire(&record, now).await? {
            LockAcquired::Acquired => {
                tracing::info!(step = STEP, execution = %exec, key = %key, lease_until = record.lease_until.0, "lock taken");
            }
            LockAcquired::HeldBy(other) => {
                return Err(StepError::ClusterLocked {
                    holder: other.map_or_else(|| "another execution".into(), |o| o.holder),
                });
            }
        }
    }
    // A retry keeps the first acquisition time: the state's, else the lock record's when this
    // execution already held it (a rerun of this step on the same input, I5).
    let acquired_at = current
        .as_ref()
        .filter(|c| c.holder == *exec)
        .map_or(now, |c| c.acquired_at);
    state.lock.get_or_insert(LockInfo {
        cluster_arn: cluster_arn.to_string(),
        acquired_at,
    });
    Ok(())
}

/// Releases the lock if this execution holds it (restore and rollback). A dry run only logs.
pub(crate) async fn release_lock(
    state: &mut MigrationState,
    world: &World,
    cluster_arn: &str,
    step: &'static str,
) -> Result<(), StepError> {
    let key = lock_key(cluster_arn);
    let exec = &state.execution.name;
    let current = world.lock.read(&key).await?;
    if plan_unlock(current.as_ref(), exec) {
        if state.request.policy.dry_run {
            tracing::info!(step, execution = %exec, key = %key, dry_run = true, "lock released");
        } else if world.lock.release(&key, exec).await? {
            tracing::info!(step, execution = %exec, key = %key, "lock released");
        }
    }
    state.lock = None;
    Ok(())
}

/// The report for `source` and its nodes.
async fn preflight(
    state: &MigrationState,
    world: &World,
    source: &NodeGroupSpec,
    old_nodes: Vec<NodeView>,
) -> Result<PreflightReport, StepError> {
    let view = observe_with_nodes(world.kube.as_ref(), old_nodes).await?;
    let target = derive_target(&state.request, source);
    let mut lbs = load_balancers_for(world, &view.services, &view.old_pods).await?;
    // And the load balancers attached to the old Auto Scaling groups.
    let attachments = source_attachments(state, world).await?;
    lbs.extend(attached_lbs(world, &attachments).await?);
    // IP target groups, through their TargetGroupBindings.
    let mut ip_services = BTreeSet::new();
    for b in world.kube.list_target_group_bindings().await? {
        if !b.ip() {
            continue;
        }
        let fronts_old = view.services.iter().any(|s| {
            s.namespace == b.namespace
                && s.name == b.service
                && view.old_pods.iter().any(|p| s.selects(p))
        });
        if fronts_old
            && let Some(lb) = world.elb.by_target_group(&b.target_group_arn).await?
            && !lbs.iter().any(|l| l.id == lb.id)
        {
            lbs.push(lb);
        }
        ip_services.insert((b.namespace, b.service));
    }
    let old_zones: BTreeSet<String> = view
        .old_nodes
        .iter()
        .filter_map(|n| n.zone.clone())
        .collect();
    // Without EC2 the new subnets' zones cannot be read; assume the old group's zones.
    let new_zones: BTreeSet<String> = match world.ec2.as_deref() {
        Some(ec2) => ec2
            .subnet_zones(&target.subnets)
            .await?
            .into_values()
            .collect(),
        None => old_zones,
    };
    // A node of the new group, from its instance type; when that is unknown, an old node's
    // allocatable stands in for it.
    let new_node = NewNode::of(&target, &new_zones);
    let volumes = world.kube.list_persistent_volumes().await?;
    let node_pools = world.kube.list_node_pools().await?;
    let allocatable = view
        .old_nodes
        .first()
        .map_or(Resources::default(), |n| n.allocatable);
    let mut report = plan_preflight(PreflightInputs {
        policy: &state.request.policy,
        old_nodes: &view.old_nodes,
        old_pods: &view.old_pods,
        replicasets: &view.replicasets,
        workloads: &view.workloads,
        daemonsets: &view.daemonsets,
        pdbs: &view.pdbs,
        load_balancers: &lbs,
        services: &view.services,
        ip_services: &ip_services,
        new_node_allocatable: allocatable,
        new_node: new_node.as_ref().ok(),
        old_group_labels: &source.labels,
        volumes: &volumes,
        node_pools: node_pools.as_deref(),
        new_scaling: target.scaling,
        new_zones: &new_zones,
    });
    if let Err(e) = &new_node {
        report.findings.push(Finding {
            severity: Severity::Info,
            kind: "instance-type".into(),
            message: e.to_string(),
        });
    }
    // ngm attaches and detaches a VPC Lattice traffic source with the groups, but reads no
    // target health there: neither the health gate nor the observed drain covers it.
    for t in attachments
        .traffic_sources
        .iter()
        .filter(|t| t.kind == "vpc-lattice")
    {
        report.findings.push(Finding {
            severity: Severity::Warning,
            kind: "vpc-lattice-source".into(),
            message: format!(
                "VPC Lattice target group {} is a traffic source of the old group: the new group \
                 joins it and the old one leaves it, but ngm cannot see its targets' health, so \
                 the cut neither waits for the new instances to be healthy there nor watches \
                 the old ones drain",
                t.identifier
            ),
        });
    }
    Ok(report)
}

/// Step 1. A run that ends here (a dry run, or a failure the state machine does not retry)
/// never reaches restore or rollback, so it gives back a lock its starter took for it.
pub async fn validate_and_plan(
    state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    // A request bad on its own fails before any call: whoever starts a run with the lock has
    // validated it already, so no lock can be waiting for it.
    validate(&state.request).map_err(|errors| StepError::InvalidRequest { errors })?;
    let mut before = state.clone();
    let result = plan_and_lock(state, world, now).await;
    let ends_here = match &result {
        Ok(s) => s.phase == Phase::DryRunDone,
        Err(StepError::ClusterLocked { .. }) => false,
        Err(e) => !e.is_retryable(),
    };
    if ends_here && let Ok(c) = cluster(&before, world).await {
        let released = release_lock(&mut before, world, &c.arn, STEP).await;
        if let Err(e) = released {
            tracing::warn!(step = STEP, error = %e, "lock not released; its lease will run out");
        }
    }
    result
}

async fn plan_and_lock(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    let cluster = cluster(&state, world).await?;
    let (source, old_nodes) = resolve_source(&state, world).await?;
    validate_against_source(&state.request, &source)
        .map_err(|errors| StepError::InvalidRequest { errors })?;
    state.source.arn.clone_from(&source.arn);
    state.source.asg_names.clone_from(&source.asg_names);
    state.counts.old_nodes = u32::try_from(old_nodes.len()).unwrap_or(u32::MAX);

    let report = preflight(&state, world, &source, old_nodes).await?;
    for f in &report.findings {
        tracing::info!(step = STEP, kind = %f.kind, severity = ?f.severity, message = %f.message, "pre-flight finding");
    }
    state.preflight = Some(report.summary(MAX_FINDINGS));
    state.lb_drain_seconds = report.drain_wait.seconds;
    state.pending = None;

    if state.request.policy.dry_run {
        state.phase = Phase::DryRunDone;
        return Ok(state);
    }
    if !report.ok() {
        return Err(StepError::PreflightFailed {
            findings: report
                .findings
                .iter()
                .filter(|f| f.severity == Severity::Blocking)
                .map(|f| format!("[{}] {}", f.kind, f.message))
                .collect(),
        });
    }

    take_lock(&mut state, world, &cluster.arn, now).await?;
    state.phase = Phase::Planned;
    Ok(state)
}
