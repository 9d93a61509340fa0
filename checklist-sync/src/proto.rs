//! The wire protocol (docs/protocol.md): decoding client frames into typed messages and
//! operations, validation, stable error codes and encoding of server messages.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{json, Map, Value};

use crate::domain::ItemResult;

/// The only protocol version this crate speaks.
pub const PROTOCOL_VERSION: i64 = 1;
/// Client frames larger than this are answered with `frame_too_large` and ignored.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Frames larger than this are refused by the WebSocket layer, which closes the socket.
pub const HARD_FRAME_LIMIT: usize = 1024 * 1024;
const MAX_TEXT: usize = 4000;
const MAX_OP_ID: usize = 64;

/// Stable error codes sent to clients (see docs/protocol.md).
pub mod codes {
    /// The frame is not a JSON object.
    pub const BAD_JSON: &str = "bad_json";
    /// `type` missing, or a required field missing or of the wrong type.
    pub const BAD_MESSAGE: &str = "bad_message";
    /// Unknown message `type`.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// Unknown `op.kind`.
    pub const UNKNOWN_OP: &str = "unknown_op";
    /// A field's value is out of range, too long or malformed.
    pub const INVALID_FIELD: &str = "invalid_field";
    /// The item is not in this inspection's checklist.
    pub const UNKNOWN_ITEM: &str = "unknown_item";
    /// Evidence for a finding that is no committed free-form finding of this inspection.
    pub const UNKNOWN_FINDING: &str = "unknown_finding";
    /// Evidence must name exactly one of an item and a finding.
    pub const INVALID_EVIDENCE_TARGET: &str = "invalid_evidence_target";
    /// The role may not do this.
    pub const FORBIDDEN: &str = "forbidden";
    /// The op id was already applied.
    pub const DUPLICATE_OP_ID: &str = "duplicate_op_id";
    /// Needs a live inspection, but it has not started.
    pub const NOT_LIVE: &str = "not_live";
    /// `start` on a started inspection.
    pub const ALREADY_STARTED: &str = "already_started";
    /// Needs a live inspection, but it is finished.
    pub const ALREADY_FINISHED: &str = "already_finished";
    /// The inspection was cancelled: nothing that needs a scheduled or live inspection is
    /// accepted any more.
    pub const CANCELLED: &str = "cancelled";
    /// Frame over 64 KiB.
    pub const FRAME_TOO_LARGE: &str = "frame_too_large";
    /// Binary frame.
    pub const BINARY_NOT_SUPPORTED: &str = "binary_not_supported";
    /// Over the per-connection rate.
    pub const RATE_LIMITED: &str = "rate_limited";
    /// Sustained flooding; the socket is closed.
    pub const FLOOD: &str = "flood";
    /// A message before `hello`.
    pub const HELLO_REQUIRED: &str = "hello_required";
    /// A second `hello`.
    pub const HELLO_REPEATED: &str = "hello_repeated";
    /// Unsupported protocol version.
    pub const PROTOCOL_UNSUPPORTED: &str = "protocol_unsupported";
    /// The server is too busy.
    pub const OVERLOADED: &str = "overloaded";
    /// The server could not commit; nothing was applied.
    pub const INTERNAL: &str = "internal";
    /// The database does not answer; nothing was applied, the same op may be sent again.
    pub const DATABASE_UNAVAILABLE: &str = "database_unavailable";
    /// Another node runs this inspection now (a node lost or gave up its claim): reconnect.
    pub const MOVED: &str = "moved";
    /// An act event before the inspection finished.
    pub const NOT_FINISHED: &str = "not_finished";
    /// `act_formed` when an act exists.
    pub const ACT_ALREADY_FORMED: &str = "act_already_formed";
    /// `act_formed` from a head that is no longer the log's head.
    pub const ACT_STALE: &str = "act_stale";
    /// A signature or refusal before the act was formed.
    pub const ACT_NOT_FORMED: &str = "act_not_formed";
    /// A signature or refusal of a different act than the one formed.
    pub const ACT_MISMATCH: &str = "act_mismatch";
    /// The role has signed already.
    pub const ALREADY_SIGNED: &str = "already_signed";
    /// The role has refused already.
    pub const ALREADY_REFUSED: &str = "already_refused";
    /// The participant reached one of its quotas (`limit` names which).
    pub const QUOTA_EXCEEDED: &str = "quota_exceeded";
    /// The participant already has the most sockets allowed; this one is closed.
    pub const TOO_MANY_SOCKETS: &str = "too_many_sockets";
    /// `attach_evidence` from a client: evidence is attached by uploading it, the server
    /// makes the event.
    pub const UPLOAD_REQUIRED: &str = "upload_required";
    /// A party rated the inspection already (a change names the rating it revises).
    pub const RATING_EXISTS: &str = "rating_exists";
    /// A change of a rating that is not the side's current one (or of none).
    pub const RATING_STALE: &str = "rating_stale";
}

/// Why an inspection was cancelled: a code, rendered in words by the pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The business did not join or could not take part.
    BusinessAbsent,
    /// The call could not be held (network, equipment).
    TechnicalFailure,
    /// Moved to another date.
    Rescheduled,
    /// The control body called the inspection off.
    Withdrawn,
    /// Anything else (the note says what).
    Other,
}

impl CancelReason {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BusinessAbsent => "business_absent",
            Self::TechnicalFailure => "technical_failure",
            Self::Rescheduled => "rescheduled",
            Self::Withdrawn => "withdrawn",
            Self::Other => "other",
        }
    }
}

/// Longest free-text note of a cancellation, in characters.
pub const MAX_CANCEL_NOTE: usize = 1000;

/// A refused operation or message: stable code, explanation, and optional details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct OpError {
    /// Stable snake_case code from [`codes`] (or from the lifecycle / extension).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// The offending field, for `invalid_field`.
    pub field: Option<String>,
    /// For `duplicate_op_id`: the original event's seq and server timestamp.
    pub original: Option<(u64, i64)>,
    /// For `quota_exceeded`: which quota.
    pub limit: Option<String>,
    /// For `overloaded`: when to try again, ms.
    pub retry_after_ms: Option<u64>,
}

impl OpError {
    /// An error with a code and message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_string(),
            message: message.into(),
            field: None,
            original: None,
            limit: None,
            retry_after_ms: None,
        }
    }

    /// An `invalid_field` error naming the field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: Some(field.to_string()),
            ..Self::new(codes::INVALID_FIELD, message)
        }
    }

    /// The wire `error` message.
    pub fn to_wire(&self, op_id: Option<&str>) -> Value {
        let mut m = Map::new();
        m.insert("type".into(), json!("error"));
        if let Some(id) = op_id {
            m.insert("op_id".into(), json!(id));
        }
        m.insert("code".into(), json!(self.code));
        m.insert("message".into(), json!(self.message));
        if let Some(f) = &self.field {
            m.insert("field".into(), json!(f));
        }
        if let Some((seq, ts)) = self.original {
            m.insert("seq".into(), json!(seq));
            m.insert("server_ts".into(), json!(ts));
        }
        if let Some(l) = &self.limit {
            m.insert("limit".into(), json!(l));
        }
        if let Some(ms) = self.retry_after_ms {
            m.insert("retry_after_ms".into(), json!(ms));
        }
        Value::Object(m)
    }
}

/// Splits an encoded `welcome` longer than `max_part_bytes` into `welcome_part` messages whose
/// `data` strings, concatenated in order, are the welcome's JSON text. A welcome that fits is
/// returned as it is. Parts bound every frame whatever the size of the state, so no single
/// write exceeds the socket's write buffer.
pub fn welcome_frames(welcome: &Value, max_part_bytes: usize) -> Vec<String> {
    let text = welcome.to_string();
    if text.len() <= max_part_bytes {
        return vec![text];
    }
    let max = max_part_bytes.max(4);
    let mut pieces = Vec::new();
    let mut rest = text.as_str();
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        // A UTF-8 character has at most 4 bytes, so a boundary is at most 3 bytes back.
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (piece, tail) = rest.split_at(end);
        pieces.push(piece);
        rest = tail;
    }
    let count = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, data)| {
            json!({"type": "welcome_part", "index": index, "count": count, "data": data})
                .to_string()
        })
        .collect()
}

/// What the browser says about itself in `hello.client`; recorded in the `join` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// IANA time zone of the device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    /// `navigator.webdriver`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webdriver: Option<bool>,
    /// `navigator.userAgent`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    /// `navigator.platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Extra observations of the page for the location-trust score (e.g. `emulator_gpu`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<String>,
    /// What the browser lacks for a remote inspection (issue 17): the inspector sees it next
    /// to the participant instead of a silent "no video". A closed set, sorted, no repeats.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<MissingFeature>,
}

/// A browser capability the business page needs and did not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MissingFeature {
    /// No `RTCPeerConnection`: no video call at all (e.g. WebKitGTK built without WebRTC).
    Webrtc,
    /// No `navigator.mediaDevices.getUserMedia` (an old browser, or a page not in a secure
    /// context).
    Camera,
    /// No `navigator.geolocation`.
    Geolocation,
}

/// The kind of an evidence reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EvidenceKind {
    /// A photo.
    Photo,
    /// A video clip.
    Video,
    /// An audio clip.
    Audio,
    /// Any other file.
    File,
    /// A moment of the inspection's recording.
    Recording,
    /// A video clip cut (remuxed) from the finished recording around a violation's mark.
    Clip,
    /// A picture decoded from the finished recording at a violation's mark.
    Still,
    /// A full-resolution still the phone sent in place of its video (low-bandwidth mode, or
    /// at the inspector's request): a `frame` event, on the recording's timeline.
    Frame,
}

impl EvidenceKind {
    /// Derived from the finished recording by the server (clip, still): such evidence may be
    /// attached after the inspection is finished.
    pub fn is_derived(self) -> bool {
        matches!(self, Self::Clip | Self::Still)
    }
}

/// The participant's location-trust verdict when a piece of evidence was received: the level
/// and the names of the deciding signals (codes, not prose).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EvidenceVerdict {
    /// `trusted`, `suspicious` or `spoofed`.
    pub level: crate::trust::TrustLevel,
    /// Names of the signals that decided the level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signals: Vec<String>,
}

/// A piece of evidence. Since protocol revision 2 of this op only the server makes it, after
/// the bytes are stored in the blob store: `sha256`, `size`, `media_type` and the rest are the
/// server's own findings; `captured_at` and `location` are what the device claimed. Events of
/// the first revision (a client-claimed `uri` and `sha256`) stay readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// The evidence's id, e.g. an upload id.
    pub id: String,
    /// What it is.
    pub kind: EvidenceKind,
    /// Where to fetch it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// SHA-256 of the content, lowercase hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Caption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caption: Option<String>,
    /// The moment shown, µs since the epoch (first revision, client-claimed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_ts: Option<i64>,
    /// Size in bytes, counted by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// MIME type detected by the server from the content (`image/jpeg`, `video/webm`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    /// Pixel width, decoded by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
    /// Pixel height, decoded by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub height: Option<u32>,
    /// Server time the upload started arriving, µs since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received_at: Option<i64>,
    /// Capture time the device claims, ms since the epoch (a claim, not a finding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured_at: Option<i64>,
    /// Server time of the moment shown, µs since the epoch: the upload's receipt for a photo,
    /// the mark for a clip or still. Its place in the recording is this minus the manifest's
    /// `epoch_micros`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_micros: Option<i64>,
    /// Media time in the recording of the moment shown, ms (clip, still).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_ms: Option<i64>,
    /// First media time of the recording the clip covers, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_start_ms: Option<i64>,
    /// Media time where the clip ends in the recording, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip_end_ms: Option<i64>,
    /// SHA-256 of the recording a clip or still was derived from (the manifest's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording_sha256: Option<String>,
    /// Length of a video the server probed (ffprobe), ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<i64>,
    /// The device's geolocation sample sent with the upload, parsed strictly by the server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The uploader's location-trust verdict when the upload arrived.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<EvidenceVerdict>,
    /// The inspector's pointer the phone showed when it took the photo (issue 25), copied
    /// from the log's `pointer` event the upload named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pointer: Option<crate::camera::PointerState>,
}

/// A geolocation sample as the browser reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
    /// Horizontal accuracy, metres.
    pub accuracy: f64,
    /// Altitude, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude: Option<f64>,
    /// Altitude accuracy, metres.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub altitude_accuracy: Option<f64>,
    /// Heading, degrees clockwise from north.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading: Option<f64>,
    /// Speed, m/s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed: Option<f64>,
    /// Device time of the fix, ms since the epoch.
    #[serde(deserialize_with = "de_millis")]
    pub device_ts: i64,
}

/// Connection quality as the client judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Quality {
    /// Good.
    Good,
    /// Usable with problems.
    Fair,
    /// Barely usable.
    Poor,
    /// Not known.
    Unknown,
}

/// A presence update of a participant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    /// Connection quality.
    pub quality: Quality,
    /// Round-trip time, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<u32>,
    /// Network kind, e.g. `wifi`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// Whether the page is visible.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visible: Option<bool>,
    /// What the publishing phone sends in place of its camera (issue 19): `video`, or
    /// `stills` when its uplink cannot carry useful video.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_mode: Option<VideoMode>,
    /// Why the phone sends stills (only with `video_mode: stills`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stills_reason: Option<StillsReason>,
}

/// What the business's phone sends of its camera.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VideoMode {
    /// Live video.
    Video,
    /// Video paused, a full-resolution still every few seconds (uploaded, `frame` events).
    Stills,
}

/// Why the phone paused its video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StillsReason {
    /// The browser's estimate of the uplink stayed under the useful floor.
    Narrow,
    /// Video stopped leaving the phone although it was connected.
    Stalled,
}

/// Why the phone sent a still (`frame` event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameReason {
    /// Every few seconds while its video is paused (low-bandwidth mode).
    LowBandwidth,
    /// The inspector asked for one (`request_frame`).
    Requested,
}

impl FrameReason {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::LowBandwidth => "low_bandwidth",
            Self::Requested => "requested",
        }
    }
}

/// Which rule placed a mark on the recording's timeline (a closed set, docs/protocol.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeenRule {
    /// At the frame the marker's browser presented: one the server sent to that participant,
    /// no newer than the server's time and at most [`SEEN_MAX_AGE_MICROS`] older than the
    /// click as the server estimates it.
    SeenFrame,
    /// At the server's time of the mark: the client named no frame.
    ServerTimeNoMetadata,
    /// At the server's time of the mark: the frame named is not one the server sent to that
    /// participant recently, or is too far from the server's estimate.
    ServerTimeImplausible,
}

impl SeenRule {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SeenFrame => "seen_frame",
            Self::ServerTimeNoMetadata => "server_time_no_metadata",
            Self::ServerTimeImplausible => "server_time_implausible",
        }
    }
}

/// How much older than the click (as the server estimates it) the seen frame may be: the
/// network and the browser's jitter buffer delay a frame by this much at most.
pub const SEEN_MAX_AGE_MICROS: i64 = 2_000_000;
/// How long before sending the mark the click may have been (the violation's text is typed
/// between the two), ms.
pub const SEEN_MAX_CLICK_OFFSET_MS: f64 = 30_000.0;

/// The frame on the marker's screen at the click (`requestVideoFrameCallback` metadata of the
/// last presented frame), and what the server made of it. The client sends only the first
/// four fields; `rule` and `at_micros` are the server's and refused from a client.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Seen {
    /// The frame's RTP timestamp as the browser received it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp_timestamp: Option<u32>,
    /// When the browser presented it (page clock, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presentation_time: Option<f64>,
    /// When the browser received its last packet (page clock, ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receive_time: Option<f64>,
    /// How long before the op was sent the click was, ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub click_offset_ms: Option<f64>,
    /// The rule that placed the mark (the server's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<SeenRule>,
    /// With `seen_frame`: the server time of the seen frame, µs (the server's); the mark's
    /// chapter and still are placed there. Else the event's `server_ts` places them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_micros: Option<i64>,
}

impl Seen {
    /// The server's resolution of a claim `claim` (none: no metadata).
    pub fn resolved(claim: Option<Seen>, rule: SeenRule, at_micros: Option<i64>) -> Seen {
        Seen {
            rule: Some(rule),
            at_micros: at_micros.filter(|_| rule == SeenRule::SeenFrame),
            ..claim.unwrap_or_default()
        }
    }

    /// Judges the frame the client named, given the server time of that frame if the
    /// server sent it to this participant (`sent_at`) and the server's time now.
    pub fn judge(claim: Option<Seen>, sent_at: Option<i64>, now_micros: i64) -> Seen {
        let Some(c) = claim else {
            return Seen::resolved(None, SeenRule::ServerTimeNoMetadata, None);
        };
        if c.rtp_timestamp.is_none() {
            return Seen::resolved(Some(c), SeenRule::ServerTimeNoMetadata, None);
        }
        let offset = (c.click_offset_ms.unwrap_or(0.0) * 1000.0) as i64;
        let earliest = now_micros - offset - SEEN_MAX_AGE_MICROS;
        match sent_at {
            Some(t) if t <= now_micros && t >= earliest => {
                Seen::resolved(Some(c), SeenRule::SeenFrame, Some(t))
            }
            _ => Seen::resolved(Some(c), SeenRule::ServerTimeImplausible, None),
        }
    }
}

/// An operation a participant asks for (`op.kind` on the wire).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Operation {
    /// Set or clear an item's result.
    SetResult {
        /// The item.
        item_id: String,
        /// The result.
        result: ItemResult,
        /// The inspector's comment on the result.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        comment: Option<String>,
        /// Description of the violation (only with `violation`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        violation: Option<String>,
        /// The video frame on the marker's screen at the click: the client's claim, and the
        /// server's resolution of it (which places the item's chapter, see [`Seen`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seen: Option<Seen>,
    },
    /// Comment on an item.
    Comment {
        /// The item.
        item_id: String,
        /// The comment.
        text: String,
    },
    /// Attach an evidence reference to an item or to a free-form finding: exactly one of
    /// `item_id` and `finding_seq`.
    AttachEvidence {
        /// The item.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        item_id: Option<String>,
        /// The seq of the inspection's `finding` event the evidence shows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        finding_seq: Option<u64>,
        /// The evidence (boxed: it is much larger than the other operations).
        evidence: Box<Evidence>,
    },
    /// The inspector asks the business's phone for a photo of an item.
    RequestPhoto {
        /// The item.
        item_id: String,
    },
    /// The inspector asks the business's phone for a full-resolution still of what its camera
    /// shows now (inspector only, live): the phone uploads one as a `frame`.
    RequestFrame,
    /// A still of the phone's camera the server stored (server only, from an upload of the
    /// business while live): in place of video in low-bandwidth mode, or asked for.
    Frame {
        /// The still, as the server found it (kind `frame`).
        evidence: Box<Evidence>,
        /// Why the phone sent it.
        reason: FrameReason,
    },
    /// The inspector turns to an item ("now looking at item N"): the item's chapter of the
    /// recording begins here. Changes no state; the log keeps the moment.
    Focus {
        /// The item.
        item_id: String,
    },
    /// A free-form finding of an on-site inspection, about no checklist item: what the
    /// inspector saw, and where the device was (inspector only, while live).
    Finding {
        /// What was found.
        text: String,
        /// The device's position when it was written down.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        location: Option<Location>,
    },
    /// The inspection goes live.
    Start,
    /// The inspection is finished.
    Finish,
    /// The inspection is called off (from scheduled or live); nothing needing a live
    /// inspection is accepted afterwards.
    Cancel {
        /// Why, as a code.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<CancelReason>,
        /// Free text from the inspector.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A geolocation sample.
    Location(Location),
    /// The device could not give a position (permission denied, no fix, timeout).
    LocationUnavailable {
        /// Why.
        reason: crate::trust::NoFix,
    },
    /// Presence / connection quality.
    Presence(Presence),
    /// The phone reports what its camera can do and its settings (issue 25; business only):
    /// on opening the camera and after its user changed something.
    CameraCaps {
        /// What the camera can do.
        caps: crate::camera::CameraCaps,
        /// Its settings now.
        #[serde(default)]
        settings: crate::camera::CameraSettings,
    },
    /// The inspector's command to the phone's camera (inspector only, live), checked against
    /// the phone's last report.
    Camera {
        /// The capability and its value.
        #[serde(flatten)]
        command: crate::camera::CameraCommand,
    },
    /// The inspector points at a spot of the business's video (inspector only, live): the
    /// phone shows a marker there (an arrow for a drag) for a few seconds.
    Pointer {
        /// The spot, in frame coordinates 0..1.
        at: crate::camera::Point,
        /// Where a drag began.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<crate::camera::Point>,
        /// A short text shown with it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// The recording was finalized (server only, after the finish or the cancel): its file,
    /// SHA-256, size and duration enter the chain, so `audit verify` checks the file against
    /// the log, not against the unsigned manifest beside it.
    RecordingFinalized {
        /// The file's name in the inspection's recording directory.
        file: String,
        /// SHA-256 of the file, lowercase hex.
        sha256: String,
        /// Size in bytes.
        size: u64,
        /// Duration, ms.
        duration_ms: i64,
    },
    /// The act was formed from the log up to `head_seq` (server only, after the finish).
    ActFormed {
        /// SHA-256 of the PDF, lowercase hex.
        sha256: String,
        /// Size of the PDF in bytes.
        size: u64,
        /// The last event the act was formed from (the act prints it).
        head_seq: u64,
        /// That event's hash.
        head_hash: String,
        /// Language of the act (`ru`, `en`).
        language: String,
    },
    /// A party signed the act (server only, after it verified the signature).
    ActSigned {
        /// The act signed (SHA-256 of the PDF).
        act_sha256: String,
        /// Who.
        role: crate::act::SignerRole,
        /// The signer's name as the certificate gives it.
        signer: String,
        /// SHA-256 of the signer's certificate (DER).
        certificate_sha256: String,
        /// SHA-256 of the detached CMS signature (DER).
        signature_sha256: String,
        /// The signature scheme, e.g. `p256-webcrypto-cms`.
        scheme: String,
    },
    /// A party refused to sign ("от подписи отказался"; server only).
    ActRefused {
        /// The act refused.
        act_sha256: String,
        /// Who.
        role: crate::act::SignerRole,
        /// The refusing party's name.
        signer: String,
        /// Why, in the party's words.
        reason: String,
    },
    /// A party's rating of the other after the end (server only, after it checked the scores
    /// against its criteria set): the first one, or a change of the side's current one.
    Rating {
        /// Who rates.
        side: crate::rating::RatingSide,
        /// The version of the side's criteria set the scores answer.
        criteria_version: u32,
        /// One score per criterion.
        scores: Vec<crate::rating::RatingScore>,
        /// The seq of the rating this one changes (absent for the first).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        revises: Option<u64>,
    },
}

/// Every known `op.kind`.
pub const OP_KINDS: &[&str] = &[
    "set_result",
    "comment",
    "attach_evidence",
    "request_photo",
    "request_frame",
    "frame",
    "focus",
    "finding",
    "start",
    "finish",
    "cancel",
    "location",
    "location_unavailable",
    "presence",
    "camera_caps",
    "camera",
    "pointer",
    "recording_finalized",
    "act_formed",
    "act_signed",
    "act_refused",
    "rating",
];

fn de_millis<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
    let v = f64::deserialize(d)?;
    // Browsers report whole milliseconds, but some give a fractional DOMHighResTimeStamp.
    if !v.is_finite() || !(0.0..=1e15).contains(&v) {
        return Err(serde::de::Error::custom("device_ts out of range"));
    }
    Ok(v.floor() as i64)
}

fn check_location(l: &Location) -> Result<(), OpError> {
    check_range("lat", l.lat, -90.0, 90.0)?;
    check_range("lon", l.lon, -180.0, 180.0)?;
    check_range("accuracy", l.accuracy, 0.0, 1e7)?;
    check_opt_range("altitude", l.altitude, -1e5, 1e6)?;
    check_opt_range("altitude_accuracy", l.altitude_accuracy, 0.0, 1e7)?;
    check_opt_range("heading", l.heading, 0.0, 360.0)?;
    check_opt_range("speed", l.speed, 0.0, 1e5)
}

/// Whether `h` is a SHA-256 in the log's spelling: 64 lowercase hex digits.
pub fn is_sha256_hex(h: &str) -> bool {
    h.len() == 64
        && h.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_sha256(field: &str, h: &str) -> Result<(), OpError> {
    if is_sha256_hex(h) {
        Ok(())
    } else {
        Err(OpError::invalid(field, "must be 64 lowercase hex digits"))
    }
}

fn check_len(field: &str, s: &str, min: usize, max: usize) -> Result<(), OpError> {
    let n = s.chars().count();
    if n < min || n > max {
        return Err(OpError::invalid(
            field,
            format!("{field} must be {min}..={max} characters"),
        ));
    }
    Ok(())
}

fn check_opt_len(field: &str, s: &Option<String>, max: usize) -> Result<(), OpError> {
    match s {
        Some(s) => check_len(field, s, 0, max),
        None => Ok(()),
    }
}

fn check_range(field: &str, v: f64, lo: f64, hi: f64) -> Result<(), OpError> {
    if !v.is_finite() || v < lo || v > hi {
        return Err(OpError::invalid(
            field,
            format!("{field} must be a finite number in {lo}..={hi}"),
        ));
    }
    Ok(())
}

fn check_opt_range(field: &str, v: Option<f64>, lo: f64, hi: f64) -> Result<(), OpError> {
    match v {
        Some(v) => check_range(field, v, lo, hi),
        None => Ok(()),
    }
}

impl Operation {
    /// The wire name of the operation.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::SetResult { .. } => "set_result",
            Self::Comment { .. } => "comment",
            Self::AttachEvidence { .. } => "attach_evidence",
            Self::RequestPhoto { .. } => "request_photo",
            Self::RequestFrame => "request_frame",
            Self::Frame { .. } => "frame",
            Self::Focus { .. } => "focus",
            Self::Finding { .. } => "finding",
            Self::Start => "start",
            Self::Finish => "finish",
            Self::Cancel { .. } => "cancel",
            Self::Location(_) => "location",
            Self::LocationUnavailable { .. } => "location_unavailable",
            Self::Presence(_) => "presence",
            Self::CameraCaps { .. } => "camera_caps",
            Self::Camera { .. } => "camera",
            Self::Pointer { .. } => "pointer",
            Self::RecordingFinalized { .. } => "recording_finalized",
            Self::ActFormed { .. } => "act_formed",
            Self::ActSigned { .. } => "act_signed",
            Self::ActRefused { .. } => "act_refused",
            Self::Rating { .. } => "rating",
        }
    }

    /// One of the act's events (made by the server only).
    pub fn is_act(&self) -> bool {
        matches!(
            self,
            Self::ActFormed { .. } | Self::ActSigned { .. } | Self::ActRefused { .. }
        )
    }

    /// The item the operation is about, if any.
    pub fn item_id(&self) -> Option<&str> {
        match self {
            Self::SetResult { item_id, .. }
            | Self::Comment { item_id, .. }
            | Self::RequestPhoto { item_id }
            | Self::Focus { item_id } => Some(item_id),
            Self::AttachEvidence { item_id, .. } => item_id.as_deref(),
            _ => None,
        }
    }

    /// Parses an `op` object; the codes are `bad_message`, `unknown_op` and `invalid_field`.
    pub fn decode(v: &Value) -> Result<Self, OpError> {
        let Some(obj) = v.as_object() else {
            return Err(OpError::new(codes::BAD_MESSAGE, "op must be an object"));
        };
        let Some(kind) = obj.get("kind").and_then(Value::as_str) else {
            return Err(OpError::new(codes::BAD_MESSAGE, "op.kind must be a string"));
        };
        if !OP_KINDS.contains(&kind) {
            return Err(OpError::new(
                codes::UNKNOWN_OP,
                format!("unknown operation {kind:?}"),
            ));
        }
        // The camera's operations answer with the camera's codes (a closed set of
        // capabilities, values in range) rather than serde's `bad_message`.
        if kind == "camera" {
            let command = crate::camera::CameraCommand::decode(obj)?;
            return Ok(Self::Camera { command });
        }
        if kind == "camera_caps" {
            crate::camera::CameraCommand::check_caps_keys(obj)?;
        }
        // Deserialized from the borrowed tree: no copy of the op per message.
        let op = Operation::deserialize(v)
            .map_err(|e| OpError::new(codes::BAD_MESSAGE, format!("op {kind}: {e}")))?;
        op.validate()?;
        if let Self::SetResult { seen: Some(s), .. } = &op {
            if s.rule.is_some() || s.at_micros.is_some() {
                return Err(OpError::invalid(
                    "seen",
                    "seen.rule and seen.at_micros are the server's, not a client's",
                ));
            }
        }
        Ok(op)
    }

    /// A client's mark with the server's placement of it: a result set (not cleared) gets
    /// its [`Seen`] judged, `sent_at` telling the server time of a frame the participant was
    /// sent (by RTP timestamp). Other operations are returned as they are.
    pub fn with_seen_resolved(
        mut self,
        sent_at: impl FnOnce(u32) -> Option<i64>,
        now_micros: i64,
    ) -> Self {
        if let Self::SetResult { result, seen, .. } = &mut self {
            if *result == ItemResult::Clear {
                *seen = None;
            } else {
                let claim = seen.take();
                let at = claim
                    .as_ref()
                    .and_then(|c| c.rtp_timestamp)
                    .and_then(sent_at);
                *seen = Some(Seen::judge(claim, at, now_micros));
            }
        }
        self
    }

    /// Checks ranges and lengths of the fields.
    pub fn validate(&self) -> Result<(), OpError> {
        match self {
            Self::SetResult {
                item_id,
                result,
                comment,
                violation,
                seen,
            } => {
                check_len("item_id", item_id, 1, 128)?;
                if let Some(s) = seen {
                    check_opt_range("seen.presentation_time", s.presentation_time, 0.0, 1e13)?;
                    check_opt_range("seen.receive_time", s.receive_time, 0.0, 1e13)?;
                    check_opt_range(
                        "seen.click_offset_ms",
                        s.click_offset_ms,
                        0.0,
                        SEEN_MAX_CLICK_OFFSET_MS,
                    )?;
                }
                check_opt_len("comment", comment, MAX_TEXT)?;
                check_opt_len("violation", violation, MAX_TEXT)?;
                if violation.is_some() && *result != ItemResult::Violation {
                    return Err(OpError::invalid(
                        "violation",
                        "a violation description goes only with result \"violation\"",
                    ));
                }
            }
            Self::Comment { item_id, text } => {
                check_len("item_id", item_id, 1, 128)?;
                check_len("text", text, 1, MAX_TEXT)?;
            }
            Self::AttachEvidence {
                item_id,
                finding_seq,
                evidence,
            } => {
                match (item_id, finding_seq) {
                    (Some(item_id), None) => check_len("item_id", item_id, 1, 128)?,
                    (None, Some(_)) => {}
                    _ => {
                        let mut e = OpError::new(
                            codes::INVALID_EVIDENCE_TARGET,
                            "evidence goes to exactly one of item_id and finding_seq",
                        );
                        e.field = Some("item_id".into());
                        return Err(e);
                    }
                }
                check_len("evidence.id", &evidence.id, 1, 128)?;
                check_opt_len("evidence.uri", &evidence.uri, 2048)?;
                check_opt_len("evidence.caption", &evidence.caption, 1000)?;
                check_opt_len("evidence.media_type", &evidence.media_type, 128)?;
                for (field, h) in [
                    ("evidence.sha256", &evidence.sha256),
                    ("evidence.recording_sha256", &evidence.recording_sha256),
                ] {
                    if h.as_deref().is_some_and(|h| !is_sha256_hex(h)) {
                        return Err(OpError::invalid(field, "must be 64 lowercase hex digits"));
                    }
                }
            }
            Self::RequestPhoto { item_id } | Self::Focus { item_id } => {
                check_len("item_id", item_id, 1, 128)?
            }
            Self::RequestFrame => {}
            Self::Frame { evidence, .. } => {
                check_len("evidence.id", &evidence.id, 1, 128)?;
                check_opt_len("evidence.media_type", &evidence.media_type, 128)?;
                if evidence
                    .sha256
                    .as_deref()
                    .is_some_and(|h| !is_sha256_hex(h))
                {
                    return Err(OpError::invalid(
                        "evidence.sha256",
                        "must be 64 lowercase hex digits",
                    ));
                }
            }
            Self::Finding { text, location } => {
                check_len("text", text, 1, MAX_TEXT)?;
                if let Some(l) = location {
                    check_location(l)?;
                }
            }
            Self::Start | Self::Finish => {}
            Self::Cancel { note, .. } => check_opt_len("note", note, MAX_CANCEL_NOTE)?,
            Self::Location(l) => check_location(l)?,
            Self::Presence(p) => {
                check_opt_len("network", &p.network, 32)?;
                if p.stills_reason.is_some() && p.video_mode != Some(VideoMode::Stills) {
                    return Err(OpError::invalid(
                        "stills_reason",
                        "stills_reason goes only with video_mode \"stills\"",
                    ));
                }
            }
            Self::LocationUnavailable { .. } => {}
            Self::CameraCaps { caps, settings } => crate::camera::check_report(caps, settings)?,
            Self::Camera { command } => command.validate()?,
            Self::Pointer { at, from, text } => crate::camera::check_pointer(at, from, text)?,
            Self::RecordingFinalized {
                file,
                sha256,
                duration_ms,
                ..
            } => {
                check_len("file", file, 1, 255)?;
                if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                    return Err(OpError::invalid(
                        "file",
                        "file must be a plain name inside the recording directory",
                    ));
                }
                check_sha256("sha256", sha256)?;
                if *duration_ms < 0 {
                    return Err(OpError::invalid("duration_ms", "duration_ms must be >= 0"));
                }
            }
            Self::ActFormed {
                sha256,
                head_hash,
                language,
                ..
            } => {
                check_sha256("sha256", sha256)?;
                check_sha256("head_hash", head_hash)?;
                if !matches!(language.as_str(), "ru" | "en") {
                    return Err(OpError::invalid("language", "language must be ru or en"));
                }
            }
            Self::ActSigned {
                act_sha256,
                signer,
                certificate_sha256,
                signature_sha256,
                scheme,
                ..
            } => {
                check_sha256("act_sha256", act_sha256)?;
                check_sha256("certificate_sha256", certificate_sha256)?;
                check_sha256("signature_sha256", signature_sha256)?;
                check_len("signer", signer, 1, 500)?;
                check_len("scheme", scheme, 1, 64)?;
            }
            Self::ActRefused {
                act_sha256,
                signer,
                reason,
                ..
            } => {
                check_sha256("act_sha256", act_sha256)?;
                check_len("signer", signer, 1, 500)?;
                check_len("reason", reason.trim(), 1, MAX_TEXT)?;
            }
            Self::Rating { scores, .. } => {
                use crate::rating::{MAX_NOTE, MAX_REASONS, MAX_SCORES};
                if scores.is_empty() || scores.len() > MAX_SCORES {
                    return Err(OpError::invalid(
                        "scores",
                        format!("a rating has 1..={MAX_SCORES} scores"),
                    ));
                }
                for s in scores {
                    check_len("scores.criterion", &s.criterion, 1, 64)?;
                    if !(1..=10).contains(&s.score) {
                        return Err(OpError::invalid("scores.score", "a score is 1..=10"));
                    }
                    if s.reasons.len() > MAX_REASONS {
                        return Err(OpError::invalid(
                            "scores.reasons",
                            format!("at most {MAX_REASONS} reasons per criterion"),
                        ));
                    }
                    for r in &s.reasons {
                        check_len("scores.reasons", r, 1, 64)?;
                    }
                    check_opt_len("scores.note", &s.note, MAX_NOTE)?;
                }
            }
        }
        Ok(())
    }
}

/// A decoded client message.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMsg {
    /// The first message.
    Hello {
        /// Protocol version the client speaks.
        protocol: i64,
        /// The highest seq the client has applied.
        last_seq: Option<u64>,
        /// What the browser says about itself.
        client: ClientInfo,
    },
    /// An operation.
    Op {
        /// The client's op id.
        op_id: String,
        /// The operation.
        op: Operation,
    },
    /// Round-trip probe; `t` is echoed.
    Ping {
        /// Echoed value.
        t: Value,
    },
    /// A WebRTC signaling message for the extension, untouched.
    Rtc(Value),
}

/// A frame that could not be decoded: the error and the op id if one could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// The error.
    pub error: OpError,
    /// The op id of the message, if it had a valid one.
    pub op_id: Option<String>,
}

fn valid_op_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_OP_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Decodes one client text frame. Never panics. (The error is boxed: refusals are the rare
/// path and keep the common result small.)
pub fn decode(text: &str) -> Result<ClientMsg, Box<DecodeError>> {
    let fail = |error: OpError, op_id: Option<String>| Box::new(DecodeError { error, op_id });
    if text.len() > MAX_FRAME_BYTES {
        return Err(fail(
            OpError::new(codes::FRAME_TOO_LARGE, "frame over 64 KiB"),
            None,
        ));
    }
    let v: Value = serde_json::from_str(text).map_err(|e| {
        fail(
            OpError::new(codes::BAD_JSON, format!("not JSON: {e}")),
            None,
        )
    })?;
    let Some(obj) = v.as_object() else {
        return Err(fail(
            OpError::new(codes::BAD_JSON, "not a JSON object"),
            None,
        ));
    };
    let Some(ty) = obj.get("type").and_then(Value::as_str) else {
        return Err(fail(
            OpError::new(codes::BAD_MESSAGE, "type must be a string"),
            None,
        ));
    };
    match ty {
        "hello" => {
            let protocol = obj.get("protocol").and_then(Value::as_i64).ok_or_else(|| {
                fail(
                    OpError::new(codes::BAD_MESSAGE, "hello.protocol must be an integer"),
                    None,
                )
            })?;
            let last_seq = match obj.get("last_seq") {
                None | Some(Value::Null) => None,
                Some(v) => Some(v.as_u64().ok_or_else(|| {
                    fail(
                        OpError::invalid("last_seq", "last_seq must be an integer >= 0"),
                        None,
                    )
                })?),
            };
            let mut client = match obj.get("client") {
                None | Some(Value::Null) => ClientInfo::default(),
                Some(c) => serde_json::from_value::<ClientInfo>(c.clone()).map_err(|e| {
                    fail(
                        OpError::new(codes::BAD_MESSAGE, format!("hello.client: {e}")),
                        None,
                    )
                })?,
            };
            for (f, s) in [
                ("client.timezone", &client.timezone),
                ("client.user_agent", &client.user_agent),
                ("client.platform", &client.platform),
            ] {
                check_opt_len(f, s, 512).map_err(|e| fail(e, None))?;
            }
            // Unknown reasons were refused by serde; repeats are dropped, so the list holds at
            // most one entry per kind.
            client.missing.sort();
            client.missing.dedup();
            Ok(ClientMsg::Hello {
                protocol,
                last_seq,
                client,
            })
        }
        "op" => {
            let op_id = match obj.get("op_id") {
                Some(Value::String(s)) if valid_op_id(s) => s.clone(),
                Some(Value::String(_)) => {
                    return Err(fail(
                        OpError::invalid(
                            "op_id",
                            "op_id must be 1..=64 characters of [A-Za-z0-9._:-]",
                        ),
                        None,
                    ))
                }
                _ => {
                    return Err(fail(
                        OpError::new(codes::BAD_MESSAGE, "op_id must be a string"),
                        None,
                    ))
                }
            };
            let Some(op) = obj.get("op") else {
                return Err(fail(
                    OpError::new(codes::BAD_MESSAGE, "op missing"),
                    Some(op_id),
                ));
            };
            // Evidence is what the server stored and hashed itself; a client's claim of a uri
            // and a hash is not evidence, whatever its fields.
            if matches!(
                op.get("kind").and_then(Value::as_str),
                Some("attach_evidence" | "frame")
            ) {
                return Err(fail(
                    OpError::new(
                        codes::UPLOAD_REQUIRED,
                        "evidence is attached by uploading it (POST /api/inspections/{id}/evidence)",
                    ),
                    Some(op_id),
                ));
            }
            // The act's events name files only the server stored and signatures only it
            // verified, the recording's event a file only it finalized; a client's claim of
            // one is refused whatever its fields.
            if op
                .get("kind")
                .and_then(Value::as_str)
                .is_some_and(|k| crate::act::ACT_KINDS.contains(&k) || k == "recording_finalized")
            {
                return Err(fail(
                    OpError::new(
                        codes::FORBIDDEN,
                        "the act's events are recorded by the server (POST /api/inspections/{id}/act…)",
                    ),
                    Some(op_id),
                ));
            }
            match Operation::decode(op) {
                Ok(op) => Ok(ClientMsg::Op { op_id, op }),
                Err(e) => Err(fail(e, Some(op_id))),
            }
        }
        "ping" => Ok(ClientMsg::Ping {
            t: obj.get("t").cloned().unwrap_or(Value::Null),
        }),
        t if t.starts_with("rtc.") => Ok(ClientMsg::Rtc(v)),
        t => Err(fail(
            OpError::new(codes::UNKNOWN_TYPE, format!("unknown message type {t:?}")),
            None,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_missing_is_a_closed_sorted_set() {
        let hello = |missing: Value| {
            decode(
                &json!({"type": "hello", "protocol": 1, "client": {"missing": missing}})
                    .to_string(),
            )
        };
        match hello(json!(["geolocation", "webrtc", "geolocation", "webrtc"])) {
            Ok(ClientMsg::Hello { client, .. }) => assert_eq!(
                client.missing,
                vec![MissingFeature::Webrtc, MissingFeature::Geolocation]
            ),
            other => panic!("{other:?}"),
        }
        // A reason outside the set is refused, not stored.
        let err = hello(json!(["webrtc", "flash"])).expect_err("unknown reason");
        assert_eq!(err.error.code, codes::BAD_MESSAGE, "{:?}", err.error);
        // Nothing missing: nothing recorded in the join event.
        match hello(json!([])) {
            Ok(ClientMsg::Hello { client, .. }) => {
                assert!(serde_json::to_value(&client)
                    .unwrap()
                    .get("missing")
                    .is_none())
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_small_welcome_is_one_frame() {
        let w = json!({"type": "welcome", "seq": 1});
        assert_eq!(welcome_frames(&w, 1024), vec![w.to_string()]);
    }

    #[test]
    fn welcome_parts_reassemble_at_character_boundaries() {
        // Two- and four-byte characters, quotes and backslashes, which are escaped again
        // inside `data`.
        let text = "Огнетушитель \"в подсобке\" \\ 🧯 ".repeat(500);
        let w = json!({"type": "welcome", "snapshot": {"items": {"q1": {"comment": text}}}});
        let frames = welcome_frames(&w, 1000);
        assert!(frames.len() > 10);
        let mut joined = String::new();
        for (i, f) in frames.iter().enumerate() {
            // Escaping at most doubles a part, plus the envelope.
            assert!(f.len() <= 2 * 1000 + 100, "part {i} has {} bytes", f.len());
            let v: Value = serde_json::from_str(f).unwrap();
            assert_eq!(v["type"], "welcome_part");
            assert_eq!(v["index"], i);
            assert_eq!(v["count"], frames.len());
            joined.push_str(v["data"].as_str().unwrap());
        }
        assert_eq!(serde_json::from_str::<Value>(&joined).unwrap(), w);
    }
}
