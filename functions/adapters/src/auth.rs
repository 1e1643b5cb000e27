//! EKS authentication: the IAM bearer token and the Kubernetes client built from
//! `DescribeCluster`.
//!
//! The token is what `aws eks get-token` produces: `k8s-aws-v1.` followed by the unpadded
//! base64url of a presigned STS `GetCallerIdentity` URL whose signature covers the
//! `x-k8s-aws-id` header (the cluster name). The EKS authenticator accepts it for 15 minutes
//! from `X-Amz-Date` whatever `X-Amz-Expires` says, so it is minted once per invocation and
//! never stored in the execution state or logged.

use std::fmt;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign,
};
use aws_sigv4::sign::v4;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// The header the EKS authenticator reads the cluster name from.
pub const CLUSTER_ID_HEADER: &str = "x-k8s-aws-id";
const TOKEN_PREFIX: &str = "k8s-aws-v1.";
/// `aws eks get-token` presigns for 60 seconds; the authenticator ignores it past 15 minutes.
const PRESIGN_EXPIRES: Duration = Duration::from_secs(60);

/// A bearer token for one cluster. Its `Debug` and `Display` never show the secret.
#[derive(Clone)]
pub struct EksToken(String);

impl EksToken {
    /// The bearer value, for the one place that needs it: the kube client's auth.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for EksToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EksToken(<redacted>)")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot sign the STS request: {0}")]
    Signing(String),
    #[error("no AWS credentials are available: {0}")]
    NoCredentials(String),
    #[error("cluster {cluster} has no {what}")]
    ClusterIncomplete { cluster: String, what: &'static str },
    #[error("cannot build the Kubernetes client for {cluster}: {detail}")]
    Client { cluster: String, detail: String },
}

/// The regional STS endpoint; the EKS authenticator accepts regional and global STS hosts.
pub fn sts_host(region: &str) -> String {
    format!("sts.{region}.amazonaws.com")
}

/// Mints the token for `cluster` with fixed credentials and time (pure; tests pin `now`).
pub fn mint_token(
    credentials: &Credentials,
    region: &str,
    cluster: &str,
    now: SystemTime,
) -> Result<EksToken, AuthError> {
    let host = sts_host(region);
    let url = format!("https://{host}/?Action=GetCallerIdentity&Version=2011-06-15");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("sts")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| AuthError::Signing(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        [(CLUSTER_ID_HEADER, cluster)].into_iter(),
        SignableBody::Bytes(&[]),
    )
    .map_err(|e| AuthError::Signing(e.to_string()))?;
    let (instructions, _signature) = sign(request, &params)
        .map_err(|e| AuthError::Signing(e.to_string()))?
        .into_parts();
    let mut presigned = url;
    for (name, value) in instructions.params() {
        presigned.push('&');
        presigned.push_str(name);
        presigned.push('=');
        presigned.push_str(&percent_encode(value));
    }
    Ok(EksToken(format!(
        "{TOKEN_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(presigned.as_bytes())
    )))
}

/// RFC 3986 unreserved characters stay; everything else is %XX, as SigV4 query encoding wants.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(session: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            session.map(str::to_owned),
            None,
            "test",
        )
    }

    fn decode(token: &EksToken) -> String {
        let b64 = token.expose().strip_prefix(TOKEN_PREFIX).expect("prefix");
        String::from_utf8(URL_SAFE_NO_PAD.decode(b64).expect("base64url")).expect("utf8")
    }

    #[test]
    fn token_is_a_presigned_get_caller_identity_that_signs_the_cluster_header() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = mint_token(&creds(None), "eu-west-1", "prod", now).expect("token");
        let url = decode(&token);
        assert!(url.starts_with(
            "https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity&Version=2011-06-15&"
        ));
        assert!(
            url.contains("X-Amz-SignedHeaders=host%3Bx-k8s-aws-id"),
            "{url}"
        );
        assert!(url.contains("X-Amz-Date=20231114T221320Z"), "{url}");
        assert!(url.contains("X-Amz-Expires=60"), "{url}");
        assert!(!token.expose().ends_with('='), "token must be unpadded");
    }

    #[test]
    fn session_token_rides_in_the_query_and_debug_never_shows_the_token() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let token = mint_token(&creds(Some("SESSION/TOKEN")), "us-east-1", "c", now).unwrap();
        assert!(decode(&token).contains("X-Amz-Security-Token=SESSION%2FTOKEN"));
        assert_eq!(format!("{token:?}"), "EksToken(<redacted>)");
    }

    #[test]
    fn a_different_cluster_name_changes_the_signature() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let a = mint_token(&creds(None), "us-east-1", "a", now).unwrap();
        let b = mint_token(&creds(None), "us-east-1", "b", now).unwrap();
        assert_ne!(a.expose(), b.expose());
    }
}
