//! The scenario file's types (camelCase YAML; unknown fields are refused so a typo fails
//! loudly).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::lb::probe::Via;
pub use crate::sim::autoscaler::AutoscalerSettings;
pub use crate::sim::podutil::OnSigterm;

/// A whole scenario file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub cluster: Cluster,
    #[serde(default)]
    pub workloads: Vec<Workload>,
    #[serde(default)]
    pub services: Vec<ServiceSpec>,
    #[serde(default)]
    pub traffic: Vec<Traffic>,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// The `MigrationRequest`, passed through as is to whoever starts the migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub migration: Option<Value>,
    /// How the run should end (outcome, error, figures), passed through as is: the local
    /// runner reads and checks it (`ngm_local::expect`); the twin does not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<Value>,
    /// Settings for whoever runs the workflow against the twin (the local runner's Lambda
    /// faults and operator answers), passed through as is; the twin does not read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflow: Option<Value>,
}

fn default_version() -> String {
    "1.33".into()
}
fn default_region() -> String {
    "us-west-2".into()
}
fn default_speed() -> f64 {
    60.0
}

/// The EKS cluster.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Cluster {
    pub name: String,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default = "default_region")]
    pub region: String,
    /// Simulated seconds per real second.
    #[serde(default = "default_speed")]
    pub speed: f64,
    pub node_groups: Vec<NodeGroup>,
    /// How long each consumer of EndpointSlices takes to see a change.
    #[serde(default)]
    pub endpoint_lag: EndpointLag,
    /// A Cluster Autoscaler with these flags runs in the cluster; absent, none runs. `{}`
    /// takes upstream's defaults ([`AutoscalerSettings`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_autoscaler: Option<AutoscalerSettings>,
}

/// How long after an EndpointSlice changes each of its consumers acts on it. Until then it
/// routes by what it saw before: to a pod that is already terminating, or not yet to a new
/// one (kubernetes.io, "Pod Lifecycle", termination of Pods: "the endpoint ... removal
/// propagates to kube-proxy, load balancers and ingress controllers after a delay").
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EndpointLag {
    /// kube-proxy: its rules are rewritten at most once per `minSyncPeriod`, 1 s by default
    /// (kubernetes `pkg/proxy/apis/config/v1alpha1/defaults.go`).
    #[serde(default = "EndpointLag::default_kube_proxy")]
    pub kube_proxy_seconds: f64,
    /// An ingress controller proxying to endpoints itself: ingress-nginx syncs at most
    /// `--sync-rate-limit` (0.3) times a second, so once every 3.3 s
    /// (ingress-nginx `cmd/nginx/flags.go`).
    #[serde(default = "EndpointLag::default_ingress")]
    pub ingress_seconds: f64,
    /// The AWS Load Balancer Controller, registering and deregistering IP targets: its
    /// TargetGroupBinding reconciler acts on an endpoint change after its watch, its queue and
    /// the ELB calls ([`EndpointLag::default_load_balancer_controller`]).
    #[serde(default = "EndpointLag::default_load_balancer_controller")]
    pub load_balancer_controller_seconds: f64,
    /// The in-tree service controller (the CLB, and an NLB of `aws-load-balancer-type: nlb`),
    /// registering and deregistering nodes when one joins, leaves or changes its exclusion
    /// label ([`EndpointLag::default_service_controller`]). The Load Balancer Controller's
    /// instance targets follow nodes after `loadBalancerControllerSeconds`.
    #[serde(default = "EndpointLag::default_service_controller")]
    pub service_controller_seconds: f64,
}

impl EndpointLag {
    fn default_kube_proxy() -> f64 {
        1.0
    }
    fn default_ingress() -> f64 {
        1.0 / 0.3
    }
    /// The controller enqueues a binding on every endpoint and pod event, with no batching
    /// (aws-load-balancer-controller `controllers/elbv2/eventhandlers/`), then reads the
    /// targets and calls RegisterTargets / DeregisterTargets; the twin takes 2 s for the watch,
    /// the queue and the calls. The ELB's own propagation comes after
    /// (`crate::lb::settings::ALB_IP_DEREGISTRATION_PROPAGATION_SECONDS`).
    pub fn default_load_balancer_controller() -> f64 {
        2.0
    }
    /// The service controller queues a node whose exclusion predicate changed (kubernetes
    /// `staging/src/k8s.io/cloud-provider/controllers/service/controller.go`,
    /// `shouldSyncUpdatedNode`); one node worker then calls UpdateLoadBalancer for every
    /// load-balanced Service in turn (`--concurrent-service-syncs` defaults to 1), each a few
    /// ELB calls in cloud-provider-aws (`ensureLoadBalancerInstances`). The twin takes 2 s;
    /// a failed update is retried 5 s later, doubling up to 300 s (`minRetryDelay`,
    /// `maxRetryDelay`), which a scenario can stand for with a longer lag.
    pub fn default_service_controller() -> f64 {
        2.0
    }
    /// The longest lag, which bounds how much endpoint and node history the twin keeps.
    pub fn max(&self) -> f64 {
        self.kube_proxy_seconds
            .max(self.ingress_seconds)
            .max(self.load_balancer_controller_seconds)
            .max(self.service_controller_seconds)
    }
}

impl Default for EndpointLag {
    fn default() -> Self {
        Self {
            kube_proxy_seconds: Self::default_kube_proxy(),
            ingress_seconds: Self::default_ingress(),
            load_balancer_controller_seconds: Self::default_load_balancer_controller(),
            service_controller_seconds: Self::default_service_controller(),
        }
    }
}

/// How a node group is run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum NodeGroupKind {
    /// An EKS managed node group (backed by an Auto Scaling group EKS owns).
    #[default]
    Managed,
    /// A self-managed Auto Scaling group joined to the cluster.
    SelfManaged,
}

fn default_ami_type() -> String {
    "AL2023_x86_64_STANDARD".into()
}
fn default_boot() -> f64 {
    90.0
}
fn default_capacity() -> String {
    "ON_DEMAND".into()
}

/// One node group.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeGroup {
    pub name: String,
    #[serde(default)]
    pub kind: NodeGroupKind,
    pub instance_types: Vec<String>,
    pub zones: Vec<String>,
    #[serde(default = "default_ami_type")]
    pub ami_type: String,
    /// EKS AMI release, e.g. `1.33.4-20251001`.
    pub ami_release: String,
    /// AMI id; derived from the release when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ami_id: Option<String>,
    /// Seconds from instance launch to the node registering Ready.
    #[serde(default = "default_boot")]
    pub boot_seconds: f64,
    pub desired_size: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_size: Option<u32>,
    #[serde(default = "default_capacity")]
    pub capacity_type: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub taints: Vec<TaintSpec>,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

impl NodeGroup {
    pub fn min(&self) -> u32 {
        self.min_size.unwrap_or(self.desired_size)
    }
    pub fn max(&self) -> u32 {
        self.max_size.unwrap_or(self.desired_size.max(1))
    }
}

/// A taint with a Kubernetes effect (`NoSchedule`, `PreferNoSchedule`, `NoExecute`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TaintSpec {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

/// The kind of a workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadKind {
    Deployment,
    StatefulSet,
    DaemonSet,
    /// Bare pods (no controller): `replicas` pods named `<name>-<i>`.
    Pod,
    /// A `batch/v1` Job: `replicas` is its `parallelism`, and each pod works `runSeconds`,
    /// then exits 0.
    Job,
}

fn default_namespace() -> String {
    "default".into()
}
fn default_replicas() -> i32 {
    1
}
fn default_image() -> String {
    "registry.k8s.io/e2e-test-images/agnhost:2.53".into()
}
fn default_port() -> i32 {
    8080
}

/// CPU and memory requests in Kubernetes quantities.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Requests {
    #[serde(default = "Requests::default_cpu")]
    pub cpu: String,
    #[serde(default = "Requests::default_memory")]
    pub memory: String,
}

impl Requests {
    fn default_cpu() -> String {
        "100m".into()
    }
    fn default_memory() -> String {
        "128Mi".into()
    }
}

impl Default for Requests {
    fn default() -> Self {
        Self {
            cpu: Self::default_cpu(),
            memory: Self::default_memory(),
        }
    }
}

/// A Deployment, StatefulSet, DaemonSet, Job or set of bare pods.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// Replicas; a Job's `parallelism`.
    #[serde(default = "default_replicas")]
    pub replicas: i32,
    /// A Job's `completions`: how many pods must succeed (default `replicas`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completions: Option<i32>,
    /// A Job's work: seconds from each pod's container start to its exit 0. Required for a
    /// Job, refused for any other kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_seconds: Option<f64>,
    /// A Job's `backoffLimit`: the failed pods it takes beyond which the Job fails (default 6,
    /// as the API server defaults it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backoff_limit: Option<i32>,
    /// Pod labels (also the selector); `app: <name>` when empty.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default = "default_image")]
    pub image: String,
    #[serde(default = "default_port")]
    pub container_port: i32,
    #[serde(default)]
    pub requests: Requests,
    /// Seconds from container start to Ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub startup_seconds: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
    /// A preStop `sleep` of this many seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop_seconds: Option<i64>,
    /// What its process does on SIGTERM (`exit`, the default; `stopAccepting`;
    /// `finishInFlight`).
    #[serde(default)]
    pub on_sigterm: OnSigterm,
    /// Its namespace has `elbv2.k8s.aws/pod-readiness-gate-inject: enabled`: the Load Balancer
    /// Controller's webhook gives each pod a `target-health.elbv2.k8s.aws/<binding>` readiness
    /// gate for every IP target group in front of it.
    #[serde(default)]
    pub readiness_gate: bool,
    /// Kubernetes tolerations, as in a pod spec.
    #[serde(default)]
    pub tolerations: Vec<Value>,
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// A pod spec's `affinity`, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Value>,
    /// A pod spec's `topologySpreadConstraints`, as written.
    #[serde(default)]
    pub topology_spread_constraints: Vec<Value>,
    /// Mount an emptyDir volume (scratch data lost on eviction).
    #[serde(default)]
    pub empty_dir: bool,
    /// Carry ngm's opt-out annotation (`ngm.io/skip-migration`).
    #[serde(default)]
    pub opt_out: bool,
    /// StatefulSet volume claim templates, by name.
    #[serde(default)]
    pub volume_claims: Vec<String>,
    /// Their storage class: `gp3` (EBS) unless set; `local-storage` binds each claim to the
    /// local volume of the node its pod first runs on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class: Option<String>,
    /// StatefulSet `podManagementPolicy` (`OrderedReady` or `Parallel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_management_policy: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ready_seconds: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hpa: Option<HpaSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<PdbSpec>,
}

impl Workload {
    /// The pod labels (and selector).
    pub fn pod_labels(&self) -> BTreeMap<String, String> {
        if self.labels.is_empty() {
            BTreeMap::from([("app".to_string(), self.name.clone())])
        } else {
            self.labels.clone()
        }
    }
}

/// An autoscaling/v2 HPA on the workload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HpaSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_replicas: Option<i32>,
    pub max_replicas: i32,
    /// Scale on load: an `Object` metric, the `requests_per_second` of the Service in front
    /// of the workload, with this `AverageValue` target per pod. Without it the HPA has a CPU
    /// target the twin has no usage for, so it only keeps replicas within min and max.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests_per_second_per_pod: Option<f64>,
    /// The Service whose load the metric reads (default: the one named like the workload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

/// A PDB over the workload's pods: `minAvailable` or `maxUnavailable`, an integer or `"N%"`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PdbSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<Value>,
    /// `IfHealthyBudget` (default) or `AlwaysAllow`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_pod_eviction_policy: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum ServiceType {
    ClusterIP,
    NodePort,
    #[default]
    LoadBalancer,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TrafficPolicy {
    #[default]
    Cluster,
    Local,
}

/// The kind of AWS load balancer in front of a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum LbKind {
    Alb,
    Nlb,
    #[default]
    Clb,
}

/// What a load balancer registers: the nodes (through the node port), or the pods themselves
/// (the AWS Load Balancer Controller's IP targets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TargetType {
    #[default]
    Instance,
    Ip,
}

/// The Auto Scaling call that attached a load balancer to a group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum AttachedWith {
    #[default]
    LoadBalancers,
    TrafficSources,
}

/// What asks for the load balancer in front of a Service.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum LbThrough {
    /// The Service itself (type LoadBalancer, or a NodePort Service the scenario fronts).
    #[default]
    Service,
    /// An Ingress of class `alb` with the Service as its backend (the Load Balancer
    /// Controller makes an ALB).
    Ingress,
    /// A TargetGroupBinding the user made for a target group made outside Kubernetes.
    TargetGroupBinding,
}

/// The load balancer's timing attributes (AWS defaults when omitted).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerSpec {
    #[serde(default)]
    pub kind: LbKind,
    /// ALB/CLB idle timeout, or the NLB TCP idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_seconds: Option<u32>,
    /// Target-group deregistration delay (CLB: connection-draining timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistration_delay_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_interval_seconds: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_threshold: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unhealthy_threshold: Option<u32>,
    /// Seconds before a new target's health checks start (NLB: 90–180 s upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_seconds: Option<u32>,
    /// Seconds a deregistered target still gets new requests (NLB: about 120 s upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregistration_propagation_seconds: Option<u32>,
    /// Node groups whose Auto Scaling groups the load balancer (a CLB, or an ALB/NLB's target
    /// group) is attached to. When given, its targets are the InService instances of every
    /// Auto Scaling group it is attached to, whoever attached it, and node labels play no
    /// part; otherwise Kubernetes registers the nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attached_to: Vec<String>,
    /// How the scenario attaches it to `attachedTo`: the legacy calls (AttachLoadBalancers,
    /// AttachLoadBalancerTargetGroups, the default) or AttachTrafficSources. What
    /// AttachTrafficSources attached shows only in the group's traffic sources.
    #[serde(default)]
    pub attached_with: AttachedWith,
    /// `instance` (default) or `ip`: the Load Balancer Controller registers the pods.
    #[serde(default)]
    pub target_type: TargetType,
    /// What asks for it: the Service (default), an Ingress, or a TargetGroupBinding.
    #[serde(default)]
    pub through: LbThrough,
    /// NLB `deregistration_delay.connection_termination.enabled`: the load balancer resets the
    /// connections still open to a target when its deregistration delay ends. Off by default,
    /// as on AWS: they outlive the delay ("Deregistration delay", NLB guide).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub connection_termination: bool,
}

impl LoadBalancerSpec {
    /// The idle timeout, or AWS's default for the kind (ALB/CLB 60 s, NLB 350 s).
    pub fn idle_timeout(&self) -> u32 {
        self.idle_timeout_seconds.unwrap_or(match self.kind {
            LbKind::Nlb => 350,
            LbKind::Alb | LbKind::Clb => 60,
        })
    }
    /// The deregistration delay, or AWS's default (300 s).
    pub fn deregistration_delay(&self) -> u32 {
        self.deregistration_delay_seconds.unwrap_or(300)
    }
}

fn default_service_port() -> i32 {
    80
}

/// A Service, optionally behind a load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    pub name: String,
    #[serde(default = "default_namespace")]
    pub namespace: String,
    /// The workload whose pods it selects (same namespace); or give `selector`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    #[serde(default)]
    pub external_traffic_policy: TrafficPolicy,
    #[serde(default = "default_service_port")]
    pub port: i32,
    /// The container port; the workload's `containerPort` when omitted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer: Option<LoadBalancerSpec>,
}

/// A steady stream of probe requests to one service through its load balancer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Traffic {
    /// `namespace/name`, or a name in `default`.
    pub service: String,
    pub requests_per_second: f64,
    /// How long each request takes to serve.
    #[serde(default = "Traffic::default_duration")]
    pub request_seconds: f64,
    /// How the requests reach the Service: `loadBalancer` (the default), `clusterIp` (from a
    /// pod, through kube-proxy) or `dns` (lookups to a kube-dns Service, through kube-proxy).
    #[serde(default)]
    pub via: Via,
    /// A chained stream: the Service's pods (an ingress controller) proxy every request on to
    /// this Service's endpoints, `namespace/name` or a name in `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<String>,
    /// Keep-alive: the requests go over this many long-lived connections, in turn. Each is
    /// pinned to the load balancer's target and the pod it reached when it opened (a layer-4
    /// path: a CLB's TCP listener, an NLB, a ClusterIP), and is reported as closed gracefully
    /// (by its server on SIGTERM, or at `maxConnectionAgeSeconds`) or reset. The client opens
    /// a new one for its next request. Without it, every request has its own connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// A keep-alive connection's longest life: the client (or the server's `MaxConnectionAge`,
    /// as gRPC servers set it) closes it gracefully once it is this old and idle. None: it
    /// lives until its server closes it or something resets it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_connection_age_seconds: Option<f64>,
    /// The rate changes at set times after the migration starts: rising (or falling) load,
    /// which an HPA with a `requestsPerSecondPerPod` target follows.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ramp: Vec<RateStep>,
}

/// From `afterSeconds` after the migration starts, the stream sends `requestsPerSecond`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateStep {
    pub after_seconds: f64,
    pub requests_per_second: f64,
}

impl Traffic {
    fn default_duration() -> f64 {
        0.1
    }

    /// The stream's rate over the run.
    pub fn schedule(&self) -> crate::store::load::RateSchedule {
        crate::store::load::RateSchedule::new(
            self.requests_per_second,
            self.ramp
                .iter()
                .map(|r| (r.after_seconds, r.requests_per_second))
                .collect(),
        )
    }
}

/// Which API a call fault targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Api {
    /// `call` is `"<verb> <resource>"` as the request counters name it: `"create pods/eviction"`.
    Kubernetes,
    /// `call` is `"<service>:<Operation>"`: `"eks:CreateNodegroup"` (the twin's EKS) or any
    /// other service moto serves (`"autoscaling:UpdateAutoScalingGroup"`,
    /// `"dynamodb:PutItem"`...), named as the request's SigV4 scope names the service.
    Aws,
}

/// Which calls a [`Fault::FaultRate`] hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RateApi {
    Kubernetes,
    Aws,
    #[default]
    All,
}

impl RateApi {
    pub fn kubernetes(self) -> bool {
        matches!(self, Self::Kubernetes | Self::All)
    }
    pub fn aws(self) -> bool {
        matches!(self, Self::Aws | Self::All)
    }
}

/// An injected fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(
    tag = "kind",
    rename_all = "camelCase",
    rename_all_fields = "camelCase",
    deny_unknown_fields
)]
pub enum Fault {
    /// Answer a call with throttling (429 / `ThrottlingException`) `times` times, after
    /// letting `after` matching calls through.
    Throttle {
        api: Api,
        call: String,
        #[serde(default = "one")]
        times: u32,
        #[serde(default)]
        after: u32,
        /// Only the calls of this function (`check-surge`): the Kubernetes `User-Agent`
        /// `ngm/<function>`, the AWS app id `ngm-local-<function>`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        function: Option<String>,
    },
    /// Fail a call with a server error (or `code`) `times` times, after letting `after`
    /// matching calls through.
    Fail {
        api: Api,
        call: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        code: Option<u16>,
        #[serde(default = "one")]
        times: u32,
        #[serde(default)]
        after: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        function: Option<String>,
    },
    /// Every call of `api` fails with probability `rate`, with one of `codes` (429 answers as
    /// throttling), deterministically from `seed`.
    FaultRate {
        rate: f64,
        #[serde(default)]
        seed: u64,
        #[serde(default)]
        api: RateApi,
        #[serde(default = "default_rate_codes")]
        codes: Vec<u16>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        function: Option<String>,
    },
    /// The next node group created (or the named one) ends CREATE_FAILED.
    FailNodegroupCreation {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nodegroup: Option<String>,
    },
    /// `count` nodes of the next node group created (or the named one) never become Ready.
    NodeNeverReady {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        nodegroup: Option<String>,
        #[serde(default = "one")]
        count: u32,
    },
    /// Kill a pod (`namespace/name`) `atSeconds` after the migration starts.
    KillPod { pod: String, at_seconds: f64 },
    /// `replicas` replicas of the workload (`namespace/name`) never become Ready: their
    /// container crashes at every start and the kubelet restarts it with CrashLoopBackOff's
    /// growing back-off (restartCount grows), from the start of the scenario.
    CrashLoop {
        workload: String,
        #[serde(default = "one")]
        replicas: u32,
    },
    /// A bad deploy of a Deployment (`namespace/name`): its pod template gets a new image
    /// whose container crashes at every start, so the rolling update stalls within
    /// maxSurge/maxUnavailable and the Deployment keeps its surplus pod for good. It happens
    /// `at` simulated seconds after the migration starts or, with `afterScaleBack`, the first
    /// time the Deployment is scaled down from a count above its initial replicas (a
    /// migration's scale-back).
    BadRollout {
        workload: String,
        #[serde(default)]
        at: f64,
        #[serde(default)]
        after_scale_back: bool,
    },
    /// The namespace is deleted `at` simulated seconds after the migration starts: it goes
    /// Terminating (creates and evictions there answer 403 `NamespaceTerminating`), its
    /// content is deleted (pods gracefully), then the namespace disappears.
    DeleteNamespace {
        namespace: String,
        #[serde(default)]
        at: f64,
    },
    /// A Spot rebalance recommendation for the busiest node of a managed group, once
    /// `afterEvictions` evictions were allowed in the run (mid-drain): a replacement node joins
    /// the group, then EKS drains the recommended node and terminates it
    /// ([`crate::eks::Eks::capacity_rebalance`]).
    CapacityRebalance {
        nodegroup: String,
        #[serde(default = "one")]
        after_evictions: u32,
    },
}

impl Fault {
    /// The fault's kind as the scenario names it (`throttle`, `crashLoop`...).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Throttle { .. } => "throttle",
            Self::Fail { .. } => "fail",
            Self::FaultRate { .. } => "faultRate",
            Self::FailNodegroupCreation { .. } => "failNodegroupCreation",
            Self::NodeNeverReady { .. } => "nodeNeverReady",
            Self::KillPod { .. } => "killPod",
            Self::CrashLoop { .. } => "crashLoop",
            Self::BadRollout { .. } => "badRollout",
            Self::DeleteNamespace { .. } => "deleteNamespace",
            Self::CapacityRebalance { .. } => "capacityRebalance",
        }
    }
}

fn default_rate_codes() -> Vec<u16> {
    vec![500, 503, 429]
}

fn one() -> u32 {
    1
}
