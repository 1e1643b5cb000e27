use chrono::Weekday;
use ngm_core::model::Timestamp;
use ngm_core::ports::LockPort;
use ngm_steps::fakes::{FakeCloud, cluster_arn, managed_group};

use super::plan::*;
use super::*;

const SM: &str = "arn:aws:states:eu-west-1:111122223333:stateMachine:ngm";
/// Sunday 2023-11-12 03:00 UTC.
const SUN_3AM: Timestamp = Timestamp(1_699_758_000);
const PARAM: &str = "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/standard/recommended/release_version";

fn cloud(tags: &[(&str, &str)]) -> FakeCloud {
    let f = FakeCloud::new();
    let mut g = managed_group("ng-a", "m5.large", 1);
    g.tags
        .extend(tags.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    f.add_cluster("prod").add_managed_group(g);
    f.edit(|w| w.parameters.insert(PARAM.into(), "1.33.0-20251101".into()));
    f
}

async fn run(f: &FakeCloud, now: Timestamp) -> Vec<GroupReport> {
    let ports = Ports {
        eks: f,
        ssm: f,
        lock: f,
        sfn: f,
    };
    tick(&ports, SM, "eu-west-1", &["prod".into()], now)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn every_supported_ami_type_has_its_parameter() {
    let cases = [
        (
            "AL2023_ARM_64_STANDARD",
            "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/arm64/standard/recommended/release_version",
        ),
        (
            "AL2023_x86_64_NVIDIA",
            "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/nvidia/recommended/release_version",
        ),
        (
            "AL2023_x86_64_NEURON",
            "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/neuron/recommended/release_version",
        ),
        (
            "BOTTLEROCKET_ARM_64",
            "/aws/service/bottlerocket/aws-k8s-1.33/arm64/latest/image_version",
        ),
        (
            "BOTTLEROCKET_x86_64_NVIDIA",
            "/aws/service/bottlerocket/aws-k8s-1.33-nvidia/x86_64/latest/image_version",
        ),
    ];
    for (ami, want) in cases {
        assert_eq!(release_parameter(ami, "1.33").as_deref(), Ok(want), "{ami}");
    }
    for ami in ["AL2_x86_64", "CUSTOM", "WINDOWS_CORE_2022_x86_64"] {
        assert!(release_parameter(ami, "1.33").is_err(), "{ami}");
    }
}

#[test]
fn windows_parse_and_bad_ones_say_why() {
    assert_eq!(
        parse_window("Sun 02:00-06:00 UTC"),
        Ok(Window {
            days: vec![Weekday::Sun],
            start: 120,
            end: 360
        })
    );
    for bad in [
        "Sun 02:00-06:00",
        "Sun 02:00-06:00 CET",
        "Sunday 02:00-06:00 UTC",
        "Sun 2:00-06:00 UTC",
        "Sun 02:00-25:00 UTC",
        "Sun 02:00-02:00 UTC",
        "Sun 02:00 UTC",
        "",
    ] {
        assert!(parse_window(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_window_past_midnight_belongs_to_its_start_day() {
    let w = parse_window("Sat 23:00-04:00 UTC").unwrap_or_else(|e| panic!("{e}"));
    assert!(w.contains(SUN_3AM));
    assert!(!w.contains(SUN_3AM.plus(3600)));
    let daily = parse_window("Daily 02:30-03:30 UTC").unwrap_or_else(|e| panic!("{e}"));
    assert!(daily.contains(SUN_3AM));
    assert!(!daily.contains(SUN_3AM.plus(1800)));
}

#[tokio::test]
async fn an_opted_in_group_behind_in_its_window_starts_one_migration_once() {
    let f = cloud(&[
        (AUTO_UPDATE_TAG, "true"),
        (WINDOW_TAG, "Sun 02:00-06:00 UTC"),
    ]);
    let first = run(&f, SUN_3AM).await;
    assert_eq!(first.len(), 1, "{first:?}");
    assert_eq!(first[0].outcome, "started: 1.33.0-20251101");
    let again = run(&f, SUN_3AM.plus(600)).await;
    assert_eq!(again, first, "a repeated tick finds the same execution");
    let execs = f.snapshot().executions;
    assert_eq!(execs.len(), 1);
    assert_eq!(execs[0].name, "ami-prod-ng-a-1.33.0-20251101");
    let input: MigrationRequest = serde_json::from_str(execs[0].input.as_deref().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        input,
        request_for("prod", "eu-west-1", "ng-a", "1.33.0-20251101")
    );
    let lock = f.read(&cluster_arn("prod")).await.ok().flatten();
    assert_eq!(lock.map(|l| l.holder), Some(execs[0].name.clone()));
}

#[tokio::test]
async fn groups_not_opted_in_up_to_date_outside_the_window_or_with_a_bad_window_start_nothing() {
    let cases: [(&[(&str, &str)], &str); 4] = [
        (&[(AUTO_UPDATE_TAG, "yes")], ""),
        (
            &[
                (AUTO_UPDATE_TAG, "true"),
                (WINDOW_TAG, "Mon 02:00-06:00 UTC"),
            ],
            "skipped: outside",
        ),
        (
            &[(AUTO_UPDATE_TAG, "true"), (WINDOW_TAG, "Sun 2-6")],
            "skipped: tag ngm.io/maintenance-window is invalid",
        ),
        (&[(AUTO_UPDATE_TAG, "true")], "skipped: already on"),
    ];
    for (tags, want) in cases {
        let f = cloud(tags);
        if want == "skipped: already on" {
            f.edit(|w| w.parameters.insert(PARAM.into(), "1.33.0-20250601".into()));
        }
        let r = run(&f, SUN_3AM).await;
        match want {
            "" => assert!(r.is_empty(), "{tags:?}: {r:?}"),
            w => assert!(
                r.len() == 1 && r[0].outcome.starts_with(w),
                "{tags:?}: {r:?}"
            ),
        }
        assert!(f.snapshot().executions.is_empty(), "{tags:?}");
    }
}

#[tokio::test]
async fn a_cluster_locked_by_another_run_starts_nothing() {
    let f = cloud(&[(AUTO_UPDATE_TAG, "true")]);
    let key = cluster_arn("prod");
    f.edit(|w| {
        w.locks.insert(
            key.clone(),
            ngm_core::ports::LockRecord {
                key: key.clone(),
                holder: "resize-1".into(),
                holder_arn: None,
                acquired_at: SUN_3AM,
                lease_until: SUN_3AM.plus(3600),
                state: None,
            },
        )
    });
    let r = run(&f, SUN_3AM).await;
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].outcome, "cluster locked by resize-1");
    assert!(f.snapshot().executions.is_empty());
}
