//! The scenario's `workflow:` section: what the local runner does besides the twin's part.

use serde::Deserialize;
use serde_json::Value;

use crate::host::InvokeFault;

/// What the operator answers when a drain waits for one (`onPdbBlocked: waitForOperator`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperatorAnswer {
    /// SendTaskFailure: the execution rolls back.
    #[default]
    Abort,
    /// SendTaskSuccess: the drain runs again.
    Approve,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkflowSettings {
    /// Faults the Lambda host injects into invocations.
    #[serde(default)]
    pub lambda_faults: Vec<InvokeFault>,
    #[serde(default)]
    pub operator: OperatorAnswer,
    /// Run every invocation twice and check I5 on each.
    #[serde(default)]
    pub twice: bool,
    /// Wall-clock seconds the whole execution may take (default 600).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

impl WorkflowSettings {
    /// Reads the section; an unknown key or a bad value is an error that names it.
    pub fn from_scenario(section: Option<&Value>) -> Result<Self, String> {
        match section {
            None => Ok(Self::default()),
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| format!("workflow: {e}")),
        }
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
    fn an_unknown_key_is_refused_by_name() {
        let e = WorkflowSettings::from_scenario(Some(&json!({"lamdaFaults": []})))
            .err()
            .unwrap_or_default();
        assert!(e.contains("lamdaFaults"), "{e}");
    }
}
