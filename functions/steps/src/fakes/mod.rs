//! A stateful in-memory world behind every port, good enough to drive a whole migration one
//! step at a time.
//!
//! [`FakeCloud`] holds an EKS cluster with node groups, Auto Scaling groups, launch templates,
//! load balancers, and a Kubernetes API with nodes, pods, Deployments, StatefulSets, HPAs, PDBs
//! and DaemonSets. Port calls change it at once, as the APIs do; what controllers do later
//! (node groups becoming ACTIVE, ReplicaSets creating and deleting pods, HPAs clamping replicas,
//! graceful termination finishing) happens only in [`FakeCloud::reconcile`], which a test calls
//! between steps. So a step run twice with no reconcile in between sees its own writes only,
//! which is what an idempotence test needs. Every call is recorded, and failures can be
//! injected per operation.

pub mod builders;
mod controllers;
mod kube_port;
mod lock_port;
mod ports;

pub use builders::{cluster_arn, deployment, managed_group};

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use ngm_core::model::{
    AsgInfo, ClusterInfo, DaemonSetView, EventType, ExecutionInfo, HpaView, Labels,
    LaunchTemplateVersion, LoadBalancerInfo, NodeGroupSpec, NodeView, ObjectRef, PdbView, PodView,
    Resources, ServiceView, TargetHealth, WorkloadRef, WorkloadView,
};
use ngm_core::ports::{LockRecord, PortError, PortResult};

use crate::world::World;

/// One recorded port call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    pub op: &'static str,
    pub target: String,
    pub mutating: bool,
}

/// One recorded Kubernetes Event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    pub object: ObjectRef,
    pub event_type: EventType,
    pub reason: String,
}

/// Who owns a node: the node group or Auto Scaling group whose deletion removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeOwner {
    Group(String),
    Asg(String),
}

/// Everything that makes up the world, without the call log: two snapshots compare equal when
/// the world is the same.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub clusters: BTreeMap<String, ClusterInfo>,
    pub nodegroups: BTreeMap<String, NodeGroupSpec>,
    pub asgs: BTreeMap<String, AsgInfo>,
    pub templates: BTreeMap<String, Vec<LaunchTemplateVersion>>,
    pub nodes: BTreeMap<String, NodeView>,
    pub node_owners: BTreeMap<String, NodeOwner>,
    pub pods: BTreeMap<(String, String), PodView>,
    pub workloads: BTreeMap<WorkloadRef, WorkloadView>,
    pub hpas: BTreeMap<(String, String), HpaView>,
    /// What each HPA's metric asks for (its load), when the HPA was added with a target: the
    /// fake controller scales to it within min and max.
    pub hpa_load: BTreeMap<(String, String), i32>,
    pub pdbs: BTreeMap<(String, String), PdbView>,
    pub daemonsets: Vec<DaemonSetView>,
    pub services: Vec<ServiceView>,
    pub target_group_bindings: Vec<ngm_core::model::TargetGroupBindingView>,
    pub volumes: Vec<ngm_core::model::VolumeView>,
    /// Karpenter's NodePools; `None`: Karpenter is not installed.
    pub node_pools: Option<Vec<ngm_core::model::NodePoolView>>,
    pub load_balancers: BTreeMap<String, LoadBalancerInfo>,
    pub target_health: BTreeMap<String, Vec<TargetHealth>>,
    pub subnet_zones: BTreeMap<String, String>,
    pub parameters: BTreeMap<String, String>,
    pub executions: Vec<ExecutionInfo>,
    /// The lock table, by key.
    pub locks: BTreeMap<String, LockRecord>,
    /// Namespaces being deleted: evictions there answer 403 NamespaceTerminating, and
    /// `reconcile` deletes their pods, as the namespace controller does.
    pub terminating_namespaces: std::collections::BTreeSet<String>,
    /// Names and uids come from this counter, so a run is deterministic.
    pub counter: u64,
}

impl Snapshot {
    /// Each HPA's spec and annotations: what ngm changes and must put back (generations and
    /// status are the controller's).
    pub fn hpa_specs(&self) -> BTreeMap<(String, String), (Option<i32>, i32, Labels)> {
        self.hpas
            .iter()
            .map(|(k, h)| {
                (
                    k.clone(),
                    (h.min_replicas, h.max_replicas, h.annotations.clone()),
                )
            })
            .collect()
    }
}

#[derive(Debug, Default)]
pub(crate) struct Inner {
    pub(crate) w: Snapshot,
    pub(crate) calls: Vec<Call>,
    pub(crate) events: Vec<RecordedEvent>,
    pub(crate) failures: BTreeMap<String, VecDeque<PortError>>,
    /// Client tokens already answered, with what they created.
    pub(crate) tokens: BTreeMap<String, String>,
    pub(crate) node_allocatable: Resources,
}

/// The fake world. Cheap to clone (shared).
#[derive(Debug, Clone, Default)]
pub struct FakeCloud {
    inner: Arc<Mutex<Inner>>,
}

impl FakeCloud {
    pub fn new() -> FakeCloud {
        let f = FakeCloud::default();
        f.lock().node_allocatable = Resources {
            cpu_millis: 4000,
            memory_bytes: 16 << 30,
        };
        f
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A test that panicked while holding the lock has failed already; keep the data.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A `World` whose every port is this fake.
    pub fn world(&self) -> World {
        World {
            eks: Arc::new(self.clone()),
            asg: Arc::new(self.clone()),
            ec2: Some(Arc::new(self.clone())),
            elb: Arc::new(self.clone()),
            ssm: Arc::new(self.clone()),
            sfn: Arc::new(self.clone()),
            kube: Arc::new(self.clone()),
            lock: Arc::new(self.clone()),
        }
    }

    /// The world's current contents.
    pub fn snapshot(&self) -> Snapshot {
        self.lock().w.clone()
    }

    /// Every call so far.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The mutating calls so far, as `op target`.
    pub fn mutations(&self) -> Vec<String> {
        self.lock()
            .calls
            .iter()
            .filter(|c| c.mutating)
            .map(|c| format!("{} {}", c.op, c.target))
            .collect()
    }

    pub fn clear_calls(&self) {
        self.lock().calls.clear();
    }

    pub fn events(&self) -> Vec<RecordedEvent> {
        self.lock().events.clone()
    }

    /// The next call of `op` (a port method name, e.g. `evict_pod`) fails with `err`.
    pub fn fail_next(&self, op: &str, err: PortError) {
        self.lock()
            .failures
            .entry(op.to_string())
            .or_default()
            .push_back(err);
    }

    /// Changes the world directly, as a test's setup or an outside actor would.
    pub fn edit<T>(&self, f: impl FnOnce(&mut Snapshot) -> T) -> T {
        f(&mut self.lock().w)
    }
}

impl Inner {
    /// Records a call and answers an injected failure if one is queued for `op`.
    pub(crate) fn enter(
        &mut self,
        op: &'static str,
        target: &str,
        mutating: bool,
    ) -> PortResult<()> {
        self.calls.push(Call {
            op,
            target: target.to_string(),
            mutating,
        });
        match self.failures.get_mut(op).and_then(VecDeque::pop_front) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.w.counter += 1;
        self.w.counter
    }
}
