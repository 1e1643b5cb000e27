//! Waiting decisions: a step that waits returns one of these, and the state machine's Wait
//! state sleeps for `retry_after_seconds` before calling it again.

use serde::{Deserialize, Serialize};

use crate::model::Timestamp;

/// Outcome of a polling step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "status")]
pub enum WaitDecision {
    Done,
    Again {
        retry_after_seconds: u64,
        reason: String,
    },
    Expired {
        reason: String,
    },
}

/// `Done` when `condition` holds; otherwise `Again` until `deadline`, then `Expired`.
pub fn wait_until(
    condition: Result<(), String>,
    now: Timestamp,
    deadline: Timestamp,
    poll_seconds: u64,
) -> WaitDecision {
    match condition {
        Ok(()) => WaitDecision::Done,
        Err(reason) if now >= deadline => WaitDecision::Expired { reason },
        Err(reason) => WaitDecision::Again {
            // Never sleep past the deadline, and never spin.
            retry_after_seconds: poll_seconds.min(deadline.secs_since(now)).max(1),
            reason,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waiting_stops_at_the_deadline_and_never_oversleeps() {
        let d = Timestamp(1_000);
        assert_eq!(
            wait_until(Ok(()), Timestamp(2_000), d, 30),
            WaitDecision::Done
        );
        assert_eq!(
            wait_until(Err("x".into()), Timestamp(900), d, 30),
            WaitDecision::Again {
                retry_after_seconds: 30,
                reason: "x".into()
            }
        );
        assert_eq!(
            wait_until(Err("x".into()), Timestamp(990), d, 30),
            WaitDecision::Again {
                retry_after_seconds: 10,
                reason: "x".into()
            }
        );
        assert_eq!(
            wait_until(Err("x".into()), Timestamp(1_000), d, 30),
            WaitDecision::Expired { reason: "x".into() }
        );
    }
}
