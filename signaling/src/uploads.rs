//! Evidence from the participants: photo uploads and serving any stored evidence.
//!
//! `POST /api/inspections/{id}/evidence?item_id=…` takes the raw image as the body. Every rule
//! is checked before anything is kept: the caller must see the inspection (404 otherwise), be
//! its inspector or business (observers 403), the inspection must be live, the uploader within
//! its quotas (`[live]`, 409 `quota_exceeded`), the item in its checklist, the geolocation
//! sample valid; the body is streamed into the blob store's temporary area while the server
//! hashes and counts it (over the limit → 413, cut short → `upload_interrupted`); the content
//! must be a whole JPEG, PNG or WebP by its magic bytes and decoded header, or a short WebM/MP4
//! video that the real ffprobe reads through (see [`video`]) (the claimed Content-Type is
//! ignored); an `X-Content-SHA256` header must match. Only then the blob moves
//! to its content key and the server submits the `attach_evidence` event with its own
//! findings. A refusal stores no blob, event or row.
//!
//! `GET /api/inspections/{id}/evidence/{evidence_id}` serves what the inspection's event log
//! says is its evidence, through the access rule, with the detected type, `nosniff`,
//! `Content-Disposition` and byte ranges. The log is the only index: a blob that no event of
//! this inspection references is never served under it.
//!
//! Thumbnails are the originals scaled by CSS: the server never decodes untrusted pixels
//! (only headers), the original is the evidence, and the phone shows its own local copy.

use std::ops::Range;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use checklist_sync::geo::{Geolocation, RawGeolocation};
use checklist_sync::proto::{is_sha256_hex, Evidence, EvidenceKind, EvidenceVerdict, Location};
use checklist_sync::quota::Usage;
use checklist_sync::state::Source;
use checklist_sync::{OpError, Operation, Principal, Role};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::Caller;
use crate::blobs::BlobError;
use crate::db::now_micros;
use crate::error::{ApiError, ApiResult};
use crate::inspections::{load_for, Access};
use crate::live::{self, Live};
use crate::AppState;

pub mod video;

/// The header carrying the SHA-256 the client computed (optional).
pub const SHA256_HEADER: &str = "x-content-sha256";
/// Bytes kept from the start of an upload to read its type and pixel size.
const HEAD_BYTES: usize = 512 * 1024;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/inspections/{id}/evidence", post(upload))
        .route("/api/inspections/{id}/evidence/{evidence_id}", get(serve))
}

/// Query of an upload: what it shows (exactly one of `item_id`, `finding_seq` and
/// `finding_op_id`) and what the device says about the moment.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct UploadQuery {
    /// The checklist item the photo is of.
    pub item_id: Option<String>,
    /// The seq of the free-form finding (`finding` event) the photo is of.
    pub finding_seq: Option<u64>,
    /// The op id under which the uploader's device queued that finding (the on-site phone,
    /// before it knows the seq): resolved to the committed finding's seq.
    pub finding_op_id: Option<String>,
    /// Capture time the device claims, ms since the epoch.
    pub captured_at: Option<f64>,
    /// The device's latitude when it took the photo.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// Horizontal accuracy, metres.
    pub accuracy: Option<f64>,
    /// Altitude, metres.
    pub altitude: Option<f64>,
    /// Altitude accuracy, metres.
    pub altitude_accuracy: Option<f64>,
    /// Heading, degrees.
    pub heading: Option<f64>,
    /// Speed, m/s.
    pub speed: Option<f64>,
    /// Device time of the fix, ms since the epoch.
    pub device_ts: Option<f64>,
    /// The op id the device gave this photo (a UUID; the on-site phone's queue): an upload
    /// whose op id is already committed answers the committed evidence (200) and keeps nothing.
    pub op_id: Option<String>,
    /// A video's length as the device recorded it, ms (required with a video; the server's
    /// ffprobe must find the same within a second or a fifth).
    pub duration_ms: Option<f64>,
    /// The seq of the inspector's `pointer` event the phone showed when it took the photo
    /// (issue 25): one of the latest 8 pointers of the log, copied into the evidence.
    pub pointer_seq: Option<u64>,
    /// A still of the business's camera instead of a photo of something (issue 19): why the
    /// phone sends it, `low_bandwidth` or `requested`. Logged as a `frame` event, with no
    /// item or finding.
    pub frame: Option<String>,
}

/// Stills of one participant closer together than this are refused (429): the phone sends
/// one every 5 s, and one more when the inspector asks (which may follow one closely).
const FRAME_SPACING_MICROS: i64 = 500_000;

/// What an accepted upload answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Uploaded {
    /// Sequence number of the `attach_evidence` (or, for a still, `frame`) event.
    pub seq: u64,
    /// The item.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub item_id: Option<String>,
    /// The free-form finding's seq.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding_seq: Option<u64>,
    /// The evidence as logged.
    #[schema(value_type = Object)]
    pub evidence: Evidence,
    /// Where to fetch it.
    pub url: String,
    /// True when the op id had been committed before: this answer is that upload's.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
}

/// What the content of an upload was found to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// `image/jpeg`, `image/png` or `image/webp`.
    pub media_type: &'static str,
    /// Pixel width.
    pub width: u32,
    /// Pixel height.
    pub height: u32,
}

/// Receives an upload's body into the blob store's staging area, hashing it on the way: a
/// declared `Content-Length` over `max_upload_bytes` is refused before a byte is read, a body
/// that grows past it is cut off. Photos of items and proofs of fixes share this.
pub(crate) async fn stage_body(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    limit: u64,
) -> ApiResult<crate::blobs::Staged> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::PayloadTooLarge);
    }
    state
        .blobs
        .stage(body.into_data_stream(), limit, HEAD_BYTES)
        .await
        .map_err(|e| match e {
            BlobError::TooLarge { .. } => ApiError::PayloadTooLarge,
            BlobError::Interrupted(m) => invalid("upload_interrupted", m),
            other => ApiError::Internal(other.into()),
        })
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code,
        message: message.into(),
    }
}

/// Identifies a photo by its content: JPEG, PNG or WebP magic bytes, pixel size from the
/// header, and the format's end marker in the tail (a cut-off file is refused).
pub fn sniff_image(head: &[u8], tail: &[u8], size: u64) -> ApiResult<ImageInfo> {
    use imagesize::ImageType;
    let kind = imagesize::image_type(head).map_err(|_| {
        invalid(
            "unsupported_image_type",
            "only JPEG, PNG and WebP photos are accepted",
        )
    })?;
    let media_type = match kind {
        ImageType::Jpeg => "image/jpeg",
        ImageType::Png => "image/png",
        ImageType::Webp => "image/webp",
        _ => {
            return Err(invalid(
                "unsupported_image_type",
                "only JPEG, PNG and WebP photos are accepted",
            ))
        }
    };
    let dims = imagesize::blob_size(head)
        .map_err(|_| invalid("image_unreadable", "the image header cannot be read"))?;
    if dims.width == 0 || dims.height == 0 || dims.width > 100_000 || dims.height > 100_000 {
        return Err(invalid(
            "image_unreadable",
            "the image has no plausible pixel size",
        ));
    }
    let whole = match kind {
        // End of image; phones may append data (e.g. motion photos) after it.
        ImageType::Jpeg => tail.windows(2).any(|w| w == [0xFF, 0xD9]),
        // The IEND chunk with its fixed CRC closes every PNG.
        ImageType::Png => tail
            .windows(8)
            .any(|w| w == [b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]),
        // RIFF header: the size of everything after the first 8 bytes.
        _ => {
            head.len() >= 8 && {
                let riff = u32::from_le_bytes([head[4], head[5], head[6], head[7]]) as u64;
                riff + 8 <= size
            }
        }
    };
    if !whole {
        return Err(invalid(
            "image_truncated",
            "the image is cut off (no end marker)",
        ));
    }
    Ok(ImageInfo {
        media_type,
        width: dims.width as u32,
        height: dims.height as u32,
    })
}

/// The sync role a caller has in an inspection it can see.
fn role_of(caller: &Caller, access: Access) -> Role {
    match caller {
        Caller::Staff(_) if access == Access::Manage => Role::Inspector,
        Caller::Staff(_) => Role::Observer,
        Caller::Guest(_) => Role::Business,
        // Refused before anything is stored: it does not take part live.
        Caller::Business(_) => Role::Observer,
    }
}

fn parse_location(q: &UploadQuery, now: i64) -> ApiResult<Option<Location>> {
    let (Some(lat), Some(lon)) = (q.lat, q.lon) else {
        if q.lat.is_some() || q.lon.is_some() {
            return Err(invalid(
                "invalid_location",
                "give both lat and lon, or neither",
            ));
        }
        return Ok(None);
    };
    let device_ts = q
        .device_ts
        .filter(|t| t.is_finite() && (0.0..=1e15).contains(t))
        .ok_or_else(|| invalid("invalid_location", "device_ts is required with a location"))?
        .floor() as i64;
    let raw = RawGeolocation {
        lat,
        lon,
        accuracy: q.accuracy.unwrap_or(f64::NAN),
        altitude: q.altitude,
        altitude_accuracy: q.altitude_accuracy,
        heading: q.heading,
        speed: q.speed,
        device_ts,
    };
    // The same strict parse as a location op: the sample recorded is one the server accepts.
    Geolocation::parse(&raw, now).map_err(|e| ApiError::Invalid {
        code: e.code(),
        message: e.to_string(),
    })?;
    Ok(Some(Location {
        lat,
        lon,
        accuracy: raw.accuracy,
        altitude: q.altitude,
        altitude_accuracy: q.altitude_accuracy,
        heading: q.heading,
        speed: q.speed,
        device_ts,
    }))
}

/// Uploads a photo (raw JPEG, PNG or WebP body) or a short video (WebM or MP4, probed by
/// ffprobe) of a checklist item; inspector or business of a live inspection. The server
/// hashes, checks and stores it, then logs `attach_evidence`.
#[utoipa::path(post, path = "/api/inspections/{id}/evidence", tag = "evidence",
    params(("id" = Uuid, Path), UploadQuery,
           ("x-content-sha256" = Option<String>, Header, description = "SHA-256 the client computed; a mismatch is refused")),
    request_body(content = Vec<u8>, content_type = "image/jpeg", description = "the image bytes, or a short WebM/MP4 video with duration_ms (type detected from the content)"),
    responses((status = 201, body = Uploaded),
              (status = 200, description = "the op id was committed before: that upload's answer", body = Uploaded),
              (status = 400, description = "invalid_op_id, invalid_evidence_target, unknown_item, unknown_finding, unsupported_image_type, image_truncated, image_unreadable, hash_mismatch, unknown_pointer, upload_interrupted, invalid_location, geo_*, invalid_duration, video_duration_required, video_unreadable, video_too_long, video_duration_mismatch", body = crate::error::ErrorBody),
              (status = 403, description = "forbidden: an observer, or the business through its results link only", body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "not_live, already_finished, cancelled, quota_exceeded (the uploader's evidence quotas)", body = crate::error::ErrorBody),
              (status = 413, description = "payload_too_large", body = crate::error::ErrorBody)))]
pub async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    Query(q): Query<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<(StatusCode, Json<Uploaded>)> {
    let received_at = now_micros();
    let (insp, access) = load_for(&state.db, &caller, id, Access::Read).await?;
    let role = role_of(&caller, access);
    if role == Role::Observer || !crate::inspections::takes_part(&caller, &insp) {
        return Err(ApiError::Forbidden);
    }
    let op_id = match &q.op_id {
        None => None,
        Some(s) if Uuid::parse_str(s).is_ok() => Some(s.clone()),
        Some(_) => return Err(invalid("invalid_op_id", "op_id must be a UUID")),
    };
    // A replayed upload answers what was committed, before any rule that the time since may
    // have changed (the inspection may be finished by now).
    let known = live::participants::find(&state.db, &caller, &insp).await?;
    if let (Some(pid), Some(op)) = (known, &op_id) {
        if let Some(done) = committed_upload(&state, id, pid, op).await? {
            return Ok((StatusCode::OK, Json(done)));
        }
    }
    let spec = Live::room_spec(&insp);
    let snap = state
        .live
        .sync
        .snapshot(id)
        .await
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    let frame = frame_reason(&q, role)?;
    let (item_id, finding_seq) = match frame {
        Some(_) => (None, None),
        None => evidence_target(&state, &q, &spec, &snap.state, id, known).await?,
    };
    // Refuse early, from the log, so that a refused upload stores nothing; the room checks
    // again when it sequences the event.
    // The event this upload becomes: a still of the camera, or evidence of an item or finding.
    let event_of = |evidence: Evidence| match frame {
        Some(reason) => Operation::Frame {
            evidence: Box::new(evidence),
            reason,
        },
        None => Operation::AttachEvidence {
            item_id: item_id.clone(),
            finding_seq,
            evidence: Box::new(evidence),
        },
    };
    let provisional = event_of(empty_evidence());
    if frame.is_some() {
        let last = known
            .and_then(|pid| snap.state.participants.get(&pid))
            .and_then(|p| p.frames.as_ref())
            .map(|f| f.last_at);
        if last.is_some_and(|at| received_at - at < FRAME_SPACING_MICROS) {
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: 1,
            });
        }
    }
    snap.state
        .lifecycle
        .status
        .allows(&provisional, Source::Server)
        .map_err(refused)?;
    // The uploader's quotas too (evidence per item, bytes): a participant past them would
    // otherwise leave a stored blob behind every refused upload.
    if let Some(pid) = known {
        Usage::from_state(&snap.state)
            .admit(&state.config.live.quotas(), pid, &provisional, received_at)
            .map_err(refused)?;
    }
    let location = parse_location(&q, received_at)?;
    // The pointer shown at capture, from the log (the phone only names it): refused before
    // anything is stored when the log keeps no such pointer.
    let pointer = match q.pointer_seq {
        None => None,
        Some(seq) => Some(
            snap.state
                .camera
                .as_deref()
                .and_then(|c| c.pointer_at(seq))
                .cloned()
                .ok_or_else(|| {
                    invalid(
                        "unknown_pointer",
                        format!("event {seq} is none of the inspection's latest pointers"),
                    )
                })?,
        ),
    };
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
    let expected = match headers.get(SHA256_HEADER) {
        None => None,
        Some(v) => {
            let h = v.to_str().unwrap_or("").trim().to_ascii_lowercase();
            if !is_sha256_hex(&h) {
                return Err(invalid(
                    "invalid_sha256",
                    "X-Content-SHA256 must be 64 hex digits",
                ));
            }
            Some(h)
        }
    };
    let cfg = &state.config;
    let claimed_ms = match q.duration_ms {
        None => None,
        Some(d) if d.is_finite() && (0.0..=1e9).contains(&d) => Some(d.round() as i64),
        Some(_) => {
            return Err(invalid(
                "invalid_duration",
                "duration_ms must be milliseconds",
            ))
        }
    };
    let staged = stage_body(
        &state,
        &headers,
        body,
        cfg.max_upload_bytes.max(cfg.max_video_bytes),
    )
    .await?;
    let checked = match &expected {
        Some(h) if *h != staged.sha256 => Err(invalid(
            "hash_mismatch",
            format!("the received bytes hash to {}, not {h}", staged.sha256),
        )),
        _ => Ok(()),
    };
    let checked = match checked {
        Err(e) => Err(e),
        Ok(()) => match video::sniff_container(&staged.head) {
            Some(_) if frame.is_some() => Err(invalid(
                "frame_not_image",
                "a still is a JPEG, PNG or WebP picture",
            )),
            Some(media_type) => check_video(&state, &staged, media_type, claimed_ms).await,
            None if staged.size > cfg.max_upload_bytes => Err(ApiError::PayloadTooLarge),
            None => sniff_image(&staged.head, &staged.tail, staged.size).map(|i| Media {
                kind: EvidenceKind::Photo,
                media_type: i.media_type,
                width: i.width,
                height: i.height,
                duration_ms: None,
            }),
        },
    };
    let info = match checked {
        Ok(info) => info,
        Err(e) => {
            staged.discard(&state.blobs).await;
            return Err(e);
        }
    };
    let blob = staged
        .commit(&state.blobs)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;

    // Only now, with the blob durable, does the caller become a participant of record.
    let device = live::device::device_kind(&headers);
    let participant_id = live::participants::register(&state.db, &caller, &insp, device).await?;
    let who = live::principal(&caller, &insp, access, participant_id, device);
    let verdict = state
        .live
        .sync
        .snapshot(id)
        .await
        .ok()
        .and_then(|s| s.state.participants.get(&participant_id)?.verdict.clone())
        .map(|v| EvidenceVerdict {
            level: v.level,
            signals: v.deciding().map(|s| s.name.clone()).collect(),
        });
    let evidence_id = Uuid::now_v7();
    let evidence = Evidence {
        id: evidence_id.to_string(),
        kind: if frame.is_some() {
            EvidenceKind::Frame
        } else {
            info.kind
        },
        sha256: Some(blob.sha256.clone()),
        size: Some(blob.size),
        media_type: Some(info.media_type.to_string()),
        width: Some(info.width),
        height: Some(info.height),
        duration_ms: info.duration_ms,
        received_at: Some(received_at),
        captured_at,
        at_micros: Some(received_at),
        location,
        verdict,
        pointer,
        ..empty_evidence()
    };
    let op = event_of(evidence.clone());
    let client_op_id = op_id
        .clone()
        .unwrap_or_else(|| format!("evidence-{evidence_id}"));
    let answer = state
        .live
        .sync
        .submit(&who, &spec, op, Some(client_op_id.clone()))
        .await;
    let event = match answer {
        Ok(event) => event,
        // The same op id raced in from another request: answer that one's upload.
        Err(e) if e.code == checklist_sync::proto::codes::DUPLICATE_OP_ID => {
            return committed_upload(&state, id, participant_id, &client_op_id)
                .await?
                .map(|done| (StatusCode::OK, Json(done)))
                .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("duplicate op id not found")));
        }
        Err(e) => return Err(refused(e)),
    };
    Ok((
        StatusCode::CREATED,
        Json(Uploaded {
            seq: event.seq,
            item_id,
            finding_seq,
            url: evidence_url(id, evidence_id),
            evidence,
            replayed: false,
        }),
    ))
}

/// A still's reason (`frame=…`): only the business's phone sends stills, and a still shows
/// no item or finding (400 `invalid_evidence_target` with one).
fn frame_reason(
    q: &UploadQuery,
    role: Role,
) -> ApiResult<Option<checklist_sync::proto::FrameReason>> {
    use checklist_sync::proto::FrameReason;
    let Some(reason) = q.frame.as_deref() else {
        return Ok(None);
    };
    let reason = match reason {
        "low_bandwidth" => FrameReason::LowBandwidth,
        "requested" => FrameReason::Requested,
        _ => {
            return Err(invalid(
                "invalid_frame_reason",
                "frame is low_bandwidth or requested",
            ))
        }
    };
    if q.item_id.is_some() || q.finding_seq.is_some() || q.finding_op_id.is_some() {
        return Err(invalid(
            "invalid_evidence_target",
            "a still shows the camera, not an item or a finding",
        ));
    }
    if role != Role::Business {
        return Err(ApiError::Forbidden);
    }
    Ok(Some(reason))
}

/// What an upload shows: a checklist item or a free-form finding, exactly one (400
/// `invalid_evidence_target`); an item not in the checklist is `unknown_item`, a seq or op id
/// that is no committed finding of this inspection `unknown_finding`.
async fn evidence_target(
    state: &AppState,
    q: &UploadQuery,
    spec: &checklist_sync::RoomSpec,
    log: &checklist_sync::State,
    id: Uuid,
    known: Option<Uuid>,
) -> ApiResult<(Option<String>, Option<u64>)> {
    let unknown_finding = || {
        invalid(
            "unknown_finding",
            "no such free-form finding in this inspection",
        )
    };
    match (&q.item_id, q.finding_seq, &q.finding_op_id) {
        (Some(item), None, None) => {
            if !spec.items.iter().any(|i| i.id == *item) {
                return Err(invalid(
                    "unknown_item",
                    format!("no item {item:?} in this checklist"),
                ));
            }
            Ok((Some(item.clone()), None))
        }
        (None, Some(seq), None) => match log.finding(seq) {
            Some(_) => Ok((None, Some(seq))),
            None => Err(unknown_finding()),
        },
        (None, None, Some(op)) => {
            if Uuid::parse_str(op).is_err() {
                return Err(invalid("invalid_op_id", "finding_op_id must be a UUID"));
            }
            // Only the uploader's own queued finding: the op id is the device's.
            let Some(pid) = known else {
                return Err(unknown_finding());
            };
            use sqlx::Row;
            let row = sqlx::query(
                "SELECT seq FROM events WHERE inspection_id = $1 AND participant_id = $2 \
                 AND client_op_id = $3 AND kind = 'finding'",
            )
            .bind(id.to_string())
            .bind(pid.to_string())
            .bind(op)
            .fetch_optional(&state.db)
            .await?;
            match row {
                Some(r) => {
                    let seq: i64 = r.try_get(0)?;
                    Ok((None, Some(seq as u64)))
                }
                None => Err(unknown_finding()),
            }
        }
        _ => Err(invalid(
            "invalid_evidence_target",
            "name exactly one of item_id, finding_seq and finding_op_id",
        )),
    }
}

/// What an accepted upload's content is.
struct Media {
    kind: EvidenceKind,
    media_type: &'static str,
    width: u32,
    height: u32,
    duration_ms: Option<i64>,
}

/// A staged video: within the video size limit, a claimed duration, and ffprobe over a local
/// copy finds a video stream of that duration within the configured limit.
async fn check_video(
    state: &AppState,
    staged: &crate::blobs::Staged,
    media_type: &'static str,
    claimed_ms: Option<i64>,
) -> ApiResult<Media> {
    if staged.size > state.config.max_video_bytes {
        return Err(ApiError::PayloadTooLarge);
    }
    let claimed = claimed_ms
        .ok_or_else(|| invalid("video_duration_required", "give the video's duration_ms"))?;
    // The temporary file goes when `local` is dropped, whatever the outcome.
    let local = tempfile::Builder::new()
        .prefix("inspector-probe-")
        .tempfile()
        .map_err(|e| ApiError::Internal(e.into()))?;
    staged
        .copy_to(&state.blobs, local.path())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let info = video::probe(local.path(), media_type).await?;
    video::check_duration(info.duration_ms, claimed, state.config.max_video_ms)?;
    Ok(Media {
        kind: EvidenceKind::Video,
        media_type: info.media_type,
        width: info.width,
        height: info.height,
        duration_ms: Some(info.duration_ms),
    })
}

/// The upload a participant already committed under an op id, read from the log.
async fn committed_upload(
    state: &AppState,
    id: Uuid,
    participant: Uuid,
    op_id: &str,
) -> ApiResult<Option<Uploaded>> {
    use sqlx::Row;
    let row = sqlx::query(
        "SELECT seq, payload FROM events WHERE inspection_id = $1 AND participant_id = $2 \
         AND client_op_id = $3 AND kind IN ('attach_evidence', 'frame')",
    )
    .bind(id.to_string())
    .bind(participant.to_string())
    .bind(op_id)
    .fetch_optional(&state.db)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let seq: i64 = row.try_get(0)?;
    let payload: String = row.try_get(1)?;
    #[derive(Deserialize)]
    struct Logged {
        item_id: Option<String>,
        finding_seq: Option<u64>,
        evidence: Evidence,
    }
    let logged: Logged = serde_json::from_str(&payload)
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored attach_evidence: {e}")))?;
    let url = match Uuid::parse_str(&logged.evidence.id) {
        Ok(eid) => evidence_url(id, eid),
        Err(_) => String::new(),
    };
    Ok(Some(Uploaded {
        seq: seq as u64,
        item_id: logged.item_id,
        finding_seq: logged.finding_seq,
        evidence: logged.evidence,
        url,
        replayed: true,
    }))
}

/// Evidence with only its id and kind set (the rest filled with struct update syntax).
pub fn empty_evidence() -> Evidence {
    Evidence {
        id: String::new(),
        kind: EvidenceKind::Photo,
        uri: None,
        sha256: None,
        caption: None,
        media_ts: None,
        size: None,
        media_type: None,
        width: None,
        height: None,
        received_at: None,
        captured_at: None,
        at_micros: None,
        media_ms: None,
        clip_start_ms: None,
        clip_end_ms: None,
        recording_sha256: None,
        duration_ms: None,
        location: None,
        verdict: None,
        pointer: None,
    }
}

/// Where a piece of evidence is served.
pub fn evidence_url(inspection: Uuid, evidence: Uuid) -> String {
    format!("/api/inspections/{inspection}/evidence/{evidence}")
}

/// Submits the server's `attach_evidence` event; the lifecycle codes of a refusal map to 409.
pub async fn submit(
    state: &AppState,
    who: &Principal,
    insp: &crate::inspections::Inspection,
    item_id: &str,
    evidence: Evidence,
    evidence_id: Uuid,
) -> ApiResult<checklist_sync::CommittedEvent> {
    let op = Operation::AttachEvidence {
        item_id: Some(item_id.to_string()),
        finding_seq: None,
        evidence: Box::new(evidence),
    };
    state
        .live
        .sync
        .submit(
            who,
            &Live::room_spec(insp),
            op,
            Some(format!("evidence-{evidence_id}")),
        )
        .await
        .map_err(refused)
}

/// A refusal of the room as an HTTP error: the lifecycle's codes and the uploader's quotas
/// are 409 (`not_live`, `already_finished`, `cancelled`, `quota_exceeded`), anything else is
/// the server's fault (the server made the event).
fn refused(e: OpError) -> ApiError {
    if let Some(e) = crate::error::sync_unavailable(&e) {
        return e;
    }
    use checklist_sync::proto::codes;
    match e.code.as_str() {
        codes::NOT_LIVE => ApiError::Conflict {
            code: "not_live",
            message: e.message,
        },
        codes::ALREADY_FINISHED => ApiError::Conflict {
            code: "already_finished",
            message: e.message,
        },
        codes::CANCELLED => ApiError::Conflict {
            code: "cancelled",
            message: e.message,
        },
        codes::QUOTA_EXCEEDED => ApiError::Conflict {
            code: "quota_exceeded",
            message: e.message,
        },
        codes::UNKNOWN_FINDING => ApiError::Invalid {
            code: "unknown_finding",
            message: e.message,
        },
        _ => ApiError::Internal(anyhow::anyhow!("attach_evidence refused: {e}")),
    }
}

/// Parses a single `bytes=` range against a size; `Err(())` when unsatisfiable.
fn parse_range(h: &str, size: u64) -> Option<Result<Range<u64>, ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        // Several ranges: answer the whole body instead.
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 {
            return Some(Err(()));
        }
        size.saturating_sub(n)..size
    } else {
        let start: u64 = a.parse().ok()?;
        let end = if b.is_empty() {
            size
        } else {
            b.parse::<u64>().ok()?.saturating_add(1).min(size)
        };
        start..end
    };
    if range.start >= size || range.start >= range.end {
        return Some(Err(()));
    }
    Some(Ok(range))
}

/// Serve-query: `download=1` asks for an attachment instead of inline display.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct ServeQuery {
    /// Any value: answer with `Content-Disposition: attachment`.
    pub download: Option<String>,
}

/// The file extension of an evidence media type (`bin` for anything else).
pub fn extension(media_type: &str) -> &'static str {
    match media_type {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "video/webm" => "webm",
        "video/mp4" => "mp4",
        _ => "bin",
    }
}

/// A piece of evidence of the inspection (photo, clip, still), as its event log names it;
/// supports byte ranges.
#[utoipa::path(get, path = "/api/inspections/{id}/evidence/{evidence_id}", tag = "evidence",
    params(("id" = Uuid, Path), ("evidence_id" = Uuid, Path), ServeQuery),
    responses((status = 200, description = "the bytes, with the detected Content-Type"), (status = 206, description = "a byte range"),
              (status = 404, body = crate::error::ErrorBody), (status = 416, description = "range not satisfiable")))]
pub async fn serve(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, evidence_id)): Path<(Uuid, Uuid)>,
    Query(q): Query<ServeQuery>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    load_for(&state.db, &caller, id, Access::Read).await?;
    let snap = state
        .live
        .sync
        .snapshot(id)
        .await
        .map_err(|e| anyhow::anyhow!("snapshot: {e}"))?;
    let wanted = evidence_id.to_string();
    let found = match snap
        .state
        .all_evidence()
        .find(|e| e.evidence.id == wanted && e.evidence.size.is_some())
    {
        Some(entry) => Some(entry.evidence.clone()),
        None => logged_frames(&state.db, id, Some(evidence_id))
            .await?
            .into_iter()
            .map(|(_, e)| e)
            .find(|e| e.size.is_some()),
    };
    let evidence = found.ok_or(ApiError::NotFound("evidence"))?;
    let sha = evidence
        .sha256
        .clone()
        .ok_or(ApiError::NotFound("evidence"))?;
    let media_type = evidence
        .media_type
        .clone()
        .unwrap_or_else(|| "application/octet-stream".into());
    let size = evidence.size.unwrap_or(0);
    let range = match headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, size))
    {
        None => None,
        Some(Ok(r)) => Some(r),
        Some(Err(())) => {
            return Ok((
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
            )
                .into_response())
        }
    };
    let read = state
        .blobs
        .get(&sha, range.clone())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(|| {
            // The log names it but the store lost it: that is an audit finding, not a 404.
            ApiError::Internal(anyhow::anyhow!("evidence blob {sha} is missing"))
        })?;
    let status = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let disposition = format!(
        "{}; filename=\"evidence-{evidence_id}.{}\"",
        if q.download.is_some() {
            "attachment"
        } else {
            "inline"
        },
        extension(&media_type)
    );
    let mut response = Response::new(Body::from_stream(read.stream));
    *response.status_mut() = status;
    let h = response.headers_mut();
    let set = |h: &mut HeaderMap, k: header::HeaderName, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(h, header::CONTENT_TYPE, media_type);
    set(h, header::CONTENT_DISPOSITION, disposition);
    set(
        h,
        header::CONTENT_LENGTH,
        (read.range.end - read.range.start).to_string(),
    );
    set(h, header::ETAG, format!("\"{sha}\""));
    if range.is_some() {
        set(
            h,
            header::CONTENT_RANGE,
            format!(
                "bytes {}-{}/{}",
                read.range.start,
                read.range.end.saturating_sub(1),
                read.total
            ),
        );
    }
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Content-addressed: the bytes behind this id never change.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

/// The stills the inspection's log names (`frame` events), in log order, with their seqs; with
/// `only`, just the one of that evidence id. The fold keeps only each phone's latest, so the
/// log itself is read (serving, `audit verify`). The id is a parsed UUID (hex and hyphens),
/// safe inside the LIKE pattern; each payload's id is checked exactly after.
pub async fn logged_frames(
    db: &sqlx::AnyPool,
    id: Uuid,
    only: Option<Uuid>,
) -> Result<Vec<(u64, Evidence)>, sqlx::Error> {
    use sqlx::Row;
    let pattern = only.map_or_else(|| "%".to_string(), |e| format!("%\"{e}\"%"));
    let rows = sqlx::query(
        "SELECT seq, payload FROM events WHERE inspection_id = $1 AND kind = 'frame' \
         AND payload LIKE $2 ORDER BY seq",
    )
    .bind(id.to_string())
    .bind(pattern)
    .fetch_all(db)
    .await?;
    #[derive(Deserialize)]
    struct Logged {
        evidence: Evidence,
    }
    let wanted = only.map(|e| e.to_string());
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let seq: i64 = row.try_get(0)?;
        let payload: String = row.try_get(1)?;
        // The room wrote it; a payload that does not parse names no still.
        let Ok(l) = serde_json::from_str::<Logged>(&payload) else {
            continue;
        };
        if wanted.as_deref().is_none_or(|w| l.evidence.id == w) {
            out.push((seq as u64, l.evidence));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
        v.extend_from_slice(&w.to_be_bytes());
        v.extend_from_slice(&h.to_be_bytes());
        v.extend_from_slice(&[8, 2, 0, 0, 0, 0, 0, 0, 0]);
        v.extend_from_slice(b"\0\0\0\0IEND\xAE\x42\x60\x82");
        v
    }

    #[test]
    fn sniffs_by_content_and_refuses_cut_files() {
        let p = png(640, 480);
        let info = sniff_image(&p, &p, p.len() as u64).expect("png");
        assert_eq!(
            (info.media_type, info.width, info.height),
            ("image/png", 640, 480)
        );
        let cut = &p[..p.len() - 12];
        let code = |r: ApiResult<ImageInfo>| r.unwrap_err().status_and_code().1;
        assert_eq!(
            code(sniff_image(cut, cut, cut.len() as u64)),
            "image_truncated"
        );
        let gif = b"GIF89a\x01\0\x01\0\0\0\0;";
        assert_eq!(code(sniff_image(gif, gif, 14)), "unsupported_image_type");
        let text = b"<svg xmlns='http://www.w3.org/2000/svg'/>";
        assert_eq!(code(sniff_image(text, text, 40)), "unsupported_image_type");
    }

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok(0..10)));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok(90..100)));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok(90..100)));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok(50..100)));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None);
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
