//! Clips and stills from a finished recording: synthetic VP8 + Opus (every frame carries its
//! capture time as a barcode) finalized with marks, then a clip around each mark checked by
//! the real ffprobe (duration, first frame a keyframe, no transcoding) and a still at each mark
//! whose picture is the mark's moment.

use std::path::Path;
use std::process::Command;

use media_recorder::chapters::Mark;
use media_recorder::extract::{cut_clip, still_at};
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
