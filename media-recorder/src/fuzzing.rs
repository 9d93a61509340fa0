//! Fuzz target bodies (issue 19, item 6). Each takes arbitrary bytes and must return without
//! panicking: the cargo-fuzz project in `tests/fuzz` calls them under libFuzzer, and the
//! stable test suite runs them over the seed corpus and mutations of it
//! (`tests/e2e/fuzz.rs`), so CI needs no second (nightly) build.

use std::path::PathBuf;

use crate::api::MediaRole;
use crate::depacketize::{self, Assembler, Codec, Reorder};
use crate::journal::{self, JournalReader, Record};

/// SDP handling: an offer's text as the browser sends it (`{"type":"offer","sdp":…}` is
/// built around it), checked for each role, and the summary of any text.
pub fn fuzz_sdp(data: &[u8]) {
    let Ok(sdp) = std::str::from_utf8(data) else {
        return;
    };
    let _ = crate::sdp::summarize(sdp);
    for role in [
        MediaRole::Publisher,
        MediaRole::Inspector,
        MediaRole::Viewer,
    ] {
        let _ = crate::sdp::check_offer(serde_json::json!({"type": "offer", "sdp": sdp}), role);
    }
}

/// The RTP depacketizers: the input is a run of packets, each prefixed by its length (one
/// byte), through the parser, the reorder buffer and the assembler of each codec, and every
/// completed frame through the keyframe and picture-size readers.
pub fn fuzz_depacketize(data: &[u8]) {
    let mut packets = Vec::new();
    let mut rest = data;
    while let Some((&len, tail)) = rest.split_first() {
        let n = usize::from(len).min(tail.len());
        packets.push(&tail[..n]);
        rest = &tail[n..];
    }
    for codec in [Codec::Vp8, Codec::H264, Codec::Opus] {
        let mut reorder = Reorder::new(8);
        let mut asm = Assembler::new(codec);
        let mime = match codec {
            Codec::Vp8 => "video/VP8",
            Codec::H264 => "video/H264",
            Codec::Opus => "audio/opus",
        };
        let feed = |asm: &mut Assembler, seq: i64, view: depacketize::RtpView<'_>| {
            let _ = crate::rtp::is_keyframe(mime, view.payload);
            if let Some(frame) = asm.push(seq, i64::from(view.timestamp), view.marker, view.payload)
            {
                inspect_frame(codec, &frame.data);
            }
        };
        for p in &packets {
            // Whole payloads straight in, as a packet of any codec may arrive.
            inspect_frame(codec, p);
            let Some(view) = depacketize::parse_rtp(p) else {
                continue;
            };
            reorder.push(i64::from(view.sequence_number), *p);
            while let Some((seq, p)) = reorder.pop(false) {
                if let Some(view) = depacketize::parse_rtp(p) {
                    feed(&mut asm, seq, view);
                }
            }
        }
        while let Some((seq, p)) = reorder.pop(true) {
            if let Some(view) = depacketize::parse_rtp(p) {
                feed(&mut asm, seq, view);
            }
        }
    }
}

fn inspect_frame(codec: Codec, data: &[u8]) {
    match codec {
        Codec::Vp8 => {
            let _ = depacketize::vp8_descriptor(data);
            let _ = depacketize::vp8_keyframe_size(data);
        }
        Codec::H264 => {
            for nal in depacketize::annexb_nals(data) {
                if nal.first().is_some_and(|b| b & 0x1f == 7) {
                    let _ = depacketize::h264_sps_size(nal);
                }
            }
            let _ = depacketize::h264_sps_size(data);
        }
        Codec::Opus => {}
    }
}

/// A scratch inspection directory per process and thread (libFuzzer and the test runner
/// call targets from several threads).
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "inspector-fuzz-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    // A fresh directory each time: the finalizer leaves its output and repairs behind.
    let _ = std::fs::remove_dir_all(&dir);
    // The temp directory is writable on every machine this runs on.
    std::fs::create_dir_all(journal::journal_dir(&dir)).expect("scratch journal directory");
    dir
}

/// The journal reader: the input is one journal file (a crash may leave any bytes), read
/// record by record and then finalized into a recording the way recovery does.
pub fn fuzz_journal(data: &[u8]) {
    let dir = scratch_dir();
    let path = journal::journal_dir(&dir).join(format!("000000-track.{}", journal::JOURNAL_EXT));
    std::fs::write(&path, data).expect("scratch journal");
    if let Ok(mut reader) = JournalReader::open(&path) {
        let mut asm = Codec::from_mime(&reader.meta().codec).map(Assembler::new);
        while let Ok(Some(record)) = reader.next_record() {
            let Record::Rtp { packet, .. } = record else {
                continue;
            };
            if let (Some(asm), Some(v)) = (asm.as_mut(), depacketize::parse_rtp(&packet)) {
                let _ = asm.push(
                    i64::from(v.sequence_number),
                    i64::from(v.timestamp),
                    v.marker,
                    v.payload,
                );
            }
        }
        let _ = reader.valid_len();
        let _ = crate::finalize::finalize_inspection(&dir, &[]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}
