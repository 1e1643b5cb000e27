//! The `taint` Lambda. Step 4: taints the old nodes `NoSchedule` with ngm's taint and labels them
//! as retiring.
//!
//! Input and output are the `MigrationState`; errors leave with their stable `error_type`.

use ngm_lambda::{Error, Step, run};
use ngm_steps::steps::taint;

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(Step::new("taint", taint)).await
}
