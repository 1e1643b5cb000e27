//! The scenario's `workflow:` section: what the local runner does besides the twin's part.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::host::InvokeFault;

/// What the operator answers when a drain waits for one (`onPdbBlocked: waitForOperator`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperatorAnswer {
    /// SendTaskFailure: the execution rolls back.
    #[default]
    Abort,
    /// SendTaskSuccess `{"action": "retry"}`: a new deadline, and the evictions again.
    Retry,
    /// SendTaskSuccess `{"action": "force", "pod": ...}`: ngm deletes the named pod (or the
    /// one the callback's detail names).
    Force,
    /// SendTaskSuccess `{"action": "rollback"}`.
    Rollback,
    /// SendTaskSuccess `{}` (the answer before `action` existed).
    Approve,
}

/// Where to stop the execution, as the console's "Stop execution" does.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopAt {
    /// A state of the migration state machine.
    pub at_state: String,
    /// Its n-th entry (default 1).
    #[serde(default = "first")]
    pub visit: u32,
}

fn first() -> u32 {
    1
}

/// A lock another execution holds on the cluster before the run starts.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeldLock {
    /// The holder's execution name.
    pub holder: String,
    /// Whether the holder's execution is still RUNNING (DescribeExecution says so).
    pub running: bool,
    /// How long ago (simulated seconds) its lease ran out; 0 or less: it is still valid.
    #[serde(default)]
    pub expired_seconds_ago: i64,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSettings {
    /// Faults the Lambda host injects into invocations.
    #[serde(default)]
    pub lambda_faults: Vec<InvokeFault>,
    #[serde(default)]
    pub operator: OperatorAnswer,
    /// For `operator: force`: the pod to name (`namespace/name`); default: the blocked pod
    /// the callback's detail names.
    #[serde(default)]
    pub force_pod: Option<String>,
    /// How many times the operator answers; later callbacks get `abort` (default: every
    /// time the same answer).
    #[serde(default)]
    pub operator_answers: Option<u32>,
    /// Stop the execution at a state (StopExecution).
    #[serde(default)]
    pub stop_execution: Option<StopAt>,
    /// The execution's timeout in simulated seconds, instead of the definition's
    /// `TimeoutSeconds` (to reach TIMED_OUT in a scenario).
    #[serde(default)]
    pub execution_timeout_seconds: Option<f64>,
    /// A lock on the cluster held by another execution when the run starts.
    #[serde(default)]
    pub held_lock: Option<HeldLock>,
    /// Whether the cleanup state machine runs after an ABORTED, FAILED or TIMED_OUT
    /// execution, as the EventBridge rule starts it (default true).
    #[serde(default = "yes")]
    pub cleanup: bool,
    /// Run every invocation twice and check I5 on each.
    #[serde(default)]
    pub twice: bool,
    /// Wall-clock seconds each execution may take (default 600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
    /// The AMI watcher starts the migrations instead of the scenario's `migration:` (which it
    /// then must not have). For each release in order, the runner publishes it as the
    /// recommended release (the SSM public parameter of the cluster's Kubernetes version and
    /// the AMI type of each managed group tagged `ngm.io/auto-update: "true"`), runs one
    /// scheduled tick of `ami-watch`, and drives the execution it started to its end; the next
    /// release comes only after a SUCCEEDED one. A tick that starts nothing fails the run.
    #[serde(default)]
    pub ami_releases: Option<Vec<String>>,
}

fn yes() -> bool {
    true
}

impl WorkflowSettings {
    /// Reads the section; an unknown key or a bad value is an error that names it.
    pub fn from_scenario(section: Option<&Value>) -> Result<Self, String> {
        let empty = Value::Object(serde_json::Map::new());
        let s: Self = serde_json::from_value(section.unwrap_or(&empty).clone())
            .map_err(|e| format!("workflow: {e}"))?;
        if let Some(releases) = &s.ami_releases {
            if releases.is_empty() {
                return Err("workflow.amiReleases: give at least one release".into());
            }
            if let Some(r) = releases.iter().find(|r| r.trim().is_empty()) {
                return Err(format!("workflow.amiReleases: {r:?} is not a release"));
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::host::FaultKind;

    #[test]
    fn faults_and_the_operator_answer_are_read() {
        let s = WorkflowSettings::from_scenario(Some(&json!({
            "lambdaFaults": [{"function": "*", "kind": "lostResponse"}],
            "operator": "approve",
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.operator, OperatorAnswer::Approve);
        assert_eq!(s.lambda_faults[0].kind, FaultKind::LostResponse);
        assert_eq!(s.lambda_faults[0].times, 1);
    }

    #[test]
    fn a_stop_a_timeout_and_a_held_lock_are_read() {
        let s = WorkflowSettings::from_scenario(Some(&json!({
            "stopExecution": {"atState": "Retire"},
            "executionTimeoutSeconds": 600,
            "heldLock": {"holder": "other", "running": true, "expiredSecondsAgo": 60},
            "lambdaFaults": [{"function": "retire", "kind": "timeout", "after": 1}],
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.stop_execution,
            Some(StopAt {
                at_state: "Retire".into(),
                visit: 1
            })
        );
        assert_eq!(s.execution_timeout_seconds, Some(600.0));
        assert!(s.cleanup);
        assert_eq!(s.lambda_faults[0].kind, FaultKind::Timeout);
        assert_eq!(s.lambda_faults[0].after, 1);
        assert!(s.held_lock.is_some_and(|l| l.running));
        let none = WorkflowSettings::from_scenario(None).unwrap_or_else(|e| panic!("{e}"));
        assert!(none.cleanup && none.stop_execution.is_none());
    }

    #[test]
    fn ami_releases_are_read_in_order_and_an_empty_list_is_refused() {
        let s = WorkflowSettings::from_scenario(Some(&json!({
            "amiReleases": ["1.33.5-20251105", "1.33.5-20251201"],
        })))
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s.ami_releases,
            Some(vec!["1.33.5-20251105".into(), "1.33.5-20251201".into()])
        );
        let none = WorkflowSettings::from_scenario(None).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(none.ami_releases, None);
        for bad in [json!([]), json!([""])] {
            let e = WorkflowSettings::from_scenario(Some(&json!({ "amiReleases": bad })))
                .err()
                .unwrap_or_default();
            assert!(e.contains("amiReleases"), "{e}");
        }
    }

    #[test]
    fn an_unknown_key_is_refused_by_name() {
        let e = WorkflowSettings::from_scenario(Some(&json!({"lamdaFaults": []})))
            .err()
            .unwrap_or_default();
        assert!(e.contains("lamdaFaults"), "{e}");
    }
}
