//! The inspection's state as a pure function of its event log.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::domain::{ItemResult, Role};
use crate::proto::{
    codes, CancelReason, ClientInfo, Evidence, EvidenceKind, Location, OpError, Operation,
    Presence, Quality,
};

/// Why a participant's last socket went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The socket was closed (by either side).
    Closed,
    /// No sign of life for too long.
    Timeout,
    /// The server stopped while the participant was connected.
    ServerRestart,
}

/// Payload of a `join` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinInfo {
    /// The participant's role.
    pub role: Role,
    /// Name shown to others.
    pub display_name: String,
    /// Device kind.
    pub device: String,
    /// What the browser said about itself.
    #[serde(default)]
    pub client: ClientInfo,
}

/// Payload of a `leave` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveInfo {
    /// Why.
    pub reason: LeaveReason,
}

/// What happened, typed.
#[derive(Debug, Clone, PartialEq)]
pub enum EventBody {
    /// A participant's operation.
    Op(Operation),
    /// A participant's first socket connected.
    Join(JoinInfo),
    /// A participant's last socket went away.
    Leave(LeaveInfo),
    /// The server's location-trust verdict on a participant changed.
    Verdict(crate::trust::Verdict),
}

impl EventBody {
    /// The `kind` column / wire field.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Op(op) => op.kind(),
            Self::Join(_) => "join",
            Self::Leave(_) => "leave",
            Self::Verdict(_) => "verdict",
        }
    }

    /// The `payload` column / wire field.
    pub fn payload(&self) -> Value {
        let v = match self {
            Self::Op(op) => serde_json::to_value(op),
            Self::Join(j) => serde_json::to_value(j),
            Self::Leave(l) => serde_json::to_value(l),
            Self::Verdict(v) => serde_json::to_value(v),
        };
        // Serializing these plain data types into a Value cannot fail (no maps with non-string keys).
        let mut v = v.unwrap_or(Value::Null);
        if let Value::Object(m) = &mut v {
            m.remove("kind");
        }
        if v.is_null() {
            v = Value::Object(Default::default());
        }
        v
    }

    /// Rebuilds the body from a stored or received kind and payload.
    pub fn from_parts(kind: &str, payload: &Value) -> Result<Self, String> {
        match kind {
            "join" => serde_json::from_value(payload.clone())
                .map(Self::Join)
                .map_err(|e| e.to_string()),
            "leave" => serde_json::from_value(payload.clone())
                .map(Self::Leave)
                .map_err(|e| e.to_string()),
            "verdict" => serde_json::from_value(payload.clone())
                .map(Self::Verdict)
                .map_err(|e| e.to_string()),
            k => {
                let mut obj = match payload {
                    Value::Object(m) => m.clone(),
                    _ => return Err("payload is not an object".into()),
                };
                obj.insert("kind".into(), Value::String(k.to_string()));
                // Beside the operation, not part of it (see `Event::device_time`).
                obj.remove(DEVICE_TIME_KEY);
                obj.remove(CLOCK_OFFSET_KEY);
                serde_json::from_value(Value::Object(obj))
                    .map(Self::Op)
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// One sequenced event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Per-inspection sequence number, from 1.
    pub seq: u64,
    /// Server time of acceptance, µs since the epoch UTC.
    pub server_ts: i64,
    /// Who.
    pub participant_id: Uuid,
    /// The client's op id, if the event came from a client operation.
    pub client_op_id: Option<String>,
    /// When the device says the operation was made, ms since the epoch: an on-site phone's
    /// queued operation keeps its capture time beside the server's receipt (`server_ts`). A
    /// claim, not a finding; sealed into the chain as the payload's `device_time`.
    pub device_time: Option<i64>,
    /// For a queued op: the device clock's offset measured for its batch (server receipt
    /// minus the device's send time, ms); a queued position was scored at its device time
    /// shifted by it. Sealed into the chain as the payload's `clock_offset_ms`.
    pub clock_offset_ms: Option<i64>,
    /// What.
    pub body: EventBody,
}

/// The payload key carrying [`Event::device_time`].
pub const DEVICE_TIME_KEY: &str = "device_time";
/// The payload key carrying [`Event::clock_offset_ms`].
pub const CLOCK_OFFSET_KEY: &str = "clock_offset_ms";

/// The device time an event's payload carries, if any.
pub fn device_time_of(payload: &Value) -> Option<i64> {
    payload.get(DEVICE_TIME_KEY).and_then(Value::as_i64)
}

/// The batch clock offset an event's payload carries, if any.
pub fn clock_offset_of(payload: &Value) -> Option<i64> {
    payload.get(CLOCK_OFFSET_KEY).and_then(Value::as_i64)
}

impl Event {
    /// Parses an event in its wire shape (`event` message or welcome `events` entry).
    pub fn from_wire(v: &Value) -> Result<Self, String> {
        let seq = v.get("seq").and_then(Value::as_u64).ok_or("seq")?;
        let server_ts = v
            .get("server_ts")
            .and_then(Value::as_i64)
            .ok_or("server_ts")?;
        let participant_id = v
            .get("participant_id")
            .and_then(Value::as_str)
            .and_then(|s| Uuid::parse_str(s).ok())
            .ok_or("participant_id")?;
        let client_op_id = v.get("op_id").and_then(Value::as_str).map(str::to_string);
        let kind = v.get("kind").and_then(Value::as_str).ok_or("kind")?;
        let payload = v.get("payload").ok_or("payload")?;
        let body = EventBody::from_parts(kind, payload)?;
        Ok(Self {
            seq,
            server_ts,
            participant_id,
            client_op_id,
            device_time: device_time_of(payload),
            clock_offset_ms: clock_offset_of(payload),
            body,
        })
    }
}

/// Inspection lifecycle phase, as the log says: `not_started` (scheduled) → `live` →
/// `finished`, and `cancelled` from `not_started` or `live`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Scheduled, not started yet.
    #[default]
    NotStarted,
    /// Running.
    Live,
    /// Finished.
    Finished,
    /// Called off.
    Cancelled,
}

/// Who puts an operation to the room, as far as the lifecycle rule cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A participant's socket.
    Client,
    /// The server itself ([`crate::SyncHub::submit`]): REST transitions, stored uploads,
    /// evidence derived from the recording.
    Server,
}

impl Status {
    /// Whether an operation may be applied in this phase: the one lifecycle rule, used by the
    /// room on the sequenced log (and by callers that want to refuse early). Location and
    /// presence are accepted in every phase; `cancel` from scheduled or live; item operations
    /// and `finish` only while live, except the evidence the server derives from the finished
    /// recording (clips, stills), which the server alone attaches after the finish; the act's
    /// events only after the finish and only from the server.
    pub fn allows(self, op: &Operation, source: Source) -> Result<(), OpError> {
        let not_live = || OpError::new(codes::NOT_LIVE, "the inspection has not started");
        let finished = || OpError::new(codes::ALREADY_FINISHED, "the inspection is finished");
        let cancelled = || OpError::new(codes::CANCELLED, "the inspection was cancelled");
        let started = || OpError::new(codes::ALREADY_STARTED, "the inspection has already started");
        match (op, self) {
            (Operation::Location(_) | Operation::LocationUnavailable { .. }, _)
            | (Operation::Presence(_), _) => Ok(()),
            // The phone reports its camera as soon as it opens it, before the start too.
            (Operation::CameraCaps { .. }, Status::NotStarted | Status::Live) => Ok(()),
            (Operation::CameraCaps { .. }, Status::Finished) => Err(finished()),
            // The act names files the server stored and signatures it verified.
            (op, _) if op.is_act() && source == Source::Client => Err(OpError::new(
                codes::FORBIDDEN,
                "the act's events are recorded by the server",
            )),
            // The recording is finalized after the end, a cancelled inspection's too: its hash
            // is the one event a cancelled log still takes.
            (Operation::RecordingFinalized { .. }, status) => match (source, status) {
                (Source::Client, _) => Err(OpError::new(
                    codes::FORBIDDEN,
                    "the recording's event is recorded by the server",
                )),
                (Source::Server, Status::Finished | Status::Cancelled) => Ok(()),
                (Source::Server, _) => Err(OpError::new(
                    codes::NOT_FINISHED,
                    "the recording is finalized only after the end",
                )),
            },
            // A rating follows an event that took place: only after the finish, only from the
            // server (which checked it against the criteria).
            (Operation::Rating { .. }, status) => match (source, status) {
                (Source::Client, _) => Err(OpError::new(
                    codes::FORBIDDEN,
                    "ratings are recorded by the server",
                )),
                (Source::Server, Status::Finished) => Ok(()),
                (Source::Server, Status::Cancelled) => Err(cancelled()),
                (Source::Server, _) => Err(OpError::new(
                    codes::NOT_FINISHED,
                    "an inspection is rated only after it is finished",
                )),
            },
            (_, Status::Cancelled) => Err(cancelled()),
            (Operation::Start, Status::NotStarted) => Ok(()),
            (Operation::Start, _) => Err(started()),
            (Operation::Cancel { .. }, Status::NotStarted | Status::Live) => Ok(()),
            (Operation::Cancel { .. }, Status::Finished) => Err(finished()),
            // The recording is cut after it is finalized, which is after the finish.
            (Operation::AttachEvidence { evidence, .. }, Status::Finished)
                if source == Source::Server && evidence.kind.is_derived() =>
            {
                Ok(())
            }
            // The act is formed from the finished log, and signed or refused after that.
            (
                Operation::ActFormed { .. }
                | Operation::ActSigned { .. }
                | Operation::ActRefused { .. },
                status,
            ) => match status {
                Status::Finished => Ok(()),
                _ => Err(OpError::new(
                    codes::NOT_FINISHED,
                    "the act is formed only after the inspection is finished",
                )),
            },
            (
                Operation::SetResult { .. }
                | Operation::Comment { .. }
                | Operation::AttachEvidence { .. }
                | Operation::RequestPhoto { .. }
                | Operation::RequestFrame
                | Operation::Frame { .. }
                | Operation::Focus { .. }
                | Operation::Finding { .. }
                | Operation::Camera { .. }
                | Operation::Pointer { .. }
                | Operation::Finish,
                status,
            ) => match status {
                Status::Live => Ok(()),
                Status::NotStarted => Err(not_live()),
                Status::Finished | Status::Cancelled => Err(finished()),
            },
        }
    }

    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::NotStarted => "not_started",
            Status::Live => "live",
            Status::Finished => "finished",
            Status::Cancelled => "cancelled",
        }
    }
}

/// The lifecycle part of the state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct LifecycleState {
    /// Status.
    pub status: Status,
    /// When it started, µs.
    pub started_at: Option<i64>,
    /// Who started it.
    pub started_by: Option<Uuid>,
    /// When it finished, µs.
    pub finished_at: Option<i64>,
    /// Who finished it.
    pub finished_by: Option<Uuid>,
    /// When it was cancelled, µs.
    #[serde(default)]
    pub cancelled_at: Option<i64>,
    /// Who cancelled it.
    #[serde(default)]
    pub cancelled_by: Option<Uuid>,
    /// Why it was cancelled (a code).
    #[serde(default)]
    pub cancel_reason: Option<CancelReason>,
    /// The inspector's note on the cancellation.
    #[serde(default)]
    pub cancel_note: Option<String>,
}

/// A comment on an item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemComment {
    /// Event seq.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// Author.
    pub by: Uuid,
    /// Text.
    pub text: String,
}

/// An evidence reference attached to an item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceEntry {
    /// Event seq.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// Who attached it.
    pub by: Uuid,
    /// The reference.
    #[serde(flatten)]
    pub evidence: Evidence,
}

/// The inspector's pending request for a photo of an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhotoRequest {
    /// Seq of the `request_photo` event.
    pub seq: u64,
    /// Its server time, µs.
    pub ts: i64,
    /// Who asked.
    pub by: Uuid,
}

/// One item's state; an item without `result` is unanswered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ItemState {
    /// Current result (never `clear`).
    pub result: Option<ItemResult>,
    /// The inspector's comment on the result.
    pub comment: Option<String>,
    /// Violation description.
    pub violation: Option<String>,
    /// Server time of the result: the recording anchor (the seen frame's time when the server
    /// placed the mark on it, see `proto::Seen`).
    pub result_ts: Option<i64>,
    /// Seq of the result's event.
    pub result_seq: Option<u64>,
    /// Who set the result.
    pub result_by: Option<Uuid>,
    /// Discussion.
    pub comments: Vec<ItemComment>,
    /// Evidence.
    pub evidence: Vec<EvidenceEntry>,
    /// A photo the inspector asked for and no photo of the item has answered yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub photo_request: Option<PhotoRequest>,
}

/// Last location of a participant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationState {
    /// The sample.
    #[serde(flatten)]
    pub sample: Location,
    /// Server time of acceptance, µs.
    pub server_ts: i64,
}

/// One participant as seen by everybody.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ParticipantState {
    /// Role (absent only for a participant known from an operation without a join).
    pub role: Option<Role>,
    /// Name.
    pub display_name: String,
    /// Device kind.
    pub device: String,
    /// Has at least one socket.
    pub online: bool,
    /// Last join, µs.
    pub joined_at: Option<i64>,
    /// Last leave, µs.
    pub left_at: Option<i64>,
    /// Last reported quality.
    pub quality: Option<Quality>,
    /// Last reported round-trip time.
    pub rtt_ms: Option<u32>,
    /// Last reported network kind.
    pub network: Option<String>,
    /// Last reported page visibility.
    pub visible: Option<bool>,
    /// Last location.
    pub location: Option<LocationState>,
    /// Why the device last had no position (cleared by the next location).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_fix: Option<crate::trust::NoFix>,
    /// The server's latest location-trust verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verdict: Option<crate::trust::Verdict>,
    /// What the participant's browser lacks, from its last join (`client.missing`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<crate::proto::MissingFeature>,
    /// What the phone last said it sends of its camera (`presence.video_mode`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video_mode: Option<crate::proto::VideoMode>,
    /// Why it sends stills (`presence.stills_reason`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stills_reason: Option<crate::proto::StillsReason>,
    /// The stills it sent (`frame` events): how many, and the latest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frames: Option<FramesState>,
}

/// A participant's stills (`frame` events) as the fold keeps them: the count (the quota's)
/// and the latest one (what a live page shows in place of video). The log has each one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FramesState {
    /// How many.
    pub count: u32,
    /// The latest `frame` event's seq.
    pub last_seq: u64,
    /// Its evidence id.
    pub last_id: String,
    /// Server time of its receipt, µs.
    pub last_at: i64,
    /// Why it was sent.
    pub last_reason: crate::proto::FrameReason,
}

/// The finalized recording as the log names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingState {
    /// Seq of the `recording_finalized` event.
    pub seq: u64,
    /// The file's name in the recording directory.
    pub file: String,
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Duration, ms.
    pub duration_ms: i64,
}

/// The whole inspection state: a pure fold of the event log.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct State {
    /// Lifecycle.
    pub lifecycle: LifecycleState,
    /// Items that have anything (absent = unanswered, nothing attached).
    pub items: BTreeMap<String, ItemState>,
    /// Everybody who ever joined.
    pub participants: BTreeMap<Uuid, ParticipantState>,
    /// The finalized recording as logged (`recording_finalized`; the latest one; boxed: the
    /// room's messages carry states, and most have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recording: Option<Box<RecordingState>>,
    /// The act, once formed (boxed: most states have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<crate::act::ActState>>,
    /// Each side's rating after the end (`rating` events): when first given, the latest.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ratings: BTreeMap<crate::rating::RatingSide, crate::rating::RatingHead>,
    /// Free-form findings of an on-site inspection, in log order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FindingState>,
    /// The phone's camera and the inspector's pointers (issue 25; boxed: most states have
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub camera: Option<Box<crate::camera::CameraState>>,
}

/// A free-form finding as the log holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FindingState {
    /// Seq of the `finding` event.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// When the device says it was written, ms (a queued finding).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_time: Option<i64>,
    /// Who.
    pub by: Uuid,
    /// What was found.
    pub text: String,
    /// Where the device was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<Location>,
    /// The photos and videos attached to this finding, in log order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<EvidenceEntry>,
}

impl State {
    /// Every piece of evidence of the inspection: the items' (in item order), then the
    /// findings' (in log order).
    pub fn all_evidence(&self) -> impl Iterator<Item = &EvidenceEntry> {
        self.items
            .values()
            .flat_map(|i| i.evidence.iter())
            .chain(self.findings.iter().flat_map(|f| f.evidence.iter()))
    }

    /// The free-form finding logged at `seq`, if there is one.
    pub fn finding(&self, seq: u64) -> Option<&FindingState> {
        // Findings are pushed in log order, so their seqs are sorted.
        self.findings
            .binary_search_by_key(&seq, |f| f.seq)
            .ok()
            .map(|i| &self.findings[i])
    }

    fn apply_act(&mut self, seq: u64, ts: i64, a: &Operation) {
        use crate::act::{ActRefusal, ActSignature, ActState};
        match a {
            Operation::ActFormed {
                sha256,
                size,
                head_seq,
                head_hash,
                language,
            } => {
                self.act = Some(Box::new(ActState {
                    seq,
                    ts,
                    sha256: sha256.clone(),
                    size: *size,
                    head_seq: *head_seq,
                    head_hash: head_hash.clone(),
                    language: language.clone(),
                    signatures: Vec::new(),
                    refusals: Vec::new(),
                }));
            }
            Operation::ActSigned {
                role,
                signer,
                certificate_sha256,
                signature_sha256,
                scheme,
                ..
            } => {
                if let Some(act) = &mut self.act {
                    act.signatures.push(ActSignature {
                        seq,
                        ts,
                        role: *role,
                        signer: signer.clone(),
                        certificate_sha256: certificate_sha256.clone(),
                        signature_sha256: signature_sha256.clone(),
                        scheme: scheme.clone(),
                    });
                }
            }
            Operation::ActRefused {
                role,
                signer,
                reason,
                ..
            } => {
                if let Some(act) = &mut self.act {
                    act.refusals.push(ActRefusal {
                        seq,
                        ts,
                        role: *role,
                        signer: signer.clone(),
                        reason: reason.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    /// Applies one event. Validation happened before sequencing, so this never refuses.
    pub fn apply(&mut self, ev: &Event) {
        let ts = ev.server_ts;
        let by = ev.participant_id;
        match &ev.body {
            EventBody::Join(j) => {
                let p = self.participants.entry(by).or_default();
                p.role = Some(j.role);
                p.display_name = j.display_name.clone();
                p.device = j.device.clone();
                p.online = true;
                p.joined_at = Some(ts);
                p.missing = j.client.missing.clone();
            }
            EventBody::Leave(_) => {
                let p = self.participants.entry(by).or_default();
                p.online = false;
                p.left_at = Some(ts);
            }
            EventBody::Verdict(v) => {
                self.participants.entry(by).or_default().verdict = Some(v.clone());
            }
            EventBody::Op(op) => match op {
                Operation::SetResult {
                    item_id,
                    result,
                    comment,
                    violation,
                    seen,
                } => {
                    let it = self.items.entry(item_id.clone()).or_default();
                    if *result == ItemResult::Clear {
                        it.result = None;
                        it.comment = None;
                        it.violation = None;
                        it.result_ts = None;
                        it.result_seq = None;
                        it.result_by = None;
                    } else {
                        it.result = Some(*result);
                        it.comment = comment.clone();
                        it.violation = violation.clone();
                        // The mark's moment: the frame the marker saw, where the server
                        // placed it there (proto::Seen), else the server's time.
                        it.result_ts = Some(match seen {
                            Some(crate::proto::Seen {
                                rule: Some(crate::proto::SeenRule::SeenFrame),
                                at_micros: Some(t),
                                ..
                            }) => *t,
                            _ => ts,
                        });
                        it.result_seq = Some(ev.seq);
                        it.result_by = Some(by);
                    }
                }
                Operation::Comment { item_id, text } => {
                    self.items
                        .entry(item_id.clone())
                        .or_default()
                        .comments
                        .push(ItemComment {
                            seq: ev.seq,
                            ts,
                            by,
                            text: text.clone(),
                        });
                }
                Operation::AttachEvidence {
                    item_id,
                    finding_seq,
                    evidence,
                } => {
                    let entry = EvidenceEntry {
                        seq: ev.seq,
                        ts,
                        by,
                        evidence: (**evidence).clone(),
                    };
                    match (item_id, finding_seq) {
                        (Some(item_id), _) => {
                            let it = self.items.entry(item_id.clone()).or_default();
                            // A photo of the item answers the inspector's request for one.
                            if evidence.kind == EvidenceKind::Photo {
                                it.photo_request = None;
                            }
                            it.evidence.push(entry);
                        }
                        (None, Some(seq)) => {
                            // The room admits it only for a logged finding.
                            if let Ok(i) = self.findings.binary_search_by_key(seq, |f| f.seq) {
                                self.findings[i].evidence.push(entry);
                            }
                        }
                        (None, None) => {}
                    }
                }
                Operation::Finding { text, location } => self.findings.push(FindingState {
                    seq: ev.seq,
                    ts,
                    device_time: ev.device_time,
                    by,
                    text: text.clone(),
                    location: location.clone(),
                    evidence: Vec::new(),
                }),
                Operation::RequestPhoto { item_id } => {
                    self.items.entry(item_id.clone()).or_default().photo_request =
                        Some(PhotoRequest {
                            seq: ev.seq,
                            ts,
                            by,
                        });
                }
                Operation::Start => {
                    self.lifecycle.status = Status::Live;
                    self.lifecycle.started_at = Some(ts);
                    self.lifecycle.started_by = Some(by);
                }
                Operation::Finish => {
                    self.lifecycle.status = Status::Finished;
                    self.lifecycle.finished_at = Some(ts);
                    self.lifecycle.finished_by = Some(by);
                }
                Operation::Cancel { reason, note } => {
                    self.lifecycle.status = Status::Cancelled;
                    self.lifecycle.cancelled_at = Some(ts);
                    self.lifecycle.cancelled_by = Some(by);
                    self.lifecycle.cancel_reason = *reason;
                    self.lifecycle.cancel_note = note.clone();
                }
                Operation::Location(l) => {
                    let p = self.participants.entry(by).or_default();
                    p.location = Some(LocationState {
                        sample: l.clone(),
                        server_ts: ts,
                    });
                    p.no_fix = None;
                }
                Operation::LocationUnavailable { reason } => {
                    self.participants.entry(by).or_default().no_fix = Some(*reason);
                }
                // Where a chapter begins is the recording's business (signaling reads the
                // log); the state has nothing to keep.
                Operation::Focus { .. } => {}
                Operation::CameraCaps { caps, settings } => {
                    self.camera
                        .get_or_insert_with(Default::default)
                        .report(ev.seq, by, caps, settings);
                }
                Operation::Camera { command } => {
                    self.camera
                        .get_or_insert_with(Default::default)
                        .command(ev.seq, command);
                }
                Operation::Pointer { at, from, text } => {
                    self.camera.get_or_insert_with(Default::default).pointer(
                        crate::camera::PointerState {
                            seq: ev.seq,
                            ts,
                            at: *at,
                            from: *from,
                            text: text.clone(),
                        },
                    );
                }
                Operation::RecordingFinalized {
                    file,
                    sha256,
                    size,
                    duration_ms,
                } => {
                    self.recording = Some(Box::new(RecordingState {
                        seq: ev.seq,
                        file: file.clone(),
                        sha256: sha256.clone(),
                        size: *size,
                        duration_ms: *duration_ms,
                    }));
                }
                Operation::ActFormed { .. }
                | Operation::ActSigned { .. }
                | Operation::ActRefused { .. } => self.apply_act(ev.seq, ts, op),
                Operation::Rating { side, .. } => {
                    let first = self.ratings.get(side).map(|h| (h.first_seq, h.first_ts));
                    let (first_seq, first_ts) = first.unwrap_or((ev.seq, ts));
                    self.ratings.insert(
                        *side,
                        crate::rating::RatingHead {
                            first_seq,
                            first_ts,
                            seq: ev.seq,
                            ts,
                            by,
                        },
                    );
                }
                Operation::Presence(Presence {
                    quality,
                    rtt_ms,
                    network,
                    visible,
                    video_mode,
                    stills_reason,
                }) => {
                    let p = self.participants.entry(by).or_default();
                    p.quality = Some(*quality);
                    p.rtt_ms = *rtt_ms;
                    p.network = network.clone();
                    p.visible = *visible;
                    p.video_mode = *video_mode;
                    p.stills_reason = *stills_reason;
                }
                Operation::Frame { evidence, reason } => {
                    let p = self.participants.entry(by).or_default();
                    let count = p.frames.as_ref().map_or(0, |f| f.count) + 1;
                    p.frames = Some(FramesState {
                        count,
                        last_seq: ev.seq,
                        last_id: evidence.id.clone(),
                        last_at: evidence.at_micros.unwrap_or(ts),
                        last_reason: *reason,
                    });
                }
                Operation::RequestFrame => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Presence;

    #[test]
    fn the_lifecycle_rule() {
        let set = Operation::SetResult {
            item_id: "q1".into(),
            result: ItemResult::Compliant,
            comment: None,
            violation: None,
            seen: None,
        };
        let cancel = Operation::Cancel {
            reason: None,
            note: None,
        };
        let presence = Operation::Presence(Presence {
            quality: Quality::Good,
            rtt_ms: None,
            network: None,
            visible: None,
            video_mode: None,
            stills_reason: None,
        });
        let request = Operation::RequestPhoto {
            item_id: "q1".into(),
        };
        let attach = |kind: &str| Operation::AttachEvidence {
            item_id: Some("q1".into()),
            finding_seq: None,
            evidence: Box::new(
                serde_json::from_value(serde_json::json!({"id": "e1", "kind": kind}))
                    .expect("evidence"),
            ),
        };
        let (photo, clip) = (attach("photo"), attach("clip"));
        let signed = Operation::ActSigned {
            act_sha256: "a".repeat(64),
            role: crate::act::SignerRole::Official,
            signer: "Петров".into(),
            certificate_sha256: "b".repeat(64),
            signature_sha256: "c".repeat(64),
            scheme: "p256-webcrypto-cms".into(),
        };
        use Source::{Client, Server};
        let ops: [(&Operation, Source); 11] = [
            (&Operation::Start, Client),
            (&Operation::Finish, Client),
            (&cancel, Server),
            (&set, Client),
            (&presence, Client),
            (&request, Client),
            (&photo, Server),
            (&clip, Server),
            (&clip, Client),
            (&signed, Server),
            (&signed, Client),
        ];
        use Status::*;
        let (nl, af, c, nf, fb) = (
            Some("not_live"),
            Some("already_finished"),
            Some("cancelled"),
            Some("not_finished"),
            Some("forbidden"),
        );
        let st = Some("already_started");
        let table: [(Status, [Option<&str>; 11]); 4] = [
            // start, finish, cancel, set_result, presence, request_photo, photo (server),
            // clip (server), clip (client), act_signed (server), act_signed (client)
            (
                NotStarted,
                [None, nl, None, nl, None, nl, nl, nl, nl, nf, fb],
            ),
            (
                Live,
                [st, None, None, None, None, None, None, None, None, nf, fb],
            ),
            (Finished, [st, af, af, af, None, af, af, None, af, None, fb]),
            (Cancelled, [c, c, c, c, None, c, c, c, c, c, fb]),
        ];
        for (status, want) in table {
            let got: Vec<Option<String>> = ops
                .iter()
                .map(|(op, source)| status.allows(op, *source).err().map(|e| e.code))
                .collect();
            let want: Vec<Option<String>> = want.iter().map(|w| w.map(String::from)).collect();
            assert_eq!(got, want, "{status:?}");
        }
    }

    #[test]
    fn the_recordings_event_is_the_servers_after_the_end_only() {
        let rec = Operation::RecordingFinalized {
            file: "recording.webm".into(),
            sha256: "b".repeat(64),
            size: 10,
            duration_ms: 1000,
        };
        assert!(rec.validate().is_ok());
        let code = |s: Status, src| s.allows(&rec, src).err().map(|e| e.code);
        for s in [
            Status::NotStarted,
            Status::Live,
            Status::Finished,
            Status::Cancelled,
        ] {
            assert_eq!(
                code(s, Source::Client).as_deref(),
                Some(codes::FORBIDDEN),
                "{s:?}"
            );
        }
        assert_eq!(
            code(Status::Live, Source::Server).as_deref(),
            Some(codes::NOT_FINISHED)
        );
        assert_eq!(code(Status::Finished, Source::Server), None);
        assert_eq!(
            code(Status::Cancelled, Source::Server),
            None,
            "a cancelled log takes it"
        );
        // A client frame naming it is refused before anything else.
        let frame = serde_json::json!({"type": "op", "op_id": "x", "op": {
            "kind": "recording_finalized", "file": "recording.webm", "sha256": "b".repeat(64),
            "size": 10, "duration_ms": 1000}});
        let err = crate::proto::decode(&frame.to_string()).expect_err("refused");
        assert_eq!(err.error.code, codes::FORBIDDEN);
        for bad in ["../x", "a/b", ".hidden", ""] {
            let op = Operation::RecordingFinalized {
                file: bad.into(),
                sha256: "b".repeat(64),
                size: 1,
                duration_ms: 0,
            };
            assert!(op.validate().is_err(), "{bad:?}");
        }
        let mut st = State::default();
        st.apply(&Event {
            seq: 7,
            server_ts: 1,
            participant_id: Uuid::nil(),
            client_op_id: None,
            device_time: None,
            clock_offset_ms: None,
            body: EventBody::Op(rec),
        });
        assert_eq!(
            st.recording.as_ref().map(|r| (r.seq, r.size)),
            Some((7, 10))
        );
    }

    #[test]
    fn cancel_is_folded_with_its_reason() {
        let mut s = State::default();
        let by = Uuid::from_u128(9);
        s.apply(&Event {
            seq: 1,
            server_ts: 10,
            participant_id: by,
            client_op_id: None,
            device_time: None,
            clock_offset_ms: None,
            body: EventBody::Op(Operation::Cancel {
                reason: Some(CancelReason::Withdrawn),
                note: Some("приказ отменён".into()),
            }),
        });
        assert_eq!(s.lifecycle.status, Status::Cancelled);
        assert_eq!(
            (s.lifecycle.cancelled_at, s.lifecycle.cancelled_by),
            (Some(10), Some(by))
        );
        assert_eq!(s.lifecycle.cancel_reason, Some(CancelReason::Withdrawn));
        assert_eq!(s.lifecycle.cancel_note.as_deref(), Some("приказ отменён"));
    }
}
