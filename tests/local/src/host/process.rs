//! One function's sandbox: its process and the Runtime API it polls.
//!
//! Each process generation gets a Runtime API listener of its own. When the host kills a
//! process (its invocation ran past the function's timeout, as Lambda stops a timed-out
//! sandbox) or the process exits by itself, the generation ends: its `next` polls return,
//! so a dead process never takes an invocation off the queue, and a fresh process (a cold
//! start) serves the next invocation, as Lambda's next invoke gets a new sandbox.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use tokio::sync::{mpsc, oneshot};

use super::{Function, FunctionSpec, HostError, HostOptions, Outcome, listen, lock, serve};

/// A process that exits by itself this many times is left down: every later invocation fails
/// with `Runtime.ExitError` at once instead of starting it again.
const MAX_RESTARTS: u32 = 5;

pub(super) fn spawn(
    spec: &FunctionSpec,
    runtime_api: &str,
    opts: &HostOptions,
) -> Result<tokio::process::Child, HostError> {
    let log_path = opts.logs.join(format!("{}.log", spec.name));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|source| HostError::Logs {
            path: log_path.clone(),
            source,
        })?;
    let err = log.try_clone().map_err(|source| HostError::Logs {
        path: log_path,
        source,
    })?;
    let mut cmd = tokio::process::Command::new(&spec.binary);
    cmd.env_clear();
    for keep in ["PATH", "HOME", "TMPDIR", "RUST_BACKTRACE"] {
        if let Ok(v) = std::env::var(keep) {
            cmd.env(keep, v);
        }
    }
    // As Lambda sets them, plus the app id (C6) that names the caller in the SDK's user agent.
    cmd.envs(&opts.env)
        .envs(&spec.env)
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
        .env("AWS_SDK_UA_APP_ID", format!("ngm-local-{}", spec.name))
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env(
            "AWS_LAMBDA_FUNCTION_TIMEOUT",
            spec.timeout.as_secs().to_string(),
        )
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .kill_on_drop(true);
    cmd.spawn().map_err(|source| HostError::Spawn {
        name: spec.name.clone(),
        source,
    })
}

/// VmHWM from `/proc/<pid>/status`, in KiB.
pub(super) fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

/// A process's start, as Lambda's init phase counts it: from the spawn to its first poll of
/// `invocation/next` (the runtime is ready), whatever its handler later does.
struct Init {
    spawned: Instant,
    polled: AtomicBool,
}

impl Init {
    /// On the generation's first poll only: the longest init of the function's processes.
    fn polled(&self, f: &Function) {
        if self.polled.swap(true, Ordering::Relaxed) {
            return;
        }
        let millis = u64::try_from(self.spawned.elapsed().as_millis()).unwrap_or(u64::MAX);
        let mut s = lock(&f.stats);
        s.init_millis = Some(s.init_millis.unwrap_or(0).max(millis));
    }
}

fn remember_peak(f: &Function) {
    if let Some(kib) = lock(&f.pid).and_then(peak_rss_kib) {
        let mut s = lock(&f.stats);
        s.peak_rss_kib = Some(s.peak_rss_kib.unwrap_or(0).max(kib));
    }
}

/// Owns a function's processes until the host stops it: starts one, and starts another after
/// the host killed it or it exited.
pub(super) async fn supervise(
    spec: FunctionSpec,
    opts: HostOptions,
    f: Arc<Function>,
    mut kills: mpsc::UnboundedReceiver<()>,
    mut stop: oneshot::Receiver<()>,
) {
    let mut generation = 0u64;
    let mut restarts = 0u32;
    loop {
        generation += 1;
        let (listener, addr) = match listen().await {
            Ok(x) => x,
            Err(e) => {
                *lock(&f.exited) = Some(e.to_string());
                return;
            }
        };
        let init = Arc::new(Init {
            spawned: Instant::now(),
            polled: AtomicBool::new(false),
        });
        let server = serve(listener, runtime_api(f.clone(), generation, init));
        let mut child = match spawn(&spec, &addr, &opts) {
            Ok(c) => c,
            Err(e) => {
                *lock(&f.exited) = Some(e.to_string());
                server.abort();
                return;
            }
        };
        *lock(&f.pid) = child.id();
        f.generation.send_replace(generation);
        let again = tokio::select! {
            status = child.wait() => {
                remember_peak(&f);
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                tracing::warn!(function = %spec.name, %status, "function process exited");
                lock(&f.stats).restarts += 1;
                restarts += 1;
                if restarts >= MAX_RESTARTS {
                    *lock(&f.exited) = Some(format!("process exited ({status}; see its log)"));
                }
                restarts < MAX_RESTARTS
            }
            Some(()) = kills.recv() => {
                remember_peak(&f);
                let _ = child.kill().await;
                lock(&f.stats).restarts += 1;
                true
            }
            _ = &mut stop => {
                remember_peak(&f);
                let _ = child.kill().await;
                false
            }
        };
        // Invocations the dead process held fail now (their callers map a dropped answer).
        lock(&f.pending).clear();
        server.abort();
        // Pending kill requests were about the process that just went.
        while kills.try_recv().is_ok() {}
        if !again {
            f.generation.send_replace(u64::MAX);
            return;
        }
    }
}

fn runtime_api(f: Arc<Function>, generation: u64, init: Arc<Init>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next_invocation))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(invocation_response),
        )
        .route(
            "/2018-06-01/runtime/invocation/{id}/error",
            post(invocation_error),
        )
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .with_state((f, generation, init))
}

type Sandbox = State<(Arc<Function>, u64, Arc<Init>)>;

/// Resolves once `generation` is over.
async fn ended(f: &Function, generation: u64) {
    let mut rx = f.generation.subscribe();
    let _ = rx.wait_for(|g| *g != generation).await;
}

async fn next_invocation(State((f, generation, init)): Sandbox) -> Response {
    init.polled(&f);
    let inv = tokio::select! {
        inv = async {
            let mut next = f.next.lock().await;
            next.recv().await
        } => inv,
        () = ended(&f, generation) => return StatusCode::GONE.into_response(),
    };
    let Some(inv) = inv else {
        return StatusCode::GONE.into_response();
    };
    lock(&f.pending).insert(inv.id.clone(), inv.reply);
    let deadline = chrono::Utc::now().timestamp_millis()
        + i64::try_from(f.timeout.as_millis()).unwrap_or(i64::MAX);
    let mut headers = HeaderMap::new();
    let put = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    put(
        &mut headers,
        "lambda-runtime-aws-request-id",
        inv.id.clone(),
    );
    put(
        &mut headers,
        "lambda-runtime-deadline-ms",
        deadline.to_string(),
    );
    put(
        &mut headers,
        "lambda-runtime-invoked-function-arn",
        f.arn.clone(),
    );
    put(
        &mut headers,
        "lambda-runtime-trace-id",
        format!("Root=1-00000000-{}", inv.id),
    );
    put(&mut headers, "content-type", "application/json".into());
    (StatusCode::OK, headers, inv.payload).into_response()
}

async fn invocation_response(
    State((f, _, _)): Sandbox,
    UrlPath(id): UrlPath<String>,
    body: Bytes,
) -> StatusCode {
    if let Some(reply) = lock(&f.pending).remove(&id) {
        let _ = reply.send(Outcome::Ok(body));
    }
    StatusCode::ACCEPTED
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ErrorBody {
    #[serde(default)]
    error_type: String,
    #[serde(default)]
    error_message: String,
}

async fn invocation_error(
    State((f, _, _)): Sandbox,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or(ErrorBody {
        error_type: String::new(),
        error_message: String::from_utf8_lossy(&body).into_owned(),
    });
    let error_type = if parsed.error_type.is_empty() {
        headers
            .get("lambda-runtime-function-error-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("Unhandled")
            .to_string()
    } else {
        parsed.error_type
    };
    if let Some(reply) = lock(&f.pending).remove(&id) {
        let _ = reply.send(Outcome::Error {
            error_type,
            message: parsed.error_message,
        });
    }
    StatusCode::ACCEPTED
}

async fn init_error(State((f, _, _)): Sandbox, body: Bytes) -> StatusCode {
    *lock(&f.exited) = Some(format!(
        "init error: {}",
        String::from_utf8_lossy(&body)
            .chars()
            .take(500)
            .collect::<String>()
    ));
    StatusCode::ACCEPTED
}
