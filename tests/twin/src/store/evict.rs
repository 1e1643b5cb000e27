//! The `pods/eviction` subresource and PDB status upkeep, as the API server does them.
//!
//! Upstream (pkg/registry/core/pod/storage/eviction.go), in order:
//! - a pod that is gone answers 404; a `deleteOptions.preconditions.uid` that differs, 409;
//! - a pod that is terminal, Pending or already terminating is deleted without a PDB check;
//! - more than one matching PDB answers 500;
//! - no matching PDB: the pod is deleted (201);
//! - a pod that is not Ready is deleted without using up the budget when the PDB's
//!   `unhealthyPodEvictionPolicy` is `AlwaysAllow`, or (default `IfHealthyBudget`) when the
//!   budget is healthy (`currentHealthy >= desiredHealthy > 0`);
//! - otherwise `disruptionsAllowed == 0` answers 429 naming the PDB; else the budget is
//!   decremented and the pod recorded in `status.disruptedPods` in the same atomic step as
//!   the delete, so two concurrent evictions cannot both pass on one allowed disruption.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::pdb::{is_pod_ready, pdb_status_json};
use super::write::meta_str;
use super::{
    ApiError, DeleteOptions, DeleteOutcome, Key, LabelSelector, Resource, State, Store, timestamp,
};

/// What an allowed eviction did.
#[derive(Clone, Debug)]
pub struct EvictionOutcome {
    pub pod: DeleteOutcome,
    /// The PDB that governed the eviction, if one matched.
    pub pdb: Option<String>,
}

/// One eviction request and its answer, for the invariant checks (I2).
#[derive(Clone, Debug, PartialEq)]
pub struct EvictionRecord {
    pub at: DateTime<Utc>,
    pub namespace: String,
    pub pod: String,
    pub pdb: Option<String>,
    /// The HTTP code answered (201 allowed, 429 blocked...).
    pub code: u16,
    /// The PDB's `disruptionsAllowed` when the eviction was decided.
    pub disruptions_allowed: Option<i64>,
}

#[derive(Debug, Default)]
pub(crate) struct EvictionLog(Mutex<Vec<EvictionRecord>>);

fn can_ignore_pdb(pod: &Value) -> bool {
    pod.pointer("/metadata/deletionTimestamp").is_some()
        || matches!(
            pod.pointer("/status/phase").and_then(Value::as_str),
            Some("Succeeded" | "Failed" | "Pending")
        )
}

fn i64_at(v: &Value, p: &str) -> i64 {
    v.pointer(p).and_then(Value::as_i64).unwrap_or_default()
}

impl State {
    /// The top controller (UID, desired replicas) behind a pod's controller reference.
    fn scale_of(&self, ns: &str, owner: &Value) -> Option<(String, i32)> {
        let kind = owner.get("kind")?.as_str()?;
        let name = owner.get("name")?.as_str()?;
        let replicas = |o: &Value| {
            o.pointer("/spec/replicas")
                .and_then(Value::as_i64)
                .and_then(|r| i32::try_from(r).ok())
                .unwrap_or(1)
        };
        let uid = |o: &Value| meta_str(o, "uid").unwrap_or_default().to_string();
        match kind {
            "ReplicaSet" => {
                let rs = self.get(Resource::ReplicaSet, ns, name)?;
                let parent = rs
                    .pointer("/metadata/ownerReferences")
                    .and_then(Value::as_array)
                    .and_then(|refs| {
                        refs.iter().find(|r| {
                            r.get("controller").and_then(Value::as_bool) == Some(true)
                                && r.get("kind").and_then(Value::as_str) == Some("Deployment")
                        })
                    })
                    .and_then(|r| r.get("name")?.as_str())
                    .and_then(|d| self.get(Resource::Deployment, ns, d));
                match parent {
                    Some(dep) => Some((uid(dep), replicas(dep))),
                    None => Some((uid(rs), replicas(rs))),
                }
            }
            "Deployment" => self
                .get(Resource::Deployment, ns, name)
                .map(|o| (uid(o), replicas(o))),
            "StatefulSet" => self
                .get(Resource::StatefulSet, ns, name)
                .map(|o| (uid(o), replicas(o))),
            _ => None,
        }
    }

    fn computed_pdb_status(&self, pdb: &Value, now: DateTime<Utc>) -> Value {
        let ns = meta_str(pdb, "namespace").unwrap_or_default();
        let pods: Vec<&Value> = self
            .iter_ns(Resource::Pod, Some(ns))
            .map(|(_, p)| &**p)
            .collect();
        pdb_status_json(pdb, &pods, &|o| self.scale_of(ns, o), now)
    }

    /// Writes a PDB's computed status (nothing when it is unchanged).
    fn refresh_pdb(
        &mut self,
        events: &tokio::sync::broadcast::Sender<super::WatchEvent>,
        key: &Key,
        now: DateTime<Utc>,
    ) -> Option<Arc<Value>> {
        let old = self.map(Resource::PodDisruptionBudget)?.get(key)?.clone();
        let mut new = (*old).clone();
        new["status"] = self.computed_pdb_status(&old, now);
        self.commit_change(
            events,
            Resource::PodDisruptionBudget,
            key.clone(),
            &old,
            new,
        )
        .ok()
    }
}

impl Store {
    /// Recomputes the status of every PDB (in one namespace, or all), writing only changes.
    pub fn refresh_pdbs(&self, ns: Option<&str>) {
        let now = self.clock().now();
        let events = self.sender().clone();
        let mut state = self.lock();
        let keys: Vec<Key> = state
            .iter_ns(Resource::PodDisruptionBudget, ns)
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            state.refresh_pdb(&events, &key, now);
        }
    }

    /// Every eviction answered so far.
    pub fn evictions(&self) -> Vec<EvictionRecord> {
        self.evictions_log()
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Evicts a pod with a policy/v1 `Eviction` body, as the API server's eviction subresource.
    pub fn evict(
        &self,
        ns: &str,
        name: &str,
        eviction: &Value,
    ) -> Result<EvictionOutcome, ApiError> {
        let now = self.clock().now();
        let mut pdb_name = None;
        let mut allowed_before = None;
        let result = self.evict_inner(ns, name, eviction, now, &mut pdb_name, &mut allowed_before);
        let record = EvictionRecord {
            at: now,
            namespace: ns.to_string(),
            pod: name.to_string(),
            pdb: pdb_name,
            code: result.as_ref().map(|_| 201).unwrap_or_else(|e| e.code),
            disruptions_allowed: allowed_before,
        };
        self.evictions_log()
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(record);
        result
    }

    fn evict_inner(
        &self,
        ns: &str,
        name: &str,
        eviction: &Value,
        now: DateTime<Utc>,
        pdb_name: &mut Option<String>,
        allowed_before: &mut Option<i64>,
    ) -> Result<EvictionOutcome, ApiError> {
        if let Some(body_name) = meta_str(eviction, "name")
            && !body_name.is_empty()
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object: {name} != {body_name}"
            )));
        }
        let opts = eviction
            .get("deleteOptions")
            .map(DeleteOptions::from_json)
            .unwrap_or_default();
        let events = self.sender().clone();
        let mut state = self.lock();
        // Admission runs before the eviction itself: NamespaceLifecycle refuses every create,
        // evictions included, in a terminating namespace.
        if state.namespace_terminating(ns) {
            return Err(ApiError::namespace_terminating(Resource::Pod, name, ns));
        }
        let pod = state
            .get(Resource::Pod, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(Resource::Pod, name))?;
        if let Some(uid) = &opts.uid
            && Some(uid.as_str()) != meta_str(&pod, "uid")
        {
            return Err(ApiError::conflict(
                Resource::Pod,
                name,
                &format!(
                    "Precondition failed: UID in precondition: {uid}, UID in object meta: {}",
                    meta_str(&pod, "uid").unwrap_or_default()
                ),
            ));
        }
        let delete = |state: &mut State, pdb: Option<String>| {
            let pod = state.delete_locked(&events, now, Resource::Pod, ns, name, &opts)?;
            Ok(EvictionOutcome { pod, pdb })
        };
        if can_ignore_pdb(&pod) {
            return delete(&mut state, None);
        }
        let matching: Vec<Key> = state
            .iter_ns(Resource::PodDisruptionBudget, Some(ns))
            .filter(|(_, pdb)| {
                let sel = pdb.pointer("/spec/selector");
                // Upstream: "a PDB with a nil or empty selector ... should match nothing".
                sel.and_then(Value::as_object)
                    .is_some_and(|m| !m.is_empty())
                    && LabelSelector::from_object(sel).is_ok_and(|s| s.matches_object(&pod))
            })
            .map(|(k, _)| k.clone())
            .collect();
        if matching.len() > 1 {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ));
        }
        let Some(key) = matching.into_iter().next() else {
            return delete(&mut state, None);
        };
        *pdb_name = Some(key.1.clone());
        let pdb = state
            .refresh_pdb(&events, &key, now)
            .ok_or_else(|| ApiError::internal("the PodDisruptionBudget vanished"))?;
        let allowed = i64_at(&pdb, "/status/disruptionsAllowed");
        let current = i64_at(&pdb, "/status/currentHealthy");
        let desired = i64_at(&pdb, "/status/desiredHealthy");
        *allowed_before = Some(allowed);
        if !is_pod_ready(&pod) {
            let policy = pdb
                .pointer("/spec/unhealthyPodEvictionPolicy")
                .and_then(Value::as_str)
                .unwrap_or("IfHealthyBudget");
            if policy == "AlwaysAllow" || (current >= desired && desired > 0) {
                return delete(&mut state, Some(key.1));
            }
        }
        if allowed <= 0 {
            let mut err = ApiError::too_many_requests(
                "Cannot evict pod as it would violate the pod's disruption budget.",
            );
            err.details = Some(json!({
                "causes": [{
                    "reason": "DisruptionBudget",
                    "message": format!(
                        "The disruption budget {} needs {desired} healthy pods and has {current} currently",
                        key.1
                    ),
                }],
            }));
            return Err(err);
        }
        let mut new = (*pdb).clone();
        new["status"]["disruptionsAllowed"] = json!(allowed - 1);
        if !new["status"]["disruptedPods"].is_object() {
            new["status"]["disruptedPods"] = json!({});
        }
        new["status"]["disruptedPods"][name] = json!(timestamp(now));
        state.commit_change(
            &events,
            Resource::PodDisruptionBudget,
            key.clone(),
            &pdb,
            new,
        )?;
        delete(&mut state, Some(key.1))
    }
}
