//! Handlers for object paths: get, list, create, replace, patch, delete, and the `status`,
//! `scale` and `eviction` subresources.

use std::collections::HashMap;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use super::scale::{scale_of, set_scale};
use super::{Target, json_response, table, value_response};
use crate::store::{
    ApiError, DeleteOptions, DeleteOutcome, ListParams, Part, PatchKind, Resource, Store,
    apply_patch,
};

pub(super) struct Req<'a> {
    pub store: &'a Store,
    pub target: &'a Target,
    pub query: &'a HashMap<String, String>,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
    /// Who asked (`kubernetes_caller`), to count the objects each caller reads.
    pub caller: &'a str,
}

impl Req<'_> {
    fn name(&self) -> Result<&str, ApiError> {
        self.target
            .name
            .as_deref()
            .ok_or_else(|| ApiError::method_not_allowed("a name is required for this request"))
    }

    fn json_body(&self) -> Result<Value, ApiError> {
        if self.body.is_empty() {
            return Err(ApiError::bad_request("the request body is empty"));
        }
        serde_json::from_slice(self.body).map_err(|e| {
            ApiError::bad_request(format!(
                "the body of the request was in an unknown format: {e}"
            ))
        })
    }

    fn wants_table(&self) -> bool {
        self.headers
            .get(header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("as=Table"))
    }

    fn refresh_pdbs(&self) {
        if self.target.resource == Resource::PodDisruptionBudget {
            self.store.refresh_pdbs(self.target.namespace.as_deref());
        }
    }
}

fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed("the server does not allow this method on the requested resource")
}

/// A list body, serialised item by item from the shared objects (no deep copies).
fn list_body(resource: Resource, page: &crate::store::ListPage) -> Vec<u8> {
    let mut meta = json!({ "resourceVersion": page.resource_version.to_string() });
    if let Some(c) = &page.continue_token {
        meta["continue"] = json!(c);
    }
    if let Some(n) = page.remaining_item_count {
        meta["remainingItemCount"] = json!(n);
    }
    let mut out = Vec::with_capacity(64 + page.items.len() * 1024);
    out.extend_from_slice(
        format!(
            "{{\"kind\":\"{}List\",\"apiVersion\":\"{}\",\"metadata\":{},\"items\":[",
            resource.kind(),
            resource.api_version(),
            meta
        )
        .as_bytes(),
    );
    for (i, item) in page.items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing a serde_json::Value to a Vec cannot fail.
        let _ = serde_json::to_writer(&mut out, &**item);
    }
    out.extend_from_slice(b"]}");
    out
}

pub(super) fn list(req: &Req) -> Result<Response, ApiError> {
    req.refresh_pdbs();
    let params = ListParams {
        namespace: req.target.namespace.clone(),
        label_selector: req.query.get("labelSelector").cloned(),
        field_selector: req.query.get("fieldSelector").cloned(),
        limit: req.query.get("limit").and_then(|l| l.parse().ok()),
        continue_token: req.query.get("continue").cloned(),
    };
    let page = req.store.list(req.target.resource, &params)?;
    req.store
        .requests()
        .record_read(req.caller, page.items.len() as u64);
    if req.wants_table() {
        let t = table::list_table(req.target.resource, &page, req.store.clock().now());
        return Ok(value_response(StatusCode::OK, &t));
    }
    Ok(json_response(
        StatusCode::OK,
        list_body(req.target.resource, &page),
    ))
}

pub(super) fn get(req: &Req) -> Result<Response, ApiError> {
    req.refresh_pdbs();
    let t = req.target;
    let obj = req.store.get(t.resource, t.ns(), req.name()?)?;
    req.store.requests().record_read(req.caller, 1);
    match t.sub.as_deref() {
        None | Some("status") => {
            if req.wants_table() && t.sub.is_none() {
                let page = crate::store::ListPage {
                    items: vec![obj],
                    resource_version: req.store.resource_version(),
                    continue_token: None,
                    remaining_item_count: None,
                };
                let table = table::list_table(t.resource, &page, req.store.clock().now());
                return Ok(value_response(StatusCode::OK, &table));
            }
            Ok(value_response(StatusCode::OK, &obj))
        }
        Some("scale") => Ok(value_response(StatusCode::OK, &scale_of(&obj))),
        _ => Err(method_not_allowed()),
    }
}

pub(super) fn create(req: &Req) -> Result<Response, ApiError> {
    let t = req.target;
    match t.sub.as_deref() {
        None if t.name.is_none() => {
            let obj = req.store.create(t.resource, t.ns(), req.json_body()?)?;
            Ok(value_response(StatusCode::CREATED, &obj))
        }
        Some("eviction") => {
            let body = req.json_body()?;
            req.store.evict(t.ns(), req.name()?, &body)?;
            let status = json!({
                "kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Success", "code": 201,
            });
            Ok(value_response(StatusCode::CREATED, &status))
        }
        _ => Err(method_not_allowed()),
    }
}

pub(super) fn replace(req: &Req) -> Result<Response, ApiError> {
    let t = req.target;
    let name = req.name()?;
    let body = req.json_body()?;
    match t.sub.as_deref() {
        None => {
            let part = if t.resource.has_status() {
                Part::Main
            } else {
                Part::Whole
            };
            let obj = req
                .store
                .update_part(t.resource, t.ns(), name, body, part)?;
            Ok(value_response(StatusCode::OK, &obj))
        }
        Some("status") => {
            let obj = req
                .store
                .update_part(t.resource, t.ns(), name, body, Part::Status)?;
            Ok(value_response(StatusCode::OK, &obj))
        }
        Some("scale") => {
            let obj = set_scale(req.store, t, name, |_| Ok(body))?;
            Ok(value_response(StatusCode::OK, &scale_of(&obj)))
        }
        _ => Err(method_not_allowed()),
    }
}

fn patch_kind(req: &Req) -> Result<PatchKind, ApiError> {
    let ct = req
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    PatchKind::from_content_type(ct).ok_or_else(|| {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!("the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {ct:?})"),
        )
    })
}

fn rv(v: &Value) -> Option<&str> {
    v.pointer("/metadata/resourceVersion")
        .and_then(Value::as_str)
}

pub(super) fn patch(req: &Req) -> Result<Response, ApiError> {
    let t = req.target;
    let name = req.name()?;
    let kind = patch_kind(req)?;
    let patch = req.json_body()?;
    let resource = t.resource;
    match t.sub.as_deref() {
        None | Some("status") => {
            let status_only = t.sub.is_some();
            let obj = req.store.mutate(resource, t.ns(), name, |obj| {
                let patched = apply_patch(kind, obj, &patch)?;
                // A patch that sets metadata.resourceVersion is a precondition, as upstream.
                if rv(&patched) != rv(obj) {
                    return Err(ApiError::stale(resource, name));
                }
                if status_only {
                    obj["status"] = patched.get("status").cloned().unwrap_or(Value::Null);
                } else {
                    let status = obj.get("status").cloned();
                    let deletion = obj.pointer("/metadata/deletionTimestamp").cloned();
                    *obj = patched;
                    if resource.has_status() {
                        match status {
                            Some(s) => obj["status"] = s,
                            None => {
                                if let Some(m) = obj.as_object_mut() {
                                    m.remove("status");
                                }
                            }
                        }
                    }
                    if let (Some(d), Some(meta)) = (deletion, obj.get_mut("metadata")) {
                        meta["deletionTimestamp"] = d;
                    }
                }
                if obj.get("status").is_some_and(Value::is_null)
                    && let Some(m) = obj.as_object_mut()
                {
                    m.remove("status");
                }
                Ok(())
            })?;
            Ok(value_response(StatusCode::OK, &obj))
        }
        Some("scale") => {
            let obj = set_scale(req.store, t, name, |scale| apply_patch(kind, scale, &patch))?;
            Ok(value_response(StatusCode::OK, &scale_of(&obj)))
        }
        _ => Err(method_not_allowed()),
    }
}

fn delete_options(req: &Req) -> Result<DeleteOptions, ApiError> {
    let mut opts = if req.body.is_empty() {
        DeleteOptions::default()
    } else {
        DeleteOptions::from_json(&req.json_body()?)
    };
    if let Some(g) = req.query.get("gracePeriodSeconds") {
        opts.grace_period_seconds = Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gracePeriodSeconds {g:?}")))?,
        );
    }
    Ok(opts)
}

pub(super) fn delete(req: &Req) -> Result<Response, ApiError> {
    let t = req.target;
    if t.sub.is_some() {
        return Err(method_not_allowed());
    }
    let opts = delete_options(req)?;
    let out = req.store.delete(t.resource, t.ns(), req.name()?, &opts)?;
    let code = match out {
        DeleteOutcome::Removed(_) => StatusCode::OK,
        DeleteOutcome::Terminating(_) => StatusCode::OK,
    };
    Ok(value_response(code, out.object()))
}

pub(super) fn delete_collection(req: &Req) -> Result<Response, ApiError> {
    let t = req.target;
    let opts = delete_options(req)?;
    let params = ListParams {
        namespace: t.namespace.clone(),
        label_selector: req.query.get("labelSelector").cloned(),
        field_selector: req.query.get("fieldSelector").cloned(),
        ..ListParams::default()
    };
    let page = req.store.list(t.resource, &params)?;
    let mut deleted = Vec::new();
    for obj in &page.items {
        let ns = obj
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match req.store.delete(t.resource, ns, name, &opts) {
            Ok(out) => deleted.push(out.object().clone()),
            Err(e) if e.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    let page = crate::store::ListPage {
        items: deleted,
        resource_version: req.store.resource_version(),
        continue_token: None,
        remaining_item_count: None,
    };
    Ok(json_response(StatusCode::OK, list_body(t.resource, &page)))
}
