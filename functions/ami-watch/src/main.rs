//! The AMI-release watcher Lambda: wires the clients once and runs one tick per scheduled event.

use ami_watch::{Ports, WatchError, tick};
use aws_lambda_events::cloudwatch_events::CloudWatchEvent;
use lambda_runtime::{Diagnostic, Error, LambdaEvent, service_fn};
use ngm_adapters::aws::{EksAdapter, LockAdapter, SfnAdapter, SsmAdapter};
use ngm_core::model::Timestamp;

/// Comma-separated cluster names in the function's region (required).
const CLUSTERS_VAR: &str = "NGM_CLUSTERS";
const STATE_MACHINE_VAR: &str = "NGM_STATE_MACHINE_ARN";
const LOCK_TABLE_VAR: &str = "NGM_LOCK_TABLE";

fn required(var: &'static str) -> Result<String, Error> {
    std::env::var(var)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .ok_or_else(|| format!("{var} is not set").into())
}

struct Watcher {
    eks: EksAdapter,
    ssm: SsmAdapter,
    lock: LockAdapter,
    sfn: SfnAdapter,
    state_machine_arn: String,
    region: String,
    clusters: Vec<String>,
}

fn diagnostic(e: &WatchError) -> Diagnostic {
    Diagnostic {
        error_type: e.error_type().to_owned(),
        error_message: e.to_string(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    ngm_adapters::install_crypto_provider();
    tracing_subscriber::fmt().json().with_target(false).init();
    let clusters = required(CLUSTERS_VAR)?
        .split(',')
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty())
        .collect();
    let state_machine_arn = required(STATE_MACHINE_VAR)?;
    let table = required(LOCK_TABLE_VAR)?;
    let sdk = ngm_adapters::load_sdk_config().await;
    let w: &'static Watcher = Box::leak(Box::new(Watcher {
        eks: EksAdapter::new(aws_sdk_eks::Client::new(&sdk)),
        ssm: SsmAdapter::new(aws_sdk_ssm::Client::new(&sdk)),
        lock: LockAdapter::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            table,
            std::sync::Arc::new(SfnAdapter::new(aws_sdk_sfn::Client::new(&sdk))),
        ),
        sfn: SfnAdapter::new(aws_sdk_sfn::Client::new(&sdk)),
        state_machine_arn,
        region: sdk.region().map(ToString::to_string).unwrap_or_default(),
        clusters,
    }));
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<CloudWatchEvent>| async move {
            // The schedule's own time, so a replayed event plans the same.
            let now = Timestamp(event.payload.time.timestamp());
            let ports = Ports {
                eks: &w.eks,
                ssm: &w.ssm,
                lock: &w.lock,
                sfn: &w.sfn,
            };
            tick(&ports, &w.state_machine_arn, &w.region, &w.clusters, now)
                .await
                .map_err(|e| diagnostic(&e))
        },
    ))
    .await
}
