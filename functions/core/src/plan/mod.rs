//! Pure planners, one per step of the procedure (docs/design.md §2).
//!
//! Each takes what the step observed plus `now` and returns data: an enum of actions, a report,
//! or a decision. No planner performs I/O, so a dry run is "plan, log, skip execution", and a
//! step run twice plans nothing the second time.

pub mod action;
pub mod deadlines;
pub mod newgroup;
pub mod wait;

pub use action::Action;
pub use wait::{WaitDecision, wait_until};
pub mod drain;
pub mod fit;
pub mod freeze;
pub mod lbdrain;
pub mod lifecycle;
pub mod nodes;
pub mod preflight;
pub mod restore;
pub mod retire;
pub mod scope;
pub mod source;
pub mod surge;
