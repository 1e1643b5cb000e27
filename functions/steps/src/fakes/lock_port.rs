//! The lock table over [`FakeCloud`], with the DynamoDB adapter's conditions: a write succeeds
//! when there is no record, the record is the caller's, or its lease has run out and its
//! holder's execution is not running; a renewal and a delete only when the caller holds the
//! record.

use async_trait::async_trait;
use ngm_core::model::{ExecutionStatus, Timestamp};
use ngm_core::ports::{LockAcquired, LockPort, LockRecord, PortResult};

use super::FakeCloud;

#[async_trait]
impl LockPort for FakeCloud {
    async fn acquire(&self, record: &LockRecord, now: Timestamp) -> PortResult<LockAcquired> {
        let mut i = self.lock();
        i.enter("lock_acquire", &record.key, true)?;
        let running = |arn: &Option<String>| {
            arn.as_ref().is_some_and(|a| {
                i.w.executions
                    .iter()
                    .any(|e| &e.arn == a && e.status == ExecutionStatus::Running)
            })
        };
        match i.w.locks.get(&record.key) {
            Some(c)
                if c.holder != record.holder
                    && (c.lease_until >= now || running(&c.holder_arn)) =>
            {
                Ok(LockAcquired::HeldBy(Some(c.clone())))
            }
            _ => {
                i.w.locks.insert(record.key.clone(), record.clone());
                Ok(LockAcquired::Acquired)
            }
        }
    }

    async fn renew(
        &self,
        key: &str,
        holder: &str,
        lease_until: Timestamp,
        state: &str,
    ) -> PortResult<bool> {
        let mut i = self.lock();
        i.enter("lock_renew", key, true)?;
        match i.w.locks.get_mut(key) {
            Some(c) if c.holder == holder => {
                c.lease_until = lease_until;
                c.state = Some(state.to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn release(&self, key: &str, holder: &str) -> PortResult<bool> {
        let mut i = self.lock();
        i.enter("lock_release", key, true)?;
        if i.w.locks.get(key).is_some_and(|c| c.holder == holder) {
            i.w.locks.remove(key);
            return Ok(true);
        }
        Ok(false)
    }

    async fn read(&self, key: &str) -> PortResult<Option<LockRecord>> {
        let mut i = self.lock();
        i.enter("lock_read", key, false)?;
        Ok(i.w.locks.get(key).cloned())
    }
}
