//! The `surge` Lambda. Step 6: scales system Deployments, then user Deployments, to the surge
//! count, recording the originals.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::surge;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("surge", surge)).await
}
