//! One inspection's sans-IO state machine: validates, sequences and orders events; the IO
//! loop around it persists, acknowledges and broadcasts what it asks for.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;

use serde_json::{json, Value};
use uuid::Uuid;

use crate::chain::{CommittedEvent, GENESIS_HASH};
use crate::domain::{ItemSpec, Principal, Role, RoomSpec, Site};
use crate::geo::{GeoError, Geolocation, RawGeolocation};
use crate::proto::{codes, ClientInfo, OpError, Operation};
use crate::quota::{Quotas, Usage};
use crate::state::{Event, EventBody, JoinInfo, LeaveInfo, LeaveReason, Source, State};
use crate::trust::{Assessor, ClientContext, TrustConfig};

/// Identifies one socket within the process.
pub type ConnId = u64;

/// Where an operation came from, so its answer can go back there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Origin {
    /// A socket.
    Conn(ConnId),
    /// A server-side call ([`crate::SyncHub::submit`]); the number is the IO layer's request id.
    Api(u64),
}

/// A consistent view of an inspection: its state after event `seq`.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The inspection.
    pub inspection_id: Uuid,
    /// Last event included.
    pub seq: u64,
    /// The state.
    pub state: State,
}

/// What a room is restored from (the database, or nothing for a new inspection).
#[derive(Debug, Clone, Default)]
pub struct Restored {
    /// State after the last stored event.
    pub state: State,
    /// Last stored seq (0 if none).
    pub seq: u64,
    /// Hash of the last stored event.
    pub hash: Option<String>,
    /// Server timestamp of the last stored event.
    pub ts: i64,
    /// Every stored (participant, op id) with its seq and timestamp.
    pub op_ids: HashMap<(Uuid, String), (u64, i64)>,
    /// The most recent stored events, oldest first.
    pub recent: VecDeque<Arc<CommittedEvent>>,
}

/// Inputs of the room; `now` is the server time in µs since the epoch.
#[derive(Debug)]
pub enum Input {
    /// A socket finished its hello.
    Connect {
        /// The socket.
        conn: ConnId,
        /// Who.
        who: Principal,
        /// The client's last seen seq.
        last_seq: Option<u64>,
        /// What the browser said about itself.
        client: ClientInfo,
        /// The extension's welcome addition.
        rtc: Option<Value>,
        /// Now.
        now: i64,
    },
    /// A socket went away.
    Disconnect {
        /// The socket.
        conn: ConnId,
        /// Why.
        reason: LeaveReason,
        /// Now.
        now: i64,
    },
    /// An operation.
    Op {
        /// Where to answer.
        origin: Origin,
        /// Who.
        who: Principal,
        /// The client's op id.
        op_id: Option<String>,
        /// What.
        op: Operation,
        /// When the device made it (a queued on-site operation), ms since the epoch.
        device_time: Option<i64>,
        /// The device clock's offset measured for the batch this op came in: the server's
        /// receipt minus the device's send time, ms (docs/protocol.md, "On-site queue"). A
        /// queued position is scored at its device time shifted by it, not at its receipt.
        clock_offset_ms: Option<i64>,
        /// Now.
        now: i64,
    },
    /// Every event up to this seq is durable.
    Committed {
        /// Highest durable seq.
        upto: u64,
    },
}

/// What the welcome carries besides the fixed fields.
#[derive(Debug, Clone)]
pub enum WelcomeBody {
    /// The events the client missed.
    Events(Vec<Arc<CommittedEvent>>),
    /// The full state.
    Snapshot(State),
}

/// Outputs of the room, in the order they must be carried out.
#[derive(Debug)]
pub enum Output {
    /// Send the welcome to a socket.
    Welcome {
        /// The socket.
        conn: ConnId,
        /// Who it is.
        who: Principal,
        /// Seq the welcome is consistent with.
        seq: u64,
        /// Events or snapshot.
        body: WelcomeBody,
        /// Extension's addition.
        rtc: Option<Value>,
    },
    /// Append this event to the database; answer with [`Input::Committed`].
    Persist(Arc<CommittedEvent>),
    /// The operation from `origin` is durable.
    Ack {
        /// Where to answer.
        origin: Origin,
        /// The client's op id.
        op_id: Option<String>,
        /// The event.
        event: Arc<CommittedEvent>,
    },
    /// Send this durable event to every socket of the inspection (and the hub's listeners).
    Broadcast(Arc<CommittedEvent>),
    /// The operation was refused; nothing changed.
    Reject {
        /// Where to answer.
        origin: Origin,
        /// The client's op id.
        op_id: Option<String>,
        /// Why.
        error: OpError,
    },
}

/// What a queued op says about the device's clock: when it was made (device clock) and the
/// batch's measured offset. Both absent for a live op.
#[derive(Debug, Clone, Copy, Default)]
struct DeviceClock {
    time: Option<i64>,
    offset_ms: Option<i64>,
}

#[derive(Debug)]
struct Pending {
    origin: Option<Origin>,
    event: Event,
    sealed: Arc<CommittedEvent>,
}

/// Room tuning.
#[derive(Debug, Clone)]
pub struct RoomConfig {
    /// How many recent events are kept for replay to reconnecting clients.
    pub replay_window: usize,
    /// What those recent events may weigh in memory (see [`replay_cost`]); older ones go first
    /// and a client further behind gets a snapshot.
    pub replay_bytes: usize,
    /// What one participant may add (comments, evidence, bytes).
    pub quotas: Quotas,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            replay_window: 1024,
            replay_bytes: 256 * 1024,
            quotas: Quotas::default(),
        }
    }
}

/// The memory one kept event costs, roughly: its payload twice (text and tree) and the fixed
/// fields, hashes and allocations.
pub fn replay_cost(e: &CommittedEvent) -> usize {
    2 * e.payload_text.len() + e.kind.len() + e.client_op_id.as_ref().map_or(0, String::len) + 384
}

/// One inspection's state machine.
#[derive(Debug)]
pub struct Room {
    id: Uuid,
    items: Vec<ItemSpec>,
    item_ids: HashSet<String>,
    site: Option<Site>,
    config: RoomConfig,
    head: State,
    head_seq: u64,
    head_hash: String,
    head_ts: i64,
    committed: State,
    committed_seq: u64,
    pending: VecDeque<Pending>,
    dup_waiters: Vec<(u64, i64, Origin, String)>,
    op_ids: HashMap<(Uuid, String), (u64, i64)>,
    recent: VecDeque<Arc<CommittedEvent>>,
    /// Sum of [`replay_cost`] over `recent`.
    recent_bytes: usize,
    conns: HashMap<ConnId, Uuid>,
    online: HashMap<Uuid, usize>,
    out: VecDeque<Output>,
    /// Location-trust assessors per participant, fed every accepted sample. Rebuilt from new
    /// samples after a room reload (the verdicts themselves are in the log).
    assessors: HashMap<Uuid, Assessor>,
    /// What each participant's browser said about itself in `hello`.
    clients: HashMap<Uuid, ClientContext>,
    /// What each participant added, against `config.quotas` (a projection of `head`).
    usage: Usage,
    /// The camera's own rate per participant (issue 25).
    camera_limits: crate::camera::CameraLimits,
}

fn may(role: Role, op: &Operation) -> bool {
    match role {
        Role::Inspector => true,
        Role::Business => matches!(
            op,
            Operation::Comment { .. }
                | Operation::AttachEvidence { .. }
                | Operation::Frame { .. }
                | Operation::Location(_)
                | Operation::LocationUnavailable { .. }
                | Operation::Presence(_)
                | Operation::CameraCaps { .. }
                | Operation::ActSigned { .. }
                | Operation::ActRefused { .. }
                | Operation::Rating { .. }
        ),
        Role::Observer => matches!(op, Operation::Presence(_)),
    }
}

impl Room {
    /// A room restored from storage. Participants the log still shows online (the server
    /// stopped under them) get a `leave` with reason `server_restart`.
    pub fn new(spec: &RoomSpec, restored: Restored, config: RoomConfig, now: i64) -> Self {
        let mut room = Self {
            id: spec.inspection_id,
            items: spec.items.clone(),
            item_ids: spec.items.iter().map(|i| i.id.clone()).collect(),
            site: spec.site,
            config,
            head: restored.state.clone(),
            head_seq: restored.seq,
            head_hash: restored.hash.unwrap_or_else(|| GENESIS_HASH.to_string()),
            head_ts: restored.ts,
            committed: restored.state,
            committed_seq: restored.seq,
            pending: VecDeque::new(),
            dup_waiters: Vec::new(),
            op_ids: restored.op_ids,
            recent: restored.recent,
            recent_bytes: 0,
            conns: HashMap::new(),
            online: HashMap::new(),
            out: VecDeque::new(),
            assessors: HashMap::new(),
            clients: HashMap::new(),
            usage: Usage::default(),
            camera_limits: Default::default(),
        };
        room.usage = Usage::from_state(&room.head);
        room.recent_bytes = room.recent.iter().map(|e| replay_cost(e)).sum();
        room.trim_recent();
        let stale: Vec<Uuid> = room
            .head
            .participants
            .iter()
            .filter(|(_, p)| p.online)
            .map(|(id, _)| *id)
            .collect();
        for pid in stale {
            let body = EventBody::Leave(LeaveInfo {
                reason: LeaveReason::ServerRestart,
            });
            room.append(pid, None, body, None, now);
        }
        room
    }

    /// The inspection.
    pub fn inspection_id(&self) -> Uuid {
        self.id
    }

    /// The checklist.
    pub fn items(&self) -> &[ItemSpec] {
        &self.items
    }

    /// The expected site.
    pub fn site(&self) -> Option<Site> {
        self.site
    }

    /// The durable state.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            inspection_id: self.id,
            seq: self.committed_seq,
            state: self.committed.clone(),
        }
    }

    /// True when nothing is connected or in flight: the room may be unloaded.
    pub fn is_idle(&self) -> bool {
        self.conns.is_empty() && self.pending.is_empty()
    }

    /// Number of sockets.
    pub fn connections(&self) -> usize {
        self.conns.len()
    }

    /// Next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// The origins of everything still waiting for a commit: used when the room has to be
    /// abandoned after a storage failure.
    pub fn abandon(&mut self) -> Vec<(Origin, Option<String>)> {
        let mut v: Vec<_> = self
            .pending
            .drain(..)
            .filter_map(|p| p.origin.map(|o| (o, p.event.client_op_id)))
            .collect();
        v.extend(
            self.dup_waiters
                .drain(..)
                .map(|(_, _, o, id)| (o, Some(id))),
        );
        v
    }

    /// Feeds one input.
    pub fn handle(&mut self, input: Input) {
        match input {
            Input::Connect {
                conn,
                who,
                last_seq,
                client,
                rtc,
                now,
            } => self.connect(conn, who, last_seq, client, rtc, now),
            Input::Disconnect { conn, reason, now } => {
                let Some(pid) = self.conns.remove(&conn) else {
                    return;
                };
                let n = self.online.entry(pid).or_insert(1);
                *n -= 1;
                if *n == 0 {
                    self.online.remove(&pid);
                    self.append(pid, None, EventBody::Leave(LeaveInfo { reason }), None, now);
                }
            }
            Input::Op {
                origin,
                who,
                op_id,
                op,
                device_time,
                clock_offset_ms,
                now,
            } => self.op(
                origin,
                who,
                op_id,
                op,
                DeviceClock {
                    time: device_time,
                    offset_ms: clock_offset_ms,
                },
                now,
            ),
            Input::Committed { upto } => self.committed(upto),
        }
    }

    fn connect(
        &mut self,
        conn: ConnId,
        who: Principal,
        last_seq: Option<u64>,
        client: ClientInfo,
        rtc: Option<Value>,
        now: i64,
    ) {
        let oldest = self
            .recent
            .front()
            .map(|e| e.seq)
            .unwrap_or(self.committed_seq + 1);
        let body = match last_seq {
            Some(ls) if ls <= self.committed_seq && ls + 1 >= oldest => {
                WelcomeBody::Events(self.recent.iter().filter(|e| e.seq > ls).cloned().collect())
            }
            _ => WelcomeBody::Snapshot(self.committed.clone()),
        };
        self.out.push_back(Output::Welcome {
            conn,
            who: who.clone(),
            seq: self.committed_seq,
            body,
            rtc,
        });
        self.conns.insert(conn, who.participant_id);
        let context = ClientContext {
            timezone: client.timezone.clone(),
            webdriver: client.webdriver,
            user_agent: client.user_agent.clone(),
            platform: client.platform.clone(),
            hints: client.hints.clone(),
        };
        if self.clients.get(&who.participant_id) != Some(&context) {
            // A new device context starts a new assessment.
            self.assessors.remove(&who.participant_id);
            self.clients.insert(who.participant_id, context);
        }
        let n = self.online.entry(who.participant_id).or_insert(0);
        *n += 1;
        if *n == 1 {
            let body = EventBody::Join(JoinInfo {
                role: who.role,
                display_name: who.display_name.clone(),
                device: who.device.clone(),
                client,
            });
            self.append(who.participant_id, None, body, None, now);
        }
    }

    /// Whether the lifecycle, as the sequenced log stands (`head`, committed or not: the
    /// order is decided here), allows the operation.
    fn check_lifecycle(&self, op: &Operation, origin: Origin) -> Result<(), OpError> {
        let source = match origin {
            Origin::Conn(_) => Source::Client,
            Origin::Api(_) => Source::Server,
        };
        self.head.lifecycle.status.allows(op, source)
    }

    fn op(
        &mut self,
        origin: Origin,
        who: Principal,
        op_id: Option<String>,
        op: Operation,
        device: DeviceClock,
        now: i64,
    ) {
        let reject = |error: OpError| Output::Reject {
            origin,
            op_id: op_id.clone(),
            error,
        };
        if let Some(id) = &op_id {
            if let Some(&(seq, ts)) = self.op_ids.get(&(who.participant_id, id.clone())) {
                if seq <= self.committed_seq {
                    let mut e =
                        OpError::new(codes::DUPLICATE_OP_ID, "this op_id was already applied");
                    e.original = Some((seq, ts));
                    self.out.push_back(reject(e));
                } else {
                    self.dup_waiters.push((seq, ts, origin, id.clone()));
                }
                return;
            }
        }
        if !may(who.role, &op) {
            let e = OpError::new(
                codes::FORBIDDEN,
                format!("{} may not do {}", who.role.as_str(), op.kind()),
            );
            self.out.push_back(reject(e));
            return;
        }
        if let Some(item) = op.item_id() {
            if !self.item_ids.contains(item) {
                let e = OpError::new(
                    codes::UNKNOWN_ITEM,
                    format!("no item {item:?} in this checklist"),
                );
                self.out.push_back(reject(e));
                return;
            }
        }
        // Evidence of a finding needs that finding in the log (sequenced before it).
        if let Operation::AttachEvidence {
            finding_seq: Some(seq),
            ..
        } = &op
        {
            if self.head.finding(*seq).is_none() {
                let e = OpError::new(
                    codes::UNKNOWN_FINDING,
                    format!("event {seq} is no free-form finding of this inspection"),
                );
                self.out.push_back(reject(e));
                return;
            }
        }
        // Evidence is what the server stored and hashed itself (an upload, a cut of the
        // recording); a socket cannot claim it (proto::decode refuses it first).
        if matches!(
            (origin, &op),
            (
                Origin::Conn(_),
                Operation::AttachEvidence { .. } | Operation::Frame { .. }
            )
        ) {
            let e = OpError::new(
                codes::UPLOAD_REQUIRED,
                "evidence is attached by uploading it (POST /api/inspections/{id}/evidence)",
            );
            self.out.push_back(reject(e));
            return;
        }
        if let Err(e) = self.check_lifecycle(&op, origin) {
            self.out.push_back(reject(e));
            return;
        }
        if let Err(e) = crate::act::check(
            self.head.act.as_deref(),
            who.role,
            &op,
            (self.head_seq, &self.head_hash),
        ) {
            self.out.push_back(reject(e));
            return;
        }
        if let Err(e) = crate::rating::check(&self.head.ratings, who.role, &op) {
            self.out.push_back(reject(e));
            return;
        }
        // Camera commands fit the phone's last report; the camera's rate is counted last, so
        // a refused command costs no token.
        if crate::camera::is_camera(&op) {
            let checked = crate::camera::check(self.head.camera.as_deref(), who.role, &op)
                .and_then(|()| self.camera_limits.admit(who.participant_id, now));
            if let Err(e) = checked {
                self.out.push_back(reject(e));
                return;
            }
        }
        // The quotas bound what a participant adds. What the server derives from the finished
        // recording (a clip and a still per violation) is bounded by the checklist instead,
        // the act's events by the act's rules (one act, one answer per party).
        let derived = matches!(
            (origin, &op),
            (Origin::Api(_), Operation::AttachEvidence { evidence, .. }) if evidence.kind.is_derived()
        );
        // A rating is bounded by its rule: one per side, changed in place.
        let rating = matches!(op, Operation::Rating { .. });
        if !derived && !op.is_act() && !rating {
            if let Err(e) = self
                .usage
                .admit(&self.config.quotas, who.participant_id, &op, now)
            {
                self.out.push_back(reject(e));
                return;
            }
        }
        // Location samples are parsed strictly before they count: a rejected sample changes
        // neither the log nor the participant's trust score. The bounds are checked against
        // the receipt; a queued fix is then scored at the moment it was taken, on the server's
        // clock (its device time shifted by the batch's clock offset), so an hour offline does
        // not read as an hour of clock skew.
        let scored_at = |device_ms: i64| match device.offset_ms {
            Some(off) if device.time.is_some() => {
                device_ms.saturating_add(off).saturating_mul(1000).min(now)
            }
            _ => now,
        };
        let sample = match &op {
            Operation::Location(l) => {
                let raw = raw_geolocation(l);
                match Geolocation::parse(&raw, now)
                    .and_then(|_| Geolocation::parse(&raw, scored_at(l.device_ts)))
                {
                    Ok(g) => Some(g),
                    Err(e) => {
                        let mut err = OpError::new(e.code(), e.to_string());
                        err.field = Some(geo_field(&e).into());
                        self.out.push_back(reject(err));
                        return;
                    }
                }
            }
            _ => None,
        };
        let no_fix = match &op {
            Operation::LocationUnavailable { reason } => Some(*reason),
            _ => None,
        };
        let no_fix_at = device.time.map_or(now, scored_at);
        let pid = who.participant_id;
        self.append_at(pid, op_id, EventBody::Op(op), Some(origin), device, now);
        if sample.is_none() && no_fix.is_none() {
            return;
        }
        let assessor = self.assessors.entry(pid).or_insert_with(|| {
            let client = self.clients.get(&pid).cloned().unwrap_or_default();
            Assessor::new(
                TrustConfig::default(),
                self.site.map(|s| (s.lat, s.lon)),
                client,
            )
        });
        let verdict = match (sample, no_fix) {
            (Some(g), _) => assessor.on_sample(&g, g.server_ts_micros()),
            (None, Some(reason)) => assessor.on_no_fix(reason, no_fix_at),
            (None, None) => return,
        };
        let previous = self
            .head
            .participants
            .get(&pid)
            .and_then(|p| p.verdict.as_ref());
        if previous.is_none_or(|p| !p.same_outcome(&verdict)) {
            self.append(pid, None, EventBody::Verdict(verdict), None, now);
        }
    }

    fn append(
        &mut self,
        pid: Uuid,
        op_id: Option<String>,
        body: EventBody,
        origin: Option<Origin>,
        now: i64,
    ) {
        self.append_at(pid, op_id, body, origin, DeviceClock::default(), now);
    }

    fn append_at(
        &mut self,
        pid: Uuid,
        op_id: Option<String>,
        body: EventBody,
        origin: Option<Origin>,
        device: DeviceClock,
        now: i64,
    ) {
        // Strictly increasing timestamps keep recording anchors ordered like the log.
        let ts = now.max(self.head_ts + 1);
        let event = Event {
            seq: self.head_seq + 1,
            server_ts: ts,
            participant_id: pid,
            client_op_id: op_id,
            device_time: device.time,
            clock_offset_ms: device.time.and(device.offset_ms),
            body,
        };
        let sealed = Arc::new(CommittedEvent::seal(self.id, &event, &self.head_hash));
        self.head.apply(&event);
        if let EventBody::Op(op) = &event.body {
            self.usage.record(pid, op, ts);
        }
        self.head_seq = event.seq;
        self.head_ts = ts;
        self.head_hash = sealed.hash.clone();
        if let Some(id) = &event.client_op_id {
            self.op_ids.insert((pid, id.clone()), (event.seq, ts));
        }
        self.out.push_back(Output::Persist(sealed.clone()));
        self.pending.push_back(Pending {
            origin,
            event,
            sealed,
        });
    }

    /// Keeps the replay history within its count and its bytes.
    fn trim_recent(&mut self) {
        while self.recent.len() > self.config.replay_window
            || (self.recent_bytes > self.config.replay_bytes && !self.recent.is_empty())
        {
            if let Some(e) = self.recent.pop_front() {
                self.recent_bytes -= replay_cost(&e);
            }
        }
    }

    /// Events kept for replay, and their [`replay_cost`].
    pub fn replay_history(&self) -> (usize, usize) {
        (self.recent.len(), self.recent_bytes)
    }

    fn committed(&mut self, upto: u64) {
        while self.pending.front().is_some_and(|p| p.event.seq <= upto) {
            // The loop condition guarantees an element.
            let Some(p) = self.pending.pop_front() else {
                break;
            };
            self.committed.apply(&p.event);
            self.committed_seq = p.event.seq;
            self.recent_bytes += replay_cost(&p.sealed);
            self.recent.push_back(p.sealed.clone());
            self.trim_recent();
            if let Some(origin) = p.origin {
                self.out.push_back(Output::Ack {
                    origin,
                    op_id: p.event.client_op_id.clone(),
                    event: p.sealed.clone(),
                });
            }
            self.out.push_back(Output::Broadcast(p.sealed));
        }
        let committed_seq = self.committed_seq;
        let (ready, waiting): (Vec<_>, Vec<_>) = self
            .dup_waiters
            .drain(..)
            .partition(|(seq, ..)| *seq <= committed_seq);
        self.dup_waiters = waiting;
        for (seq, ts, origin, id) in ready {
            let mut e = OpError::new(codes::DUPLICATE_OP_ID, "this op_id was already applied");
            e.original = Some((seq, ts));
            self.out.push_back(Output::Reject {
                origin,
                op_id: Some(id),
                error: e,
            });
        }
    }
}

/// Encodes the welcome message.
#[allow(clippy::too_many_arguments)]
pub fn welcome_message(
    inspection_id: Uuid,
    items: &[ItemSpec],
    site: Option<Site>,
    who: &Principal,
    seq: u64,
    body: &WelcomeBody,
    rtc: Option<&Value>,
    limits: Value,
) -> Value {
    let mut v = json!({
        "type": "welcome",
        "protocol": crate::proto::PROTOCOL_VERSION,
        "inspection_id": inspection_id,
        "you": {"participant_id": who.participant_id, "role": who.role, "display_name": who.display_name},
        "seq": seq,
        "checklist": items,
        "site": site,
        "limits": limits,
    });
    // `v` was built as an object just above.
    let m = v.as_object_mut().expect("welcome is an object");
    match body {
        WelcomeBody::Events(evs) => {
            m.insert(
                "events".into(),
                Value::Array(evs.iter().map(|e| e.to_wire()).collect()),
            );
        }
        WelcomeBody::Snapshot(s) => {
            m.insert(
                "snapshot".into(),
                serde_json::to_value(s).unwrap_or(Value::Null),
            );
        }
    }
    if let Some(r) = rtc {
        m.insert("rtc".into(), r.clone());
    }
    v
}

fn raw_geolocation(l: &crate::proto::Location) -> RawGeolocation {
    RawGeolocation {
        lat: l.lat,
        lon: l.lon,
        accuracy: l.accuracy,
        altitude: l.altitude,
        altitude_accuracy: l.altitude_accuracy,
        heading: l.heading,
        speed: l.speed,
        device_ts: l.device_ts,
    }
}

fn geo_field(e: &GeoError) -> &'static str {
    match e.code() {
        "geo_lat_out_of_range" => "lat",
        "geo_lon_out_of_range" => "lon",
        "geo_accuracy_invalid" => "accuracy",
        "geo_timestamp_in_future" | "geo_timestamp_too_old" => "device_ts",
        _ => "location",
    }
}
