//! The HPA controller (autoscaling/v2) on its sync period: clamps the target's replicas into
//! `minReplicas..maxReplicas` ([`workloads::hpa_desired`](super::workloads::hpa_desired)).
//! This is what undoes a surge above `maxReplicas` unless the HPA is frozen first.

use std::sync::Arc;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use serde_json::{Value, json};

use super::objects::set_condition;
use super::podutil::key;
use super::runner::Ctx;
use super::workloads::hpa_desired;
use crate::store::{Resource, timestamp};

pub fn reconcile(ctx: &mut Ctx<'_>) {
    let hpas: Vec<Arc<HorizontalPodAutoscaler>> = ctx.cache.hpas.values().cloned().collect();
    for h in hpas {
        sync(ctx, &h);
    }
}

fn target_resource(kind: &str) -> Option<Resource> {
    match kind {
        "Deployment" => Some(Resource::Deployment),
        "StatefulSet" => Some(Resource::StatefulSet),
        "ReplicaSet" => Some(Resource::ReplicaSet),
        _ => None,
    }
}

fn sync(ctx: &mut Ctx<'_>, h: &HorizontalPodAutoscaler) {
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
    let desired = hpa_desired(current, spec.min_replicas, spec.max_replicas);
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
