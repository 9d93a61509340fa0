//! Every fuzz target over its seed corpus and bounded mutations of it (issue 19, item 6;
//! `inspector_tests::fuzz`). A panic on any input fails the test with the input saved.

use inspector_tests::fuzz::exercise;

/// Enough runs to reach the decoders' error paths; the time budget bounds slow machines.
const RUNS: u64 = 200_000;

fn check(name: &str, target: fn(&[u8]), dict: &[&[u8]], max_runs: u64) {
    let seeds = inspector_tests::fuzz::corpus(name).len() as u64;
    let runs = exercise(name, target, dict, max_runs);
    println!("fuzz target {name}: {runs} inputs");
    // Mutations ran, not only the seeds (a loaded CI machine runs fewer in the budget).
    assert!(runs >= 4 * seeds, "{name} ran only {runs} inputs");
}

#[test]
fn fuzz_ws_decoder() {
    check(
        "ws_decode",
        checklist_sync::fuzzing::fuzz_decode,
        &[
            b"\"type\"",
            b"\"op\"",
            b"\"hello\"",
            b"\"op_id\"",
            b"\"kind\"",
            b"\"item_id\"",
            b"\"set_result\"",
            b"\"set_note\"",
            b"\"location\"",
            b"\"scores\"",
            b"\"last_seq\"",
            b"\"protocol\"",
            b"\"client\"",
            b"\"missing\"",
            b"\"rtc.offer\"",
            b"\"ping\"",
        ],
        RUNS,
    );
}

#[test]
fn fuzz_rtc_decoder() {
    check(
        "rtc",
        signaling::fuzzing::fuzz_rtc,
        &[
            b"\"rtc.offer\"",
            b"\"rtc.candidate\"",
            b"\"rtc.leave\"",
            b"\"sdp\"",
            b"\"offer\"",
            b"\"candidate\"",
            b"\"sdpMid\"",
            b"\"sdpMLineIndex\"",
            b"\"usernameFragment\"",
        ],
        RUNS,
    );
}

#[test]
fn fuzz_sdp() {
    check(
        "sdp",
        media_recorder::fuzzing::fuzz_sdp,
        &[
            b"m=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
            b"m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n",
            b"a=rtpmap:",
            b"a=fmtp:",
            b"a=sendonly\r\n",
            b"a=recvonly\r\n",
            b"a=inactive\r\n",
            b"a=mid:",
            b"a=fingerprint:sha-256 ",
            b"a=ssrc:",
            b"a=group:BUNDLE 0 1\r\n",
            b"profile-level-id=42e01f",
            b"packetization-mode=1",
            b"VP8/90000",
            b"H264/90000",
            b"opus/48000/2",
            b"m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n",
            b" 0 ",
        ],
        RUNS,
    );
}

#[test]
fn fuzz_rtp_depacketizers() {
    check(
        "depacketize",
        media_recorder::fuzzing::fuzz_depacketize,
        &[
            b"\x80\x60",
            b"\x80\xe0",
            b"\x90",
            b"\x1c\x85",
            b"\x18",
            b"\x67",
            b"\x00\x00\x00\x01",
        ],
        RUNS,
    );
}

#[test]
fn fuzz_journal_reader() {
    // Each input is written to a file and finalized with ffmpeg: far slower than a decoder.
    check(
        "journal",
        media_recorder::fuzzing::fuzz_journal,
        &[
            b"\x01",
            b"\x02",
            b"\"video\"",
            b"\"audio\"",
            b"\"video/VP8\"",
            b"\"video/H264\"",
            b"\"audio/opus\"",
        ],
        5_000,
    );
}

#[test]
fn fuzz_template_importer() {
    check(
        "template",
        signaling::fuzzing::fuzz_template,
        &[
            b"\"items\"",
            b"\"id\"",
            b"\"number\"",
            b"\"question\"",
            b"\"answer_kind\"",
            b"\"version\"",
        ],
        RUNS,
    );
}

#[test]
fn fuzz_geolocation_parser() {
    check(
        "geolocation",
        checklist_sync::fuzzing::fuzz_geolocation,
        &[
            b"\"lat\"",
            b"\"lon\"",
            b"\"accuracy\"",
            b"\"altitude\"",
            b"\"heading\"",
            b"\"speed\"",
            b"\"device_ts\"",
            b"\"altitude_accuracy\"",
            b"90.0",
            b"180",
            b"-180",
        ],
        RUNS,
    );
}
