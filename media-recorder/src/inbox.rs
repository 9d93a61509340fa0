//! What an inspection's media actor is fed, over one channel in arrival order: the API's calls
//! and the events of its connections, tracks and forwarders (`PeerEvent`). The actor stamps
//! each with the time and turns it into a [`crate::core::Input`].

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;
use webrtc::media_stream::track_remote::TrackRemote;

use crate::api::{MediaError, MediaEvent, MediaRole};
use crate::chapters::Mark;
use crate::core::{Conn, ConnState, Feed, TrackId, TrackInfo};
use crate::rtp::Fwd;
use crate::sdp::OfferSummary;

/// What `finish` gets back from the actor: the live marks, and a receiver answered once the
/// journals are closed on disk.
pub(crate) struct FinishReady {
    pub marks: Vec<Mark>,
    pub written: oneshot::Receiver<()>,
}

/// A message to an inspection's actor.
pub(crate) enum RoomMsg {
    /// A browser's offer, already checked (`sdp::check_offer`).
    Offer {
        participant: Uuid,
        role: MediaRole,
        desc: Box<rtc::peer_connection::sdp::RTCSessionDescription>,
        summary: OfferSummary,
        events: mpsc::UnboundedSender<MediaEvent>,
        reply: oneshot::Sender<Result<serde_json::Value, MediaError>>,
    },
    /// A browser's ICE candidate (`RTCIceCandidateInit` JSON, parsed by the connection).
    Candidate {
        participant: Uuid,
        candidate: serde_json::Value,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
    /// The participant left; answered when its connection is gone from the room.
    Leave {
        participant: Uuid,
        reply: oneshot::Sender<()>,
    },
    /// A checklist mark (already handed to the writer to be persisted).
    Mark { mark: Mark },
    /// A checklist item was recorded: a seek point with a picture now.
    Keyframe,
    /// Stop recording.
    Finish { reply: oneshot::Sender<FinishReady> },
    /// An event of the room's IO.
    Peer(PeerEvent),
}

/// An event of a connection, a track or a forwarder of the room.
pub(crate) enum PeerEvent {
    /// An offer on `conn` was answered (`ok`) or failed.
    Negotiated { conn: Conn, ok: bool },
    /// `conn` has a sending track for `feed`; packets for it go into `tx`.
    OutputAttached {
        conn: Conn,
        feed: Feed,
        tx: mpsc::Sender<Fwd>,
    },
    /// `conn` received a track.
    Track {
        conn: Conn,
        remote: Arc<dyn TrackRemote>,
        info: TrackInfo,
    },
    /// A source's read loop ended.
    TrackEnded { track: TrackId },
    /// `conn`'s state changed.
    State { conn: Conn, state: ConnState },
    /// The subscriber on `conn` asked for a keyframe of `feed`.
    KeyframeRequest { conn: Conn, feed: Feed },
}

/// The sending side of an actor's inbox, as IO tasks hold it.
pub(crate) type Inbox = mpsc::UnboundedSender<RoomMsg>;

/// Sends a peer event; a gone actor (the room was unloaded) needs nothing more.
pub(crate) fn notify(inbox: &Inbox, ev: PeerEvent) {
    let _ = inbox.send(RoomMsg::Peer(ev));
}
