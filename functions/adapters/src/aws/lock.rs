//! The per-cluster lock in DynamoDB: one item per cluster, written and deleted only under
//! conditions, so that two runs racing for the same cluster cannot both win.
//!
//! Table layout (the SAM template and [`ensure_lock_table`] must agree):
//! - partition key `pk` (string): the lock key, the cluster's ARN; no sort key; on-demand billing;
//! - `holder` (string): the holding execution's name;
//! - `acquiredAt` (number): Unix seconds when the holder first took it;
//! - `leaseUntil` (number): Unix seconds after which anyone may take the lock over.
//!
//! Acquire is a PutItem conditioned on `attribute_not_exists(pk) OR holder = :me OR
//! leaseUntil < :now`; release is a DeleteItem conditioned on `holder = :me`. IAM:
//! `dynamodb:GetItem`, `dynamodb:PutItem`, `dynamodb:DeleteItem` on the table
//! (`dynamodb:CreateTable` and `dynamodb:DescribeTable` only for [`ensure_lock_table`]).

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType,
    ScalarAttributeType, TableStatus,
};
use ngm_core::model::Timestamp;
use ngm_core::ports::{LockAcquired, LockPort, LockRecord, PortError, PortResult};

use super::classify;

/// The partition key attribute.
pub const PK: &str = "pk";
/// The holding execution's name.
pub const HOLDER: &str = "holder";
/// Unix seconds, number.
pub const ACQUIRED_AT: &str = "acquiredAt";
/// Unix seconds, number.
pub const LEASE_UNTIL: &str = "leaseUntil";

/// The lock table.
#[derive(Debug, Clone)]
pub struct LockAdapter {
    client: Client,
    table: String,
}

impl LockAdapter {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
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
        acquired_at: time(ACQUIRED_AT)?,
        lease_until: time(LEASE_UNTIL)?,
    })
}

#[async_trait]
impl LockPort for LockAdapter {
    async fn acquire(&self, record: &LockRecord, now: Timestamp) -> PortResult<LockAcquired> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .item(PK, s(&record.key))
            .item(HOLDER, s(&record.holder))
            .item(ACQUIRED_AT, n(record.acquired_at))
            .item(LEASE_UNTIL, n(record.lease_until))
            .condition_expression("attribute_not_exists(#pk) OR #holder = :me OR #lease < :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_names("#lease", LEASE_UNTIL)
            .expression_attribute_values(":me", s(&record.holder))
            .expression_attribute_values(":now", n(now))
            .send()
            .await;
        match out {
            Ok(_) => Ok(LockAcquired::Acquired),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(LockAcquired::HeldBy(self.read(&record.key).await?))
            }
            Err(e) => Err(classify("dynamodb:PutItem", e)),
        }
    }

    async fn release(&self, key: &str, holder: &str) -> PortResult<bool> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key(PK, s(key))
            .condition_expression("#holder = :me")
            .expression_attribute_names("#holder", HOLDER)
            .expression_attribute_values(":me", s(holder))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            // Someone else holds it, or nobody does: not ours to delete.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|se| se.is_conditional_check_failed_exception()) =>
            {
                Ok(false)
            }
            Err(e) => Err(classify("dynamodb:DeleteItem", e)),
        }
    }

    async fn read(&self, key: &str) -> PortResult<Option<LockRecord>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(PK, s(key))
            // A lock read must see the last conditional write.
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| classify("dynamodb:GetItem", e))?;
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
    let created = client
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
        .send()
        .await
        .map_err(|e| classify("dynamodb:CreateTable", e));
    match created {
        // ResourceInUseException: the table exists already.
        Ok(_) | Err(PortError::Conflict { .. }) => {}
        Err(e) => return Err(e),
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|e| classify("dynamodb:DescribeTable", e))?;
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
