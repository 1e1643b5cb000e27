//! Executing a plan's actions through the ports. Every mutation logs one info line; every
//! Kubernetes mutation also records an Event on the object; a dry run logs and does nothing.

use ngm_core::model::{LaunchTemplateVersion, NodeGroupSpec};
use ngm_core::plan::Action;
use ngm_core::ports::EvictOutcome;

use crate::error::StepError;
use crate::world::World;

/// What one action returned, for the few actions whose answer a step reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// A dry run skipped it.
    Skipped,
    Evict(EvictOutcome),
    Group(Box<NodeGroupSpec>),
    TemplateVersion(Box<LaunchTemplateVersion>),
}

/// Runs actions for one step of one execution.
#[derive(Debug, Clone, Copy)]
pub struct Executor<'a> {
    pub world: &'a World,
    pub cluster: &'a str,
    pub execution: &'a str,
    pub step: &'static str,
    pub dry_run: bool,
}

impl Executor<'_> {
    /// Runs every action in order, stopping at the first failure.
    pub async fn run_all(&self, actions: &[Action]) -> Result<(), StepError> {
        for a in actions {
            self.run(a).await?;
        }
        Ok(())
    }

    /// Runs one action (or, on a dry run, only logs it).
    pub async fn run(&self, action: &Action) -> Result<Outcome, StepError> {
        let kind = action_name(action);
        if self.dry_run {
            tracing::info!(step = self.step, action = kind, detail = ?action, "dry run: action skipped");
            return Ok(Outcome::Skipped);
        }
        tracing::info!(step = self.step, action = kind, detail = ?action, "executing action");
        let outcome = match self.apply(action).await {
            // A pod a rollout just deleted, a Spot node just reclaimed, a workload deleted
            // mid-run: there is nothing left to mark or unmark, so the write is done.
            Err(StepError::NotFound { what }) if is_mark(action) => {
                tracing::info!(step = self.step, action = kind, what = %what, "object gone: nothing left to mark");
                return Ok(Outcome::Done);
            }
            other => other?,
        };
        if let Some((object, event_type, reason, message)) = action.event(self.execution) {
            // Events are a courtesy to operators; losing one must not fail the migration.
            if let Err(e) = self
                .world
                .kube
                .record_event(&object, event_type, reason, &message)
                .await
            {
                tracing::warn!(step = self.step, error = %e, "recording an event failed");
            }
        }
        Ok(outcome)
    }

    async fn apply(&self, action: &Action) -> Result<Outcome, StepError> {
        let w = self.world;
        let c = self.cluster;
        match action {
            Action::CreateNodegroup {
                spec,
                client_request_token,
            } => {
                let g = w
                    .eks
                    .create_nodegroup(c, spec, client_request_token)
                    .await?;
                return Ok(Outcome::Group(Box::new(g)));
            }
            Action::UpdateNodegroupScaling {
                name,
                scaling,
                client_request_token,
            } => {
                w.eks
                    .update_nodegroup_scaling(c, name, *scaling, client_request_token)
                    .await?;
            }
            Action::DeleteNodegroup { name } => w.eks.delete_nodegroup(c, name).await?,
            Action::TagResource { arn, tags } => w.eks.tag_resource(arn, tags).await?,
            Action::UntagResource { arn, keys } => w.eks.untag_resource(arn, keys).await?,
            Action::UpdateAsgSize { name, scaling } => w.asg.update_size(name, *scaling).await?,
            Action::SuspendProcesses { name, processes } => {
                w.asg.suspend_processes(name, processes).await?
            }
            Action::ResumeProcesses { name, processes } => {
                w.asg.resume_processes(name, processes).await?
            }
            Action::TagAsg { name, tags } => w.asg.tag(name, tags).await?,
            Action::UntagAsg { name, keys } => w.asg.untag(name, keys).await?,
            Action::DeleteAsg { name } => w.asg.delete(name).await?,
            Action::CreateLaunchTemplateVersion {
                template,
                overrides,
                client_token,
            } => {
                let v = w
                    .ec2()?
                    .create_launch_template_version(template, overrides, client_token)
                    .await?;
                return Ok(Outcome::TemplateVersion(Box::new(v)));
            }
            Action::PatchNodeLabels { node, labels } => {
                w.kube.patch_node_labels(node, labels).await?
            }
            Action::PatchNodeAnnotations { node, annotations } => {
                w.kube.patch_node_annotations(node, annotations).await?
            }
            Action::AddNodeTaints { node, taints } => {
                w.kube.patch_node_taints(node, taints, &[]).await?
            }
            Action::RemoveNodeTaints { node, taints } => {
                w.kube.patch_node_taints(node, &[], taints).await?
            }
            Action::SetUnschedulable {
                node,
                unschedulable,
            } => w.kube.set_unschedulable(node, *unschedulable).await?,
            Action::AnnotateWorkload {
                workload,
                annotations,
            } => {
                w.kube
                    .patch_workload_annotations(workload, annotations)
                    .await?
            }
            Action::ScaleWorkload { workload, to, .. } => {
                w.kube.scale_workload(workload, *to).await?
            }
            Action::PatchHpa {
                namespace,
                name,
                patch,
            } => w.kube.patch_hpa(namespace, name, patch).await?,
            Action::AnnotatePod {
                namespace,
                name,
                annotations,
            } => w.kube.annotate_pod(namespace, name, annotations).await?,
            Action::EvictPod {
                namespace,
                name,
                uid,
            } => {
                let o = w.kube.evict_pod(namespace, name, uid).await?;
                return Ok(Outcome::Evict(o));
            }
            Action::DeletePod {
                namespace,
                name,
                uid,
            } => w.kube.delete_pod(namespace, name, uid).await?,
        }
        Ok(Outcome::Done)
    }
}

/// Writes whose object may vanish under ngm without harm: labels, annotations, taints, cordon,
/// scale and HPA patches.
pub fn is_mark(a: &Action) -> bool {
    matches!(
        a,
        Action::PatchNodeLabels { .. }
            | Action::PatchNodeAnnotations { .. }
            | Action::AddNodeTaints { .. }
            | Action::RemoveNodeTaints { .. }
            | Action::SetUnschedulable { .. }
            | Action::AnnotateWorkload { .. }
            | Action::ScaleWorkload { .. }
            | Action::PatchHpa { .. }
            | Action::AnnotatePod { .. }
    )
}

/// Time a batch leaves in the invocation's budget for what follows it (the lock renewal and
/// the answer).
pub const BATCH_RESERVE: std::time::Duration = std::time::Duration::from_secs(3);

tokio::task_local! {
    static INVOCATION_DEADLINE: tokio::time::Instant;
}

/// Runs one invocation's step with its budget: batches stop writing in time for it (the
/// Lambda harness gives a quarter of the Lambda timeout, counted from the invocation's start).
pub async fn within_invocation<F: std::future::Future>(
    deadline: tokio::time::Instant,
    f: F,
) -> F::Output {
    INVOCATION_DEADLINE.scope(deadline, f).await
}

/// The current invocation's deadline, when the harness set one.
pub fn invocation_deadline() -> Option<tokio::time::Instant> {
    INVOCATION_DEADLINE.try_with(|d| *d).ok()
}

/// Writes a batch makes however little time is left.
pub const BATCH_MIN_PROGRESS: usize = 20;

/// What one invocation's batch did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batch {
    pub done: usize,
    pub finished: bool,
}

impl Executor<'_> {
    /// Runs `actions` in order until `max_actions` ran or `max_elapsed` passed, so that one
    /// invocation stays well under the Lambda timeout however many pods there are. The plans
    /// are convergent (what is done drops out of the next plan), so the next invocation plans
    /// the rest.
    pub async fn run_batch(
        &self,
        actions: &[Action],
        max_actions: usize,
        max_elapsed: std::time::Duration,
    ) -> Result<Batch, StepError> {
        // The writes stop at `max_elapsed`, and sooner when the invocation's own budget (a
        // quarter of the Lambda timeout, counted from the start of the invocation, so the
        // observation before the batch is paid for) has less than `BATCH_RESERVE` left for
        // saving the state.
        let mut stop_at = tokio::time::Instant::now() + max_elapsed;
        if let Some(deadline) = invocation_deadline() {
            stop_at = stop_at.min(deadline - BATCH_RESERVE.min(max_elapsed));
        }
        let mut done = 0;
        for a in actions {
            // A few writes always go, so that an invocation whose observation alone used
            // its budget still makes progress.
            if done >= max_actions
                || (done >= BATCH_MIN_PROGRESS && tokio::time::Instant::now() >= stop_at)
            {
                break;
            }
            self.run(a).await?;
            done += 1;
        }
        Ok(Batch {
            done,
            finished: done == actions.len(),
        })
    }
}

/// The action's tag, as a constant log field.
pub fn action_name(a: &Action) -> &'static str {
    match a {
        Action::CreateNodegroup { .. } => "createNodegroup",
        Action::UpdateNodegroupScaling { .. } => "updateNodegroupScaling",
        Action::DeleteNodegroup { .. } => "deleteNodegroup",
        Action::TagResource { .. } => "tagResource",
        Action::UntagResource { .. } => "untagResource",
        Action::UpdateAsgSize { .. } => "updateAsgSize",
        Action::SuspendProcesses { .. } => "suspendProcesses",
        Action::ResumeProcesses { .. } => "resumeProcesses",
        Action::TagAsg { .. } => "tagAsg",
        Action::UntagAsg { .. } => "untagAsg",
        Action::DeleteAsg { .. } => "deleteAsg",
        Action::CreateLaunchTemplateVersion { .. } => "createLaunchTemplateVersion",
        Action::PatchNodeLabels { .. } => "patchNodeLabels",
        Action::PatchNodeAnnotations { .. } => "patchNodeAnnotations",
        Action::AddNodeTaints { .. } => "addNodeTaints",
        Action::RemoveNodeTaints { .. } => "removeNodeTaints",
        Action::SetUnschedulable { .. } => "setUnschedulable",
        Action::AnnotateWorkload { .. } => "annotateWorkload",
        Action::ScaleWorkload { .. } => "scaleWorkload",
        Action::PatchHpa { .. } => "patchHpa",
        Action::AnnotatePod { .. } => "annotatePod",
        Action::EvictPod { .. } => "evictPod",
        Action::DeletePod { .. } => "deletePod",
    }
}
