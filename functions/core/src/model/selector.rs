//! Label selectors (`matchLabels` plus `matchExpressions`) as pure predicates.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Labels;

/// A set-based selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SelectorOperator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// One `matchExpressions` entry.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: SelectorOperator,
    #[serde(default)]
    pub values: Vec<String>,
}

impl SelectorRequirement {
    fn matches(&self, labels: &Labels) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            SelectorOperator::In => value.is_some_and(|v| self.values.contains(v)),
            // NotIn matches a missing key, as the API server's selector does.
            SelectorOperator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            SelectorOperator::Exists => value.is_some(),
            SelectorOperator::DoesNotExist => value.is_none(),
        }
    }
}

/// A label selector. An empty selector matches everything (`metav1.LabelSelector` semantics).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: Labels,
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
}

impl LabelSelector {
    /// A selector of `key=value` pairs.
    pub fn eq<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> LabelSelector {
        LabelSelector {
            match_labels: pairs
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            match_expressions: Vec::new(),
        }
    }

    /// Whether every requirement holds for `labels`.
    pub fn matches(&self, labels: &Labels) -> bool {
        self.match_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| r.matches(labels))
    }

    pub fn is_empty(&self) -> bool {
        self.match_labels.is_empty() && self.match_expressions.is_empty()
    }

    /// The `labelSelector` query-string form (`a=b,c in (x,y),!d`).
    pub fn to_query(&self) -> String {
        let mut parts: Vec<String> = self
            .match_labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        for r in &self.match_expressions {
            let mut values = r.values.clone();
            values.sort();
            parts.push(match r.operator {
                SelectorOperator::In => format!("{} in ({})", r.key, values.join(",")),
                SelectorOperator::NotIn => format!("{} notin ({})", r.key, values.join(",")),
                SelectorOperator::Exists => r.key.clone(),
                SelectorOperator::DoesNotExist => format!("!{}", r.key),
            });
        }
        parts.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Labels {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: SelectorOperator, values: &[&str]) -> LabelSelector {
        LabelSelector {
            match_labels: Labels::new(),
            match_expressions: vec![SelectorRequirement {
                key: key.into(),
                operator: op,
                values: values.iter().map(|v| v.to_string()).collect(),
            }],
        }
    }

    #[test]
    fn selector_matches_like_the_api_server() {
        use SelectorOperator::*;
        let app_web = labels(&[("app", "web"), ("tier", "front")]);
        let none = labels(&[]);
        let cases: Vec<(&str, LabelSelector, &Labels, bool)> = vec![
            ("empty matches all", LabelSelector::default(), &none, true),
            (
                "eq hit",
                LabelSelector::eq([("app", "web")]),
                &app_web,
                true,
            ),
            (
                "eq miss",
                LabelSelector::eq([("app", "db")]),
                &app_web,
                false,
            ),
            (
                "eq on missing key",
                LabelSelector::eq([("app", "web")]),
                &none,
                false,
            ),
            (
                "in hit",
                expr("tier", In, &["front", "back"]),
                &app_web,
                true,
            ),
            ("in missing key", expr("tier", In, &["front"]), &none, false),
            (
                "notin hit",
                expr("tier", NotIn, &["front"]),
                &app_web,
                false,
            ),
            (
                "notin missing key",
                expr("tier", NotIn, &["front"]),
                &none,
                true,
            ),
            ("exists", expr("app", Exists, &[]), &app_web, true),
            ("exists missing", expr("app", Exists, &[]), &none, false),
            (
                "does not exist",
                expr("app", DoesNotExist, &[]),
                &none,
                true,
            ),
            (
                "does not exist present",
                expr("app", DoesNotExist, &[]),
                &app_web,
                false,
            ),
        ];
        for (name, sel, l, want) in cases {
            assert_eq!(sel.matches(l), want, "{name}");
        }
    }

    #[test]
    fn selector_renders_the_query_string_form() {
        let mut sel = LabelSelector::eq([("app", "web")]);
        sel.match_expressions = expr("tier", SelectorOperator::NotIn, &["b", "a"])
            .match_expressions
            .into_iter()
            .chain(expr("gone", SelectorOperator::DoesNotExist, &[]).match_expressions)
            .collect();
        assert_eq!(sel.to_query(), "app=web,tier notin (a,b),!gone");
    }
}
