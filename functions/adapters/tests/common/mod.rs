//! Shared set-up for the adapter tests: a moto server and SDK config pointed at it.

#![allow(dead_code)]

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use ngm_testkit::moto::MotoServer;

pub const REGION: &str = "us-east-1";

pub async fn moto(seed_ssm: Option<&std::path::Path>) -> MotoServer {
    MotoServer::start(seed_ssm).await.expect("moto starts")
}

/// SDK config for moto: static test credentials and every service at `url`.
pub async fn sdk_config(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(url)
        .load()
        .await
}
