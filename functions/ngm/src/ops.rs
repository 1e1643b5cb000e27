//! The operator's commands against a deployed ngm: `start` (validates locally, then
//! StartExecution), `status`, and `approve`/`abort`, which answer the task token a PDB-blocked
//! drain waits on (SendTaskSuccess / SendTaskFailure); `cleanup` and `unlock` (see
//! [`crate::cleanup`]).

use std::process::ExitCode;

use clap::Args;
use ngm_adapters::aws::{SfnAdapter, sfn_execution_arn};
use ngm_core::ports::SfnPort;

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
        token: String,
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

/// Runs `op` through `sfn` and returns what to print.
pub async fn run(op: &Op, sfn: &dyn SfnPort, now_secs: i64) -> Result<String, String> {
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
        Op::Approve { token } => {
            sfn.send_task_success(token, "{\"approved\":true}")
                .await
                .map_err(|e| e.to_string())?;
            Ok("approved".into())
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
        let sfn = std::sync::Arc::new(SfnAdapter::new(aws_sdk_sfn::Client::new(&sdk)));
        match &op {
            Op::Unlock {
                cluster,
                lock_table,
            } => unlock(&sdk, sfn, cluster, lock_table.as_deref(), chrono_free_now()).await,
            _ => run(&op, sfn.as_ref(), chrono_free_now()).await,
        }
    });
    match result {
        Ok(out) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("ngm: {e}");
            ExitCode::from(1)
        }
    }
}

fn chrono_free_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}
