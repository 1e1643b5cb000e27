//! State the simulation shares with the traffic and report parts: requests in flight per pod,
//! and the zones volumes are pinned to.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

/// Requests in flight per pod UID. The traffic probe holds a guard for each request it sends
/// to a pod; the kubelet keeps a terminating pod alive (within its grace period) until its
/// count drops to zero, and wakes when it does.
#[derive(Clone, Debug, Default)]
pub struct InFlight {
    counts: Arc<Mutex<HashMap<String, usize>>>,
    changed: Arc<Notify>,
}

/// Ends one in-flight request when dropped.
#[derive(Debug)]
pub struct InFlightGuard {
    owner: InFlight,
    uid: String,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut counts = self.owner.counts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(&self.uid);
            }
        }
        drop(counts);
        self.owner.changed.notify_waiters();
    }
}

impl InFlight {
    /// Starts a request on the pod with this UID.
    pub fn begin(&self, pod_uid: &str) -> InFlightGuard {
        *self
            .counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(pod_uid.to_string())
            .or_default() += 1;
        InFlightGuard {
            owner: self.clone(),
            uid: pod_uid.to_string(),
        }
    }

    /// Requests in flight on the pod.
    pub fn count(&self, pod_uid: &str) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(pod_uid)
            .copied()
            .unwrap_or(0)
    }

    /// Resolves the next time a request ends.
    pub async fn changed(&self) {
        self.changed.notified().await;
    }
}

/// The zone each persistent volume claim is pinned to. A claim is unpinned until the first
/// pod that uses it is scheduled (WaitForFirstConsumer binding, as EBS storage classes use);
/// from then on every pod using it must run in that zone, as an EBS volume cannot move.
#[derive(Clone, Debug, Default)]
pub struct VolumeZones {
    zones: Arc<Mutex<HashMap<(String, String), String>>>,
    /// Claims bound to a node's local volume.
    nodes: Arc<Mutex<HashMap<(String, String), String>>>,
}

impl VolumeZones {
    /// The zone of a claim, if pinned.
    pub fn zone(&self, ns: &str, claim: &str) -> Option<String> {
        self.zones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.to_string(), claim.to_string()))
            .cloned()
    }

    /// Pins a claim to a zone if it is not pinned yet.
    pub fn pin(&self, ns: &str, claim: &str, zone: &str) {
        self.zones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((ns.to_string(), claim.to_string()))
            .or_insert_with(|| zone.to_string());
    }

    /// The node of a claim bound to a local volume.
    pub fn node(&self, ns: &str, claim: &str) -> Option<String> {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ns.to_string(), claim.to_string()))
            .cloned()
    }

    /// Pins a claim to a node's local volume if it is not pinned yet.
    pub fn pin_node(&self, ns: &str, claim: &str, node: &str) {
        self.nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry((ns.to_string(), claim.to_string()))
            .or_insert_with(|| node.to_string());
    }

    /// Every pinned claim: `((namespace, claim), zone)`.
    pub fn all(&self) -> Vec<((String, String), String)> {
        let mut v: Vec<_> = self
            .zones
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, z)| (k.clone(), z.clone()))
            .collect();
        v.sort();
        v
    }
}

/// The claim names a pod mounts.
pub fn pod_claims(pod: &k8s_openapi::api::core::v1::Pod) -> Vec<String> {
    pod.spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .map(|vs| {
            vs.iter()
                .filter_map(|v| {
                    v.persistent_volume_claim
                        .as_ref()
                        .map(|c| c.claim_name.clone())
                })
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_guard_counts_until_dropped() {
        let f = InFlight::default();
        let a = f.begin("u1");
        let b = f.begin("u1");
        assert_eq!(f.count("u1"), 2);
        drop(a);
        assert_eq!(f.count("u1"), 1);
        drop(b);
        assert_eq!(f.count("u1"), 0);
    }

    #[test]
    fn a_volume_keeps_the_zone_it_was_first_pinned_to() {
        let v = VolumeZones::default();
        v.pin("db", "data-pg-0", "us-west-2a");
        v.pin("db", "data-pg-0", "us-west-2b");
        assert_eq!(v.zone("db", "data-pg-0").as_deref(), Some("us-west-2a"));
    }
}
