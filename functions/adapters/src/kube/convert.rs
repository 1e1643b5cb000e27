//! k8s-openapi objects reduced to ngm-core's views. Only fields a planner reads are kept.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{LifecycleHandler, Node, PersistentVolume, Pod, PodSpec, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector as KubeSelector, ObjectMeta, OwnerReference, Time,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use ngm_core::model::{
    DaemonSetView, EndpointSliceView, EndpointView, HpaView, IntOrPercent, LabelSelector, Labels,
    NodeOperator, NodeRequirement, NodeView, OwnerRef, PdbView, Placement, PodPhase, PodTerm,
    PodView, PreStop, ReplicaSetView, Resources, SelectorOperator, SelectorRequirement,
    ServiceType, ServiceView, Shutdown, SpreadConstraint, Taint, TaintEffect, Timestamp,
    Toleration, TrafficPolicy, WorkloadKind, WorkloadView, parse_cpu_millis, parse_memory_bytes,
};

fn map(m: &Option<BTreeMap<String, String>>) -> Labels {
    m.clone().unwrap_or_default()
}

fn ts(t: &Option<Time>) -> Option<Timestamp> {
    t.as_ref().map(|t| Timestamp(t.0.as_second()))
}

fn controller_owner(meta: &ObjectMeta) -> Option<OwnerRef> {
    let owners: &[OwnerReference] = meta.owner_references.as_deref().unwrap_or_default();
    owners
        .iter()
        .find(|o| o.controller == Some(true))
        .map(|o| OwnerRef {
            kind: o.kind.clone(),
            name: o.name.clone(),
            uid: Some(o.uid.clone()),
        })
}

pub fn selector(s: &KubeSelector) -> LabelSelector {
    LabelSelector {
        match_labels: map(&s.match_labels),
        match_expressions: s
            .match_expressions
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|e| {
                let operator = match e.operator.as_str() {
                    "In" => SelectorOperator::In,
                    "NotIn" => SelectorOperator::NotIn,
                    "Exists" => SelectorOperator::Exists,
                    "DoesNotExist" => SelectorOperator::DoesNotExist,
                    _ => return None,
                };
                Some(SelectorRequirement {
                    key: e.key.clone(),
                    operator,
                    values: e.values.clone().unwrap_or_default(),
                })
            })
            .collect(),
    }
}

/// The sum of the containers' requests (init containers are not running at steady state).
fn pod_requests(spec: Option<&PodSpec>) -> Resources {
    let mut total = Resources::default();
    for c in spec.map(|s| s.containers.as_slice()).unwrap_or_default() {
        let req = c.resources.as_ref().and_then(|r| r.requests.as_ref());
        if let Some(req) = req {
            total = total.plus(Resources {
                cpu_millis: req
                    .get("cpu")
                    .and_then(|q| parse_cpu_millis(&q.0).ok())
                    .unwrap_or(0),
                memory_bytes: req
                    .get("memory")
                    .and_then(|q| parse_memory_bytes(&q.0).ok())
                    .unwrap_or(0),
            });
        }
    }
    total
}

pub fn node(n: &Node) -> NodeView {
    let labels = map(&n.metadata.labels);
    let spec = n.spec.as_ref();
    let status = n.status.as_ref();
    let allocatable = status.and_then(|s| s.allocatable.as_ref());
    NodeView {
        name: n.metadata.name.clone().unwrap_or_default(),
        zone: labels.get("topology.kubernetes.io/zone").cloned(),
        annotations: map(&n.metadata.annotations),
        taints: spec
            .and_then(|s| s.taints.as_deref())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| {
                Some(Taint {
                    key: t.key.clone(),
                    value: t.value.clone(),
                    effect: TaintEffect::parse(&t.effect)?,
                })
            })
            .collect(),
        unschedulable: spec.and_then(|s| s.unschedulable).unwrap_or(false),
        ready: status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        provider_id: spec.and_then(|s| s.provider_id.clone()),
        allocatable: Resources {
            cpu_millis: allocatable
                .and_then(|a| a.get("cpu"))
                .and_then(|q| parse_cpu_millis(&q.0).ok())
                .unwrap_or(0),
            memory_bytes: allocatable
                .and_then(|a| a.get("memory"))
                .and_then(|q| parse_memory_bytes(&q.0).ok())
                .unwrap_or(0),
        },
        labels,
        os_image: status
            .and_then(|s| s.node_info.as_ref())
            .map(|i| i.os_image.clone())
            .filter(|s| !s.is_empty()),
        gpus: allocatable
            .and_then(|a| a.get(GPU_RESOURCE))
            .and_then(|q| q.0.parse::<i64>().ok())
            .unwrap_or(0),
    }
}

/// A TargetGroupBinding, read from its JSON (a custom resource).
pub fn target_group_binding(
    o: &kube::core::DynamicObject,
) -> ngm_core::model::TargetGroupBindingView {
    let s = |p: &str| {
        o.data
            .pointer(p)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    ngm_core::model::TargetGroupBindingView {
        namespace: o.metadata.namespace.clone().unwrap_or_default(),
        name: o.metadata.name.clone().unwrap_or_default(),
        service: s("/spec/serviceRef/name"),
        target_group_arn: s("/spec/targetGroupARN"),
        target_type: Some(s("/spec/targetType")).filter(|t| !t.is_empty()),
    }
}

/// A PersistentVolume: where its data lives and which claim holds it.
pub fn volume(v: &PersistentVolume) -> ngm_core::model::VolumeView {
    let spec = v.spec.as_ref();
    let nodes = spec
        .and_then(|s| s.node_affinity.as_ref())
        .and_then(|a| a.required.as_ref())
        .map(|r| {
            r.node_selector_terms
                .iter()
                .flat_map(|t| t.match_expressions.iter().flatten())
                .filter(|e| e.key == "kubernetes.io/hostname" && e.operator == "In")
                .flat_map(|e| e.values.clone().unwrap_or_default())
                .collect()
        })
        .unwrap_or_default();
    ngm_core::model::VolumeView {
        name: v.metadata.name.clone().unwrap_or_default(),
        local_path: spec.and_then(|s| {
            s.local
                .as_ref()
                .map(|l| l.path.clone())
                .or_else(|| s.host_path.as_ref().map(|h| h.path.clone()))
        }),
        nodes,
        claim: spec
            .and_then(|s| s.claim_ref.as_ref())
            .and_then(|c| Some((c.namespace.clone()?, c.name.clone()?))),
    }
}

/// A Karpenter NodePool, read from its JSON (a custom resource).
pub fn node_pool(o: &kube::core::DynamicObject) -> ngm_core::model::NodePoolView {
    ngm_core::model::NodePoolView {
        name: o.metadata.name.clone().unwrap_or_default(),
        node_class_group: o
            .data
            .pointer("/spec/template/spec/nodeClassRef/group")
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string(),
    }
}

pub fn pod(p: &Pod) -> PodView {
    let spec = p.spec.as_ref();
    let status = p.status.as_ref();
    let annotations = map(&p.metadata.annotations);
    let volumes = spec.and_then(|s| s.volumes.as_deref()).unwrap_or_default();
    PodView {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        uid: p.metadata.uid.clone().unwrap_or_default(),
        node_name: spec.and_then(|s| s.node_name.clone()),
        pod_ip: status
            .and_then(|s| s.pod_ip.clone())
            .filter(|ip| !ip.is_empty()),
        phase: match status.and_then(|s| s.phase.as_deref()) {
            Some("Running") => PodPhase::Running,
            Some("Succeeded") => PodPhase::Succeeded,
            Some("Failed") => PodPhase::Failed,
            Some("Pending") | None => PodPhase::Pending,
            Some(_) => PodPhase::Unknown,
        },
        ready: status
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True"),
        labels: map(&p.metadata.labels),
        // A static pod's API object carries this annotation (kubectl drain skips them).
        is_mirror: annotations.contains_key("kubernetes.io/config.mirror"),
        annotations,
        owner: controller_owner(&p.metadata),
        has_empty_dir: volumes.iter().any(|v| v.empty_dir.is_some()),
        pvc_names: volumes
            .iter()
            .filter_map(|v| {
                v.persistent_volume_claim
                    .as_ref()
                    .map(|c| c.claim_name.clone())
            })
            .collect(),
        terminating: p.metadata.deletion_timestamp.is_some(),
        created_at: ts(&p.metadata.creation_timestamp),
        requests: pod_requests(spec),
        shutdown: Shutdown {
            pre_stop: spec.map_or(PreStop::None, pre_stop),
            // The API defaults it to 30.
            grace_seconds: spec
                .and_then(|s| s.termination_grace_period_seconds)
                .unwrap_or(30),
        },
        readiness_gates: spec
            .and_then(|s| s.readiness_gates.as_deref())
            .unwrap_or_default()
            .iter()
            .map(|g| g.condition_type.clone())
            .collect(),
        placement: spec.map(placement).unwrap_or_default(),
    }
}

/// What decides which nodes can take the pod.
fn placement(spec: &PodSpec) -> Placement {
    let affinity = spec.affinity.as_ref();
    let required_node_terms = affinity
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .map(|r| {
            r.node_selector_terms
                .iter()
                .map(|t| {
                    t.match_expressions
                        .iter()
                        .flatten()
                        .filter_map(|e| {
                            Some(NodeRequirement {
                                key: e.key.clone(),
                                operator: match e.operator.as_str() {
                                    "In" => NodeOperator::In,
                                    "NotIn" => NodeOperator::NotIn,
                                    "Exists" => NodeOperator::Exists,
                                    "DoesNotExist" => NodeOperator::DoesNotExist,
                                    "Gt" => NodeOperator::Gt,
                                    "Lt" => NodeOperator::Lt,
                                    _ => return None,
                                },
                                values: e.values.clone().unwrap_or_default(),
                            })
                        })
                        .collect()
                })
                .collect()
        })
        .unwrap_or_default();
    let anti_affinity = affinity
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|p| {
            p.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
        .iter()
        .map(|t| PodTerm {
            topology_key: t.topology_key.clone(),
            selector: t.label_selector.as_ref().map(selector).unwrap_or_default(),
            namespaces: t.namespaces.clone().unwrap_or_default(),
        })
        .collect();
    let spread = spec
        .topology_spread_constraints
        .as_deref()
        .unwrap_or_default()
        .iter()
        .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
        .map(|c| SpreadConstraint {
            max_skew: c.max_skew,
            topology_key: c.topology_key.clone(),
            selector: c.label_selector.as_ref().map(selector).unwrap_or_default(),
        })
        .collect();
    let tolerations = spec
        .tolerations
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|t| Toleration {
            key: t.key.clone().filter(|k| !k.is_empty()),
            exists: t.operator.as_deref() == Some("Exists"),
            value: t.value.clone(),
            effect: t.effect.as_deref().and_then(TaintEffect::parse),
        })
        .collect();
    let gpus = spec
        .containers
        .iter()
        .filter_map(|c| {
            let r = c.resources.as_ref()?;
            let q = r
                .limits
                .as_ref()
                .and_then(|l| l.get(GPU_RESOURCE))
                .or_else(|| r.requests.as_ref()?.get(GPU_RESOURCE))?;
            q.0.parse::<i64>().ok()
        })
        .sum();
    Placement {
        node_selector: map(&spec.node_selector),
        required_node_terms,
        tolerations,
        anti_affinity,
        spread,
        gpus,
        host_paths: spec
            .volumes
            .as_deref()
            .unwrap_or_default()
            .iter()
            .filter_map(|v| v.host_path.as_ref().map(|h| h.path.clone()))
            .collect(),
    }
}

/// The extended resource NVIDIA's device plugin advertises (a container requests it by limit).
const GPU_RESOURCE: &str = "nvidia.com/gpu";

/// The longest preStop hook of the pod's containers: a `sleep` action, or an exec whose
/// command runs `sleep N` (`["sleep", "N"]`, or `sh -c "... sleep N"`); any other hook's
/// length cannot be read.
fn pre_stop(spec: &PodSpec) -> PreStop {
    let hooks: Vec<&LifecycleHandler> = spec
        .containers
        .iter()
        .filter_map(|c| c.lifecycle.as_ref()?.pre_stop.as_ref())
        .collect();
    if hooks.is_empty() {
        return PreStop::None;
    }
    let secs = |h: &&LifecycleHandler| -> Option<u32> {
        if let Some(s) = &h.sleep {
            return u32::try_from(s.seconds).ok();
        }
        let cmd = h.exec.as_ref()?.command.as_ref()?;
        let words: Vec<&str> = cmd.iter().flat_map(|a| a.split_whitespace()).collect();
        let at = words
            .iter()
            .position(|w| *w == "sleep" || w.ends_with("/sleep"))?;
        let n = words.get(at + 1)?.trim_end_matches([';', '&']);
        n.parse::<f64>().ok().map(|f| f.ceil() as u32)
    };
    match hooks.iter().map(secs).collect::<Option<Vec<u32>>>() {
        Some(all) => PreStop::Sleep {
            seconds: all.into_iter().max().unwrap_or(0),
        },
        None => PreStop::Other,
    }
}

pub fn deployment(d: &Deployment) -> WorkloadView {
    let spec = d.spec.as_ref();
    let status = d.status.as_ref();
    WorkloadView {
        kind: WorkloadKind::Deployment,
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone().unwrap_or_default(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        // The API defaults a missing spec.replicas to 1.
        replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        ready_replicas: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        updated_replicas: status.and_then(|s| s.updated_replicas).unwrap_or(0),
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
        selector: spec.map(|s| selector(&s.selector)).unwrap_or_default(),
        labels: map(&d.metadata.labels),
        annotations: map(&d.metadata.annotations),
        pod_requests: pod_requests(spec.and_then(|s| s.template.spec.as_ref())),
        has_volume_claims: false,
    }
}

pub fn statefulset(s: &StatefulSet) -> WorkloadView {
    let spec = s.spec.as_ref();
    let status = s.status.as_ref();
    WorkloadView {
        kind: WorkloadKind::StatefulSet,
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        uid: s.metadata.uid.clone().unwrap_or_default(),
        replicas: spec.and_then(|s| s.replicas).unwrap_or(1),
        ready_replicas: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        updated_replicas: status.and_then(|s| s.updated_replicas).unwrap_or(0),
        generation: s.metadata.generation.unwrap_or(0),
        observed_generation: status.and_then(|s| s.observed_generation).unwrap_or(0),
        selector: spec.map(|s| selector(&s.selector)).unwrap_or_default(),
        labels: map(&s.metadata.labels),
        annotations: map(&s.metadata.annotations),
        pod_requests: pod_requests(spec.and_then(|s| s.template.spec.as_ref())),
        has_volume_claims: spec
            .and_then(|s| s.volume_claim_templates.as_ref())
            .is_some_and(|v| !v.is_empty()),
    }
}

pub fn replicaset(r: &ReplicaSet) -> ReplicaSetView {
    ReplicaSetView {
        namespace: r.metadata.namespace.clone().unwrap_or_default(),
        name: r.metadata.name.clone().unwrap_or_default(),
        owner: controller_owner(&r.metadata),
        replicas: r.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1),
        ready_replicas: r
            .status
            .as_ref()
            .and_then(|s| s.ready_replicas)
            .unwrap_or(0),
    }
}

pub fn daemonset(d: &DaemonSet) -> DaemonSetView {
    let status = d.status.as_ref();
    DaemonSetView {
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name: d.metadata.name.clone().unwrap_or_default(),
        desired_scheduled: status.map(|s| s.desired_number_scheduled).unwrap_or(0),
        number_ready: status.map(|s| s.number_ready).unwrap_or(0),
    }
}

pub fn hpa(h: &HorizontalPodAutoscaler) -> HpaView {
    let spec = h.spec.as_ref();
    let status = h.status.as_ref();
    HpaView {
        namespace: h.metadata.namespace.clone().unwrap_or_default(),
        name: h.metadata.name.clone().unwrap_or_default(),
        target_kind: spec
            .map(|s| s.scale_target_ref.kind.clone())
            .unwrap_or_default(),
        target_name: spec
            .map(|s| s.scale_target_ref.name.clone())
            .unwrap_or_default(),
        min_replicas: spec.and_then(|s| s.min_replicas),
        max_replicas: spec.map(|s| s.max_replicas).unwrap_or(0),
        current_replicas: status.and_then(|s| s.current_replicas).unwrap_or(0),
        desired_replicas: status.map(|s| s.desired_replicas).unwrap_or(0),
        generation: h.metadata.generation.unwrap_or(0),
        observed_generation: status.and_then(|s| s.observed_generation),
        annotations: map(&h.metadata.annotations),
    }
}

fn int_or_percent(v: &Option<IntOrString>) -> Option<IntOrPercent> {
    match v.as_ref()? {
        IntOrString::Int(n) => Some(IntOrPercent::Int(*n)),
        IntOrString::String(s) => IntOrPercent::parse(s),
    }
}

pub fn pdb(p: &PodDisruptionBudget) -> PdbView {
    let spec = p.spec.as_ref();
    let status = p.status.as_ref();
    PdbView {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        selector: spec
            .and_then(|s| s.selector.as_ref())
            .map(selector)
            .unwrap_or_default(),
        min_available: spec.and_then(|s| int_or_percent(&s.min_available)),
        max_unavailable: spec.and_then(|s| int_or_percent(&s.max_unavailable)),
        disruptions_allowed: status.map(|s| s.disruptions_allowed).unwrap_or(0),
        current_healthy: status.map(|s| s.current_healthy).unwrap_or(0),
        desired_healthy: status.map(|s| s.desired_healthy).unwrap_or(0),
        expected_pods: status.map(|s| s.expected_pods).unwrap_or(0),
    }
}

pub fn service(s: &Service) -> ServiceView {
    let spec = s.spec.as_ref();
    ServiceView {
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        service_type: match spec.and_then(|s| s.type_.as_deref()) {
            Some("NodePort") => ServiceType::NodePort,
            Some("LoadBalancer") => ServiceType::LoadBalancer,
            Some("ExternalName") => ServiceType::ExternalName,
            _ => ServiceType::ClusterIP,
        },
        external_traffic_policy: spec
            .and_then(|s| s.external_traffic_policy.as_deref())
            .map(|p| match p {
                "Local" => TrafficPolicy::Local,
                _ => TrafficPolicy::Cluster,
            }),
        lb_hostnames: s
            .status
            .as_ref()
            .and_then(|st| st.load_balancer.as_ref())
            .and_then(|lb| lb.ingress.as_ref())
            .map(|ing| ing.iter().filter_map(|i| i.hostname.clone()).collect())
            .unwrap_or_default(),
        selector: spec.map(|s| map(&s.selector)).unwrap_or_default(),
        annotations: map(&s.metadata.annotations),
    }
}

pub fn endpointslice(e: &EndpointSlice) -> EndpointSliceView {
    let labels = map(&e.metadata.labels);
    EndpointSliceView {
        namespace: e.metadata.namespace.clone().unwrap_or_default(),
        name: e.metadata.name.clone().unwrap_or_default(),
        service: labels
            .get("kubernetes.io/service-name")
            .cloned()
            .unwrap_or_default(),
        endpoints: e
            .endpoints
            .iter()
            .map(|ep| {
                let c = ep.conditions.as_ref();
                EndpointView {
                    addresses: ep.addresses.clone(),
                    // A nil `ready` means ready, per the EndpointSlice API.
                    ready: c.and_then(|c| c.ready).unwrap_or(true),
                    serving: c.and_then(|c| c.serving).unwrap_or(true),
                    terminating: c.and_then(|c| c.terminating).unwrap_or(false),
                    node_name: ep.node_name.clone(),
                    pod_name: ep
                        .target_ref
                        .as_ref()
                        .filter(|r| r.kind.as_deref() == Some("Pod"))
                        .and_then(|r| r.name.clone()),
                }
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod_with(spec: serde_json::Value) -> PodView {
        let p: Pod = serde_json::from_value(json!({
            "metadata": { "name": "p", "namespace": "a" },
            "spec": spec,
        }))
        .unwrap();
        pod(&p)
    }

    /// kubernetes.io "Container Lifecycle Hooks": a preStop hook is an exec, an HTTP call or
    /// (1.30+) a sleep action; the grace period defaults to 30 s.
    #[test]
    fn the_prestop_sleep_is_read_from_a_sleep_action_or_a_sleep_command() {
        let hook = |h: serde_json::Value| {
            pod_with(json!({ "containers": [
                { "name": "app", "lifecycle": { "preStop": h } },
                { "name": "sidecar" },
            ]}))
            .shutdown
        };
        assert_eq!(
            hook(json!({ "sleep": { "seconds": 20 } })).pre_stop,
            PreStop::Sleep { seconds: 20 }
        );
        assert_eq!(
            hook(json!({ "exec": { "command": ["sleep", "15"] } })).pre_stop,
            PreStop::Sleep { seconds: 15 }
        );
        assert_eq!(
            hook(json!({ "exec": { "command": ["/bin/sh", "-c", "echo bye; /bin/sleep 7.5"] } }))
                .pre_stop,
            PreStop::Sleep { seconds: 8 }
        );
        assert_eq!(
            hook(json!({ "httpGet": { "path": "/drain", "port": 8080 } })).pre_stop,
            PreStop::Other
        );
        let none = pod_with(json!({ "containers": [{ "name": "app" }] }));
        assert_eq!(none.shutdown.pre_stop, PreStop::None);
        assert_eq!(none.shutdown.grace_seconds, 30);
        let gated = pod_with(json!({
            "containers": [{ "name": "app" }],
            "terminationGracePeriodSeconds": 90,
            "readinessGates": [{ "conditionType": "target-health.elbv2.k8s.aws/k8s-a-web-1" }],
        }));
        assert_eq!(gated.shutdown.grace_seconds, 90);
        assert_eq!(
            gated.readiness_gates,
            vec!["target-health.elbv2.k8s.aws/k8s-a-web-1".to_string()]
        );
    }
}
