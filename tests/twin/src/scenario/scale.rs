//! A generated scenario for benchmarks: many nodes and pods.

use std::collections::BTreeMap;

use serde_json::json;

use crate::sim::podutil::OnSigterm;

use super::model::{
    Cluster, EndpointLag, NodeGroup, NodeGroupKind, PdbSpec, Requests, Scenario, Workload,
    WorkloadKind,
};

/// `nodes` m5.4xlarge nodes in three zones running `pods` pods: Deployments of 30 replicas
/// spread over 10 namespaces, every tenth with a PDB.
pub fn scale_scenario(nodes: u32, pods: u32) -> Scenario {
    let per_deployment = 30;
    let deployments = pods.div_ceil(per_deployment);
    let workloads = (0..deployments)
        .map(|i| {
            let replicas = per_deployment.min(pods - i * per_deployment) as i32;
            Workload {
                kind: WorkloadKind::Deployment,
                name: format!("app-{i:04}"),
                namespace: format!("team-{}", i % 10),
                replicas,
                completions: None,
                run_seconds: None,
                backoff_limit: None,
                labels: BTreeMap::new(),
                annotations: BTreeMap::new(),
                image: "registry.k8s.io/pause:3.10".into(),
                container_port: 8080,
                requests: Requests {
                    cpu: "50m".into(),
                    memory: "64Mi".into(),
                },
                startup_seconds: Some(5.0),
                termination_grace_period_seconds: Some(30),
                pre_stop_seconds: None,
                on_sigterm: OnSigterm::default(),
                tolerations: Vec::new(),
                node_selector: BTreeMap::new(),
                affinity: None,
                topology_spread_constraints: Vec::new(),
                empty_dir: false,
                readiness_gate: false,
                opt_out: false,
                volume_claims: Vec::new(),
                storage_class: None,
                pod_management_policy: None,
                min_ready_seconds: None,
                hpa: None,
                pdb: (i % 10 == 0).then(|| PdbSpec {
                    min_available: None,
                    max_unavailable: Some(json!(1)),
                    unhealthy_pod_eviction_policy: None,
                }),
            }
        })
        .collect();
    Scenario {
        name: format!("scale-{nodes}-nodes-{pods}-pods"),
        description: "Generated for the load benchmark.".into(),
        cluster: Cluster {
            name: "scale".into(),
            version: "1.33".into(),
            region: "us-west-2".into(),
            speed: 600.0,
            endpoint_lag: EndpointLag::default(),
            cluster_autoscaler: None,
            node_groups: vec![NodeGroup {
                name: "bulk".into(),
                kind: NodeGroupKind::Managed,
                instance_types: vec!["m5.4xlarge".into()],
                zones: vec![
                    "us-west-2a".into(),
                    "us-west-2b".into(),
                    "us-west-2c".into(),
                ],
                ami_type: "AL2023_x86_64_STANDARD".into(),
                ami_release: "1.33.4-20251001".into(),
                ami_id: None,
                boot_seconds: 90.0,
                desired_size: nodes,
                min_size: None,
                max_size: None,
                capacity_type: "ON_DEMAND".into(),
                labels: BTreeMap::new(),
                taints: Vec::new(),
                tags: BTreeMap::new(),
            }],
        },
        workloads,
        services: Vec::new(),
        traffic: Vec::new(),
        faults: Vec::new(),
        migration: None,
        expect: None,
        workflow: None,
    }
}
