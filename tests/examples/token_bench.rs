//! Benchmark: what an API token adds to a call (issue 22) — the token's lookup, the route
//! check and the call log's write with its pruning — against the same call with a staff
//! session. `GET /api/inspections/{id}` sequentially, first by the session, then by a token
//! whose log already holds its bound (10,000 calls), so every call also deletes the oldest.
//!
//! Run: `cargo run -p inspector-tests --example token_bench [-- <calls>]` (default 300). With
//! `INSPECTOR_TEST_PG_URL` set it runs on PostgreSQL.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use inspector_tests::{spawn_app, Client, Role};
use serde_json::json;

async fn median_ms(c: &Client, path: &str, calls: usize) -> Result<(f64, f64, f64)> {
    let mut times = Vec::with_capacity(calls);
    for _ in 0..calls {
        let t = Instant::now();
        let r = c.get(path).await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(r.status == 200, "{}", r.text);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[calls / 2], times[calls / 10], times[calls * 9 / 10]))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let calls: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(300);
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let id = admin.create_inspection().await;
    let made = admin
        .post_json(
            "/api/tokens",
            &json!({"name": "bench", "scopes": ["results:read"],
                    "expires_at": (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339()}),
        )
        .await;
    ensure!(made.status == 201, "{}", made.text);
    let token = made.body["token"]["id"].as_str().context("id")?.to_string();
    let sys = app.bearer(made.body["secret"].as_str().context("secret")?);
    // BENCH_EMPTY_LOG=1: a token whose log is below its bound (no pruning by count).
    let seed = if std::env::var("BENCH_EMPTY_LOG").is_ok() {
        0
    } else {
        10_000
    };
    sqlx::query(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $3) \
         INSERT INTO api_token_calls (id, token_id, at, method, path, status) \
         SELECT 'seed-' || i, $1, $2 + i, 'GET', '/api/seed', 200 FROM n WHERE i <= $3",
    )
    .bind(&token)
    .bind(chrono::Utc::now().timestamp_micros() - 1_000_000_000)
    .bind(seed)
    .execute(&app.db)
    .await?;
    let path = format!("/api/inspections/{id}");
    // Warm-up of both paths.
    median_ms(&admin, &path, 20).await?;
    median_ms(&sys, &path, 20).await?;
    let s = median_ms(&admin, &path, calls).await?;
    let t = median_ms(&sys, &path, calls).await?;
    println!(
        "{calls} calls of GET {{inspection}}: session median {:.2} ms (p10 {:.2}, p90 {:.2}); \
         token median {:.2} ms (p10 {:.2}, p90 {:.2}); the token adds {:.2} ms at the median",
        s.0,
        s.1,
        s.2,
        t.0,
        t.1,
        t.2,
        t.0 - s.0
    );
    app.stop().await;
    Ok(())
}
