//! The EKS control plane of the twin, served over the EKS REST API (restJson1) so that the
//! real aws-sdk-eks client works against it with `AWS_ENDPOINT_URL_EKS`.
//!
//! - One cluster, whose Kubernetes objects live in the twin's [`Store`].
//! - Managed node groups are backed by real Auto Scaling groups in moto, tagged as EKS tags
//!   them (`eks:cluster-name`, `eks:nodegroup-name`, `kubernetes.io/cluster/<name>=owned`).
//! - A self-managed group is any Auto Scaling group tagged `kubernetes.io/cluster/<name>`.
//! - One reconciler ([`Eks::reconcile_once`], run in a loop by [`Eks::start`]) makes the Node
//!   objects match the InService instances of every such group, and moves the managed groups
//!   through their statuses on the twin's scaled [`Clock`].
//! - Deleting a group, or lowering its desired size, drains the leaving nodes as EKS does:
//!   evictions (which respect PDBs) for at most [`EksConfig::drain_timeout`], then the
//!   instances are terminated whatever is left on them.

mod asg;
mod autoscaler;
mod drain;
mod error;
mod faults;
mod http;
mod model;
mod nodes;
mod ops;
mod validate;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::Clock;
use crate::store::Store;

pub use autoscaler::{AutoscalerAction, AutoscalerStep};
pub use drain::{DrainRecord, DrainStep};
pub use error::EksError;
pub use faults::{CallFault, CallRule, Counters, Faults};
pub use http::router;
pub use model::{Issue, Nodegroup, NodegroupSpec, NodegroupStatus, ScalingConfig, Taint, Update};
pub use nodes::BOOT_SECONDS_TAG;

/// A subnet of the cluster's VPC and the zone it lies in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subnet {
    pub id: String,
    pub zone: String,
}

/// What the control plane needs to know about its cluster.
#[derive(Clone, Debug)]
pub struct EksConfig {
    pub cluster_name: String,
    /// Kubernetes minor version, e.g. `1.33`.
    pub kubernetes_version: String,
    /// The Kubernetes API URL `DescribeCluster` reports as `endpoint`.
    pub endpoint: String,
    /// `certificateAuthority.data` (base64 of a PEM); absent for a plain-HTTP twin.
    pub certificate_authority: Option<String>,
    pub region: String,
    pub account_id: String,
    /// The moto server holding the Auto Scaling groups (and launch configurations).
    pub moto_url: String,
    /// The VPC's subnets; a node group's zones are those of its subnets.
    pub subnets: Vec<Subnet>,
    /// Simulated time from an instance appearing to its Node registering (Ready).
    pub boot_time: Duration,
    /// How long EKS's own drain evicts before the instance is terminated anyway: 5 minutes
    /// per node, per "Delete a managed node group from your cluster" (EKS user guide:
    /// "If the node hasn't been drained after 5 minutes, Amazon EKS lets Auto Scaling
    /// continue the forced termination of the instance").
    pub drain_timeout: Duration,
    /// Simulated interval between reconciler passes and between drain retries.
    pub poll_interval: Duration,
    /// `releaseVersion` of a group created without one.
    pub default_release_version: String,
}

impl EksConfig {
    /// Defaults: Kubernetes 1.33 in us-east-1, three subnets in us-east-1a/b/c, nodes boot in
    /// 90 s, 5-minute drain, 5-second reconciler period.
    pub fn new(cluster_name: &str, moto_url: &str) -> Self {
        let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
        Self {
            cluster_name: cluster_name.to_string(),
            kubernetes_version: "1.33".to_string(),
            endpoint: "http://127.0.0.1:6443".to_string(),
            certificate_authority: None,
            region: "us-east-1".to_string(),
            account_id: "123456789012".to_string(),
            moto_url: moto_url.to_string(),
            subnets: zones
                .iter()
                .enumerate()
                .map(|(i, z)| Subnet {
                    id: format!("subnet-0000000000000000{i}"),
                    zone: z.to_string(),
                })
                .collect(),
            boot_time: Duration::from_secs(90),
            drain_timeout: Duration::from_secs(300),
            poll_interval: Duration::from_secs(5),
            default_release_version: "1.33.0-20260101".to_string(),
        }
    }

    pub fn cluster_arn(&self) -> String {
        format!(
            "arn:aws:eks:{}:{}:cluster/{}",
            self.region, self.account_id, self.cluster_name
        )
    }

    /// The cluster's subnet in `zone` (the derived id when the cluster has none there).
    pub fn subnet_in(&self, zone: &str) -> String {
        self.subnets
            .iter()
            .find(|s| s.zone == zone)
            .map_or_else(|| crate::twin::groups::subnet_id(zone), |s| s.id.clone())
    }

    /// The zone of a subnet id (unknown subnets fall in the first configured zone).
    pub fn zone_of(&self, subnet: &str) -> String {
        self.subnets
            .iter()
            .find(|s| s.id == subnet)
            .or(self.subnets.first())
            .map(|s| s.zone.clone())
            .unwrap_or_else(|| format!("{}a", self.region))
    }
}

/// What the reconciler remembers about one instance it has seen.
#[derive(Clone, Debug)]
pub(crate) struct InstanceRecord {
    pub asg: String,
    pub first_seen: DateTime<Utc>,
    pub zone: String,
    /// The Node registered for it, once booted.
    pub node_name: Option<String>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub groups: BTreeMap<String, Nodegroup>,
    pub updates: HashMap<String, Update>,
    pub cluster_tags: BTreeMap<String, String>,
    pub instances: HashMap<String, InstanceRecord>,
    /// Instances seen so far per Auto Scaling group, to spread zones by launch order.
    pub launched: HashMap<String, usize>,
    pub boot_overrides: HashMap<String, Duration>,
    pub drains: Vec<DrainRecord>,
    /// Managed groups whose Auto Scaling group a Spot rebalance holds one above its size.
    pub rebalancing: std::collections::HashSet<String>,
    /// What the Cluster Autoscaler did, when one runs.
    pub autoscaler: Vec<AutoscalerAction>,
    /// When each group was created, became ACTIVE, was asked to go, and went.
    pub history: Vec<GroupEvent>,
}

/// A moment in a managed group's life, for the critical path (`report::critical`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEvent {
    pub group: String,
    pub at: DateTime<Utc>,
    pub kind: GroupEventKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupEventKind {
    /// CreateNodegroup accepted.
    Created,
    /// CREATING → ACTIVE: every desired instance in service and its Node Ready.
    Active,
    /// DeleteNodegroup accepted.
    DeleteRequested,
    /// EKS's drain before the deletion ended (at once when the nodes were empty).
    Drained,
    /// The group is gone (DescribeNodegroup answers 404).
    Gone,
}

pub(crate) struct Inner {
    pub cfg: EksConfig,
    pub store: Store,
    pub clock: Clock,
    pub asg: aws_sdk_autoscaling::Client,
    pub state: Mutex<State>,
    pub faults: Faults,
    pub counters: Counters,
    pub created_at: DateTime<Utc>,
}

/// A handle on the control plane. Cheap to clone.
#[derive(Clone)]
pub struct Eks {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Eks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Eks({})", self.inner.cfg.cluster_name)
    }
}

impl Eks {
    /// A control plane for `cfg.cluster_name`, writing Nodes into `store` and reading time from
    /// `clock`. Nothing runs until [`Eks::start`] (or [`Eks::reconcile_once`]).
    pub fn new(cfg: EksConfig, store: Store, clock: Clock) -> Self {
        let asg = asg::client(&cfg);
        let created_at = clock.now();
        Self {
            inner: Arc::new(Inner {
                cfg,
                store,
                clock,
                asg,
                state: Mutex::new(State::default()),
                faults: Faults::default(),
                counters: Counters::default(),
                created_at,
            }),
        }
    }

    /// Every managed node group's shape, by name.
    pub fn group_shapes(&self) -> Vec<crate::report::GroupShape> {
        self.state()
            .groups
            .values()
            .map(|g| crate::report::GroupShape {
                name: g.spec.name.clone(),
                ami_type: g.spec.ami_type.clone(),
                release_version: g.spec.release_version.clone(),
                capacity_type: g.spec.capacity_type.clone(),
                instance_types: g.spec.instance_types.clone(),
                tags: g.spec.tags.clone(),
            })
            .collect()
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> &EksConfig {
        &self.inner.cfg
    }

    pub fn faults(&self) -> &Faults {
        &self.inner.faults
    }

    /// Requests by EKS operation name.
    pub fn counters(&self) -> &Counters {
        &self.inner.counters
    }

    /// Every eviction, block and forced termination EKS's own drains made, in order.
    pub fn drain_log(&self) -> Vec<DrainRecord> {
        self.state().drains.clone()
    }

    /// Whether a group is being deleted (EKS's drain, then its instances, still to come).
    pub fn deleting(&self) -> bool {
        self.state()
            .groups
            .values()
            .any(|g| g.status == NodegroupStatus::Deleting)
    }

    /// When each managed group was created, became ACTIVE, was asked to go and went, in order.
    pub fn group_history(&self) -> Vec<GroupEvent> {
        self.state().history.clone()
    }

    pub(crate) fn log_group(&self, group: &str, kind: GroupEventKind) {
        let at = self.inner.clock.now();
        self.state().history.push(GroupEvent {
            group: group.to_string(),
            at,
            kind,
        });
    }

    /// Overrides the boot time of one group's nodes (managed node group name, or the Auto
    /// Scaling group name of a self-managed group).
    pub fn set_boot_time(&self, group: &str, boot: Duration) {
        self.state().boot_overrides.insert(group.to_string(), boot);
    }

    /// A managed node group as currently described, if it exists.
    pub fn nodegroup(&self, name: &str) -> Option<Nodegroup> {
        self.state().groups.get(name).cloned()
    }

    /// Runs the reconciler every [`EksConfig::poll_interval`] of simulated time until the
    /// returned task is aborted. An error in one pass (moto unreachable) is logged and retried.
    pub fn start(&self) -> tokio::task::JoinHandle<()> {
        let eks = self.clone();
        self.inner
            .store
            .supervisor()
            .spawn("eks reconciler", async move {
                loop {
                    if let Err(e) = eks.reconcile_once().await {
                        tracing::warn!(error = %e, "eks reconcile failed");
                    }
                    eks.inner.clock.sleep(eks.inner.cfg.poll_interval).await;
                }
            })
    }

    /// Serves [`router`] on 127.0.0.1 (an ephemeral port) and returns its base URL.
    pub async fn serve(&self) -> std::io::Result<(String, tokio::task::JoinHandle<()>)> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let sup = self.inner.store.supervisor().clone();
        let app = crate::supervisor::guard_router(router(self.clone()), sup.clone(), "eks server");
        let task = sup.spawn("eks server", async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "eks server stopped");
            }
        });
        Ok((url, task))
    }
}
