//! The resize API Lambda: wires the clients once and answers API Gateway proxy events.

use std::sync::Arc;

use aws_lambda_events::apigw::{ApiGatewayProxyRequest, ApiGatewayProxyResponse};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use ngm_adapters::aws::{EksAdapter, LockAdapter, SfnAdapter};
use ngm_core::model::Timestamp;
use ngm_core::ports::EksPort;
use resize_api::{Api, from_event, handle, to_event};

/// The state machine migrations run on (required).
const STATE_MACHINE_VAR: &str = "NGM_STATE_MACHINE_ARN";
/// The DynamoDB lock table (required).
const LOCK_TABLE_VAR: &str = "NGM_LOCK_TABLE";

fn required(var: &'static str) -> Result<String, Error> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{var} is not set").into())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    ngm_adapters::install_crypto_provider();
    tracing_subscriber::fmt().json().with_target(false).init();
    let state_machine_arn = required(STATE_MACHINE_VAR)?;
    let table = required(LOCK_TABLE_VAR)?;
    let sdk = ngm_adapters::load_sdk_config().await;
    let sfn = Arc::new(SfnAdapter::new(aws_sdk_sfn::Client::new(&sdk)));
    let home = sdk.clone();
    let api = Api {
        eks_for: Arc::new(move |region: &str| {
            let conf = home
                .to_builder()
                .region(aws_config::Region::new(region.to_owned()))
                .build();
            Arc::new(EksAdapter::new(aws_sdk_eks::Client::new(&conf))) as Arc<dyn EksPort>
        }),
        lock: Arc::new(LockAdapter::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table,
            sfn.clone(),
        )),
        sfn: sfn.clone(),
        history: sfn,
        state_machine_arn,
    };
    let api: &'static Api = Box::leak(Box::new(api));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<ApiGatewayProxyRequest>| async move {
            let req = from_event(&event.payload);
            let now = Timestamp(chrono::Utc::now().timestamp());
            let resp = handle(api, &req, now).await;
            tracing::info!(method = %req.method, path = %req.path, status = resp.status, "answered");
            Ok::<ApiGatewayProxyResponse, Error>(to_event(&resp))
        },
    ))
    .await
}
