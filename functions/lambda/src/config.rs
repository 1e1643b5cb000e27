//! Deployment settings, read from the environment once in `main`.
//!
//! Run parameters live in the request; only what differs between deployments is here. The AWS
//! endpoints (`AWS_ENDPOINT_URL`, `AWS_ENDPOINT_URL_<SERVICE>`) and credentials are read by
//! aws-config itself, so they are not repeated here.

use ngm_adapters::kube::ClusterEndpoint;
use ngm_core::model::Timestamp;

/// Replaces the API server endpoint DescribeCluster returns (the cluster twin's URL).
pub const CLUSTER_ENDPOINT_VAR: &str = "NGM_CLUSTER_ENDPOINT";
/// Replaces the cluster's CA bundle (base64 PEM; empty for a plain-HTTP twin).
pub const CLUSTER_CA_VAR: &str = "NGM_CLUSTER_CA";
/// `SPEED@ORIGIN`: time runs `SPEED` times faster than the wall clock from the Unix second
/// `ORIGIN` on, as the cluster twin's scaled clock does; absent means wall time.
pub const CLOCK_VAR: &str = "NGM_CLOCK";
/// The DynamoDB table holding the per-cluster locks (required).
pub const LOCK_TABLE_VAR: &str = "NGM_LOCK_TABLE";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{var} is invalid: {reason}")]
    Invalid { var: &'static str, reason: String },
    #[error("{var} is not set: {why}")]
    Missing {
        var: &'static str,
        why: &'static str,
    },
}

/// Where `now` comes from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Clock {
    Wall,
    /// Simulated seconds per wall second, counted from `origin_ms` (a Unix time in
    /// milliseconds at which simulated and wall time agree). Milliseconds, because at speed 60
    /// a whole-second origin would put the functions up to a simulated minute off the twin.
    Scaled {
        speed: f64,
        origin_ms: i64,
    },
}

impl Clock {
    /// The step's `now` for a wall-clock reading of `wall` Unix seconds.
    pub fn at(self, wall: i64) -> Timestamp {
        self.at_millis(wall.saturating_mul(1000))
    }

    /// The step's `now` (whole simulated seconds) for a wall-clock reading in milliseconds.
    pub fn at_millis(self, wall_ms: i64) -> Timestamp {
        match self {
            Clock::Wall => Timestamp(wall_ms.div_euclid(1000)),
            Clock::Scaled { speed, origin_ms } => {
                #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation)]
                let sim_ms = origin_ms as f64 + (wall_ms.saturating_sub(origin_ms) as f64) * speed;
                #[allow(clippy::cast_possible_truncation)]
                Timestamp((sim_ms / 1000.0).floor() as i64)
            }
        }
    }

    /// `now` from the system clock.
    pub fn now(self) -> Timestamp {
        self.at_millis(chrono::Utc::now().timestamp_millis())
    }

    fn parse(s: &str) -> Result<Clock, ConfigError> {
        let bad = |reason: &str| ConfigError::Invalid {
            var: CLOCK_VAR,
            reason: format!("{reason} (want SPEED@ORIGIN, e.g. 60@1767225600.250)"),
        };
        let (speed, origin) = s.split_once('@').ok_or_else(|| bad("no '@'"))?;
        let speed: f64 = speed
            .trim()
            .parse()
            .map_err(|_| bad("speed is not a number"))?;
        if !(speed.is_finite() && speed > 0.0) {
            return Err(bad("speed must be a positive number"));
        }
        let origin: f64 = origin
            .trim()
            .parse()
            .map_err(|_| bad("origin is not a number"))?;
        if !origin.is_finite() {
            return Err(bad("origin is not a finite number"));
        }
        #[allow(clippy::cast_possible_truncation)]
        let origin_ms = (origin * 1000.0).round() as i64;
        Ok(Clock::Scaled { speed, origin_ms })
    }
}

/// What a function needs to know about its deployment.
#[derive(Debug, Clone)]
pub struct Config {
    /// Overrides of the API server endpoint and CA (the twin); empty in a real deployment.
    pub cluster_endpoint: ClusterEndpoint,
    /// Whether this binary wires the EC2 port (the `ec2` feature).
    pub ec2: bool,
    pub clock: Clock,
    /// The lock table's name.
    pub lock_table: String,
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_vars(|k| std::env::var(k).ok())
    }

    /// Reads settings through `var` (tests pass a map).
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let url = var(CLUSTER_ENDPOINT_VAR).filter(|s| !s.is_empty());
        if let Some(u) = &url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                var: CLUSTER_ENDPOINT_VAR,
                reason: format!("{u} is not an http(s) URL"),
            });
        }
        let clock = match var(CLOCK_VAR).filter(|s| !s.is_empty()) {
            Some(s) => Clock::parse(&s)?,
            None => Clock::Wall,
        };
        let lock_table = var(LOCK_TABLE_VAR).filter(|s| !s.trim().is_empty()).ok_or(
            ConfigError::Missing {
                var: LOCK_TABLE_VAR,
                why: "it names the DynamoDB table of per-cluster locks (the template's LockTable)",
            },
        )?;
        Ok(Config {
            lock_table,
            cluster_endpoint: ClusterEndpoint {
                url,
                ca_data: var(CLUSTER_CA_VAR),
            },
            ec2: cfg!(feature = "ec2"),
            clock,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: BTreeMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .chain([(LOCK_TABLE_VAR.to_string(), "locks".to_string())])
            .collect();
        Config::from_vars(|k| map.get(k).cloned())
    }

    #[test]
    fn a_missing_or_empty_lock_table_is_refused_by_name() {
        for env in [vec![], vec![(LOCK_TABLE_VAR, " ")]] {
            let map: BTreeMap<&str, &str> = env.into_iter().collect();
            let e = Config::from_vars(|k| map.get(k).map(|v| v.to_string())).err();
            assert!(
                matches!(e, Some(ConfigError::Missing { var, .. }) if var == LOCK_TABLE_VAR),
                "{e:?}"
            );
        }
    }

    #[test]
    fn an_empty_environment_means_the_real_cluster_and_wall_time() {
        let c = config(&[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.cluster_endpoint.url, None);
        assert_eq!(c.cluster_endpoint.ca_data, None);
        assert_eq!(c.clock, Clock::Wall);
        assert_eq!(c.lock_table, "locks");
    }

    #[test]
    fn the_twin_overrides_endpoint_and_ca() {
        let c = config(&[
            (CLUSTER_ENDPOINT_VAR, "http://127.0.0.1:6443"),
            (CLUSTER_CA_VAR, ""),
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            c.cluster_endpoint.url.as_deref(),
            Some("http://127.0.0.1:6443")
        );
        assert_eq!(c.cluster_endpoint.ca_data.as_deref(), Some(""));
    }

    #[test]
    fn an_endpoint_that_is_not_a_url_is_refused() {
        let e = config(&[(CLUSTER_ENDPOINT_VAR, "127.0.0.1:6443")]).err();
        assert!(
            matches!(e, Some(ConfigError::Invalid { var, .. }) if var == CLUSTER_ENDPOINT_VAR),
            "{e:?}"
        );
    }

    #[test]
    fn a_scaled_clock_runs_speed_times_faster_from_its_origin() {
        let c = config(&[(CLOCK_VAR, "60@1000")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.clock.at(1000), Timestamp(1000));
        assert_eq!(c.clock.at(1010), Timestamp(1600));
        assert_eq!(Clock::Wall.at(1010), Timestamp(1010));
    }

    #[test]
    fn a_fractional_origin_keeps_the_functions_on_the_twins_second() {
        let c = config(&[(CLOCK_VAR, "60@1000.5")]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.clock.at_millis(1_000_500), Timestamp(1000));
        assert_eq!(c.clock.at_millis(1_010_500), Timestamp(1600));
    }

    #[test]
    fn a_malformed_clock_is_refused() {
        for bad in ["60", "x@1", "0@1", "-2@1", "60@y", "inf@1"] {
            assert!(config(&[(CLOCK_VAR, bad)]).is_err(), "{bad}");
        }
    }
}
