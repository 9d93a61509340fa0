//! RTP/RTCP helpers of the forwarder: the interceptor that hands keyframe requests and sender
//! reports to the application, the forwarded packet, the per-subscriber sequence/timestamp
//! rewriter (a pure state machine: time is an argument), and keyframe detection (public: tests
//! and the benchmark use it to see the first decodable frame).

use std::collections::VecDeque;
use std::time::Instant;

use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::payload_feedbacks::full_intra_request::FullIntraRequest;
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;

/// Interceptor that passes inbound PLI, FIR and sender reports to the application; all other inbound RTCP
/// stays with the interceptors (NACK responder, report statistics, TWCC).
///
/// A sender report is re-emitted alone and without its reception blocks: webrtc 0.21 routes an
/// RTCP message to a track by the first destination SSRC, and for a report with reception
/// blocks that is the SSRC of *our* sender, so the report would arrive on the wrong track.
#[derive(Default)]
pub struct RtcpTap {
    read_queue: VecDeque<TaggedPacket>,
    write_queue: VecDeque<TaggedPacket>,
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtcpTap {
    type Rout = TaggedPacket;
    type Wout = TaggedPacket;
    type Eout = ();
    type Error = rtc::shared::error::Error;
    type Time = Instant;

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let Packet::Rtcp(packets) = &msg.message.packet else {
            self.read_queue.push_back(msg);
            return Ok(());
        };
        let mut requests: Vec<Box<dyn rtc::rtcp::Packet>> = Vec::new();
        for p in packets {
            let any = p.as_any();
            if any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>() {
                requests.push(p.clone());
            } else if let Some(sr) = any.downcast_ref::<SenderReport>() {
                let bare = SenderReport {
                    reports: vec![],
                    profile_extensions: Default::default(),
                    ..sr.clone()
                };
                let mut message =
                    rtc::interceptor::AttributedPacket::new(Packet::Rtcp(vec![Box::new(bare)]));
                message.attributes = msg.message.attributes.clone();
                message.add(Attribute::DeliverToApplication);
                self.read_queue.push_back(TaggedPacket {
                    now: msg.now,
                    transport: msg.transport,
                    message,
                });
            }
        }
        if !requests.is_empty() {
            let mut out = msg;
            out.message.packet = Packet::Rtcp(requests);
            out.message.add(Attribute::DeliverToApplication);
            self.read_queue.push_back(out);
        }
        Ok(())
    }

    fn poll_read(&mut self) -> Option<Self::Rout> {
        self.read_queue.pop_front()
    }

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        self.write_queue.push_back(msg);
        Ok(())
    }

    fn poll_write(&mut self) -> Option<Self::Wout> {
        self.write_queue.pop_front()
    }
}

impl Interceptor for RtcpTap {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// One packet on its way from a source's read loop to a subscriber's forwarder.
pub(crate) struct Fwd {
    /// The source's codec: the forwarder maps it to the payload type the subscriber
    /// negotiated.
    pub codec: crate::depacketize::Codec,
    /// The source's RTP clock rate.
    pub clock_rate: u32,
    /// The packet, header extensions already removed (the subscriber's leg negotiated its own
    /// ids; unknown ones make webrtc drop the packet silently, and no receiver needs them).
    pub packet: rtc::rtp::Packet,
    /// The server time of the packet's frame (`seen::FrameClock`).
    pub frame_micros: i64,
}

/// Removes the header extensions of a packet about to be forwarded (see [`Fwd::packet`]).
pub(crate) fn strip_extensions(header: &mut rtc::rtp::header::Header) {
    header.extension = false;
    header.extension_profile = 0;
    header.extensions.clear();
    header.extensions_padding = 0;
}

/// True if the RTCP batch asks for a keyframe.
pub(crate) fn is_keyframe_request(packets: &[Box<dyn rtc::rtcp::Packet>]) -> bool {
    packets.iter().any(|p| {
        let any = p.as_any();
        any.is::<PictureLossIndication>() || any.is::<FullIntraRequest>()
    })
}

/// Keeps one outgoing stream continuous while its source changes (a publisher reconnects, a
/// different inspector speaks): the subscriber sees one SSRC whose sequence numbers and
/// timestamps go on without a jump, so its jitter buffer does not stall or discard.
#[derive(Debug, Clone)]
pub struct Rewriter {
    out_ssrc: u32,
    source: Option<u32>,
    seq_offset: u16,
    ts_offset: u32,
    last_seq: u16,
    last_ts: u32,
    last_at: Option<Instant>,
}

impl Rewriter {
    /// A rewriter writing SSRC `out_ssrc`.
    pub fn new(out_ssrc: u32) -> Self {
        Self {
            out_ssrc,
            source: None,
            seq_offset: 0,
            ts_offset: 0,
            last_seq: 0,
            last_ts: 0,
            last_at: None,
        }
    }

    /// Rewrites SSRC, sequence number and timestamp of a packet from source `header.ssrc`
    /// arriving at `now`. Returns true when the source changed with this packet.
    pub fn rewrite(
        &mut self,
        now: Instant,
        clock_rate: u32,
        header: &mut rtc::rtp::header::Header,
    ) -> bool {
        let switched = self.source != Some(header.ssrc);
        if switched {
            if let Some(last_at) = self.last_at {
                // Continue right after the last packet sent; the timestamp advances by the
                // wall-clock gap so playout timing stays right.
                let gap = now.saturating_duration_since(last_at).as_micros() as u64;
                let ticks = ((gap * clock_rate as u64) / 1_000_000).max(1) as u32;
                self.seq_offset = self
                    .last_seq
                    .wrapping_add(1)
                    .wrapping_sub(header.sequence_number);
                self.ts_offset = self
                    .last_ts
                    .wrapping_add(ticks)
                    .wrapping_sub(header.timestamp);
            }
            self.source = Some(header.ssrc);
        }
        header.ssrc = self.out_ssrc;
        header.sequence_number = header.sequence_number.wrapping_add(self.seq_offset);
        header.timestamp = header.timestamp.wrapping_add(self.ts_offset);
        // Only move forward: a retransmitted or reordered packet must not pull the base back.
        if self.last_at.is_none() || (header.sequence_number.wrapping_sub(self.last_seq) as i16) > 0
        {
            self.last_seq = header.sequence_number;
            self.last_ts = header.timestamp;
        }
        self.last_at = Some(now);
        switched
    }
}

/// True if this RTP payload starts a keyframe (VP8 or H.264 by MIME type).
pub fn is_keyframe(mime: &str, payload: &[u8]) -> bool {
    if mime.eq_ignore_ascii_case("video/VP8") {
        vp8_keyframe(payload)
    } else if mime.eq_ignore_ascii_case("video/H264") {
        h264_keyframe(payload)
    } else {
        false
    }
}

/// VP8 (RFC 7741): start of partition 0 with the P bit clear.
pub fn vp8_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    let start = b0 & 0x10 != 0;
    let pid = b0 & 0x07;
    if !start || pid != 0 {
        return false;
    }
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let Some(&x) = payload.get(i) else {
            return false;
        };
        i += 1;
        if x & 0x80 != 0 {
            // Picture ID: one byte, or two when its M bit is set.
            let Some(&p) = payload.get(i) else {
                return false;
            };
            i += if p & 0x80 != 0 { 2 } else { 1 };
        }
        if x & 0x40 != 0 {
            i += 1;
        }
        if x & 0x30 != 0 {
            i += 1;
        }
    }
    payload.get(i).is_some_and(|h| h & 0x01 == 0)
}

/// H.264 (RFC 6184): an IDR or SPS NAL unit, alone, in a STAP-A, or starting an FU-A.
pub fn h264_keyframe(payload: &[u8]) -> bool {
    let Some(&b0) = payload.first() else {
        return false;
    };
    match b0 & 0x1f {
        5 | 7 => true,
        24 => {
            let mut i = 1;
            while i + 2 < payload.len() {
                let size = u16::from_be_bytes([payload[i], payload[i + 1]]) as usize;
                if matches!(payload[i + 2] & 0x1f, 5 | 7) {
                    return true;
                }
                i += 2 + size;
            }
            false
        }
        28 => payload
            .get(1)
            .is_some_and(|h| h & 0x80 != 0 && h & 0x1f == 5),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtp::header::Header;
    use std::time::Duration;

    fn hdr(ssrc: u32, seq: u16, ts: u32) -> Header {
        Header {
            ssrc,
            sequence_number: seq,
            timestamp: ts,
            ..Default::default()
        }
    }

    #[test]
    fn rewriter_keeps_first_source_and_continues_after_switch() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(7);
        let mut h = hdr(1, 100, 1000);
        assert!(r.rewrite(t0, 90_000, &mut h));
        assert_eq!((h.ssrc, h.sequence_number, h.timestamp), (7, 100, 1000));
        let mut h = hdr(1, 101, 4000);
        assert!(!r.rewrite(t0 + Duration::from_millis(33), 90_000, &mut h));
        assert_eq!((h.sequence_number, h.timestamp), (101, 4000));
        // A reconnect: new SSRC, unrelated numbers, 100 ms later.
        let mut h = hdr(2, 60_000, 5);
        assert!(r.rewrite(t0 + Duration::from_millis(133), 90_000, &mut h));
        assert_eq!(
            (h.ssrc, h.sequence_number, h.timestamp),
            (7, 102, 4000 + 9000)
        );
        let mut h = hdr(2, 60_001, 3005);
        r.rewrite(t0 + Duration::from_millis(166), 90_000, &mut h);
        assert_eq!((h.sequence_number, h.timestamp), (103, 4000 + 9000 + 3000));
    }

    #[test]
    fn rewriter_ignores_old_packets_for_its_base() {
        let t0 = Instant::now();
        let mut r = Rewriter::new(7);
        r.rewrite(t0, 48_000, &mut hdr(1, 10, 0));
        r.rewrite(t0, 48_000, &mut hdr(1, 12, 1920));
        r.rewrite(t0, 48_000, &mut hdr(1, 11, 960)); // late retransmission
        let mut h = hdr(2, 500, 0);
        r.rewrite(t0 + Duration::from_millis(20), 48_000, &mut h);
        assert_eq!(h.sequence_number, 13);
        assert_eq!(h.timestamp, 1920 + 960);
    }

    #[test]
    fn detects_keyframes() {
        // VP8: X=1, I=1 with 2-byte picture id, then a keyframe header byte (P=0).
        assert!(vp8_keyframe(&[0x90, 0x80, 0x80, 0x01, 0x10, 0x02]));
        assert!(!vp8_keyframe(&[0x90, 0x80, 0x80, 0x01, 0x11, 0x02]));
        // Not the start of a partition.
        assert!(!vp8_keyframe(&[0x80, 0x80, 0x80, 0x01, 0x10]));
        assert!(h264_keyframe(&[0x65, 0x00]));
        assert!(h264_keyframe(&[
            0x78, 0x00, 0x02, 0x67, 0x42, 0x00, 0x01, 0x68
        ]));
        assert!(h264_keyframe(&[0x7c, 0x85]));
        assert!(!h264_keyframe(&[0x7c, 0x05]));
        assert!(!h264_keyframe(&[0x41, 0x00]));
    }
}
