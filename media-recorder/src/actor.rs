//! The media actor of one inspection: a task that owns the room's state machine
//! ([`crate::core::Room`]) and the IO handles its decisions act on (connections' command
//! channels, subscribers' queues, sources' control channels, journal keys). It is fed
//! [`RoomMsg`]s over one channel, stamps each with the time, feeds the machine and performs its
//! outputs. Everything slow runs elsewhere: building and negotiating in the connection's task
//! (`negotiate`), disk IO on the writer thread, packets in the read loops (`forward`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use webrtc::media_stream::track_remote::TrackRemote;

use crate::api::{MediaConfig, MediaError, MediaEvent};
use crate::core::{Conn, Feed, Input, Output, Refusal, Room, TrackId, TrackInfo};
use crate::depacketize::Codec;
use crate::forward::{self, SourceCtl};
use crate::inbox::{FinishReady, Inbox, PeerEvent, RoomMsg};
use crate::negotiate::{self, ConnParams, SigCmd};
use crate::rtp::Fwd;
use crate::writer::{Job, JournalKey, Writer};

/// An idle room (no connection, no source) is unloaded after this long without a message.
pub(crate) const IDLE_UNLOAD: Duration = Duration::from_secs(30);

/// What every actor of a hub shares.
pub(crate) struct Ctx {
    pub cfg: Arc<MediaConfig>,
    pub writer: Writer,
    /// Open connections over all rooms.
    pub peers: AtomicUsize,
    /// Journal keys, unique over all rooms.
    pub next_journal: AtomicU64,
    /// The frames each participant's video output sent recently.
    pub seen: Arc<crate::seen::SeenRegistry>,
    /// What the server receives from each published track.
    pub uplinks: crate::uplink::UplinkRegistry,
}

struct PendingOffer {
    desc: Box<rtc::peer_connection::sdp::RTCSessionDescription>,
    summary: crate::sdp::OfferSummary,
    events: mpsc::UnboundedSender<MediaEvent>,
    reply: oneshot::Sender<Result<serde_json::Value, MediaError>>,
}

struct PendingCandidate {
    candidate: serde_json::Value,
    reply: oneshot::Sender<Result<(), MediaError>>,
}

struct ConnIo {
    participant: Uuid,
    sig: mpsc::UnboundedSender<SigCmd>,
    events: mpsc::UnboundedSender<MediaEvent>,
}

struct TrackIo {
    conn: Conn,
    remote: Arc<dyn TrackRemote>,
    info: TrackInfo,
    feed: Option<Feed>,
    journal: Option<JournalKey>,
    ctl: Option<mpsc::UnboundedSender<SourceCtl>>,
}

struct Shell {
    ctx: Arc<Ctx>,
    room: Room,
    inbox: Inbox,
    conns: HashMap<Conn, ConnIo>,
    outputs: HashMap<(Conn, Feed), mpsc::Sender<Fwd>>,
    tracks: HashMap<TrackId, TrackIo>,
    offers: HashMap<u64, PendingOffer>,
    candidates: HashMap<u64, PendingCandidate>,
    finishing: Vec<oneshot::Sender<FinishReady>>,
    next_req: u64,
    next_track: TrackId,
    counted_peers: usize,
}

/// Where a finished recording's segments continue, and whether it is finished: read from
/// the inspection directory (on a blocking thread).
fn restore(dir: &Path) -> (u32, bool) {
    let next_segment = crate::journal::next_segment(dir).unwrap_or_else(|e| {
        tracing::error!(dir = %dir.display(), "cannot list journals: {e}");
        0
    });
    let finished = dir.join(crate::finalize::MANIFEST_FILE).exists();
    (next_segment, finished)
}

/// Runs the actor until the room has been idle for [`IDLE_UNLOAD`]; returns its inbox so that
/// the hub can hand what arrived meanwhile to a fresh actor.
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    inspection: Uuid,
    inbox: Inbox,
    mut rx: mpsc::UnboundedReceiver<RoomMsg>,
) -> mpsc::UnboundedReceiver<RoomMsg> {
    let dir = ctx.cfg.recordings_dir.join(inspection.to_string());
    let (next_segment, finished) = match tokio::task::spawn_blocking(move || restore(&dir)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(%inspection, "room restore task failed: {e}");
            (0, false)
        }
    };
    let mut shell = Shell {
        ctx,
        room: Room::new(inspection, next_segment, finished),
        inbox,
        conns: HashMap::new(),
        outputs: HashMap::new(),
        tracks: HashMap::new(),
        offers: HashMap::new(),
        candidates: HashMap::new(),
        finishing: Vec::new(),
        next_req: 1,
        next_track: 1,
        counted_peers: 0,
    };
    loop {
        let msg = if shell.room.is_idle() {
            match tokio::time::timeout(IDLE_UNLOAD, rx.recv()).await {
                Ok(m) => m,
                Err(_) => break,
            }
        } else {
            rx.recv().await
        };
        // The shell keeps a sender, so the queue never ends by itself.
        let Some(msg) = msg else { break };
        shell.on_msg(msg);
    }
    shell.count_peers();
    rx
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl Shell {
    fn on_msg(&mut self, msg: RoomMsg) {
        let now = now_micros();
        let mut left = None;
        let mut ended = None;
        match msg {
            RoomMsg::Offer {
                participant,
                role,
                desc,
                summary,
                events,
                reply,
            } => {
                let req = self.req();
                let fingerprint = summary.fingerprint.clone();
                self.offers.insert(
                    req,
                    PendingOffer {
                        desc,
                        summary,
                        events,
                        reply,
                    },
                );
                self.room.handle(Input::Offer {
                    req,
                    participant,
                    role,
                    fingerprint,
                    now,
                });
            }
            RoomMsg::Candidate {
                participant,
                candidate,
                reply,
            } => {
                let req = self.req();
                self.candidates
                    .insert(req, PendingCandidate { candidate, reply });
                self.room.handle(Input::Candidate { req, participant });
            }
            RoomMsg::Leave { participant, reply } => {
                self.room.handle(Input::Leave { participant, now });
                left = Some(reply);
            }
            RoomMsg::Mark { mark } => self.room.handle(Input::Mark { mark, now }),
            RoomMsg::Keyframe => self.room.handle(Input::Keyframe { now }),
            RoomMsg::Finish { reply } => {
                self.finishing.push(reply);
                self.room.handle(Input::Finish);
            }
            RoomMsg::Peer(PeerEvent::TrackEnded { track }) => {
                self.room.handle(Input::TrackEnded { track, now });
                // Kept until the machine's outputs ran: closing its journal needs the key.
                ended = Some(track);
            }
            RoomMsg::Peer(ev) => self.on_peer(ev, now),
        }
        self.drive();
        if let Some(track) = ended {
            self.tracks.remove(&track);
        }
        self.count_peers();
        if let Some(reply) = left {
            let _ = reply.send(());
        }
    }

    fn on_peer(&mut self, ev: PeerEvent, now: i64) {
        match ev {
            PeerEvent::Negotiated { conn, ok } => {
                self.room.handle(Input::Negotiated { conn, ok, now });
            }
            PeerEvent::OutputAttached { conn, feed, tx } => {
                // A connection closed meanwhile keeps nothing; dropping `tx` ends its forwarder.
                if self.conns.contains_key(&conn) {
                    self.outputs.insert((conn, feed), tx);
                    self.room.handle(Input::OutputAttached { conn, feed, now });
                }
            }
            PeerEvent::Track { conn, remote, info } => {
                let track = self.next_track;
                self.next_track += 1;
                self.tracks.insert(
                    track,
                    TrackIo {
                        conn,
                        remote,
                        info: info.clone(),
                        feed: None,
                        journal: None,
                        ctl: None,
                    },
                );
                self.room.handle(Input::Track {
                    conn,
                    track,
                    info,
                    now,
                });
            }
            PeerEvent::TrackEnded { track } => {
                self.room.handle(Input::TrackEnded { track, now });
            }
            PeerEvent::State { conn, state } => {
                self.room.handle(Input::State { conn, state, now });
            }
            PeerEvent::KeyframeRequest { conn, feed } => {
                self.room.handle(Input::KeyframeRequest { conn, feed, now });
            }
        }
    }

    fn req(&mut self) -> u64 {
        self.next_req += 1;
        self.next_req
    }

    fn count_peers(&mut self) {
        let n = self.room.conn_count();
        if n > self.counted_peers {
            self.ctx
                .peers
                .fetch_add(n - self.counted_peers, Ordering::Relaxed);
        } else if n < self.counted_peers {
            self.ctx
                .peers
                .fetch_sub(self.counted_peers - n, Ordering::Relaxed);
        }
        self.counted_peers = n;
    }

    /// Performs what the machine decided.
    fn drive(&mut self) {
        while let Some(out) = self.room.poll_output() {
            self.perform(out);
        }
    }

    fn perform(&mut self, out: Output) {
        let inspection = self.room.inspection();
        match out {
            Output::OpenConn {
                conn,
                req,
                participant,
                ..
            } => {
                let Some(events) = self.offers.get(&req).map(|o| o.events.clone()) else {
                    return;
                };
                let (sig, rx) = mpsc::unbounded_channel();
                tokio::spawn(negotiate::run(
                    ConnParams {
                        conn,
                        inspection,
                        participant,
                        seen: self.ctx.seen.clone(),
                        cfg: self.ctx.cfg.clone(),
                        inbox: self.inbox.clone(),
                        events: events.clone(),
                    },
                    rx,
                ));
                self.conns.insert(
                    conn,
                    ConnIo {
                        participant,
                        sig,
                        events,
                    },
                );
            }
            Output::Negotiate { conn, req, feeds } => {
                let Some(o) = self.offers.remove(&req) else {
                    return;
                };
                let cmd = SigCmd::Offer {
                    desc: o.desc,
                    summary: o.summary,
                    feeds,
                    reply: o.reply,
                };
                self.send_sig(conn, cmd);
            }
            Output::Candidate { conn, req } => {
                let Some(c) = self.candidates.remove(&req) else {
                    return;
                };
                let cmd = SigCmd::Candidate {
                    candidate: c.candidate,
                    reply: c.reply,
                };
                self.send_sig(conn, cmd);
            }
            Output::Refuse { req, why } => {
                let error = match why {
                    Refusal::UnknownPeer => MediaError::UnknownPeer,
                };
                if let Some(c) = self.candidates.remove(&req) {
                    let _ = c.reply.send(Err(error));
                } else if let Some(o) = self.offers.remove(&req) {
                    let _ = o.reply.send(Err(error));
                }
            }
            Output::CloseConn { conn } => {
                // Dropping the command channel makes the connection's task close it.
                self.conns.remove(&conn);
                self.outputs.retain(|(c, _), _| *c != conn);
            }
            Output::Renegotiate { conn } => {
                if let Some(c) = self.conns.get(&conn) {
                    let _ = c.events.send(MediaEvent::Renegotiate);
                }
            }
            Output::Discard { track } => {
                if let Some(t) = self.tracks.remove(&track) {
                    tracing::info!(%inspection, track, kind = ?t.info.kind, "ignoring a track the role may not publish");
                    tokio::spawn(forward::discard(t.remote));
                }
            }
            Output::OpenJournal {
                track,
                segment,
                meta,
            } => {
                let Some(t) = self.tracks.get_mut(&track) else {
                    return;
                };
                let key = self.ctx.next_journal.fetch_add(1, Ordering::Relaxed);
                t.journal = Some(key);
                self.ctx.writer.send(Job::Create {
                    key,
                    recordings_dir: self.ctx.cfg.recordings_dir.clone(),
                    inspection: inspection.to_string(),
                    segment,
                    meta,
                });
            }
            Output::Source { track, feed } => {
                let Some(t) = self.tracks.get_mut(&track) else {
                    return;
                };
                let Some(codec) = Codec::from_mime(&t.info.mime) else {
                    // The media engine negotiates only codecs the recorder knows; should anything
                    // else arrive, it is read and dropped, and the room forgets the source.
                    tracing::warn!(%inspection, mime = %t.info.mime, "track in an unknown codec");
                    tokio::spawn(forward::discard(t.remote.clone()));
                    crate::inbox::notify(&self.inbox, PeerEvent::TrackEnded { track });
                    return;
                };
                let (ctl, rx) = mpsc::unbounded_channel();
                // A track outlives no connection here, so its participant is known; should it
                // not be, the track is forwarded and recorded all the same, just not measured.
                let uplink = self.conns.get(&t.conn).map(|c| {
                    self.ctx
                        .uplinks
                        .register(inspection, c.participant, feed.as_str())
                });
                t.feed = Some(feed);
                t.ctl = Some(ctl);
                tracing::info!(%inspection, track, ?feed, mime = %t.info.mime, ssrc = t.info.ssrc, "track published");
                tokio::spawn(forward::read_source(
                    forward::Source {
                        track,
                        remote: t.remote.clone(),
                        codec,
                        clock_rate: t.info.clock_rate,
                        writer: self.ctx.writer.clone(),
                        inbox: self.inbox.clone(),
                        uplink,
                    },
                    rx,
                ));
            }
            Output::Route {
                track,
                sinks,
                record,
            } => {
                let Some(t) = self.tracks.get(&track) else {
                    return;
                };
                let (Some(ctl), Some(feed)) = (&t.ctl, t.feed) else {
                    return;
                };
                let sinks = sinks
                    .iter()
                    .filter_map(|c| self.outputs.get(&(*c, feed)).cloned())
                    .collect();
                let _ = ctl.send(SourceCtl::Route {
                    sinks,
                    journal: if record { t.journal } else { None },
                });
            }
            Output::CloseJournal { track } => {
                let key = self.tracks.get_mut(&track).and_then(|t| t.journal.take());
                if let Some(key) = key {
                    self.ctx.writer.send(Job::Close { key });
                }
            }
            Output::RequestKeyframe { track } => {
                if let Some(t) = self.tracks.get(&track) {
                    tokio::spawn(forward::send_pli(t.remote.clone(), t.info.ssrc));
                }
            }
            Output::Finalize { marks } => {
                for reply in self.finishing.drain(..) {
                    let _ = reply.send(FinishReady {
                        marks: marks.clone(),
                        written: self.ctx.writer.barrier(),
                    });
                }
            }
        }
    }

    fn send_sig(&mut self, conn: Conn, cmd: SigCmd) {
        let Some(c) = self.conns.get(&conn) else {
            fail(cmd, MediaError::UnknownPeer);
            return;
        };
        if let Err(mpsc::error::SendError(cmd)) = c.sig.send(cmd) {
            fail(
                cmd,
                MediaError::Internal("the connection's task is gone".into()),
            );
        }
    }
}

fn fail(cmd: SigCmd, e: MediaError) {
    match cmd {
        SigCmd::Offer { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        SigCmd::Candidate { reply, .. } => {
            let _ = reply.send(Err(e));
        }
    }
}
