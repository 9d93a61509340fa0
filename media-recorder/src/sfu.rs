//! Rooms (one per inspection), their media sources and the per-subscriber forwarders.
//!
//! Data path: a source's read loop (one per received track) appends each packet to the
//! track's journal, then hands a clone to every subscriber's bounded queue (`try_send`: a slow
//! subscriber loses packets, it never stalls the publisher or the recording). Each subscriber
//! output has its own task that rewrites SSRC/sequence/timestamp and writes to its track.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::shared::marshal::{Marshal, MarshalSize};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};
use uuid::Uuid;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{PeerConnection, RTCPeerConnectionState};
use webrtc::rtp_transceiver::RtpSender;

use crate::journal::{JournalWriter, TrackKind, TrackMeta};
use crate::peer::{self, PeerHandler};
use crate::rtp::{is_keyframe_request, Rewriter};
use crate::{Manifest, Mark, MediaConfig, MediaError, MediaEvent, MediaRole};

/// Packets queued per subscriber output before new ones are dropped (~1 s of 1.5 Mbps video).
const OUTPUT_QUEUE: usize = 256;
/// Keyframe requests to a publisher closer together than this are merged.
const KEYFRAME_INTERVAL: Duration = Duration::from_millis(300);

/// What a forwarded stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Feed {
    /// The business's camera.
    PubVideo,
    /// The business's microphone.
    PubAudio,
    /// The inspector's voice, to the business.
    Back,
}

impl Feed {
    fn kind(self) -> RtpCodecKind {
        match self {
            Feed::PubVideo => RtpCodecKind::Video,
            Feed::PubAudio | Feed::Back => RtpCodecKind::Audio,
        }
    }

    /// Feeds a role receives.
    fn received_by(role: MediaRole) -> &'static [Feed] {
        match role {
            MediaRole::Publisher => &[Feed::Back],
            MediaRole::Inspector | MediaRole::Viewer => &[Feed::PubVideo, Feed::PubAudio],
        }
    }

    /// Feed a role's received track becomes, if the role may publish that kind.
    fn published_by(role: MediaRole, kind: RtpCodecKind) -> Option<Feed> {
        match (role, kind) {
            (MediaRole::Publisher, RtpCodecKind::Video) => Some(Feed::PubVideo),
            (MediaRole::Publisher, RtpCodecKind::Audio) => Some(Feed::PubAudio),
            (MediaRole::Inspector, RtpCodecKind::Audio) => Some(Feed::Back),
            _ => None,
        }
    }
}

/// One forwarded packet.
struct Fwd {
    mime: Arc<str>,
    clock_rate: u32,
    packet: rtc::rtp::Packet,
}

/// A journal shared by a read loop, the flush ticker and `finish`.
type SharedJournal = Arc<Mutex<Option<JournalWriter>>>;

/// Work for the journal writer thread.
enum Job {
    Rtp(SharedJournal, i64, Vec<u8>),
    SenderReport(SharedJournal, i64, u64, u32),
    Flush(SharedJournal, i64),
    Close(SharedJournal),
    Barrier(std::sync::mpsc::Sender<()>),
}

/// Sends a job to the journal writer thread. Disk writes never run on the async workers: a
/// write that the kernel throttles (dirty-page limits) would stall every connection sharing
/// the worker, and webrtc then drops packets it cannot hand to a track. The queue is
/// unbounded so a slow disk delays the recording instead of losing it.
fn journal_job(job: Job) {
    static TX: std::sync::OnceLock<std::sync::mpsc::Sender<Job>> = std::sync::OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel::<Job>();
        // Named `srv-*` like the server runtime's threads: the benchmark counts them as server.
        let spawned = std::thread::Builder::new()
            .name("srv-journal".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    run_job(job);
                }
            });
        if let Err(e) = spawned {
            tracing::error!("cannot start the journal writer thread: {e}");
        }
        tx
    });
    if tx.send(job).is_err() {
        tracing::error!("journal writer thread is gone; record lost");
    }
}

fn run_job(job: Job) {
    let result = match &job {
        Job::Rtp(j, at, bytes) => lock(j).as_mut().map(|w| w.append_rtp(*at, bytes)),
        Job::SenderReport(j, at, ntp, rtp) => lock(j)
            .as_mut()
            .map(|w| w.append_sender_report(*at, *ntp, *rtp)),
        Job::Flush(j, now) => lock(j).as_mut().map(|w| w.maybe_flush(*now)),
        Job::Close(j) => {
            let writer = lock(j).take();
            writer.map(|w| w.close())
        }
        Job::Barrier(done) => {
            let _ = done.send(());
            None
        }
    };
    if let Some(Err(e)) = result {
        tracing::error!("journal write failed: {e}");
    }
}

/// Waits until every journal job queued so far is done (call from a blocking thread).
fn journal_barrier() {
    let (tx, rx) = std::sync::mpsc::channel();
    journal_job(Job::Barrier(tx));
    let _ = rx.recv();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; the state itself stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// A received track that is forwarded.
struct Source {
    feed: Feed,
    generation: u64,
    mime: Arc<str>,
    clock_rate: u32,
    ssrc: u32,
    track: Arc<dyn TrackRemote>,
    sinks: Mutex<Vec<(Uuid, mpsc::Sender<Fwd>)>>,
    last_keyframe_request: Mutex<Option<Instant>>,
}

impl Source {
    /// Asks the publisher for a keyframe (PLI); merged with one sent less than 300 ms ago
    /// unless `force` (a checklist mark wants its own seek point).
    fn request_keyframe(self: &Arc<Self>, force: bool) {
        if self.feed.kind() != RtpCodecKind::Video {
            return;
        }
        {
            let mut last = lock(&self.last_keyframe_request);
            let now = Instant::now();
            if !force && last.is_some_and(|t| now.duration_since(t) < KEYFRAME_INTERVAL) {
                return;
            }
            *last = Some(now);
        }
        let src = self.clone();
        tokio::spawn(async move {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: src.ssrc,
            };
            if let Err(e) = src.track.write_rtcp(vec![Box::new(pli)]).await {
                debug!("PLI to publisher failed: {e}");
            }
        });
    }

    fn fan_out(&self, packet: &rtc::rtp::Packet) {
        let mut sinks = lock(&self.sinks);
        sinks.retain(|(_, tx)| {
            match tx.try_send(Fwd {
                mime: self.mime.clone(),
                clock_rate: self.clock_rate,
                packet: packet.clone(),
            }) {
                Ok(()) => true,
                // A full queue drops this packet only; NACK/PLI from the subscriber repair it.
                Err(mpsc::error::TrySendError::Full(_)) => true,
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
    }
}

/// What the server sends one participant for one feed.
struct Output {
    tx: mpsc::Sender<Fwd>,
    /// Bumped by every negotiation so the forwarder re-reads the payload types.
    negotiation: Arc<AtomicU64>,
}

/// One participant's server-side connection.
struct Peer {
    id: Uuid,
    role: MediaRole,
    generation: u64,
    fingerprint: Option<String>,
    pc: Arc<dyn PeerConnection>,
    handler: Arc<PeerHandler>,
    events: mpsc::UnboundedSender<MediaEvent>,
    outputs: Mutex<HashMap<Feed, Arc<Output>>>,
    /// Offers of one participant are answered one at a time, and its candidates wait for the
    /// offer being answered (a candidate needs the remote description).
    negotiating: Arc<tokio::sync::Mutex<()>>,
    segment: u32,
}

#[derive(Default)]
struct RoomState {
    peers: HashMap<Uuid, Arc<Peer>>,
    sources: HashMap<Feed, Arc<Source>>,
    journals: Vec<(PathBuf, SharedJournal)>,
    marks: Vec<Mark>,
    finished: bool,
    next_segment: u32,
}

/// One inspection's media.
struct Room {
    id: Uuid,
    state: Mutex<RoomState>,
}

impl Room {
    fn source(&self, feed: Feed) -> Option<Arc<Source>> {
        lock(&self.state).sources.get(&feed).cloned()
    }
}

/// The hub behind [`crate::MediaHub`].
pub(crate) struct Hub {
    pub(crate) cfg: MediaConfig,
    rooms: Mutex<HashMap<Uuid, Arc<Room>>>,
    generations: AtomicU64,
    me: Weak<Hub>,
}

impl Hub {
    pub(crate) fn new(cfg: MediaConfig) -> Arc<Self> {
        Arc::new_cyclic(|me| Hub {
            cfg,
            rooms: Mutex::new(HashMap::new()),
            generations: AtomicU64::new(1),
            me: me.clone(),
        })
    }

    fn room(&self, inspection: Uuid) -> Option<Arc<Room>> {
        lock(&self.rooms).get(&inspection).cloned()
    }

    fn room_or_create(&self, inspection: Uuid) -> Arc<Room> {
        let mut rooms = lock(&self.rooms);
        if let Some(r) = rooms.get(&inspection) {
            return r.clone();
        }
        // Segments continue after whatever an earlier server run left on disk.
        let dir =
            crate::journal::journal_dir(&self.cfg.recordings_dir.join(inspection.to_string()));
        let next_segment = std::fs::read_dir(&dir)
            .map(|it| {
                it.filter_map(|e| e.ok())
                    .filter_map(|e| {
                        e.file_name()
                            .to_str()?
                            .split('-')
                            .next()?
                            .parse::<u32>()
                            .ok()
                    })
                    .max()
                    .map_or(0, |m| m + 1)
            })
            .unwrap_or(0);
        let room = Arc::new(Room {
            id: inspection,
            state: Mutex::new(RoomState {
                next_segment,
                ..Default::default()
            }),
        });
        rooms.insert(inspection, room.clone());
        spawn_flusher(Arc::downgrade(&room));
        room
    }

    pub(crate) fn peer_count(&self) -> usize {
        lock(&self.rooms)
            .values()
            .map(|r| lock(&r.state).peers.len())
            .sum()
    }

    pub(crate) async fn offer(
        &self,
        inspection: Uuid,
        peer_id: Uuid,
        role: MediaRole,
        sdp: serde_json::Value,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<serde_json::Value, MediaError> {
        let (desc, summary) = crate::sdp::check_offer(sdp, role)?;
        let room = self.room_or_create(inspection);
        let existing = lock(&room.state).peers.get(&peer_id).cloned();
        let (peer, _turn, fresh) = match existing {
            Some(p) if p.role == role && p.fingerprint == summary.fingerprint => {
                let turn = p.negotiating.clone().lock_owned().await;
                (p, turn, false)
            }
            other => {
                if let Some(old) = other {
                    // A reloaded page is a new browser connection: replace, new journal segment.
                    info!(%inspection, peer = %peer_id, "participant reconnected with a new connection");
                    self.remove_peer(&room, &old).await;
                }
                let (p, turn) = self
                    .create_peer(&room, peer_id, role, summary.fingerprint.clone(), events)
                    .await?;
                (p, turn, true)
            }
        };
        peer.handler.reset_gathering();
        let result = self.negotiate(&room, &peer, desc, &summary).await;
        if result.is_err() && fresh {
            self.remove_peer(&room, &peer).await;
        }
        result
    }

    async fn create_peer(
        &self,
        room: &Arc<Room>,
        id: Uuid,
        role: MediaRole,
        fingerprint: Option<String>,
        events: mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<(Arc<Peer>, tokio::sync::OwnedMutexGuard<()>), MediaError> {
        let generation = self.generations.fetch_add(1, Ordering::Relaxed);
        let handler = Arc::new(PeerHandler::new(
            self.me.clone(),
            room.id,
            id,
            generation,
            role,
            events.clone(),
        ));
        let pc = peer::build(&self.cfg, handler.clone()).await?;
        let segment = {
            let mut st = lock(&room.state);
            st.next_segment += 1;
            st.next_segment - 1
        };
        let peer = Arc::new(Peer {
            id,
            role,
            generation,
            fingerprint,
            pc,
            handler,
            events,
            outputs: Mutex::new(HashMap::new()),
            negotiating: Arc::new(tokio::sync::Mutex::new(())),
            segment,
        });
        // Held before the peer is visible, so a candidate arriving now waits for the answer.
        let turn = peer.negotiating.clone().lock_owned().await;
        lock(&room.state).peers.insert(id, peer.clone());
        Ok((peer, turn))
    }

    async fn negotiate(
        &self,
        room: &Arc<Room>,
        peer: &Arc<Peer>,
        offer: rtc::peer_connection::sdp::RTCSessionDescription,
        summary: &crate::sdp::OfferSummary,
    ) -> Result<serde_json::Value, MediaError> {
        peer.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| MediaError::SdpInvalid(e.to_string()))?;
        self.attach_outputs(room, peer, summary).await?;
        let answer = peer
            .pc
            .create_answer(None)
            .await
            .map_err(|e| MediaError::Internal(format!("create answer: {e}")))?;
        peer.pc
            .set_local_description(answer)
            .await
            .map_err(|e| MediaError::Internal(format!("set local description: {e}")))?;
        for out in lock(&peer.outputs).values() {
            out.negotiation.fetch_add(1, Ordering::Relaxed);
        }
        // Host candidates come at once; waiting briefly puts them into the answer, so a client
        // without trickle support still connects.
        peer.handler.wait_gathered(Duration::from_millis(500)).await;
        let local = peer
            .pc
            .local_description()
            .await
            .ok_or_else(|| MediaError::Internal("no local description".into()))?;
        peer.handler.answered(&local.sdp);
        serde_json::to_value(&local).map_err(|e| MediaError::Internal(e.to_string()))
    }

    /// Gives the peer a sending track for every feed its role receives, on a transceiver the
    /// browser offered; feeds with no such transceiver are skipped (the client offers them).
    async fn attach_outputs(
        &self,
        room: &Arc<Room>,
        peer: &Arc<Peer>,
        summary: &crate::sdp::OfferSummary,
    ) -> Result<(), MediaError> {
        for &feed in Feed::received_by(peer.role) {
            if lock(&peer.outputs).contains_key(&feed) {
                continue;
            }
            // A sendonly transceiver has no receiver to ask for its kind; the offer's section
            // with the same mid says it.
            let want = match feed.kind() {
                RtpCodecKind::Video => crate::sdp::Kind::Video,
                _ => crate::sdp::Kind::Audio,
            };
            let mut free = false;
            for t in peer.pc.get_transceivers().await {
                let Ok(None) = t.sender().await else { continue };
                let Ok(Some(mid)) = t.mid().await else {
                    continue;
                };
                let section = summary
                    .sections
                    .iter()
                    .find(|s| s.mid.as_deref() == Some(mid.as_str()));
                if section.is_some_and(|s| {
                    s.kind == want && !s.rejected && s.direction != crate::sdp::Direction::SendOnly
                }) {
                    free = true;
                    break;
                }
            }
            if !free {
                debug!(?feed, "the offer has no section to send this feed on");
                continue;
            }
            let ssrc = rand::random::<u32>();
            let label = match feed {
                Feed::PubVideo => "business-video",
                Feed::PubAudio => "business-audio",
                Feed::Back => "inspector-audio",
            };
            // No codec on the encoding: the transceiver keeps every negotiated codec, so a
            // VP8 or H.264 publisher can be forwarded without renegotiating.
            let track = Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
                format!("inspection-{}", room.id),
                format!("{label}-{ssrc}"),
                label.to_string(),
                feed.kind(),
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    ..Default::default()
                }],
            )));
            let sender = peer
                .pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(|e| MediaError::Internal(format!("add track: {e}")))?;
            let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
            let out = Arc::new(Output {
                tx: tx.clone(),
                negotiation: Arc::new(AtomicU64::new(0)),
            });
            tokio::spawn(forward(
                track.clone(),
                sender,
                rx,
                ssrc,
                out.negotiation.clone(),
            ));
            tokio::spawn(relay_feedback(
                track,
                Arc::downgrade(room),
                feed,
                Arc::downgrade(&out),
            ));
            lock(&peer.outputs).insert(feed, out);
            if let Some(src) = room.source(feed) {
                lock(&src.sinks).push((peer.id, tx));
            }
        }
        Ok(())
    }

    pub(crate) async fn candidate(
        &self,
        inspection: Uuid,
        peer_id: Uuid,
        candidate: serde_json::Value,
    ) -> Result<(), MediaError> {
        let peer = self
            .room(inspection)
            .and_then(|r| lock(&r.state).peers.get(&peer_id).cloned())
            .ok_or(MediaError::UnknownPeer)?;
        let init: RTCIceCandidateInit = serde_json::from_value(candidate)
            .map_err(|e| MediaError::CandidateInvalid(e.to_string()))?;
        if init.candidate.trim().is_empty() {
            // End-of-candidates marker: nothing to add.
            return Ok(());
        }
        let _turn = peer.negotiating.lock().await;
        peer.pc
            .add_ice_candidate(init)
            .await
            .map_err(|e| MediaError::CandidateInvalid(e.to_string()))
    }

    pub(crate) async fn leave(&self, inspection: Uuid, peer_id: Uuid) {
        let Some(room) = self.room(inspection) else {
            return;
        };
        let peer = lock(&room.state).peers.get(&peer_id).cloned();
        if let Some(peer) = peer {
            self.remove_peer(&room, &peer).await;
        }
        let mut rooms = lock(&self.rooms);
        let st = lock(&room.state);
        if st.finished && st.peers.is_empty() {
            rooms.remove(&inspection);
        }
    }

    async fn remove_peer(&self, room: &Arc<Room>, peer: &Arc<Peer>) {
        {
            let mut st = lock(&room.state);
            if st.peers.get(&peer.id).is_some_and(|p| Arc::ptr_eq(p, peer)) {
                st.peers.remove(&peer.id);
            }
            st.sources.retain(|_, s| s.generation != peer.generation);
            for s in st.sources.values() {
                lock(&s.sinks).retain(|(id, _)| *id != peer.id);
            }
        }
        lock(&peer.outputs).clear();
        if let Err(e) = peer.pc.close().await {
            debug!("close: {e}");
        }
    }

    pub(crate) fn mark(&self, inspection: Uuid, mark: Mark) {
        // Persisted before anything else: the finalizer recovers marks from this log.
        let dir = self.cfg.recordings_dir.join(inspection.to_string());
        if let Err(e) = crate::chapters::MarkLog::open(&dir).and_then(|mut log| log.append(&mark)) {
            tracing::error!(%inspection, "cannot persist mark: {e}");
        }
        let Some(room) = self.room(inspection) else {
            warn!(%inspection, "mark for an inspection without live media");
            return;
        };
        let video = {
            let mut st = lock(&room.state);
            st.marks.push(mark);
            st.sources.get(&Feed::PubVideo).cloned()
        };
        if let Some(v) = video {
            v.request_keyframe(true);
        }
    }

    pub(crate) fn request_keyframe(&self, inspection: Uuid) {
        if let Some(v) = self
            .room(inspection)
            .and_then(|room| room.source(Feed::PubVideo))
        {
            v.request_keyframe(true);
        }
    }

    pub(crate) async fn finish(
        &self,
        inspection: Uuid,
        marks: Vec<Mark>,
    ) -> Result<Manifest, MediaError> {
        let room = self.room(inspection);
        let (journals, room_marks) = match &room {
            Some(room) => {
                let mut st = lock(&room.state);
                st.finished = true;
                (
                    std::mem::take(&mut st.journals),
                    std::mem::take(&mut st.marks),
                )
            }
            None => (Vec::new(), Vec::new()),
        };
        let dir = self.cfg.recordings_dir.join(inspection.to_string());
        tokio::task::spawn_blocking(move || {
            // Every record received so far is written before the journals close.
            journal_barrier();
            for (_, j) in journals {
                let writer = lock(&j).take();
                if let Some(w) = writer {
                    w.close()
                        .map_err(|e| MediaError::Internal(format!("close journal: {e}")))?;
                }
            }
            // The caller's marks, the live ones and the crash-safe log: the same mark may be
            // in all three.
            let mut all = marks;
            all.extend(room_marks);
            all.extend(crate::chapters::read_marks(&dir).unwrap_or_default());
            all.sort_by(|a, b| (a.at_micros, &a.item_id).cmp(&(b.at_micros, &b.item_id)));
            all.dedup();
            Ok::<_, MediaError>(crate::finalize::finalize_inspection(&dir, &all)?)
        })
        .await
        .map_err(|e| MediaError::Internal(format!("finalize task: {e}")))?
    }

    pub(crate) async fn on_state(
        &self,
        inspection: Uuid,
        peer_id: Uuid,
        generation: u64,
        state: RTCPeerConnectionState,
    ) {
        let Some(room) = self.room(inspection) else {
            return;
        };
        let peer = lock(&room.state).peers.get(&peer_id).cloned();
        let Some(peer) = peer.filter(|p| p.generation == generation) else {
            return;
        };
        match state {
            // Only now can the subscriber decode what arrives; a keyframe asked for earlier
            // would be gone before its SRTP context exists.
            RTCPeerConnectionState::Connected if peer.role != MediaRole::Publisher => {
                if let Some(v) = room.source(Feed::PubVideo) {
                    v.request_keyframe(false);
                }
            }
            RTCPeerConnectionState::Closed => {
                // Closing from inside the connection's own callback would wait on itself.
                if let Some(hub) = self.me.upgrade() {
                    tokio::spawn(async move { hub.remove_peer(&room, &peer).await });
                }
            }
            _ => {}
        }
    }

    pub(crate) async fn on_track(
        &self,
        inspection: Uuid,
        peer_id: Uuid,
        generation: u64,
        role: MediaRole,
        track: Arc<dyn TrackRemote>,
    ) {
        let kind = track.kind().await;
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let Some(codec) = track.codec(ssrc).await else {
            return;
        };
        let Some(room) = self.room(inspection) else {
            return;
        };
        let Some(feed) = Feed::published_by(role, kind) else {
            // Not this role's to publish (e.g. an inspector's camera): read and discard.
            info!(%inspection, peer = %peer_id, ?role, %kind, "ignoring a track the role may not publish");
            tokio::spawn(async move { while track.poll().await.is_some() {} });
            return;
        };
        let mime: Arc<str> = Arc::from(codec.mime_type.as_str());
        let journal = self
            .open_journal(
                &room,
                peer_id,
                generation,
                kind,
                &codec.mime_type,
                codec.clock_rate,
                ssrc,
            )
            .await;
        let source = Arc::new(Source {
            feed,
            generation,
            mime: mime.clone(),
            clock_rate: codec.clock_rate,
            ssrc,
            track: track.clone(),
            sinks: Mutex::new(Vec::new()),
            last_keyframe_request: Mutex::new(None),
        });
        let mut renegotiate = Vec::new();
        {
            let mut st = lock(&room.state);
            let mut sinks = Vec::new();
            for p in st.peers.values() {
                if !Feed::received_by(p.role).contains(&feed) || p.id == peer_id {
                    continue;
                }
                match lock(&p.outputs).get(&feed) {
                    Some(out) => sinks.push((p.id, out.tx.clone())),
                    None => renegotiate.push(p.events.clone()),
                }
            }
            *lock(&source.sinks) = sinks;
            st.sources.insert(feed, source.clone());
        }
        for ev in renegotiate {
            let _ = ev.send(MediaEvent::Renegotiate);
        }
        if feed == Feed::PubVideo && !lock(&source.sinks).is_empty() {
            // Subscribers are waiting; if the stream's first keyframe was lost, this repairs it.
            source.request_keyframe(false);
        }
        info!(%inspection, peer = %peer_id, ?feed, mime = %mime, ssrc, "track published");
        tokio::spawn(read_loop(source, journal, Arc::downgrade(&room)));
    }

    #[allow(clippy::too_many_arguments)]
    async fn open_journal(
        &self,
        room: &Arc<Room>,
        peer_id: Uuid,
        generation: u64,
        kind: RtpCodecKind,
        mime: &str,
        clock_rate: u32,
        ssrc: u32,
    ) -> Option<SharedJournal> {
        let segment = {
            let st = lock(&room.state);
            if st.finished {
                return None;
            }
            st.peers
                .get(&peer_id)
                .filter(|p| p.generation == generation)
                .map(|p| p.segment)?
        };
        let (tk, k) = match kind {
            RtpCodecKind::Video => (TrackKind::Video, "video"),
            _ => (TrackKind::Audio, "audio"),
        };
        let meta = TrackMeta::new(
            format!("{peer_id}-{k}-{ssrc:08x}"),
            peer_id.to_string(),
            tk,
            mime,
            clock_rate,
            ssrc,
            now_micros(),
        );
        let (dir, inspection) = (self.cfg.recordings_dir.clone(), room.id.to_string());
        // Creating fsyncs the header and the directory: not on an async worker.
        let created = tokio::task::spawn_blocking(move || {
            JournalWriter::create(&dir, &inspection, segment, meta)
        })
        .await;
        match created {
            Ok(Ok(w)) => {
                let path = w.path().to_owned();
                let shared = Arc::new(Mutex::new(Some(w)));
                let mut st = lock(&room.state);
                if st.finished {
                    // `finish` ran meanwhile; this track is not part of the recording.
                    journal_job(Job::Close(shared));
                    return None;
                }
                st.journals.push((path, shared.clone()));
                Some(shared)
            }
            Ok(Err(e)) => {
                // Forwarding goes on; the failure is loud because the recording has a hole.
                tracing::error!(inspection = %room.id, "cannot create journal: {e}");
                None
            }
            Err(e) => {
                tracing::error!(inspection = %room.id, "journal creation task failed: {e}");
                None
            }
        }
    }
}

/// Reads one received track: journal first, then forward.
async fn read_loop(source: Arc<Source>, journal: Option<SharedJournal>, room: Weak<Room>) {
    while let Some(ev) = source.track.poll().await {
        match ev {
            TrackRemoteEvent::OnRtpPacket(packet) => {
                if let Some(j) = &journal {
                    let at = now_micros();
                    let mut buf = vec![0u8; packet.marshal_size()];
                    if let Ok(n) = packet.marshal_to(&mut buf) {
                        buf.truncate(n);
                        journal_job(Job::Rtp(j.clone(), at, buf));
                    }
                }
                source.fan_out(&packet);
            }
            TrackRemoteEvent::OnRtcpPacket(packets) => {
                let Some(j) = &journal else { continue };
                for p in &packets {
                    if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                        journal_job(Job::SenderReport(
                            j.clone(),
                            now_micros(),
                            sr.ntp_time,
                            sr.rtp_time,
                        ));
                    }
                }
            }
            TrackRemoteEvent::OnEnded => break,
            _ => {}
        }
    }
    if let Some(room) = room.upgrade() {
        let mut st = lock(&room.state);
        if st
            .sources
            .get(&source.feed)
            .is_some_and(|s| Arc::ptr_eq(s, &source))
        {
            st.sources.remove(&source.feed);
        }
    }
    if let Some(j) = journal {
        // The track is over (participant left or reconnected): make its journal durable now
        // rather than at `finish`, which then finds it closed. Queued after its records.
        journal_job(Job::Close(j));
    }
}

/// Hands buffered journal records to the OS at least once a second, even on a silent track.
fn spawn_flusher(room: Weak<Room>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tick.tick().await;
            let Some(room) = room.upgrade() else { return };
            let journals: Vec<SharedJournal> = lock(&room.state)
                .journals
                .iter()
                .map(|(_, j)| j.clone())
                .collect();
            let now = now_micros();
            for j in journals {
                journal_job(Job::Flush(j, now));
            }
        }
    });
}

/// Payload type negotiated on `sender` for each MIME type.
async fn payload_types(sender: &Arc<dyn RtpSender>) -> HashMap<String, u8> {
    let mut map = HashMap::new();
    if let Ok(params) = sender.get_parameters().await {
        for c in params.rtp_parameters.codecs {
            map.entry(c.rtp_codec.mime_type.to_ascii_lowercase())
                .or_insert(c.payload_type);
        }
    }
    map
}

/// The per-subscriber forwarder: rewrite, map the payload type, strip header extensions.
async fn forward(
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    mut rx: mpsc::Receiver<Fwd>,
    ssrc: u32,
    negotiation: Arc<AtomicU64>,
) {
    let mut rewriter = Rewriter::new(ssrc);
    let mut pts: HashMap<String, u8> = HashMap::new();
    let mut seen_negotiation = u64::MAX;
    let mut last_lookup: Option<Instant> = None;
    while let Some(Fwd {
        mime,
        clock_rate,
        mut packet,
    }) = rx.recv().await
    {
        if packet.payload.is_empty() {
            // Padding-only probes carry nothing a subscriber can use.
            continue;
        }
        let n = negotiation.load(Ordering::Relaxed);
        let key = mime.to_ascii_lowercase();
        if n != seen_negotiation
            || (!pts.contains_key(&key)
                && last_lookup.is_none_or(|t| t.elapsed() > Duration::from_secs(1)))
        {
            pts = payload_types(&sender).await;
            seen_negotiation = n;
            last_lookup = Some(Instant::now());
        }
        let Some(&pt) = pts.get(&key) else {
            debug!(mime = %mime, negotiated = ?pts, "codec not negotiated with this subscriber; packet dropped");
            continue;
        };
        rewriter.rewrite(Instant::now(), clock_rate, &mut packet.header);
        packet.header.payload_type = pt;
        // The subscriber leg negotiated its own extension ids; unknown ids make webrtc drop the
        // packet silently, and none of them is needed by a receiver.
        packet.header.extension = false;
        packet.header.extension_profile = 0;
        packet.header.extensions.clear();
        packet.header.extensions_padding = 0;
        if let Err(e) = track.write_rtp(packet).await {
            debug!("forward: {e}");
            // Not bound yet (still connecting) or closed; the keyframe request on connect
            // makes up for what is dropped here.
            if rx.is_closed() {
                break;
            }
        }
    }
}

/// Relays a subscriber's keyframe requests to the publisher.
async fn relay_feedback(
    track: Arc<TrackLocalStaticRTP>,
    room: Weak<Room>,
    feed: Feed,
    out: Weak<Output>,
) {
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if is_keyframe_request(&packets) {
                    if let Some(src) = room.upgrade().and_then(|r| r.source(feed)) {
                        src.request_keyframe(false);
                    }
                }
            }
            Some(_) => {}
            None => {
                // `poll` returns None until the track is bound and after it is unbound.
                if out.upgrade().is_none() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
