//! `ngm start` and `ngm status` as an operator runs them, against a state machine in moto.

use std::process::{Command, Output};

use aws_credential_types::Credentials;
use ngm_testkit::moto::MotoServer;

const REQUEST: &str = r#"{"cluster":{"name":"prod","region":"us-east-1"},"source":{"managedNodeGroup":"ng-a"},"target":{"instanceTypes":["m7g.large"]}}"#;

fn ngm(url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ngm"))
        .args(args)
        .env("AWS_ENDPOINT_URL", url)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env_remove("NGM_STATE_MACHINE_ARN")
        .output()
        .expect("ngm runs")
}

async fn state_machine(url: &str) -> (aws_sdk_sfn::Client, String) {
    let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(url)
        .load()
        .await;
    let sfn = aws_sdk_sfn::Client::new(&conf);
    let sm = sfn
        .create_state_machine()
        .name("ngm")
        .role_arn("arn:aws:iam::123456789012:role/ngm")
        .definition(
            r#"{"StartAt":"Wait","States":{"Wait":{"Type":"Wait","Seconds":600,"End":true}}}"#,
        )
        .send()
        .await
        .expect("state machine");
    (sfn, sm.state_machine_arn().to_owned())
}

#[tokio::test]
async fn start_validates_first_then_starts_and_status_reads_it_back() {
    let moto = MotoServer::start(None).await.expect("moto");
    let (sfn, sm) = state_machine(&moto.url).await;
    let dir = std::env::temp_dir().join(format!("ngm-ops-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("good.json");
    std::fs::write(&good, REQUEST).expect("write");
    let bad = dir.join("bad.json");
    let bad_json = REQUEST.replace(r#""target""#, r#""policy":{"surgeFactor":9.0},"target""#);
    std::fs::write(&bad, bad_json).expect("write");

    let refused = ngm(
        &moto.url,
        &["start", bad.to_str().unwrap_or(""), "--state-machine", &sm],
    );
    assert_eq!(refused.status.code(), Some(1));
    let listed = sfn
        .list_executions()
        .state_machine_arn(&sm)
        .send()
        .await
        .expect("list");
    assert!(
        listed.executions().is_empty(),
        "a bad request starts nothing"
    );

    let no_machine = ngm(&moto.url, &["start", good.to_str().unwrap_or("")]);
    assert_eq!(no_machine.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_machine.stderr).contains("NGM_STATE_MACHINE_ARN"));

    let started = ngm(
        &moto.url,
        &[
            "start",
            good.to_str().unwrap_or(""),
            "--state-machine",
            &sm,
            "--name",
            "run-1",
        ],
    );
    assert!(
        started.status.success(),
        "{}",
        String::from_utf8_lossy(&started.stderr)
    );
    let arn = String::from_utf8_lossy(&started.stdout).trim().to_owned();
    assert!(arn.ends_with(":run-1"), "{arn}");

    let status = ngm(&moto.url, &["status", "run-1", "--state-machine", &sm]);
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    let out: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status prints JSON");
    assert_eq!(out["arn"], arn.as_str());
    assert_eq!(out["status"], "RUNNING");

    let missing = ngm(&moto.url, &["status", "nope", "--state-machine", &sm]);
    assert_eq!(missing.status.code(), Some(1));
    moto.stop().await;
}
