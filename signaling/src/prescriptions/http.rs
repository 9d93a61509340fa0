//! The REST face of prescriptions: issue, list, read, proofs (upload and serve), decisions,
//! the log's export. Every handler goes through [`load_for`], which is the inspection's access
//! rule applied to the prescription's inspection.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use checklist_sync::geo::{distance_m, Geolocation, RawGeolocation};
use checklist_sync::trust::{Assessor, ClientContext, TrustConfig, TrustLevel};
use checklist_sync::ItemResult;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::log;
use super::model::{
    self, Accepted, BusinessAtIssue, Event, EvidenceRef, InspectionHead, Issued, IssuedItem,
    IssuingBody, PrescriptionState, PrescriptionStatus as Status, Proof, ProofAdded, ProofLocation,
    ProofVerdict, Refusal, Returned,
};
use crate::auth::Caller;
use crate::db::{micros, now_micros, RowExt};
use crate::domain::Status as InspectionStatus;
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::ApiJson;
use crate::inspections::{self, Access, Inspection};
use crate::AppState;

/// The header carrying a proof's location trace and the browser's zone (JSON).
pub const LOCATION_HEADER: &str = "x-proof-location";
/// Longest location header, bytes.
pub const MAX_LOCATION_HEADER: usize = 8 * 1024;
/// Samples of one trace at most.
pub const MAX_SAMPLES: usize = 20;
/// Longest a due date may lie ahead, days.
pub const MAX_DUE_DAYS: i64 = 5 * 366;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/inspections/{id}/prescription", post(issue))
        .route("/api/prescriptions", get(list))
        .route("/api/prescriptions/{id}", get(show))
        .route(
            "/api/prescriptions/{id}/items/{item}/proofs",
            post(add_proof),
        )
        .route(
            "/api/prescriptions/{id}/items/{item}/decision",
            post(decide),
        )
        .route("/api/prescriptions/{id}/proofs/{proof}", get(serve_proof))
        .route("/api/prescriptions/{id}/log.jsonl", get(export))
        .route(
            "/api/prescriptions/{id}/document.pdf",
            get(super::document::pdf),
        )
}

/// A prescription as a caller sees it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Prescription {
    /// Id.
    pub id: Uuid,
    /// The state folded from the log, judged now.
    #[serde(flatten)]
    pub state: PrescriptionState,
    /// The inspection's title.
    pub inspection_title: String,
    /// The head of the prescription's own log.
    pub head_hash: String,
    /// Whether the caller may accept or return items.
    pub can_decide: bool,
    /// Whether the caller may send proofs (the business's representative).
    pub can_prove: bool,
}

/// A prescription loaded for a caller.
pub struct Loaded {
    /// Id.
    pub id: Uuid,
    /// Its inspection.
    pub inspection: Inspection,
    /// The caller's access to it.
    pub access: Access,
    /// Its log.
    pub log: Vec<model::Logged>,
    /// The fold, judged at load time.
    pub state: PrescriptionState,
    /// Its log's head hash.
    pub head_hash: String,
}

/// Loads a prescription the caller may see: the inspection's access rule decides (404 when
/// unseen, 403 when `need` is more than the caller has).
pub async fn load_for(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    need: Access,
) -> ApiResult<Loaded> {
    let row = sqlx::query("SELECT inspection_id FROM prescriptions WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound("prescription"))?;
    let (inspection, access) =
        match inspections::load_for(&state.db, caller, row.uuid(0)?, need).await {
            Err(ApiError::NotFound(_)) => return Err(ApiError::NotFound("prescription")),
            other => other?,
        };
    let rows = log::rows(&state.db, id).await?;
    let head_hash = rows.last().map(|r| r.hash.clone()).unwrap_or_default();
    let log = log::read(&state.db, id).await?;
    let st = PrescriptionState::fold(&log, now_micros())
        .ok_or_else(|| crate::db::corrupt("prescription log", "does not start with issued"))?;
    Ok(Loaded {
        id,
        inspection,
        access,
        log,
        state: st,
        head_hash,
    })
}

fn is_rep_of(caller: &Caller, insp: &Inspection) -> bool {
    matches!(caller, Caller::Business(b) if b.inn == insp.business.inn.as_str())
}

fn view(l: &Loaded, caller: &Caller) -> Prescription {
    Prescription {
        id: l.id,
        state: l.state.clone(),
        inspection_title: l.inspection.title.clone(),
        head_hash: l.head_hash.clone(),
        can_decide: l.access == Access::Manage,
        can_prove: is_rep_of(caller, &l.inspection),
    }
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code,
        message: message.into(),
    }
}

fn refused(r: Refusal) -> ApiError {
    match r {
        Refusal::UnknownItem => ApiError::NotFound("prescription item"),
        other => ApiError::Conflict {
            code: other.code(),
            message: format!("refused: {}", other.code()),
        },
    }
}

/// One item of an issue request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// The checklist item whose violation it remedies.
    pub item_id: String,
    /// Due date (RFC 3339), in the future.
    pub due_at: chrono::DateTime<chrono::Utc>,
}

/// Issue request: the violations to remedy, each with a due date.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewPrescription {
    /// 1–100 items, each a violation of the inspection, each once.
    pub items: Vec<NewItem>,
}

fn check_due(errors: &mut Vec<FieldError>, field: &str, due: i64, now: i64) {
    if due <= now {
        errors.push(FieldError::new(field, "due_in_past"));
    } else if due > now + MAX_DUE_DAYS * 24 * 3600 * 1_000_000 {
        errors.push(FieldError::new(field, "due_too_far"));
    }
}

/// Issues the prescription of a finished inspection (its manager): each chosen violation
/// becomes an item with its requirement, description, evidence and due date.
#[utoipa::path(post, path = "/api/inspections/{id}/prescription", tag = "prescriptions",
    params(("id" = Uuid, Path)), request_body = NewPrescription,
    responses((status = 201, body = Prescription),
              (status = 400, description = "validation_failed (items.N.item_id: not_a_violation, duplicate_item; items.N.due_at: due_in_past, due_too_far; items: items_required, too_many_items)", body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "inspection_not_finished, prescription_exists", body = crate::error::ErrorBody)))]
pub async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<NewPrescription>,
) -> ApiResult<(StatusCode, Json<Prescription>)> {
    let (insp, _) = inspections::load_for(&state.db, &caller, id, Access::Manage).await?;
    let staff = caller.staff()?.clone();
    if !matches!(
        insp.status,
        InspectionStatus::Finished | InspectionStatus::Signed
    ) {
        return Err(ApiError::Conflict {
            code: "inspection_not_finished",
            message: "a prescription follows a finished inspection".into(),
        });
    }
    let now = now_micros();
    let snap = state
        .live
        .sync
        .snapshot(id)
        .await
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    let checklist = insp.items.clone().unwrap_or_default();
    let mut errors = Vec::new();
    if req.items.is_empty() {
        errors.push(FieldError::new("items", "items_required"));
    } else if req.items.len() > model::MAX_ITEMS {
        errors.push(FieldError::new("items", "too_many_items"));
    }
    let mut items = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (n, it) in req.items.iter().enumerate() {
        let field = format!("items.{n}.item_id");
        let found = snap
            .state
            .items
            .get(&it.item_id)
            .filter(|s| s.result == Some(ItemResult::Violation));
        let spec = checklist.iter().find(|c| c.id == it.item_id);
        let (Some(found), Some(spec)) = (found, spec) else {
            errors.push(FieldError::new(&field, "not_a_violation"));
            continue;
        };
        if !seen.insert(it.item_id.clone()) {
            errors.push(FieldError::new(&field, "duplicate_item"));
            continue;
        }
        let due = micros(it.due_at);
        check_due(&mut errors, &format!("items.{n}.due_at"), due, now);
        items.push(IssuedItem {
            id: (items.len() + 1).to_string(),
            checklist_item: it.item_id.clone(),
            number: spec.number.clone(),
            requirement: spec.question.clone(),
            legal_basis: spec.requirement.clone(),
            description: found.violation.clone().unwrap_or_default(),
            due_at: due,
            evidence: found
                .evidence
                .iter()
                .filter_map(|e| {
                    Some(EvidenceRef {
                        id: e.evidence.id.clone(),
                        kind: serde_json::to_value(&e.evidence.kind)
                            .ok()?
                            .as_str()?
                            .to_string(),
                        sha256: e.evidence.sha256.clone()?,
                    })
                })
                .collect(),
        });
    }
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    let head = sqlx::query(
        "SELECT seq, hash FROM events WHERE inspection_id = $1 ORDER BY seq DESC LIMIT 1",
    )
    .bind(id.to_string())
    .fetch_optional(&state.db)
    .await?
    .map(|r| {
        Ok::<_, ApiError>(InspectionHead {
            seq: r.col::<i64>(0)? as u64,
            hash: r.col(1)?,
        })
    })
    .transpose()?
    .ok_or_else(|| crate::db::corrupt("inspection log", "a finished inspection has events"))?;
    let control_body = crate::orgs::control_body_of(&state.db, insp.inspector.id)
        .await?
        .map(|c| IssuingBody {
            name: c.name,
            region: c.region,
            control_kind: c.control_kind,
        });
    let issued = Issued {
        inspection_id: id,
        inspection_head: head,
        control_body,
        business: BusinessAtIssue {
            inn: insp.business.inn.as_str().to_string(),
            name: insp.business.name.clone(),
            address: insp.business.address.clone(),
            lat: insp.business.lat,
            lon: insp.business.lon,
        },
        site_radius_m: TrustConfig::default().site_radius_m,
        items,
    };
    let pid = Uuid::now_v7();
    let _guard = log::lock().await;
    let mut tx = crate::db::begin(&state.db).await?;
    let inserted = sqlx::query(
        "INSERT INTO prescriptions (id, inspection_id, business_inn, issued_by, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(pid.to_string())
    .bind(id.to_string())
    .bind(insp.business.inn.as_str())
    .bind(staff.id.to_string())
    .bind(now)
    .execute(&mut *tx)
    .await;
    match inserted {
        Err(sqlx::Error::Database(d)) if d.is_unique_violation() => {
            return Err(ApiError::Conflict {
                code: "prescription_exists",
                message: "this inspection already has a prescription".into(),
            })
        }
        other => other?,
    };
    log::append_in(
        &mut tx,
        pid,
        staff.id,
        &Event::Issued(Box::new(issued)),
        now,
    )
    .await?;
    tx.commit().await?;
    drop(_guard);
    let l = load_for(&state, &caller, pid, Access::Read).await?;
    Ok((StatusCode::CREATED, Json(view(&l, &caller))))
}

/// List filters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ListQuery {
    /// open (not yet closed), due_soon, overdue, returned, awaiting (a proof to check),
    /// fulfilled, closed; empty for all.
    pub filter: Option<String>,
    /// Only the prescription of this inspection.
    pub inspection_id: Option<Uuid>,
}

/// The prescriptions a caller may see.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PrescriptionList {
    /// Newest first, at most 500.
    pub prescriptions: Vec<Prescription>,
}

/// Lists the prescriptions the caller may see, by filter.
#[utoipa::path(get, path = "/api/prescriptions", tag = "prescriptions", params(ListQuery),
    responses((status = 200, body = PrescriptionList), (status = 400, description = "unknown_filter", body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<PrescriptionList>> {
    let filter = q.filter.as_deref().unwrap_or("");
    if !matches!(
        filter,
        "" | "open" | "due_soon" | "overdue" | "returned" | "awaiting" | "fulfilled" | "closed"
    ) {
        return Err(invalid("unknown_filter", "unknown prescription filter"));
    }
    let mut sql = String::from(
        "SELECT r.id FROM prescriptions r JOIN inspections p ON p.id = r.inspection_id WHERE 1 = 1",
    );
    let mut binds: Vec<String> = Vec::new();
    inspections::push_visibility(
        &caller,
        ("r.inspection_id", "r.business_inn"),
        &mut sql,
        &mut binds,
    );
    if let Some(i) = q.inspection_id {
        binds.push(i.to_string());
        sql.push_str(&format!(" AND r.inspection_id = ${}", binds.len()));
    }
    sql.push_str(" ORDER BY r.created_at DESC, r.id LIMIT 500");
    // Safe: constant fragments only; every value is a bind parameter.
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for b in &binds {
        query = query.bind(b);
    }
    let ids = query
        .fetch_all(&state.db)
        .await?
        .iter()
        .map(|r| r.uuid(0))
        .collect::<ApiResult<Vec<_>>>()?;
    let now = now_micros();
    let mut prescriptions = Vec::new();
    for id in ids {
        // The same rule as a single read (the SQL above only narrows).
        let l = match load_for(&state, &caller, id, Access::Read).await {
            Ok(l) => l,
            Err(ApiError::NotFound(_)) => continue,
            Err(e) => return Err(e),
        };
        let s = &l.state;
        let keep = match filter {
            "open" => !matches!(s.status, Status::Fulfilled | Status::Closed),
            "due_soon" => s.due_soon(now),
            "overdue" => s.status == Status::Overdue,
            "returned" => s
                .items
                .iter()
                .any(|i| i.status == model::ItemStatus::Returned),
            "awaiting" => s.awaiting_check > 0,
            "fulfilled" => s.status == Status::Fulfilled,
            "closed" => s.status == Status::Closed,
            _ => true,
        };
        if keep {
            prescriptions.push(view(&l, &caller));
        }
    }
    Ok(Json(PrescriptionList { prescriptions }))
}

/// Reads one prescription.
#[utoipa::path(get, path = "/api/prescriptions/{id}", tag = "prescriptions", params(("id" = Uuid, Path)),
    responses((status = 200, body = Prescription), (status = 404, body = crate::error::ErrorBody)))]
pub async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<Prescription>> {
    let l = load_for(&state, &caller, id, Access::Read).await?;
    Ok(Json(view(&l, &caller)))
}

/// Query of a proof upload.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ProofQuery {
    /// Capture time the device claims, ms since the epoch.
    pub captured_at: Option<f64>,
}

/// The location header: the trace sampled while the proof was captured, and the browser's
/// IANA zone.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LocationTrace {
    /// Samples, oldest first (1–20).
    #[schema(value_type = Vec<Object>)]
    pub samples: Vec<RawGeolocation>,
    /// The browser's IANA time zone.
    #[serde(default)]
    pub timezone: Option<String>,
}

/// What the server finds about a trace: the last sample, the verdict, distance and flags.
pub fn judge_trace(
    trace: Option<&LocationTrace>,
    site: Option<(f64, f64)>,
    radius_m: f64,
    received_at: i64,
) -> ApiResult<(
    Option<ProofLocation>,
    u32,
    Option<ProofVerdict>,
    Option<f64>,
    Option<bool>,
    Vec<String>,
)> {
    let mut flags = Vec::new();
    if site.is_none() {
        flags.push("no_site".to_string());
    }
    let Some(trace) = trace.filter(|t| !t.samples.is_empty()) else {
        flags.insert(0, "no_location".into());
        return Ok((None, 0, None, None, None, flags));
    };
    if trace.samples.len() > MAX_SAMPLES {
        return Err(invalid("too_many_samples", "at most 20 location samples"));
    }
    let client = ClientContext {
        timezone: trace.timezone.clone().filter(|t| t.len() <= 64),
        ..Default::default()
    };
    let config = TrustConfig {
        site_radius_m: radius_m,
        ..TrustConfig::default()
    };
    let mut assessor = Assessor::new(config, site, client);
    let last_ts = trace.samples.iter().map(|s| s.device_ts).max().unwrap_or(0);
    let mut verdict = None;
    let mut last = None;
    for raw in &trace.samples {
        // The server saw the trace arrive at once; each sample is placed before the arrival
        // by its device-clock age (at most ten minutes), so the jump check sees real intervals.
        let age_us = (last_ts.saturating_sub(raw.device_ts)).clamp(0, 600_000) * 1000;
        let at = received_at - age_us;
        let sample = Geolocation::parse(raw, received_at).map_err(|e| ApiError::Invalid {
            code: e.code(),
            message: e.to_string(),
        })?;
        verdict = Some(assessor.on_sample(&sample, at));
        last = Some(sample);
    }
    // The loop ran at least once: the trace is not empty.
    let (Some(v), Some(s)) = (verdict, last) else {
        return Ok((None, 0, None, None, None, flags));
    };
    let distance = site.map(|site| distance_m(site, (s.lat(), s.lon())));
    let within = distance.map(|d| (d - s.accuracy()).max(0.0) <= radius_m);
    if within == Some(false) {
        flags.push("far_from_site".into());
    }
    match v.level {
        TrustLevel::Spoofed => flags.push("spoofed".into()),
        TrustLevel::Suspicious => flags.push("suspicious".into()),
        TrustLevel::Trusted => {}
    }
    let location = ProofLocation {
        lat: s.lat(),
        lon: s.lon(),
        accuracy: s.accuracy(),
        device_ts: s.device_ts_ms(),
    };
    let verdict = ProofVerdict {
        level: v.level,
        signals: v.deciding().cloned().collect(),
    };
    Ok((
        Some(location),
        trace.samples.len() as u32,
        Some(verdict),
        distance.map(|d| d.round()),
        within,
        flags,
    ))
}

/// What a proof's bytes are: a photo (JPEG, PNG, WebP, by the same check as the inspection's
/// photos) or a short video (WebM or MP4 by their magic bytes).
fn sniff_proof(
    head: &[u8],
    tail: &[u8],
    size: u64,
) -> ApiResult<(&'static str, String, Option<u32>, Option<u32>)> {
    if head.len() >= 4 && head[..4] == [0x1A, 0x45, 0xDF, 0xA3] {
        return Ok(("video", "video/webm".into(), None, None));
    }
    if head.len() >= 12 && &head[4..8] == b"ftyp" {
        return Ok(("video", "video/mp4".into(), None, None));
    }
    match crate::uploads::sniff_image(head, tail, size) {
        Ok(info) => Ok((
            "photo",
            info.media_type.to_string(),
            Some(info.width),
            Some(info.height),
        )),
        Err(ApiError::Invalid {
            code: "unsupported_image_type",
            ..
        }) => Err(invalid(
            "unsupported_proof_type",
            "a proof is a JPEG, PNG or WebP photo, or a WebM or MP4 video",
        )),
        Err(e) => Err(e),
    }
}

/// What an accepted proof answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProofAccepted {
    /// Seq of its `proof_added` event.
    pub seq: u64,
    /// The proof as logged.
    pub proof: Proof,
    /// Where it is served.
    pub url: String,
}

/// The business sends a proof of one item's fix: the raw photo or video as the body, its
/// location trace in `X-Proof-Location`. The server hashes and checks it, judges the trace
/// (trust verdict, distance to the site) and logs `proof_added`; far or spoofed proofs are
/// marked, not refused.
#[utoipa::path(post, path = "/api/prescriptions/{id}/items/{item}/proofs", tag = "prescriptions",
    params(("id" = Uuid, Path), ("item" = String, Path), ProofQuery,
           ("x-proof-location" = Option<String>, Header, description = "LocationTrace as JSON")),
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "a photo (JPEG, PNG, WebP) or a video (WebM, MP4)"),
    responses((status = 201, body = ProofAccepted),
              (status = 400, description = "unsupported_proof_type, image_truncated, image_unreadable, invalid_location, too_many_samples, geo_*, upload_interrupted, invalid_captured_at", body = crate::error::ErrorBody),
              (status = 403, description = "only the business's representative sends proofs", body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "item_closed, item_full", body = crate::error::ErrorBody),
              (status = 413, body = crate::error::ErrorBody)))]
pub async fn add_proof(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, item)): Path<(Uuid, String)>,
    Query(q): Query<ProofQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<ProofAccepted>)> {
    let received_at = now_micros();
    let l = load_for(&state, &caller, id, Access::Read).await?;
    let Caller::Business(rep) = &caller else {
        return Err(ApiError::Forbidden);
    };
    if !is_rep_of(&caller, &l.inspection) {
        return Err(ApiError::NotFound("prescription"));
    }
    // Every rule before a byte is kept: the item may take a proof, the trace parses.
    let probe = Event::ProofAdded(Box::new(ProofAdded {
        item: item.clone(),
        proof: placeholder_proof(),
    }));
    model::check(&l.state, &probe).map_err(refused)?;
    let trace = match headers.get(LOCATION_HEADER) {
        None => None,
        Some(v) => {
            let bytes = v.as_bytes();
            if bytes.len() > MAX_LOCATION_HEADER {
                return Err(invalid(
                    "invalid_location",
                    "the location trace is too long",
                ));
            }
            Some(
                serde_json::from_slice::<LocationTrace>(bytes)
                    .map_err(|e| invalid("invalid_location", e.to_string()))?,
            )
        }
    };
    let site = l.state.business.lat.zip(l.state.business.lon);
    let (location, samples, verdict, distance_m, within_radius, flags) =
        judge_trace(trace.as_ref(), site, l.state.site_radius_m, received_at)?;
    let captured_at = match q.captured_at {
        None => None,
        Some(t) if t.is_finite() && (0.0..=1e15).contains(&t) => Some(t.floor() as i64),
        Some(_) => {
            return Err(invalid(
                "invalid_captured_at",
                "captured_at must be ms since the epoch",
            ))
        }
    };
    let staged =
        crate::uploads::stage_body(&state, &headers, body, state.config.max_upload_bytes).await?;
    let (kind, media_type, width, height) =
        match sniff_proof(&staged.head, &staged.tail, staged.size) {
            Ok(v) => v,
            Err(e) => {
                staged.discard(&state.blobs).await;
                return Err(e);
            }
        };
    let blob = staged
        .commit(&state.blobs)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let proof = Proof {
        id: Uuid::now_v7(),
        kind: kind.into(),
        sha256: blob.sha256,
        size: blob.size,
        media_type,
        width,
        height,
        captured_at,
        received_at,
        location,
        samples,
        verdict,
        distance_m,
        within_radius,
        flags,
    };
    let event = Event::ProofAdded(Box::new(ProofAdded {
        item,
        proof: proof.clone(),
    }));
    let appended = append_checked(&state, id, rep.link_id, &event).await?;
    Ok((
        StatusCode::CREATED,
        Json(ProofAccepted {
            seq: appended.seq,
            url: proof_url(id, proof.id),
            proof,
        }),
    ))
}

/// Appends `event` after checking it against the log as it is under the append lock (the
/// state may have moved since the request was loaded).
async fn append_checked(
    state: &AppState,
    id: Uuid,
    actor: Uuid,
    event: &Event,
) -> ApiResult<log::Appended> {
    let _guard = log::lock().await;
    let now = now_micros();
    let current = log::read(&state.db, id).await?;
    let st = PrescriptionState::fold(&current, now)
        .ok_or_else(|| crate::db::corrupt("prescription log", "does not start with issued"))?;
    model::check(&st, event).map_err(refused)?;
    let mut tx = crate::db::begin(&state.db).await?;
    let appended = log::append_in(&mut tx, id, actor, event, now).await?;
    tx.commit().await?;
    Ok(appended)
}

fn placeholder_proof() -> Proof {
    Proof {
        id: Uuid::nil(),
        kind: String::new(),
        sha256: String::new(),
        size: 0,
        media_type: String::new(),
        width: None,
        height: None,
        captured_at: None,
        received_at: 0,
        location: None,
        samples: 0,
        verdict: None,
        distance_m: None,
        within_radius: None,
        flags: Vec::new(),
    }
}

/// Where a proof is served.
pub fn proof_url(id: Uuid, proof: Uuid) -> String {
    format!("/api/prescriptions/{id}/proofs/{proof}")
}

/// A decision on one item.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionRequest {
    /// `accept` (closes the item) or `return` (sends it back).
    pub decision: String,
    /// Why it is returned (required with `return`, at most 2000 characters).
    #[serde(default)]
    pub comment: Option<String>,
    /// With `return`: a new due date (RFC 3339), in the future.
    #[serde(default)]
    pub due_at: Option<chrono::DateTime<chrono::Utc>>,
}

/// The inspector accepts an item (closed) or returns it with a comment and optionally a new
/// due date (its manager only).
#[utoipa::path(post, path = "/api/prescriptions/{id}/items/{item}/decision", tag = "prescriptions",
    params(("id" = Uuid, Path), ("item" = String, Path)), request_body = DecisionRequest,
    responses((status = 200, body = Prescription),
              (status = 400, description = "validation_failed (decision: unknown_decision; comment: comment_required, comment_too_long; due_at: due_in_past, due_too_far, due_with_accept)", body = crate::error::ErrorBody),
              (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "item_closed, no_proof, item_full", body = crate::error::ErrorBody)))]
pub async fn decide(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, item)): Path<(Uuid, String)>,
    ApiJson(req): ApiJson<DecisionRequest>,
) -> ApiResult<Json<Prescription>> {
    let l = load_for(&state, &caller, id, Access::Manage).await?;
    let staff = caller.staff()?;
    let now = now_micros();
    let mut errors = Vec::new();
    let comment = req.comment.as_deref().map(str::trim).unwrap_or("");
    let event = match req.decision.as_str() {
        "accept" => {
            if req.due_at.is_some() {
                errors.push(FieldError::new("due_at", "due_with_accept"));
            }
            Event::Accepted(Accepted { item: item.clone() })
        }
        "return" => {
            if comment.is_empty() {
                errors.push(FieldError::new("comment", "comment_required"));
            } else if comment.chars().count() > model::MAX_COMMENT_CHARS {
                errors.push(FieldError::new("comment", "comment_too_long"));
            }
            let due = req.due_at.map(micros);
            if let Some(d) = due {
                check_due(&mut errors, "due_at", d, now);
            }
            Event::Returned(Returned {
                item: item.clone(),
                comment: comment.to_string(),
                due_at: due,
            })
        }
        _ => {
            errors.push(FieldError::new("decision", "unknown_decision"));
            Event::Accepted(Accepted { item: item.clone() })
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    model::check(&l.state, &event).map_err(refused)?;
    append_checked(&state, id, staff.id, &event).await?;
    let l = load_for(&state, &caller, id, Access::Read).await?;
    Ok(Json(view(&l, &caller)))
}

/// A proof of the prescription, as its log names it.
#[utoipa::path(get, path = "/api/prescriptions/{id}/proofs/{proof}", tag = "prescriptions",
    params(("id" = Uuid, Path), ("proof" = Uuid, Path)),
    responses((status = 200, description = "the bytes, with the detected Content-Type"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn serve_proof(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, proof)): Path<(Uuid, Uuid)>,
) -> ApiResult<Response> {
    let l = load_for(&state, &caller, id, Access::Read).await?;
    let p = l
        .state
        .items
        .iter()
        .flat_map(|i| i.proofs.iter())
        .find(|p| p.proof.id == proof)
        .ok_or(ApiError::NotFound("proof"))?;
    let read = state
        .blobs
        .get(&p.proof.sha256, None)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("proof blob {} is missing", p.proof.sha256))
        })?;
    let mut response = Response::new(Body::from_stream(read.stream));
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&p.proof.media_type) {
        h.insert(header::CONTENT_TYPE, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!(
        "inline; filename=\"proof-{proof}.{}\"",
        crate::uploads::extension(&p.proof.media_type)
    )) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"{}\"", p.proof.sha256)) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

/// The prescription's log as JSON Lines (anyone who may read it).
#[utoipa::path(get, path = "/api/prescriptions/{id}/log.jsonl", tag = "prescriptions", params(("id" = Uuid, Path)),
    responses((status = 200, description = "one event per line, oldest first", content_type = "application/x-ndjson"),
              (status = 404, body = crate::error::ErrorBody)))]
pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    load_for(&state, &caller, id, Access::Read).await?;
    let rows = log::rows(&state.db, id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"prescription-{id}.jsonl\""),
            ),
        ],
        log::export_jsonl(id, &rows),
    )
        .into_response())
}
