//! I5 on the real functions: the host runs an invocation a second time on the same input, and
//! this compares the second run's output and the world after it with the first's.
//!
//! The world is the twin's desired state of every object ([`Snapshot`]). The controllers keep
//! running between the two runs (an HPA scales, EKS registers a node), so a difference counts
//! against the step only if the second run wrote something: a second run that sends no
//! mutating Kubernetes or EKS request cannot have changed the world.
//!
//! Outputs must be equal, except:
//! - instants the step reads off the clock (`/deadlines/*`, `/lock/acquiredAt`), which may
//!   differ by no more than the simulated time between the runs;
//! - when the second run wrote nothing, its progress fields (`/counts/*`, `/pending`,
//!   `/phase`): it observed the progress the first run started (pods gone, a wait over) and
//!   counts only what it did itself. These are kept as `progressObserved`, not failures.

use serde::Serialize;
use serde_json::Value;

use ngm_twin::sim::record::Snapshot;
use ngm_twin::store::Store;

/// Reads the world between the two runs.
pub trait WorldProbe: Send + Sync {
    fn snapshot(&self) -> Snapshot;
    /// Mutating requests (Kubernetes and EKS) served so far.
    fn writes(&self) -> u64;
    /// The simulated time, in Unix seconds.
    fn now(&self) -> i64;
}

/// The twin's store and EKS control plane as the world.
pub struct TwinProbe {
    pub store: Store,
    pub eks: Option<ngm_twin::eks::Eks>,
}

const MUTATING_VERBS: [&str; 5] = ["create", "update", "patch", "delete", "deletecollection"];
const MUTATING_EKS: [&str; 5] = ["Create", "Delete", "Update", "Tag", "Untag"];

impl WorldProbe for TwinProbe {
    fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.store)
    }

    fn writes(&self) -> u64 {
        let kube: u64 = self
            .store
            .requests()
            .snapshot()
            .into_iter()
            .filter(|((verb, _), _)| MUTATING_VERBS.contains(&verb.as_str()))
            .map(|(_, n)| n)
            .sum();
        let eks: u64 = self.eks.as_ref().map_or(0, |e| {
            e.counters()
                .snapshot()
                .into_iter()
                .filter(|(op, _)| MUTATING_EKS.iter().any(|m| op.starts_with(m)))
                .map(|(_, n)| n)
                .sum()
        });
        kube + eks
    }

    fn now(&self) -> i64 {
        self.store.clock().now().timestamp()
    }
}

/// What the host measured around the second run.
#[derive(Clone, Debug, Default)]
pub struct SecondRun {
    pub writes: u64,
    /// Simulated seconds between the start of the first run and the end of the second.
    pub elapsed_seconds: i64,
}

/// One invocation run twice.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct IdempotenceCheck {
    pub function: String,
    /// JSON pointers where the second output differs from the first (empty: the same).
    pub output_differences: Vec<String>,
    /// The second run's error, if it failed where the first succeeded.
    pub second_error: Option<String>,
    /// What changed in the world across the second run (`Kind/ns/name` and the pointer),
    /// when the second run wrote anything.
    pub world_changes: Vec<String>,
    /// Mutating requests the second run sent.
    pub second_run_writes: u64,
    /// Progress fields the second run, writing nothing, reported further along.
    pub progress_observed: Vec<String>,
}

impl IdempotenceCheck {
    pub fn holds(&self) -> bool {
        self.output_differences.is_empty()
            && self.second_error.is_none()
            && self.world_changes.is_empty()
    }

    pub fn compare(
        function: &str,
        first: &[u8],
        second: Result<&[u8], &str>,
        world_once: &Snapshot,
        world_twice: &Snapshot,
        run: &SecondRun,
    ) -> Self {
        let mut output_differences = Vec::new();
        let mut second_error = None;
        let mut progress_observed = Vec::new();
        match second {
            Ok(second) => {
                let a: Value = serde_json::from_slice(first).unwrap_or(Value::Null);
                let b: Value = serde_json::from_slice(second).unwrap_or(Value::Null);
                json_differences("", &a, &b, &mut output_differences);
                output_differences.retain(|path| !clock_drift(path, &a, &b, run.elapsed_seconds));
                if run.writes == 0 {
                    let (progress, rest): (Vec<String>, Vec<String>) =
                        output_differences.into_iter().partition(|p| is_progress(p));
                    progress_observed = progress;
                    output_differences = rest;
                }
            }
            Err(e) => second_error = Some(e.to_string()),
        }
        let diff = if run.writes == 0 {
            Default::default()
        } else {
            world_once.diff(world_twice)
        };
        let mut world_changes: Vec<String> = diff
            .changed
            .iter()
            .map(|c| format!("{}{}", c.object, c.path))
            .collect();
        world_changes.extend(
            diff.added
                .iter()
                .chain(&diff.removed)
                .filter(|r| r.kind != "Node")
                .map(|r| format!("{r} (added or removed)")),
        );
        Self {
            function: function.to_string(),
            output_differences,
            second_error,
            world_changes,
            second_run_writes: run.writes,
            progress_observed,
        }
    }
}

fn is_progress(path: &str) -> bool {
    path.starts_with("/counts/") || path.starts_with("/pending") || path == "/phase"
}

/// An instant read off the clock that moved by no more than the time between the runs.
fn clock_drift(path: &str, a: &Value, b: &Value, elapsed: i64) -> bool {
    let stamped = path.starts_with("/deadlines/") || path == "/lock/acquiredAt";
    match (
        a.pointer(path).and_then(Value::as_i64),
        b.pointer(path).and_then(Value::as_i64),
    ) {
        (Some(x), Some(y)) if stamped => (y - x).abs() <= elapsed.max(0) + 1,
        _ => false,
    }
}

/// The JSON pointers at which `a` and `b` differ.
pub fn json_differences(at: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let path = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => json_differences(&path, p, q, out),
                    _ => out.push(path),
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                json_differences(&format!("{at}/{i}"), p, q, out);
            }
        }
        _ if a != b => out.push(if at.is_empty() { "/".into() } else { at.into() }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn differences_are_named_by_json_pointer() {
        let mut out = Vec::new();
        json_differences(
            "",
            &json!({"a": {"b": 1, "c": [1, 2]}, "d/e": 1, "same": true}),
            &json!({"a": {"b": 2, "c": [1, 3]}, "d/e": 1, "same": true, "new": 0}),
            &mut out,
        );
        assert_eq!(out, vec!["/a/b", "/a/c/1", "/new"]);
    }

    #[test]
    fn equal_outputs_and_an_unchanged_world_hold() {
        let world = Snapshot::default();
        let run = SecondRun {
            writes: 0,
            elapsed_seconds: 10,
        };
        let c = IdempotenceCheck::compare(
            "taint",
            b"{\"x\":1}",
            Ok(b"{\"x\":1}"),
            &world,
            &world,
            &run,
        );
        assert!(c.holds(), "{c:?}");
        let c = IdempotenceCheck::compare(
            "taint",
            b"{\"x\":1}",
            Err("Transient"),
            &world,
            &world,
            &run,
        );
        assert!(!c.holds());
        assert_eq!(c.second_error.as_deref(), Some("Transient"));
    }

    #[test]
    fn clock_stamps_may_move_by_the_time_between_runs_and_no_more() {
        let world = Snapshot::default();
        let run = SecondRun {
            writes: 0,
            elapsed_seconds: 10,
        };
        let first = br#"{"deadlines":{"drainBy":1000},"counts":{"podsEvicted":1}}"#;
        let near = br#"{"deadlines":{"drainBy":1008},"counts":{"podsEvicted":1}}"#;
        let far = br#"{"deadlines":{"drainBy":1100},"counts":{"podsEvicted":1}}"#;
        let counted = br#"{"deadlines":{"drainBy":1000},"counts":{"podsEvicted":2}}"#;
        assert!(IdempotenceCheck::compare("drain", first, Ok(near), &world, &world, &run).holds());
        assert!(!IdempotenceCheck::compare("drain", first, Ok(far), &world, &world, &run).holds());
        // Writing nothing, the second run may only report progress it observed.
        let c = IdempotenceCheck::compare("drain", first, Ok(counted), &world, &world, &run);
        assert!(c.holds(), "{c:?}");
        assert_eq!(c.progress_observed, vec!["/counts/podsEvicted"]);
        let wrote = SecondRun {
            writes: 1,
            elapsed_seconds: 10,
        };
        let c = IdempotenceCheck::compare("drain", first, Ok(counted), &world, &world, &wrote);
        assert_eq!(c.output_differences, vec!["/counts/podsEvicted"]);
    }
}
