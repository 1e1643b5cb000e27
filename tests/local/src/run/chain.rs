//! The migration executions of a run: one execution of the migration machine driven to its
//! end ([`Ctx::migrate`]), and the AMI watcher's chain of them, one release after the other
//! ([`watch_releases`]).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use ngm_twin::scenario::Scenario;
use ngm_twin::twin::Twin;
use serde_json::Value;

use super::{Drive, Ended, LocalError, drive};
use crate::expect::Outcome;
use crate::interp::{ExecutionRef, Settings};
use crate::settings::WorkflowSettings;
use crate::sfn::Executions;
use crate::timeline::Timeline;
use crate::watch::{self, ExecutionRun, WATCH_FUNCTION};
use crate::world;

/// The last execution of a run, with every execution's events and operator answers.
pub(super) struct Last {
    pub(super) name: String,
    pub(super) arn: String,
    pub(super) input: Value,
    pub(super) ended: Ended,
}

/// What the migration executions of a run did.
pub(super) struct Driven {
    pub(super) last: Last,
    /// The migrations the AMI watcher started, in order (none for a `migration:`).
    pub(super) runs: Vec<ExecutionRun>,
}

/// What every migration execution of a run shares.
pub(super) struct Ctx<'a> {
    pub(super) repo: &'a Path,
    pub(super) twin: &'a Twin,
    pub(super) workflow: &'a WorkflowSettings,
    pub(super) region: &'a str,
    pub(super) definition: &'a Path,
    pub(super) substitutions: &'a BTreeMap<String, String>,
    pub(super) invoke_url: &'a str,
    pub(super) speed: f64,
    pub(super) executions: &'a Executions,
    pub(super) work_dir: &'a Path,
}

impl Ctx<'_> {
    #[allow(clippy::cast_precision_loss)]
    pub(super) fn now_secs(&self) -> f64 {
        self.twin.clock().now().timestamp_millis() as f64 / 1000.0
    }

    /// Runs one execution of the migration machine to its end, and ends it in `Executions`.
    pub(super) async fn migrate(
        &self,
        execution: ExecutionRef,
        input: Value,
        log: &str,
        deadline: Instant,
        timeline: &mut Timeline,
    ) -> Result<Ended, LocalError> {
        let settings = Settings {
            definition: self.definition.to_path_buf(),
            substitutions: self.substitutions.clone(),
            input,
            invoke_url: self.invoke_url.to_string(),
            speed: self.speed,
            execution: execution.clone(),
            stop: self.workflow.stop_execution.clone(),
            timeout_seconds: self.workflow.execution_timeout_seconds,
        };
        let ended = drive(
            self.repo,
            &settings,
            self.work_dir.join(log),
            Drive {
                twin: self.twin,
                workflow: self.workflow,
                region: self.region,
                deadline,
                timeline,
                label: "",
            },
        )
        .await?;
        self.executions
            .end(&execution.arn, &ended.status, self.now_secs());
        Ok(ended)
    }
}

/// The AMI watcher's run: for each release, publish it, run one scheduled tick of the watcher,
/// and drive what it started to its end; stop at the first execution that did not succeed.
/// The first started request becomes the `migration:` the run is judged by (`judged`), and
/// the cluster before it is read then (the watcher changes nothing in the cluster).
pub(super) async fn watch_releases(
    c: &Ctx<'_>,
    releases: &[String],
    parameters: &BTreeSet<String>,
    limit: Duration,
    timeline: &mut Timeline,
    judged: &mut Scenario,
    world_before: &mut world::WorldState,
) -> Result<Driven, LocalError> {
    let moto = c
        .twin
        .moto_url()
        .ok_or_else(|| LocalError::Watch("the twin runs without moto".into()))?;
    let mut runs = Vec::new();
    let mut events = Vec::new();
    let mut answers = Vec::new();
    let mut last = None;
    'releases: for (i, release) in releases.iter().enumerate() {
        watch::publish(moto, c.region, parameters, release)
            .await
            .map_err(LocalError::Watch)?;
        let event = watch::scheduled_event(c.region, c.twin.clock().now(), i + 1);
        let reports = watch::tick(c.invoke_url, &event)
            .await
            .map_err(LocalError::Watch)?;
        timeline.note(&format!(
            "{WATCH_FUNCTION} tick, {release} recommended: {}",
            watch::describe(&reports)
        ));
        let started = c.executions.take_started();
        if started.is_empty() {
            return Err(LocalError::Watch(format!(
                "release {release} was published, and {WATCH_FUNCTION} started no migration ({})",
                watch::describe(&reports)
            )));
        }
        for (arn, info) in started {
            let input: Value = serde_json::from_str(&info.input).map_err(|e| {
                LocalError::Watch(format!("{}: its input is not JSON: {e}", info.name))
            })?;
            if judged.migration.is_none() {
                judged.migration = Some(input.clone());
                *world_before = world::read(c.twin, judged);
            }
            let ended = c
                .migrate(
                    ExecutionRef {
                        name: info.name.clone(),
                        arn: arn.clone(),
                    },
                    input.clone(),
                    &format!("interpreter-{}.log", runs.len() + 1),
                    Instant::now() + limit,
                    timeline,
                )
                .await?;
            let (source, target_release) = watch::request_parts(&input);
            let last_state = ended
                .events
                .iter()
                .rev()
                .find(|e| e.kind == "StateEntered")
                .and_then(|e| e.state.as_deref());
            let run = ExecutionRun {
                name: info.name.clone(),
                arn: arn.clone(),
                release: release.clone(),
                target_release,
                source,
                status: ended.status.clone(),
                outcome: Outcome::of(&ended.status, last_state),
                error: ended.error.clone(),
                cause: ended.cause.clone(),
                transitions: ended
                    .events
                    .iter()
                    .filter(|e| e.kind == "StateEntered")
                    .count(),
            };
            timeline.note(&run.line());
            runs.push(run);
            events.extend(ended.events.iter().cloned());
            let succeeded = ended.status == "SUCCEEDED";
            let mut ended = ended;
            answers.append(&mut ended.answers);
            last = Some(Last {
                name: info.name,
                arn,
                input,
                ended,
            });
            if !succeeded {
                break 'releases;
            }
        }
    }
    let mut last = last.ok_or_else(|| LocalError::Watch("no release to publish".into()))?;
    last.ended.events = events;
    last.ended.answers = answers;
    Ok(Driven { last, runs })
}
