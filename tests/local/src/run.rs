//! One whole run on the twin: boot the scenario, start the functions and the interpreter, run
//! the scenario's migration (or, with `workflow.amiReleases`, the migrations the AMI watcher
//! starts, one release after the other), answer operator callbacks, then check the invariants.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ngm_twin::scenario::Scenario;
use ngm_twin::twin::{Twin, TwinOptions};
use serde_json::Value;

use crate::aws_world;
use crate::expect::Expectation;
use crate::host::{FunctionSpec, HostOptions, LambdaHost};
use crate::idempotence::TwinProbe;
use crate::interp::{ExecutionRef, Interpreter, Line, Settings, StateEvent};
use crate::settings::{OperatorAnswer, WorkflowSettings};
use crate::sfn::{ExecutionInfo, Executions};
use crate::support::{answer_operator, blocked_pod, create_lock_table, moto_conf, operator_output};
use crate::timeline::Timeline;
use crate::verdict::{CleanupRun, Verdict};
use crate::watch::{self, WATCH_FUNCTION};
use crate::world;

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
    #[error("AMI watcher: {0}")]
    Watch(String),
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
            if !FUNCTIONS.contains(&f.as_str()) && f != CLEANUP_FUNCTION {
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
    /// The cleanup machine's events, when it ran.
    pub cleanup_events: Vec<StateEvent>,
    /// moto's counts of the functions' calls, as it gave them (by caller when it can).
    pub aws_calls: Value,
    /// Simulated seconds from the first migration's start to the last one's end.
    pub execution_seconds: Option<f64>,
    pub work_dir: PathBuf,
}

/// What one state machine execution ended with.
struct Ended {
    status: String,
    output: Option<Value>,
    error: Option<String>,
    cause: Option<String>,
    events: Vec<StateEvent>,
    answers: Vec<Result<(), String>>,
}

/// Everything one execution needs from the run.
struct Drive<'a> {
    twin: &'a Twin,
    workflow: &'a WorkflowSettings,
    region: &'a str,
    deadline: Instant,
    timeline: &'a mut Timeline,
    label: &'a str,
}

/// Runs one execution in the interpreter to its end, answering operator callbacks; ends at
/// once when the twin fails.
async fn drive(
    repo: &Path,
    settings: &Settings,
    log: PathBuf,
    d: Drive<'_>,
) -> Result<Ended, LocalError> {
    let mut interp = Interpreter::start(repo, settings, log).await?;
    let mut sfn_endpoint = None;
    let mut answers = Vec::new();
    let mut events = Vec::new();
    loop {
        let next = tokio::time::timeout_at(
            tokio::time::Instant::from_std(d.deadline),
            interp.lines.recv(),
        );
        // A twin task that panicked ends the run at once, naming the task and the panic (C7).
        let next = tokio::select! {
            n = next => n,
            fatal = d.twin.fatal() => {
                interp.stop().await;
                return Err(LocalError::Twin(fatal));
            }
        };
        let line = match next {
            Err(_) => {
                interp.stop().await;
                return Err(LocalError::TimedOut(
                    d.deadline.saturating_duration_since(Instant::now()),
                ));
            }
            Ok(None) => {
                return Err(crate::interp::InterpError::NoResult(interp.log().into()).into());
            }
            Ok(Some(l)) => l,
        };
        match line {
            Line::Ready { sfn_endpoint: e } => sfn_endpoint = Some(e),
            Line::Event(e) => {
                events.push(e.clone());
                d.timeline.record(e);
            }
            Line::TaskToken {
                state,
                token,
                detail,
            } => {
                let answer = match d.workflow.operator_answers {
                    Some(n) if answers.len() >= n as usize => OperatorAnswer::Abort,
                    _ => d.workflow.operator,
                };
                let pod = d
                    .workflow
                    .force_pod
                    .clone()
                    .or_else(|| blocked_pod(&detail));
                d.timeline.note(&format!(
                    "{}{state}: operator asked ({}); answering {answer:?}{}",
                    d.label,
                    detail
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("no message"),
                    if answer == OperatorAnswer::Force {
                        format!(" {}", pod.as_deref().unwrap_or("(no pod named)"))
                    } else {
                        String::new()
                    }
                ));
                let endpoint = sfn_endpoint.clone().unwrap_or_default();
                let output = operator_output(answer, pod.as_deref());
                answers.push(answer_operator(&endpoint, d.region, &token, output).await);
            }
            Line::TaskAnswered { .. } => {}
            Line::Result {
                status,
                output,
                error,
                cause,
            } => {
                interp.stop().await;
                return Ok(Ended {
                    status,
                    output,
                    error,
                    cause,
                    events,
                    answers,
                });
            }
        }
    }
}

/// The most simulated time the world is given to settle after a run before it is judged:
/// EKS's drain of a group deleted at the end (5 minutes at most), then the node lifecycle's
/// removal of its Nodes and pods (about 95 s), with room to spare.
pub const SETTLE_SECONDS: i64 = 600;

/// The name the cleanup function has in the ASL (`${CleanupFunctionArn}`) and the host.
pub const CLEANUP_FUNCTION: &str = "cleanup";

mod chain;
use chain::{Ctx, Driven, Last, watch_releases};

/// What starts the migrations of a run.
enum Mode {
    /// The scenario's `migration:`, started by the runner.
    Request(Value),
    /// The AMI watcher, one tick per release (`workflow.amiReleases`), each release published
    /// at these SSM parameters first.
    Watcher {
        releases: Vec<String>,
        parameters: BTreeSet<String>,
    },
}

/// Runs a scenario end to end.
#[allow(clippy::too_many_lines)]
pub async fn run(opts: RunOptions) -> Result<RunOutcome, LocalError> {
    let bad = |reason: String| LocalError::Scenario {
        path: opts.scenario.clone(),
        reason,
    };
    let scenario = Scenario::load(&opts.scenario).map_err(|e| bad(e.to_string()))?;
    let workflow = WorkflowSettings::from_scenario(scenario.workflow.as_ref()).map_err(bad)?;
    let known: Vec<&str> = FUNCTIONS
        .iter()
        .copied()
        .chain([CLEANUP_FUNCTION, WATCH_FUNCTION])
        .collect();
    let expectation = scenario
        .expect
        .as_ref()
        .map(|e| Expectation::parse(e, &known))
        .transpose()
        .map_err(bad)?;
    let mode = match (scenario.migration.clone(), workflow.ami_releases.clone()) {
        (Some(_), Some(_)) => {
            return Err(bad(
                "`migration:` and `workflow.amiReleases` both start migrations: give one (the AMI watcher makes its own request)".into(),
            ));
        }
        (None, None) => {
            return Err(bad(
                "no `migration:` (the MigrationRequest) to run, and no `workflow.amiReleases` for the AMI watcher to start migrations for".into(),
            ));
        }
        (Some(request), None) => Mode::Request(request),
        (None, Some(releases)) => Mode::Watcher {
            parameters: watch::release_parameters(&scenario).map_err(bad)?,
            releases,
        },
    };
    let repo = ngm_testkit::moto::repo_root();
    let definition_path = repo.join("statemachine/migration.asl.json");
    let definition = std::fs::read_to_string(&definition_path)
        .map_err(|e| LocalError::Io(format!("{}: {e}", definition_path.display())))?;
    let cleanup_path = repo.join("statemachine/cleanup.asl.json");
    let cleanup_definition = std::fs::read_to_string(&cleanup_path).ok();
    let region = scenario.cluster.region.clone();
    let substitutions = substitutions(&definition, &region).map_err(bad)?;
    let (global_timeout, timeouts) = crate::support::function_timeouts(&repo).map_err(bad)?;
    let granted = crate::support::function_actions(&repo).map_err(bad)?;
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
    // `${subnet:<zone>}` and the like, filled in by the twin.
    let mode = match mode {
        Mode::Request(request) => Mode::Request(twin.migration_request()?.unwrap_or(request)),
        watcher => watcher,
    };
    let speed = twin.clock().speed();
    let mut env = twin.env();
    let moto = moto_conf(&env).map_err(LocalError::Io)?;
    let lock_table = "ngm-locks";
    create_lock_table(&moto, lock_table)
        .await
        .map_err(LocalError::Io)?;
    let executions = Executions::default();
    let (sfn_url, sfn_task) = crate::sfn::serve(executions.clone())
        .await
        .map_err(|e| LocalError::Io(format!("serving Step Functions: {e}")))?;
    env.insert("AWS_ENDPOINT_URL_SFN".into(), sfn_url);
    env.insert("NGM_LOCK_TABLE".into(), lock_table.into());
    env.insert("NGM_CLUSTER_CA".into(), String::new());
    env.insert("RUST_LOG".into(), "info".into());
    let account_sm =
        |machine: &str| format!("arn:aws:states:{region}:000000000000:stateMachine:{machine}");
    let execution_arn = |machine: &str, name: &str| {
        format!("arn:aws:states:{region}:000000000000:execution:{machine}:{name}")
    };
    let cluster_arn = twin
        .eks()
        .map(|e| e.config().cluster_arn())
        .unwrap_or_default();
    if let Some(held) = &workflow.held_lock {
        let arn = execution_arn("ngm-migration", &held.holder);
        let now = twin.clock().now().timestamp();
        crate::support::hold_lock(&moto, lock_table, &cluster_arn, held, &arn, now)
            .await
            .map_err(LocalError::Io)?;
        #[allow(clippy::cast_precision_loss)]
        executions.insert(
            &arn,
            ExecutionInfo {
                name: held.holder.clone(),
                state_machine_arn: account_sm("ngm-migration"),
                status: if held.running { "RUNNING" } else { "SUCCEEDED" }.into(),
                start: (now - 7200) as f64,
                stop: (!held.running).then_some((now - 60) as f64),
                input: "{}".into(),
            },
        );
    }
    let dir = functions_dir(opts.functions_dir.as_deref());
    let with_cleanup = cleanup_definition.is_some();
    let mut specs: Vec<FunctionSpec> = FUNCTIONS
        .iter()
        .copied()
        .chain(with_cleanup.then_some(CLEANUP_FUNCTION))
        .map(|f| FunctionSpec {
            name: f.to_string(),
            binary: dir.join(f),
            timeout: timeouts.get(f).copied().unwrap_or(global_timeout),
            env: BTreeMap::new(),
        })
        .collect();
    if matches!(mode, Mode::Watcher { .. }) {
        // As the SAM template configures it: the stack's one cluster and its migration machine.
        let machine = account_sm("ngm-migration");
        specs.push(FunctionSpec {
            name: WATCH_FUNCTION.to_string(),
            binary: dir.join(WATCH_FUNCTION),
            timeout: timeouts
                .get(WATCH_FUNCTION)
                .copied()
                .unwrap_or(global_timeout),
            env: BTreeMap::from([
                ("NGM_CLUSTERS".to_string(), scenario.cluster.name.clone()),
                ("NGM_STATE_MACHINE_ARN".to_string(), machine.clone()),
            ]),
        });
        executions.accept_starts(&machine, twin.clock().clone());
    }
    let host = LambdaHost::start(
        &specs,
        HostOptions {
            env,
            logs: work_dir.join("functions"),
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

    let aws_source = |twin: &Twin| -> Option<(String, String)> {
        twin.moto_url().map(|m| (m.to_string(), region.clone()))
    };
    let read_aws = |twin: &Twin| {
        let src = aws_source(twin);
        let eks = twin.eks().cloned();
        async move {
            let Some((moto_url, region)) = src else {
                return Err("the twin runs without moto".to_string());
            };
            aws_world::read(&aws_world::Source {
                moto_url: &moto_url,
                region: &region,
                eks: eks.as_ref(),
                lock_table,
            })
            .await
        }
    };
    let aws_before = read_aws(&twin).await;
    let mut world_before = world::read(&twin, &scenario);
    // The scenario as the run is judged: with the watcher, its first request is the migration.
    let mut judged = scenario.clone();

    let started_sim = twin.clock().now();
    twin.begin_run();
    let mut timeline = Timeline::new(twin.clock().clone(), started_sim, opts.print_timeline);
    let limit = Duration::from_secs(workflow.timeout_seconds.unwrap_or(600));
    let ctx = Ctx {
        repo: &repo,
        twin: &twin,
        workflow: &workflow,
        region: &region,
        definition: &definition_path,
        substitutions: &substitutions,
        invoke_url: host.invoke_url(),
        speed,
        executions: &executions,
        work_dir: &work_dir,
    };
    let driven = match &mode {
        Mode::Request(request) => {
            let name = format!(
                "local-{}-{}",
                scenario.name.chars().take(40).collect::<String>(),
                started_sim.timestamp()
            );
            let arn = execution_arn("ngm-migration", &name);
            executions.insert(
                &arn,
                ExecutionInfo {
                    name: name.clone(),
                    state_machine_arn: account_sm("ngm-migration"),
                    status: "RUNNING".into(),
                    start: ctx.now_secs(),
                    stop: None,
                    input: request.to_string(),
                },
            );
            let execution = ExecutionRef {
                arn: arn.clone(),
                name: name.clone(),
            };
            ctx.migrate(
                execution,
                request.clone(),
                "interpreter.log",
                wall + limit,
                &mut timeline,
            )
            .await
            .map(|ended| Driven {
                last: Last {
                    name,
                    arn,
                    input: request.clone(),
                    ended,
                },
                runs: Vec::new(),
            })
        }
        Mode::Watcher {
            releases,
            parameters,
        } => {
            watch_releases(
                &ctx,
                releases,
                parameters,
                limit,
                &mut timeline,
                &mut judged,
                &mut world_before,
            )
            .await
        }
    };
    let Driven { last, runs } = match driven {
        Ok(d) => d,
        Err(e) => {
            host.shutdown().await;
            sfn_task.abort();
            twin.shutdown().await?;
            return Err(e);
        }
    };
    let Last {
        name,
        arn,
        input: request,
        ended,
    } = last;
    let deadline = match mode {
        Mode::Request(_) => wall + limit,
        Mode::Watcher { .. } => Instant::now() + limit,
    };

    // The EventBridge rule on "Step Functions Execution Status Change" starts the cleanup
    // machine for ABORTED, FAILED and TIMED_OUT, with the migration's input as a string.
    let mut cleanup = None;
    let mut cleanup_events = Vec::new();
    if workflow.cleanup && matches!(ended.status.as_str(), "ABORTED" | "FAILED" | "TIMED_OUT") {
        match &cleanup_definition {
            None => {
                cleanup = Some(CleanupRun {
                    status: format!("not run: {} is missing", cleanup_path.display()),
                    ..CleanupRun::default()
                });
            }
            Some(def) => {
                let cleanup_name = format!("cleanup-{name}");
                let cleanup_arn = execution_arn("ngm-cleanup", &cleanup_name);
                let input = serde_json::json!({
                    "executionArn": arn,
                    "status": ended.status,
                    "input": request.to_string(),
                });
                executions.insert(
                    &cleanup_arn,
                    ExecutionInfo {
                        name: cleanup_name.clone(),
                        state_machine_arn: account_sm("ngm-cleanup"),
                        status: "RUNNING".into(),
                        start: ctx.now_secs(),
                        stop: None,
                        input: input.to_string(),
                    },
                );
                timeline.note(&format!("cleanup: the execution ended {}", ended.status));
                let settings = Settings {
                    definition: cleanup_path.clone(),
                    substitutions: self::substitutions(def, &region).map_err(bad)?,
                    input,
                    invoke_url: host.invoke_url().to_string(),
                    speed,
                    execution: ExecutionRef {
                        arn: cleanup_arn.clone(),
                        name: cleanup_name,
                    },
                    stop: None,
                    timeout_seconds: None,
                };
                let done = drive(
                    &repo,
                    &settings,
                    work_dir.join("cleanup-interpreter.log"),
                    Drive {
                        twin: &twin,
                        workflow: &workflow,
                        region: &region,
                        deadline,
                        timeline: &mut timeline,
                        label: "cleanup ",
                    },
                )
                .await;
                match done {
                    Ok(c) => {
                        executions.end(&cleanup_arn, &c.status, ctx.now_secs());
                        cleanup = Some(CleanupRun {
                            status: c.status,
                            error: c.error,
                            cause: c.cause,
                            transitions: c
                                .events
                                .iter()
                                .filter(|e| e.kind == "StateEntered")
                                .count(),
                        });
                        cleanup_events = c.events;
                    }
                    Err(e) => {
                        cleanup = Some(CleanupRun {
                            status: format!("did not end: {e}"),
                            ..CleanupRun::default()
                        });
                    }
                }
            }
        }
    }

    #[allow(clippy::cast_precision_loss)]
    let execution_seconds = executions.span(
        &account_sm("ngm-migration"),
        started_sim.timestamp_millis() as f64 / 1000.0,
    );
    let aws_calls = match twin.moto_url() {
        Some(url) => crate::support::moto_request_counts(url).await,
        None => Value::Null,
    };
    // Terminated instances' Nodes linger until the node lifecycle controllers delete them and
    // the pod garbage collector takes their pods (about 95 s), and a group deleted at the end
    // goes only after EKS's drain: the world is read after that.
    let settle_by = twin.store().clock().now() + chrono::TimeDelta::seconds(SETTLE_SECONDS);
    while !twin.settled() && twin.store().clock().now() < settle_by {
        twin.store()
            .clock()
            .sleep(std::time::Duration::from_secs(1))
            .await;
    }
    let world = world::read(&twin, &judged);
    // A node group whose Auto Scaling group went first is still the twin's to report.
    let aws_after = read_aws(&twin).await.map(|mut a| {
        if let Ok(b) = &aws_before {
            aws_world::add_nodegroups(&mut a, twin.eks(), b.nodegroups.keys());
        }
        a
    });
    let report = twin.finish_run().await?;
    let functions = host.stats();
    let slow = host.slow_invocations();
    let checks = host.idempotence_checks();
    host.shutdown().await;
    sfn_task.abort();
    twin.shutdown().await?;

    let aws = match (aws_before, aws_after) {
        (Ok(b), Ok(a)) => Ok((b, a)),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let verdict = Verdict::compile(crate::verdict::Inputs {
        scenario: &judged,
        expectation: expectation.as_ref(),
        status: ended.status,
        output: ended.output,
        error: ended.error,
        cause: ended.cause,
        report: &report,
        world_before,
        world,
        aws,
        functions,
        slow,
        aws_requests: crate::support::total_counts(&aws_calls),
        granted: &granted,
        idempotence: checks,
        operator_answers: ended.answers,
        events: &ended.events,
        cleanup,
        wall: wall.elapsed(),
        simulated: twin_elapsed(started_sim, &report),
        executions: runs,
    });
    if let Some(path) = &opts.report {
        let body =
            serde_json::json!({ "verdict": &verdict, "twin": &report, "awsCalls": &aws_calls });
        std::fs::write(
            path,
            serde_json::to_string_pretty(&body).unwrap_or_default(),
        )
        .map_err(|e| LocalError::Io(format!("{}: {e}", path.display())))?;
    }
    Ok(RunOutcome {
        verdict,
        report,
        events: ended.events,
        cleanup_events,
        aws_calls,
        execution_seconds,
        work_dir,
    })
}

fn twin_elapsed(
    started: chrono::DateTime<chrono::Utc>,
    report: &ngm_twin::report::Report,
) -> Duration {
    (report.finished_at - started).to_std().unwrap_or_default()
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
