//! The HPA controller (autoscaling/v2) on its sync period, as kubernetes
//! `pkg/controller/podautoscaler/horizontal.go` reconciles:
//! - a target outside `minReplicas..maxReplicas` is clamped into it first
//!   ([`workloads::hpa_desired`](super::workloads::hpa_desired)), with no metric read: this is
//!   what undoes a surge above `maxReplicas` unless the HPA is frozen first;
//! - otherwise an `Object` metric with an `AverageValue` target (the twin serves
//!   [`LOAD_METRIC`], the Service's request rate) gives the recommendation
//!   `ceil(value / target)`, unless the usage ratio is within the 0.1 tolerance
//!   (`replica_calculator.go`, `GetObjectPerPodMetricReplicas`);
//! - the recommendation is stabilized with the default behavior (`SetDefaults_HorizontalPodAutoscalerBehavior`):
//!   scale-down takes the highest recommendation of the last 300 s, scale-up the lowest of
//!   none (window 0); only the metric's own recommendations are remembered, never a value the
//!   min clamp forced (`stabilizeRecommendationWithBehaviors`);
//! - and rate-limited: up by at most max(4 pods, 100 %) per 15 s, down by at most 100 %
//!   (`convertDesiredReplicasWithBehaviorRate`), then bounded by min and max.
//!
//! An HPA with any other metric has no usage in the twin: it only clamps.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::{Value, json};

use super::objects::set_condition;
use super::podutil::key;
use super::runner::Ctx;
use super::workloads::hpa_desired;
use crate::store::{Resource, timestamp};

/// The custom metric the twin serves for a Service: requests per second it receives.
pub const LOAD_METRIC: &str = "requests_per_second";
/// `--horizontal-pod-autoscaler-tolerance`.
const TOLERANCE: f64 = 0.1;
/// The default scale-down stabilization window.
const DOWN_WINDOW_SECONDS: i64 = 300;

/// A metric recommendation and when it was made.
type Recommendation = (DateTime<Utc>, i32);

/// The controller's memory: each HPA's recent metric recommendations (upstream keeps them in
/// the controller, not in the object).
#[derive(Debug, Default)]
pub struct HpaMemory {
    recommendations: HashMap<(String, String), Vec<Recommendation>>,
}

pub fn reconcile(ctx: &mut Ctx<'_>, memory: &mut HpaMemory) {
    let hpas: Vec<Arc<HorizontalPodAutoscaler>> = ctx.cache.hpas.values().cloned().collect();
    for h in hpas {
        sync(ctx, &h, memory);
    }
}

/// The recommendation of the HPA's load metric, from `statusReplicas` pods: `None` when it has
/// none the twin serves.
fn load_recommendation(
    ctx: &Ctx<'_>,
    h: &HorizontalPodAutoscaler,
    status_replicas: i32,
) -> Option<i32> {
    let ns = h.metadata.namespace.as_deref().unwrap_or("default");
    h.spec.as_ref()?.metrics.iter().flatten().find_map(|m| {
        let o = m.object.as_ref()?;
        if m.type_ != "Object"
            || o.metric.name != LOAD_METRIC
            || o.described_object.kind != "Service"
        {
            return None;
        }
        let target = o.target.average_value.as_ref()?;
        let per_pod = super::quantity::cpu_millis(&target.0) as f64 / 1000.0;
        let value = ctx
            .store
            .load()
            .rate(ns, &o.described_object.name, ctx.now)?;
        if per_pod <= 0.0 {
            return None;
        }
        let ratio = value / (per_pod * f64::from(status_replicas.max(1)));
        Some(if (1.0 - ratio).abs() > TOLERANCE {
            (value / per_pod).ceil() as i32
        } else {
            status_replicas
        })
    })
}

/// Stabilizes and rate-limits a metric recommendation with the default behavior, remembering
/// it, then bounds it by min and max.
fn normalize(
    memory: &mut HpaMemory,
    key: (String, String),
    now: DateTime<Utc>,
    current: i32,
    recommended: i32,
    (min, max): (i32, i32),
) -> i32 {
    let recs = memory.recommendations.entry(key).or_default();
    let cutoff = now - chrono::Duration::seconds(DOWN_WINDOW_SECONDS);
    recs.retain(|(t, _)| *t > cutoff);
    // Scale-up's window is 0: only this recommendation counts for it.
    let up = recommended;
    let down = recs.iter().map(|(_, r)| *r).fold(recommended, i32::max);
    recs.push((now, recommended));
    let mut stabilized = current;
    if stabilized < up {
        stabilized = up;
    }
    if stabilized > down {
        stabilized = down;
    }
    let limited = if stabilized > current {
        stabilized.min((current + 4).max(current * 2))
    } else {
        stabilized
    };
    limited.clamp(min, max.max(min))
}

fn target_resource(kind: &str) -> Option<Resource> {
    match kind {
        "Deployment" => Some(Resource::Deployment),
        "StatefulSet" => Some(Resource::StatefulSet),
        "ReplicaSet" => Some(Resource::ReplicaSet),
        _ => None,
    }
}

fn sync(ctx: &mut Ctx<'_>, h: &HorizontalPodAutoscaler, memory: &mut HpaMemory) {
    let (ns, name) = key(&h.metadata);
    let Some(spec) = h.spec.as_ref() else {
        return;
    };
    let target = &spec.scale_target_ref;
    let Some(resource) = target_resource(&target.kind) else {
        return;
    };
    let Some(obj) = ctx.store.try_get(resource, &ns, &target.name) else {
        let now = ctx.now;
        let _ = ctx
            .store
            .mutate(Resource::HorizontalPodAutoscaler, &ns, &name, |v| {
                set_condition(
                    v,
                    "AbleToScale",
                    "False",
                    Some("FailedGetScale"),
                    Some("the HPA controller was unable to get the target's current scale"),
                    now,
                );
                Ok(())
            });
        return;
    };
    let current = obj
        .pointer("/spec/replicas")
        .and_then(Value::as_i64)
        .unwrap_or(1) as i32;
    let status_replicas = obj
        .pointer("/status/replicas")
        .and_then(Value::as_i64)
        .map_or(current, |r| r as i32);
    let clamped = hpa_desired(current, spec.min_replicas, spec.max_replicas);
    let desired = match clamped {
        Some(d) if d == current => match load_recommendation(ctx, h, status_replicas) {
            Some(r) => Some(normalize(
                memory,
                (ns.clone(), name.clone()),
                ctx.now,
                current,
                r,
                (spec.min_replicas.unwrap_or(1), spec.max_replicas),
            )),
            None => clamped,
        },
        other => other,
    };
    let now = ctx.now;
    if let Some(d) = desired
        && d != current
    {
        let _ = ctx.store.mutate(resource, &ns, &target.name, |v| {
            v["spec"]["replicas"] = json!(d);
            Ok(())
        });
    }
    let limited = match desired {
        Some(d) if d == spec.max_replicas && current > spec.max_replicas => Some((
            "TooManyReplicas",
            "the desired replica count is more than the maximum replica count",
        )),
        Some(d) if d == spec.min_replicas.unwrap_or(1) && current < d => Some((
            "TooFewReplicas",
            "the desired replica count is less than the minimum replica count",
        )),
        _ => None,
    };
    let _ = ctx.store.mutate(Resource::HorizontalPodAutoscaler, &ns, &name, |v| {
        let scaled = desired.is_some_and(|d| d != current);
        let last_scale = if scaled { Some(json!(timestamp(now))) } else { v.pointer("/status/lastScaleTime").cloned() };
        let conditions = v.pointer("/status/conditions").cloned().unwrap_or(json!([]));
        v["status"] = json!({
            "currentReplicas": current,
            "desiredReplicas": desired.unwrap_or(current),
            "observedGeneration": v.pointer("/metadata/generation").cloned().unwrap_or(json!(1)),
            "conditions": conditions,
        });
        if let Some(t) = last_scale {
            v["status"]["lastScaleTime"] = t;
        }
        match desired {
            None => set_condition(v, "ScalingActive", "False", Some("ScalingDisabled"), Some("scaling is disabled since the replica count of the target is zero"), now),
            Some(_) => set_condition(v, "ScalingActive", "True", Some("ValidMetricFound"), Some("the HPA was able to successfully calculate a replica count"), now),
        }
        set_condition(v, "AbleToScale", "True", Some("SucceededRescale"), Some("the HPA controller was able to update the target scale"), now);
        match limited {
            Some((reason, message)) => set_condition(v, "ScalingLimited", "True", Some(reason), Some(message), now),
            None => set_condition(v, "ScalingLimited", "False", Some("DesiredWithinRange"), Some("the desired count is within the acceptable range"), now),
        }
        Ok(())
    });
}
