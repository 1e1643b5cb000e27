//! Where a pod may run, as the scheduler's filters read its spec: `nodeSelector` and required
//! node affinity (NodeAffinity), tolerations (TaintToleration), required pod anti-affinity
//! (InterPodAffinity), `DoNotSchedule` topology spread (PodTopologySpread), and the requests
//! NodeResourcesFit adds up beyond CPU and memory.

use serde::{Deserialize, Serialize};

use super::{LabelSelector, Labels, Taint, TaintEffect};

/// A node selector operator (`core/v1` `NodeSelectorOperator`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NodeOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
    Gt,
    Lt,
}

/// One `matchExpressions` entry of a node selector term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeRequirement {
    pub key: String,
    pub operator: NodeOperator,
    #[serde(default)]
    pub values: Vec<String>,
}

/// A toleration (`core/v1` `Toleration`). `operator` is `Equal` unless `Exists`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Toleration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default)]
    pub exists: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// Whether it tolerates `taint`, as `v1helper.TolerationsTolerateTaint` decides: an empty
    /// key with `Exists` matches every key, an empty effect every effect, and `Equal` compares
    /// values (a missing value is the empty string).
    pub fn tolerates(&self, taint: &Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        match self.key.as_deref().filter(|k| !k.is_empty()) {
            None => self.exists,
            Some(k) if k != taint.key => false,
            Some(_) if self.exists => true,
            Some(_) => {
                self.value.as_deref().unwrap_or_default()
                    == taint.value.as_deref().unwrap_or_default()
            }
        }
    }
}

/// A required pod (anti-)affinity term.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodTerm {
    pub topology_key: String,
    #[serde(default)]
    pub selector: LabelSelector,
    /// Empty: the pod's own namespace.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
}

/// A `whenUnsatisfiable: DoNotSchedule` topology spread constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpreadConstraint {
    pub max_skew: i32,
    pub topology_key: String,
    #[serde(default)]
    pub selector: LabelSelector,
}

/// What of a pod's spec decides which nodes can take it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Labels::is_empty")]
    pub node_selector: Labels,
    /// `requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms`: one term must hold,
    /// every requirement of it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub required_node_terms: Vec<Vec<NodeRequirement>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Required pod anti-affinity terms.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub anti_affinity: Vec<PodTerm>,
    /// `DoNotSchedule` topology spread constraints (`ScheduleAnyway` ones never block).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub spread: Vec<SpreadConstraint>,
    /// `nvidia.com/gpu` requested by the pod's containers.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub gpus: i64,
    /// Paths of its `hostPath` volumes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub host_paths: Vec<String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl Placement {
    /// Whether its tolerations cover `taint`.
    pub fn tolerates(&self, taint: &Taint) -> bool {
        self.tolerations.iter().any(|t| t.tolerates(taint))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str, value: Option<&str>, effect: TaintEffect) -> Taint {
        Taint {
            key: key.into(),
            value: value.map(str::to_string),
            effect,
        }
    }

    /// kubernetes `pkg/apis/core/v1/helper/helpers.go` (`TolerationsTolerateTaint`) and
    /// `staging/src/k8s.io/api/core/v1/toleration.go` (`ToleratesTaint`).
    #[test]
    fn tolerations_match_as_the_scheduler_matches_them() {
        let gpu = taint("nvidia.com/gpu", Some("true"), TaintEffect::NoSchedule);
        let everything = Toleration {
            key: None,
            exists: true,
            value: None,
            effect: None,
        };
        assert!(everything.tolerates(&gpu));
        let key_exists = Toleration {
            key: Some("nvidia.com/gpu".into()),
            exists: true,
            value: None,
            effect: Some(TaintEffect::NoSchedule),
        };
        assert!(key_exists.tolerates(&gpu));
        let wrong_effect = Toleration {
            effect: Some(TaintEffect::NoExecute),
            ..key_exists.clone()
        };
        assert!(!wrong_effect.tolerates(&gpu));
        let equal = Toleration {
            key: Some("nvidia.com/gpu".into()),
            exists: false,
            value: Some("true".into()),
            effect: None,
        };
        assert!(equal.tolerates(&gpu));
        let other_value = Toleration {
            value: Some("false".into()),
            ..equal.clone()
        };
        assert!(!other_value.tolerates(&gpu));
        // An empty key with Equal tolerates nothing.
        let empty_equal = Toleration {
            key: None,
            exists: false,
            value: None,
            effect: None,
        };
        assert!(!empty_equal.tolerates(&gpu));
    }
}
