//! Load balancers in front of the twin's Services, and the traffic probe that sends requests
//! through them (issue 3 §4).
//!
//! Every Service of type LoadBalancer (and every NodePort Service the scenario fronts with a
//! load balancer, marked `twin.ngm.io/lb-kind`) gets a simulated ALB, NLB or CLB:
//! - its instance targets are the nodes without `node.kubernetes.io/exclude-from-external-load-balancers`,
//!   whatever the label's value. Cordon does not remove a node (Kubernetes 1.19+; the AWS Load
//!   Balancer Controller ignores cordon too). A node that leaves the set drains for the
//!   deregistration delay ([`targets`]);
//! - health checks run every 10 s (scenario `healthCheckIntervalSeconds`), 2 results in a row
//!   to change state. `externalTrafficPolicy: Local`: a node passes only with a ready local
//!   pod of the service (kube-proxy's health check node port), so a node that loses its last
//!   pod fails requests until the check notices. `Cluster`: every present node passes, and
//!   kube-proxy forwards to any ready endpoint cluster-wide;
//! - with an [`AwsTarget`], the same load balancer exists in moto with the same attributes and
//!   registered instances, and the Service's `status.loadBalancer.ingress[0].hostname` is its
//!   DNS name ([`aws`]).
//!
//! [`Balancers::start`] runs all of it, with the [`probe`], as one task on the store's clock.

pub mod aws;
pub mod ip;
pub mod probe;
mod runtime;
pub mod settings;
pub mod targets;
pub mod world;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

pub use aws::{AwsLb, AwsTarget};
pub use probe::{
    ConnectionStats, FailureGroup, FailureReason, FailureSample, ProbeStats, ServiceTraffic, Via,
};
pub use settings::LbSettings;
pub use targets::{TargetGroup, TargetState};
pub use world::EXCLUDE_LABEL;

use aws::AwsShared;
use probe::{Probe, Stream};
use runtime::State;
use world::World;

use crate::scenario::{EndpointLag, LoadBalancerSpec, Scenario, ServiceType, Traffic};
use crate::sim::InFlight;
use crate::store::{EventKind, Resource, Store};

/// What to run: load-balancer settings the scenario gives, the traffic, and the emulator.
#[derive(Clone, Debug, Default)]
pub struct LbConfig {
    /// Settings by (namespace, service); other load-balanced Services use their annotations.
    pub specs: HashMap<(String, String), LoadBalancerSpec>,
    pub traffic: Vec<Traffic>,
    /// How long kube-proxy and ingress controllers take to see an EndpointSlice change.
    pub endpoint_lag: EndpointLag,
    /// Mirror the load balancers in moto (none: a synthetic hostname is set instead).
    pub aws: Option<AwsTarget>,
    /// Auto Scaling group names by node group, for `attachedTo`.
    pub asg_names: HashMap<String, Vec<String>>,
    /// The instances each `attachedTo` load balancer starts with (the attached groups' nodes
    /// at start), until the emulator's attachments are read.
    pub initial_attached: HashMap<(String, String), BTreeSet<String>>,
    /// Send no traffic until [`Balancers::resume_traffic`].
    pub paused: bool,
}

impl LbConfig {
    /// The scenario's load balancers and traffic.
    pub fn from_scenario(s: &Scenario) -> Self {
        let specs = s
            .services
            .iter()
            .filter(|svc| svc.type_ != ServiceType::ClusterIP || svc.load_balancer.is_some())
            .map(|svc| {
                (
                    (svc.namespace.clone(), svc.name.clone()),
                    svc.load_balancer.clone().unwrap_or_default(),
                )
            })
            .collect();
        Self {
            specs,
            traffic: s.traffic.clone(),
            endpoint_lag: s.cluster.endpoint_lag,
            aws: None,
            asg_names: HashMap::new(),
            initial_attached: HashMap::new(),
            paused: false,
        }
    }

    /// The load balancers run, without traffic until [`Balancers::resume_traffic`].
    pub fn paused(mut self) -> Self {
        self.paused = true;
        self
    }

    /// The node groups' Auto Scaling groups and instances now (`attachedTo` names node
    /// groups): `groups` maps a node group to its Auto Scaling group names and instance ids.
    pub fn with_groups(
        mut self,
        groups: &HashMap<String, (Vec<String>, BTreeSet<String>)>,
    ) -> Self {
        self.asg_names = groups
            .iter()
            .map(|(g, (asgs, _))| (g.clone(), asgs.clone()))
            .collect();
        self.initial_attached = self
            .specs
            .iter()
            .filter(|(_, s)| !s.attached_to.is_empty())
            .map(|(key, s)| {
                let ids = s
                    .attached_to
                    .iter()
                    .filter_map(|g| groups.get(g))
                    .flat_map(|(_, ids)| ids.iter().cloned())
                    .collect();
                (key.clone(), ids)
            })
            .collect();
        self
    }

    /// Also create the load balancers in moto at `endpoint_url`, in `region`.
    pub fn with_aws(mut self, endpoint_url: &str, region: &str) -> Self {
        self.aws = Some(AwsTarget {
            endpoint_url: endpoint_url.to_string(),
            region: region.to_string(),
        });
        self
    }
}

/// One simulated load balancer.
#[derive(Clone, Debug)]
pub struct Balancer {
    pub namespace: String,
    pub service: String,
    pub group: TargetGroup,
    /// `externalTrafficPolicy: Local`.
    pub local: bool,
    pub port: i32,
    pub node_port: i32,
    seeded: bool,
    /// Attached to Auto Scaling groups: the targets are their InService instances.
    asg_attached: bool,
    /// The attached instances last seen.
    attached: BTreeSet<String>,
    /// The target states last given to the emulator, by instance id.
    reported: BTreeMap<String, TargetState>,
    /// IP targets (the pods, registered by the Load Balancer Controller): the endpoints its
    /// reconciler last acted on, `None` before its first reconcile.
    ip_seen: Option<ip::Seen>,
    /// Node targets: how late their controller (the in-tree service controller, or the Load
    /// Balancer Controller) sees a node change, and the newest change it acted on.
    node_lag: f64,
    nodes_seen: Option<chrono::DateTime<chrono::Utc>>,
}

impl Balancer {
    /// Whether the targets are pods (keyed by UID) rather than nodes.
    pub fn ip(&self) -> bool {
        self.group.settings.ip_targets
    }
}

/// A load balancer as the report describes it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LbInfo {
    /// `namespace/name` of the Service.
    pub service: String,
    pub settings: LbSettings,
    pub external_traffic_policy: String,
    /// The DNS name in the emulator, when mirrored.
    pub dns_name: Option<String>,
    pub targets: BTreeMap<String, TargetState>,
    /// What the critical path counts of it.
    pub phase: targets::LbPhase,
}

/// The running load balancers and probe. Dropping it leaves the task running; call
/// [`Balancers::stop`].
pub struct Balancers {
    state: Arc<Mutex<State>>,
    aws: Arc<AwsShared>,
    stop: Arc<Notify>,
    task: JoinHandle<()>,
    aws_task: Option<JoinHandle<()>>,
    watch_task: Option<JoinHandle<()>>,
    calls_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Balancers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Balancers")
    }
}

fn parse_service_ref(s: &str) -> (String, String) {
    match s.split_once('/') {
        Some((ns, name)) => (ns.to_string(), name.to_string()),
        None => ("default".to_string(), s.to_string()),
    }
}

impl Balancers {
    /// Starts the load balancers and the probe on `store` (and its clock). `inflight` must be
    /// the simulation's registry ([`crate::sim::Sim::inflight`]) so terminating pods wait for
    /// the probe's requests. Services already in the store get their load balancers with
    /// their targets' current health; traffic starts at once.
    pub fn start(store: &Store, inflight: InFlight, config: LbConfig) -> Self {
        let aws_shared = Arc::new(AwsShared::default());
        aws_shared
            .attached
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend(config.initial_attached.clone());
        let any_attached = config.specs.values().any(|s| !s.attached_to.is_empty());
        let any_ip = config
            .specs
            .values()
            .any(|s| s.target_type == crate::scenario::TargetType::Ip);
        let mut watch_task = None;
        let mut calls_task = None;
        let (aws_tx, aws_task) = match &config.aws {
            Some(target) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let task = store.supervisor().spawn(
                    "load balancers (AWS mirror)",
                    aws::run(target.clone(), store.clone(), aws_shared.clone(), rx),
                );
                if any_attached {
                    watch_task = Some(store.supervisor().spawn(
                        "load balancers (Auto Scaling attachments)",
                        aws::watch_attachments(target.clone(), aws_shared.clone()),
                    ));
                }
                if any_ip {
                    calls_task = Some(store.supervisor().spawn(
                        "load balancers (others' target registrations)",
                        aws::watch_target_calls(target.clone(), aws_shared.clone()),
                    ));
                }
                (Some(tx), Some(task))
            }
            None => (None, None),
        };
        let streams = config
            .traffic
            .iter()
            .map(|t| {
                let (namespace, service) = parse_service_ref(&t.service);
                let backend = t.backend.as_deref().map(parse_service_ref);
                // Every Service a stream reaches carries its load (a chained stream's
                // backend too): the HPA's metric.
                for (ns, svc) in
                    std::iter::once(&(namespace.clone(), service.clone())).chain(backend.as_ref())
                {
                    store.load().add(ns, svc, t.schedule());
                }
                let stream = Stream::new(
                    (namespace, service),
                    t.via,
                    backend,
                    t.schedule(),
                    t.request_seconds.max(0.0),
                );
                match t.connections {
                    Some(n) => stream.keep_alive(n, t.max_connection_age_seconds),
                    None => stream,
                }
            })
            .collect();
        let rx = store.subscribe();
        let mut world = World::load(store);
        world.lag = config.endpoint_lag;
        let mut state = State {
            world,
            balancers: HashMap::new(),
            probe: Probe::new(streams, config.paused),
            specs: config.specs,
            asg_names: config.asg_names,
            aws: aws_shared.clone(),
            nodes_dirty: true,
        };
        for svc in store.list_all(Resource::Service, None) {
            state.on_service(EventKind::Added, &svc, store, aws_tx.as_ref());
        }
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(Notify::new());
        let task = store.supervisor().spawn(
            "load balancers and probe",
            runtime::run(
                state.clone(),
                rx,
                store.clone(),
                inflight,
                aws_tx,
                stop.clone(),
            ),
        );
        Self {
            state,
            aws: aws_shared,
            stop,
            task,
            aws_task,
            watch_task,
            calls_task,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        State::lock(&self.state)
    }

    /// Starts the traffic of a paused start ([`LbConfig::paused`]).
    pub fn resume_traffic(&self) {
        self.state().probe.paused = false;
    }

    /// The probe's figures so far.
    pub fn stats(&self) -> ProbeStats {
        self.state().probe.stats()
    }

    /// The target states of a Service's load balancer, by node name.
    pub fn targets(&self, ns: &str, service: &str) -> Option<BTreeMap<String, TargetState>> {
        self.state()
            .balancers
            .get(&(ns.to_string(), service.to_string()))
            .map(|lb| lb.group.states())
    }

    /// The settings of a Service's load balancer.
    pub fn settings(&self, ns: &str, service: &str) -> Option<LbSettings> {
        self.state()
            .balancers
            .get(&(ns.to_string(), service.to_string()))
            .map(|lb| lb.group.settings.clone())
    }

    /// The emulator's copy of a Service's load balancer, once created.
    pub fn aws(&self, ns: &str, service: &str) -> Option<AwsLb> {
        self.aws
            .lbs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.to_string(), service.to_string()))
            .cloned()
    }

    /// Emulator calls that failed.
    pub fn aws_errors(&self) -> Vec<String> {
        self.aws
            .errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every load balancer, for the report.
    pub fn describe(&self) -> Vec<LbInfo> {
        let st = self.state();
        let mut out: Vec<LbInfo> = st
            .balancers
            .values()
            .map(|lb| LbInfo {
                service: format!("{}/{}", lb.namespace, lb.service),
                settings: lb.group.settings.clone(),
                external_traffic_policy: if lb.local { "Local" } else { "Cluster" }.to_string(),
                dns_name: self.aws(&lb.namespace, &lb.service).map(|a| a.dns_name),
                targets: lb.group.states(),
                phase: lb.group.phase().clone(),
            })
            .collect();
        out.sort_by(|a, b| a.service.cmp(&b.service));
        out
    }

    /// Stops the probe and the load balancers and returns the final figures (requests still
    /// in flight are counted as such, neither succeeded nor failed).
    pub async fn stop(self) -> ProbeStats {
        self.stop.notify_one();
        let _ = self.task.await;
        for t in [self.aws_task, self.watch_task, self.calls_task]
            .into_iter()
            .flatten()
        {
            t.abort();
        }
        State::lock(&self.state).probe.stats()
    }
}
