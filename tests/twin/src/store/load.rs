//! The request rate each Service receives, as the scenario's traffic sends it: the probe sends
//! at this rate, and the HPA controller reads it as the Service's `requests_per_second` custom
//! metric (what a metrics adapter serves from the load balancer's or the mesh's counters). A
//! stream's `ramp` changes its rate at set times after the migration starts.

use std::collections::BTreeMap;
use std::sync::Mutex;

use chrono::{DateTime, Utc};

/// A rate that changes at set times: `(seconds after the migration starts, requests per
/// second)`, in order, after the base rate.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RateSchedule {
    pub base: f64,
    pub steps: Vec<(f64, f64)>,
}

impl RateSchedule {
    pub fn new(base: f64, mut steps: Vec<(f64, f64)>) -> Self {
        steps.sort_by(|a, b| a.0.total_cmp(&b.0));
        Self { base, steps }
    }

    /// The rate `elapsed` seconds after the migration started (`None`: not started yet).
    pub fn at(&self, elapsed: Option<f64>) -> f64 {
        let Some(e) = elapsed else {
            return self.base;
        };
        self.steps
            .iter()
            .rev()
            .find(|(after, _)| *after <= e)
            .map_or(self.base, |(_, rate)| *rate)
    }
}

/// The load on every Service that traffic reaches, and when the migration started.
#[derive(Debug, Default)]
pub struct Load {
    inner: Mutex<LoadInner>,
    /// The most a periodic controller (the HPA's 15 s sync) ran behind its period, in
    /// simulated milliseconds: a twin that cannot keep up with its traffic at its speed
    /// stops being a faithful cluster, and the run says so.
    lag_ms: std::sync::atomic::AtomicU64,
}

#[derive(Debug, Default)]
struct LoadInner {
    /// Per Service (namespace, name), every stream that reaches it.
    services: BTreeMap<(String, String), Vec<RateSchedule>>,
    started: Option<DateTime<Utc>>,
}

impl Load {
    fn lock(&self) -> std::sync::MutexGuard<'_, LoadInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A stream that reaches the Service (a chained stream reaches two).
    pub fn add(&self, namespace: &str, service: &str, rate: RateSchedule) {
        self.lock()
            .services
            .entry((namespace.to_string(), service.to_string()))
            .or_default()
            .push(rate);
    }

    /// A periodic controller ran `late` after its due time.
    pub fn record_lag(&self, late: chrono::TimeDelta) {
        let ms = u64::try_from(late.num_milliseconds()).unwrap_or(0);
        self.lag_ms
            .fetch_max(ms, std::sync::atomic::Ordering::Relaxed);
    }

    /// The most a periodic controller ran behind, in simulated seconds.
    pub fn max_lag_seconds(&self) -> f64 {
        self.lag_ms.load(std::sync::atomic::Ordering::Relaxed) as f64 / 1000.0
    }

    /// Marks the start of the migration, from which ramps count.
    pub fn start(&self, now: DateTime<Utc>) {
        self.lock().started.get_or_insert(now);
    }

    /// Seconds since the migration started, at `now`.
    pub fn elapsed(&self, now: DateTime<Utc>) -> Option<f64> {
        self.lock()
            .started
            .map(|s| (now - s).num_milliseconds() as f64 / 1000.0)
    }

    /// Requests per second the Service receives at `now`; `None` when no traffic reaches it.
    pub fn rate(&self, namespace: &str, service: &str, now: DateTime<Utc>) -> Option<f64> {
        let elapsed = self.elapsed(now);
        let inner = self.lock();
        let streams = inner
            .services
            .get(&(namespace.to_string(), service.to_string()))?;
        Some(streams.iter().map(|s| s.at(elapsed)).sum())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ramp_changes_the_rate_at_its_times_after_the_start() {
        let s = RateSchedule::new(10.0, vec![(300.0, 40.0), (100.0, 20.0)]);
        assert_eq!(s.at(None), 10.0);
        assert_eq!(s.at(Some(50.0)), 10.0);
        assert_eq!(s.at(Some(100.0)), 20.0);
        assert_eq!(s.at(Some(299.0)), 20.0);
        assert_eq!(s.at(Some(1000.0)), 40.0);
    }

    #[test]
    fn a_service_receives_the_sum_of_its_streams() {
        let load = Load::default();
        load.add("shop", "web", RateSchedule::new(10.0, vec![(60.0, 30.0)]));
        load.add("shop", "web", RateSchedule::new(5.0, vec![]));
        let t0 = DateTime::<Utc>::from_timestamp(1_000, 0).unwrap();
        assert_eq!(load.rate("shop", "web", t0), Some(15.0));
        load.start(t0);
        let later = t0 + chrono::Duration::seconds(61);
        assert_eq!(load.rate("shop", "web", later), Some(35.0));
        assert_eq!(load.rate("shop", "other", later), None);
    }
}
