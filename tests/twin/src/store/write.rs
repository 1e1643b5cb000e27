//! Writes: create, replace, in-place mutation, graceful delete and the kubelet's final removal.

use std::sync::Arc;

use rand::Rng;
use serde_json::{Map, Value, json};

use super::{ApiError, EventKind, Key, Resource, State, Store, WatchEvent, key_of};

/// Which part of an object a replace may change, as the `/status` subresource split works
/// upstream: a write to the main resource keeps the stored status, and a write to `/status`
/// keeps everything but the status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Everything (controllers and the kubelet writing through the library).
    Whole,
    /// The main resource: `status` is kept from the stored object.
    Main,
    /// The `/status` subresource: only `status` is taken from the new object.
    Status,
}

fn new_uid() -> String {
    let mut rng = rand::rng();
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

fn name_suffix() -> String {
    // The alphabet upstream's name generator uses (no vowels, no confusable digits).
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub(crate) fn meta_mut(obj: &mut Value) -> Result<&mut Map<String, Value>, ApiError> {
    let map = obj
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("the body is not a JSON object"))?;
    let meta = map
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()));
    if meta.is_null() {
        *meta = Value::Object(Map::new());
    }
    meta.as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata is not an object"))
}

pub(crate) fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str()
}

impl State {
    /// Stores `obj` under `key` with a fresh `resourceVersion` and records the event.
    pub(crate) fn commit(
        &mut self,
        events: &tokio::sync::broadcast::Sender<WatchEvent>,
        resource: Resource,
        key: Key,
        mut obj: Value,
        kind: EventKind,
    ) -> Arc<Value> {
        self.rv += 1;
        if let Ok(meta) = meta_mut(&mut obj) {
            meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        let obj = Arc::new(obj);
        self.objects
            .entry(resource)
            .or_default()
            .insert(key, obj.clone());
        let event = WatchEvent {
            kind,
            resource,
            object: obj.clone(),
            resource_version: self.rv,
            at: self.clock.now(),
        };
        self.record(events, event);
        obj
    }

    /// Removes the object and records a DELETED event.
    pub(crate) fn remove(
        &mut self,
        events: &tokio::sync::broadcast::Sender<WatchEvent>,
        resource: Resource,
        key: &Key,
    ) -> Option<Arc<Value>> {
        let old = self.objects.get_mut(&resource)?.remove(key)?;
        self.rv += 1;
        let mut last = (*old).clone();
        if let Ok(meta) = meta_mut(&mut last) {
            meta.insert("resourceVersion".into(), json!(self.rv.to_string()));
        }
        let last = Arc::new(last);
        let event = WatchEvent {
            kind: EventKind::Deleted,
            resource,
            object: last.clone(),
            resource_version: self.rv,
            at: self.clock.now(),
        };
        self.record(events, event);
        Some(last)
    }

    /// Stores a changed version of an existing object: bumps `generation` when `spec`
    /// changed and skips the write entirely when nothing changed.
    pub(crate) fn commit_change(
        &mut self,
        events: &tokio::sync::broadcast::Sender<WatchEvent>,
        resource: Resource,
        key: Key,
        old: &Arc<Value>,
        mut new: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let bump = i64::from(old.get("spec") != new.get("spec"));
        {
            let meta = meta_mut(&mut new)?;
            for kept in ["uid", "creationTimestamp", "namespace", "name"] {
                match old.pointer(&format!("/metadata/{kept}")) {
                    Some(v) => meta.insert(kept.into(), v.clone()),
                    None => meta.remove(kept),
                };
            }
            meta.insert(
                "resourceVersion".into(),
                old.pointer("/metadata/resourceVersion")
                    .cloned()
                    .unwrap_or(Value::Null),
            );
            let generation = old
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            meta.insert("generation".into(), json!(generation + bump));
        }
        if let Some(map) = new.as_object_mut() {
            map.insert("apiVersion".into(), json!(resource.api_version()));
            map.insert("kind".into(), json!(resource.kind()));
        }
        if new == **old {
            return Ok(old.clone());
        }
        // Upstream deletes a terminating object once its last finalizer is removed; a pod
        // instead waits for the kubelet, and a namespace for the `spec.finalizers` the
        // namespace controller removes once it is empty.
        let empty = |p: &str| {
            new.pointer(p)
                .and_then(Value::as_array)
                .is_none_or(|f| f.is_empty())
        };
        let finalized = resource != Resource::Pod
            && new.pointer("/metadata/deletionTimestamp").is_some()
            && empty("/metadata/finalizers")
            && (resource != Resource::Namespace || empty("/spec/finalizers"));
        if finalized {
            self.commit(events, resource, key.clone(), new, EventKind::Modified);
            return self
                .remove(events, resource, &key)
                .ok_or_else(|| ApiError::internal("object vanished while finalizing"));
        }
        Ok(self.commit(events, resource, key, new, EventKind::Modified))
    }

    /// Whether the namespace is Terminating (being deleted).
    pub(crate) fn namespace_terminating(&self, ns: &str) -> bool {
        self.get(Resource::Namespace, "", ns).is_some_and(|n| {
            n.pointer("/status/phase").and_then(Value::as_str) == Some("Terminating")
        })
    }

    pub(crate) fn create_locked(
        &mut self,
        events: &tokio::sync::broadcast::Sender<WatchEvent>,
        now: &str,
        resource: Resource,
        ns: &str,
        mut obj: Value,
    ) -> Result<Arc<Value>, ApiError> {
        let ns = if resource.namespaced() {
            if ns.is_empty() { "default" } else { ns }
        } else {
            ""
        };
        let meta = meta_mut(&mut obj)?;
        if let Some(body_ns) = meta.get("namespace").and_then(Value::as_str)
            && resource.namespaced()
            && !body_ns.is_empty()
            && body_ns != ns
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let mut name = meta
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        if resource.namespaced() && self.namespace_terminating(ns) {
            return Err(ApiError::namespace_terminating(resource, &name, ns));
        }
        if name.is_empty() {
            let prefix = meta
                .get("generateName")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if prefix.is_empty() {
                return Err(ApiError::invalid(
                    resource,
                    "",
                    "metadata.name: Required value: name or generateName is required",
                ));
            }
            name = loop {
                let candidate = format!("{prefix}{}", name_suffix());
                if self.get(resource, ns, &candidate).is_none() {
                    break candidate;
                }
            };
        }
        if resource.namespaced() && self.get(Resource::Namespace, "", ns).is_none() {
            return Err(ApiError::not_found(Resource::Namespace, ns));
        }
        if self.get(resource, ns, &name).is_some() {
            return Err(ApiError::already_exists(resource, &name));
        }
        meta.insert("name".into(), json!(name));
        if resource.namespaced() {
            meta.insert("namespace".into(), json!(ns));
        } else {
            meta.remove("namespace");
        }
        meta.insert("uid".into(), json!(new_uid()));
        meta.insert("creationTimestamp".into(), json!(now));
        meta.insert("generation".into(), json!(1));
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        if let Some(map) = obj.as_object_mut() {
            map.insert("apiVersion".into(), json!(resource.api_version()));
            map.insert("kind".into(), json!(resource.kind()));
        }
        apply_defaults(resource, &mut obj);
        let key = key_of(resource, ns, &name);
        Ok(self.commit(events, resource, key, obj, EventKind::Added))
    }
}

/// The few defaults the API server fills in that clients of the twin read back.
fn apply_defaults(resource: Resource, obj: &mut Value) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    match resource {
        Resource::Pod => {
            let status = map.entry("status").or_insert_with(|| json!({}));
            if status.get("phase").is_none() && status.is_object() {
                status["phase"] = json!("Pending");
            }
            if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("terminationGracePeriodSeconds")
                    .or_insert(json!(30));
                spec.entry("restartPolicy").or_insert(json!("Always"));
            }
        }
        Resource::Deployment | Resource::StatefulSet | Resource::ReplicaSet => {
            if let Some(spec) = map.get_mut("spec").and_then(Value::as_object_mut) {
                spec.entry("replicas").or_insert(json!(1));
            }
        }
        Resource::Job => super::job_defaults::default_job(map),
        // The namespace strategy's PrepareForCreate: the `kubernetes` finalizer, which the
        // namespace controller removes once a deleted namespace is empty.
        Resource::Namespace => {
            map.entry("status").or_insert(json!({ "phase": "Active" }));
            let spec = map.entry("spec").or_insert_with(|| json!({}));
            if let Some(spec) = spec.as_object_mut() {
                spec.entry("finalizers").or_insert(json!(["kubernetes"]));
            }
        }
        _ => {}
    }
}

impl Store {
    /// Creates an object (`metadata.generateName` honoured). 409 AlreadyExists on a taken
    /// name; 404 when the namespace does not exist.
    pub fn create(&self, resource: Resource, ns: &str, obj: Value) -> Result<Arc<Value>, ApiError> {
        let now = self.now_timestamp();
        self.lock()
            .create_locked(self.sender(), &now, resource, ns, obj)
    }

    /// Replaces an object entirely (see [`Store::update_part`]).
    pub fn update(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        obj: Value,
    ) -> Result<Arc<Value>, ApiError> {
        self.update_part(resource, ns, name, obj, Part::Whole)
    }

    /// Replaces an object, or the part of it that `part` names. A non-empty
    /// `metadata.resourceVersion` in `obj` must equal the stored one (409 otherwise); an empty
    /// one means an unconditional write, as upstream.
    pub fn update_part(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        mut obj: Value,
        part: Part,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let old = state
            .get(resource, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        if let Some(body_name) = meta_str(&obj, "name")
            && !body_name.is_empty()
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && !rv.is_empty()
            && Some(rv) != meta_str(&old, "resourceVersion")
        {
            return Err(ApiError::stale(resource, name));
        }
        match part {
            Part::Whole => {}
            Part::Main => {
                if let Some(map) = obj.as_object_mut() {
                    match old.get("status") {
                        Some(s) => map.insert("status".into(), s.clone()),
                        None => map.remove("status"),
                    };
                }
                let meta = meta_mut(&mut obj)?;
                for kept in ["deletionTimestamp", "deletionGracePeriodSeconds"] {
                    match old.pointer(&format!("/metadata/{kept}")) {
                        Some(v) => meta.insert(kept.into(), v.clone()),
                        None => meta.remove(kept),
                    };
                }
            }
            Part::Status => {
                let status = obj.get("status").cloned();
                let mut merged = (*old).clone();
                if let Some(map) = merged.as_object_mut() {
                    match status {
                        Some(s) => map.insert("status".into(), s),
                        None => map.remove("status"),
                    };
                }
                obj = merged;
            }
        }
        let key = key_of(resource, ns, name);
        let events = self.sender().clone();
        state.commit_change(&events, resource, key, &old, obj)
    }

    /// Changes an object in place, atomically: `f` sees the current object and edits it; an
    /// error from `f` leaves the object untouched. A change that changes nothing writes
    /// nothing. This is what controllers and the kubelet use (no conflicts to retry).
    pub fn mutate(
        &self,
        resource: Resource,
        ns: &str,
        name: &str,
        f: impl FnOnce(&mut Value) -> Result<(), ApiError>,
    ) -> Result<Arc<Value>, ApiError> {
        let mut state = self.lock();
        let old = state
            .get(resource, ns, name)
            .cloned()
            .ok_or_else(|| ApiError::not_found(resource, name))?;
        let mut new = (*old).clone();
        f(&mut new)?;
        let key = key_of(resource, ns, name);
        let events = self.sender().clone();
        state.commit_change(&events, resource, key, &old, new)
    }
}
