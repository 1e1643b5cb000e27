//! The DynamoDB lock against moto: conditional acquire and release, lease takeover, and two
//! runs racing for one cluster.

mod common;

use ngm_adapters::aws::{LockAdapter, ensure_lock_table};
use ngm_core::model::Timestamp;
use ngm_core::ports::{LockAcquired, LockPort, LockRecord};

const KEY: &str = "arn:aws:eks:us-east-1:123456789012:cluster/prod";

fn record(holder: &str, at: i64, until: i64) -> LockRecord {
    LockRecord {
        key: KEY.into(),
        holder: holder.into(),
        acquired_at: Timestamp(at),
        lease_until: Timestamp(until),
    }
}

async fn table(url: &str, name: &str) -> LockAdapter {
    let conf = common::sdk_config(url).await;
    let client = aws_sdk_dynamodb::Client::new(&conf);
    ensure_lock_table(&client, name).await.expect("table");
    // A second call finds the table and succeeds.
    ensure_lock_table(&client, name).await.expect("table again");
    LockAdapter::new(client, name)
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
