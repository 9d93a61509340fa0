//! Media benchmark: join time and server CPU per published+recorded session.
//!
//! ```text
//! cargo run --release -p media-recorder --example media_bench -- [joins] [sessions] [seconds]
//! ```
//!
//! Server (`MediaHub`) and clients run in one process on two separate tokio runtimes whose
//! threads are named `srv-*` and `cli-*`; server CPU is the sum of the `srv-*` threads' CPU
//! time from `/proc/self/task`, so the clients' cost is not counted against the server.
//!
//! * Join: a subscriber (inspector) is connected first; then the publisher offers. Join time is
//!   from the publisher's offer to the first forwarded keyframe packet at the subscriber.
//! * Load: `sessions` inspections, each one publisher sending 1.5 Mbps VP8 (640x480, 30 fps,
//!   pre-encoded with libvpx) + Opus every 20 ms, recorded to journals, and one inspector
//!   subscriber that talks back (Opus). Loss is counted from sequence gaps at the subscribers.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use media_recorder::rtp::is_keyframe;
use media_recorder::{MediaConfig, MediaHub, MediaRole};
use support::{encode_vp8, spawn_publisher, spawn_talker, Client, Offer};
use uuid::Uuid;

fn runtime(name: &'static str, threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name(name)
        .enable_all()
        .build()
        .expect("runtime")
}

/// CPU seconds used so far by this process's threads whose name starts with `prefix`.
fn cpu_seconds(prefix: &str) -> f64 {
    // SAFETY-free libc-less read: clock ticks are 100 Hz on Linux x86_64/aarch64.
    let ticks = 100.0;
    let mut total = 0u64;
    for entry in std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
    {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if !comm.starts_with(prefix) {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised command name; utime and stime are 14 and 15.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            let f: Vec<&str> = rest.split_whitespace().collect();
            if f.len() > 13 {
                total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
            }
        }
    }
    total as f64 / ticks
}

/// The kernel's count of UDP datagrams dropped because a socket's receive buffer was full.
fn udp_rcvbuf_errors() -> u64 {
    let snmp = std::fs::read_to_string("/proc/net/snmp").unwrap_or_default();
    let mut lines = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let (Some(names), Some(values)) = (lines.next(), lines.next()) else {
        return 0;
    };
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "RcvbufErrors")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Counts video packets and sequence gaps at a subscriber.
#[derive(Default, Clone, Copy)]
struct Loss {
    received: u64,
    lost: u64,
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let joins = args.first().copied().unwrap_or(20);
    let sessions = args.get(1).copied().unwrap_or(10);
    let seconds = args.get(2).copied().unwrap_or(20) as u64;
    let _ = tracing_subscriber::fmt()
        .with_env_filter("error")
        .try_init();

    let srv = runtime("srv", 2);
    let cli = runtime("cli", 2);
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = MediaConfig {
        recordings_dir: dir.path().to_owned(),
        udp_addrs: vec!["127.0.0.1:0".into()],
        nat_1to1_ips: vec![],
        ice_servers: vec![],
    };
    let hub = srv.block_on(MediaHub::new(cfg)).expect("hub");
    let srv_handle = srv.handle().clone();

    println!("encoding test video (640x480, 30 fps, 1.5 Mbps VP8) ...");
    let frames = Arc::new(encode_vp8(640, 480, 30, 300, 1_500_000, 150));
    let bytes: usize = frames.iter().map(|f| f.data.len()).sum();
    println!(
        "  {} frames, {:.2} Mbps average",
        frames.len(),
        bytes as f64 * 8.0 / (frames.len() as f64 / 30.0) / 1e6
    );

    // Join time: subscriber waiting, then the publisher offers.
    let mut times = Vec::new();
    let mut answers = Vec::new();
    let mut connects = Vec::new();
    let (mut renegs, mut restarts) = (Vec::new(), Vec::new());
    for _ in 0..joins {
        let (hub, frames, rt) = (hub.clone(), frames.clone(), srv_handle.clone());
        let t = cli.block_on(async move {
            let inspection = Uuid::new_v4();
            let stop = Arc::new(AtomicBool::new(false));
            let mut sub = Client::build(inspection, MediaRole::Inspector, Offer::Talk).await;
            sub.server_rt = Some(rt.clone());
            sub.negotiate(&hub, false).await.expect("subscriber offer");
            sub.wait_connected(Duration::from_secs(5)).await;
            let mut publisher =
                Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
            publisher.server_rt = Some(rt.clone());
            let t0 = Instant::now();
            publisher
                .negotiate(&hub, false)
                .await
                .expect("publisher offer");
            let answered = t0.elapsed();
            let connected = publisher
                .wait_connected(Duration::from_secs(5))
                .await
                .then(|| t0.elapsed());
            spawn_publisher(&publisher, frames, 30, stop.clone());
            let key = sub
                .wait_for(Duration::from_secs(5), |r| {
                    r.mime == "video/VP8" && is_keyframe(&r.mime, &r.packet.payload)
                })
                .await;
            // The publisher's answers to a renegotiation and to an ICE restart.
            let t1 = Instant::now();
            publisher
                .negotiate(&hub, false)
                .await
                .expect("renegotiation");
            let reneg = t1.elapsed();
            let t2 = Instant::now();
            publisher.negotiate(&hub, true).await.expect("ice restart");
            let restart = t2.elapsed();
            stop.store(true, Ordering::Relaxed);
            let (h1, h2) = (hub.clone(), hub.clone());
            let (p1, p2) = (publisher.peer, sub.peer);
            rt.spawn(async move {
                h1.leave(inspection, p1).await;
                h2.leave(inspection, p2).await;
            })
            .await
            .expect("leave");
            let _ = publisher.pc.close().await;
            let _ = sub.pc.close().await;
            key.map(|k| (k.at.duration_since(t0), answered, connected, reneg, restart))
        });
        match t {
            Some((d, answered, connected, reneg, restart)) => {
                renegs.push(reneg);
                restarts.push(restart);
                times.push(d);
                answers.push(answered);
                connects.push(connected.unwrap_or(d));
            }
            None => println!("  join timed out"),
        }
    }
    times.sort();
    renegs.sort();
    restarts.sort();
    answers.sort();
    connects.sort();
    if !times.is_empty() {
        println!(
            "  of which: answer p50 {:.0} ms, publisher connected p50 {:.0} ms",
            percentile(&answers, 0.5).as_secs_f64() * 1e3,
            percentile(&connects, 0.5).as_secs_f64() * 1e3
        );
        let ms = |v: &[Duration], p: f64| percentile(v, p).as_secs_f64() * 1e3;
        println!(
            "  answer to a renegotiation p50 {:.1} ms, max {:.1} ms; to an ICE restart p50 {:.1} ms, max {:.1} ms",
            ms(&renegs, 0.5),
            ms(&renegs, 1.0),
            ms(&restarts, 0.5),
            ms(&restarts, 1.0)
        );
        println!(
            "join time over {} joins: p50 {:.0} ms, p95 {:.0} ms, max {:.0} ms",
            times.len(),
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.95).as_secs_f64() * 1e3,
            times.last().map_or(0.0, |d| d.as_secs_f64() * 1e3)
        );
    }

    // Load: N sessions at once.
    let stop = Arc::new(AtomicBool::new(false));
    let (hub2, frames2, rt2, stop2) = (
        hub.clone(),
        frames.clone(),
        srv_handle.clone(),
        stop.clone(),
    );
    let subs: Vec<Client> = cli.block_on(async move {
        let mut subs = Vec::new();
        for _ in 0..sessions {
            let inspection = Uuid::new_v4();
            let mut sub = Client::build(inspection, MediaRole::Inspector, Offer::Talk).await;
            sub.server_rt = Some(rt2.clone());
            sub.negotiate(&hub2, false).await.expect("subscriber offer");
            let mut publisher =
                Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
            publisher.server_rt = Some(rt2.clone());
            publisher
                .negotiate(&hub2, false)
                .await
                .expect("publisher offer");
            spawn_publisher(&publisher, frames2.clone(), 30, stop2.clone());
            spawn_talker(&sub, stop2.clone());
            std::mem::forget(publisher);
            subs.push(sub);
        }
        subs
    });
    println!("{sessions} sessions up; warming up 3 s, measuring {seconds} s ...");
    let losses: Vec<Arc<std::sync::Mutex<Loss>>> = subs
        .iter()
        .map(|_| Arc::new(std::sync::Mutex::new(Loss::default())))
        .collect();
    let measuring = Arc::new(AtomicBool::new(false));
    for (mut sub, loss) in subs.into_iter().zip(losses.iter().cloned()) {
        let measuring = measuring.clone();
        cli.spawn(async move {
            let mut last: Option<u16> = None;
            while let Some(r) = sub.received.recv().await {
                if r.mime != "video/VP8" {
                    continue;
                }
                let seq = r.packet.header.sequence_number;
                if measuring.load(Ordering::Relaxed) {
                    let mut l = loss.lock().expect("loss lock");
                    l.received += 1;
                    if let Some(prev) = last {
                        let gap = seq.wrapping_sub(prev) as i16;
                        if gap > 1 {
                            l.lost += (gap - 1) as u64;
                        }
                    }
                }
                if last.is_none_or(|p| (seq.wrapping_sub(p) as i16) > 0) {
                    last = Some(seq);
                }
            }
        });
    }
    std::thread::sleep(Duration::from_secs(3));
    measuring.store(true, Ordering::Relaxed);
    let (s0, c0, t0) = (cpu_seconds("srv"), cpu_seconds("cli"), Instant::now());
    let drops0 = udp_rcvbuf_errors();
    std::thread::sleep(Duration::from_secs(seconds));
    let (s1, c1, wall) = (
        cpu_seconds("srv"),
        cpu_seconds("cli"),
        t0.elapsed().as_secs_f64(),
    );
    let kernel_drops = udp_rcvbuf_errors() - drops0;
    measuring.store(false, Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    let (received, lost) = losses.iter().fold((0, 0), |(r, l), x| {
        let x = *x.lock().expect("loss lock");
        (r + x.received, l + x.lost)
    });
    let server_cores = (s1 - s0) / wall;
    let per_session = server_cores / sessions as f64;
    let journal_bytes: u64 = walk(dir.path());
    println!(
        "server CPU: {:.1} % of one core for {sessions} sessions ({:.2} % per session)",
        server_cores * 100.0,
        per_session * 100.0
    );
    println!(
        "client CPU (same machine, not counted): {:.1} % of one core",
        (c1 - c0) / wall * 100.0
    );
    println!(
        "video packets received by subscribers: {received}, lost {lost} ({:.3} %)",
        lost as f64 * 100.0 / (received + lost).max(1) as f64
    );
    println!("journal bytes written: {journal_bytes}");
    println!(
        "UDP datagrams the kernel dropped for full socket buffers (whole machine): {kernel_drops}"
    );
    println!(
        "sessions fitting in 70 % of 2 cores at this cost: {:.0} (extrapolated from {sessions})",
        1.4 / per_session
    );
    drop(cli);
    drop(srv);
}

fn walk(p: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).into_iter().flatten().flatten() {
        let m = match e.metadata() {
            Ok(m) => m,
            Err(_) => continue,
        };
        n += if m.is_dir() { walk(&e.path()) } else { m.len() };
    }
    n
}
