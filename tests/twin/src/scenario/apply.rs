//! Loading a scenario and creating its initial cluster.

use std::path::Path;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use serde_json::Value;

use super::build::{service_object, workload_objects};
use super::model::{
    Api, AttachedWith, Fault, LbKind, LbThrough, NodeGroup, NodeGroupKind, Scenario, ServiceType,
    TargetType, Traffic, Via, Workload, WorkloadKind,
};
use crate::clock::Clock;
use crate::sim::nodes::{NodeTemplate, register_node};
use crate::sim::podutil::{is_ready, phase};
use crate::sim::{Sim, SimConfig};
use crate::store::{ApiError, CrashLoopRule, FaultRule, Resource, Store};

/// Why a scenario could not be loaded or applied.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid scenario: {0}")]
    Parse(#[from] serde_yaml::Error),
    #[error("invalid scenario: {0}")]
    Invalid(String),
    #[error("creating {what}: {source}")]
    Create { what: String, source: Box<ApiError> },
    #[error("the initial cluster did not settle within {0:?}: {1}")]
    NotSettled(Duration, String),
}

/// What [`Scenario::apply`] created.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// Node names per node group, in creation order.
    pub nodes: Vec<(String, Vec<String>)>,
    pub objects: usize,
}

/// Polls `cond` until it holds or `timeout` of real time passes. On a manual clock each
/// poll also advances simulated time by `step`, so controllers waiting on a deadline progress.
pub async fn wait_until(
    clock: &Clock,
    timeout: Duration,
    step: Duration,
    mut cond: impl FnMut() -> bool,
) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        if clock.is_manual() {
            clock.advance(step);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// A stable fake AMI id for a release.
fn ami_for(group: &NodeGroup) -> String {
    group.ami_id.clone().unwrap_or_else(|| {
        let h = group
            .ami_release
            .bytes()
            .fold(0xcbf2_9ce4_8422_2325u64, |a, b| {
                (a ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
            });
        format!("ami-0{:016x}", h)
    })
}

impl Scenario {
    /// Reads a scenario file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ScenarioError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Parses and checks scenario YAML.
    pub fn parse(yaml: &str) -> Result<Self, ScenarioError> {
        let s: Scenario = serde_yaml::from_str(yaml)?;
        s.check()?;
        Ok(s)
    }

    fn check(&self) -> Result<(), ScenarioError> {
        let bad = |m: String| Err(ScenarioError::Invalid(m));
        if self.cluster.node_groups.is_empty() {
            return bad("cluster.nodeGroups is empty".into());
        }
        for g in &self.cluster.node_groups {
            if g.instance_types.is_empty() || g.zones.is_empty() {
                return bad(format!(
                    "node group {} needs instanceTypes and zones",
                    g.name
                ));
            }
            if let Some(t) = g
                .instance_types
                .iter()
                .find(|t| crate::sim::instances::instance_type(t).is_none())
            {
                return bad(format!("node group {}: unknown instance type {t}", g.name));
            }
        }
        for w in &self.workloads {
            super::job::check_job_fields(w).map_err(ScenarioError::Invalid)?;
        }
        for f in &self.faults {
            match f {
                Fault::CrashLoop { workload, replicas } => {
                    let found = workload.split_once('/').and_then(|(ns, name)| {
                        self.workloads
                            .iter()
                            .find(|w| w.namespace == ns && w.name == name)
                    });
                    let Some(w) = found else {
                        return bad(format!(
                            "crashLoop {workload}: no such workload (expected namespace/name of a workload)"
                        ));
                    };
                    if w.kind == WorkloadKind::Job {
                        return bad(format!(
                            "crashLoop {workload}: a Job's pods run under restartPolicy Never, \
                             where a crash fails the pod; the twin does not model that"
                        ));
                    }
                    if w.kind != WorkloadKind::DaemonSet && *replicas as i32 > w.replicas {
                        return bad(format!(
                            "crashLoop {workload}: {replicas} replicas of {}",
                            w.replicas
                        ));
                    }
                }
                Fault::BadRollout { workload, .. } => {
                    let found = workload.split_once('/').and_then(|(ns, name)| {
                        self.workloads.iter().find(|w| {
                            w.namespace == ns
                                && w.name == name
                                && w.kind == WorkloadKind::Deployment
                        })
                    });
                    if found.is_none() {
                        return bad(format!(
                            "badRollout {workload}: no such Deployment (expected namespace/name of a Deployment)"
                        ));
                    }
                }
                Fault::DeleteNamespace { namespace, .. }
                    if namespace.is_empty()
                        || ["default", "kube-system", "kube-public", "kube-node-lease"]
                            .contains(&namespace.as_str()) =>
                {
                    return bad(format!(
                        "deleteNamespace {namespace:?}: the API server refuses to delete it"
                    ));
                }
                Fault::FaultRate { rate, codes, .. } => {
                    if !(0.0..=1.0).contains(rate) {
                        return bad(format!("faultRate: rate {rate} is not within 0..=1"));
                    }
                    if let Some(c) = codes.iter().find(|c| ![429, 500, 503, 504].contains(*c)) {
                        return bad(format!(
                            "faultRate: code {c} (the codes are 429, 500, 503, 504)"
                        ));
                    }
                }
                _ => {}
            }
        }
        for s in &self.services {
            if let Some(lb) = &s.load_balancer {
                let at = format!("service {}/{}", s.namespace, s.name);
                let ip = lb.target_type == TargetType::Ip;
                if ip && lb.kind == LbKind::Clb {
                    return bad(format!("{at}: a CLB has no IP targets (use ALB or NLB)"));
                }
                if ip && !lb.attached_to.is_empty() {
                    return bad(format!(
                        "{at}: IP targets are the pods; attachedTo is for instance targets"
                    ));
                }
                if lb.through != LbThrough::Service && !ip {
                    return bad(format!(
                        "{at}: through {:?} needs targetType ip (the twin models the Load \
                         Balancer Controller's IP targets only)",
                        lb.through
                    ));
                }
                if lb.through == LbThrough::Ingress && lb.kind != LbKind::Alb {
                    return bad(format!("{at}: an Ingress makes an ALB"));
                }
                if lb.attached_with == AttachedWith::TrafficSources && lb.attached_to.is_empty() {
                    return bad(format!(
                        "{at}: attachedWith: trafficSources needs attachedTo (the groups to \
                         attach it to)"
                    ));
                }
                if lb.connection_termination && lb.kind != LbKind::Nlb {
                    return bad(format!(
                        "{at}: connectionTermination is an NLB target-group attribute (a CLB \
                         always closes what outlives its draining timeout)"
                    ));
                }
                if ip
                    && lb.through == LbThrough::Service
                    && (lb.kind != LbKind::Nlb || s.type_ != ServiceType::LoadBalancer)
                {
                    return bad(format!(
                        "{at}: a Service asks the controller for IP targets as an NLB of type \
                         LoadBalancer (an ALB comes through an Ingress)"
                    ));
                }
            }
            if let Some(w) = &s.workload {
                let Some(target) = self
                    .workloads
                    .iter()
                    .find(|x| &x.name == w && x.namespace == s.namespace)
                else {
                    return bad(format!(
                        "service {}/{} names unknown workload {w}",
                        s.namespace, s.name
                    ));
                };
                if target.kind == WorkloadKind::Job
                    && (s.type_ != ServiceType::ClusterIP || s.load_balancer.is_some())
                {
                    return bad(format!(
                        "service {}/{}: {w} is a Job, whose pods end; it goes behind no load \
                         balancer (type ClusterIP at most)",
                        s.namespace, s.name
                    ));
                }
            }
        }
        for t in &self.traffic {
            self.check_keep_alive(t).map_err(ScenarioError::Invalid)?;
        }
        Ok(())
    }

    /// Keep-alive connections need a path that pins them: a layer-4 load balancer (a CLB's TCP
    /// listener, an NLB) or a ClusterIP. An ALB ends the client's connection itself and
    /// routes each request anew; a DNS lookup is a datagram.
    fn check_keep_alive(&self, t: &Traffic) -> Result<(), String> {
        let at = format!("traffic to {}", t.service);
        let Some(n) = t.connections else {
            return match t.max_connection_age_seconds {
                Some(_) => Err(format!(
                    "{at}: maxConnectionAgeSeconds needs connections (keep-alive)"
                )),
                None => Ok(()),
            };
        };
        if n == 0 {
            return Err(format!("{at}: connections must be at least 1"));
        }
        if t.max_connection_age_seconds
            .is_some_and(|a| a <= 0.0 || !a.is_finite())
        {
            return Err(format!("{at}: maxConnectionAgeSeconds must be positive"));
        }
        if t.backend.is_some() {
            return Err(format!(
                "{at}: a chained stream's hops are separate connections; keep-alive is for \
                 one hop"
            ));
        }
        match t.via {
            Via::Dns => Err(format!("{at}: DNS lookups have no keep-alive connection")),
            Via::ClusterIp => Ok(()),
            Via::LoadBalancer => {
                let (ns, name) = t
                    .service
                    .split_once('/')
                    .unwrap_or(("default", t.service.as_str()));
                let lb = self
                    .services
                    .iter()
                    .find(|s| s.namespace == ns && s.name == name)
                    .and_then(|s| s.load_balancer.as_ref());
                match lb {
                    Some(lb) if lb.kind == LbKind::Alb => Err(format!(
                        "{at}: an ALB ends the client's connection itself and routes each \
                         request anew; keep-alive connections pin through a CLB, an NLB or a \
                         ClusterIP"
                    )),
                    _ => Ok(()),
                }
            }
        }
    }

    /// The scenario's clock: simulated time at `cluster.speed`.
    pub fn clock(&self) -> Clock {
        Clock::scaled(self.cluster.speed)
    }

    /// The node template for the `i`-th node of a group (zones and instance types in turn).
    pub fn node_template(&self, group: &NodeGroup, i: usize) -> NodeTemplate {
        let managed = group.kind == NodeGroupKind::Managed;
        let mut labels = group.labels.clone();
        if !managed {
            labels.insert("alpha.eksctl.io/nodegroup-name".into(), group.name.clone());
        }
        NodeTemplate {
            nodegroup: managed.then(|| group.name.clone()),
            asg: Some(if managed {
                format!("eks-{}-twin", group.name)
            } else {
                group.name.clone()
            }),
            instance_type: group.instance_types[i % group.instance_types.len()].clone(),
            zone: group.zones[i % group.zones.len()].clone(),
            capacity_type: group.capacity_type.clone(),
            image_id: Some(ami_for(group)),
            ami_release: Some(group.ami_release.clone()),
            kubelet_version: format!("v{}.0-eks-twin", self.cluster.version),
            labels,
            taints: group
                .taints
                .iter()
                .map(|t| (t.key.clone(), t.value.clone(), t.effect.clone()))
                .collect(),
            instance_id: None,
            never_ready: false,
            ami_type: group.ami_type.clone(),
        }
    }

    /// Registers the Kubernetes call faults with the store (the HTTP layer applies them).
    /// AWS faults are left to the EKS part ([`Scenario::faults`]).
    pub fn install_kubernetes_faults(&self, store: &Store) {
        for (i, f) in self.faults.iter().enumerate() {
            let label = format!("faults[{i}] {}", f.kind());
            let (call, code, times, after, function) = match f {
                Fault::Throttle {
                    api: Api::Kubernetes,
                    call,
                    times,
                    after,
                    function,
                } => (call, 429, *times, *after, function),
                Fault::Fail {
                    api: Api::Kubernetes,
                    call,
                    code,
                    times,
                    after,
                    function,
                } => (call, code.unwrap_or(500), *times, *after, function),
                Fault::FaultRate {
                    rate,
                    seed,
                    api,
                    codes,
                    function,
                } if api.kubernetes() => {
                    store.faults().add(
                        FaultRule::rate(*rate, *seed, codes)
                            .function(function.as_deref())
                            .labelled(label),
                    );
                    continue;
                }
                Fault::CrashLoop { workload, replicas } => {
                    if let Some(rule) = self.crash_loop_rule(workload, *replicas) {
                        store.crash_loops().add(rule);
                    }
                    continue;
                }
                _ => continue,
            };
            let (verb, resource) = call.split_once(' ').unwrap_or(("*", call.as_str()));
            store.faults().add(
                FaultRule::new(verb.trim(), resource.trim(), code)
                    .times(times)
                    .after(after)
                    .function(function.as_deref())
                    .labelled(label),
            );
        }
    }

    /// The crash-loop rule for `namespace/name`, a workload of the scenario.
    fn crash_loop_rule(&self, workload: &str, replicas: u32) -> Option<CrashLoopRule> {
        let (ns, name) = workload.split_once('/')?;
        let w = self
            .workloads
            .iter()
            .find(|w| w.namespace == ns && w.name == name)?;
        Some(CrashLoopRule {
            namespace: ns.to_string(),
            labels: w.pod_labels(),
            replicas: replicas as usize,
            stateful_set: (w.kind == WorkloadKind::StatefulSet).then(|| w.name.clone()),
            image: None,
        })
    }

    /// Creates the initial cluster without waiting: nodes, namespaces, workloads, services.
    pub fn create(&self, store: &Store) -> Result<Applied, ScenarioError> {
        let mut applied = Applied::default();
        for group in &self.cluster.node_groups {
            let mut names = Vec::new();
            for i in 0..group.desired_size as usize {
                let node =
                    register_node(store, &self.node_template(group, i)).map_err(|source| {
                        ScenarioError::Create {
                            what: format!("node of {}", group.name),
                            source: Box::new(source),
                        }
                    })?;
                names.push(
                    node.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                );
            }
            applied.nodes.push((group.name.clone(), names));
        }
        let mut create = |resource: Resource, obj: Value| -> Result<(), ScenarioError> {
            let ns = obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            let name = obj
                .pointer("/metadata/name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            store.ensure_namespace(&ns);
            store
                .create(resource, &ns, obj)
                .map_err(|source| ScenarioError::Create {
                    what: format!("{} {ns}/{name}", resource.kind()),
                    source: Box::new(source),
                })?;
            applied.objects += 1;
            Ok(())
        };
        // Before the workloads: a crash-looping replica crashes from its first start.
        self.install_kubernetes_faults(store);
        for w in &self.workloads {
            let gates = self.readiness_gates(w);
            for (resource, mut obj) in workload_objects(w) {
                if !gates.is_empty() {
                    let gates: Vec<Value> = gates
                        .iter()
                        .map(|g| serde_json::json!({ "conditionType": g }))
                        .collect();
                    let spec = match resource {
                        Resource::Pod => obj.pointer_mut("/spec"),
                        _ => obj.pointer_mut("/spec/template/spec"),
                    };
                    if let Some(spec) = spec {
                        spec["readinessGates"] = Value::Array(gates);
                    }
                }
                create(resource, obj)?;
            }
        }
        for s in &self.services {
            create(Resource::Service, service_object(s, &self.workloads))?;
            if s.load_balancer
                .as_ref()
                .is_some_and(|l| l.through == LbThrough::Ingress)
            {
                create(
                    Resource::Ingress,
                    crate::lb::ip::ingress_object(&s.namespace, &s.name, s.port),
                )?;
            }
        }
        Ok(applied)
    }

    /// The readiness gates the Load Balancer Controller's webhook gives a workload's pods: one
    /// per IP target group in front of them, when its namespace asks for injection
    /// (`readinessGate`; aws-load-balancer-controller `docs/deploy/pod_readiness_gate.md`).
    pub fn readiness_gates(&self, w: &Workload) -> Vec<String> {
        if !w.readiness_gate {
            return Vec::new();
        }
        self.services
            .iter()
            .filter(|s| s.namespace == w.namespace && s.workload.as_deref() == Some(&w.name))
            .filter(|s| {
                s.load_balancer
                    .as_ref()
                    .is_some_and(|l| l.target_type == TargetType::Ip)
            })
            .map(|s| crate::lb::ip::readiness_gate(&s.namespace, &s.name))
            .collect()
    }

    /// How many replicas of a workload `crashLoop` faults keep from becoming Ready.
    pub fn crash_looping(&self, namespace: &str, name: &str) -> i32 {
        self.faults
            .iter()
            .map(|f| match f {
                Fault::CrashLoop { workload, replicas }
                    if *workload == format!("{namespace}/{name}") =>
                {
                    *replicas as i32
                }
                _ => 0,
            })
            .sum()
    }

    /// Whether every initial workload is fully Running and Ready (but for the replicas a
    /// `crashLoop` fault keeps crashing, which are Running and not Ready).
    pub fn settled(&self, store: &Store) -> Result<(), String> {
        for w in &self.workloads {
            let ns = w.namespace.as_str();
            let crashing = self.crash_looping(ns, &w.name);
            let ok = match w.kind {
                WorkloadKind::Deployment => store
                    .try_get_typed::<Deployment>(ns, &w.name)
                    .is_some_and(|d| {
                        let want = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        let st = d.status.unwrap_or_default();
                        st.available_replicas.unwrap_or(0) == (want - crashing).max(0)
                            && st.replicas.unwrap_or(0) == want
                            && st.updated_replicas.unwrap_or(0) == want
                    }),
                WorkloadKind::StatefulSet => store
                    .try_get_typed::<StatefulSet>(ns, &w.name)
                    .is_some_and(|s| {
                        let want = s.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
                        s.status.is_some_and(|st| {
                            st.ready_replicas.unwrap_or(0) == (want - crashing).max(0)
                                && st.replicas == want
                        })
                    }),
                WorkloadKind::DaemonSet => store
                    .try_get_typed::<DaemonSet>(ns, &w.name)
                    .is_some_and(|d| {
                        d.status.is_some_and(|st| {
                            st.number_ready == (st.desired_number_scheduled - crashing).max(0)
                                && st.observed_generation.is_some()
                        })
                    }),
                WorkloadKind::Job => store
                    .try_get_typed::<Job>(ns, &w.name)
                    .is_some_and(|j| super::job::job_settled(&j)),
                WorkloadKind::Pod => {
                    let pods: Vec<Pod> = (0..w.replicas)
                        .filter_map(|i| store.try_get_typed::<Pod>(ns, &format!("{}-{i}", w.name)))
                        .collect();
                    pods.len() == w.replicas.max(0) as usize
                        && pods.iter().all(|p| phase(p) == "Running")
                        && pods.iter().filter(|p| is_ready(p)).count() as i32
                            == (w.replicas - crashing).max(0)
                }
            };
            if !ok {
                return Err(format!("{:?} {ns}/{} is not ready", w.kind, w.name));
            }
            if crashing > 0 {
                let labels = w.pod_labels();
                let looping = store
                    .list_all(Resource::Pod, Some(ns))
                    .iter()
                    .filter(|p| p.pointer("/metadata/deletionTimestamp").is_none())
                    .filter(|p| {
                        labels.iter().all(|(k, v)| {
                            p.pointer(&format!("/metadata/labels/{}", k.replace('/', "~1")))
                                .and_then(Value::as_str)
                                == Some(v.as_str())
                        })
                    })
                    .filter(|p| {
                        p.pointer("/status/containerStatuses/0/state/waiting/reason")
                            .and_then(Value::as_str)
                            == Some("CrashLoopBackOff")
                    })
                    .count();
                if (looping as i32) < crashing {
                    return Err(format!(
                        "{:?} {ns}/{}: {looping} of {crashing} replicas crash-looping",
                        w.kind, w.name
                    ));
                }
            }
        }
        Ok(())
    }

    /// Creates the initial cluster and waits (up to `timeout` of real time) until every
    /// workload is Running and Ready. The controllers must be running on `store`.
    pub async fn apply(
        &self,
        store: &Store,
        clock: &Clock,
        timeout: Duration,
    ) -> Result<Applied, ScenarioError> {
        let applied = self.create(store)?;
        self.wait_settled(store, clock, timeout).await?;
        Ok(applied)
    }

    /// Waits (up to `timeout` of real time) until every workload is Running and Ready.
    pub async fn wait_settled(
        &self,
        store: &Store,
        clock: &Clock,
        timeout: Duration,
    ) -> Result<(), ScenarioError> {
        let mut last = String::new();
        let ok = wait_until(clock, timeout, Duration::from_millis(500), || {
            match self.settled(store) {
                Ok(()) => true,
                Err(why) => {
                    last = why;
                    false
                }
            }
        })
        .await;
        if ok {
            Ok(())
        } else {
            Err(ScenarioError::NotSettled(timeout, last))
        }
    }

    /// A store on the scenario's clock, the controllers running on it, and the initial
    /// cluster applied and settled.
    pub async fn boot(&self, timeout: Duration) -> Result<(Store, Sim, Applied), ScenarioError> {
        let clock = self.clock();
        let store = Store::new(clock.clone());
        let sim = crate::sim::start(&store, SimConfig::default());
        let applied = self.apply(&store, &clock, timeout).await?;
        Ok((store, sim, applied))
    }
}
