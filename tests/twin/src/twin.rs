//! One object that runs a whole cluster twin from a [`Scenario`]: moto, the clock, the store,
//! ONE HTTP server on 127.0.0.1 serving both the Kubernetes API and the EKS REST API, the
//! controllers, the EKS control plane with the scenario's node groups backed by moto Auto
//! Scaling groups ([`groups`]), the workloads, the load balancers with their traffic probe,
//! the faults ([`faults`]) and the run's report.
//!
//! Every node of a scenario belongs to an Auto Scaling group in moto, registered by the EKS
//! reconciler from that group's InService instances, so ngm's scaling or deletion of a group
//! really removes its nodes. Initial nodes boot at once; nodes launched later take the
//! group's `bootSeconds`.

pub mod faults;
pub mod groups;
pub mod moto;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ngm_testkit::moto::{MotoError, MotoServer};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::api::{ApiOptions, router_with};
use crate::clock::Clock;
use crate::eks::{self, Eks, EksConfig, EksError};
use crate::kubeconfig::write_kubeconfig;
use crate::lb::{Balancers, LbConfig};
use crate::report::{Recorder, Report, RunParts};
use crate::scenario::{NodeGroupKind, Scenario, ScenarioError, wait_until};
use crate::server::{ServerHandle, serve_app};
use crate::sim::{Sim, SimConfig};
use crate::store::Store;

/// Why the twin could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum TwinError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error(transparent)]
    Moto(#[from] MotoError),
    #[error("serving the twin: {0}")]
    Io(#[from] std::io::Error),
    #[error("creating a node group: {0}")]
    Eks(#[from] EksError),
    #[error("moto refused: {0}")]
    Aws(String),
    #[error("node group: {0}")]
    NodeGroup(String),
    #[error("the node groups did not come up within {0:?}: {1}")]
    NotSettled(Duration, String),
    #[error("fault cannot be injected: {0}")]
    UnsupportedFault(String),
    #[error("no run was begun (call Twin::begin_run first)")]
    NoRun,
    /// A twin task (controllers, kubelet, load balancers, EKS, the servers...) panicked: the
    /// cluster no longer behaves, so the run ends at once.
    #[error("twin task {task} panicked: {message}")]
    TaskPanicked { task: String, message: String },
    #[error("the migration request: {0}")]
    Request(String),
}

/// How to run the twin.
#[derive(Clone, Debug)]
pub struct TwinOptions {
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
    /// Where to write the kubeconfig (default: `<tmp>/ngm-twin-<port>.kubeconfig`).
    pub kubeconfig: Option<PathBuf>,
    /// An already running moto; otherwise the twin starts its own when a scenario needs one.
    pub moto_url: Option<String>,
    /// Overrides the scenario's `cluster.speed`.
    pub speed: Option<f64>,
    /// Real time allowed for node groups, and then workloads, to come up.
    pub settle_timeout: Duration,
}

impl Default for TwinOptions {
    fn default() -> Self {
        Self {
            port: 0,
            kubeconfig: None,
            moto_url: None,
            speed: None,
            settle_timeout: Duration::from_secs(120),
        }
    }
}

/// A running twin. [`Twin::shutdown`] stops it; dropping it stops the tasks less politely.
pub struct Twin {
    url: String,
    store: Store,
    clock: Clock,
    scenario: Option<Scenario>,
    moto: Option<MotoServer>,
    moto_url: Option<String>,
    eks: Option<Eks>,
    sim: Option<Sim>,
    balancers: Option<Balancers>,
    recorder: Option<Recorder>,
    server: Option<ServerHandle>,
    tasks: Vec<JoinHandle<()>>,
    kubeconfig: PathBuf,
}

impl std::fmt::Debug for Twin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Twin({})", self.url)
    }
}

impl Drop for Twin {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// The EKS reconciler's period: 5 simulated seconds, but no more often than every 50 ms of
/// real time, so a fast clock does not flood moto with DescribeAutoScalingGroups.
fn poll_interval(speed: f64) -> Duration {
    Duration::from_secs_f64(5.0_f64.max(speed * 0.05))
}

/// Fills the twin's values into a migration request ([`crate::scenario::resolve_subnets`]).
fn resolve_request(
    request: &serde_json::Value,
    eks: Option<&Eks>,
) -> Result<serde_json::Value, TwinError> {
    let subnet = |zone: &str| {
        eks.and_then(|e| {
            e.config()
                .subnets
                .iter()
                .find(|s| s.zone == zone)
                .map(|s| s.id.clone())
        })
    };
    crate::scenario::resolve_subnets(request, &subnet).map_err(TwinError::Request)
}

impl Twin {
    /// Runs `scenario` with default options.
    pub async fn boot(scenario: &Scenario) -> Result<Self, TwinError> {
        Self::start(Some(scenario.clone()), TwinOptions::default()).await
    }

    /// Starts a twin. Without a scenario it serves an empty cluster, with the EKS API only if
    /// `options.moto_url` is given. With one it returns once the node groups are up (managed
    /// ones ACTIVE), every workload is Ready and the load balancers and probe run.
    pub async fn start(
        scenario: Option<Scenario>,
        options: TwinOptions,
    ) -> Result<Self, TwinError> {
        if let Some(s) = &scenario {
            faults::check(s)?;
        }
        let speed = options
            .speed
            .or(scenario.as_ref().map(|s| s.cluster.speed))
            .unwrap_or(1.0);
        let clock = Clock::scaled(speed);
        let store = Store::new(clock.clone());
        let (moto, moto_url) = match (&options.moto_url, &scenario) {
            (Some(url), _) => (None, Some(url.clone())),
            (None, Some(_)) => {
                let m = MotoServer::start(None).await?;
                let url = m.url.clone();
                (Some(m), Some(url))
            }
            (None, None) => (None, None),
        };
        let listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port))).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let version = scenario
            .as_ref()
            .map_or_else(|| "1.33".to_string(), |s| s.cluster.version.clone());
        // The cluster's subnets are moto's default ones where a zone has one, so EC2
        // DescribeSubnets (which ngm calls) knows them.
        let moto_subnets = match (&moto_url, &scenario) {
            (Some(m), Some(s)) => {
                crate::lb::aws::default_subnets_by_zone(&crate::lb::aws::AwsTarget {
                    endpoint_url: m.clone(),
                    region: s.cluster.region.clone(),
                })
                .await
                .unwrap_or_default()
            }
            _ => Default::default(),
        };
        let eks = moto_url.as_ref().map(|moto_url| {
            let mut cfg = EksConfig::new(
                scenario
                    .as_ref()
                    .map_or("twin", |s| s.cluster.name.as_str()),
                moto_url,
            );
            cfg.kubernetes_version = version.clone();
            cfg.endpoint = url.clone();
            cfg.poll_interval = poll_interval(speed);
            if let Some(s) = &scenario {
                cfg.region = s.cluster.region.clone();
                cfg.subnets = groups::subnets(s)
                    .into_iter()
                    .map(|mut sub| {
                        if let Some(id) = moto_subnets.get(&sub.zone) {
                            sub.id.clone_from(id);
                        }
                        sub
                    })
                    .collect();
                if let Some(g) = s.cluster.node_groups.first() {
                    cfg.boot_time = Duration::from_secs_f64(g.boot_seconds.max(0.0));
                }
            }
            Eks::new(cfg, store.clone(), clock.clone())
        });
        let api = router_with(
            store.clone(),
            ApiOptions {
                kubernetes_version: version,
            },
        );
        // The EKS paths (`/clusters/...`, `/tags/...`) never collide with the Kubernetes
        // API's, which answers everything else.
        let app = match &eks {
            Some(e) => eks::router(e.clone()).merge(api),
            None => api,
        };
        let app = crate::supervisor::guard_router(app, store.supervisor().clone(), "api server");
        let server = serve_app(listener, app)?;
        let kubeconfig = options.kubeconfig.clone().unwrap_or_else(|| {
            std::env::temp_dir().join(format!("ngm-twin-{}.kubeconfig", server.addr.port()))
        });
        write_kubeconfig(&kubeconfig, &url)?;
        let sim = crate::sim::start(&store, SimConfig::default());
        let mut twin = Self {
            url,
            store,
            clock,
            scenario: None,
            moto,
            moto_url,
            eks,
            sim: Some(sim),
            balancers: None,
            recorder: None,
            server: Some(server),
            tasks: Vec::new(),
            kubeconfig,
        };
        if let Some(e) = &twin.eks {
            twin.tasks.push(e.start());
        }
        if let Some(s) = scenario {
            twin.load(&s, options.settle_timeout).await?;
            twin.scenario = Some(s);
        }
        Ok(twin)
    }

    /// The scenario's migration request with the twin's values filled in:
    /// `${subnet:<zone>}` becomes the twin's subnet in that zone (an unknown zone is an
    /// error). `None` when the scenario has no `migration:`.
    pub fn migration_request(&self) -> Result<Option<serde_json::Value>, TwinError> {
        let Some(request) = self.scenario.as_ref().and_then(|s| s.migration.as_ref()) else {
            return Ok(None);
        };
        resolve_request(request, self.eks.as_ref()).map(Some)
    }

    /// Creates the scenario's node groups, then its workloads, then its load balancers.
    async fn load(&mut self, s: &Scenario, timeout: Duration) -> Result<(), TwinError> {
        let (Some(eks), Some(moto_url)) = (self.eks.clone(), self.moto_url.clone()) else {
            return Err(TwinError::NodeGroup("a scenario needs moto".into()));
        };
        // A placeholder the twin cannot fill fails the scenario before anything is created.
        if let Some(request) = &s.migration {
            resolve_request(request, Some(&eks))?;
        }
        let asg = groups::asg_client(&moto_url, &s.cluster.region);
        let ec2 = groups::ec2_client(&moto_url, &s.cluster.region);
        for g in &s.cluster.node_groups {
            // The initial cluster is already running when the story starts.
            eks.set_boot_time(&g.name, Duration::ZERO);
            match g.kind {
                NodeGroupKind::Managed => {
                    eks.create_nodegroup(&groups::create_request(eks.config(), g))?;
                }
                NodeGroupKind::SelfManaged => {
                    let subnets: Vec<String> =
                        g.zones.iter().map(|z| eks.config().subnet_in(z)).collect();
                    groups::create_self_managed(&asg, &ec2, &s.cluster.name, g, &subnets).await?;
                }
            }
        }
        let mut last = String::new();
        let mut failed = None;
        let settled = wait_until(&self.clock, timeout, Duration::ZERO, || {
            for g in &s.cluster.node_groups {
                let status = eks.nodegroup(&g.name).map(|n| n.status);
                match groups::unsettled(&self.store, status, g) {
                    Ok(None) => {}
                    Ok(Some(why)) => {
                        last = why;
                        return false;
                    }
                    Err(e) => {
                        failed = Some(e);
                        return true;
                    }
                }
            }
            true
        })
        .await;
        if let Some(e) = failed {
            return Err(e);
        }
        if !settled {
            return Err(TwinError::NotSettled(timeout, last));
        }
        for g in &s.cluster.node_groups {
            eks.set_boot_time(&g.name, Duration::from_secs_f64(g.boot_seconds.max(0.0)));
        }
        // The node groups exist already; the scenario part creates the rest (workloads,
        // services, Kubernetes faults) and waits until every workload is Ready.
        let mut rest = s.clone();
        rest.cluster.node_groups.clear();
        let inflight = self.sim.as_ref().map(|x| x.inflight().clone());
        let lb = LbConfig::from_scenario(s)
            .with_aws(&moto_url, &s.cluster.region)
            .with_groups(&groups::asgs_and_instances(&self.store, &eks, s));
        // Pods with the Load Balancer Controller's readiness gates turn Ready only once their
        // targets are healthy: the load balancers run (without traffic) while they settle.
        let gated = s
            .workloads
            .iter()
            .any(|w| !rest.readiness_gates(w).is_empty());
        let balancers = if gated {
            rest.create(&self.store)?;
            let b = Balancers::start(
                &self.store,
                inflight.clone().unwrap_or_default(),
                lb.paused(),
            );
            rest.wait_settled(&self.store, &self.clock, timeout).await?;
            faults::install_aws(s, &eks, &moto_url).await?;
            b.resume_traffic();
            b
        } else {
            rest.apply(&self.store, &self.clock, timeout).await?;
            faults::install_aws(s, &eks, &moto_url).await?;
            Balancers::start(&self.store, inflight.unwrap_or_default(), lb)
        };
        // ngm finds IP target groups through their TargetGroupBindings.
        let bindings = s
            .services
            .iter()
            .filter(|x| {
                x.load_balancer
                    .as_ref()
                    .is_some_and(|l| l.target_type == crate::scenario::TargetType::Ip)
            })
            .count();
        let store = self.store.clone();
        let made = wait_until(&self.clock, timeout, Duration::ZERO, || {
            store
                .list_all(crate::store::Resource::TargetGroupBinding, None)
                .len()
                >= bindings
        })
        .await;
        self.balancers = Some(balancers);
        // The autoscaler starts on the settled cluster, as one deployed into it would.
        if let Some(settings) = &s.cluster.cluster_autoscaler {
            self.tasks.push(eks.start_autoscaler(settings.clone()));
        }
        if !made {
            return Err(TwinError::NotSettled(
                timeout,
                "the TargetGroupBindings of the IP target groups were not made".into(),
            ));
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT`: the Kubernetes API and the EKS REST API.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Resolves only when a twin task panicked (at once if one already has), naming the task
    /// and the panic. Whoever runs the twin selects on it and ends the run with this error.
    pub async fn fatal(&self) -> TwinError {
        let p = self.store.supervisor().fatal().await;
        TwinError::TaskPanicked {
            task: p.task,
            message: p.message,
        }
    }

    /// The moto server's URL (every other AWS API), if the twin has one.
    pub fn moto_url(&self) -> Option<&str> {
        self.moto_url.as_deref()
    }

    /// The kubeconfig written for kubectl and kube clients.
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The EKS control plane, when the twin has moto.
    /// Whether what a run set going has ended: no node group is still being deleted (EKS's
    /// drain runs up to its timeout after DeleteNodegroup answers), and the node lifecycle
    /// controllers and the pod garbage collector have removed every terminated instance's
    /// Node and pods. The world is judged once this holds.
    pub fn settled(&self) -> bool {
        crate::sim::nodelifecycle::settled(&self.store)
            && self.eks.as_ref().is_none_or(|e| !e.deleting())
    }

    pub fn eks(&self) -> Option<&Eks> {
        self.eks.as_ref()
    }

    /// The controllers (their in-flight registry and volume zones).
    pub fn sim(&self) -> Option<&Sim> {
        self.sim.as_ref()
    }

    /// The load balancers and the traffic probe, once a scenario is loaded.
    pub fn balancers(&self) -> Option<&Balancers> {
        self.balancers.as_ref()
    }

    pub fn scenario(&self) -> Option<&Scenario> {
        self.scenario.as_ref()
    }

    /// The names of a scenario node group's Ready nodes.
    pub fn ready_nodes(&self, group: &str) -> Vec<String> {
        self.scenario
            .iter()
            .flat_map(|s| &s.cluster.node_groups)
            .find(|g| g.name == group)
            .map(|g| groups::nodes_of(&self.store, g).0)
            .unwrap_or_default()
    }

    /// What a client (ngm, the AWS CLI) needs in its environment to use this twin: the EKS
    /// API here and every other AWS API in moto (when the twin has moto), dummy credentials,
    /// the region, and the kubeconfig.
    pub fn env(&self) -> BTreeMap<String, String> {
        let region = self
            .scenario
            .as_ref()
            .map_or("us-east-1", |s| s.cluster.region.as_str());
        let mut env = BTreeMap::from([
            ("AWS_REGION".to_string(), region.to_string()),
            ("AWS_DEFAULT_REGION".to_string(), region.to_string()),
            ("AWS_ACCESS_KEY_ID".to_string(), "testing".to_string()),
            ("AWS_SECRET_ACCESS_KEY".to_string(), "testing".to_string()),
            ("NGM_CLUSTER_ENDPOINT".to_string(), self.url.clone()),
            (
                "KUBECONFIG".to_string(),
                self.kubeconfig.display().to_string(),
            ),
        ]);
        if let Some(moto) = &self.moto_url {
            env.insert("AWS_ENDPOINT_URL".to_string(), moto.clone());
        }
        if self.eks.is_some() {
            env.insert("AWS_ENDPOINT_URL_EKS".to_string(), self.url.clone());
        }
        if let Some(clock) = self.clock.ngm_clock() {
            env.insert("NGM_CLOCK".to_string(), clock);
        }
        env
    }

    /// Marks the start of the migration: snapshots every object for the report and arms the
    /// scenario's timed pod kills.
    pub fn begin_run(&mut self) {
        let mut recorder = Recorder::start(&self.store);
        self.store.load().start(self.store.clock().now());
        if let Some(s) = &self.scenario {
            recorder = recorder.named(&s.name);
            let kills = faults::arm_kills(s, &self.store);
            self.tasks.extend(kills);
            let deletions = faults::arm_namespace_deletions(s, &self.store);
            self.tasks.extend(deletions);
            let rollouts = faults::arm_bad_rollouts(s, &self.store);
            self.tasks.extend(rollouts);
            let rebalances = faults::arm_rebalances(s, &self.store, self.eks.as_ref());
            self.tasks.extend(rebalances);
        }
        self.recorder = Some(recorder);
    }

    /// Ends the run: stops the traffic probe and compiles the report against the cluster as
    /// it is now.
    pub async fn finish_run(&mut self) -> Result<Report, TwinError> {
        let recorder = self.recorder.take().ok_or(TwinError::NoRun)?;
        let mut parts = RunParts::default();
        if let Some(b) = self.balancers.take() {
            parts.load_balancers = b.describe();
            parts.traffic = Some(b.stop().await);
        }
        if let Some(e) = &self.eks {
            parts = parts.with_eks(e);
        }
        if let Some(m) = &self.moto_url {
            parts = parts.with_moto(m).await;
        }
        Ok(recorder.finish(parts).await)
    }

    /// Stops the probe, the controllers, the EKS reconciler, the server and an owned moto.
    pub async fn shutdown(mut self) -> Result<(), TwinError> {
        if let Some(b) = self.balancers.take() {
            b.stop().await;
        }
        if let Some(sim) = self.sim.take() {
            sim.stop().await;
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
        if let Some(server) = self.server.take() {
            server.shutdown().await?;
        }
        if let Some(moto) = self.moto.take() {
            moto.stop().await;
        }
        Ok(())
    }
}
