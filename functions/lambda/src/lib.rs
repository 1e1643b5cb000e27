//! The harness every ngm step function shares: its `main` names the step and hands the handler
//! to [`run`], which reads the [`Config`] once, builds the SDK clients once, and then for each
//! invocation decodes the `MigrationState` ([`input`]), builds the kube client for the state's
//! cluster ([`world`]), runs the step and returns the new state.
//!
//! After every step that holds the per-cluster lock, the harness renews the lease and stores the
//! new state in the lock record ([`renew_lock`]), on condition that this execution still holds
//! it; when it does not, the step fails with `LockLost`. Every adapter call of an invocation is
//! capped at a quarter of the time the Lambda runtime gives it ([`ngm_adapters::retry`]).
//!
//! A step error leaves as a `Diagnostic` whose `error_type` is the step error's stable name
//! (`StepError::error_type`), which is what the state machine's Retry and Catch match. A boxed
//! error would report its Rust type name instead, which no ASL can match.

pub mod config;
pub mod input;
pub mod world;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use ngm_core::model::Timestamp;
use ngm_core::plan::lifecycle::{lease_seconds, lock_key};
use ngm_core::state::MigrationState;
use ngm_steps::{StepError, World};
use serde_json::Value;
use tracing::Instrument;

pub use config::{Clock, Config, ConfigError};
pub use input::{Accepts, diagnostic};
pub use lambda_runtime::Error;
pub use world::Clients;

/// One step: its function name (the crate under `functions/`), its handler and its inputs.
#[derive(Debug, Clone, Copy)]
pub struct Step<H> {
    pub name: &'static str,
    pub accepts: Accepts,
    pub handler: H,
}

impl<H> Step<H>
where
    H: AsyncFn(MigrationState, &World, Timestamp) -> Result<MigrationState, StepError>,
{
    /// A step that takes the state the previous one returned.
    pub fn new(name: &'static str, handler: H) -> Step<H> {
        Step {
            name,
            accepts: Accepts::State,
            handler,
        }
    }

    /// The first step: it also takes the start envelope built from the execution input.
    pub fn first(name: &'static str, handler: H) -> Step<H> {
        Step {
            accepts: Accepts::StateOrStart,
            ..Step::new(name, handler)
        }
    }

    /// The rollback: it also takes a state carrying the Catch's error output.
    pub fn after_catch(name: &'static str, handler: H) -> Step<H> {
        Step {
            accepts: Accepts::StateOrCaught,
            ..Step::new(name, handler)
        }
    }
}

/// One invocation: decode, build the world with `world`, run the step, encode. Nothing is
/// built or called when the input is bad.
pub async fn invoke<H, W>(
    step: &Step<H>,
    request_id: &str,
    payload: Value,
    now: Timestamp,
    world: W,
) -> Result<Value, Diagnostic>
where
    H: AsyncFn(MigrationState, &World, Timestamp) -> Result<MigrationState, StepError>,
    W: AsyncFnOnce(&MigrationState) -> Result<World, StepError>,
{
    let state = match input::decode(step.name, step.accepts, payload, now) {
        Ok(s) => s,
        Err(d) => {
            tracing::warn!(step = step.name, request_id, error_type = %d.error_type, message = %d.error_message, "input refused");
            return Err(d);
        }
    };
    let span = tracing::info_span!(
        "invocation",
        step = step.name,
        request_id,
        execution = %state.execution.name,
        node_group = %state.source.name,
    );
    async move {
        let fail = |e: StepError| {
            let d = diagnostic(step.name, &e);
            tracing::warn!(error_type = %d.error_type, message = %d.error_message, "step failed");
            d
        };
        let world = world(&state).await.map_err(fail)?;
        let out = (step.handler)(state, &world, now).await.map_err(fail)?;
        renew_lock(&out, &world, now).await.map_err(fail)?;
        tracing::info!(phase = ?out.phase, pending = ?out.pending, blocked = ?out.blocked, "step finished");
        serde_json::to_value(&out).map_err(|e| {
            fail(StepError::Unexpected {
                op: "encode the state".into(),
                detail: e.to_string(),
            })
        })
    }
    .instrument(span)
    .await
}

/// Renews this execution's lock and stores `state` in it, when the state says it holds one
/// (validate-and-plan took it; restore and rollback clear it when they release it). A dry run
/// holds none. `LockLost` when the record names another execution or is gone.
pub async fn renew_lock(
    state: &MigrationState,
    world: &World,
    now: Timestamp,
) -> Result<(), StepError> {
    let Some(lock) = &state.lock else {
        return Ok(());
    };
    if state.request.policy.dry_run {
        return Ok(());
    }
    let key = lock_key(&lock.cluster_arn);
    let lease_until = now.plus(lease_seconds(&state.request, Some(state.lb_drain_seconds)));
    let json = serde_json::to_string(state).map_err(|e| StepError::Unexpected {
        op: "encode the state for the lock record".into(),
        detail: e.to_string(),
    })?;
    let execution = &state.execution.name;
    if world
        .lock
        .renew(&key, execution, lease_until, &json)
        .await?
    {
        return Ok(());
    }
    let holder = match world.lock.read(&key).await? {
        Some(r) => format!("held by {}", r.holder),
        None => "released".to_string(),
    };
    tracing::error!(execution = %execution, key = %key, holder = %holder, "lock lost");
    Err(StepError::LockLost {
        execution: execution.clone(),
        holder,
    })
}

/// The deadline of every adapter call in an invocation whose runtime deadline is
/// `deadline_ms` (Unix milliseconds; 0 when the runtime sent none): a quarter of the time
/// left, so a step that keeps meeting throttles still answers long before the Lambda timeout.
pub fn call_deadline(deadline_ms: u64, now_ms: u64) -> Option<tokio::time::Instant> {
    let left = deadline_ms.checked_sub(now_ms).filter(|l| *l > 0)?;
    Some(ngm_adapters::retry::invocation_deadline(
        tokio::time::Instant::now(),
        std::time::Duration::from_millis(left),
    ))
}

fn wall_ms() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(0)
}

/// JSON logs (CloudWatch parses them), level from `RUST_LOG`, default `info`.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // An error means a subscriber is already set, which is fine.
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .try_init();
}

/// The whole `main` of a step function.
pub async fn run<H>(step: Step<H>) -> Result<(), Error>
where
    H: AsyncFn(MigrationState, &World, Timestamp) -> Result<MigrationState, StepError> + 'static,
{
    ngm_adapters::install_crypto_provider();
    init_tracing();
    let config = Config::from_env()?;
    let clock = config.clock;
    let clients = Clients::load(config).await;
    tracing::info!(step = step.name, clients = ?clients, "cold start");
    // Lives for the whole process; the runtime's service hands out futures that cannot borrow.
    let ctx: &'static (Step<H>, Clients) = Box::leak(Box::new((step, clients)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (step, clients) = ctx;
        let run = invoke(
            step,
            &event.context.request_id,
            event.payload,
            clock.now(),
            async |s: &MigrationState| clients.world_for(s).await,
        );
        match call_deadline(event.context.deadline, wall_ms()) {
            Some(deadline) => {
                let run = ngm_adapters::retry::within(deadline, run);
                ngm_steps::exec::within_invocation(deadline, run).await
            }
            None => run.await,
        }
    }))
    .await
}

/// The whole `main` of a function whose event is not a `MigrationState` (cleanup): the same
/// configuration, clients, logs, error names and per-call deadline as a step.
pub async fn run_raw<H>(name: &'static str, handler: H) -> Result<(), Error>
where
    H: AsyncFn(Value, &Clients, Timestamp) -> Result<Value, StepError> + 'static,
{
    ngm_adapters::install_crypto_provider();
    init_tracing();
    let config = Config::from_env()?;
    let clock = config.clock;
    let clients = Clients::load(config).await;
    tracing::info!(function = name, clients = ?clients, "cold start");
    let ctx: &'static (H, Clients) = Box::leak(Box::new((handler, clients)));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let (handler, clients) = ctx;
        let span = tracing::info_span!("invocation", function = name, request_id = %event.context.request_id);
        let run = async {
            handler(event.payload, clients, clock.now())
                .await
                .map_err(|e| {
                    let d = diagnostic(name, &e);
                    tracing::warn!(error_type = %d.error_type, message = %d.error_message, "failed");
                    d
                })
        }
        .instrument(span);
        match call_deadline(event.context.deadline, wall_ms()) {
            Some(deadline) => {
                let run = ngm_adapters::retry::within(deadline, run);
                ngm_steps::exec::within_invocation(deadline, run).await
            }
            None => run.await,
        }
    }))
    .await
}
