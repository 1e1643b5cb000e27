//! The controllers' informer cache: typed copies of every object, kept current from the
//! store's event stream so a pass reads without decoding the whole store again.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::store::{EventKind, Resource, Store, WatchEvent};

/// `(namespace, name)`; the namespace is empty for nodes.
pub type Key = (String, String);

/// One kind's objects, each with the `resourceVersion` it was cached at.
#[derive(Debug)]
pub struct Kind<T> {
    pub items: BTreeMap<Key, Arc<T>>,
    versions: BTreeMap<Key, u64>,
}

impl<T> Default for Kind<T> {
    fn default() -> Self {
        Self {
            items: BTreeMap::new(),
            versions: BTreeMap::new(),
        }
    }
}

fn rv_of(v: &Value) -> u64 {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

fn key_of(v: &Value) -> Key {
    let s = |p: &str| {
        v.pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    (s("/metadata/namespace"), s("/metadata/name"))
}

impl<T: DeserializeOwned> Kind<T> {
    fn apply(&mut self, kind: EventKind, obj: &Value) {
        let key = key_of(obj);
        let rv = rv_of(obj);
        if self.versions.get(&key).is_some_and(|cached| *cached >= rv) {
            return;
        }
        match kind {
            EventKind::Deleted => {
                self.items.remove(&key);
                // Remember the deletion's version so a replayed older ADDED is ignored.
                self.versions.insert(key, rv);
            }
            EventKind::Added | EventKind::Modified => {
                // An object a client wrote that does not decode is invisible to controllers.
                if let Ok(t) = T::deserialize(obj) {
                    self.items.insert(key.clone(), Arc::new(t));
                    self.versions.insert(key, rv);
                }
            }
        }
    }

    pub fn get(&self, ns: &str, name: &str) -> Option<&Arc<T>> {
        self.items.get(&(ns.to_string(), name.to_string()))
    }

    pub fn values(&self) -> impl Iterator<Item = &Arc<T>> {
        self.items.values()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Whether a pod's controller is a Job (the only reader of [`Cache::deleted_pods`]).
fn job_controlled(pod: &Value) -> bool {
    pod.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .is_some_and(|refs| {
            refs.iter()
                .any(|r| r["controller"] == true && r["kind"] == "Job")
        })
}

/// Typed copies of the kinds the controllers read.
#[derive(Debug, Default)]
pub struct Cache {
    pub nodes: Kind<Node>,
    pub pods: Kind<Pod>,
    pub services: Kind<Service>,
    pub deployments: Kind<Deployment>,
    pub replicasets: Kind<ReplicaSet>,
    pub statefulsets: Kind<StatefulSet>,
    pub daemonsets: Kind<DaemonSet>,
    pub hpas: Kind<HorizontalPodAutoscaler>,
    pub jobs: Kind<Job>,
    /// Job pods deleted since the last pass, in their final state, as an informer's delete
    /// handler gets them: the Job controller counts a pod by how it ended even when it never
    /// saw that state in a pass. The runner takes it for every pass; a reload (after a lag)
    /// loses it.
    pub deleted_pods: Vec<Arc<Pod>>,
}

impl Cache {
    /// Everything currently in the store.
    pub fn load(store: &Store) -> Self {
        let mut cache = Self::default();
        for resource in Resource::ALL {
            for obj in store.list_all(resource, None) {
                cache.apply_object(resource, EventKind::Added, &obj);
            }
        }
        cache
    }

    /// Applies one watch event (older versions than the cached one are ignored).
    pub fn apply(&mut self, event: &WatchEvent) {
        self.apply_object(event.resource, event.kind, &event.object);
    }

    fn apply_object(&mut self, resource: Resource, kind: EventKind, obj: &Value) {
        match resource {
            Resource::Node => self.nodes.apply(kind, obj),
            Resource::Pod => {
                if kind == EventKind::Deleted
                    && job_controlled(obj)
                    && let Ok(pod) = Pod::deserialize(obj)
                {
                    self.deleted_pods.push(Arc::new(pod));
                }
                self.pods.apply(kind, obj)
            }
            Resource::Job => self.jobs.apply(kind, obj),
            Resource::Service => self.services.apply(kind, obj),
            Resource::Deployment => self.deployments.apply(kind, obj),
            Resource::ReplicaSet => self.replicasets.apply(kind, obj),
            Resource::StatefulSet => self.statefulsets.apply(kind, obj),
            Resource::DaemonSet => self.daemonsets.apply(kind, obj),
            Resource::HorizontalPodAutoscaler => self.hpas.apply(kind, obj),
            _ => {}
        }
    }
}
