//! Publishers for the side-by-side benchmark with Janus (issue 18, `scripts/bench-janus`).
//!
//! ```text
//! janus_bench --server janus|inspector --url HOST:PORT --pid PID --rec-dir DIR \
//!             --publishers N [--seconds 30] [--bind 10.77.0.1] [--subscribers] \
//!             [--frames-cache FILE] [--label TEXT]
//! ```
//!
//! Every publisher is a webrtc 0.21 peer of its own (own UDP socket, ICE, DTLS, SRTP) that
//! sends the same pre-encoded VP8 (480x360, 30 fps, about 1 Mbit/s, encoded once with libvpx
//! and cached in `--frames-cache`) and 20 ms Opus-framed audio packets of 80 bytes (32 kbit/s)
//! in real time: no encoder runs per publisher. A keyframe request (PLI/FIR) from the server
//! makes the next frame sent the next keyframe of the sequence, as an encoder would.
//!
//! * Janus: its HTTP API (create session, attach `janus.plugin.videoroom`, `join` as publisher
//!   in the configured room, `configure` with the offer; the answer comes by long poll), one
//!   long poll per session kept open for the whole run.
//! * Inspector: `media_server` (the `MediaHub` in a process of its own), one JSON line per
//!   offer over TCP.
//!
//! The server process `--pid` is measured from `/proc/<pid>`: CPU (utime+stime of all its
//! threads) over a `--seconds` window that starts once every publisher is connected and
//! sending, plus 5 s of warm-up; RSS at the end (VmRSS, VmHWM) and before the first publisher.
//! Recorded bytes are the growth of `--rec-dir` over the window. After the window the
//! publishers leave (the servers close their recordings), and the unique RTP packets in the
//! recordings (`.mjr` for Janus, `.rtpj` journals for Inspector) are counted against the
//! packets the publishers sent (webrtc's outbound stats, retransmissions not counted).
//!
//! `--subscribers` (Inspector only): each session also gets an inspector that receives the
//! video and talks back (as `media_bench`); its video sequence gaps are counted as loss.
//!
//! The last line printed is `RESULT key=value ...` for the script.

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rtc::media::Sample;
use rtc::peer_connection::configuration::media_engine::{MIME_TYPE_OPUS, MIME_TYPE_VP8};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use support::{client_pc, offer_with_candidates, sample_track, Frame};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionEventHandler, RTCIceGatheringState, RTCPeerConnectionState,
    StatsSelector,
};
use webrtc::rtp_transceiver::RtpSender;

const FPS: u32 = 30;
/// Picture size and libvpx target of the pre-encoded video. The moving noise of the test
/// source keeps libvpx above its target (at 640x480 a 900 kbit/s target gave 1.7 Mbit/s), so
/// the size is chosen to land at about 1 Mbit/s.
const W: u32 = 480;
const H: u32 = 360;
const TARGET_BPS: usize = 800_000;
const JANUS_ROOM: u64 = 1234;
/// Opus-framed audio: TOC 0xf8 (CELT fullband, 20 ms, mono, one frame) and 79 bytes of
/// payload, 80 bytes every 20 ms = 32 kbit/s, a typical voice bitrate. Neither server decodes
/// audio, so the payload bytes are pseudo-random.
const OPUS_BYTES: usize = 80;

type Res<T> = Result<T, String>;

// ---------------------------------------------------------------------------------------
// Arguments

struct Args {
    server: String,
    url: String,
    pid: u32,
    rec_dir: PathBuf,
    publishers: usize,
    seconds: u64,
    bind: String,
    subscribers: bool,
    frames_cache: Option<PathBuf>,
    label: String,
}

fn args() -> Args {
    let mut a = Args {
        server: String::new(),
        url: String::new(),
        pid: 0,
        rec_dir: PathBuf::new(),
        publishers: 10,
        seconds: 30,
        bind: "10.77.0.1".into(),
        subscribers: false,
        frames_cache: None,
        label: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
        match k.as_str() {
            "--server" => a.server = v(),
            "--url" => a.url = v(),
            "--pid" => a.pid = v().parse().expect("pid"),
            "--rec-dir" => a.rec_dir = v().into(),
            "--publishers" => a.publishers = v().parse().expect("publishers"),
            "--seconds" => a.seconds = v().parse().expect("seconds"),
            "--bind" => a.bind = v(),
            "--subscribers" => a.subscribers = true,
            "--frames-cache" => a.frames_cache = Some(v().into()),
            "--label" => a.label = v(),
            other => panic!("unknown argument {other}"),
        }
    }
    assert!(
        a.server == "janus" || a.server == "inspector",
        "--server janus|inspector"
    );
    assert!(a.pid > 0, "--pid of the server process");
    a
}

// ---------------------------------------------------------------------------------------
// /proc readings

/// utime+stime of all threads of `pid`, in seconds (USER_HZ = 100).
fn proc_cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    if f.len() < 13 {
        return 0.0;
    }
    (f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0)) as f64 / 100.0
}

/// A `/proc/<pid>/status` field in kB.
fn proc_kb(pid: u32, field: &str) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join("/")
}

fn files(p: &Path, out: &mut Vec<(PathBuf, u64)>) {
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            files(&e.path(), out);
        } else {
            out.push((e.path(), m.len()));
        }
    }
}

fn dir_bytes(p: &Path) -> u64 {
    let mut v = Vec::new();
    files(p, &mut v);
    v.iter().map(|(_, n)| n).sum()
}

/// Unique (SSRC, sequence) RTP packets in Janus's `.mjr` recordings and Inspector's `.rtpj`
/// journals under `dir`: (video, audio).
fn recorded_packets(dir: &Path) -> (u64, u64) {
    let mut all = Vec::new();
    files(dir, &mut all);
    let (mut video, mut audio) = (0u64, 0u64);
    for (path, _) in all {
        let name = path.to_string_lossy().to_string();
        let mut seen: HashSet<(u32, u16)> = HashSet::new();
        let is_video;
        let add = |pkt: &[u8], seen: &mut HashSet<(u32, u16)>| {
            if pkt.len() >= 12 {
                let seq = u16::from_be_bytes([pkt[2], pkt[3]]);
                let ssrc = u32::from_be_bytes([pkt[8], pkt[9], pkt[10], pkt[11]]);
                seen.insert((ssrc, seq));
            }
        };
        if name.ends_with(".mjr") {
            // MJR00002 | u16 len | JSON info | frames: "MEET" | u32 ms | u16 len | RTP packet
            let Ok(b) = std::fs::read(&path) else {
                continue;
            };
            if b.len() < 10 || &b[..8] != b"MJR00002" {
                continue;
            }
            let hl = u16::from_be_bytes([b[8], b[9]]) as usize;
            let info = String::from_utf8_lossy(&b[10..(10 + hl).min(b.len())]).to_string();
            let info: String = info.chars().filter(|c| !c.is_whitespace()).collect();
            is_video = info.contains("\"t\":\"v\"");
            let mut i = 10 + hl;
            while i + 10 <= b.len() && &b[i..i + 4] == b"MEET" {
                let len = u16::from_be_bytes([b[i + 8], b[i + 9]]) as usize;
                if i + 10 + len > b.len() {
                    break;
                }
                add(&b[i + 10..i + 10 + len], &mut seen);
                i += 10 + len;
            }
        } else if name.ends_with(".rtpj") {
            let Ok(mut r) = media_recorder::journal::JournalReader::open(&path) else {
                continue;
            };
            is_video = format!("{:?}", r.meta()).to_lowercase().contains("video");
            while let Ok(Some(rec)) = r.next_record() {
                if let media_recorder::journal::Record::Rtp { packet, .. } = rec {
                    add(&packet, &mut seen);
                }
            }
        } else {
            continue;
        }
        if is_video {
            video += seen.len() as u64;
        } else {
            audio += seen.len() as u64;
        }
    }
    (video, audio)
}

// ---------------------------------------------------------------------------------------
// Media

fn load_frames(cache: Option<&Path>) -> Vec<Frame> {
    if let Some(p) = cache {
        if let Ok(b) = std::fs::read(p) {
            let mut out = Vec::new();
            let mut i = 0;
            while i + 5 <= b.len() {
                let key = b[i] == 1;
                let len = u32::from_le_bytes([b[i + 1], b[i + 2], b[i + 3], b[i + 4]]) as usize;
                out.push(Frame {
                    data: bytes::Bytes::copy_from_slice(&b[i + 5..i + 5 + len]),
                    key,
                });
                i += 5 + len;
            }
            println!("frames from {}: {}", p.display(), out.len());
            return out;
        }
    }
    println!("encoding 30 s of VP8 ({W}x{H}, 30 fps, keyframe every 5 s) once ...");
    let frames = support::encode_vp8(W, H, FPS as i32, 900, TARGET_BPS, 150);
    if let Some(p) = cache {
        let mut b = Vec::new();
        for f in &frames {
            b.push(f.key as u8);
            b.extend_from_slice(&(f.data.len() as u32).to_le_bytes());
            b.extend_from_slice(&f.data);
        }
        let _ = std::fs::write(p, b);
    }
    frames
}

struct Handler {
    gathered: tokio::sync::watch::Sender<bool>,
    connected: tokio::sync::watch::Sender<bool>,
    /// Subscriber only: (video packets, sequence gaps) once `measuring`.
    video: Option<Arc<(AtomicU64, AtomicU64)>>,
    measuring: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self
            .connected
            .send(state == RTCPeerConnectionState::Connected);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let counts = self.video.clone();
        let measuring = self.measuring.clone();
        tokio::spawn(async move {
            let mut last: Option<u16> = None;
            let mut is_video: Option<bool> = None;
            while let Some(ev) = track.poll().await {
                let TrackRemoteEvent::OnRtpPacket(p) = ev else {
                    continue;
                };
                let Some(c) = &counts else { continue };
                if is_video.is_none() {
                    let mime = track
                        .codec(p.header.ssrc)
                        .await
                        .map(|c| c.mime_type)
                        .unwrap_or_default();
                    is_video = Some(mime.eq_ignore_ascii_case(MIME_TYPE_VP8));
                }
                if is_video != Some(true) {
                    continue;
                }
                let seq = p.header.sequence_number;
                if measuring.load(Ordering::Relaxed) {
                    c.0.fetch_add(1, Ordering::Relaxed);
                    if let Some(prev) = last {
                        let gap = seq.wrapping_sub(prev) as i16;
                        if gap > 1 {
                            c.1.fetch_add((gap - 1) as u64, Ordering::Relaxed);
                        }
                    }
                }
                if last.is_none_or(|l| (seq.wrapping_sub(l) as i16) > 0) {
                    last = Some(seq);
                }
            }
        });
    }
}

struct Peer {
    pc: Arc<dyn PeerConnection>,
    gathered: tokio::sync::watch::Receiver<bool>,
    connected: tokio::sync::watch::Receiver<bool>,
    video: Option<(Arc<TrackLocalStaticSample>, Arc<dyn RtpSender>)>,
    audio: Option<(Arc<TrackLocalStaticSample>, Arc<dyn RtpSender>)>,
}

/// A publisher (VP8 + Opus, sendonly in effect) or a subscriber (Opus out, video in).
async fn build_peer(
    bind: &str,
    publisher: bool,
    counts: Option<Arc<(AtomicU64, AtomicU64)>>,
    measuring: Arc<AtomicBool>,
) -> Peer {
    let (gtx, grx) = tokio::sync::watch::channel(false);
    let (ctx, crx) = tokio::sync::watch::channel(false);
    let handler = Arc::new(Handler {
        gathered: gtx,
        connected: ctx,
        video: counts,
        measuring,
    });
    let pc = client_pc(bind, handler).await;
    let mut peer = Peer {
        pc: pc.clone(),
        gathered: grx,
        connected: crx,
        video: None,
        audio: None,
    };
    let a = sample_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, "mic");
    if publisher {
        let v = sample_track(RtpCodecKind::Video, MIME_TYPE_VP8, "camera");
        let vs = pc
            .add_track(v.clone() as Arc<dyn TrackLocal>)
            .await
            .expect("add video");
        peer.video = Some((v, vs));
    }
    let as_ = pc
        .add_track(a.clone() as Arc<dyn TrackLocal>)
        .await
        .expect("add audio");
    peer.audio = Some((a, as_));
    if !publisher {
        pc.add_transceiver_from_kind(
            RtpCodecKind::Video,
            Some(RTCRtpTransceiverInit {
                direction: RTCRtpTransceiverDirection::Recvonly,
                ..Default::default()
            }),
        )
        .await
        .expect("video transceiver");
    }
    peer
}

impl Peer {
    /// The offer with its candidates, as the browser's JSON.
    async fn offer(&self) -> serde_json::Value {
        offer_with_candidates(&self.pc, &self.gathered, false).await
    }

    async fn answer(&self, answer: serde_json::Value) -> Res<()> {
        let a: RTCSessionDescription =
            serde_json::from_value(answer).map_err(|e| format!("answer json: {e}"))?;
        self.pc
            .set_remote_description(a)
            .await
            .map_err(|e| format!("set remote: {e}"))
    }

    /// RTP packets and bytes sent so far (retransmissions not counted): (video, audio, bytes).
    async fn sent(&self) -> (u64, u64, u64) {
        let report = self.pc.get_stats(Instant::now(), StatsSelector::None).await;
        let (mut v, mut a, mut b) = (0, 0, 0);
        for s in report.outbound_rtp_streams() {
            let n = s.sent_rtp_stream_stats.packets_sent;
            b += s.sent_rtp_stream_stats.bytes_sent;
            match s.sent_rtp_stream_stats.rtp_stream_stats.kind {
                RtpCodecKind::Video => v += n,
                _ => a += n,
            }
        }
        (v, a, b)
    }
}

async fn payload_type(sender: &Arc<dyn RtpSender>) -> u8 {
    for _ in 0..100 {
        if let Ok(p) = sender.get_parameters().await {
            if let Some(c) = p.rtp_parameters.codecs.first() {
                return c.payload_type;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("sender never negotiated a codec");
}

/// Sends the frames at 30 fps and an audio packet every 20 ms until `stop`.
fn spawn_media(
    peer: &Peer,
    frames: Arc<Vec<Frame>>,
    stop: Arc<AtomicBool>,
    keyframe_requests: Arc<AtomicU64>,
) {
    let want_key = Arc::new(AtomicBool::new(false));
    if let Some((vtrack, vsender)) = peer.video.clone() {
        {
            let (vtrack, want_key, stop) = (vtrack.clone(), want_key.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match vtrack.poll().await {
                        Some(TrackLocalEvent::OnRtcpPacket(_)) => {
                            keyframe_requests.fetch_add(1, Ordering::Relaxed);
                            want_key.store(true, Ordering::Relaxed);
                        }
                        Some(_) => {}
                        None => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
            });
        }
        let stop = stop.clone();
        tokio::spawn(async move {
            let pt = payload_type(&vsender).await;
            let ssrc = vtrack.ssrcs().await[0];
            let period = Duration::from_micros(1_000_000 / FPS as u64);
            let mut tick = tokio::time::interval(period);
            // Start at a random point of the loop so the publishers' keyframes do not all
            // coincide, but with a keyframe.
            let mut i = (rand::random::<u32>() as usize) % frames.len();
            while !frames[i].key {
                i = (i + 1) % frames.len();
            }
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if want_key.swap(false, Ordering::Relaxed) {
                    while !frames[i % frames.len()].key {
                        i += 1;
                    }
                }
                let f = &frames[i % frames.len()];
                let sample = Sample {
                    data: f.data.clone(),
                    duration: period,
                    ..Sample::new(Instant::now())
                };
                let _ = vtrack.write_sample(ssrc, pt, &sample, &[]).await;
                i += 1;
            }
        });
    }
    let (atrack, asender) = peer.audio.clone().expect("audio");
    tokio::spawn(async move {
        let pt = payload_type(&asender).await;
        let ssrc = atrack.ssrcs().await[0];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        let mut seed = rand::random::<u32>() | 1;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            let mut data = Vec::with_capacity(OPUS_BYTES);
            data.push(0xf8);
            while data.len() < OPUS_BYTES {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                data.push(seed as u8);
            }
            let sample = Sample {
                data: bytes::Bytes::from(data),
                duration: Duration::from_millis(20),
                ..Sample::new(Instant::now())
            };
            let _ = atrack.write_sample(ssrc, pt, &sample, &[]).await;
        }
    });
}

// ---------------------------------------------------------------------------------------
// Signalling: Janus HTTP API and media_server's line protocol

/// One HTTP/1.0 request (no keep-alive, no chunking); returns the JSON body.
async fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> Res<serde_json::Value> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).await.map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&resp);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("bad http response: {text}"))?;
    if !head.starts_with("HTTP/1.") || !head[9..].starts_with("200") {
        return Err(format!("http {method} {path}: {head}"));
    }
    serde_json::from_str(body).map_err(|e| format!("json from {path}: {e}: {body}"))
}

fn tx() -> String {
    Uuid::new_v4().simple().to_string()
}

struct JanusSession {
    url: String,
    session: u64,
    handle: u64,
}

async fn janus_post(url: &str, path: &str, mut body: serde_json::Value) -> Res<serde_json::Value> {
    body["transaction"] = tx().into();
    let r = http(url, "POST", path, Some(&body)).await?;
    match r["janus"].as_str() {
        Some("success") | Some("ack") => Ok(r),
        _ => Err(format!("janus {path}: {r}")),
    }
}

/// Long-polls the session until an event satisfies `pred`.
async fn janus_wait(
    url: &str,
    session: u64,
    limit: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> Res<serde_json::Value> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        let r = http(url, "GET", &format!("/janus/{session}?maxev=10"), None).await?;
        let evs = if r.is_array() {
            r.as_array().cloned().unwrap_or_default()
        } else {
            vec![r]
        };
        for ev in evs {
            if ev["janus"] == "event" && ev["plugindata"]["data"]["error"].is_string() {
                return Err(format!("janus error event: {ev}"));
            }
            if pred(&ev) {
                return Ok(ev);
            }
        }
    }
    Err("janus: no such event in time".into())
}

async fn janus_publish(url: &str, peer: &Peer, n: usize) -> Res<JanusSession> {
    let r = janus_post(url, "/janus", serde_json::json!({"janus": "create"})).await?;
    let session = r["data"]["id"].as_u64().ok_or("no session id")?;
    let r = janus_post(
        url,
        &format!("/janus/{session}"),
        serde_json::json!({"janus": "attach", "plugin": "janus.plugin.videoroom"}),
    )
    .await?;
    let handle = r["data"]["id"].as_u64().ok_or("no handle id")?;
    let hp = format!("/janus/{session}/{handle}");
    janus_post(
        url,
        &hp,
        serde_json::json!({"janus": "message", "body": {
            "request": "join", "ptype": "publisher", "room": JANUS_ROOM, "display": format!("pub{n}")
        }}),
    )
    .await?;
    janus_wait(url, session, Duration::from_secs(10), |ev| {
        ev["plugindata"]["data"]["videoroom"] == "joined"
    })
    .await?;
    let offer = peer.offer().await;
    janus_post(
        url,
        &hp,
        serde_json::json!({"janus": "message",
            "body": {"request": "configure", "audio": true, "video": true},
            "jsep": offer}),
    )
    .await?;
    let ev = janus_wait(url, session, Duration::from_secs(10), |ev| {
        ev["jsep"].is_object()
    })
    .await?;
    peer.answer(ev["jsep"].clone()).await?;
    Ok(JanusSession {
        url: url.to_string(),
        session,
        handle,
    })
}

/// Keeps the session's long poll open (events drained) until `stop`.
fn janus_keep(s: &JanusSession, stop: Arc<AtomicBool>) {
    let (url, session) = (s.url.clone(), s.session);
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            if http(&url, "GET", &format!("/janus/{session}?maxev=10"), None)
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
}

async fn line_request(url: &str, req: serde_json::Value) -> Res<serde_json::Value> {
    let s = tokio::net::TcpStream::connect(url)
        .await
        .map_err(|e| format!("connect {url}: {e}"))?;
    let (r, mut w) = s.into_split();
    let mut line = req.to_string();
    line.push('\n');
    w.write_all(line.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut lines = BufReader::new(r).lines();
    let reply = lines
        .next_line()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("media_server closed")?;
    let v: serde_json::Value = serde_json::from_str(&reply).map_err(|e| e.to_string())?;
    if let Some(e) = v.get("error") {
        return Err(format!("media_server: {e}"));
    }
    Ok(v)
}

async fn inspector_offer(
    url: &str,
    peer: &Peer,
    inspection: Uuid,
    id: Uuid,
    role: &str,
) -> Res<()> {
    let offer = peer.offer().await;
    let r = line_request(
        url,
        serde_json::json!({"offer": offer, "inspection": inspection.to_string(),
            "peer": id.to_string(), "role": role}),
    )
    .await?;
    peer.answer(r["answer"].clone()).await
}

// ---------------------------------------------------------------------------------------

fn main() {
    let a = args();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()))
        .try_init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(a));
}

struct Session {
    publisher: Peer,
    janus: Option<JanusSession>,
    inspection: Uuid,
    publisher_id: Uuid,
    subscriber: Option<(Peer, Uuid)>,
}

async fn run(a: Args) {
    let frames = Arc::new(load_frames(a.frames_cache.as_deref()));
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    let video_kbps = bytes as f64 * 8.0 / (frames.len() as f64 / FPS as f64) / 1e3;
    println!(
        "{} frames ({:.1} s), {:.0} kbit/s VP8 + {} kbit/s audio",
        frames.len(),
        frames.len() as f64 / FPS as f64,
        video_kbps,
        OPUS_BYTES * 8 * 50 / 1000
    );
    let pid = a.pid;
    let rss_idle = proc_kb(pid, "VmRSS:");
    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let keyframe_requests = Arc::new(AtomicU64::new(0));
    let sub_counts: Vec<Arc<(AtomicU64, AtomicU64)>> = (0..a.publishers)
        .map(|_| Arc::new((AtomicU64::new(0), AtomicU64::new(0))))
        .collect();
    let setup0 = Instant::now();
    let mut sessions = Vec::new();
    for n in 0..a.publishers {
        let publisher = build_peer(&a.bind, true, None, measuring.clone()).await;
        let inspection = Uuid::new_v4();
        let publisher_id = Uuid::new_v4();
        let mut janus = None;
        let mut subscriber = None;
        if a.server == "janus" {
            let s = janus_publish(&a.url, &publisher, n)
                .await
                .unwrap_or_else(|e| panic!("janus publisher {n}: {e}"));
            janus_keep(&s, stop.clone());
            janus = Some(s);
        } else {
            if a.subscribers {
                let sub = build_peer(
                    &a.bind,
                    false,
                    Some(sub_counts[n].clone()),
                    measuring.clone(),
                )
                .await;
                let id = Uuid::new_v4();
                inspector_offer(&a.url, &sub, inspection, id, "inspector")
                    .await
                    .unwrap_or_else(|e| panic!("inspector subscriber {n}: {e}"));
                subscriber = Some((sub, id));
            }
            inspector_offer(&a.url, &publisher, inspection, publisher_id, "publisher")
                .await
                .unwrap_or_else(|e| panic!("inspector publisher {n}: {e}"));
        }
        let mut c = publisher.connected.clone();
        if tokio::time::timeout(Duration::from_secs(10), c.wait_for(|v| *v))
            .await
            .is_err()
        {
            panic!("publisher {n} did not connect in 10 s");
        }
        spawn_media(
            &publisher,
            frames.clone(),
            stop.clone(),
            keyframe_requests.clone(),
        );
        if let Some((sub, _)) = &subscriber {
            spawn_media(sub, frames.clone(), stop.clone(), keyframe_requests.clone());
        }
        sessions.push(Session {
            publisher,
            janus,
            inspection,
            publisher_id,
            subscriber,
        });
    }
    println!(
        "{} publishers connected and sending ({:.1} s); warming up 5 s, measuring {} s",
        a.publishers,
        setup0.elapsed().as_secs_f64(),
        a.seconds
    );
    tokio::time::sleep(Duration::from_secs(5)).await;

    let sent = |s: &Vec<Session>| {
        let peers: Vec<Arc<dyn PeerConnection>> =
            s.iter().map(|s| s.publisher.pc.clone()).collect();
        async move {
            let mut t = (0, 0, 0);
            for pc in peers {
                let p = Peer {
                    pc,
                    gathered: tokio::sync::watch::channel(true).1,
                    connected: tokio::sync::watch::channel(true).1,
                    video: None,
                    audio: None,
                };
                let (v, a, b) = p.sent().await;
                t = (t.0 + v, t.1 + a, t.2 + b);
            }
            t
        }
    };
    let load0 = loadavg();
    let sent0 = sent(&sessions).await;
    let (cpu0, self0, rec0, t0) = (
        proc_cpu(pid),
        proc_cpu(std::process::id()),
        dir_bytes(&a.rec_dir),
        Instant::now(),
    );
    measuring.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(a.seconds)).await;
    let (cpu1, self1, rec1, wall) = (
        proc_cpu(pid),
        proc_cpu(std::process::id()),
        dir_bytes(&a.rec_dir),
        t0.elapsed().as_secs_f64(),
    );
    measuring.store(false, Ordering::Relaxed);
    let sent1 = sent(&sessions).await;
    let load1 = loadavg();
    let rss = proc_kb(pid, "VmRSS:");
    let hwm = proc_kb(pid, "VmHWM:");
    let kf = keyframe_requests.load(Ordering::Relaxed);

    // Stop sending, let the last packets arrive, then leave so the recordings are closed.
    stop.store(true, Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let total_sent = sent(&sessions).await;
    for s in &sessions {
        if let Some(j) = &s.janus {
            let _ = janus_post(
                &j.url,
                &format!("/janus/{}/{}", j.session, j.handle),
                serde_json::json!({"janus": "message", "body": {"request": "leave"}}),
            )
            .await;
        } else {
            let _ = line_request(
                &a.url,
                serde_json::json!({"leave": true, "inspection": s.inspection.to_string(),
                    "peer": s.publisher_id.to_string()}),
            )
            .await;
            if let Some((_, id)) = &s.subscriber {
                let _ = line_request(
                    &a.url,
                    serde_json::json!({"leave": true, "inspection": s.inspection.to_string(),
                        "peer": id.to_string()}),
                )
                .await;
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (rec_v, rec_a) = recorded_packets(&a.rec_dir);
    for s in &sessions {
        let _ = s.publisher.pc.close().await;
        if let Some(j) = &s.janus {
            let _ = janus_post(
                &j.url,
                &format!("/janus/{}", j.session),
                serde_json::json!({"janus": "destroy"}),
            )
            .await;
        }
    }

    let n = a.publishers as f64;
    let cpu_pct = (cpu1 - cpu0) / wall * 100.0;
    let (sub_rx, sub_lost) = sub_counts.iter().fold((0, 0), |(r, l), c| {
        (
            r + c.0.load(Ordering::Relaxed),
            l + c.1.load(Ordering::Relaxed),
        )
    });
    let loss_v = 100.0 * (1.0 - rec_v as f64 / total_sent.0.max(1) as f64);
    let loss_a = 100.0 * (1.0 - rec_a as f64 / total_sent.1.max(1) as f64);
    println!(
        "{}: {} publishers, server {:.1} % of one core = {:.2} % per publisher; client {:.1} %",
        a.server,
        a.publishers,
        cpu_pct,
        cpu_pct / n,
        (self1 - self0) / wall * 100.0
    );
    println!(
        "  RSS {:.1} MB (idle {:.1} MB, +{:.2} MB per publisher), peak {:.1} MB",
        rss as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        (rss as f64 - rss_idle as f64) / 1024.0 / n,
        hwm as f64 / 1024.0
    );
    println!(
        "  window: sent {} video + {} audio packets, {:.2} MB; recorded +{:.2} MB",
        sent1.0 - sent0.0,
        sent1.1 - sent0.1,
        (sent1.2 - sent0.2) as f64 / 1e6,
        (rec1 - rec0) as f64 / 1e6
    );
    println!(
        "  whole run: sent {} video / {} audio packets, recorded {} / {} unique ({:.3} % / {:.3} % missing); keyframe requests {}",
        total_sent.0, total_sent.1, rec_v, rec_a, loss_v, loss_a, kf
    );
    if a.subscribers {
        println!(
            "  subscribers: {} video packets received in the window, {} lost ({:.3} %)",
            sub_rx,
            sub_lost,
            100.0 * sub_lost as f64 / (sub_rx + sub_lost).max(1) as f64
        );
    }
    println!("  load average {load0} -> {load1}");
    println!(
        "RESULT label={} server={} n={} subs={} cpu_pct={:.2} per_pub={:.3} client_pct={:.1} rss_mb={:.1} hwm_mb={:.1} idle_mb={:.1} per_pub_mb={:.2} sent_mb={:.2} rec_mb={:.2} sent_v={} sent_a={} rec_v={} rec_a={} miss_v_pct={:.3} miss_a_pct={:.3} sub_rx={} sub_lost={} kf={} load0={} load1={}",
        if a.label.is_empty() { "-" } else { &a.label },
        a.server,
        a.publishers,
        a.subscribers as u8,
        cpu_pct,
        cpu_pct / n,
        (self1 - self0) / wall * 100.0,
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        rss_idle as f64 / 1024.0,
        (rss as f64 - rss_idle as f64) / 1024.0 / n,
        (sent1.2 - sent0.2) as f64 / 1e6,
        (rec1 - rec0) as f64 / 1e6,
        total_sent.0,
        total_sent.1,
        rec_v,
        rec_a,
        loss_v,
        loss_a,
        sub_rx,
        sub_lost,
        kf,
        load0,
        load1
    );
    std::process::exit(0);
}
