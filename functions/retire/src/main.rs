//! The `retire` Lambda. Step 8: gives the old copies a negative pod-deletion-cost and scales back
//! to the original counts, then verifies which pods went.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::retire;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("retire", retire)).await
}
