//! Chainable builders for test fixtures.

use crate::model::{
    CapacityType, Labels, LaunchTemplateRef, NodeGroupKind, NodeGroupSpec, NodeGroupStatus, Scaling,
};
use crate::request::{MigrationRequest, parse_request};

pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A request from JSON; panics on a fixture typo.
pub fn request(json: serde_json::Value) -> MigrationRequest {
    match parse_request(&json.to_string()) {
        Ok(r) => r,
        Err(e) => panic!("fixture request does not parse: {e:?}"),
    }
}

/// A minimal managed→managed request with `target` as given.
pub fn request_with_target(target: serde_json::Value) -> MigrationRequest {
    request(serde_json::json!({
        "cluster": {"name": "prod", "region": "eu-west-1"},
        "source": {"managedNodeGroup": "ng-a"},
        "target": target,
    }))
}

/// A managed source group `ng-a`.
pub fn managed_source() -> NodeGroupSpec {
    NodeGroupSpec {
        name: "ng-a".into(),
        arn: Some("arn:aws:eks:eu-west-1:111122223333:nodegroup/prod/ng-a/1".into()),
        kind: NodeGroupKind::Managed,
        instance_types: vec!["m5.large".into()],
        ami_type: Some("AL2023_x86_64_STANDARD".into()),
        release_version: Some("1.33.0-20250601".into()),
        custom_ami_id: None,
        launch_template: None,
        capacity_type: Some(CapacityType::OnDemand),
        scaling: Scaling {
            min: 2,
            max: 6,
            desired: 3,
        },
        subnets: vec![
            "subnet-0aaaaaaaaaaaaaaaa".into(),
            "subnet-0bbbbbbbbbbbbbbbb".into(),
        ],
        labels: labels(&[("team", "web")]),
        taints: vec![],
        disk_size: Some(20),
        version: Some("1.33".into()),
        status: NodeGroupStatus::Active,
        asg_names: vec!["eks-ng-a-1".into()],
        tags: labels(&[
            ("owner", "platform"),
            ("aws:cloudformation:stack-name", "s"),
        ]),
        node_role_arn: Some("arn:aws:iam::111122223333:role/node".into()),
        on_demand_share: None,
    }
}

pub trait SpecExt {
    fn with_launch_template(self, name: &str, version: &str) -> Self;
    fn self_managed(self) -> Self;
}

impl SpecExt for NodeGroupSpec {
    fn with_launch_template(mut self, name: &str, version: &str) -> Self {
        self.launch_template = Some(LaunchTemplateRef {
            id: None,
            name: Some(name.into()),
            version: Some(version.into()),
        });
        self.disk_size = None;
        self
    }

    fn self_managed(mut self) -> Self {
        self.kind = NodeGroupKind::SelfManagedAsg;
        self.ami_type = None;
        self.release_version = None;
        self.node_role_arn = None;
        self
    }
}

/// A Ready, schedulable node in `eu-west-1a` of managed group `group`.
pub fn node(name: &str, group: &str) -> crate::model::NodeView {
    crate::model::NodeView {
        name: name.into(),
        labels: labels(&[
            (crate::marks::EKS_NODEGROUP_LABEL, group),
            ("topology.kubernetes.io/zone", "eu-west-1a"),
        ]),
        annotations: Labels::new(),
        taints: vec![],
        unschedulable: false,
        ready: true,
        provider_id: Some(format!("aws:///eu-west-1a/i-{name}")),
        zone: Some("eu-west-1a".into()),
        allocatable: crate::model::Resources {
            cpu_millis: 4000,
            memory_bytes: 16 << 30,
        },
        os_image: None,
        gpus: 0,
    }
}

pub trait NodeExt {
    fn label(self, k: &str, v: &str) -> Self;
    fn annotate(self, k: &str, v: &str) -> Self;
    fn taint(self, t: crate::model::Taint) -> Self;
    fn cordoned(self) -> Self;
    fn zone(self, z: &str) -> Self;
    fn not_ready(self) -> Self;
}

impl NodeExt for crate::model::NodeView {
    fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.insert(k.into(), v.into());
        self
    }
    fn annotate(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }
    fn taint(mut self, t: crate::model::Taint) -> Self {
        self.taints.push(t);
        self
    }
    fn cordoned(mut self) -> Self {
        self.unschedulable = true;
        self
    }
    fn zone(mut self, z: &str) -> Self {
        self.zone = Some(z.into());
        self.labels
            .insert("topology.kubernetes.io/zone".into(), z.into());
        self
    }
    fn not_ready(mut self) -> Self {
        self.ready = false;
        self
    }
}

/// A settled Deployment `ns/name` with `replicas`, selecting `app=name`.
pub fn deployment(ns: &str, name: &str, replicas: i32) -> crate::model::WorkloadView {
    crate::model::WorkloadView {
        kind: crate::model::WorkloadKind::Deployment,
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        replicas,
        ready_replicas: replicas,
        updated_replicas: replicas,
        generation: 1,
        observed_generation: 1,
        selector: crate::model::LabelSelector::eq([("app", name)]),
        labels: Labels::new(),
        annotations: Labels::new(),
        pod_requests: crate::model::Resources {
            cpu_millis: 100,
            memory_bytes: 128 << 20,
        },
        has_volume_claims: false,
    }
}

pub trait WorkloadExt {
    fn annotate(self, k: &str, v: &str) -> Self;
    fn statefulset(self) -> Self;
    fn ready(self, n: i32) -> Self;
    fn requests(self, cpu_millis: i64, memory_bytes: i64) -> Self;
}

impl WorkloadExt for crate::model::WorkloadView {
    fn annotate(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }
    fn statefulset(mut self) -> Self {
        self.kind = crate::model::WorkloadKind::StatefulSet;
        self.has_volume_claims = true;
        self
    }
    fn ready(mut self, n: i32) -> Self {
        self.ready_replicas = n;
        self
    }
    fn requests(mut self, cpu_millis: i64, memory_bytes: i64) -> Self {
        self.pod_requests = crate::model::Resources {
            cpu_millis,
            memory_bytes,
        };
        self
    }
}

/// A Ready pod of Deployment `name` (through ReplicaSet `name-rs`) on `node`.
pub fn pod(ns: &str, name: &str, owner: &str, node: &str) -> crate::model::PodView {
    crate::model::PodView {
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{name}"),
        node_name: Some(node.into()),
        pod_ip: None,
        phase: crate::model::PodPhase::Running,
        ready: true,
        labels: labels(&[("app", owner)]),
        annotations: Labels::new(),
        owner: Some(crate::model::OwnerRef {
            kind: "ReplicaSet".into(),
            name: format!("{owner}-rs"),
            uid: None,
        }),
        is_mirror: false,
        has_empty_dir: false,
        pvc_names: vec![],
        terminating: false,
        created_at: None,
        requests: crate::model::Resources {
            cpu_millis: 100,
            memory_bytes: 128 << 20,
        },
        shutdown: Default::default(),
        readiness_gates: vec![],
        placement: Default::default(),
    }
}

pub trait PodExt {
    fn owned_by(self, kind: &str, name: &str) -> Self;
    fn bare(self) -> Self;
    fn mirror(self) -> Self;
    fn empty_dir(self) -> Self;
    fn pvc(self, claim: &str) -> Self;
    fn annotate(self, k: &str, v: &str) -> Self;
    fn terminating(self) -> Self;
    fn not_ready(self) -> Self;
    fn pre_stop(self, pre_stop: crate::model::PreStop) -> Self;
    fn grace(self, seconds: i64) -> Self;
    fn readiness_gate(self, condition_type: &str) -> Self;
}

impl PodExt for crate::model::PodView {
    fn pre_stop(mut self, pre_stop: crate::model::PreStop) -> Self {
        self.shutdown.pre_stop = pre_stop;
        self
    }
    fn grace(mut self, seconds: i64) -> Self {
        self.shutdown.grace_seconds = seconds;
        self
    }
    fn readiness_gate(mut self, condition_type: &str) -> Self {
        self.readiness_gates.push(condition_type.to_string());
        self
    }
    fn owned_by(mut self, kind: &str, name: &str) -> Self {
        self.owner = Some(crate::model::OwnerRef {
            kind: kind.into(),
            name: name.into(),
            uid: None,
        });
        self
    }
    fn bare(mut self) -> Self {
        self.owner = None;
        self
    }
    fn mirror(mut self) -> Self {
        self.is_mirror = true;
        self.annotations
            .insert(crate::marks::MIRROR_POD_ANNOTATION.into(), "x".into());
        self.owner = Some(crate::model::OwnerRef {
            kind: "Node".into(),
            name: "n".into(),
            uid: None,
        });
        self
    }
    fn empty_dir(mut self) -> Self {
        self.has_empty_dir = true;
        self
    }
    fn pvc(mut self, claim: &str) -> Self {
        self.pvc_names.push(claim.into());
        self
    }
    fn annotate(mut self, k: &str, v: &str) -> Self {
        self.annotations.insert(k.into(), v.into());
        self
    }
    fn terminating(mut self) -> Self {
        self.terminating = true;
        self
    }
    fn not_ready(mut self) -> Self {
        self.ready = false;
        self
    }
}

/// The ReplicaSet `name-rs` of Deployment `name`.
pub fn replicaset(ns: &str, deployment: &str) -> crate::model::ReplicaSetView {
    crate::model::ReplicaSetView {
        namespace: ns.into(),
        name: format!("{deployment}-rs"),
        owner: Some(crate::model::OwnerRef {
            kind: "Deployment".into(),
            name: deployment.into(),
            uid: None,
        }),
        replicas: 1,
        ready_replicas: 1,
    }
}

/// An HPA on Deployment `target`.
pub fn hpa(ns: &str, target: &str, min: Option<i32>, max: i32) -> crate::model::HpaView {
    crate::model::HpaView {
        namespace: ns.into(),
        name: format!("{target}-hpa"),
        target_kind: "Deployment".into(),
        target_name: target.into(),
        min_replicas: min,
        max_replicas: max,
        current_replicas: min.unwrap_or(1),
        desired_replicas: min.unwrap_or(1),
        generation: 1,
        observed_generation: Some(1),
        annotations: Labels::new(),
    }
}
