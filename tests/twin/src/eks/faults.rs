//! Fault injection and request counters for the EKS control plane.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use super::error::EksError;
use super::model::Issue;

/// How an injected call failure answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFault {
    /// 429 `ThrottlingException`, which the SDK retries with backoff.
    Throttle,
    /// 500 `ServerException`.
    ServerError,
}

/// Faults to inject, shared by the HTTP handlers and the background reconciler.
#[derive(Debug, Default)]
pub struct Faults {
    inner: Mutex<FaultState>,
}

#[derive(Debug, Default)]
struct FaultState {
    calls: HashMap<String, (CallFault, u32)>,
    fail_create: HashSet<String>,
    degraded: HashMap<String, Issue>,
    never_ready: HashSet<String>,
}

impl Faults {
    fn state(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Make the next `times` calls of `operation` (an EKS operation name such as
    /// `DescribeNodegroup`) fail with `fault`.
    pub fn fail_call(&self, operation: &str, fault: CallFault, times: u32) {
        self.state()
            .calls
            .insert(operation.to_string(), (fault, times));
    }

    /// A node group of this name ends in `CREATE_FAILED` (with a `NodeCreationFailure` issue)
    /// instead of `ACTIVE`.
    pub fn fail_create(&self, nodegroup: &str) {
        self.state().fail_create.insert(nodegroup.to_string());
    }

    /// The group turns `DEGRADED` with this health issue until [`Faults::heal`].
    pub fn degrade(&self, nodegroup: &str, code: &str, message: &str) {
        self.state().degraded.insert(
            nodegroup.to_string(),
            Issue {
                code: code.to_string(),
                message: message.to_string(),
                resource_ids: Vec::new(),
            },
        );
    }

    pub fn heal(&self, nodegroup: &str) {
        self.state().degraded.remove(nodegroup);
    }

    /// Nodes of this group (managed node group name, or Auto Scaling group name for a
    /// self-managed one) register but never report Ready.
    pub fn never_ready(&self, group: &str) {
        self.state().never_ready.insert(group.to_string());
    }

    pub(crate) fn take_call_fault(&self, operation: &str) -> Option<EksError> {
        let mut st = self.state();
        let (fault, left) = st.calls.get_mut(operation)?;
        if *left == 0 {
            return None;
        }
        *left -= 1;
        Some(match fault {
            CallFault::Throttle => EksError::throttling("Rate exceeded"),
            CallFault::ServerError => EksError::server("An internal error occurred (injected)"),
        })
    }

    pub(crate) fn creation_fails(&self, nodegroup: &str) -> bool {
        self.state().fail_create.contains(nodegroup)
    }

    pub(crate) fn degraded(&self, nodegroup: &str) -> Option<Issue> {
        self.state().degraded.get(nodegroup).cloned()
    }

    pub(crate) fn is_never_ready(&self, group: &str) -> bool {
        self.state().never_ready.contains(group)
    }
}

/// Requests received, by EKS operation name (faulted ones included).
#[derive(Debug, Default)]
pub struct Counters {
    inner: Mutex<BTreeMap<String, u64>>,
}

impl Counters {
    pub(crate) fn hit(&self, operation: &str) {
        *self
            .inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(operation.to_string())
            .or_default() += 1;
    }

    /// A copy of the counts, by operation.
    pub fn snapshot(&self) -> BTreeMap<String, u64> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn get(&self, operation: &str) -> u64 {
        self.snapshot().get(operation).copied().unwrap_or(0)
    }
}
