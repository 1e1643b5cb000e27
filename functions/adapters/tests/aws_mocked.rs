//! What moto cannot emulate, checked with aws-smithy-mocks on the real SDK clients: EKS update
//! statuses (moto's DescribeUpdate answers 404 HTML), throttling, and delete-while-deleting.

use aws_sdk_eks::Client;
use aws_sdk_eks::operation::describe_update::DescribeUpdateOutput;
use aws_sdk_eks::types::{ErrorCode, ErrorDetail, Update, UpdateStatus as EksStatus};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use ngm_adapters::aws::EksAdapter;
use ngm_core::model::UpdateStatus;
use ngm_core::ports::{EksPort, PortError};

fn update(status: EksStatus, errors: Vec<ErrorDetail>) -> DescribeUpdateOutput {
    DescribeUpdateOutput::builder()
        .update(
            Update::builder()
                .id("u-1")
                .status(status)
                .set_errors(Some(errors))
                .build(),
        )
        .build()
}

#[tokio::test]
async fn describe_update_maps_every_eks_update_status() {
    let failed = ErrorDetail::builder()
        .error_code(ErrorCode::NodeCreationFailure)
        .error_message("instances failed to join")
        .build();
    let cases = [
        (
            update(EksStatus::InProgress, vec![]),
            UpdateStatus::InProgress,
        ),
        (
            update(EksStatus::Successful, vec![]),
            UpdateStatus::Successful,
        ),
        (
            update(EksStatus::Cancelled, vec![]),
            UpdateStatus::Cancelled,
        ),
        (
            update(EksStatus::Failed, vec![failed]),
            UpdateStatus::Failed {
                errors: vec!["NodeCreationFailure: instances failed to join".into()],
            },
        ),
    ];
    for (output, want) in cases {
        let rule = mock!(Client::describe_update)
            .match_requests(|r| r.update_id() == Some("u-1") && r.nodegroup_name() == Some("green"))
            .then_output(move || output.clone());
        let eks = EksAdapter::new(mock_client!(aws_sdk_eks, [&rule]));
        assert_eq!(
            eks.describe_update("prod", "green", "u-1").await.unwrap(),
            want
        );
        assert_eq!(rule.num_calls(), 1);
    }
}

fn throttled() -> HttpResponse {
    let mut resp = HttpResponse::new(
        StatusCode::try_from(429).unwrap(),
        SdkBody::from(r#"{"message":"Rate exceeded"}"#),
    );
    resp.headers_mut()
        .insert("x-amzn-ErrorType", "ThrottlingException");
    resp
}

#[tokio::test]
async fn throttling_that_outlasts_the_sdk_retries_is_classified_retryable() {
    let rule = mock!(Client::describe_nodegroup).then_http_response(throttled);
    let eks = EksAdapter::new(mock_client!(aws_sdk_eks, RuleMode::MatchAny, [&rule]));
    let err = eks.describe_nodegroup("prod", "blue").await.unwrap_err();
    assert!(matches!(err, PortError::Throttled { .. }), "{err:?}");
    assert!(err.is_retryable());
}

fn in_use(message: &'static str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    move || {
        let mut resp = HttpResponse::new(
            StatusCode::try_from(409).unwrap(),
            SdkBody::from(format!(r#"{{"message":"{message}"}}"#)),
        );
        resp.headers_mut()
            .insert("x-amzn-ErrorType", "ResourceInUseException");
        resp
    }
}

#[tokio::test]
async fn deleting_a_group_that_is_already_deleting_is_success() {
    let rule = mock!(Client::delete_nodegroup)
        .then_http_response(in_use("Nodegroup blue is currently in DELETING state"));
    let eks = EksAdapter::new(mock_client!(aws_sdk_eks, [&rule]));
    eks.delete_nodegroup("prod", "blue").await.unwrap();

    let busy = mock!(Client::delete_nodegroup)
        .then_http_response(in_use("Nodegroup blue is currently in UPDATING state"));
    let eks = EksAdapter::new(mock_client!(aws_sdk_eks, [&busy]));
    let err = eks.delete_nodegroup("prod", "blue").await.unwrap_err();
    assert!(matches!(err, PortError::Conflict { .. }), "{err:?}");
}

fn sfn_error(code: &'static str) -> impl Fn() -> HttpResponse + Send + Sync + 'static {
    move || {
        let mut resp = HttpResponse::new(
            StatusCode::try_from(400).unwrap(),
            SdkBody::from(format!(r#"{{"__type":"{code}","message":"nope"}}"#)),
        );
        resp.headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        resp
    }
}

#[tokio::test]
async fn answering_a_task_token_that_is_gone_or_malformed_is_a_named_failure() {
    use aws_sdk_sfn::Client as Sfn;
    use ngm_adapters::aws::SfnAdapter;
    use ngm_core::ports::SfnPort;

    for (code, gone) in [
        ("TaskDoesNotExist", true),
        ("TaskTimedOut", true),
        ("InvalidToken", false),
    ] {
        let rule = mock!(Sfn::send_task_success).then_http_response(sfn_error(code));
        let sfn = SfnAdapter::new(mock_client!(aws_sdk_sfn, [&rule]));
        let err = sfn.send_task_success("t", "{}").await.unwrap_err();
        assert_eq!(
            matches!(err, PortError::NotFound { .. }),
            gone,
            "{code}: {err:?}"
        );
        assert!(!err.is_retryable(), "{code}: {err:?}");
    }
}
