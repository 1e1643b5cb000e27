//! The newest events of an execution's history: which state it is in, and the last state output.

use async_trait::async_trait;
use ngm_core::ports::{ExecutionProgress, PortResult, SfnHistoryPort};

use super::super::none_if_missing;
use super::SfnAdapter;

/// Enough events to find the last state entered and exited: a step is a handful of events.
const NEWEST_EVENTS: i32 = 50;

#[async_trait]
impl SfnHistoryPort for SfnAdapter {
    async fn progress(&self, execution_arn: &str) -> PortResult<Option<ExecutionProgress>> {
        let out = crate::send!(
            "states:GetExecutionHistory",
            self.client
                .get_execution_history()
                .execution_arn(execution_arn)
                .reverse_order(true)
                .max_results(NEWEST_EVENTS)
                .include_execution_data(true)
        );
        let Some(out) = none_if_missing(out)? else {
            return Ok(None);
        };
        // By event id rather than position: the newest has the highest id whatever the order.
        let mut entered: Option<(i64, String)> = None;
        let mut exited: Option<(i64, Option<String>)> = None;
        for e in out.events() {
            if let Some(d) = e.state_entered_event_details()
                && entered.as_ref().is_none_or(|(id, _)| e.id() > *id)
            {
                entered = Some((e.id(), d.name().to_owned()));
            }
            if let Some(d) = e.state_exited_event_details()
                && exited.as_ref().is_none_or(|(id, _)| e.id() > *id)
            {
                exited = Some((e.id(), d.output().map(str::to_owned)));
            }
        }
        Ok(Some(ExecutionProgress {
            current_step: entered.map(|(_, n)| n),
            last_output: exited.and_then(|(_, o)| o),
        }))
    }
}
