//! Synthetic test media (feature `testsrc`): VP8 video whose every frame carries its capture
//! time as a luma barcode, Opus audio, RTP packetizers, journal writing, and reading a frame
//! back from a finished recording.
//!
//! The barcode is 8 × 6 blocks covering the picture: 40 bits of the capture time in
//! milliseconds (modulo 2^40, about 34 years) and an 8-bit checksum. Whole-block black/white
//! survives VP8 compression at any sensible bit rate, so reading it back is exact.

use std::path::Path;

use ffmpeg_next as ffmpeg;
use ffmpeg_next::format::{sample, Pixel, Sample};
use ffmpeg_next::{codec, frame, picture, ChannelLayout, Dictionary, Rational};

use crate::depacketize::{annexb_nals, build_rtp, Codec};
use crate::journal::{JournalError, JournalWriter, TrackKind, TrackMeta};
use crate::timecode::unix_micros_to_ntp;

const COLS: usize = 8;
const ROWS: usize = 6;
const VALUE_BITS: u32 = 40;

/// Errors of the synthetic source.
#[derive(Debug, thiserror::Error)]
pub enum TestSrcError {
    /// libavcodec failed.
    #[error("ffmpeg_error: {0}")]
    Ffmpeg(#[from] ffmpeg::Error),
    /// The encoder is not available in this FFmpeg build.
    #[error("encoder_missing: {0}")]
    EncoderMissing(&'static str),
    /// Journal writing failed.
    #[error("journal_error: {0}")]
    Journal(#[from] JournalError),
}

fn checksum(v: u64) -> u64 {
    let mut c = 0x5Au64;
    for i in 0..5 {
        c ^= (v >> (8 * i)) & 0xFF;
        c = c.rotate_left(1) & 0xFF;
    }
    c
}

/// Paints `millis` as a barcode into the luma plane of a YUV 4:2:0 frame (chroma neutral).
pub fn draw_barcode(f: &mut frame::Video, millis: i64) {
    let value = (millis as u64) & ((1 << VALUE_BITS) - 1);
    let word = value | (checksum(value) << VALUE_BITS);
    let (w, h) = (f.width() as usize, f.height() as usize);
    let stride = f.stride(0);
    let luma = f.data_mut(0);
    for y in 0..h {
        let row = (y * ROWS / h).min(ROWS - 1);
        for x in 0..w {
            let col = (x * COLS / w).min(COLS - 1);
            let bit = (word >> (row * COLS + col)) & 1;
            luma[y * stride + x] = if bit == 1 { 235 } else { 16 };
        }
    }
    for plane in 1..3 {
        f.data_mut(plane).fill(128);
    }
}

/// Reads a barcode painted by [`draw_barcode`]; `reference_millis` (any time within ±17 years)
/// restores the bits above the 40 coded ones. `None` if the checksum does not match.
pub fn read_barcode(f: &frame::Video, reference_millis: i64) -> Option<i64> {
    let (w, h) = (f.width() as usize, f.height() as usize);
    let stride = f.stride(0);
    let luma = f.data(0);
    let mut word = 0u64;
    for row in 0..ROWS {
        for col in 0..COLS {
            // Average the middle half of the block, away from edges blurred by compression.
            let (x0, x1) = (col * w / COLS, (col + 1) * w / COLS);
            let (y0, y1) = (row * h / ROWS, (row + 1) * h / ROWS);
            let (qx, qy) = ((x1 - x0) / 4, (y1 - y0) / 4);
            let (mut sum, mut n) = (0u64, 0u64);
            for y in y0 + qy..y1 - qy {
                for x in x0 + qx..x1 - qx {
                    sum += luma[y * stride + x] as u64;
                    n += 1;
                }
            }
            if n > 0 && sum / n > 128 {
                word |= 1 << (row * COLS + col);
            }
        }
    }
    let value = word & ((1 << VALUE_BITS) - 1);
    if word >> VALUE_BITS != checksum(value) {
        return None;
    }
    let period = 1i64 << VALUE_BITS;
    let base = reference_millis - reference_millis.rem_euclid(period);
    [base - period, base, base + period]
        .into_iter()
        .map(|b| b + value as i64)
        .min_by_key(|c| (c - reference_millis).abs())
}

/// Realtime VP8 (libvpx) or H.264 (libx264) encoder of barcode frames.
pub struct VideoSource {
    encoder: ffmpeg::encoder::Video,
    frame: frame::Video,
    noise: Option<u64>,
}

/// The VP8 source (the name the first version had).
pub type Vp8Source = VideoSource;

impl VideoSource {
    /// A VP8 encoder for `width` × `height` at about `bit_rate` bits per second.
    pub fn new(width: u32, height: u32, bit_rate: usize) -> Result<Self, TestSrcError> {
        Self::with_codec(Codec::Vp8, width, height, bit_rate)
    }

    /// A VP8 or H.264 (constrained baseline, Annex B, SPS/PPS before every IDR) encoder.
    pub fn with_codec(
        video_codec: Codec,
        width: u32,
        height: u32,
        bit_rate: usize,
    ) -> Result<Self, TestSrcError> {
        ffmpeg::init()?;
        let name = match video_codec {
            Codec::H264 => "libx264",
            _ => "libvpx",
        };
        let found =
            ffmpeg::encoder::find_by_name(name).ok_or(TestSrcError::EncoderMissing(name))?;
        let mut ctx = codec::context::Context::new_with_codec(found);
        ctx.set_time_base(Rational(1, 1000));
        let mut enc = ctx.encoder().video()?;
        enc.set_width(width);
        enc.set_height(height);
        enc.set_format(Pixel::YUV420P);
        enc.set_bit_rate(bit_rate);
        enc.set_time_base(Rational(1, 1000));
        // Keyframes only on demand (like a browser: at start and on PLI).
        enc.set_gop(100_000);
        enc.set_max_b_frames(0);
        let mut opts = Dictionary::new();
        if video_codec == Codec::H264 {
            opts.set("profile", "baseline");
            opts.set("preset", "ultrafast");
            opts.set("tune", "zerolatency");
        } else {
            opts.set("deadline", "realtime");
            opts.set("cpu-used", "8");
            opts.set("lag-in-frames", "0");
        }
        let encoder = enc.open_with(opts)?;
        Ok(Self {
            encoder,
            frame: frame::Video::new(Pixel::YUV420P, width, height),
            noise: None,
        })
    }

    /// Fills the chroma planes with noise so the encoder spends its whole bit rate, like a
    /// camera picture would (used by the benchmark for realistic journal sizes).
    pub fn set_noise(&mut self, on: bool) {
        self.noise = on.then_some(0x9E37_79B9_7F4A_7C15);
    }

    /// Encodes the frame captured at `capture_micros` (drawn into it); returns the encoded
    /// frame (VP8, or an H.264 Annex B access unit) and whether it is a keyframe.
    pub fn encode(
        &mut self,
        capture_micros: i64,
        keyframe: bool,
    ) -> Result<Vec<(Vec<u8>, bool)>, TestSrcError> {
        draw_barcode(&mut self.frame, capture_micros.div_euclid(1000));
        if let Some(seed) = self.noise.as_mut() {
            for plane in 1..3 {
                for b in self.frame.data_mut(plane).iter_mut() {
                    *seed = seed
                        .wrapping_mul(6_364_136_223_846_793_005)
                        .wrapping_add(1_442_695_040_888_963_407);
                    // Mild noise (±8) keeps the rate controller near its target.
                    *b = 120 + (*seed >> 60) as u8;
                }
            }
        }
        self.frame.set_pts(Some(capture_micros.div_euclid(1000)));
        self.frame.set_kind(if keyframe {
            picture::Type::I
        } else {
            picture::Type::None
        });
        self.encoder.send_frame(&self.frame)?;
        let mut out = Vec::new();
        let mut packet = ffmpeg::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            if let Some(data) = packet.data() {
                out.push((data.to_vec(), packet.is_key()));
            }
        }
        Ok(out)
    }
}

/// Opus encoder (libopus) of a 440 Hz tone in 20 ms packets.
pub struct OpusSource {
    encoder: ffmpeg::encoder::Audio,
    frame: frame::Audio,
    sample: u64,
}

impl OpusSource {
    /// Samples per 20 ms packet at 48 kHz.
    pub const FRAME_SAMPLES: usize = 960;

    /// A stereo 48 kHz encoder.
    pub fn new() -> Result<Self, TestSrcError> {
        ffmpeg::init()?;
        let opus = ffmpeg::encoder::find_by_name("libopus")
            .ok_or(TestSrcError::EncoderMissing("libopus"))?;
        let mut ctx = codec::context::Context::new_with_codec(opus);
        ctx.set_time_base(Rational(1, 48_000));
        let mut enc = ctx.encoder().audio()?;
        enc.set_rate(48_000);
        enc.set_channel_layout(ChannelLayout::STEREO);
        enc.set_channels(2);
        enc.set_format(Sample::I16(sample::Type::Packed));
        enc.set_bit_rate(32_000);
        let mut opts = Dictionary::new();
        opts.set("frame_duration", "20");
        opts.set("application", "voip");
        let encoder = enc.open_with(opts)?;
        let mut frame = frame::Audio::new(
            Sample::I16(sample::Type::Packed),
            Self::FRAME_SAMPLES,
            ChannelLayout::STEREO,
        );
        frame.set_rate(48_000);
        Ok(Self {
            encoder,
            frame,
            sample: 0,
        })
    }

    /// Encodes the next 20 ms; returns the Opus packets produced (the encoder may lag).
    pub fn encode_next(&mut self) -> Result<Vec<Vec<u8>>, TestSrcError> {
        let data = self.frame.data_mut(0);
        for i in 0..Self::FRAME_SAMPLES {
            let t = (self.sample + i as u64) as f64 / 48_000.0;
            let v = ((t * 440.0 * std::f64::consts::TAU).sin() * 6000.0) as i16;
            let b = v.to_le_bytes();
            data[i * 4..i * 4 + 4].copy_from_slice(&[b[0], b[1], b[0], b[1]]);
        }
        self.frame.set_pts(Some(self.sample as i64));
        self.sample += Self::FRAME_SAMPLES as u64;
        self.encoder.send_frame(&self.frame)?;
        let mut out = Vec::new();
        let mut packet = ffmpeg::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            if let Some(data) = packet.data() {
                out.push(data.to_vec());
            }
        }
        Ok(out)
    }
}

/// RTP packetizer for VP8 (RFC 7741, minimal descriptor), H.264 (RFC 6184, single NAL unit
/// and FU-A packets) and Opus (one frame per packet).
#[derive(Debug, Clone)]
pub struct Packetizer {
    /// Payload type.
    pub payload_type: u8,
    /// SSRC.
    pub ssrc: u32,
    /// Next sequence number.
    pub seq: u16,
    codec: Codec,
}

impl Packetizer {
    /// VP8 packetizer.
    pub fn vp8(payload_type: u8, ssrc: u32, first_seq: u16) -> Self {
        Self {
            payload_type,
            ssrc,
            seq: first_seq,
            codec: Codec::Vp8,
        }
    }

    /// H.264 packetizer.
    pub fn h264(payload_type: u8, ssrc: u32, first_seq: u16) -> Self {
        Self {
            payload_type,
            ssrc,
            seq: first_seq,
            codec: Codec::H264,
        }
    }

    /// Opus packetizer.
    pub fn opus(payload_type: u8, ssrc: u32, first_seq: u16) -> Self {
        Self {
            payload_type,
            ssrc,
            seq: first_seq,
            codec: Codec::Opus,
        }
    }

    /// Packets of one frame with RTP timestamp `ts`, at most `mtu` payload bytes each.
    pub fn packetize(&mut self, frame: &[u8], ts: u32, mtu: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        match self.codec {
            Codec::Opus => {
                out.push(build_rtp(
                    self.payload_type,
                    true,
                    self.seq,
                    ts,
                    self.ssrc,
                    frame,
                ));
                self.seq = self.seq.wrapping_add(1);
                return out;
            }
            Codec::H264 => {
                let mut payloads = Vec::new();
                for nal in annexb_nals(frame) {
                    if nal.is_empty() {
                        continue;
                    }
                    if nal.len() <= mtu {
                        payloads.push(nal.to_vec());
                        continue;
                    }
                    let (header, body) = (nal[0], &nal[1..]);
                    let chunks: Vec<&[u8]> = body.chunks(mtu.max(3) - 2).collect();
                    for (i, chunk) in chunks.iter().enumerate() {
                        let mut fu = vec![(header & 0xE0) | 28, header & 0x1F];
                        if i == 0 {
                            fu[1] |= 0x80;
                        }
                        if i + 1 == chunks.len() {
                            fu[1] |= 0x40;
                        }
                        fu.extend_from_slice(chunk);
                        payloads.push(fu);
                    }
                }
                let n = payloads.len();
                for (i, p) in payloads.into_iter().enumerate() {
                    out.push(build_rtp(
                        self.payload_type,
                        i + 1 == n,
                        self.seq,
                        ts,
                        self.ssrc,
                        &p,
                    ));
                    self.seq = self.seq.wrapping_add(1);
                }
                return out;
            }
            Codec::Vp8 => {}
        }
        let chunks: Vec<&[u8]> = frame.chunks(mtu.max(2) - 1).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let mut payload = Vec::with_capacity(chunk.len() + 1);
            payload.push(if i == 0 { 0x10 } else { 0x00 });
            payload.extend_from_slice(chunk);
            out.push(build_rtp(
                self.payload_type,
                i + 1 == chunks.len(),
                self.seq,
                ts,
                self.ssrc,
                &payload,
            ));
            self.seq = self.seq.wrapping_add(1);
        }
        out
    }
}

/// What to record synthetically into one connection segment.
#[derive(Debug, Clone)]
pub struct SegmentSpec {
    /// Connection segment number.
    pub segment: u32,
    /// Participant id of the publisher.
    pub participant_id: String,
    /// Capture time of the first frame, µs since the Unix epoch.
    pub start_micros: i64,
    /// Length of the segment, µs.
    pub duration_micros: i64,
    /// Capture times at which a keyframe is forced (besides the first frame).
    pub keyframes_at: Vec<i64>,
    /// Network delay added to every packet, µs.
    pub delay_micros: i64,
    /// Whether to journal RTCP sender reports (one per second per track).
    pub sender_reports: bool,
    /// Frame size.
    pub width: u32,
    /// Frame size.
    pub height: u32,
    /// Frames per second.
    pub fps: u32,
    /// Target video bit rate.
    pub video_bit_rate: usize,
    /// Chroma noise, so the encoder uses the whole bit rate.
    pub noise: bool,
    /// Video codec: VP8 (default) or H.264.
    pub video_codec: Codec,
}

impl SegmentSpec {
    /// A 320×240, 30 fps segment with sender reports and 5 ms delay.
    pub fn new(segment: u32, start_micros: i64, duration_micros: i64) -> Self {
        Self {
            segment,
            participant_id: "business".into(),
            start_micros,
            duration_micros,
            keyframes_at: Vec::new(),
            delay_micros: 5_000,
            sender_reports: true,
            width: 320,
            height: 240,
            fps: 30,
            video_bit_rate: 300_000,
            noise: false,
            video_codec: Codec::Vp8,
        }
    }
}

/// One packet event of a synthetic segment, in arrival order.
#[derive(Debug, Clone)]
pub enum Event {
    /// An RTP packet of the video (`true`) or audio track.
    Rtp {
        /// Video or audio.
        video: bool,
        /// Arrival time, µs.
        arrival_micros: i64,
        /// Packet bytes.
        packet: Vec<u8>,
    },
    /// A sender report.
    SenderReport {
        /// Video or audio.
        video: bool,
        /// Arrival time, µs.
        arrival_micros: i64,
        /// NTP time.
        ntp: u64,
        /// RTP time.
        rtp: u32,
    },
}

impl Event {
    /// Arrival time.
    pub fn arrival_micros(&self) -> i64 {
        match self {
            Event::Rtp { arrival_micros, .. } | Event::SenderReport { arrival_micros, .. } => {
                *arrival_micros
            }
        }
    }
}

/// SSRC of the synthetic video track of `segment`.
pub fn video_ssrc(segment: u32) -> u32 {
    0x1000_0000 + segment
}

/// SSRC of the synthetic audio track of `segment`.
pub fn audio_ssrc(segment: u32) -> u32 {
    0x2000_0000 + segment
}

/// Generates a segment's packets lazily in arrival order, encoding as it goes.
pub struct SegmentGenerator {
    spec: SegmentSpec,
    video: VideoSource,
    audio: OpusSource,
    vpack: Packetizer,
    apack: Packetizer,
    video_ts0: u32,
    audio_ts0: u32,
    next_video: u64,
    next_audio: u64,
    next_sr_micros: i64,
    forced: Vec<i64>,
    queue: std::collections::VecDeque<Event>,
}

impl SegmentGenerator {
    /// Prepares the encoders. RTP timestamps start near the 32-bit wrap so unwrapping is
    /// exercised in every test.
    pub fn new(spec: SegmentSpec) -> Result<Self, TestSrcError> {
        let mut video = VideoSource::with_codec(
            spec.video_codec,
            spec.width,
            spec.height,
            spec.video_bit_rate,
        )?;
        video.set_noise(spec.noise);
        let audio = OpusSource::new()?;
        let mut forced = spec.keyframes_at.clone();
        forced.sort_unstable();
        forced.reverse();
        Ok(Self {
            vpack: if spec.video_codec == Codec::H264 {
                Packetizer::h264(102, video_ssrc(spec.segment), 65_500)
            } else {
                Packetizer::vp8(96, video_ssrc(spec.segment), 65_500)
            },
            apack: Packetizer::opus(111, audio_ssrc(spec.segment), 100),
            video_ts0: u32::MAX - 90_000 * 2,
            audio_ts0: 1234,
            next_sr_micros: spec.start_micros,
            spec,
            video,
            audio,
            next_video: 0,
            next_audio: 0,
            forced,
            queue: Default::default(),
        })
    }

    /// The spec.
    pub fn spec(&self) -> &SegmentSpec {
        &self.spec
    }

    fn video_capture(&self, n: u64) -> i64 {
        self.spec.start_micros + (n as i64 * 1_000_000) / self.spec.fps as i64
    }

    fn audio_capture(&self, n: u64) -> i64 {
        self.spec.start_micros + n as i64 * 20_000
    }

    /// The next event, or `None` at the end of the segment.
    pub fn next_event(&mut self) -> Result<Option<Event>, TestSrcError> {
        loop {
            if let Some(e) = self.queue.pop_front() {
                return Ok(Some(e));
            }
            let end = self.spec.start_micros + self.spec.duration_micros;
            let tv = self.video_capture(self.next_video);
            let ta = self.audio_capture(self.next_audio);
            let ts = self.next_sr_micros;
            let t = tv.min(ta).min(if self.spec.sender_reports {
                ts
            } else {
                i64::MAX
            });
            if t >= end {
                return Ok(None);
            }
            let arrival = t + self.spec.delay_micros;
            if self.spec.sender_reports && t == ts {
                self.next_sr_micros += 1_000_000;
                let off = t - self.spec.start_micros;
                let vrtp = self.video_ts0.wrapping_add((off * 90 / 1000) as u32);
                let artp = self.audio_ts0.wrapping_add((off * 48 / 1000) as u32);
                let ntp = unix_micros_to_ntp(t);
                self.queue.push_back(Event::SenderReport {
                    video: true,
                    arrival_micros: arrival,
                    ntp,
                    rtp: vrtp,
                });
                self.queue.push_back(Event::SenderReport {
                    video: false,
                    arrival_micros: arrival,
                    ntp,
                    rtp: artp,
                });
            } else if t == tv {
                let mut key = self.next_video == 0;
                while self.forced.last().is_some_and(|&k| k <= tv) {
                    self.forced.pop();
                    key = true;
                }
                let rtp_ts = self
                    .video_ts0
                    .wrapping_add(((tv - self.spec.start_micros) * 90 / 1000) as u32);
                for (data, _) in self.video.encode(tv, key)? {
                    for packet in self.vpack.packetize(&data, rtp_ts, 1100) {
                        self.queue.push_back(Event::Rtp {
                            video: true,
                            arrival_micros: arrival,
                            packet,
                        });
                    }
                }
                self.next_video += 1;
            } else {
                let rtp_ts = self.audio_ts0.wrapping_add(self.next_audio as u32 * 960);
                for data in self.audio.encode_next()? {
                    for packet in self.apack.packetize(&data, rtp_ts, 1200) {
                        self.queue.push_back(Event::Rtp {
                            video: false,
                            arrival_micros: arrival,
                            packet,
                        });
                    }
                }
                self.next_audio += 1;
            }
        }
    }

    /// Journal headers for this segment's two tracks.
    pub fn metas(&self) -> (TrackMeta, TrackMeta) {
        let s = &self.spec;
        (
            TrackMeta::new(
                format!("video{}", s.segment),
                &s.participant_id,
                TrackKind::Video,
                if s.video_codec == Codec::H264 {
                    "video/H264"
                } else {
                    "video/VP8"
                },
                90_000,
                video_ssrc(s.segment),
                s.start_micros,
            ),
            TrackMeta::new(
                format!("audio{}", s.segment),
                &s.participant_id,
                TrackKind::Audio,
                "audio/opus",
                48_000,
                audio_ssrc(s.segment),
                s.start_micros,
            ),
        )
    }
}

/// Journal writers for a synthetic segment, fed by [`SegmentGenerator`] events.
pub struct SegmentJournals {
    /// Video journal.
    pub video: JournalWriter,
    /// Audio journal.
    pub audio: JournalWriter,
}

impl SegmentJournals {
    /// Creates both journals of the generator's segment under `<recordings_dir>/<inspection>`.
    pub fn create(
        recordings_dir: &Path,
        inspection: &str,
        g: &SegmentGenerator,
    ) -> Result<Self, TestSrcError> {
        let (vm, am) = g.metas();
        let seg = g.spec().segment;
        Ok(Self {
            video: JournalWriter::create(recordings_dir, inspection, seg, vm)?,
            audio: JournalWriter::create(recordings_dir, inspection, seg, am)?,
        })
    }

    /// Appends one event to its journal.
    pub fn append(&mut self, e: &Event) -> Result<(), TestSrcError> {
        match e {
            Event::Rtp {
                video,
                arrival_micros,
                packet,
            } => {
                let w = if *video {
                    &mut self.video
                } else {
                    &mut self.audio
                };
                w.append_rtp(*arrival_micros, packet)?;
            }
            Event::SenderReport {
                video,
                arrival_micros,
                ntp,
                rtp,
            } => {
                let w = if *video {
                    &mut self.video
                } else {
                    &mut self.audio
                };
                w.append_sender_report(*arrival_micros, *ntp, *rtp)?;
            }
        }
        Ok(())
    }

    /// Closes (fsyncs) both journals.
    pub fn close(self) -> Result<(), TestSrcError> {
        self.video.close()?;
        self.audio.close()?;
        Ok(())
    }
}

/// Records a whole synthetic segment into journals as fast as it can be encoded.
pub fn write_segment(
    recordings_dir: &Path,
    inspection: &str,
    spec: SegmentSpec,
) -> Result<(), TestSrcError> {
    let mut g = SegmentGenerator::new(spec)?;
    let mut j = SegmentJournals::create(recordings_dir, inspection, &g)?;
    while let Some(e) = g.next_event()? {
        j.append(&e)?;
    }
    j.close()
}

/// Decodes the picture shown at `at_ms` in a recording (the last frame starting at or before
/// it) and returns its presentation time in ms with the frame.
pub fn frame_at(path: &Path, at_ms: i64) -> Result<Option<(i64, frame::Video)>, TestSrcError> {
    ffmpeg::init()?;
    let mut input = ffmpeg::format::input(path)?;
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .ok_or(ffmpeg::Error::StreamNotFound)?;
    let index = stream.index();
    let tb = stream.time_base();
    let mut decoder = codec::context::Context::from_parameters(stream.parameters())?
        .decoder()
        .video()?;
    // Seek (in AV_TIME_BASE µs) to the keyframe at or before the target.
    let target_us = at_ms * 1000;
    input.seek(target_us, ..target_us)?;
    let to_ms = |pts: i64| pts * 1000 * tb.numerator() as i64 / tb.denominator() as i64;
    let mut best: Option<(i64, frame::Video)> = None;
    let mut decoded = frame::Video::empty();
    let mut done = false;
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        decoder.send_packet(&packet)?;
        while decoder.receive_frame(&mut decoded).is_ok() {
            let pts = to_ms(decoded.timestamp().or(decoded.pts()).unwrap_or(0));
            if pts <= at_ms {
                best = Some((pts, decoded.clone()));
            } else {
                done = true;
            }
        }
        if done {
            break;
        }
    }
    if !done {
        decoder.send_eof()?;
        while decoder.receive_frame(&mut decoded).is_ok() {
            let pts = to_ms(decoded.timestamp().or(decoded.pts()).unwrap_or(0));
            if pts <= at_ms {
                best = Some((pts, decoded.clone()));
            }
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barcode_survives_vp8() {
        let mut src = Vp8Source::new(320, 240, 300_000).expect("encoder");
        let mut dec = codec::context::Context::new_with_codec(
            ffmpeg::decoder::find(codec::Id::VP8).expect("vp8 decoder"),
        )
        .decoder()
        .video()
        .expect("decoder");
        let base = 1_700_000_000_000_000i64;
        for i in 0..10 {
            let t = base + i * 33_333;
            for (data, _) in src.encode(t, i == 0).expect("encode") {
                dec.send_packet(&ffmpeg::Packet::copy(&data)).expect("send");
                let mut f = frame::Video::empty();
                while dec.receive_frame(&mut f).is_ok() {
                    assert_eq!(read_barcode(&f, base / 1000), Some(t / 1000));
                }
            }
        }
    }
}
