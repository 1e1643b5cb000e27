//! Building the Kubernetes client from DescribeCluster's answer: the CA must be base64 PEM,
//! an https endpoint needs one, and the problems are named.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ngm_adapters::auth::{AuthError, EksToken, mint_token};
use ngm_adapters::kube::{ClusterEndpoint, client_for_cluster};
use ngm_core::model::ClusterInfo;

fn token() -> EksToken {
    let creds = Credentials::new("AKID", "SECRET", None, None, "test");
    mint_token(&creds, "us-east-1", "prod", SystemTime::now()).unwrap()
}

fn cluster(ca_data: String) -> ClusterInfo {
    ClusterInfo {
        name: "prod".into(),
        arn: "arn:aws:eks:us-east-1:123456789012:cluster/prod".into(),
        endpoint: "https://ABCDEF.gr7.us-east-1.eks.amazonaws.com".into(),
        ca_data,
        version: "1.33".into(),
        tags: Default::default(),
    }
}

fn refused(c: &ClusterInfo) -> AuthError {
    match client_for_cluster(c, &token(), &ClusterEndpoint::default()) {
        Err(e) => e,
        Ok(_) => panic!("a client was built for {c:?}"),
    }
}

#[tokio::test]
async fn a_pem_ca_from_describe_cluster_builds_a_client() {
    ngm_adapters::install_crypto_provider();
    let pem = include_str!("fixtures/cluster-ca.pem");
    let c = cluster(STANDARD.encode(pem));
    assert!(client_for_cluster(&c, &token(), &ClusterEndpoint::default()).is_ok());
}

#[tokio::test]
async fn random_bytes_as_ca_data_are_refused_with_the_reason() {
    ngm_adapters::install_crypto_provider();
    // moto answers DescribeCluster with random bytes as the CA (FACTS.md).
    let c = cluster(STANDARD.encode([7u8; 64]));
    let err = refused(&c);
    assert!(matches!(err, AuthError::Client { .. }), "{err:?}");
    assert!(err.to_string().contains("certificate"), "{err}");

    let c = cluster("not base64 !".into());
    let err = refused(&c);
    assert!(err.to_string().contains("not base64"), "{err}");
}

#[tokio::test]
async fn an_https_endpoint_without_a_ca_is_refused_and_an_override_is_used_instead() {
    ngm_adapters::install_crypto_provider();
    let c = cluster(String::new());
    let err = refused(&c);
    assert!(
        matches!(
            err,
            AuthError::ClusterIncomplete {
                what: "certificate authority",
                ..
            }
        ),
        "{err:?}"
    );

    let twin = ClusterEndpoint {
        url: Some("http://127.0.0.1:1".into()),
        ca_data: Some(String::new()),
    };
    assert!(client_for_cluster(&c, &token(), &twin).is_ok());
}
