//! The NACK generator of the server's peer: webrtc's own generator, taught about RTX.
//!
//! Issue 19 found a NACK storm: at 3 % loss each lost video packet was NACKed about 130 times,
//! every 100 ms until it left the 512-packet window, although Chrome's RTX retransmission had
//! repaired it. The cause is the order of webrtc 0.21's read path: RTX packets pass the
//! interceptor chain untouched, on their own SSRC, and are unwrapped to the primary stream only
//! after it (in the endpoint handler). The stock generator logs arrivals by SSRC, so it never
//! sees a repair; it even binds the RTX flow as a stream of its own and NACKs gaps in the RTX
//! sequence numbers, which name no media packet.
//!
//! [`RtxAwareNack`] wraps the stock generator (its receive log and NACK packing stay theirs):
//! - an RTX packet's original sequence number (the first two payload bytes, RFC 4588 §4) is
//!   recorded as an arrival on the primary stream it repairs, so a repaired packet stops being
//!   asked for;
//! - the RTX flow itself is never given to the generator;
//! - a packet is asked for at most [`MAX_NACKS_PER_PACKET`] times: if that many retransmissions
//!   were lost, the decoder is better served by a keyframe (the forwarder's PLI path) than by a
//!   request every 100 ms for the rest of the window.
//!
//! The packet that goes on up the chain is always the one that arrived; the synthetic arrival
//! exists only inside the generator.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use rtc::interceptor::{
    AttributedPacket, Interceptor, NackGeneratorBuilder, NackGeneratorInterceptor, Packet,
    StreamInfo, TaggedPacket,
};
use rtc::sansio::Protocol;

/// How often one missing packet is asked for (one request per 100 ms tick: about a second,
/// several round trips even on a slow mobile link). libwebrtc's receiver gives up after 10 too.
pub const MAX_NACKS_PER_PACKET: u16 = 10;

/// The generator's receive window, in packets (the stock default).
const WINDOW: u16 = 512;

/// One primary stream with RTX: the highest sequence number seen on it, to keep repairs of
/// packets older than the window out of the log (the log is a ring; an old sequence number
/// would mark a current slot received).
#[derive(Default)]
struct Primary {
    highest: Option<u16>,
}

/// See the module documentation.
pub struct RtxAwareNack {
    inner: NackGeneratorInterceptor,
    /// RTX SSRC → primary SSRC, from the primary's binding (`a=ssrc-group:FID`).
    rtx_to_primary: HashMap<u32, u32>,
    primaries: HashMap<u32, Primary>,
    /// Streams bound before their primary named them as RTX: unbound from the generator again
    /// when the primary arrives.
    bound: HashMap<u32, StreamInfo>,
    read_queue: VecDeque<TaggedPacket>,
}

impl Default for RtxAwareNack {
    fn default() -> Self {
        Self {
            inner: NackGeneratorBuilder::new()
                .with_size(WINDOW)
                .with_max_nacks_per_packet(MAX_NACKS_PER_PACKET)
                .build(),
            rtx_to_primary: HashMap::new(),
            primaries: HashMap::new(),
            bound: HashMap::new(),
            read_queue: VecDeque::new(),
        }
    }
}

impl RtxAwareNack {
    /// The generator's own answers: exactly what was handed to it, in order.
    fn drain_inner(&mut self) -> Result<(), rtc::shared::error::Error> {
        while let Some(p) = self.inner.poll_read() {
            self.read_queue.push_back(p);
        }
        Ok(())
    }

    /// The original sequence number of a repair of `primary`, if it belongs in the log.
    fn repaired_seq(&self, primary: u32, payload: &[u8]) -> Option<u16> {
        // Chrome also sends padding-only RTX packets to probe bandwidth: no OSN, nothing to log.
        let osn = u16::from_be_bytes([*payload.first()?, *payload.get(1)?]);
        let highest = self.primaries.get(&primary)?.highest?;
        let behind = highest.wrapping_sub(osn);
        // Within the window behind the newest packet; a repair is never ahead of it.
        (behind < WINDOW).then_some(osn)
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxAwareNack {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let Packet::Rtp(rtp) = &msg.message.packet else {
            self.inner.handle_read(msg)?;
            return self.drain_inner();
        };
        let ssrc = rtp.header.ssrc;
        if let Some(&primary) = self.rtx_to_primary.get(&ssrc) {
            if let Some(osn) = self.repaired_seq(primary, &rtp.payload) {
                let mut header = rtp.header.clone();
                header.ssrc = primary;
                header.sequence_number = osn;
                let arrival = TaggedPacket {
                    now: msg.now,
                    transport: msg.transport,
                    message: AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
                        header,
                        payload: Default::default(),
                    })),
                };
                self.inner.handle_read(arrival)?;
                // The generator queues what it was given for the next interceptor: this
                // arrival is ours, not the chain's.
                while self.inner.poll_read().is_some() {}
            }
            // The RTX packet itself goes on untouched: the endpoint unwraps it.
            self.read_queue.push_back(msg);
            return Ok(());
        }
        if let Some(p) = self.primaries.get_mut(&ssrc) {
            let seq = rtp.header.sequence_number;
            let newer = match p.highest {
                None => true,
                Some(h) => (seq.wrapping_sub(h) as i16) > 0,
            };
            if newer {
                p.highest = Some(seq);
            }
        }
        self.inner.handle_read(msg)?;
        self.drain_inner()
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.inner.handle_write(msg)
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.inner.poll_write()
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), Self::Error> {
        self.inner.handle_timeout(now)
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
}

impl Interceptor for RtxAwareNack {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.bind_local_stream(info);
    }

    fn unbind_local_stream(&mut self, info: &StreamInfo) {
        self.inner.unbind_local_stream(info);
    }

    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if self.rtx_to_primary.contains_key(&info.ssrc) {
            return;
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx_to_primary.insert(rtx, info.ssrc);
            self.primaries.insert(info.ssrc, Primary::default());
            if let Some(early) = self.bound.remove(&rtx) {
                self.inner.unbind_remote_stream(&early);
            }
        }
        self.bound.insert(info.ssrc, info.clone());
        self.inner.bind_remote_stream(info);
    }

    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        if self.rtx_to_primary.contains_key(&info.ssrc) && !self.bound.contains_key(&info.ssrc) {
            // An RTX flow: never bound in the generator. Forget it with its primary.
            return;
        }
        if let Some(rtx) = info.ssrc_rtx {
            self.rtx_to_primary.remove(&rtx);
        }
        self.primaries.remove(&info.ssrc);
        self.bound.remove(&info.ssrc);
        self.inner.unbind_remote_stream(info);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use rtc::interceptor::RTCPFeedback;
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack;

    use super::*;

    const PRIMARY: u32 = 1111;
    const RTX: u32 = 2222;

    fn info(ssrc: u32, ssrc_rtx: Option<u32>) -> StreamInfo {
        StreamInfo {
            ssrc,
            ssrc_rtx,
            payload_type: 96,
            payload_type_rtx: ssrc_rtx.map(|_| 97),
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            // webrtc binds the RTX flow with the primary's codec, feedback included.
            rtcp_feedback: vec![RTCPFeedback {
                typ: "nack".into(),
                parameter: String::new(),
            }],
            ..Default::default()
        }
    }

    /// A chain position as webrtc binds it: the primary with its RTX, then the RTX flow.
    fn bound() -> RtxAwareNack {
        let mut n = RtxAwareNack::default();
        n.bind_remote_stream(&info(PRIMARY, Some(RTX)));
        n.bind_remote_stream(&info(RTX, None));
        n
    }

    fn rtp(now: Instant, ssrc: u32, seq: u16, payload: Vec<u8>) -> TaggedPacket {
        TaggedPacket {
            now,
            transport: Default::default(),
            message: AttributedPacket::new(Packet::Rtp(rtc::rtp::Packet {
                header: rtc::rtp::header::Header {
                    ssrc,
                    sequence_number: seq,
                    payload_type: if ssrc == RTX { 97 } else { 96 },
                    ..Default::default()
                },
                payload: payload.into(),
            })),
        }
    }

    /// Feeds a packet and returns what went on up the chain.
    fn read(n: &mut RtxAwareNack, p: TaggedPacket) -> Vec<TaggedPacket> {
        n.handle_read(p).expect("read");
        std::iter::from_fn(|| n.poll_read()).collect()
    }

    /// Runs the generator's timer to `now`; returns every (media SSRC, sequence number) asked.
    fn tick(n: &mut RtxAwareNack, now: Instant) -> Vec<(u32, u16)> {
        n.handle_timeout(now).expect("timeout");
        let mut asked = Vec::new();
        while let Some(p) = n.poll_write() {
            let Packet::Rtcp(batch) = p.message.packet else {
                continue;
            };
            for r in batch {
                let nack = r
                    .as_any()
                    .downcast_ref::<TransportLayerNack>()
                    .expect("the generator writes NACKs only");
                for pair in &nack.nacks {
                    for seq in pair.packet_list() {
                        asked.push((nack.media_ssrc, seq));
                    }
                }
            }
        }
        asked
    }

    fn at(t0: Instant, ms: u64) -> Instant {
        t0 + Duration::from_millis(ms)
    }

    #[test]
    fn a_packet_repaired_by_rtx_is_asked_for_no_more() {
        let t0 = Instant::now();
        let mut n = bound();
        for seq in [10, 11, 13, 14] {
            assert_eq!(read(&mut n, rtp(t0, PRIMARY, seq, vec![0; 20])).len(), 1);
        }
        assert_eq!(tick(&mut n, at(t0, 100)), vec![(PRIMARY, 12)]);
        // The repair: RTX sequence numbers of its own, OSN 12 in front of the payload.
        let up = read(&mut n, rtp(at(t0, 120), RTX, 500, vec![0, 12, 0xAA, 0xBB]));
        assert_eq!(up.len(), 1, "the RTX packet itself goes on up the chain");
        let Packet::Rtp(passed) = &up[0].message.packet else {
            panic!("an RTP packet went in");
        };
        assert_eq!(
            passed.header.ssrc, RTX,
            "the packet that arrived, untouched"
        );
        assert_eq!(&passed.payload[..], &[0, 12, 0xAA, 0xBB]);
        for ms in [200, 300, 400, 1000] {
            assert_eq!(tick(&mut n, at(t0, ms)), vec![], "at {ms} ms");
        }
    }

    #[test]
    fn a_packet_never_repaired_is_asked_for_a_bounded_number_of_times() {
        let t0 = Instant::now();
        let mut n = bound();
        for seq in [10, 11, 13] {
            read(&mut n, rtp(t0, PRIMARY, seq, vec![0; 20]));
        }
        let mut asked = 0;
        for i in 1..=60u64 {
            // Media goes on arriving (the gap stays inside the window for all 6 s).
            read(
                &mut n,
                rtp(at(t0, i * 100 - 50), PRIMARY, 13 + i as u16, vec![0; 20]),
            );
            asked += tick(&mut n, at(t0, i * 100))
                .iter()
                .filter(|&&(ssrc, seq)| ssrc == PRIMARY && seq == 12)
                .count();
        }
        assert_eq!(asked, MAX_NACKS_PER_PACKET as usize);
    }

    #[test]
    fn gaps_in_the_rtx_flow_are_not_nacked_and_padding_or_stale_repairs_are_ignored() {
        let t0 = Instant::now();
        let mut n = bound();
        for seq in 1000..=1601u16 {
            read(&mut n, rtp(t0, PRIMARY, seq, vec![0; 20]));
        }
        read(&mut n, rtp(t0, PRIMARY, 1603, vec![0; 20]));
        // RTX packets with gaps between them (lost repairs or probes): nothing to ask for.
        read(&mut n, rtp(t0, RTX, 1, vec![]));
        read(&mut n, rtp(t0, RTX, 5, vec![0x03]));
        // A repair of a packet 513 behind the newest, outside the ring: logging it would mark
        // the slot it shares with the missing 1602 (1602 - 512 = 1090) as received.
        read(&mut n, rtp(t0, RTX, 9, 1090u16.to_be_bytes().to_vec()));
        assert_eq!(tick(&mut n, at(t0, 100)), vec![(PRIMARY, 1602)]);
    }

    #[test]
    fn an_rtx_flow_bound_before_its_primary_is_taken_back_from_the_generator() {
        let t0 = Instant::now();
        let mut n = RtxAwareNack::default();
        n.bind_remote_stream(&info(RTX, None));
        n.bind_remote_stream(&info(PRIMARY, Some(RTX)));
        read(&mut n, rtp(t0, PRIMARY, 1, vec![0; 20]));
        read(&mut n, rtp(t0, RTX, 1, vec![]));
        read(&mut n, rtp(t0, RTX, 9, vec![]));
        read(&mut n, rtp(t0, PRIMARY, 2, vec![0; 20]));
        assert_eq!(tick(&mut n, at(t0, 100)), vec![]);
        n.unbind_remote_stream(&info(PRIMARY, Some(RTX)));
        n.unbind_remote_stream(&info(RTX, None));
        assert!(n.rtx_to_primary.is_empty() && n.primaries.is_empty() && n.bound.is_empty());
    }
}
