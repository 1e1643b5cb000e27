//! The node-group records the control plane keeps, and their EKS JSON shapes.
//!
//! Member names and value spellings follow the restJson1 model that aws-sdk-eks deserializes
//! (`protocol_serde/shape_nodegroup.rs`, `shape_update.rs`); timestamps are epoch seconds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// A node group's lifecycle status, spelled as EKS spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodegroupStatus {
    Creating,
    Active,
    Updating,
    Deleting,
    CreateFailed,
    Degraded,
}

impl NodegroupStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "CREATING",
            Self::Active => "ACTIVE",
            Self::Updating => "UPDATING",
            Self::Deleting => "DELETING",
            Self::CreateFailed => "CREATE_FAILED",
            Self::Degraded => "DEGRADED",
        }
    }
}

/// `scalingConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScalingConfig {
    pub min_size: i32,
    pub max_size: i32,
    pub desired_size: i32,
}

/// An EKS taint: the effect is `NO_SCHEDULE`, `NO_EXECUTE` or `PREFER_NO_SCHEDULE`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Taint {
    pub key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    pub effect: String,
}

impl Taint {
    /// The Kubernetes spelling of the effect (`NoSchedule`...), as EKS writes it on the node.
    pub fn k8s_effect(&self) -> &'static str {
        match self.effect.as_str() {
            "NO_EXECUTE" => "NoExecute",
            "PREFER_NO_SCHEDULE" => "PreferNoSchedule",
            _ => "NoSchedule",
        }
    }

    /// The taint as it appears in a Node's `spec.taints`.
    pub fn to_k8s(&self) -> Value {
        let mut t = json!({ "key": self.key, "effect": self.k8s_effect() });
        if let Some(v) = &self.value {
            t["value"] = json!(v);
        }
        t
    }
}

/// A health issue reported under `health.issues`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Issue {
    pub code: String,
    pub message: String,
    pub resource_ids: Vec<String>,
}

/// What a CreateNodegroup asked for; kept to answer a repeated `clientRequestToken`.
#[derive(Clone, Debug, PartialEq)]
pub struct NodegroupSpec {
    pub name: String,
    pub scaling: ScalingConfig,
    pub instance_types: Vec<String>,
    pub subnets: Vec<String>,
    pub ami_type: String,
    pub capacity_type: String,
    pub node_role: String,
    pub release_version: String,
    pub disk_size: i32,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub tags: BTreeMap<String, String>,
    pub launch_template: Option<Value>,
    pub update_config: Option<Value>,
}

/// A managed node group as the control plane tracks it.
#[derive(Clone, Debug)]
pub struct Nodegroup {
    pub spec: NodegroupSpec,
    pub arn: String,
    pub cluster: String,
    pub version: String,
    pub status: NodegroupStatus,
    pub created_at: DateTime<Utc>,
    pub modified_at: DateTime<Utc>,
    pub client_request_token: Option<String>,
    /// The moto Auto Scaling group backing the group (named once it is created there).
    pub asg_name: String,
    pub zones: Vec<String>,
    pub issues: Vec<Issue>,
    /// The update in progress, if any (its id).
    pub active_update: Option<String>,
    /// The Auto Scaling group exists in the backend.
    pub backing_ready: bool,
    /// A scale-in or delete task is running; the reconciler must not settle the status.
    pub busy: bool,
    /// The release new instances boot when it differs from `spec.release_version`: the
    /// launch template version a version update switched the Auto Scaling group to.
    pub launch_release: Option<String>,
}

impl Nodegroup {
    /// How many of `nodes` nodes a version update takes down at once: `maxUnavailable`, or
    /// `maxUnavailablePercentage` of them rounded down; at least one, at most 100 (the quota
    /// in "Understand each phase of node updates", setup phase). One without an
    /// `updateConfig` (the API's default).
    pub fn max_unavailable(&self, nodes: usize) -> usize {
        let cfg = self.spec.update_config.as_ref();
        let get = |k: &str| {
            cfg.and_then(|c| c.get(k))
                .and_then(Value::as_u64)
                .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        let n = match (get("maxUnavailable"), get("maxUnavailablePercentage")) {
            (Some(n), _) => n,
            (None, Some(p)) => nodes.saturating_mul(p) / 100,
            (None, None) => 1,
        };
        n.clamp(1, 100)
    }

    /// `updateConfig.updateStrategy` is `MINIMAL`: no surge, old nodes are replaced in place.
    pub fn minimal_strategy(&self) -> bool {
        self.spec
            .update_config
            .as_ref()
            .and_then(|c| c.get("updateStrategy"))
            .and_then(Value::as_str)
            == Some("MINIMAL")
    }

    /// The release the group's new instances boot.
    pub fn launching_release(&self) -> &str {
        self.launch_release
            .as_deref()
            .unwrap_or(&self.spec.release_version)
    }
}

impl Nodegroup {
    /// The `Nodegroup` structure of the EKS API.
    pub fn to_json(&self) -> Value {
        let s = &self.spec;
        let taints: Vec<Value> = s.taints.iter().map(|t| json!(t)).collect();
        let issues: Vec<Value> = self
            .issues
            .iter()
            .map(|i| json!({ "code": i.code, "message": i.message, "resourceIds": i.resource_ids }))
            .collect();
        let mut v = json!({
            "nodegroupName": s.name,
            "nodegroupArn": self.arn,
            "clusterName": self.cluster,
            "version": self.version,
            "releaseVersion": s.release_version,
            "createdAt": epoch(self.created_at),
            "modifiedAt": epoch(self.modified_at),
            "status": self.status.as_str(),
            "capacityType": s.capacity_type,
            "scalingConfig": s.scaling,
            "instanceTypes": s.instance_types,
            "subnets": s.subnets,
            "amiType": s.ami_type,
            "nodeRole": s.node_role,
            "labels": s.labels,
            "taints": taints,
            "resources": { "autoScalingGroups": [ { "name": self.asg_name } ] },
            "diskSize": s.disk_size,
            "health": { "issues": issues },
            "tags": s.tags,
        });
        if let Some(lt) = &s.launch_template {
            v["launchTemplate"] = lt.clone();
        }
        v["updateConfig"] = s
            .update_config
            .clone()
            .unwrap_or_else(|| json!({ "maxUnavailable": 1 }));
        v
    }
}

/// An `Update`: a `ConfigUpdate` or a `VersionUpdate`.
#[derive(Clone, Debug)]
pub struct Update {
    pub id: String,
    /// The update `type`.
    pub kind: &'static str,
    pub nodegroup: String,
    pub status: &'static str,
    pub params: Vec<(&'static str, String)>,
    pub created_at: DateTime<Utc>,
    pub errors: Vec<Issue>,
    /// The `clientRequestToken` it was made with (a repeat returns this update).
    pub token: Option<String>,
}

impl Update {
    pub fn to_json(&self) -> Value {
        let params: Vec<Value> = self
            .params
            .iter()
            .map(|(t, v)| json!({ "type": t, "value": v }))
            .collect();
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({ "errorCode": e.code, "errorMessage": e.message, "resourceIds": e.resource_ids }))
            .collect();
        json!({
            "id": self.id,
            "status": self.status,
            "type": self.kind,
            "params": params,
            "createdAt": epoch(self.created_at),
            "errors": errors,
        })
    }
}

/// Epoch seconds with a fractional part, the restJson1 timestamp format.
pub fn epoch(t: DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_epoch_seconds_with_milliseconds() {
        let t = DateTime::<Utc>::from_timestamp_millis(1_767_225_600_250).unwrap_or_default();
        assert_eq!(epoch(t), 1_767_225_600.25);
    }

    #[test]
    fn eks_taint_effects_map_to_kubernetes_spellings() {
        let t = |e: &str| Taint {
            key: "k".into(),
            value: None,
            effect: e.into(),
        };
        assert_eq!(t("NO_SCHEDULE").k8s_effect(), "NoSchedule");
        assert_eq!(t("NO_EXECUTE").k8s_effect(), "NoExecute");
        assert_eq!(t("PREFER_NO_SCHEDULE").k8s_effect(), "PreferNoSchedule");
        assert_eq!(
            t("NO_EXECUTE").to_k8s(),
            json!({ "key": "k", "effect": "NoExecute" })
        );
    }
}
