//! `meta.k8s.io/v1` Table responses, which `kubectl get` asks for (`Accept: ...;as=Table`).
//! Columns follow the API server's printers for the kinds kubectl users look at most.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::store::{ListPage, Resource, is_pod_ready, parse_timestamp};

fn col(name: &str, kind: &str, priority: u8) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({ "name": name, "type": kind, "format": format, "description": "", "priority": priority })
}

/// kubectl's short human durations ("45s", "3m12s", "5h", "12d").
pub(crate) fn age(created: Option<&str>, now: DateTime<Utc>) -> String {
    let Some(t) = created.and_then(parse_timestamp) else {
        return "<unknown>".to_string();
    };
    let s = (now - t).num_seconds().max(0);
    match s {
        0..120 => format!("{s}s"),
        120..600 => format!("{}m{}s", s / 60, s % 60),
        600..10_800 => format!("{}m", s / 60),
        10_800..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

fn str_at<'a>(o: &'a Value, p: &str) -> &'a str {
    o.pointer(p).and_then(Value::as_str).unwrap_or_default()
}

fn int_at(o: &Value, p: &str) -> i64 {
    o.pointer(p).and_then(Value::as_i64).unwrap_or_default()
}

fn or_none(s: &str) -> String {
    if s.is_empty() {
        "<none>".into()
    } else {
        s.into()
    }
}

fn int_or_string(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => "N/A".into(),
    }
}

/// A Job's STATUS column (pkg/printers/internalversion/printers.go `printJob`): its
/// terminal or interim condition, else Terminating or Running.
fn job_status(o: &Value) -> &'static str {
    let is = |kind: &str| {
        o.pointer("/status/conditions")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter()
                    .any(|c| str_at(c, "/type") == kind && str_at(c, "/status") == "True")
            })
    };
    if is("Complete") {
        "Complete"
    } else if is("Failed") {
        "Failed"
    } else if o.pointer("/metadata/deletionTimestamp").is_some() {
        "Terminating"
    } else if is("FailureTarget") {
        "FailureTarget"
    } else if is("Suspended") {
        "Suspended"
    } else if is("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else {
        "Running"
    }
}

/// COMPLETIONS: `succeeded/completions`, or `succeeded/1 of parallelism` for a work queue.
fn job_completions(o: &Value) -> String {
    let succeeded = int_at(o, "/status/succeeded");
    match o.pointer("/spec/completions").and_then(Value::as_i64) {
        Some(c) => format!("{succeeded}/{c}"),
        None => match o.pointer("/spec/parallelism").and_then(Value::as_i64) {
            Some(p) if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    }
}

/// DURATION: from `startTime` to `completionTime`, or to now while it runs.
fn job_duration(o: &Value, now: DateTime<Utc>) -> String {
    let Some(start) = o.pointer("/status/startTime").and_then(Value::as_str) else {
        return String::new();
    };
    let end = o
        .pointer("/status/completionTime")
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .unwrap_or(now);
    age(Some(start), end)
}

fn columns(r: Resource) -> Vec<Value> {
    let mut c = vec![col("Name", "string", 0)];
    match r {
        Resource::Pod => c.extend([
            col("Ready", "string", 0),
            col("Status", "string", 0),
            col("Restarts", "string", 0),
            col("Age", "string", 0),
            col("IP", "string", 1),
            col("Node", "string", 1),
        ]),
        Resource::Node => c.extend([
            col("Status", "string", 0),
            col("Roles", "string", 0),
            col("Age", "string", 0),
            col("Version", "string", 0),
        ]),
        Resource::Deployment | Resource::StatefulSet => {
            c.extend([col("Ready", "string", 0), col("Age", "string", 0)])
        }
        Resource::Job => c.extend([
            col("Status", "string", 0),
            col("Completions", "string", 0),
            col("Duration", "string", 0),
            col("Age", "string", 0),
        ]),
        Resource::PodDisruptionBudget => c.extend([
            col("Min Available", "string", 0),
            col("Max Unavailable", "string", 0),
            col("Allowed Disruptions", "integer", 0),
            col("Age", "string", 0),
        ]),
        _ => c.push(col("Age", "string", 0)),
    }
    c
}

fn cells(r: Resource, o: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let name = json!(str_at(o, "/metadata/name"));
    let age = json!(age(
        o.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str),
        now
    ));
    match r {
        Resource::Pod => {
            let total = o
                .pointer("/spec/containers")
                .and_then(Value::as_array)
                .map_or(0, Vec::len);
            let ready = if is_pod_ready(o) { total } else { 0 };
            let status = if o.pointer("/metadata/deletionTimestamp").is_some() {
                "Terminating"
            } else {
                str_at(o, "/status/phase")
            };
            let restarts: i64 = o
                .pointer("/status/containerStatuses")
                .and_then(Value::as_array)
                .map_or(0, |cs| cs.iter().map(|c| int_at(c, "/restartCount")).sum());
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(status),
                json!(restarts.to_string()),
                age,
                json!(or_none(str_at(o, "/status/podIP"))),
                json!(or_none(str_at(o, "/spec/nodeName"))),
            ]
        }
        Resource::Node => {
            let ready = o
                .pointer("/status/conditions")
                .and_then(Value::as_array)
                .and_then(|cs| cs.iter().find(|c| str_at(c, "/type") == "Ready"))
                .map(|c| str_at(c, "/status") == "True");
            let mut status = match ready {
                Some(true) => "Ready".to_string(),
                Some(false) => "NotReady".to_string(),
                None => "Unknown".to_string(),
            };
            if o.pointer("/spec/unschedulable").and_then(Value::as_bool) == Some(true) {
                status.push_str(",SchedulingDisabled");
            }
            vec![
                name,
                json!(status),
                json!("<none>"),
                age,
                json!(str_at(o, "/status/nodeInfo/kubeletVersion")),
            ]
        }
        Resource::Deployment | Resource::StatefulSet => vec![
            name,
            json!(format!(
                "{}/{}",
                int_at(o, "/status/readyReplicas"),
                int_at(o, "/spec/replicas")
            )),
            age,
        ],
        Resource::Job => vec![
            name,
            json!(job_status(o)),
            json!(job_completions(o)),
            json!(job_duration(o, now)),
            age,
        ],
        Resource::PodDisruptionBudget => vec![
            name,
            json!(int_or_string(o.pointer("/spec/minAvailable"))),
            json!(int_or_string(o.pointer("/spec/maxUnavailable"))),
            json!(int_at(o, "/status/disruptionsAllowed")),
            age,
        ],
        _ => vec![name, age],
    }
}

/// The Table for a page of objects. Each row carries the object's metadata, from which
/// kubectl takes the NAMESPACE column of `-A`.
pub(crate) fn list_table(r: Resource, page: &ListPage, now: DateTime<Utc>) -> Value {
    let rows: Vec<Value> = page
        .items
        .iter()
        .map(|o| {
            json!({
                "cells": cells(r, o, now),
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o.get("metadata").cloned().unwrap_or(json!({})),
                },
            })
        })
        .collect();
    let mut meta = json!({ "resourceVersion": page.resource_version.to_string() });
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": columns(r),
        "rows": rows,
    })
}
