//! The `create-group` Lambda. Step 2: creates the new node group with an idempotent client request
//! token, or adopts one that already has the same spec; clones or versions the launch template.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::create_group;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("create-group", create_group)).await
}
