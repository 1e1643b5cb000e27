//! The `cut-traffic` Lambda. Step 7: labels the old nodes out of external load balancers and sets
//! the seconds the LB-drain Wait state waits.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::cut_traffic;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("cut-traffic", cut_traffic)).await
}
