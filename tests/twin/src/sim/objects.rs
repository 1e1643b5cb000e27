//! Building the objects controllers create (pods from templates, owner references) and small
//! JSON edits they share (conditions that keep their transition time).

use chrono::{DateTime, Utc};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::{Map, Value, json};

use crate::store::timestamp;

/// An owner reference with `controller: true`, as controllers set on what they create.
pub fn controller_ref(api_version: &str, kind: &str, meta: &ObjectMeta) -> Value {
    json!({
        "apiVersion": api_version,
        "kind": kind,
        "name": meta.name.clone().unwrap_or_default(),
        "uid": meta.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// A pod from a template: the template's labels, annotations and spec, plus `extra_labels`,
/// owned by `owner`. `name` is exact when `Some`, else `generate_name` is used.
pub fn pod_from_template(
    template: &PodTemplateSpec,
    ns: &str,
    name: Option<&str>,
    generate_name: &str,
    owner: Value,
    extra_labels: &[(&str, String)],
) -> Value {
    let tmeta = template.metadata.clone().unwrap_or_default();
    let mut labels: Map<String, Value> = tmeta
        .labels
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    for (k, v) in extra_labels {
        labels.insert((*k).to_string(), json!(v));
    }
    let mut meta = json!({
        "namespace": ns,
        "labels": labels,
        "ownerReferences": [owner],
    });
    if let Some(a) = tmeta.annotations.filter(|a| !a.is_empty()) {
        meta["annotations"] = json!(a);
    }
    match name {
        Some(n) => meta["name"] = json!(n),
        None => meta["generateName"] = json!(generate_name),
    }
    let spec = serde_json::to_value(&template.spec).unwrap_or(Value::Null);
    json!({ "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec })
}

/// Sets a condition in `obj.status.conditions`, keeping `lastTransitionTime` when the status
/// does not change (as every upstream controller does).
pub fn set_condition(
    obj: &mut Value,
    kind: &str,
    status: &str,
    reason: Option<&str>,
    message: Option<&str>,
    now: DateTime<Utc>,
) {
    if !obj.get("status").is_some_and(Value::is_object) {
        obj["status"] = json!({});
    }
    let conditions = obj["status"]
        .as_object_mut()
        .map(|s| s.entry("conditions").or_insert_with(|| json!([])));
    let Some(Value::Array(list)) = conditions else {
        return;
    };
    let mut cond = json!({ "type": kind, "status": status, "lastTransitionTime": timestamp(now) });
    if let Some(r) = reason {
        cond["reason"] = json!(r);
    }
    if let Some(m) = message {
        cond["message"] = json!(m);
    }
    match list
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
    {
        Some(existing) => {
            if existing.get("status").and_then(Value::as_str) == Some(status)
                && let Some(t) = existing.get("lastTransitionTime")
            {
                cond["lastTransitionTime"] = t.clone();
            }
            if existing.get("lastProbeTime").is_some() {
                cond["lastProbeTime"] = Value::Null;
            }
            *existing = cond;
        }
        None => list.push(cond),
    }
}

/// FNV-1a of a value's JSON, rendered in the alphabet upstream uses for template hashes, so a
/// ReplicaSet name looks like `web-7d9c5b6f4`.
pub fn template_hash(v: &impl serde::Serialize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = serde_json::to_vec(v).unwrap_or_default();
    let mut h: u32 = 0x811c_9dc5;
    for b in bytes {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let mut out = String::new();
    let mut n = h;
    loop {
        out.push(ALPHABET[(n % ALPHABET.len() as u32) as usize] as char);
        n /= ALPHABET.len() as u32;
        if n == 0 {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_condition_keeps_its_transition_time_while_its_status_holds() {
        let t0 = DateTime::from_timestamp(1_000, 0).unwrap_or_default();
        let t1 = DateTime::from_timestamp(2_000, 0).unwrap_or_default();
        let mut pod = json!({});
        set_condition(&mut pod, "Ready", "True", None, None, t0);
        set_condition(&mut pod, "Ready", "True", None, None, t1);
        assert_eq!(
            pod["status"]["conditions"][0]["lastTransitionTime"],
            timestamp(t0)
        );
        set_condition(&mut pod, "Ready", "False", None, None, t1);
        assert_eq!(
            pod["status"]["conditions"][0]["lastTransitionTime"],
            timestamp(t1)
        );
        assert_eq!(
            pod["status"]["conditions"].as_array().map(Vec::len),
            Some(1)
        );
    }

    #[test]
    fn equal_templates_hash_equally_and_different_ones_do_not() {
        let a = json!({"spec": {"containers": [{"name": "a"}]}});
        let b = json!({"spec": {"containers": [{"name": "b"}]}});
        assert_eq!(template_hash(&a), template_hash(&a.clone()));
        assert_ne!(template_hash(&a), template_hash(&b));
    }
}
