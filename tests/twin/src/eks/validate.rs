//! Request validation with EKS's rules and wording; every failure is an
//! `InvalidParameterException` (HTTP 400), as the EKS API reports parameter errors.

use std::collections::BTreeMap;

use serde_json::Value;

use super::error::EksError;
use super::model::{ScalingConfig, Taint};

/// EKS caps a node group at 50 taints (API reference, `CreateNodegroup.taints`).
pub const MAX_TAINTS: usize = 50;

/// Label and taint keys may not use these domains (or their subdomains): EKS answers
/// "cannot contain reserved prefixes [kubernetes.io/, k8s.io/, eks.amazonaws.com/]"
/// (aws/containers-roadmap#1451).
const RESERVED_DOMAINS: [&str; 3] = ["kubernetes.io", "k8s.io", "eks.amazonaws.com"];

/// Node group names: 1–63 characters, a letter or digit first, then letters, digits, `-`, `_`.
pub fn nodegroup_name(name: &str) -> Result<(), EksError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.len() > 63 || !first_ok || !rest_ok {
        return Err(EksError::invalid_parameter(format!(
            "Nodegroup name {name:?} is invalid: it must be 1-63 characters, start with a letter or digit, and contain only letters, digits, hyphens and underscores"
        )));
    }
    Ok(())
}

/// min ≤ desired ≤ max, min ≥ 0, max ≥ 1.
pub fn scaling(s: &ScalingConfig) -> Result<(), EksError> {
    if s.min_size < 0 || s.desired_size < 0 {
        return Err(EksError::invalid_parameter(
            "minSize and desiredSize must be greater than or equal to 0",
        ));
    }
    if s.max_size < 1 {
        return Err(EksError::invalid_parameter(
            "maxSize must be greater than or equal to 1",
        ));
    }
    if s.desired_size > s.max_size {
        return Err(EksError::invalid_parameter(
            "desired capacity cannot be greater than max size",
        ));
    }
    if s.desired_size < s.min_size {
        return Err(EksError::invalid_parameter(
            "desired capacity cannot be less than min size",
        ));
    }
    Ok(())
}

fn reserved(key: &str) -> bool {
    let Some((prefix, _)) = key.split_once('/') else {
        return false;
    };
    RESERVED_DOMAINS
        .iter()
        .any(|d| prefix == *d || prefix.ends_with(&format!(".{d}")))
}

fn key_ok(key: &str) -> bool {
    let name = key.rsplit_once('/').map_or(key, |(_, n)| n);
    !name.is_empty()
        && name.len() <= 63
        && key.len() <= 317
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

pub fn labels(labels: &BTreeMap<String, String>) -> Result<(), EksError> {
    for (k, v) in labels {
        if reserved(k) {
            return Err(EksError::invalid_parameter(format!(
                "Label cannot contain reserved prefixes [kubernetes.io/, k8s.io/, eks.amazonaws.com/]: {k}"
            )));
        }
        if !key_ok(k) || v.len() > 63 {
            return Err(EksError::invalid_parameter(format!(
                "Label {k}={v} is not a valid Kubernetes label"
            )));
        }
    }
    Ok(())
}

pub fn taints(taints: &[Taint]) -> Result<(), EksError> {
    if taints.len() > MAX_TAINTS {
        return Err(EksError::invalid_parameter(format!(
            "A node group can have at most {MAX_TAINTS} taints, got {}",
            taints.len()
        )));
    }
    for t in taints {
        if reserved(&t.key) {
            return Err(EksError::invalid_parameter(format!(
                "Taint cannot contain reserved prefixes [kubernetes.io/, k8s.io/, eks.amazonaws.com/]: {}",
                t.key
            )));
        }
        if !key_ok(&t.key) || t.value.as_deref().is_some_and(|v| v.len() > 63) {
            return Err(EksError::invalid_parameter(format!(
                "Taint {} is not a valid Kubernetes taint",
                t.key
            )));
        }
        if !matches!(
            t.effect.as_str(),
            "NO_SCHEDULE" | "NO_EXECUTE" | "PREFER_NO_SCHEDULE"
        ) {
            return Err(EksError::invalid_parameter(format!(
                "Taint effect {} is not one of NO_SCHEDULE, NO_EXECUTE, PREFER_NO_SCHEDULE",
                t.effect
            )));
        }
    }
    Ok(())
}

/// `updateConfig`: one of `maxUnavailable` or `maxUnavailablePercentage`, each 1–100 (EKS API
/// reference, `NodegroupUpdateConfig`: "This value or maxUnavailablePercentage is required to
/// have a value", at most 100 nodes), and an `updateStrategy` of `DEFAULT` or `MINIMAL`.
pub fn update_config(v: &Value) -> Result<(), EksError> {
    let count = |key: &str| -> Result<Option<i64>, EksError> {
        match v.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(n) => match n.as_i64() {
                Some(n) if (1..=100).contains(&n) => Ok(Some(n)),
                _ => Err(EksError::invalid_parameter(format!(
                    "{key} must be an integer between 1 and 100"
                ))),
            },
        }
    };
    let nodes = count("maxUnavailable")?;
    let percentage = count("maxUnavailablePercentage")?;
    match (nodes, percentage) {
        (Some(_), Some(_)) => Err(EksError::invalid_parameter(
            "Only one of maxUnavailable or maxUnavailablePercentage can be specified",
        )),
        (None, None) => Err(EksError::invalid_parameter(
            "updateConfig must specify maxUnavailable or maxUnavailablePercentage",
        )),
        _ => match v.get("updateStrategy").and_then(Value::as_str) {
            None | Some("DEFAULT" | "MINIMAL") => Ok(()),
            Some(other) => Err(EksError::invalid_parameter(format!(
                "updateStrategy {other} is invalid: it must be DEFAULT or MINIMAL"
            ))),
        },
    }
}

/// A string member, absent or string (anything else is a 400).
pub fn opt_str(body: &Value, key: &str) -> Result<Option<String>, EksError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(EksError::invalid_parameter(format!(
            "{key} must be a string"
        ))),
    }
}

/// A member decoded with serde, absent allowed.
pub fn opt<T: serde::de::DeserializeOwned>(body: &Value, key: &str) -> Result<Option<T>, EksError> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => serde_json::from_value(v.clone())
            .map(Some)
            .map_err(|e| EksError::invalid_parameter(format!("{key} is malformed: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subdomains_of_reserved_domains_are_reserved_too() {
        assert!(reserved("node-role.kubernetes.io/worker"));
        assert!(reserved("eks.amazonaws.com/compute-type"));
        assert!(!reserved("team"));
        assert!(!reserved("example.com/kubernetes.io"));
    }

    #[test]
    fn a_name_must_start_with_an_alphanumeric() {
        assert!(nodegroup_name("ng-1_a").is_ok());
        assert!(nodegroup_name("-ng").is_err());
        assert!(nodegroup_name("").is_err());
        assert!(nodegroup_name(&"a".repeat(64)).is_err());
    }
}
