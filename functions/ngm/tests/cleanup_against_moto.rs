//! `ngm cleanup` and `ngm unlock` as an operator runs them, on the wire against Step Functions
//! and DynamoDB in moto: both refuse while the execution is RUNNING, and act once it ended.

use std::process::{Command, Output};

use aws_credential_types::Credentials;
use ngm_adapters::aws::{LockAdapter, SfnAdapter, ensure_lock_table};
use ngm_core::model::Timestamp;
use ngm_core::ports::{LockAcquired, LockPort, LockRecord};
use ngm_testkit::moto::MotoServer;

const REQUEST: &str = r#"{"cluster":{"name":"prod","region":"us-east-1"},"source":{"managedNodeGroup":"ng-a"},"target":{"instanceTypes":["m7g.large"]}}"#;
const CLUSTER: &str = "arn:aws:eks:us-east-1:123456789012:cluster/prod";
const WAIT: &str =
    r#"{"StartAt":"Wait","States":{"Wait":{"Type":"Wait","Seconds":600,"End":true}}}"#;

fn ngm(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ngm"))
        .args(args)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("NGM_CLEANUP_STATE_MACHINE_ARN")
        .env_remove("NGM_LOCK_TABLE")
        .output()
        .expect("ngm runs")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).trim().to_string()
}

async fn sdk(url: &str) -> aws_types::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(url)
        .load()
        .await
}

async fn machine(sfn: &aws_sdk_sfn::Client, name: &str) -> String {
    sfn.create_state_machine()
        .name(name)
        .role_arn("arn:aws:iam::123456789012:role/ngm")
        .definition(WAIT)
        .send()
        .await
        .expect("state machine")
        .state_machine_arn()
        .to_owned()
}

async fn start(sfn: &aws_sdk_sfn::Client, machine: &str, name: &str) -> String {
    sfn.start_execution()
        .state_machine_arn(machine)
        .name(name)
        .input(REQUEST)
        .send()
        .await
        .expect("start")
        .execution_arn()
        .to_owned()
}

async fn stop(sfn: &aws_sdk_sfn::Client, arn: &str) {
    sfn.stop_execution()
        .execution_arn(arn)
        .send()
        .await
        .expect("stop");
}

#[tokio::test]
async fn cleanup_refuses_a_running_execution_then_starts_the_stacks_cleanup_machine_once() {
    let moto = MotoServer::start(None).await.expect("moto");
    let conf = sdk(&moto.url).await;
    let sfn = aws_sdk_sfn::Client::new(&conf);
    let migration = machine(&sfn, "ngm-migration").await;
    let cleanup = machine(&sfn, "ngm-cleanup").await;
    let exec = start(&sfn, &migration, "exec-1").await;

    let refused = ngm(&moto.url, &["cleanup", &exec]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(
        text(&refused.stderr).contains("RUNNING"),
        "{}",
        text(&refused.stderr)
    );
    let none = sfn
        .list_executions()
        .state_machine_arn(&cleanup)
        .send()
        .await
        .expect("list");
    assert!(none.executions().is_empty());

    stop(&sfn, &exec).await;
    let first = ngm(&moto.url, &["cleanup", &exec]);
    assert_eq!(first.status.code(), Some(0), "{}", text(&first.stderr));
    let cleanup_exec = text(&first.stdout);
    assert!(
        cleanup_exec.contains(":execution:ngm-cleanup:"),
        "{cleanup_exec}"
    );
    let d = sfn
        .describe_execution()
        .execution_arn(&cleanup_exec)
        .send()
        .await
        .expect("describe");
    let input: serde_json::Value =
        serde_json::from_str(d.input().unwrap_or_default()).expect("input is JSON");
    assert_eq!(input["executionArn"], exec.as_str());
    assert_eq!(input["status"], "ABORTED");
    assert_eq!(
        input["input"], REQUEST,
        "the migration's input, as a string"
    );

    // Run again: the same cleanup execution, not a second one.
    let again = ngm(&moto.url, &["cleanup", &exec]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert_eq!(text(&again.stdout), cleanup_exec);
    moto.stop().await;
}

#[tokio::test]
async fn unlock_refuses_while_the_holder_runs_and_names_it_then_releases_once_it_ended() {
    let moto = MotoServer::start(None).await.expect("moto");
    let conf = sdk(&moto.url).await;
    let sfn = aws_sdk_sfn::Client::new(&conf);
    let migration = machine(&sfn, "ngm-migration").await;
    let exec = start(&sfn, &migration, "exec-2").await;
    let ddb = aws_sdk_dynamodb::Client::new(&conf);
    ensure_lock_table(&ddb, "ngm-locks").await.expect("table");
    let lock = LockAdapter::new(
        ddb,
        "ngm-locks",
        std::sync::Arc::new(SfnAdapter::new(sfn.clone())),
    );
    let held = LockRecord {
        key: CLUSTER.into(),
        holder: "exec-2".into(),
        holder_arn: Some(exec.clone()),
        acquired_at: Timestamp(1),
        // Long expired: the lease alone would let anyone in; the running holder does not.
        lease_until: Timestamp(2),
        state: None,
    };
    assert_eq!(
        lock.acquire(&held, Timestamp(1)).await,
        Ok(LockAcquired::Acquired)
    );

    let refused = ngm(&moto.url, &["unlock", CLUSTER, "--lock-table", "ngm-locks"]);
    assert_eq!(refused.status.code(), Some(1));
    let why = text(&refused.stderr);
    assert!(
        why.contains("exec-2") && why.contains("still running"),
        "{why}"
    );
    assert_eq!(lock.read(CLUSTER).await, Ok(Some(held.clone())));

    stop(&sfn, &exec).await;
    let done = ngm(&moto.url, &["unlock", CLUSTER, "--lock-table", "ngm-locks"]);
    assert_eq!(done.status.code(), Some(0), "{}", text(&done.stderr));
    assert!(
        text(&done.stdout).contains("released"),
        "{}",
        text(&done.stdout)
    );
    assert_eq!(lock.read(CLUSTER).await, Ok(None));

    let nothing = ngm(&moto.url, &["unlock", CLUSTER, "--lock-table", "ngm-locks"]);
    assert_eq!(nothing.status.code(), Some(0));
    assert!(text(&nothing.stdout).contains("not locked"));
    moto.stop().await;
}

#[test]
fn the_cleanup_machine_is_found_next_to_the_migration_machine() {
    // Unit checks of the naming the template fixes (STACK-migration, STACK-cleanup).
    let out = ngm("http://127.0.0.1:9", &["cleanup", "not-an-arn"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not an execution ARN"));
}
