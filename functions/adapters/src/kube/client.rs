//! The Kubernetes client for an EKS cluster: endpoint and CA from DescribeCluster, and a fresh
//! IAM token as the bearer. The endpoint and CA can be overridden, which is how the functions
//! reach the cluster twin (plain HTTP on 127.0.0.1).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kube::Client;
use ngm_core::model::ClusterInfo;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

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
    // kube retries 429/503/504 itself with backoff up to minutes; an eviction 429 means "a PDB
    // is blocking", which the step must see at once (Wait states do the waiting, not Lambdas).
    config.default_retry = false;
    Client::try_from(config).map_err(|e| fail(e.to_string()))
}
