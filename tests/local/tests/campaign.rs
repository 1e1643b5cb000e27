//! A subset of the fault campaign (`scripts/campaign` runs all of it): the baseline learns each
//! step's calls, then one run for each fault kind, on steps where a mistake costs most. Each
//! must end in success or an exact rollback, never `RollbackFailed`, never a leftover.

use ngm_local::campaign::{CampaignOptions, campaign};

#[tokio::test(flavor = "multi_thread")]
async fn a_throttle_a_500_a_lost_response_and_a_timeout_never_leave_a_mess() {
    let work_dir = std::env::temp_dir().join(format!("ngm-campaign-ci-{}", std::process::id()));
    let report = campaign(&CampaignOptions {
        base: ngm_local::repo_root().join("tests/scenarios/campaign-base.yaml"),
        jobs: 2,
        work_dir: work_dir.clone(),
        // Labels that name exactly one cell each: a label is matched as a substring, so
        // "surge Lambda timeout" would also take check-surge's cells.
        only: vec![
            "taint throttle at patch nodes".into(),
            "taint 500 at patch nodes".into(),
            "freeze lost response".into(),
            "retire Lambda timeout (killed as it answered)".into(),
        ],
        limit: Some(4),
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", report.matrix);
    println!(
        "campaign subset: {} runs, {:.0} s wall",
        report.runs.len(),
        report.wall_seconds
    );
    // Each fault kind is exercised at least once (a step the baseline never called would
    // silently shrink the subset).
    for kind in ["throttle", "500", "lost response", "Lambda timeout"] {
        assert!(
            report.runs.iter().any(|r| r.label.contains(kind)),
            "no run with a {kind}: {:?}",
            report.runs.iter().map(|r| &r.label).collect::<Vec<_>>()
        );
    }
    let failed: Vec<String> = report
        .runs
        .iter()
        .filter(|r| !r.passed)
        .map(|r| format!("{} → {}: {}", r.label, r.outcome, r.problems.join(" | ")))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
