//! `ngm bench`'s alternatives on the default scenario (the Pulumi tutorial's cluster), each on
//! its own twin, over the real SDK and kube clients: what they do to traffic is measured, not
//! given. ngm's own runs are the scenario suite's (tests/scenarios.rs).

use std::time::Duration;

use ngm_local::bench::{BenchOptions, Strategy, bench};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alternatives_move_the_workloads_and_the_twin_counts_what_they_cost() {
    let opts = BenchOptions {
        scenario: ngm_local::repo_root().join("tests/scenarios/pulumi-tutorial.yaml"),
        strategies: vec![
            Strategy::Replace,
            Strategy::DrainRotation,
            Strategy::MngUpdate,
        ],
        speed: None,
        functions_dir: None,
        wall_limit: Duration::from_secs(300),
    };
    let report = bench(&opts).await.unwrap_or_else(|e| panic!("{e}"));
    print!("{}", ngm_local::bench::table::render(&report));
    let [replace, rotation, update] = &report.strategies[..] else {
        panic!("three strategies asked, {} ran", report.strategies.len());
    };
    for r in [replace, rotation, update] {
        assert_eq!(r.outcome, "success", "{}: {:?}", r.name, r.notes);
        assert!(r.sent_requests > 0);
    }
    // The managed update changes the AMI only; the request also asks for c5.4xlarge.
    assert!(
        update
            .notes
            .iter()
            .any(|n| n.contains("changes only the AMI")),
        "{:?}",
        update.notes
    );
    // It excludes every old node from the load balancer before its new nodes are healthy, and
    // terminates nodes the CLB still routes to: the 502s of a managed update.
    assert!(update.failed_requests > 0, "mng-update: no request failed");
    assert_eq!(
        update.critical_path.new_group_seconds, None,
        "no group is created"
    );
    for r in [replace, rotation] {
        assert!(r.sent_requests > 0);
        let c = &r.critical_path;
        let new_group = c
            .new_group_seconds
            .unwrap_or_else(|| panic!("{}: no group created", r.name));
        assert!(
            c.deletion_seconds.is_some(),
            "{}: the old group was not deleted",
            r.name
        );
        assert!(
            r.duration_seconds > new_group,
            "{} waited for the new group",
            r.name
        );
        assert!(r.ratio > 0.0, "{}: no ratio", r.name);
    }
    // The CLB keeps sending requests to the old nodes until EKS terminates them: the 502s of
    // an infrastructure-as-code replacement (and of a drain that cordons but never takes the
    // nodes out of the load balancer).
    for r in [replace, rotation] {
        assert!(r.failed_requests > 0, "{}: no request failed", r.name);
        let reasons: Vec<&String> = r.failures.values().flat_map(|m| m.keys()).collect();
        assert!(
            reasons.iter().all(|k| *k == "nodeGone"),
            "{}: {:?}",
            r.name,
            r.failures
        );
    }
    // kubectl drain asks the API server; the replacement leaves the drain to EKS.
    assert_eq!(replace.kubernetes_requests, 0);
    assert!(rotation.kubernetes_requests > 0);
    assert_eq!(
        rotation.pdb_violations, 0,
        "kubectl drain respects the PDBs"
    );
    assert!(
        rotation.notes.is_empty(),
        "every drain finished in time: {:?}",
        rotation.notes
    );
}

/// `ngm bench --scale`'s smallest cluster in CI (the whole 10/100/300 runs from its own command,
/// docs/bench.md): the generated cluster migrates without a failed request, and what ngm read
/// is counted against the cluster's size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generated_cluster_migrates_and_its_reads_are_counted() {
    let dir = std::env::temp_dir().join(format!("ngm-bench-scale-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let opts = BenchOptions {
        scenario: std::path::PathBuf::new(),
        strategies: vec![Strategy::Ngm],
        speed: None,
        functions_dir: None,
        wall_limit: Duration::from_secs(300),
    };
    let points = ngm_local::bench::bench_scale(&opts, &[3], &dir)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    print!("{}", ngm_local::bench::scale::render(&points));
    let ngm = &points[0].report.strategies[0];
    assert_eq!(ngm.outcome, "success", "{:?}", ngm.notes);
    assert!(ngm.sent_requests > 0);
    assert_eq!(ngm.failed_requests, 0, "{:?}", ngm.failures);
    assert!(ngm.cluster_objects > 90, "3 nodes, 90 pods and more");
    assert!(ngm.objects_read > 0 && ngm.kubernetes_requests > 0);
    assert!(ngm.state_transitions.is_some_and(|t| t > 0));
    let svg = ngm_local::bench::scale::chart(&points);
    assert_eq!(svg.matches("<polyline").count(), 1);
    let _ = std::fs::remove_dir_all(&dir);
}
