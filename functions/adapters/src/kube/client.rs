//! The Kubernetes client for an EKS cluster: endpoint and CA from DescribeCluster, and a fresh
//! IAM token as the bearer. The endpoint and CA can be overridden, which is how the functions
//! reach the cluster twin (plain HTTP on 127.0.0.1).
//!
//! Every request says who sent it: `User-Agent: ngm/<AWS_LAMBDA_FUNCTION_NAME>` (`ngm` outside
//! a Lambda), so the API server's audit log and the twin can count calls per function. Every
//! throttle or server error answered with `Retry-After` reaches the adapter with that delay in
//! the Status's `details.retryAfterSeconds` ([`RetryAfterLayer`]), even when the API server
//! answered in plain text, as its max-in-flight and priority-and-fairness filters do.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full};
use kube::Client;
use kube::client::{ClientBuilder, DynBody};
use ngm_core::model::ClusterInfo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use serde_json::{Value, json};

use crate::auth::{AuthError, EksToken};

/// Where to reach a cluster's API server, when it is not where DescribeCluster says.
#[derive(Debug, Clone, Default)]
pub struct ClusterEndpoint {
    /// Replaces the endpoint DescribeCluster returned (e.g. `http://127.0.0.1:PORT`).
    pub url: Option<String>,
    /// Replaces the CA bundle (base64 PEM); `Some("")` trusts none beyond the system roots.
    pub ca_data: Option<String>,
}

/// Builds the kube client for `cluster` with `token`; no request is made.
pub fn client_for_cluster(
    cluster: &ClusterInfo,
    token: &EksToken,
    endpoint: &ClusterEndpoint,
) -> Result<Client, AuthError> {
    let fail = |detail: String| AuthError::Client {
        cluster: cluster.name.clone(),
        detail,
    };
    let url = endpoint.url.as_deref().unwrap_or(&cluster.endpoint);
    if url.is_empty() {
        return Err(AuthError::ClusterIncomplete {
            cluster: cluster.name.clone(),
            what: "endpoint",
        });
    }
    let uri: http::Uri = url
        .parse()
        .map_err(|e| fail(format!("endpoint {url}: {e}")))?;
    let mut config = kube::Config::new(uri);
    let ca = endpoint.ca_data.as_deref().unwrap_or(&cluster.ca_data);
    if !ca.is_empty() {
        let pem = STANDARD
            .decode(ca.trim())
            .map_err(|e| fail(format!("certificate authority is not base64: {e}")))?;
        let certs: Vec<Vec<u8>> = CertificateDer::pem_slice_iter(&pem)
            .map(|c| c.map(|c| c.as_ref().to_vec()))
            .collect::<Result<_, _>>()
            .map_err(|e| fail(format!("certificate authority is not PEM: {e}")))?;
        if certs.is_empty() {
            return Err(fail("certificate authority holds no certificate".into()));
        }
        config.root_cert = Some(certs);
    } else if url.starts_with("https://") {
        return Err(AuthError::ClusterIncomplete {
            cluster: cluster.name.clone(),
            what: "certificate authority",
        });
    }
    config.auth_info.token = Some(token.expose().to_owned().into());
    config
        .headers
        .push((header::USER_AGENT, user_agent(lambda_function_name())));
    // kube's own retry (429/503/504, backoff up to minutes) is off: the adapter retries every
    // call under the one adapter policy within the invocation's budget (crate::retry), and an
    // eviction 429 that means "a PDB is blocking" must reach the step at once.
    config.default_retry = false;
    Ok(ClientBuilder::try_from(config)
        .map_err(|e| fail(e.to_string()))?
        .with_layer(&RetryAfterLayer)
        .build())
}

/// The Lambda function's name, as the Lambda runtime (and the local Lambda host) sets it.
pub fn lambda_function_name() -> Option<String> {
    std::env::var("AWS_LAMBDA_FUNCTION_NAME")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// `ngm/<function>`, or `ngm` without one (or with one no header may carry).
pub fn user_agent(function: Option<String>) -> HeaderValue {
    function
        .and_then(|f| HeaderValue::from_str(&format!("ngm/{f}")).ok())
        .unwrap_or_else(|| HeaderValue::from_static("ngm"))
}

/// Puts a `Retry-After` header of a 429 or 5xx answer into the Status body the kube client
/// parses (`details.retryAfterSeconds`, the field the API server itself uses), turning a
/// plain-text body into a Status. Other answers pass untouched.
#[derive(Debug, Clone, Copy, Default)]
pub struct RetryAfterLayer;

impl<S> tower_layer::Layer<S> for RetryAfterLayer {
    type Service = RetryAfter<S>;
    fn layer(&self, inner: S) -> RetryAfter<S> {
        RetryAfter { inner }
    }
}

#[derive(Debug, Clone)]
pub struct RetryAfter<S> {
    inner: S,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower_service::Service<Request<B>> for RetryAfter<S>
where
    S: tower_service::Service<Request<B>, Response = Response<Box<DynBody>>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Box<DynBody>>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let answer = self.inner.call(req);
        Box::pin(async move {
            let res = answer.await?;
            let code = res.status();
            let delay = res
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u32>().ok());
            let Some(delay) =
                delay.filter(|_| code == StatusCode::TOO_MANY_REQUESTS || code.is_server_error())
            else {
                return Ok(res);
            };
            let (mut parts, body) = res.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let status = status_with_retry_after(code.as_u16(), delay, &bytes);
            parts.headers.remove(header::CONTENT_LENGTH);
            parts.headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            let body: Box<DynBody> = Box::new(
                Full::new(Bytes::from(status.to_string())).map_err(|never| match never {}),
            );
            Ok(Response::from_parts(parts, body))
        })
    }
}

/// The Status an error answer stands for, with `details.retryAfterSeconds` set to `delay`
/// unless the body already named one. A body that is not a Status (plain text) becomes its
/// message.
pub fn status_with_retry_after(code: u16, delay: u32, body: &[u8]) -> Value {
    let parsed: Option<Value> = serde_json::from_slice(body)
        .ok()
        .filter(|v: &Value| v.get("kind").and_then(Value::as_str) == Some("Status"));
    let mut status = parsed.unwrap_or_else(|| {
        let reason = match code {
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            504 => "Timeout",
            _ => "InternalError",
        };
        json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": String::from_utf8_lossy(body).trim(),
            "reason": reason,
            "code": code,
        })
    });
    if let Some(obj) = status.as_object_mut() {
        let details = obj.entry("details").or_insert_with(|| json!({}));
        if let Some(d) = details.as_object_mut() {
            let named = d
                .get("retryAfterSeconds")
                .and_then(Value::as_u64)
                .is_some_and(|s| s > 0);
            if !named {
                d.insert("retryAfterSeconds".into(), json!(delay));
            }
        }
    }
    status
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_text_throttle_becomes_a_status_with_its_delay() {
        let s = status_with_retry_after(429, 1, b"Too many requests, please try again later.\n");
        let st: kube::core::Status = serde_json::from_value(s).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(st.code, 429);
        assert_eq!(st.reason, "TooManyRequests");
        assert_eq!(st.message, "Too many requests, please try again later.");
        assert_eq!(st.details.map(|d| d.retry_after_seconds), Some(1));
    }

    #[test]
    fn a_status_keeps_its_own_delay_and_causes() {
        let body = json!({
            "kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 500,
            "message": "etcd", "reason": "InternalError",
            "details": {"retryAfterSeconds": 3, "causes": [{"reason": "X", "message": "y"}]},
        });
        let s = status_with_retry_after(500, 1, body.to_string().as_bytes());
        assert_eq!(s["details"]["retryAfterSeconds"], 3);
        assert_eq!(s["details"]["causes"][0]["reason"], "X");
        let no_delay = json!({"kind": "Status", "code": 503, "message": "m"});
        let s = status_with_retry_after(503, 2, no_delay.to_string().as_bytes());
        assert_eq!(s["details"]["retryAfterSeconds"], 2);
    }

    #[test]
    fn the_user_agent_names_the_function() {
        assert_eq!(user_agent(Some("check-surge".into())), "ngm/check-surge");
        assert_eq!(user_agent(None), "ngm");
        assert_eq!(user_agent(Some("bad\nname".into())), "ngm");
    }
}
