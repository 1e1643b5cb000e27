//! Step 1, validate and plan: resolve the cluster and the old group, derive the new group's
//! spec, build the pre-flight report and take the per-cluster lock. A dry run stops here with
//! the report in the state, having changed nothing.

use std::collections::BTreeSet;

use ngm_core::model::{
    ClusterInfo, ExecutionStatus, NodeGroupKind, NodeGroupSpec, NodeView, Resources, Timestamp,
};
use ngm_core::plan::lifecycle::{LockDecision, plan_lock};
use ngm_core::plan::newgroup::derive_target;
use ngm_core::plan::preflight::{PreflightInputs, PreflightReport, Severity, plan_preflight};
use ngm_core::plan::source::spec_from_asg;
use ngm_core::request::{validate, validate_against_source};
use ngm_core::state::{LockInfo, MigrationState, Phase};

use super::{executor, load_balancers_for, source_nodes};
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

/// Whether the execution named `holder` is still running. Without this execution's ARN the
/// state machine cannot be named, so the holder is presumed alive (never steal a live lock).
async fn holder_running(
    state: &MigrationState,
    world: &World,
    holder: &str,
) -> Result<bool, StepError> {
    let Some(arn) = &state.execution.arn else {
        return Ok(true);
    };
    // arn:aws:states:<region>:<account>:execution:<machine>:<name>
    let Some((prefix, _)) = arn.rsplit_once(':') else {
        return Ok(true);
    };
    let machine = prefix.replace(":execution:", ":stateMachine:");
    let running = world
        .sfn
        .list_executions(&machine, Some(ExecutionStatus::Running))
        .await?;
    Ok(running.iter().any(|e| e.name == holder))
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
    let lbs = load_balancers_for(world, &view.services, &view.old_pods).await?;
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
    // A new node's allocatable is unknown until one exists; an old node's stands in for it.
    let allocatable = view
        .old_nodes
        .first()
        .map_or(Resources::default(), |n| n.allocatable);
    Ok(plan_preflight(PreflightInputs {
        policy: &state.request.policy,
        old_nodes: &view.old_nodes,
        old_pods: &view.old_pods,
        replicasets: &view.replicasets,
        workloads: &view.workloads,
        daemonsets: &view.daemonsets,
        pdbs: &view.pdbs,
        load_balancers: &lbs,
        new_node_allocatable: allocatable,
        new_scaling: target.scaling,
        new_zones: &new_zones,
    }))
}

/// Step 1.
pub async fn validate_and_plan(
    mut state: MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<MigrationState, StepError> {
    validate(&state.request).map_err(|errors| StepError::InvalidRequest { errors })?;
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
                .map(|f| f.message.clone())
                .collect(),
        });
    }

    let holder = cluster.tags.get(ngm_core::marks::LOCK_TAG).cloned();
    let running = match &holder {
        Some(h) if *h != state.execution.name => holder_running(&state, world, h).await?,
        _ => false,
    };
    match plan_lock(&cluster.arn, &cluster.tags, &state.execution.name, running) {
        LockDecision::Busy { holder } => return Err(StepError::ClusterLocked { holder }),
        LockDecision::Acquire { action } => {
            executor(&state, world, STEP).run(&action).await?;
            state.lock = Some(LockInfo {
                cluster_arn: cluster.arn.clone(),
                acquired_at: now,
            });
        }
        LockDecision::Held => {
            // A retry keeps the first acquisition time.
            state.lock.get_or_insert(LockInfo {
                cluster_arn: cluster.arn.clone(),
                acquired_at: now,
            });
        }
    }
    state.phase = Phase::Planned;
    Ok(state)
}
