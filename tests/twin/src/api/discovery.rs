//! Discovery: `/version`, `/api`, `/apis` and the resource lists of each group version.
//!
//! Only the legacy (unaggregated) documents are served. kubectl asks for aggregated
//! discovery (`application/json;g=apidiscovery.k8s.io;v=v2`) first and falls back to these
//! when the response's content type is plain JSON, as client-go does against older servers.
//! `/openapi/v2` and `/openapi/v3` answer 404, which kubectl treats as "no schema".

use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::{Value, json};

use super::{Ctx, value_response};
use crate::store::{ApiError, Resource};

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

fn categories(r: Resource) -> Vec<&'static str> {
    match r {
        Resource::Pod
        | Resource::Service
        | Resource::Deployment
        | Resource::StatefulSet
        | Resource::ReplicaSet
        | Resource::DaemonSet
        | Resource::Job
        | Resource::HorizontalPodAutoscaler => vec!["all"],
        _ => vec![],
    }
}

fn resource_list(group: &str, version: &str) -> Option<Value> {
    let mut resources = Vec::new();
    for r in Resource::ALL
        .into_iter()
        .filter(|r| r.group() == group && r.version() == version)
    {
        let mut main = json!({
            "name": r.plural(),
            "singularName": r.singular(),
            "namespaced": r.namespaced(),
            "kind": r.kind(),
            "verbs": VERBS,
        });
        if !r.short_names().is_empty() {
            main["shortNames"] = json!(r.short_names());
        }
        if !categories(r).is_empty() {
            main["categories"] = json!(categories(r));
        }
        resources.push(main);
        if r.has_status() {
            resources.push(json!({
                "name": format!("{}/status", r.plural()),
                "singularName": "",
                "namespaced": r.namespaced(),
                "kind": r.kind(),
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r.has_scale() {
            resources.push(json!({
                "name": format!("{}/scale", r.plural()),
                "singularName": "",
                "namespaced": true,
                "group": "autoscaling",
                "version": "v1",
                "kind": "Scale",
                "verbs": ["get", "patch", "update"],
            }));
        }
        if r == Resource::Pod {
            // kubectl drain looks for exactly this entry to decide it may use evictions.
            resources.push(json!({
                "name": "pods/eviction",
                "singularName": "",
                "namespaced": true,
                "group": "policy",
                "version": "v1",
                "kind": "Eviction",
                "verbs": ["create"],
            }));
        }
    }
    if resources.is_empty() {
        return None;
    }
    let gv = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    Some(json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": gv,
        "resources": resources,
    }))
}

fn group_list() -> Value {
    let groups: Vec<Value> = Resource::group_versions()
        .into_iter()
        .filter(|(g, _)| !g.is_empty())
        .map(|(g, v)| {
            let gv = json!({ "groupVersion": format!("{g}/{v}"), "version": v });
            json!({ "name": g, "versions": [gv.clone()], "preferredVersion": gv })
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}

fn version(ctx: &Ctx) -> Value {
    let (major, minor) = ctx
        .options
        .kubernetes_version
        .split_once('.')
        .unwrap_or(("1", "33"));
    json!({
        "major": major,
        "minor": minor,
        "gitVersion": format!("v{major}.{minor}.0-twin"),
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.24.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Serves a discovery path, or `None` when `path` is not one.
pub(super) fn serve(ctx: &Ctx, method: &Method, path: &str) -> Option<Result<Response, ApiError>> {
    let path = path.trim_end_matches('/');
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let body = match segs.as_slice() {
        ["version"] => Some(version(ctx)),
        ["api"] => Some(json!({
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }],
        })),
        ["apis"] => Some(group_list()),
        ["api", v] => Some(resource_list("", v).unwrap_or(Value::Null)),
        ["apis", g] => {
            let gv = Resource::group_versions()
                .into_iter()
                .find(|(group, _)| group == g)?;
            let v = json!({ "groupVersion": format!("{}/{}", gv.0, gv.1), "version": gv.1 });
            Some(json!({
                "kind": "APIGroup", "apiVersion": "v1", "name": g,
                "versions": [v.clone()], "preferredVersion": v,
            }))
        }
        ["apis", g, v] => Some(resource_list(g, v).unwrap_or(Value::Null)),
        ["healthz"] | ["livez"] | ["readyz"] => {
            return Some(Ok(super::json_response(StatusCode::OK, b"ok".to_vec())));
        }
        _ => None,
    }?;
    if body.is_null() {
        return Some(Err(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )));
    }
    if method != Method::GET {
        return Some(Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {method}"
        ))));
    }
    Some(Ok(value_response(StatusCode::OK, &body)))
}
