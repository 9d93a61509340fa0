//! The IO shell: one task per live inspection drives its [`Room`], one writer task commits
//! every room's events in groups, one reader loop and one writer task per socket.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sqlx::AnyPool;
use tokio::sync::{broadcast, mpsc, oneshot, Notify};
use uuid::Uuid;

use crate::admission::{Admission, AdmissionConfig};
use crate::chain::CommittedEvent;
use crate::domain::{ExtError, Principal, RoomSpec};
use crate::owner::{Claim, Fence, OneNode, Ownership};
use crate::projection::Projection;
use crate::proto::{
    codes, decode, welcome_frames, ClientMsg, OpError, Operation, HARD_FRAME_LIMIT, MAX_FRAME_BYTES,
};
use crate::quota::Quotas;
use crate::ratelimit::Verdict;
use crate::room::{welcome_message, ConnId, Input, Origin, Output, Room, RoomConfig, Snapshot};
use crate::state::LeaveReason;
use crate::store::{self, SyncError, WriteReq, Written};

/// Receives every client message whose `type` starts with `rtc.` (WebRTC signaling rides the
/// same authenticated socket without this crate knowing about media).
#[async_trait]
pub trait Extension: Send + Sync {
    /// One `rtc.*` message, untouched. `out` pushes messages to this socket at any time.
    async fn on_message(
        &self,
        who: &Principal,
        msg: Value,
        out: mpsc::Sender<Value>,
    ) -> Result<(), ExtError>;
    /// The socket is gone.
    async fn on_close(&self, who: &Principal);
    /// Added to the welcome under `rtc`.
    fn hello(&self, who: &Principal) -> Option<Value>;
    /// The server time of the video frame `who` was sent with RTP timestamp `ts`, if it was:
    /// a mark naming it is placed there (`proto::Seen`). Without media, never.
    fn seen_frame(&self, who: &Principal, ts: u32) -> Option<i64> {
        let _ = (who, ts);
        None
    }
}

/// An extension that refuses every `rtc.*` message (tests, checklist-only deployments).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoExtension;

#[async_trait]
impl Extension for NoExtension {
    async fn on_message(
        &self,
        _: &Principal,
        _: Value,
        _: mpsc::Sender<Value>,
    ) -> Result<(), ExtError> {
        Err(ExtError {
            code: "rtc_unavailable".into(),
            message: "no media on this server".into(),
        })
    }
    async fn on_close(&self, _: &Principal) {}
    fn hello(&self, _: &Principal) -> Option<Value> {
        None
    }
}

/// Tuning of the hub.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Recent events kept per room for reconnecting clients; further behind gets a snapshot.
    pub replay_window: usize,
    /// What those events may weigh per room, bytes (bounds a live inspection's memory).
    pub replay_bytes: usize,
    /// Messages per second per participant (shared by all its sockets).
    pub rate_per_sec: f64,
    /// Burst per participant.
    pub burst: f64,
    /// Sockets one participant may have open at once; more are refused (`too_many_sockets`).
    pub max_sockets_per_participant: usize,
    /// What one participant may add to an inspection (comments, evidence, bytes).
    pub quotas: Quotas,
    /// A welcome longer than this is sent as `welcome_part` messages of at most this many
    /// bytes of its text each.
    pub welcome_part_bytes: usize,
    /// Dropped messages within `flood_window` after which the socket is closed.
    pub flood_drops: u32,
    /// Window of flood detection.
    pub flood_window: Duration,
    /// WebSocket ping period.
    pub ping_interval: Duration,
    /// A socket silent for this long is closed (leave reason `timeout`).
    pub idle_timeout: Duration,
    /// Outbound messages queued per socket; a socket that falls further behind is closed.
    pub outbound_queue: usize,
    /// A room without sockets is unloaded after this long.
    pub room_unload_after: Duration,
    /// Most events per group commit.
    pub max_batch: usize,
    /// SQLite only: how often the WAL is checkpointed beside the writer. Short intervals keep
    /// each checkpoint's flush small, so it does not hold up the commits queued behind it.
    pub sqlite_checkpoint_every: Duration,
    /// Events waiting for the writer (queued or in the commit under way, all rooms) at which
    /// sockets' operations are refused with `overloaded`: bounds the wait of an accepted op
    /// for its ack to about two commits of this many events, instead of queueing into seconds.
    pub max_queued_events: usize,
    /// A commit under way for longer than this (a disk stall, a writer that cannot keep up)
    /// also makes sockets' ops `overloaded`: what is accepted then would wait longer still.
    pub overload_commit_budget: Duration,
    /// The pause suggested with `overloaded` (`retry_after_ms`).
    pub overload_retry_after: Duration,
    /// For tests only (zero otherwise): the writer waits this long per event before each
    /// commit, which makes its capacity small without replacing the store.
    pub test_writer_delay_per_event: Duration,
}

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            replay_window: 1024,
            replay_bytes: 256 * 1024,
            rate_per_sec: 20.0,
            burst: 60.0,
            max_sockets_per_participant: 8,
            quotas: Quotas::default(),
            welcome_part_bytes: 32 * 1024,
            flood_drops: 200,
            flood_window: Duration::from_secs(10),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            outbound_queue: 1024,
            room_unload_after: Duration::from_secs(30),
            max_batch: 4096,
            sqlite_checkpoint_every: Duration::from_millis(100),
            max_queued_events: 1024,
            // A stall this long is exceptional; ordinary slow commits are the queue bound's job.
            overload_commit_budget: Duration::from_secs(1),
            overload_retry_after: Duration::from_millis(250),
            test_writer_delay_per_event: Duration::ZERO,
        }
    }
}

/// Sets the WebSocket limits this protocol expects on an upgrade: 1 MiB hard frame limit
/// (frames over 64 KiB get `frame_too_large` and the socket stays open) and small buffers so
/// that an idle socket costs little memory.
pub fn configure_upgrade<F>(ws: WebSocketUpgrade<F>) -> WebSocketUpgrade<F> {
    ws.max_message_size(HARD_FRAME_LIMIT)
        .max_frame_size(HARD_FRAME_LIMIT)
        .read_buffer_size(4 * 1024)
        .write_buffer_size(4 * 1024)
        .max_write_buffer_size(HARD_FRAME_LIMIT * 2)
}

/// Server time, µs since the Unix epoch.
pub fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// What a socket's writer task sends: one frame, or several that must go out back to back
/// (a welcome in parts) and count as one entry of the bounded outbound queue.
enum Outbound {
    Frame(Message),
    Frames(Vec<Message>),
}

impl From<Message> for Outbound {
    fn from(m: Message) -> Self {
        Outbound::Frame(m)
    }
}

#[derive(Clone)]
struct ConnOut {
    tx: mpsc::Sender<Outbound>,
    kill: Arc<Notify>,
}

enum RoomMsg {
    Connect {
        out: ConnOut,
        input: Input,
    },
    Input(Input),
    Submit {
        req: u64,
        input: Input,
        reply: oneshot::Sender<Result<CommittedEvent, OpError>>,
    },
    Snapshot(oneshot::Sender<Snapshot>),
    Committed {
        upto: u64,
    },
    CommitFailed {
        /// The database did not answer (rather than refused the write).
        unreachable: bool,
    },
    /// The room's claim is gone (another node took the inspection over): close like a failed
    /// commit, so that its sockets reconnect to the new owner.
    Evict,
}

struct RoomHandle {
    tx: mpsc::UnboundedSender<RoomMsg>,
    generation: u64,
}

struct Inner {
    pool: AnyPool,
    /// Who may run which room (one machine: everyone, always).
    ownership: Arc<dyn Ownership>,
    config: SyncConfig,
    rooms: Mutex<HashMap<Uuid, RoomHandle>>,
    writer: mpsc::UnboundedSender<WriteReq>,
    /// Events handed to the writer and not yet committed (or failed), all rooms.
    queued: Arc<AtomicUsize>,
    /// When the writer's commit under way started, µs of `epoch` (0: idle).
    commit_started: Arc<AtomicU64>,
    /// Socket ops let through to a room that has not handled them yet: counted against
    /// `max_queued_events` too, so sockets of many rooms cannot overshoot the bound together.
    admitted: AtomicUsize,
    events: broadcast::Sender<CommittedEvent>,
    next_id: AtomicU64,
    /// Sockets and rate buckets per participant.
    admission: Mutex<Admission>,
    /// The time base of `admission`.
    epoch: tokio::time::Instant,
    /// Set when the server shuts down: every socket closes with 1001.
    down: tokio::sync::watch::Sender<bool>,
}

/// The checklist sync service: owns the rooms of all live inspections and the event writer.
#[derive(Clone)]
pub struct SyncHub {
    inner: Arc<Inner>,
}

fn text(v: &Value) -> Message {
    Message::Text(v.to_string().into())
}

impl SyncHub {
    /// Starts the hub (and its writer task) on the current tokio runtime. The pool must have
    /// the `events` table (migrations/0002_events.sql); `projection` is updated in the same
    /// transaction as every appended event.
    pub fn new(pool: AnyPool, config: SyncConfig, projection: Arc<dyn Projection>) -> Self {
        Self::with_ownership(pool, config, projection, Arc::new(OneNode))
    }

    /// [`SyncHub::new`] for one node of several: a room claims its inspection from
    /// `ownership` before it loads, and every commit checks the claim (`crate::owner`).
    pub fn with_ownership(
        pool: AnyPool,
        config: SyncConfig,
        projection: Arc<dyn Projection>,
        ownership: Arc<dyn Ownership>,
    ) -> Self {
        let (writer, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let commit_started = Arc::new(AtomicU64::new(0));
        let epoch = tokio::time::Instant::now();
        tokio::spawn(store::writer(
            pool.clone(),
            rx,
            projection,
            ownership.clone(),
            store::WriterConfig {
                max_batch: config.max_batch,
                checkpoint_every: config.sqlite_checkpoint_every,
                queued: queued.clone(),
                test_delay_per_event: config.test_writer_delay_per_event,
                commit_started: commit_started.clone(),
                epoch: epoch.into_std(),
            },
        ));
        let (events, _) = broadcast::channel(16 * 1024);
        let admission = Admission::new(AdmissionConfig {
            rate_per_sec: config.rate_per_sec,
            burst: config.burst,
            flood_drops: config.flood_drops,
            flood_window_us: config.flood_window.as_micros() as u64,
            max_sockets: config.max_sockets_per_participant,
        });
        Self {
            inner: Arc::new(Inner {
                admission: Mutex::new(admission),
                epoch,
                commit_started,
                down: tokio::sync::watch::channel(false).0,
                pool,
                ownership,
                config,
                rooms: Mutex::new(HashMap::new()),
                writer,
                queued,
                admitted: AtomicUsize::new(0),
                events,
                next_id: AtomicU64::new(1),
            }),
        }
    }

    /// Closes every socket with 1001 ("going away": reconnect later, unlike 4401) and its
    /// participant's `leave` says `server_restart`. For the server's graceful shutdown.
    pub fn shutdown(&self) {
        let _ = self.inner.down.send(true);
    }

    /// Closes the room of an inspection whose claim this node lost (`crate::owner`): its
    /// sockets are closed (1011) and reconnect, its pending ops are refused; nothing is
    /// appended. No-op when the room is not loaded.
    pub fn evict(&self, inspection_id: Uuid) {
        let tx = self.rooms().get(&inspection_id).map(|h| h.tx.clone());
        if let Some(tx) = tx {
            let _ = tx.send(RoomMsg::Evict);
        }
    }

    /// Every committed event of every inspection, in commit order per inspection.
    pub fn events(&self) -> broadcast::Receiver<CommittedEvent> {
        self.inner.events.subscribe()
    }

    /// Number of inspections currently loaded.
    pub fn live_rooms(&self) -> usize {
        self.rooms().len()
    }

    /// Events waiting for the writer (all rooms).
    pub fn queued_events(&self) -> usize {
        self.inner.queued.load(Ordering::Relaxed)
    }

    /// Whether a socket's op must be refused as `overloaded`. `held` is the socket's first
    /// refused op id: until it comes again every later op is refused too, so a client that
    /// resends in order keeps its order in the log.
    fn overloaded(&self, held: &mut Option<String>, op_id: &str) -> Option<OpError> {
        match held.as_deref() {
            Some(h) if h != op_id => return Some(self.overload_error()),
            Some(_) => *held = None,
            None => {}
        }
        let waiting = self.queued_events() + self.inner.admitted.load(Ordering::Relaxed);
        let started = self.inner.commit_started.load(Ordering::Relaxed);
        let stalled = started != 0
            && self.mono_us().saturating_sub(started)
                > self.inner.config.overload_commit_budget.as_micros() as u64;
        if waiting < self.inner.config.max_queued_events && !stalled {
            self.inner.admitted.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *held = Some(op_id.to_string());
        Some(self.overload_error())
    }

    fn overload_error(&self) -> OpError {
        let mut e = OpError::new(
            codes::OVERLOADED,
            "the server is busy; nothing was applied; resend with the same op_id",
        );
        e.retry_after_ms = Some(self.inner.config.overload_retry_after.as_millis() as u64);
        e
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, RoomHandle>> {
        // A panic while holding this lock leaves a plain map behind; keep serving.
        self.inner.rooms.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn next_id(&self) -> u64 {
        self.inner.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn admission(&self) -> std::sync::MutexGuard<'_, Admission> {
        // The admission table is plain data; a panic elsewhere leaves it usable.
        self.inner
            .admission
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Monotonic µs of the admission table.
    fn mono_us(&self) -> u64 {
        self.inner.epoch.elapsed().as_micros() as u64
    }

    /// Delivers a message to the inspection's room, starting the room if needed.
    fn dispatch(&self, spec: &RoomSpec, mut msg: RoomMsg) -> mpsc::UnboundedSender<RoomMsg> {
        loop {
            let (tx, generation) = {
                let mut rooms = self.rooms();
                match rooms.get(&spec.inspection_id) {
                    Some(h) => (h.tx.clone(), h.generation),
                    None => {
                        let (tx, rx) = mpsc::unbounded_channel();
                        let generation = self.next_id();
                        rooms.insert(
                            spec.inspection_id,
                            RoomHandle {
                                tx: tx.clone(),
                                generation,
                            },
                        );
                        tokio::spawn(run_room(
                            self.clone(),
                            spec.clone(),
                            generation,
                            tx.clone(),
                            rx,
                        ));
                        (tx, generation)
                    }
                }
            };
            match tx.send(msg) {
                Ok(()) => return tx,
                Err(mpsc::error::SendError(m)) => {
                    // The room is shutting down; forget it and start a fresh one.
                    msg = m;
                    self.forget(spec.inspection_id, generation);
                }
            }
        }
    }

    fn forget(&self, id: Uuid, generation: u64) {
        let mut rooms = self.rooms();
        if rooms.get(&id).is_some_and(|h| h.generation == generation) {
            rooms.remove(&id);
        }
    }

    /// A server-side operation (REST start, finish, cancel …), sequenced, checked and
    /// committed like a socket's; the answer comes after the commit.
    pub async fn submit(
        &self,
        who: &Principal,
        spec: &RoomSpec,
        op: Operation,
        client_op_id: Option<String>,
    ) -> Result<CommittedEvent, OpError> {
        self.submit_from_device(who, spec, op, client_op_id, None, None)
            .await
    }

    /// An operation a device queued while offline (the on-site phone's batch): sequenced,
    /// checked and committed like [`SyncHub::submit`], with the device's capture time kept
    /// beside the server's receipt in the event. An op id already committed answers
    /// `duplicate_op_id` with the original's seq and time, and nothing is appended.
    /// `clock_offset_ms` is the batch's measured device-clock offset (receipt minus the
    /// device's send time): a queued position is scored at its device time shifted by it.
    pub async fn submit_from_device(
        &self,
        who: &Principal,
        spec: &RoomSpec,
        op: Operation,
        client_op_id: Option<String>,
        device_time: Option<i64>,
        clock_offset_ms: Option<i64>,
    ) -> Result<CommittedEvent, OpError> {
        op.validate()?;
        let req = self.next_id();
        let (reply, rx) = oneshot::channel();
        let input = Input::Op {
            origin: Origin::Api(req),
            who: who.clone(),
            op_id: client_op_id,
            op,
            device_time,
            clock_offset_ms,
            now: now_micros(),
        };
        self.dispatch(spec, RoomMsg::Submit { req, input, reply });
        rx.await.unwrap_or_else(|_| {
            Err(OpError::new(
                codes::INTERNAL,
                "the inspection's room failed",
            ))
        })
    }

    /// Every committed event of an inspection, oldest first, from the database.
    pub async fn read_events(
        &self,
        inspection_id: Uuid,
    ) -> Result<Vec<crate::state::Event>, SyncError> {
        store::read_events(&self.inner.pool, inspection_id).await
    }

    /// The durable state of an inspection.
    pub async fn snapshot(&self, inspection_id: Uuid) -> Result<Snapshot, SyncError> {
        let tx = self.rooms().get(&inspection_id).map(|h| h.tx.clone());
        if let Some(tx) = tx {
            let (reply, rx) = oneshot::channel();
            if tx.send(RoomMsg::Snapshot(reply)).is_ok() {
                if let Ok(s) = rx.await {
                    return Ok(s);
                }
            }
        }
        let (seq, state) = store::load_snapshot(&self.inner.pool, inspection_id).await?;
        Ok(Snapshot {
            inspection_id,
            seq,
            state,
        })
    }

    /// Runs one authenticated socket until it closes.
    pub async fn serve_socket(
        &self,
        socket: WebSocket,
        who: Principal,
        spec: RoomSpec,
        ext: Arc<dyn Extension>,
    ) {
        self.serve_socket_until(socket, who, spec, ext, std::future::pending())
            .await
    }

    /// Runs one authenticated socket until it closes or `stop` completes (access revoked,
    /// server shutting down); either way the participant leaves the room cleanly.
    pub async fn serve_socket_until(
        &self,
        socket: WebSocket,
        who: Principal,
        spec: RoomSpec,
        ext: Arc<dyn Extension>,
        stop: impl std::future::Future<Output = ()> + Send,
    ) {
        tokio::pin!(stop);
        let mut down = self.inner.down.subscribe();
        let cfg = &self.inner.config;
        let conn: ConnId = self.next_id();
        let (mut sink, mut stream) = socket.split();
        let (out_tx, mut out_rx) = mpsc::channel::<Outbound>(cfg.outbound_queue);
        let kill = Arc::new(Notify::new());
        let ping_every = cfg.ping_interval;
        let writer = tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
            loop {
                tokio::select! {
                    m = out_rx.recv() => {
                        let frames = match m {
                            None => break,
                            Some(Outbound::Frame(m)) => vec![m],
                            Some(Outbound::Frames(v)) => v,
                        };
                        let mut close = false;
                        let mut failed = false;
                        for m in frames {
                            close |= matches!(m, Message::Close(_));
                            // `feed` waits while the write buffer is full, so a long series
                            // of parts never holds more than one part's bytes in it.
                            if sink.feed(m).await.is_err() { failed = true; break; }
                        }
                        if failed { break; }
                        // Flush once the queue is drained, so bursts go out in few writes.
                        if (close || out_rx.is_empty()) && sink.flush().await.is_err() { break; }
                        if close { break; }
                    }
                    _ = tick.tick() => {
                        if sink.send(Message::Ping(Bytes::new())).await.is_err() { break; }
                    }
                }
            }
            let _ = sink.close().await;
        });
        let send = |v: Value| {
            let _ = out_tx.try_send(text(&v).into());
        };
        let key = (who.inspection_id, who.participant_id);
        if !self.admission().enter(key, self.mono_us()) {
            send(
                OpError::new(
                    codes::TOO_MANY_SOCKETS,
                    format!(
                        "at most {} sockets per participant",
                        cfg.max_sockets_per_participant
                    ),
                )
                .to_wire(None),
            );
            let close = CloseFrame {
                code: 1008,
                reason: "too many sockets".into(),
            };
            let _ = out_tx.try_send(Message::Close(Some(close)).into());
            drop(out_tx);
            let abort = writer.abort_handle();
            if tokio::time::timeout(Duration::from_secs(2), writer)
                .await
                .is_err()
            {
                abort.abort();
            }
            return;
        }
        let mut first_frame = true;
        let mut room: Option<mpsc::UnboundedSender<RoomMsg>> = None;
        let mut ext_out: Option<mpsc::Sender<Value>> = None;
        let mut close_frame: Option<CloseFrame> = None;
        let mut held: Option<String> = None;
        let reason = loop {
            let next = tokio::select! {
                _ = kill.notified() => {
                    close_frame = Some(CloseFrame { code: 1011, reason: "server error or too slow; reconnect".into() });
                    break LeaveReason::Closed;
                }
                _ = &mut stop => {
                    close_frame = Some(CloseFrame { code: 4401, reason: "access ended".into() });
                    break LeaveReason::Closed;
                }
                _ = down.wait_for(|v| *v) => {
                    close_frame = Some(CloseFrame { code: 1001, reason: "server restarting; reconnect".into() });
                    break LeaveReason::ServerRestart;
                }
                r = tokio::time::timeout(cfg.idle_timeout, stream.next()) => r,
            };
            let msg = match next {
                Err(_) => break LeaveReason::Timeout,
                Ok(None) | Ok(Some(Err(_))) => break LeaveReason::Closed,
                Ok(Some(Ok(m))) => m,
            };
            let frame = match msg {
                Message::Text(t) => Some(t),
                Message::Binary(_) => None,
                Message::Ping(_) | Message::Pong(_) => continue,
                Message::Close(_) => break LeaveReason::Closed,
            };
            // A socket's first frame (its hello) is free: a participant that used up its
            // bucket can still open a socket, and sockets are capped.
            let verdict = if first_frame {
                Verdict::Allow
            } else {
                self.admission().check(key, self.mono_us())
            };
            first_frame = false;
            match verdict {
                Verdict::Allow => {}
                Verdict::Drop => {
                    send(
                        OpError::new(codes::RATE_LIMITED, "too many messages; slow down")
                            .to_wire(None),
                    );
                    continue;
                }
                Verdict::Flood => {
                    send(OpError::new(codes::FLOOD, "sustained flooding; closing").to_wire(None));
                    close_frame = Some(CloseFrame {
                        code: 1008,
                        reason: "flood".into(),
                    });
                    break LeaveReason::Closed;
                }
            }
            let Some(frame) = frame else {
                send(
                    OpError::new(codes::BINARY_NOT_SUPPORTED, "only JSON text frames")
                        .to_wire(None),
                );
                continue;
            };
            if frame.len() > MAX_FRAME_BYTES {
                send(OpError::new(codes::FRAME_TOO_LARGE, "frame over 64 KiB").to_wire(None));
                continue;
            }
            let decoded = match decode(frame.as_str()) {
                Ok(m) => m,
                Err(e) => {
                    send(e.error.to_wire(e.op_id.as_deref()));
                    continue;
                }
            };
            match (decoded, &room) {
                (ClientMsg::Hello { .. }, Some(_)) => send(
                    OpError::new(codes::HELLO_REPEATED, "hello was already received").to_wire(None),
                ),
                (
                    ClientMsg::Hello {
                        protocol,
                        last_seq,
                        client,
                    },
                    None,
                ) => {
                    if protocol != crate::proto::PROTOCOL_VERSION {
                        send(
                            OpError::new(
                                codes::PROTOCOL_UNSUPPORTED,
                                "this server speaks protocol 1",
                            )
                            .to_wire(None),
                        );
                        continue;
                    }
                    let input = Input::Connect {
                        conn,
                        who: who.clone(),
                        last_seq,
                        client,
                        rtc: ext.hello(&who),
                        now: now_micros(),
                    };
                    let out = ConnOut {
                        tx: out_tx.clone(),
                        kill: kill.clone(),
                    };
                    room = Some(self.dispatch(&spec, RoomMsg::Connect { out, input }));
                }
                (ClientMsg::Ping { t }, _) => {
                    send(json!({"type": "pong", "t": t, "server_ts": now_micros()}))
                }
                (_, None) => {
                    send(OpError::new(codes::HELLO_REQUIRED, "send hello first").to_wire(None))
                }
                (ClientMsg::Op { op_id, op }, Some(tx)) => {
                    // Refused before the room sees it: an overloaded server spends nothing more.
                    if let Some(e) = self.overloaded(&mut held, &op_id) {
                        send(e.to_wire(Some(&op_id)));
                        continue;
                    }
                    let now = now_micros();
                    // A mark is placed on the frame the marker saw, if the server sent it.
                    let op = op.with_seen_resolved(|ts| ext.seen_frame(&who, ts), now);
                    let input = Input::Op {
                        origin: Origin::Conn(conn),
                        who: who.clone(),
                        op_id: Some(op_id.clone()),
                        op,
                        device_time: None,
                        clock_offset_ms: None,
                        now,
                    };
                    if tx.send(RoomMsg::Input(input)).is_err() {
                        self.inner.admitted.fetch_sub(1, Ordering::Relaxed);
                        send(
                            OpError::new(
                                codes::INTERNAL,
                                "the inspection's room failed; reconnect",
                            )
                            .to_wire(Some(&op_id)),
                        );
                    }
                }
                (ClientMsg::Rtc(v), Some(_)) => {
                    let eo = ext_out.get_or_insert_with(|| {
                        let (tx, mut rx) = mpsc::channel::<Value>(64);
                        let out = out_tx.clone();
                        tokio::spawn(async move {
                            while let Some(v) = rx.recv().await {
                                if out.send(text(&v).into()).await.is_err() {
                                    break;
                                }
                            }
                        });
                        tx
                    });
                    if let Err(e) = ext.on_message(&who, v, eo.clone()).await {
                        send(json!({"type": "rtc.error", "code": e.code, "message": e.message}));
                    }
                }
            }
        };
        if let Some(tx) = &room {
            let _ = tx.send(RoomMsg::Input(Input::Disconnect {
                conn,
                reason,
                now: now_micros(),
            }));
        }
        self.admission().leave(key, self.mono_us());
        ext.on_close(&who).await;
        drop(ext_out);
        let _ = out_tx.try_send(Message::Close(close_frame).into());
        drop(out_tx);
        let abort = writer.abort_handle();
        if tokio::time::timeout(Duration::from_secs(2), writer)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

async fn run_room(
    hub: SyncHub,
    spec: RoomSpec,
    generation: u64,
    tx: mpsc::UnboundedSender<RoomMsg>,
    mut rx: mpsc::UnboundedReceiver<RoomMsg>,
) {
    let cfg = hub.inner.config.clone();
    let id = spec.inspection_id;
    // Nobody gets an answer from this room until it is ours and loaded: what waits in `rx`
    // meanwhile is refused together if either fails.
    let give_up = |rx: &mut mpsc::UnboundedReceiver<RoomMsg>, e: OpError| {
        hub.forget(id, generation);
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            if matches!(&msg, RoomMsg::Input(i) if is_socket_op(i)) {
                hub.inner.admitted.fetch_sub(1, Ordering::Relaxed);
            }
            refuse(msg, e.clone());
        }
    };
    let fence = match hub.inner.ownership.claim(id).await {
        Ok(Claim::Granted(f)) => f,
        Ok(Claim::HeldBy { node_url }) => {
            tracing::info!(inspection = %id, owner = %node_url, "another node runs this inspection");
            give_up(
                &mut rx,
                OpError::new(codes::MOVED, "another node runs this inspection; reconnect"),
            );
            return;
        }
        Err(e) => {
            tracing::error!(inspection = %id, error = %e, "cannot claim the inspection");
            give_up(&mut rx, load_failed(store::unreachable(&e)));
            return;
        }
    };
    let restored = match store::load(&hub.inner.pool, id, cfg.replay_window).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(inspection = %id, error = %e, "cannot load the inspection's event log");
            let down = matches!(&e, SyncError::Db(d) if store::unreachable(d));
            give_up(&mut rx, load_failed(down));
            release(&hub, id, fence);
            return;
        }
    };
    let room_cfg = RoomConfig {
        replay_window: cfg.replay_window,
        replay_bytes: cfg.replay_bytes,
        quotas: cfg.quotas.clone(),
    };
    let mut shell = Shell {
        hub: hub.clone(),
        room: Room::new(&spec, restored, room_cfg, now_micros()),
        generation,
        fence,
        tx,
        conns: HashMap::new(),
        api: HashMap::new(),
        limits: json!({
            "max_frame_bytes": MAX_FRAME_BYTES,
            "rate_per_sec": cfg.rate_per_sec,
            "burst": cfg.burst,
            "max_sockets": cfg.max_sockets_per_participant,
            "comments_per_item": cfg.quotas.comments_per_item,
            "evidence_per_item": cfg.quotas.evidence_per_item,
            "bytes_per_participant": cfg.quotas.bytes_per_participant,
            "bytes_per_minute": cfg.quotas.bytes_per_minute,
        }),
        welcome_part_bytes: cfg.welcome_part_bytes,
        failed: false,
        db_down: false,
    };
    shell.drive();
    let mut admitted = false;
    loop {
        let msg = if shell.room.is_idle() {
            match tokio::time::timeout(cfg.room_unload_after, rx.recv()).await {
                Ok(m) => m,
                Err(_) => {
                    // Unload: after leaving the map and closing the queue nothing new arrives;
                    // whatever slipped in meanwhile goes to a fresh room.
                    hub.forget(id, generation);
                    rx.close();
                    release(&hub, id, fence);
                    while let Ok(msg) = rx.try_recv() {
                        // An eviction was for this room, not the next one.
                        if !matches!(msg, RoomMsg::Evict) {
                            hub.dispatch(&spec, msg);
                        }
                    }
                    return;
                }
            }
        } else {
            rx.recv().await
        };
        // The shell keeps a sender, so the queue never ends by itself.
        let Some(msg) = msg else { return };
        match msg {
            RoomMsg::Connect { out, input } => {
                if let Input::Connect { conn, .. } = &input {
                    shell.conns.insert(*conn, out);
                }
                shell.room.handle(input);
            }
            RoomMsg::Input(input) => {
                admitted = is_socket_op(&input);
                shell.room.handle(input);
            }
            RoomMsg::Submit { req, input, reply } => {
                shell.api.insert(req, reply);
                shell.room.handle(input);
            }
            RoomMsg::Snapshot(reply) => {
                let _ = reply.send(shell.room.snapshot());
            }
            RoomMsg::Committed { upto } => shell.room.handle(Input::Committed { upto }),
            RoomMsg::CommitFailed { unreachable } => {
                shell.failed = true;
                shell.db_down |= unreachable;
            }
            RoomMsg::Evict => {
                tracing::warn!(inspection = %id, "the inspection's claim moved to another node; closing the room");
                shell.failed = true;
            }
        }
        if !shell.failed {
            shell.drive();
        }
        // Counted until now: its events (if any) are in `queued` after `drive`.
        if std::mem::take(&mut admitted) {
            hub.inner.admitted.fetch_sub(1, Ordering::Relaxed);
        }
        if shell.failed {
            tracing::error!(inspection = %id, "event append failed; abandoning the room so it reloads from the database");
            hub.forget(id, generation);
            rx.close();
            let error = if shell.db_down {
                OpError::new(
                    codes::DATABASE_UNAVAILABLE,
                    "the database does not answer; nothing was applied, send again",
                )
            } else {
                OpError::new(codes::INTERNAL, "could not commit; nothing was applied")
            };
            for (origin, op_id) in shell.room.abandon() {
                shell.reject(origin, op_id, error.clone());
            }
            for (_, c) in shell.conns.drain() {
                c.kill.notify_one();
            }
            // The next room claims again: here, or on the node that took the claim over.
            release(&hub, id, fence);
            while let Ok(msg) = rx.try_recv() {
                match msg {
                    RoomMsg::Connect { .. } | RoomMsg::Submit { .. } | RoomMsg::Snapshot(_) => {
                        hub.dispatch(&spec, msg);
                    }
                    RoomMsg::Input(i) if is_socket_op(&i) => {
                        hub.inner.admitted.fetch_sub(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
            }
            return;
        }
    }
}

/// An op a socket's reader counted in `admitted`.
fn is_socket_op(input: &Input) -> bool {
    matches!(
        input,
        Input::Op {
            origin: Origin::Conn(_),
            ..
        }
    )
}

/// Gives up a room's claim without holding up the room's task.
fn release(hub: &SyncHub, id: Uuid, fence: Fence) {
    let ownership = hub.inner.ownership.clone();
    tokio::spawn(async move { ownership.release(id, fence).await });
}

fn refuse(msg: RoomMsg, e: OpError) {
    match msg {
        RoomMsg::Connect { out, .. } => {
            let _ = out.tx.try_send(text(&e.to_wire(None)).into());
            out.kill.notify_one();
        }
        RoomMsg::Submit { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        _ => {}
    }
}

struct Shell {
    hub: SyncHub,
    room: Room,
    generation: u64,
    /// The room's claim; every append is checked against it.
    fence: Fence,
    tx: mpsc::UnboundedSender<RoomMsg>,
    conns: HashMap<ConnId, ConnOut>,
    api: HashMap<u64, oneshot::Sender<Result<CommittedEvent, OpError>>>,
    limits: Value,
    welcome_part_bytes: usize,
    failed: bool,
    /// A failed commit found the database unreachable: refusals say `database_unavailable`.
    db_down: bool,
}

/// The refusal of a room that could not claim or load its inspection.
fn load_failed(database_down: bool) -> OpError {
    if database_down {
        OpError::new(
            codes::DATABASE_UNAVAILABLE,
            "the database does not answer; the inspection cannot be loaded now",
        )
    } else {
        OpError::new(codes::INTERNAL, "the inspection cannot be loaded")
    }
}

impl Shell {
    fn send_to(&mut self, conn: ConnId, msg: impl Into<Outbound>) {
        let full = match self.conns.get(&conn) {
            Some(c) => matches!(
                c.tx.try_send(msg.into()),
                Err(mpsc::error::TrySendError::Full(_))
            ),
            None => false,
        };
        if full {
            // A socket that cannot keep up is closed; it reconnects and resumes with last_seq.
            if let Some(c) = self.conns.remove(&conn) {
                c.kill.notify_one();
            }
        }
    }

    fn reject(&mut self, origin: Origin, op_id: Option<String>, error: OpError) {
        match origin {
            Origin::Conn(c) => self.send_to(c, text(&error.to_wire(op_id.as_deref()))),
            Origin::Api(r) => {
                if let Some(reply) = self.api.remove(&r) {
                    let _ = reply.send(Err(error));
                }
            }
        }
    }

    fn drive(&mut self) {
        let mut persist = Vec::new();
        while let Some(o) = self.room.poll_output() {
            match o {
                Output::Welcome {
                    conn,
                    who,
                    seq,
                    body,
                    rtc,
                } => {
                    let v = welcome_message(
                        self.room.inspection_id(),
                        self.room.items(),
                        self.room.site(),
                        &who,
                        seq,
                        &body,
                        rtc.as_ref(),
                        self.limits.clone(),
                    );
                    let frames: Vec<Message> = welcome_frames(&v, self.welcome_part_bytes)
                        .into_iter()
                        .map(|t| Message::Text(t.into()))
                        .collect();
                    self.send_to(conn, Outbound::Frames(frames));
                }
                Output::Persist(e) => persist.push(e),
                Output::Ack {
                    origin,
                    op_id,
                    event,
                } => match origin {
                    Origin::Conn(c) => {
                        // Socket op ids are validated ASCII; serde still does the quoting.
                        let op_id = serde_json::to_string(&op_id).unwrap_or_else(|_| "null".into());
                        let t = format!(
                            r#"{{"type":"ack","op_id":{op_id},"seq":{},"server_ts":{}}}"#,
                            event.seq, event.server_ts_micros
                        );
                        self.send_to(c, Message::Text(t.into()));
                    }
                    Origin::Api(r) => {
                        if let Some(reply) = self.api.remove(&r) {
                            let _ = reply.send(Ok((*event).clone()));
                        }
                    }
                },
                Output::Broadcast(e) => {
                    // Encoded once; every socket gets the same shared bytes.
                    let msg = Message::Text(e.wire_message_text().into());
                    let ids: Vec<ConnId> = self.conns.keys().copied().collect();
                    for c in ids {
                        self.send_to(c, msg.clone());
                    }
                    if self.hub.inner.events.receiver_count() > 0 {
                        let _ = self.hub.inner.events.send((*e).clone());
                    }
                }
                Output::Reject {
                    origin,
                    op_id,
                    error,
                } => self.reject(origin, op_id, error),
            }
        }
        if !persist.is_empty() {
            self.hub
                .inner
                .queued
                .fetch_add(persist.len(), Ordering::Relaxed);
            let tx = self.tx.clone();
            let req = WriteReq {
                generation: self.generation,
                fence: self.fence,
                events: persist,
                done: Box::new(move |w| {
                    let _ = tx.send(match w {
                        Written::Upto(upto) => RoomMsg::Committed { upto },
                        Written::Failed => RoomMsg::CommitFailed { unreachable: false },
                        Written::Unreachable => RoomMsg::CommitFailed { unreachable: true },
                    });
                }),
            };
            if let Err(mpsc::error::SendError(req)) = self.hub.inner.writer.send(req) {
                self.hub
                    .inner
                    .queued
                    .fetch_sub(req.events.len(), Ordering::Relaxed);
                self.failed = true;
            }
        }
    }
}
