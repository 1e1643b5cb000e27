//! Step Functions: start, read and list executions, and answer a task-token callback.

use async_trait::async_trait;
use aws_sdk_sfn::Client;
use aws_sdk_sfn::types::ExecutionStatus as SfnStatus;
use ngm_core::model::{ExecutionInfo, ExecutionStatus};
use ngm_core::ports::{PortError, PortResult, SfnPort};

use super::{epoch, none_if_missing};

mod history;

#[derive(Debug, Clone)]
pub struct SfnAdapter {
    client: Client,
}

impl SfnAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// `arn:aws:states:r:a:stateMachine:sm` + `name` -> `arn:aws:states:r:a:execution:sm:name`.
pub fn execution_arn(state_machine_arn: &str, name: &str) -> Option<String> {
    let (head, sm) = state_machine_arn.rsplit_once(":stateMachine:")?;
    Some(format!("{head}:execution:{sm}:{name}"))
}

fn status_of(s: &SfnStatus) -> ExecutionStatus {
    match s {
        SfnStatus::Running => ExecutionStatus::Running,
        SfnStatus::Succeeded => ExecutionStatus::Succeeded,
        SfnStatus::Failed => ExecutionStatus::Failed,
        SfnStatus::TimedOut => ExecutionStatus::TimedOut,
        SfnStatus::PendingRedrive => ExecutionStatus::PendingRedrive,
        _ => ExecutionStatus::Aborted,
    }
}

fn sfn_status(s: ExecutionStatus) -> SfnStatus {
    match s {
        ExecutionStatus::Running => SfnStatus::Running,
        ExecutionStatus::Succeeded => SfnStatus::Succeeded,
        ExecutionStatus::Failed => SfnStatus::Failed,
        ExecutionStatus::TimedOut => SfnStatus::TimedOut,
        ExecutionStatus::Aborted => SfnStatus::Aborted,
        ExecutionStatus::PendingRedrive => SfnStatus::PendingRedrive,
    }
}

#[async_trait]
impl SfnPort for SfnAdapter {
    async fn start_execution(
        &self,
        state_machine_arn: &str,
        name: &str,
        input: &str,
    ) -> PortResult<String> {
        let out = crate::send!(
            "states:StartExecution",
            self.client
                .start_execution()
                .state_machine_arn(state_machine_arn)
                .name(name)
                .input(input)
        );
        match out {
            Ok(o) => Ok(o.execution_arn().to_owned()),
            // The name is taken. Same input: this start already happened, so it is done.
            Err(PortError::Conflict { op, detail }) => {
                let arn =
                    execution_arn(state_machine_arn, name).ok_or_else(|| PortError::Invalid {
                        op: op.clone(),
                        detail: format!("{state_machine_arn} is not a state machine ARN"),
                    })?;
                match self.describe_execution(&arn).await? {
                    Some(e) if e.input.as_deref() == Some(input) => Ok(arn),
                    _ => Err(PortError::Conflict { op, detail }),
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn describe_execution(&self, execution_arn: &str) -> PortResult<Option<ExecutionInfo>> {
        let out = crate::send!(
            "states:DescribeExecution",
            self.client
                .describe_execution()
                .execution_arn(execution_arn)
        );
        Ok(none_if_missing(out)?.map(|o| ExecutionInfo {
            arn: o.execution_arn().to_owned(),
            name: o.name().unwrap_or_default().to_owned(),
            status: status_of(o.status()),
            started_at: epoch(o.start_date()),
            stopped_at: o.stop_date().map(epoch),
            input: o.input().map(str::to_owned),
            output: o.output().map(str::to_owned),
            error: o.error().map(str::to_owned),
            cause: o.cause().map(str::to_owned),
        }))
    }

    async fn list_executions(
        &self,
        state_machine_arn: &str,
        status: Option<ExecutionStatus>,
    ) -> PortResult<Vec<ExecutionInfo>> {
        let pages = crate::paginate!(
            "states:ListExecutions",
            self.client
                .list_executions()
                .state_machine_arn(state_machine_arn)
                .set_status_filter(status.map(sfn_status))
        )?;
        let mut all = Vec::new();
        for page in pages {
            all.extend(page.executions().iter().map(|e| ExecutionInfo {
                arn: e.execution_arn().to_owned(),
                name: e.name().to_owned(),
                status: status_of(e.status()),
                started_at: epoch(e.start_date()),
                stopped_at: e.stop_date().map(epoch),
                input: None,
                output: None,
                error: None,
                cause: None,
            }));
        }
        Ok(all)
    }

    async fn send_task_success(&self, task_token: &str, output: &str) -> PortResult<()> {
        crate::send!(
            "states:SendTaskSuccess",
            self.client
                .send_task_success()
                .task_token(task_token)
                .output(output)
        )?;
        Ok(())
    }

    async fn send_task_failure(
        &self,
        task_token: &str,
        error: &str,
        cause: &str,
    ) -> PortResult<()> {
        crate::send!(
            "states:SendTaskFailure",
            self.client
                .send_task_failure()
                .task_token(task_token)
                .error(error)
                .cause(cause)
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::execution_arn;

    #[test]
    fn execution_arn_is_derived_from_the_state_machine_arn() {
        assert_eq!(
            execution_arn(
                "arn:aws:states:us-east-1:123456789012:stateMachine:ngm",
                "run-1"
            )
            .as_deref(),
            Some("arn:aws:states:us-east-1:123456789012:execution:ngm:run-1")
        );
        assert_eq!(execution_arn("arn:aws:lambda:x", "n"), None);
    }
}
