//! The FFmpeg step: the output file's header (streams, chapters, Cues space), every
//! journal's frames merged by media time and written without transcoding, the trailer.
//! The result is `<file>.part` beside the journals; `publish` makes it the recording.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;

use super::ffi::{self, codec_parameters};
use super::frames::{FrameSource, TimedFrame};
use super::plan::{Container, Plan};
use super::scan::Scanned;
use super::FinalizeError;
use crate::chapters::chapter_display_title;
use crate::depacketize::Codec;
use crate::journal::TrackKind;
use crate::opus;

/// The written file, not yet durable nor under its final name.
pub(super) struct Muxed {
    /// `<file>.part`.
    pub part_path: PathBuf,
    /// The open file (to fsync).
    pub file: File,
    /// Per output stream, in the plan's order.
    pub stats: Vec<StreamStats>,
    /// Media duration: the end of the longest stream, ms.
    pub duration_ms: i64,
}

/// Muxes the planned streams of the journals `scanned` (indexed as in the plan) into
/// `<dir>/<file>.part`.
pub(super) fn mux(
    dir: &Path,
    title: &str,
    plan: &Plan,
    scanned: &[Scanned],
) -> Result<Muxed, FinalizeError> {
    ffmpeg::init().map_err(|e| FinalizeError::Mux(e.to_string()))?;
    let file = plan.container.file();
    let part_path = dir.join(format!("{file}.part"));
    let _ = std::fs::remove_file(&part_path);

    // MP4's faststart pass re-reads the file by name, so only WebM uses the writer thread.
    let mut octx = match plan.container {
        Container::Mp4 => ffi::Muxer::plain(
            ffmpeg::format::output_as(&part_path, plan.container.format())?,
            &part_path,
        ),
        Container::Webm => ffi::open(&part_path, plan.container.format())?,
    };
    for g in &plan.streams {
        let mut st = octx.add_stream(None::<ffmpeg::Codec>)?;
        st.set_parameters(codec_parameters(g.codec, g.size, &g.extradata)?);
        let (num, den) = plan.container.time_base(g.kind);
        st.set_time_base(ffmpeg::Rational(num, den));
    }
    // Chapters at the marks' media times; the last one runs to the (planned) end.
    for (i, c) in plan.chapters.iter().enumerate() {
        octx.add_chapter(
            i as i64 + 1,
            ffmpeg::Rational(1, 1000),
            c.start_ms,
            c.end_ms,
            chapter_display_title(c),
        )?;
    }
    let mut meta = ffmpeg::Dictionary::new();
    meta.set("title", title);
    octx.set_metadata(meta);

    let mut opts = ffmpeg::Dictionary::new();
    match plan.container {
        Container::Mp4 => opts.set("movflags", "+faststart"),
        // Cues up front let a browser seek without reading the end of the file first.
        Container::Webm => opts.set("reserve_index_space", &plan.cues_reserve.to_string()),
    }
    octx.write_header_with(opts)?;
    let time_bases: Vec<ffmpeg::Rational> = (0..plan.streams.len())
        .map(|i| {
            octx.stream(i)
                .map(|s| s.time_base())
                .unwrap_or(ffmpeg::Rational(1, 1000))
        })
        .collect();

    // Merge all journals by media time.
    let mut sources: Vec<(usize, FrameSource)> = Vec::new();
    for (gi, g) in plan.streams.iter().enumerate() {
        for &i in &g.journals {
            sources.push((gi, FrameSource::open(&scanned[i], plan.epoch_micros)?));
        }
    }
    let mut heap = BinaryHeap::new();
    let mut heads: Vec<Option<TimedFrame>> = Vec::new();
    // Per output stream, its journals with frames still to come.
    let mut unfinished = vec![0usize; plan.streams.len()];
    for (si, (gi, src)) in sources.iter_mut().enumerate() {
        let head = src.next()?;
        if let Some(f) = &head {
            heap.push(Reverse((f.pts_micros, si)));
            unfinished[*gi] += 1;
        }
        heads.push(head);
    }
    let mut stats: Vec<StreamStats> = plan
        .streams
        .iter()
        .map(|_| StreamStats::default())
        .collect();
    // Opus streams are kept continuous from media time 0: silence where they had nothing
    // (before their first frame, across a reconnect), or browsers play what follows a hole
    // early (crate::opus). It is filled as the merge reaches each moment, so packets stay
    // in time order.
    let opus_streams: Vec<usize> = (0..plan.streams.len())
        .filter(|&gi| plan.streams[gi].codec == Codec::Opus)
        .collect();
    while let Some(Reverse((_, si))) = heap.pop() {
        let Some(mut frame) = heads[si].take() else {
            continue;
        };
        let gi = sources[si].0;
        for &o in &opus_streams {
            // Only a stream with more to come (the frame in hand counts until its journal
            // ends): silence never runs past a stream's end.
            if unfinished[o] > 0 {
                fill_silence(&mut octx, o, time_bases[o], &mut stats[o], frame.pts_micros)?;
            }
        }
        if plan.streams[gi].codec == Codec::Opus {
            // A packet's own length, not the time to the next one (which a hole stretches).
            if let Some(d) = opus::packet_duration_micros(&frame.data) {
                frame.duration_micros = d;
            }
        }
        write_frame(
            &mut octx,
            gi,
            time_bases[gi],
            &mut stats[gi],
            frame,
            plan.streams[gi].kind,
        )?;
        let next = sources[si].1.next()?;
        match &next {
            Some(f) => heap.push(Reverse((f.pts_micros, si))),
            None => unfinished[gi] -= 1,
        }
        heads[si] = next;
    }
    octx.write_trailer()?;
    let file = octx.finish()?;
    // Frames the journals could not assemble count as dropped in their stream.
    for (gi, src) in &sources {
        stats[*gi].dropped += src.dropped;
    }
    let duration_ms = stats
        .iter()
        .map(|s| s.end_micros)
        .max()
        .unwrap_or(0)
        .div_euclid(1000);
    Ok(Muxed {
        part_path,
        file,
        stats,
        duration_ms,
    })
}

/// What was written to one output stream.
#[derive(Default)]
pub(super) struct StreamStats {
    last_pts: Option<i64>,
    /// Media time of its first frame, µs.
    pub start_micros: Option<i64>,
    /// Media time its last frame ends, µs.
    pub end_micros: i64,
    /// Frames written.
    pub frames: u64,
    /// Frames dropped: before the first keyframe, or incomplete after loss in the journals.
    pub dropped: u64,
    /// Silence frames written where the stream had nothing (Opus only).
    pub silence_frames: u64,
    /// Where the stream's written media ends, µs (the next silence starts there).
    filled_to_micros: i64,
    started: bool,
}

/// Writes whole silence frames into Opus stream `stream` from where it ends up to `to_micros`.
fn fill_silence(
    octx: &mut ffmpeg::format::context::Output,
    stream: usize,
    tb: ffmpeg::Rational,
    stats: &mut StreamStats,
    to_micros: i64,
) -> Result<(), FinalizeError> {
    for at in opus::silence_starts(stats.filled_to_micros, to_micros, opus::SILENCE_MICROS) {
        let pts = rescale(at, tb);
        if stats.last_pts.is_some_and(|last| pts <= last) {
            continue;
        }
        let mut packet = ffmpeg::Packet::copy(&opus::SILENCE);
        packet.set_stream(stream);
        packet.set_pts(Some(pts));
        packet.set_dts(Some(pts));
        packet.set_duration(rescale(opus::SILENCE_MICROS, tb).max(1));
        packet.set_flags(ffmpeg::codec::packet::Flags::KEY);
        packet.write_interleaved(octx)?;
        stats.last_pts = Some(pts);
        stats.silence_frames += 1;
        stats.filled_to_micros = at + opus::SILENCE_MICROS;
    }
    Ok(())
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
    stats.filled_to_micros = stats.filled_to_micros.max(pts_us + frame.duration_micros);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_rounds() {
        assert_eq!(rescale(1_500, ffmpeg::Rational(1, 1000)), 2);
        assert_eq!(rescale(1_499, ffmpeg::Rational(1, 1000)), 1);
        assert_eq!(rescale(1_000_000, ffmpeg::Rational(1, 90_000)), 90_000);
    }
}
