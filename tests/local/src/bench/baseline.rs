//! One alternative strategy on a fresh twin of the scenario: the same cluster, traffic and
//! faults as ngm's run, the strategy's calls made by [`super::drivers`] instead of the state
//! machine, then the same settling and the same report.

use std::path::Path;
use std::time::{Duration, Instant};

use ngm_core::request::{MigrationRequest, SourceGroup};
use ngm_twin::scenario::Scenario;
use ngm_twin::twin::{Twin, TwinOptions};

use super::Strategy;
use super::drivers::{self, Ctx, DRAIN_TIMEOUT, Ended};
use crate::run::LocalError;
use crate::support::moto_conf;

/// What one alternative did.
pub(super) struct BaselineRun {
    /// `Ok(notes)`, or why it stopped.
    pub ended: Ended,
    pub duration_seconds: f64,
    pub report: ngm_twin::report::Report,
    /// Calls to moto (Auto Scaling), beside EKS's in the report.
    pub aws_requests: u64,
}

/// Why a strategy does not apply to a scenario, if it does not.
pub(super) fn not_applicable(strategy: Strategy, scenario: &Scenario) -> Option<String> {
    let request = scenario.migration.as_ref()?;
    let source = request.pointer("/source/autoScalingGroup").is_some();
    (strategy == Strategy::MngUpdate && source)
        .then(|| "the source is a self-managed Auto Scaling group: it has no managed update".into())
}

fn eks_conf(
    env: &std::collections::BTreeMap<String, String>,
) -> Result<aws_config::SdkConfig, String> {
    let endpoint = env
        .get("AWS_ENDPOINT_URL_EKS")
        .ok_or("the twin serves no EKS API")?;
    let conf = moto_conf(env)?;
    Ok(conf.into_builder().endpoint_url(endpoint).build())
}

async fn kube_client(kubeconfig: &Path) -> Result<kube::Client, String> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig).map_err(|e| e.to_string())?;
    let conf =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| e.to_string())?;
    kube::Client::try_from(conf).map_err(|e| e.to_string())
}

async fn drive(
    strategy: Strategy,
    ctx: &Ctx,
    req: &MigrationRequest,
    scenario: &Scenario,
) -> Ended {
    let cluster = req.cluster.name.as_str();
    match strategy {
        Strategy::Ngm => Err("ngm runs through the state machine, not a driver".into()),
        Strategy::MngUpdate => {
            let SourceGroup::ManagedNodeGroup(g) = &req.source else {
                return Err("a self-managed source has no managed update".into());
            };
            let mut notes = Vec::new();
            if req.target.instance_types.is_some() || req.target.scaling.is_some() {
                notes.push(
                    "UpdateNodegroupVersion changes only the AMI: the group keeps its instance types and size"
                        .to_string(),
                );
            }
            let release = req.target.release_version.as_deref();
            drivers::mng_update(ctx, cluster, g, release).await?;
            Ok(notes)
        }
        Strategy::Replace => {
            let new = drivers::create_target(ctx, req, scenario).await?;
            drivers::wait_active(ctx, cluster, &new).await?;
            drivers::delete_old(ctx, cluster, &req.source).await
        }
        Strategy::DrainRotation => {
            let new = drivers::create_target(ctx, req, scenario).await?;
            drivers::wait_active(ctx, cluster, &new).await?;
            let old = drivers::old_nodes(ctx, &req.source).await?;
            for node in &old {
                drivers::cordon(ctx, node).await?;
            }
            let mut notes = Vec::new();
            for node in &old {
                if let Some(left) = drivers::kubectl_drain(ctx, node, DRAIN_TIMEOUT).await? {
                    notes.push(format!(
                        "kubectl drain {node} timed out after {} s with {} left",
                        DRAIN_TIMEOUT.as_secs(),
                        left.join(", ")
                    ));
                }
            }
            notes.extend(drivers::delete_old(ctx, cluster, &req.source).await?);
            Ok(notes)
        }
    }
}

/// Runs `strategy` on a fresh twin of the scenario at `path`.
pub(super) async fn run(
    strategy: Strategy,
    path: &Path,
    speed: Option<f64>,
    wall_limit: Duration,
) -> Result<BaselineRun, LocalError> {
    let bad = |reason: String| LocalError::Scenario {
        path: path.to_path_buf(),
        reason,
    };
    let scenario = Scenario::load(path).map_err(|e| bad(e.to_string()))?;
    let work_dir = std::env::temp_dir().join(format!(
        "ngm-bench-{}-{}-{}",
        scenario.name,
        strategy.name(),
        chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
    ));
    std::fs::create_dir_all(&work_dir).map_err(|e| LocalError::Io(e.to_string()))?;
    let mut twin = Twin::start(
        Some(scenario.clone()),
        TwinOptions {
            speed,
            kubeconfig: Some(work_dir.join("kubeconfig")),
            ..TwinOptions::default()
        },
    )
    .await?;
    let request = twin
        .migration_request()?
        .or_else(|| scenario.migration.clone())
        .ok_or_else(|| bad("no `migration:` to compare against".into()))?;
    let req: MigrationRequest =
        serde_json::from_value(request).map_err(|e| bad(format!("migration: {e}")))?;
    let env = twin.env();
    // Counted as a caller, as the functions are (tests/aws/moto_server.py counts app ids).
    let app = aws_config::AppName::new(format!("ngm-local-bench-{}", strategy.name()))
        .map_err(|e| LocalError::Io(e.to_string()))?;
    let eks = eks_conf(&env)
        .map_err(LocalError::Io)?
        .into_builder()
        .app_name(app.clone())
        .build();
    let moto = moto_conf(&env)
        .map_err(LocalError::Io)?
        .into_builder()
        .app_name(app)
        .build();
    let kube = kube_client(&work_dir.join("kubeconfig"))
        .await
        .map_err(LocalError::Io)?;
    let subnets = twin
        .eks()
        .map(|e| {
            e.config()
                .subnets
                .iter()
                .map(|s| (s.zone.clone(), s.id.clone()))
                .collect()
        })
        .unwrap_or_default();
    let ctx = Ctx {
        eks: aws_sdk_eks::Client::new(&eks),
        asg: aws_sdk_autoscaling::Client::new(&moto),
        kube,
        clock: twin.clock().clone(),
        subnets,
    };
    twin.begin_run();
    let started = twin.clock().now();
    let deadline = Instant::now() + wall_limit;
    let ended = tokio::select! {
        r = tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), drive(strategy, &ctx, &req, &scenario)) => {
            r.unwrap_or_else(|_| Err(format!("did not end within {wall_limit:?} of wall time")))
        }
        fatal = twin.fatal() => Err(fatal.to_string()),
    };
    let duration_seconds = (twin.clock().now() - started).num_milliseconds() as f64 / 1000.0;
    // As `ngm local run` does: the world is judged once the node lifecycle has settled.
    let settle_by = twin.clock().now() + chrono::TimeDelta::seconds(crate::run::SETTLE_SECONDS);
    while !twin.settled() && twin.clock().now() < settle_by {
        twin.clock().sleep(Duration::from_secs(1)).await;
    }
    let aws_requests = match twin.moto_url() {
        Some(url) => crate::support::total_counts(&crate::support::moto_request_counts(url).await)
            .values()
            .sum(),
        None => 0,
    };
    let report = twin.finish_run().await?;
    twin.shutdown().await?;
    Ok(BaselineRun {
        ended,
        duration_seconds,
        report,
        aws_requests,
    })
}
