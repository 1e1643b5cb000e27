//! The `cleanup` Lambda, run by the cleanup state machine after a migration execution ended
//! ABORTED, FAILED or TIMED_OUT (an EventBridge rule on Step Functions' "Execution Status
//! Change"), or by `ngm cleanup`. See the crate's library for what it does.
//!
//! Input and output are the [`cleanup::Cleanup`] envelope; errors leave with their stable
//! `error_type`.

use ngm_core::model::Timestamp;
use ngm_lambda::{Clients, Error, run_raw};
use ngm_steps::StepError;
use serde_json::Value;

async fn handle(event: Value, clients: &Clients, now: Timestamp) -> Result<Value, StepError> {
    let envelope = cleanup::decode(event)?;
    let (name, region) = envelope.cluster()?;
    let world = clients.world_for_cluster(&name, &region).await?;
    let out = cleanup::cleanup(envelope, &world, now).await?;
    cleanup::encode(&out)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run_raw("cleanup", handle).await
}
