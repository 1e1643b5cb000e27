//! The AMI-release watcher. AWS publishes no event for a new EKS-optimized AMI, so an
//! EventBridge schedule runs this: for each cluster named in `NGM_CLUSTERS` (an explicit list,
//! so its IAM policy names the clusters) and each managed node group opted in by the tag
//! `ngm.io/auto-update=true`, it reads the recommended release from the SSM public parameters,
//! and when the group is behind, inside its maintenance window (tag
//! `ngm.io/maintenance-window`, e.g. `Sun 02:00-06:00 UTC`) and the cluster's lock is free, it
//! takes the lock and starts one migration to that release.
//!
//! The execution name is `ami-<cluster>-<group>-<release>`, so a repeated tick finds the same
//! execution instead of starting a second one, and a release that already failed once is not
//! retried on every tick. At most one migration per cluster starts per tick.

pub mod plan;

use ngm_core::model::Timestamp;
use ngm_core::ports::{EksPort, LockPort, PortError, SfnPort, SsmPort};
use ngm_core::request::{ClusterSelector, MigrationRequest, SourceGroup, TargetSpec};
use ngm_steps::start::{StartOutcome, execution_name, start_locked};
use serde::Serialize;

use plan::{GroupDecision, parameter_for, plan_group};

/// The ports the watcher uses. Its IAM checklist: eks:DescribeCluster, eks:ListNodegroups,
/// eks:DescribeNodegroup, ssm:GetParameter, dynamodb:GetItem/PutItem/DeleteItem,
/// states:StartExecution, states:DescribeExecution.
pub struct Ports<'a> {
    pub eks: &'a dyn EksPort,
    pub ssm: &'a dyn SsmPort,
    pub lock: &'a dyn LockPort,
    pub sfn: &'a dyn SfnPort,
}

/// One group's outcome, for the tick's summary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupReport {
    pub cluster: String,
    pub group: String,
    pub outcome: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub execution_arn: Option<String>,
}

/// Errors that fail the whole tick (its Lambda `error_type`).
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("{0}")]
    Port(#[from] PortError),
    #[error("cluster {0} does not exist")]
    ClusterNotFound(String),
}

impl WatchError {
    pub fn error_type(&self) -> &'static str {
        match self {
            WatchError::Port(e) if e.is_retryable() => "Throttled",
            WatchError::Port(_) => "PortFailed",
            WatchError::ClusterNotFound(_) => "ClusterNotFound",
        }
    }
}

/// The migration for a group behind: the same group with the new release.
pub fn request_for(cluster: &str, region: &str, group: &str, release: &str) -> MigrationRequest {
    MigrationRequest {
        cluster: ClusterSelector {
            name: cluster.to_owned(),
            region: region.to_owned(),
        },
        source: SourceGroup::ManagedNodeGroup(group.to_owned()),
        target: TargetSpec {
            release_version: Some(release.to_owned()),
            ..TargetSpec::default()
        },
        policy: Default::default(),
    }
}

/// One tick over `clusters` in `region`.
pub async fn tick(
    ports: &Ports<'_>,
    state_machine_arn: &str,
    region: &str,
    clusters: &[String],
    now: Timestamp,
) -> Result<Vec<GroupReport>, WatchError> {
    let mut reports = Vec::new();
    for name in clusters {
        let cluster = ports
            .eks
            .describe_cluster(name)
            .await?
            .ok_or_else(|| WatchError::ClusterNotFound(name.clone()))?;
        let mut groups = ports.eks.list_nodegroups(name).await?;
        groups.sort();
        for g in groups {
            let Some(group) = ports.eks.describe_nodegroup(name, &g).await? else {
                continue;
            };
            let recommended = match parameter_for(&cluster, &group) {
                Ok(p) => ports.ssm.get_parameter(&p).await?,
                Err(_) => None,
            };
            let report = |outcome: String, arn: Option<String>| GroupReport {
                cluster: name.clone(),
                group: g.clone(),
                outcome,
                execution_arn: arn,
            };
            let release = match plan_group(&cluster, &group, recommended.as_deref(), now) {
                GroupDecision::NotOptedIn => continue,
                GroupDecision::Skip { reason } => {
                    tracing::info!(cluster = %name, group = %g, reason = %reason, "group skipped");
                    reports.push(report(format!("skipped: {reason}"), None));
                    continue;
                }
                GroupDecision::Migrate { release } => release,
            };
            let exec = execution_name(&["ami", name, &g, &release]);
            let req = request_for(name, region, &g, &release);
            let outcome = start_locked(
                ports.lock,
                ports.sfn,
                state_machine_arn,
                &cluster.arn,
                &exec,
                &req,
                now,
            )
            .await?;
            match outcome {
                StartOutcome::Started { execution_arn } => {
                    reports.push(report(format!("started: {release}"), Some(execution_arn)));
                }
                StartOutcome::Locked { holder } => {
                    reports.push(report(format!("cluster locked by {holder}"), None));
                }
                StartOutcome::AlreadyRan {
                    execution_arn,
                    status,
                } => {
                    reports.push(report(
                        format!("already ran for {release}: {status:?}"),
                        Some(execution_arn),
                    ));
                    continue;
                }
            }
            // One migration per cluster at a time: the other groups wait for a later tick.
            break;
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests;
