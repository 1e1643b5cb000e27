//! The `validate-and-plan` Lambda. Step 1: validates the request, resolves the old group, runs the
//! pre-flight report and takes the per-cluster lock; a dry run stops here. It takes the start
//! envelope the first state builds from the execution input.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::validate_and_plan;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::first("validate-and-plan", validate_and_plan)).await
}
