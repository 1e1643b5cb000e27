//! The clients behind the ports. The SDK clients are built once per cold start; the kube
//! client is built per invocation from DescribeCluster and a freshly minted IAM token, which
//! is valid for 15 minutes only and so must not outlive the invocation.

use std::sync::Arc;
use std::time::SystemTime;

use aws_credential_types::provider::ProvideCredentials;
use aws_types::SdkConfig;
use aws_types::region::Region;
use ngm_adapters::auth::{AuthError, mint_token};
use ngm_adapters::aws::{AsgAdapter, EksAdapter, ElbAdapter, LockAdapter, SfnAdapter, SsmAdapter};
use ngm_adapters::kube::{KubeAdapter, client_for_cluster};
use ngm_core::ports::{Ec2Port, EksPort};
use ngm_core::state::MigrationState;
use ngm_steps::{StepError, World};

use crate::config::Config;

/// The AWS ports for one region.
#[derive(Clone)]
struct AwsPorts {
    region: String,
    eks: Arc<EksAdapter>,
    asg: Arc<AsgAdapter>,
    ec2: Option<Arc<dyn Ec2Port>>,
    elb: Arc<ElbAdapter>,
    ssm: Arc<SsmAdapter>,
    sfn: Arc<SfnAdapter>,
}

impl AwsPorts {
    fn new(sdk: &SdkConfig, region: &str, ec2: bool) -> AwsPorts {
        AwsPorts {
            region: region.to_string(),
            eks: Arc::new(EksAdapter::new(aws_sdk_eks::Client::new(sdk))),
            asg: Arc::new(AsgAdapter::new(aws_sdk_autoscaling::Client::new(sdk))),
            ec2: ec2_port(sdk, ec2),
            elb: Arc::new(ElbAdapter::new(
                aws_sdk_elasticloadbalancingv2::Client::new(sdk),
                aws_sdk_elasticloadbalancing::Client::new(sdk),
            )),
            ssm: Arc::new(SsmAdapter::new(aws_sdk_ssm::Client::new(sdk))),
            sfn: Arc::new(SfnAdapter::new(aws_sdk_sfn::Client::new(sdk))),
        }
    }
}

#[cfg(feature = "ec2")]
fn ec2_port(sdk: &SdkConfig, wanted: bool) -> Option<Arc<dyn Ec2Port>> {
    wanted.then(|| {
        Arc::new(ngm_adapters::aws::Ec2Adapter::new(
            aws_sdk_ec2::Client::new(sdk),
        )) as Arc<dyn Ec2Port>
    })
}

#[cfg(not(feature = "ec2"))]
fn ec2_port(_sdk: &SdkConfig, _wanted: bool) -> Option<Arc<dyn Ec2Port>> {
    None
}

/// Everything built once per cold start.
pub struct Clients {
    config: Config,
    sdk: SdkConfig,
    home: AwsPorts,
    /// The lock table lives in the function's own region, whatever the cluster's.
    lock: Arc<LockAdapter>,
}

impl std::fmt::Debug for Clients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clients")
            .field("region", &self.home.region)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Clients {
    /// Loads the SDK configuration (region, credentials, `AWS_ENDPOINT_URL*`) and builds the
    /// SDK clients for the function's own region.
    pub async fn load(config: Config) -> Clients {
        let sdk = ngm_adapters::load_sdk_config().await;
        let region = sdk.region().map(ToString::to_string).unwrap_or_default();
        let home = AwsPorts::new(&sdk, &region, config.ec2);
        let lock = Arc::new(LockAdapter::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.lock_table.clone(),
            home.sfn.clone(),
        ));
        Clients {
            config,
            sdk,
            home,
            lock,
        }
    }

    /// The clients for a cluster in `region`; another region than the function's gets its
    /// own clients (no I/O: SDK clients connect lazily).
    fn ports_for(&self, region: &str) -> AwsPorts {
        if region == self.home.region {
            return self.home.clone();
        }
        let sdk = self
            .sdk
            .to_builder()
            .region(Region::new(region.to_string()))
            .build();
        AwsPorts::new(&sdk, region, self.config.ec2)
    }

    /// The world for one invocation on `state`'s cluster.
    pub async fn world_for(&self, state: &MigrationState) -> Result<World, StepError> {
        self.world_for_cluster(&state.request.cluster.name, &state.request.cluster.region)
            .await
    }

    /// The lock table (in the function's own region).
    pub fn lock(&self) -> Arc<LockAdapter> {
        self.lock.clone()
    }

    /// The world for one invocation on the cluster `cluster_name` in `region`.
    pub async fn world_for_cluster(
        &self,
        cluster_name: &str,
        region: &str,
    ) -> Result<World, StepError> {
        let cluster_name = &cluster_name.to_string();
        let region = &region.to_string();
        let aws = self.ports_for(region);
        let cluster = aws
            .eks
            .describe_cluster(cluster_name)
            .await?
            .ok_or_else(|| StepError::ClusterNotFound {
                cluster: cluster_name.clone(),
            })?;
        let provider = self
            .sdk
            .credentials_provider()
            .ok_or_else(|| StepError::AccessDenied {
                op: "mint the EKS token: no AWS credentials provider is configured".into(),
            })?;
        let credentials =
            provider
                .provide_credentials()
                .await
                .map_err(|e| StepError::AccessDenied {
                    op: format!("mint the EKS token: {e}"),
                })?;
        let token = mint_token(&credentials, region, cluster_name, SystemTime::now())
            .map_err(auth_error)?;
        let client = client_for_cluster(&cluster, &token, &self.config.cluster_endpoint)
            .map_err(auth_error)?;
        Ok(World {
            eks: aws.eks,
            asg: aws.asg,
            ec2: aws.ec2,
            elb: aws.elb,
            ssm: aws.ssm,
            sfn: aws.sfn,
            kube: Arc::new(KubeAdapter::new(client)),
            lock: self.lock.clone(),
        })
    }
}

fn auth_error(e: AuthError) -> StepError {
    match e {
        AuthError::NoCredentials(d) => StepError::AccessDenied {
            op: format!("mint the EKS token: {d}"),
        },
        other => StepError::Unexpected {
            op: "build the Kubernetes client".into(),
            detail: other.to_string(),
        },
    }
}
