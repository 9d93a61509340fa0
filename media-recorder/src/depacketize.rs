//! RTP parsing, reordering and depacketization into codec frames (VP8, H.264, Opus).

use std::collections::BTreeMap;

/// Codecs the recorder can mux without transcoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// VP8 video (RFC 7741 payload).
    Vp8,
    /// H.264 video (RFC 6184 payload, output as Annex B access units).
    H264,
    /// Opus audio (RFC 7587 payload).
    Opus,
}

impl Codec {
    /// Codec of a MIME type such as `video/VP8` (case-insensitive).
    pub fn from_mime(mime: &str) -> Option<Self> {
        match mime.to_ascii_lowercase().as_str() {
            "video/vp8" => Some(Codec::Vp8),
            "video/h264" => Some(Codec::H264),
            "audio/opus" => Some(Codec::Opus),
            _ => None,
        }
    }
}

/// The fields of an RTP packet the recorder needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
    /// Marker bit (last packet of a video frame).
    pub marker: bool,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Payload without header, CSRCs, extensions and padding.
    pub payload: &'a [u8],
}

/// Parses an RTP packet; `None` if it is not a well-formed RTP version 2 packet.
pub fn parse_rtp(p: &[u8]) -> Option<RtpView<'_>> {
    if p.len() < 12 || p[0] >> 6 != 2 {
        return None;
    }
    let padding = p[0] & 0x20 != 0;
    let extension = p[0] & 0x10 != 0;
    let csrc = (p[0] & 0x0F) as usize;
    let mut offset = 12 + 4 * csrc;
    if extension {
        let ext = p.get(offset..offset + 4)?;
        let words = u16::from_be_bytes([ext[2], ext[3]]) as usize;
        offset += 4 + 4 * words;
    }
    let mut end = p.len();
    if padding {
        let pad = *p.last()? as usize;
        end = end.checked_sub(pad)?;
    }
    if offset > end {
        return None;
    }
    Some(RtpView {
        marker: p[1] & 0x80 != 0,
        payload_type: p[1] & 0x7F,
        sequence_number: u16::from_be_bytes([p[2], p[3]]),
        timestamp: u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
        ssrc: u32::from_be_bytes([p[8], p[9], p[10], p[11]]),
        payload: &p[offset..end],
    })
}

/// Writes a minimal RTP header (no CSRC, no extension) followed by `payload`.
pub fn build_rtp(pt: u8, marker: bool, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + payload.len());
    out.push(0x80);
    out.push(pt & 0x7F | if marker { 0x80 } else { 0 });
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Restores sequence order within a window of packets and drops duplicates.
#[derive(Debug)]
pub struct Reorder<T> {
    window: usize,
    pending: BTreeMap<i64, T>,
    last_released: Option<i64>,
}

impl<T> Reorder<T> {
    /// A buffer holding up to `window` packets before releasing the oldest.
    pub fn new(window: usize) -> Self {
        Self {
            window: window.max(1),
            pending: BTreeMap::new(),
            last_released: None,
        }
    }

    /// Adds a packet with its extended sequence number; duplicates and packets older than
    /// what was already released are dropped.
    pub fn push(&mut self, ext_seq: i64, item: T) {
        if self.last_released.is_some_and(|l| ext_seq <= l) {
            return;
        }
        self.pending.entry(ext_seq).or_insert(item);
    }

    /// Releases the oldest packet if the window is full (or `drain` is set and any is left).
    pub fn pop(&mut self, drain: bool) -> Option<(i64, T)> {
        if self.pending.len() > self.window || (drain && !self.pending.is_empty()) {
            let (seq, item) = self.pending.pop_first()?;
            self.last_released = Some(seq);
            return Some((seq, item));
        }
        None
    }
}

/// A complete codec frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Extended RTP timestamp.
    pub ext_ts: i64,
    /// Frame bytes (VP8 frame, H.264 Annex B access unit, or Opus packet).
    pub data: Vec<u8>,
    /// Whether a decoder can start at this frame.
    pub keyframe: bool,
}

#[derive(Debug)]
struct Partial {
    ext_ts: i64,
    next_seq: i64,
    data: Vec<u8>,
    ok: bool,
    keyframe: bool,
}

/// Assembles frames from packets delivered in sequence order. A frame with a missing packet
/// is dropped rather than muxed corrupt.
#[derive(Debug)]
pub struct Assembler {
    codec: Codec,
    partial: Option<Partial>,
}

const START_CODE: [u8; 4] = [0, 0, 0, 1];

impl Assembler {
    /// Assembler for a codec.
    pub fn new(codec: Codec) -> Self {
        Self {
            codec,
            partial: None,
        }
    }

    /// Feeds the next packet (in sequence order); returns a frame when one completes.
    pub fn push(
        &mut self,
        ext_seq: i64,
        ext_ts: i64,
        marker: bool,
        payload: &[u8],
    ) -> Option<Frame> {
        if self.codec == Codec::Opus {
            if payload.is_empty() {
                return None;
            }
            return Some(Frame {
                ext_ts,
                data: payload.to_vec(),
                keyframe: true,
            });
        }
        if self.partial.as_ref().is_some_and(|p| p.ext_ts != ext_ts) {
            // A new timestamp without the previous frame's marker: that frame lost its end.
            self.partial = None;
        }
        let partial = self.partial.get_or_insert_with(|| Partial {
            ext_ts,
            next_seq: ext_seq,
            data: Vec::new(),
            ok: true,
            keyframe: false,
        });
        if partial.next_seq != ext_seq {
            partial.ok = false;
        }
        partial.next_seq = ext_seq + 1;
        let first = partial.data.is_empty();
        match self.codec {
            Codec::Vp8 => match vp8_descriptor(payload) {
                Some((start, offset)) => {
                    if first && !start {
                        partial.ok = false;
                    }
                    let body = &payload[offset..];
                    if start && first {
                        partial.keyframe = body.first().is_some_and(|b| b & 0x01 == 0);
                    }
                    partial.data.extend_from_slice(body);
                }
                None => partial.ok = false,
            },
            Codec::H264 => {
                if !h264_payload(payload, &mut partial.data, &mut partial.keyframe) {
                    partial.ok = false;
                }
            }
            Codec::Opus => {}
        }
        if marker {
            let done = self.partial.take()?;
            if done.ok && !done.data.is_empty() {
                return Some(Frame {
                    ext_ts: done.ext_ts,
                    data: done.data,
                    keyframe: done.keyframe,
                });
            }
        }
        None
    }
}

/// Parses a VP8 payload descriptor: (start of partition 0, payload offset).
pub fn vp8_descriptor(p: &[u8]) -> Option<(bool, usize)> {
    let b0 = *p.first()?;
    let mut i = 1;
    if b0 & 0x80 != 0 {
        let b1 = *p.get(1)?;
        i = 2;
        if b1 & 0x80 != 0 {
            i += if *p.get(i)? & 0x80 != 0 { 2 } else { 1 };
        }
        if b1 & 0x40 != 0 {
            i += 1;
        }
        if b1 & 0x30 != 0 {
            i += 1;
        }
    }
    if i > p.len() {
        return None;
    }
    Some((b0 & 0x10 != 0 && b0 & 0x07 == 0, i))
}

/// Width and height of a VP8 keyframe, from its uncompressed header.
pub fn vp8_keyframe_size(frame: &[u8]) -> Option<(u32, u32)> {
    if frame.len() < 10 || frame[0] & 0x01 != 0 || frame[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let w = u16::from_le_bytes([frame[6], frame[7]]) & 0x3FFF;
    let h = u16::from_le_bytes([frame[8], frame[9]]) & 0x3FFF;
    Some((w as u32, h as u32))
}

/// Appends an H.264 RTP payload to an Annex B access unit; false if it is malformed or a
/// fragment continues without its start.
fn h264_payload(p: &[u8], out: &mut Vec<u8>, keyframe: &mut bool) -> bool {
    let Some(&header) = p.first() else {
        return false;
    };
    let mut push_nal = |nal: &[u8], out: &mut Vec<u8>| {
        if let Some(&h) = nal.first() {
            if h & 0x1F == 5 {
                *keyframe = true;
            }
            out.extend_from_slice(&START_CODE);
            out.extend_from_slice(nal);
        }
    };
    match header & 0x1F {
        1..=23 => {
            push_nal(p, out);
            true
        }
        24 => {
            let mut i = 1;
            while i + 2 <= p.len() {
                let size = u16::from_be_bytes([p[i], p[i + 1]]) as usize;
                i += 2;
                let Some(nal) = p.get(i..i + size) else {
                    return false;
                };
                push_nal(nal, out);
                i += size;
            }
            true
        }
        28 => {
            let Some(&fu) = p.get(1) else { return false };
            let nal_type = fu & 0x1F;
            if fu & 0x80 != 0 {
                if nal_type == 5 {
                    *keyframe = true;
                }
                out.extend_from_slice(&START_CODE);
                out.push((header & 0xE0) | nal_type);
            } else if out.is_empty() {
                return false;
            }
            out.extend_from_slice(&p[2..]);
            true
        }
        _ => true,
    }
}

/// Splits an Annex B byte stream into NAL units (without start codes).
pub fn annexb_nals(data: &[u8]) -> Vec<&[u8]> {
    let mut nals = Vec::new();
    let mut i = 0;
    let mut start = None;
    while i + 3 <= data.len() {
        if data[i] == 0 && data[i + 1] == 0 && data[i + 2] == 1 {
            if let Some(s) = start {
                let mut end = i;
                while end > s && data[end - 1] == 0 {
                    end -= 1;
                }
                nals.push(&data[s..end]);
            }
            i += 3;
            start = Some(i);
        } else {
            i += 1;
        }
    }
    if let Some(s) = start {
        if s < data.len() {
            nals.push(&data[s..]);
        }
    }
    nals
}

/// Width and height coded in an H.264 sequence parameter set (NAL including its header).
pub fn h264_sps_size(sps: &[u8]) -> Option<(u32, u32)> {
    // Emulation prevention bytes (00 00 03) are removed before bit parsing.
    let mut rbsp = Vec::with_capacity(sps.len());
    let mut zeros = 0;
    for &b in sps.get(1..)? {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        rbsp.push(b);
    }
    let mut r = Bits {
        data: &rbsp,
        pos: 0,
    };
    let profile = r.bits(8)?;
    r.bits(16)?; // constraint flags, level
    r.ue()?; // seq_parameter_set_id
    let mut chroma_format_idc = 1;
    if matches!(
        profile,
        100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
    ) {
        chroma_format_idc = r.ue()?;
        if chroma_format_idc == 3 {
            r.bits(1)?;
        }
        r.ue()?;
        r.ue()?;
        r.bits(1)?;
        if r.bits(1)? == 1 {
            for i in 0..if chroma_format_idc == 3 { 12 } else { 8 } {
                if r.bits(1)? == 1 {
                    let size = if i < 6 { 16 } else { 64 };
                    let (mut last, mut next) = (8i64, 8i64);
                    for _ in 0..size {
                        if next != 0 {
                            next = (last + r.se()? + 256) % 256;
                        }
                        if next != 0 {
                            last = next;
                        }
                    }
                }
            }
        }
    }
    r.ue()?; // log2_max_frame_num
    let poc_type = r.ue()?;
    if poc_type == 0 {
        r.ue()?;
    } else if poc_type == 1 {
        r.bits(1)?;
        r.se()?;
        r.se()?;
        for _ in 0..r.ue()? {
            r.se()?;
        }
    }
    r.ue()?; // max_num_ref_frames
    r.bits(1)?;
    let w_mbs = r.ue()? + 1;
    let h_map = r.ue()? + 1;
    let frame_mbs_only = r.bits(1)?;
    if frame_mbs_only == 0 {
        r.bits(1)?;
    }
    r.bits(1)?;
    let (mut cl, mut cr, mut ct, mut cb) = (0, 0, 0, 0);
    if r.bits(1)? == 1 {
        cl = r.ue()?;
        cr = r.ue()?;
        ct = r.ue()?;
        cb = r.ue()?;
    }
    let (sub_w, sub_h): (u64, u64) = match chroma_format_idc {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    let crop_x = if chroma_format_idc == 0 { 1 } else { sub_w };
    let crop_y = (if chroma_format_idc == 0 { 1 } else { sub_h }) * (2 - frame_mbs_only);
    // Every number here comes from the publisher: a crop wider than the picture or sizes
    // beyond any codec level are refused, not wrapped (found by fuzzing, issue 19).
    let w = w_mbs
        .checked_mul(16)?
        .checked_sub(crop_x.checked_mul(cl.checked_add(cr)?)?)?;
    let h = (2 - frame_mbs_only)
        .checked_mul(h_map)?
        .checked_mul(16)?
        .checked_sub(crop_y.checked_mul(ct.checked_add(cb)?)?)?;
    if !(1..=MAX_SPS_DIMENSION).contains(&w) || !(1..=MAX_SPS_DIMENSION).contains(&h) {
        return None;
    }
    Some((u32::try_from(w).ok()?, u32::try_from(h).ok()?))
}

/// The largest picture side an SPS may declare (H.264 level 6.2 allows 8192 × 4320 and
/// other shapes up to 16 384 on a side within its macroblock budget).
const MAX_SPS_DIMENSION: u64 = 16_384;

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Bits<'_> {
    fn bits(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | ((byte >> (7 - self.pos % 8)) & 1) as u64;
            self.pos += 1;
        }
        Some(v)
    }

    fn ue(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u64 << zeros) - 1 + self.bits(zeros)?)
    }

    fn se(&mut self) -> Option<i64> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sps_cropping_more_than_its_picture_is_refused() {
        // Found by the depacketize fuzz target: the crop offsets exceed the width.
        let input = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/fuzz/corpus/depacketize/crash-sps-crop"
        ))
        .expect("the crash input");
        crate::fuzzing::fuzz_depacketize(&input);
    }

    #[test]
    fn rtp_round_trip() {
        let p = build_rtp(96, true, 7, 9000, 42, &[1, 2, 3]);
        let v = parse_rtp(&p).expect("valid");
        assert!(v.marker);
        assert_eq!(
            (v.payload_type, v.sequence_number, v.timestamp, v.ssrc),
            (96, 7, 9000, 42)
        );
        assert_eq!(v.payload, &[1, 2, 3]);
        assert!(parse_rtp(&p[..11]).is_none());
    }

    #[test]
    fn reorder_restores_order_and_drops_duplicates() {
        let mut r = Reorder::new(2);
        let mut out = Vec::new();
        for s in [1, 3, 2, 2, 4, 5, 1] {
            r.push(s, s);
            while let Some((s, _)) = r.pop(false) {
                out.push(s);
            }
        }
        while let Some((s, _)) = r.pop(true) {
            out.push(s);
        }
        assert_eq!(out, vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn vp8_frames_assemble_and_lossy_frames_drop() {
        let mut a = Assembler::new(Codec::Vp8);
        // Descriptor with X, I (15-bit picture id): 4 bytes.
        assert!(a
            .push(0, 0, false, &[0x90, 0x80, 0x80, 0x01, 0x10, 0x02])
            .is_none());
        let f = a
            .push(1, 0, true, &[0x80, 0x80, 0x80, 0x01, 0x03])
            .expect("frame");
        assert_eq!(f.data, vec![0x10, 0x02, 0x03]);
        assert!(f.keyframe);
        // Packet 3 lost: the frame at ts 3000 is dropped.
        assert!(a.push(2, 3000, false, &[0x10, 0x01]).is_none());
        assert!(a.push(4, 3000, true, &[0x00, 0x05]).is_none());
        let f = a.push(5, 6000, true, &[0x10, 0x01, 0x07]).expect("frame");
        assert!(!f.keyframe);
    }

    #[test]
    fn h264_fu_a_and_stap_a() {
        let mut a = Assembler::new(Codec::H264);
        // A real SPS from libx264 (baseline, 640x360, cropped from 368 coded lines).
        let sps = [
            0x67, 0x42, 0xC0, 0x1E, 0xD9, 0x00, 0xA0, 0x2F, 0xF9, 0x70, 0x11, 0x00, 0x00, 0x03,
            0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x32, 0x0F, 0x16, 0x2E, 0x48,
        ];
        let mut stap = vec![24];
        stap.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        stap.extend_from_slice(&sps);
        stap.extend_from_slice(&[0, 2, 0x68, 0xCE]);
        assert!(a.push(0, 0, false, &stap).is_none());
        assert!(a.push(1, 0, false, &[0x7C, 0x85, 0xAA]).is_none());
        let f = a.push(2, 0, true, &[0x7C, 0x45, 0xBB]).expect("frame");
        assert!(f.keyframe);
        let nals = annexb_nals(&f.data);
        assert_eq!(nals.len(), 3);
        assert_eq!(nals[2], &[0x65, 0xAA, 0xBB]);
        assert_eq!(h264_sps_size(nals[0]), Some((640, 360)));
        // High 4:4:4 profile, 1280x720, from libx264 too.
        let high = [
            0x67, 0xF4, 0x00, 0x1F, 0x91, 0x9B, 0x28, 0x0A, 0x00, 0xB7, 0x60, 0x22, 0x00, 0x00,
            0x03, 0x00, 0x02, 0x00, 0x00, 0x03, 0x00, 0x64, 0x1E, 0x30, 0x63, 0x2C,
        ];
        assert_eq!(h264_sps_size(&high), Some((1280, 720)));
    }
}
