//! The `rollback` Lambda. The rollback, caught from any step before the old group's deletion:
//! restores the old nodes, replicas, HPAs and autoscalers, deletes the new group when the policy
//! says so, releases the lock. It takes the state with the Catch's error at `$.caught`.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::rollback;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::after_catch("rollback", rollback)).await
}
