//! The example in the README, compiled and run as it is written there.

use morgana::{Clock, Duration, Key, KvRw, Platform};

/// Count ticks into a key-value store, once a minute.
pub async fn start<P: Platform, K: KvRw>(p: P, kv: K, ticks: u32) -> Result<(), morgana::KvError> {
    let key = Key::parse("/ticks").unwrap();
    for n in 1..=ticks {
        p.clock().sleep(Duration::from_secs(60)).await;
        kv.set(&key, &n.to_le_bytes()).await?;
        log::info!("tick {n}");
    }
    Ok(())
}

#[test]
fn ten_minutes_of_ticks() {
    let out = morgana_mem::sim::Sim::new(7).run(|p| {
        let kv = morgana_mem::MemKv::new(p.clock());
        async move { start(p, kv, 10).await }
    });
    assert_eq!(out.messages().len(), 10);
    assert_eq!(out.end.as_millis(), 600_000); // ten simulated minutes, instantly
}
