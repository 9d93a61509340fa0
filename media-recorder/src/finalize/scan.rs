//! The first pass over the journals (IO, no FFmpeg): each is read through once to build its
//! RTP → wall-clock mapping ([`crate::timecode`]), find its picture size and H.264 parameter
//! sets, and learn how much of it is intact; several journals are read in parallel.

use std::path::{Path, PathBuf};

use super::plan::{default_duration, JournalFacts};
use super::FinalizeError;
use crate::depacketize::{
    annexb_nals, h264_sps_size, parse_rtp, vp8_descriptor, vp8_keyframe_size, Assembler, Codec,
};
use crate::journal::{JournalReader, Record, TrackMeta};
use crate::timecode::{ClockMap, ClockMapBuilder};

/// What the first pass learns about one journal.
pub(super) struct Scanned {
    pub path: PathBuf,
    pub meta: TrackMeta,
    pub codec: Codec,
    pub map: ClockMap,
    pub end_wall_micros: i64,
    pub size: Option<(u32, u32)>,
    pub sps_pps: Vec<Vec<u8>>,
    pub torn: bool,
    pub valid_len: u64,
}

impl Scanned {
    /// The facts the plan is made of.
    pub fn facts(&self) -> JournalFacts {
        JournalFacts {
            name: file_name(&self.path),
            meta: self.meta.clone(),
            codec: self.codec,
            start_micros: self.map.start_micros(),
            end_micros: self.end_wall_micros,
            size: self.size,
            extradata: annexb(&self.sps_pps),
        }
    }
}

/// File name of a path, for the manifest.
pub(super) fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n);
    }
    out
}

/// Reads one journal through: its clock mapping, codec parameters and intact length; `None`
/// if its codec cannot be recorded or it holds no packet.
fn scan(path: &Path) -> Result<Option<Scanned>, FinalizeError> {
    let mut reader = JournalReader::open(path)?;
    let meta = reader.meta().clone();
    let Some(codec) = Codec::from_mime(&meta.codec) else {
        return Ok(None);
    };
    let mut builder = ClockMapBuilder::new(meta.clock_rate);
    let mut size = None;
    let (mut sps, mut pps) = (None, None);
    let mut max_ts = i64::MIN;
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Rtp {
                arrival_micros,
                packet,
            } => {
                let Some(rtp) = parse_rtp(&packet) else {
                    continue;
                };
                if rtp.ssrc != meta.ssrc && meta.ssrc != 0 {
                    continue;
                }
                let ext = builder.packet(rtp.timestamp, arrival_micros);
                max_ts = max_ts.max(ext);
                match codec {
                    Codec::Vp8 if size.is_none() => {
                        if let Some((true, off)) = vp8_descriptor(rtp.payload) {
                            size = vp8_keyframe_size(&rtp.payload[off..]);
                        }
                    }
                    Codec::H264 if sps.is_none() || pps.is_none() => {
                        let mut au = Vec::new();
                        let mut assembler = Assembler::new(Codec::H264);
                        // A one-packet access unit is enough to see SPS/PPS in STAP-A or alone.
                        if let Some(frame) = assembler.push(0, 0, true, rtp.payload) {
                            au = frame.data;
                        }
                        for nal in annexb_nals(&au) {
                            match nal.first().map(|h| h & 0x1F) {
                                Some(7) if sps.is_none() => {
                                    size = h264_sps_size(nal);
                                    sps = Some(nal.to_vec());
                                }
                                Some(8) if pps.is_none() => pps = Some(nal.to_vec()),
                                _ => {}
                            }
                        }
                    }
                    _ => {}
                }
            }
            Record::SenderReport {
                ntp_time, rtp_time, ..
            } => builder.sender_report(ntp_time, rtp_time),
        }
    }
    let torn = reader.torn_tail();
    let valid_len = reader.valid_len();
    let Some(map) = builder.build() else {
        return Ok(None);
    };
    // The last frame lasts one nominal frame duration beyond its timestamp.
    let end_wall_micros = map.wall_micros(max_ts) + default_duration(meta.kind);
    let sps_pps = match (sps, pps) {
        (Some(s), Some(p)) => vec![s, p],
        _ => Vec::new(),
    };
    Ok(Some(Scanned {
        path: path.to_owned(),
        meta,
        codec,
        map,
        end_wall_micros,
        size,
        sps_pps,
        torn,
        valid_len,
    }))
}

/// Scans journals on as many threads as there are cores; results keep the input order.
pub(super) fn scan_all(paths: &[PathBuf]) -> Vec<Result<Option<Scanned>, FinalizeError>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .clamp(1, paths.len().max(1));
    let mut results: Vec<Option<Result<Option<Scanned>, FinalizeError>>> =
        paths.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    paths
                        .iter()
                        .enumerate()
                        .skip(t)
                        .step_by(threads)
                        .map(|(i, p)| (i, scan(p)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        for handle in handles {
            match handle.join() {
                Ok(done) => {
                    for (i, r) in done {
                        results[i] = Some(r);
                    }
                }
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
    });
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(FinalizeError::Mux("scan thread lost a journal".into()))))
        .collect()
}
