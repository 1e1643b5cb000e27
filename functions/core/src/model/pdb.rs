//! PodDisruptionBudgets and the integer-or-percent values they take.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{LabelSelector, PodView};

/// An integer or a percentage, as `minAvailable` / `maxUnavailable` take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOrPercent {
    Int(i32),
    Percent(i32),
}

impl IntOrPercent {
    /// Parses `"50%"` or `"3"`.
    pub fn parse(s: &str) -> Option<IntOrPercent> {
        match s.strip_suffix('%') {
            Some(p) => p.parse().ok().map(IntOrPercent::Percent),
            None => s.parse().ok().map(IntOrPercent::Int),
        }
    }

    /// Resolves against `total`, rounding a percentage up, as the disruption controller does
    /// for both minAvailable and maxUnavailable.
    pub fn resolve(self, total: i32) -> i32 {
        match self {
            IntOrPercent::Int(n) => n,
            IntOrPercent::Percent(p) => {
                let scaled = i64::from(total) * i64::from(p);
                i32::try_from((scaled + 99).div_euclid(100)).unwrap_or(i32::MAX)
            }
        }
    }
}

impl Serialize for IntOrPercent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrPercent::Int(n) => s.serialize_i32(*n),
            IntOrPercent::Percent(p) => s.serialize_str(&format!("{p}%")),
        }
    }
}

impl<'de> Deserialize<'de> for IntOrPercent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Int(i32),
            Str(String),
        }
        match Raw::deserialize(d)? {
            Raw::Int(n) => Ok(IntOrPercent::Int(n)),
            Raw::Str(s) => IntOrPercent::parse(&s)
                .ok_or_else(|| serde::de::Error::custom(format!("not an int or percent: {s}"))),
        }
    }
}

/// A PodDisruptionBudget with its computed status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PdbView {
    pub namespace: String,
    pub name: String,
    pub selector: LabelSelector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<IntOrPercent>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<IntOrPercent>,
    pub disruptions_allowed: i32,
    pub current_healthy: i32,
    pub desired_healthy: i32,
    pub expected_pods: i32,
}

impl PdbView {
    /// Whether this PDB governs `pod` (same namespace, selector matches).
    pub fn covers(&self, pod: &PodView) -> bool {
        self.namespace == pod.namespace && self.selector.matches(&pod.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn int_or_percent_parses_and_rounds_up_like_the_disruption_controller() {
        assert_eq!(IntOrPercent::parse("50%"), Some(IntOrPercent::Percent(50)));
        assert_eq!(IntOrPercent::parse("3"), Some(IntOrPercent::Int(3)));
        assert_eq!(IntOrPercent::parse("x%"), None);
        // 50% of 5 is 2.5; the controller rounds up for both minAvailable and maxUnavailable.
        assert_eq!(IntOrPercent::Percent(50).resolve(5), 3);
        assert_eq!(IntOrPercent::Percent(100).resolve(4), 4);
        assert_eq!(IntOrPercent::Percent(0).resolve(4), 0);
        assert_eq!(IntOrPercent::Int(2).resolve(10), 2);
        let v: IntOrPercent = serde_json::from_str("\"25%\"").unwrap_or(IntOrPercent::Int(-1));
        assert_eq!(v, IntOrPercent::Percent(25));
        assert_eq!(
            serde_json::to_string(&IntOrPercent::Int(1)).unwrap_or_default(),
            "1"
        );
    }
}
