//! A scenario's Jobs: the fields only a Job takes, and when a Job counts as started.

use k8s_openapi::api::batch::v1::Job;

use super::model::{Workload, WorkloadKind};

/// A Job needs its work (`runSeconds`) and takes `completions` and `backoffLimit`; no other
/// kind takes any of them. Counts are validated as the API server does (`ValidateJobSpec`:
/// parallelism, completions and backoffLimit non-negative).
pub(super) fn check_job_fields(w: &Workload) -> Result<(), String> {
    let at = format!("workload {}/{}", w.namespace, w.name);
    if w.kind != WorkloadKind::Job {
        let given: Vec<&str> = [
            ("runSeconds", w.run_seconds.is_some()),
            ("completions", w.completions.is_some()),
            ("backoffLimit", w.backoff_limit.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        if !given.is_empty() {
            return Err(format!(
                "{at}: {} only for a Job (kind {:?})",
                given.join(", "),
                w.kind
            ));
        }
        return Ok(());
    }
    match w.run_seconds {
        None => {
            return Err(format!(
                "{at}: a Job needs runSeconds, the seconds each pod works before it exits 0"
            ));
        }
        Some(r) if !r.is_finite() || r < 0.0 => {
            return Err(format!("{at}: runSeconds {r} is not a duration"));
        }
        Some(_) => {}
    }
    for (field, v) in [
        ("replicas (parallelism)", Some(w.replicas)),
        ("completions", w.completions),
        ("backoffLimit", w.backoff_limit),
    ] {
        if v.is_some_and(|v| v < 0) {
            return Err(format!("{at}: {field} must be greater than or equal to 0"));
        }
    }
    if w.hpa.is_some() {
        return Err(format!(
            "{at}: an HPA scales through /scale, which a Job does not have"
        ));
    }
    Ok(())
}

/// A Job has started its pods: as many Ready as it wants active, or it is already done.
pub(super) fn job_settled(job: &Job) -> bool {
    if crate::sim::job::is_finished(job) {
        return true;
    }
    let (Some(spec), Some(st)) = (job.spec.as_ref(), job.status.as_ref()) else {
        return false;
    };
    let want = crate::sim::job::want_active(
        spec.parallelism.unwrap_or(1),
        spec.completions,
        st.succeeded.unwrap_or(0),
        st.active.unwrap_or(0),
    );
    st.start_time.is_some() && st.ready.unwrap_or(0) >= want
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use crate::scenario::{Scenario, ScenarioError};
    use crate::store::Resource;

    fn scenario(workloads: &str, services: &str) -> Result<Scenario, ScenarioError> {
        Scenario::parse(&format!(
            "name: jobs\n\
             cluster:\n  name: c\n  speed: 600\n  nodeGroups:\n\
             \x20   - {{ name: old, instanceTypes: [m5.xlarge], zones: [us-west-2a], \
             amiRelease: 1.33.4-20251001, desiredSize: 1 }}\n\
             workloads:\n{workloads}\nservices:\n{services}\n"
        ))
    }

    fn invalid(r: Result<Scenario, ScenarioError>) -> String {
        match r {
            Err(ScenarioError::Invalid(m)) => m,
            other => panic!("expected an invalid scenario, got {other:?}"),
        }
    }

    /// A Job's pods need a finite piece of work (the scenario's `runSeconds`); no other kind
    /// has one, nor `completions` or `backoffLimit` (batch/v1 `JobSpec` fields).
    #[test]
    fn a_job_needs_run_seconds_and_no_other_kind_takes_job_fields() {
        let m = invalid(scenario(
            "  - { kind: Job, name: batch, replicas: 2 }",
            "  []",
        ));
        assert!(m.contains("a Job needs runSeconds"), "{m}");
        let m = invalid(scenario(
            "  - { kind: Deployment, name: web, runSeconds: 60 }",
            "  []",
        ));
        assert!(m.contains("runSeconds only for a Job"), "{m}");
        let m = invalid(scenario(
            "  - { kind: StatefulSet, name: db, completions: 3, backoffLimit: 1 }",
            "  []",
        ));
        assert!(
            m.contains("completions, backoffLimit only for a Job"),
            "{m}"
        );
        let m = invalid(scenario(
            "  - { kind: Job, name: batch, runSeconds: 60, backoffLimit: -1 }",
            "  []",
        ));
        assert!(
            m.contains("backoffLimit must be greater than or equal to 0"),
            "{m}"
        );
        assert!(scenario("  - { kind: Job, name: batch, runSeconds: 60 }", "  []").is_ok());
    }

    /// Nothing puts a Job behind a Service by itself, and a Service a scenario points at one
    /// goes behind no load balancer: its pods end when their work does. An HPA scales through
    /// `/scale`, which `batch/v1` Jobs do not serve.
    #[test]
    fn a_job_goes_behind_no_load_balancer_and_takes_no_hpa() {
        let job = "  - { kind: Job, name: batch, runSeconds: 60 }";
        let m = invalid(scenario(job, "  - { name: batch, workload: batch }"));
        assert!(m.contains("goes behind no load balancer"), "{m}");
        assert!(scenario(job, "  - { name: batch, workload: batch, type: ClusterIP }").is_ok());
        let m = invalid(scenario(
            "  - { kind: Job, name: batch, runSeconds: 60, hpa: { maxReplicas: 3 } }",
            "  []",
        ));
        assert!(m.contains("/scale"), "{m}");
    }

    /// A scenario's Job is a `batch/v1` Job whose `replicas` is its parallelism and whose
    /// completions default to it (the scenario format), with no Service; the scenario is
    /// settled once it runs as many Ready pods as it wants active.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_scenario_job_boots_with_parallelism_ready_pods_and_no_service() {
        let s = scenario(
            "  - { kind: Job, name: batch, replicas: 2, runSeconds: 3600, backoffLimit: 2 }",
            "  []",
        )
        .expect("valid");
        let (store, sim, _) = s.boot(Duration::from_secs(20)).await.expect("boots");
        let j = store
            .try_get(Resource::Job, "default", "batch")
            .expect("job");
        assert_eq!(j["spec"]["parallelism"], 2);
        assert_eq!(j["spec"]["completions"], 2);
        assert_eq!(j["spec"]["backoffLimit"], 2);
        assert_eq!(j["status"]["ready"], 2);
        assert!(store.list_all(Resource::Service, None).is_empty());
        sim.stop().await;
    }
}
