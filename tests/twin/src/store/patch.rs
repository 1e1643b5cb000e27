//! The three patch types the API server accepts: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902) and strategic merge patch.
//!
//! Strategic merge follows the patch strategies of the Kubernetes types: lists with a
//! `patchMergeKey` merge element by element (containers by `name`, conditions by `type`,
//! owner references by `uid`...), `finalizers` merge as a set, and every other list is
//! replaced whole. Node `spec.taints` and pod `spec.tolerations` carry no patch strategy
//! upstream (they are `listType=atomic`), so a strategic patch replaces them whole, exactly
//! like a merge patch: a client that wants to add one taint must send the full list.

use serde_json::{Map, Value};

use super::ApiError;

/// A patch's type, from its `Content-Type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json`
    Merge,
    /// `application/strategic-merge-patch+json`
    StrategicMerge,
    /// `application/json-patch+json`
    Json,
}

impl PatchKind {
    /// The patch type for a `Content-Type` header (parameters ignored).
    pub fn from_content_type(ct: &str) -> Option<Self> {
        match ct.split(';').next().unwrap_or_default().trim() {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/strategic-merge-patch+json" => Some(Self::StrategicMerge),
            "application/json-patch+json" => Some(Self::Json),
            _ => None,
        }
    }
}

/// Applies a patch to a copy of `target`.
pub fn apply_patch(kind: PatchKind, target: &Value, patch: &Value) -> Result<Value, ApiError> {
    let mut out = target.clone();
    match kind {
        PatchKind::Merge => {
            if !patch.is_object() {
                return Err(ApiError::bad_request("a merge patch must be a JSON object"));
            }
            json_patch::merge(&mut out, patch);
        }
        PatchKind::StrategicMerge => {
            let Some(patch) = patch.as_object() else {
                return Err(ApiError::bad_request(
                    "a strategic merge patch must be a JSON object",
                ));
            };
            merge_map(&mut out, patch);
        }
        PatchKind::Json => {
            let ops: json_patch::Patch = serde_json::from_value(patch.clone())
                .map_err(|e| ApiError::bad_request(format!("invalid JSON patch: {e}")))?;
            json_patch::patch(&mut out, &ops).map_err(|e| {
                ApiError::new(
                    422,
                    "Invalid",
                    format!("the JSON patch does not apply: {e}"),
                )
            })?;
        }
    }
    Ok(out)
}

/// Strategic merge of `patch` into `target`.
pub fn strategic_merge(target: &mut Value, patch: &Value) {
    if let Some(p) = patch.as_object() {
        merge_map(target, p);
    } else {
        *target = patch.clone();
    }
}

/// The merge key of a list field, from the `patchMergeKey` tags of the Kubernetes types.
/// `None` means the list is atomic and a patch replaces it.
fn merge_key(field: &str, patch: &[Value]) -> Option<&'static str> {
    Some(match field {
        "containers"
        | "initContainers"
        | "ephemeralContainers"
        | "volumes"
        | "env"
        | "imagePullSecrets"
        | "resourceClaims" => "name",
        "volumeMounts" => "mountPath",
        "volumeDevices" => "devicePath",
        "conditions" | "addresses" => "type",
        "ownerReferences" => "uid",
        "hostAliases" | "podIPs" | "hostIPs" => "ip",
        "topologySpreadConstraints" => "topologyKey",
        // Container ports merge by containerPort, service ports by port.
        "ports" => {
            if patch.iter().any(|p| p.get("containerPort").is_some()) {
                "containerPort"
            } else {
                "port"
            }
        }
        _ => return None,
    })
}

/// Lists of scalars with `patchStrategy: merge` (merged as sets).
fn is_set_list(field: &str) -> bool {
    matches!(field, "finalizers")
}

fn is_replace(v: &Value) -> bool {
    v.get("$patch").and_then(Value::as_str) == Some("replace")
}

fn is_delete(v: &Value) -> bool {
    v.get("$patch").and_then(Value::as_str) == Some("delete")
}

fn strip_directives(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with('$'))
                .map(|(k, v)| (k.clone(), strip_directives(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(strip_directives).collect()),
        other => other.clone(),
    }
}

fn merge_map(target: &mut Value, patch: &Map<String, Value>) {
    if is_replace(&Value::Object(patch.clone())) {
        *target = strip_directives(&Value::Object(patch.clone()));
        return;
    }
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    let Some(t) = target.as_object_mut() else {
        return;
    };
    for (k, v) in patch {
        if let Some(field) = k.strip_prefix("$deleteFromPrimitiveList/") {
            if let (Some(list), Some(gone)) =
                (t.get_mut(field).and_then(Value::as_array_mut), v.as_array())
            {
                list.retain(|x| !gone.contains(x));
            }
            continue;
        }
        if k.starts_with('$') {
            continue;
        }
        match v {
            Value::Null => {
                t.remove(k);
            }
            Value::Object(p) if is_delete(v) => {
                let _ = p;
                t.remove(k);
            }
            Value::Object(p) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                merge_map(slot, p);
            }
            Value::Array(items) => {
                let slot = t.entry(k.clone()).or_insert(Value::Null);
                merge_list(k, slot, items);
            }
            other => {
                t.insert(k.clone(), other.clone());
            }
        }
    }
    if let Some(keep) = patch.get("$retainKeys").and_then(Value::as_array) {
        t.retain(|k, _| keep.iter().any(|x| x.as_str() == Some(k)));
    }
}

fn merge_list(field: &str, target: &mut Value, patch: &[Value]) {
    if patch.iter().any(is_replace) {
        *target = Value::Array(
            patch
                .iter()
                .filter(|p| !is_replace(p))
                .map(strip_directives)
                .collect(),
        );
        return;
    }
    if is_set_list(field) {
        let mut list = target.as_array().cloned().unwrap_or_default();
        for p in patch {
            if !list.contains(p) {
                list.push(p.clone());
            }
        }
        *target = Value::Array(list);
        return;
    }
    let Some(key) = merge_key(field, patch) else {
        *target = Value::Array(patch.iter().map(strip_directives).collect());
        return;
    };
    let mut list = target.as_array().cloned().unwrap_or_default();
    for p in patch {
        let id = p.get(key);
        let found = list.iter().position(|t| id.is_some() && t.get(key) == id);
        if is_delete(p) {
            if let Some(i) = found {
                list.remove(i);
            }
            continue;
        }
        match (found, p.as_object()) {
            (Some(i), Some(pm)) => merge_map(&mut list[i], pm),
            _ => list.push(strip_directives(p)),
        }
    }
    *target = Value::Array(list);
}
