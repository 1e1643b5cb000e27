//! The scenario's `expect:` section: how the run must end, and the figures it must match.
//!
//! ```yaml
//! expect:
//!   outcome: [success, rolledBack]   # one outcome, or a list of acceptable ones
//!   error: RetireStalled             # a failed, rolled-back, aborted run's error (or a list)
//!   figures:
//!     failedRequests: 0              # a number: exactly this
//!     invocations.retire: { min: 2 } # or bounds: min, max or both
//! ```
//!
//! Every key is checked: an unknown outcome, key or figure name is an error before the run
//! starts, so a typo cannot pass silently.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How an execution ended, as the verdict names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Outcome {
    /// SUCCEEDED through the migration.
    Success,
    /// SUCCEEDED through the dry-run report (`policy.dryRun`).
    DryRun,
    /// FAILED in `MigrationRolledBack`: the rollback ran to its end.
    RolledBack,
    /// FAILED anywhere else (`RollbackFailed`, `FailedAfterDeletion`, `NotStarted`, ...).
    Failed,
    /// ABORTED (StopExecution, as the console's "Stop execution" does).
    Aborted,
    /// TIMED_OUT (the state machine's `TimeoutSeconds`).
    TimedOut,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::DryRun => "dryRun",
            Outcome::RolledBack => "rolledBack",
            Outcome::Failed => "failed",
            Outcome::Aborted => "aborted",
            Outcome::TimedOut => "timedOut",
        }
    }

    /// The outcome of an execution from its final status and the last state it entered.
    pub fn of(status: &str, last_state: Option<&str>) -> Self {
        match (status, last_state) {
            ("SUCCEEDED", Some("DryRunReport")) => Outcome::DryRun,
            ("SUCCEEDED", _) => Outcome::Success,
            ("ABORTED", _) => Outcome::Aborted,
            ("TIMED_OUT", _) => Outcome::TimedOut,
            (_, Some("MigrationRolledBack")) => Outcome::RolledBack,
            _ => Outcome::Failed,
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A figure's expected value: exactly a number, or within bounds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Bound {
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Bound {
    fn parse(name: &str, v: &Value) -> Result<Self, String> {
        let num = |v: &Value, what: &str| {
            v.as_f64()
                .ok_or_else(|| format!("expect.figures.{name}.{what}: {v} is not a number"))
        };
        match v {
            Value::Number(_) => {
                let n = num(v, "value")?;
                Ok(Bound {
                    min: Some(n),
                    max: Some(n),
                })
            }
            Value::Object(m) => {
                let mut b = Bound {
                    min: None,
                    max: None,
                };
                for (k, x) in m {
                    match k.as_str() {
                        "min" => b.min = Some(num(x, "min")?),
                        "max" => b.max = Some(num(x, "max")?),
                        other => {
                            return Err(format!(
                                "expect.figures.{name}: unknown bound `{other}` (min, max)"
                            ));
                        }
                    }
                }
                if b.min.is_none() && b.max.is_none() {
                    return Err(format!("expect.figures.{name}: give min, max or a number"));
                }
                Ok(b)
            }
            other => Err(format!(
                "expect.figures.{name}: {other} is neither a number nor {{min, max}}"
            )),
        }
    }

    pub fn admits(&self, x: f64) -> bool {
        self.min.is_none_or(|m| x >= m) && self.max.is_none_or(|m| x <= m)
    }
}

impl std::fmt::Display for Bound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.min, self.max) {
            (Some(a), Some(b)) if a == b => write!(f, "{a}"),
            (Some(a), Some(b)) => write!(f, "between {a} and {b}"),
            (Some(a), None) => write!(f, "at least {a}"),
            (None, Some(b)) => write!(f, "at most {b}"),
            (None, None) => write!(f, "anything"),
        }
    }
}

/// The figures a scenario may name. `invocations.<function>` and `errors.<errorType>` name one
/// function's invocations and the function errors of one type over every function.
pub const FIGURES: &[&str] = &[
    "sentRequests",
    "failedRequests",
    "ngmFailedRequests",
    "injectedFailedRequests",
    "workloadFailedRequests",
    "connectionsOpened",
    "connectionsReset",
    "ngmConnectionsReset",
    "budgetViolations",
    "evictions",
    "stateTransitions",
    "cleanupTransitions",
    "kubernetesRequests",
    "eksRequests",
    "eksWrites",
    "awsWrites",
    "awsRequests",
    "simulatedSeconds",
    "controllerLagSeconds",
    "autoscalerNodesAdded",
    "autoscalerNodesRemoved",
    "jobPodsInterrupted",
    "jobLostWorkSeconds",
    "jobsCompleted",
    "injectedFaults",
    "slowInvocations",
    "migrationsStarted",
    "migrationsSucceeded",
];

/// Prefixes of the figures with a name after the dot.
pub const FIGURE_FAMILIES: &[&str] = &["invocations.", "errors."];

fn known_figure(name: &str, functions: &[&str]) -> Result<(), String> {
    if FIGURES.contains(&name) {
        return Ok(());
    }
    if let Some(f) = name.strip_prefix("invocations.") {
        return if functions.contains(&f) {
            Ok(())
        } else {
            Err(format!(
                "expect.figures: `{name}` names no function (known: {})",
                functions.join(", ")
            ))
        };
    }
    if let Some(e) = name.strip_prefix("errors.")
        && !e.is_empty()
    {
        return Ok(());
    }
    Err(format!(
        "expect.figures: unknown figure `{name}` (known: {}, {}<function>, {}<errorType>)",
        FIGURES.join(", "),
        FIGURE_FAMILIES[0],
        FIGURE_FAMILIES[1]
    ))
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    One(T),
    Many(Vec<T>),
}

impl<T> OneOrMany<T> {
    fn into_vec(self) -> Vec<T> {
        match self {
            OneOrMany::One(x) => vec![x],
            OneOrMany::Many(v) => v,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Raw {
    outcome: OneOrMany<Outcome>,
    #[serde(default)]
    error: Option<OneOrMany<String>>,
    #[serde(default)]
    cause_contains: Vec<String>,
    #[serde(default)]
    figures: BTreeMap<String, Value>,
}

/// The scenario's expectation, checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Expectation {
    /// Any of these passes.
    pub outcomes: Vec<Outcome>,
    /// When the run did not succeed, its error must be one of these (empty: any).
    pub errors: Vec<String>,
    /// When the run did not succeed, its cause must contain each of these (a refusal names
    /// its finding: `[pod-too-big]`).
    pub cause_contains: Vec<String>,
    pub figures: BTreeMap<String, Bound>,
}

impl Expectation {
    /// Reads `expect:`; `functions` are the names `invocations.<function>` may use.
    pub fn parse(section: &Value, functions: &[&str]) -> Result<Self, String> {
        let raw: Raw =
            serde_json::from_value(section.clone()).map_err(|e| format!("expect: {e}"))?;
        let outcomes = raw.outcome.into_vec();
        if outcomes.is_empty() {
            return Err("expect.outcome: the list is empty".into());
        }
        let mut figures = BTreeMap::new();
        for (name, v) in &raw.figures {
            known_figure(name, functions)?;
            figures.insert(name.clone(), Bound::parse(name, v)?);
        }
        Ok(Self {
            outcomes,
            errors: raw.error.map(OneOrMany::into_vec).unwrap_or_default(),
            cause_contains: raw.cause_contains,
            figures,
        })
    }

    /// The problems of a run that ended in `outcome` with `error` and these figures.
    pub fn check(
        &self,
        outcome: Outcome,
        error: Option<&str>,
        cause: Option<&str>,
        figures: &BTreeMap<String, f64>,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if !self.outcomes.contains(&outcome) {
            let want: Vec<&str> = self.outcomes.iter().map(|o| o.name()).collect();
            problems.push(format!(
                "expected {}, got {outcome} ({}: {})",
                want.join(" or "),
                error.unwrap_or("-"),
                cause.unwrap_or("-")
            ));
        }
        let ended_well = matches!(outcome, Outcome::Success | Outcome::DryRun);
        if !ended_well
            && !self.errors.is_empty()
            && !error.is_some_and(|e| self.errors.iter().any(|x| x == e))
        {
            problems.push(format!(
                "expected error {}, got {}",
                self.errors.join(" or "),
                error.unwrap_or("none")
            ));
        }
        if !ended_well {
            for want in &self.cause_contains {
                if !cause.is_some_and(|c| c.contains(want.as_str())) {
                    problems.push(format!(
                        "expected the cause to contain {want:?}, got {:?}",
                        cause.unwrap_or("-")
                    ));
                }
            }
        }
        for (name, bound) in &self.figures {
            // Families the run has no entry for are zero (no invocation, no such error).
            let value = figures.get(name).copied().or_else(|| {
                FIGURE_FAMILIES
                    .iter()
                    .any(|p| name.starts_with(p))
                    .then_some(0.0)
            });
            match value {
                Some(x) if bound.admits(x) => {}
                Some(x) => problems.push(format!("figure {name}: expected {bound}, got {x}")),
                None => problems.push(format!("figure {name}: the run did not measure it")),
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const FUNCTIONS: &[&str] = &["retire", "drain"];

    fn parse(v: Value) -> Result<Expectation, String> {
        Expectation::parse(&v, FUNCTIONS)
    }

    fn figures(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_string(), *v)).collect()
    }

    #[test]
    fn one_outcome_or_a_list_of_alternatives_is_read() {
        let one = parse(json!({"outcome": "success"})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(one.outcomes, vec![Outcome::Success]);
        let two =
            parse(json!({"outcome": ["success", "rolledBack"]})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(two.outcomes, vec![Outcome::Success, Outcome::RolledBack]);
        assert!(
            two.check(Outcome::RolledBack, Some("X"), None, &figures(&[]))
                .is_empty()
        );
        assert!(
            two.check(Outcome::Success, None, None, &figures(&[]))
                .is_empty()
        );
        let p = two.check(Outcome::Failed, Some("RollbackFailed"), None, &figures(&[]));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("success or rolledBack"), "{p:?}");
    }

    #[test]
    fn an_unknown_outcome_or_key_is_refused() {
        assert!(parse(json!({"outcome": "succes"})).is_err());
        assert!(parse(json!({"outcome": []})).is_err());
        let e = parse(json!({"outcome": "success", "figure": {}}))
            .err()
            .unwrap_or_default();
        assert!(e.contains("figure"), "{e}");
    }

    #[test]
    fn an_unknown_figure_name_is_an_error() {
        let e = parse(json!({"outcome": "success", "figures": {"failedRequest": 0}}))
            .err()
            .unwrap_or_default();
        assert!(e.contains("unknown figure `failedRequest`"), "{e}");
        let e = parse(json!({"outcome": "success", "figures": {"invocations.retrie": 1}}))
            .err()
            .unwrap_or_default();
        assert!(e.contains("names no function"), "{e}");
        assert!(parse(json!({"outcome": "success", "figures": {"invocations.retire": 1}})).is_ok());
        assert!(parse(json!({"outcome": "success", "figures": {"errors.Throttled": 0}})).is_ok());
    }

    #[test]
    fn a_figure_that_differs_fails_the_expectation() {
        let e = parse(json!({"outcome": "success", "figures": {"failedRequests": 999}}))
            .unwrap_or_else(|e| panic!("{e}"));
        let p = e.check(
            Outcome::Success,
            None,
            None,
            &figures(&[("failedRequests", 0.0)]),
        );
        assert_eq!(
            p,
            vec!["figure failedRequests: expected 999, got 0".to_string()]
        );
        assert!(
            e.check(
                Outcome::Success,
                None,
                None,
                &figures(&[("failedRequests", 999.0)])
            )
            .is_empty()
        );
    }

    #[test]
    fn bounds_admit_only_their_range() {
        let e = parse(json!({"outcome": "success", "figures": {
            "invocations.retire": {"min": 2}, "evictions": {"max": 3}, "sentRequests": {"min": 1, "max": 5}
        }}))
        .unwrap_or_else(|e| panic!("{e}"));
        let ok = figures(&[
            ("evictions", 3.0),
            ("sentRequests", 5.0),
            ("invocations.retire", 2.0),
        ]);
        assert!(e.check(Outcome::Success, None, None, &ok).is_empty());
        // A function that never ran has zero invocations, which is below the bound.
        let bad = figures(&[("evictions", 4.0), ("sentRequests", 0.0)]);
        let p = e.check(Outcome::Success, None, None, &bad);
        assert_eq!(p.len(), 3, "{p:?}");
        assert!(
            parse(json!({"outcome": "success", "figures": {"evictions": {"most": 1}}})).is_err()
        );
        assert!(parse(json!({"outcome": "success", "figures": {"evictions": "0"}})).is_err());
    }

    #[test]
    fn a_figure_the_run_did_not_measure_is_a_problem() {
        let e = parse(json!({"outcome": "success", "figures": {"sentRequests": 0}}))
            .unwrap_or_else(|e| panic!("{e}"));
        let p = e.check(Outcome::Success, None, None, &figures(&[]));
        assert!(p[0].contains("did not measure"), "{p:?}");
    }

    #[test]
    fn the_error_is_checked_only_when_the_run_did_not_succeed() {
        let e = parse(
            json!({"outcome": ["success", "rolledBack"], "error": ["RetireStalled", "PdbBlocked"]}),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            e.check(Outcome::Success, None, None, &figures(&[]))
                .is_empty()
        );
        assert!(
            e.check(Outcome::RolledBack, Some("PdbBlocked"), None, &figures(&[]))
                .is_empty()
        );
        let p = e.check(Outcome::RolledBack, Some("Transient"), None, &figures(&[]));
        assert!(p[0].contains("RetireStalled or PdbBlocked"), "{p:?}");
    }

    #[test]
    fn a_refusal_must_name_its_finding_in_the_cause() {
        let e = parse(json!({"outcome": "failed", "error": "PreflightFailed", "causeContains": ["[pod-too-big]", "ml/encoder"]}))
            .unwrap_or_else(|e| panic!("{e}"));
        let named = "pre-flight failed: [pod-too-big] Deployment ml/encoder requests 12288 MiB";
        assert!(
            e.check(
                Outcome::Failed,
                Some("PreflightFailed"),
                Some(named),
                &figures(&[])
            )
            .is_empty()
        );
        let other = "pre-flight failed: [surge-capacity] the new group cannot hold the surge";
        let p = e.check(
            Outcome::Failed,
            Some("PreflightFailed"),
            Some(other),
            &figures(&[]),
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("[pod-too-big]"), "{p:?}");
        let p = e.check(
            Outcome::Failed,
            Some("PreflightFailed"),
            None,
            &figures(&[]),
        );
        assert_eq!(p.len(), 2, "{p:?}");
    }

    #[test]
    fn outcomes_come_from_the_status_and_the_last_state() {
        assert_eq!(
            Outcome::of("SUCCEEDED", Some("DryRunReport")),
            Outcome::DryRun
        );
        assert_eq!(Outcome::of("SUCCEEDED", Some("Migrated")), Outcome::Success);
        assert_eq!(
            Outcome::of("FAILED", Some("MigrationRolledBack")),
            Outcome::RolledBack
        );
        assert_eq!(
            Outcome::of("FAILED", Some("RollbackFailed")),
            Outcome::Failed
        );
        assert_eq!(Outcome::of("ABORTED", Some("Retire")), Outcome::Aborted);
        assert_eq!(
            Outcome::of("TIMED_OUT", Some("WaitRetire")),
            Outcome::TimedOut
        );
    }
}
