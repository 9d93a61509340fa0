//! Benchmark: the ratings' statistics (issue 16) over 10,000 ratings — the whole answer of
//! `GET /api/ratings/stats` (and `.csv`) as an admin sees it: the query over the read model,
//! the fold per control body, per inspector, per criterion and per month, the JSON. The rows
//! are written straight into the read model (`ratings`, `rating_scores`), as the projection
//! would have written them, its counted cells derived from them (`ratings::rebuild_cells`), over 10,000 inspections of 50 inspectors in 5 control bodies across
//! 12 months, five criteria each, about a fifth of the scores below 5 with reasons.
//!
//! Run: `cargo run -p inspector-tests --example ratings_bench [-- <ratings> <runs>]` (defaults
//! 10000 ratings, 21 runs). With `INSPECTOR_TEST_PG_URL` set it runs on PostgreSQL.

use std::time::Instant;

use anyhow::{ensure, Context, Result};
use inspector_tests::{spawn_app, Role};
use serde_json::json;
use sqlx::Row;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize, d: usize| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(d);
    let (n, runs) = (arg(0, 10_000), arg(1, 21));
    let app = spawn_app().await;
    let admin = app.staff("admin", Role::Admin).await;
    let mut bodies = Vec::new();
    for b in 0..5 {
        let r = admin
            .post_json(
                "/api/control-bodies",
                &json!({"name": format!("Орган {b}"), "region": "Москва", "control_kind": "надзор"}),
            )
            .await;
        bodies.push(r.body["id"].as_str().context("body")?.to_string());
    }
    let mut inspectors = Vec::new();
    for i in 0..50 {
        let id = app
            .create_user(
                &format!("insp{i}"),
                "a long bench password",
                Role::Inspector,
            )
            .await;
        inspectors.push(id.to_string());
    }
    // One real inspection, copied for the others (only the id, the inspector and the create key change).
    let c = app.staff("maker", Role::Inspector).await;
    let template = c.create_inspection().await;
    let row = sqlx::query("SELECT * FROM inspections WHERE id = $1")
        .bind(&template)
        .fetch_one(&app.db)
        .await?;
    let cols: Vec<String> = row
        .columns()
        .iter()
        .map(|c| sqlx::Column::name(c).to_string())
        .collect();
    let select: Vec<String> = cols
        .iter()
        .map(|c| match c.as_str() {
            "id" => "$1".to_string(),
            "inspector_id" => "$2".to_string(),
            "create_key" => "NULL".to_string(),
            other => other.to_string(),
        })
        .collect();
    let copy = format!(
        "INSERT INTO inspections ({}) SELECT {} FROM inspections WHERE id = $3",
        cols.join(", "),
        select.join(", ")
    );
    let criteria = [
        "courtesy",
        "clarity",
        "punctuality",
        "objectivity",
        "remote_format",
    ];
    let started = Instant::now();
    let mut tx = app.db.begin().await?;
    for k in 0..n {
        let id = uuid::Uuid::new_v4().to_string();
        let inspector = &inspectors[k % inspectors.len()];
        let body = &bodies[(k % inspectors.len()) % bodies.len()];
        sqlx::query(sqlx::AssertSqlSafe(copy.clone()))
            .bind(&id)
            .bind(inspector)
            .bind(&template)
            .execute(&mut *tx)
            .await?;
        let month = format!("2026-{:02}", k % 12 + 1);
        sqlx::query(
            "INSERT INTO ratings (inspection_id, side, control_body_id, inspector_id, business_inn, \
             criteria_version, month, first_seq, first_at, seq, updated_at) \
             VALUES ($1, 'business', $2, $3, '7707083893', 1, $4, 10, 0, 10, 0)",
        )
        .bind(&id)
        .bind(body)
        .bind(inspector)
        .bind(&month)
        .execute(&mut *tx)
        .await?;
        for (j, c) in criteria.iter().enumerate() {
            // A spread of 1..=10, about a fifth below 5.
            let score = ((k * 7 + j * 3) % 10 + 1) as i16;
            let score = if score < 5 && (k + j) % 2 == 0 {
                score + 5
            } else {
                score
            };
            let reasons = if score < 5 {
                "[\"rude_tone\",\"other\"]"
            } else {
                "[]"
            };
            sqlx::query(
                "INSERT INTO rating_scores (inspection_id, side, criterion, score, reasons, note) \
                 VALUES ($1, 'business', $2, $3, $4, NULL)",
            )
            .bind(&id)
            .bind(*c)
            .bind(score)
            .bind(reasons)
            .execute(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    eprintln!(
        "{n} ratings written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    // Written around the projection, so its counted cells are derived here as at start.
    let t = Instant::now();
    signaling::ratings::rebuild_cells(&app.db).await?;
    eprintln!("cells rebuilt in {:.1} s", t.elapsed().as_secs_f64());
    // For comparison: fetching every score, as the statistics did before the counted cells.
    let t = Instant::now();
    let rows = sqlx::query(
        "SELECT r.inspection_id, r.control_body_id, r.inspector_id, r.business_inn, r.month, \
         s.criterion, s.score, s.reasons FROM ratings r \
         JOIN rating_scores s ON s.inspection_id = r.inspection_id AND s.side = r.side \
         WHERE r.side = 'business'",
    )
    .fetch_all(&app.db)
    .await?;
    eprintln!(
        "every score fetched (not what the statistics read): {} rows in {:.1} ms",
        rows.len(),
        t.elapsed().as_secs_f64() * 1000.0
    );
    drop(rows);
    let mut times = Vec::new();
    let mut csv_times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let r = admin.get("/api/ratings/stats").await;
        times.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(r.status == 200, "{}", r.text);
        let total: u64 = r.body["control_bodies"]
            .as_array()
            .context("bodies")?
            .iter()
            .map(|b| b["ratings"].as_u64().unwrap_or(0))
            .sum();
        ensure!(
            total == n as u64,
            "the statistics count {total} ratings, not {n}"
        );
        let t = Instant::now();
        let (status, _, _) = admin.get_bytes("/api/ratings/stats.csv").await;
        csv_times.push(t.elapsed().as_secs_f64() * 1000.0);
        ensure!(status == 200);
    }
    for (name, mut t) in [("stats.json", times), ("stats.csv", csv_times)] {
        t.sort_by(f64::total_cmp);
        println!(
            "{name}: {n} ratings, {runs} runs: median {:.1} ms, min {:.1} ms, max {:.1} ms",
            t[t.len() / 2],
            t[0],
            t[t.len() - 1]
        );
    }
    app.stop().await;
    Ok(())
}
