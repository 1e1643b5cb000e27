//! The `drain` Lambda. Step 9: evicts what is left on the old nodes in bounded rounds through the
//! Eviction API; a PDB blocking past the deadline is named (pod and PDB).
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::drain;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("drain", drain)).await
}
