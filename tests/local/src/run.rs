//! One whole migration on the twin: boot the scenario, start the functions and the
//! interpreter, answer operator callbacks, then check the invariants.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngm_twin::scenario::Scenario;
use ngm_twin::twin::{Twin, TwinOptions};
use serde_json::Value;

use crate::host::{FunctionSpec, HostOptions, LambdaHost};
use crate::idempotence::TwinProbe;
use crate::interp::{ExecutionRef, Interpreter, Line, Settings, StateEvent};
use crate::settings::{OperatorAnswer, WorkflowSettings};
use crate::timeline::Timeline;
use crate::verdict::{Verdict, world_checks};

/// The step functions, in the order of docs/design.md §2, by the names the ASL's
/// `${<Name>FunctionArn}` substitutions kebab-case to.
pub const FUNCTIONS: [&str; 14] = [
    "validate-and-plan",
    "create-group",
    "check-group-ready",
    "freeze",
    "taint",
    "surge",
    "check-surge",
    "cut-traffic",
    "retire",
    "drain",
    "delete-old",
    "check-deleted",
    "restore",
    "rollback",
];

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("scenario {path}: {reason}")]
    Scenario { path: PathBuf, reason: String },
    #[error(transparent)]
    Twin(#[from] ngm_twin::twin::TwinError),
    #[error(transparent)]
    Host(#[from] crate::host::HostError),
    #[error(transparent)]
    Interp(#[from] crate::interp::InterpError),
    #[error("the execution did not end within {0:?} of wall time")]
    TimedOut(Duration),
    #[error("{0}")]
    Io(String),
}

/// How to run.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    pub scenario: PathBuf,
    /// Where to write the twin's JSON report and the run's figures.
    pub report: Option<PathBuf>,
    /// Where the function binaries are (default: `NGM_FUNCTIONS_DIR`, else beside this
    /// executable, else its parent: `target/debug` for both binaries and tests).
    pub functions_dir: Option<PathBuf>,
    /// Logs of the functions and the interpreter (default: a fresh directory under the
    /// system's temporary directory).
    pub work_dir: Option<PathBuf>,
    /// Overrides the scenario's speed.
    pub speed: Option<f64>,
    /// Prints the timeline as it happens.
    pub print_timeline: bool,
}

/// Where the function binaries are.
pub fn functions_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    if let Some(d) = std::env::var_os("NGM_FUNCTIONS_DIR") {
        return PathBuf::from(d);
    }
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    // Integration tests run from target/<profile>/deps.
    if dir.ends_with("deps") {
        return dir.parent().map(Path::to_path_buf).unwrap_or(dir);
    }
    dir
}

pub use ngm_core::asl::function_for_substitution;

fn substitutions(definition: &str, region: &str) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    let mut rest = definition;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or("unterminated ${ in the definition")?;
        let key = &after[..end];
        let value = if key == "EventBusName" {
            "ngm-local".to_string()
        } else if let Some(f) = function_for_substitution(key) {
            if !FUNCTIONS.contains(&f.as_str()) {
                return Err(format!("${{{key}}} names no function ({f})"));
            }
            format!("arn:aws:lambda:{region}:000000000000:function:{f}")
        } else {
            return Err(format!("no local value for ${{{key}}}"));
        };
        out.insert(key.to_string(), value);
        rest = &after[end..];
    }
    Ok(out)
}

/// The result of a run.
#[derive(Debug)]
pub struct RunOutcome {
    pub verdict: Verdict,
    pub report: ngm_twin::report::Report,
    pub events: Vec<StateEvent>,
    pub work_dir: PathBuf,
}

/// Runs a scenario end to end.
pub async fn run(opts: RunOptions) -> Result<RunOutcome, LocalError> {
    let bad = |reason: String| LocalError::Scenario {
        path: opts.scenario.clone(),
        reason,
    };
    let scenario = Scenario::load(&opts.scenario).map_err(|e| bad(e.to_string()))?;
    let workflow = WorkflowSettings::from_scenario(scenario.workflow.as_ref()).map_err(bad)?;
    let request = scenario
        .migration
        .clone()
        .ok_or_else(|| bad("no `migration:` (the MigrationRequest) to run".into()))?;
    let repo = ngm_testkit::moto::repo_root();
    let definition_path = repo.join("statemachine/migration.asl.json");
    let definition = std::fs::read_to_string(&definition_path)
        .map_err(|e| LocalError::Io(format!("{}: {e}", definition_path.display())))?;
    let region = scenario.cluster.region.clone();
    let substitutions = substitutions(&definition, &region).map_err(bad)?;
    let work_dir = match &opts.work_dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!(
            "ngm-local-{}-{}",
            scenario.name,
            chrono::Utc::now().format("%Y%m%dT%H%M%S%.3f")
        )),
    };
    std::fs::create_dir_all(&work_dir).map_err(|e| LocalError::Io(e.to_string()))?;

    let wall = Instant::now();
    let mut twin = Twin::start(
        Some(scenario.clone()),
        TwinOptions {
            speed: opts.speed,
            kubeconfig: Some(work_dir.join("kubeconfig")),
            ..TwinOptions::default()
        },
    )
    .await?;
    let speed = twin.clock().speed();
    let mut env = twin.env();
    let lock_table = "ngm-locks";
    create_lock_table(&env, lock_table).await?;
    env.insert("NGM_LOCK_TABLE".into(), lock_table.into());
    env.insert("NGM_CLUSTER_CA".into(), String::new());
    env.insert("RUST_LOG".into(), "info".into());
    env.insert("AWS_SDK_UA_APP_ID".into(), "ngm-local".into());
    let dir = functions_dir(opts.functions_dir.as_deref());
    let specs: Vec<FunctionSpec> = FUNCTIONS
        .iter()
        .map(|f| FunctionSpec {
            name: (*f).to_string(),
            binary: dir.join(f),
        })
        .collect();
    let host = LambdaHost::start(
        &specs,
        HostOptions {
            env,
            logs: work_dir.join("functions"),
            timeout: Duration::from_secs(60),
            faults: workflow.lambda_faults.clone(),
            twice: workflow.twice.then(|| {
                Arc::new(TwinProbe {
                    store: twin.store().clone(),
                    eks: twin.eks().cloned(),
                }) as _
            }),
        },
    )
    .await?;

    let started_sim = twin.clock().now();
    twin.begin_run();
    let name = format!(
        "local-{}-{}",
        scenario.name.chars().take(40).collect::<String>(),
        started_sim.timestamp()
    );
    let settings = Settings {
        definition: definition_path,
        substitutions,
        input: request,
        invoke_url: host.invoke_url().to_string(),
        speed,
        execution: ExecutionRef {
            arn: format!("arn:aws:states:{region}:000000000000:execution:ngm-migration:{name}"),
            name,
        },
    };
    let mut interp = Interpreter::start(&repo, &settings, work_dir.join("interpreter.log")).await?;
    let mut timeline = Timeline::new(twin.clock().clone(), started_sim, opts.print_timeline);
    let limit = Duration::from_secs(workflow.timeout_seconds.unwrap_or(600));
    let mut sfn_endpoint = None;
    let mut answers = Vec::new();
    let result = loop {
        let line = match tokio::time::timeout_at(
            tokio::time::Instant::from_std(wall + limit),
            interp.lines.recv(),
        )
        .await
        {
            Err(_) => {
                interp.stop().await;
                host.shutdown().await;
                twin.shutdown().await?;
                return Err(LocalError::TimedOut(limit));
            }
            Ok(None) => {
                return Err(crate::interp::InterpError::NoResult(interp.log().into()).into());
            }
            Ok(Some(l)) => l,
        };
        match line {
            Line::Ready { sfn_endpoint: e } => sfn_endpoint = Some(e),
            Line::Event(e) => timeline.record(e),
            Line::TaskToken {
                state,
                token,
                detail,
            } => {
                timeline.note(&format!(
                    "{state}: operator asked ({}); answering {:?}",
                    detail
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message"),
                    workflow.operator
                ));
                let endpoint = sfn_endpoint.clone().unwrap_or_default();
                answers.push(answer_operator(&endpoint, &region, &token, workflow.operator).await);
            }
            Line::TaskAnswered { .. } => {}
            Line::Result {
                status,
                output,
                error,
                cause,
            } => break (status, output, error, cause),
        }
    };
    interp.stop().await;
    let aws_requests = match twin.moto_url() {
        Some(url) => moto_request_counts(url).await,
        None => BTreeMap::new(),
    };
    let world = world_checks(&twin, &scenario);
    let report = twin.finish_run().await?;
    let functions = host.stats();
    let checks = host.idempotence_checks();
    host.shutdown().await;
    twin.shutdown().await?;

    let verdict = Verdict::compile(crate::verdict::Inputs {
        scenario: &scenario,
        status: result.0,
        output: result.1,
        error: result.2,
        cause: result.3,
        report: &report,
        world,
        functions,
        aws_requests,
        idempotence: checks,
        operator_answers: answers,
        events: timeline.events(),
        wall: wall.elapsed(),
        simulated: twin_elapsed(started_sim, &report),
        timeout: Duration::from_secs(60),
    });
    if let Some(path) = &opts.report {
        let body = serde_json::json!({ "verdict": &verdict, "twin": &report });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&body).unwrap_or_default(),
        )
        .map_err(|e| LocalError::Io(format!("{}: {e}", path.display())))?;
    }
    Ok(RunOutcome {
        verdict,
        report,
        events: timeline.events().to_vec(),
        work_dir,
    })
}

fn twin_elapsed(
    started: chrono::DateTime<chrono::Utc>,
    report: &ngm_twin::report::Report,
) -> Duration {
    (report.finished_at - started).to_std().unwrap_or_default()
}

/// The functions' calls to moto by `service:Operation` (tests/aws/moto_server.py counts the
/// requests whose user agent carries `app/ngm-local`); empty if moto cannot say.
async fn moto_request_counts(moto_url: &str) -> BTreeMap<String, u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(addr) = moto_url.strip_prefix("http://") else {
        return BTreeMap::new();
    };
    let Ok(mut conn) = tokio::net::TcpStream::connect(addr).await else {
        return BTreeMap::new();
    };
    let request =
        format!("GET /ngm/requests HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut response = String::new();
    if conn.write_all(request.as_bytes()).await.is_err()
        || conn.read_to_string(&mut response).await.is_err()
    {
        return BTreeMap::new();
    }
    response
        .split_once("\r\n\r\n")
        .and_then(|(_, body)| serde_json::from_str(body).ok())
        .unwrap_or_default()
}

/// The lock table in moto, as the SAM template creates it in AWS.
async fn create_lock_table(env: &BTreeMap<String, String>, table: &str) -> Result<(), LocalError> {
    let endpoint = env
        .get("AWS_ENDPOINT_URL")
        .ok_or_else(|| LocalError::Io("the twin runs without moto".into()))?;
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(
            env.get("AWS_REGION").cloned().unwrap_or_default(),
        ))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
            "testing", "testing", None, None, "local",
        ))
        .load()
        .await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    ngm_adapters::aws::lock::ensure_lock_table(&client, table)
        .await
        .map_err(|e| LocalError::Io(format!("creating the lock table: {e}")))
}

/// Answers a task token through the Step Functions API, with the real SDK, as `ngm approve`
/// and `ngm abort` do.
async fn answer_operator(
    endpoint: &str,
    region: &str,
    token: &str,
    answer: OperatorAnswer,
) -> Result<(), String> {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_sfn::config::Credentials::new(
            "testing", "testing", None, None, "local",
        ))
        .load()
        .await;
    let sfn = aws_sdk_sfn::Client::new(&conf);
    match answer {
        OperatorAnswer::Approve => sfn
            .send_task_success()
            .task_token(token)
            .output(r#"{"action":"retry"}"#)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}", aws_sdk_sfn::error::DisplayErrorContext(e))),
        OperatorAnswer::Abort => sfn
            .send_task_failure()
            .task_token(token)
            .error("OperatorAborted")
            .cause("the operator aborted the migration at the PDB-blocked drain")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("{}", aws_sdk_sfn::error::DisplayErrorContext(e))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutions_name_the_step_functions() {
        assert_eq!(
            function_for_substitution("ValidateAndPlanFunctionArn").as_deref(),
            Some("validate-and-plan")
        );
        assert_eq!(function_for_substitution("EventBusName"), None);
        let s = substitutions(
            r#"{"a":"${CheckDeletedFunctionArn}","b":"${EventBusName}"}"#,
            "us-west-2",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            s["CheckDeletedFunctionArn"],
            "arn:aws:lambda:us-west-2:000000000000:function:check-deleted"
        );
        assert!(substitutions(r#"{"a":"${NoSuchFunctionArn}"}"#, "x").is_err());
        assert!(substitutions(r#"{"a":"${Other}"}"#, "x").is_err());
    }
}
