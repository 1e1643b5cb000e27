//! One watcher tick through the real adapters against moto, with the SSM public parameters
//! seeded into moto's backend (AWS reserves `/aws/`, so PutParameter cannot create them).
//!
//! moto gaps this relies on being harmless: executions never run (they stay RUNNING until
//! stopped), and TagResource on node-group ARNs is not emulated, so tags are given at
//! CreateNodegroup.

use std::collections::HashMap;

use ami_watch::{GroupReport, Ports, tick};
use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_eks::types::{AmiTypes, VpcConfigRequest};
use ngm_adapters::aws::{
    EksAdapter, LockAdapter, SfnAdapter, SsmAdapter, ensure_lock_table, sfn_execution_arn,
};
use ngm_core::model::Timestamp;
use ngm_core::plan::lifecycle::lock_key;
use ngm_core::ports::LockPort;
use ngm_testkit::moto::MotoServer;

const REGION: &str = "us-east-1";
const TABLE: &str = "ngm-locks";
/// Sunday 2023-11-12 03:00 UTC.
const SUN_3AM: Timestamp = Timestamp(1_699_758_000);
const AL2023: &str = "/aws/service/eks/optimized-ami/1.33/amazon-linux-2023/x86_64/standard/recommended/release_version";
const BOTTLEROCKET: &str = "/aws/service/bottlerocket/aws-k8s-1.33/arm64/latest/image_version";
const RECOMMENDED: &str = "1.33.5-20251120";
const OLD: &str = "1.33.0-20251101";

async fn sdk_config(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(url)
        .load()
        .await
}

fn seed_file() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("ngm-ami-watch-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let seed = dir.join("ssm.json");
    let params = serde_json::json!({ AL2023: RECOMMENDED, BOTTLEROCKET: "1.50.0" });
    std::fs::write(&seed, params.to_string()).expect("seed file");
    seed
}

async fn cluster(eks: &aws_sdk_eks::Client, name: &str) {
    eks.create_cluster()
        .name(name)
        .version("1.33")
        .role_arn("arn:aws:iam::123456789012:role/eks")
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-1").build())
        .send()
        .await
        .expect("cluster");
}

async fn group(
    eks: &aws_sdk_eks::Client,
    cluster: &str,
    name: &str,
    ami: AmiTypes,
    release: &str,
    tags: &[(&str, &str)],
) {
    let tags: HashMap<String, String> = tags
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    eks.create_nodegroup()
        .cluster_name(cluster)
        .nodegroup_name(name)
        .node_role("arn:aws:iam::123456789012:role/node")
        .subnets("subnet-1")
        .ami_type(ami)
        .version("1.33")
        .release_version(release)
        .set_tags(Some(tags))
        .send()
        .await
        .expect("node group");
}

struct World {
    eks: EksAdapter,
    ssm: SsmAdapter,
    lock: LockAdapter,
    sfn: SfnAdapter,
    raw_sfn: aws_sdk_sfn::Client,
    raw_eks: aws_sdk_eks::Client,
    machine: String,
}

impl World {
    async fn new(conf: &SdkConfig) -> World {
        let raw_eks = aws_sdk_eks::Client::new(conf);
        let ddb = aws_sdk_dynamodb::Client::new(conf);
        ensure_lock_table(&ddb, TABLE).await.expect("lock table");
        let raw_sfn = aws_sdk_sfn::Client::new(conf);
        let machine = raw_sfn
            .create_state_machine()
            .name("ngm-migration")
            .role_arn("arn:aws:iam::123456789012:role/x")
            .definition(
                r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}"#,
            )
            .send()
            .await
            .expect("state machine")
            .state_machine_arn()
            .to_owned();
        World {
            eks: EksAdapter::new(raw_eks.clone()),
            ssm: SsmAdapter::new(aws_sdk_ssm::Client::new(conf)),
            lock: LockAdapter::new(
                ddb,
                TABLE,
                std::sync::Arc::new(SfnAdapter::new(raw_sfn.clone())),
            ),
            sfn: SfnAdapter::new(raw_sfn.clone()),
            raw_sfn,
            raw_eks,
            machine,
        }
    }

    async fn tick(&self, clusters: &[&str], now: Timestamp) -> Vec<GroupReport> {
        let ports = Ports {
            eks: &self.eks,
            ssm: &self.ssm,
            lock: &self.lock,
            sfn: &self.sfn,
        };
        let clusters: Vec<String> = clusters.iter().map(|c| (*c).to_owned()).collect();
        tick(&ports, &self.machine, REGION, &clusters, now)
            .await
            .unwrap_or_else(|e| panic!("tick failed: {e}"))
    }

    /// Every execution of the state machine, by name.
    async fn executions(&self) -> Vec<String> {
        self.raw_sfn
            .list_executions()
            .state_machine_arn(&self.machine)
            .send()
            .await
            .expect("list executions")
            .executions()
            .iter()
            .map(|e| e.name().to_owned())
            .collect()
    }

    async fn lock_holder(&self, cluster: &str) -> Option<String> {
        let arn = self
            .raw_eks
            .describe_cluster()
            .name(cluster)
            .send()
            .await
            .expect("cluster")
            .cluster()
            .and_then(|c| c.arn())
            .unwrap_or_default()
            .to_owned();
        self.lock
            .read(&lock_key(&arn))
            .await
            .expect("lock read")
            .map(|r| r.holder)
    }
}

fn outcome<'a>(reports: &'a [GroupReport], group: &str) -> Option<&'a GroupReport> {
    reports.iter().find(|r| r.group == group)
}

#[tokio::test]
async fn a_tick_starts_one_migration_for_the_group_behind_and_a_repeated_tick_starts_no_duplicate()
{
    let moto = MotoServer::start(Some(&seed_file())).await.expect("moto");
    let conf = sdk_config(&moto.url).await;
    let w = World::new(&conf).await;
    let eks = &w.raw_eks;
    let opted_in = ("ngm.io/auto-update", "true");
    cluster(eks, "prod").await;
    group(
        eks,
        "prod",
        "behind",
        AmiTypes::Al2023X8664Standard,
        OLD,
        &[
            opted_in,
            ("ngm.io/maintenance-window", "Sun 02:00-06:00 UTC"),
        ],
    )
    .await;
    // A second cluster holds only groups that must start nothing: the watcher starts at most
    // one migration per cluster, so here none of them can hide behind a started one.
    cluster(eks, "quiet").await;
    group(
        eks,
        "quiet",
        "current",
        AmiTypes::BottlerocketArm64,
        "1.50.0",
        &[opted_in],
    )
    .await;
    group(
        eks,
        "quiet",
        "not-opted-in",
        AmiTypes::Al2023X8664Standard,
        OLD,
        &[("ngm.io/auto-update", "false")],
    )
    .await;
    group(
        eks,
        "quiet",
        "out-of-window",
        AmiTypes::Al2023X8664Standard,
        OLD,
        &[
            opted_in,
            ("ngm.io/maintenance-window", "Sat 02:00-06:00 UTC"),
        ],
    )
    .await;

    let first = w.tick(&["prod", "quiet"], SUN_3AM).await;
    let name = format!("ami-prod-behind-{RECOMMENDED}");
    assert_eq!(w.executions().await, vec![name.clone()], "{first:?}");
    let arn = sfn_execution_arn(&w.machine, &name).expect("execution ARN");
    let started = outcome(&first, "behind").expect("a report for the group behind");
    assert_eq!(started.outcome, format!("started: {RECOMMENDED}"));
    assert_eq!(started.execution_arn.as_deref(), Some(arn.as_str()));
    let current = outcome(&first, "current").expect("a report for the current group");
    assert!(
        current
            .outcome
            .contains("already on the recommended release 1.50.0"),
        "{current:?}"
    );
    let outside = outcome(&first, "out-of-window").expect("a report for the group outside");
    assert!(
        outside.outcome.contains("outside the maintenance window"),
        "{outside:?}"
    );
    assert!(
        outcome(&first, "not-opted-in").is_none(),
        "a group not opted in is not even reported: {first:?}"
    );

    let described = w
        .raw_sfn
        .describe_execution()
        .execution_arn(&arn)
        .send()
        .await
        .expect("describe");
    let input: serde_json::Value =
        serde_json::from_str(described.input().unwrap_or_default()).expect("input is JSON");
    assert_eq!(input["target"]["releaseVersion"], RECOMMENDED, "{input}");
    assert_eq!(input["cluster"]["name"], "prod", "{input}");
    assert_eq!(input["source"]["managedNodeGroup"], "behind", "{input}");
    assert_eq!(w.lock_holder("prod").await.as_deref(), Some(name.as_str()));
    assert_eq!(w.lock_holder("quiet").await, None);

    // An hour later, still inside the window: the same start again, answered idempotently.
    let second = w.tick(&["prod", "quiet"], SUN_3AM.plus(3600)).await;
    assert_eq!(w.executions().await, vec![name.clone()], "{second:?}");
    let again = outcome(&second, "behind").expect("a report for the group behind");
    assert_eq!(again.execution_arn.as_deref(), Some(arn.as_str()));

    // Once that execution has ended, the release is not retried on every tick, and the lock the
    // tick took for it is given back.
    w.raw_sfn
        .stop_execution()
        .execution_arn(&arn)
        .send()
        .await
        .expect("stop");
    let third = w.tick(&["prod"], SUN_3AM.plus(7200)).await;
    assert_eq!(w.executions().await, vec![name.clone()], "{third:?}");
    let ran = outcome(&third, "behind").expect("a report for the group behind");
    assert!(
        ran.outcome
            .starts_with(&format!("already ran for {RECOMMENDED}")),
        "{ran:?}"
    );
    assert_eq!(w.lock_holder("prod").await, None);
    moto.stop().await;
}
