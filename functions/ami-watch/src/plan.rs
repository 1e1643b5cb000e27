//! Pure planning for the watcher: which SSM parameter holds a group's recommended release, the
//! maintenance-window tag, and whether a group should migrate now.

use chrono::{DateTime, Datelike, Timelike, Weekday};
use ngm_core::model::{ClusterInfo, NodeGroupSpec, Timestamp};

/// Opt-in tag on a managed node group; only the value `true` opts in.
pub use ngm_core::marks::AUTO_UPDATE_TAG;
/// Maintenance-window tag on a node group, e.g. `Sun 02:00-06:00 UTC`. Absent: any time.
pub use ngm_core::marks::WINDOW_TAG;

/// The SSM public parameter holding the recommended release for an EKS AMI type, or why the
/// type has none (AL2 is no longer published since November 2025; custom AMIs and Windows
/// are out of scope).
pub fn release_parameter(ami_type: &str, k8s: &str) -> Result<String, String> {
    let al2023 = |arch: &str, variant: &str| {
        format!(
            "/aws/service/eks/optimized-ami/{k8s}/amazon-linux-2023/{arch}/{variant}/recommended/release_version"
        )
    };
    let bottlerocket = |flavour: &str, arch: &str| {
        format!("/aws/service/bottlerocket/aws-k8s-{k8s}{flavour}/{arch}/latest/image_version")
    };
    Ok(match ami_type {
        "AL2023_x86_64_STANDARD" => al2023("x86_64", "standard"),
        "AL2023_ARM_64_STANDARD" => al2023("arm64", "standard"),
        "AL2023_x86_64_NVIDIA" => al2023("x86_64", "nvidia"),
        "AL2023_ARM_64_NVIDIA" => al2023("arm64", "nvidia"),
        "AL2023_x86_64_NEURON" => al2023("x86_64", "neuron"),
        "BOTTLEROCKET_x86_64" => bottlerocket("", "x86_64"),
        "BOTTLEROCKET_ARM_64" => bottlerocket("", "arm64"),
        "BOTTLEROCKET_x86_64_NVIDIA" => bottlerocket("-nvidia", "x86_64"),
        "BOTTLEROCKET_ARM_64_NVIDIA" => bottlerocket("-nvidia", "arm64"),
        other => {
            return Err(format!(
                "AMI type {other} has no recommended-release parameter"
            ));
        }
    })
}

/// A weekly window: `days` (empty means every day) and minutes since midnight UTC. An end at
/// or before the start runs past midnight into the next day.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub days: Vec<Weekday>,
    pub start: u32,
    pub end: u32,
}

fn minutes(hhmm: &str) -> Result<u32, String> {
    let (h, m) = hhmm
        .split_once(':')
        .ok_or_else(|| format!("{hhmm:?} is not HH:MM"))?;
    let (h, m): (u32, u32) = match (h.parse(), m.parse()) {
        (Ok(h), Ok(m)) if h < 24 && m < 60 && hhmm.len() == 5 => (h, m),
        _ => return Err(format!("{hhmm:?} is not a time of day HH:MM")),
    };
    Ok(h * 60 + m)
}

/// Parses `<Days> HH:MM-HH:MM UTC`, where `<Days>` is `Daily` or a comma list of `Mon`..`Sun`.
pub fn parse_window(s: &str) -> Result<Window, String> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [days, range, zone] = parts.as_slice() else {
        return Err(format!(
            "{s:?} is not \"<Daily|Mon,Tue,..> HH:MM-HH:MM UTC\""
        ));
    };
    if *zone != "UTC" {
        return Err(format!("time zone {zone:?} is not UTC"));
    }
    let days = if days.eq_ignore_ascii_case("daily") {
        Vec::new()
    } else {
        days.split(',')
            .map(|d| {
                d.parse::<Weekday>()
                    .ok()
                    .filter(|_| d.len() == 3)
                    .ok_or_else(|| format!("{d:?} is not a day (Mon..Sun)"))
            })
            .collect::<Result<_, _>>()?
    };
    let (start, end) = range
        .split_once('-')
        .ok_or_else(|| format!("{range:?} is not HH:MM-HH:MM"))?;
    let (start, end) = (minutes(start)?, minutes(end)?);
    if start == end {
        return Err(format!("{range:?} is an empty window"));
    }
    Ok(Window { days, start, end })
}

impl Window {
    /// Whether `now` falls inside the window.
    pub fn contains(&self, now: Timestamp) -> bool {
        let Some(t) = DateTime::from_timestamp(now.0, 0) else {
            return false;
        };
        let minute = t.hour() * 60 + t.minute();
        let day_ok = |d: Weekday| self.days.is_empty() || self.days.contains(&d);
        if self.start < self.end {
            day_ok(t.weekday()) && (self.start..self.end).contains(&minute)
        } else {
            // Past midnight: the part after midnight belongs to the previous day's window.
            (minute >= self.start && day_ok(t.weekday()))
                || (minute < self.end && day_ok(t.weekday().pred()))
        }
    }
}

/// What the watcher does about one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupDecision {
    /// Not opted in; not worth a log line.
    NotOptedIn,
    Skip {
        reason: String,
    },
    /// Behind: migrate to `release`.
    Migrate {
        release: String,
    },
}

/// The group's SSM parameter, or why it has none.
pub fn parameter_for(cluster: &ClusterInfo, group: &NodeGroupSpec) -> Result<String, String> {
    let ami = group
        .ami_type
        .as_deref()
        .ok_or("the group has no AMI type (a custom AMI)")?;
    let k8s = group.version.as_deref().unwrap_or(&cluster.version);
    release_parameter(ami, k8s)
}

/// Plans one group from its tags, its release, the recommended release and `now`.
pub fn plan_group(
    cluster: &ClusterInfo,
    group: &NodeGroupSpec,
    recommended: Option<&str>,
    now: Timestamp,
) -> GroupDecision {
    let skip = |reason: String| GroupDecision::Skip { reason };
    if group.tags.get(AUTO_UPDATE_TAG).map(String::as_str) != Some("true") {
        return GroupDecision::NotOptedIn;
    }
    if let Err(reason) = parameter_for(cluster, group) {
        return skip(reason);
    }
    let Some(recommended) = recommended else {
        return skip("the recommended-release parameter does not exist".into());
    };
    if group.release_version.as_deref() == Some(recommended) {
        return skip(format!("already on the recommended release {recommended}"));
    }
    if let Some(w) = group.tags.get(WINDOW_TAG) {
        match parse_window(w) {
            Err(e) => return skip(format!("tag {WINDOW_TAG} is invalid: {e}")),
            Ok(window) if !window.contains(now) => {
                return skip(format!("outside the maintenance window {w}"));
            }
            Ok(_) => {}
        }
    }
    GroupDecision::Migrate {
        release: recommended.to_owned(),
    }
}
