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
pub mod probe;
pub mod settings;
pub mod targets;
pub mod world;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

pub use aws::{AwsLb, AwsTarget};
pub use probe::{FailureReason, FailureSample, ProbeStats, ServiceTraffic};
pub use settings::LbSettings;
pub use targets::{TargetGroup, TargetState};
pub use world::EXCLUDE_LABEL;

use aws::{AwsCmd, AwsShared};
use probe::{Probe, Stream};
use world::World;

use crate::scenario::{LoadBalancerSpec, Scenario, ServiceType, Traffic};
use crate::sim::InFlight;
use crate::store::{EventKind, Resource, Store};

/// What to run: load-balancer settings the scenario gives, the traffic, and the emulator.
#[derive(Clone, Debug, Default)]
pub struct LbConfig {
    /// Settings by (namespace, service); other load-balanced Services use their annotations.
    pub specs: HashMap<(String, String), LoadBalancerSpec>,
    pub traffic: Vec<Traffic>,
    /// Mirror the load balancers in moto (none: a synthetic hostname is set instead).
    pub aws: Option<AwsTarget>,
}

impl LbConfig {
    /// The scenario's load balancers and traffic.
    pub fn from_scenario(s: &Scenario) -> Self {
        let specs = s
            .services
            .iter()
            .filter(|svc| svc.type_ != ServiceType::ClusterIP || svc.load_balancer.is_some())
            .map(|svc| ((svc.namespace.clone(), svc.name.clone()), svc.load_balancer.clone().unwrap_or_default()))
            .collect();
        Self { specs, traffic: s.traffic.clone(), aws: None }
    }

    /// Also create the load balancers in moto at `endpoint_url`, in `region`.
    pub fn with_aws(mut self, endpoint_url: &str, region: &str) -> Self {
        self.aws = Some(AwsTarget { endpoint_url: endpoint_url.to_string(), region: region.to_string() });
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
    pub(crate) endpoint_cursor: usize,
    seeded: bool,
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
}

struct State {
    world: World,
    balancers: HashMap<(String, String), Balancer>,
    probe: Probe,
    specs: HashMap<(String, String), LoadBalancerSpec>,
    nodes_dirty: bool,
}

/// The running load balancers and probe. Dropping it leaves the task running; call
/// [`Balancers::stop`].
pub struct Balancers {
    state: Arc<Mutex<State>>,
    aws: Arc<AwsShared>,
    stop: Arc<Notify>,
    task: JoinHandle<()>,
    aws_task: Option<JoinHandle<()>>,
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

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// Whether a Service gets a load balancer.
fn is_balanced(svc: &Value, specs: &HashMap<(String, String), LoadBalancerSpec>) -> bool {
    let key = (str_at(svc, "/metadata/namespace").to_string(), str_at(svc, "/metadata/name").to_string());
    str_at(svc, "/spec/type") == "LoadBalancer"
        || (str_at(svc, "/spec/type") == "NodePort"
            && (specs.contains_key(&key) || svc.pointer(&format!("/metadata/annotations/{}", settings::ANN_LB_KIND.replace('/', "~1"))).is_some()))
}

impl State {
    fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
        m.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates, updates or removes the load balancer of one Service.
    fn on_service(&mut self, kind: EventKind, svc: &Value, store: &Store, aws: Option<&mpsc::UnboundedSender<AwsCmd>>) {
        let key = (str_at(svc, "/metadata/namespace").to_string(), str_at(svc, "/metadata/name").to_string());
        if kind == EventKind::Deleted || !is_balanced(svc, &self.specs) {
            self.balancers.remove(&key);
            return;
        }
        let local = str_at(svc, "/spec/externalTrafficPolicy") == "Local";
        let port0 = svc.pointer("/spec/ports/0");
        let num = |p: &str| port0.and_then(|v| v.get(p)).and_then(Value::as_i64).and_then(|n| i32::try_from(n).ok());
        let (port, node_port) = (num("port").unwrap_or(80), num("nodePort").unwrap_or(30080));
        if let Some(lb) = self.balancers.get_mut(&key) {
            lb.local = local;
            return;
        }
        let settings = match self.specs.get(&key) {
            Some(spec) => LbSettings::from_spec(spec),
            None => LbSettings::from_service(svc),
        };
        match aws {
            Some(tx) => {
                let _ = tx.send(AwsCmd::Ensure { key: key.clone(), settings: settings.clone(), node_port, port });
            }
            None if svc.pointer("/status/loadBalancer/ingress/0/hostname").is_none() => {
                let host = format!("{}.elb.twin.local", aws::lb_name("twin", &key.0, &key.1));
                let _ = store.mutate(Resource::Service, &key.0, &key.1, |v| {
                    v["status"]["loadBalancer"] = json!({ "ingress": [{ "hostname": host }] });
                    Ok(())
                });
            }
            None => {}
        }
        self.balancers.insert(
            key.clone(),
            Balancer {
                namespace: key.0,
                service: key.1,
                group: TargetGroup::new(settings),
                local,
                port,
                node_port,
                endpoint_cursor: 0,
                seeded: false,
            },
        );
        self.nodes_dirty = true;
    }

    /// Whether `node` passes this load balancer's health check now.
    fn passes(world: &World, lb: &Balancer, node: &str) -> bool {
        Self::check(world, &lb.namespace, &lb.service, lb.local, node)
    }

    fn check(world: &World, ns: &str, service: &str, local: bool, node: &str) -> bool {
        world.nodes.contains_key(node) && (!local || world.has_local_endpoint(ns, service, node))
    }

    /// Brings every target set, health check and request up to `now`.
    fn step(&mut self, now: DateTime<Utc>, inflight: &InFlight, aws: Option<&mpsc::UnboundedSender<AwsCmd>>) {
        self.probe.complete_due(now, &self.balancers, &self.world);
        let draining_over = self.balancers.values().any(|lb| lb.group.draining_until().is_some_and(|t| t <= now));
        let resync = std::mem::take(&mut self.nodes_dirty) || draining_over;
        let world = &self.world;
        for lb in self.balancers.values_mut() {
            if resync || !lb.seeded {
                let eligible: Vec<(String, Option<String>, bool)> = world
                    .nodes
                    .values()
                    .filter(|n| !n.excluded)
                    .map(|n| (n.name.clone(), n.instance_id.clone(), Self::passes(world, lb, &n.name)))
                    .collect();
                let seed = !lb.seeded;
                let changes = lb.group.sync(&eligible, now, seed);
                lb.seeded = true;
                if let Some(tx) = aws {
                    let key = (lb.namespace.clone(), lb.service.clone());
                    let ids = |v: &[(String, Option<String>)]| v.iter().filter_map(|(_, i)| i.clone()).collect::<Vec<_>>();
                    let _ = tx.send(AwsCmd::Register { key: key.clone(), instances: ids(&changes.registered) });
                    let _ = tx.send(AwsCmd::Deregister { key, instances: ids(&changes.deregistered) });
                }
            }
            if lb.group.check_due(now) {
                let (ns, service, local) = (lb.namespace.as_str(), lb.service.as_str(), lb.local);
                lb.group.check(now, |node| Self::check(world, ns, service, local, node));
            }
        }
        self.probe.issue_due(now, &mut self.balancers, &self.world, inflight);
    }

    fn next_wake(&self) -> Option<DateTime<Utc>> {
        let lbs = self.balancers.values().flat_map(|lb| [lb.group.next_check(), lb.group.draining_until()]).flatten();
        lbs.chain(self.probe.next_wake()).min()
    }
}

impl Balancers {
    /// Starts the load balancers and the probe on `store` (and its clock). `inflight` must be
    /// the simulation's registry ([`crate::sim::Sim::inflight`]) so terminating pods wait for
    /// the probe's requests. Services already in the store get their load balancers with
    /// their targets' current health; traffic starts at once.
    pub fn start(store: &Store, inflight: InFlight, config: LbConfig) -> Self {
        let aws_shared = Arc::new(AwsShared::default());
        let (aws_tx, aws_task) = match &config.aws {
            Some(target) => {
                let (tx, rx) = mpsc::unbounded_channel();
                let task = tokio::spawn(aws::run(target.clone(), store.clone(), aws_shared.clone(), rx));
                (Some(tx), Some(task))
            }
            None => (None, None),
        };
        let streams = config
            .traffic
            .iter()
            .map(|t| {
                let (namespace, service) = parse_service_ref(&t.service);
                Stream {
                    namespace,
                    service,
                    interval_seconds: 1.0 / t.requests_per_second.max(1e-3),
                    request_seconds: t.request_seconds.max(0.0),
                    next: None,
                }
            })
            .collect();
        let mut rx = store.subscribe();
        let mut state = State {
            world: World::load(store),
            balancers: HashMap::new(),
            probe: Probe::new(streams),
            specs: config.specs,
            nodes_dirty: true,
        };
        for svc in store.list_all(Resource::Service, None) {
            state.on_service(EventKind::Added, &svc, store, aws_tx.as_ref());
        }
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(Notify::new());
        let task = {
            let (state, stop, store) = (state.clone(), stop.clone(), store.clone());
            tokio::spawn(async move {
                let clock = store.clock().clone();
                loop {
                    let wake = {
                        let mut st = State::lock(&state);
                        loop {
                            match rx.try_recv() {
                                Ok(ev) => {
                                    let now = clock.now();
                                    st.world.apply(&ev, now);
                                    match ev.resource {
                                        Resource::Node => st.nodes_dirty = true,
                                        Resource::Service => st.on_service(ev.kind, &ev.object, &store, aws_tx.as_ref()),
                                        _ => {}
                                    }
                                }
                                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                                    st.world.reload(&store, clock.now());
                                    st.nodes_dirty = true;
                                }
                                Err(_) => break,
                            }
                        }
                        st.step(clock.now(), &inflight, aws_tx.as_ref());
                        st.next_wake()
                    };
                    let sleep = async {
                        match wake {
                            Some(t) => clock.sleep_until(t).await,
                            None => std::future::pending().await,
                        }
                    };
                    tokio::select! {
                        _ = stop.notified() => return,
                        r = rx.recv() => match r {
                            Ok(ev) => {
                                let mut st = State::lock(&state);
                                st.world.apply(&ev, clock.now());
                                match ev.resource {
                                    Resource::Node => st.nodes_dirty = true,
                                    Resource::Service => st.on_service(ev.kind, &ev.object, &store, aws_tx.as_ref()),
                                    _ => {}
                                }
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                                let mut st = State::lock(&state);
                                st.world.reload(&store, clock.now());
                                st.nodes_dirty = true;
                            }
                            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                        },
                        _ = sleep => {}
                    }
                }
            })
        };
        Self { state, aws: aws_shared, stop, task, aws_task }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        State::lock(&self.state)
    }

    /// The probe's figures so far.
    pub fn stats(&self) -> ProbeStats {
        self.state().probe.stats()
    }

    /// The target states of a Service's load balancer, by node name.
    pub fn targets(&self, ns: &str, service: &str) -> Option<BTreeMap<String, TargetState>> {
        self.state().balancers.get(&(ns.to_string(), service.to_string())).map(|lb| lb.group.states())
    }

    /// The settings of a Service's load balancer.
    pub fn settings(&self, ns: &str, service: &str) -> Option<LbSettings> {
        self.state().balancers.get(&(ns.to_string(), service.to_string())).map(|lb| lb.group.settings.clone())
    }

    /// The emulator's copy of a Service's load balancer, once created.
    pub fn aws(&self, ns: &str, service: &str) -> Option<AwsLb> {
        self.aws.lbs.lock().unwrap_or_else(|e| e.into_inner()).get(&(ns.to_string(), service.to_string())).cloned()
    }

    /// Emulator calls that failed.
    pub fn aws_errors(&self) -> Vec<String> {
        self.aws.errors.lock().unwrap_or_else(|e| e.into_inner()).clone()
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
        if let Some(t) = self.aws_task {
            t.abort();
        }
        let stats = State::lock(&self.state).probe.stats();
        stats
    }
}
