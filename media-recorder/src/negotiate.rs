//! One task per server peer connection: it builds the connection, then answers its offers and
//! applies its candidates strictly in order (a candidate needs the remote description of the
//! offer before it), and closes the connection when the actor drops its command channel.
//! Long waits (building, gathering host candidates) happen here, never in the actor.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use uuid::Uuid;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::peer_connection::PeerConnection;

use crate::api::{MediaConfig, MediaError, MediaEvent};
use crate::core::{Conn, Feed};
use crate::forward::{forward, relay_feedback, OUTPUT_QUEUE};
use crate::inbox::{notify, Inbox, PeerEvent};
use crate::journal::TrackKind;
use crate::peer::{self, PeerHandler};
use crate::sdp::{Direction, Kind, OfferSummary};

/// The most an answer waits for the server's first candidate (it comes from sockets bound
/// before the offer, in a millisecond or two), so a client without trickle still connects.
const GATHER_WAIT: Duration = Duration::from_millis(500);

/// What the actor asks of a connection.
pub(crate) enum SigCmd {
    /// Answer an offer, giving the connection a sending track for each of `feeds`.
    Offer {
        desc: Box<rtc::peer_connection::sdp::RTCSessionDescription>,
        summary: OfferSummary,
        feeds: &'static [Feed],
        reply: oneshot::Sender<Result<serde_json::Value, MediaError>>,
    },
    /// Apply a browser ICE candidate.
    Candidate {
        candidate: serde_json::Value,
        reply: oneshot::Sender<Result<(), MediaError>>,
    },
}

impl SigCmd {
    fn fail(self, e: &MediaError) {
        let e = MediaError::Internal(e.to_string());
        match self {
            SigCmd::Offer { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            SigCmd::Candidate { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

/// Who the connection is.
pub(crate) struct ConnParams {
    pub conn: Conn,
    pub inspection: Uuid,
    pub participant: Uuid,
    /// Where a video output logs the frames it sent.
    pub seen: Arc<crate::seen::SeenRegistry>,
    pub cfg: Arc<MediaConfig>,
    pub inbox: Inbox,
    pub events: mpsc::UnboundedSender<MediaEvent>,
}

/// The connection's task.
pub(crate) async fn run(p: ConnParams, mut rx: mpsc::UnboundedReceiver<SigCmd>) {
    let handler = Arc::new(PeerHandler::new(
        p.conn,
        p.inbox.clone(),
        p.events.clone(),
        p.cfg.nat_1to1_ips.clone(),
    ));
    let pc = match peer::build(&p.cfg, handler.clone()).await {
        Ok(pc) => pc,
        Err(e) => {
            tracing::error!(inspection = %p.inspection, "cannot build a peer connection: {e}");
            notify(
                &p.inbox,
                PeerEvent::Negotiated {
                    conn: p.conn,
                    ok: false,
                },
            );
            while let Some(cmd) = rx.recv().await {
                cmd.fail(&e);
            }
            return;
        }
    };
    let mut conn = Connection {
        p,
        pc,
        handler,
        outputs: HashMap::new(),
        remote_ufrag: None,
    };
    while let Some(cmd) = rx.recv().await {
        match cmd {
            SigCmd::Offer {
                desc,
                summary,
                feeds,
                reply,
            } => {
                let answer = conn.negotiate(*desc, &summary, feeds).await;
                notify(
                    &conn.p.inbox,
                    PeerEvent::Negotiated {
                        conn: conn.p.conn,
                        ok: answer.is_ok(),
                    },
                );
                let _ = reply.send(answer);
            }
            SigCmd::Candidate { candidate, reply } => {
                let _ = reply.send(conn.candidate(candidate).await);
            }
        }
    }
    if let Err(e) = conn.pc.close().await {
        debug!("close: {e}");
    }
}

struct Connection {
    p: ConnParams,
    pc: Arc<dyn PeerConnection>,
    handler: Arc<PeerHandler>,
    /// Per feed with a sending track: bumped by every negotiation so the forwarder re-reads
    /// the payload types.
    outputs: HashMap<Feed, Arc<AtomicU64>>,
    /// The ICE user fragment of the last offer answered: the same one again is a
    /// renegotiation, which gathers nothing new.
    remote_ufrag: Option<String>,
}

impl Connection {
    async fn negotiate(
        &mut self,
        offer: rtc::peer_connection::sdp::RTCSessionDescription,
        summary: &OfferSummary,
        feeds: &'static [Feed],
    ) -> Result<serde_json::Value, MediaError> {
        // First offer or ICE restart: webrtc gathers (again) once the answer is set locally.
        let gathers = self.remote_ufrag.is_none() || self.remote_ufrag != summary.ice_ufrag;
        if gathers {
            self.handler.reset_gathering();
        }
        self.pc
            .set_remote_description(offer)
            .await
            .map_err(|e| MediaError::SdpInvalid(e.to_string()))?;
        self.attach_outputs(summary, feeds).await?;
        let answer = self
            .pc
            .create_answer(None)
            .await
            .map_err(|e| MediaError::Internal(format!("create answer: {e}")))?;
        self.pc
            .set_local_description(answer)
            .await
            .map_err(|e| MediaError::Internal(format!("set local description: {e}")))?;
        for n in self.outputs.values() {
            n.fetch_add(1, Ordering::Relaxed);
        }
        self.remote_ufrag = summary.ice_ufrag.clone();
        // Only a gathering this offer started is waited for, and only for its first
        // candidate (the rest trickle): waiting for the "complete" state left the inspector's
        // first answer the whole GATHER_WAIT late in some room openings (join_bench). A
        // renegotiation's description already holds the candidates.
        if gathers {
            self.handler.wait_gathered(GATHER_WAIT).await;
        }
        let mut local = self
            .pc
            .local_description()
            .await
            .ok_or_else(|| MediaError::Internal("no local description".into()))?;
        local.sdp = crate::announce::sdp(&local.sdp, &self.p.cfg.nat_1to1_ips);
        self.handler.answered(&local.sdp);
        serde_json::to_value(&local).map_err(|e| MediaError::Internal(e.to_string()))
    }

    /// Gives the connection a sending track for every feed it receives, on a transceiver the
    /// browser offered; feeds with no such transceiver are skipped (the actor asks the browser
    /// to offer again when such a feed gets a source).
    async fn attach_outputs(
        &mut self,
        summary: &OfferSummary,
        feeds: &'static [Feed],
    ) -> Result<(), MediaError> {
        for &feed in feeds {
            if self.outputs.contains_key(&feed) {
                continue;
            }
            // A sendonly transceiver has no receiver to ask for its kind; the offer's section
            // with the same mid says it.
            let (want, kind) = match feed.kind() {
                TrackKind::Video => (Kind::Video, RtpCodecKind::Video),
                TrackKind::Audio => (Kind::Audio, RtpCodecKind::Audio),
            };
            let mut free = false;
            for t in self.pc.get_transceivers().await {
                let Ok(None) = t.sender().await else { continue };
                let Ok(Some(mid)) = t.mid().await else {
                    continue;
                };
                let section = summary
                    .sections
                    .iter()
                    .find(|s| s.mid.as_deref() == Some(mid.as_str()));
                if section.is_some_and(|s| {
                    s.kind == want && !s.rejected && s.direction != Direction::SendOnly
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
                format!("inspection-{}", self.p.inspection),
                format!("{label}-{ssrc}"),
                label.to_string(),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    ..Default::default()
                }],
            )));
            let sender = self
                .pc
                .add_track(track.clone() as Arc<dyn TrackLocal>)
                .await
                .map_err(|e| MediaError::Internal(format!("add track: {e}")))?;
            let (tx, rx) = mpsc::channel(OUTPUT_QUEUE);
            let negotiation = Arc::new(AtomicU64::new(0));
            // The business's video: what a mark may be placed on (see `seen`).
            let seen = (feed == Feed::PubVideo)
                .then(|| self.p.seen.register(self.p.inspection, self.p.participant));
            tokio::spawn(forward(
                track.clone(),
                sender,
                rx,
                ssrc,
                negotiation.clone(),
                seen,
            ));
            tokio::spawn(relay_feedback(
                track,
                self.p.inbox.clone(),
                self.p.conn,
                feed,
                tx.downgrade(),
            ));
            self.outputs.insert(feed, negotiation);
            notify(
                &self.p.inbox,
                PeerEvent::OutputAttached {
                    conn: self.p.conn,
                    feed,
                    tx,
                },
            );
        }
        Ok(())
    }

    async fn candidate(&self, candidate: serde_json::Value) -> Result<(), MediaError> {
        let init: RTCIceCandidateInit = serde_json::from_value(candidate)
            .map_err(|e| MediaError::CandidateInvalid(e.to_string()))?;
        if init.candidate.trim().is_empty() {
            // End-of-candidates marker: nothing to add.
            return Ok(());
        }
        self.pc
            .add_ice_candidate(init)
            .await
            .map_err(|e| MediaError::CandidateInvalid(e.to_string()))
    }
}
