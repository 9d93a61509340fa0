//! The device check's peer: a connection to the server's media peer that belongs to no room.
//! It receives the browser's camera and microphone only to count their bytes (nothing is
//! journaled, forwarded or recorded), and answers on a data channel: `ping:<x>` with
//! `pong:<x>` (the browser times the round trip) and `bytes` with `bytes:<n>`, the RTP bytes
//! received so far (the upload rate as the server saw it). A probe lives at most
//! [`PROBE_LIFETIME`] and the hub holds at most `MAX_PROBES` at once.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::{watch, OwnedSemaphorePermit};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
};

use crate::api::{MediaConfig, MediaError};

/// How long a probe connection may live: the check measures for a few seconds.
pub const PROBE_LIFETIME: Duration = Duration::from_secs(30);
/// How long the answer waits for the server's host candidates (the check does not trickle).
const GATHER_WAIT: Duration = Duration::from_millis(1500);
/// Longest data-channel message answered; longer ones are ignored.
const MAX_MESSAGE: usize = 64;

/// The probe's callbacks: count media bytes, echo pings, end on a closed connection.
struct ProbeHandler {
    bytes: Arc<AtomicU64>,
    gathered: watch::Sender<bool>,
    ended: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ProbeHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        let _ = self.gathered.send(state == RTCIceGatheringState::Complete);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        if matches!(
            state,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
        ) {
            let _ = self.ended.send(true);
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let bytes = self.bytes.clone();
        // Reading the track is what keeps its buffer from filling; the packets are dropped.
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                match ev {
                    TrackRemoteEvent::OnRtpPacket(p) => {
                        bytes.fetch_add(p.payload.len() as u64, Ordering::Relaxed);
                    }
                    TrackRemoteEvent::OnEnded => break,
                    _ => {}
                }
            }
        });
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        let bytes = self.bytes.clone();
        tokio::spawn(async move {
            while let Some(ev) = dc.poll().await {
                match ev {
                    DataChannelEvent::OnMessage(m) if m.data.len() <= MAX_MESSAGE => {
                        let text = String::from_utf8_lossy(&m.data);
                        let reply = if let Some(x) = text.strip_prefix("ping:") {
                            format!("pong:{x}")
                        } else if text == "bytes" {
                            format!("bytes:{}", bytes.load(Ordering::Relaxed))
                        } else {
                            continue;
                        };
                        let sent = if m.is_string {
                            dc.send_text(&reply).await
                        } else {
                            dc.send(BytesMut::from(reply.as_bytes())).await
                        };
                        if sent.is_err() {
                            break;
                        }
                    }
                    DataChannelEvent::OnClose => break,
                    _ => {}
                }
            }
        });
    }
}

/// Answers a device check's offer (`{"type":"offer","sdp":…}`, with its candidates in it) with
/// the server's answer (its host candidates in it); the connection closes by itself after
/// [`PROBE_LIFETIME`], when it fails, or when the browser closes it.
pub(crate) async fn answer(
    cfg: &MediaConfig,
    sdp: serde_json::Value,
    permit: OwnedSemaphorePermit,
) -> Result<serde_json::Value, MediaError> {
    let offer: rtc::peer_connection::sdp::RTCSessionDescription =
        serde_json::from_value(sdp).map_err(|e| MediaError::SdpInvalid(e.to_string()))?;
    if offer.sdp_type != rtc::peer_connection::sdp::RTCSdpType::Offer {
        return Err(MediaError::SdpInvalid("not an offer".into()));
    }
    let (gathered, mut gathered_rx) = watch::channel(false);
    let (ended, mut ended_rx) = watch::channel(false);
    let handler = Arc::new(ProbeHandler {
        bytes: Arc::new(AtomicU64::new(0)),
        gathered,
        ended,
    });
    let pc = crate::peer::build_plain(cfg, handler).await?;
    let result = async {
        pc.set_remote_description(offer)
            .await
            .map_err(|e| MediaError::SdpInvalid(e.to_string()))?;
        let answer = pc
            .create_answer(None)
            .await
            .map_err(|e| MediaError::NoUsableCodec(e.to_string()))?;
        pc.set_local_description(answer)
            .await
            .map_err(|e| MediaError::Internal(format!("set local description: {e}")))?;
        let _ = tokio::time::timeout(GATHER_WAIT, gathered_rx.wait_for(|done| *done)).await;
        let mut local = pc
            .local_description()
            .await
            .ok_or_else(|| MediaError::Internal("no local description".into()))?;
        local.sdp = crate::announce::sdp(&local.sdp, &cfg.nat_1to1_ips);
        serde_json::to_value(&local).map_err(|e| MediaError::Internal(e.to_string()))
    }
    .await;
    // The connection's keeper holds the hub's permit until the probe ends; a failed
    // negotiation ends it at once.
    let live = result.is_ok();
    tokio::spawn(async move {
        let _permit = permit;
        if live {
            let _ = tokio::time::timeout(PROBE_LIFETIME, ended_rx.wait_for(|e| *e)).await;
        }
        if let Err(e) = pc.close().await {
            tracing::debug!("probe close: {e}");
        }
    });
    result
}
