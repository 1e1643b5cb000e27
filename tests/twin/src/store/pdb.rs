//! PodDisruptionBudget status, computed as the disruption controller computes it.
//!
//! Upstream rules (pkg/controller/disruption):
//! - `minAvailable` as an integer: expected pods = the matching pods, desired healthy = the
//!   integer;
//! - `minAvailable` as a percentage: expected pods = the summed scale of the pods' controllers,
//!   desired healthy = percentage of expected, rounded up;
//! - `maxUnavailable` (integer or percentage, rounded up): expected pods = the controllers'
//!   scale, desired healthy = expected - maxUnavailable, at least 0;
//! - a pod counts as healthy when it is Ready, not being deleted and not listed in
//!   `disruptedPods` (entries expire after 2 minutes);
//! - `disruptionsAllowed = max(0, currentHealthy - desiredHealthy)`, and 0 when no pods are
//!   expected;
//! - when the controllers' scale cannot be found (a bare pod under a percentage or
//!   `maxUnavailable`), the controller fails safe: `disruptionsAllowed = 0`.

use std::collections::BTreeSet;

use chrono::{DateTime, TimeDelta, Utc};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use serde_json::{Map, Value, json};

use super::{LabelSelector, parse_timestamp, timestamp};

/// How long an eviction's entry in `disruptedPods` holds a pod out of the healthy count.
const DISRUPTION_TIMEOUT: TimeDelta = TimeDelta::minutes(2);

/// `intstr.GetScaledValueFromIntOrPercent`: an integer as is, or `"N%"` of `total`, rounded
/// up or down.
pub fn scaled_value(v: &Value, total: i32, round_up: bool) -> Result<i32, String> {
    if let Some(i) = v.as_i64() {
        return i32::try_from(i).map_err(|_| format!("{i} is out of range"));
    }
    let s = v
        .as_str()
        .ok_or_else(|| format!("invalid type for IntOrString: {v}"))?;
    let pct: i64 = s
        .strip_suffix('%')
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| format!("invalid value for IntOrString: invalid value {s:?}"))?;
    let product = pct * i64::from(total);
    let scaled = if round_up {
        (product + 99).div_euclid(100)
    } else {
        product.div_euclid(100)
    };
    i32::try_from(scaled).map_err(|_| format!("{scaled} is out of range"))
}

/// Whether a pod's `Ready` condition is `True` (`podutil.IsPodReady`).
pub fn is_pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Ready")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

fn controller_ref(pod: &Value) -> Option<&Value> {
    pod.pointer("/metadata/ownerReferences")?
        .as_array()?
        .iter()
        .find(|r| r.get("controller").and_then(Value::as_bool) == Some(true))
}

fn expected_scale(
    pods: &[&Value],
    scale_of: &dyn Fn(&Value) -> Option<(String, i32)>,
) -> Result<i32, String> {
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for pod in pods {
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let owner = controller_ref(pod)
            .ok_or_else(|| format!("found no controller ref for pod {name:?}"))?;
        let (uid, scale) =
            scale_of(owner).ok_or_else(|| format!("found no controllers for pod {name:?}"))?;
        if seen.insert(uid) {
            total += scale;
        }
    }
    Ok(total)
}

/// The status of `pdb` (wire JSON) given the pods of its namespace. `scale_of` resolves a
/// pod's controller reference to the top controller's UID and its desired replicas (a
/// ReplicaSet owned by a Deployment resolves to the Deployment).
pub fn pdb_status_json(
    pdb: &Value,
    pods: &[&Value],
    scale_of: &dyn Fn(&Value) -> Option<(String, i32)>,
    now: DateTime<Utc>,
) -> Value {
    // Upstream's eviction and disruption code treat an empty selector as selecting nothing.
    let selector = match pdb.pointer("/spec/selector") {
        Some(s) if s.as_object().is_some_and(|m| !m.is_empty()) => {
            LabelSelector::from_object(Some(s)).unwrap_or(LabelSelector {
                requirements: Vec::new(),
                matches_nothing: true,
            })
        }
        _ => LabelSelector {
            requirements: Vec::new(),
            matches_nothing: true,
        },
    };
    let matched: Vec<&Value> = pods
        .iter()
        .copied()
        .filter(|p| selector.matches_object(p))
        .collect();
    let generation = pdb
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));

    let spec = pdb.get("spec");
    let min_available = spec
        .and_then(|s| s.get("minAvailable"))
        .filter(|v| !v.is_null());
    let max_unavailable = spec
        .and_then(|s| s.get("maxUnavailable"))
        .filter(|v| !v.is_null());
    let counts: Result<(i32, i32), String> = (|| {
        if let Some(mu) = max_unavailable {
            let expected = expected_scale(&matched, scale_of)?;
            let mu = scaled_value(mu, expected, true)?;
            Ok((expected, (expected - mu).max(0)))
        } else if let Some(ma) = min_available {
            if let Some(i) = ma.as_i64() {
                let n = i32::try_from(matched.len()).unwrap_or(i32::MAX);
                Ok((n, i32::try_from(i).unwrap_or(i32::MAX)))
            } else {
                let expected = expected_scale(&matched, scale_of)?;
                Ok((expected, scaled_value(ma, expected, true)?))
            }
        } else {
            let n = i32::try_from(matched.len()).unwrap_or(i32::MAX);
            Ok((n, 0))
        }
    })();

    let old_disrupted = pdb
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut disrupted = Map::new();
    let mut healthy = 0i32;
    for pod in &matched {
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            continue;
        }
        let name = pod
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(at) = old_disrupted.get(name)
            && let Some(t) = at.as_str().and_then(parse_timestamp)
            && t + DISRUPTION_TIMEOUT > now
        {
            disrupted.insert(name.to_string(), at.clone());
            continue;
        }
        if is_pod_ready(pod) {
            healthy += 1;
        }
    }

    let (expected, desired, allowed, reason, message) = match counts {
        Ok((expected, desired)) => {
            let allowed = if expected <= 0 {
                0
            } else {
                (healthy - desired).max(0)
            };
            let reason = if allowed > 0 {
                "SufficientPods"
            } else {
                "InsufficientPods"
            };
            (expected, desired, allowed, reason, String::new())
        }
        Err(e) => (0, 0, 0, "SyncFailed", e),
    };
    let status = if allowed > 0 { "True" } else { "False" };
    let old_condition = pdb
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .and_then(|cs| {
            cs.iter()
                .find(|c| c.get("type").and_then(Value::as_str) == Some("DisruptionAllowed"))
        });
    let transition = match old_condition {
        Some(c) if c.get("status").and_then(Value::as_str) == Some(status) => c
            .get("lastTransitionTime")
            .cloned()
            .unwrap_or_else(|| json!(timestamp(now))),
        _ => json!(timestamp(now)),
    };
    let mut out = json!({
        "observedGeneration": generation,
        "disruptionsAllowed": allowed,
        "currentHealthy": healthy,
        "desiredHealthy": desired,
        "expectedPods": expected,
        "conditions": [{
            "type": "DisruptionAllowed",
            "status": status,
            "reason": reason,
            "message": message,
            "observedGeneration": generation,
            "lastTransitionTime": transition,
        }],
    });
    if !disrupted.is_empty() {
        out["disruptedPods"] = Value::Object(disrupted);
    }
    out
}

/// Typed form of [`pdb_status_json`], for controllers that hold k8s-openapi structs.
/// `scale_of` maps a pod's controller reference to (top controller UID, desired replicas).
pub fn compute_pdb_status(
    pdb: &PodDisruptionBudget,
    pods: &[Pod],
    scale_of: &dyn Fn(&OwnerReference) -> Option<(String, i32)>,
    now: DateTime<Utc>,
) -> PodDisruptionBudgetStatus {
    let pdb_json = serde_json::to_value(pdb).unwrap_or(Value::Null);
    let pods_json: Vec<Value> = pods
        .iter()
        .filter_map(|p| serde_json::to_value(p).ok())
        .collect();
    let refs: Vec<&Value> = pods_json.iter().collect();
    let scale = |v: &Value| -> Option<(String, i32)> {
        let owner: OwnerReference = serde_json::from_value(v.clone()).ok()?;
        scale_of(&owner)
    };
    let status = pdb_status_json(&pdb_json, &refs, &scale, now);
    serde_json::from_value(status).unwrap_or_default()
}
