//! Guiding the business's camera from the console (issue 25): what the phone's camera can do
//! (`camera_caps`, reported by the phone), the inspector's commands (`camera`: switch, torch,
//! zoom, focus at a point) and the pointer on the phone's preview (`pointer`).
//!
//! All three are events of the log, so the reviewer's pointer overlay and the console's
//! controls are projections of it ([`CameraState`]). The room checks a command against the
//! phone's last report (sequenced head), so the inspector can ask only for what the phone's
//! track said it supports, within its ranges; a separate token bucket per participant bounds
//! how many of these events one participant adds.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::proto::OpError;
use crate::ratelimit::{RateLimiter, Verdict};
use crate::Role;

/// Stable error codes of the camera's operations (docs/protocol.md).
pub mod codes {
    /// `camera.capability` is not one of `facing`, `torch`, `zoom`, `focus`.
    pub const UNKNOWN_CAPABILITY: &str = "camera_unknown_capability";
    /// The value is of the wrong type or outside the phone's reported range.
    pub const OUT_OF_RANGE: &str = "camera_value_out_of_range";
    /// The phone did not report this capability (or no camera at all).
    pub const NOT_SUPPORTED: &str = "camera_not_supported";
    /// More camera commands, pointers or reports than the camera's own rate.
    pub const RATE_LIMITED: &str = "camera_rate_limited";
}

/// Camera commands, pointers and reports per second per participant (bursts of
/// [`BURST`]): a person clicking, a phone's slider after debouncing.
pub const RATE_PER_SEC: f64 = 4.0;
/// Burst of camera events per participant.
pub const BURST: f64 = 8.0;
/// Pointers kept in the state for photos to refer to (the latest ones).
pub const KEPT_POINTERS: usize = 8;
/// Longest pointer text, in characters.
pub const MAX_POINTER_TEXT: usize = 200;
/// How long the phone shows a pointer, ms (the reviewer's overlay shows it as long).
pub const POINTER_SHOW_MS: u64 = 6000;
/// Largest zoom factor a phone may report (phones report up to 10–100).
const MAX_ZOOM: f64 = 1000.0;

/// Which camera: the one on the back or the selfie camera (`facingMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Facing {
    /// The rear camera.
    Environment,
    /// The front camera.
    User,
}

/// A point of the video frame, each coordinate 0..1 from the top left corner.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// 0 = left edge, 1 = right edge of the frame.
    pub x: f64,
    /// 0 = top edge, 1 = bottom edge of the frame.
    pub y: f64,
}

impl Point {
    fn check(&self, field: &str) -> Result<(), OpError> {
        for v in [self.x, self.y] {
            if !v.is_finite() || !(0.0..=1.0).contains(&v) {
                return Err(out_of_range(field, "coordinates are 0..1 of the frame"));
            }
        }
        Ok(())
    }
}

/// The zoom range the track reports (`getCapabilities().zoom`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ZoomRange {
    /// Smallest factor.
    pub min: f64,
    /// Largest factor.
    pub max: f64,
    /// Step, if the track reports one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<f64>,
}

/// What the phone's camera can do, as its browser reports it. Absent = not supported.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraCaps {
    /// The cameras it can switch between (two or more video inputs).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub facing: Vec<Facing>,
    /// The track has a torch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub torch: bool,
    /// The track zooms within this range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom: Option<ZoomRange>,
    /// The track focuses at a point (`pointsOfInterest`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub focus: bool,
}

/// The camera's current settings (the phone's report, or the last command after it).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraSettings {
    /// Which camera is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facing: Option<Facing>,
    /// Torch on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub torch: Option<bool>,
    /// Zoom factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zoom: Option<f64>,
}

/// An inspector's command to the phone's camera: one capability and its value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "capability", content = "value", rename_all = "snake_case")]
pub enum CameraCommand {
    /// Switch to this camera.
    Facing(Facing),
    /// Torch on or off.
    Torch(bool),
    /// Zoom to this factor.
    Zoom(f64),
    /// Focus at this point of the frame.
    Focus(Point),
}

/// Every capability a command may name.
pub const CAPABILITIES: &[&str] = &["facing", "torch", "zoom", "focus"];

fn out_of_range(field: &str, message: &str) -> OpError {
    let mut e = OpError::new(codes::OUT_OF_RANGE, message);
    e.field = Some(field.to_string());
    e
}

impl CameraCommand {
    /// Decodes the fields of a `camera` op (`capability`, `value`) with the camera's codes:
    /// an unknown capability and a value of the wrong type or range are refused here.
    pub fn decode(obj: &serde_json::Map<String, Value>) -> Result<Self, OpError> {
        let Some(cap) = obj.get("capability").and_then(Value::as_str) else {
            return Err(OpError::new(
                crate::proto::codes::BAD_MESSAGE,
                "camera.capability must be a string",
            ));
        };
        if !CAPABILITIES.contains(&cap) {
            let mut e = OpError::new(
                codes::UNKNOWN_CAPABILITY,
                format!("unknown camera capability {cap:?}"),
            );
            e.field = Some("capability".into());
            return Err(e);
        }
        let value = obj.get("value").cloned().unwrap_or(Value::Null);
        let cmd: CameraCommand =
            serde_json::from_value(serde_json::json!({"capability": cap, "value": value}))
                .map_err(|e| out_of_range("value", &format!("camera {cap}: {e}")))?;
        cmd.validate()?;
        Ok(cmd)
    }

    /// Checks the value's own range (whatever the phone reported).
    pub fn validate(&self) -> Result<(), OpError> {
        match self {
            Self::Zoom(z) if !z.is_finite() || !(0.0..=MAX_ZOOM).contains(z) => {
                Err(out_of_range("value", "zoom must be a finite factor"))
            }
            Self::Focus(p) => p.check("value"),
            _ => Ok(()),
        }
    }

    /// Checks the keys of a report's `caps` object against the closed set of capabilities.
    pub fn check_caps_keys(op: &serde_json::Map<String, Value>) -> Result<(), OpError> {
        if let Some(Value::Object(caps)) = op.get("caps") {
            if let Some(k) = caps.keys().find(|k| !CAPABILITIES.contains(&k.as_str())) {
                let mut e = OpError::new(
                    codes::UNKNOWN_CAPABILITY,
                    format!("unknown camera capability {k:?}"),
                );
                e.field = Some("caps".into());
                return Err(e);
            }
        }
        Ok(())
    }

    /// Whether the command is possible with what the phone reported: the capability is there
    /// and the value is within its range.
    pub fn check(&self, caps: Option<&CameraCaps>) -> Result<(), OpError> {
        let unsupported = |what: &str| {
            let mut e = OpError::new(
                codes::NOT_SUPPORTED,
                format!("the phone's camera reported no {what}"),
            );
            e.field = Some("capability".into());
            e
        };
        let Some(caps) = caps else {
            return Err(unsupported("capabilities"));
        };
        match self {
            Self::Facing(f) => {
                if caps.facing.is_empty() {
                    return Err(unsupported("second camera"));
                }
                if !caps.facing.contains(f) {
                    return Err(out_of_range("value", "the phone has no such camera"));
                }
            }
            Self::Torch(_) if !caps.torch => return Err(unsupported("torch")),
            Self::Focus(_) if !caps.focus => return Err(unsupported("focus at a point")),
            Self::Zoom(z) => match caps.zoom {
                None => return Err(unsupported("zoom")),
                Some(r) if *z < r.min || *z > r.max => {
                    return Err(out_of_range(
                        "value",
                        &format!("zoom must be within {}..={}", r.min, r.max),
                    ))
                }
                Some(_) => {}
            },
            _ => {}
        }
        Ok(())
    }
}

/// Checks a phone's report: a closed set, finite and ordered ranges.
pub fn check_report(caps: &CameraCaps, settings: &CameraSettings) -> Result<(), OpError> {
    if let Some(r) = caps.zoom {
        let ok = r.min.is_finite()
            && r.max.is_finite()
            && r.min > 0.0
            && r.min <= r.max
            && r.max <= MAX_ZOOM
            && r.step
                .is_none_or(|s| s.is_finite() && s >= 0.0 && s <= r.max);
        if !ok {
            return Err(out_of_range(
                "caps.zoom",
                "zoom is 0 < min <= max <= 1000 with a finite step",
            ));
        }
    }
    if caps.facing.len() > 2 {
        return Err(out_of_range("caps.facing", "at most the two facings"));
    }
    if let Some(z) = settings.zoom {
        if !z.is_finite() || !(0.0..=MAX_ZOOM).contains(&z) {
            return Err(out_of_range(
                "settings.zoom",
                "zoom must be a finite factor",
            ));
        }
    }
    Ok(())
}

/// Checks a pointer's fields.
pub fn check_pointer(
    at: &Point,
    from: &Option<Point>,
    text: &Option<String>,
) -> Result<(), OpError> {
    at.check("at")?;
    if let Some(p) = from {
        p.check("from")?;
    }
    if let Some(t) = text {
        if t.chars().count() > MAX_POINTER_TEXT {
            return Err(OpError::invalid(
                "text",
                format!("a pointer's text is at most {MAX_POINTER_TEXT} characters"),
            ));
        }
    }
    Ok(())
}

/// A pointer as the state keeps it (the latest [`KEPT_POINTERS`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointerState {
    /// Seq of the `pointer` event.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// Where it points.
    pub at: Point,
    /// Where a drag began: the phone draws an arrow from here to `at`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<Point>,
    /// What the inspector typed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The camera as the log says (a projection): the phone's last report, the settings after
/// the commands since, and the latest pointers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CameraState {
    /// Seq of the phone's last `camera_caps`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps_seq: Option<u64>,
    /// Who reported (the phone's participant).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_by: Option<Uuid>,
    /// What the camera can do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caps: Option<CameraCaps>,
    /// Its settings now.
    #[serde(default)]
    pub settings: CameraSettings,
    /// Seq of the last command (absent: none since the report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_seq: Option<u64>,
    /// The latest pointers, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pointers: Vec<PointerState>,
}

impl CameraState {
    /// Folds a report.
    pub fn report(&mut self, seq: u64, by: Uuid, caps: &CameraCaps, settings: &CameraSettings) {
        self.caps_seq = Some(seq);
        self.reported_by = Some(by);
        self.caps = Some(caps.clone());
        self.settings = settings.clone();
        self.command_seq = None;
    }

    /// Folds a command.
    pub fn command(&mut self, seq: u64, cmd: &CameraCommand) {
        self.command_seq = Some(seq);
        match cmd {
            CameraCommand::Facing(f) => {
                self.settings.facing = Some(*f);
                // Another camera starts with its torch off.
                if self.settings.torch.is_some() {
                    self.settings.torch = Some(false);
                }
            }
            CameraCommand::Torch(on) => self.settings.torch = Some(*on),
            CameraCommand::Zoom(z) => self.settings.zoom = Some(*z),
            CameraCommand::Focus(_) => {}
        }
    }

    /// Folds a pointer.
    pub fn pointer(&mut self, p: PointerState) {
        self.pointers.push(p);
        if self.pointers.len() > KEPT_POINTERS {
            self.pointers.remove(0);
        }
    }

    /// The kept pointer logged at `seq`.
    pub fn pointer_at(&self, seq: u64) -> Option<&PointerState> {
        self.pointers.iter().find(|p| p.seq == seq)
    }
}

/// The camera's own rate per participant: these events are logged, so a flood of clicks or
/// slider moves must not fill the log. Time is the server's clock, µs.
#[derive(Debug, Default)]
pub struct CameraLimits {
    buckets: std::collections::HashMap<Uuid, RateLimiter>,
}

impl CameraLimits {
    /// Admits one camera event of `pid` at `now`, or refuses it with `camera_rate_limited`.
    pub fn admit(&mut self, pid: Uuid, now: i64) -> Result<(), OpError> {
        let now = now.max(0) as u64;
        let bucket = self
            .buckets
            .entry(pid)
            .or_insert_with(|| RateLimiter::new(RATE_PER_SEC, BURST, u32::MAX, 10_000_000, now));
        match bucket.check(now) {
            Verdict::Allow => Ok(()),
            // The socket's own limiter closes a flooding socket; here the event is only
            // dropped, and the room's log keeps none of it.
            Verdict::Drop | Verdict::Flood => Err(OpError::new(
                codes::RATE_LIMITED,
                format!("at most {RATE_PER_SEC} camera events per second (bursts of {BURST})"),
            )),
        }
    }
}

/// Whether the operation is one of the camera's (rate-limited together).
pub fn is_camera(op: &crate::Operation) -> bool {
    use crate::Operation as O;
    matches!(
        op,
        O::Camera { .. } | O::Pointer { .. } | O::CameraCaps { .. }
    )
}

/// The room's check of a camera operation against the sequenced head: the role may send it
/// (the inspector steers, the phone reports) and a command fits the phone's report.
pub fn check(
    camera: Option<&CameraState>,
    role: Role,
    op: &crate::Operation,
) -> Result<(), OpError> {
    use crate::Operation as O;
    match op {
        O::Camera { command } => {
            if role != Role::Inspector {
                return Err(OpError::new(
                    crate::proto::codes::FORBIDDEN,
                    "only the inspector steers the camera",
                ));
            }
            command.check(camera.and_then(|c| c.caps.as_ref()))
        }
        O::Pointer { .. } if role != Role::Inspector => Err(OpError::new(
            crate::proto::codes::FORBIDDEN,
            "only the inspector points",
        )),
        O::CameraCaps { .. } if role != Role::Business => Err(OpError::new(
            crate::proto::codes::FORBIDDEN,
            "only the phone reports its camera",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decode(v: Value) -> Result<CameraCommand, OpError> {
        CameraCommand::decode(v.as_object().unwrap())
    }

    #[test]
    fn commands_decode_with_the_cameras_codes() {
        assert_eq!(
            decode(json!({"capability": "torch", "value": true})).unwrap(),
            CameraCommand::Torch(true)
        );
        assert_eq!(
            decode(json!({"capability": "facing", "value": "user"})).unwrap(),
            CameraCommand::Facing(Facing::User)
        );
        let e = decode(json!({"capability": "exposure", "value": 1})).unwrap_err();
        assert_eq!(e.code, codes::UNKNOWN_CAPABILITY);
        let e = decode(json!({"capability": "torch", "value": "on"})).unwrap_err();
        assert_eq!(e.code, codes::OUT_OF_RANGE);
        let e = decode(json!({"capability": "focus", "value": {"x": 1.5, "y": 0}})).unwrap_err();
        assert_eq!(e.code, codes::OUT_OF_RANGE);
        let e = decode(json!({"capability": "facing", "value": "left"})).unwrap_err();
        assert_eq!(e.code, codes::OUT_OF_RANGE);
    }

    #[test]
    fn commands_are_checked_against_the_report() {
        let caps = CameraCaps {
            facing: vec![Facing::Environment, Facing::User],
            torch: true,
            zoom: Some(ZoomRange {
                min: 1.0,
                max: 5.0,
                step: Some(0.1),
            }),
            focus: false,
        };
        assert!(CameraCommand::Zoom(2.0).check(Some(&caps)).is_ok());
        assert_eq!(
            CameraCommand::Zoom(6.0)
                .check(Some(&caps))
                .unwrap_err()
                .code,
            codes::OUT_OF_RANGE
        );
        assert_eq!(
            CameraCommand::Focus(Point { x: 0.5, y: 0.5 })
                .check(Some(&caps))
                .unwrap_err()
                .code,
            codes::NOT_SUPPORTED
        );
        assert_eq!(
            CameraCommand::Torch(true).check(None).unwrap_err().code,
            codes::NOT_SUPPORTED
        );
    }

    #[test]
    fn camera_ops_survive_the_log() {
        // The event's payload is the op serialized; a reload parses it back.
        for op in [
            json!({"kind": "camera", "capability": "zoom", "value": 2.5}),
            json!({"kind": "camera", "capability": "focus", "value": {"x": 0.25, "y": 0.75}}),
            json!({"kind": "pointer", "at": {"x": 0.5, "y": 0.4}, "from": {"x": 0.1, "y": 0.1}, "text": "табличка"}),
            json!({"kind": "camera_caps", "caps": {"torch": true, "zoom": {"min": 1.0, "max": 4.0}}, "settings": {"torch": false, "zoom": 1.0}}),
        ] {
            let decoded = crate::Operation::decode(&op).unwrap();
            let back = serde_json::to_value(&decoded).unwrap();
            assert_eq!(back, op);
            let again: crate::Operation = serde_json::from_value(back).unwrap();
            assert_eq!(again, decoded);
        }
        let e =
            crate::Operation::decode(&json!({"kind": "camera_caps", "caps": {"exposure": true}}))
                .unwrap_err();
        assert_eq!(e.code, codes::UNKNOWN_CAPABILITY);
        let e = crate::Operation::decode(
            &json!({"kind": "camera_caps", "caps": {"zoom": {"min": 3.0, "max": 1.0}}}),
        )
        .unwrap_err();
        assert_eq!(e.code, codes::OUT_OF_RANGE);
        let e = crate::Operation::decode(&json!({"kind": "pointer", "at": {"x": -0.1, "y": 0.5}}))
            .unwrap_err();
        assert_eq!(e.code, codes::OUT_OF_RANGE);
    }

    #[test]
    fn the_camera_rate_refuses_a_flood_and_refills() {
        let mut l = CameraLimits::default();
        let pid = Uuid::nil();
        for _ in 0..BURST as usize {
            l.admit(pid, 1_000_000).unwrap();
        }
        assert_eq!(
            l.admit(pid, 1_000_000).unwrap_err().code,
            codes::RATE_LIMITED
        );
        l.admit(pid, 1_300_000).unwrap();
    }
}
