//! The `restore` Lambda. Step 11: puts HPAs and autoscalers back, removes every ngm mark, releases
//! the lock.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::restore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("restore", restore)).await
}
