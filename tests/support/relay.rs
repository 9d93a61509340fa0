//! A lossy UDP relay between a browser and the server's media port, for tests of media under
//! loss. This machine's kernel has no `netem`, so loss is made here, in user space: the server
//! announces the relay's address as its candidate (`media_public_ip`), the browser sends to the
//! relay, the relay forwards to the server and drops some of the browser's video packets on the
//! way. Media is SRTP, but an RTP header and the first eight bytes of SRTCP stay in the clear,
//! which is all the relay reads: payload types on the way up, the server's NACKs on the way down.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::net::UdpSocket;

/// What the relay saw.
#[derive(Default, Debug)]
pub struct RelayCounts {
    /// Datagrams from the browser.
    pub up: AtomicU64,
    /// Datagrams from the server.
    pub down: AtomicU64,
    /// Payload types of the browser's RTP packets (a bit per type).
    pub types_seen: AtomicU64,
    /// The same for types 64–127.
    pub types_seen_high: AtomicU64,
    /// RTP packets from the browser with a dropped payload type, forwarded.
    pub media_forwarded: AtomicU64,
    /// Those dropped.
    pub media_dropped: AtomicU64,
    /// Generic NACK messages (RTPFB, FMT 1) from the server to the browser.
    pub nacks: AtomicU64,
    /// NACK entries in them (each names one packet and up to 16 after it).
    pub nack_entries: AtomicU64,
}

/// A running relay; dropping it stops both directions.
pub struct LossyRelay {
    /// What it has seen so far.
    pub counts: Arc<RelayCounts>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for LossyRelay {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// True for an RTP (not RTCP) packet: version 2, and not one of RTCP's packet types 192–223
/// (RFC 5761 §4, how one port tells them apart).
fn is_rtp(d: &[u8]) -> bool {
    d.len() >= 12 && d[0] >> 6 == 2 && !(192..=223).contains(&d[1])
}

impl LossyRelay {
    /// Listens on `public` (the address the server announces) and forwards to `server`,
    /// dropping `loss_per_mille` ‰ of the browser's RTP packets whose payload type is in
    /// `lossy_types`, chosen by a fixed-seed generator (the same run drops the same packets).
    pub async fn start(
        public: SocketAddr,
        server: SocketAddr,
        lossy_types: &[u8],
        loss_per_mille: u32,
    ) -> std::io::Result<LossyRelay> {
        let outside = Arc::new(UdpSocket::bind(public).await?);
        let inside = Arc::new(UdpSocket::bind("127.0.0.1:0").await?);
        inside.connect(server).await?;
        let counts = Arc::new(RelayCounts::default());
        let browser: Arc<tokio::sync::Mutex<Option<SocketAddr>>> = Default::default();
        let lossy = lossy_types.to_vec();

        let up = {
            let (outside, inside, counts, browser) = (
                outside.clone(),
                inside.clone(),
                counts.clone(),
                browser.clone(),
            );
            tokio::spawn(async move {
                let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = outside.recv_from(&mut buf).await {
                    *browser.lock().await = Some(from);
                    let d = &buf[..n];
                    counts.up.fetch_add(1, Ordering::Relaxed);
                    if is_rtp(d) {
                        let pt = d[1] & 0x7f;
                        let (set, bit) = if pt < 64 {
                            (&counts.types_seen, pt)
                        } else {
                            (&counts.types_seen_high, pt - 64)
                        };
                        set.fetch_or(1 << bit, Ordering::Relaxed);
                    }
                    if is_rtp(d) && lossy.contains(&(d[1] & 0x7f)) {
                        // xorshift64: enough for "3 % at random", reproducible.
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        if (state % 1000) < u64::from(loss_per_mille) {
                            counts.media_dropped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        counts.media_forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                    let _ = inside.send(d).await;
                }
            })
        };
        let down = {
            let (outside, inside, counts, browser) = (
                outside.clone(),
                inside.clone(),
                counts.clone(),
                browser.clone(),
            );
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                while let Ok(n) = inside.recv(&mut buf).await {
                    let d = &buf[..n];
                    counts.down.fetch_add(1, Ordering::Relaxed);
                    // The first RTCP header of an SRTCP packet is in the clear: a generic NACK
                    // is type 205 with FMT 1; its length (in 32-bit words, minus one) counts
                    // the header, two SSRCs and one word per entry.
                    if d.len() >= 8 && d[0] >> 6 == 2 && d[1] == 205 && d[0] & 0x1f == 1 {
                        let words = u64::from(u16::from_be_bytes([d[2], d[3]])) + 1;
                        counts.nacks.fetch_add(1, Ordering::Relaxed);
                        counts
                            .nack_entries
                            .fetch_add(words.saturating_sub(3), Ordering::Relaxed);
                    }
                    let to = *browser.lock().await;
                    if let Some(to) = to {
                        let _ = outside.send_to(d, to).await;
                    }
                }
            })
        };
        Ok(LossyRelay {
            counts,
            tasks: vec![up, down],
        })
    }
}

// --- A delay and jitter relay (issue 23) ---

/// What the delay relay did.
#[derive(Default, Debug)]
pub struct DelayCounts {
    /// Datagrams from the server to a browser that were delayed.
    pub delayed: AtomicU64,
    /// Datagrams passed without delay.
    pub direct: AtomicU64,
    /// Browsers (source addresses) seen.
    pub peers: AtomicU64,
    /// Datagrams from the browsers.
    pub up: AtomicU64,
}

/// A UDP relay that delays what the server sends to the browsers that publish no video (the
/// inspector's path: the recording, the business's upload, is never delayed), by
/// `delay ± jitter`, uniformly, in a timed queue per browser. Packet order is kept (each
/// packet leaves no earlier than the one before it): a jittery path in the field is mostly
/// a queue, and reordering would test the jitter buffer's repair, not which frame is shown.
/// Unlike [`LossyRelay`] it serves several browsers at once: each gets its own socket towards
/// the server, so the server tells them apart as it would behind a NAT. The delay can be
/// switched on and off while running.
pub struct DelayRelay {
    /// What it did so far.
    pub counts: Arc<DelayCounts>,
    /// Whether the delay is applied now.
    pub on: Arc<std::sync::atomic::AtomicBool>,
    tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl Drop for DelayRelay {
    fn drop(&mut self) {
        for t in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            t.abort();
        }
    }
}

impl DelayRelay {
    /// Listens on `public` and forwards to `server`; RTP from a browser with a payload type in
    /// `video_types` marks it as a publisher, whose downstream is not delayed.
    pub async fn start(
        public: SocketAddr,
        server: SocketAddr,
        video_types: &[u8],
        delay: std::time::Duration,
        jitter: std::time::Duration,
    ) -> std::io::Result<DelayRelay> {
        use std::collections::HashMap;
        use std::sync::atomic::AtomicBool;
        use std::time::Duration;
        let outside = Arc::new(UdpSocket::bind(public).await?);
        let counts = Arc::new(DelayCounts::default());
        let on = Arc::new(AtomicBool::new(false));
        let tasks: Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>> = Default::default();
        let video = video_types.to_vec();
        let up = {
            let (outside, counts, on, tasks) =
                (outside.clone(), counts.clone(), on.clone(), tasks.clone());
            tokio::spawn(async move {
                // Per browser: its socket towards the server, and whether it publishes video.
                let mut peers: HashMap<SocketAddr, (Arc<UdpSocket>, Arc<AtomicBool>)> =
                    HashMap::new();
                let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
                let mut buf = vec![0u8; 2048];
                while let Ok((n, from)) = outside.recv_from(&mut buf).await {
                    if !peers.contains_key(&from) {
                        let Ok(inside) = UdpSocket::bind("127.0.0.1:0").await else {
                            continue;
                        };
                        if inside.connect(server).await.is_err() {
                            continue;
                        }
                        let inside = Arc::new(inside);
                        let publisher = Arc::new(AtomicBool::new(false));
                        counts.peers.fetch_add(1, Ordering::Relaxed);
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(
                            tokio::time::Instant,
                            Vec<u8>,
                        )>();
                        let sender = {
                            let outside = outside.clone();
                            tokio::spawn(async move {
                                while let Some((at, d)) = rx.recv().await {
                                    tokio::time::sleep_until(at).await;
                                    let _ = outside.send_to(&d, from).await;
                                }
                            })
                        };
                        let down = {
                            let (inside, publisher, counts, on) = (
                                inside.clone(),
                                publisher.clone(),
                                counts.clone(),
                                on.clone(),
                            );
                            let mut state = seed | 1;
                            tokio::spawn(async move {
                                let mut last = tokio::time::Instant::now();
                                let mut buf = vec![0u8; 2048];
                                while let Ok(n) = inside.recv(&mut buf).await {
                                    let now = tokio::time::Instant::now();
                                    let at = if on.load(Ordering::Relaxed)
                                        && !publisher.load(Ordering::Relaxed)
                                    {
                                        state ^= state << 13;
                                        state ^= state >> 7;
                                        state ^= state << 17;
                                        let span = 2 * jitter.as_micros() as u64 + 1;
                                        let d = delay.as_micros() as u64 + state % span;
                                        let d = d.saturating_sub(jitter.as_micros() as u64);
                                        counts.delayed.fetch_add(1, Ordering::Relaxed);
                                        now + Duration::from_micros(d)
                                    } else {
                                        counts.direct.fetch_add(1, Ordering::Relaxed);
                                        now
                                    };
                                    // Order kept: never before the previous packet.
                                    last = at.max(last);
                                    if tx.send((last, buf[..n].to_vec())).is_err() {
                                        break;
                                    }
                                }
                            })
                        };
                        let mut t = tasks.lock().unwrap_or_else(|e| e.into_inner());
                        t.push(sender);
                        t.push(down);
                        peers.insert(from, (inside, publisher));
                    }
                    let Some((inside, publisher)) = peers.get(&from) else {
                        continue;
                    };
                    let d = &buf[..n];
                    counts.up.fetch_add(1, Ordering::Relaxed);
                    if is_rtp(d) && video.contains(&(d[1] & 0x7f)) {
                        publisher.store(true, Ordering::Relaxed);
                    }
                    let _ = inside.send(d).await;
                }
            })
        };
        tasks.lock().unwrap_or_else(|e| e.into_inner()).push(up);
        Ok(DelayRelay { counts, on, tasks })
    }
}
