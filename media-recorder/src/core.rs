//! The sans-IO core of one inspection's media: a `&mut self` state machine that decides who
//! receives what, when the publisher is asked for a keyframe, where journal segments begin and
//! when the recording stops. It is fed a closed set of [`Input`]s (the time is one of their
//! fields, no clock is read) and queues [`Output`]s that the IO shell (`actor`) performs:
//! building and closing peer connections, starting read loops, pointing them at subscribers,
//! opening and closing journals, sending PLIs. No sockets, no tasks, no files here.
//!
//! The packets themselves do not pass through the machine: a source's read loop forwards them
//! to the subscribers the machine routed it to ([`Output::Route`]), and each subscriber's
//! forwarder rewrites SSRC, sequence numbers and timestamps with the pure
//! [`crate::rtp::Rewriter`], so the per-packet path takes no lock and makes no decision.

use std::collections::{BTreeMap, HashMap, VecDeque};

use uuid::Uuid;

use crate::api::MediaRole;
use crate::chapters::Mark;
use crate::journal::{TrackKind, TrackMeta};

/// One server peer connection of the room (a participant's browser connection). A reload or a
/// new device is a new connection, with a new id.
pub(crate) type Conn = u64;
/// One received track (a source), numbered by the IO shell as tracks arrive.
pub(crate) type TrackId = u64;
/// One pending API request (an offer or a candidate) of the IO shell.
pub(crate) type Req = u64;

/// Keyframe requests to a publisher closer together than this are merged (µs).
pub(crate) const KEYFRAME_INTERVAL_MICROS: i64 = 300_000;

/// What a forwarded stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Feed {
    /// The business's camera.
    PubVideo,
    /// The business's microphone.
    PubAudio,
    /// The inspector's voice, to the business.
    Back,
}

impl Feed {
    /// Audio or video.
    pub(crate) fn kind(self) -> TrackKind {
        match self {
            Feed::PubVideo => TrackKind::Video,
            Feed::PubAudio | Feed::Back => TrackKind::Audio,
        }
    }

    /// Feeds a role receives.
    pub(crate) fn received_by(role: MediaRole) -> &'static [Feed] {
        match role {
            MediaRole::Publisher => &[Feed::Back],
            MediaRole::Inspector | MediaRole::Viewer => &[Feed::PubVideo, Feed::PubAudio],
        }
    }

    /// Feed a role's received track becomes, if the role may publish that kind.
    pub(crate) fn published_by(role: MediaRole, kind: TrackKind) -> Option<Feed> {
        match (role, kind) {
            (MediaRole::Publisher, TrackKind::Video) => Some(Feed::PubVideo),
            (MediaRole::Publisher, TrackKind::Audio) => Some(Feed::PubAudio),
            (MediaRole::Inspector, TrackKind::Audio) => Some(Feed::Back),
            _ => None,
        }
    }

    /// Stable name, written into journal headers so that the finalizer can put one feed on
    /// one stream whoever published it.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Feed::PubVideo => "business_camera",
            Feed::PubAudio => "business_microphone",
            Feed::Back => "inspector_voice",
        }
    }
}

/// What the IO shell learned about a received track.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TrackInfo {
    /// Audio or video.
    pub kind: TrackKind,
    /// Negotiated codec MIME type (`video/VP8`, ...).
    pub mime: String,
    /// RTP clock rate.
    pub clock_rate: u32,
    /// The incoming SSRC.
    pub ssrc: u32,
}

/// Connection states the machine cares about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnState {
    /// ICE and DTLS are up: the subscriber can decode what arrives from now on.
    Connected,
    /// The connection is gone for good.
    Closed,
    /// Anything else (new, connecting, disconnected, failed: an ICE restart may follow).
    Other,
}

/// Why the machine refuses a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The participant has no connection (send an offer first).
    UnknownPeer,
}

/// Inputs of the room. `now` is the server time, µs since the Unix epoch.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Input {
    /// A browser's offer (first offer, renegotiation or ICE restart).
    Offer {
        /// The shell's request id, to find the offer and its reply again.
        req: Req,
        /// Who.
        participant: Uuid,
        /// In which role.
        role: MediaRole,
        /// The offer's DTLS fingerprint: another one means another browser connection.
        fingerprint: Option<String>,
        /// Now.
        now: i64,
    },
    /// The answer to an [`Output::Negotiate`] went out (`ok`) or negotiation failed.
    Negotiated {
        /// The connection.
        conn: Conn,
        /// Whether an answer was produced.
        ok: bool,
        /// Now.
        now: i64,
    },
    /// A subscriber's connection has a sending track for `feed` now.
    OutputAttached {
        /// The subscriber's connection.
        conn: Conn,
        /// The feed it can receive.
        feed: Feed,
        /// Now.
        now: i64,
    },
    /// A connection received a new track.
    Track {
        /// The connection.
        conn: Conn,
        /// The shell's id for the track.
        track: TrackId,
        /// Its codec and SSRC.
        info: TrackInfo,
        /// Now.
        now: i64,
    },
    /// A track's read loop ended (the track or its connection closed).
    TrackEnded {
        /// The track.
        track: TrackId,
        /// Now.
        now: i64,
    },
    /// A connection's state changed.
    State {
        /// The connection.
        conn: Conn,
        /// Its new state.
        state: ConnState,
        /// Now.
        now: i64,
    },
    /// A subscriber asked for a keyframe of `feed` (a PLI or FIR it sent).
    KeyframeRequest {
        /// The subscriber's connection.
        conn: Conn,
        /// What it receives.
        feed: Feed,
        /// Now.
        now: i64,
    },
    /// A browser ICE candidate of a participant.
    Candidate {
        /// The shell's request id.
        req: Req,
        /// Who sent it.
        participant: Uuid,
    },
    /// A checklist mark: a chapter of the recording and a seek point.
    Mark {
        /// The mark.
        mark: Mark,
        /// Now.
        now: i64,
    },
    /// A checklist item was recorded (the mark itself comes from the log at finish): the
    /// publisher's next picture should be a keyframe, so the chapter starts at one.
    Keyframe {
        /// Now.
        now: i64,
    },
    /// The participant left.
    Leave {
        /// Who.
        participant: Uuid,
        /// Now.
        now: i64,
    },
    /// The recording ends: close the journals; tracks published afterwards are not recorded.
    Finish,
}

/// What the IO shell must do, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Build a server peer connection for a participant.
    OpenConn {
        /// Its id.
        conn: Conn,
        /// The offer it is built for (its browser gets the connection's events).
        req: Req,
        /// Who.
        participant: Uuid,
        /// In which role.
        role: MediaRole,
    },
    /// Answer the offer `req` on `conn`, giving it a sending track for each of `feeds`.
    Negotiate {
        /// The connection.
        conn: Conn,
        /// The offer.
        req: Req,
        /// Feeds the connection's role receives.
        feeds: &'static [Feed],
    },
    /// Hand the candidate `req` to `conn`.
    Candidate {
        /// The connection.
        conn: Conn,
        /// The candidate.
        req: Req,
    },
    /// Refuse the request `req`.
    Refuse {
        /// The request.
        req: Req,
        /// Why.
        why: Refusal,
    },
    /// Close a connection (replaced, left or closed by the browser).
    CloseConn {
        /// The connection.
        conn: Conn,
    },
    /// Tell the browser of `conn` to offer again: it lacks a section for a feed it receives.
    Renegotiate {
        /// The connection.
        conn: Conn,
    },
    /// Read and discard a track the role may not publish (e.g. an inspector's camera).
    Discard {
        /// The track.
        track: TrackId,
    },
    /// Create the journal of a track (before [`Output::Source`] starts reading it).
    OpenJournal {
        /// The track.
        track: TrackId,
        /// Its connection segment.
        segment: u32,
        /// The journal's header.
        meta: TrackMeta,
    },
    /// Start reading a track as the source of `feed`.
    Source {
        /// The track.
        track: TrackId,
        /// What it is.
        feed: Feed,
    },
    /// From now on, the track's packets go to these connections' outputs of its feed, and to
    /// its journal if `record`.
    Route {
        /// The track.
        track: TrackId,
        /// Subscribers' connections.
        sinks: Vec<Conn>,
        /// Whether packets are still journaled.
        record: bool,
    },
    /// Close (fsync) the track's journal.
    CloseJournal {
        /// The track.
        track: TrackId,
    },
    /// Send the publisher of this track a PLI.
    RequestKeyframe {
        /// The track.
        track: TrackId,
    },
    /// The recording's journals are closed: build the file with these live marks.
    Finalize {
        /// Marks seen by this room (the caller's and the on-disk log are merged later).
        marks: Vec<Mark>,
    },
}

#[derive(Debug)]
struct ConnInfo {
    participant: Uuid,
    role: MediaRole,
    fingerprint: Option<String>,
    segment: u32,
    negotiated: bool,
    connected: bool,
    outputs: Vec<Feed>,
}

#[derive(Debug)]
struct SourceInfo {
    conn: Conn,
    feed: Feed,
    mime: String,
    /// Whether its journal is open.
    recording: bool,
    /// The route last sent to the shell.
    sinks: Vec<Conn>,
    last_keyframe_request: Option<i64>,
}

/// One inspection's media decisions.
#[derive(Debug)]
pub(crate) struct Room {
    inspection: Uuid,
    finished: bool,
    next_segment: u32,
    next_conn: Conn,
    conns: BTreeMap<Conn, ConnInfo>,
    by_participant: HashMap<Uuid, Conn>,
    /// Live sources in arrival order (track ids grow).
    sources: BTreeMap<TrackId, SourceInfo>,
    /// The video source subscribers received after the last reroute.
    active_video: Option<TrackId>,
    marks: Vec<Mark>,
    out: VecDeque<Output>,
}

impl Room {
    /// A room whose journals continue at segment `next_segment` (after what earlier server
    /// runs left on disk); `finished` if the recording was already built.
    pub(crate) fn new(inspection: Uuid, next_segment: u32, finished: bool) -> Self {
        Self {
            inspection,
            finished,
            next_segment,
            next_conn: 1,
            conns: BTreeMap::new(),
            by_participant: HashMap::new(),
            sources: BTreeMap::new(),
            active_video: None,
            marks: Vec::new(),
            out: VecDeque::new(),
        }
    }

    /// Next thing to do.
    pub(crate) fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Open connections.
    pub(crate) fn conn_count(&self) -> usize {
        self.conns.len()
    }

    /// Nothing is connected and nothing is being read: the room may be unloaded.
    pub(crate) fn is_idle(&self) -> bool {
        self.conns.is_empty() && self.sources.is_empty()
    }

    /// Feeds one input.
    pub(crate) fn handle(&mut self, input: Input) {
        match input {
            Input::Offer {
                req,
                participant,
                role,
                fingerprint,
                now,
            } => self.offer(req, participant, role, fingerprint, now),
            Input::Negotiated { conn, ok, now } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if ok {
                    c.negotiated = true;
                } else if !c.negotiated {
                    // A connection that never answered is of no use to anybody.
                    self.remove_conn(conn, now);
                }
            }
            Input::OutputAttached { conn, feed, now } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if c.outputs.contains(&feed) {
                    return;
                }
                c.outputs.push(feed);
                // A connection that is up and adds video (renegotiation) can decode at once;
                // one that is still connecting gets its keyframe when it is up.
                let connected = c.connected;
                self.reroute(now);
                if connected {
                    self.request_keyframe(feed, now, false);
                }
            }
            Input::Track {
                conn,
                track,
                info,
                now,
            } => self.track(conn, track, info, now),
            Input::TrackEnded { track, now } => {
                if let Some(s) = self.sources.remove(&track) {
                    if s.recording {
                        self.out.push_back(Output::CloseJournal { track });
                    }
                    // Another live source of the feed (a second phone) may take over.
                    self.reroute(now);
                }
            }
            Input::State { conn, state, now } => self.state(conn, state, now),
            Input::KeyframeRequest { conn, feed, now } => {
                let subscribed = self
                    .conns
                    .get(&conn)
                    .is_some_and(|c| c.outputs.contains(&feed));
                if subscribed {
                    self.request_keyframe(feed, now, false);
                }
            }
            Input::Candidate { req, participant } => match self.by_participant.get(&participant) {
                Some(&conn) => self.out.push_back(Output::Candidate { conn, req }),
                None => self.out.push_back(Output::Refuse {
                    req,
                    why: Refusal::UnknownPeer,
                }),
            },
            Input::Mark { mark, now } => {
                self.marks.push(mark);
                // The mark's chapter starts here: make it a seek point with a picture.
                self.request_keyframe(Feed::PubVideo, now, true);
            }
            Input::Keyframe { now } => self.request_keyframe(Feed::PubVideo, now, true),
            Input::Leave { participant, now } => {
                if let Some(&conn) = self.by_participant.get(&participant) {
                    self.remove_conn(conn, now);
                }
            }
            Input::Finish => {
                self.finished = true;
                let recording: Vec<TrackId> = self
                    .sources
                    .iter()
                    .filter(|(_, s)| s.recording)
                    .map(|(&t, _)| t)
                    .collect();
                for track in recording {
                    if let Some(s) = self.sources.get_mut(&track) {
                        s.recording = false;
                        self.out.push_back(Output::Route {
                            track,
                            sinks: s.sinks.clone(),
                            record: false,
                        });
                        self.out.push_back(Output::CloseJournal { track });
                    }
                }
                self.out.push_back(Output::Finalize {
                    marks: std::mem::take(&mut self.marks),
                });
            }
        }
    }

    fn offer(
        &mut self,
        req: Req,
        participant: Uuid,
        role: MediaRole,
        fingerprint: Option<String>,
        now: i64,
    ) {
        if let Some(&conn) = self.by_participant.get(&participant) {
            let c = &self.conns[&conn];
            if c.role == role && c.fingerprint == fingerprint {
                // Renegotiation or ICE restart of the same browser connection.
                self.out.push_back(Output::Negotiate {
                    conn,
                    req,
                    feeds: Feed::received_by(role),
                });
                return;
            }
            // A reloaded page or another device: a new connection and a new segment.
            self.remove_conn(conn, now);
        }
        let conn = self.next_conn;
        self.next_conn += 1;
        let segment = self.next_segment;
        self.next_segment += 1;
        self.conns.insert(
            conn,
            ConnInfo {
                participant,
                role,
                fingerprint,
                segment,
                negotiated: false,
                connected: false,
                outputs: Vec::new(),
            },
        );
        self.by_participant.insert(participant, conn);
        self.out.push_back(Output::OpenConn {
            conn,
            req,
            participant,
            role,
        });
        self.out.push_back(Output::Negotiate {
            conn,
            req,
            feeds: Feed::received_by(role),
        });
    }

    fn track(&mut self, conn: Conn, track: TrackId, info: TrackInfo, now: i64) {
        let Some(c) = self.conns.get(&conn) else {
            // The connection was replaced or closed meanwhile.
            self.out.push_back(Output::Discard { track });
            return;
        };
        let Some(feed) = Feed::published_by(c.role, info.kind) else {
            self.out.push_back(Output::Discard { track });
            return;
        };
        // A codec change on the same connection starts a new segment: a container stream has
        // one codec, and the finalizer splits streams at segment boundaries.
        let codec_changed = self
            .sources
            .values()
            .rev()
            .find(|s| s.conn == conn && s.feed == feed)
            .is_some_and(|s| !s.mime.eq_ignore_ascii_case(&info.mime));
        if codec_changed {
            let segment = self.next_segment;
            self.next_segment += 1;
            if let Some(c) = self.conns.get_mut(&conn) {
                c.segment = segment;
            }
        }
        let c = &self.conns[&conn];
        let recording = !self.finished;
        if recording {
            let kind = match info.kind {
                TrackKind::Video => "video",
                TrackKind::Audio => "audio",
            };
            let mut meta = TrackMeta::new(
                format!("{}-{kind}-{:08x}", c.participant, info.ssrc),
                c.participant.to_string(),
                info.kind,
                info.mime.clone(),
                info.clock_rate,
                info.ssrc,
                now,
            );
            meta.feed = Some(feed.as_str().to_string());
            self.out.push_back(Output::OpenJournal {
                track,
                segment: c.segment,
                meta,
            });
        }
        self.sources.insert(
            track,
            SourceInfo {
                conn,
                feed,
                mime: info.mime,
                recording,
                sinks: Vec::new(),
                last_keyframe_request: None,
            },
        );
        self.out.push_back(Output::Source { track, feed });
        self.out.push_back(Output::Route {
            track,
            sinks: Vec::new(),
            record: recording,
        });
        // Subscribers that have no section for this feed must offer again.
        let mut renegotiate = Vec::new();
        for (&id, s) in &self.conns {
            if id != conn && Feed::received_by(s.role).contains(&feed) && !s.outputs.contains(&feed)
            {
                renegotiate.push(id);
            }
        }
        for conn in renegotiate {
            self.out.push_back(Output::Renegotiate { conn });
        }
        // Subscribers waiting for this feed get it now, starting with a keyframe.
        self.reroute(now);
    }

    fn state(&mut self, conn: Conn, state: ConnState, now: i64) {
        match state {
            ConnState::Connected => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                c.connected = true;
                // Only now can the subscriber decode what arrives; a keyframe asked for earlier
                // would be gone before its SRTP context exists.
                if c.role != MediaRole::Publisher && c.outputs.contains(&Feed::PubVideo) {
                    self.request_keyframe(Feed::PubVideo, now, false);
                }
            }
            ConnState::Closed => {
                if self.conns.contains_key(&conn) {
                    self.remove_conn(conn, now);
                }
            }
            ConnState::Other => {}
        }
    }

    fn remove_conn(&mut self, conn: Conn, now: i64) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        if self.by_participant.get(&c.participant) == Some(&conn) {
            self.by_participant.remove(&c.participant);
        }
        self.out.push_back(Output::CloseConn { conn });
        // Its own sources stay until their read loops end (what is still in flight is
        // journaled), but forward nothing from now on: a replacement may already be live.
        self.reroute(now);
    }

    /// The source of `feed` that subscribers receive: the newest live one whose connection is
    /// open (a reconnect replaces the old one at once; a second phone takes over when the
    /// first stops).
    fn active(&self, feed: Feed) -> Option<TrackId> {
        self.sources
            .iter()
            .rev()
            .find(|(_, s)| s.feed == feed && self.conns.contains_key(&s.conn))
            .map(|(&t, _)| t)
    }

    /// Recomputes every source's subscribers and tells the shell about those that changed.
    fn reroute(&mut self, now: i64) {
        let active: Vec<(Feed, Option<TrackId>)> = [Feed::PubVideo, Feed::PubAudio, Feed::Back]
            .into_iter()
            .map(|f| (f, self.active(f)))
            .collect();
        let tracks: Vec<TrackId> = self.sources.keys().copied().collect();
        for track in tracks {
            let s = &self.sources[&track];
            let is_active = active
                .iter()
                .any(|(f, t)| *f == s.feed && *t == Some(track));
            let source_participant = self.conns.get(&s.conn).map(|c| c.participant);
            let sinks: Vec<Conn> = if is_active {
                self.conns
                    .iter()
                    .filter(|(_, c)| {
                        c.outputs.contains(&s.feed) && Some(c.participant) != source_participant
                    })
                    .map(|(&id, _)| id)
                    .collect()
            } else {
                Vec::new()
            };
            if sinks != s.sinks {
                let record = s.recording;
                if let Some(s) = self.sources.get_mut(&track) {
                    s.sinks = sinks.clone();
                }
                self.out.push_back(Output::Route {
                    track,
                    sinks,
                    record,
                });
            }
        }
        // A video source that starts, or takes over from another (a reconnect), must give
        // the subscribers that are up a keyframe at once (if its first one was lost, this
        // repairs it). Subscribers still connecting get theirs when they are up: one asked
        // now would arrive before they can decode it.
        let video = self.active(Feed::PubVideo);
        if video != self.active_video {
            self.active_video = video;
            if let Some(track) = video {
                let watched = self.sources[&track]
                    .sinks
                    .iter()
                    .any(|c| self.conns.get(c).is_some_and(|c| c.connected));
                if watched {
                    self.keyframe_for(track, now, false);
                }
            }
        }
    }

    fn request_keyframe(&mut self, feed: Feed, now: i64, force: bool) {
        if feed.kind() != TrackKind::Video {
            return;
        }
        if let Some(track) = self.active(feed) {
            self.keyframe_for(track, now, force);
        }
    }

    /// Asks for a keyframe unless one was asked less than [`KEYFRAME_INTERVAL_MICROS`] ago
    /// (`force`: a checklist mark wants its own seek point).
    fn keyframe_for(&mut self, track: TrackId, now: i64, force: bool) {
        let Some(s) = self.sources.get_mut(&track) else {
            return;
        };
        let recent = s
            .last_keyframe_request
            .is_some_and(|t| now >= t && now - t < KEYFRAME_INTERVAL_MICROS);
        if recent && !force {
            return;
        }
        s.last_keyframe_request = Some(now);
        self.out.push_back(Output::RequestKeyframe { track });
    }

    /// The inspection (for logs).
    pub(crate) fn inspection(&self) -> Uuid {
        self.inspection
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_700_000_000_000_000;
    const SEC: i64 = 1_000_000;

    fn uuid(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn drain(room: &mut Room) -> Vec<Output> {
        std::iter::from_fn(|| room.poll_output()).collect()
    }

    fn info(kind: TrackKind, mime: &str, ssrc: u32) -> TrackInfo {
        TrackInfo {
            kind,
            mime: mime.into(),
            clock_rate: if kind == TrackKind::Video {
                90_000
            } else {
                48_000
            },
            ssrc,
        }
    }

    fn track(room: &mut Room, conn: Conn, track: TrackId, kind: TrackKind, mime: &str, now: i64) {
        room.handle(Input::Track {
            conn,
            track,
            info: info(kind, mime, track as u32),
            now,
        });
    }

    fn video(room: &mut Room, conn: Conn, id: TrackId, now: i64) {
        track(room, conn, id, TrackKind::Video, "video/VP8", now);
    }

    /// Offers and answers for a participant, attaching every feed its role receives (or only
    /// `feeds`); returns its connection. What this queued is left in the room.
    fn join_with(
        room: &mut Room,
        req: Req,
        who: Uuid,
        role: MediaRole,
        fp: &str,
        feeds: &[Feed],
        now: i64,
    ) -> Conn {
        room.handle(Input::Offer {
            req,
            participant: who,
            role,
            fingerprint: Some(fp.into()),
            now,
        });
        let conn = room
            .out
            .iter()
            .find_map(|o| match o {
                Output::Negotiate { conn, req: r, .. } if *r == req => Some(*conn),
                _ => None,
            })
            .expect("negotiate");
        for &feed in feeds {
            room.handle(Input::OutputAttached { conn, feed, now });
        }
        room.handle(Input::Negotiated {
            conn,
            ok: true,
            now,
        });
        conn
    }

    fn join(room: &mut Room, req: Req, who: Uuid, role: MediaRole, fp: &str, now: i64) -> Conn {
        join_with(room, req, who, role, fp, Feed::received_by(role), now)
    }

    fn connect(room: &mut Room, conn: Conn, now: i64) {
        room.handle(Input::State {
            conn,
            state: ConnState::Connected,
            now,
        });
    }

    fn routes(out: &[Output]) -> Vec<(TrackId, Vec<Conn>, bool)> {
        out.iter()
            .filter_map(|o| match o {
                Output::Route {
                    track,
                    sinks,
                    record,
                } => Some((*track, sinks.clone(), *record)),
                _ => None,
            })
            .collect()
    }

    fn keyframes(out: &[Output]) -> Vec<TrackId> {
        out.iter()
            .filter_map(|o| match o {
                Output::RequestKeyframe { track } => Some(*track),
                _ => None,
            })
            .collect()
    }

    fn journals(out: &[Output]) -> Vec<(TrackId, u32)> {
        out.iter()
            .filter_map(|o| match o {
                Output::OpenJournal { track, segment, .. } => Some((*track, *segment)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn publisher_reaches_inspector_and_voice_goes_back() {
        let mut room = Room::new(uuid(0), 0, false);
        let (biz, insp) = (uuid(1), uuid(2));
        let ci = join(&mut room, 1, insp, MediaRole::Inspector, "a", T);
        let out = drain(&mut room);
        assert_eq!(
            out[..2],
            [
                Output::OpenConn {
                    conn: ci,
                    req: 1,
                    participant: insp,
                    role: MediaRole::Inspector
                },
                Output::Negotiate {
                    conn: ci,
                    req: 1,
                    feeds: &[Feed::PubVideo, Feed::PubAudio]
                }
            ]
        );
        assert!(routes(&out).is_empty(), "no source yet: {out:?}");
        connect(&mut room, ci, T);
        let cb = join(&mut room, 2, biz, MediaRole::Publisher, "b", T);
        drain(&mut room);

        video(&mut room, cb, 10, T);
        let out = drain(&mut room);
        match &out[0] {
            Output::OpenJournal {
                track: 10,
                segment: 1,
                meta,
            } => {
                assert_eq!(meta.kind, TrackKind::Video);
                assert_eq!(meta.feed.as_deref(), Some("business_camera"));
                assert_eq!(meta.created_at_micros, T);
                assert_eq!(meta.participant_id, biz.to_string());
            }
            other => panic!("journal first: {other:?}"),
        }
        assert_eq!(
            out[1],
            Output::Source {
                track: 10,
                feed: Feed::PubVideo
            }
        );
        // Journaled from the start, forwarded to the inspector, with a keyframe for it (it is
        // connected already).
        assert_eq!(routes(&out), vec![(10, vec![], true), (10, vec![ci], true)]);
        assert_eq!(keyframes(&out), vec![10]);

        // The inspector's voice goes to the business only, and needs no keyframe.
        track(&mut room, ci, 11, TrackKind::Audio, "audio/opus", T);
        let out = drain(&mut room);
        assert_eq!(routes(&out).last(), Some(&(11, vec![cb], true)));
        assert!(keyframes(&out).is_empty());
        assert_eq!(room.conn_count(), 2);
    }

    #[test]
    fn keyframes_on_connect_relayed_requests_and_marks() {
        let mut room = Room::new(uuid(0), 0, false);
        let cb = join(&mut room, 1, uuid(1), MediaRole::Publisher, "b", T);
        video(&mut room, cb, 1, T);
        assert!(
            keyframes(&drain(&mut room)).is_empty(),
            "nobody watches yet"
        );

        // A viewer arrives: routed at once, but its keyframe waits until it can decode.
        let cv = join(&mut room, 2, uuid(2), MediaRole::Viewer, "v", T + SEC);
        let out = drain(&mut room);
        assert_eq!(routes(&out), vec![(1, vec![cv], true)]);
        assert!(keyframes(&out).is_empty(), "not connected yet");
        connect(&mut room, cv, T + 2 * SEC);
        assert_eq!(keyframes(&drain(&mut room)), vec![1], "on connected");

        // A relayed PLI 100 ms later is merged; 300 ms later it goes out.
        let pli = |room: &mut Room, conn, now| {
            room.handle(Input::KeyframeRequest {
                conn,
                feed: Feed::PubVideo,
                now,
            });
            keyframes(&drain(room))
        };
        assert!(
            pli(&mut room, cv, T + 2 * SEC + 100_000).is_empty(),
            "merged"
        );
        assert_eq!(pli(&mut room, cv, T + 2 * SEC + 300_000), vec![1]);

        // A mark always gets its own keyframe, even inside the merge window.
        room.handle(Input::Mark {
            mark: Mark {
                item_id: "i".into(),
                title: "1. Q".into(),
                result: "violation".into(),
                at_micros: T + 2 * SEC + 350_000,
            },
            now: T + 2 * SEC + 350_000,
        });
        assert_eq!(keyframes(&drain(&mut room)), vec![1]);
        // So does a recorded item announced without a mark (signaling derives marks from
        // the log at finish and asks only for the picture).
        room.handle(Input::Keyframe {
            now: T + 2 * SEC + 400_000,
        });
        assert_eq!(keyframes(&drain(&mut room)), vec![1]);

        // The publisher's own connecting asks for nothing; a request for a feed the
        // connection does not receive is ignored.
        room.handle(Input::State {
            conn: cb,
            state: ConnState::Connected,
            now: T + 5 * SEC,
        });
        assert!(keyframes(&drain(&mut room)).is_empty());
        assert!(pli(&mut room, cb, T + 6 * SEC).is_empty());
    }

    #[test]
    fn reconnect_is_a_new_connection_and_segment_and_takes_over_the_route() {
        let mut room = Room::new(uuid(0), 3, false);
        let biz = uuid(1);
        let cv = join(&mut room, 1, uuid(2), MediaRole::Viewer, "v", T);
        connect(&mut room, cv, T);
        let c1 = join(&mut room, 2, biz, MediaRole::Publisher, "phone-1", T);
        video(&mut room, c1, 1, T);
        assert_eq!(keyframes(&drain(&mut room)), vec![1]);

        // Same browser connection again (ICE restart): same connection, nothing closed.
        room.handle(Input::Offer {
            req: 3,
            participant: biz,
            role: MediaRole::Publisher,
            fingerprint: Some("phone-1".into()),
            now: T + SEC,
        });
        assert_eq!(
            drain(&mut room),
            vec![Output::Negotiate {
                conn: c1,
                req: 3,
                feeds: &[Feed::Back]
            }]
        );

        // A reload: another fingerprint. The old connection closes and its source stops
        // forwarding at once (it is still journaled until its read loop ends).
        room.handle(Input::Offer {
            req: 4,
            participant: biz,
            role: MediaRole::Publisher,
            fingerprint: Some("phone-2".into()),
            now: T + 2 * SEC,
        });
        let out = drain(&mut room);
        assert_eq!(out[0], Output::CloseConn { conn: c1 });
        assert_eq!(routes(&out), vec![(1, vec![], true)]);
        let c2 = match out[2] {
            Output::OpenConn { conn, .. } => conn,
            ref o => panic!("{o:?}"),
        };
        assert_ne!(c1, c2);
        room.handle(Input::Negotiated {
            conn: c2,
            ok: true,
            now: T + 2 * SEC,
        });
        video(&mut room, c2, 2, T + 3 * SEC);
        let out = drain(&mut room);
        // Segments 3 (viewer), 4 (first phone), 5 (the reload).
        assert_eq!(journals(&out), vec![(2, 5)]);
        assert_eq!(routes(&out).last(), Some(&(2, vec![cv], true)));
        assert_eq!(keyframes(&out), vec![2]);

        // The old track ends: its journal closes; the new route stays.
        room.handle(Input::TrackEnded {
            track: 1,
            now: T + 3 * SEC,
        });
        assert_eq!(drain(&mut room), vec![Output::CloseJournal { track: 1 }]);
    }

    #[test]
    fn a_second_publisher_takes_over_and_hands_back() {
        let mut room = Room::new(uuid(0), 0, false);
        let cv = join(&mut room, 1, uuid(9), MediaRole::Viewer, "v", T);
        connect(&mut room, cv, T);
        let p1 = join(&mut room, 2, uuid(1), MediaRole::Publisher, "p1", T);
        let p2 = join(&mut room, 3, uuid(2), MediaRole::Publisher, "p2", T);
        drain(&mut room);
        video(&mut room, p1, 1, T);
        assert_eq!(
            routes(&drain(&mut room)),
            vec![(1, vec![], true), (1, vec![cv], true)]
        );
        // Never two sources into one output: the newer one wins.
        video(&mut room, p2, 2, T + SEC);
        let out = drain(&mut room);
        assert_eq!(
            routes(&out),
            vec![(2, vec![], true), (1, vec![], true), (2, vec![cv], true)]
        );
        assert_eq!(keyframes(&out), vec![2]);
        room.handle(Input::Leave {
            participant: uuid(2),
            now: T + 2 * SEC,
        });
        let out = drain(&mut room);
        assert_eq!(out[0], Output::CloseConn { conn: p2 });
        assert_eq!(routes(&out), vec![(1, vec![cv], true), (2, vec![], true)]);
        assert_eq!(keyframes(&out), vec![1], "the first phone takes over");
    }

    #[test]
    fn codec_change_on_one_connection_starts_a_segment() {
        let mut room = Room::new(uuid(0), 0, false);
        let cb = join(&mut room, 1, uuid(1), MediaRole::Publisher, "b", T);
        let mut segment = |id, mime: &str| {
            track(&mut room, cb, id, TrackKind::Video, mime, T);
            journals(&drain(&mut room))[0].1
        };
        assert_eq!(segment(1, "video/VP8"), 0);
        assert_eq!(segment(2, "video/H264"), 1);
        // The same codec again (a new SSRC after renegotiation) stays in the segment.
        assert_eq!(segment(3, "video/H264"), 1);
    }

    #[test]
    fn roles_cannot_publish_what_they_may_not() {
        let mut room = Room::new(uuid(0), 0, false);
        let ci = join(&mut room, 1, uuid(1), MediaRole::Inspector, "i", T);
        let cv = join(&mut room, 2, uuid(2), MediaRole::Viewer, "v", T);
        drain(&mut room);
        for (conn, id, kind) in [
            (ci, 1, TrackKind::Video),
            (cv, 2, TrackKind::Audio),
            (99, 3, TrackKind::Audio),
        ] {
            track(&mut room, conn, id, kind, "audio/opus", T);
            assert_eq!(drain(&mut room), vec![Output::Discard { track: id }]);
        }
    }

    #[test]
    fn failed_first_negotiation_forgets_the_connection_and_candidates_need_one() {
        let mut room = Room::new(uuid(0), 0, false);
        let who = uuid(1);
        room.handle(Input::Candidate {
            req: 1,
            participant: who,
        });
        assert_eq!(
            drain(&mut room),
            vec![Output::Refuse {
                req: 1,
                why: Refusal::UnknownPeer
            }]
        );
        room.handle(Input::Offer {
            req: 2,
            participant: who,
            role: MediaRole::Viewer,
            fingerprint: None,
            now: T,
        });
        let conn = match drain(&mut room)[0] {
            Output::OpenConn { conn, .. } => conn,
            ref o => panic!("{o:?}"),
        };
        room.handle(Input::Candidate {
            req: 3,
            participant: who,
        });
        assert_eq!(drain(&mut room), vec![Output::Candidate { conn, req: 3 }]);
        room.handle(Input::Negotiated {
            conn,
            ok: false,
            now: T,
        });
        assert_eq!(drain(&mut room), vec![Output::CloseConn { conn }]);
        assert!(room.is_idle());
        assert_eq!(room.conn_count(), 0);
    }

    #[test]
    fn a_failed_renegotiation_keeps_the_connection() {
        let mut room = Room::new(uuid(0), 0, false);
        let who = uuid(1);
        let conn = join(&mut room, 1, who, MediaRole::Viewer, "v", T);
        room.handle(Input::Offer {
            req: 2,
            participant: who,
            role: MediaRole::Viewer,
            fingerprint: Some("v".into()),
            now: T,
        });
        room.handle(Input::Negotiated {
            conn,
            ok: false,
            now: T,
        });
        assert!(!drain(&mut room).contains(&Output::CloseConn { conn }));
        assert_eq!(room.conn_count(), 1);
    }

    #[test]
    fn the_browser_closing_its_connection_removes_it() {
        let mut room = Room::new(uuid(0), 0, false);
        let cv = join(&mut room, 1, uuid(2), MediaRole::Viewer, "v", T);
        let cb = join(&mut room, 2, uuid(1), MediaRole::Publisher, "b", T);
        video(&mut room, cb, 1, T);
        drain(&mut room);
        room.handle(Input::State {
            conn: cv,
            state: ConnState::Closed,
            now: T,
        });
        let out = drain(&mut room);
        assert_eq!(out[0], Output::CloseConn { conn: cv });
        assert_eq!(routes(&out), vec![(1, vec![], true)]);
        room.handle(Input::State {
            conn: cv,
            state: ConnState::Closed,
            now: T,
        });
        assert!(drain(&mut room).is_empty(), "closed once");
    }

    #[test]
    fn finish_closes_journals_and_later_tracks_are_not_recorded() {
        let mut room = Room::new(uuid(0), 0, false);
        let cv = join(&mut room, 1, uuid(2), MediaRole::Viewer, "v", T);
        let cb = join(&mut room, 2, uuid(1), MediaRole::Publisher, "b", T);
        video(&mut room, cb, 1, T);
        let mark = Mark {
            item_id: "i".into(),
            title: "t".into(),
            result: "ok".into(),
            at_micros: T + 5,
        };
        room.handle(Input::Mark {
            mark: mark.clone(),
            now: T + 5,
        });
        drain(&mut room);
        room.handle(Input::Finish);
        assert_eq!(
            drain(&mut room),
            vec![
                Output::Route {
                    track: 1,
                    sinks: vec![cv],
                    record: false
                },
                Output::CloseJournal { track: 1 },
                Output::Finalize { marks: vec![mark] }
            ]
        );
        // Forwarding goes on, recording does not.
        track(&mut room, cb, 2, TrackKind::Audio, "audio/opus", T);
        let out = drain(&mut room);
        assert!(journals(&out).is_empty(), "{out:?}");
        assert_eq!(routes(&out), vec![(2, vec![], false), (2, vec![cv], false)]);
        room.handle(Input::TrackEnded { track: 1, now: T });
        assert!(
            !drain(&mut room).contains(&Output::CloseJournal { track: 1 }),
            "closed once, at finish"
        );
        // A room restored after the recording was built records nothing either.
        let mut done = Room::new(uuid(0), 7, true);
        let cb = join(&mut done, 1, uuid(1), MediaRole::Publisher, "b", T);
        video(&mut done, cb, 1, T);
        assert!(journals(&drain(&mut done)).is_empty());
    }

    #[test]
    fn a_subscriber_without_the_section_is_asked_to_renegotiate() {
        let mut room = Room::new(uuid(0), 0, false);
        // A viewer that offered audio only.
        let cv = join_with(
            &mut room,
            1,
            uuid(2),
            MediaRole::Viewer,
            "v",
            &[Feed::PubAudio],
            T,
        );
        connect(&mut room, cv, T);
        let cb = join(&mut room, 2, uuid(1), MediaRole::Publisher, "b", T);
        drain(&mut room);
        video(&mut room, cb, 1, T);
        let out = drain(&mut room);
        assert!(out.contains(&Output::Renegotiate { conn: cv }), "{out:?}");
        assert!(keyframes(&out).is_empty());
        // After its new offer it has the section, is routed and, being up, gets a keyframe.
        room.handle(Input::OutputAttached {
            conn: cv,
            feed: Feed::PubVideo,
            now: T + SEC,
        });
        let out = drain(&mut room);
        assert_eq!(routes(&out), vec![(1, vec![cv], true)]);
        assert_eq!(keyframes(&out), vec![1]);
    }
}
