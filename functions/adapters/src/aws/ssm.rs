//! SSM Parameter Store: the EKS-optimized AMI release parameters.

use async_trait::async_trait;
use aws_sdk_ssm::Client;
use ngm_core::ports::{PortResult, SsmPort};

use super::none_if_missing;

#[derive(Debug, Clone)]
pub struct SsmAdapter {
    client: Client,
}

impl SsmAdapter {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

#[async_trait]
impl SsmPort for SsmAdapter {
    async fn get_parameter(&self, name: &str) -> PortResult<Option<String>> {
        let out = crate::send!("ssm:GetParameter", self.client.get_parameter().name(name));
        Ok(none_if_missing(out)?.and_then(|o| o.parameter()?.value().map(str::to_owned)))
    }
}
