//! Invariant recording for the report: a snapshot of every object's desired state before a
//! run, its diff after the run (I3 exact restore, I4 clean rollback), and the check of the
//! store's eviction log against the PDBs (I2).

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::store::{EvictionRecord, Resource, Store};

/// The kinds whose desired state must survive a migration. A Job's `status` and its pods
/// (finished ones included) are the Job controller's, not desired state; its spec is.
pub const SNAPSHOT_KINDS: [Resource; 11] = [
    Resource::Namespace,
    Resource::Node,
    Resource::Service,
    Resource::Deployment,
    Resource::StatefulSet,
    Resource::DaemonSet,
    Resource::HorizontalPodAutoscaler,
    Resource::PodDisruptionBudget,
    Resource::Ingress,
    Resource::TargetGroupBinding,
    Resource::Job,
];

/// Annotations controllers and clients write as bookkeeping, not as desired state.
const NOISE_ANNOTATIONS: [&str; 3] = [
    "deployment.kubernetes.io/revision",
    "kubectl.kubernetes.io/last-applied-configuration",
    "node.alpha.kubernetes.io/ttl",
];

/// `kind/namespace/name` of an object in a snapshot.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{}/{}", self.kind, self.name)
        } else {
            write!(f, "{}/{}/{}", self.kind, self.namespace, self.name)
        }
    }
}

/// Every object's desired state: `spec` (or the whole body for kinds without one), labels,
/// annotations and taints, with status and metadata bookkeeping left out.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Snapshot {
    pub objects: BTreeMap<ObjectRef, Value>,
}

/// One changed field: a JSON pointer into the recorded form, before and after.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FieldChange {
    pub object: ObjectRef,
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// What differs between two snapshots.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SnapshotDiff {
    pub added: Vec<ObjectRef>,
    pub removed: Vec<ObjectRef>,
    pub changed: Vec<FieldChange>,
}

impl SnapshotDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

/// The recorded form of one object.
pub fn desired_state(obj: &Value) -> Value {
    let mut out = Map::new();
    let meta = obj.get("metadata");
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(m)) = meta.and_then(|m| m.get(field)) {
            let kept: Map<String, Value> = m
                .iter()
                .filter(|(k, _)| !NOISE_ANNOTATIONS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if !kept.is_empty() {
                out.insert(field.into(), Value::Object(kept));
            }
        }
    }
    if let Some(spec) = obj.get("spec") {
        out.insert("spec".into(), spec.clone());
    }
    Value::Object(out)
}

impl Snapshot {
    /// Records the store's current desired state.
    pub fn take(store: &Store) -> Self {
        let mut objects = BTreeMap::new();
        for kind in SNAPSHOT_KINDS {
            for obj in store.list_all(kind, None) {
                let s = |p: &str| {
                    obj.pointer(p)
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string()
                };
                let r = ObjectRef {
                    kind: kind.kind().into(),
                    namespace: s("/metadata/namespace"),
                    name: s("/metadata/name"),
                };
                objects.insert(r, desired_state(&obj));
            }
        }
        Self { objects }
    }

    /// What changed from `self` (before) to `after`.
    pub fn diff(&self, after: &Snapshot) -> SnapshotDiff {
        let mut d = SnapshotDiff::default();
        for (r, before) in &self.objects {
            match after.objects.get(r) {
                None => d.removed.push(r.clone()),
                Some(now) => diff_values(r, "", Some(before), Some(now), &mut d.changed),
            }
        }
        d.added = after
            .objects
            .keys()
            .filter(|r| !self.objects.contains_key(*r))
            .cloned()
            .collect();
        d
    }
}

fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn diff_values(
    r: &ObjectRef,
    path: &str,
    a: Option<&Value>,
    b: Option<&Value>,
    out: &mut Vec<FieldChange>,
) {
    if a == b {
        return;
    }
    if let (Some(Value::Object(ma)), Some(Value::Object(mb))) = (a, b) {
        let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
        keys.sort();
        keys.dedup();
        for k in keys {
            diff_values(
                r,
                &format!("{path}/{}", escape(k)),
                ma.get(k),
                mb.get(k),
                out,
            );
        }
        return;
    }
    out.push(FieldChange {
        object: r.clone(),
        path: path.to_string(),
        before: a.cloned(),
        after: b.cloned(),
    });
}

/// An eviction that took a PDB below what it allowed.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BudgetViolation {
    pub namespace: String,
    pub pod: String,
    pub pdb: String,
    pub disruptions_allowed: Option<i64>,
}

/// I2: every eviction that was allowed (201) under a PDB had at least one disruption to
/// spend when it was decided. The store decides and logs atomically, so this checks the
/// decision rule end to end rather than trusting it.
pub fn check_evictions(log: &[EvictionRecord]) -> Vec<BudgetViolation> {
    log.iter()
        .filter(|e| e.code == 201)
        .filter_map(|e| {
            let pdb = e.pdb.clone()?;
            (e.disruptions_allowed.unwrap_or(0) < 1).then(|| BudgetViolation {
                namespace: e.namespace.clone(),
                pod: e.pod.clone(),
                pdb,
                disruptions_allowed: e.disruptions_allowed,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn snap(objs: &[(&str, &str, Value)]) -> Snapshot {
        Snapshot {
            objects: objs
                .iter()
                .map(|(kind, name, v)| {
                    (
                        ObjectRef {
                            kind: (*kind).into(),
                            namespace: "default".into(),
                            name: (*name).into(),
                        },
                        desired_state(v),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn status_and_bookkeeping_do_not_count_as_changes() {
        let before = snap(&[(
            "Deployment",
            "web",
            json!({ "metadata": { "resourceVersion": "1", "annotations": { "deployment.kubernetes.io/revision": "1" } }, "spec": { "replicas": 3 }, "status": { "replicas": 3 } }),
        )]);
        let after = snap(&[(
            "Deployment",
            "web",
            json!({ "metadata": { "resourceVersion": "9", "annotations": { "deployment.kubernetes.io/revision": "2" } }, "spec": { "replicas": 3 }, "status": { "replicas": 6 } }),
        )]);
        assert!(before.diff(&after).is_empty());
    }

    #[test]
    fn a_leftover_annotation_or_replica_change_is_reported_with_its_path() {
        let before = snap(&[("Deployment", "web", json!({ "spec": { "replicas": 3 } }))]);
        let after = snap(&[(
            "Deployment",
            "web",
            json!({ "metadata": { "annotations": { "ngm.io/original-replicas": "3" } }, "spec": { "replicas": 6 } }),
        )]);
        let paths: Vec<String> = before
            .diff(&after)
            .changed
            .iter()
            .map(|c| c.path.clone())
            .collect();
        assert_eq!(paths, ["/annotations", "/spec/replicas"]);
    }

    #[test]
    fn removed_and_added_objects_are_listed() {
        let before = snap(&[("Node", "old", json!({ "spec": {} }))]);
        let after = snap(&[("Node", "new", json!({ "spec": {} }))]);
        let d = before.diff(&after);
        assert_eq!(d.removed[0].name, "old");
        assert_eq!(d.added[0].name, "new");
    }

    #[test]
    fn an_allowed_eviction_with_no_disruption_left_is_a_budget_violation() {
        let rec = |code, allowed| EvictionRecord {
            at: chrono::Utc::now(),
            namespace: "default".into(),
            pod: "web-1".into(),
            pdb: Some("web".into()),
            code,
            disruptions_allowed: allowed,
        };
        assert!(check_evictions(&[rec(201, Some(1)), rec(429, Some(0))]).is_empty());
        assert_eq!(check_evictions(&[rec(201, Some(0))]).len(), 1);
    }
}
