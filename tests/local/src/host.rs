//! A Lambda host of our own: each function binary runs as one long-lived process (a warm
//! sandbox) that speaks the Lambda Runtime API to a listener of its own, and the interpreter
//! reaches them all through one Lambda Invoke API listener.
//!
//! It answers as Lambda does: 200 with the function's payload; 200 with
//! `X-Amz-Function-Error: Unhandled` and `{errorType, errorMessage}` for a function error
//! (so the interpreter can rethrow under the `errorType`); 500 or 429 for a service error.
//! A function name may be a plain name or a full function ARN.
//!
//! Faults are injected here: a service error before the function runs, or a lost response
//! after it ran (so the retry runs the step a second time). With `twice`, every invocation runs
//! the function twice on the same input and records whether the second run changed the world
//! or the output (I5).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::idempotence::{IdempotenceCheck, SecondRun, WorldProbe};

/// One function: its name (as in the ASL's `${NameFunctionArn}`, kebab-cased) and binary.
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: PathBuf,
}

/// A fault the host injects into invocations of a function.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvokeFault {
    /// A function name, or `*` for every function.
    pub function: String,
    pub kind: FaultKind,
    /// How many invocations of each matching function it hits (default 1).
    #[serde(default = "one")]
    pub times: u32,
}

fn one() -> u32 {
    1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FaultKind {
    /// Lambda answers 500 `ServiceException` without running the function.
    ServiceError,
    /// Lambda answers 429 `TooManyRequestsException` without running the function.
    TooManyRequests,
    /// The function runs to the end, then the interpreter gets a 500 instead of its answer.
    LostResponse,
}

#[derive(Clone, Default)]
pub struct HostOptions {
    /// The functions' environment (the twin's endpoints, credentials, clock, settings).
    pub env: BTreeMap<String, String>,
    /// Each function's stdout and stderr go to `<logs>/<name>.log`.
    pub logs: PathBuf,
    /// The functions' timeout (Lambda's `Timeout`).
    pub timeout: Duration,
    pub faults: Vec<InvokeFault>,
    /// Runs every invocation twice and compares world and output.
    pub twice: Option<Arc<dyn WorldProbe>>,
}

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error(
        "function binary {0} is missing: build the functions first (cargo build --workspace --bins)"
    )]
    MissingBinary(PathBuf),
    #[error("cannot start {name}: {source}")]
    Spawn {
        name: String,
        source: std::io::Error,
    },
    #[error("cannot listen on 127.0.0.1: {0}")]
    Listen(std::io::Error),
    #[error("cannot write logs under {path}: {source}")]
    Logs {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What one function did during the run.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FunctionStats {
    pub invocations: u64,
    /// Function errors by `errorType`.
    pub errors: BTreeMap<String, u64>,
    pub faults_injected: u64,
    pub max_millis: u64,
    pub total_millis: u64,
    /// The process's peak resident memory (VmHWM), in KiB.
    pub peak_rss_kib: Option<u64>,
}

enum Outcome {
    Ok(Bytes),
    Error { error_type: String, message: String },
}

struct Invocation {
    id: String,
    payload: Bytes,
    reply: oneshot::Sender<Outcome>,
}

struct Function {
    name: String,
    arn: String,
    queue: mpsc::Sender<Invocation>,
    next: AsyncMutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    stats: Mutex<FunctionStats>,
    faults: Mutex<VecDeque<FaultKind>>,
    pid: Option<u32>,
    exited: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

impl Function {
    async fn call(&self, payload: Bytes, timeout: Duration) -> Outcome {
        if let Some(exit) = lock(&self.exited).clone() {
            return Outcome::Error {
                error_type: "Runtime.ExitError".into(),
                message: format!("{} exited: {exit}", self.name),
            };
        }
        let id = format!("{:016x}", REQUEST_SEQ.fetch_add(1, Ordering::Relaxed));
        let (reply, answer) = oneshot::channel();
        let inv = Invocation {
            id: id.clone(),
            payload,
            reply,
        };
        if self.queue.send(inv).await.is_err() {
            return Outcome::Error {
                error_type: "Runtime.ExitError".into(),
                message: format!("{} no longer takes invocations", self.name),
            };
        }
        match tokio::time::timeout(timeout, answer).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Outcome::Error {
                error_type: "Runtime.ExitError".into(),
                message: format!(
                    "{} exited during the invocation: {}",
                    self.name,
                    lock(&self.exited).clone().unwrap_or_default()
                ),
            },
            Err(_) => {
                lock(&self.pending).remove(&id);
                Outcome::Error {
                    error_type: "Sandbox.Timedout".into(),
                    message: format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
                }
            }
        }
    }
}

/// The running host. Dropping it kills the function processes.
pub struct LambdaHost {
    invoke_url: String,
    functions: Arc<BTreeMap<String, Arc<Function>>>,
    checks: Arc<Mutex<Vec<IdempotenceCheck>>>,
    tasks: Vec<JoinHandle<()>>,
    /// Per function process: the signal that stops it, and the task that owns it.
    processes: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl std::fmt::Debug for LambdaHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LambdaHost({})", self.invoke_url)
    }
}

async fn listen() -> Result<(TcpListener, String), HostError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(HostError::Listen)?;
    let addr = l.local_addr().map_err(HostError::Listen)?;
    Ok((l, addr.to_string()))
}

fn serve(listener: TcpListener, app: Router) -> JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "lambda host listener stopped");
        }
    })
}

impl LambdaHost {
    /// Starts one process per function and the Invoke API.
    pub async fn start(specs: &[FunctionSpec], opts: HostOptions) -> Result<Self, HostError> {
        std::fs::create_dir_all(&opts.logs).map_err(|source| HostError::Logs {
            path: opts.logs.clone(),
            source,
        })?;
        let mut functions = BTreeMap::new();
        let mut tasks = Vec::new();
        let mut processes = Vec::new();
        for spec in specs {
            if !spec.binary.is_file() {
                return Err(HostError::MissingBinary(spec.binary.clone()));
            }
            let (listener, addr) = listen().await?;
            let (queue, next) = mpsc::channel(16);
            let faults: VecDeque<FaultKind> = opts
                .faults
                .iter()
                .filter(|f| f.function == "*" || f.function == spec.name)
                .flat_map(|f| std::iter::repeat_n(f.kind, f.times as usize))
                .collect();
            let child = spawn(spec, &addr, &opts)?;
            let pid = child.id();
            let region = opts
                .env
                .get("AWS_REGION")
                .map_or("us-east-1", String::as_str);
            let f = Arc::new(Function {
                name: spec.name.clone(),
                arn: format!(
                    "arn:aws:lambda:{region}:000000000000:function:{}",
                    spec.name
                ),
                queue,
                next: AsyncMutex::new(next),
                pending: Mutex::new(HashMap::new()),
                stats: Mutex::new(FunctionStats::default()),
                faults: Mutex::new(faults),
                pid,
                exited: Mutex::new(None),
            });
            tasks.push(serve(listener, runtime_api(f.clone())));
            let (stop, stopped) = oneshot::channel();
            processes.push((stop, tokio::spawn(own_process(child, f.clone(), stopped))));
            functions.insert(spec.name.clone(), f);
        }
        let functions = Arc::new(functions);
        let checks = Arc::new(Mutex::new(Vec::new()));
        let (listener, addr) = listen().await?;
        let state = InvokeState {
            functions: functions.clone(),
            timeout: opts.timeout,
            twice: opts.twice.clone(),
            checks: checks.clone(),
        };
        let app = Router::new()
            .route(
                "/2015-03-31/functions/{name}/invocations",
                post(invoke_handler),
            )
            .with_state(state);
        tasks.push(serve(listener, app));
        Ok(Self {
            invoke_url: format!("http://{addr}"),
            functions,
            checks,
            tasks,
            processes,
        })
    }

    /// The Lambda Invoke API's base URL.
    pub fn invoke_url(&self) -> &str {
        &self.invoke_url
    }

    /// Each function's figures so far, with its process's peak memory.
    pub fn stats(&self) -> BTreeMap<String, FunctionStats> {
        self.functions
            .iter()
            .map(|(name, f)| {
                let mut s = lock(&f.stats).clone();
                s.peak_rss_kib = f.pid.and_then(peak_rss_kib);
                (name.clone(), s)
            })
            .collect()
    }

    /// The idempotence checks made in `twice` mode.
    pub fn idempotence_checks(&self) -> Vec<IdempotenceCheck> {
        lock(&self.checks).clone()
    }

    /// Stops the processes and listeners.
    pub async fn shutdown(self) {
        for (stop, owner) in self.processes {
            let _ = stop.send(());
            let _ = owner.await;
        }
        for t in &self.tasks {
            t.abort();
        }
    }
}

fn spawn(
    spec: &FunctionSpec,
    runtime_api: &str,
    opts: &HostOptions,
) -> Result<tokio::process::Child, HostError> {
    let log_path = opts.logs.join(format!("{}.log", spec.name));
    let log = std::fs::File::create(&log_path).map_err(|source| HostError::Logs {
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
    cmd.envs(&opts.env)
        .env("AWS_LAMBDA_RUNTIME_API", runtime_api)
        .env("AWS_LAMBDA_FUNCTION_NAME", &spec.name)
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env(
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{}", spec.name),
        )
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        .env(
            "AWS_LAMBDA_FUNCTION_TIMEOUT",
            opts.timeout.as_secs().to_string(),
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

/// Owns a function's process until the host stops it. A function that exits on its own (a
/// panic, a bad configuration) fails its pending invocation with `Runtime.ExitError`, as Lambda
/// does, instead of hanging it.
async fn own_process(
    mut child: tokio::process::Child,
    f: Arc<Function>,
    stop: oneshot::Receiver<()>,
) {
    tokio::select! {
        status = child.wait() => {
            let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
            *lock(&f.exited) = Some(format!("process exited ({status}; see its log)"));
            lock(&f.pending).clear();
        }
        // A dropped host drops the sender too: the process goes either way.
        _ = stop => {
            let _ = child.kill().await;
        }
    }
}

/// VmHWM from `/proc/<pid>/status`, in KiB.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status =
        std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn runtime_api(f: Arc<Function>) -> Router {
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
        .with_state(f)
}

async fn next_invocation(State(f): State<Arc<Function>>) -> Response {
    let inv = {
        let mut next = f.next.lock().await;
        next.recv().await
    };
    let Some(inv) = inv else {
        return StatusCode::GONE.into_response();
    };
    lock(&f.pending).insert(inv.id.clone(), inv.reply);
    let deadline = chrono::Utc::now().timestamp_millis() + 900_000;
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
    State(f): State<Arc<Function>>,
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
    State(f): State<Arc<Function>>,
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

async fn init_error(State(f): State<Arc<Function>>, body: Bytes) -> StatusCode {
    *lock(&f.exited) = Some(format!(
        "init error: {}",
        String::from_utf8_lossy(&body)
            .chars()
            .take(500)
            .collect::<String>()
    ));
    StatusCode::ACCEPTED
}

#[derive(Clone)]
struct InvokeState {
    functions: Arc<BTreeMap<String, Arc<Function>>>,
    timeout: Duration,
    twice: Option<Arc<dyn WorldProbe>>,
    checks: Arc<Mutex<Vec<IdempotenceCheck>>>,
}

/// `name`, `arn:...:function:name` or either with a `:qualifier`.
fn function_name(raw: &str) -> &str {
    let tail = raw.split_once(":function:").map_or(raw, |(_, t)| t);
    tail.split(':').next().unwrap_or(tail)
}

fn service_error(status: StatusCode, kind: &str, message: &str) -> Response {
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(kind) {
        headers.insert("x-amzn-errortype", v);
    }
    (
        status,
        headers,
        axum::Json(json!({"Type": "Service", "message": message})),
    )
        .into_response()
}

async fn invoke_handler(
    State(st): State<InvokeState>,
    UrlPath(raw): UrlPath<String>,
    payload: Bytes,
) -> Response {
    let name = function_name(&raw);
    let Some(f) = st.functions.get(name).cloned() else {
        return service_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {raw}"),
        );
    };
    let fault = lock(&f.faults).pop_front();
    if fault.is_some() {
        lock(&f.stats).faults_injected += 1;
    }
    match fault {
        Some(FaultKind::ServiceError) => {
            return service_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                "injected: Lambda service error before the function ran",
            );
        }
        Some(FaultKind::TooManyRequests) => {
            return service_error(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequestsException",
                "injected: Rate Exceeded",
            );
        }
        _ => {}
    }
    let started = Instant::now();
    let started_sim = st.twice.as_ref().map_or(0, |p| p.now());
    let mut outcome = f.call(payload.clone(), st.timeout).await;
    if let (Some(probe), Outcome::Ok(first)) = (&st.twice, &outcome) {
        let world_once = probe.snapshot();
        let writes_before = probe.writes();
        let second = f.call(payload.clone(), st.timeout).await;
        let run = SecondRun {
            writes: probe.writes().saturating_sub(writes_before),
            elapsed_seconds: probe.now() - started_sim,
        };
        let world_twice = probe.snapshot();
        let check = IdempotenceCheck::compare(
            name,
            first,
            match &second {
                Outcome::Ok(b) => Ok(b),
                Outcome::Error { error_type, .. } => Err(error_type.as_str()),
            },
            &world_once,
            &world_twice,
            &run,
        );
        lock(&st.checks).push(check);
        outcome = second;
    }
    let millis = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    {
        let mut s = lock(&f.stats);
        s.invocations += 1;
        s.total_millis += millis;
        s.max_millis = s.max_millis.max(millis);
        if let Outcome::Error { error_type, .. } = &outcome {
            *s.errors.entry(error_type.clone()).or_default() += 1;
        }
    }
    if fault == Some(FaultKind::LostResponse) {
        return service_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "ServiceException",
            "injected: the function ran, its response was lost",
        );
    }
    match outcome {
        Outcome::Ok(body) => (StatusCode::OK, body).into_response(),
        Outcome::Error {
            error_type,
            message,
        } => {
            let mut headers = HeaderMap::new();
            headers.insert(
                "x-amz-function-error",
                HeaderValue::from_static("Unhandled"),
            );
            (
                StatusCode::OK,
                headers,
                axum::Json(json!({"errorType": error_type, "errorMessage": message})),
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_function_is_found_by_name_or_by_arn() {
        assert_eq!(function_name("freeze"), "freeze");
        assert_eq!(
            function_name("arn:aws:lambda:us-west-2:000000000000:function:freeze"),
            "freeze"
        );
        assert_eq!(
            function_name("arn:aws:lambda:us-west-2:000000000000:function:freeze:$LATEST"),
            "freeze"
        );
    }
}
