//! The resize API behind API Gateway (REST, IAM auth, Lambda proxy integration).
//!
//! - `POST /migrations` with a `MigrationRequest` body: 400 listing every problem at once
//!   (`{"errors":[{"field","message"}]}`), 409 while another execution holds the cluster's lock,
//!   else 202 with the execution's name and ARN. The lock is taken for the execution name
//!   before StartExecution, so two concurrent POSTs for one cluster start one migration. The
//!   name derives from the `Idempotency-Key` header when given (a client's retry gets the same
//!   execution), else from API Gateway's request id.
//! - `GET /migrations/{id}` (an execution name or ARN): status, current step, progress counts
//!   from the last state output, and the failure reason.
//! - Any other path is 404, any other method 405, always with a JSON body.
//!
//! The same resize as an EventBridge event does not come here: a rule sends the event's
//! `detail` straight to the state machine, whose first state validates it and takes the lock.

mod http;
mod status;

pub use http::{Request, Response, from_event, to_event};

use std::sync::Arc;

use ngm_core::model::Timestamp;
use ngm_core::ports::{EksPort, LockPort, PortError, SfnHistoryPort, SfnPort};
use ngm_core::request::{FieldError, check_request};
use ngm_steps::start::{StartOutcome, execution_name, start_locked};
use serde_json::json;

/// The EKS port for a region (clusters may live in another region than the function).
pub type EksFor = Arc<dyn Fn(&str) -> Arc<dyn EksPort> + Send + Sync>;

/// The ports and settings the API uses, built once per cold start.
#[derive(Clone)]
pub struct Api {
    pub eks_for: EksFor,
    pub lock: Arc<dyn LockPort>,
    pub sfn: Arc<dyn SfnPort>,
    pub history: Arc<dyn SfnHistoryPort>,
    pub state_machine_arn: String,
}

impl std::fmt::Debug for Api {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Api")
            .field("state_machine_arn", &self.state_machine_arn)
            .finish_non_exhaustive()
    }
}

/// Where a request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Create,
    Get { id: String },
    NotFound,
    MethodNotAllowed { allow: &'static str },
}

/// Routes on the path's segments; a trailing slash is ignored.
pub fn route(method: &str, path: &str) -> Route {
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["migrations"] if method.eq_ignore_ascii_case("POST") => Route::Create,
        ["migrations"] => Route::MethodNotAllowed { allow: "POST" },
        ["migrations", id] if !id.is_empty() && method.eq_ignore_ascii_case("GET") => Route::Get {
            id: (*id).to_owned(),
        },
        ["migrations", id] if !id.is_empty() => Route::MethodNotAllowed { allow: "GET" },
        _ => Route::NotFound,
    }
}

fn error(status: u16, kind: &str, message: impl Into<String>) -> Response {
    Response::json(status, json!({ "error": kind, "message": message.into() }))
}

fn invalid(errors: &[FieldError]) -> Response {
    Response::json(400, json!({ "error": "InvalidRequest", "errors": errors }))
}

/// A port failure as an HTTP answer: retryable ones are 503 so clients retry.
fn port_error(e: &PortError) -> Response {
    if e.is_retryable() {
        error(503, "Unavailable", e.to_string())
    } else if matches!(e, PortError::AccessDenied { .. }) {
        error(502, "AccessDenied", e.to_string())
    } else {
        error(500, "Unexpected", e.to_string())
    }
}

/// Answers one request.
pub async fn handle(api: &Api, req: &Request, now: Timestamp) -> Response {
    match route(&req.method, &req.path) {
        Route::Create => create(api, req, now).await,
        Route::Get { id } => status::get(api, &id).await,
        Route::NotFound => error(404, "NotFound", format!("no route for {}", req.path)),
        Route::MethodNotAllowed { allow } => {
            let mut r = error(
                405,
                "MethodNotAllowed",
                format!("{} is not allowed here; use {allow}", req.method),
            );
            r.allow = Some(allow);
            r
        }
    }
}

async fn create(api: &Api, req: &Request, now: Timestamp) -> Response {
    let body = req.body.as_deref().unwrap_or_default();
    let request = match check_request(body) {
        Ok(r) => r,
        Err(errors) => return invalid(&errors),
    };
    let eks = (api.eks_for)(&request.cluster.region);
    let cluster = match eks.describe_cluster(&request.cluster.name).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return invalid(&[FieldError::new(
                "cluster.name",
                format!(
                    "{} is not an EKS cluster in {}",
                    request.cluster.name, request.cluster.region
                ),
            )]);
        }
        Err(e) => return port_error(&e),
    };
    let key = req.idempotency_key.as_deref().unwrap_or(&req.request_id);
    let name = execution_name(&[
        "resize",
        &request.cluster.name,
        request.source.name(),
        &ngm_core::hex_of([key]),
    ]);
    let started = start_locked(
        api.lock.as_ref(),
        api.sfn.as_ref(),
        &api.state_machine_arn,
        &cluster.arn,
        &name,
        &request,
        now,
    )
    .await;
    match started {
        Ok(StartOutcome::Started { execution_arn }) => Response::json(
            202,
            json!({ "executionName": name, "executionArn": execution_arn }),
        ),
        Ok(StartOutcome::Locked { holder }) => Response::json(
            409,
            json!({
                "error": "ClusterLocked",
                "message": format!("cluster {} is being migrated by {holder}", request.cluster.name),
                "holder": holder,
            }),
        ),
        Ok(StartOutcome::AlreadyRan {
            execution_arn,
            status,
        }) => Response::json(
            409,
            json!({
                "error": "AlreadyRan",
                "message": format!("this Idempotency-Key already ran as {execution_arn}"),
                "executionArn": execution_arn,
                "status": status,
            }),
        ),
        Err(PortError::Conflict { detail, .. }) => error(409, "Conflict", detail),
        Err(e) => port_error(&e),
    }
}

#[cfg(test)]
mod tests;
