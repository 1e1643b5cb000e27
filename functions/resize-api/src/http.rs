//! API Gateway proxy events to and from a plain request and response.

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use aws_lambda_events::encodings::Body;
use aws_lambda_events::http::HeaderValue;
use aws_lambda_events::http::header::{ALLOW, CONTENT_TYPE};
use serde_json::Value;

/// What the API reads of a request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Option<String>,
    /// API Gateway's request id.
    pub request_id: String,
    /// The `Idempotency-Key` header.
    pub idempotency_key: Option<String>,
}

/// A JSON answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: Value,
    /// The `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

impl Response {
    pub fn json(status: u16, body: Value) -> Response {
        Response {
            status,
            body,
            allow: None,
        }
    }
}

/// The request of a proxy event. A base64 body is decoded as UTF-8 text, or left out.
pub fn from_event(e: &ApiGatewayProxyRequest) -> Request {
    let body = if e.is_base64_encoded {
        None
    } else {
        e.body.clone()
    };
    Request {
        method: e.http_method.as_str().to_owned(),
        path: e.path.clone().unwrap_or_default(),
        body,
        request_id: e.request_context.request_id.clone().unwrap_or_default(),
        idempotency_key: e
            .headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}

/// The proxy response for `r`.
pub fn to_event(r: &Response) -> ApiGatewayProxyResponse {
    let mut out = ApiGatewayProxyResponse::default();
    out.status_code = i64::from(r.status);
    out.headers
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    if let Some(allow) = r.allow {
        out.headers.insert(ALLOW, HeaderValue::from_static(allow));
    }
    out.body = Some(Body::Text(r.body.to_string()));
    out
}
