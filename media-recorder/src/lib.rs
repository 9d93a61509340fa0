//! The server's WebRTC peer: forwards the business's camera and microphone to inspectors,
//! the inspector's voice back, and records every track without transcoding.
//!
//! The hub is SFU-style: the business (publisher) sends its video and audio once; every
//! inspector and viewer gets the same RTP packets, rewritten only in SSRC, sequence number and
//! timestamp offsets. Each inspection has a media actor (`actor`) that owns its forwarding and
//! recording state; its decisions are a sans-IO state machine (`core`). Every received packet
//! is appended to a per-track journal on disk as it arrives (`journal`, written by the writer
//! thread), and `finish` turns the journals into a file (`finalize`).
#![deny(missing_docs)]

mod actor;
mod announce;
mod api;
pub mod chapters;
mod core;
pub mod depacketize;
pub mod extract;
pub mod finalize;
mod forward;
pub mod fuzzing;
mod hub;
mod inbox;
pub mod journal;
pub mod nack;
mod negotiate;
pub mod opus;
mod peer;
mod probe;
pub mod recover;
pub mod rtp;
pub mod sdp;
pub mod seen;
#[cfg(feature = "testsrc")]
pub mod testsrc;
pub mod timecode;
pub mod uplink;
mod writer;

use std::sync::Arc;

use uuid::Uuid;

pub use api::{IceServer, MediaConfig, MediaError, MediaEvent, MediaRole};
pub use chapters::Mark;
pub use finalize::Manifest;
pub use probe::PROBE_LIFETIME;
pub use recover::Unfinished;
pub use uplink::{Reception, Uplink};

/// Device checks connected at once, at most: each is a peer connection with its sockets.
pub const MAX_PROBES: usize = 8;

/// The media hub: one per server, cheap to clone.
#[derive(Clone)]
pub struct MediaHub {
    inner: Arc<hub::Hub>,
    probes: Arc<tokio::sync::Semaphore>,
}

impl MediaHub {
    /// Creates the hub: checks the configuration, creates the recordings directory and starts
    /// the recording writer thread.
    pub async fn new(cfg: MediaConfig) -> Result<Self, MediaError> {
        if cfg.udp_addrs.is_empty() {
            return Err(MediaError::Internal("udp_addrs must not be empty".into()));
        }
        for addr in &cfg.udp_addrs {
            addr.parse::<std::net::SocketAddr>()
                .map_err(|e| MediaError::Internal(format!("bad udp address {addr}: {e}")))?;
        }
        tokio::fs::create_dir_all(&cfg.recordings_dir)
            .await
            .map_err(|e| MediaError::Internal(format!("recordings dir: {e}")))?;
        let inner = hub::Hub::new(cfg)
            .map_err(|e| MediaError::Internal(format!("recording writer thread: {e}")))?;
        Ok(Self {
            inner,
            probes: Arc::new(tokio::sync::Semaphore::new(MAX_PROBES)),
        })
    }

    /// STUN/TURN servers to hand to browsers.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.inner.cfg().ice_servers
    }

    /// Browser-initiated offer (first offer, renegotiation, or ICE restart). Returns the answer
    /// as `RTCSessionDescription` JSON (`{"type":"answer","sdp":...}`) with the server's
    /// candidates included; later ones arrive as [`MediaEvent::LocalCandidate`].
    pub async fn offer(
        &self,
        inspection: Uuid,
        peer: Uuid,
        role: MediaRole,
        sdp: serde_json::Value,
        events: tokio::sync::mpsc::UnboundedSender<MediaEvent>,
    ) -> Result<serde_json::Value, MediaError> {
        self.inner.offer(inspection, peer, role, sdp, events).await
    }

    /// A browser ICE candidate (`RTCIceCandidateInit` JSON); an empty candidate string means
    /// end of candidates and is accepted.
    pub async fn candidate(
        &self,
        inspection: Uuid,
        peer: Uuid,
        candidate: serde_json::Value,
    ) -> Result<(), MediaError> {
        self.inner.candidate(inspection, peer, candidate).await
    }

    /// The participant left: close its connection; its tracks end and their journals close.
    pub async fn leave(&self, inspection: Uuid, peer: Uuid) {
        self.inner.leave(inspection, peer).await
    }

    /// A checklist mark: persisted (fsynced, off the async workers), and the publisher is asked
    /// for a keyframe now so the mark's chapter starts at a picture.
    pub fn mark(&self, inspection: Uuid, mark: Mark) {
        self.inner.mark(inspection, mark)
    }

    /// Asks the publisher for a keyframe now (a checklist item was just recorded, so the
    /// chapter that starts here begins with a clean picture). Never blocks; does nothing when
    /// the inspection has no live video.
    pub fn request_keyframe(&self, inspection: Uuid) {
        self.inner.request_keyframe(inspection)
    }

    /// The inspection ended: stops recording it (journals closed and fsynced), then builds the
    /// recording (WebM/MP4 with a chapter per mark, no transcoding) on a blocking thread and
    /// writes its manifest, last. `marks` are merged with the marks given to
    /// [`MediaHub::mark`] and those in the on-disk mark log. Works without live media, from the
    /// journals on disk (after a restart), and is idempotent: once the manifest exists it is
    /// returned as it is. Connections stay up; tracks published afterwards are not recorded.
    pub async fn finish(&self, inspection: Uuid, marks: Vec<Mark>) -> Result<Manifest, MediaError> {
        self.inner.finish(inspection, marks).await
    }

    /// At start, before any media: makes whole what a crash left behind (torn journal tails
    /// and mark-log lines cut, see [`recover`]) and lists the recordings without a manifest.
    /// Nothing is finished: the caller decides which of them belong to inspections that ended
    /// and calls [`MediaHub::finish`] for those; the others continue when their participants
    /// come back.
    pub async fn recover(&self) -> Result<Vec<Unfinished>, MediaError> {
        self.inner.recover().await
    }

    /// A device check's offer: a connection to this peer that belongs to no inspection's room
    /// (nothing forwarded, journaled or recorded; a live inspection is not touched). It
    /// counts the media bytes it receives and echoes data-channel pings (see `probe`). The
    /// offer must carry its candidates (no trickle); so does the answer. At most
    /// [`MAX_PROBES`] at once ([`MediaError::Busy`]), each for [`PROBE_LIFETIME`].
    pub async fn probe(&self, sdp: serde_json::Value) -> Result<serde_json::Value, MediaError> {
        let permit = self
            .probes
            .clone()
            .try_acquire_owned()
            .map_err(|_| MediaError::Busy)?;
        probe::answer(self.inner.cfg(), sdp, permit).await
    }

    /// The server time of the video frame this participant was sent with RTP timestamp `ts`
    /// (as its browser saw it, after the server's rewriting), if it was sent within the last
    /// [`seen::SEEN_FRAMES`] frames of its current video output; `None` for a frame never
    /// sent to it. Marks are placed on the frame the participant saw with this (issue 23).
    pub fn seen_frame(&self, inspection: Uuid, participant: Uuid, ts: u32) -> Option<i64> {
        self.inner.seen_frame(inspection, participant, ts)
    }

    /// What the server is receiving from each live published track of the inspection (the
    /// business's camera and microphone, an inspector's voice): bit rate and loss after repair
    /// over the last [`uplink::WINDOW_MICROS`], and how long since a packet came. Measured
    /// where the packets arrive, so it needs no trust in the sender. Empty when nothing is
    /// being received here (another node, or no media yet).
    pub fn uplinks(&self, inspection: Uuid) -> Vec<Uplink> {
        self.inner
            .uplinks(inspection, chrono::Utc::now().timestamp_micros())
    }

    /// Number of live peer connections (for metrics and tests).
    pub fn peer_count(&self) -> usize {
        self.inner.peer_count()
    }
}
