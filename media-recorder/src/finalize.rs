//! Finalization: turns an inspection's journals into one seekable file, without transcoding.
//!
//! Every journal (one per track and connection segment) is read twice: first to build its
//! RTP → wall-clock mapping ([`crate::timecode`]) and find the codec parameters, then to
//! reorder, depacketize and mux its frames. All journals share one timeline whose origin (the
//! session epoch) is the earliest media sample of the inspection, so a reconnect leaves a gap
//! instead of being concatenated. Journals of the same participant and kind become one output
//! stream. VP8 goes to WebM (Cues written up front), H.264 to MP4 with `+faststart`; Opus goes
//! with either. Each mark becomes a chapter at its own media time; the live peer asks for a
//! keyframe at every mark, so a decodable picture sits right there.
//!
//! Outputs in the inspection directory: `recording.webm` or `recording.mp4`, `recording.vtt`
//! (WebVTT chapters) and, written last and atomically, `manifest.json`. A directory with
//! journals but no manifest is unfinished; [`recover_all`] finalizes those at server start.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::ffi;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chapters::{chapter_display_title, read_marks, to_webvtt, Chapter, Mark};
use crate::depacketize::{
    annexb_nals, h264_sps_size, parse_rtp, vp8_descriptor, vp8_keyframe_size, Assembler, Codec,
    Reorder,
};
use crate::journal::{list_journals, JournalError, JournalReader, Record, TrackKind, TrackMeta};
use crate::timecode::{ClockMap, ClockMapBuilder, Unwrapper};

/// File name of the manifest; its presence marks a finished recording.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the WebVTT chapters file.
pub const VTT_FILE: &str = "recording.vtt";
/// Packets held back to restore sequence order (about a second of video).
const REORDER_WINDOW: usize = 128;
/// A frame duration is capped here so a reconnect gap is not filled by a single frame.
const MAX_FRAME_DURATION_MICROS: i64 = 500_000;
/// Bytes reserved at the start of a WebM file for its Cues (the seek index).
const WEBM_CUES_RESERVE_BASE: i64 = 16 * 1024;

/// Errors of finalization, each with a stable snake_case code in its message.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    /// The inspection directory has no journal with media in a supported codec.
    #[error("no_media: no journal with recordable media in {0}")]
    NoMedia(PathBuf),
    /// Reading a journal failed.
    #[error("journal_error: {0}")]
    Journal(#[from] JournalError),
    /// Filesystem error.
    #[error("io_error: {0}")]
    Io(#[from] io::Error),
    /// libavformat refused something.
    #[error("mux_error: {0}")]
    Mux(String),
}

impl From<ffmpeg::Error> for FinalizeError {
    fn from(e: ffmpeg::Error) -> Self {
        FinalizeError::Mux(e.to_string())
    }
}

/// One output stream of the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestTrack {
    /// Stream index in the file.
    pub index: usize,
    /// Audio or video.
    pub kind: TrackKind,
    /// Codec MIME type.
    pub codec: String,
    /// Participant who published it.
    pub participant_id: String,
    /// Track ids that were merged into this stream (one per connection segment or more).
    pub track_ids: Vec<String>,
    /// Number of journals (connection segments) merged.
    pub segments: usize,
    /// Frames written.
    pub frames: u64,
    /// Frames dropped (incomplete after packet loss, or before the first keyframe).
    pub dropped_frames: u64,
    /// Video width, if video.
    pub width: Option<u32>,
    /// Video height, if video.
    pub height: Option<u32>,
    /// First frame's media time, milliseconds.
    pub start_ms: i64,
    /// Last frame's end, milliseconds.
    pub end_ms: i64,
}

/// Description of a finalized recording, served beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// File name of the recording inside the inspection directory.
    pub file: String,
    /// MIME type of the recording.
    pub mime: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Duration, milliseconds.
    pub duration_ms: i64,
    /// Wall-clock time (µs since the Unix epoch) of media time 0.
    pub epoch_micros: i64,
    /// Streams of the file.
    pub tracks: Vec<ManifestTrack>,
    /// Chapters, one per mark, in time order.
    pub chapters: Vec<Chapter>,
    /// Journals read.
    pub journals: usize,
    /// Journals whose tail was torn (crash) and cut at the last intact record.
    pub torn_journals: usize,
    /// Journals left out (unsupported codec or one that does not fit the container).
    pub skipped_journals: Vec<String>,
    /// When finalization finished, µs since the Unix epoch.
    pub finalized_at_micros: i64,
}

/// Reads the manifest of a finalized inspection directory, if there is one.
pub fn read_manifest(inspection_dir: &Path) -> io::Result<Option<Manifest>> {
    match std::fs::read(inspection_dir.join(MANIFEST_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Finalizes every inspection directory under `recordings_dir` that has journals but no
/// manifest (a crash or restart interrupted it), using the marks persisted beside them.
/// Returns each directory with its outcome.
pub fn recover_all(recordings_dir: &Path) -> Vec<(PathBuf, Result<Manifest, FinalizeError>)> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(recordings_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.push((recordings_dir.to_owned(), Err(e.into())));
            return out;
        }
    };
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for dir in dirs {
        if dir.join(MANIFEST_FILE).exists() {
            continue;
        }
        match list_journals(&dir) {
            Ok(j) if j.is_empty() => continue,
            Ok(_) => {}
            Err(e) => {
                out.push((dir, Err(e.into())));
                continue;
            }
        }
        let result = read_marks(&dir)
            .map_err(FinalizeError::from)
            .and_then(|marks| finalize_inspection(&dir, &marks));
        match &result {
            Ok(m) => {
                tracing::info!(dir = %dir.display(), duration_ms = m.duration_ms, "recovered recording")
            }
            Err(e) => tracing::error!(dir = %dir.display(), error = %e, "recovery failed"),
        }
        out.push((dir, result));
    }
    out
}

/// What the first pass learns about one journal.
struct Scanned {
    path: PathBuf,
    meta: TrackMeta,
    codec: Codec,
    map: ClockMap,
    end_wall_micros: i64,
    size: Option<(u32, u32)>,
    sps_pps: Vec<Vec<u8>>,
    torn: bool,
    valid_len: u64,
}

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

/// Nominal frame duration: 20 ms Opus packets, 30 fps video.
fn default_duration(kind: TrackKind) -> i64 {
    match kind {
        TrackKind::Audio => 20_000,
        TrackKind::Video => 33_333,
    }
}

/// Scans journals on as many threads as there are cores; results keep the input order.
fn scan_all(paths: &[PathBuf]) -> Vec<Result<Option<Scanned>, FinalizeError>> {
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

/// A frame placed on the session timeline.
struct TimedFrame {
    pts_micros: i64,
    duration_micros: i64,
    data: Vec<u8>,
    keyframe: bool,
}

/// Streams one journal's frames in order, with durations from the following frame.
struct FrameSource {
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
    dropped: u64,
}

impl FrameSource {
    fn open(s: &Scanned, epoch: i64) -> Result<Self, FinalizeError> {
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
    fn next(&mut self) -> Result<Option<TimedFrame>, FinalizeError> {
        loop {
            let next = self.next_raw()?;
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

/// An output stream and the journals feeding it.
struct Group {
    kind: TrackKind,
    codec: Codec,
    participant_id: String,
    journals: Vec<usize>,
    size: Option<(u32, u32)>,
    extradata: Vec<u8>,
}

/// Finalizes the journals of `dir` (`<recordings_dir>/<inspection>`) into one recording with a
/// chapter per mark. Synchronous and CPU-bound: run it on a blocking thread.
pub fn finalize_inspection(dir: &Path, marks: &[Mark]) -> Result<Manifest, FinalizeError> {
    ffmpeg::init().map_err(|e| FinalizeError::Mux(e.to_string()))?;
    let started = std::time::Instant::now();
    let paths = list_journals(dir)?;
    let mut scanned = Vec::new();
    let mut skipped = Vec::new();
    for (path, result) in paths.iter().zip(scan_all(&paths)) {
        match result? {
            Some(s) => scanned.push(s),
            None => skipped.push(file_name(path)),
        }
    }
    let torn_journals = scanned.iter().filter(|s| s.torn).count();
    let scanned_at = started.elapsed();

    // The container follows the video codec: H.264 → MP4, otherwise WebM.
    let mp4 = scanned.iter().any(|s| s.codec == Codec::H264)
        && !scanned
            .iter()
            .any(|s| s.codec == Codec::Vp8 && s.meta.kind == TrackKind::Video);
    let fits = |c: Codec| match c {
        Codec::Opus => true,
        Codec::Vp8 => !mp4,
        Codec::H264 => mp4,
    };

    // One output stream per (participant, kind); a journal whose codec differs from the
    // group's first is left out (a container stream has one codec).
    let mut groups: Vec<Group> = Vec::new();
    let mut order: Vec<usize> = (0..scanned.len()).collect();
    order.sort_by_key(|&i| {
        (
            scanned[i].meta.kind != TrackKind::Video,
            scanned[i].map.start_micros(),
        )
    });
    for i in order {
        let s = &scanned[i];
        if !fits(s.codec) {
            skipped.push(file_name(&s.path));
            continue;
        }
        match groups
            .iter_mut()
            .find(|g| g.participant_id == s.meta.participant_id && g.kind == s.meta.kind)
        {
            Some(g) if g.codec == s.codec => {
                g.journals.push(i);
                if g.size.is_none() {
                    g.size = s.size;
                }
                if g.extradata.is_empty() {
                    g.extradata = annexb(&s.sps_pps);
                }
            }
            Some(_) => skipped.push(file_name(&s.path)),
            None => groups.push(Group {
                kind: s.meta.kind,
                codec: s.codec,
                participant_id: s.meta.participant_id.clone(),
                journals: vec![i],
                size: s.size,
                extradata: annexb(&s.sps_pps),
            }),
        }
    }
    // Video that never showed a keyframe cannot be decoded, nor muxed with dimensions.
    groups.retain(|g| {
        let keep = g.kind == TrackKind::Audio || g.size.is_some_and(|(w, h)| w > 0 && h > 0);
        if !keep {
            skipped.extend(g.journals.iter().map(|&i| file_name(&scanned[i].path)));
        }
        keep
    });
    if groups.is_empty() {
        return Err(FinalizeError::NoMedia(dir.to_owned()));
    }
    let used: Vec<usize> = groups
        .iter()
        .flat_map(|g| g.journals.iter().copied())
        .collect();
    let epoch = used
        .iter()
        .map(|&i| scanned[i].map.start_micros())
        .min()
        .unwrap_or(0);
    let planned_end = used
        .iter()
        .map(|&i| scanned[i].end_wall_micros)
        .max()
        .unwrap_or(epoch)
        - epoch;

    let (file, format, mime) = if mp4 {
        ("recording.mp4", "mp4", "video/mp4")
    } else {
        ("recording.webm", "webm", "video/webm")
    };
    let final_path = dir.join(file);
    let part_path = dir.join(format!("{file}.part"));
    let _ = std::fs::remove_file(&part_path);

    // MP4's faststart pass re-reads the file by name, so only WebM uses the writer thread.
    let mut octx = if mp4 {
        threaded_output::Muxer::plain(ffmpeg::format::output_as(&part_path, format)?, &part_path)
    } else {
        threaded_output::open(&part_path, format)?
    };
    for g in &groups {
        let mut st = octx.add_stream(None::<ffmpeg::Codec>)?;
        st.set_parameters(codec_parameters(g)?);
        st.set_time_base(match (mp4, g.kind) {
            (false, _) => ffmpeg::Rational(1, 1000),
            (true, TrackKind::Video) => ffmpeg::Rational(1, 90_000),
            (true, TrackKind::Audio) => ffmpeg::Rational(1, 48_000),
        });
    }

    // Chapters at the marks' media times; the last one runs to the (planned) end.
    let planned_end_ms = (planned_end / 1000).max(0);
    let chapters = build_chapters(marks, epoch, planned_end_ms);
    for (i, c) in chapters.iter().enumerate() {
        octx.add_chapter(
            i as i64 + 1,
            ffmpeg::Rational(1, 1000),
            c.start_ms,
            c.end_ms,
            chapter_display_title(c),
        )?;
    }
    let mut meta = ffmpeg::Dictionary::new();
    meta.set(
        "title",
        &format!(
            "Inspection {}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("")
        ),
    );
    octx.set_metadata(meta);

    let mut opts = ffmpeg::Dictionary::new();
    if mp4 {
        opts.set("movflags", "+faststart");
    } else {
        // Cues up front let a browser seek without reading the end of the file first. About
        // one cue point per second is plenty (clusters start at keyframes or every 5 s).
        let reserve = WEBM_CUES_RESERVE_BASE + planned_end_ms / 1000 * 40;
        opts.set("reserve_index_space", &reserve.to_string());
    }
    octx.write_header_with(opts)?;
    let time_bases: Vec<ffmpeg::Rational> = (0..groups.len())
        .map(|i| {
            octx.stream(i)
                .map(|s| s.time_base())
                .unwrap_or(ffmpeg::Rational(1, 1000))
        })
        .collect();

    // Merge all journals by media time.
    let mut sources: Vec<(usize, FrameSource)> = Vec::new();
    for (gi, g) in groups.iter().enumerate() {
        for &i in &g.journals {
            sources.push((gi, FrameSource::open(&scanned[i], epoch)?));
        }
    }
    let mut heap = BinaryHeap::new();
    let mut heads: Vec<Option<TimedFrame>> = Vec::new();
    for (si, (_, src)) in sources.iter_mut().enumerate() {
        let head = src.next()?;
        if let Some(f) = &head {
            heap.push(Reverse((f.pts_micros, si)));
        }
        heads.push(head);
    }
    let mut stats: Vec<StreamStats> = groups.iter().map(|_| StreamStats::default()).collect();
    while let Some(Reverse((_, si))) = heap.pop() {
        let Some(frame) = heads[si].take() else {
            continue;
        };
        let gi = sources[si].0;
        write_frame(
            &mut octx,
            gi,
            time_bases[gi],
            &mut stats[gi],
            frame,
            groups[gi].kind,
        )?;
        let next = sources[si].1.next()?;
        if let Some(f) = &next {
            heap.push(Reverse((f.pts_micros, si)));
        }
        heads[si] = next;
    }
    octx.write_trailer()?;
    let written = octx.finish()?;
    let muxed_at = started.elapsed();

    let duration_ms = stats
        .iter()
        .map(|s| s.end_micros)
        .max()
        .unwrap_or(0)
        .div_euclid(1000);
    // Durable before it is published under its final name; hashing from the page cache
    // overlaps with the disk writing back.
    let (synced, hashed) = std::thread::scope(|scope| {
        let hash = scope.spawn(|| sha256_file(&part_path));
        let synced = written.sync_all();
        (synced, hash.join())
    });
    synced?;
    let (sha256, size_bytes) = match hashed {
        Ok(h) => h?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    std::fs::rename(&part_path, &final_path)?;
    let hashed_at = started.elapsed();
    tracing::info!(
        dir = %dir.display(),
        scan_ms = scanned_at.as_millis() as u64,
        mux_ms = muxed_at.saturating_sub(scanned_at).as_millis() as u64,
        sync_hash_ms = hashed_at.saturating_sub(muxed_at).as_millis() as u64,
        bytes = size_bytes,
        "recording finalized"
    );

    let chapters = clamp_chapters(chapters, duration_ms);
    write_atomic(&dir.join(VTT_FILE), to_webvtt(&chapters).as_bytes())?;

    let tracks = groups
        .iter()
        .enumerate()
        .map(|(index, g)| {
            let s = &stats[index];
            let dropped: u64 = sources
                .iter()
                .filter(|(gi, _)| *gi == index)
                .map(|(_, src)| src.dropped)
                .sum();
            ManifestTrack {
                index,
                kind: g.kind,
                codec: scanned[g.journals[0]].meta.codec.clone(),
                participant_id: g.participant_id.clone(),
                track_ids: dedup(g.journals.iter().map(|&i| scanned[i].meta.track_id.clone())),
                segments: g.journals.len(),
                frames: s.frames,
                dropped_frames: dropped + s.dropped,
                width: g.size.map(|s| s.0),
                height: g.size.map(|s| s.1),
                start_ms: s.start_micros.unwrap_or(0) / 1000,
                end_ms: s.end_micros / 1000,
            }
        })
        .collect();
    let manifest = Manifest {
        file: file.to_owned(),
        mime: mime.to_owned(),
        size_bytes,
        sha256,
        duration_ms,
        epoch_micros: epoch,
        tracks,
        chapters,
        journals: paths.len(),
        torn_journals,
        skipped_journals: skipped,
        finalized_at_micros: now_micros(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    write_atomic(&dir.join(MANIFEST_FILE), &json)?;
    Ok(manifest)
}

#[derive(Default)]
struct StreamStats {
    last_pts: Option<i64>,
    start_micros: Option<i64>,
    end_micros: i64,
    frames: u64,
    dropped: u64,
    started: bool,
}

fn write_frame(
    octx: &mut ffmpeg::format::context::Output,
    stream: usize,
    tb: ffmpeg::Rational,
    stats: &mut StreamStats,
    frame: TimedFrame,
    kind: TrackKind,
) -> Result<(), FinalizeError> {
    // A video stream must start at a keyframe or nothing decodes until the next one.
    if kind == TrackKind::Video && !stats.started && !frame.keyframe {
        stats.dropped += 1;
        return Ok(());
    }
    // Media before the epoch cannot happen by construction; clamp defensively.
    let pts_us = frame.pts_micros.max(0);
    let mut pts = rescale(pts_us, tb);
    if let Some(last) = stats.last_pts {
        if pts <= last {
            pts = last + 1;
        }
    }
    let duration = rescale(frame.duration_micros, tb).max(1);
    let mut packet = ffmpeg::Packet::copy(&frame.data);
    packet.set_stream(stream);
    packet.set_pts(Some(pts));
    packet.set_dts(Some(pts));
    packet.set_duration(duration);
    if frame.keyframe {
        packet.set_flags(ffmpeg::codec::packet::Flags::KEY);
    }
    packet.write_interleaved(octx)?;
    stats.started = true;
    stats.last_pts = Some(pts);
    stats.frames += 1;
    stats.start_micros.get_or_insert(pts_us);
    stats.end_micros = stats.end_micros.max(pts_us + frame.duration_micros);
    Ok(())
}

/// Converts microseconds to a stream time base, rounding to nearest.
fn rescale(micros: i64, tb: ffmpeg::Rational) -> i64 {
    let num = tb.numerator() as i128;
    let den = tb.denominator() as i128;
    if num == 0 {
        return micros;
    }
    let scaled = (micros as i128 * den * 2 + num * 1_000_000) / (num * 1_000_000 * 2);
    scaled as i64
}

fn codec_parameters(g: &Group) -> Result<ffmpeg::codec::Parameters, FinalizeError> {
    let mut par = ffmpeg::codec::Parameters::new();
    let extradata: Vec<u8> = match g.codec {
        Codec::Opus => opus_head(2),
        Codec::H264 => g.extradata.clone(),
        Codec::Vp8 => Vec::new(),
    };
    // SAFETY: `par` owns a valid AVCodecParameters allocated by avcodec_parameters_alloc; we
    // only set plain fields, and extradata is allocated with av_mallocz (padding included) so
    // avcodec_parameters_free can release it.
    unsafe {
        let p = par.as_mut_ptr();
        match g.codec {
            Codec::Vp8 | Codec::H264 => {
                (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_VIDEO;
                (*p).codec_id = if g.codec == Codec::Vp8 {
                    ffi::AVCodecID::AV_CODEC_ID_VP8
                } else {
                    ffi::AVCodecID::AV_CODEC_ID_H264
                };
                let (w, h) = g.size.unwrap_or((0, 0));
                (*p).width = w as i32;
                (*p).height = h as i32;
                (*p).format = ffi::AVPixelFormat::AV_PIX_FMT_YUV420P as i32;
            }
            Codec::Opus => {
                (*p).codec_type = ffi::AVMediaType::AVMEDIA_TYPE_AUDIO;
                (*p).codec_id = ffi::AVCodecID::AV_CODEC_ID_OPUS;
                (*p).sample_rate = 48_000;
                ffi::av_channel_layout_default(&mut (*p).ch_layout, 2);
                // Opus decoders need 80 ms of pre-roll after a seek.
                (*p).seek_preroll = 3840;
            }
        }
        if !extradata.is_empty() {
            let pad = ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize;
            let buf = ffi::av_mallocz(extradata.len() + pad) as *mut u8;
            if buf.is_null() {
                return Err(FinalizeError::Mux("out of memory".into()));
            }
            std::ptr::copy_nonoverlapping(extradata.as_ptr(), buf, extradata.len());
            (*p).extradata = buf;
            (*p).extradata_size = extradata.len() as i32;
        }
    }
    Ok(par)
}

/// OpusHead identification header (RFC 7845) as Matroska/MP4 codec private data. WebRTC
/// Opus has no pre-skip, so it is 0 and audio stays aligned with video.
fn opus_head(channels: u8) -> Vec<u8> {
    let mut h = b"OpusHead".to_vec();
    h.push(1);
    h.push(channels);
    h.extend_from_slice(&0u16.to_le_bytes());
    h.extend_from_slice(&48_000u32.to_le_bytes());
    h.extend_from_slice(&0i16.to_le_bytes());
    h.push(0);
    h
}

fn annexb(nals: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for n in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(n);
    }
    out
}

/// Chapters in time order, starting at each mark's media time (clamped into the recording).
pub fn build_chapters(marks: &[Mark], epoch_micros: i64, duration_ms: i64) -> Vec<Chapter> {
    let mut sorted: Vec<&Mark> = marks.iter().collect();
    sorted.sort_by_key(|m| m.at_micros);
    let starts: Vec<i64> = sorted
        .iter()
        .map(|m| ((m.at_micros - epoch_micros).div_euclid(1000)).clamp(0, duration_ms.max(0)))
        .collect();
    sorted
        .iter()
        .enumerate()
        .map(|(i, m)| Chapter {
            item_id: m.item_id.clone(),
            title: m.title.clone(),
            result: m.result.clone(),
            start_ms: starts[i],
            end_ms: starts
                .get(i + 1)
                .copied()
                .unwrap_or(duration_ms)
                .max(starts[i]),
            mark_at_micros: m.at_micros,
        })
        .collect()
}

fn clamp_chapters(chapters: Vec<Chapter>, duration_ms: i64) -> Vec<Chapter> {
    let n = chapters.len();
    chapters
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            c.start_ms = c.start_ms.min(duration_ms);
            c.end_ms = c.end_ms.min(duration_ms).max(c.start_ms);
            if i + 1 == n {
                c.end_ms = duration_ms.max(c.start_ms);
            }
            c
        })
        .collect()
}

fn dedup(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = BTreeMap::new();
    let mut out = Vec::new();
    for s in items {
        if seen.insert(s.clone(), ()).is_none() {
            out.push(s);
        }
    }
    out
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// SHA-256 (hex) and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Writes a file via a temporary name, fsync and rename, so readers see all or nothing.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chapters_sorted_clamped_and_chained() {
        let m = |id: &str, at| Mark {
            item_id: id.into(),
            title: id.into(),
            result: "ok".into(),
            at_micros: at,
        };
        let c = build_chapters(
            &[m("b", 5_000_000), m("a", 1_000_000), m("early", -3)],
            1_000_000,
            10_000,
        );
        assert_eq!(
            c.iter().map(|c| c.item_id.as_str()).collect::<Vec<_>>(),
            ["early", "a", "b"]
        );
        assert_eq!(
            c.iter().map(|c| (c.start_ms, c.end_ms)).collect::<Vec<_>>(),
            [(0, 0), (0, 4000), (4000, 10_000)]
        );
    }

    #[test]
    fn rescale_rounds() {
        assert_eq!(rescale(1_500, ffmpeg::Rational(1, 1000)), 2);
        assert_eq!(rescale(1_499, ffmpeg::Rational(1, 1000)), 1);
        assert_eq!(rescale(1_000_000, ffmpeg::Rational(1, 90_000)), 90_000);
    }
}

/// Muxer output through a writer thread: libavformat's writes are copied into buffers that a
/// second thread writes at their offsets (pwrite), so muxing (CPU) and writing back to disk
/// (IO) overlap instead of taking turns.
mod threaded_output {
    use std::ffi::{c_int, c_void, CString};
    use std::fs::File;
    use std::io;
    use std::os::unix::fs::FileExt;
    use std::path::Path;
    use std::sync::mpsc::{sync_channel, SyncSender};
    use std::thread::JoinHandle;

    use ffmpeg_next as ffmpeg;
    use ffmpeg_next::ffi;

    const BUFFER_SIZE: usize = 1 << 20;

    struct Sink {
        tx: Option<SyncSender<(u64, Vec<u8>)>>,
        pos: i64,
        size: i64,
    }

    /// The writer side of a muxer output; see [`open`].
    struct Writer {
        sink: Box<Sink>,
        thread: Option<JoinHandle<io::Result<File>>>,
    }

    /// A muxer whose output goes through a writer thread. Dropping it (error paths) frees
    /// the custom I/O context before the muxer and the writer, in that order.
    pub struct Muxer {
        octx: ffmpeg::format::context::Output,
        writer: Option<Writer>,
        path: std::path::PathBuf,
    }

    impl std::ops::Deref for Muxer {
        type Target = ffmpeg::format::context::Output;
        fn deref(&self) -> &Self::Target {
            &self.octx
        }
    }

    impl std::ops::DerefMut for Muxer {
        fn deref_mut(&mut self) -> &mut Self::Target {
            &mut self.octx
        }
    }

    impl Drop for Muxer {
        fn drop(&mut self) {
            // Only the custom I/O context needs detaching; a plain muxer closes its own file.
            if self.writer.is_some() {
                detach(&mut self.octx);
            }
        }
    }

    unsafe extern "C" fn write_packet(opaque: *mut c_void, buf: *mut u8, size: c_int) -> c_int {
        // SAFETY: opaque is the Box<Sink> owned by Writer, which outlives the AVIOContext
        // (the context is freed in `finish` or `Drop` before the box); libavformat calls this
        // from the muxing thread only, so the &mut is unique. buf holds `size` bytes.
        let sink = unsafe { &mut *(opaque as *mut Sink) };
        let data = unsafe { std::slice::from_raw_parts(buf, size.max(0) as usize) }.to_vec();
        let Some(tx) = sink.tx.as_ref() else {
            return ffi::AVERROR(ffi::EIO);
        };
        if tx.send((sink.pos as u64, data)).is_err() {
            return ffi::AVERROR(ffi::EIO);
        }
        sink.pos += size as i64;
        sink.size = sink.size.max(sink.pos);
        size
    }

    unsafe extern "C" fn seek(opaque: *mut c_void, offset: i64, whence: c_int) -> i64 {
        // SAFETY: as in write_packet.
        let sink = unsafe { &mut *(opaque as *mut Sink) };
        let whence = whence & !ffi::AVSEEK_FORCE;
        let target = match whence {
            ffi::AVSEEK_SIZE => return sink.size,
            0 => offset,
            1 => sink.pos + offset,
            2 => sink.size + offset,
            _ => return ffi::AVERROR(ffi::EINVAL) as i64,
        };
        if target < 0 {
            return ffi::AVERROR(ffi::EINVAL) as i64;
        }
        sink.pos = target;
        target
    }

    /// Creates a muxer for `format` writing to `path` through a writer thread.
    pub fn open(path: &Path, format: &str) -> Result<Muxer, super::FinalizeError> {
        let file = File::create(path)?;
        let (tx, rx) = sync_channel::<(u64, Vec<u8>)>(64);
        let thread = std::thread::spawn(move || -> io::Result<File> {
            for (at, data) in rx {
                file.write_all_at(&data, at)?;
            }
            Ok(file)
        });
        let mut writer = Writer {
            sink: Box::new(Sink {
                tx: Some(tx),
                pos: 0,
                size: 0,
            }),
            thread: Some(thread),
        };
        let format = CString::new(format).map_err(|e| super::FinalizeError::Mux(e.to_string()))?;
        // SAFETY: plain libavformat allocation calls; every pointer is checked before use.
        // The AVIOContext gets a buffer from av_malloc (libavformat may reallocate it) and the
        // Sink box as opaque; both are released in `detach` before the Writer is dropped.
        unsafe {
            let mut ctx: *mut ffi::AVFormatContext = std::ptr::null_mut();
            let ret = ffi::avformat_alloc_output_context2(
                &mut ctx,
                std::ptr::null(),
                format.as_ptr(),
                std::ptr::null(),
            );
            if ret < 0 || ctx.is_null() {
                return Err(ffmpeg::Error::from(ret).into());
            }
            let buffer = ffi::av_malloc(BUFFER_SIZE) as *mut u8;
            let opaque = &mut *writer.sink as *mut Sink as *mut c_void;
            let pb = ffi::avio_alloc_context(
                buffer,
                BUFFER_SIZE as c_int,
                1,
                opaque,
                None,
                Some(write_packet),
                Some(seek),
            );
            if buffer.is_null() || pb.is_null() {
                ffi::avformat_free_context(ctx);
                return Err(super::FinalizeError::Mux("out of memory".into()));
            }
            (*pb).seekable = ffi::AVIO_SEEKABLE_NORMAL as c_int;
            (*ctx).pb = pb;
            (*ctx).flags |= ffi::AVFMT_FLAG_CUSTOM_IO;
            Ok(Muxer {
                octx: ffmpeg::format::context::Output::wrap(ctx),
                writer: Some(writer),
                path: path.to_owned(),
            })
        }
    }

    impl Muxer {
        /// Wraps a muxer that writes its file itself.
        pub fn plain(octx: ffmpeg::format::context::Output, path: &Path) -> Self {
            Self {
                octx,
                writer: None,
                path: path.to_owned(),
            }
        }

        /// Frees the I/O context (after `write_trailer` flushed it), waits for the writer
        /// thread and returns the written file.
        pub fn finish(mut self) -> Result<File, super::FinalizeError> {
            if self.writer.is_none() {
                // A plain muxer: dropping it closes its file, which is then reopened.
                let path = self.path.clone();
                drop(self);
                return Ok(File::options().read(true).write(true).open(path)?);
            }
            detach(&mut self.octx);
            let Some(mut writer) = self.writer.take() else {
                return Err(super::FinalizeError::Mux("writer already finished".into()));
            };
            writer.sink.tx = None;
            match writer.thread.take().map(|t| t.join()) {
                Some(Ok(result)) => Ok(result?),
                Some(Err(panic)) => std::panic::resume_unwind(panic),
                None => Err(super::FinalizeError::Mux("writer already finished".into())),
            }
        }
    }

    /// Flushes and frees the custom I/O context, so dropping `octx` does not close it as a
    /// file. Must run before the owning [`Writer`] is dropped.
    fn detach(octx: &mut ffmpeg::format::context::Output) {
        // SAFETY: pb was created by `open` with avio_alloc_context; it is flushed, its buffer
        // freed with av_freep and the context with avio_context_free, then the pointer is
        // cleared so ffmpeg-next's destructor sees no I/O context (avio_close(NULL) is a no-op).
        unsafe {
            let ctx = octx.as_mut_ptr();
            let mut pb = (*ctx).pb;
            if !pb.is_null() {
                ffi::avio_flush(pb);
                ffi::av_freep(&mut (*pb).buffer as *mut *mut u8 as *mut c_void);
                ffi::avio_context_free(&mut pb);
                (*ctx).pb = std::ptr::null_mut();
            }
        }
    }

    impl Drop for Writer {
        fn drop(&mut self) {
            // Error paths: stop the thread; the partial file is removed by the caller.
            self.sink.tx = None;
            if let Some(t) = self.thread.take() {
                let _ = t.join();
            }
        }
    }
}
