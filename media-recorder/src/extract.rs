//! Evidence cut from a finished recording: a clip around a moment, a still of a moment, and
//! one audio stream on its own.
//!
//! A clip is remuxed, never transcoded: it starts at the last video keyframe at or before the
//! requested start (the live peer asks for a keyframe at every checklist mark, so one sits at
//! each mark) and copies every packet of every stream up to the requested end into a file of
//! the recording's container, timestamps shifted to start at zero. A still is the picture on
//! screen at a media time (the last frame starting at or before it), decoded and encoded as a
//! JPEG. An audio track is one audio stream of the recording on its own, on the same timeline
//! (silence where the stream had none), for players that play only a file's first audio
//! stream. All are synchronous and CPU-bound: run them on a blocking thread.

use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use ffmpeg_next::format::Pixel;
use ffmpeg_next::{codec, frame, media, Rational};

use crate::opus::{packet_duration_micros, silence_starts, SILENCE};

/// Errors of extraction, each with a stable snake_case code in its message.
#[derive(Debug, thiserror::Error)]
pub enum ExtractError {
    /// The recording has no video stream.
    #[error("no_video: the recording has no video stream")]
    NoVideo,
    /// The stream asked for is not an audio stream of the recording.
    #[error("not_audio: the recording has no audio stream {0}")]
    NotAudio(usize),
    /// Nothing of the recording lies in the requested range (or at the requested moment).
    #[error("out_of_range: no video in the recording at {0} ms")]
    OutOfRange(i64),
    /// libavformat / libavcodec failed.
    #[error("ffmpeg_error: {0}")]
    Ffmpeg(#[from] ffmpeg::Error),
    /// Filesystem error.
    #[error("io_error: {0}")]
    Io(#[from] std::io::Error),
}

/// A clip written by [`cut_clip`].
#[derive(Debug, Clone, PartialEq)]
pub struct Clip {
    /// The file written.
    pub path: PathBuf,
    /// `video/webm` or `video/mp4` (the recording's container).
    pub media_type: &'static str,
    /// Media time in the recording of the clip's first frame (a keyframe), ms.
    pub start_ms: i64,
    /// Media time in the recording where the clip ends, ms.
    pub end_ms: i64,
    /// Video width.
    pub width: u32,
    /// Video height.
    pub height: u32,
}

/// A still decoded by [`still_at`].
#[derive(Debug, Clone, PartialEq)]
pub struct Still {
    /// JPEG bytes.
    pub jpeg: Vec<u8>,
    /// Media time of the frame shown, ms.
    pub pts_ms: i64,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

fn ts_ms(ts: i64, tb: Rational) -> i64 {
    (ts as i128 * 1000 * tb.numerator() as i128 / tb.denominator().max(1) as i128) as i64
}

fn seek_before(input: &mut ffmpeg::format::context::Input, at_ms: i64) -> Result<(), ExtractError> {
    // AV_TIME_BASE (µs), backwards to the keyframe at or before the target.
    let us = at_ms.max(0) * 1000;
    if input.seek(us, ..us).is_err() {
        // Before the first index entry, or a single picture that cannot seek: read from the
        // start (an input that cannot seek at all is still at its start).
        let _ = input.seek(0, ..0);
    }
    Ok(())
}

/// Writes the trailer, makes the file durable and gives it its name: `out` is whole or absent.
fn finish(
    mut octx: ffmpeg::format::context::Output,
    part: &Path,
    out: &Path,
) -> Result<(), ExtractError> {
    octx.write_trailer()?;
    drop(octx);
    std::fs::File::open(part)?.sync_all()?;
    std::fs::rename(part, out)?;
    Ok(())
}

/// Cuts `[from_ms, to_ms)` of the recording at `recording` into `out` (same container),
/// starting at the last video keyframe at or before `from_ms`. The file is written to a
/// temporary name and renamed, so `out` is complete or absent.
pub fn cut_clip(
    recording: &Path,
    from_ms: i64,
    to_ms: i64,
    out: &Path,
) -> Result<Clip, ExtractError> {
    ffmpeg::init()?;
    let mut input = ffmpeg::format::input(recording)?;
    let (vindex, width, height) = {
        let video = input
            .streams()
            .best(media::Type::Video)
            .ok_or(ExtractError::NoVideo)?;
        // SAFETY: codecpar of an opened input stream is a valid AVCodecParameters.
        let (w, h) = unsafe {
            let p = video.parameters().as_ptr();
            ((*p).width as u32, (*p).height as u32)
        };
        (video.index(), w, h)
    };
    let mp4 = input.format().name().contains("mp4");
    let (format, media_type) = if mp4 {
        ("mp4", "video/mp4")
    } else {
        ("webm", "video/webm")
    };
    let in_tbs: Vec<Rational> = input.streams().map(|s| s.time_base()).collect();
    let kinds: Vec<media::Type> = input.streams().map(|s| s.parameters().medium()).collect();
    let usable: Vec<bool> = kinds
        .iter()
        .map(|k| matches!(k, media::Type::Video | media::Type::Audio))
        .collect();

    let part = out.with_extension("part");
    let mut octx = ffmpeg::format::output_as(&part, format)?;
    let mut map = vec![None; in_tbs.len()];
    for (i, ist) in input.streams().enumerate() {
        if !usable[i] {
            continue;
        }
        let mut ost = octx.add_stream(None::<ffmpeg::Codec>)?;
        ost.set_parameters(ist.parameters());
        ost.set_time_base(ist.time_base());
        // SAFETY: resetting the codec tag lets the muxer pick its own for the codec id.
        unsafe { (*ost.parameters().as_mut_ptr()).codec_tag = 0 };
        map[i] = Some(ost.index());
    }
    let mut opts = ffmpeg::Dictionary::new();
    if mp4 {
        opts.set("movflags", "+faststart");
    }
    octx.write_header_with(opts)?;
    let out_tbs: Vec<Rational> = (0..octx.nb_streams() as usize)
        .map(|i| {
            octx.stream(i)
                .map(|s| s.time_base())
                .unwrap_or(Rational(1, 1000))
        })
        .collect();

    seek_before(&mut input, from_ms)?;
    // Packets from the last keyframe at or before `from_ms`, held until that keyframe is
    // known to be the last one; then everything streams through.
    let mut held: Vec<(usize, ffmpeg::Packet, i64)> = Vec::new();
    let mut start_ms: Option<i64> = None;
    let mut end_ms = i64::MIN;
    let mut done = vec![false; in_tbs.len()];
    let write = |octx: &mut ffmpeg::format::context::Output,
                 si: usize,
                 mut p: ffmpeg::Packet,
                 start: i64,
                 end_ms: &mut i64|
     -> Result<(), ExtractError> {
        let Some(oi) = map[si] else { return Ok(()) };
        let tb = in_tbs[si];
        let shift = start * tb.denominator() as i64 / (1000 * tb.numerator().max(1) as i64);
        let pts = p.pts().unwrap_or(0);
        let end = ts_ms(pts + p.duration(), tb);
        *end_ms = (*end_ms).max(end);
        p.set_pts(Some(pts - shift));
        p.set_dts(p.dts().map(|d| d - shift));
        p.rescale_ts(tb, out_tbs[oi]);
        p.set_stream(oi);
        p.set_position(-1);
        p.write_interleaved(octx)?;
        Ok(())
    };
    for (stream, packet) in input.packets() {
        let si = stream.index();
        if !usable[si] || done[si] {
            continue;
        }
        let pts_ms = ts_ms(packet.pts().unwrap_or(0), in_tbs[si]);
        if pts_ms >= to_ms {
            done[si] = true;
            if done.iter().enumerate().all(|(i, d)| *d || !usable[i]) {
                break;
            }
            continue;
        }
        match start_ms {
            Some(start) => {
                if pts_ms >= start {
                    write(&mut octx, si, packet, start, &mut end_ms)?;
                }
            }
            None => {
                if si == vindex && packet.is_key() && pts_ms <= from_ms {
                    held.clear();
                }
                if si == vindex && pts_ms > from_ms {
                    // The keyframe that starts the clip is the first held video packet.
                    let first_key = held
                        .iter()
                        .find(|(s, p, _)| *s == vindex && p.is_key())
                        .map(|(_, _, t)| *t);
                    let start = match first_key {
                        Some(t) => t,
                        // No keyframe at or before the start: begin at this one if it is.
                        None if packet.is_key() => pts_ms,
                        None => continue,
                    };
                    start_ms = Some(start);
                    for (s, p, t) in held.drain(..) {
                        if t >= start {
                            write(&mut octx, s, p, start, &mut end_ms)?;
                        }
                    }
                    write(&mut octx, si, packet, start, &mut end_ms)?;
                    continue;
                }
                held.push((si, packet, pts_ms));
            }
        }
    }
    // No video after `from_ms`: nothing of the recording is in the range.
    let Some(start_ms) = start_ms else {
        drop(octx);
        let _ = std::fs::remove_file(&part);
        return Err(ExtractError::OutOfRange(from_ms));
    };
    finish(octx, &part, out)?;
    Ok(Clip {
        path: out.to_owned(),
        media_type,
        start_ms,
        end_ms: end_ms.max(start_ms),
        width,
        height,
    })
}

/// One audio stream written by [`audio_track`].
#[derive(Debug, Clone, PartialEq)]
pub struct AudioTrack {
    /// The file written.
    pub path: PathBuf,
    /// `audio/webm` or `audio/mp4` (the recording's container).
    pub media_type: &'static str,
    /// Packets copied from the recording.
    pub packets: u64,
    /// Silence frames written where the stream had none (before its start and in its gaps).
    pub silence_frames: u64,
    /// Media time where the track ends, ms.
    pub end_ms: i64,
}

/// Copies audio stream `index` of the recording into an audio-only file of the same
/// container at `out`, on the recording's timeline: an Opus stream that starts late or has
/// gaps (a reconnect) gets silence frames there, so the file plays from media time 0 without
/// a hole and a player can keep it beside the video by setting the same `currentTime`
/// (browsers play only a file's first audio stream; this is how a reviewer hears the second).
/// Nothing is decoded or re-encoded. Written to a temporary name and renamed.
pub fn audio_track(recording: &Path, index: usize, out: &Path) -> Result<AudioTrack, ExtractError> {
    ffmpeg::init()?;
    let mut input = ffmpeg::format::input(recording)?;
    let (params, tb) = match input.stream(index) {
        Some(s) if s.parameters().medium() == media::Type::Audio => (s.parameters(), s.time_base()),
        _ => return Err(ExtractError::NotAudio(index)),
    };
    let opus = params.id() == codec::Id::OPUS;
    let mp4 = input.format().name().contains("mp4");
    let (format, media_type) = if mp4 {
        ("mp4", "audio/mp4")
    } else {
        ("webm", "audio/webm")
    };
    let part = out.with_extension("part");
    let mut octx = ffmpeg::format::output_as(&part, format)?;
    {
        let mut ost = octx.add_stream(None::<ffmpeg::Codec>)?;
        ost.set_parameters(params);
        ost.set_time_base(tb);
        // SAFETY: resetting the codec tag lets the muxer pick its own for the codec id.
        unsafe { (*ost.parameters().as_mut_ptr()).codec_tag = 0 };
    }
    let mut opts = ffmpeg::Dictionary::new();
    if mp4 {
        opts.set("movflags", "+faststart");
    }
    octx.write_header_with(opts)?;
    let out_tb = octx.stream(0).map(|s| s.time_base()).unwrap_or(tb);
    // 20 ms in the stream's time base (1/1000 in WebM, 1/48000 in MP4).
    let frame = (tb.denominator() as i64 / (50 * tb.numerator().max(1) as i64)).max(1);
    let write = |octx: &mut ffmpeg::format::context::Output, mut p: ffmpeg::Packet| {
        p.rescale_ts(tb, out_tb);
        p.set_stream(0);
        p.set_position(-1);
        p.write_interleaved(octx)
    };
    let mut next = 0i64;
    let mut packets = 0u64;
    let mut silence_frames = 0u64;
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        let Some(pts) = packet.pts() else { continue };
        if opus {
            for at in silence_starts(next, pts, frame) {
                let mut p = ffmpeg::Packet::copy(&SILENCE);
                p.set_pts(Some(at));
                p.set_dts(Some(at));
                p.set_duration(frame);
                write(&mut octx, p)?;
                silence_frames += 1;
            }
        }
        // An Opus packet's own length (a recording made before holes were filled gave the
        // packet before one the hole's length).
        let own = opus
            .then(|| packet.data().and_then(packet_duration_micros))
            .flatten()
            .map(|us| us * tb.denominator() as i64 / (1_000_000 * tb.numerator().max(1) as i64));
        let duration = match own {
            Some(d) => d,
            None if packet.duration() > 0 => packet.duration(),
            None => frame,
        };
        next = next.max(pts + duration);
        write(&mut octx, packet)?;
        packets += 1;
    }
    finish(octx, &part, out)?;
    Ok(AudioTrack {
        path: out.to_owned(),
        media_type,
        packets,
        silence_frames,
        end_ms: ts_ms(next, tb),
    })
}

/// Decodes the picture shown at `at_ms` (the last frame starting at or before it) and encodes
/// it as a JPEG at the recording's resolution.
pub fn still_at(recording: &Path, at_ms: i64) -> Result<Still, ExtractError> {
    let (pts_ms, frame) = decode_at(recording, at_ms)?;
    let jpeg = encode_jpeg(&frame)?;
    Ok(Still {
        jpeg,
        pts_ms,
        width: frame.width(),
        height: frame.height(),
    })
}

/// The decoded frame shown at `at_ms` and its media time.
pub fn decode_at(recording: &Path, at_ms: i64) -> Result<(i64, frame::Video), ExtractError> {
    ffmpeg::init()?;
    let mut input = ffmpeg::format::input(recording)?;
    let stream = input
        .streams()
        .best(media::Type::Video)
        .ok_or(ExtractError::NoVideo)?;
    let index = stream.index();
    let tb = stream.time_base();
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())?
        .decoder()
        .video()?;
    seek_before(&mut input, at_ms)?;
    let mut best: Option<(i64, frame::Video)> = None;
    let mut decoded = frame::Video::empty();
    let mut past = false;
    let take = |decoded: &frame::Video, best: &mut Option<(i64, frame::Video)>| -> bool {
        let pts = ts_ms(decoded.timestamp().or(decoded.pts()).unwrap_or(0), tb);
        if pts <= at_ms {
            *best = Some((pts, decoded.clone()));
            false
        } else {
            true
        }
    };
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        decoder.send_packet(&packet)?;
        while decoder.receive_frame(&mut decoded).is_ok() {
            past |= take(&decoded, &mut best);
        }
        if past {
            break;
        }
    }
    if !past {
        decoder.send_eof()?;
        while decoder.receive_frame(&mut decoded).is_ok() {
            take(&decoded, &mut best);
        }
    }
    best.ok_or(ExtractError::OutOfRange(at_ms))
}

/// Encodes a decoded frame as a baseline JPEG (libavcodec's MJPEG encoder, high quality).
pub fn encode_jpeg(frame: &frame::Video) -> Result<Vec<u8>, ExtractError> {
    ffmpeg::init()?;
    let (w, h) = (frame.width(), frame.height());
    let mut scaler = ffmpeg::software::scaling::Context::get(
        frame.format(),
        w,
        h,
        Pixel::YUVJ420P,
        w,
        h,
        ffmpeg::software::scaling::Flags::BICUBIC,
    )?;
    let mut yuvj = frame::Video::empty();
    scaler.run(frame, &mut yuvj)?;
    yuvj.set_pts(Some(0));
    let found = ffmpeg::encoder::find(codec::Id::MJPEG).ok_or(ffmpeg::Error::EncoderNotFound)?;
    let mut ctx = codec::context::Context::new_with_codec(found);
    ctx.set_time_base(Rational(1, 25));
    let mut enc = ctx.encoder().video()?;
    enc.set_width(w);
    enc.set_height(h);
    enc.set_format(Pixel::YUVJ420P);
    enc.set_time_base(Rational(1, 25));
    // A fixed quantizer of 2 (FF_QP2LAMBDA = 118): near-lossless for evidence.
    enc.set_flags(codec::Flags::QSCALE);
    enc.set_global_quality(2 * 118);
    enc.set_qmin(2);
    enc.set_qmax(2);
    let mut encoder = enc.open()?;
    encoder.send_frame(&yuvj)?;
    encoder.send_eof()?;
    let mut packet = ffmpeg::Packet::empty();
    let mut out = Vec::new();
    while encoder.receive_packet(&mut packet).is_ok() {
        if let Some(d) = packet.data() {
            out.extend_from_slice(d);
        }
    }
    if out.is_empty() {
        return Err(ffmpeg::Error::InvalidData.into());
    }
    Ok(out)
}
