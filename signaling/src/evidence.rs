//! What reviewers read after (and during) an inspection: the recording with HTTP Range
//! support, its manifest and WebVTT chapters, the checklist state, and the hash-chained event
//! log as JSON Lines. Every route checks the caller's access to the inspection first.

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tower::ServiceExt;
use tower_http::services::ServeFile;
use uuid::Uuid;

use crate::auth::Caller;
use crate::error::{ApiError, ApiResult};
use crate::inspections::{load_for, Access};
use crate::names::{self, FileKind};
use crate::AppState;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/inspections/{id}/recording", get(recording))
        .route("/api/inspections/{id}/recording/manifest", get(manifest))
        .route(
            "/api/inspections/{id}/recording/tracks/{index}",
            get(audio_track),
        )
        .route(
            "/api/inspections/{id}/recording/chapters.vtt",
            get(chapters),
        )
        .route("/api/inspections/{id}/state", get(state))
        .route("/api/inspections/{id}/events.jsonl", get(events))
}

fn not_ready() -> ApiError {
    ApiError::Conflict {
        code: "recording_not_ready",
        message: "the recording is not finalized yet".into(),
    }
}

async fn finished_manifest(
    state: &AppState,
    id: Uuid,
) -> ApiResult<(std::path::PathBuf, media_recorder::Manifest)> {
    let dir = state.config.recordings_dir().join(id.to_string());
    if let Some(shared) = &state.live.shared {
        // Finished by another node: its bytes come from the object store on the first read.
        shared.materialize(id).await?;
    }
    let d = dir.clone();
    let manifest = tokio::task::spawn_blocking(move || media_recorder::finalize::read_manifest(&d))
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .map_err(|e| anyhow::anyhow!("manifest: {e}"))?
        .ok_or_else(not_ready)?;
    Ok((dir, manifest))
}

/// The finalized recording; supports Range requests so browsers seek instantly.
#[utoipa::path(get, path = "/api/inspections/{id}/recording", tag = "recordings", params(("id" = Uuid, Path)),
    responses((status = 200, description = "video/webm or video/mp4"), (status = 206, description = "a byte range"),
              (status = 409, body = crate::error::ErrorBody)))]
pub async fn recording(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    req: Request,
) -> ApiResult<Response> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    // The raw evidence is the business's only as configured (docs/security.md).
    if !crate::inspections::may_read_raw(&state.config, &caller) {
        return Err(ApiError::Forbidden);
    }
    let query = req.uri().query().map(str::to_string);
    let (dir, manifest) = finished_manifest(&state, id).await?;
    // The manifest names a file inside the inspection's directory; refuse anything else.
    if manifest.file.contains('/') || manifest.file.contains("..") {
        return Err(
            anyhow::anyhow!("manifest names an unexpected file {:?}", manifest.file).into(),
        );
    }
    let mime = manifest
        .mime
        .parse()
        .unwrap_or(mime_guess::mime::APPLICATION_OCTET_STREAM);
    let served = ServeFile::new_with_mime(dir.join(&manifest.file), &mime)
        .oneshot(req)
        .await
        .map_err(|e| anyhow::anyhow!("serving the recording: {e}"))?;
    let mut response = served.map(Body::new);
    let name = names::file_name(
        &insp,
        FileKind::Recording,
        manifest.file.rsplit('.').next().unwrap_or("webm"),
        names::lang_of(query.as_deref()),
    );
    let disposition = names::disposition(names::wants_attachment(query.as_deref()), &name);
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, v);
    }
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(response)
}

/// Audio tracks cut at once (each reads the whole recording once; later requests are served
/// from the file made).
static AUDIO_CUTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(2);

/// One audio stream of the finalized recording on its own, on the recording's timeline
/// (silence where it had none), so that a browser, which plays only a file's first audio
/// stream, can play the inspector's voice beside the video. Made once, from the recording,
/// and kept beside it under a name that carries the recording's hash; Range requests work.
#[utoipa::path(get, path = "/api/inspections/{id}/recording/tracks/{index}", tag = "recordings",
    params(("id" = Uuid, Path), ("index" = usize, Path, description = "the stream's index in the manifest")),
    responses((status = 200, description = "audio/webm or audio/mp4"), (status = 206, description = "a byte range"),
              (status = 404, body = crate::error::ErrorBody, description = "no such audio stream"),
              (status = 409, body = crate::error::ErrorBody)))]
pub async fn audio_track(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, index)): Path<(Uuid, usize)>,
    req: Request,
) -> ApiResult<Response> {
    load_for(&state.db, &caller, id, Access::Read).await?;
    // The raw evidence is the business's only as configured (docs/security.md).
    if !crate::inspections::may_read_raw(&state.config, &caller) {
        return Err(ApiError::Forbidden);
    }
    let (dir, manifest) = finished_manifest(&state, id).await?;
    let audio = manifest
        .tracks
        .iter()
        .any(|t| t.index == index && t.kind == media_recorder::journal::TrackKind::Audio);
    if !audio || manifest.file.contains('/') || manifest.file.contains("..") {
        return Err(ApiError::NotFound("audio track"));
    }
    let ext = if manifest.mime.contains("mp4") {
        "m4a"
    } else {
        "weba"
    };
    // The recording's hash in the name: a file made from another recording is never served.
    let hash = manifest.sha256.get(..16).unwrap_or("0");
    let path = dir.join(format!("audio-{index}-{hash}.{ext}"));
    if tokio::fs::metadata(&path).await.is_err() {
        let _permit = AUDIO_CUTS
            .acquire()
            .await
            .map_err(|e| anyhow::anyhow!("audio cuts: {e}"))?;
        let (recording, out) = (dir.join(&manifest.file), path.clone());
        tokio::task::spawn_blocking(move || {
            if out.exists() {
                return Ok(());
            }
            // A name of its own per cut: two at once never write the same temporary file.
            let tmp = out.with_extension(format!("{}.{ext}", Uuid::new_v4().simple()));
            media_recorder::extract::audio_track(&recording, index, &tmp)?;
            std::fs::rename(&tmp, &out)?;
            Ok::<_, media_recorder::extract::ExtractError>(())
        })
        .await
        .map_err(|e| anyhow::anyhow!(e))?
        .map_err(|e| anyhow::anyhow!("audio track {index}: {e}"))?;
    }
    let mime = if ext == "m4a" {
        "audio/mp4"
    } else {
        "audio/webm"
    };
    let mime = mime
        .parse()
        .unwrap_or(mime_guess::mime::APPLICATION_OCTET_STREAM);
    let served = ServeFile::new_with_mime(&path, &mime)
        .oneshot(req)
        .await
        .map_err(|e| anyhow::anyhow!("serving audio track {index}: {e}"))?;
    let mut response = served.map(Body::new);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    Ok(response)
}

/// Tracks, duration, SHA-256 of the file and the chapters.
#[utoipa::path(get, path = "/api/inspections/{id}/recording/manifest", tag = "recordings", params(("id" = Uuid, Path)),
    responses((status = 200, description = "the manifest"), (status = 409, body = crate::error::ErrorBody)))]
pub async fn manifest(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<media_recorder::Manifest>> {
    load_for(&state.db, &caller, id, Access::Read).await?;
    Ok(Json(finished_manifest(&state, id).await?.1))
}

/// WebVTT chapters (one cue per marked checklist item).
#[utoipa::path(get, path = "/api/inspections/{id}/recording/chapters.vtt", tag = "recordings", params(("id" = Uuid, Path)),
    responses((status = 200, description = "text/vtt"), (status = 409, body = crate::error::ErrorBody)))]
pub async fn chapters(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    // The raw evidence is the business's only as configured (docs/security.md).
    if !crate::inspections::may_read_raw(&state.config, &caller) {
        return Err(ApiError::Forbidden);
    }
    let (dir, _) = finished_manifest(&state, id).await?;
    let text = tokio::fs::read(dir.join(media_recorder::finalize::VTT_FILE))
        .await
        .map_err(|_| not_ready())?;
    let name = names::file_name(
        &insp,
        FileKind::Chapters,
        "vtt",
        names::lang_of(uri.query()),
    );
    Ok((
        [
            (header::CONTENT_TYPE, "text/vtt; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                names::disposition(names::wants_attachment(uri.query()), &name),
            ),
        ],
        text,
    )
        .into_response())
}

/// The folded state of an inspection's committed log.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct StateResponse {
    /// The last event included.
    pub seq: u64,
    /// Lifecycle, items, participants (docs/protocol.md, "State").
    #[schema(value_type = Object)]
    pub state: checklist_sync::State,
}

/// The checklist state (results, comments, presence, locations) at the latest sequence number.
#[utoipa::path(get, path = "/api/inspections/{id}/state", tag = "recordings", params(("id" = Uuid, Path)),
    responses((status = 200, body = StateResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn state(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<StateResponse>> {
    load_for(&state.db, &caller, id, Access::Read).await?;
    let snap = state
        .live
        .sync
        .snapshot(id)
        .await
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    Ok(Json(StateResponse {
        seq: snap.seq,
        state: snap.state,
    }))
}

/// Events a window of the log (`last`) may hold, at most.
pub const MAX_WINDOW: i64 = 1000;

/// `?upto=<seq>&last=<n>`: the last `n` actions at or before `upto` (a live page's list after
/// a snapshot; `checklist_sync::export_jsonl_window`), instead of the whole log. Both or
/// neither.
fn window(query: Option<&str>) -> ApiResult<Option<(i64, i64)>> {
    let (mut upto, mut last) = (None, None);
    // Whole numbers need no percent-decoding (the query is read like `names::lang_of`).
    for (k, v) in query
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
    {
        let slot = match k {
            "upto" => &mut upto,
            "last" => &mut last,
            _ => continue,
        };
        *slot =
            Some(v.parse::<i64>().map_err(|_| {
                ApiError::validation(format!("{k} must be a whole number, not {v:?}"))
            })?);
    }
    match (upto, last) {
        (None, None) => Ok(None),
        (Some(upto), Some(last)) if upto >= 0 && (1..=MAX_WINDOW).contains(&last) => {
            Ok(Some((upto, last)))
        }
        (Some(_), Some(_)) => Err(ApiError::validation(format!(
            "upto must be 0 or more and last 1 to {MAX_WINDOW}"
        ))),
        _ => Err(ApiError::validation("upto and last go together")),
    }
}

/// The event log, hash-chained, as JSON Lines: the whole of it, or with `upto` and `last` the
/// last `last` (≤ 1000) actions at or before `upto` (no presence or location lines).
#[utoipa::path(get, path = "/api/inspections/{id}/events.jsonl", tag = "recordings",
    params(("id" = Uuid, Path), ("upto" = Option<i64>, Query), ("last" = Option<i64>, Query)),
    responses((status = 200, description = "application/x-ndjson"), (status = 400, body = crate::error::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    uri: axum::http::Uri,
) -> ApiResult<Response> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    // The raw evidence is the business's only as configured (docs/security.md).
    if !crate::inspections::may_read_raw(&state.config, &caller) {
        return Err(ApiError::Forbidden);
    }
    let name = names::file_name(
        &insp,
        FileKind::EventLog,
        "jsonl",
        names::lang_of(uri.query()),
    );
    let window = window(uri.query())?;
    let mut out = Vec::new();
    match window {
        Some((upto, last)) => {
            checklist_sync::export_jsonl_window(&state.db, id, upto, last, &mut out).await
        }
        None => checklist_sync::export_jsonl(&state.db, id, &mut out).await,
    }
    .map_err(|e| anyhow::anyhow!("export: {e}"))?;
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                "application/x-ndjson; charset=utf-8".to_string(),
            ),
            (header::CONTENT_DISPOSITION, names::disposition(true, &name)),
        ],
        out,
    )
        .into_response())
}
