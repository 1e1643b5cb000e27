//! A Lambda host of our own: each function binary runs as a long-lived process (a warm
//! sandbox) that speaks the Lambda Runtime API to a listener of its own, and the interpreter
//! reaches them all through one Lambda Invoke API listener.
//!
//! It answers as Lambda does: 200 with the function's payload; 200 with
//! `X-Amz-Function-Error: Unhandled` and `{errorType, errorMessage}` for a function error
//! (so the interpreter can rethrow under the `errorType`); 500 or 429 for a service error.
//! A function name may be a plain name or a full function ARN.
//!
//! Each function has its own timeout (infra/template.yaml). An invocation still running at
//! its timeout is answered `Sandbox.Timedout` ("Task timed out after N.00 seconds"), its
//! process is killed and the next invocation gets a fresh one ([`process`]), as Lambda does.
//! Every invocation's duration is measured against a quarter of that timeout (I6).
//!
//! Faults are injected here: a service error before the function runs, a lost response after
//! it ran (so the retry runs the step a second time), or a timeout (the function is killed
//! and the invocation answered `Sandbox.Timedout`). With `twice`, every invocation runs the
//! function twice on the same input and records whether the second run changed the world or
//! the output (I5).

mod process;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Mutex as AsyncMutex, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::idempotence::{IdempotenceCheck, SecondRun, WorldProbe};

/// One function: its name (as in the ASL's `${NameFunctionArn}`, kebab-cased), binary and
/// timeout (Lambda's `Timeout`).
#[derive(Clone, Debug)]
pub struct FunctionSpec {
    pub name: String,
    pub binary: PathBuf,
    pub timeout: Duration,
    /// Its own environment, over the host's (`HostOptions::env`).
    pub env: BTreeMap<String, String>,
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
    /// How many invocations of each matching function pass first (default 0).
    #[serde(default)]
    pub after: u32,
    /// For `timeout`: the function is killed this many wall milliseconds into the invocation
    /// (mid-work). Without it, it is killed as it answers: it did all its work and its answer
    /// never came, the hardest case for idempotence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_millis: Option<u64>,
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
    /// The function runs past its timeout: Lambda kills it and answers `Sandbox.Timedout`.
    Timeout,
}

/// One planned fault: the invocation it hits (counted from 1) and how.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Planned {
    kind: FaultKind,
    at_millis: Option<u64>,
}

#[derive(Clone, Default)]
pub struct HostOptions {
    /// The functions' environment (the twin's endpoints, credentials, clock, settings).
    pub env: BTreeMap<String, String>,
    /// Each function's stdout and stderr go to `<logs>/<name>.log`.
    pub logs: PathBuf,
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
    /// Injected `timeout` faults (each surfaces as one `Sandbox.Timedout`).
    pub timeouts_injected: u64,
    pub max_millis: u64,
    pub total_millis: u64,
    /// Processes started after the first (killed at a timeout, or exited).
    pub restarts: u64,
    /// The processes' peak resident memory (VmHWM), in KiB.
    pub peak_rss_kib: Option<u64>,
    /// The longest init of its processes: from the spawn to the first poll of the Runtime
    /// API's `invocation/next`, in milliseconds (Lambda's init duration).
    pub init_millis: Option<u64>,
}

/// An invocation that took more than a quarter of its function's timeout (I6).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SlowInvocation {
    pub function: String,
    pub millis: u64,
    pub budget_millis: u64,
    /// It ran into the timeout itself.
    pub timed_out: bool,
    /// An injected fault made it slow (a `timeout` fault's kill).
    pub injected: bool,
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
    timeout: Duration,
    queue: mpsc::Sender<Invocation>,
    next: AsyncMutex<mpsc::Receiver<Invocation>>,
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    stats: Mutex<FunctionStats>,
    /// Invocations seen, and the faults planned by invocation number.
    seen: Mutex<u64>,
    faults: Mutex<BTreeMap<u64, Planned>>,
    /// The current process and its generation (ends when it is killed or exits).
    pid: Mutex<Option<u32>>,
    generation: watch::Sender<u64>,
    kill: mpsc::UnboundedSender<()>,
    exited: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(1);

fn timed_out(timeout: Duration) -> Outcome {
    Outcome::Error {
        error_type: "Sandbox.Timedout".into(),
        message: format!("Task timed out after {:.2} seconds", timeout.as_secs_f64()),
    }
}

impl Function {
    /// Runs one invocation; with a `timeout` fault, kills the process at `at_millis` or as it
    /// answers.
    async fn call(&self, payload: Bytes, fault: Option<Planned>) -> Outcome {
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
        let injected = fault.filter(|p| p.kind == FaultKind::Timeout);
        let limit = injected
            .and_then(|p| p.at_millis)
            .map_or(self.timeout, |ms| {
                Duration::from_millis(ms).min(self.timeout)
            });
        match tokio::time::timeout(limit, answer).await {
            Ok(Ok(_)) if injected.is_some() => {
                // It answered, but (as the fault has it) only after its timeout: Lambda
                // discards the answer and stops the sandbox.
                let _ = self.kill.send(());
                timed_out(self.timeout)
            }
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
                let _ = self.kill.send(());
                timed_out(self.timeout)
            }
        }
    }
}

/// The running host. Dropping it kills the function processes.
pub struct LambdaHost {
    invoke_url: String,
    functions: Arc<BTreeMap<String, Arc<Function>>>,
    checks: Arc<Mutex<Vec<IdempotenceCheck>>>,
    slow: Arc<Mutex<Vec<SlowInvocation>>>,
    tasks: Vec<JoinHandle<()>>,
    /// Per function: the signal that stops it, and the task that owns its processes.
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

/// The faults for one function, by the invocation (from 1) each hits.
fn plan_faults(faults: &[InvokeFault], function: &str) -> BTreeMap<u64, Planned> {
    let mut out = BTreeMap::new();
    for f in faults
        .iter()
        .filter(|f| f.function == "*" || f.function == function)
    {
        let mut n = u64::from(f.after) + 1;
        for _ in 0..f.times {
            // Two faults on one invocation: the later one takes the next free invocation.
            while out.contains_key(&n) {
                n += 1;
            }
            out.insert(
                n,
                Planned {
                    kind: f.kind,
                    at_millis: f.at_millis,
                },
            );
            n += 1;
        }
    }
    out
}

impl LambdaHost {
    /// Starts one process per function and the Invoke API.
    pub async fn start(specs: &[FunctionSpec], opts: HostOptions) -> Result<Self, HostError> {
        std::fs::create_dir_all(&opts.logs).map_err(|source| HostError::Logs {
            path: opts.logs.clone(),
            source,
        })?;
        let mut functions = BTreeMap::new();
        let mut processes = Vec::new();
        let region = opts
            .env
            .get("AWS_REGION")
            .map_or("us-east-1", String::as_str)
            .to_string();
        for spec in specs {
            if !spec.binary.is_file() {
                return Err(HostError::MissingBinary(spec.binary.clone()));
            }
            let (queue, next) = mpsc::channel(16);
            let (kill, kills) = mpsc::unbounded_channel();
            let f = Arc::new(Function {
                name: spec.name.clone(),
                arn: format!(
                    "arn:aws:lambda:{region}:000000000000:function:{}",
                    spec.name
                ),
                timeout: spec.timeout,
                queue,
                next: AsyncMutex::new(next),
                pending: Mutex::new(HashMap::new()),
                stats: Mutex::new(FunctionStats::default()),
                seen: Mutex::new(0),
                faults: Mutex::new(plan_faults(&opts.faults, &spec.name)),
                pid: Mutex::new(None),
                generation: watch::channel(0).0,
                kill,
                exited: Mutex::new(None),
            });
            // Truncate the log once; restarts append to it.
            let log = opts.logs.join(format!("{}.log", spec.name));
            std::fs::write(&log, b"").map_err(|source| HostError::Logs { path: log, source })?;
            let (stop, stopped) = oneshot::channel();
            processes.push((
                stop,
                tokio::spawn(process::supervise(
                    spec.clone(),
                    opts.clone(),
                    f.clone(),
                    kills,
                    stopped,
                )),
            ));
            functions.insert(spec.name.clone(), f);
        }
        let functions = Arc::new(functions);
        let checks = Arc::new(Mutex::new(Vec::new()));
        let slow = Arc::new(Mutex::new(Vec::new()));
        let (listener, addr) = listen().await?;
        let state = InvokeState {
            functions: functions.clone(),
            twice: opts.twice.clone(),
            checks: checks.clone(),
            slow: slow.clone(),
        };
        let app = Router::new()
            .route(
                "/2015-03-31/functions/{name}/invocations",
                post(invoke_handler),
            )
            .with_state(state);
        Ok(Self {
            invoke_url: format!("http://{addr}"),
            functions,
            checks,
            slow,
            tasks: vec![serve(listener, app)],
            processes,
        })
    }

    /// The Lambda Invoke API's base URL.
    pub fn invoke_url(&self) -> &str {
        &self.invoke_url
    }

    /// Each function's figures so far, with its processes' peak memory.
    pub fn stats(&self) -> BTreeMap<String, FunctionStats> {
        self.functions
            .iter()
            .map(|(name, f)| {
                let mut s = lock(&f.stats).clone();
                if let Some(kib) = lock(&f.pid).and_then(process::peak_rss_kib) {
                    s.peak_rss_kib = Some(s.peak_rss_kib.unwrap_or(0).max(kib));
                }
                (name.clone(), s)
            })
            .collect()
    }

    /// The idempotence checks made in `twice` mode.
    pub fn idempotence_checks(&self) -> Vec<IdempotenceCheck> {
        lock(&self.checks).clone()
    }

    /// Every invocation over a quarter of its function's timeout (I6).
    pub fn slow_invocations(&self) -> Vec<SlowInvocation> {
        lock(&self.slow).clone()
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

#[derive(Clone)]
struct InvokeState {
    functions: Arc<BTreeMap<String, Arc<Function>>>,
    twice: Option<Arc<dyn WorldProbe>>,
    checks: Arc<Mutex<Vec<IdempotenceCheck>>>,
    slow: Arc<Mutex<Vec<SlowInvocation>>>,
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

/// Runs the invocation in a task of its own: a caller that goes away (an execution stopped
/// while its Task ran) does not stop the function, as it does not in Lambda.
async fn invoke_handler(
    State(st): State<InvokeState>,
    UrlPath(raw): UrlPath<String>,
    payload: Bytes,
) -> Response {
    tokio::spawn(invoke(st, raw, payload))
        .await
        .unwrap_or_else(|e| {
            service_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "ServiceException",
                &format!("the host's invocation task failed: {e}"),
            )
        })
}

async fn invoke(st: InvokeState, raw: String, payload: Bytes) -> Response {
    let name = function_name(&raw);
    let Some(f) = st.functions.get(name).cloned() else {
        return service_error(
            StatusCode::NOT_FOUND,
            "ResourceNotFoundException",
            &format!("Function not found: {raw}"),
        );
    };
    let fault = {
        let mut seen = lock(&f.seen);
        *seen += 1;
        lock(&f.faults).remove(&seen)
    };
    if let Some(p) = fault {
        let mut s = lock(&f.stats);
        s.faults_injected += 1;
        if p.kind == FaultKind::Timeout {
            s.timeouts_injected += 1;
        }
    }
    match fault.map(|p| p.kind) {
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
    let mut outcome = f.call(payload.clone(), fault).await;
    if let (Some(probe), Outcome::Ok(first)) = (&st.twice, &outcome) {
        let world_once = probe.snapshot();
        let writes_before = probe.writes();
        let second = f.call(payload.clone(), None).await;
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
    let budget = u64::try_from(f.timeout.as_millis() / 4).unwrap_or(u64::MAX);
    let hit_timeout =
        matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "Sandbox.Timedout");
    let injected_timeout = fault.is_some_and(|p| p.kind == FaultKind::Timeout);
    if millis > budget || hit_timeout {
        lock(&st.slow).push(SlowInvocation {
            function: name.to_string(),
            millis,
            budget_millis: budget,
            timed_out: hit_timeout,
            injected: injected_timeout,
        });
    }
    {
        let mut s = lock(&f.stats);
        s.invocations += 1;
        s.total_millis += millis;
        s.max_millis = s.max_millis.max(millis);
        if let Outcome::Error { error_type, .. } = &outcome {
            *s.errors.entry(error_type.clone()).or_default() += 1;
        }
    }
    if fault.is_some_and(|p| p.kind == FaultKind::LostResponse) {
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

    fn fault(function: &str, kind: FaultKind, times: u32, after: u32) -> InvokeFault {
        InvokeFault {
            function: function.into(),
            kind,
            times,
            after,
            at_millis: None,
        }
    }

    #[test]
    fn faults_are_planned_by_invocation_number() {
        let plan = plan_faults(
            &[
                fault("*", FaultKind::ServiceError, 1, 0),
                fault("retire", FaultKind::Timeout, 2, 3),
                fault("drain", FaultKind::LostResponse, 1, 0),
            ],
            "retire",
        );
        let kinds: Vec<(u64, FaultKind)> = plan.iter().map(|(n, p)| (*n, p.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (1, FaultKind::ServiceError),
                (4, FaultKind::Timeout),
                (5, FaultKind::Timeout)
            ]
        );
        // Two faults meant for one invocation hit two in a row.
        let plan = plan_faults(
            &[
                fault("*", FaultKind::ServiceError, 1, 0),
                fault("*", FaultKind::LostResponse, 1, 0),
            ],
            "freeze",
        );
        assert_eq!(plan.keys().copied().collect::<Vec<_>>(), vec![1, 2]);
    }

    /// A function that takes `delay` seconds to start, then polls the Runtime API for its
    /// first invocation and waits for it (bash's /dev/tcp: no HTTP client needed).
    fn slow_starting_function(dir: &std::path::Path, delay: &str) -> PathBuf {
        let path = dir.join("slow-start");
        std::fs::write(
            &path,
            format!(
                "#!/usr/bin/env bash\n\
                 sleep {delay}\n\
                 exec 3<>/dev/tcp/${{AWS_LAMBDA_RUNTIME_API%:*}}/${{AWS_LAMBDA_RUNTIME_API#*:}}\n\
                 printf 'GET /2018-06-01/runtime/invocation/next HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3\n\
                 cat <&3 >/dev/null\n"
            ),
        )
        .unwrap();
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
        path
    }

    #[tokio::test]
    async fn init_is_timed_from_the_spawn_to_the_first_poll_for_an_invocation() {
        let dir = std::env::temp_dir().join(format!("ngm-host-init-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let spec = FunctionSpec {
            name: "slow-start".into(),
            binary: slow_starting_function(&dir, "1"),
            timeout: Duration::from_secs(30),
            env: BTreeMap::new(),
        };
        let host = LambdaHost::start(
            &[spec],
            HostOptions {
                logs: dir.join("logs"),
                ..HostOptions::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(
            host.stats()["slow-start"].init_millis,
            None,
            "not polled yet"
        );
        let mut init = None;
        for _ in 0..200 {
            init = host.stats()["slow-start"].init_millis;
            if init.is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        host.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
        let init = init.expect("the process polled invocation/next within 10 s");
        assert!(
            (1000..6000).contains(&init),
            "init {init} ms: the process slept 1 s before its first poll"
        );
    }

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
