//! One clock for the whole twin.
//!
//! Every duration in a scenario is real-world time ("a node boots in 90 s"). The twin runs on
//! *simulated* time that advances `speed` times faster than the wall clock, so a 20-minute
//! migration at speed 60 takes 20 real seconds. Controllers, the kubelet and the traffic probe
//! all read [`Clock::now`] and wait with [`Clock::sleep`], so they stay consistent with each
//! other whatever the speed.
//!
//! Tests that must be deterministic use [`Clock::manual`]: simulated time then moves only when
//! the test calls [`Clock::advance`], and sleepers wake exactly when their deadline is passed.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::sync::watch;
use tokio::time::Instant;

/// The twin's clock. Cheap to clone; every clone reads the same time.
#[derive(Clone)]
pub struct Clock {
    inner: Arc<Inner>,
}

enum Inner {
    Scaled {
        speed: f64,
        start_real: Instant,
        start_sim: DateTime<Utc>,
        /// The wall time at `start_real`.
        start_wall: DateTime<Utc>,
    },
    Manual {
        now: Mutex<DateTime<Utc>>,
        tick: watch::Sender<DateTime<Utc>>,
    },
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.inner {
            Inner::Scaled { speed, .. } => {
                write!(f, "Clock::Scaled(speed={speed}, now={})", self.now())
            }
            Inner::Manual { .. } => write!(f, "Clock::Manual(now={})", self.now()),
        }
    }
}

impl Clock {
    /// A clock whose simulated time runs `speed` times faster than the wall clock, starting at
    /// the current wall time. A non-positive or non-finite speed is treated as 1.
    pub fn scaled(speed: f64) -> Self {
        Self::scaled_from(speed, Utc::now())
    }

    /// A scaled clock that starts at `start` in simulated time.
    pub fn scaled_from(speed: f64, start: DateTime<Utc>) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 {
            speed
        } else {
            1.0
        };
        Self {
            inner: Arc::new(Inner::Scaled {
                speed,
                start_real: Instant::now(),
                start_sim: start,
                start_wall: Utc::now(),
            }),
        }
    }

    /// A clock that moves only when [`Clock::advance`] is called.
    pub fn manual(start: DateTime<Utc>) -> Self {
        let (tick, _) = watch::channel(start);
        Self {
            inner: Arc::new(Inner::Manual {
                now: Mutex::new(start),
                tick,
            }),
        }
    }

    /// A manual clock starting at a fixed, recognisable instant (2026-01-01T00:00:00Z).
    pub fn manual_default() -> Self {
        Self::manual(DateTime::<Utc>::from_timestamp(1_767_225_600, 0).unwrap_or_default())
    }

    /// True for a clock built with [`Clock::manual`].
    pub fn is_manual(&self) -> bool {
        matches!(&*self.inner, Inner::Manual { .. })
    }

    /// The speed factor (simulated seconds per real second); 1 for a manual clock.
    pub fn speed(&self) -> f64 {
        match &*self.inner {
            Inner::Scaled { speed, .. } => *speed,
            Inner::Manual { .. } => 1.0,
        }
    }

    /// The clock as ngm's functions read it (`NGM_CLOCK`, `SPEED@ORIGIN` with ORIGIN in Unix
    /// seconds to the millisecond): only a scaled clock whose simulated start is its wall start
    /// can be described so.
    pub fn ngm_clock(&self) -> Option<String> {
        match &*self.inner {
            Inner::Scaled {
                speed,
                start_sim,
                start_wall,
                ..
            } if (*start_sim - *start_wall).num_milliseconds().abs() < 5 => {
                let origin_ms = start_sim.timestamp_millis();
                Some(format!(
                    "{speed}@{}.{:03}",
                    origin_ms.div_euclid(1000),
                    origin_ms.rem_euclid(1000)
                ))
            }
            _ => None,
        }
    }

    /// The current simulated time.
    pub fn now(&self) -> DateTime<Utc> {
        match &*self.inner {
            Inner::Scaled {
                speed,
                start_real,
                start_sim,
                ..
            } => {
                let real = start_real.elapsed().as_secs_f64();
                *start_sim + secs_delta(real * speed)
            }
            Inner::Manual { now, .. } => *now.lock().unwrap_or_else(|e| e.into_inner()),
        }
    }

    /// Moves a manual clock forward by `by` and wakes every sleeper whose deadline has passed.
    /// On a scaled clock this does nothing: wall time cannot be skipped.
    pub fn advance(&self, by: Duration) {
        if let Inner::Manual { now, tick } = &*self.inner {
            let next = {
                let mut guard = now.lock().unwrap_or_else(|e| e.into_inner());
                *guard += secs_delta(by.as_secs_f64());
                *guard
            };
            tick.send_replace(next);
        }
    }

    /// The real duration that a simulated duration takes on this clock.
    pub fn to_real(&self, sim: Duration) -> Duration {
        Duration::from_secs_f64(sim.as_secs_f64() / self.speed())
    }

    /// Sleeps for a simulated duration.
    pub async fn sleep(&self, sim: Duration) {
        let deadline = self.now() + secs_delta(sim.as_secs_f64());
        self.sleep_until(deadline).await;
    }

    /// Sleeps until the simulated time reaches `deadline` (returns at once if it has).
    pub async fn sleep_until(&self, deadline: DateTime<Utc>) {
        match &*self.inner {
            Inner::Scaled { speed, .. } => {
                let remaining = (deadline - self.now()).to_std().unwrap_or_default();
                if !remaining.is_zero() {
                    tokio::time::sleep(Duration::from_secs_f64(remaining.as_secs_f64() / speed))
                        .await;
                }
            }
            Inner::Manual { tick, .. } => {
                let mut rx = tick.subscribe();
                // `wait_for` checks the current value first, so an advance that happened
                // between `subscribe` and here is not missed.
                let _ = rx.wait_for(|now| *now >= deadline).await;
            }
        }
    }

    /// Simulated seconds elapsed since `since` (0 if `since` is in the future).
    pub fn seconds_since(&self, since: DateTime<Utc>) -> f64 {
        ((self.now() - since).num_milliseconds() as f64 / 1000.0).max(0.0)
    }
}

/// A chrono delta from fractional seconds, saturating on absurd values.
pub fn secs_delta(secs: f64) -> TimeDelta {
    let millis = (secs * 1000.0).round();
    if !millis.is_finite() {
        return TimeDelta::zero();
    }
    TimeDelta::try_milliseconds(millis as i64).unwrap_or(TimeDelta::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_manual_sleeper_wakes_only_once_time_is_advanced_past_its_deadline() {
        let clock = Clock::manual_default();
        let deadline = clock.now() + TimeDelta::seconds(30);
        let sleeper = {
            let clock = clock.clone();
            tokio::spawn(async move { clock.sleep_until(deadline).await })
        };
        clock.advance(Duration::from_secs(29));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke before its deadline");
        clock.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .expect("sleeper did not wake after the deadline")
            .expect("sleeper panicked");
    }

    #[tokio::test]
    async fn a_scaled_clock_compresses_simulated_time_by_its_speed() {
        let clock = Clock::scaled(600.0);
        let start = clock.now();
        let real_start = Instant::now();
        clock.sleep(Duration::from_secs(120)).await;
        let real = real_start.elapsed().as_secs_f64();
        // 120 simulated seconds at speed 600 is 0.2 s of wall time.
        assert!((0.19..1.0).contains(&real), "real sleep {real}");
        let sim = clock.seconds_since(start);
        assert!(sim >= 119.9, "simulated {sim}");
    }

    #[test]
    fn a_nonsensical_speed_falls_back_to_real_time() {
        assert_eq!(Clock::scaled(0.0).speed(), 1.0);
        assert_eq!(Clock::scaled(f64::NAN).speed(), 1.0);
        assert_eq!(Clock::scaled(-3.0).speed(), 1.0);
    }

    #[test]
    fn advancing_a_manual_clock_moves_now_by_exactly_that_much() {
        let clock = Clock::manual_default();
        let t0 = clock.now();
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now() - t0, TimeDelta::milliseconds(1500));
    }
}
