//! Two resize requests for one cluster at once, through the API's handler and the real adapters
//! against moto (EKS, DynamoDB, Step Functions): the lock's conditional write lets exactly one
//! start a migration.

use std::sync::Arc;

use aws_config::{BehaviorVersion, SdkConfig};
use aws_credential_types::Credentials;
use aws_sdk_eks::types::VpcConfigRequest;
use ngm_adapters::aws::{EksAdapter, LockAdapter, SfnAdapter, ensure_lock_table};
use ngm_core::model::Timestamp;
use ngm_core::ports::EksPort;
use ngm_testkit::moto::MotoServer;
use resize_api::{Api, Request, handle};

const REGION: &str = "us-east-1";
const BODY: &str = r#"{"cluster":{"name":"prod","region":"us-east-1"},"source":{"managedNodeGroup":"ng-a"},"target":{"instanceTypes":["m7g.large"]}}"#;

async fn sdk_config(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(REGION))
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .endpoint_url(url)
        .load()
        .await
}

/// The API wired as its `main` wires it, over moto; also the raw Step Functions client.
async fn api(conf: &SdkConfig) -> (Api, aws_sdk_sfn::Client) {
    let eks = aws_sdk_eks::Client::new(conf);
    eks.create_cluster()
        .name("prod")
        .role_arn("arn:aws:iam::123456789012:role/eks")
        .resources_vpc_config(VpcConfigRequest::builder().subnet_ids("subnet-1").build())
        .send()
        .await
        .expect("cluster");
    let ddb = aws_sdk_dynamodb::Client::new(conf);
    ensure_lock_table(&ddb, "ngm-locks")
        .await
        .expect("lock table");
    let raw_sfn = aws_sdk_sfn::Client::new(conf);
    let machine = raw_sfn
        .create_state_machine()
        .name("ngm-migration")
        .role_arn("arn:aws:iam::123456789012:role/x")
        .definition(r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}"#)
        .send()
        .await
        .expect("state machine")
        .state_machine_arn()
        .to_owned();
    let sfn = Arc::new(SfnAdapter::new(raw_sfn.clone()));
    let eks: Arc<dyn EksPort> = Arc::new(EksAdapter::new(eks));
    let api = Api {
        eks_for: Arc::new(move |_region: &str| eks.clone()),
        lock: Arc::new(LockAdapter::new(ddb, "ngm-locks", sfn.clone())),
        sfn: sfn.clone(),
        history: sfn,
        state_machine_arn: machine,
    };
    (api, raw_sfn)
}

fn post(request_id: &str) -> Request {
    Request {
        method: "POST".into(),
        path: "/migrations".into(),
        body: Some(BODY.into()),
        request_id: request_id.into(),
        idempotency_key: None,
    }
}

#[tokio::test]
async fn two_concurrent_posts_for_one_cluster_answer_one_202_and_one_409_and_start_one_execution() {
    let moto = MotoServer::start(None).await.expect("moto");
    let conf = sdk_config(&moto.url).await;
    let (api, raw_sfn) = api(&conf).await;
    let now = Timestamp(1_793_498_400);

    let (first, second) = (post("request-a"), post("request-b"));
    let (a, b) = tokio::join!(handle(&api, &first, now), handle(&api, &second, now));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [202, 409], "{a:?}\n{b:?}");
    let (won, lost) = if a.status == 202 { (a, b) } else { (b, a) };
    let name = won.body["executionName"]
        .as_str()
        .expect("a 202 names its execution");
    assert_eq!(lost.body["error"], "ClusterLocked", "{lost:?}");
    assert_eq!(lost.body["holder"], name, "{lost:?}");

    let listed = raw_sfn
        .list_executions()
        .state_machine_arn(&api.state_machine_arn)
        .send()
        .await
        .expect("list executions");
    let names: Vec<&str> = listed.executions().iter().map(|e| e.name()).collect();
    assert_eq!(names, vec![name]);
    assert_eq!(
        listed.executions()[0].execution_arn(),
        won.body["executionArn"].as_str().unwrap_or_default()
    );
    moto.stop().await;
}
