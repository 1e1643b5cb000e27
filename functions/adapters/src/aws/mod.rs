//! The AWS ports over the real aws-sdk-* clients.
//!
//! Every call goes through [`send!`](crate::send) (or [`failure`] for the few that read the raw
//! error first), which retries it under the one adapter policy ([`crate::retry`]); every SDK
//! error goes through [`classify`] once. A missing object becomes
//! [`PortError::NotFound`] there, and each adapter method turns that into `Ok(None)` on a read or
//! success on a delete, so steps never match on SDK error codes.

/// `send!(OP, builder)`: sends the fluent `builder` under the adapter retry policy, classifying
/// each failure once. The builder is cloned per attempt.
#[macro_export]
macro_rules! send {
    ($op:expr, $builder:expr) => {{
        let builder = $builder;
        let op: &str = $op;
        $crate::retry::call(op, || {
            let b = builder.clone();
            async move { b.send().await.map_err(|e| $crate::aws::failure(op, e)) }
        })
        .await
    }};
}

/// `paginate!(OP, builder)`: every page of a paginated call, as one call under the adapter
/// retry policy (a failed page starts the listing again); `PortResult<Vec<Page>>`.
#[macro_export]
macro_rules! paginate {
    ($op:expr, $builder:expr) => {{
        let builder = $builder;
        let op: &str = $op;
        $crate::retry::call(op, || {
            let b = builder.clone();
            async move {
                let pages: Vec<_> = b.into_paginator().send().collect().await;
                pages
                    .into_iter()
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| $crate::aws::failure(op, e))
            }
        })
        .await
    }};
}

mod asg;
#[cfg(feature = "ec2")]
mod ec2;
mod eks;
mod elb;
pub mod lock;
mod sfn;
mod ssm;

pub use asg::AsgAdapter;
#[cfg(feature = "ec2")]
pub use ec2::Ec2Adapter;
pub use eks::EksAdapter;
pub use elb::ElbAdapter;
pub use lock::{LockAdapter, ensure_lock_table};
pub use sfn::{SfnAdapter, execution_arn as sfn_execution_arn};
pub use ssm::SsmAdapter;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use ngm_core::ports::PortError;

/// Error codes that mean "that object does not exist", across the services ngm calls.
const NOT_FOUND_CODES: &[&str] = &[
    "ResourceNotFoundException",
    "NotFoundException",
    "ParameterNotFound",
    "LoadBalancerNotFound",
    "AccessPointNotFound",
    "TargetGroupNotFound",
    "ListenerNotFound",
    "ExecutionDoesNotExist",
    "StateMachineDoesNotExist",
    // A task token that is unknown, or whose task already timed out: nothing left to answer.
    "TaskDoesNotExist",
    "TaskTimedOut",
    "InvalidLaunchTemplateName.NotFoundException",
    "InvalidLaunchTemplateId.NotFound",
    "InvalidLaunchTemplateId.VersionNotFound",
];

const THROTTLING_CODES: &[&str] = &[
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestLimitExceeded",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "ServiceUnavailable",
    "ServiceUnavailableException",
];

const ACCESS_CODES: &[&str] = &[
    "AccessDenied",
    "AccessDeniedException",
    "UnauthorizedOperation",
    "UnrecognizedClientException",
    "InvalidClientTokenId",
    "ExpiredToken",
    "ExpiredTokenException",
];

const CONFLICT_CODES: &[&str] = &[
    "ResourceInUseException",
    "ResourceInUse",
    "ScalingActivityInProgress",
    "ResourceContention",
    "ExecutionAlreadyExists",
    "ConflictException",
];

/// Classifies a service error by its code, HTTP status and message. Pure, so it is table-tested.
pub fn classify_code(op: &str, code: &str, status: u16, message: &str) -> PortError {
    let op = op.to_owned();
    let detail = if message.is_empty() {
        code.to_owned()
    } else {
        format!("{code}: {message}")
    };
    // Auto Scaling answers a missing group on a write with a generic ValidationError.
    let asg_missing = code == "ValidationError" && message.contains("not found");
    if NOT_FOUND_CODES.contains(&code) || asg_missing || (status == 404 && code.is_empty()) {
        PortError::NotFound { what: detail }
    } else if THROTTLING_CODES.contains(&code) || status == 429 || status == 503 {
        PortError::Throttled { op }
    } else if ACCESS_CODES.contains(&code) || status == 403 {
        PortError::AccessDenied { op }
    } else if CONFLICT_CODES.contains(&code) || status == 409 {
        PortError::Conflict { op, detail }
    } else if code == "RequestTimeout" || code == "RequestTimeoutException" || status == 504 {
        PortError::Timeout { op }
    } else if (400..500).contains(&status) {
        PortError::Invalid { op, detail }
    } else if status >= 500 {
        // InternalFailure, ServerException, ...: the service could not answer now.
        PortError::Unavailable { op, detail }
    } else {
        PortError::Unexpected { op, detail }
    }
}

/// Classifies any SDK error once.
pub fn classify<E>(op: &str, err: SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match &err {
        SdkError::TimeoutError(_) => PortError::Timeout { op: op.to_owned() },
        // A connection that failed or timed out before any answer is transient.
        SdkError::DispatchFailure(d) if d.is_timeout() || d.is_io() => {
            PortError::Timeout { op: op.to_owned() }
        }
        SdkError::ServiceError(ctx) => {
            let status = ctx.raw().status().as_u16();
            let meta = ctx.err();
            classify_code(
                op,
                meta.code().unwrap_or_default(),
                status,
                meta.message().unwrap_or_default(),
            )
        }
        _ => PortError::Unexpected {
            op: op.to_owned(),
            detail: aws_smithy_types::error::display::DisplayErrorContext(&err).to_string(),
        },
    }
}

/// Classifies an SDK error for the retry layer, with the server's `Retry-After` if it sent one.
pub fn failure<E>(op: &str, err: SdkError<E, HttpResponse>) -> crate::retry::Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retry_after = match &err {
        SdkError::ServiceError(ctx) => ctx
            .raw()
            .headers()
            .get("retry-after")
            .and_then(crate::retry::parse_retry_after),
        _ => None,
    };
    crate::retry::Failure {
        error: classify(op, err),
        retry_after,
    }
}

/// Turns `NotFound` into `Ok(None)`; every other error stays an error.
pub(crate) fn none_if_missing<T>(r: Result<T, PortError>) -> Result<Option<T>, PortError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(PortError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Epoch seconds from an SDK timestamp.
pub(crate) fn epoch(t: &aws_smithy_types::DateTime) -> ngm_core::model::Timestamp {
    ngm_core::model::Timestamp(t.secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_codes_are_classified_once_by_code_then_status() {
        let cases: &[(&str, u16, &str, &str)] = &[
            ("ResourceNotFoundException", 404, "", "NotFound"),
            ("ParameterNotFound", 400, "", "NotFound"),
            (
                "ValidationError",
                400,
                "AutoScalingGroup name not found - x",
                "NotFound",
            ),
            (
                "ValidationError",
                400,
                "MaxSize must be >= MinSize",
                "Invalid",
            ),
            ("ThrottlingException", 400, "Rate exceeded", "Throttled"),
            ("Throttling", 400, "", "Throttled"),
            ("RequestLimitExceeded", 503, "", "Throttled"),
            ("", 429, "", "Throttled"),
            ("AccessDeniedException", 403, "", "AccessDenied"),
            ("UnauthorizedOperation", 403, "", "AccessDenied"),
            ("ResourceInUseException", 409, "", "Conflict"),
            ("ExecutionAlreadyExists", 400, "", "Conflict"),
            ("InvalidParameterException", 400, "bad", "Invalid"),
            ("ServerException", 500, "", "Unavailable"),
            ("InternalFailure", 500, "", "Unavailable"),
            ("", 502, "Bad Gateway", "Unavailable"),
            ("RequestTimeout", 408, "", "Timeout"),
        ];
        for (code, status, message, want) in cases {
            let got = classify_code("Op", code, *status, message);
            let name = format!("{got:?}");
            assert!(
                name.starts_with(want),
                "{code}/{status}/{message}: got {name}, want {want}"
            );
        }
    }

    #[test]
    fn not_found_becomes_none_and_other_errors_stay() {
        let missing: Result<(), _> = Err(PortError::NotFound { what: "x".into() });
        assert_eq!(none_if_missing(missing), Ok(None));
        let throttled: Result<(), _> = Err(PortError::Throttled { op: "Op".into() });
        assert!(none_if_missing(throttled).is_err());
    }
}
