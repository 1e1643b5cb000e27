//! One retry policy for every adapter call, Kubernetes and AWS alike.
//!
//! Each call retries on its own: a throttle (429 or a throttling code), a server error (5xx)
//! or a transport timeout is tried again after an exponential backoff with full jitter
//! (AWS Architecture Blog, "Exponential Backoff And Jitter"), never sooner than the server's
//! `Retry-After`. So one call's throttles never spend another call's attempts.
//!
//! Every call is capped in time by the invocation's budget: the Lambda harness runs each
//! invocation [`within`] a deadline (a quarter of the Lambda timeout from its start), and no
//! attempt or backoff goes past it. A call that is still failing then surfaces its last error
//! (`Throttled`, `Unavailable`, `Timeout`), the step fails with a retryable name, and the state
//! machine's Retry takes over with its own, longer backoff. Outside an invocation (the CLI,
//! tests) each call gets [`DEFAULT_CALL_BUDGET`].
//!
//! The AWS SDK's own retries are disabled where the clients are built (see
//! [`sdk_retry_config`]): one layer retries, with one policy.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use ngm_core::ports::{PortError, PortResult};
use tokio::time::Instant;

/// How one call retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    /// The first backoff's ceiling; it doubles per attempt.
    pub base_delay: Duration,
    /// No computed backoff is longer than this (a longer `Retry-After` is still honoured when
    /// the budget allows it).
    pub max_delay: Duration,
}

/// The policy of every adapter call: 8 attempts, backoff ceilings 0.1, 0.2, 0.4 ... 5 s.
pub const POLICY: Policy = Policy {
    max_attempts: 8,
    base_delay: Duration::from_millis(100),
    max_delay: Duration::from_secs(5),
};
/// A call's budget when no invocation deadline is set.
pub const DEFAULT_CALL_BUDGET: Duration = Duration::from_secs(30);

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `f` with every adapter call inside it capped at `deadline`.
pub async fn within<F: Future>(deadline: Instant, f: F) -> F::Output {
    DEADLINE.scope(deadline, f).await
}

/// The deadline of a call starting now.
pub fn call_deadline() -> Instant {
    DEADLINE
        .try_with(|d| *d)
        .unwrap_or_else(|_| Instant::now() + DEFAULT_CALL_BUDGET)
}

/// The invocation budget for a Lambda whose runtime deadline is `lambda_deadline`, starting
/// at `start`: a quarter of the time left, so the step can still answer (and the state machine
/// retry) well before the Lambda timeout.
pub fn invocation_deadline(start: Instant, time_left: Duration) -> Instant {
    start + time_left / 4
}

/// The retry configuration for every AWS SDK client: the SDK does not retry; [`call`] does.
pub fn sdk_retry_config() -> aws_smithy_types::retry::RetryConfig {
    aws_smithy_types::retry::RetryConfig::disabled()
}

/// One failed attempt: how it is classified, and how long the server asked to wait.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error: PortError,
    pub retry_after: Option<Duration>,
}

impl From<PortError> for Failure {
    fn from(error: PortError) -> Failure {
        Failure {
            error,
            retry_after: None,
        }
    }
}

/// Whether the same call may succeed if sent again at once: throttles, 5xx and timeouts. A
/// conflict (409) needs a fresh read first, and a PDB refusal is the step's to wait out.
pub fn retried_in_call(e: &PortError) -> bool {
    matches!(
        e,
        PortError::Throttled { .. } | PortError::Unavailable { .. } | PortError::Timeout { .. }
    )
}

/// The backoff before attempt `attempt + 1` (1-based `attempt`), with full jitter, and at
/// least `retry_after`.
pub fn backoff(policy: &Policy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let ceiling = policy
        .base_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
        .min(policy.max_delay);
    let jittered = ceiling.mul_f64(jitter());
    retry_after.map_or(jittered, |r| r.max(jittered))
}

/// A number in [0, 1): a splitmix64 step over the clock and a counter. Jitter spreads
/// retries; it need not be unpredictable.
fn jitter() -> f64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    let mut z = nanos
        .wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed))
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    #[allow(clippy::cast_precision_loss)]
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    unit
}

/// Sends `attempt` under [`POLICY`] until it succeeds, fails in a way a retry cannot fix, runs
/// out of attempts, or the next try would end past the call's deadline.
pub async fn call<T, F, Fut>(op: &str, attempt: F) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    call_with(&POLICY, op, attempt).await
}

/// [`call`] with another policy (tests use short delays).
pub async fn call_with<T, F, Fut>(policy: &Policy, op: &str, mut attempt: F) -> PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, Failure>>,
{
    let deadline = call_deadline();
    let mut tries = 0u32;
    loop {
        tries += 1;
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return Err(PortError::Timeout {
                op: format!("{op}: the invocation's time budget is spent"),
            });
        };
        let failure = match tokio::time::timeout(left, attempt()).await {
            Ok(Ok(v)) => return Ok(v),
            Ok(Err(f)) => f,
            Err(_) => Failure::from(PortError::Timeout {
                op: format!("{op}: no answer within the invocation's time budget"),
            }),
        };
        if !retried_in_call(&failure.error) || tries >= policy.max_attempts {
            return Err(failure.error);
        }
        let wait = backoff(policy, tries, failure.retry_after);
        if Instant::now() + wait >= deadline {
            tracing::warn!(op, tries, wait_ms = wait.as_millis() as u64, error = %failure.error, "no time left to retry");
            return Err(failure.error);
        }
        tracing::info!(op, tries, wait_ms = wait.as_millis() as u64, error = %failure.error, "retrying");
        tokio::time::sleep(wait).await;
    }
}

/// Seconds from a `Retry-After` header value (delta-seconds; an HTTP date is not used by
/// the APIs ngm calls and is ignored).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    const FAST: Policy = Policy {
        max_attempts: 8,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(4),
    };

    fn throttled() -> Failure {
        Failure::from(PortError::Throttled { op: "op".into() })
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        for attempt in 1..12u32 {
            let b = backoff(&POLICY, attempt, None);
            let ceiling = (POLICY.base_delay * (1u32 << (attempt - 1))).min(POLICY.max_delay);
            assert!(b <= ceiling, "{attempt}: {b:?} > {ceiling:?}");
        }
        assert!(backoff(&POLICY, 1, Some(Duration::from_secs(7))) >= Duration::from_secs(7));
    }

    #[test]
    fn jitter_spreads_over_the_unit_interval() {
        let xs: Vec<f64> = (0..1000).map(|_| jitter()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().any(|x| *x < 0.25) && xs.iter().any(|x| *x > 0.75));
    }

    #[test]
    fn retry_after_is_delta_seconds() {
        assert_eq!(parse_retry_after(" 1 "), Some(Duration::from_secs(1)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }

    #[tokio::test]
    async fn a_throttle_then_success_waits_at_least_retry_after() {
        let n = AtomicU32::new(0);
        let start = Instant::now();
        let got = call_with(&FAST, "op", || {
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    Err(Failure {
                        retry_after: Some(Duration::from_secs(1)),
                        ..throttled()
                    })
                } else {
                    Ok(7)
                }
            }
        })
        .await;
        assert_eq!(got, Ok(7));
        assert_eq!(n.load(Ordering::SeqCst), 2);
        assert!(
            start.elapsed() >= Duration::from_secs(1),
            "{:?}",
            start.elapsed()
        );
    }

    #[tokio::test]
    async fn a_server_error_then_success_is_retried() {
        let n = AtomicU32::new(0);
        let got = call_with(&FAST, "op", || {
            let first = n.fetch_add(1, Ordering::SeqCst) == 0;
            async move {
                if first {
                    Err(Failure::from(PortError::Unavailable {
                        op: "op".into(),
                        detail: "500".into(),
                    }))
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert_eq!(got, Ok(()));
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn an_error_a_retry_cannot_fix_is_returned_at_once() {
        let n = AtomicU32::new(0);
        let got: PortResult<()> = call_with(&FAST, "op", || {
            n.fetch_add(1, Ordering::SeqCst);
            async { Err(Failure::from(PortError::AccessDenied { op: "op".into() })) }
        })
        .await;
        assert_eq!(got, Err(PortError::AccessDenied { op: "op".into() }));
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_budget_too_short_for_retry_after_surfaces_the_throttle() {
        let n = AtomicU32::new(0);
        let got: PortResult<()> = within(Instant::now() + Duration::from_millis(1500), async {
            call_with(&FAST, "op", || {
                n.fetch_add(1, Ordering::SeqCst);
                async {
                    Err(Failure {
                        retry_after: Some(Duration::from_secs(1)),
                        ..throttled()
                    })
                }
            })
            .await
        })
        .await;
        assert_eq!(got, Err(PortError::Throttled { op: "op".into() }));
        // Tried at 0 s and 1 s; a third try would start at 2 s, past the budget.
        assert_eq!(n.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn attempts_run_out_with_the_last_error() {
        let n = AtomicU32::new(0);
        let got: PortResult<()> = call_with(&FAST, "op", || {
            n.fetch_add(1, Ordering::SeqCst);
            async { Err(throttled()) }
        })
        .await;
        assert_eq!(got, Err(PortError::Throttled { op: "op".into() }));
        assert_eq!(n.load(Ordering::SeqCst), FAST.max_attempts);
    }

    #[tokio::test]
    async fn each_call_has_its_own_attempts() {
        // Two calls in one invocation, each throttled max_attempts - 1 times: both succeed,
        // where one budget shared by the invocation would have failed the second.
        let result = within(Instant::now() + Duration::from_secs(60), async {
            let mut out = Vec::new();
            for _ in 0..2 {
                let n = AtomicU32::new(0);
                out.push(
                    call_with(&FAST, "op", || {
                        let k = n.fetch_add(1, Ordering::SeqCst);
                        async move {
                            if k + 1 < FAST.max_attempts {
                                Err(throttled())
                            } else {
                                Ok(k)
                            }
                        }
                    })
                    .await,
                );
            }
            out
        })
        .await;
        let last = FAST.max_attempts - 1;
        assert_eq!(result, vec![Ok(last), Ok(last)]);
    }

    #[tokio::test]
    async fn an_attempt_that_hangs_ends_at_the_deadline() {
        let got: PortResult<()> = within(Instant::now() + Duration::from_millis(200), async {
            call("op", std::future::pending::<Result<(), Failure>>).await
        })
        .await;
        assert!(matches!(got, Err(PortError::Timeout { .. })), "{got:?}");
    }
}
