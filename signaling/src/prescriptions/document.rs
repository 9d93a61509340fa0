//! The prescription's PDF: the act's renderer (typst as a library, PDF/A-2b) over
//! `prescription.typ`, with the data passed as data (`data.json`, built here from the folded
//! log) and the photo proofs as thumbnails read from the blob store and checked against their
//! logged hashes. The PDF is rendered on request: the log is the record, the document a view
//! of it at its head (which it prints).

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, TimeZone, Utc};
use futures_util::StreamExt;
use serde::Serialize;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::http::{load_for, Loaded};
use super::model::{ItemStatus, PrescriptionStatus as Status};
use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::inspections::Access;
use crate::AppState;

const TEMPLATE: &str = include_str!("prescription.typ");
/// Most bytes of photos one document embeds; proofs past it are listed with their hash only.
pub const MAX_PICTURE_BYTES: u64 = 48 * 1024 * 1024;

#[derive(Serialize)]
struct Doc {
    lang: String,
    id: String,
    control_body: String,
    inspector: String,
    issued_at: String,
    timezone: String,
    inspection_id: String,
    inspection_title: String,
    inspection_head: super::model::InspectionHead,
    business: super::model::BusinessAtIssue,
    items: Vec<DocItem>,
    status: &'static str,
    events: u64,
    head_hash: String,
}

#[derive(Serialize)]
struct DocItem {
    id: String,
    requirement: String,
    legal_basis: String,
    description: String,
    due: String,
    status: &'static str,
    evidence: Vec<super::model::EvidenceRef>,
    proofs: Vec<DocProof>,
    decisions: Vec<DocDecision>,
}

#[derive(Serialize)]
struct DocProof {
    time: String,
    kind: String,
    sha256: String,
    geo: Option<String>,
    distance: Option<f64>,
    flags: Vec<String>,
    signals: Vec<String>,
    image: Option<String>,
}

#[derive(Serialize)]
struct DocDecision {
    time: String,
    decision: String,
    comment: Option<String>,
    due: Option<String>,
}

fn zone(l: &Loaded) -> chrono_tz::Tz {
    l.inspection.time_zone.parse().unwrap_or(chrono_tz::UTC)
}

fn local(tz: chrono_tz::Tz, micros: i64) -> DateTime<chrono_tz::Tz> {
    tz.from_utc_datetime(
        &DateTime::<Utc>::from_timestamp_micros(micros)
            .unwrap_or_default()
            .naive_utc(),
    )
}

fn time(tz: chrono_tz::Tz, micros: i64) -> String {
    local(tz, micros).format("%d.%m.%Y %H:%M").to_string()
}

fn item_status(s: ItemStatus) -> &'static str {
    match s {
        ItemStatus::Open => "open",
        ItemStatus::Submitted => "submitted",
        ItemStatus::Returned => "returned",
        ItemStatus::Closed => "closed",
    }
}

fn status(s: Status) -> &'static str {
    match s {
        Status::Open => "open",
        Status::Returned => "returned",
        Status::Overdue => "overdue",
        Status::Closed => "closed",
        Status::Fulfilled => "fulfilled",
    }
}

/// Builds the document's data and its pictures.
async fn build(state: &AppState, l: &Loaded) -> ApiResult<(Doc, Vec<(String, Vec<u8>)>)> {
    let tz = zone(l);
    let s = &l.state;
    let mut files = Vec::new();
    let mut total = 0u64;
    let mut items = Vec::new();
    for i in &s.items {
        let mut proofs = Vec::new();
        for p in &i.proofs {
            let pr = &p.proof;
            let picture = pr.kind == "photo"
                && matches!(pr.media_type.as_str(), "image/jpeg" | "image/png")
                && total + pr.size <= MAX_PICTURE_BYTES;
            let image = if picture {
                let bytes = read_checked(state, &pr.sha256, pr.size).await?;
                total += pr.size;
                let path = format!(
                    "img/{}.{}",
                    pr.sha256,
                    crate::uploads::extension(&pr.media_type)
                );
                files.push((path.clone(), bytes));
                Some(path)
            } else {
                None
            };
            proofs.push(DocProof {
                time: time(tz, p.ts),
                kind: pr.kind.clone(),
                sha256: pr.sha256.clone(),
                geo: pr
                    .location
                    .as_ref()
                    .map(|g| format!("{:.6}, {:.6} ±{:.0}", g.lat, g.lon, g.accuracy)),
                distance: pr.distance_m,
                flags: pr.flags.clone(),
                signals: pr
                    .verdict
                    .iter()
                    .flat_map(|v| v.signals.iter().map(|s| s.name.clone()))
                    .collect(),
                image,
            });
        }
        items.push(DocItem {
            id: i.issued.id.clone(),
            requirement: i.issued.requirement.clone(),
            legal_basis: i.issued.legal_basis.clone(),
            description: i.issued.description.clone(),
            due: local(tz, i.current_due_at).format("%d.%m.%Y").to_string(),
            status: item_status(i.status),
            evidence: i.issued.evidence.clone(),
            proofs,
            decisions: i
                .decisions
                .iter()
                .map(|d| DocDecision {
                    time: time(tz, d.ts),
                    decision: d.decision.clone(),
                    comment: d.comment.clone(),
                    due: d
                        .due_at
                        .map(|m| local(tz, m).format("%d.%m.%Y").to_string()),
                })
                .collect(),
        });
    }
    let doc = Doc {
        lang: l.inspection.language.clone(),
        id: l.id.to_string(),
        control_body: s
            .control_body
            .as_ref()
            .map(|c| format!("{} ({}, {})", c.name, c.region, c.control_kind))
            .unwrap_or_else(|| state.config.control_body.clone()),
        inspector: l.inspection.inspector.display_name.clone(),
        issued_at: time(tz, s.issued_at),
        timezone: l.inspection.time_zone.clone(),
        inspection_id: s.inspection_id.to_string(),
        inspection_title: l.inspection.title.clone(),
        inspection_head: s.inspection_head.clone(),
        business: s.business.clone(),
        items,
        status: status(s.status),
        events: s.events,
        head_hash: l.head_hash.clone(),
    };
    Ok((doc, files))
}

async fn read_checked(state: &AppState, sha: &str, size: u64) -> ApiResult<Vec<u8>> {
    let mut read = state
        .blobs
        .get(sha, None)
        .await
        .map_err(|e| anyhow::anyhow!("proof {sha}: {e}"))?
        .ok_or_else(|| anyhow::anyhow!("proof {sha} named by the log is not stored"))?;
    let mut bytes = Vec::with_capacity(size as usize);
    while let Some(chunk) = read.stream.next().await {
        bytes.extend_from_slice(&chunk.map_err(|e| anyhow::anyhow!("proof {sha}: {e}"))?);
    }
    if hex::encode(Sha256::digest(&bytes)) != sha {
        return Err(anyhow::anyhow!("stored proof {sha} does not hash to its name").into());
    }
    Ok(bytes)
}

/// Renders the prescription's PDF.
pub async fn render(state: &AppState, l: &Loaded) -> ApiResult<Vec<u8>> {
    let (doc, mut files) = build(state, l).await?;
    let data = serde_json::to_vec(&doc).map_err(|e| ApiError::Internal(e.into()))?;
    files.push(("data.json".into(), data));
    let ident = format!("{}:{}", l.id, l.head_hash);
    let last_ts = l.log.last().map(|e| e.ts).unwrap_or(l.state.issued_at);
    let t = local(zone(l), last_ts);
    let offset = chrono::Offset::fix(t.offset()).local_minus_utc() / 60;
    use chrono::{Datelike, Timelike};
    let timestamp = typst::foundations::Datetime::from_ymd_hms(
        t.year(),
        t.month() as u8,
        t.day() as u8,
        t.hour() as u8,
        t.minute() as u8,
        t.second() as u8,
    )
    .and_then(|dt| typst_pdf::Timestamp::new_local(dt, offset));
    state
        .acts
        .renderer
        .run(move || crate::act::render::render_document(TEMPLATE, files, ident, timestamp))
        .await
        .map_err(|e| ApiError::Internal(e.into()))
}

/// The prescription as PDF/A (anyone who may read it).
#[utoipa::path(get, path = "/api/prescriptions/{id}/document.pdf", tag = "prescriptions", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the PDF", content_type = "application/pdf"), (status = 404, body = crate::error::ErrorBody)))]
pub async fn pdf(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Response> {
    let l = load_for(&state, &caller, id, Access::Read).await?;
    let bytes = render(&state, &l).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/pdf".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("inline; filename=\"prescription-{id}.pdf\""),
            ),
        ],
        bytes,
    )
        .into_response())
}
