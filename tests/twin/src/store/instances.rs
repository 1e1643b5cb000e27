//! Nodes whose EC2 instance is gone. Nothing in the API says so at once: the Node and its pods
//! stay as they were until the node lifecycle controller notices the kubelet went quiet
//! (`crate::sim::nodelifecycle`). The load balancers and kube-proxy read this registry to know
//! that requests sent there time out.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// One terminated instance's node, and how far the controllers got with it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dead {
    pub terminated_at: DateTime<Utc>,
    /// When the node lifecycle controller set the node's Ready condition to Unknown and its
    /// pods' Ready to False.
    pub not_ready_at: Option<DateTime<Utc>>,
    /// When the cloud node lifecycle controller deleted the Node.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// Terminated instances by node name.
#[derive(Debug, Default)]
pub struct DeadInstances {
    nodes: Mutex<BTreeMap<String, Dead>>,
}

impl DeadInstances {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Dead>> {
        self.nodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `node`'s instance terminated at `at` (the first time counts).
    pub fn terminate(&self, node: &str, at: DateTime<Utc>) {
        self.lock().entry(node.to_string()).or_insert(Dead {
            terminated_at: at,
            not_ready_at: None,
            deleted_at: None,
        });
    }

    /// Whether `node`'s instance terminated.
    pub fn contains(&self, node: &str) -> bool {
        self.lock().contains_key(node)
    }

    pub fn update(&self, node: &str, f: impl FnOnce(&mut Dead)) {
        if let Some(d) = self.lock().get_mut(node) {
            f(d);
        }
    }

    pub fn snapshot(&self) -> BTreeMap<String, Dead> {
        self.lock().clone()
    }

    /// When each terminated instance went.
    pub fn terminated(&self) -> BTreeMap<String, DateTime<Utc>> {
        self.lock()
            .iter()
            .map(|(n, d)| (n.clone(), d.terminated_at))
            .collect()
    }

    /// Whether a terminated instance's Node is still in the API.
    pub fn lingering(&self) -> bool {
        self.lock().values().any(|d| d.deleted_at.is_none())
    }
}
