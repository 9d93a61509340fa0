//! Live media tests: real webrtc 0.21 clients on 127.0.0.1 against an in-process `MediaHub`.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media_recorder::journal::{list_journals, JournalReader, Record};
use media_recorder::rtp::is_keyframe;
use media_recorder::{IceServer, Mark, MediaConfig, MediaHub, MediaRole};
use support::{encode_h264, encode_vp8, spawn_publisher, spawn_talker, Client, Offer};
use uuid::Uuid;

fn init_logs() {
    // webrtc reports dropped packets only in its log; errors must be visible in test output.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("error,media_recorder=info")
            }),
        )
        .with_test_writer()
        .try_init();
}

async fn hub(dir: &std::path::Path) -> MediaHub {
    MediaHub::new(MediaConfig {
        recordings_dir: dir.to_owned(),
        udp_addrs: vec!["127.0.0.1:0".into()],
        nat_1to1_ips: vec![],
        ice_servers: vec![IceServer {
            urls: vec!["turn:turn.example.org:3478".into()],
            username: Some("u".into()),
            credential: Some("p".into()),
        }],
    })
    .await
    .expect("hub")
}

fn is_video_key(r: &support::Received) -> bool {
    r.mime.eq_ignore_ascii_case("video/VP8") && is_keyframe(&r.mime, &r.packet.payload)
}

fn journal_bytes(dir: &std::path::Path, inspection: Uuid) -> u64 {
    list_journals(&dir.join(inspection.to_string()))
        .unwrap_or_default()
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_to_inspector_with_voice_back_and_journals() {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path()).await;
    assert_eq!(hub.ice_servers()[0].username.as_deref(), Some("u"));
    let inspection = Uuid::new_v4();
    let frames = Arc::new(encode_vp8(320, 240, 30, 90, 300_000, 30));
    let stop = Arc::new(AtomicBool::new(false));

    // The inspector is there first; the business joins later (the usual order).
    let mut inspector = Client::build(inspection, MediaRole::Inspector, Offer::Talk).await;
    inspector
        .negotiate(&hub, false)
        .await
        .expect("inspector offer");
    assert!(
        inspector.wait_connected(Duration::from_secs(5)).await,
        "inspector connects"
    );
    spawn_talker(&inspector, stop.clone());

    let offer_at = Instant::now();
    let mut business = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    business
        .negotiate(&hub, false)
        .await
        .expect("publisher offer");
    spawn_publisher(&business, frames, 30, stop.clone());

    let key = inspector
        .wait_for(Duration::from_secs(5), is_video_key)
        .await
        .expect("inspector gets a keyframe");
    let join = key.at.duration_since(offer_at);
    println!("join time (offer to first forwarded keyframe): {join:?}");
    assert!(join < Duration::from_secs(2), "join took {join:?}");
    inspector
        .wait_for(Duration::from_secs(3), |r| {
            r.mime.eq_ignore_ascii_case("audio/opus")
        })
        .await
        .expect("inspector hears the business");
    business
        .wait_for(Duration::from_secs(3), |r| {
            r.mime.eq_ignore_ascii_case("audio/opus")
        })
        .await
        .expect("business hears the inspector");

    // Journals exist and grow while the session runs.
    let first = journal_bytes(dir.path(), inspection);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let second = journal_bytes(dir.path(), inspection);
    assert!(
        first > 0 && second > first,
        "journals grow: {first} -> {second}"
    );
    // Keep running long enough for sender reports (sent every second or so).
    tokio::time::sleep(Duration::from_millis(1500)).await;

    hub.mark(
        inspection,
        Mark {
            item_id: "1".into(),
            title: "Exit".into(),
            result: "ok".into(),
            at_micros: chrono::Utc::now().timestamp_micros(),
        },
    );
    let manifest = hub.finish(inspection, vec![]).await.expect("finish");
    stop.store(true, Ordering::Relaxed);
    // The finalizer built a file from what this session recorded, with the mark as a chapter.
    assert_eq!(manifest.chapters.len(), 1);
    assert!(
        manifest
            .tracks
            .iter()
            .any(|t| t.codec == "video/VP8" && t.frames > 30),
        "{:?}",
        manifest.tracks
    );
    assert!(dir
        .path()
        .join(inspection.to_string())
        .join(&manifest.file)
        .exists());
    // Business video + audio, inspector audio.
    let journals = list_journals(&dir.path().join(inspection.to_string())).expect("journals");
    assert_eq!(journals.len(), 3, "{journals:?}");
    let mut video_packets = 0;
    let mut sender_reports = 0;
    for path in &journals {
        let mut r = JournalReader::open(path).expect("journal opens");
        let meta = r.meta().clone();
        assert!(
            meta.codec == "video/VP8" || meta.codec == "audio/opus",
            "{}",
            meta.codec
        );
        while let Some(rec) = r.next_record().expect("record") {
            match rec {
                Record::Rtp { .. } if meta.codec == "video/VP8" => video_packets += 1,
                Record::SenderReport { .. } => sender_reports += 1,
                _ => {}
            }
        }
    }
    assert!(
        video_packets > 50,
        "video packets journaled: {video_packets}"
    );
    assert!(sender_reports > 0, "sender reports journaled");
    hub.leave(inspection, business.peer).await;
    hub.leave(inspection, inspector.peer).await;
    assert_eq!(hub.peer_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_viewer_gets_a_keyframe_at_once_and_marks_ask_for_one() {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path()).await;
    let inspection = Uuid::new_v4();
    // One keyframe in 20 s: only a relayed PLI can give the late viewer a picture quickly.
    let frames = Arc::new(encode_vp8(320, 240, 30, 600, 300_000, 600));
    let stop = Arc::new(AtomicBool::new(false));
    let business = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    business
        .negotiate(&hub, false)
        .await
        .expect("publisher offer");
    let stats = spawn_publisher(&business, frames, 30, stop.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;

    let mut viewer = Client::build(inspection, MediaRole::Viewer, Offer::Watch).await;
    let offer_at = Instant::now();
    viewer.negotiate(&hub, false).await.expect("viewer offer");
    let key = viewer
        .wait_for(Duration::from_secs(3), is_video_key)
        .await
        .expect("late viewer gets a keyframe");
    let waited = key.at.duration_since(offer_at);
    println!("late viewer keyframe after {waited:?}");
    assert!(
        waited < Duration::from_millis(1500),
        "keyframe took {waited:?}"
    );
    assert!(stats.keyframe_requests.load(Ordering::Relaxed) >= 1);

    // A checklist mark asks the publisher for a keyframe too.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = stats.keyframe_requests.load(Ordering::Relaxed);
    hub.mark(
        inspection,
        Mark {
            item_id: "7".into(),
            title: "Fire exit".into(),
            result: "violation".into(),
            at_micros: chrono::Utc::now().timestamp_micros(),
        },
    );
    let deadline = Instant::now() + Duration::from_secs(2);
    while stats.keyframe_requests.load(Ordering::Relaxed) == before && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        stats.keyframe_requests.load(Ordering::Relaxed) > before,
        "mark produced a PLI"
    );
    viewer
        .wait_for(Duration::from_secs(2), is_video_key)
        .await
        .expect("keyframe after the mark");

    // A renegotiation (same ICE credentials) gathers nothing new: its answer still carries
    // the server's candidate, under the same ICE credentials, and media keeps flowing.
    let ufrag = |sdp: &str| {
        media_recorder::sdp::summarize(sdp)
            .expect("an answer's summary")
            .ice_ufrag
    };
    let first = viewer.last_answer.lock().expect("answer").clone();
    viewer
        .negotiate(&hub, false)
        .await
        .expect("renegotiation accepted");
    let again = viewer.last_answer.lock().expect("answer").clone();
    assert!(
        again.contains("a=candidate:"),
        "renegotiation answer: {again}"
    );
    assert_eq!(
        ufrag(&again),
        ufrag(&first),
        "a renegotiation keeps the credentials"
    );
    while viewer.received.try_recv().is_ok() {}
    viewer
        .wait_for(Duration::from_secs(3), |r| {
            r.mime.eq_ignore_ascii_case("video/VP8")
        })
        .await
        .expect("video after the renegotiation");

    // ICE restart from the viewer (a phone changing network): the answer carries a candidate
    // of the new gathering, and media keeps flowing.
    viewer
        .negotiate(&hub, true)
        .await
        .expect("ice restart accepted");
    let restarted = viewer.last_answer.lock().expect("answer").clone();
    assert!(
        restarted.contains("a=candidate:"),
        "restart answer: {restarted}"
    );
    assert_ne!(
        ufrag(&restarted),
        ufrag(&first),
        "an ICE restart has new credentials"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    while viewer.received.try_recv().is_ok() {}
    viewer
        .wait_for(Duration::from_secs(3), |r| {
            r.mime.eq_ignore_ascii_case("video/VP8")
        })
        .await
        .expect("video after ICE restart");
    stop.store(true, Ordering::Relaxed);
    hub.finish(inspection, vec![]).await.expect("finish");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_offers_fail_with_codes_and_other_sessions_keep_working() {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path()).await;
    let inspection = Uuid::new_v4();
    let frames = Arc::new(encode_vp8(320, 240, 30, 60, 300_000, 30));
    let stop = Arc::new(AtomicBool::new(false));
    let business = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    business
        .negotiate(&hub, false)
        .await
        .expect("publisher offer");
    spawn_publisher(&business, frames, 30, stop.clone());
    let mut viewer = Client::build(inspection, MediaRole::Viewer, Offer::Watch).await;
    viewer.negotiate(&hub, false).await.expect("viewer offer");
    viewer
        .wait_for(Duration::from_secs(5), is_video_key)
        .await
        .expect("viewer gets video");

    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    let intruder = Uuid::new_v4();
    let garbage = [
        serde_json::json!("not an offer"),
        serde_json::json!({"type": "offer", "sdp": "v=0\r\nthis is not sdp"}),
        serde_json::json!({"type": "answer", "sdp": "v=0\r\n"}),
    ];
    for g in garbage {
        let err = hub
            .offer(inspection, intruder, MediaRole::Publisher, g, tx.clone())
            .await
            .unwrap_err();
        assert_eq!(err.code(), "sdp_invalid", "{err}");
    }
    // A real offer whose video is VP9 only.
    let vp9 = {
        let c = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
        let mut offer = c.offer_json(false).await;
        let sdp = offer["sdp"].as_str().expect("sdp").to_string();
        let filtered: String = sdp
            .split("\r\n")
            .filter(|l| !(l.contains("VP8/90000") || l.contains("H264/90000")))
            .map(|l| format!("{l}\r\n"))
            .collect();
        offer["sdp"] =
            serde_json::Value::String(filtered.trim_end_matches("\r\n").to_string() + "\r\n");
        offer
    };
    let err = hub
        .offer(inspection, intruder, MediaRole::Publisher, vp9, tx.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "no_usable_codec", "{err}");
    // A viewer that tries to publish.
    let sneaky = {
        let c = Client::build(inspection, MediaRole::Viewer, Offer::Publish).await;
        let mut offer = c.offer_json(false).await;
        let sdp = offer["sdp"]
            .as_str()
            .expect("sdp")
            .replace("a=sendrecv", "a=sendonly");
        offer["sdp"] = serde_json::Value::String(sdp);
        offer
    };
    let err = hub
        .offer(inspection, intruder, MediaRole::Viewer, sneaky, tx.clone())
        .await
        .unwrap_err();
    assert_eq!(err.code(), "forbidden", "{err}");
    let err = hub
        .candidate(inspection, intruder, serde_json::json!({"candidate": ""}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_peer");
    let err = hub
        .candidate(inspection, viewer.peer, serde_json::json!(42))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "candidate_invalid");
    hub.candidate(
        inspection,
        viewer.peer,
        serde_json::json!({"candidate": "", "sdpMid": "0"}),
    )
    .await
    .expect("end-of-candidates is accepted");

    // Nothing of that touched the running session.
    while viewer.received.try_recv().is_ok() {}
    viewer
        .wait_for(Duration::from_secs(2), |r| {
            r.mime.eq_ignore_ascii_case("video/VP8")
        })
        .await
        .expect("viewer still receives video");
    assert_eq!(hub.peer_count(), 2);
    stop.store(true, Ordering::Relaxed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_reconnect_appends_a_segment_and_the_viewer_stream_continues() {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path()).await;
    let inspection = Uuid::new_v4();
    let frames = Arc::new(encode_vp8(320, 240, 30, 60, 300_000, 30));
    let mut viewer = Client::build(inspection, MediaRole::Viewer, Offer::Watch).await;
    viewer.negotiate(&hub, false).await.expect("viewer offer");
    let stop1 = Arc::new(AtomicBool::new(false));
    let first = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    first.negotiate(&hub, false).await.expect("publisher offer");
    spawn_publisher(&first, frames.clone(), 30, stop1.clone());
    let before = viewer
        .wait_for(Duration::from_secs(5), is_video_key)
        .await
        .expect("video before reconnect");

    // The phone reloads the page: same participant, new browser connection (new DTLS
    // fingerprint, new SSRCs).
    stop1.store(true, Ordering::Relaxed);
    let stop2 = Arc::new(AtomicBool::new(false));
    let mut second = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    second.peer = first.peer;
    second
        .negotiate(&hub, false)
        .await
        .expect("reconnect offer");
    let _ = first.pc.close().await;
    spawn_publisher(&second, frames, 30, stop2.clone());
    while viewer.received.try_recv().is_ok() {}
    let after = viewer
        .wait_for(Duration::from_secs(5), is_video_key)
        .await
        .expect("video after reconnect");
    assert_eq!(
        before.packet.header.ssrc, after.packet.header.ssrc,
        "the viewer sees one continuous stream"
    );
    assert_eq!(hub.peer_count(), 2);

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop2.store(true, Ordering::Relaxed);
    let manifest = hub.finish(inspection, vec![]).await.expect("finish");
    assert!(
        manifest
            .tracks
            .iter()
            .any(|t| t.codec == "video/VP8" && t.segments == 2),
        "{:?}",
        manifest.tracks
    );
    let journals = list_journals(&dir.path().join(inspection.to_string())).expect("journals");
    let video_segments: std::collections::BTreeSet<String> = journals
        .iter()
        .filter(|p| {
            JournalReader::open(p)
                .map(|r| r.meta().codec == "video/VP8")
                .unwrap_or(false)
        })
        .filter_map(|p| {
            p.file_name()?
                .to_str()?
                .split('-')
                .next()
                .map(str::to_owned)
        })
        .collect();
    assert_eq!(
        video_segments.len(),
        2,
        "one video journal segment per connection: {journals:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h264_publisher_is_forwarded_and_recorded_without_transcoding() {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path()).await;
    let inspection = Uuid::new_v4();
    let frames = Arc::new(encode_h264(320, 240, 30, 60, 300_000, 30));
    let stop = Arc::new(AtomicBool::new(false));
    let mut viewer = Client::build(inspection, MediaRole::Viewer, Offer::Watch).await;
    viewer.negotiate(&hub, false).await.expect("viewer offer");
    let iphone = Client::build(inspection, MediaRole::Publisher, Offer::PublishH264).await;
    iphone
        .negotiate(&hub, false)
        .await
        .expect("H.264 publisher offer");
    spawn_publisher(&iphone, frames, 30, stop.clone());
    viewer
        .wait_for(Duration::from_secs(5), |r| {
            r.mime.eq_ignore_ascii_case("video/H264") && is_keyframe(&r.mime, &r.packet.payload)
        })
        .await
        .expect("viewer gets an H.264 keyframe");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let manifest = hub.finish(inspection, vec![]).await.expect("finish");
    assert!(
        manifest
            .tracks
            .iter()
            .any(|t| t.codec == "video/H264" && t.frames > 10),
        "{:?}",
        manifest.tracks
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_without_a_video_section_is_asked_to_renegotiate() {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path()).await;
    let inspection = Uuid::new_v4();
    let frames = Arc::new(encode_vp8(320, 240, 30, 60, 300_000, 30));
    let stop = Arc::new(AtomicBool::new(false));
    let mut viewer = Client::build(inspection, MediaRole::Viewer, Offer::Listen).await;
    viewer
        .negotiate(&hub, false)
        .await
        .expect("audio-only viewer offer");
    assert!(viewer.wait_connected(Duration::from_secs(5)).await);
    let business = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    business
        .negotiate(&hub, false)
        .await
        .expect("publisher offer");
    spawn_publisher(&business, frames, 30, stop.clone());
    let deadline = Instant::now() + Duration::from_secs(5);
    while !viewer
        .events
        .lock()
        .expect("events")
        .contains(&media_recorder::MediaEvent::Renegotiate)
    {
        assert!(Instant::now() < deadline, "no renegotiate event");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The browser adds a video transceiver and offers again on the same connection.
    viewer
        .pc
        .add_transceiver_from_kind(
            rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Video,
            Some(rtc::rtp_transceiver::RTCRtpTransceiverInit {
                direction: rtc::rtp_transceiver::RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .expect("video transceiver");
    viewer.negotiate(&hub, false).await.expect("renegotiation");
    viewer
        .wait_for(Duration::from_secs(5), is_video_key)
        .await
        .expect("video after renegotiation");
    assert_eq!(hub.peer_count(), 2);
    stop.store(true, Ordering::Relaxed);
}

/// Through the whole WebRTC path: a camera publishes frames carrying their capture time, an
/// inspector watches, three checklist marks are made while it runs; after `finish` the frame
/// shown at each chapter start of the file was captured within 100 ms of its mark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chapters_show_the_picture_of_their_mark() {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path()).await;
    let inspection = Uuid::new_v4();
    let stop = Arc::new(AtomicBool::new(false));
    let mut inspector = Client::build(inspection, MediaRole::Inspector, Offer::Talk).await;
    inspector
        .negotiate(&hub, false)
        .await
        .expect("inspector offer");
    assert!(inspector.wait_connected(Duration::from_secs(5)).await);
    spawn_talker(&inspector, stop.clone());
    let business = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    business
        .negotiate(&hub, false)
        .await
        .expect("publisher offer");
    support::spawn_camera(&business, 25, stop.clone());
    inspector
        .wait_for(Duration::from_secs(5), is_video_key)
        .await
        .expect("inspector gets the camera");

    let mut marks = Vec::new();
    for i in 1..=3 {
        tokio::time::sleep(Duration::from_millis(1200)).await;
        let mark = Mark {
            item_id: format!("item-{i}"),
            title: format!("{i}. Question"),
            result: "violation".into(),
            at_micros: chrono::Utc::now().timestamp_micros(),
        };
        hub.mark(inspection, mark.clone());
        marks.push(mark);
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let manifest = hub.finish(inspection, vec![]).await.expect("finish");
    stop.store(true, Ordering::Relaxed);
    assert_eq!(manifest.chapters.len(), 3, "{:?}", manifest.chapters);
    let file = dir.path().join(inspection.to_string()).join(&manifest.file);
    for c in &manifest.chapters {
        let mark = marks
            .iter()
            .find(|m| m.item_id == c.item_id)
            .expect("chapter of a mark");
        let (pts, frame) = media_recorder::testsrc::frame_at(&file, c.start_ms)
            .expect("decode")
            .expect("a frame at the chapter start");
        let captured =
            media_recorder::testsrc::read_barcode(&frame, mark.at_micros / 1000).expect("barcode");
        let error = captured - mark.at_micros / 1000;
        assert!(
            error.abs() <= 100,
            "chapter {} at {} ms (frame {pts} ms) shows capture {captured}, mark {} → {error} ms",
            c.item_id,
            c.start_ms,
            mark.at_micros / 1000
        );
    }
}

/// `kill -9` of a process that is recording a live WebRTC session: at the next start, recovery
/// only seals the journals and publishes nothing; `finish` (without a live room, from the
/// journals on disk) then builds a file that misses at most 1.5 s at the end, with every
/// chapter, each showing its mark's moment, and a second `finish` returns the same manifest.
#[test]
fn killed_live_session_is_recovered() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe().expect("test exe");
    let child_path = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("examples")
        .join("live_child");
    assert!(
        child_path.exists(),
        "{} missing: cargo test builds examples",
        child_path.display()
    );
    let root = tempfile::tempdir().expect("tempdir");
    let inspection = Uuid::new_v4();
    let mut child = Command::new(child_path)
        .arg(root.path())
        .arg(inspection.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn child");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut marks = Vec::new();
    let mut started = 0i64;
    for line in lines.by_ref() {
        let line = line.expect("utf-8");
        if let Some(t) = line.strip_prefix("started ") {
            started = t.parse().expect("µs");
        } else if let Some(rest) = line.strip_prefix("mark ") {
            let (item, at) = rest.split_once(' ').expect("mark line");
            marks.push((item.to_string(), at.parse::<i64>().expect("µs")));
        } else if line == "marked" {
            break;
        }
    }
    assert_eq!(marks.len(), 3);
    std::thread::sleep(Duration::from_millis(700));
    let killed_at = chrono::Utc::now().timestamp_micros();
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (unfinished, m, again) = rt.block_on(async {
        let hub = hub(root.path()).await;
        let unfinished = hub.recover().await.expect("recover");
        let dir = root.path().join(inspection.to_string());
        assert!(
            media_recorder::finalize::read_manifest(&dir)
                .expect("read")
                .is_none(),
            "recovery finishes nothing"
        );
        let m = hub.finish(inspection, vec![]).await.expect("finish");
        let again = hub.finish(inspection, vec![]).await.expect("finish again");
        (unfinished, m, again)
    });
    assert_eq!(unfinished.len(), 1);
    assert_eq!(unfinished[0].inspection, Some(inspection));
    assert_eq!(again, m, "finish is idempotent");
    let m = &m;
    let media_end = m.epoch_micros + m.duration_ms * 1000;
    assert!(
        killed_at - media_end <= 1_500_000,
        "lost {} ms at the end",
        (killed_at - media_end) / 1000
    );
    assert!(m.epoch_micros <= started + 1_000_000);
    assert_eq!(m.chapters.len(), 3, "{:?}", m.chapters);
    let file = root.path().join(inspection.to_string()).join(&m.file);
    for (item, at) in &marks {
        let c = m
            .chapters
            .iter()
            .find(|c| &c.item_id == item)
            .expect("chapter per mark");
        let (_, frame) = media_recorder::testsrc::frame_at(&file, c.start_ms)
            .expect("decode")
            .expect("frame");
        let captured = media_recorder::testsrc::read_barcode(&frame, at / 1000).expect("barcode");
        assert!(
            (captured - at / 1000).abs() <= 100,
            "chapter {item}: capture {captured} vs mark {}",
            at / 1000
        );
    }
}

fn ffprobe_streams(path: &std::path::Path) -> Vec<serde_json::Value> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-show_streams", "-of", "json"])
        .arg(path)
        .output()
        .expect("ffprobe runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["streams"].as_array().expect("streams").clone()
}

/// Issue 18: the business leaves and rejoins as another participant (a new invitation on
/// another phone, with another camera resolution). The finished file has one video stream
/// and one business audio stream covering both halves, the time between them kept as a gap,
/// and the chapters of both halves show their marks' pictures.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejoin_as_another_participant_continues_one_video_stream() {
    init_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let hub = hub(dir.path()).await;
    let inspection = Uuid::new_v4();
    let stop = Arc::new(AtomicBool::new(false));
    let mut inspector = Client::build(inspection, MediaRole::Inspector, Offer::Talk).await;
    inspector
        .negotiate(&hub, false)
        .await
        .expect("inspector offer");
    assert!(inspector.wait_connected(Duration::from_secs(5)).await);
    spawn_talker(&inspector, stop.clone());

    let mut marks = Vec::new();
    let mut mark = |i: usize| {
        let m = Mark {
            item_id: format!("item-{i}"),
            title: format!("{i}. Question"),
            result: "violation".into(),
            at_micros: chrono::Utc::now().timestamp_micros(),
        };
        hub.mark(inspection, m.clone());
        marks.push(m);
    };
    let mut phones = Vec::new();
    let mut left_at = 0;
    for (half, size) in [(320, 240), (480, 360)].into_iter().enumerate() {
        let phone_stop = Arc::new(AtomicBool::new(false));
        let phone = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
        phone.negotiate(&hub, false).await.expect("publisher offer");
        support::spawn_camera_sized(&phone, 25, size, phone_stop.clone());
        while inspector.received.try_recv().is_ok() {}
        inspector
            .wait_for(Duration::from_secs(5), is_video_key)
            .await
            .expect("the inspector sees the phone");
        tokio::time::sleep(Duration::from_millis(1200)).await;
        mark(half);
        tokio::time::sleep(Duration::from_millis(800)).await;
        // The phone goes away; a second passes before the other one joins.
        phone_stop.store(true, Ordering::Relaxed);
        hub.leave(inspection, phone.peer).await;
        left_at = chrono::Utc::now().timestamp_micros();
        phones.push(phone.peer);
        if half == 0 {
            tokio::time::sleep(Duration::from_millis(1000)).await;
        }
    }
    assert_ne!(phones[0], phones[1], "two participants");
    let manifest = hub.finish(inspection, vec![]).await.expect("finish");
    stop.store(true, Ordering::Relaxed);

    let file = dir.path().join(inspection.to_string()).join(&manifest.file);
    let streams = ffprobe_streams(&file);
    let video: Vec<_> = streams
        .iter()
        .filter(|s| s["codec_type"] == "video")
        .collect();
    assert_eq!(video.len(), 1, "one video stream: {streams:?}");
    let business: Vec<_> = manifest
        .tracks
        .iter()
        .filter(|t| {
            t.feed
                .as_deref()
                .is_some_and(|f| f.starts_with("business_"))
        })
        .collect();
    assert_eq!(business.len(), 2, "{:?}", manifest.tracks);
    let expected: Vec<String> = phones.iter().map(Uuid::to_string).collect();
    for t in &business {
        assert_eq!(t.segments, 2, "{t:?}");
        assert_eq!(t.participant_ids, expected, "{t:?}");
    }
    // The whole inspection is on the timeline, the second phone's picture included.
    let span = (left_at - manifest.epoch_micros) / 1000;
    assert!(
        manifest.duration_ms >= span - 500,
        "{} ms of {span} ms",
        manifest.duration_ms
    );
    assert_eq!(manifest.chapters.len(), 2);
    let mut widths = Vec::new();
    for (c, m) in manifest.chapters.iter().zip(&marks) {
        let (_, frame) = media_recorder::testsrc::frame_at(&file, c.start_ms)
            .expect("decode")
            .expect("a frame at the chapter start");
        let captured =
            media_recorder::testsrc::read_barcode(&frame, m.at_micros / 1000).expect("barcode");
        assert!(
            (captured - m.at_micros / 1000).abs() <= 100,
            "chapter {} shows capture {captured}, mark {}",
            c.item_id,
            m.at_micros / 1000
        );
        widths.push(frame.width());
    }
    assert_eq!(widths, [320, 480], "each half in its own resolution");
    // The gap is kept: in the middle of it the picture is still the first phone's last one.
    let first_end = manifest.chapters[0].mark_at_micros / 1000 + 800;
    let gap_ms = (first_end - manifest.epoch_micros / 1000) + 500;
    let (pts, frame) = media_recorder::testsrc::frame_at(&file, gap_ms)
        .expect("decode")
        .expect("a frame");
    assert!(
        pts < gap_ms - 300,
        "no frame inside the gap (frame at {pts} ms)"
    );
    assert_eq!(frame.width(), 320);
}
