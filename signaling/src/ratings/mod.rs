//! Mutual ratings after the event (issue 16): the business rates the control body (its
//! inspector), the inspector rates the business, each by its side's criteria (1..=10, a score
//! below 5 asks the criterion's follow-up questions), once per inspection, changeable within
//! `[ratings] edit_window_secs` of the first rating and final after it.
//!
//! - `model.rs` — plain data and pure rules: `Score`, criteria sets, the check of a rating
//!   against its set, the edit window.
//! - `http.rs` — the criteria (read; new versions by an admin), an inspection's rating (read,
//!   give, change), the statistics (JSON, CSV, SVG) and the public page's.
//! - `stats.rs` — the statistics as a pure fold of score rows, and their CSV and SVG.
//!
//! A rating is the `rating` event of the inspection's hash chain (server-made, after the
//! finish; the room checks one per side and changes of the current one). The current rating
//! is read from that event; the `ratings` and `rating_scores` tables are the statistics' read
//! model, written by [`project`] in the sync writer's transaction that appends the event.

pub mod http;
pub mod model;
pub mod stats;

use checklist_sync::{CommittedEvent, RatingScore, RatingSide};
use serde::Deserialize;
use sqlx::{AnyConnection, AnyPool, Row};

pub use http::router;
use model::{CriteriaBody, CriteriaSet, CriteriaVersion};

use crate::db::{now_micros, RowExt};
use crate::error::{ApiError, ApiResult};

/// The seeded criteria of both sides (version 1 when a side has none).
const DEFAULT_CRITERIA: &str = include_str!("default_criteria.json");

/// Both sides' seeded sets.
#[derive(Deserialize)]
struct Defaults {
    business: CriteriaBody,
    inspector: CriteriaBody,
}

/// Stores the default criteria as version 1 of each side that has none (at start).
pub async fn seed_defaults(db: &AnyPool) -> anyhow::Result<()> {
    let d: Defaults = serde_json::from_str(DEFAULT_CRITERIA)?;
    for (side, body) in [
        (RatingSide::Business, d.business),
        (RatingSide::Inspector, d.inspector),
    ] {
        body.check()
            .map_err(|e| anyhow::anyhow!("default criteria of {}: {e:?}", side.as_str()))?;
        // Another server starting at the same time may store it first: nothing to do then.
        sqlx::query(
            "INSERT INTO rating_criteria (side, version, body, created_by, created_at) \
             VALUES ($1, 1, $2, NULL, $3) ON CONFLICT (side, version) DO NOTHING",
        )
        .bind(side.as_str())
        .bind(serde_json::to_string(&body)?)
        .bind(now_micros())
        .execute(db)
        .await?;
    }
    Ok(())
}

fn parse_set(side: RatingSide, version: i64, body: &str) -> ApiResult<CriteriaSet> {
    let b: CriteriaBody =
        serde_json::from_str(body).map_err(|e| crate::db::corrupt("rating_criteria.body", e))?;
    Ok(CriteriaSet {
        side,
        version: CriteriaVersion(
            u32::try_from(version).map_err(|e| crate::db::corrupt("rating_criteria.version", e))?,
        ),
        criteria: b.criteria,
    })
}

/// The newest criteria set of a side.
pub async fn current_set(db: &AnyPool, side: RatingSide) -> ApiResult<CriteriaSet> {
    let row = sqlx::query(
        "SELECT version, body FROM rating_criteria WHERE side = $1 ORDER BY version DESC LIMIT 1",
    )
    .bind(side.as_str())
    .fetch_optional(db)
    .await?
    .ok_or_else(|| anyhow::anyhow!("no criteria set for {}", side.as_str()))?;
    let version: i64 = row.col(0)?;
    let body: String = row.col(1)?;
    parse_set(side, version, &body)
}

/// A given version of a side's criteria set.
pub async fn set_version(
    db: &AnyPool,
    side: RatingSide,
    version: u32,
) -> ApiResult<Option<CriteriaSet>> {
    let row =
        sqlx::query("SELECT version, body FROM rating_criteria WHERE side = $1 AND version = $2")
            .bind(side.as_str())
            .bind(i64::from(version))
            .fetch_optional(db)
            .await?;
    match row {
        None => Ok(None),
        Some(r) => {
            let v: i64 = r.col(0)?;
            let body: String = r.col(1)?;
            parse_set(side, v, &body).map(Some)
        }
    }
}

/// A new version of a side's criteria (an administrator's edit); ratings given before keep
/// naming the version they answered.
pub async fn store_set(
    db: &AnyPool,
    side: RatingSide,
    body: &CriteriaBody,
    by: uuid::Uuid,
) -> ApiResult<CriteriaSet> {
    let current = current_set(db, side).await?;
    let version = current.version.0 + 1;
    let done = sqlx::query(
        "INSERT INTO rating_criteria (side, version, body, created_by, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (side, version) DO NOTHING",
    )
    .bind(side.as_str())
    .bind(i64::from(version))
    .bind(serde_json::to_string(body).map_err(anyhow::Error::from)?)
    .bind(by.to_string())
    .bind(now_micros())
    .execute(db)
    .await?;
    if done.rows_affected() != 1 {
        return Err(ApiError::Conflict {
            code: "criteria_changed",
            message: "another version of the criteria was stored meanwhile".into(),
        });
    }
    Ok(CriteriaSet {
        side,
        version: CriteriaVersion(version),
        criteria: body.criteria.clone(),
    })
}

/// The payload of a `rating` event (what [`checklist_sync::Operation::Rating`] serializes to).
#[derive(Debug, Clone, Deserialize)]
pub struct RatingPayload {
    /// Who rated.
    pub side: RatingSide,
    /// The criteria set's version.
    pub criteria_version: u32,
    /// The scores.
    pub scores: Vec<RatingScore>,
    /// The rating it changed.
    #[serde(default)]
    pub revises: Option<u64>,
}

/// The statistics' read model of a committed `rating` event, in the writer's transaction:
/// the side's row (grouped by the inspection's inspector and control body, the month of the
/// first rating) and its scores, replaced by a change; the counted cells follow (the old
/// scores taken out, the new ones added).
pub async fn project(tx: &mut AnyConnection, e: &CommittedEvent) -> Result<(), sqlx::Error> {
    let p: RatingPayload = serde_json::from_value(e.payload.clone())
        .map_err(|err| sqlx::Error::Protocol(format!("rating event {}: {err}", e.seq)))?;
    let id = e.inspection_id.to_string();
    let side = p.side.as_str();
    let old = sqlx::query("SELECT criterion, score, reasons FROM rating_scores WHERE inspection_id = $1 AND side = $2")
        .bind(&id)
        .bind(side)
        .fetch_all(&mut *tx)
        .await?;
    let existed = sqlx::query("SELECT 1 FROM ratings WHERE inspection_id = $1 AND side = $2")
        .bind(&id)
        .bind(side)
        .fetch_optional(&mut *tx)
        .await?
        .is_some();
    sqlx::query(
        "INSERT INTO ratings (inspection_id, side, control_body_id, inspector_id, business_inn, \
         criteria_version, month, first_seq, first_at, seq, updated_at) \
         SELECT i.id, $2, u.control_body_id, i.inspector_id, i.business_inn, $3, $4, $5, $6, $5, $6 \
         FROM inspections i JOIN users u ON u.id = i.inspector_id WHERE i.id = $1 \
         ON CONFLICT (inspection_id, side) DO UPDATE SET \
         criteria_version = excluded.criteria_version, seq = excluded.seq, \
         updated_at = excluded.updated_at",
    )
    .bind(&id)
    .bind(side)
    .bind(i64::from(p.criteria_version))
    .bind(model::month_of(e.server_ts_micros))
    .bind(e.seq as i64)
    .bind(e.server_ts_micros)
    .execute(&mut *tx)
    .await?;
    // The cells' keys are the row's as first stored: a change keeps its month and body.
    let key = cell_key(&mut *tx, &id, p.side).await?;
    if !existed {
        add_rating(&mut *tx, &key).await?;
    }
    for r in old {
        let criterion: String = r.try_get(0)?;
        let score: i16 = r.try_get(1)?;
        let reasons: String = r.try_get(2)?;
        let reasons: Vec<String> = serde_json::from_str(&reasons)
            .map_err(|err| sqlx::Error::Protocol(format!("rating_scores.reasons: {err}")))?;
        count_score(&mut *tx, &key, &criterion, score, &reasons, -1).await?;
    }
    sqlx::query("DELETE FROM rating_scores WHERE inspection_id = $1 AND side = $2")
        .bind(&id)
        .bind(side)
        .execute(&mut *tx)
        .await?;
    for s in &p.scores {
        sqlx::query(
            "INSERT INTO rating_scores (inspection_id, side, criterion, score, reasons, note) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(side)
        .bind(&s.criterion)
        .bind(i16::from(s.score))
        .bind(serde_json::to_string(&s.reasons).unwrap_or_else(|_| "[]".into()))
        .bind(s.note.clone())
        .execute(&mut *tx)
        .await?;
        count_score(
            &mut *tx,
            &key,
            &s.criterion,
            i16::from(s.score),
            &s.reasons,
            1,
        )
        .await?;
    }
    Ok(())
}

/// What a rating's cells are keyed by: side, control body ('' for none), subject, month.
struct CellKey {
    side: &'static str,
    control_body: String,
    subject: String,
    month: String,
}

async fn cell_key(
    tx: &mut AnyConnection,
    id: &str,
    side: RatingSide,
) -> Result<CellKey, sqlx::Error> {
    let r = sqlx::query(
        "SELECT COALESCE(control_body_id, ''), inspector_id, business_inn, month FROM ratings \
         WHERE inspection_id = $1 AND side = $2",
    )
    .bind(id)
    .bind(side.as_str())
    .fetch_one(&mut *tx)
    .await?;
    let (inspector, inn): (String, String) = (r.try_get(1)?, r.try_get(2)?);
    Ok(CellKey {
        side: side.as_str(),
        control_body: r.try_get(0)?,
        subject: match side {
            RatingSide::Business => inspector,
            RatingSide::Inspector => inn,
        },
        month: r.try_get(3)?,
    })
}

async fn add_rating(tx: &mut AnyConnection, k: &CellKey) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO rating_subject_months (side, control_body_id, subject, month, ratings) \
         VALUES ($1, $2, $3, $4, 1) ON CONFLICT (side, control_body_id, subject, month) \
         DO UPDATE SET ratings = rating_subject_months.ratings + 1",
    )
    .bind(k.side)
    .bind(&k.control_body)
    .bind(&k.subject)
    .bind(&k.month)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Adds (`delta` 1) or takes out (-1) one score and its reasons in the counted cells.
async fn count_score(
    tx: &mut AnyConnection,
    k: &CellKey,
    criterion: &str,
    score: i16,
    reasons: &[String],
    delta: i64,
) -> Result<(), sqlx::Error> {
    if !(1..=10).contains(&score) {
        return Err(sqlx::Error::Protocol(format!(
            "rating score {score} outside 1..=10"
        )));
    }
    // The column is named by a number checked just above, never by input text.
    let sql = format!(
        "INSERT INTO rating_cells (side, control_body_id, subject, month, criterion, n{score}) \
         VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (side, control_body_id, subject, month, criterion) \
         DO UPDATE SET n{score} = rating_cells.n{score} + excluded.n{score}"
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(k.side)
        .bind(&k.control_body)
        .bind(&k.subject)
        .bind(&k.month)
        .bind(criterion)
        .bind(delta)
        .execute(&mut *tx)
        .await?;
    if score >= i16::from(model::FOLLOW_UP_BELOW) {
        return Ok(());
    }
    for reason in reasons {
        sqlx::query(
            "INSERT INTO rating_cell_reasons (side, control_body_id, subject, month, criterion, \
             reason, n) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (side, control_body_id, subject, month, criterion, reason) \
             DO UPDATE SET n = rating_cell_reasons.n + excluded.n",
        )
        .bind(k.side)
        .bind(&k.control_body)
        .bind(&k.subject)
        .bind(&k.month)
        .bind(criterion)
        .bind(reason)
        .bind(delta)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

/// Derives the counted cells from `ratings` and `rating_scores` again, in one transaction
/// (at start for a database rated before the cells existed; tests compare it with what the
/// projection kept).
pub async fn rebuild_cells(db: &AnyPool) -> Result<(), sqlx::Error> {
    let mut tx = crate::db::begin(&db).await?;
    for t in [
        "rating_cells",
        "rating_cell_reasons",
        "rating_subject_months",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(format!("DELETE FROM {t}")))
            .execute(&mut *tx)
            .await?;
    }
    let ids = sqlx::query("SELECT inspection_id, side FROM ratings")
        .fetch_all(&mut *tx)
        .await?;
    for r in ids {
        let (id, side): (String, String) = (r.try_get(0)?, r.try_get(1)?);
        let side = RatingSide::parse(&side)
            .ok_or_else(|| sqlx::Error::Protocol(format!("ratings.side {side}")))?;
        let key = cell_key(&mut tx, &id, side).await?;
        add_rating(&mut tx, &key).await?;
        let scores = sqlx::query(
            "SELECT criterion, score, reasons FROM rating_scores WHERE inspection_id = $1 AND side = $2",
        )
        .bind(&id)
        .bind(side.as_str())
        .fetch_all(&mut *tx)
        .await?;
        for s in scores {
            let criterion: String = s.try_get(0)?;
            let score: i16 = s.try_get(1)?;
            let reasons: String = s.try_get(2)?;
            let reasons: Vec<String> = serde_json::from_str(&reasons)
                .map_err(|err| sqlx::Error::Protocol(format!("rating_scores.reasons: {err}")))?;
            count_score(&mut tx, &key, &criterion, score, &reasons, 1).await?;
        }
    }
    tx.commit().await
}

/// Rebuilds the counted cells when there are ratings but no cells (a database rated before
/// migration 0013), at start.
pub async fn ensure_cells(db: &AnyPool) -> anyhow::Result<()> {
    let cells = sqlx::query("SELECT 1 FROM rating_subject_months LIMIT 1")
        .fetch_optional(db)
        .await?;
    let rated = sqlx::query("SELECT 1 FROM ratings LIMIT 1")
        .fetch_optional(db)
        .await?;
    if cells.is_none() && rated.is_some() {
        rebuild_cells(db).await?;
    }
    Ok(())
}
