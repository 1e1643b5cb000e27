//! The `check-deleted` Lambda. Step 10, its wait: polls until the old group is gone.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::check_deleted;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("check-deleted", check_deleted)).await
}
