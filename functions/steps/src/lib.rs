//! The step handlers of the migration workflow (docs/design.md §2), one async function per step,
//! each taking and returning the `MigrationState`. Every handler observes the world through the
//! ports in a [`world::World`], hands what it saw to a pure planner of `ngm-core`, executes the
//! planned actions ([`exec`]) and reports the new state. A step that would wait returns the
//! state with `pending` set; it never sleeps. Errors carry stable names ([`error`]).

pub mod error;
pub mod exec;
pub mod observe;
pub mod start;
pub mod steps;
pub mod world;

#[cfg(any(test, feature = "fakes"))]
pub mod fakes;

pub use error::{
    ALL_ERROR_NAMES, DEADLINE_ERROR_NAMES, LOCK_LOST, RETRYABLE_ERROR_NAMES, StepError,
};
pub use world::World;
