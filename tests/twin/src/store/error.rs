//! The one error type of the API surface, shaped like the API server's `Status` body.

use serde_json::{Value, json};

use super::Resource;

/// An error as the Kubernetes API server reports it: an HTTP code, a `reason`, a message and
/// optional `details`. [`ApiError::status_body`] renders the `Status` object clients parse.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{reason} ({code}): {message}")]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
}

fn details(resource: Resource, name: &str) -> Value {
    let mut d = json!({ "name": name, "kind": resource.plural() });
    if !resource.group().is_empty() {
        d["group"] = json!(resource.group());
    }
    d
}

fn qualified(resource: Resource) -> String {
    if resource.group().is_empty() {
        resource.plural().to_string()
    } else {
        format!("{}.{}", resource.plural(), resource.group())
    }
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 404, worded as the API server words it: `pods "web-1" not found`.
    pub fn not_found(resource: Resource, name: &str) -> Self {
        Self::new(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", qualified(resource)),
        )
        .with_details(details(resource, name))
    }

    /// 409 on create of an existing name.
    pub fn already_exists(resource: Resource, name: &str) -> Self {
        Self::new(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", qualified(resource)),
        )
        .with_details(details(resource, name))
    }

    /// 409 on a write with a stale `resourceVersion` or a failed precondition.
    pub fn conflict(resource: Resource, name: &str, why: &str) -> Self {
        Self::new(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": {why}",
                qualified(resource)
            ),
        )
        .with_details(details(resource, name))
    }

    /// The message the API server gives for a stale `resourceVersion`.
    pub fn stale(resource: Resource, name: &str) -> Self {
        Self::conflict(
            resource,
            name,
            "the object has been modified; please apply your changes to the latest version and try again",
        )
    }

    /// 422 for an object that fails validation.
    pub fn invalid(resource: Resource, name: &str, why: impl Into<String>) -> Self {
        let why = why.into();
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {why}", resource.kind()),
        )
        .with_details(details(resource, name))
    }

    /// 403 as `apierrors.NewForbidden` words it: `pods "web-1" is forbidden: <why>`.
    pub fn forbidden(resource: Resource, name: &str, why: &str) -> Self {
        let message = if name.is_empty() {
            format!("{} is forbidden: {why}", qualified(resource))
        } else {
            format!("{} \"{name}\" is forbidden: {why}", qualified(resource))
        };
        Self::new(403, "Forbidden", message).with_details(details(resource, name))
    }

    /// The NamespaceLifecycle admission plugin's refusal to create in a terminating namespace
    /// (k8s.io/apiserver pkg/admission/plugin/namespace/lifecycle/admission.go): 403
    /// Forbidden with the status cause `NamespaceTerminating`.
    pub fn namespace_terminating(resource: Resource, name: &str, ns: &str) -> Self {
        let mut e = Self::forbidden(
            resource,
            name,
            &format!(
                "unable to create new content in namespace {ns} because it is being terminated"
            ),
        );
        if let Some(d) = e.details.as_mut() {
            d["causes"] = json!([{
                "reason": "NamespaceTerminating",
                "message": format!("namespace {ns} is being terminated"),
                "field": "metadata.namespace",
            }]);
        }
        e
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn method_not_allowed(message: impl Into<String>) -> Self {
        Self::new(405, "MethodNotAllowed", message)
    }

    pub fn too_many_requests(message: impl Into<String>) -> Self {
        Self::new(429, "TooManyRequests", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(500, "InternalError", message)
    }

    /// 410 for a watch or continue token older than the retained history.
    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The `meta/v1 Status` body for this error.
    pub fn status_body(&self) -> Value {
        let mut body = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            body["details"] = d.clone();
        }
        body
    }
}
