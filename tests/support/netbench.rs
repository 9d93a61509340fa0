//! The network bench (issue 19 item 4): a phone (headless Chromium, fake camera) publishes
//! through an impairing UDP relay to a real server, the inspection is finished, and the
//! finished recording is measured with ffprobe.
//!
//! This machine's kernel has no `netem`, so every impairment is made in user space, by the
//! relay: the server announces the relay's address as its media candidate
//! (`media_public_ip`, the 1:1 NAT setting), the browser sends its media there. One-way delay
//! and jitter apply both ways (in order: a mobile network delays more than it reorders);
//! random loss, Gilbert–Elliott bursts and the rate cap (a token bucket with a tail-dropped
//! queue, what `tc tbf` does) apply to the phone's uplink; an outage drops everything both
//! ways. The signalling WebSocket (TCP) is not impaired: the outage is the media path's.
//!
//! The same relay reads what the server sends back in the clear SRTCP header: transport-cc
//! feedback (RTPFB FMT 15), the input of the browser's send-side bandwidth estimate.
//!
//! `NB_DEBUG=1` prints the phone's browser console and its peer connection's states at the
//! end of a run (what to look at when video does not come back).

use std::net::{SocketAddr, UdpSocket as StdUdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use tokio::net::UdpSocket;

use crate::browser::{Browser, Device};
use crate::{spawn_app_with, ws_connect, Role};

/// Loss in bursts: a two-state (Gilbert–Elliott) channel that drops every packet in the bad
/// state. The long-run loss is `enter / (enter + leave)`, the mean burst `1000 / leave`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bursts {
    /// Chance per packet, ‰, of going from good to bad.
    pub enter_per_mille: u32,
    /// Chance per packet, ‰, of going from bad to good.
    pub leave_per_mille: u32,
}

/// What the relay does to the traffic.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Impairment {
    /// One-way delay, both ways.
    pub delay: Duration,
    /// Up to this much extra delay per packet, uniform (packets stay in order).
    pub jitter: Duration,
    /// Random uplink loss, ‰.
    pub loss_per_mille: u32,
    /// Uplink loss in bursts.
    pub bursts: Option<Bursts>,
    /// Uplink rate cap, kbit/s.
    pub rate_kbps: Option<u32>,
}

impl Impairment {
    /// No impairment.
    pub const CLEAN: Impairment = Impairment {
        delay: Duration::ZERO,
        jitter: Duration::ZERO,
        loss_per_mille: 0,
        bursts: None,
        rate_kbps: None,
    };
}

/// Longest a packet waits in the rate cap's queue before it is dropped (tbf's `latency`).
const QUEUE_LIMIT: Duration = Duration::from_millis(300);

/// What the relay saw.
#[derive(Default, Debug)]
pub struct BenchCounts {
    /// Datagrams from the browser, and those dropped (loss, bursts, queue, outage).
    pub up: AtomicU64,
    pub up_dropped: AtomicU64,
    /// Bytes of the browser's datagrams forwarded.
    pub up_bytes: AtomicU64,
    /// Datagrams from the server, and those dropped (outage).
    pub down: AtomicU64,
    pub down_dropped: AtomicU64,
    /// Transport-wide congestion control feedback messages (RTPFB, FMT 15) from the server.
    pub twcc_feedback: AtomicU64,
    /// Generic NACKs (RTPFB, FMT 1) from the server.
    pub nacks: AtomicU64,
}

struct Control {
    now: Impairment,
    outage_until: Option<Instant>,
    rng: u64,
    bad: bool,
    /// When the capped uplink is free again.
    link_free_at: Instant,
    /// The last release time per direction (keeps order under jitter).
    last_release: [Instant; 2],
}

impl Control {
    /// xorshift64: reproducible "random" for a run.
    fn rand(&mut self, modulo: u64) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng % modulo
    }

    /// When to send a datagram of `len` bytes that arrived now, or None to drop it.
    fn admit(&mut self, up: bool, len: usize, now: Instant) -> Option<Instant> {
        if self.outage_until.is_some_and(|t| now < t) {
            return None;
        }
        let imp = self.now;
        let mut at = now;
        if up {
            if imp.loss_per_mille > 0 && self.rand(1000) < u64::from(imp.loss_per_mille) {
                return None;
            }
            if let Some(b) = imp.bursts {
                let flip = if self.bad {
                    b.leave_per_mille
                } else {
                    b.enter_per_mille
                };
                if self.rand(1000) < u64::from(flip) {
                    self.bad = !self.bad;
                }
                if self.bad {
                    return None;
                }
            }
            if let Some(kbps) = imp.rate_kbps {
                let start = self.link_free_at.max(now);
                if start - now > QUEUE_LIMIT {
                    return None;
                }
                // IP + UDP headers count against the link too.
                let bits = ((len + 28) * 8) as u64;
                let done = start + Duration::from_micros(bits * 1000 / u64::from(kbps.max(1)));
                self.link_free_at = done;
                at = done;
            }
        }
        let jitter = if imp.jitter.is_zero() {
            Duration::ZERO
        } else {
            Duration::from_micros(self.rand(imp.jitter.as_micros() as u64 + 1))
        };
        let i = usize::from(!up);
        let release = (at + imp.delay + jitter).max(self.last_release[i]);
        self.last_release[i] = release;
        Some(release)
    }
}

/// A running impairing relay; dropping it stops it. It stands where a mobile network's NAT
/// would: each address the phone sends from gets a socket of its own towards the server (a
/// mapping), as a NAT gives each inside port its own outside port.
pub struct ImpairedRelay {
    /// What it has seen so far.
    pub counts: Arc<BenchCounts>,
    control: Arc<Mutex<Control>>,
    mappings: Arc<tokio::sync::Mutex<Mappings>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The relay's mappings: the phone's address → the socket towards the server, and the task
/// that carries that socket's answers back.
type Mappings =
    std::collections::HashMap<SocketAddr, (Arc<UdpSocket>, tokio::task::JoinHandle<()>)>;

impl Drop for ImpairedRelay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        if let Ok(m) = self.mappings.try_lock() {
            for (_, t) in m.values() {
                t.abort();
            }
        }
    }
}

type Queue = tokio::sync::mpsc::UnboundedSender<(Instant, Vec<u8>, Target)>;

/// Where a queued datagram goes.
#[derive(Clone)]
enum Target {
    /// Up, to the server through a mapping's socket.
    Server(Arc<UdpSocket>),
    /// Down, to the phone's address.
    Phone(SocketAddr),
}

impl ImpairedRelay {
    /// Listens on `public` (the address the server announces), forwards to `server`.
    pub async fn start(
        public: SocketAddr,
        server: SocketAddr,
        impairment: Impairment,
    ) -> std::io::Result<ImpairedRelay> {
        let outside = Arc::new(UdpSocket::bind(public).await?);
        let counts = Arc::new(BenchCounts::default());
        let now = Instant::now();
        let control = Arc::new(Mutex::new(Control {
            now: impairment,
            outage_until: None,
            rng: 0x9E37_79B9_7F4A_7C15,
            bad: false,
            link_free_at: now,
            last_release: [now; 2],
        }));
        let mappings: Arc<tokio::sync::Mutex<Mappings>> = Default::default();
        let mut tasks = Vec::new();

        // A sender per direction: sends each datagram at its release time, in order.
        let (up_tx, up_rx) = tokio::sync::mpsc::unbounded_channel();
        let (down_tx, down_rx) = tokio::sync::mpsc::unbounded_channel();
        tasks.push(tokio::spawn(send_in_order(up_rx, outside.clone())));
        tasks.push(tokio::spawn(send_in_order(down_rx, outside.clone())));
        {
            let (outside, control, counts, mappings) = (
                outside.clone(),
                control.clone(),
                counts.clone(),
                mappings.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = outside.recv_from(&mut buf).await {
                    counts.up.fetch_add(1, Ordering::Relaxed);
                    let via = {
                        let mut m = mappings.lock().await;
                        match m.get(&from) {
                            Some((via, _)) => via.clone(),
                            None => {
                                let Ok(via) = new_mapping(server).await else {
                                    continue;
                                };
                                let back = tokio::spawn(carry_down(
                                    via.clone(),
                                    from,
                                    control.clone(),
                                    counts.clone(),
                                    down_tx.clone(),
                                ));
                                m.insert(from, (via.clone(), back));
                                via
                            }
                        }
                    };
                    let at = control
                        .lock()
                        .expect("relay lock")
                        .admit(true, n, Instant::now());
                    forward(
                        &up_tx,
                        at,
                        &buf[..n],
                        Target::Server(via),
                        &counts.up_dropped,
                    );
                    if at.is_some() {
                        counts.up_bytes.fetch_add(n as u64, Ordering::Relaxed);
                    }
                }
            }));
        }
        Ok(ImpairedRelay {
            counts,
            control,
            mappings,
            tasks,
        })
    }

    /// Change the impairment from now on.
    pub fn set(&self, impairment: Impairment) {
        self.control.lock().expect("relay lock").now = impairment;
    }

    /// Drop everything, both ways, for `d` from now.
    pub fn outage(&self, d: Duration) {
        self.control.lock().expect("relay lock").outage_until = Some(Instant::now() + d);
    }

    /// A change of network as the server sees it: nothing passes for `gap`, and every
    /// mapping is forgotten, so what the phone sends next reaches the server from new
    /// addresses (a new public address, a NAT that rebound), and what the server sends to
    /// the old ones is lost. The phone's own sockets stay: on loopback a browser has no
    /// second interface to move to.
    pub async fn switch_network(&self, gap: Duration) {
        self.outage(gap);
        for (_, (_, back)) in self.mappings.lock().await.drain() {
            back.abort();
        }
    }
}

/// Sends each queued datagram at its release time, in order (one task per direction).
async fn send_in_order(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<(Instant, Vec<u8>, Target)>,
    outside: Arc<UdpSocket>,
) {
    while let Some((at, d, to)) = rx.recv().await {
        tokio::time::sleep_until(at.into()).await;
        let _ = match to {
            Target::Server(via) => via.send(&d).await,
            Target::Phone(addr) => outside.send_to(&d, addr).await,
        };
    }
}

/// A socket towards the server for one phone address.
async fn new_mapping(server: SocketAddr) -> std::io::Result<Arc<UdpSocket>> {
    let via = UdpSocket::bind("127.0.0.1:0").await?;
    via.connect(server).await?;
    Ok(Arc::new(via))
}

/// What the server sends to one mapping goes back to its phone address, impaired.
async fn carry_down(
    via: Arc<UdpSocket>,
    phone: SocketAddr,
    control: Arc<Mutex<Control>>,
    counts: Arc<BenchCounts>,
    down: Queue,
) {
    let mut buf = vec![0u8; 2048];
    while let Ok(n) = via.recv(&mut buf).await {
        let d = &buf[..n];
        counts.down.fetch_add(1, Ordering::Relaxed);
        // The first RTCP header of an SRTCP compound is in the clear.
        if d.len() >= 8 && d[0] >> 6 == 2 && d[1] == 205 {
            match d[0] & 0x1f {
                15 => counts.twcc_feedback.fetch_add(1, Ordering::Relaxed),
                1 => counts.nacks.fetch_add(1, Ordering::Relaxed),
                _ => 0,
            };
        }
        let at = control
            .lock()
            .expect("relay lock")
            .admit(false, n, Instant::now());
        forward(&down, at, d, Target::Phone(phone), &counts.down_dropped);
    }
}

fn forward(q: &Queue, at: Option<Instant>, d: &[u8], to: Target, dropped: &AtomicU64) {
    match at {
        Some(at) => {
            let _ = q.send((at, d.to_vec(), to));
        }
        None => {
            dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A UDP port below the kernel's ephemeral range (32768+), free on both 127.0.0.1 and
/// 127.0.0.2, so the relay can stand at the same port on the announced address and no other
/// test's port-0 socket can take it between this check and the server's bind.
pub fn free_media_port() -> Result<u16> {
    let seed = std::process::id() as u16 % 12_000;
    (0..12_000u16)
        .map(|k| 20_000 + (k + seed) % 12_000)
        .find(|&p| {
            StdUdpSocket::bind(("127.0.0.1", p)).is_ok()
                && StdUdpSocket::bind(("127.0.0.2", p)).is_ok()
        })
        .context("a free UDP port below the ephemeral range")
}

// ---------------------------------------------------------------------------------------
// The finished recording, measured.

/// Packet times of one stream of a file: (pts, duration), seconds.
fn packets(file: &Path, stream: &str) -> Result<Vec<(f64, f64)>> {
    let out = std::process::Command::new("ffprobe")
        .args(["-v", "error", "-select_streams", stream])
        .args([
            "-show_entries",
            "packet=pts_time,duration_time",
            "-of",
            "csv=p=0",
        ])
        .arg(file)
        .output()
        .context("running ffprobe")?;
    ensure!(
        out.status.success(),
        "ffprobe failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<(f64, f64)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut it = l.split(',');
            let pts = it.next()?.trim().parse().ok()?;
            let dur = it.next().and_then(|d| d.trim().parse().ok()).unwrap_or(0.0);
            Some((pts, dur))
        })
        .collect();
    v.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(v)
}

/// Whether the whole file decodes (ffmpeg exits 0; the decoder's complaints about frames
/// that lost a reference are counted, not fatal: a lossy network makes some), and whether a
/// seek to its middle gives a frame.
fn plays_and_seeks(file: &Path, duration: f64) -> Result<(bool, Vec<String>, bool)> {
    let run = |args: &[&str]| -> Result<(bool, Vec<String>)> {
        let out = std::process::Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin"])
            .args(args)
            .output()
            .context("running ffmpeg")?;
        let errors = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::to_owned)
            .collect();
        Ok((out.status.success(), errors))
    };
    let f = file.to_string_lossy();
    let (plays, errors) = run(&["-i", &f, "-f", "null", "-"])?;
    let mid = format!("{:.3}", duration / 2.0);
    let (seeks, _) = run(&["-ss", &mid, "-i", &f, "-frames:v", "1", "-f", "null", "-"])?;
    Ok((plays, errors, seeks))
}

/// The recording of a bench run, measured by ffprobe.
#[derive(Debug, Clone)]
pub struct Recording {
    pub file: PathBuf,
    /// Video frame times, seconds of the file.
    pub video: Vec<f64>,
    /// Audio packets (pts, duration), seconds.
    pub audio: Vec<(f64, f64)>,
    pub plays: bool,
    /// What the decoder said while playing it through (one line each).
    pub decode_errors: Vec<String>,
    pub seeks: bool,
}

/// The longest hole within `[from, to)` of a file, and where it begins.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Gap {
    pub secs: f64,
    pub at: f64,
}

impl Recording {
    /// Reads the file's streams.
    pub fn measure(file: &Path) -> Result<Recording> {
        let video: Vec<f64> = packets(file, "v:0")?.into_iter().map(|p| p.0).collect();
        let audio = packets(file, "a:0")?;
        let end = video
            .last()
            .copied()
            .unwrap_or(0.0)
            .max(audio.last().map(|a| a.0).unwrap_or(0.0));
        let (plays, decode_errors, seeks) = plays_and_seeks(file, end)?;
        Ok(Recording {
            file: file.to_path_buf(),
            video,
            audio,
            plays,
            decode_errors,
            seeks,
        })
    }

    /// The longest interval between consecutive video frames around `[from, to)` (a frame
    /// before `from` and after `to` count as the edges, so a freeze over an edge is seen).
    pub fn longest_freeze(&self, from: f64, to: f64) -> Gap {
        longest(&self.video, from, to, |_| 0.0)
    }

    /// The longest stretch without sound: from one audio packet's end to the next's start.
    pub fn longest_audio_gap(&self, from: f64, to: f64) -> Gap {
        let starts: Vec<f64> = self.audio.iter().map(|a| a.0).collect();
        let durations = &self.audio;
        longest(&starts, from, to, |i| durations[i].1)
    }

    /// Video frames per second within `[from, to)`.
    pub fn fps(&self, from: f64, to: f64) -> f64 {
        let n = self.video.iter().filter(|&&t| t >= from && t < to).count();
        n as f64 / (to - from).max(1e-3)
    }

    /// The first video frame at or after `t`.
    pub fn first_frame_after(&self, t: f64) -> Option<f64> {
        self.video.iter().copied().find(|&v| v >= t)
    }
}

/// Over sorted `times`, the longest `times[i+1] - times[i] - dur(i)` for pairs overlapping
/// `[from, to)`.
fn longest(times: &[f64], from: f64, to: f64, dur: impl Fn(usize) -> f64) -> Gap {
    let mut best = Gap {
        secs: 0.0,
        at: from,
    };
    for i in 0..times.len().saturating_sub(1) {
        let (a, b) = (times[i], times[i + 1]);
        if b < from || a >= to {
            continue;
        }
        let g = b - a - dur(i);
        if g > best.secs {
            best = Gap { secs: g, at: a };
        }
    }
    best
}

// ---------------------------------------------------------------------------------------
// A run: the server, the relay, a phone, phases, the finished file.

/// One phase of a run: an impairment for a while, optionally an outage at its start.
#[derive(Debug, Clone, Default)]
pub struct Phase {
    pub name: &'static str,
    pub impairment: Impairment,
    pub secs: f64,
    /// An outage of this many seconds at the start of the phase.
    pub outage_secs: Option<f64>,
    /// The inspector asks the phone for a still this many seconds into the phase (the
    /// console's button when the run has a console, else a `request_frame` op).
    pub request_still_at: Option<f64>,
    /// A change of network at the phase's start: 1 s without any packet, then a new address
    /// at the server ([`ImpairedRelay::switch_network`]); the page hears of it as a browser
    /// does (`online`) and restarts ICE.
    pub network_switch: bool,
}

/// What a run has besides the phone.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// The inspector's console in a browser of its own, sampled once a second; after the
    /// finish the same browser opens the review page at the first still.
    pub console: bool,
}

/// What the review page showed at a moment of a stills period (with a console).
#[derive(Debug, Clone)]
pub struct ReviewedStill {
    /// Seconds of the recording the player was sent to.
    pub at: f64,
    /// The still that should be shown there (the latest one at or before `at`).
    pub expected: String,
    /// The `src` of the still the page showed over the video, if any.
    pub shown: Option<String>,
    /// Its caption.
    pub caption: String,
}

/// What the inspector's console showed (with [`RunOptions::console`]).
#[derive(Debug, Clone, Default)]
pub struct ConsoleSample {
    /// The low-bandwidth note over the video is shown.
    pub stills_note: bool,
    /// The still shown in place of the video (its URL), if one is.
    pub still_src: Option<String>,
    /// The note's text.
    pub text: String,
    /// The reception line's state (`#reception`, what the server receives from the phone).
    pub reception: String,
}

/// A still the phone sent (`frame` event), placed on the recording's timeline.
#[derive(Debug, Clone)]
pub struct Still {
    /// The evidence id.
    pub id: String,
    /// Seconds of the recording (`at_micros − epoch_micros`).
    pub at: f64,
    pub reason: String,
    pub width: u64,
    pub height: u64,
}

/// What the phone's getStats said during a phase (once a second, see web/rtc.js).
#[derive(Debug, Clone, Default)]
pub struct PhoneSample {
    pub sent_kbps: Option<f64>,
    pub available_kbps: Option<f64>,
    pub limitation: Option<String>,
    pub state: Option<String>,
    /// `video` or `stills` (web/lowband.js).
    pub video_mode: Option<String>,
    /// The ICE username fragment of the phone's current local description (a new one after
    /// an ICE restart).
    pub ufrag: Option<String>,
}

/// A phase measured.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    pub name: &'static str,
    pub impairment: Impairment,
    /// Seconds of the recording.
    pub from: f64,
    pub to: f64,
    pub longest_freeze: Gap,
    pub longest_audio_gap: Gap,
    pub fps: f64,
    /// With an outage: the first frame after the network came back, seconds after it.
    pub video_back_after: Option<f64>,
    pub outage: Option<(f64, f64)>,
    pub phone: Vec<PhoneSample>,
    /// The console's view, once a second (with a console).
    pub console: Vec<ConsoleSample>,
    /// The stills received within the phase.
    pub stills: Vec<Still>,
    /// The longest stretch without a picture of the camera: video frames and stills together.
    pub longest_without_picture: Gap,
}

impl PhaseReport {
    /// How many times the phone's ICE credentials changed during the phase (ICE restarts).
    pub fn ice_restarts(&self) -> usize {
        let u: Vec<&str> = self
            .phone
            .iter()
            .filter_map(|s| s.ufrag.as_deref())
            .collect();
        u.windows(2).filter(|w| w[0] != w[1]).count()
    }

    /// The median of the phone's sent video bit rate in the phase's second half.
    pub fn median_sent_kbps(&self) -> Option<f64> {
        median(
            self.phone[self.phone.len() / 2..]
                .iter()
                .filter_map(|s| s.sent_kbps),
        )
    }

    /// How often the phone said what limited its video (`qualityLimitationReason`:
    /// `bandwidth`, `cpu`, `none`), most frequent first.
    pub fn limitations(&self) -> String {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for s in &self.phone {
            let r = s.limitation.clone().unwrap_or_else(|| "?".into());
            match counts.iter_mut().find(|c| c.0 == r) {
                Some(c) => c.1 += 1,
                None => counts.push((r, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1));
        counts
            .iter()
            .map(|(r, n)| format!("{r}×{n}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The same of the browser's bandwidth estimate.
    pub fn median_available_kbps(&self) -> Option<f64> {
        median(
            self.phone[self.phone.len() / 2..]
                .iter()
                .filter_map(|s| s.available_kbps),
        )
    }
}

fn median(it: impl Iterator<Item = f64>) -> Option<f64> {
    let mut v: Vec<f64> = it.collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    Some(v[v.len() / 2])
}

/// A whole run.
#[derive(Debug)]
pub struct RunReport {
    pub phases: Vec<PhaseReport>,
    pub recording: Recording,
    /// The server's answer as the phone applied it.
    pub answer_sdp: String,
    /// The phone's video sender: `content_hint`, `degradation_preference`, `max_bitrate`.
    pub sender: Value,
    pub twcc_feedback: u64,
    pub nacks: u64,
    pub up_dropped: u64,
    pub up: u64,
    /// Every still of the run.
    pub stills: Vec<Still>,
    /// The review page at a still (with a console and at least two stills).
    pub reviewed: Option<ReviewedStill>,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

async fn phone_sample(phone: &Browser) -> Result<PhoneSample> {
    let v = phone
        .js("const e = document.getElementById('uplink'); \
             return e && !e.hidden ? {sent: e.dataset.sentKbps, avail: e.dataset.availableKbps, \
             lim: e.dataset.limitation || null, state: e.dataset.state, \
             mode: e.dataset.videoMode || null, \
             ufrag: ((window.__rtcPc?.localDescription?.sdp || '').match(/a=ice-ufrag:(\\S+)/) || [])[1] || null} : null")
        .await?;
    let num = |k: &str| v[k].as_str().and_then(|s| s.parse::<f64>().ok());
    Ok(PhoneSample {
        sent_kbps: num("sent"),
        available_kbps: num("avail"),
        limitation: v["lim"].as_str().map(str::to_owned),
        state: v["state"].as_str().map(str::to_owned),
        video_mode: v["mode"].as_str().map(str::to_owned),
        ufrag: v["ufrag"].as_str().map(str::to_owned),
    })
}

async fn console_sample(console: &Browser) -> Result<ConsoleSample> {
    let v = console
        .js("const n = document.getElementById('stills-note'); \
             const i = document.getElementById('remote-still'); \
             const r = document.getElementById('reception'); \
             return {note: !n.hidden, text: n.textContent, src: i.hidden ? null : i.getAttribute('src'), \
                     reception: r.hidden ? '' : r.dataset.state}")
        .await?;
    Ok(ConsoleSample {
        stills_note: v["note"].as_bool().unwrap_or(false),
        still_src: v["src"].as_str().map(str::to_owned),
        text: v["text"].as_str().unwrap_or_default().to_owned(),
        reception: v["reception"].as_str().unwrap_or_default().to_owned(),
    })
}

/// Runs `phases` after `warmup_secs` of a clean network, finishes the inspection and
/// measures its recording. `label` names the browser's profile and screenshots.
pub async fn run(label: &str, warmup_secs: f64, phases: &[Phase]) -> Result<RunReport> {
    run_with(label, warmup_secs, phases, RunOptions::default()).await
}

/// [`run`] with a console (or not).
pub async fn run_with(
    label: &str,
    warmup_secs: f64,
    phases: &[Phase],
    opts: RunOptions,
) -> Result<RunReport> {
    let port = free_media_port()?;
    let public: SocketAddr = format!("127.0.0.2:{port}").parse()?;
    let app = spawn_app_with(|c| {
        c.media_udp = format!("127.0.0.1:{port}");
        c.media_public_ip = Some(public.ip());
    })
    .await;
    let relay = ImpairedRelay::start(
        public,
        format!("127.0.0.1:{port}").parse()?,
        Impairment::CLEAN,
    )
    .await?;

    let insp = app.staff("inspector1", Role::Inspector).await;
    let id = insp.create_inspection().await;
    let url = insp.invite_url(&id, "Телефон").await;
    let mut wi = ws_connect(&insp, &id)
        .await
        .map_err(|s| anyhow::anyhow!("the inspector's socket: HTTP {s}"))?;
    wi.hello(None).await;
    let r = wi.op("nb-start", json!({"kind": "start"})).await;
    ensure!(r["type"] == "ack", "start: {r}");

    let phone = Browser::launch(label, Device::Phone).await?;
    // The test reads the answer the phone applied (not the page's business to expose it).
    phone
        .cdp(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({"source": "(() => { const orig = RTCPeerConnection.prototype.setRemoteDescription; \
                RTCPeerConnection.prototype.setRemoteDescription = function (d) { \
                  if (d && d.type === 'answer') window.__rtcAnswerSdp = d.sdp; \
                  window.__rtcPc = this; \
                  return orig.apply(this, arguments); }; })();"}),
        )
        .await?;
    phone
        .set_geolocation(&app.address, 55.757_81, 37.613_05, 10.0)
        .await?;
    phone.goto(&url).await?;
    phone
        .wait_true(
            "the intro",
            "return !document.getElementById('view-intro').hidden",
            Duration::from_secs(20),
        )
        .await?;
    phone.click("#biz-start").await?;
    phone
        .wait_true(
            "video leaving the phone",
            "const e = document.getElementById('uplink'); \
             return !!e && !e.hidden && Number(e.dataset.sentKbps) > 50",
            Duration::from_secs(30),
        )
        .await?;
    // The inspector's console, signed in as the inspector who started the inspection.
    let console = match opts.console {
        false => None,
        true => {
            let b = Browser::launch(&format!("{label}-console"), Device::Desktop).await?;
            b.goto(&format!("{}/", app.address)).await?;
            b.sign_in("inspector1", crate::STAFF_PASSWORD).await?;
            b.goto(&format!("{}/#/room/{id}", app.address)).await?;
            b.wait_true(
                "the console's room",
                "return document.getElementById('room-conn').dataset.state === 'open'",
                Duration::from_secs(20),
            )
            .await?;
            Some(b)
        }
    };
    tokio::time::sleep(Duration::from_secs_f64(warmup_secs)).await;

    // Each phase's wall-clock span, and the phone's view once a second.
    let mut spans = Vec::new();
    for p in phases {
        relay.set(p.impairment);
        let start = now_micros();
        let mut outage = p.outage_secs.map(|s| {
            relay.outage(Duration::from_secs_f64(s));
            (start, start + (s * 1e6) as i64)
        });
        if p.network_switch {
            let gap = Duration::from_secs(1);
            relay.switch_network(gap).await;
            // The page learns of it as a phone's browser does, when the new network is up;
            // video is measured from then.
            tokio::time::sleep(gap).await;
            phone
                .js("window.dispatchEvent(new Event('online')); return true")
                .await?;
            outage = Some((start, now_micros()));
        }
        let mut samples = Vec::new();
        let mut seen = Vec::new();
        let mut asked = p.request_still_at.is_none();
        let t0 = Instant::now();
        while t0.elapsed().as_secs_f64() < p.secs {
            // The inspector's socket is read while the phase runs: its pings answered, its
            // events not left to fill the server's queue for this socket.
            let tick = Instant::now() + Duration::from_secs(1);
            loop {
                let left = tick.saturating_duration_since(Instant::now());
                match wi.recv_within(left).await {
                    Err(()) => break,
                    Ok(Some(_)) => continue,
                    Ok(None) => anyhow::bail!("the inspector's socket closed during {}", p.name),
                }
            }
            samples.push(phone_sample(&phone).await?);
            if let Some(c) = &console {
                seen.push(console_sample(c).await?);
            }
            if !asked
                && p.request_still_at
                    .is_some_and(|s| t0.elapsed().as_secs_f64() >= s)
            {
                asked = true;
                match &console {
                    Some(c) => c.click("#request-still").await?,
                    None => {
                        let r = wi.op("nb-still", json!({"kind": "request_frame"})).await;
                        ensure!(r["type"] == "ack", "request_frame: {r}");
                    }
                }
            }
        }
        spans.push((start, now_micros(), outage, samples, seen));
    }
    if let Some(c) = &console {
        c.screenshot(&format!("{label}-console")).await?;
    }
    phone.screenshot(&format!("{label}-phone")).await?;
    if std::env::var_os("NB_DEBUG").is_some() {
        for l in phone.console_logs().await? {
            eprintln!("phone console: {l}");
        }
        let st = phone.js("const pc = window.__rtcPc; return pc ? {c: pc.connectionState, s: pc.signalingState, i: pc.iceConnectionState} : null").await?;
        eprintln!("phone pc: {st}");
    }
    relay.set(Impairment::CLEAN);
    let answer_sdp = phone
        .js("return window.__rtcAnswerSdp || ''")
        .await?
        .as_str()
        .unwrap_or_default()
        .to_owned();
    // What the page set on its video sender (web/rtc.js `_tuneSenders`).
    let sender = phone
        .js(
            "const pc = window.__rtcPc; \
             const s = pc && pc.getSenders().find(s => s.track && s.track.kind === 'video'); \
             if (!s) return null; const p = s.getParameters(); \
             return {content_hint: s.track.contentHint, \
                     degradation_preference: p.degradationPreference ?? null, \
                     max_bitrate: p.encodings && p.encodings[0] ? p.encodings[0].maxBitrate ?? null : null}",
        )
        .await?;
    let r = wi.op("nb-finish", json!({"kind": "finish"})).await;
    ensure!(r["type"] == "ack", "finish: {r}");
    phone.close().await?;

    let manifest = {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let r = insp
                .get(&format!("/api/inspections/{id}/recording/manifest"))
                .await;
            if r.status == 200 {
                break r.body;
            }
            ensure!(r.code() == "recording_not_ready", "{}", r.text);
            ensure!(Instant::now() < deadline, "no manifest after 90 s");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let file = app.data_dir.path().join("recordings").join(&id).join(
        manifest["file"]
            .as_str()
            .context("manifest names the file")?,
    );
    // Kept for a look after the run (the data directory goes with the test).
    let kept = crate::browser::workspace_root()
        .join("artifacts")
        .join("netbench");
    std::fs::create_dir_all(&kept)?;
    let file = {
        let to = kept.join(format!("{label}.webm"));
        std::fs::copy(&file, &to)?;
        to
    };
    let epoch = manifest["epoch_micros"].as_i64().context("epoch_micros")?;
    let secs = |us: i64| (us - epoch) as f64 / 1e6;
    let recording = Recording::measure(&file)?;
    // The stills, from the log: each `frame` event's evidence, on the recording's timeline.
    let log = insp
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await
        .text;
    let mut stills = Vec::new();
    for line in log.lines().filter(|l| !l.is_empty()) {
        let e: Value = serde_json::from_str(line)?;
        if e["kind"] != "frame" {
            continue;
        }
        let ev = &e["payload"]["evidence"];
        stills.push(Still {
            id: ev["id"].as_str().unwrap_or_default().to_owned(),
            at: secs(ev["at_micros"].as_i64().context("a still's at_micros")?),
            reason: e["payload"]["reason"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            width: ev["width"].as_u64().unwrap_or(0),
            height: ev["height"].as_u64().unwrap_or(0),
        });
    }
    // The reviewer at the second automatic still: the page must show it over the video.
    let mut reviewed = None;
    if let Some(c) = console {
        let auto: Vec<&Still> = stills
            .iter()
            .filter(|s| s.reason == "low_bandwidth")
            .collect();
        if let [_, second, ..] = auto[..] {
            let at = second.at + 1.0;
            let expected = stills
                .iter()
                .filter(|s| s.at <= at)
                .last()
                .map_or_else(String::new, |s| s.id.clone());
            c.goto(&format!("{}/review/#{id}", app.address)).await?;
            c.wait_true(
                "the recording's metadata",
                "const v = document.getElementById('video'); return v.readyState >= 1 && !!document.getElementById('review-still')",
                Duration::from_secs(30),
            )
            .await?;
            c.js(&format!(
                "document.getElementById('video').currentTime = {at:.3}; return true"
            ))
            .await?;
            let shown = c
                .wait_true(
                    "the still over the video",
                    "const i = document.getElementById('review-still'); return !!i && !i.hidden",
                    Duration::from_secs(10),
                )
                .await;
            let v = c
                .js("const i = document.getElementById('review-still'); \
                     const n = document.getElementById('review-still-note'); \
                     return {src: i && !i.hidden ? i.getAttribute('src') : null, text: n ? n.textContent : ''}")
                .await?;
            c.screenshot(&format!("{label}-review")).await?;
            reviewed = Some(ReviewedStill {
                at,
                expected,
                shown: shown.ok().and(v["src"].as_str().map(str::to_owned)),
                caption: v["text"].as_str().unwrap_or_default().to_owned(),
            });
        }
        c.close().await?;
    }
    let phases = phases
        .iter()
        .zip(spans)
        .map(|(p, (a, b, outage, phone, console))| {
            let (from, to) = (secs(a), secs(b));
            let outage = outage.map(|(s, e)| (secs(s), secs(e)));
            let within: Vec<Still> = stills
                .iter()
                .filter(|s| s.at >= from && s.at < to)
                .cloned()
                .collect();
            let mut pictures: Vec<f64> = recording
                .video
                .iter()
                .copied()
                .chain(stills.iter().map(|s| s.at))
                .collect();
            pictures.sort_by(f64::total_cmp);
            PhaseReport {
                console,
                stills: within,
                longest_without_picture: longest(&pictures, from, to, |_| 0.0),
                name: p.name,
                impairment: p.impairment,
                from,
                to,
                longest_freeze: recording.longest_freeze(from, to),
                longest_audio_gap: recording.longest_audio_gap(from, to),
                fps: recording.fps(from, to),
                video_back_after: outage
                    .and_then(|(_, e)| recording.first_frame_after(e).map(|f| f - e)),
                outage,
                phone,
            }
        })
        .collect();
    let c = &relay.counts;
    let report = RunReport {
        phases,
        recording,
        answer_sdp,
        sender,
        twcc_feedback: c.twcc_feedback.load(Ordering::Relaxed),
        nacks: c.nacks.load(Ordering::Relaxed),
        up_dropped: c.up_dropped.load(Ordering::Relaxed),
        up: c.up.load(Ordering::Relaxed),
        stills,
        reviewed,
    };
    drop(relay);
    app.stop().await;
    Ok(report)
}

impl RunReport {
    /// One line per phase, for logs and docs/reliability.md.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "recording {} (plays: {}, {} decoder messages, seeks: {}); relay: {} of {} uplink datagrams dropped, \
             {} transport-cc feedback and {} NACK messages from the server\n",
            self.recording.file.display(),
            self.recording.plays,
            self.recording.decode_errors.len(),
            self.recording.seeks,
            self.up_dropped,
            self.up,
            self.twcc_feedback,
            self.nacks
        );
        for p in &self.phases {
            s += &format!(
                "  {:<14} {:6.1}–{:6.1} s: longest freeze {:.3} s (at {:.1}), longest audio gap \
                 {:.3} s, {:.1} frames/s, phone sent {} kbit/s (estimate {} kbit/s), limited by {}{}\n",
                p.name,
                p.from,
                p.to,
                p.longest_freeze.secs,
                p.longest_freeze.at,
                p.longest_audio_gap.secs,
                p.fps,
                p.median_sent_kbps()
                    .map_or("?".into(), |k| format!("{k:.0}")),
                p.median_available_kbps()
                    .map_or("?".into(), |k| format!("{k:.0}")),
                p.limitations(),
                p.video_back_after
                    .map_or(String::new(), |b| format!(", video back {b:.2} s after the outage")),
            );
            if p.ice_restarts() > 0 {
                s += &format!("    ({} ICE restart(s) in the phase)\n", p.ice_restarts());
            }
        }
        s
    }

    /// The report as JSON (the bench's output file).
    pub fn json(&self) -> Value {
        json!({
            "file": self.recording.file,
            "plays": self.recording.plays,
            "decode_errors": self.recording.decode_errors.len(),
            "seeks": self.recording.seeks,
            "twcc_feedback": self.twcc_feedback,
            "nacks": self.nacks,
            "phases": self.phases.iter().map(|p| json!({
                "name": p.name,
                "longest_freeze_s": p.longest_freeze.secs,
                "longest_audio_gap_s": p.longest_audio_gap.secs,
                "fps": p.fps,
                "video_back_after_s": p.video_back_after,
                "median_sent_kbps": p.median_sent_kbps(),
                "median_available_kbps": p.median_available_kbps(),
                "limited_by": p.limitations(),
                "ice_restarts": p.ice_restarts(),
                "stills": p.stills.len(),
                "longest_without_picture_s": p.longest_without_picture.secs,
            })).collect::<Vec<_>>(),
        })
    }
}

/// The profiles of issue 19 item 4.
pub mod profiles {
    use super::*;

    /// 3 % random uplink loss, 50 ms each way (100 ms round trip), 10 ms jitter.
    pub const LOSS_3_DELAY_50: Impairment = Impairment {
        delay: Duration::from_millis(50),
        jitter: Duration::from_millis(10),
        loss_per_mille: 30,
        bursts: None,
        rate_kbps: None,
    };

    /// 10 % uplink loss in bursts of 5 packets on average, 30 ms each way.
    pub const BURSTS_10: Impairment = Impairment {
        delay: Duration::from_millis(30),
        jitter: Duration::from_millis(5),
        loss_per_mille: 0,
        // enter / (enter + leave) = 22 / 222 ≈ 10 %; mean burst 1000 / 200 = 5 packets.
        bursts: Some(Bursts {
            enter_per_mille: 22,
            leave_per_mille: 200,
        }),
        rate_kbps: None,
    };

    /// An 80 kbit/s uplink, 40 ms each way: room for sound, not for useful video.
    pub const RATE_80: Impairment = Impairment {
        delay: Duration::from_millis(40),
        jitter: Duration::ZERO,
        loss_per_mille: 0,
        bursts: None,
        rate_kbps: Some(80),
    };

    /// A 300 kbit/s uplink, 40 ms each way.
    pub const RATE_300: Impairment = Impairment {
        delay: Duration::from_millis(40),
        jitter: Duration::ZERO,
        loss_per_mille: 0,
        bursts: None,
        rate_kbps: Some(300),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control(imp: Impairment) -> Control {
        let now = Instant::now();
        Control {
            now: imp,
            outage_until: None,
            rng: 0x9E37_79B9_7F4A_7C15,
            bad: false,
            link_free_at: now,
            last_release: [now; 2],
        }
    }

    #[test]
    fn loss_and_bursts_drop_about_what_they_say() {
        let now = Instant::now();
        for (imp, lo, hi) in [
            (profiles::LOSS_3_DELAY_50, 0.02, 0.04),
            (profiles::BURSTS_10, 0.07, 0.13),
        ] {
            let mut c = control(imp);
            let dropped = (0..20_000)
                .filter(|_| c.admit(true, 1000, now).is_none())
                .count();
            let rate = dropped as f64 / 20_000.0;
            assert!((lo..hi).contains(&rate), "{imp:?}: {rate}");
        }
    }

    #[test]
    fn the_rate_cap_paces_and_tail_drops() {
        let now = Instant::now();
        let mut c = control(Impairment {
            rate_kbps: Some(300),
            ..Impairment::CLEAN
        });
        // 1000 + 28 bytes at 300 kbit/s: 27.4 ms each; the queue holds 300 ms of them.
        let times: Vec<Option<Instant>> = (0..20).map(|_| c.admit(true, 1000, now)).collect();
        let sent = times.iter().flatten().count();
        assert!((10..=12).contains(&sent), "{sent} of 20 queued");
        let last = times.iter().flatten().last().copied().unwrap_or(now);
        assert!(last - now <= QUEUE_LIMIT + Duration::from_millis(30));
        // The downlink is not capped.
        assert!(c
            .admit(false, 1000, now)
            .is_some_and(|t| t - now < Duration::from_millis(5)));
    }

    #[test]
    fn delay_and_jitter_keep_order_and_an_outage_drops_both_ways() {
        let now = Instant::now();
        let mut c = control(profiles::LOSS_3_DELAY_50);
        let mut last = now;
        for i in 0..1000u64 {
            let t = now + Duration::from_millis(i);
            if let Some(at) = c.admit(false, 100, t) {
                assert!(at >= last && at >= t + Duration::from_millis(50));
                assert!(at <= t + Duration::from_millis(61) || at == last);
                last = at;
            }
        }
        c.outage_until = Some(now + Duration::from_secs(5));
        assert_eq!(c.admit(false, 100, now + Duration::from_secs(1)), None);
        assert_eq!(c.admit(true, 100, now + Duration::from_secs(1)), None);
        assert!(c.admit(false, 100, now + Duration::from_secs(6)).is_some());
    }

    #[test]
    fn gaps_are_found_within_a_window() {
        let times = [0.0, 0.05, 0.1, 1.0, 1.05, 3.0];
        let g = longest(&times, 0.0, 1.0, |_| 0.0);
        assert!((g.secs - 0.9).abs() < 1e-9 && g.at == 0.1);
        // The gap from 1.05 to 3.0 overlaps [2, 4).
        assert!((longest(&times, 2.0, 4.0, |_| 0.0).secs - 1.95).abs() < 1e-9);
        // Audio: a packet's own duration is not a gap.
        assert_eq!(longest(&[0.0, 0.02, 0.04], 0.0, 1.0, |_| 0.02).secs, 0.0);
    }
}
