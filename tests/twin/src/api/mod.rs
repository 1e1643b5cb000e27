//! The Kubernetes REST API over the [`Store`], in the real wire format, so that kube-rs and
//! kubectl work against it unchanged.
//!
//! One fallback handler parses every path itself (`/api/v1/...`, `/apis/<g>/<v>/...`), which
//! keeps the routing table identical for core and named groups and lets every unknown path
//! answer a `Status` body (404) as the API server does.

mod discovery;
mod objects;
mod scale;
mod table;
mod watch;

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::store::{ApiError, FaultAnswer, Resource, Store, kubernetes_caller};

/// Settings of the served API.
#[derive(Clone, Debug)]
pub struct ApiOptions {
    /// The Kubernetes version `/version` reports, as `major.minor` (e.g. "1.33").
    pub kubernetes_version: String,
}

impl Default for ApiOptions {
    fn default() -> Self {
        Self {
            kubernetes_version: "1.33".to_string(),
        }
    }
}

#[derive(Clone)]
struct Ctx {
    store: Store,
    options: ApiOptions,
}

/// The API as an axum router (every path goes through one handler).
pub fn router(store: Store) -> Router {
    router_with(store, ApiOptions::default())
}

/// [`router`] with explicit options.
pub fn router_with(store: Store, options: ApiOptions) -> Router {
    Router::new()
        .fallback(handle)
        .with_state(Ctx { store, options })
}

/// Largest request body accepted (the API server's default limit is 3 MiB for objects).
const BODY_LIMIT: usize = 8 << 20;

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Target {
    pub resource: Resource,
    /// The namespace in the path (None: cluster-scoped, or a list across namespaces).
    pub namespace: Option<String>,
    pub name: Option<String>,
    /// `status`, `scale`, `eviction`.
    pub sub: Option<String>,
}

impl Target {
    /// The resource as the counters and fault rules name it (`pods`, `pods/eviction`).
    pub fn label(&self) -> String {
        match &self.sub {
            Some(s) => format!("{}/{s}", self.resource.plural()),
            None => self.resource.plural().to_string(),
        }
    }

    pub fn ns(&self) -> &str {
        self.namespace.as_deref().unwrap_or_default()
    }
}

/// Splits `/api/v1/...` or `/apis/g/v/...` into a [`Target`], or `None` for paths that are
/// not resource paths.
pub(crate) fn parse_path(path: &str) -> Result<Option<Target>, ApiError> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", v, rest @ ..] if !rest.is_empty() => ("", *v, rest),
        ["apis", g, v, rest @ ..] if !rest.is_empty() => (*g, *v, rest),
        _ => return Ok(None),
    };
    let lookup =
        |plural: &str| Resource::from_plural(group, plural).filter(|r| r.version() == version);
    let not_found = || {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    };
    let target =
        |resource, namespace: Option<&str>, name: Option<&&str>, sub: Option<&&str>| Target {
            resource,
            namespace: namespace.map(str::to_string),
            name: name.map(|s| s.to_string()),
            sub: sub.map(|s| s.to_string()),
        };
    let t = match rest {
        ["namespaces", ns, plural, tail @ ..] if group.is_empty() || lookup(plural).is_some() => {
            match lookup(plural) {
                Some(r) if r.namespaced() && tail.len() <= 2 => {
                    target(r, Some(ns), tail.first(), tail.get(1))
                }
                // `/api/v1/namespaces/<ns>/status`, `/finalize`
                None if tail.is_empty() && group.is_empty() => {
                    target(Resource::Namespace, None, Some(ns), Some(plural))
                }
                _ => return Err(not_found()),
            }
        }
        [plural, tail @ ..] if tail.len() <= 2 => match lookup(plural) {
            Some(r) => target(r, None, tail.first(), tail.get(1)),
            None => return Err(not_found()),
        },
        _ => return Err(not_found()),
    };
    if t.resource.namespaced() && t.name.is_some() && t.namespace.is_none() {
        return Err(not_found());
    }
    let sub_ok = match t.sub.as_deref() {
        None => true,
        Some("status") => t.resource.has_status(),
        Some("scale") => t.resource.has_scale(),
        Some("eviction") => t.resource == Resource::Pod,
        Some(_) => false,
    };
    if !sub_ok {
        return Err(not_found());
    }
    Ok(Some(t))
}

/// The query string as a map (last value wins).
pub(crate) fn query_map(query: Option<&str>) -> HashMap<String, String> {
    url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

/// A JSON response with the given status.
pub(crate) fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn value_response(code: StatusCode, v: &Value) -> Response {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = value_response(code, &self.status_body());
        // The API server sends Retry-After only when the Status names a delay (throttling
        // does, a PDB-blocked eviction does not).
        if let Some(secs) = self
            .details
            .as_ref()
            .and_then(|d| d.get("retryAfterSeconds"))
            .and_then(Value::as_u64)
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

impl IntoResponse for FaultAnswer {
    fn into_response(self) -> Response {
        match self {
            // Go's `http.Error`, as maxinflight.go's `tooManyRequests` calls it.
            Self::TooManyRequests => {
                let mut resp = Response::new(Body::from(Self::TOO_MANY_REQUESTS));
                *resp.status_mut() = StatusCode::TOO_MANY_REQUESTS;
                let h = resp.headers_mut();
                h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                h.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
                resp
            }
            Self::Status { error, retry_after } => {
                let mut resp = error.into_response();
                if let Some(secs) = retry_after
                    && let Ok(v) = HeaderValue::from_str(&secs.to_string())
                {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            }
        }
    }
}

/// The audit verb of a request, as counters and fault rules name it.
fn verb(method: &Method, target: &Target, watch: bool) -> &'static str {
    match *method {
        Method::GET if watch => "watch",
        Method::GET if target.name.is_none() => "list",
        Method::GET => "get",
        Method::POST => "create",
        Method::PUT => "update",
        Method::PATCH => "patch",
        Method::DELETE if target.name.is_none() => "deletecollection",
        Method::DELETE => "delete",
        _ => "unknown",
    }
}

pub(crate) fn is_watch(q: &HashMap<String, String>) -> bool {
    matches!(q.get("watch").map(String::as_str), Some("true" | "1"))
}

async fn handle(State(ctx): State<Ctx>, req: Request) -> Response {
    match dispatch(ctx, req).await {
        Ok(resp) => resp,
        Err(Answer::Api(e)) => e.into_response(),
        Err(Answer::Fault(f)) => f.into_response(),
    }
}

/// An error answer: the API's own, or an injected fault's.
enum Answer {
    Api(ApiError),
    Fault(FaultAnswer),
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// Whether an error is the NamespaceLifecycle refusal of a terminating namespace.
fn is_namespace_terminating(e: &ApiError) -> bool {
    e.code == 403
        && e.details
            .as_ref()
            .and_then(|d| d.get("causes"))
            .and_then(Value::as_array)
            .is_some_and(|c| {
                c.iter().any(|c| {
                    c.get("reason").and_then(Value::as_str) == Some("NamespaceTerminating")
                })
            })
}

async fn dispatch(ctx: Ctx, req: Request) -> Result<Response, Answer> {
    let (parts, body) = req.into_parts();
    let caller = kubernetes_caller(
        parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
    );
    let path = parts.uri.path().to_string();
    if let Some(resp) = discovery::serve(&ctx, &parts.method, &path) {
        return Ok(resp?);
    }
    let Some(target) = parse_path(&path)? else {
        return Err(Answer::Api(ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )));
    };
    let q = query_map(parts.uri.query());
    let watch = is_watch(&q);
    let verb = verb(&parts.method, &target, watch);
    let label = target.label();
    ctx.store.requests().record_from(&caller, verb, &label);
    if let Some(answer) = ctx.store.faults().check_from(&caller, verb, &label) {
        return Err(Answer::Fault(answer));
    }
    let body = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .map_err(|e| Answer::Api(ApiError::bad_request(format!("reading the body: {e}"))))?;
    let req = objects::Req {
        store: &ctx.store,
        target: &target,
        query: &q,
        headers: &parts.headers,
        body: &body,
        caller: &caller,
    };
    let result = match (parts.method.clone(), verb) {
        (_, "watch") => watch::serve(&ctx.store, &target, &q),
        (Method::GET, "list") => objects::list(&req),
        (Method::GET, _) => objects::get(&req),
        (Method::POST, _) => objects::create(&req),
        (Method::PUT, _) => objects::replace(&req),
        (Method::PATCH, _) => objects::patch(&req),
        (Method::DELETE, "deletecollection") => objects::delete_collection(&req),
        (Method::DELETE, _) => objects::delete(&req),
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource: {m}"
        ))),
    };
    if let Err(e) = &result
        && is_namespace_terminating(e)
        && ctx.store.faults().is_fault_namespace(target.ns())
    {
        ctx.store.faults().injected().record(
            "deleteNamespace",
            "kubernetes",
            &format!("{verb} {label}"),
            &caller,
            e.code,
        );
    }
    Ok(result?)
}
