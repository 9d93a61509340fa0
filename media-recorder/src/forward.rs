//! The data plane: tasks that move packets and decide nothing.
//!
//! * A source's read loop (one per received track) appends each packet to the track's journal
//!   (through the writer thread), then hands a clone to each subscriber the actor routed it to
//!   (`try_send` into a bounded queue: a slow subscriber loses packets, it never stalls the
//!   publisher or the recording). Its route is its own `Vec`, replaced by the actor's
//!   [`SourceCtl`] messages, so a packet takes no lock.
//! * A subscriber's forwarder (one per output) rewrites SSRC, sequence number and timestamp
//!   with the pure [`Rewriter`], maps the payload type and writes to its track.
//! * A feedback relay (one per output) reports the subscriber's PLI/FIR to the actor, which
//!   decides whether the publisher is asked.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::shared::marshal::{Marshal, MarshalSize};
use tokio::sync::mpsc;
use tracing::debug;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::rtp_transceiver::RtpSender;

use crate::core::{Conn, Feed, TrackId};
use crate::depacketize::Codec;
use crate::inbox::{notify, Inbox, PeerEvent};
use crate::rtp::{is_keyframe_request, strip_extensions, Fwd, Rewriter};
use crate::writer::{Job, JournalKey, Writer};

/// Packets queued per subscriber output before new ones are dropped (~1 s of 1.5 Mbps video).
pub(crate) const OUTPUT_QUEUE: usize = 256;

/// The actor's instructions to a read loop.
pub(crate) enum SourceCtl {
    /// Forward to these outputs from now on, and journal under `journal` (none: not recorded).
    Route {
        sinks: Vec<mpsc::Sender<Fwd>>,
        journal: Option<JournalKey>,
    },
}

/// What a read loop needs besides its instructions.
pub(crate) struct Source {
    pub track: TrackId,
    pub remote: Arc<dyn TrackRemote>,
    pub codec: Codec,
    pub clock_rate: u32,
    pub writer: Writer,
    pub inbox: Inbox,
    /// Where the track's reception is kept (none: not measured).
    pub uplink: Option<Arc<crate::uplink::UplinkLog>>,
}

/// Reads one received track until it ends: journal first, then forward.
pub(crate) async fn read_source(src: Source, mut ctl: mpsc::UnboundedReceiver<SourceCtl>) {
    let mut sinks: Vec<mpsc::Sender<Fwd>> = Vec::new();
    let mut journal: Option<JournalKey> = None;
    let mut clock = crate::seen::FrameClock::new(src.clock_rate);
    let mut meter = crate::uplink::Meter::default();
    loop {
        tokio::select! {
            // Instructions first: the route must be in place before the packets it is for.
            biased;
            ctl = ctl.recv() => match ctl {
                Some(SourceCtl::Route { sinks: s, journal: j }) => {
                    sinks = s;
                    journal = j;
                }
                // The actor is gone (the hub shut down).
                None => break,
            },
            ev = src.remote.poll() => match ev {
                Some(TrackRemoteEvent::OnRtpPacket(mut packet)) => {
                    let at = chrono::Utc::now().timestamp_micros();
                    let frame_micros = clock.frame_micros(packet.header.timestamp, at);
                    let size = packet.marshal_size();
                    if let Some(log) = &src.uplink {
                        if let Some(s) = meter.on_packet(packet.header.sequence_number, size, at) {
                            log.push(s);
                        }
                    }
                    if let Some(key) = journal {
                        let mut buf = vec![0u8; size];
                        if let Ok(n) = packet.marshal_to(&mut buf) {
                            buf.truncate(n);
                            src.writer.send(Job::Rtp { key, at, packet: buf });
                        }
                    }
                    // Padding-only probes carry nothing a subscriber can use.
                    if sinks.is_empty() || packet.payload.is_empty() {
                        continue;
                    }
                    // Once here rather than per subscriber: a clone then copies no extensions.
                    strip_extensions(&mut packet.header);
                    sinks.retain(|tx| {
                        match tx.try_send(Fwd {
                            codec: src.codec,
                            clock_rate: src.clock_rate,
                            packet: packet.clone(),
                            frame_micros,
                        }) {
                            // A full queue drops this packet only; NACK/PLI repair it.
                            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => true,
                            Err(mpsc::error::TrySendError::Closed(_)) => false,
                        }
                    });
                }
                Some(TrackRemoteEvent::OnRtcpPacket(packets)) => {
                    let Some(key) = journal else { continue };
                    for p in &packets {
                        if let Some(sr) = p.as_any().downcast_ref::<SenderReport>() {
                            src.writer.send(Job::SenderReport {
                                key,
                                at: chrono::Utc::now().timestamp_micros(),
                                ntp: sr.ntp_time,
                                rtp: sr.rtp_time,
                            });
                        }
                    }
                }
                Some(TrackRemoteEvent::OnEnded) | None => break,
                Some(_) => {}
            },
        }
    }
    notify(&src.inbox, PeerEvent::TrackEnded { track: src.track });
}

/// Reads and discards a track nobody may receive (so webrtc's queue for it does not fill).
pub(crate) async fn discard(remote: Arc<dyn TrackRemote>) {
    while remote.poll().await.is_some() {}
}

/// Asks the publisher of `remote` for a keyframe.
pub(crate) async fn send_pli(remote: Arc<dyn TrackRemote>, ssrc: u32) {
    let pli = PictureLossIndication {
        sender_ssrc: 0,
        media_ssrc: ssrc,
    };
    if let Err(e) = remote.write_rtcp(vec![Box::new(pli)]).await {
        debug!("PLI to publisher failed: {e}");
    }
}

/// Payload type negotiated on `sender` for each codec.
async fn payload_types(sender: &Arc<dyn RtpSender>) -> HashMap<Codec, u8> {
    let mut map = HashMap::new();
    if let Ok(params) = sender.get_parameters().await {
        for c in params.rtp_parameters.codecs {
            if let Some(codec) = Codec::from_mime(&c.rtp_codec.mime_type) {
                map.entry(codec).or_insert(c.payload_type);
            }
        }
    }
    map
}

/// A subscriber's forwarder: rewrite, map the payload type, write. Ends when every sender of
/// its queue is gone (the actor dropped the output, the routes were updated).
pub(crate) async fn forward(
    track: Arc<TrackLocalStaticRTP>,
    sender: Arc<dyn RtpSender>,
    mut rx: mpsc::Receiver<Fwd>,
    ssrc: u32,
    negotiation: Arc<AtomicU64>,
    seen: Option<Arc<crate::seen::SeenLog>>,
) {
    let mut rewriter = Rewriter::new(ssrc);
    let mut pts: HashMap<Codec, u8> = HashMap::new();
    let mut seen_negotiation = u64::MAX;
    let mut last_lookup: Option<Instant> = None;
    while let Some(Fwd {
        codec,
        clock_rate,
        mut packet,
        frame_micros,
    }) = rx.recv().await
    {
        let n = negotiation.load(Ordering::Relaxed);
        if n != seen_negotiation
            || (!pts.contains_key(&codec)
                && last_lookup.is_none_or(|t| t.elapsed() > Duration::from_secs(1)))
        {
            pts = payload_types(&sender).await;
            seen_negotiation = n;
            last_lookup = Some(Instant::now());
        }
        let Some(&pt) = pts.get(&codec) else {
            debug!(?codec, negotiated = ?pts, "codec not negotiated with this subscriber; packet dropped");
            continue;
        };
        rewriter.rewrite(Instant::now(), clock_rate, &mut packet.header);
        packet.header.payload_type = pt;
        // Logged before the write: a frame is on its way once it leaves here, and a mark
        // naming it must find it.
        if let Some(seen) = &seen {
            seen.record(packet.header.timestamp, frame_micros);
        }
        if let Err(e) = track.write_rtp(packet).await {
            debug!("forward: {e}");
            // Not bound yet (still connecting) or closed; the keyframe request on connect
            // makes up for what is dropped here.
        }
    }
}

/// Reports a subscriber's keyframe requests (PLI/FIR) for `feed` to the actor, until the
/// output is gone.
pub(crate) async fn relay_feedback(
    track: Arc<TrackLocalStaticRTP>,
    inbox: Inbox,
    conn: Conn,
    feed: Feed,
    alive: mpsc::WeakSender<Fwd>,
) {
    loop {
        match track.poll().await {
            Some(TrackLocalEvent::OnRtcpPacket(packets)) => {
                if is_keyframe_request(&packets) {
                    notify(&inbox, PeerEvent::KeyframeRequest { conn, feed });
                }
            }
            Some(_) => {}
            None => {
                // `poll` returns None until the track is bound and after it is unbound.
                if alive.upgrade().is_none() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
