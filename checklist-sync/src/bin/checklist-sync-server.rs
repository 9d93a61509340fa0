//! Stand-alone checklist sync server for tests and benchmarks: query-parameter "auth",
//! never to be exposed. Usage: `checklist-sync-server <database-url> [addr] [items]`.
//! Prints `LISTENING <addr>` once it accepts connections.

#[path = "../../devsupport/server.rs"]
mod devserver;

use std::io::Write;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let url = args.next().ok_or_else(|| {
        anyhow::anyhow!("usage: checklist-sync-server <database-url> [addr] [items]")
    })?;
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let items: usize = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let pool = devserver::open_pool(&url).await?;
    let mut config = checklist_sync::SyncConfig::default();
    // Tests and benchmarks raise the per-connection rate limit to pipeline many operations.
    if let Ok(rate) = std::env::var("CHECKLIST_SYNC_RATE_PER_SEC") {
        config.rate_per_sec = rate.parse()?;
        config.burst = config.rate_per_sec;
    }
    // The benchmark compares checkpoint intervals.
    if let Ok(ms) = std::env::var("CHECKLIST_SYNC_CHECKPOINT_MS") {
        config.sqlite_checkpoint_every = std::time::Duration::from_millis(ms.parse()?);
    }
    // The benchmark tries the overload bound.
    if let Ok(n) = std::env::var("CHECKLIST_SYNC_MAX_QUEUED_EVENTS") {
        config.max_queued_events = n.parse()?;
    }
    if let Ok(ms) = std::env::var("CHECKLIST_SYNC_OVERLOAD_BUDGET_MS") {
        config.overload_commit_budget = std::time::Duration::from_millis(ms.parse()?);
    }
    let server = devserver::start(pool, config, None, items, &addr).await?;
    println!("LISTENING {}", server.addr);
    std::io::stdout().flush()?;
    tokio::signal::ctrl_c().await?;
    Ok(())
}
