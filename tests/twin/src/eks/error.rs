//! EKS's error shape: an HTTP status, the `x-amzn-ErrorType` header naming the exception, and a
//! `{"message": ...}` body. aws-sdk-eks reads the code from that header (restJson1), so the
//! SDK surfaces these as typed errors such as `InvalidParameterException`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code} ({status}): {message}")]
pub struct EksError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl EksError {
    fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidParameterException", message)
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(400, "InvalidRequestException", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequestException", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "ResourceNotFoundException", message)
    }

    /// The tagging operations name their 404 `NotFoundException`.
    pub fn tag_not_found(message: impl Into<String>) -> Self {
        Self::new(404, "NotFoundException", message)
    }

    pub fn in_use(message: impl Into<String>) -> Self {
        Self::new(409, "ResourceInUseException", message)
    }

    pub fn throttling(message: impl Into<String>) -> Self {
        Self::new(429, "ThrottlingException", message)
    }

    pub fn server(message: impl Into<String>) -> Self {
        Self::new(500, "ServerException", message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "ServiceUnavailableException", message)
    }
}

impl IntoResponse for EksError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, axum::Json(json!({ "message": self.message }))).into_response();
        resp.headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(self.code));
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_its_exception_in_the_header_restjson1_clients_read() {
        let resp = EksError::invalid_parameter("bad").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers()
                .get("x-amzn-errortype")
                .and_then(|v| v.to_str().ok()),
            Some("InvalidParameterException")
        );
    }
}
