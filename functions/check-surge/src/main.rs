//! The `check-surge` Lambda. Step 6, its wait: polls until the surged pods are Ready on new nodes.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::check_surge;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("check-surge", check_surge)).await
}
