//! The DaemonSet controller: one pod per eligible node, pinned with a `metadata.name`
//! node-affinity term and the usual daemon tolerations, so the scheduler binds it there
//! (the default-scheduler path upstream uses since 1.12).

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::json;

use super::objects::{controller_ref, pod_from_template};
use super::podutil::{is_active, is_ready, key, node_name};
use super::runner::Ctx;
use super::workloads::{
    daemon_tolerations, should_continue_running_daemon_pod, should_run_daemon_pod,
};
use crate::store::{DeleteOptions, Resource};

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let sets: Vec<Arc<DaemonSet>> = ctx.cache.daemonsets.values().cloned().collect();
    let nodes: Vec<Arc<Node>> = ctx.cache.nodes.values().cloned().collect();
    for ds in sets {
        if ds.metadata.deletion_timestamp.is_none() {
            sync(ctx, &ds, &nodes);
        }
    }
}

/// The daemon pod for one node, as a typed pod to test placement against.
fn daemon_pod(ds: &DaemonSet, node: &str) -> serde_json::Value {
    let (ns, name) = key(&ds.metadata);
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let own = template
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    let host_network = template
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false);
    let mut pod = pod_from_template(
        &template,
        &ns,
        None,
        &format!("{name}-"),
        controller_ref("apps/v1", "DaemonSet", &ds.metadata),
        &[],
    );
    pod["spec"]["tolerations"] =
        serde_json::to_value(daemon_tolerations(&own, host_network)).unwrap_or(json!([]));
    let pin = json!({ "nodeSelectorTerms": [{ "matchFields": [{ "key": "metadata.name", "operator": "In", "values": [node] }] }] });
    if !pod["spec"]["affinity"].is_object() {
        pod["spec"]["affinity"] = json!({});
    }
    pod["spec"]["affinity"]["nodeAffinity"] =
        json!({ "requiredDuringSchedulingIgnoredDuringExecution": pin });
    pod
}

fn sync(ctx: &mut Ctx<'_>, ds: &DaemonSet, nodes: &[Arc<Node>]) {
    let (ns, name) = key(&ds.metadata);
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    // Placement is judged against the template with the daemon tolerations and the DaemonSet's
    // own node selection (not the per-node pin).
    let Some(probe) = ds.spec.as_ref().map(|s| {
        let mut p = pod_from_template(&s.template, &ns, Some("probe"), "", json!({}), &[]);
        let own = s
            .template
            .spec
            .as_ref()
            .and_then(|t| t.tolerations.clone())
            .unwrap_or_default();
        let host_network = s
            .template
            .spec
            .as_ref()
            .and_then(|t| t.host_network)
            .unwrap_or(false);
        p["spec"]["tolerations"] =
            serde_json::to_value(daemon_tolerations(&own, host_network)).unwrap_or(json!([]));
        serde_json::from_value::<Pod>(p).unwrap_or_default()
    }) else {
        return;
    };
    let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    for p in ctx.owned(&uid) {
        if let Some(n) = pinned_node(p) {
            by_node.entry(n).or_default().push(p.clone());
        }
    }
    let (mut desired, mut scheduled, mut ready, mut misscheduled) = (0, 0, 0, 0);
    for node in nodes {
        let node_name_s = node.metadata.name.clone().unwrap_or_default();
        let active: Vec<&Arc<Pod>> = by_node
            .get(&node_name_s)
            .map(|v| v.iter().filter(|p| is_active(p)).collect())
            .unwrap_or_default();
        if should_run_daemon_pod(&probe, node) {
            desired += 1;
            if active.is_empty() {
                let _ = ctx
                    .store
                    .create(Resource::Pod, &ns, daemon_pod(ds, &node_name_s));
            } else {
                scheduled += 1;
                ready += active.iter().filter(|p| is_ready(p)).count();
            }
        } else if !active.is_empty() && should_continue_running_daemon_pod(&probe, node) {
            // A NoSchedule taint stops new daemon pods; the running one stays.
            scheduled += 1;
            ready += active.iter().filter(|p| is_ready(p)).count();
        } else {
            if !active.is_empty() {
                misscheduled += 1;
            }
            for p in active {
                let (pns, pname) = key(&p.metadata);
                let _ = ctx
                    .store
                    .delete(Resource::Pod, &pns, &pname, &DeleteOptions::default());
            }
        }
    }
    let status = json!({
        "observedGeneration": ds.metadata.generation.unwrap_or(1),
        "desiredNumberScheduled": desired,
        "currentNumberScheduled": scheduled,
        "updatedNumberScheduled": scheduled,
        "numberReady": ready,
        "numberAvailable": ready,
        "numberUnavailable": desired - ready.min(desired),
        "numberMisscheduled": misscheduled,
    });
    let _ = ctx.store.mutate(Resource::DaemonSet, &ns, &name, |v| {
        v["status"] = status;
        Ok(())
    });
}

/// The node a daemon pod is bound or pinned to.
fn pinned_node(pod: &Pod) -> Option<String> {
    if let Some(n) = node_name(pod) {
        return Some(n.to_string());
    }
    pod.spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|f| f.key == "metadata.name")
        .and_then(|f| f.values.as_ref()?.first().cloned())
}
