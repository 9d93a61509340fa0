//! The server's WebRTC peer: forwards the business's camera and microphone to inspectors,
//! the inspector's voice back, and records every track without transcoding.
//!
//! The hub is SFU-style: the business (publisher) sends its video and audio once; every
//! inspector and viewer gets the same RTP packets, rewritten only in SSRC, sequence number and
//! timestamp offsets. Every received packet is appended to a per-track journal on disk as it
//! arrives (see `journal`), and the finalizer turns the journals into a file later.
#![deny(missing_docs)]

pub mod chapters;
pub mod depacketize;
pub mod extract;
pub mod finalize;
pub mod journal;
mod peer;
pub mod rtp;
pub mod sdp;
mod sfu;
#[cfg(feature = "testsrc")]
pub mod testsrc;
pub mod timecode;

use std::path::PathBuf;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Configuration of the media hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaConfig {
    /// Where journals and finished recordings go (`<dir>/<inspection>/journal/...`).
    pub recordings_dir: PathBuf,
    /// UDP addresses the server's peer connections bind, e.g. `"127.0.0.1:0"`. A wildcard
    /// address skips loopback in webrtc 0.21, so list the interfaces explicitly.
    pub udp_addrs: Vec<String>,
    /// Public IPs announced instead of the bound address (server behind 1:1 NAT).
    #[serde(default)]
    pub nat_1to1_ips: Vec<String>,
    /// STUN/TURN servers handed to browsers; the server itself needs none.
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
}

/// One STUN or TURN server, serialized exactly as a browser's `RTCIceServer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `stun:host:port`, `turn:host:port?transport=udp`, `turns:...`.
    pub urls: Vec<String>,
    /// TURN user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// TURN password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// What a participant may send and receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaRole {
    /// The business: sends camera and microphone, receives the inspector's voice.
    Publisher,
    /// An inspector: sends the microphone only, receives the business's media.
    Inspector,
    /// An observer: receives the business's media, sends nothing.
    Viewer,
}

/// Something the signaling layer must tell the browser.
#[derive(Debug, Clone, PartialEq)]
pub enum MediaEvent {
    /// A server ICE candidate gathered after the answer was returned (`rtc.candidate`).
    LocalCandidate(serde_json::Value),
    /// The tracks this peer should receive changed: the browser should send a new offer.
    Renegotiate,
    /// Connection state of the server's peer connection (`new`, `connected`, `failed`, ...).
    State(String),
}

pub use chapters::Mark;

/// Errors of the media API; [`MediaError::code`] is the stable code sent to clients.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The session description is not valid JSON/SDP or not an offer.
    #[error("invalid session description: {0}")]
    SdpInvalid(String),
    /// A media section offers none of VP8, H.264 (packetization-mode 1) or Opus.
    #[error("no usable codec: {0}")]
    NoUsableCodec(String),
    /// The participant's role does not allow what the offer asks for.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// No media session for this participant (send an offer first).
    #[error("unknown peer")]
    UnknownPeer,
    /// The ICE candidate could not be parsed or applied.
    #[error("invalid ICE candidate: {0}")]
    CandidateInvalid(String),
    /// The inspection's recording is already finished.
    #[error("recording already finished")]
    Finished,
    /// Building the recording from the journals failed.
    #[error("finalize failed: {0}")]
    Finalize(#[from] finalize::FinalizeError),
    /// A failure inside the WebRTC stack or the file system.
    #[error("internal media error: {0}")]
    Internal(String),
}

impl MediaError {
    /// Stable snake_case code for clients and logs.
    pub fn code(&self) -> &'static str {
        match self {
            MediaError::SdpInvalid(_) => "sdp_invalid",
            MediaError::NoUsableCodec(_) => "no_usable_codec",
            MediaError::Forbidden(_) => "forbidden",
            MediaError::UnknownPeer => "unknown_peer",
            MediaError::CandidateInvalid(_) => "candidate_invalid",
            MediaError::Finished => "recording_finished",
            MediaError::Finalize(finalize::FinalizeError::NoMedia(_)) => "no_media",
            MediaError::Finalize(_) => "finalize_failed",
            MediaError::Internal(_) => "internal",
        }
    }
}

pub use finalize::Manifest;

/// The media hub: one per server, cheap to clone.
#[derive(Clone)]
pub struct MediaHub {
    inner: Arc<sfu::Hub>,
}

impl MediaHub {
    /// Creates the hub; checks the configuration and creates the recordings directory.
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
        Ok(Self {
            inner: sfu::Hub::new(cfg),
        })
    }

    /// STUN/TURN servers to hand to browsers.
    pub fn ice_servers(&self) -> &[IceServer] {
        &self.inner.cfg.ice_servers
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

    /// The participant left: close its connection, stop its tracks and close their journals.
    pub async fn leave(&self, inspection: Uuid, peer: Uuid) {
        self.inner.leave(inspection, peer).await
    }

    /// A checklist mark: ask the publisher for a keyframe now and remember the mark.
    pub fn mark(&self, inspection: Uuid, mark: Mark) {
        self.inner.mark(inspection, mark)
    }

    /// Asks the publisher for a keyframe now (a checklist item was just recorded, so the
    /// chapter that starts here begins with a clean picture). Never blocks; does nothing when
    /// the inspection has no live video.
    pub fn request_keyframe(&self, inspection: Uuid) {
        self.inner.request_keyframe(inspection)
    }

    /// Stops recording the inspection: closes (fsyncs) its journals, then builds the recording
    /// (WebM/MP4 with a chapter per mark, no transcoding) on a blocking thread. `marks` are
    /// merged with the marks given to [`MediaHub::mark`] and those in the on-disk mark log.
    /// Connections stay up; tracks published afterwards are not recorded.
    pub async fn finish(&self, inspection: Uuid, marks: Vec<Mark>) -> Result<Manifest, MediaError> {
        self.inner.finish(inspection, marks).await
    }

    /// Number of live peer connections (for metrics and tests).
    pub fn peer_count(&self) -> usize {
        self.inner.peer_count()
    }
}
