//! Deletion: graceful for scheduled pods, deferred by finalizers, immediate otherwise; and
//! the kubelet's final removal.

use std::sync::Arc;

use serde_json::{Value, json};

use super::write::{meta_mut, meta_str};
use super::{ApiError, Resource, State, Store, WatchEvent, key_of, timestamp};

/// `DeleteOptions` as far as the twin honours them.
#[derive(Clone, Debug, Default)]
pub struct DeleteOptions {
    pub grace_period_seconds: Option<i64>,
    /// `preconditions.uid`: the delete fails with 409 when the object's UID differs.
    pub uid: Option<String>,
    /// `preconditions.resourceVersion`.
    pub resource_version: Option<String>,
}

impl DeleteOptions {
    /// Reads a `DeleteOptions` JSON body (missing fields are unset).
    pub fn from_json(v: &Value) -> Self {
        Self {
            grace_period_seconds: v.get("gracePeriodSeconds").and_then(Value::as_i64),
            uid: v
                .pointer("/preconditions/uid")
                .and_then(Value::as_str)
                .map(str::to_string),
            resource_version: v
                .pointer("/preconditions/resourceVersion")
                .and_then(Value::as_str)
                .map(str::to_string),
        }
    }
}

/// What a delete did.
#[derive(Clone, Debug)]
pub enum DeleteOutcome {
    /// The object is gone; its last state.
    Removed(Arc<Value>),
    /// The object is terminating (`deletionTimestamp` set) and stays until it is finalized.
    Terminating(Arc<Value>),
}

impl DeleteOutcome {
    pub fn object(&self) -> &Arc<Value> {
        match self {
            Self::Removed(o) | Self::Terminating(o) => o,
        }
    }
}

fn is_pod_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

impl Store {
    /// Deletes as the API server does. A pod that is scheduled and not terminal is deleted
    /// gracefully: `deletionTimestamp` = now + grace period (from the options, else the pod's
    /// `terminationGracePeriodSeconds`, else 30) and `deletionGracePeriodSeconds` are set, and
    /// the pod stays until [`Store::remove_now`]. Another delete may only shorten the grace.
    /// An object with finalizers gets a `deletionTimestamp` and stays. Anything else goes now.
    pub fn delete(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        let now = self.clock().now();
        let events = self.sender().clone();
        self.lock()
            .delete_locked(&events, now, resource, ns, name, opts)
    }

    /// Removes an object at once, whatever its state (the kubelet's final delete, a node that
    /// disappears). Returns its last state, or `None` if it was already gone.
    pub fn remove_now(&self, resource: Resource, ns: &str, name: &str) -> Option<Arc<Value>> {
        let key = key_of(resource, ns, name);
        let events = self.sender().clone();
        self.lock().remove(&events, resource, &key)
    }
}

/// Namespaces the API server refuses to delete (NamespaceLifecycle's immortal namespaces).
pub const IMMORTAL_NAMESPACES: [&str; 3] = ["default", "kube-system", "kube-public"];

impl State {
    /// Deleting a namespace: an immortal one is refused (403); one that still carries the
    /// `kubernetes` finalizer in `spec.finalizers` turns Terminating (`deletionTimestamp`,
    /// `status.phase: Terminating`) and the namespace controller
    /// ([`crate::sim::namespace`]) empties it and removes it; one without goes at once.
    fn delete_namespace(
        &mut self,
        events: &tokio::sync::broadcast::Sender<WatchEvent>,
        now: chrono::DateTime<chrono::Utc>,
        old: &Arc<Value>,
        key: super::Key,
        name: &str,
    ) -> Result<DeleteOutcome, ApiError> {
        if IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden(
                Resource::Namespace,
                name,
                "this namespace may not be deleted",
            ));
        }
        let finalized = old
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_none_or(|f| f.is_empty());
        if finalized {
            let last = self
                .remove(events, Resource::Namespace, &key)
                .ok_or_else(|| ApiError::not_found(Resource::Namespace, name))?;
            return Ok(DeleteOutcome::Removed(last));
        }
        let mut new = (**old).clone();
        let meta = meta_mut(&mut new)?;
        if !meta.contains_key("deletionTimestamp") {
            meta.insert("deletionTimestamp".into(), json!(timestamp(now)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(0));
        }
        new["status"]["phase"] = json!("Terminating");
        let obj = self.commit_change(events, Resource::Namespace, key, old, new)?;
        Ok(DeleteOutcome::Terminating(obj))
    }

    pub(crate) fn delete_locked(
        &mut self,
        events: &tokio::sync::broadcast::Sender<WatchEvent>,
        now: chrono::DateTime<chrono::Utc>,
        resource: Resource,
        ns: &str,
        name: &str,
        opts: &DeleteOptions,
    ) -> Result<DeleteOutcome, ApiError> {
        let old = self
            .get(resource, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        if let Some(uid) = &opts.uid
            && Some(uid.as_str()) != meta_str(&old, "uid")
        {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&old, "uid").unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = &opts.resource_version
            && Some(rv.as_str()) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::conflict(
                resource,
                name,
                &format!(
                    "Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {}",
                    meta_str(&old, "resourceVersion").unwrap_or_default()
                ),
            ));
        }
        let key = key_of(resource, ns, name);
        if resource == Resource::Namespace {
            return self.delete_namespace(events, now, &old, key, name);
        }
        let has_finalizers = old
            .pointer("/metadata/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty());
        let grace = if resource == Resource::Pod {
            let scheduled = old
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .is_some_and(|n| !n.is_empty());
            // Upstream: an unscheduled or terminal pod has nothing to stop, so it goes at once.
            if !scheduled || is_pod_terminal(&old) {
                0
            } else {
                opts.grace_period_seconds
                    .or_else(|| {
                        old.pointer("/spec/terminationGracePeriodSeconds")
                            .and_then(Value::as_i64)
                    })
                    .unwrap_or(30)
                    .max(0)
            }
        } else {
            0
        };
        if grace == 0 && !has_finalizers {
            let last = self
                .remove(events, resource, &key)
                .ok_or_else(|| ApiError::not_found(resource, name))?;
            return Ok(DeleteOutcome::Removed(last));
        }
        let deadline = now + chrono::TimeDelta::seconds(grace);
        let mut new = (*old).clone();
        let meta = meta_mut(&mut new)?;
        let current = meta
            .get("deletionTimestamp")
            .and_then(Value::as_str)
            .and_then(super::parse_timestamp);
        if current.is_none_or(|c| deadline < c) {
            meta.insert("deletionTimestamp".into(), json!(timestamp(deadline)));
            meta.insert("deletionGracePeriodSeconds".into(), json!(grace));
        }
        let obj = self.commit_change(events, resource, key, &old, new)?;
        Ok(DeleteOutcome::Terminating(obj))
    }
}
