//! Clips and stills from a finished recording: synthetic VP8 + Opus (every frame carries its
//! capture time as a barcode) finalized with marks, then a clip around each mark checked by
//! the real ffprobe (duration, first frame a keyframe, no transcoding) and a still at each mark
//! whose picture is the mark's moment.

use std::path::Path;
use std::process::Command;

use media_recorder::chapters::Mark;
use media_recorder::extract::{audio_track, cut_clip, still_at, ExtractError};
use media_recorder::finalize::finalize_inspection;
use media_recorder::testsrc::{read_barcode, write_segment, SegmentSpec};
use serde_json::Value;

const T0: i64 = 1_790_000_000_000_000;

fn ffprobe(args: &[&str], path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "ffprobe failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("ffprobe json")
}

fn num(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| v.as_f64())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Decodes a JPEG file with libavcodec and reads its barcode.
fn jpeg_barcode(bytes: &[u8], reference_ms: i64, dir: &Path) -> Option<i64> {
    use ffmpeg_next as ffmpeg;
    let path = dir.join("still.jpg");
    std::fs::write(&path, bytes).expect("write jpeg");
    let mut input = ffmpeg::format::input(&path).expect("open jpeg");
    let stream = input
        .streams()
        .best(ffmpeg::media::Type::Video)
        .expect("picture");
    let index = stream.index();
    let mut dec = ffmpeg::codec::context::Context::from_parameters(stream.parameters())
        .expect("params")
        .decoder()
        .video()
        .expect("decoder");
    let mut frame = ffmpeg::frame::Video::empty();
    for (s, p) in input.packets() {
        if s.index() == index {
            dec.send_packet(&p).expect("send");
        }
    }
    dec.send_eof().expect("eof");
    dec.receive_frame(&mut frame).ok()?;
    read_barcode(&frame, reference_ms)
}

#[test]
fn a_clip_and_a_still_for_every_mark() {
    let dir = tempfile::tempdir().expect("tmp");
    let rec = dir.path().join("recordings");
    let id = "9d0c3f3e-0000-4000-8000-00000000000a";
    let s = |x: f64| (x * 1e6) as i64;
    let marks_at = [s(6.5), s(12.3)];
    let mut spec = SegmentSpec::new(0, T0, s(20.0));
    // Keyframes every 4 s (a browser's periodic ones) and at every mark (the peer's request).
    spec.keyframes_at = vec![T0 + s(4.0), T0 + s(8.0), T0 + s(12.0), T0 + s(16.0)];
    spec.keyframes_at.extend(marks_at.iter().map(|m| T0 + m));
    write_segment(&rec, id, spec).expect("journal");
    let marks: Vec<Mark> = marks_at
        .iter()
        .enumerate()
        .map(|(i, m)| Mark {
            item_id: format!("q{i}"),
            title: format!("{i}. Q"),
            result: "violation".into(),
            at_micros: T0 + m,
        })
        .collect();
    let inspection = rec.join(id);
    let manifest = finalize_inspection(&inspection, &marks).expect("finalize");
    let recording = inspection.join(&manifest.file);
    let media_ms = |wall: i64| (wall - manifest.epoch_micros).div_euclid(1000);

    for (i, c) in manifest.chapters.iter().enumerate() {
        let mark = c.mark_at_micros;
        // A clip from 2 s before to 3 s after the mark: the keyframe at or before the start
        // is the periodic one 0.5 s (first mark) or 0.3 s (second) earlier.
        let (from, to) = (c.start_ms - 2000, c.start_ms + 3000);
        let expected_key = media_ms(T0 + [s(4.0), s(8.0)][i]);
        let out = dir.path().join(format!("clip{i}.webm"));
        let clip = cut_clip(&recording, from, to, &out).expect("clip");
        assert_eq!(clip.media_type, "video/webm");
        assert!(
            (clip.start_ms - expected_key).abs() <= 5,
            "clip {i} starts at {} ms, keyframe at {expected_key} ms",
            clip.start_ms
        );
        assert_eq!((clip.width, clip.height), (320, 240));
        let probe = ffprobe(&["-show_format", "-show_streams"], &out);
        let codecs: Vec<&str> = probe["streams"]
            .as_array()
            .expect("streams")
            .iter()
            .map(|s| s["codec_name"].as_str().expect("codec"))
            .collect();
        assert_eq!(codecs, ["vp8", "opus"], "remuxed, same codecs");
        let duration = num(&probe["format"]["duration"]);
        let want = (to - clip.start_ms) as f64 / 1000.0;
        assert!(
            (duration - want).abs() < 0.1,
            "clip {i}: ffprobe duration {duration} s, expected {want} s"
        );
        let first = ffprobe(
            &[
                "-select_streams",
                "v",
                "-show_frames",
                "-read_intervals",
                "%+#1",
                "-show_entries",
                "frame=key_frame,pts_time,best_effort_timestamp_time",
            ],
            &out,
        );
        let f0 = &first["frames"][0];
        assert_eq!(f0["key_frame"].as_i64(), Some(1), "first frame: {f0}");
        assert!(num(&f0["best_effort_timestamp_time"]).abs() < 0.01, "{f0}");

        // The still is the picture on screen at the mark.
        let still = still_at(&recording, c.start_ms).expect("still");
        assert_eq!((still.width, still.height), (320, 240));
        assert!(still.jpeg.starts_with(&[0xFF, 0xD8]), "a JPEG");
        let shown = jpeg_barcode(&still.jpeg, mark / 1000, dir.path()).expect("barcode in still");
        let error = shown - mark / 1000;
        assert!(
            error.abs() <= 100,
            "still {i}: picture captured at {shown} ms, mark at {} ms ({error} ms)",
            mark / 1000
        );
    }

    // A range past the end of the recording has nothing to show.
    let none = cut_clip(
        &recording,
        manifest.duration_ms + 5000,
        manifest.duration_ms + 9000,
        &dir.path().join("none.webm"),
    );
    assert!(none.is_err(), "{none:?}");
    assert!(!dir.path().join("none.webm").exists());
}

#[test]
fn the_inspectors_voice_is_continuous_in_the_recording_and_plays_alone_on_its_timeline() {
    let dir = tempfile::tempdir().expect("tmp");
    let rec = dir.path().join("recordings");
    let id = "9d0c3f3e-0000-4000-8000-00000000000b";
    let s = |x: f64| (x * 1e6) as i64;
    write_segment(&rec, id, SegmentSpec::new(0, T0, s(8.0))).expect("business");
    // The inspector speaks from 1 s to 3 s, drops out, and comes back from 5 s to 7 s.
    for (seg, from, to) in [(1, 1.0, 3.0), (2, 5.0, 7.0)] {
        let mut voice = SegmentSpec::new(seg, T0 + s(from), s(to - from));
        voice.participant_id = "inspector".into();
        write_segment(&rec, id, voice).expect("inspector");
        // The inspector publishes no camera.
        let video = rec
            .join(id)
            .join("journal")
            .join(format!("00000{seg}-video{seg}.rtpj"));
        std::fs::remove_file(video).expect("remove video journal");
    }
    let inspection = rec.join(id);
    let manifest = finalize_inspection(&inspection, &[]).expect("finalize");
    let recording = inspection.join(&manifest.file);
    let voice = manifest
        .tracks
        .iter()
        .find(|t| t.participant_id == "inspector")
        .expect("the inspector's stream");
    assert_eq!(voice.segments, 2, "{voice:?}");
    assert!((voice.start_ms - 1000).abs() < 100, "{voice:?}");
    // About 1 s before the voice and 2 s in the hole.
    assert!((voice.silence_ms - 3000).abs() <= 60, "{voice:?}");

    // In the recording: silence from media time 0 and across the hole, no hole of more than
    // a frame anywhere, so a browser's audio clock runs with the video's.
    let stream = |path: &Path, sel: &str| -> Vec<(f64, f64, u64)> {
        let p = ffprobe(
            &[
                "-select_streams",
                sel,
                "-show_entries",
                "packet=pts_time,duration_time,size",
            ],
            path,
        );
        p["packets"]
            .as_array()
            .expect("packets")
            .iter()
            .map(|p| {
                (
                    num(&p["pts_time"]),
                    num(&p["duration_time"]),
                    num(&p["size"]) as u64,
                )
            })
            .collect()
    };
    let continuous = |packets: &[(f64, f64, u64)], what: &str| {
        // At 0 (FFmpeg's own encoder starts at its pre-skip, a few ms before).
        assert!(
            packets[0].0 < 0.001 && packets[0].0 > -0.05,
            "{what} starts at {} s",
            packets[0].0
        );
        for w in packets.windows(2) {
            let hole = w[1].0 - (w[0].0 + w[0].1);
            assert!(hole < 0.021, "{what}: a {hole} s hole at {} s", w[0].0);
            assert!(
                w[0].1 <= 0.0201,
                "{what}: a {} s packet at {} s",
                w[0].1,
                w[0].0
            );
        }
    };
    let in_recording = stream(&recording, &voice.index.to_string());
    continuous(&in_recording, "the recording's voice stream");
    let silent = in_recording.iter().filter(|p| p.2 == 3).count() as i64;
    assert_eq!(silent * 20, voice.silence_ms);
    assert_eq!((in_recording.len() as i64 - silent) as u64, voice.frames);
    // The business's microphone started with the recording: nothing to fill.
    let mic = manifest
        .tracks
        .iter()
        .find(|t| t.participant_id == "business" && t.codec == "audio/opus")
        .expect("business microphone");
    assert!(mic.silence_ms <= 20, "{mic:?}");

    // Alone: the same packets, on the same timeline.
    let out = dir.path().join("voice.webm");
    let track = audio_track(&recording, voice.index, &out).expect("audio track");
    assert_eq!(track.media_type, "audio/webm");
    let probe = ffprobe(&["-show_streams"], &out);
    let streams = probe["streams"].as_array().expect("streams");
    assert_eq!(streams.len(), 1, "{probe}");
    assert_eq!(streams[0]["codec_name"].as_str(), Some("opus"));
    let alone = stream(&out, "a");
    assert_eq!(alone.len(), in_recording.len());
    for (a, r) in alone.iter().zip(&in_recording) {
        assert!(
            (a.0 - r.0).abs() < 0.0015 && a.2 == r.2,
            "{a:?} is not {r:?}"
        );
    }
    assert_eq!(track.silence_frames, 0, "the recording had no hole left");
    assert!(
        (track.end_ms - 7000).abs() < 100,
        "ends at {} ms",
        track.end_ms
    );
    // It decodes, silence included, without an error.
    let decoded = Command::new("ffmpeg")
        .args(["-v", "error", "-xerror", "-i"])
        .arg(&out)
        .args(["-f", "null", "-"])
        .output()
        .expect("ffmpeg runs");
    assert!(
        decoded.status.success() && decoded.stderr.is_empty(),
        "decoding: {}",
        String::from_utf8_lossy(&decoded.stderr)
    );

    // A recording with a hole (as finalized before holes were filled; here made by FFmpeg,
    // which drops 2–4 s): its track alone is filled.
    let holed = dir.path().join("holed.webm");
    let made = Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "sine=f=440:d=6",
            "-c:a",
            "libopus",
        ])
        .args(["-bsf:a", "noise=drop=between(pts\\,2000\\,4000)"])
        .arg(&holed)
        .output()
        .expect("ffmpeg runs");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let before = stream(&holed, "a");
    assert!(
        before.windows(2).any(|w| w[1].0 - w[0].0 > 1.5),
        "FFmpeg made no hole"
    );
    let filled_path = dir.path().join("filled.webm");
    let filled = audio_track(&holed, 0, &filled_path).expect("audio track of the holed file");
    assert!((95..=101).contains(&filled.silence_frames), "{filled:?}");
    assert_eq!(filled.packets as usize, before.len());
    continuous(&stream(&filled_path, "a"), "the filled track");

    // A video stream is not an audio track.
    let video = manifest
        .tracks
        .iter()
        .find(|t| t.codec.starts_with("video"))
        .expect("video")
        .index;
    assert!(matches!(
        audio_track(&recording, video, &dir.path().join("v.webm")),
        Err(ExtractError::NotAudio(_))
    ));
    assert!(matches!(
        audio_track(&recording, 9, &dir.path().join("v.webm")),
        Err(ExtractError::NotAudio(9))
    ));
}
