//! EKS's own drain, run before it terminates instances (node-group delete, scale-in, and each
//! node of a version update, `ops/version.rs`, with its own timeout): the
//! nodes are cordoned and their pods evicted through the Eviction API, which respects PDBs,
//! retrying blocked evictions for at most the drain timeout; whatever is left then goes with
//! the instance. See "Delete a managed node group from your cluster" in the EKS user guide:
//! "If the node hasn't been drained after 5 minutes, Amazon EKS lets Auto Scaling continue the
//! forced termination of the instance."

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::Eks;
use crate::clock::secs_delta;
use crate::store::Resource;

/// What the drain did to one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DrainStep {
    /// The eviction was allowed (201).
    Evicted,
    /// The eviction was refused by a PDB (429); recorded once per pod.
    Blocked,
    /// The pod was still there when its instance was terminated (the drain timed out, or a
    /// version update was forced) and went with it.
    Terminated,
}

/// One step of an EKS drain, for the report and the invariant checks.
#[derive(Clone, Debug, PartialEq)]
pub struct DrainRecord {
    pub at: DateTime<Utc>,
    pub node: String,
    pub namespace: String,
    pub pod: String,
    pub step: DrainStep,
    pub pdb: Option<String>,
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

/// DaemonSet and mirror pods are left alone, as `kubectl drain --ignore-daemonsets` does.
fn drainable(pod: &Value) -> bool {
    let daemon = pod
        .pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r.get("kind").and_then(Value::as_str) == Some("DaemonSet"))
        });
    let mirror = pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_some();
    let terminal = matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed");
    !daemon && !mirror && !terminal
}

/// A pod a drain still waits on: `(node, namespace, name)`.
pub(crate) type LeftPod = (String, String, String);

impl Eks {
    /// Cordons `nodes` and evicts their pods until none is left or the drain timeout passes;
    /// what is left then goes with the instances.
    pub(crate) async fn drain(&self, nodes: &[String]) {
        for node in nodes {
            self.cordon(node);
        }
        let left = self.evict_pods(nodes, self.inner.cfg.drain_timeout).await;
        self.log_terminated(&left);
    }

    /// Marks a node unschedulable (a node that is already gone needs no cordon).
    pub(crate) fn cordon(&self, node: &str) {
        let _ = self.inner.store.mutate(Resource::Node, "", node, |n| {
            n["spec"]["unschedulable"] = json!(true);
            Ok(())
        });
    }

    /// Evicts the drainable pods of `nodes` through the Eviction API, retrying refused ones
    /// (429 while a PDB is at its limit) every poll interval, until none is left or `timeout`
    /// passes. Returns the pods still there.
    pub(crate) async fn evict_pods(&self, nodes: &[String], timeout: Duration) -> Vec<LeftPod> {
        let clock = &self.inner.clock;
        let store = &self.inner.store;
        let deadline = clock.now() + secs_delta(timeout.as_secs_f64());
        let mut blocked_once: HashSet<(String, String)> = HashSet::new();
        loop {
            let found = self.pods_found(nodes);
            for ((node, ns, name), _) in found.iter().filter(|(_, deleting)| !deleting) {
                let eviction = json!({
                    "apiVersion": "policy/v1",
                    "kind": "Eviction",
                    "metadata": { "name": name, "namespace": ns },
                });
                let step = match store.evict(ns, name, &eviction) {
                    Ok(outcome) => Some((DrainStep::Evicted, outcome.pdb)),
                    Err(e) if e.code == 429 => blocked_once
                        .insert((ns.clone(), name.clone()))
                        .then(|| (DrainStep::Blocked, pdb_of(&e))),
                    Err(e) => {
                        tracing::debug!(pod = %name, error = %e, "eks drain eviction failed");
                        None
                    }
                };
                if let Some((step, pdb)) = step {
                    self.log_drain(node, ns, name, step, pdb);
                }
            }
            let now = clock.now();
            if found.is_empty() || now >= deadline {
                return found.into_iter().map(|(p, _)| p).collect();
            }
            let wait = (deadline - now).to_std().unwrap_or_default();
            clock.sleep(wait.min(self.inner.cfg.poll_interval)).await;
        }
    }

    /// The drainable pods on `nodes`, terminating ones included.
    pub(crate) fn pods_on(&self, nodes: &[String]) -> Vec<LeftPod> {
        self.pods_found(nodes).into_iter().map(|(p, _)| p).collect()
    }

    /// The drainable pods on `nodes`, each with whether it is already being deleted. One pass
    /// over the pods, not one per node: a drain of many nodes on a large cluster must stay
    /// cheap.
    fn pods_found(&self, nodes: &[String]) -> Vec<(LeftPod, bool)> {
        let draining: HashSet<&str> = nodes.iter().map(String::as_str).collect();
        self.inner
            .store
            .list_all(Resource::Pod, None)
            .iter()
            .filter(|p| draining.contains(str_at(p, "/spec/nodeName")) && drainable(p))
            .map(|p| {
                let pod = (
                    str_at(p, "/spec/nodeName").to_string(),
                    str_at(p, "/metadata/namespace").to_string(),
                    str_at(p, "/metadata/name").to_string(),
                );
                (pod, p.pointer("/metadata/deletionTimestamp").is_some())
            })
            .collect()
    }

    /// Records the pods that go with their instance: a forced termination.
    pub(crate) fn log_terminated(&self, left: &[LeftPod]) {
        for (node, ns, pod) in left {
            self.log_drain(node, ns, pod, DrainStep::Terminated, None);
        }
    }

    fn log_drain(&self, node: &str, ns: &str, pod: &str, step: DrainStep, pdb: Option<String>) {
        let at = self.inner.clock.now();
        self.state().drains.push(DrainRecord {
            at,
            node: node.to_string(),
            namespace: ns.to_string(),
            pod: pod.to_string(),
            step,
            pdb,
        });
    }
}

/// The PDB a 429 names: the API server puts it in the `DisruptionBudget` cause's message
/// ("The disruption budget NAME needs ...").
fn pdb_of(e: &crate::store::ApiError) -> Option<String> {
    let msg = e.details.as_ref()?.pointer("/causes/0/message")?.as_str()?;
    msg.strip_prefix("The disruption budget ")?
        .split_whitespace()
        .next()
        .map(str::to_string)
}
