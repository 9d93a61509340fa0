//! The plain types of the media API: configuration, roles, events for the browser, errors.
//! A leaf module: everything else in the crate may use it, it uses nothing but `finalize`'s
//! error type.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::finalize::FinalizeError;

/// Configuration of the media hub.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MediaConfig {
    /// Where journals and finished recordings go (`<dir>/<inspection>/journal/...`).
    pub recordings_dir: PathBuf,
    /// UDP addresses the server's peer connections bind, e.g. `"127.0.0.1:0"`. A wildcard
    /// address skips loopback in webrtc 0.21, so list the interfaces explicitly.
    pub udp_addrs: Vec<String>,
    /// Public IPs announced instead of the bound address (server behind 1:1 NAT), at most one
    /// per address family; the ports stay the bound ones (see `announce`).
    #[serde(default)]
    pub nat_1to1_ips: Vec<std::net::IpAddr>,
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
    Finalize(#[from] FinalizeError),
    /// Too many device checks are connected at once; try again in a few seconds.
    #[error("too many device checks at once")]
    Busy,
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
            MediaError::Finalize(FinalizeError::NoMedia(_)) => "no_media",
            MediaError::Finalize(_) => "finalize_failed",
            MediaError::Busy => "media_busy",
            MediaError::Internal(_) => "internal",
        }
    }
}
