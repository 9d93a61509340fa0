//! Finalize benchmark: one hour of recorded VP8 + Opus (two connection segments of 30 min)
//! with 60 marks, finalized into one WebM; prints the median of several runs.
//!
//! Run: `cargo bench -p media-recorder --bench finalize` (env `FINALIZE_BENCH_MINUTES`,
//! `FINALIZE_BENCH_RUNS` and `FINALIZE_BENCH_KBPS` override the defaults 60, 5 and 1000).

use std::path::Path;
use std::time::Instant;

use media_recorder::chapters::Mark;
use media_recorder::depacketize::{build_rtp, parse_rtp};
use media_recorder::finalize::{finalize_inspection, MANIFEST_FILE};
use media_recorder::journal::JournalWriter;
use media_recorder::testsrc::{Event, SegmentGenerator, SegmentSpec};
use media_recorder::timecode::{ntp_to_unix_micros, unix_micros_to_ntp};

const T0: i64 = 1_790_000_000_000_000;
const CLIP_SECS: i64 = 60;

/// CPU time (user + system) of this process so far, all threads, in seconds; clock ticks
/// are 100 Hz on Linux. Under a loaded machine it varies far less than wall time.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (tick(11) + tick(12)) / 100.0
}

fn env(name: &str, default: i64) -> i64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Writes `minutes` of media per segment by repeating a one-minute encoded clip with shifted
/// sequence numbers, timestamps and arrival times (encoding an hour would take longer than
/// the benchmark itself).
fn write_segment(
    dir: &Path,
    inspection: &str,
    segment: u32,
    start: i64,
    minutes: i64,
    clip: &[Event],
    g: &SegmentGenerator,
) -> u64 {
    let (vm, am) = g.metas();
    let mut video = JournalWriter::create(dir, inspection, segment, vm).expect("video journal");
    let mut audio = JournalWriter::create(dir, inspection, segment, am).expect("audio journal");
    let (mut vseq, mut aseq) = (0u16, 0u16);
    let mut bytes = 0u64;
    for rep in 0..minutes {
        let shift = rep * CLIP_SECS * 1_000_000 + (start - T0);
        for e in clip {
            match e {
                Event::Rtp {
                    video: is_video,
                    arrival_micros,
                    packet,
                } => {
                    let rtp = parse_rtp(packet).expect("own packet");
                    let (rate, seq) = if *is_video {
                        (90, &mut vseq)
                    } else {
                        (48, &mut aseq)
                    };
                    let ts = rtp.timestamp.wrapping_add((shift / 1000 * rate) as u32);
                    let p = build_rtp(
                        rtp.payload_type,
                        rtp.marker,
                        *seq,
                        ts,
                        rtp.ssrc,
                        rtp.payload,
                    );
                    *seq = seq.wrapping_add(1);
                    bytes += p.len() as u64;
                    let w = if *is_video { &mut video } else { &mut audio };
                    w.append_rtp(arrival_micros + shift, &p).expect("append");
                }
                Event::SenderReport {
                    video: is_video,
                    arrival_micros,
                    ntp,
                    rtp,
                } => {
                    let rate = if *is_video { 90 } else { 48 };
                    let ntp = unix_micros_to_ntp(ntp_to_unix_micros(*ntp) + shift);
                    let rtp = rtp.wrapping_add((shift / 1000 * rate) as u32);
                    let w = if *is_video { &mut video } else { &mut audio };
                    w.append_sender_report(arrival_micros + shift, ntp, rtp)
                        .expect("append");
                }
            }
        }
    }
    video.close().expect("close");
    audio.close().expect("close");
    bytes
}

fn main() {
    let minutes = env("FINALIZE_BENCH_MINUTES", 60);
    let runs = env("FINALIZE_BENCH_RUNS", 5).max(1);
    let kbps = env("FINALIZE_BENCH_KBPS", 1000);
    let root = tempfile::tempdir().expect("tempdir");
    let inspection = "bench";

    let t = Instant::now();
    let mut spec = SegmentSpec::new(0, T0, CLIP_SECS * 1_000_000);
    spec.width = 640;
    spec.height = 480;
    spec.video_bit_rate = (kbps * 1000) as usize;
    spec.noise = true;
    let mut g = SegmentGenerator::new(spec).expect("generator");
    let mut clip = Vec::new();
    while let Some(e) = g.next_event().expect("encode") {
        clip.push(e);
    }
    let half = minutes / 2;
    let mut bytes = write_segment(root.path(), inspection, 0, T0, half, &clip, &g);
    // The second segment starts after a 10 s reconnect gap.
    let second_start = T0 + half * CLIP_SECS * 1_000_000 + 10_000_000;
    bytes += write_segment(
        root.path(),
        inspection,
        1,
        second_start,
        minutes - half,
        &clip,
        &g,
    );
    let dir = root.path().join(inspection);
    let marks: Vec<Mark> = (0..minutes)
        .map(|i| Mark {
            item_id: format!("item-{i}"),
            title: format!("{}. Question", i + 1),
            result: "compliant".into(),
            at_micros: T0 + i * 60_000_000 + 30_000_000,
        })
        .collect();
    println!(
        "prepared {minutes} min of VP8 640x480 (~{kbps} kbit/s) + Opus: {:.0} MB of RTP in {:.1} s",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );

    let mut times = Vec::new();
    let mut cpus = Vec::new();
    for run in 0..runs {
        let _ = std::fs::remove_file(dir.join(MANIFEST_FILE));
        let t = Instant::now();
        let cpu0 = cpu_seconds();
        let m = finalize_inspection(&dir, &marks).expect("finalize");
        let secs = t.elapsed().as_secs_f64();
        let cpu = cpu_seconds() - cpu0;
        cpus.push(cpu);
        println!(
            "run {}: {secs:.2} s, CPU {cpu:.2} s → {} ({:.0} MB, {:.1} min, {} chapters)",
            run + 1,
            m.file,
            m.size_bytes as f64 / 1e6,
            m.duration_ms as f64 / 60_000.0,
            m.chapters.len()
        );
        times.push(secs);
    }
    times.sort_by(f64::total_cmp);
    cpus.sort_by(f64::total_cmp);
    println!(
        "finalize median: {:.2} s over {runs} runs (min {:.2}, max {:.2})",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    println!(
        "finalize CPU median: {:.2} s (min {:.2}, max {:.2})",
        cpus[cpus.len() / 2],
        cpus[0],
        cpus[cpus.len() - 1]
    );
}
