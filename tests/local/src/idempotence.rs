//! I5 on the real functions: the host runs an invocation a second time on the same input, and
//! this compares the second run's output and the world after it with the first's.
//!
//! The world is the twin's desired state of every object ([`Snapshot`]). Nodes that the EKS
//! part registers or removes between the two runs are the cloud moving on, not the step, so
//! added and removed Nodes are left out; every other difference counts.

use serde::Serialize;
use serde_json::Value;

use ngm_twin::sim::record::Snapshot;
use ngm_twin::store::Store;

/// Reads the world between the two runs.
pub trait WorldProbe: Send + Sync {
    fn snapshot(&self) -> Snapshot;
}

/// The twin's store as the world.
pub struct StoreProbe(pub Store);

impl WorldProbe for StoreProbe {
    fn snapshot(&self) -> Snapshot {
        Snapshot::take(&self.0)
    }
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
    /// Objects the second run changed: `Kind/ns/name` and the JSON pointer.
    pub world_changes: Vec<String>,
}

impl IdempotenceCheck {
    pub fn holds(&self) -> bool {
        self.output_differences.is_empty()
            && self.second_error.is_none()
            && self.world_changes.is_empty()
    }

    pub fn compare(
        function: &str,
        _input: &[u8],
        first: &[u8],
        second: Result<&[u8], &str>,
        world_once: &Snapshot,
        world_twice: &Snapshot,
    ) -> Self {
        let mut output_differences = Vec::new();
        let mut second_error = None;
        match second {
            Ok(second) => {
                let a: Value = serde_json::from_slice(first).unwrap_or(Value::Null);
                let b: Value = serde_json::from_slice(second).unwrap_or(Value::Null);
                json_differences("", &a, &b, &mut output_differences);
            }
            Err(e) => second_error = Some(e.to_string()),
        }
        let diff = world_once.diff(world_twice);
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
        }
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
        let c = IdempotenceCheck::compare("taint", b"{}", b"{\"x\":1}", Ok(b"{\"x\":1}"), &world, &world);
        assert!(c.holds(), "{c:?}");
        let c = IdempotenceCheck::compare("taint", b"{}", b"{\"x\":1}", Err("Transient"), &world, &world);
        assert!(!c.holds());
        assert_eq!(c.second_error.as_deref(), Some("Transient"));
    }
}
