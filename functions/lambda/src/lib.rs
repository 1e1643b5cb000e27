//! The harness every ngm step function shares: its `main` names the step and hands the handler
//! to [`run`], which reads the [`Config`] once, builds the SDK clients once, and then for each
//! invocation decodes the `MigrationState` ([`input`]), builds the kube client for the state's
//! cluster ([`world`]), runs the step and returns the new state.
//!
//! A step error leaves as a `Diagnostic` whose `error_type` is the step error's stable name
//! (`StepError::error_type`), which is what the state machine's Retry and Catch match. A boxed
//! error would report its Rust type name instead, which no ASL can match.

pub mod config;
pub mod input;
pub mod world;

use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use ngm_core::model::Timestamp;
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
        invoke(
            step,
            &event.context.request_id,
            event.payload,
            clock.now(),
            async |s: &MigrationState| clients.world_for(s).await,
        )
        .await
    }))
    .await
}
