//! Finalization end to end: synthetic VP8 + Opus journals → one WebM checked by the real
//! ffprobe, chapters decoded back to the picture on screen at each mark, reconnect gaps,
//! torn journals and a recorder killed with SIGKILL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use media_recorder::chapters::{Mark, MarkLog};
use media_recorder::finalize::{
    finalize_inspection, read_manifest, sha256_file, Manifest, VTT_FILE,
};
use media_recorder::journal::{list_journals, JournalReader};
use media_recorder::recover::seal_all;
use media_recorder::testsrc::{frame_at, read_barcode, write_segment, SegmentSpec};
use serde_json::Value;

const T0: i64 = 1_790_000_000_000_000;

fn mark(i: usize, at_micros: i64) -> Mark {
    Mark {
        item_id: format!("item-{i}"),
        title: format!("{i}. Are the fire exits clear?"),
        result: if i.is_multiple_of(2) {
            "violation".into()
        } else {
            "compliant".into()
        },
        at_micros,
    }
}

fn ffprobe(path: &Path) -> Value {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_chapters",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
        ])
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

fn secs(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a number: {v}"))
}

/// Checks the file with ffprobe and returns (duration s, chapter starts s, chapter titles).
fn probe_recording(dir: &Path, m: &Manifest) -> (f64, Vec<f64>, Vec<String>) {
    probe_recording_as(dir, m, ["vp8", "opus"], "matroska,webm")
}

fn probe_recording_as(
    dir: &Path,
    m: &Manifest,
    want_codecs: [&str; 2],
    format: &str,
) -> (f64, Vec<f64>, Vec<String>) {
    let path = dir.join(&m.file);
    let p = ffprobe(&path);
    let streams = p["streams"].as_array().expect("streams");
    // MP4 stores chapters in an extra text track; only audio and video count here.
    let codecs: Vec<&str> = streams
        .iter()
        .filter(|s| matches!(s["codec_type"].as_str(), Some("video" | "audio")))
        .map(|s| s["codec_name"].as_str().expect("codec"))
        .collect();
    assert_eq!(codecs, want_codecs);
    assert_eq!(p["format"]["format_name"].as_str(), Some(format));
    let duration = secs(&p["format"]["duration"]);
    let chapters = p["chapters"].as_array().expect("chapters");
    let starts = chapters.iter().map(|c| secs(&c["start_time"])).collect();
    let titles = chapters
        .iter()
        .map(|c| c["tags"]["title"].as_str().expect("title").to_owned())
        .collect();
    // The manifest's hash is the file's.
    assert_eq!(sha256_file(&path).expect("hash").0, m.sha256);
    (duration, starts, titles)
}

/// The picture at each chapter start carries a capture time within 100 ms of its mark.
fn assert_chapter_pictures(dir: &Path, m: &Manifest, marks: &[Mark]) {
    let path = dir.join(&m.file);
    for c in &m.chapters {
        let mark = marks
            .iter()
            .find(|k| k.item_id == c.item_id)
            .expect("chapter has a mark");
        let (pts, frame) = frame_at(&path, c.start_ms)
            .expect("decode")
            .expect("a frame at the chapter");
        let captured_ms = read_barcode(&frame, mark.at_micros / 1000).expect("barcode readable");
        let error = captured_ms - mark.at_micros / 1000;
        assert!(
            error.abs() <= 100,
            "chapter {} at {} ms (frame {pts} ms): capture {captured_ms} vs mark {} → {error} ms",
            c.item_id,
            c.start_ms,
            mark.at_micros / 1000
        );
    }
}

/// The Cues (seek index) precede the first Cluster, so a browser seeks without a tail read.
fn assert_cues_up_front(path: &Path) {
    let bytes = std::fs::read(path).expect("read");
    let find = |id: &[u8]| bytes.windows(4).position(|w| w == id);
    let cues = find(&[0x1C, 0x53, 0xBB, 0x6B]).expect("Cues element present");
    let cluster = find(&[0x1F, 0x43, 0xB6, 0x75]).expect("Cluster element present");
    assert!(cues < cluster, "cues at {cues}, first cluster at {cluster}");
}

/// Audio and video were captured together at each segment start: their first packets after
/// each start (`starts`, seconds) are within 25 ms of each other in the file (the silence
/// frames that fill the gap before a segment, 3 bytes each, are not the captured audio).
fn assert_av_sync(path: &Path, starts: &[f64]) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "packet=stream_index,pts_time,size",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(out.status.success());
    let packets: Vec<(usize, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            let p = (
                it.next()?.trim().parse().ok()?,
                it.next()?.trim().parse().ok()?,
            );
            let size: usize = it.next()?.trim().parse().ok()?;
            (size != media_recorder::opus::SILENCE.len()).then_some(p)
        })
        .collect();
    for &start in starts {
        let first = |stream: usize| {
            packets
                .iter()
                .filter(|(s, t)| *s == stream && *t >= start - 0.5)
                .map(|p| p.1)
                .fold(f64::INFINITY, f64::min)
        };
        let (v, a) = (first(0), first(1));
        assert!(
            (v - a).abs() < 0.025,
            "segment at {start}s: video starts {v}, audio {a}"
        );
    }
}

#[test]
fn one_segment_has_chapters_at_the_marked_pictures() {
    let root = tempfile::tempdir().expect("tempdir");
    let inspection = "0191d2c4-0000-7000-8000-000000000001";
    let marks: Vec<Mark> = [2_000_000, 5_500_000, 9_250_000, 11_900_000]
        .iter()
        .enumerate()
        .map(|(i, off)| mark(i + 1, T0 + off))
        .collect();
    let mut spec = SegmentSpec::new(0, T0, 12_000_000);
    spec.keyframes_at = marks.iter().map(|m| m.at_micros).collect();
    write_segment(root.path(), inspection, spec).expect("journals");
    let dir = root.path().join(inspection);

    let m = finalize_inspection(&dir, &marks).expect("finalize");
    let (duration, starts, titles) = probe_recording(&dir, &m);
    assert!((duration - 12.0).abs() < 0.2, "duration {duration}");
    assert_eq!(starts.len(), marks.len());
    for (s, mk) in starts.iter().zip(&marks) {
        let want = (mk.at_micros - m.epoch_micros) as f64 / 1e6;
        assert!((s - want).abs() < 0.002, "chapter at {s}, mark at {want}");
    }
    // The title as given: the result code is not appended (the server's titles say it).
    assert_eq!(titles[0], "1. Are the fire exits clear?");
    assert_eq!(titles[1], "2. Are the fire exits clear?");
    assert_chapter_pictures(&dir, &m, &marks);
    assert_cues_up_front(&dir.join(&m.file));
    assert_av_sync(&dir.join(&m.file), &[0.0]);

    // Manifest and WebVTT beside the file.
    assert_eq!(read_manifest(&dir).expect("read").as_ref(), Some(&m));
    assert_eq!(m.tracks.len(), 2);
    assert_eq!(
        (m.tracks[0].width, m.tracks[0].height),
        (Some(320), Some(240))
    );
    assert!(
        m.tracks[0].frames >= 355,
        "video frames {}",
        m.tracks[0].frames
    );
    assert!(
        m.tracks[1].frames >= 595,
        "audio frames {}",
        m.tracks[1].frames
    );
    assert_eq!(m.tracks[0].dropped_frames, 0);
    let vtt = std::fs::read_to_string(dir.join(VTT_FILE)).expect("vtt");
    assert!(vtt.starts_with("WEBVTT\n\n1\n00:00:01.99"), "{vtt}");
    assert_eq!(vtt.matches(" --> ").count(), marks.len());
}

#[test]
fn reconnects_sit_on_one_timeline_with_the_gap() {
    let root = tempfile::tempdir().expect("tempdir");
    let inspection = "0191d2c4-0000-7000-8000-000000000002";
    // Segment 0: 0–4 s; the phone drops; segment 1: 9–13 s (5 s gap). No sender reports in
    // the second segment, as with a browser that has not sent one yet.
    let marks = vec![
        mark(1, T0 + 1_500_000),
        mark(2, T0 + 10_000_000),
        mark(3, T0 + 12_500_000),
    ];
    let mut s0 = SegmentSpec::new(0, T0, 4_000_000);
    s0.keyframes_at = vec![marks[0].at_micros];
    let mut s1 = SegmentSpec::new(1, T0 + 9_000_000, 4_000_000);
    s1.keyframes_at = vec![marks[1].at_micros, marks[2].at_micros];
    s1.sender_reports = false;
    s1.delay_micros = 40_000;
    write_segment(root.path(), inspection, s0).expect("segment 0");
    write_segment(root.path(), inspection, s1).expect("segment 1");
    let dir = root.path().join(inspection);
    assert_eq!(list_journals(&dir).expect("list").len(), 4);

    let m = finalize_inspection(&dir, &marks).expect("finalize");
    let (duration, starts, _) = probe_recording(&dir, &m);
    assert!(
        (duration - 13.0).abs() < 0.2,
        "duration {duration} must include the 5 s gap"
    );
    assert_eq!(starts.len(), 3);
    assert_eq!(m.tracks[0].segments, 2);
    assert_eq!(m.tracks[1].segments, 2);
    assert_av_sync(&dir.join(&m.file), &[0.0, 9.0]);
    assert_chapter_pictures(&dir, &m, &marks);
}

#[test]
fn torn_journal_tail_is_cut_not_misread() {
    let root = tempfile::tempdir().expect("tempdir");
    let inspection = "0191d2c4-0000-7000-8000-000000000003";
    let marks = vec![mark(1, T0 + 1_000_000)];
    let mut spec = SegmentSpec::new(0, T0, 3_000_000);
    spec.keyframes_at = vec![marks[0].at_micros];
    write_segment(root.path(), inspection, spec).expect("journals");
    let dir = root.path().join(inspection);
    for path in list_journals(&dir).expect("list") {
        // Cut the last record in half and append garbage, as a crash mid-write might.
        let mut bytes = std::fs::read(&path).expect("read");
        bytes.truncate(bytes.len() - 7);
        bytes.extend_from_slice(&[0xFF; 5]);
        std::fs::write(&path, bytes).expect("write");
    }
    let m = finalize_inspection(&dir, &marks).expect("finalize");
    assert_eq!(m.torn_journals, 2);
    let (duration, starts, _) = probe_recording(&dir, &m);
    assert!((duration - 3.0).abs() < 0.2, "duration {duration}");
    assert_eq!(starts.len(), 1);
    assert_chapter_pictures(&dir, &m, &marks);
}

#[test]
fn h264_goes_to_a_faststart_mp4() {
    let root = tempfile::tempdir().expect("tempdir");
    let inspection = "0191d2c4-0000-7000-8000-000000000005";
    let marks = vec![mark(1, T0 + 1_200_000), mark(2, T0 + 3_300_000)];
    let mut spec = SegmentSpec::new(0, T0, 5_000_000);
    spec.video_codec = media_recorder::depacketize::Codec::H264;
    spec.width = 640;
    spec.height = 360;
    spec.video_bit_rate = 1_500_000;
    spec.keyframes_at = marks.iter().map(|m| m.at_micros).collect();
    write_segment(root.path(), inspection, spec).expect("journals");
    let dir = root.path().join(inspection);
    let m = finalize_inspection(&dir, &marks).expect("finalize");
    assert_eq!(m.file, "recording.mp4");
    let (duration, starts, _) =
        probe_recording_as(&dir, &m, ["h264", "opus"], "mov,mp4,m4a,3gp,3g2,mj2");
    assert!((duration - 5.0).abs() < 0.2, "duration {duration}");
    // MP4 keeps chapters in a QuickTime chapter track whose first sample FFmpeg reads back at
    // 0; later chapters are exact. The manifest and WebVTT carry the exact first start.
    assert_eq!(starts.len(), 2);
    let want = (marks[1].at_micros - m.epoch_micros) as f64 / 1e6;
    assert!(
        (starts[1] - want).abs() < 0.002,
        "chapter at {}, mark at {want}",
        starts[1]
    );
    assert_eq!(
        m.chapters[0].start_ms,
        (marks[0].at_micros - m.epoch_micros) / 1000
    );
    assert_eq!(
        (m.tracks[0].width, m.tracks[0].height),
        (Some(640), Some(360))
    );
    assert_chapter_pictures(&dir, &m, &marks);
    // Faststart: the index (moov) precedes the media (mdat).
    let bytes = std::fs::read(dir.join(&m.file)).expect("read");
    let moov = bytes.windows(4).position(|w| w == b"moov").expect("moov");
    let mdat = bytes.windows(4).position(|w| w == b"mdat").expect("mdat");
    assert!(moov < mdat, "moov at {moov}, mdat at {mdat}");
}

fn child_binary() -> PathBuf {
    // Examples are built next to the test binaries' directory (target/<profile>/examples).
    let exe = std::env::current_exe().expect("test exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let path = dir.join("examples").join("journal_child");
    assert!(
        path.exists(),
        "{} missing: cargo test builds examples",
        path.display()
    );
    path
}

#[test]
fn killed_recorder_is_recovered_at_start() {
    let root = tempfile::tempdir().expect("tempdir");
    let inspection = "0191d2c4-0000-7000-8000-000000000004";
    let mut child = Command::new(child_binary())
        .arg(root.path())
        .arg(inspection)
        .args(["30", "800", "2200", "3000"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn child");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let started: i64 = lines
        .next()
        .expect("a line")
        .expect("utf-8")
        .strip_prefix("started ")
        .expect("started line")
        .parse()
        .expect("micros");
    // Let it record ~4 s, including all three marks, then kill it with SIGKILL.
    let mut marks_seen = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while marks_seen < 3 && Instant::now() < deadline {
        let line = lines.next().expect("child output").expect("utf-8");
        if line.starts_with("mark ") {
            marks_seen += 1;
        }
    }
    assert_eq!(marks_seen, 3);
    // Journals are flushed at least every second: 1.6 s after the last mark its picture is
    // on disk, so every chapter can be checked against its picture below.
    std::thread::sleep(Duration::from_millis(1600));
    let killed_at = now_micros();
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("wait");
    assert!(!status.success());

    // Server start: the unfinished recording is sealed (a torn tail cut) and nothing is
    // published; the inspection may still be live.
    let unfinished = seal_all(root.path()).expect("seal");
    assert_eq!(unfinished.len(), 1);
    let dir = &unfinished[0].dir;
    assert_eq!(unfinished[0].journals, 2);
    assert!(
        read_manifest(dir).expect("read").is_none(),
        "sealing finishes nothing"
    );
    for path in list_journals(dir).expect("list") {
        let mut r = JournalReader::open(&path).expect("open");
        while r.next_record().expect("record").is_some() {}
        assert!(
            !r.torn_tail(),
            "{} reads cleanly after sealing",
            path.display()
        );
    }
    // The inspection ended: it is finished from the journals on disk and the mark log.
    let marks = media_recorder::chapters::read_marks(dir).expect("marks");
    let m = &finalize_inspection(dir, &marks).expect("finalized");
    assert_eq!(
        m.torn_journals,
        unfinished[0].cut.len(),
        "the journals cut at sealing count as torn"
    );
    let recorded_ms = (killed_at - started) / 1000;
    assert!(
        m.duration_ms >= recorded_ms - 1500,
        "recovered {} ms of {recorded_ms} ms",
        m.duration_ms
    );
    assert!(
        m.duration_ms <= recorded_ms + 100,
        "recovered {} ms of {recorded_ms} ms",
        m.duration_ms
    );
    let marks = media_recorder::chapters::read_marks(dir).expect("marks");
    assert_eq!(marks.len(), 3);
    assert_eq!(m.chapters.len(), 3);
    let (duration, starts, _) = probe_recording(dir, m);
    assert_eq!(starts.len(), 3);
    assert!((duration * 1000.0 - m.duration_ms as f64).abs() < 100.0);
    assert_chapter_pictures(dir, m, &marks);
    // Finished inspections are not sealed or listed again.
    assert!(seal_all(root.path()).expect("seal").is_empty());
}

#[test]
fn mark_log_is_what_recovery_reads() {
    let root = tempfile::tempdir().expect("tempdir");
    let dir = root.path().join("insp");
    let mut log = MarkLog::open(&dir).expect("open");
    let m = mark(1, T0);
    log.append(&m).expect("append");
    assert_eq!(
        media_recorder::chapters::read_marks(&dir).expect("read"),
        vec![m]
    );
    // No journals: nothing to seal, nothing reported.
    assert!(seal_all(root.path()).expect("seal").is_empty());
}

fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros() as i64
}

#[test]
fn inspector_voice_is_a_second_audio_stream() {
    let root = tempfile::tempdir().expect("tempdir");
    let inspection = "0191d2c4-0000-7000-8000-000000000007";
    write_segment(root.path(), inspection, SegmentSpec::new(0, T0, 4_000_000)).expect("business");
    let mut voice = SegmentSpec::new(1, T0 + 500_000, 3_000_000);
    voice.participant_id = "inspector".into();
    write_segment(root.path(), inspection, voice).expect("inspector");
    let dir = root.path().join(inspection);
    // The inspector publishes no camera: drop the synthetic video journal of that connection.
    std::fs::remove_file(dir.join("journal").join("000001-video1.rtpj")).expect("remove");

    let m = finalize_inspection(&dir, &[]).expect("finalize");
    let kinds: Vec<(&str, &str)> = m
        .tracks
        .iter()
        .map(|t| (t.participant_id.as_str(), t.codec.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("business", "video/VP8"),
            ("business", "audio/opus"),
            ("inspector", "audio/opus")
        ]
    );
    let p = ffprobe(&dir.join(&m.file));
    let codecs: Vec<&str> = p["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .map(|s| s["codec_name"].as_str().expect("codec"))
        .collect();
    assert_eq!(codecs, ["vp8", "opus", "opus"]);
    assert!((secs(&p["format"]["duration"]) - 4.0).abs() < 0.2);
    let voice = &m.tracks[2];
    assert!(
        (voice.start_ms - 500).abs() <= 30 && (voice.end_ms - 3500).abs() <= 30,
        "{voice:?}"
    );
    assert!(p["chapters"].as_array().expect("chapters").is_empty());
}

/// A tmpfs of the test's own (the tests run as root), unmounted when dropped.
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(path: &Path, size: &str) -> SmallDisk {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mount a tmpfs (the tests run as root)");
        SmallDisk(path.to_owned())
    }

    /// Fills the filesystem with `name` until it is full.
    fn fill(&self, name: &str) {
        use std::io::Write;
        let mut f = std::fs::File::create(self.0.join(name)).expect("filler");
        let chunk = vec![0u8; 64 * 1024];
        loop {
            match f.write(&chunk) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "ENOSPC: {e}");
                    break;
                }
            }
        }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Issue 19, item 5: the recordings directory's disk fills up mid-segment and space comes
/// back 8 s later. Appends that cannot be stored fail (the writer logs them); nothing stored
/// is corrupted — the journal reads to its end without a torn record, holding exactly the
/// records whose append succeeded, those after the outage included — and the recording
/// finalizes with the gap and the pictures after it.
#[test]
fn a_full_disk_loses_the_outage_not_what_was_stored() {
    use media_recorder::journal::Record;
    use media_recorder::testsrc::{SegmentGenerator, SegmentJournals};
    let root = tempfile::tempdir().expect("tempdir");
    let disk = SmallDisk::mount(root.path(), "4m");
    let inspection = "0191d2c4-0000-7000-8000-0000000000d1";
    let full_from = T0 + 2_000_000;
    let back_at = T0 + 10_000_000;
    let mut spec = SegmentSpec::new(0, T0, 13_000_000);
    // A higher rate than a phone's at this size: the writer's 256 KiB buffer, which bridges
    // a short outage by itself, overflows well within the 8 s.
    spec.video_bit_rate = 800_000;
    spec.noise = true;
    spec.keyframes_at = vec![T0 + 500_000, back_at + 200_000];
    let mut g = SegmentGenerator::new(spec).expect("generator");
    let mut j = SegmentJournals::create(root.path(), inspection, &g).expect("journals");
    let (mut stored, mut refused) = ([0u64; 2], [0u64; 2]);
    let mut state = 0;
    while let Some(e) = g.next_event().expect("event") {
        if state == 0 && e.arrival_micros() >= full_from {
            disk.fill("filler");
            state = 1;
        } else if state == 1 && e.arrival_micros() >= back_at {
            std::fs::remove_file(root.path().join("filler")).expect("space returns");
            state = 2;
        }
        let video = match &e {
            media_recorder::testsrc::Event::Rtp { video, .. }
            | media_recorder::testsrc::Event::SenderReport { video, .. } => usize::from(*video),
        };
        match j.append(&e) {
            Ok(()) => stored[video] += 1,
            Err(_) => refused[video] += 1,
        }
    }
    j.close().expect("close once space is back");
    assert!(refused[1] > 0, "the full disk refused video records");
    let dir = root.path().join(inspection);
    for path in list_journals(&dir).expect("list") {
        let mut r = JournalReader::open(&path).expect("open");
        let video = usize::from(r.meta().kind == media_recorder::journal::TrackKind::Video);
        let mut n = 0u64;
        while let Some(rec) = r.next_record().expect("read") {
            assert!(matches!(
                rec,
                Record::Rtp { .. } | Record::SenderReport { .. }
            ));
            n += 1;
        }
        assert!(!r.torn_tail(), "{}: no torn record", path.display());
        assert_eq!(n, stored[video], "{}: every stored record", path.display());
    }
    let marks = vec![mark(1, T0 + 1_000_000), mark(2, back_at + 1_500_000)];
    let m = finalize_inspection(&dir, &marks).expect("finalize on the disk with space again");
    let (duration, _, _) = probe_recording(&dir, &m);
    assert!((duration - 13.0).abs() < 0.3, "duration {duration}");
    let file = dir.join(&m.file);
    for at_ms in [1_000, 11_500, 12_500] {
        let (_, f) = frame_at(&file, at_ms).expect("decode").expect("a picture");
        let captured = read_barcode(&f, T0 / 1000 + at_ms).expect("barcode");
        assert!(
            (captured - (T0 / 1000 + at_ms)).abs() <= 100,
            "the picture at {at_ms} ms was captured at {} ms",
            captured - T0 / 1000
        );
    }
    // The outage is a gap: 9 s in, the picture on screen is the last one stored before the
    // buffer overflowed, seconds earlier.
    let (_, f) = frame_at(&file, 9_000).expect("decode").expect("a picture");
    let captured = read_barcode(&f, T0 / 1000 + 9_000).expect("barcode") - T0 / 1000;
    assert!(captured < 8_000, "capture {captured} ms");
    println!(
        "full disk: video records stored {}, refused {}; audio stored {}, refused {}",
        stored[1], refused[1], stored[0], refused[0]
    );
}
