//! The operator's commands against a deployed ngm: `start` (validates locally, then
//! StartExecution), `status`, and `approve`/`abort`, which answer the task token a PDB-blocked
//! drain waits on (SendTaskSuccess / SendTaskFailure). `approve` finds the token in the
//! execution's history (the newest `AwaitOperator` task it scheduled) and sends the answer the
//! state machine keeps at `$.operator`: `{"action": "retry"|"force"|"rollback", "pod"?, "by"?}`;
//! `cleanup` and `unlock` (see [`crate::cleanup`]).

use std::process::ExitCode;

use aws_sdk_sfn::types::HistoryEventType;
use clap::Args;
use ngm_adapters::aws::{SfnAdapter, sfn_execution_arn};
use ngm_core::ports::SfnPort;
use ngm_core::state::OperatorAnswer;

/// The state whose task token `approve` answers.
pub const AWAIT_OPERATOR_STATE: &str = "AwaitOperator";

/// The state machine, when `--state-machine` is not given.
pub const STATE_MACHINE_VAR: &str = "NGM_STATE_MACHINE_ARN";
/// The error name an abort sends; the ASL's `AwaitOperator` catches every error into Rollback.
pub const ABORT_ERROR: &str = "OperatorAborted";

#[derive(Debug, Clone, Args)]
pub struct MachineArg {
    /// The state machine's ARN (default: $NGM_STATE_MACHINE_ARN).
    #[arg(long = "state-machine")]
    pub state_machine: Option<String>,
}

impl MachineArg {
    fn arn(&self) -> Result<String, String> {
        self.state_machine
            .clone()
            .or_else(|| std::env::var(STATE_MACHINE_VAR).ok())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                format!("no state machine: pass --state-machine or set {STATE_MACHINE_VAR}")
            })
    }
}

/// One operator command.
#[derive(Debug, Clone)]
pub enum Op {
    Start {
        request_json: String,
        machine: MachineArg,
        name: Option<String>,
    },
    Status {
        id: String,
        machine: MachineArg,
    },
    Approve {
        /// An execution ARN, an execution name (with the state machine), or the task token
        /// itself (from the `ngm.drain.pdbBlocked` event).
        target: String,
        machine: MachineArg,
        answer: OperatorAnswer,
    },
    Abort {
        token: String,
        reason: String,
    },
    Cleanup {
        execution_arn: String,
        cleanup_machine: Option<String>,
    },
    Unlock {
        cluster: String,
        lock_table: Option<String>,
    },
}

/// Runs `op` through `sfn` and returns what to print. `token` is the task token `approve`
/// answers (see [`resolve_token`]).
pub async fn run(
    op: &Op,
    sfn: &dyn SfnPort,
    token: Option<&str>,
    now_secs: i64,
) -> Result<String, String> {
    match op {
        Op::Start {
            request_json,
            machine,
            name,
        } => {
            let req = ngm_core::request::check_request(request_json).map_err(|errors| {
                errors
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            })?;
            let arn = machine.arn()?;
            let name = name.clone().unwrap_or_else(|| {
                format!("cli-{}-{}-{now_secs}", req.cluster.name, req.source.name())
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                            c
                        } else {
                            '-'
                        }
                    })
                    .take(80)
                    .collect()
            });
            let input = serde_json::to_string(&req).map_err(|e| e.to_string())?;
            let exec = sfn
                .start_execution(&arn, &name, &input)
                .await
                .map_err(|e| e.to_string())?;
            Ok(exec)
        }
        Op::Status { id, machine } => {
            let arn = if id.starts_with("arn:") {
                id.clone()
            } else {
                sfn_execution_arn(&machine.arn()?, id)
                    .ok_or("the state machine ARN is not a state machine ARN")?
            };
            let info = sfn
                .describe_execution(&arn)
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("no execution {arn}"))?;
            serde_json::to_string_pretty(&info).map_err(|e| e.to_string())
        }
        Op::Approve { answer, .. } => {
            let token = token.ok_or("no task token to answer")?;
            let output = serde_json::to_string(answer).map_err(|e| e.to_string())?;
            sfn.send_task_success(token, &output)
                .await
                .map_err(|e| e.to_string())?;
            Ok(format!("approved: {output}"))
        }
        Op::Abort { token, reason } => {
            sfn.send_task_failure(token, ABORT_ERROR, reason)
                .await
                .map_err(|e| e.to_string())?;
            Ok("aborted".into())
        }
        Op::Cleanup {
            execution_arn,
            cleanup_machine,
        } => {
            let machine = cleanup_machine
                .clone()
                .or_else(|| std::env::var(crate::cleanup::CLEANUP_MACHINE_VAR).ok())
                .filter(|s| !s.is_empty());
            crate::cleanup::cleanup(sfn, execution_arn, machine.as_deref()).await
        }
        Op::Unlock { .. } => Err("unlock needs the lock table; see main".into()),
    }
}

/// `ngm unlock`: the lock table and EKS besides Step Functions.
async fn unlock(
    sdk: &aws_types::SdkConfig,
    sfn: std::sync::Arc<SfnAdapter>,
    cluster: &str,
    lock_table: Option<&str>,
    now_secs: i64,
) -> Result<String, String> {
    let table = lock_table
        .map(str::to_owned)
        .or_else(|| std::env::var(crate::cleanup::LOCK_TABLE_VAR).ok())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| {
            format!(
                "no lock table: pass --lock-table or set {}",
                crate::cleanup::LOCK_TABLE_VAR
            )
        })?;
    let lock =
        ngm_adapters::aws::LockAdapter::new(aws_sdk_dynamodb::Client::new(sdk), table, sfn.clone());
    let eks = ngm_adapters::aws::EksAdapter::new(aws_sdk_eks::Client::new(sdk));
    crate::cleanup::unlock(
        &lock,
        sfn.as_ref(),
        &eks,
        cluster,
        ngm_core::model::Timestamp(now_secs),
    )
    .await
}

/// The `main` of an operator command: AWS settings from the environment, as the AWS CLI reads
/// them.
pub fn main(op: Op) -> ExitCode {
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ngm: {e}");
            return ExitCode::from(2);
        }
    };
    let result = rt.block_on(async {
        ngm_adapters::install_crypto_provider();
        let sdk = aws_config::load_from_env().await;
        let client = aws_sdk_sfn::Client::new(&sdk);
        let token = match &op {
            Op::Approve {
                target, machine, ..
            } => Some(resolve_token(&client, target, machine).await?),
            _ => None,
        };
        let sfn = std::sync::Arc::new(SfnAdapter::new(client));
        match &op {
            Op::Unlock {
                cluster,
                lock_table,
            } => unlock(&sdk, sfn, cluster, lock_table.as_deref(), chrono_free_now()).await,
            _ => run(&op, sfn.as_ref(), token.as_deref(), chrono_free_now()).await,
        }
    });
    match result {
        Ok(out) => crate::emit(&out).err().unwrap_or(ExitCode::SUCCESS),
        Err(e) => {
            eprintln!("ngm: {e}");
            ExitCode::from(1)
        }
    }
}

/// The task token to answer for `target`: an execution ARN, an execution name (with the state
/// machine), or, when it is neither and no state machine is configured, the token itself.
pub async fn resolve_token(
    client: &aws_sdk_sfn::Client,
    target: &str,
    machine: &MachineArg,
) -> Result<String, String> {
    let arn = if target.starts_with("arn:") {
        target.to_string()
    } else {
        match machine.arn() {
            Ok(m) => sfn_execution_arn(&m, target)
                .ok_or("the state machine ARN is not a state machine ARN")?,
            // No execution to look up: the argument is the token from the event.
            Err(_) => return Ok(target.to_string()),
        }
    };
    waiting_token(client, &arn).await
}

/// The token of the operator wait the execution is in now, from its newest history events:
/// the `AwaitOperator` task scheduled last, unless that state has been left since.
async fn waiting_token(client: &aws_sdk_sfn::Client, arn: &str) -> Result<String, String> {
    let mut next: Option<String> = None;
    loop {
        let out = client
            .get_execution_history()
            .execution_arn(arn)
            .reverse_order(true)
            .include_execution_data(true)
            .set_next_token(next.clone())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "reading the history of {arn}: {}",
                    aws_sdk_sfn::error::DisplayErrorContext(&e)
                )
            })?;
        for e in out.events() {
            if e.r#type() == &HistoryEventType::TaskStateExited
                && e.state_exited_event_details()
                    .is_some_and(|d| d.name() == AWAIT_OPERATOR_STATE)
            {
                return Err(format!("{arn} is not waiting for an operator"));
            }
            if e.r#type() == &HistoryEventType::TaskScheduled
                && let Some(d) = e.task_scheduled_event_details()
                && d.resource().ends_with("waitForTaskToken")
            {
                let params: serde_json::Value = serde_json::from_str(d.parameters())
                    .map_err(|e| format!("the AwaitOperator parameters are not JSON: {e}"))?;
                return params["Entries"][0]["Detail"]["taskToken"]
                    .as_str()
                    .map(String::from)
                    .ok_or_else(|| "the AwaitOperator event carries no task token".to_string());
            }
        }
        next = out.next_token().map(String::from);
        if next.is_none() {
            return Err(format!("{arn} has never waited for an operator"));
        }
    }
}

fn chrono_free_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}
