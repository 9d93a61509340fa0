//! The HTTP surface of ratings: the criteria sets, an inspection's rating, the statistics.
//!
//! Who rates is decided here, from the one access rule: a caller who may not see the
//! inspection gets 404; of those who may, only its parties rate — the inspection's own
//! inspector (side `inspector`), and the business through its invitation, its durable results
//! access or its organisation's session (side `business`); anyone else gets 403. Everything is
//! checked before anything is stored; the room then checks once more, on the sequenced log,
//! that the side has no rating yet (or that a change names the current one).

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use checklist_sync::{OpError, Operation, RatingScore, RatingSide};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::model::{self, CriteriaBody, CriteriaSet, ScoreInput};
use super::stats::{self, SubjectStats, Summary};
use crate::auth::{Caller, Role};
use crate::db::{from_micros, now_micros, RowExt};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::inspections::{load_for, Access, Inspection};
use crate::live::{participants, principal, Live};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/ratings/criteria", get(criteria))
        .route("/api/ratings/criteria/{side}", post(new_criteria))
        .route(
            "/api/inspections/{id}/rating",
            get(show).post(give).put(change),
        )
        .route("/api/ratings/stats", get(stats_json))
        .route("/api/ratings/stats.csv", get(stats_csv))
        .route("/api/ratings/stats.svg", get(stats_svg))
        .route("/api/public/ratings", get(public_json))
        .route("/api/public/ratings.svg", get(public_svg))
        .route("/api/users/{id}/head", post(set_head))
}

/// The rating page of an inspection (the act's second QR code, the phone page's link).
pub fn rate_url(public_url: &str, id: Uuid) -> String {
    format!("{}/rate/#i={id}", public_url.trim_end_matches('/'))
}

fn conflict(code: &'static str, message: &str) -> ApiError {
    ApiError::Conflict {
        code,
        message: message.into(),
    }
}

fn parse_side(s: &str) -> ApiResult<RatingSide> {
    RatingSide::parse(s).ok_or(ApiError::Invalid {
        code: "side_unknown",
        message: "side is business or inspector".into(),
    })
}

/// Both sides' current criteria.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CriteriaSets {
    /// What the business rates the control body by.
    pub business: CriteriaSet,
    /// What the inspector rates the business by.
    pub inspector: CriteriaSet,
}

/// The current criteria of both sides (any signed-in caller).
#[utoipa::path(get, path = "/api/ratings/criteria", tag = "ratings",
    responses((status = 200, body = CriteriaSets), (status = 401, body = crate::error::ErrorBody)))]
pub async fn criteria(
    State(state): State<AppState>,
    _caller: Caller,
) -> ApiResult<Json<CriteriaSets>> {
    Ok(Json(CriteriaSets {
        business: super::current_set(&state.db, RatingSide::Business).await?,
        inspector: super::current_set(&state.db, RatingSide::Inspector).await?,
    }))
}

/// Stores a new version of a side's criteria (admin).
#[utoipa::path(post, path = "/api/ratings/criteria/{side}", tag = "ratings",
    params(("side" = String, Path, description = "business or inspector")), request_body = CriteriaBody,
    responses((status = 201, body = CriteriaSet), (status = 400, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn new_criteria(
    State(state): State<AppState>,
    caller: Caller,
    Path(side): Path<String>,
    ApiJson(body): ApiJson<CriteriaBody>,
) -> ApiResult<(StatusCode, Json<CriteriaSet>)> {
    let admin = caller.require(&[Role::Admin])?;
    let side = parse_side(&side)?;
    body.check().map_err(ApiError::Fields)?;
    let set = super::store_set(&state.db, side, &body, admin.id).await?;
    Ok((StatusCode::CREATED, Json(set)))
}

/// A rating as the log holds it.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RatingDoc {
    /// The version of the criteria it answers.
    pub criteria_version: u32,
    /// One score per criterion.
    #[schema(value_type = Vec<Object>)]
    pub scores: Vec<RatingScore>,
    /// When it was first given.
    pub first_at: chrono::DateTime<chrono::Utc>,
    /// When it was last changed.
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The log's seq of the current version.
    pub seq: u64,
}

/// What a caller sees of an inspection's rating.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct RatingView {
    /// The inspection.
    pub inspection_id: Uuid,
    /// Its title.
    pub title: String,
    /// The side the caller rates on (`business`, `inspector`).
    pub side: String,
    /// Whether the inspection is over so that it may be rated.
    pub finished: bool,
    /// Whether the caller may give its first rating now.
    pub can_rate: bool,
    /// Whether the caller may still change its rating.
    pub can_change: bool,
    /// When the rating becomes final (absent before the first rating).
    pub editable_until: Option<chrono::DateTime<chrono::Utc>>,
    /// The criteria to rate by (the current version of the side's set).
    pub criteria: CriteriaSet,
    /// The caller's side's current rating.
    pub rating: Option<RatingDoc>,
}

/// A rating, as given or changed.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RatingRequest {
    /// The version of the criteria the scores answer (the one `GET` gave).
    pub criteria_version: u32,
    /// One score per criterion.
    pub scores: Vec<ScoreInput>,
}

/// The side a caller rates on, if it is a party of the inspection: its own inspector, or the
/// business by any of its accesses (`access` already said the caller may see it).
fn side_of(caller: &Caller, insp: &Inspection) -> Option<RatingSide> {
    match caller {
        Caller::Staff(s) if s.id == insp.inspector.id => Some(RatingSide::Inspector),
        Caller::Staff(_) => None,
        Caller::Guest(_) | Caller::Business(_) => Some(RatingSide::Business),
    }
}

struct Context {
    insp: Inspection,
    access: Access,
    side: RatingSide,
    status: checklist_sync::state::Status,
    head: Option<checklist_sync::RatingHead>,
}

async fn context(state: &AppState, caller: &Caller, id: Uuid) -> ApiResult<Context> {
    let (insp, access) = load_for(&state.db, caller, id, Access::Read).await?;
    let side = side_of(caller, &insp).ok_or(ApiError::Forbidden)?;
    let snap = state
        .live
        .sync
        .snapshot(id)
        .await
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    Ok(Context {
        head: snap.state.ratings.get(&side).cloned(),
        status: snap.state.lifecycle.status,
        insp,
        access,
        side,
    })
}

async fn read_rating(
    state: &AppState,
    id: Uuid,
    head: &checklist_sync::RatingHead,
) -> ApiResult<RatingDoc> {
    let row = sqlx::query("SELECT payload FROM events WHERE inspection_id = $1 AND seq = $2")
        .bind(id.to_string())
        .bind(head.seq as i64)
        .fetch_optional(&state.db)
        .await?
        .ok_or_else(|| anyhow::anyhow!("rating event {} of {id} is missing", head.seq))?;
    let text: String = row.col(0)?;
    let p: super::RatingPayload =
        serde_json::from_str(&text).map_err(|e| crate::db::corrupt("rating event", e))?;
    Ok(RatingDoc {
        criteria_version: p.criteria_version,
        scores: p.scores,
        first_at: from_micros(head.first_ts),
        updated_at: from_micros(head.ts),
        seq: head.seq,
    })
}

async fn view(state: &AppState, ctx: &Context) -> ApiResult<RatingView> {
    let window = state.config.ratings.edit_window_secs;
    let finished = ctx.status == checklist_sync::state::Status::Finished;
    let rating = match &ctx.head {
        Some(h) => Some(read_rating(state, ctx.insp.id, h).await?),
        None => None,
    };
    Ok(RatingView {
        inspection_id: ctx.insp.id,
        title: ctx.insp.title.clone(),
        side: ctx.side.as_str().into(),
        finished,
        can_rate: finished && ctx.head.is_none(),
        can_change: ctx
            .head
            .as_ref()
            .is_some_and(|h| model::editable(h.first_ts, now_micros(), window)),
        editable_until: ctx
            .head
            .as_ref()
            .map(|h| from_micros(model::editable_until(h.first_ts, window))),
        criteria: super::current_set(&state.db, ctx.side).await?,
        rating,
    })
}

/// The caller's side's rating of an inspection, with the criteria to rate by.
#[utoipa::path(get, path = "/api/inspections/{id}/rating", tag = "ratings", params(("id" = Uuid, Path)),
    responses((status = 200, body = RatingView), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<RatingView>> {
    let ctx = context(&state, &caller, id).await?;
    Ok(Json(view(&state, &ctx).await?))
}

fn sync_error(e: OpError) -> ApiError {
    if let Some(e) = crate::error::sync_unavailable(&e) {
        return e;
    }
    let code: &'static str = match e.code.as_str() {
        "not_finished" => "not_finished",
        "cancelled" => "cancelled",
        "rating_exists" => "rating_exists",
        "rating_stale" => "rating_stale",
        "forbidden" => return ApiError::Forbidden,
        "invalid_field" => return ApiError::validation(e.message),
        _ => return ApiError::Internal(anyhow::anyhow!("rating refused: {e}")),
    };
    ApiError::Conflict {
        code,
        message: e.message,
    }
}

async fn submit(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    req: RatingRequest,
    first: bool,
) -> ApiResult<RatingView> {
    let ctx = context(state, caller, id).await?;
    match ctx.status {
        checklist_sync::state::Status::Finished => {}
        checklist_sync::state::Status::Cancelled => {
            return Err(conflict("cancelled", "a cancelled inspection is not rated"))
        }
        _ => {
            return Err(conflict(
                "not_finished",
                "an inspection is rated only after it is finished",
            ))
        }
    }
    match (&ctx.head, first) {
        (Some(_), true) => {
            return Err(conflict(
                "rating_exists",
                "this party has already rated the inspection",
            ))
        }
        (None, false) => return Err(conflict("rating_missing", "there is no rating to change")),
        (Some(h), false)
            if !model::editable(
                h.first_ts,
                now_micros(),
                state.config.ratings.edit_window_secs,
            ) =>
        {
            return Err(conflict(
                "rating_final",
                "the rating can no longer be changed",
            ))
        }
        _ => {}
    }
    let set = super::current_set(&state.db, ctx.side).await?;
    if req.criteria_version != set.version.0 {
        return Err(conflict(
            "criteria_changed",
            "the criteria changed; reload them and rate again",
        ));
    }
    if req.scores.len() > checklist_sync::rating::MAX_SCORES {
        return Err(ApiError::Fields(vec![crate::error::FieldError::new(
            "scores",
            "scores_too_many",
        )]));
    }
    let scores = set.rate(&req.scores).map_err(ApiError::Fields)?;
    // Registered only now, so that a refused request stores nothing.
    let participant = participants::register(&state.db, caller, &ctx.insp, "api").await?;
    let who = principal(caller, &ctx.insp, ctx.access, participant, "api");
    let op = Operation::Rating {
        side: ctx.side,
        criteria_version: set.version.0,
        scores,
        revises: ctx.head.as_ref().map(|h| h.seq),
    };
    state
        .live
        .sync
        .submit(&who, &Live::room_spec(&ctx.insp), op, None)
        .await
        .map_err(sync_error)?;
    let ctx = context(state, caller, id).await?;
    view(state, &ctx).await
}

/// Gives the caller's side's rating (once, after the end).
#[utoipa::path(post, path = "/api/inspections/{id}/rating", tag = "ratings", params(("id" = Uuid, Path)),
    request_body = RatingRequest,
    responses((status = 201, body = RatingView), (status = 400, description = "validation_failed with fields: score_out_of_range, score_required, follow_up_required, …", body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "not_finished, cancelled, rating_exists, criteria_changed", body = crate::error::ErrorBody)))]
pub async fn give(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<RatingRequest>,
) -> ApiResult<(StatusCode, Json<RatingView>)> {
    let v = submit(&state, &caller, id, req, true).await?;
    Ok((StatusCode::CREATED, Json(v)))
}

/// Changes the caller's side's rating, within the edit window of the first one.
#[utoipa::path(put, path = "/api/inspections/{id}/rating", tag = "ratings", params(("id" = Uuid, Path)),
    request_body = RatingRequest,
    responses((status = 200, body = RatingView), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "rating_missing, rating_final, rating_stale, criteria_changed", body = crate::error::ErrorBody)))]
pub async fn change(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<RatingRequest>,
) -> ApiResult<Json<RatingView>> {
    Ok(Json(submit(&state, &caller, id, req, false).await?))
}

// --- statistics -------------------------------------------------------------------------

/// Statistics filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct StatsQuery {
    /// `business` (the business's ratings of control bodies and inspectors, the default) or
    /// `inspector` (inspectors' ratings of businesses).
    pub side: Option<String>,
    /// Only this control body (admins; others see their own only).
    pub control_body: Option<String>,
    /// From this month on (`YYYY-MM`).
    pub from: Option<String>,
    /// Up to this month (`YYYY-MM`).
    pub to: Option<String>,
    /// Language of the chart's words (`ru`, `en`).
    pub lang: Option<String>,
    /// Which chart (`.svg` only): `criteria` (the mean per criterion, the default),
    /// `subjects` (the mean per inspector or business, labelled as the caller may see them),
    /// `months` (the mean per month).
    pub chart: Option<String>,
}

/// One rated subject, labelled for the caller.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Subject {
    /// Its id (a control body's; an inspector's only for who may see names; a business's INN).
    pub id: Option<String>,
    /// Its name (a control body's; an inspector's only for who may see names).
    pub name: Option<String>,
    /// For an inspector whose name is hidden: a number, stable, that says nothing of who.
    pub anonymous_number: Option<u32>,
    /// The control body an inspector belongs to.
    pub control_body_id: Option<String>,
    /// How many ratings.
    pub ratings: u32,
    /// Per criterion: overall and month by month.
    pub criteria: Vec<stats::CriterionStats>,
}

/// The statistics a caller may see.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct StatsView {
    /// `business` or `inspector`.
    pub side: String,
    /// Whether inspectors' names are shown (admins, the head of the control body).
    pub names_visible: bool,
    /// The criteria the codes name (the current set of the side).
    pub criteria: CriteriaSet,
    /// Per control body.
    pub control_bodies: Vec<Subject>,
    /// Per inspector (side `business`) or per business (side `inspector`).
    pub rated: Vec<Subject>,
}

/// Which ratings a caller's statistics cover, and whether it sees inspectors' names.
struct Scope {
    /// `None`: every control body (admins, the public page).
    control_body: Option<Uuid>,
    names: bool,
    /// The public page: control bodies only.
    public: bool,
}

async fn scope_of(state: &AppState, caller: &Caller, asked: &Option<String>) -> ApiResult<Scope> {
    let staff = caller.staff()?;
    let asked = match asked.as_deref() {
        None | Some("") => None,
        Some(s) => Some(Uuid::parse_str(s).map_err(|_| {
            ApiError::Fields(vec![crate::error::FieldError::new(
                "control_body",
                "control_body_invalid",
            )])
        })?),
    };
    if staff.role == Role::Admin {
        return Ok(Scope {
            control_body: asked,
            names: true,
            public: false,
        });
    }
    let row = sqlx::query(
        "SELECT control_body_id, CASE WHEN heads_control_body = 1 THEN 1 ELSE 0 END \
         FROM users WHERE id = $1",
    )
    .bind(staff.id.to_string())
    .fetch_one(&state.db)
    .await?;
    let body: Option<String> = row.col(0)?;
    let head: i64 = row.col(1)?;
    let Some(body) = body else {
        return Err(ApiError::Forbidden);
    };
    let body =
        Uuid::parse_str(&body).map_err(|e| crate::db::corrupt("users.control_body_id", e))?;
    if asked.is_some_and(|a| a != body) {
        return Err(ApiError::NotFound("control body"));
    }
    Ok(Scope {
        control_body: Some(body),
        names: head == 1,
        public: false,
    })
}

fn check_month(field: &'static str, m: &Option<String>) -> ApiResult<()> {
    let ok = m.as_deref().is_none_or(|m| {
        m.len() == 7 && chrono::NaiveDate::parse_from_str(&format!("{m}-01"), "%Y-%m-%d").is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(ApiError::Fields(vec![crate::error::FieldError::new(
            field,
            "month_invalid",
        )]))
    }
}

/// The filter every counted table of the statistics is read with.
const CELLS_WHERE: &str = "WHERE side = $1 AND ($2 = '' OR control_body_id = $2) \
     AND ($3 = '' OR month >= $3) AND ($4 = '' OR month <= $4)";

/// The statistics per control body and per rated subject, with the control body of each
/// subject, read from the counted cells the projection keeps (`rating_cells`,
/// `rating_cell_reasons`, `rating_subject_months`: a row per control body, subject, month
/// and criterion, not one per score), summed up here per control body and per subject.
async fn both_levels(
    state: &AppState,
    side: RatingSide,
    scope: &Scope,
    q: &StatsQuery,
) -> ApiResult<(
    Vec<SubjectStats>,
    Vec<SubjectStats>,
    BTreeMap<String, String>,
)> {
    let body = scope
        .control_body
        .map(|u| u.to_string())
        .unwrap_or_default();
    let from = q.from.clone().unwrap_or_default();
    let to = q.to.clone().unwrap_or_default();
    let run = |sql: String| {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(side.as_str())
            .bind(body.clone())
            .bind(from.clone())
            .bind(to.clone())
            .fetch_all(&state.db)
    };
    let count = |r: &sqlx::any::AnyRow, i: usize| -> ApiResult<u32> {
        let n: i64 = r.col(i)?;
        u32::try_from(n).map_err(|e| crate::db::corrupt("rating count", e))
    };
    let rows = run(format!(
        "SELECT control_body_id, subject, month, criterion, \
         n1, n2, n3, n4, n5, n6, n7, n8, n9, n10 FROM rating_cells {CELLS_WHERE}"
    ))
    .await?;
    // (control body, subject, criterion, month) → cell
    let mut fine: BTreeMap<(String, String, String, String), stats::Cell> = BTreeMap::new();
    for r in rows {
        let (cb, sub, month, criterion): (String, String, String, String) =
            (r.col(0)?, r.col(1)?, r.col(2)?, r.col(3)?);
        let mut distribution = [0u32; 10];
        for (i, d) in distribution.iter_mut().enumerate() {
            *d = count(&r, 4 + i)?;
        }
        // A cell whose scores were all changed away counts nothing.
        if distribution.iter().all(|n| *n == 0) {
            continue;
        }
        fine.insert(
            (cb, sub, criterion.clone(), month.clone()),
            stats::Cell {
                subject: String::new(),
                criterion,
                month,
                distribution,
                reasons: Vec::new(),
            },
        );
    }
    let rows = run(format!(
        "SELECT control_body_id, subject, month, criterion, reason, n \
         FROM rating_cell_reasons {CELLS_WHERE} AND n > 0"
    ))
    .await?;
    for r in rows {
        let k: (String, String, String, String) = (r.col(0)?, r.col(1)?, r.col(3)?, r.col(2)?);
        let reason: String = r.col(4)?;
        let n = count(&r, 5)?;
        if let Some(cell) = fine.get_mut(&k) {
            cell.reasons.push((reason, n));
        }
    }
    let rows = run(format!(
        "SELECT control_body_id, subject, CAST(SUM(ratings) AS BIGINT) FROM rating_subject_months \
         {CELLS_WHERE} GROUP BY control_body_id, subject"
    ))
    .await?;
    // (PostgreSQL sums BIGINT as NUMERIC: cast back.)
    let (mut body_counts, mut sub_counts) = (BTreeMap::new(), BTreeMap::new());
    for r in rows {
        let (cb, sub): (String, String) = (r.col(0)?, r.col(1)?);
        let n = count(&r, 2)?;
        if !cb.is_empty() {
            *body_counts.entry(cb).or_insert(0) += n;
        }
        *sub_counts.entry(sub).or_insert(0) += n;
    }
    // compute_cells adds up cells with the same subject, criterion and month.
    let mut bodies = Vec::new();
    let mut subs = Vec::with_capacity(fine.len());
    let mut body_of = BTreeMap::new();
    for ((cb, sub, _, _), cell) in fine {
        if !cb.is_empty() {
            body_of.insert(sub.clone(), cb.clone());
            bodies.push(stats::Cell {
                subject: cb,
                ..cell.clone()
            });
        }
        subs.push(stats::Cell {
            subject: sub,
            ..cell
        });
    }
    Ok((
        stats::compute_cells(&bodies, &body_counts),
        stats::compute_cells(&subs, &sub_counts),
        body_of,
    ))
}

async fn control_body_names(state: &AppState) -> ApiResult<BTreeMap<String, String>> {
    let rows = sqlx::query("SELECT id, name FROM control_bodies")
        .fetch_all(&state.db)
        .await?;
    rows.into_iter()
        .map(|r| Ok((r.col(0)?, r.col(1)?)))
        .collect()
}

/// A number for an inspector that stays the same between answers and says nothing of who it
/// is: the rank of a hash of the id among the subjects shown.
fn anonymous_numbers(ids: &[&str]) -> BTreeMap<String, u32> {
    let mut hashed: Vec<(String, &str)> = ids
        .iter()
        .map(|id| {
            (
                hex::encode(Sha256::digest(format!("rating-pseudonym:{id}"))),
                *id,
            )
        })
        .collect();
    hashed.sort();
    hashed
        .into_iter()
        .enumerate()
        .map(|(i, (_, id))| (id.to_string(), i as u32 + 1))
        .collect()
}

async fn build_stats(state: &AppState, scope: &Scope, q: &StatsQuery) -> ApiResult<StatsView> {
    let side = match q.side.as_deref() {
        None | Some("") => RatingSide::Business,
        Some(s) => parse_side(s)?,
    };
    check_month("from", &q.from)?;
    check_month("to", &q.to)?;
    let bodies = control_body_names(state).await?;
    let (per_body, per_subject, body_of) = both_levels(state, side, scope, q).await?;
    let control_bodies = per_body
        .into_iter()
        .map(|s| Subject {
            name: bodies.get(&s.subject).cloned(),
            id: Some(s.subject),
            anonymous_number: None,
            control_body_id: None,
            ratings: s.ratings,
            criteria: s.criteria,
        })
        .collect();
    let rated = if scope.public {
        Vec::new()
    } else if side == RatingSide::Business {
        let per = per_subject;
        let names: BTreeMap<String, String> = if scope.names {
            let rows = sqlx::query(
                "SELECT u.id, u.display_name FROM users u WHERE u.id IN \
                 (SELECT subject FROM rating_subject_months WHERE side = 'business')",
            )
            .fetch_all(&state.db)
            .await?;
            rows.into_iter()
                .map(|r| Ok((r.col(0)?, r.col(1)?)))
                .collect::<ApiResult<_>>()?
        } else {
            BTreeMap::new()
        };
        let ids: Vec<&str> = per.iter().map(|s| s.subject.as_str()).collect();
        let numbers = anonymous_numbers(&ids);
        let mut out: Vec<Subject> = per
            .into_iter()
            .map(|s| Subject {
                control_body_id: body_of.get(s.subject.as_str()).cloned(),
                anonymous_number: (!scope.names)
                    .then(|| numbers.get(&s.subject).copied())
                    .flatten(),
                name: if scope.names {
                    names.get(&s.subject).cloned()
                } else {
                    None
                },
                id: scope.names.then_some(s.subject),
                ratings: s.ratings,
                criteria: s.criteria,
            })
            .collect();
        // Hidden names are listed by their number, so the order tells nothing either.
        out.sort_by_key(|s| s.anonymous_number);
        out
    } else {
        per_subject
            .into_iter()
            .map(|s| Subject {
                name: None,
                id: Some(s.subject),
                anonymous_number: None,
                control_body_id: None,
                ratings: s.ratings,
                criteria: s.criteria,
            })
            .collect()
    };
    Ok(StatsView {
        side: side.as_str().into(),
        names_visible: scope.names && !scope.public,
        criteria: super::current_set(&state.db, side).await?,
        control_bodies,
        rated,
    })
}

/// Statistics of ratings: per control body and per inspector (names only for admins and the
/// head of the control body), per criterion, per month.
#[utoipa::path(get, path = "/api/ratings/stats", tag = "ratings", params(StatsQuery),
    responses((status = 200, body = StatsView), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn stats_json(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<StatsView>> {
    let scope = scope_of(&state, &caller, &q.control_body).await?;
    Ok(Json(build_stats(&state, &scope, &q).await?))
}

fn subject_label(level: &str, s: &Subject) -> String {
    match (&s.name, s.anonymous_number, &s.id) {
        (Some(n), _, _) => n.clone(),
        (None, Some(n), _) => format!("{level} #{n}"),
        (None, None, Some(id)) => id.clone(),
        (None, None, None) => String::new(),
    }
}

fn to_subject_stats(s: &Subject) -> SubjectStats {
    SubjectStats {
        subject: String::new(),
        ratings: s.ratings,
        criteria: s.criteria.clone(),
    }
}

/// The same statistics as CSV (one line per subject, criterion and month, and `all`).
#[utoipa::path(get, path = "/api/ratings/stats.csv", tag = "ratings", params(StatsQuery),
    responses((status = 200, description = "text/csv"), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn stats_csv(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Response> {
    let scope = scope_of(&state, &caller, &q.control_body).await?;
    let v = build_stats(&state, &scope, &q).await?;
    let mut out = String::from(stats::CSV_HEADER);
    out.push('\n');
    let rated_level = if v.side == "business" {
        "inspector"
    } else {
        "business"
    };
    for s in &v.control_bodies {
        stats::csv_rows(
            &mut out,
            "control_body",
            &subject_label("control_body", s),
            &to_subject_stats(s),
        );
    }
    for s in &v.rated {
        stats::csv_rows(
            &mut out,
            rated_level,
            &subject_label(rated_level, s),
            &to_subject_stats(s),
        );
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            ),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"ratings.csv\""),
            ),
        ],
        out,
    )
        .into_response())
}

/// The bars of one chart kind: a label and the counts of 1..=10 summed over what it shows.
fn chart_bars(v: &StatsView, lang: &str, kind: &str) -> ApiResult<Vec<(String, [u32; 10])>> {
    let add = |d: &mut [u32; 10], s: &Summary| {
        for (a, b) in d.iter_mut().zip(s.distribution) {
            *a += b;
        }
    };
    let en = lang == "en";
    match kind {
        "" | "criteria" => {
            let title_of = |code: &str| {
                v.criteria
                    .criteria
                    .iter()
                    .find(|c| c.code == code)
                    .map(|c| {
                        if en {
                            c.title.en.clone()
                        } else {
                            c.title.ru.clone()
                        }
                    })
                    .unwrap_or_else(|| code.to_string())
            };
            // Every control body shown together: the mean of each criterion.
            let mut acc: BTreeMap<String, [u32; 10]> = BTreeMap::new();
            for s in &v.control_bodies {
                for c in &s.criteria {
                    add(
                        acc.entry(c.criterion.clone()).or_insert([0; 10]),
                        &c.overall,
                    );
                }
            }
            Ok(acc
                .into_iter()
                .map(|(code, d)| (title_of(&code), d))
                .collect())
        }
        "months" => {
            let mut acc: BTreeMap<String, [u32; 10]> = BTreeMap::new();
            for s in &v.control_bodies {
                for c in &s.criteria {
                    for m in &c.months {
                        add(acc.entry(m.month.clone()).or_insert([0; 10]), &m.summary);
                    }
                }
            }
            Ok(acc.into_iter().collect())
        }
        "subjects" => {
            let level = match (en, v.side.as_str()) {
                (true, "business") => "Inspector",
                (true, _) => "Business",
                (false, "business") => "Инспектор",
                (false, _) => "Контролируемое лицо",
            };
            // Labelled like the JSON: a name only where the answer carries one.
            Ok(v.rated
                .iter()
                .map(|s| {
                    let mut d = [0; 10];
                    for c in &s.criteria {
                        add(&mut d, &c.overall);
                    }
                    (subject_label(level, s), d)
                })
                .collect())
        }
        _ => Err(ApiError::Fields(vec![crate::error::FieldError::new(
            "chart",
            "chart_unknown",
        )])),
    }
}

fn chart(v: &StatsView, lang: &str, kind: &str) -> ApiResult<String> {
    let summaries: Vec<(String, Summary)> = chart_bars(v, lang, kind)?
        .into_iter()
        .map(|(label, d)| (label, stats::summarize(d)))
        .collect();
    let bars: Vec<(String, &Summary)> = summaries.iter().map(|(l, s)| (l.clone(), s)).collect();
    let what = match (lang, v.side.as_str()) {
        ("en", "business") => "Ratings of control bodies",
        ("en", _) => "Ratings of businesses",
        (_, "business") => "Оценки контрольных органов",
        _ => "Оценки контролируемых лиц",
    };
    let by = match (lang, kind) {
        ("en", "months") => "mean score by month",
        ("en", "subjects") if v.side == "business" => "mean score by inspector",
        ("en", "subjects") => "mean score by business",
        ("en", _) => "mean score by criterion",
        (_, "months") => "средний балл по месяцам",
        (_, "subjects") if v.side == "business" => "средний балл по инспекторам",
        (_, "subjects") => "средний балл по контролируемым лицам",
        _ => "средний балл по критериям",
    };
    Ok(stats::svg(&format!("{what}: {by}"), &bars))
}

fn svg_response(svg: String) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("image/svg+xml"),
        )],
        svg,
    )
        .into_response()
}

/// A bar chart (SVG, drawn by the server) of the mean score per criterion.
#[utoipa::path(get, path = "/api/ratings/stats.svg", tag = "ratings", params(StatsQuery),
    responses((status = 200, description = "image/svg+xml"), (status = 401, body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody)))]
pub async fn stats_svg(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Response> {
    let scope = scope_of(&state, &caller, &q.control_body).await?;
    let v = build_stats(&state, &scope, &q).await?;
    Ok(svg_response(chart(
        &v,
        q.lang.as_deref().unwrap_or("ru"),
        q.chart.as_deref().unwrap_or(""),
    )?))
}

fn public_scope(state: &AppState) -> ApiResult<Scope> {
    if !state.config.ratings.public_page {
        return Err(ApiError::NotFound("page"));
    }
    Ok(Scope {
        control_body: None,
        names: false,
        public: true,
    })
}

/// The public page's numbers: control bodies only, no inspectors (404 unless
/// `[ratings] public_page` is on).
#[utoipa::path(get, path = "/api/public/ratings", tag = "ratings", params(StatsQuery),
    responses((status = 200, body = StatsView), (status = 404, body = crate::error::ErrorBody)))]
pub async fn public_json(
    State(state): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Json<StatsView>> {
    let scope = public_scope(&state)?;
    let q = StatsQuery {
        side: Some("business".into()),
        control_body: None,
        ..q
    };
    Ok(Json(build_stats(&state, &scope, &q).await?))
}

/// The public page's chart (404 unless `[ratings] public_page` is on).
#[utoipa::path(get, path = "/api/public/ratings.svg", tag = "ratings", params(StatsQuery),
    responses((status = 200, description = "image/svg+xml"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn public_svg(
    State(state): State<AppState>,
    Query(q): Query<StatsQuery>,
) -> ApiResult<Response> {
    let scope = public_scope(&state)?;
    let q = StatsQuery {
        side: Some("business".into()),
        control_body: None,
        ..q
    };
    let v = build_stats(&state, &scope, &q).await?;
    Ok(svg_response(chart(
        &v,
        q.lang.as_deref().unwrap_or("ru"),
        q.chart.as_deref().unwrap_or(""),
    )?))
}

/// Set-head request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HeadRequest {
    /// Whether the user heads its control body.
    pub head: bool,
}

/// Makes a staff member the head of its control body, or not (admin): the head sees its
/// inspectors' names in the statistics.
#[utoipa::path(post, path = "/api/users/{id}/head", tag = "ratings", params(("id" = Uuid, Path)),
    request_body = HeadRequest,
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "no_control_body", body = crate::error::ErrorBody)))]
pub async fn set_head(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<HeadRequest>,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    let row = sqlx::query("SELECT control_body_id FROM users WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound("user"))?;
    let body: Option<String> = row.col(0)?;
    if body.is_none() && req.head {
        return Err(conflict(
            "no_control_body",
            "the user belongs to no control body",
        ));
    }
    let sql = if req.head {
        "UPDATE users SET heads_control_body = 1 WHERE id = $1"
    } else {
        "UPDATE users SET heads_control_body = 0 WHERE id = $1"
    };
    sqlx::query(sql)
        .bind(id.to_string())
        .execute(&state.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
