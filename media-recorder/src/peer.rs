//! Building the server's peer connections, and their callbacks turned into events for the
//! inspection's actor. This module knows nothing of rooms: a connection reports to an inbox.

use std::sync::{Arc, Mutex};

use rtc::ice::mdns::MulticastDnsMode;
use rtc::interceptor::{NackResponderBuilder, Registry, Slot};
use rtc::peer_connection::configuration::interceptor_registry::{
    configure_rtcp_reports, configure_simulcast_extension_headers, configure_twcc_receiver_only,
};
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_RTX, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::setting_engine::{SettingEngine, SettingEngineBuilder};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::rtp_transceiver::rtp_sender::{
    RTCPFeedback, RTCRtpCodec, RTCRtpCodecParameters, RtpCodecKind,
};
use tokio::sync::mpsc::UnboundedSender;
use webrtc::media_stream::track_remote::TrackRemote;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionIceEvent, RTCPeerConnectionState,
};

use crate::api::{MediaConfig, MediaError, MediaEvent};
use crate::core::{Conn, ConnState, TrackInfo};
use crate::inbox::{notify, Inbox, PeerEvent};
use crate::journal::TrackKind;

/// Slot of [`crate::rtp::RtcpTap`]: last, so every interceptor has seen the RTCP first.
const RTCP_TAP_SLOT: usize = 14_000;

/// The codecs the recorder can mux, and nothing else: browsers pick the first codec the
/// answer lists, and an unregistered codec simply does not get negotiated.
fn media_engine() -> Result<MediaEngine, MediaError> {
    let mut me = MediaEngine::default();
    let fb = |typ: &str, parameter: &str| RTCPFeedback {
        typ: typ.into(),
        parameter: parameter.into(),
    };
    let video_fb = vec![fb("ccm", "fir"), fb("nack", ""), fb("nack", "pli")];
    let codec =
        |mime: &str, clock_rate, channels, fmtp: &str, rtcp_feedback: Vec<RTCPFeedback>, pt| {
            RTCRtpCodecParameters {
                rtp_codec: RTCRtpCodec {
                    mime_type: mime.into(),
                    clock_rate,
                    channels,
                    sdp_fmtp_line: fmtp.into(),
                    rtcp_feedback,
                },
                payload_type: pt,
            }
        };
    let internal =
        |e: rtc::shared::error::Error| MediaError::Internal(format!("media engine: {e}"));
    me.register_codec(
        codec(
            MIME_TYPE_OPUS,
            48_000,
            2,
            "minptime=10;useinbandfec=1",
            vec![],
            111,
        ),
        RtpCodecKind::Audio,
    )
    .map_err(internal)?;
    let videos = [
        (MIME_TYPE_VP8, "", 96u8),
        (
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f",
            102,
        ),
        (
            MIME_TYPE_H264,
            "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42001f",
            104,
        ),
    ];
    for (mime, fmtp, pt) in videos {
        me.register_codec(
            codec(mime, 90_000, 0, fmtp, video_fb.clone(), pt),
            RtpCodecKind::Video,
        )
        .map_err(internal)?;
        // RTX lets Chrome retransmit on a separate stream; webrtc maps it back to the primary.
        me.register_codec(
            codec(
                MIME_TYPE_RTX,
                90_000,
                0,
                &format!("apt={pt}"),
                vec![],
                pt + 1,
            ),
            RtpCodecKind::Video,
        )
        .map_err(internal)?;
    }
    Ok(me)
}

/// The ICE settings of every server connection.
pub(crate) fn setting_engine() -> SettingEngine {
    // Checks every 50 ms instead of 200 ms (Chrome paces at about that rate): connecting is
    // most of a participant's join time. 28 attempts keep the 1.4 s per-pair budget.
    let settings = SettingEngineBuilder::new()
        .with_ice_connection_attempts(Some(std::time::Duration::from_millis(50)), Some(28))
        // The server answers with host (or 1:1 NAT) candidates and learns the browser's
        // address from its checks, so it needs no mDNS: without this, webrtc joins the mDNS
        // multicast group for every connection, and on a host or in a container without a
        // multicast route that fails with "No such device (os error 19)" and no media flows.
        .with_multicast_dns_mode(MulticastDnsMode::Disabled);
    // No `with_nat_1to1_ips`: webrtc 0.21 stores it and never reads it; `crate::announce`
    // rewrites the candidates instead.
    settings.build()
}

/// webrtc's default interceptors (`register_default_interceptors`: NACK, simulcast header
/// extensions, TWCC receiver, RTCP reports) with our NACK generator in place of its own, which
/// is blind to RTX repairs (see `crate::nack`), and the RTCP tap last. The NACK feedback types
/// are in `media_engine()`'s video codecs.
fn interceptors(me: &mut MediaEngine) -> Result<Registry, MediaError> {
    Ok(chain(me)?.with(Slot::from(RTCP_TAP_SLOT), crate::rtp::RtcpTap::default()))
}

/// [`interceptors`] without the RTCP tap.
fn chain(me: &mut MediaEngine) -> Result<Registry, MediaError> {
    let internal =
        |e: rtc::shared::error::Error| MediaError::Internal(format!("interceptors: {e}"));
    configure_simulcast_extension_headers(me).map_err(internal)?;
    let registry = Registry::new()
        .with(Slot::NackResponder, NackResponderBuilder::new().build())
        .with(Slot::NackGenerator, crate::nack::RtxAwareNack::default());
    let registry = configure_twcc_receiver_only(registry, me).map_err(internal)?;
    Ok(configure_rtcp_reports(registry))
}

/// Builds one server peer connection for a participant.
pub(crate) async fn build(
    cfg: &MediaConfig,
    handler: Arc<PeerHandler>,
) -> Result<Arc<dyn PeerConnection>, MediaError> {
    let mut me = media_engine()?;
    let registry = interceptors(&mut me)?;
    connect(cfg, me, registry, handler).await
}

/// Builds a connection outside any room (the device check's probe): the same codecs and ICE
/// settings, without the RTCP tap that feeds a room's keyframe relay.
pub(crate) async fn build_plain(
    cfg: &MediaConfig,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, MediaError> {
    let mut me = media_engine()?;
    let registry = chain(&mut me)?;
    connect(cfg, me, registry, handler).await
}

/// The one builder chain both kinds of connection share.
async fn connect(
    cfg: &MediaConfig,
    me: MediaEngine,
    registry: Registry,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Result<Arc<dyn PeerConnection>, MediaError> {
    let pc = PeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(me)
        .with_setting_engine(setting_engine())
        .with_interceptor_registry(registry)
        .with_handler(handler)
        .with_udp_addrs(cfg.udp_addrs.clone())
        .build()
        .await
        .map_err(|e| MediaError::Internal(format!("peer connection: {e}")))?;
    Ok(Arc::new(pc))
}

/// Candidates gathered before the answer went out are inside it; later ones are events.
#[derive(Default)]
struct CandidateState {
    answered: bool,
    pending: Vec<serde_json::Value>,
}

/// The current gathering of a connection, as its callbacks report it.
#[derive(Default, Clone, Copy)]
struct Gathering {
    complete: bool,
    /// A local candidate was reported since the gathering began.
    candidate: bool,
}

/// Callbacks of one server peer connection: the browser hears about candidates and states,
/// the actor about states and tracks.
pub(crate) struct PeerHandler {
    conn: Conn,
    inbox: Inbox,
    events: UnboundedSender<MediaEvent>,
    gathering: tokio::sync::watch::Sender<Gathering>,
    candidates: Mutex<CandidateState>,
    /// Public addresses the host candidates are announced at (`MediaConfig::nat_1to1_ips`).
    announce: Vec<std::net::IpAddr>,
}

impl PeerHandler {
    pub(crate) fn new(
        conn: Conn,
        inbox: Inbox,
        events: UnboundedSender<MediaEvent>,
        announce: Vec<std::net::IpAddr>,
    ) -> Self {
        Self {
            announce,
            conn,
            inbox,
            events,
            gathering: tokio::sync::watch::channel(Gathering::default()).0,
            candidates: Mutex::new(CandidateState::default()),
        }
    }

    /// Waits (bounded) until the gathering started by this offer has a candidate or is
    /// complete, so the answer carries the server's address. Host candidates are made from
    /// sockets bound before the offer, so this is the driver's turn, not a network wait.
    pub(crate) async fn wait_gathered(&self, limit: std::time::Duration) {
        let mut rx = self.gathering.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(|g| g.complete || g.candidate)).await;
    }

    /// The answer `sdp` is out: from now on candidates go out as events; those gathered in
    /// between that the answer does not contain are sent now.
    pub(crate) fn answered(&self, sdp: &str) {
        // A poisoned lock only means another callback panicked; the data is still usable.
        let mut st = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        st.answered = true;
        for c in st.pending.drain(..) {
            let line = c
                .get("candidate")
                .and_then(|v| v.as_str())
                .unwrap_or_default();
            let attr = line.strip_prefix("candidate:").unwrap_or(line);
            if !sdp.contains(attr) {
                let _ = self.events.send(MediaEvent::LocalCandidate(c));
            }
        }
    }

    /// An ICE restart gathers again: what was gathered before does not count.
    pub(crate) fn reset_gathering(&self) {
        let _ = self.gathering.send(Gathering::default());
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for PeerHandler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Ok(init) = event.candidate.to_json() else {
            return;
        };
        let Ok(mut json) = serde_json::to_value(&init) else {
            return;
        };
        // webrtc fills in an empty mid, which Chrome rejects; m-line 0 is right for BUNDLE.
        if let Some(obj) = json.as_object_mut() {
            obj.retain(|k, v| (k != "sdpMid" || v.as_str() != Some("")) && !v.is_null());
        }
        crate::announce::candidate_json(&mut json, &self.announce);
        self.gathering.send_modify(|g| g.candidate = true);
        let mut st = self.candidates.lock().unwrap_or_else(|e| e.into_inner());
        if st.answered {
            let _ = self.events.send(MediaEvent::LocalCandidate(json));
        } else {
            st.pending.push(json);
        }
    }

    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        self.gathering
            .send_modify(|g| g.complete = state == RTCIceGatheringState::Complete);
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self.events.send(MediaEvent::State(state.to_string()));
        let state = match state {
            RTCPeerConnectionState::Connected => ConnState::Connected,
            RTCPeerConnectionState::Closed => ConnState::Closed,
            _ => ConnState::Other,
        };
        notify(
            &self.inbox,
            PeerEvent::State {
                conn: self.conn,
                state,
            },
        );
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let kind = match track.kind().await {
            RtpCodecKind::Video => TrackKind::Video,
            _ => TrackKind::Audio,
        };
        let Some(ssrc) = track.ssrcs().await.first().copied() else {
            return;
        };
        let Some(codec) = track.codec(ssrc).await else {
            return;
        };
        notify(
            &self.inbox,
            PeerEvent::Track {
                conn: self.conn,
                remote: track,
                info: TrackInfo {
                    kind,
                    mime: codec.mime_type,
                    clock_rate: codec.clock_rate,
                    ssrc,
                },
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_is_webrtcs_default_with_the_rtx_aware_nack_generator() {
        let mut me = media_engine().expect("the codecs are valid");
        let names: Vec<(Slot, String)> = interceptors(&mut me).expect("registry").slots();
        let default = register_default_interceptors_for_comparison();
        let ours: Vec<Slot> = names.iter().map(|(s, _)| *s).collect();
        // Same positions as webrtc's default set, plus the tap.
        let mut expected = default;
        expected.push(Slot::from(RTCP_TAP_SLOT));
        assert_eq!(ours, expected, "{names:?}");
        let at = |slot| {
            names
                .iter()
                .find(|(s, _)| *s == slot)
                .map(|(_, n)| n.as_str())
        };
        assert_eq!(at(Slot::NackGenerator), Some("RtxAwareNack"), "{names:?}");
    }

    fn register_default_interceptors_for_comparison() -> Vec<Slot> {
        let mut me = media_engine().expect("the codecs are valid");
        rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors(
            Registry::new(),
            &mut me,
        )
        .expect("default registry")
        .slots()
        .into_iter()
        .map(|(s, _)| s)
        .collect()
    }
}
