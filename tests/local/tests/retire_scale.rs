//! I6 at scale, the size CI can afford (scripts/retire-10k runs 10,000 pods): every invocation
//! of a 1,000-pod migration stays under a quarter of its function's timeout.

use ngm_local::expect::Outcome;
use ngm_local::{RunOptions, run};

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_pod_retire_keeps_every_invocation_within_budget() {
    let dir = std::env::temp_dir().join(format!("ngm-retire-1000-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("scenario.yaml");
    let s = ngm_local::scale::retire_scenario(1000).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, serde_yaml::to_string(&s).unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    let o = run(RunOptions {
        scenario: path,
        ..RunOptions::default()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    println!("{}", o.verdict.summary());
    let retire = o
        .verdict
        .figures
        .functions
        .get("retire")
        .cloned()
        .unwrap_or_default();
    println!(
        "retire at 1000 pods: {} invocations, slowest {} ms",
        retire.invocations, retire.max_millis
    );
    assert!(o.verdict.passed(), "{}", o.verdict.summary());
    assert_eq!(o.verdict.outcome, Outcome::Success);
    assert!(o.verdict.figures.slow_invocations.is_empty());
    assert!(retire.invocations >= 1);
}
