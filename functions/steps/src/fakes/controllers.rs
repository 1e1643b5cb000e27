//! What the cluster's controllers and EKS do between two API calls, run by
//! [`FakeCloud::reconcile`].

use std::collections::BTreeSet;

use ngm_core::marks;
use ngm_core::model::{
    NodeGroupStatus, NodeView, OwnerRef, PdbView, PodPhase, PodView, ReplicaSetView, TaintEffect,
    Timestamp, WorkloadKind, WorkloadView,
};

use super::{FakeCloud, Inner, NodeOwner, Snapshot};

/// The PDB with its status computed from the pods, as the disruption controller does.
pub(crate) fn pdb_status(pdb: &PdbView, pods: &[PodView]) -> PdbView {
    let covered: Vec<&PodView> = pods
        .iter()
        .filter(|p| !p.terminating && pdb.covers(p))
        .collect();
    let expected = i32::try_from(covered.len()).unwrap_or(i32::MAX);
    let healthy = i32::try_from(covered.iter().filter(|p| p.ready).count()).unwrap_or(i32::MAX);
    let desired = match (pdb.min_available, pdb.max_unavailable) {
        (Some(m), _) => m.resolve(expected),
        (None, Some(m)) => expected - m.resolve(expected),
        (None, None) => expected,
    };
    PdbView {
        disruptions_allowed: (healthy - desired).max(0),
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        ..pdb.clone()
    }
}

/// One ReplicaSet per Deployment, `<deployment>-rs`.
pub(crate) fn replicasets(w: &Snapshot) -> Vec<ReplicaSetView> {
    w.workloads
        .values()
        .filter(|d| d.kind == WorkloadKind::Deployment)
        .map(|d| ReplicaSetView {
            namespace: d.namespace.clone(),
            name: format!("{}-rs", d.name),
            owner: Some(OwnerRef {
                kind: "Deployment".into(),
                name: d.name.clone(),
                uid: None,
            }),
            replicas: d.replicas,
            ready_replicas: d.ready_replicas,
        })
        .collect()
}

fn schedulable(n: &NodeView) -> bool {
    n.ready
        && !n.unschedulable
        && !n
            .taints
            .iter()
            .any(|t| matches!(t.effect, TaintEffect::NoSchedule | TaintEffect::NoExecute))
}

fn owner_name(p: &PodView) -> Option<&str> {
    p.owner.as_ref().map(|o| o.name.as_str())
}

/// Whether `p` belongs to workload `w`.
fn belongs(p: &PodView, w: &WorkloadView) -> bool {
    p.namespace == w.namespace
        && match w.kind {
            WorkloadKind::Deployment => owner_name(p) == Some(&format!("{}-rs", w.name)),
            WorkloadKind::StatefulSet => {
                p.owner_kind() == Some("StatefulSet") && owner_name(p) == Some(&w.name)
            }
        }
}

impl FakeCloud {
    /// Runs every controller once: finished terminations, node groups, HPAs, ReplicaSets and
    /// StatefulSets, DaemonSets, workload status. Call it between steps, like time passing.
    pub fn reconcile(&self) {
        let mut i = self.lock();
        i.w.pods.retain(|_, p| !p.terminating);
        // The namespace controller deletes every pod of a namespace being deleted.
        let gone = i.w.terminating_namespaces.clone();
        for p in
            i.w.pods
                .values_mut()
                .filter(|p| gone.contains(&p.namespace))
        {
            p.terminating = true;
            p.ready = false;
        }
        groups(&mut i);
        hpas(&mut i.w);
        let workloads: Vec<WorkloadView> = i.w.workloads.values().cloned().collect();
        // Nothing is created in a namespace being deleted.
        for w in workloads.iter().filter(|w| !gone.contains(&w.namespace)) {
            scale(&mut i, w);
        }
        daemonsets(&mut i);
        status(&mut i.w);
    }
}

fn groups(i: &mut Inner) {
    let names: Vec<String> = i.w.nodegroups.keys().cloned().collect();
    for name in names {
        let Some(g) = i.w.nodegroups.get(&name).cloned() else {
            continue;
        };
        match g.status {
            NodeGroupStatus::Creating => {
                for k in 0..g.scaling.desired {
                    let zone = g
                        .subnets
                        .get(usize::try_from(k).unwrap_or(0) % g.subnets.len().max(1))
                        .and_then(|s| i.w.subnet_zones.get(s).cloned());
                    let node = super::builders::node_of(
                        &format!("{name}-node-{k}"),
                        &g,
                        zone,
                        i.node_allocatable,
                    );
                    i.w.node_owners
                        .insert(node.name.clone(), NodeOwner::Group(name.clone()));
                    i.w.nodes.insert(node.name.clone(), node);
                }
                if let Some(g) = i.w.nodegroups.get_mut(&name) {
                    g.status = NodeGroupStatus::Active;
                }
            }
            NodeGroupStatus::Deleting => {
                i.w.nodegroups.remove(&name);
            }
            _ => {}
        }
    }
    // Nodes whose group or Auto Scaling group is gone are terminated with their pods.
    let gone: BTreeSet<String> =
        i.w.node_owners
            .iter()
            .filter(|(_, o)| match o {
                NodeOwner::Group(g) => !i.w.nodegroups.contains_key(g),
                NodeOwner::Asg(a) => !i.w.asgs.contains_key(a),
            })
            .map(|(n, _)| n.clone())
            .collect();
    i.w.nodes.retain(|n, _| !gone.contains(n));
    i.w.node_owners.retain(|n, _| !gone.contains(n));
    i.w.pods
        .retain(|_, p| !p.node_name.as_ref().is_some_and(|n| gone.contains(n)));
}

/// The HPA as kubernetes' `horizontal.go` reconciles: a target outside minReplicas and
/// maxReplicas is clamped into it; otherwise it goes to what the metric asks for (the HPA's
/// load, when the test gave one), within the bounds.
fn hpas(w: &mut Snapshot) {
    for (key, h) in w.hpas.iter_mut() {
        let Some(target) = h.target() else { continue };
        let Some(wl) = w.workloads.get_mut(&target) else {
            continue;
        };
        let (min, max) = (h.effective_min(), h.max_replicas.max(1));
        let clamped = if wl.replicas < min || wl.replicas > max {
            wl.replicas.clamp(min, max)
        } else {
            w.hpa_load
                .get(key)
                .map_or(wl.replicas, |load| (*load).clamp(min, max))
        };
        if clamped != wl.replicas {
            wl.replicas = clamped;
            wl.generation += 1;
        }
        h.current_replicas = clamped;
        h.desired_replicas = clamped;
        h.observed_generation = Some(h.generation);
    }
}

/// The least-loaded schedulable node, by name on ties.
fn place(w: &Snapshot) -> Option<String> {
    w.nodes
        .values()
        .filter(|n| schedulable(n))
        .map(|n| {
            let load = w
                .pods
                .values()
                .filter(|p| p.node_name.as_deref() == Some(&n.name))
                .count();
            (load, n.name.clone())
        })
        .min()
        .map(|(_, n)| n)
}

fn new_pod(i: &mut Inner, w: &WorkloadView, name: String, owner: OwnerRef) -> PodView {
    let id = i.next_id();
    let node = place(&i.w);
    PodView {
        namespace: w.namespace.clone(),
        name,
        uid: format!("uid-{id}"),
        ready: node.is_some(),
        phase: if node.is_some() {
            PodPhase::Running
        } else {
            PodPhase::Pending
        },
        node_name: node,
        pod_ip: None,
        labels: w.selector.match_labels.clone(),
        annotations: Default::default(),
        owner: Some(owner),
        is_mirror: false,
        has_empty_dir: false,
        pvc_names: if w.has_volume_claims {
            vec![format!("data-{}", w.name)]
        } else {
            vec![]
        },
        terminating: false,
        created_at: Some(Timestamp(i64::try_from(id).unwrap_or(i64::MAX))),
        requests: w.pod_requests,
        shutdown: Default::default(),
        readiness_gates: vec![],
        placement: Default::default(),
    }
}

fn deletion_cost(p: &PodView) -> i64 {
    p.annotations
        .get(marks::POD_DELETION_COST)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

fn scale(i: &mut Inner, w: &WorkloadView) {
    let live: Vec<PodView> =
        i.w.pods
            .values()
            .filter(|p| !p.terminating && belongs(p, w))
            .cloned()
            .collect();
    let want = usize::try_from(w.replicas).unwrap_or(0);
    match w.kind {
        WorkloadKind::Deployment => {
            let owner = OwnerRef {
                kind: "ReplicaSet".into(),
                name: format!("{}-rs", w.name),
                uid: None,
            };
            for _ in live.len()..want {
                let id = i.w.counter + 1;
                let p = new_pod(i, w, format!("{}-{id}", w.name), owner.clone());
                i.w.pods.insert((p.namespace.clone(), p.name.clone()), p);
            }
            if live.len() > want {
                // The ReplicaSet controller's order: unscheduled, not ready, lower
                // pod-deletion-cost, then newer first. It ignores taints and cordon.
                let mut victims = live;
                victims.sort_by_key(|p| {
                    (
                        p.node_name.is_some(),
                        p.ready,
                        deletion_cost(p),
                        std::cmp::Reverse(p.created_at),
                    )
                });
                for v in victims.iter().take(victims.len() - want) {
                    i.w.pods.remove(&(v.namespace.clone(), v.name.clone()));
                }
            }
        }
        WorkloadKind::StatefulSet => {
            let owner = OwnerRef {
                kind: "StatefulSet".into(),
                name: w.name.clone(),
                uid: None,
            };
            for k in 0..want {
                let name = format!("{}-{k}", w.name);
                let key = (w.namespace.clone(), name.clone());
                if !i.w.pods.contains_key(&key) {
                    let p = new_pod(i, w, name, owner.clone());
                    i.w.pods.insert(key, p);
                }
            }
        }
    }
}

fn daemonsets(i: &mut Inner) {
    let sets = i.w.daemonsets.clone();
    let nodes: Vec<String> = i.w.nodes.keys().cloned().collect();
    for ds in sets {
        for n in &nodes {
            let key = (ds.namespace.clone(), format!("{}-{n}", ds.name));
            if i.w.pods.contains_key(&key) {
                continue;
            }
            let id = i.next_id();
            i.w.pods.insert(
                key.clone(),
                PodView {
                    namespace: key.0.clone(),
                    name: key.1.clone(),
                    uid: format!("uid-{id}"),
                    node_name: Some(n.clone()),
                    pod_ip: None,
                    phase: PodPhase::Running,
                    ready: true,
                    labels: [("app".to_string(), ds.name.clone())].into(),
                    annotations: Default::default(),
                    owner: Some(OwnerRef {
                        kind: "DaemonSet".into(),
                        name: ds.name.clone(),
                        uid: None,
                    }),
                    is_mirror: false,
                    has_empty_dir: false,
                    pvc_names: vec![],
                    terminating: false,
                    created_at: Some(Timestamp(i64::try_from(id).unwrap_or(i64::MAX))),
                    requests: Default::default(),
                    shutdown: Default::default(),
                    readiness_gates: vec![],
                    placement: Default::default(),
                },
            );
        }
    }
}

fn status(w: &mut Snapshot) {
    let pods: Vec<PodView> = w.pods.values().cloned().collect();
    for wl in w.workloads.values_mut() {
        let ready = pods
            .iter()
            .filter(|p| !p.terminating && p.ready && belongs(p, wl))
            .count();
        wl.ready_replicas = i32::try_from(ready).unwrap_or(i32::MAX);
        wl.updated_replicas = wl.replicas;
        wl.observed_generation = wl.generation;
    }
    let node_count = i32::try_from(w.nodes.len()).unwrap_or(i32::MAX);
    for ds in &mut w.daemonsets {
        ds.desired_scheduled = node_count;
        ds.number_ready = node_count;
    }
}
