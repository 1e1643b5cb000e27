//! Setting up a fake world: clusters, groups with their nodes, workloads and budgets.

use ngm_core::marks;
use ngm_core::model::{
    AsgInfo, AsgInstance, CapacityType, ClusterInfo, DaemonSetView, HpaView, IntOrPercent,
    LabelSelector, Labels, LbKind, LoadBalancerInfo, NodeGroupKind, NodeGroupSpec, NodeGroupStatus,
    NodeView, PdbView, Resources, Scaling, ServiceType, ServiceView, TargetGroupInfo, WorkloadKind,
    WorkloadRef, WorkloadView,
};

use super::{FakeCloud, NodeOwner};

/// The ARN the fake gives cluster `name`.
pub fn cluster_arn(name: &str) -> String {
    format!("arn:aws:eks:eu-west-1:111122223333:cluster/{name}")
}

/// A Ready node of group `g`.
pub(crate) fn node_of(
    name: &str,
    g: &NodeGroupSpec,
    zone: Option<String>,
    allocatable: Resources,
) -> NodeView {
    let mut labels = g.labels.clone();
    if g.kind == NodeGroupKind::Managed {
        labels.insert(marks::EKS_NODEGROUP_LABEL.into(), g.name.clone());
    }
    NodeView {
        name: name.to_string(),
        labels,
        annotations: Labels::new(),
        taints: g.taints.clone(),
        unschedulable: false,
        ready: true,
        provider_id: Some(format!(
            "aws:///{}/i-{name}",
            zone.as_deref().unwrap_or("eu-west-1a")
        )),
        zone,
        allocatable,
        os_image: None,
        gpus: 0,
    }
}

/// A managed group spec as EKS would describe it, ACTIVE.
pub fn managed_group(name: &str, instance_type: &str, desired: i32) -> NodeGroupSpec {
    NodeGroupSpec {
        name: name.into(),
        arn: Some(format!(
            "arn:aws:eks:eu-west-1:111122223333:nodegroup/prod/{name}/1"
        )),
        kind: NodeGroupKind::Managed,
        instance_types: vec![instance_type.into()],
        ami_type: Some("AL2023_x86_64_STANDARD".into()),
        release_version: Some("1.33.0-20250601".into()),
        custom_ami_id: None,
        launch_template: None,
        capacity_type: Some(CapacityType::OnDemand),
        scaling: Scaling {
            min: 1,
            max: desired.max(1) * 2,
            desired,
        },
        subnets: vec!["subnet-a".into(), "subnet-b".into()],
        labels: Labels::new(),
        taints: vec![],
        disk_size: Some(20),
        version: Some("1.33".into()),
        status: NodeGroupStatus::Active,
        asg_names: vec![format!("eks-{name}")],
        tags: Labels::new(),
        node_role_arn: Some("arn:aws:iam::111122223333:role/node".into()),
        on_demand_share: None,
    }
}

/// A Deployment selecting `app=<name>`.
pub fn deployment(ns: &str, name: &str, replicas: i32) -> WorkloadView {
    WorkloadView {
        kind: WorkloadKind::Deployment,
        namespace: ns.into(),
        name: name.into(),
        uid: format!("uid-{ns}-{name}"),
        replicas,
        ready_replicas: 0,
        updated_replicas: 0,
        generation: 1,
        observed_generation: 1,
        selector: LabelSelector::eq([("app", name)]),
        labels: Labels::new(),
        annotations: Labels::new(),
        pod_requests: Resources {
            cpu_millis: 100,
            memory_bytes: 128 << 20,
        },
        has_volume_claims: false,
    }
}

impl FakeCloud {
    /// An EKS cluster `name` in the fake, with subnets `subnet-a` (zone a) and `subnet-b`
    /// (zone b).
    pub fn add_cluster(&self, name: &str) -> &FakeCloud {
        self.edit(|w| {
            w.clusters.insert(
                name.into(),
                ClusterInfo {
                    name: name.into(),
                    arn: cluster_arn(name),
                    endpoint: "https://fake".into(),
                    ca_data: String::new(),
                    version: "1.33".into(),
                    tags: Labels::new(),
                },
            );
            w.subnet_zones
                .insert("subnet-a".into(), "eu-west-1a".into());
            w.subnet_zones
                .insert("subnet-b".into(), "eu-west-1b".into());
        });
        self
    }

    /// An ACTIVE managed group with its `desired` Ready nodes.
    pub fn add_managed_group(&self, spec: NodeGroupSpec) -> &FakeCloud {
        let alloc = self.lock().node_allocatable;
        self.edit(|w| {
            for k in 0..spec.scaling.desired {
                let subnet = spec
                    .subnets
                    .get(usize::try_from(k).unwrap_or(0) % spec.subnets.len().max(1));
                let zone = subnet.and_then(|s| w.subnet_zones.get(s).cloned());
                let n = node_of(&format!("{}-node-{k}", spec.name), &spec, zone, alloc);
                w.node_owners
                    .insert(n.name.clone(), NodeOwner::Group(spec.name.clone()));
                w.nodes.insert(n.name.clone(), n);
            }
            w.nodegroups.insert(spec.name.clone(), spec);
        });
        self
    }

    /// A self-managed Auto Scaling group `name` with `desired` joined nodes.
    pub fn add_self_managed_group(
        &self,
        name: &str,
        instance_type: &str,
        desired: i32,
    ) -> &FakeCloud {
        let alloc = self.lock().node_allocatable;
        let spec = NodeGroupSpec {
            kind: NodeGroupKind::SelfManagedAsg,
            labels: [("workload".to_string(), "general".to_string())].into(),
            ..managed_group(name, instance_type, desired)
        };
        self.edit(|w| {
            let mut instances = Vec::new();
            for k in 0..desired {
                let n = node_of(
                    &format!("{name}-node-{k}"),
                    &spec,
                    Some("eu-west-1a".into()),
                    alloc,
                );
                instances.push(AsgInstance {
                    instance_id: n.instance_id().unwrap_or_default().to_string(),
                    lifecycle_state: "InService".into(),
                    availability_zone: "eu-west-1a".into(),
                    instance_type: Some(instance_type.into()),
                });
                w.node_owners
                    .insert(n.name.clone(), NodeOwner::Asg(name.into()));
                w.nodes.insert(n.name.clone(), n);
            }
            w.asgs.insert(
                name.into(),
                AsgInfo {
                    name: name.into(),
                    arn: Some(format!("arn:aws:autoscaling:::{name}")),
                    scaling: spec.scaling,
                    instances,
                    tags: [
                        (marks::CA_ENABLED_TAG.to_string(), "true".to_string()),
                        ("team".to_string(), "web".to_string()),
                    ]
                    .into(),
                    suspended_processes: vec![],
                    launch_template: None,
                    override_instance_types: vec![],
                    on_demand_share: None,
                    subnets: spec.subnets.clone(),
                    availability_zones: vec!["eu-west-1a".into()],
                    load_balancer_names: vec![],
                    target_group_arns: vec![],
                    traffic_sources: vec![],
                },
            );
        });
        self
    }

    pub fn add_workload(&self, w: WorkloadView) -> &FakeCloud {
        self.edit(|s| s.workloads.insert(w.workload_ref(), w));
        self
    }

    /// An HPA on Deployment `ns/target`.
    pub fn add_hpa(&self, ns: &str, target: &str, min: Option<i32>, max: i32) -> &FakeCloud {
        self.edit(|s| {
            let target = WorkloadRef {
                kind: WorkloadKind::Deployment,
                namespace: ns.into(),
                name: target.into(),
            };
            if let Some(w) = s.workloads.get(&target) {
                s.hpa_load
                    .insert((ns.into(), target.name.clone()), w.replicas);
            }
            let target = target.name.as_str();
            s.hpas.insert(
                (ns.into(), target.into()),
                HpaView {
                    namespace: ns.into(),
                    name: target.into(),
                    target_kind: "Deployment".into(),
                    target_name: target.into(),
                    min_replicas: min,
                    max_replicas: max,
                    current_replicas: 0,
                    desired_replicas: 0,
                    generation: 1,
                    observed_generation: None,
                    annotations: Labels::new(),
                },
            )
        });
        self
    }

    /// A PDB on `app=<app>` with `minAvailable`.
    pub fn add_pdb(&self, ns: &str, app: &str, min_available: i32) -> &FakeCloud {
        self.edit(|s| {
            s.pdbs.insert(
                (ns.into(), format!("{app}-pdb")),
                PdbView {
                    namespace: ns.into(),
                    name: format!("{app}-pdb"),
                    selector: LabelSelector::eq([("app", app)]),
                    min_available: Some(IntOrPercent::Int(min_available)),
                    max_unavailable: None,
                    disruptions_allowed: 0,
                    current_healthy: 0,
                    desired_healthy: 0,
                    expected_pods: 0,
                },
            )
        });
        self
    }

    pub fn add_daemonset(&self, ns: &str, name: &str) -> &FakeCloud {
        self.edit(|s| {
            s.daemonsets.push(DaemonSetView {
                namespace: ns.into(),
                name: name.into(),
                desired_scheduled: 0,
                number_ready: 0,
            })
        });
        self
    }

    /// A LoadBalancer Service on `app=<app>` behind an ALB with these attributes.
    pub fn add_alb_service(&self, ns: &str, app: &str, idle: u64, dereg: u64) -> &FakeCloud {
        let dns = format!("{app}.elb.amazonaws.com");
        self.edit(|s| {
            s.services.push(ServiceView {
                namespace: ns.into(),
                name: app.into(),
                service_type: ServiceType::LoadBalancer,
                external_traffic_policy: None,
                lb_hostnames: vec![dns.clone()],
                selector: [("app".to_string(), app.to_string())].into(),
                annotations: Labels::new(),
            });
            s.load_balancers.insert(
                dns.clone(),
                LoadBalancerInfo {
                    id: format!("arn:lb/{app}"),
                    kind: LbKind::Alb,
                    dns_name: dns,
                    idle_timeout_secs: Some(idle),
                    tcp_idle_timeout_secs: None,
                    target_groups: vec![TargetGroupInfo {
                        arn: format!("arn:tg/{app}"),
                        deregistration_delay_secs: Some(dereg),
                        target_type: Some("instance".into()),
                    }],
                    classic_draining: None,
                },
            );
        });
        self
    }

    /// A workload by reference, as it is now.
    pub fn workload(&self, w: &WorkloadRef) -> Option<WorkloadView> {
        self.lock().w.workloads.get(w).cloned()
    }
}
