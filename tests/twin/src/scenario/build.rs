//! Kubernetes objects for a scenario's workloads and services, as wire JSON.

use serde_json::{Value, json};

use super::model::{ServiceSpec, ServiceType, TrafficPolicy, Workload, WorkloadKind};
use crate::sim::podutil::{RUN_ANNOTATION, SIGTERM_ANNOTATION, STARTUP_ANNOTATION};
use crate::store::Resource;

/// A Job's `backoffLimit` when it names none (`SetDefaults_Job`).
pub const DEFAULT_BACKOFF_LIMIT: i32 = 6;

/// ngm's default opt-out annotation.
pub const OPT_OUT_ANNOTATION: &str = "ngm.io/skip-migration";

fn pod_template(w: &Workload) -> Value {
    let mut annotations = w.annotations.clone();
    if let Some(s) = w.startup_seconds {
        annotations.insert(STARTUP_ANNOTATION.into(), s.to_string());
    }
    if let Some(s) = w.run_seconds {
        annotations.insert(RUN_ANNOTATION.into(), s.to_string());
    }
    if w.opt_out {
        annotations.insert(OPT_OUT_ANNOTATION.into(), "true".into());
    }
    annotations.insert(SIGTERM_ANNOTATION.into(), w.on_sigterm.as_str().into());
    let mut container = json!({
        "name": "app",
        "image": w.image,
        "ports": [{ "name": "http", "containerPort": w.container_port, "protocol": "TCP" }],
        "resources": { "requests": { "cpu": w.requests.cpu, "memory": w.requests.memory } },
    });
    if let Some(s) = w.pre_stop_seconds {
        container["lifecycle"] = json!({ "preStop": { "sleep": { "seconds": s } } });
    }
    let mut spec = json!({ "containers": [container] });
    if w.kind == WorkloadKind::Job {
        // The only policies a Job's template may have are Never and OnFailure; a pod that
        // ends under Never stays ended, and the Job controller replaces it.
        spec["restartPolicy"] = json!("Never");
    }
    if let Some(g) = w.termination_grace_period_seconds {
        spec["terminationGracePeriodSeconds"] = json!(g);
    }
    if !w.tolerations.is_empty() {
        spec["tolerations"] = json!(w.tolerations);
    }
    if !w.node_selector.is_empty() {
        spec["nodeSelector"] = json!(w.node_selector);
    }
    if let Some(a) = &w.affinity {
        spec["affinity"] = a.clone();
    }
    if !w.topology_spread_constraints.is_empty() {
        spec["topologySpreadConstraints"] = json!(w.topology_spread_constraints);
    }
    if w.empty_dir {
        spec["volumes"] = json!([{ "name": "scratch", "emptyDir": {} }]);
        spec["containers"][0]["volumeMounts"] =
            json!([{ "name": "scratch", "mountPath": "/scratch" }]);
    }
    let mut meta = json!({ "labels": w.pod_labels() });
    if !annotations.is_empty() {
        meta["annotations"] = json!(annotations);
    }
    json!({ "metadata": meta, "spec": spec })
}

/// The objects a workload creates: its controller (or its bare pods), then its HPA and PDB.
pub fn workload_objects(w: &Workload) -> Vec<(Resource, Value)> {
    let labels = w.pod_labels();
    let meta = json!({ "name": w.name, "namespace": w.namespace, "labels": labels });
    let selector = json!({ "matchLabels": labels });
    let template = pod_template(w);
    let mut out = match w.kind {
        WorkloadKind::Deployment => {
            let mut spec =
                json!({ "replicas": w.replicas, "selector": selector, "template": template });
            if let Some(m) = w.min_ready_seconds {
                spec["minReadySeconds"] = json!(m);
            }
            vec![(
                Resource::Deployment,
                json!({ "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta, "spec": spec }),
            )]
        }
        WorkloadKind::StatefulSet => {
            let claims: Vec<Value> = w
                .volume_claims
                .iter()
                .map(|c| json!({
                    "metadata": { "name": c },
                    "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": w.storage_class.as_deref().unwrap_or("gp3"), "resources": { "requests": { "storage": "10Gi" } } },
                }))
                .collect();
            let mut spec = json!({ "replicas": w.replicas, "serviceName": w.name, "selector": selector, "template": template });
            if !claims.is_empty() {
                spec["volumeClaimTemplates"] = json!(claims);
            }
            if let Some(p) = &w.pod_management_policy {
                spec["podManagementPolicy"] = json!(p);
            }
            vec![(
                Resource::StatefulSet,
                json!({ "apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": meta, "spec": spec }),
            )]
        }
        WorkloadKind::DaemonSet => vec![(
            Resource::DaemonSet,
            json!({ "apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": meta, "spec": { "selector": selector, "template": template } }),
        )],
        WorkloadKind::Job => {
            // No selector: the API server generates it, with the pod labels that go with it.
            let spec = json!({
                "parallelism": w.replicas,
                "completions": w.completions.unwrap_or(w.replicas),
                "backoffLimit": w.backoff_limit.unwrap_or(DEFAULT_BACKOFF_LIMIT),
                "template": template,
            });
            vec![(
                Resource::Job,
                json!({ "apiVersion": "batch/v1", "kind": "Job", "metadata": meta, "spec": spec }),
            )]
        }
        WorkloadKind::Pod => (0..w.replicas.max(0))
            .map(|i| {
                let mut pod = template.clone();
                pod["apiVersion"] = json!("v1");
                pod["kind"] = json!("Pod");
                pod["metadata"]["name"] = json!(format!("{}-{i}", w.name));
                pod["metadata"]["namespace"] = json!(w.namespace);
                (Resource::Pod, pod)
            })
            .collect(),
    };
    if let Some(h) = hpa_object(w) {
        out.push((Resource::HorizontalPodAutoscaler, h));
    }
    if let Some(p) = pdb_object(w) {
        out.push((Resource::PodDisruptionBudget, p));
    }
    out
}

/// The workload's HPA, if it has one (Deployments and StatefulSets only).
pub fn hpa_object(w: &Workload) -> Option<Value> {
    let h = w.hpa.as_ref()?;
    let kind = match w.kind {
        WorkloadKind::Deployment => "Deployment",
        WorkloadKind::StatefulSet => "StatefulSet",
        _ => return None,
    };
    let metric = match h.requests_per_second_per_pod {
        Some(per_pod) => json!({ "type": "Object", "object": {
            "describedObject": { "apiVersion": "v1", "kind": "Service",
                "name": h.service.as_deref().unwrap_or(&w.name) },
            "metric": { "name": crate::sim::hpa::LOAD_METRIC },
            "target": { "type": "AverageValue", "averageValue": format!("{}m", (per_pod * 1000.0).round() as i64) },
        }}),
        None => json!({ "type": "Resource", "resource": { "name": "cpu",
            "target": { "type": "Utilization", "averageUtilization": 70 } } }),
    };
    let mut spec = json!({
        "scaleTargetRef": { "apiVersion": "apps/v1", "kind": kind, "name": w.name },
        "maxReplicas": h.max_replicas,
        "metrics": [metric],
    });
    if let Some(m) = h.min_replicas {
        spec["minReplicas"] = json!(m);
    }
    Some(json!({
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": { "name": w.name, "namespace": w.namespace },
        "spec": spec,
    }))
}

/// The workload's PDB, if it has one.
pub fn pdb_object(w: &Workload) -> Option<Value> {
    let p = w.pdb.as_ref()?;
    let mut spec = json!({ "selector": { "matchLabels": w.pod_labels() } });
    if let Some(m) = &p.min_available {
        spec["minAvailable"] = m.clone();
    }
    if let Some(m) = &p.max_unavailable {
        spec["maxUnavailable"] = m.clone();
    }
    if let Some(u) = &p.unhealthy_pod_eviction_policy {
        spec["unhealthyPodEvictionPolicy"] = json!(u);
    }
    Some(json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": { "name": w.name, "namespace": w.namespace },
        "spec": spec,
    }))
}

/// A Service: its selector is the named workload's pod labels (or `selector`).
pub fn service_object(s: &ServiceSpec, workloads: &[Workload]) -> Value {
    let target = s.workload.as_deref().and_then(|n| {
        workloads
            .iter()
            .find(|w| w.name == n && w.namespace == s.namespace)
    });
    let selector = match target {
        Some(w) if s.selector.is_empty() => w.pod_labels(),
        _ => s.selector.clone(),
    };
    let target_port = s
        .target_port
        .or(target.map(|w| w.container_port))
        .unwrap_or(s.port);
    let type_ = match s.type_ {
        ServiceType::ClusterIP => "ClusterIP",
        ServiceType::NodePort => "NodePort",
        ServiceType::LoadBalancer => "LoadBalancer",
    };
    let mut port =
        json!({ "name": "http", "port": s.port, "targetPort": target_port, "protocol": "TCP" });
    let mut spec = json!({ "type": type_, "selector": selector, "ports": [] });
    if s.type_ != ServiceType::ClusterIP {
        // A stable NodePort per service name in the default range.
        let h = s
            .name
            .bytes()
            .fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
        port["nodePort"] = json!(30000 + (h % 2768));
        spec["externalTrafficPolicy"] = json!(match s.external_traffic_policy {
            TrafficPolicy::Cluster => "Cluster",
            TrafficPolicy::Local => "Local",
        });
    }
    spec["ports"] = json!([port]);
    let mut annotations = serde_json::Map::new();
    if let Some(lb) = &s.load_balancer {
        use super::model::LbKind;
        let kind = match lb.kind {
            LbKind::Alb => "alb",
            LbKind::Nlb => "nlb",
            LbKind::Clb => "clb",
        };
        // An Ingress's backend and a binding's Service carry no load-balancer annotation.
        let own = lb.through == super::model::LbThrough::Service;
        if own {
            annotations.insert("twin.ngm.io/lb-kind".into(), json!(kind));
        }
        if own && lb.kind == LbKind::Nlb {
            annotations.insert(
                "service.beta.kubernetes.io/aws-load-balancer-type".into(),
                json!("external"),
            );
            let target = match lb.target_type {
                super::model::TargetType::Instance => "instance",
                super::model::TargetType::Ip => "ip",
            };
            annotations.insert(
                "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type".into(),
                json!(target),
            );
            if lb.connection_termination {
                annotations.insert(
                    crate::lb::settings::ANN_TG_ATTRIBUTES.into(),
                    json!(format!(
                        "{}=true",
                        crate::lb::settings::CONNECTION_TERMINATION
                    )),
                );
            }
        }
    }
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": s.name, "namespace": s.namespace, "annotations": annotations },
        "spec": spec,
    })
}
