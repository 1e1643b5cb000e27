//! The `check-group-ready` Lambda. Step 3: polls until the new group is ACTIVE and all its nodes
//! are Ready, answering `pending` until then and failing past the deadline.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::check_group_ready;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("check-group-ready", check_group_ready)).await
}
