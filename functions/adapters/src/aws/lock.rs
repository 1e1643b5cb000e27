//! The per-cluster lock in DynamoDB: one item per cluster, written and deleted only under
//! conditions, so that two runs racing for the same cluster cannot both win.
//!
//! Table layout (the SAM template and [`ensure_lock_table`] must agree):
//! - partition key `pk` (string): the lock key, the cluster's ARN; no sort key; on-demand billing;
//! - `holder` (string): the holding execution's name;
//! - `holderArn` (string): the holding execution's ARN;
//! - `acquiredAt` (number): Unix seconds when the holder first took it;
//! - `leaseUntil` (number): Unix seconds after which the lock may be taken over, once its
//!   holder's execution has ended;
//! - `state` (string): the holder's latest `MigrationState` JSON, written after every step.
//!
//! Acquire is a PutItem conditioned on `attribute_not_exists(pk) OR holder = :me`; when that
//! fails on an expired lease, Step Functions DescribeExecution on `holderArn` decides: a RUNNING
//! holder keeps the lock, an ended one is replaced by a PutItem conditioned on the exact
//! holder and lease read (so a renewal in between wins). Renewal is an UpdateItem of
//! `leaseUntil` and `state` conditioned on `holder = :me`; release a DeleteItem conditioned on
//! `holder = :me`. IAM: `dynamodb:GetItem`, `dynamodb:PutItem`, `dynamodb:UpdateItem`,
//! `dynamodb:DeleteItem` on the table and `states:DescribeExecution` on the migration's
//! executions (`dynamodb:CreateTable` and `dynamodb:DescribeTable` only for
//! [`ensure_lock_table`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use ngm_core::model::{ExecutionStatus, Timestamp};
use ngm_core::ports::{LockAcquired, LockPort, LockRecord, PortError, PortResult, SfnPort};

use super::failure;
use crate::retry::{self, Failure};

/// The partition key attribute.
pub const PK: &str = "pk";
/// The holding execution's name.
pub const HOLDER: &str = "holder";
/// The holding execution's ARN.
pub const HOLDER_ARN: &str = "holderArn";
/// Unix seconds, number.
pub const ACQUIRED_AT: &str = "acquiredAt";
/// Unix seconds, number.
pub const LEASE_UNTIL: &str = "leaseUntil";
/// The holder's latest `MigrationState` JSON (a DynamoDB reserved word: always `#state`).
pub const STATE: &str = "state";

/// The lock table, and the Step Functions client that says whether a holder still runs.
#[derive(Clone)]
pub struct LockAdapter {
    client: Client,
    table: String,
    executions: Arc<dyn SfnPort>,
}

impl std::fmt::Debug for LockAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LockAdapter")
            .field("table", &self.table)
            .finish_non_exhaustive()
    }
}

impl LockAdapter {
    /// `executions` answers DescribeExecution for holders whose lease has run out.
    pub fn new(client: Client, table: impl Into<String>, executions: Arc<dyn SfnPort>) -> Self {
        Self {
            client,
            table: table.into(),
            executions,
        }
    }

    /// Whether the holder of an expired lease may be replaced: its execution is known and
    /// no longer RUNNING (or does not exist). A record without an ARN predates it being kept;
    /// its lease alone decides, as it did when it was written.
    async fn holder_ended(&self, record: &LockRecord) -> PortResult<bool> {
        let Some(arn) = &record.holder_arn else {
            return Ok(true);
        };
        let info = self.executions.describe_execution(arn).await?;
        Ok(info.is_none_or(|i| i.status != ExecutionStatus::Running))
    }
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_owned())
}

fn n(t: Timestamp) -> AttributeValue {
    AttributeValue::N(t.0.to_string())
}

fn bad_item(detail: String) -> PortError {
    PortError::Unexpected {
        op: "dynamodb:GetItem".into(),
        detail,
    }
}

fn record_of(item: &HashMap<String, AttributeValue>) -> PortResult<LockRecord> {
    let text = |k: &str| -> PortResult<String> {
        match item.get(k) {
            Some(AttributeValue::S(v)) => Ok(v.clone()),
            other => Err(bad_item(format!(
                "attribute {k} is {other:?}, want a string"
            ))),
        }
    };
    let optional = |k: &str| -> PortResult<Option<String>> {
        match item.get(k) {
            None | Some(AttributeValue::Null(_)) => Ok(None),
            Some(_) => text(k).map(Some),
        }
    };
    let time = |k: &str| -> PortResult<Timestamp> {
        match item.get(k) {
            Some(AttributeValue::N(v)) => v
                .parse()
                .map(Timestamp)
                .map_err(|_| bad_item(format!("attribute {k} is {v:?}, want whole seconds"))),
            other => Err(bad_item(format!(
                "attribute {k} is {other:?}, want a number"
            ))),
        }
    };
    Ok(LockRecord {
        key: text(PK)?,
        holder: text(HOLDER)?,
        holder_arn: optional(HOLDER_ARN)?,
        acquired_at: time(ACQUIRED_AT)?,
        lease_until: time(LEASE_UNTIL)?,
        state: optional(STATE)?,
    })
}

/// Whether an SDK error is a failed write condition.
trait ConditionFailed {
    fn condition_failed(&self) -> bool;
}

macro_rules! condition_failed {
    ($($err:ty),*) => {$(
        impl ConditionFailed for $err {
            fn condition_failed(&self) -> bool {
                self.is_conditional_check_failed_exception()
            }
        }
    )*};
}

condition_failed!(
    aws_sdk_dynamodb::operation::put_item::PutItemError,
    aws_sdk_dynamodb::operation::update_item::UpdateItemError,
    aws_sdk_dynamodb::operation::delete_item::DeleteItemError
);

/// Sends a conditional write under the retry policy: `Ok(true)` written, `Ok(false)` the
/// condition failed.
macro_rules! conditional {
    ($op:expr, $builder:expr) => {{
        let builder = $builder;
        let op: &str = $op;
        retry::call(op, || {
            let b = builder.clone();
            async move {
                match b.send().await {
                    Ok(_) => Ok(true),
                    Err(e) if e.as_service_error().is_some_and(|se| se.condition_failed()) => {
                        Ok(false)
                    }
                    Err(e) => Err::<bool, Failure>(failure(op, e)),
                }
            }
        })
        .await
    }};
}

impl LockAdapter {
    fn put(
        &self,
        record: &LockRecord,
    ) -> aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder {
        let mut put = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&record.key))
            .item(HOLDER, s(&record.holder))
            .item(ACQUIRED_AT, n(record.acquired_at))
            .item(LEASE_UNTIL, n(record.lease_until));
        if let Some(arn) = &record.holder_arn {
            put = put.item(HOLDER_ARN, s(arn));
        }
        if let Some(state) = &record.state {
            put = put.item(STATE, s(state));
        }
        put
    }
}

#[async_trait]
impl LockPort for LockAdapter {
    async fn acquire(&self, record: &LockRecord, now: Timestamp) -> PortResult<LockAcquired> {
        // A free lock, or ours: one conditional put. Otherwise judge the record read, and
        // write only over exactly that record; a race sends us round again (bounded).
        for _ in 0..3 {
            let fresh = self
                .put(record)
                .condition_expression("attribute_not_exists(#pk) OR #holder = :me")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#holder", HOLDER)
                .expression_attribute_values(":me", s(&record.holder));
            if conditional!("dynamodb:PutItem", fresh)? {
                return Ok(LockAcquired::Acquired);
            }
            let Some(current) = self.read(&record.key).await? else {
                // Released since: try the free-lock put again.
                continue;
            };
            if current.lease_until >= now || !self.holder_ended(&current).await? {
                return Ok(LockAcquired::HeldBy(Some(current)));
            }
            tracing::info!(key = %record.key, holder = %current.holder, holder_arn = ?current.holder_arn, "taking over the expired lock of an ended execution");
            let takeover = self
                .put(record)
                .condition_expression("#holder = :old AND #lease = :lease")
                .expression_attribute_names("#holder", HOLDER)
                .expression_attribute_names("#lease", LEASE_UNTIL)
                .expression_attribute_values(":old", s(&current.holder))
                .expression_attribute_values(":lease", n(current.lease_until));
            if conditional!("dynamodb:PutItem", takeover)? {
                return Ok(LockAcquired::Acquired);
            }
        }
        Ok(LockAcquired::HeldBy(self.read(&record.key).await?))
    }

    async fn renew(
        &self,
        key: &str,
        holder: &str,
        lease_until: Timestamp,
        state: &str,
    ) -> PortResult<bool> {
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(PK, s(key))
            .update_expression("SET #lease = :lease, #state = :state")
            .condition_expression("#holder = :me")
            .expression_attribute_names("#lease", LEASE_UNTIL)
            .expression_attribute_names("#state", STATE)
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_values(":lease", n(lease_until))
            .expression_attribute_values(":state", s(state))
            .expression_attribute_values(":me", s(holder));
        conditional!("dynamodb:UpdateItem", update)
    }

    async fn release(&self, key: &str, holder: &str) -> PortResult<bool> {
        let delete = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(key))
            .condition_expression("#holder = :me")
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_values(":me", s(holder));
        // Someone else holds it, or nobody does: not ours to delete.
        conditional!("dynamodb:DeleteItem", delete)
    }

    async fn read(&self, key: &str) -> PortResult<Option<LockRecord>> {
        let out = crate::send!(
            "dynamodb:GetItem",
            self.client
                .get_item()
                .table_name(&self.table)
                .key(PK, s(key))
                // A lock read must see the last conditional write.
                .consistent_read(true)
        )?;
        out.item().map(record_of).transpose()
    }
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::Invalid {
        op: "dynamodb:CreateTable".into(),
        detail: e.to_string(),
    }
}

/// Creates the lock table (`pk` string hash key, on-demand) unless it exists, and waits up to a
/// minute for it to be ACTIVE. For the local runner and tests; a deployment gets the table
/// from the SAM template.
pub async fn ensure_lock_table(client: &Client, name: &str) -> PortResult<()> {
    let created = crate::send!(
        "dynamodb:CreateTable",
        client
            .create_table()
            .table_name(name)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(PK)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .map_err(build_error)?,
            )
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(PK)
                    .key_type(KeyType::Hash)
                    .build()
                    .map_err(build_error)?,
            )
            .billing_mode(BillingMode::PayPerRequest)
    );
    match created {
        // ResourceInUseException: the table exists already.
        Ok(_) | Err(PortError::Conflict { .. }) => {}
        Err(e) => return Err(e),
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = crate::send!(
            "dynamodb:DescribeTable",
            client.describe_table().table_name(name)
        )?;
        if d.table().and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(PortError::Timeout {
                op: "dynamodb:CreateTable".into(),
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
