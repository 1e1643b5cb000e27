//! Claims and volumes as the API shows them:
//! - the StatefulSet controller creates each ordinal's PersistentVolumeClaims from its
//!   `volumeClaimTemplates` before the pod (kubernetes `pkg/controller/statefulset/
//!   stateful_pod_control.go`, `createPersistentVolumeClaims`), and never deletes them;
//! - a claim binds when its first pod is scheduled (`volumeBindingMode: WaitForFirstConsumer`,
//!   kubernetes.io "Storage Classes"): an EBS volume in that node's zone, or, for the
//!   `local-storage` class, the local PersistentVolume of that node (kubernetes.io "Volumes",
//!   local: "PersistentVolume nodeAffinity is required when using local volumes");
//! - a pod whose claim is bound to a local volume can run only on that volume's node
//!   (`pkg/scheduler/framework/plugins/volumebinding`: "node(s) didn't match
//!   PersistentVolume's node affinity").

use serde_json::{Value, json};

use super::shared::VolumeZones;
use crate::store::{Resource, Store};

/// The storage class whose volumes are a node's local disks (the kubernetes.io "Storage
/// Classes" example of `provisioner: kubernetes.io/no-provisioner`).
pub const LOCAL_STORAGE_CLASS: &str = "local-storage";

/// Where the local static provisioner exposes a node's disks (amazon-eks-ami's `Mount`
/// strategy mounts instance store under `/mnt/k8s-disks/`).
const LOCAL_DISK_ROOT: &str = "/mnt/k8s-disks";

/// The upstream message when a pod's local volume is on another (or a deleted) node.
pub const LOCAL_PV_CONFLICT: &str = "node(s) didn't match PersistentVolume's node affinity";

/// Creates the claim `name` in `ns` from a `volumeClaimTemplates` entry, unless it exists.
pub fn ensure_claim(store: &Store, ns: &str, name: &str, template: &Value) {
    if store
        .try_get(Resource::PersistentVolumeClaim, ns, name)
        .is_some()
    {
        return;
    }
    let claim = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": { "name": name, "namespace": ns },
        "spec": template.get("spec").cloned().unwrap_or_else(|| json!({})),
        "status": { "phase": "Pending" },
    });
    let _ = store.create(Resource::PersistentVolumeClaim, ns, claim);
}

fn storage_class(store: &Store, ns: &str, claim: &str) -> Option<String> {
    store
        .try_get(Resource::PersistentVolumeClaim, ns, claim)?
        .pointer("/spec/storageClassName")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// Binds a claim whose first pod was just placed on `node` in `zone`: pins it, creates its
/// volume and marks the claim Bound. A claim bound before is left as it is.
pub fn bind_at_first_consumer(
    store: &Store,
    volumes: &VolumeZones,
    ns: &str,
    claim: &str,
    node: &str,
    zone: &str,
) {
    if volumes.zone(ns, claim).is_some() {
        return;
    }
    volumes.pin(ns, claim, zone);
    let local = storage_class(store, ns, claim).as_deref() == Some(LOCAL_STORAGE_CLASS);
    if local {
        volumes.pin_node(ns, claim, node);
    }
    if store
        .try_get(Resource::PersistentVolumeClaim, ns, claim)
        .is_none()
    {
        return;
    }
    let pv_name = format!("pvc-{ns}-{claim}");
    let (source, affinity_key, affinity_value) = if local {
        (
            json!({ "local": { "path": format!("{LOCAL_DISK_ROOT}/{pv_name}") } }),
            "kubernetes.io/hostname",
            node,
        )
    } else {
        (
            json!({ "csi": { "driver": "ebs.csi.aws.com", "volumeHandle": format!("vol-{pv_name}") } }),
            "topology.kubernetes.io/zone",
            zone,
        )
    };
    let mut spec = json!({
        "capacity": { "storage": "10Gi" },
        "accessModes": ["ReadWriteOnce"],
        "persistentVolumeReclaimPolicy": if local { "Retain" } else { "Delete" },
        "claimRef": { "kind": "PersistentVolumeClaim", "namespace": ns, "name": claim },
        "nodeAffinity": { "required": { "nodeSelectorTerms": [{ "matchExpressions": [
            { "key": affinity_key, "operator": "In", "values": [affinity_value] }
        ] }] } },
    });
    if let (Some(s), Some(src)) = (spec.as_object_mut(), source.as_object()) {
        s.extend(src.clone());
    }
    if let Some(class) = storage_class(store, ns, claim) {
        spec["storageClassName"] = json!(class);
    }
    let pv = json!({
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": { "name": pv_name },
        "spec": spec,
        "status": { "phase": "Bound" },
    });
    let _ = store.create(Resource::PersistentVolume, "", pv);
    let _ = store.mutate(Resource::PersistentVolumeClaim, ns, claim, |v| {
        v["spec"]["volumeName"] = json!(pv_name);
        v["status"] = json!({ "phase": "Bound" });
        Ok(())
    });
}
