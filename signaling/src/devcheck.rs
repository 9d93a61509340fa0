//! The device check before an inspection (issue 15, item 4; page `/check/`): the business's
//! phone tries its camera, microphone, location and a WebRTC connection to the server's media
//! peer, and the result is kept here so the inspector sees it next to the participant before
//! the start.
//!
//! - `POST …/device-check/rtc`: a probe connection (`MediaHub::probe`), outside the room: no
//!   recording, no forwarding, nothing a live inspection sees.
//! - `PUT …/device-check`: what the page found; the server judges the location samples with
//!   the live room's `trust::Assessor` and names the problems (`problems`, stable codes the
//!   page says in words), then keeps only the latest result per participant.
//! - `GET …/device-checks`: the staff's view of them.

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use checklist_sync::geo::{distance_m, Geolocation, RawGeolocation};
use checklist_sync::trust::{Assessor, ClientContext, Signal, TrustConfig, TrustLevel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{Caller, GuestVia};
use crate::db::{now_micros, RowExt};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::inspections::{load_for, Access, Inspection};
use crate::AppState;

/// Location samples one check may send, at most.
pub const MAX_SAMPLES: usize = 10;
/// Results listed for one inspection, at most (one per invitation or representative link).
const MAX_LISTED: i64 = 100;
/// A round trip above this makes the call laggy: the inspector's questions arrive late.
pub const SLOW_RTT_MS: f64 = 400.0;
/// Below this upload rate the inspector sees a blurred, stuttering picture.
pub const LOW_UPLOAD_KBPS: f64 = 300.0;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/inspections/{id}/device-check/rtc",
            get(probe_config).post(probe),
        )
        .route(
            "/api/inspections/{id}/device-check",
            axum::routing::put(submit),
        )
        .route("/api/inspections/{id}/device-checks", get(list))
}

/// A permission as the page found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    /// Allowed, and the device works.
    Granted,
    /// The user or the browser refused it.
    Denied,
    /// No such device, or the browser has no such API.
    Unavailable,
    /// It was allowed but failed (device busy, timeout).
    Failed,
}

/// The WebRTC part of a check, as the page measured it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RtcReport {
    /// Whether the connection to the server's media peer reached `connected`.
    pub connected: bool,
    /// Median data-channel round trip, ms.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// The selected candidate pair's `currentRoundTripTime`, ms.
    #[serde(default)]
    pub ice_rtt_ms: Option<f64>,
    /// Upload rate by the browser's `outbound-rtp` `bytesSent`, kbit/s.
    #[serde(default)]
    pub upload_kbps: Option<f64>,
    /// Upload rate by the bytes the server's probe received, kbit/s.
    #[serde(default)]
    pub server_kbps: Option<f64>,
    /// Seconds the upload was measured over.
    #[serde(default)]
    pub seconds: Option<f64>,
    /// Why the measurement stopped short, if it did.
    #[serde(default)]
    pub failure: Option<RtcFailure>,
    /// The browser's `iceConnectionState` when it did.
    #[serde(default)]
    pub ice_state: Option<IceState>,
}

/// Why a check's connection measurement stopped short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RtcFailure {
    /// The server refused the probe (an API error: busy, forbidden).
    Refused,
    /// The data channel did not open in time.
    NoChannel,
    /// The connection closed during the measurement.
    Closed,
    /// The browser threw (e.g. it could not apply the answer).
    Error,
}

/// `RTCIceConnectionState`, as the browser names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IceState {
    /// Not started.
    New,
    /// Checking pairs, none working yet.
    Checking,
    /// A pair works.
    Connected,
    /// Checking done, a pair works.
    Completed,
    /// No pair works.
    Failed,
    /// The working pair stopped answering.
    Disconnected,
    /// Closed.
    Closed,
}

/// What the page found.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckReport {
    /// Camera permission.
    pub camera: Permission,
    /// Microphone permission.
    pub microphone: Permission,
    /// Whether a rear camera (`facingMode: environment`) exists; `None`: not known (the
    /// camera was not allowed).
    #[serde(default)]
    pub rear_camera: Option<bool>,
    /// Location permission.
    pub location: Permission,
    /// Position samples, oldest first (at most 10).
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub samples: Vec<RawGeolocation>,
    /// What the page tells the trust assessor about itself, as the live room's `hello` does.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub client: Option<ClientContext>,
    /// The WebRTC connection; `None` when it could not be tried.
    #[serde(default)]
    pub rtc: Option<RtcReport>,
    /// The browser's name, e.g. `Chrome`, `Safari`, `YaBrowser`.
    pub browser: String,
    /// Its version.
    pub browser_version: String,
}

/// The location as the server judged it.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LocationReading {
    /// The last sample.
    pub lat: f64,
    /// The last sample.
    pub lon: f64,
    /// Its accuracy, m.
    pub accuracy: f64,
    /// The trust level of the samples.
    #[schema(value_type = String)]
    pub level: TrustLevel,
    /// The signals that decided it.
    #[schema(value_type = Vec<Object>)]
    pub signals: Vec<Signal>,
    /// Distance to the site, m, when the site is known.
    pub distance_m: Option<f64>,
}

/// A stored check.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeviceCheck {
    /// Who checked: `invitation:<id>` or `business:<link id>`.
    pub subject: String,
    /// The invitation's or the representative's label.
    pub label: String,
    /// When (µs UTC).
    pub checked_at: i64,
    /// Camera permission.
    pub camera: Permission,
    /// Microphone permission.
    pub microphone: Permission,
    /// Rear camera present.
    pub rear_camera: Option<bool>,
    /// Location permission.
    pub location: Permission,
    /// The server's trust reading of the location.
    pub reading: Option<LocationReading>,
    /// The WebRTC measurement.
    pub rtc: Option<RtcReport>,
    /// Browser name.
    pub browser: String,
    /// Browser version.
    pub browser_version: String,
    /// What to fix, as stable codes, most important first (empty: ready).
    pub problems: Vec<String>,
}

/// The checks of an inspection.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeviceCheckList {
    /// The latest check of each participant, newest first.
    pub checks: Vec<DeviceCheck>,
}

/// A probe's offer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProbeOffer {
    /// `{"type":"offer","sdp":"…"}`, with the candidates in it.
    #[schema(value_type = Object)]
    pub sdp: serde_json::Value,
}

/// What the page needs before its offer: the same ICE servers as the live room.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeConfig {
    /// ICE servers for the browser's connection (`RTCIceServer`s).
    #[schema(value_type = Vec<Object>)]
    pub ice_servers: Vec<media_recorder::IceServer>,
    /// Seconds a probe stays up.
    pub lifetime_secs: u64,
}

/// The probe's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProbeAnswer {
    /// `{"type":"answer","sdp":"…"}`, with the server's candidates in it.
    #[schema(value_type = Object)]
    pub sdp: serde_json::Value,
}

/// Who of the business checks: the invitation's guest (before the end) or the organisation's
/// representative. Staff do not check a business's device.
fn subject(caller: &Caller, insp: &Inspection) -> ApiResult<(String, String)> {
    match caller {
        Caller::Guest(g) if g.via == GuestVia::Invitation && !insp.status.is_over() => {
            Ok((format!("invitation:{}", g.invitation_id), g.label.clone()))
        }
        Caller::Business(b) if !insp.status.is_over() => {
            Ok((format!("business:{}", b.link_id), b.label.clone()))
        }
        Caller::Guest(_) | Caller::Business(_) => Err(ApiError::Conflict {
            code: "inspection_over",
            message: "the inspection is over; there is nothing to check for".into(),
        }),
        Caller::Staff(_) => Err(ApiError::Forbidden),
    }
}

fn invalid(code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError::Invalid {
        code,
        message: message.into(),
    }
}

/// The ICE servers and the probe's lifetime, for the business's check page.
#[utoipa::path(get, path = "/api/inspections/{id}/device-check/rtc", tag = "device-check", params(("id" = Uuid, Path)),
    responses((status = 200, body = ProbeConfig), (status = 403, body = crate::error::ErrorBody)))]
pub async fn probe_config(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<ProbeConfig>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    subject(&caller, &insp)?;
    Ok(Json(ProbeConfig {
        ice_servers: state.live.media.ice_servers().to_vec(),
        lifetime_secs: media_recorder::PROBE_LIFETIME.as_secs(),
    }))
}

/// Opens a probe connection to the server's media peer for the check's WebRTC measurement.
#[utoipa::path(post, path = "/api/inspections/{id}/device-check/rtc", tag = "device-check", params(("id" = Uuid, Path)),
    request_body = ProbeOffer,
    responses((status = 200, body = ProbeAnswer), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 429, body = crate::error::ErrorBody)))]
pub async fn probe(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<ProbeOffer>,
) -> ApiResult<Json<ProbeAnswer>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    subject(&caller, &insp)?;
    let sdp = state.live.media.probe(req.sdp).await.map_err(|e| match e {
        media_recorder::MediaError::Busy => ApiError::TooManyAttempts {
            retry_after_secs: 5,
        },
        media_recorder::MediaError::Internal(m) => ApiError::Internal(anyhow::anyhow!(m)),
        e => invalid(e.code(), e.to_string()),
    })?;
    Ok(Json(ProbeAnswer { sdp }))
}

/// The server's reading of the samples: the live room's assessor, fed in order; each sample
/// placed before the arrival by its device-clock age (at most a minute).
fn read_location(
    samples: &[RawGeolocation],
    client: ClientContext,
    site: Option<(f64, f64)>,
    now: i64,
) -> ApiResult<Option<LocationReading>> {
    let mut assessor = Assessor::new(TrustConfig::default(), site, client);
    let last_ts = samples.iter().map(|s| s.device_ts).max().unwrap_or(0);
    let mut out = None;
    for raw in samples {
        let age_us = last_ts.saturating_sub(raw.device_ts).clamp(0, 60_000) * 1000;
        let sample = Geolocation::parse(raw, now).map_err(|e| ApiError::Invalid {
            code: e.code(),
            message: e.to_string(),
        })?;
        let v = assessor.on_sample(&sample, now - age_us);
        out = Some(LocationReading {
            lat: sample.lat(),
            lon: sample.lon(),
            accuracy: sample.accuracy(),
            level: v.level,
            signals: v.deciding().cloned().collect(),
            distance_m: site.map(|s| distance_m(s, (sample.lat(), sample.lon())).round()),
        });
    }
    Ok(out)
}

/// What to fix, most important first: a pure function of the check (the page words them).
pub fn problems(c: &DeviceCheck) -> Vec<String> {
    let mut p = Vec::new();
    let perm = |p: &mut Vec<String>, what: &str, v: Permission| match v {
        Permission::Granted => {}
        Permission::Denied => p.push(format!("{what}_denied")),
        Permission::Unavailable => p.push(format!("{what}_missing")),
        Permission::Failed => p.push(format!("{what}_failed")),
    };
    perm(&mut p, "camera", c.camera);
    if c.camera == Permission::Granted && c.rear_camera == Some(false) {
        p.push("rear_camera_missing".into());
    }
    perm(&mut p, "microphone", c.microphone);
    perm(&mut p, "location", c.location);
    if c.location == Permission::Granted {
        match c.reading.as_ref().map(|r| r.level) {
            None => p.push("location_failed".into()),
            Some(TrustLevel::Spoofed) => p.push("location_spoofed".into()),
            Some(TrustLevel::Suspicious) => p.push("location_suspicious".into()),
            Some(TrustLevel::Trusted) => {}
        }
    }
    match &c.rtc {
        Some(r) if r.connected => {
            if r.rtt_ms.or(r.ice_rtt_ms).is_some_and(|ms| ms > SLOW_RTT_MS) {
                p.push("connection_slow".into());
            }
            let up = r.server_kbps.or(r.upload_kbps);
            if c.camera == Permission::Granted && up.is_some_and(|k| k < LOW_UPLOAD_KBPS) {
                p.push("upload_low".into());
            }
        }
        _ => p.push("connection_failed".into()),
    }
    p
}

fn finite(v: Option<f64>, field: &'static str, max: f64) -> ApiResult<Option<f64>> {
    match v {
        Some(x) if !x.is_finite() || x < 0.0 || x > max => Err(invalid(
            "validation_failed",
            format!("{field} out of range"),
        )),
        v => Ok(v),
    }
}

/// Keeps the business's device check (the latest per participant) and answers what the server
/// found: the location's trust reading and the problems to fix.
#[utoipa::path(put, path = "/api/inspections/{id}/device-check", tag = "device-check", params(("id" = Uuid, Path)),
    request_body = CheckReport,
    responses((status = 200, body = DeviceCheck), (status = 400, body = crate::error::ErrorBody),
        (status = 403, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn submit(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<CheckReport>,
) -> ApiResult<Json<DeviceCheck>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    let (subject, label) = subject(&caller, &insp)?;
    if req.samples.len() > MAX_SAMPLES {
        return Err(invalid(
            "too_many_samples",
            format!("at most {MAX_SAMPLES} location samples"),
        ));
    }
    let short = |s: &str, n: usize| s.chars().count() <= n;
    if !short(&req.browser, 40) || !short(&req.browser_version, 40) {
        return Err(invalid(
            "validation_failed",
            "browser name or version too long",
        ));
    }
    let mut client = req.client.clone().unwrap_or_default();
    // Bounded like the live room's hello: long strings say nothing more.
    client.timezone = client.timezone.filter(|t| t.len() <= 64);
    client.user_agent = client.user_agent.map(|u| u.chars().take(400).collect());
    client.platform = client.platform.map(|u| u.chars().take(64).collect());
    client.hints.truncate(8);
    client.hints.retain(|h| h.len() <= 40);
    let rtc = match req.rtc {
        Some(r) => Some(RtcReport {
            rtt_ms: finite(r.rtt_ms, "rtc.rtt_ms", 60_000.0)?,
            ice_rtt_ms: finite(r.ice_rtt_ms, "rtc.ice_rtt_ms", 60_000.0)?,
            upload_kbps: finite(r.upload_kbps, "rtc.upload_kbps", 1_000_000.0)?,
            server_kbps: finite(r.server_kbps, "rtc.server_kbps", 1_000_000.0)?,
            seconds: finite(r.seconds, "rtc.seconds", 120.0)?,
            connected: r.connected,
            failure: r.failure,
            ice_state: r.ice_state,
        }),
        None => None,
    };
    let now = now_micros();
    let site = insp.business.lat.zip(insp.business.lon);
    let reading = if req.location == Permission::Granted {
        read_location(&req.samples, client, site, now)?
    } else {
        None
    };
    let mut check = DeviceCheck {
        subject,
        label,
        checked_at: now,
        camera: req.camera,
        microphone: req.microphone,
        rear_camera: req.rear_camera,
        location: req.location,
        reading,
        rtc,
        browser: req.browser,
        browser_version: req.browser_version,
        problems: Vec::new(),
    };
    check.problems = problems(&check);
    // A plain struct of numbers, strings and enums always serializes.
    let json = serde_json::to_string(&check).map_err(|e| ApiError::Internal(e.into()))?;
    sqlx::query(
        "INSERT INTO device_checks (inspection_id, subject, label, result, checked_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT (inspection_id, subject) DO UPDATE SET \
         label = excluded.label, result = excluded.result, checked_at = excluded.checked_at",
    )
    .bind(insp.id.to_string())
    .bind(&check.subject)
    .bind(&check.label)
    .bind(json)
    .bind(now)
    .execute(&state.db)
    .await?;
    Ok(Json(check))
}

/// The latest device check of each participant of the business (staff with access).
#[utoipa::path(get, path = "/api/inspections/{id}/device-checks", tag = "device-check", params(("id" = Uuid, Path)),
    responses((status = 200, body = DeviceCheckList), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<Json<DeviceCheckList>> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
    caller.staff()?;
    let rows = sqlx::query(
        "SELECT result FROM device_checks WHERE inspection_id = $1 \
         ORDER BY checked_at DESC LIMIT $2",
    )
    .bind(insp.id.to_string())
    .bind(MAX_LISTED)
    .fetch_all(&state.db)
    .await?;
    let checks = rows
        .iter()
        .map(|r| {
            let text: String = r.col(0)?;
            serde_json::from_str(&text)
                .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored device check: {e}")))
        })
        .collect::<ApiResult<_>>()?;
    Ok(Json(DeviceCheckList { checks }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> DeviceCheck {
        DeviceCheck {
            subject: "invitation:x".into(),
            label: "x".into(),
            checked_at: 0,
            camera: Permission::Granted,
            microphone: Permission::Granted,
            rear_camera: Some(true),
            location: Permission::Granted,
            reading: Some(LocationReading {
                lat: 55.75,
                lon: 37.61,
                accuracy: 10.0,
                level: TrustLevel::Trusted,
                signals: vec![],
                distance_m: Some(5.0),
            }),
            rtc: Some(RtcReport {
                connected: true,
                rtt_ms: Some(20.0),
                ice_rtt_ms: Some(10.0),
                upload_kbps: Some(1500.0),
                server_kbps: Some(1400.0),
                seconds: Some(4.0),
                failure: None,
                ice_state: None,
            }),
            browser: "Chrome".into(),
            browser_version: "156".into(),
            problems: vec![],
        }
    }

    #[test]
    fn a_working_phone_has_nothing_to_fix() {
        assert!(problems(&ready()).is_empty());
    }

    #[test]
    fn each_failure_names_what_to_fix_in_order() {
        let mut c = ready();
        c.camera = Permission::Denied;
        c.microphone = Permission::Denied;
        c.location = Permission::Denied;
        c.reading = None;
        c.rtc = None;
        assert_eq!(
            problems(&c),
            [
                "camera_denied",
                "microphone_denied",
                "location_denied",
                "connection_failed"
            ]
        );
        let mut c = ready();
        c.rear_camera = Some(false);
        c.rtc.as_mut().map(|r| {
            r.rtt_ms = Some(800.0);
            r.server_kbps = Some(100.0);
        });
        c.reading.as_mut().map(|r| r.level = TrustLevel::Spoofed);
        assert_eq!(
            problems(&c),
            [
                "rear_camera_missing",
                "location_spoofed",
                "connection_slow",
                "upload_low"
            ]
        );
    }
}
