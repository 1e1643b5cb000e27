//! The Kubernetes port over [`FakeCloud`]: writes land at once; what controllers do afterwards
//! waits for [`FakeCloud::reconcile`].

use std::collections::BTreeMap;

use async_trait::async_trait;
use ngm_core::model::{
    DaemonSetView, EndpointSliceView, EventType, HpaView, LabelSelector, NodeView, ObjectRef,
    PdbView, PodView, ReplicaSetView, ServiceView, Taint, WorkloadKind, WorkloadRef, WorkloadView,
};
use ngm_core::ports::{EvictOutcome, HpaPatch, KubePort, MetadataPatch, PortResult};

use super::controllers::{pdb_status, replicasets};
use super::ports::{apply, missing};
use super::{FakeCloud, RecordedEvent};

/// The node to mark. A node that is gone (a Spot node just reclaimed) has nothing left to
/// mark, so the write is done: the adapter answers a 404 on a mark the same way.
fn node_mut<'a>(nodes: &'a mut BTreeMap<String, NodeView>, name: &str) -> Option<&'a mut NodeView> {
    nodes.get_mut(name)
}

#[async_trait]
impl KubePort for FakeCloud {
    async fn list_nodes(&self, selector: &LabelSelector) -> PortResult<Vec<NodeView>> {
        let mut i = self.lock();
        i.enter("list_nodes", &selector.to_query(), false)?;
        Ok(i.w
            .nodes
            .values()
            .filter(|n| selector.matches(&n.labels))
            .cloned()
            .collect())
    }

    async fn patch_node_labels(&self, name: &str, labels: &MetadataPatch) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("patch_node_labels", name, true)?;
        if let Some(n) = node_mut(&mut i.w.nodes, name) {
            apply(&mut n.labels, labels);
        }
        Ok(())
    }

    async fn patch_node_annotations(
        &self,
        name: &str,
        annotations: &MetadataPatch,
    ) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("patch_node_annotations", name, true)?;
        if let Some(n) = node_mut(&mut i.w.nodes, name) {
            apply(&mut n.annotations, annotations);
        }
        Ok(())
    }

    async fn patch_node_taints(
        &self,
        name: &str,
        add: &[Taint],
        remove: &[Taint],
    ) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("patch_node_taints", name, true)?;
        if let Some(n) = node_mut(&mut i.w.nodes, name) {
            n.taints
                .retain(|t| !remove.iter().chain(add).any(|r| r.same_slot(t)));
            n.taints.extend(add.iter().cloned());
        }
        Ok(())
    }

    async fn set_unschedulable(&self, name: &str, unschedulable: bool) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("set_unschedulable", name, true)?;
        if let Some(n) = node_mut(&mut i.w.nodes, name) {
            n.unschedulable = unschedulable;
        }
        Ok(())
    }

    async fn list_pods_on_node(&self, node: &str) -> PortResult<Vec<PodView>> {
        let mut i = self.lock();
        i.enter("list_pods_on_node", node, false)?;
        Ok(i.w
            .pods
            .values()
            .filter(|p| p.node_name.as_deref() == Some(node))
            .cloned()
            .collect())
    }

    async fn list_pods(
        &self,
        namespace: Option<&str>,
        selector: &LabelSelector,
    ) -> PortResult<Vec<PodView>> {
        let mut i = self.lock();
        i.enter("list_pods", namespace.unwrap_or(""), false)?;
        Ok(i.w
            .pods
            .values()
            .filter(|p| namespace.is_none_or(|ns| p.namespace == ns))
            .filter(|p| selector.matches(&p.labels))
            .cloned()
            .collect())
    }

    async fn annotate_pod(
        &self,
        namespace: &str,
        name: &str,
        annotations: &MetadataPatch,
    ) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("annotate_pod", &format!("{namespace}/{name}"), true)?;
        // A pod a rollout just deleted has nothing left to mark: done, as the adapter answers.
        if let Some(p) = i.w.pods.get_mut(&(namespace.to_string(), name.to_string())) {
            apply(&mut p.annotations, annotations);
        }
        Ok(())
    }

    async fn evict_pod(&self, namespace: &str, name: &str, uid: &str) -> PortResult<EvictOutcome> {
        let mut i = self.lock();
        i.enter("evict_pod", &format!("{namespace}/{name}"), true)?;
        let key = (namespace.to_string(), name.to_string());
        let Some(pod) = i.w.pods.get(&key).filter(|p| p.uid == uid).cloned() else {
            return Ok(EvictOutcome::AlreadyGone);
        };
        if pod.terminating {
            return Ok(EvictOutcome::Evicted);
        }
        // The API server refuses creates, evictions included, in a namespace being deleted
        // (403, cause NamespaceTerminating); the namespace controller deletes the pod itself.
        if i.w.terminating_namespaces.contains(namespace) {
            return Ok(EvictOutcome::NamespaceTerminating);
        }
        // The eviction subresource answers 429 while any covering PDB allows no disruption.
        let pods: Vec<PodView> = i.w.pods.values().cloned().collect();
        if let Some(pdb) =
            i.w.pdbs
                .values()
                .map(|p| pdb_status(p, &pods))
                .find(|p| p.covers(&pod) && p.disruptions_allowed <= 0)
        {
            return Ok(EvictOutcome::PdbBlocked {
                pdb: Some(format!("{}/{}", pdb.namespace, pdb.name)),
            });
        }
        if let Some(p) = i.w.pods.get_mut(&key) {
            p.terminating = true;
            p.ready = false;
        }
        Ok(EvictOutcome::Evicted)
    }

    async fn delete_pod(&self, namespace: &str, name: &str, uid: &str) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("delete_pod", &format!("{namespace}/{name}"), true)?;
        let key = (namespace.to_string(), name.to_string());
        if let Some(p) = i.w.pods.get_mut(&key).filter(|p| p.uid == uid) {
            p.terminating = true;
            p.ready = false;
        }
        Ok(())
    }

    async fn get_workload(&self, workload: &WorkloadRef) -> PortResult<Option<WorkloadView>> {
        let mut i = self.lock();
        i.enter("get_workload", &workload.to_string(), false)?;
        Ok(i.w.workloads.get(workload).cloned())
    }

    async fn scale_workload(&self, workload: &WorkloadRef, replicas: i32) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("scale_workload", &format!("{workload} {replicas}"), true)?;
        let w =
            i.w.workloads
                .get_mut(workload)
                .ok_or_else(|| missing(&workload.to_string()))?;
        if w.replicas != replicas {
            w.replicas = replicas;
            w.generation += 1;
        }
        Ok(())
    }

    async fn patch_workload_annotations(
        &self,
        workload: &WorkloadRef,
        annotations: &MetadataPatch,
    ) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("patch_workload_annotations", &workload.to_string(), true)?;
        let w =
            i.w.workloads
                .get_mut(workload)
                .ok_or_else(|| missing(&workload.to_string()))?;
        apply(&mut w.annotations, annotations);
        Ok(())
    }

    async fn list_workloads(&self, kind: WorkloadKind) -> PortResult<Vec<WorkloadView>> {
        let mut i = self.lock();
        i.enter("list_workloads", &kind.to_string(), false)?;
        Ok(i.w
            .workloads
            .values()
            .filter(|w| w.kind == kind)
            .cloned()
            .collect())
    }

    async fn list_replicasets(&self, namespace: Option<&str>) -> PortResult<Vec<ReplicaSetView>> {
        let mut i = self.lock();
        i.enter("list_replicasets", namespace.unwrap_or(""), false)?;
        Ok(replicasets(&i.w)
            .into_iter()
            .filter(|r| namespace.is_none_or(|ns| r.namespace == ns))
            .collect())
    }

    async fn list_daemonsets(&self) -> PortResult<Vec<DaemonSetView>> {
        let mut i = self.lock();
        i.enter("list_daemonsets", "", false)?;
        Ok(i.w.daemonsets.clone())
    }

    async fn list_hpas(&self) -> PortResult<Vec<HpaView>> {
        let mut i = self.lock();
        i.enter("list_hpas", "", false)?;
        Ok(i.w.hpas.values().cloned().collect())
    }

    async fn patch_hpa(&self, namespace: &str, name: &str, patch: &HpaPatch) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("patch_hpa", &format!("{namespace}/{name}"), true)?;
        let h =
            i.w.hpas
                .get_mut(&(namespace.to_string(), name.to_string()))
                .ok_or_else(|| missing(name))?;
        if let Some(min) = patch.min_replicas {
            h.min_replicas = min;
        }
        if let Some(max) = patch.max_replicas {
            h.max_replicas = max;
        }
        if patch.min_replicas.is_some() || patch.max_replicas.is_some() {
            h.generation += 1;
        }
        apply(&mut h.annotations, &patch.annotations);
        Ok(())
    }

    async fn list_pdbs(&self) -> PortResult<Vec<PdbView>> {
        let mut i = self.lock();
        i.enter("list_pdbs", "", false)?;
        let pods: Vec<PodView> = i.w.pods.values().cloned().collect();
        Ok(i.w.pdbs.values().map(|p| pdb_status(p, &pods)).collect())
    }

    async fn list_services(&self) -> PortResult<Vec<ServiceView>> {
        let mut i = self.lock();
        i.enter("list_services", "", false)?;
        Ok(i.w.services.clone())
    }

    async fn list_target_group_bindings(
        &self,
    ) -> PortResult<Vec<ngm_core::model::TargetGroupBindingView>> {
        let mut i = self.lock();
        i.enter("list_target_group_bindings", "", false)?;
        Ok(i.w.target_group_bindings.clone())
    }

    async fn list_persistent_volumes(&self) -> PortResult<Vec<ngm_core::model::VolumeView>> {
        let mut i = self.lock();
        i.enter("list_persistent_volumes", "", false)?;
        Ok(i.w.volumes.clone())
    }

    async fn list_node_pools(&self) -> PortResult<Option<Vec<ngm_core::model::NodePoolView>>> {
        let mut i = self.lock();
        i.enter("list_node_pools", "", false)?;
        Ok(i.w.node_pools.clone())
    }

    async fn list_endpointslices(
        &self,
        namespace: &str,
        service: &str,
    ) -> PortResult<Vec<EndpointSliceView>> {
        let mut i = self.lock();
        i.enter(
            "list_endpointslices",
            &format!("{namespace}/{service}"),
            false,
        )?;
        Ok(Vec::new())
    }

    async fn record_event(
        &self,
        object: &ObjectRef,
        event_type: EventType,
        reason: &str,
        _message: &str,
    ) -> PortResult<()> {
        let mut i = self.lock();
        i.enter("record_event", &object.name, false)?;
        i.events.push(RecordedEvent {
            object: object.clone(),
            event_type,
            reason: reason.to_string(),
        });
        Ok(())
    }
}
