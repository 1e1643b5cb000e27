//! The DynamoDB lock against moto: conditional acquire and release, renewal with the state,
//! lease takeover only once Step Functions says the holder ended, and two runs racing for one
//! cluster.

mod common;

use std::sync::Arc;

use ngm_adapters::aws::{LockAdapter, SfnAdapter, ensure_lock_table};
use ngm_core::model::Timestamp;
use ngm_core::ports::{LockAcquired, LockPort, LockRecord};

const KEY: &str = "arn:aws:eks:us-east-1:123456789012:cluster/prod";

fn record(holder: &str, at: i64, until: i64) -> LockRecord {
    LockRecord {
        key: KEY.into(),
        holder: holder.into(),
        holder_arn: None,
        acquired_at: Timestamp(at),
        lease_until: Timestamp(until),
        state: None,
    }
}

async fn table(url: &str, name: &str) -> LockAdapter {
    let conf = common::sdk_config(url).await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    ensure_lock_table(&client, name).await.expect("table");
    // A second call finds the table and succeeds.
    ensure_lock_table(&client, name).await.expect("table again");
    let sfn = Arc::new(SfnAdapter::new(aws_sdk_sfn::Client::new(&conf)));
    LockAdapter::new(client, name, sfn)
}

/// A state machine whose executions stay RUNNING in moto (a long Wait), and one execution.
async fn running_execution(url: &str, name: &str) -> (aws_sdk_sfn::Client, String) {
    let sfn = aws_sdk_sfn::Client::new(&common::sdk_config(url).await);
    let machine = sfn
        .create_state_machine()
        .name(format!("ngm-migration-{name}"))
        .role_arn("arn:aws:iam::123456789012:role/x")
        .definition(r#"{"StartAt":"W","States":{"W":{"Type":"Wait","Seconds":600,"End":true}}}"#)
        .send()
        .await
        .expect("state machine")
        .state_machine_arn()
        .to_owned();
    let arn = sfn
        .start_execution()
        .state_machine_arn(machine)
        .name(name)
        .input("{}")
        .send()
        .await
        .expect("start")
        .execution_arn()
        .to_owned();
    (sfn, arn)
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_only_once_its_execution_has_ended() {
    let moto = common::moto(None).await;
    let lock = table(&moto.url, "ngm-takeover").await;
    let (sfn, arn) = running_execution(&moto.url, "a").await;
    let a = LockRecord {
        holder_arn: Some(arn.clone()),
        ..record("a", 100, 200)
    };
    assert_eq!(
        lock.acquire(&a, Timestamp(100)).await,
        Ok(LockAcquired::Acquired)
    );
    assert_eq!(lock.read(KEY).await, Ok(Some(a.clone())));

    // Long past the lease, but "a" still runs: no takeover, and the holder is named.
    let b = record("b", 1000, 2000);
    assert_eq!(
        lock.acquire(&b, Timestamp(1000)).await,
        Ok(LockAcquired::HeldBy(Some(a.clone())))
    );
    // Stopped from the console: now it may be taken over.
    sfn.stop_execution()
        .execution_arn(&arn)
        .send()
        .await
        .expect("stop");
    assert_eq!(
        lock.acquire(&b, Timestamp(1000)).await,
        Ok(LockAcquired::Acquired)
    );
    assert_eq!(lock.read(KEY).await, Ok(Some(b.clone())));

    // A holder whose execution never existed has ended too (a start that failed).
    let c = LockRecord {
        holder_arn: arn.rsplit_once(':').map(|(head, _)| format!("{head}:c")),
        ..record("c", 3000, 4000)
    };
    assert_eq!(
        lock.acquire(&c, Timestamp(3000)).await,
        Ok(LockAcquired::Acquired)
    );
    let d = record("d", 5000, 6000);
    assert_eq!(
        lock.acquire(&d, Timestamp(5000)).await,
        Ok(LockAcquired::Acquired)
    );
    moto.stop().await;
}

#[tokio::test]
async fn renewal_stores_the_state_and_fails_once_the_lock_is_someone_elses() {
    let moto = common::moto(None).await;
    let lock = table(&moto.url, "ngm-renew").await;
    let a = record("a", 100, 200);
    assert_eq!(
        lock.acquire(&a, Timestamp(100)).await,
        Ok(LockAcquired::Acquired)
    );
    assert_eq!(
        lock.renew(KEY, "a", Timestamp(900), r#"{"phase":"tainted"}"#)
            .await,
        Ok(true)
    );
    let read = lock.read(KEY).await.ok().flatten();
    assert_eq!(
        read,
        Some(LockRecord {
            lease_until: Timestamp(900),
            state: Some(r#"{"phase":"tainted"}"#.into()),
            ..a.clone()
        })
    );
    // Another execution cannot renew it, and nothing changes.
    assert_eq!(lock.renew(KEY, "b", Timestamp(9999), "{}").await, Ok(false));
    assert_eq!(lock.read(KEY).await.ok().flatten(), read);
    // Released: renewing is lost too.
    assert_eq!(lock.release(KEY, "a").await, Ok(true));
    assert_eq!(lock.renew(KEY, "a", Timestamp(900), "{}").await, Ok(false));
    assert_eq!(lock.read(KEY).await, Ok(None));
    moto.stop().await;
}

#[tokio::test]
async fn the_lock_is_taken_refused_renewed_taken_over_and_released_only_by_its_holder() {
    let moto = common::moto(None).await;
    let lock = table(&moto.url, "ngm-locks").await;

    assert_eq!(lock.read(KEY).await, Ok(None));
    assert_eq!(
        lock.acquire(&record("a", 100, 200), Timestamp(100)).await,
        Ok(LockAcquired::Acquired)
    );
    assert_eq!(lock.read(KEY).await, Ok(Some(record("a", 100, 200))));

    // A live lease refuses another holder and names the holder.
    assert_eq!(
        lock.acquire(&record("b", 150, 300), Timestamp(150)).await,
        Ok(LockAcquired::HeldBy(Some(record("a", 100, 200))))
    );
    // The holder renews.
    assert_eq!(
        lock.acquire(&record("a", 100, 400), Timestamp(150)).await,
        Ok(LockAcquired::Acquired)
    );
    // Releasing someone else's lock deletes nothing.
    assert_eq!(lock.release(KEY, "b").await, Ok(false));
    assert_eq!(lock.read(KEY).await, Ok(Some(record("a", 100, 400))));

    // Once the lease has run out, another run takes over.
    assert_eq!(
        lock.acquire(&record("b", 401, 900), Timestamp(401)).await,
        Ok(LockAcquired::Acquired)
    );
    assert_eq!(lock.release(KEY, "a").await, Ok(false));
    assert_eq!(lock.release(KEY, "b").await, Ok(true));
    assert_eq!(lock.read(KEY).await, Ok(None));
    assert_eq!(lock.release(KEY, "b").await, Ok(false));
    moto.stop().await;
}

#[tokio::test]
async fn two_runs_racing_for_one_cluster_leave_exactly_one_holder() {
    let moto = common::moto(None).await;
    let lock = table(&moto.url, "ngm-race").await;
    for round in 0..5 {
        let key = format!("{KEY}-{round}");
        let attempt = |holder: &'static str| {
            let lock = lock.clone();
            let r = LockRecord {
                key: key.clone(),
                ..record(holder, 10, 1000)
            };
            tokio::spawn(async move { lock.acquire(&r, Timestamp(10)).await })
        };
        let (a, b) = (attempt("a"), attempt("b"));
        let results = [a.await.expect("join"), b.await.expect("join")];
        let won: Vec<_> = results
            .iter()
            .filter(|r| **r == Ok(LockAcquired::Acquired))
            .collect();
        assert_eq!(won.len(), 1, "round {round}: {results:?}");
        let holder = lock.read(&key).await.ok().flatten().map(|r| r.holder);
        let loser = results.iter().find_map(|r| match r {
            Ok(LockAcquired::HeldBy(Some(h))) => Some(h.holder.clone()),
            _ => None,
        });
        assert_eq!(holder, loser, "round {round}: the loser is told who won");
    }
    moto.stop().await;
}
