//! The `delete-old` Lambda. Step 10: deletes the old group once only DaemonSet pods remain on it.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::delete_old;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("delete-old", delete_old)).await
}
