//! The `freeze` Lambda. Step 5: freezes the autoscalers (Cluster Autoscaler pins, HPA minimums),
//! recording every original on the object itself and in the state.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::freeze;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("freeze", freeze)).await
}
