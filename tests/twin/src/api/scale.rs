//! The `scale` subresource: the autoscaling/v1 Scale view of a workload's replicas.

use serde_json::{Value, json};

use super::Target;
use crate::store::{ApiError, Store};

fn rv(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

/// Sets `spec.replicas` from a new Scale derived from the current one.
pub(super) fn set_scale(
    store: &Store,
    t: &Target,
    name: &str,
    new_scale: impl FnOnce(&Value) -> Result<Value, ApiError>,
) -> Result<std::sync::Arc<Value>, ApiError> {
    let resource = t.resource;
    store.mutate(resource, t.ns(), name, |obj| {
        let current = scale_of(obj);
        let scale = new_scale(&current)?;
        if let Some(v) = rv(&scale)
            && !v.is_empty()
            && Some(v) != rv(obj)
        {
            return Err(ApiError::stale(resource, name));
        }
        let replicas = scale
            .pointer("/spec/replicas")
            .and_then(Value::as_i64)
            .filter(|r| *r >= 0)
            .ok_or_else(|| {
                ApiError::invalid(
                    resource,
                    name,
                    "spec.replicas: Invalid value: must be a non-negative integer",
                )
            })?;
        obj["spec"]["replicas"] = json!(replicas);
        Ok(())
    })
}

/// The selector as the `status.selector` string of a Scale (`app=web,tier in (a,b)`).
fn selector_string(sel: Option<&Value>) -> String {
    let Some(sel) = sel else {
        return String::new();
    };
    let mut parts: Vec<String> = Vec::new();
    if let Some(m) = sel.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in m {
            parts.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    for e in sel
        .get("matchExpressions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let key = e.get("key").and_then(Value::as_str).unwrap_or_default();
        let values: Vec<&str> = e
            .get("values")
            .and_then(Value::as_array)
            .map(|v| v.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        parts.push(match e.get("operator").and_then(Value::as_str) {
            Some("In") => format!("{key} in ({})", values.join(",")),
            Some("NotIn") => format!("{key} notin ({})", values.join(",")),
            Some("DoesNotExist") => format!("!{key}"),
            _ => key.to_string(),
        });
    }
    parts.join(",")
}

/// The autoscaling/v1 Scale view of a Deployment, StatefulSet or ReplicaSet.
pub(super) fn scale_of(obj: &Value) -> Value {
    let meta = obj.get("metadata").cloned().unwrap_or(json!({}));
    let pick = |k: &str| meta.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": pick("name"),
            "namespace": pick("namespace"),
            "uid": pick("uid"),
            "resourceVersion": pick("resourceVersion"),
            "creationTimestamp": pick("creationTimestamp"),
        },
        "spec": { "replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(0)) },
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector_string(obj.pointer("/spec/selector")),
        },
    })
}
