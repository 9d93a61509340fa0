//! On-site inspections from the inspector's phone (docs/protocol.md, "On-site queue").
//!
//! The phone page (`/onsite/#<id>`) works offline: it queues what the inspector does (results,
//! comments, findings, positions, start and finish) in IndexedDB, each with an op id made on
//! the device and the device's time, and sends the queue when the network is back:
//! `POST /api/inspections/{id}/queue` feeds the ops one by one, in the device's order, through
//! the live room's sequencer ([`checklist_sync::SyncHub::submit_from_device`]): the same
//! checks, sequence numbers, idempotence and hash chain as a socket's ops, no second log. An op
//! id already committed answers its committed seq and time (`replayed`), so a queue sent twice
//! changes nothing. Photos go through the evidence upload with their op id.
//!
//! `GET /api/inspections/{id}/track` is the movement track: every position the inspector's
//! devices logged, with the track's summary ([`TrackSummary`], also printed by the act).

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use checklist_sync::geo::distance_m;
use checklist_sync::proto::codes;
use checklist_sync::state::{Event, EventBody};
use checklist_sync::{OpError, Operation, Role};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::Row;
use uuid::Uuid;

use crate::auth::Caller;
use crate::domain::Mode;
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::inspections::{load_for, Access};
use crate::live::{self, Live};
use crate::AppState;

/// Most ops one queue request may carry (the phone sends a longer queue in several).
pub const MAX_BATCH: usize = 100;
/// Most positions one participant may log in one inspection by default (a day's walk at one
/// sample per 10 s; `[live] track_points_per_participant`); more are refused with
/// `quota_exceeded` (`limit`: `track_points`).
pub const MAX_TRACK_POINTS: i64 = 10_000;
/// The op kinds a device may queue. Evidence goes through the upload; the act and the
/// recording's events are the server's.
const QUEUEABLE: &[&str] = &[
    "set_result",
    "comment",
    "focus",
    "finding",
    "location",
    "location_unavailable",
    "start",
    "finish",
];

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/inspections/{id}/queue", post(queue))
        .route("/api/inspections/{id}/track", get(track))
}

/// A queue the device filled offline, in the order the inspector made the ops.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueRequest {
    /// At most [`MAX_BATCH`] ops.
    #[schema(value_type = Vec<Object>)]
    pub ops: Vec<Value>,
    /// The device's clock when it sent this request, ms since the epoch. The receipt minus it
    /// is the device clock's offset, measured once for the batch: each queued position is
    /// scored at its device time shifted by it (docs/protocol.md, "On-site queue"). Absent:
    /// positions are scored at their receipt, as a live socket's.
    #[serde(default)]
    pub sent_at: Option<f64>,
}

/// One queued op's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueResult {
    /// The device's op id (null when the entry had none).
    pub op_id: Option<String>,
    /// `committed` (now or before: see `replayed`) or `refused`.
    pub status: String,
    /// The event's seq, when committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<u64>,
    /// The event's server time, µs, when committed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_ts: Option<i64>,
    /// True when the op id had been committed before: nothing was appended.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub replayed: bool,
    /// Why it was refused: `{code, message, field?, limit?}` (the protocol's codes).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
}

/// What a queue request answers.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct QueueResponse {
    /// One answer per op, in the request's order.
    pub results: Vec<QueueResult>,
}

/// One entry of the queue: its op id (a UUID the device made), the device's time and the op.
struct Entry {
    op_id: String,
    device_time: i64,
    op: Operation,
}

fn parse_entry(v: &Value) -> Result<Entry, OpError> {
    let obj = v
        .as_object()
        .ok_or_else(|| OpError::new(codes::BAD_MESSAGE, "a queued op must be an object"))?;
    let op_id = obj
        .get("op_id")
        .and_then(Value::as_str)
        .filter(|s| Uuid::parse_str(s).is_ok())
        .ok_or_else(|| OpError::invalid("op_id", "op_id must be a UUID made on the device"))?
        .to_string();
    let device_time = obj
        .get("device_time")
        .and_then(Value::as_f64)
        .filter(|t| t.is_finite() && (0.0..=1e15).contains(t))
        .ok_or_else(|| OpError::invalid("device_time", "device_time must be ms since the epoch"))?
        .floor() as i64;
    let raw = obj
        .get("op")
        .ok_or_else(|| OpError::new(codes::BAD_MESSAGE, "op is required"))?;
    let kind = raw.get("kind").and_then(Value::as_str).unwrap_or_default();
    if !kind.is_empty()
        && checklist_sync::proto::OP_KINDS.contains(&kind)
        && !QUEUEABLE.contains(&kind)
    {
        return Err(OpError::new(
            "not_queueable",
            format!("{kind} is not queued: evidence is uploaded, the act is the server's"),
        ));
    }
    let op = Operation::decode(raw)?;
    Ok(Entry {
        op_id,
        device_time,
        op,
    })
}

fn refused(op_id: Option<String>, e: &OpError) -> QueueResult {
    let mut wire = e.to_wire(None);
    if let Value::Object(m) = &mut wire {
        m.remove("type");
    }
    QueueResult {
        op_id,
        status: "refused".into(),
        seq: None,
        server_ts: None,
        replayed: false,
        error: Some(wire),
    }
}

/// How many positions this participant has logged in this inspection (read from the log).
async fn track_points(state: &AppState, id: Uuid, pid: Uuid) -> ApiResult<i64> {
    let row = sqlx::query(
        "SELECT COUNT(*) FROM events WHERE inspection_id = $1 AND participant_id = $2 AND kind = 'location'",
    )
    .bind(id.to_string())
    .bind(pid.to_string())
    .fetch_one(&state.db)
    .await?;
    Ok(row.try_get::<i64, _>(0)?)
}

/// Sends a device's offline queue: each op is sequenced, checked and committed in order, like
/// a socket's, with the device's time beside the server's; answers one result per op.
#[utoipa::path(post, path = "/api/inspections/{id}/queue", tag = "live",
    params(("id" = Uuid, Path)), request_body = QueueRequest,
    responses((status = 200, body = QueueResponse),
              (status = 400, description = "batch_too_large, invalid_sent_at, bad_request", body = crate::error::ErrorBody),
              (status = 403, description = "forbidden: not the inspection's inspector", body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody),
              (status = 409, description = "not_on_site: a remote inspection", body = crate::error::ErrorBody)))]
pub async fn queue(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<QueueRequest>,
) -> ApiResult<Json<QueueResponse>> {
    let (insp, access) = load_for(&state.db, &caller, id, Access::Manage).await?;
    caller.staff()?;
    if insp.mode != Mode::OnSite {
        return Err(ApiError::Conflict {
            code: "not_on_site",
            message: "the offline queue is for on-site inspections".into(),
        });
    }
    if req.ops.len() > MAX_BATCH {
        return Err(ApiError::Invalid {
            code: "batch_too_large",
            message: format!("at most {MAX_BATCH} ops per request"),
        });
    }
    let received_ms = checklist_sync::now_micros().div_euclid(1000);
    let clock_offset_ms = match req.sent_at {
        None => None,
        Some(t) if t.is_finite() && (0.0..=1e15).contains(&t) => {
            Some(received_ms.saturating_sub(t.floor() as i64))
        }
        Some(_) => {
            return Err(ApiError::Invalid {
                code: "invalid_sent_at",
                message: "sent_at must be ms since the epoch".into(),
            })
        }
    };
    let device = live::device::device_kind(&headers);
    let pid = live::participants::register(&state.db, &caller, &insp, device).await?;
    let who = live::principal(&caller, &insp, access, pid, device);
    debug_assert_eq!(who.role, Role::Inspector);
    let spec = Live::room_spec(&insp);
    let mut points = track_points(&state, id, pid).await?;
    let mut results = Vec::with_capacity(req.ops.len());
    for raw in &req.ops {
        let entry = match parse_entry(raw) {
            Ok(e) => e,
            Err(e) => {
                let op_id = raw.get("op_id").and_then(Value::as_str).map(String::from);
                results.push(refused(op_id, &e));
                continue;
            }
        };
        let is_point = matches!(entry.op, Operation::Location(_));
        if is_point && points >= state.config.live.track_points_per_participant {
            let mut e = OpError::new(
                codes::QUOTA_EXCEEDED,
                "too many positions in this inspection",
            );
            e.limit = Some("track_points".into());
            results.push(refused(Some(entry.op_id), &e));
            continue;
        }
        let answer = state
            .live
            .sync
            .submit_from_device(
                &who,
                &spec,
                entry.op,
                Some(entry.op_id.clone()),
                Some(entry.device_time),
                clock_offset_ms,
            )
            .await;
        results.push(match answer {
            Ok(ev) => {
                points += i64::from(is_point);
                QueueResult {
                    op_id: Some(entry.op_id),
                    status: "committed".into(),
                    seq: Some(ev.seq),
                    server_ts: Some(ev.server_ts_micros),
                    replayed: false,
                    error: None,
                }
            }
            Err(e) if e.code == codes::DUPLICATE_OP_ID => QueueResult {
                op_id: Some(entry.op_id),
                status: "committed".into(),
                seq: e.original.map(|o| o.0),
                server_ts: e.original.map(|o| o.1),
                replayed: true,
                error: None,
            },
            Err(e) => refused(Some(entry.op_id), &e),
        });
    }
    Ok(Json(QueueResponse { results }))
}

/// One logged position.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrackPoint {
    /// Seq of the `location` event.
    pub seq: u64,
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Accuracy, metres.
    pub accuracy: f64,
    /// Device time of the fix, ms (a claim).
    pub device_ts: i64,
    /// Server receipt, µs.
    pub server_ts: i64,
    /// True for a position the phone queued offline: its time is the device's claim, and it
    /// was scored at `device_ts` shifted by the batch's `clock_offset_ms`, not at receipt.
    pub device_claimed: bool,
    /// The batch's measured device-clock offset (receipt minus the device's send time), ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset_ms: Option<i64>,
}

/// What the act and the reviewer say about a track.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TrackSummary {
    /// Number of positions.
    pub points: usize,
    /// Length of the polyline, metres.
    pub length_m: f64,
    /// Device time of the first and the last fix, ms.
    pub first_ts: Option<i64>,
    /// Device time of the last fix, ms.
    pub last_ts: Option<i64>,
    /// Nearest a fix came to the site, metres (no site: absent).
    pub min_site_distance_m: Option<f64>,
    /// Farthest a fix was from the site, metres.
    pub max_site_distance_m: Option<f64>,
}

/// The inspector's positions in log order: every `location` event of a participant that never
/// joined in another role (a queued position may come before any join: the queue registers
/// the inspector without a socket).
pub fn track_of(events: &[Event]) -> Vec<TrackPoint> {
    let others: std::collections::HashSet<Uuid> = events
        .iter()
        .filter_map(|e| match &e.body {
            EventBody::Join(j) if j.role != Role::Inspector => Some(e.participant_id),
            _ => None,
        })
        .collect();
    events
        .iter()
        .filter(|e| !others.contains(&e.participant_id))
        .filter_map(|e| match &e.body {
            EventBody::Op(Operation::Location(l)) => Some(TrackPoint {
                seq: e.seq,
                lat: l.lat,
                lon: l.lon,
                accuracy: l.accuracy,
                device_ts: l.device_ts,
                server_ts: e.server_ts,
                device_claimed: e.device_time.is_some(),
                clock_offset_ms: e.clock_offset_ms,
            }),
            _ => None,
        })
        .collect()
}

/// The summary of a track against the site (a pure function).
pub fn summarize(points: &[TrackPoint], site: Option<(f64, f64)>) -> TrackSummary {
    let length_m = points
        .windows(2)
        .map(|w| distance_m((w[0].lat, w[0].lon), (w[1].lat, w[1].lon)))
        .sum();
    let dists: Vec<f64> = site
        .map(|s| {
            points
                .iter()
                .map(|p| distance_m(s, (p.lat, p.lon)))
                .collect()
        })
        .unwrap_or_default();
    TrackSummary {
        points: points.len(),
        length_m,
        first_ts: points.iter().map(|p| p.device_ts).min(),
        last_ts: points.iter().map(|p| p.device_ts).max(),
        min_site_distance_m: dists.iter().copied().reduce(f64::min),
        max_site_distance_m: dists.iter().copied().reduce(f64::max),
    }
}

/// The movement track and the site.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TrackResponse {
    /// The registered site, `{lat, lon}`, if known.
    #[schema(value_type = Option<Object>)]
    pub site: Option<Value>,
    /// The positions, in log order.
    pub points: Vec<TrackPoint>,
    /// Points, length, time span, distance from the site.
    pub summary: TrackSummary,
    /// The map tiles to draw under the track, when an administrator configured a tile server
    /// (`[review] tile_url`): `{url, attribution}`; absent: a plain canvas.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub tiles: Option<Value>,
}

/// The inspector's movement track from the event log, with the site and a summary.
#[utoipa::path(get, path = "/api/inspections/{id}/track", tag = "recordings",
    params(("id" = Uuid, Path)),
    responses((status = 200, body = TrackResponse), (status = 404, body = crate::error::ErrorBody)))]
pub async fn track(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<TrackResponse>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    let events = state
        .live
        .sync
        .read_events(id)
        .await
        .map_err(|e| anyhow::anyhow!("events: {e}"))?;
    let points = track_of(&events);
    let site = insp.site().map(|c| (c.lat, c.lon));
    Ok(Json(TrackResponse {
        site: site.map(|(lat, lon)| serde_json::json!({"lat": lat, "lon": lon})),
        summary: summarize(&points, site),
        points,
        tiles: state.config.review.tile_url.as_ref().map(|url| {
            serde_json::json!({"url": url, "attribution": state.config.review.tile_attribution})
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(seq: u64, lat: f64, lon: f64, t: i64) -> TrackPoint {
        TrackPoint {
            seq,
            lat,
            lon,
            accuracy: 5.0,
            device_ts: t,
            server_ts: t * 1000,
            device_claimed: false,
            clock_offset_ms: None,
        }
    }

    #[test]
    fn a_track_is_summarized_against_its_site() {
        let site = (55.7577, 37.6130);
        // About 111 m per 0.001° of latitude.
        let pts = [
            point(1, 55.7577, 37.6130, 1_000),
            point(2, 55.7587, 37.6130, 11_000),
            point(3, 55.7597, 37.6130, 21_000),
        ];
        let s = summarize(&pts, Some(site));
        assert_eq!(s.points, 3);
        assert!((s.length_m - 222.4).abs() < 1.0, "{s:?}");
        assert_eq!((s.first_ts, s.last_ts), (Some(1_000), Some(21_000)));
        assert!(s.min_site_distance_m.unwrap_or(1.0) < 0.01, "{s:?}");
        assert!(
            (s.max_site_distance_m.unwrap_or(0.0) - 222.4).abs() < 1.0,
            "{s:?}"
        );
        let empty = summarize(&[], Some(site));
        assert_eq!(
            (empty.points, empty.length_m, empty.first_ts),
            (0, 0.0, None)
        );
        assert_eq!(summarize(&pts, None).max_site_distance_m, None);
    }
}
