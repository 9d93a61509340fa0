//! The second pass over a journal (IO, no FFmpeg): its packets reordered, depacketized into
//! frames, and each frame placed on the session timeline with its duration.

use super::plan::default_duration;
use super::scan::Scanned;
use super::FinalizeError;
use crate::depacketize::{parse_rtp, Assembler, Reorder};
use crate::journal::{JournalReader, Record, TrackKind};
use crate::timecode::{ClockMap, Unwrapper};

/// Packets held back to restore sequence order (about a second of video).
const REORDER_WINDOW: usize = 128;
/// A frame duration is capped here so a reconnect gap is not filled by a single frame.
const MAX_FRAME_DURATION_MICROS: i64 = 500_000;

/// A frame placed on the session timeline.
pub(super) struct TimedFrame {
    pub pts_micros: i64,
    pub duration_micros: i64,
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// Streams one journal's frames in order, with durations from the following frame.
pub(super) struct FrameSource {
    reader: JournalReader,
    ssrc: u32,
    map: ClockMap,
    epoch: i64,
    seq: Unwrapper,
    ts: Unwrapper,
    reorder: Reorder<(i64, bool, Vec<u8>, std::ops::Range<usize>)>,
    assembler: Assembler,
    default_duration: i64,
    pending: Option<TimedFrame>,
    eof: bool,
    /// Video: nothing is shown before the journal's first keyframe. A segment starts a new
    /// encoder (another connection or device); its delta frames before that keyframe would
    /// be decoded against the previous segment's pictures.
    wait_for_key: bool,
    pub dropped: u64,
}

impl FrameSource {
    pub fn open(s: &Scanned, epoch: i64) -> Result<Self, FinalizeError> {
        let default_duration = default_duration(s.meta.kind);
        Ok(Self {
            reader: JournalReader::open_verified(&s.path, s.valid_len)?,
            ssrc: s.meta.ssrc,
            map: s.map.clone(),
            epoch,
            seq: Unwrapper::sequence_numbers(),
            ts: Unwrapper::timestamps(),
            reorder: Reorder::new(REORDER_WINDOW),
            assembler: Assembler::new(s.codec),
            default_duration,
            pending: None,
            eof: false,
            wait_for_key: s.meta.kind == TrackKind::Video,
            dropped: 0,
        })
    }

    /// Next assembled frame from the journal, before durations are known.
    fn next_raw(&mut self) -> Result<Option<TimedFrame>, FinalizeError> {
        loop {
            if let Some((ext_seq, (ext_ts, marker, packet, range))) = self.reorder.pop(self.eof) {
                if let Some(frame) = self.assembler.push(ext_seq, ext_ts, marker, &packet[range]) {
                    let pts = self.map.wall_micros(frame.ext_ts) - self.epoch;
                    return Ok(Some(TimedFrame {
                        pts_micros: pts,
                        duration_micros: 0,
                        data: frame.data,
                        keyframe: frame.keyframe,
                    }));
                }
                continue;
            }
            if self.eof {
                return Ok(None);
            }
            match self.reader.next_record()? {
                None => self.eof = true,
                Some(Record::Rtp { packet, .. }) => {
                    let Some(rtp) = parse_rtp(&packet) else {
                        continue;
                    };
                    if rtp.ssrc != self.ssrc && self.ssrc != 0 {
                        continue;
                    }
                    let ext_seq = self.seq.unwrap(rtp.sequence_number as u32);
                    let ext_ts = self.ts.unwrap(rtp.timestamp);
                    let marker = rtp.marker;
                    // The payload's place in the packet, so the packet moves instead of a copy.
                    let start = rtp.payload.as_ptr() as usize - packet.as_ptr() as usize;
                    let range = start..start + rtp.payload.len();
                    self.reorder.push(ext_seq, (ext_ts, marker, packet, range));
                }
                Some(Record::SenderReport { .. }) => {}
            }
        }
    }

    /// Next frame with its duration (the gap to the following frame, capped).
    pub fn next(&mut self) -> Result<Option<TimedFrame>, FinalizeError> {
        loop {
            let next = self.next_raw()?;
            if self.wait_for_key && next.as_ref().is_some_and(|f| !f.keyframe) {
                self.dropped += 1;
                continue;
            }
            if next.is_some() {
                self.wait_for_key = false;
            }
            match (self.pending.take(), next) {
                (None, None) => return Ok(None),
                (None, Some(f)) => self.pending = Some(f),
                (Some(mut p), Some(f)) => {
                    if f.pts_micros <= p.pts_micros {
                        // Out-of-order timestamp (a bogus mapping); keep the earlier frame.
                        self.dropped += 1;
                        self.pending = Some(p);
                        continue;
                    }
                    p.duration_micros =
                        (f.pts_micros - p.pts_micros).min(MAX_FRAME_DURATION_MICROS);
                    self.pending = Some(f);
                    return Ok(Some(p));
                }
                (Some(mut p), None) => {
                    p.duration_micros = self.default_duration;
                    return Ok(Some(p));
                }
            }
        }
    }
}
