//! Checklist sync benchmark: N live inspections, two sockets each (inspector + business), the
//! inspector sending 2 operations per second in each; reports op → other-side latency,
//! op → ack latency, server CPU and RSS, and memory per idle socket.
//!
//! The server is the `checklist-sync-server` binary (SQLite, WAL, synchronous=FULL, every op
//! committed before its ack) run as a child process so its CPU and memory are its own.
//!
//! Usage (release build, next to the server binary):
//! `ulimit -n 65536; cargo run --release -p checklist-sync --example sync_bench -- <N> [seconds]`
//!
//! `SYNC_BENCH_PG_URL=postgres://…/postgres` runs the server on a fresh PostgreSQL database
//! (created and dropped by the bench) instead of SQLite. Operations refused as `overloaded` are
//! resent like the browser does (same op id, in order, after the hint with backoff); latency
//! of an op counts from its accepted send.

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

fn proc_stat(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss_kib = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (ticks(11) + ticks(12), rss_kib)
}

async fn connect(addr: &str, inspection: Uuid, role: &str) -> Ws {
    let url = format!(
        "ws://{addr}/ws/{inspection}?role={role}&pid={}",
        Uuid::new_v4()
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws.send(Message::Text(
        json!({"type": "hello", "protocol": 1}).to_string().into(),
    ))
    .await
    .expect("hello");
    loop {
        if let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: Value = serde_json::from_str(t.as_str()).expect("json");
            // A large welcome arrives in parts; the last part completes it.
            let last_part = v["type"] == "welcome_part"
                && v["index"].as_u64().map(|i| i + 1) == v["count"].as_u64();
            if v["type"] == "welcome" || last_part {
                return ws;
            }
        }
    }
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    f64::from(v[i]) / 1000.0
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(30);
    let warmup = Duration::from_secs(3);

    let dir = tempfile::tempdir().expect("tempdir");
    let mut pg: Option<(sqlx::AnyPool, String)> = None;
    let url = match std::env::var("SYNC_BENCH_PG_URL") {
        Ok(admin) => {
            sqlx::any::install_default_drivers();
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(&admin)
                .await
                .expect("admin connection");
            let name = format!("sync_bench_{}", Uuid::new_v4().simple());
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .expect("create database");
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            let url = format!("{base}/{name}");
            pg = Some((pool, name));
            url
        }
        Err(_) => format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("bench.db").display()
        ),
    };
    let exe = std::env::current_exe().expect("exe");
    let server = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("checklist-sync-server");
    let mut child = tokio::process::Command::new(&server)
        .args([url.as_str(), "127.0.0.1:0", "20"])
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", server.display()));
    let pid = child.id().expect("pid");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = lines.next_line().await.expect("read").expect("line");
    let addr = line
        .strip_prefix("LISTENING ")
        .expect("LISTENING")
        .to_string();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, rss_before) = proc_stat(pid);

    // Connect all pairs (bounded concurrency), each inspection with a fresh id.
    let ids: Vec<Uuid> = (0..n).map(|_| Uuid::new_v4()).collect();
    let mut pairs = Vec::with_capacity(n);
    for chunk in ids.chunks(50) {
        let mut set = tokio::task::JoinSet::new();
        for &id in chunk {
            let addr = addr.clone();
            set.spawn(async move {
                let i = connect(&addr, id, "inspector").await;
                let b = connect(&addr, id, "business").await;
                (i, b)
            });
        }
        while let Some(r) = set.join_next().await {
            pairs.push(r.expect("connect task"));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (_, rss_idle) = proc_stat(pid);
    let per_socket_kib = (rss_idle.saturating_sub(rss_before)) as f64 / (2 * n) as f64;

    let t0 = Instant::now();
    let (cpu0, _) = proc_stat(pid);
    let (client_cpu0, _) = proc_stat(std::process::id());
    let stop_at = t0 + warmup + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for (k, (insp, biz)) in pairs.into_iter().enumerate() {
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (mut isink, mut istream) = insp.split();
        let (_bsink, mut bstream) = biz.split();
        let sent_b = sent.clone();
        // Business side: op → receive latency.
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let deadline = tokio::time::Instant::from_std(stop_at + Duration::from_secs(2));
            while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, bstream.next()).await {
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if v["type"] == "event" && v["kind"] == "set_result" {
                        let id = v["op_id"].as_str().unwrap_or_default();
                        let sent_at = sent_b.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
                        if let Some(s) = sent_at {
                            if s >= t0 + warmup {
                                lat.push(s.elapsed().as_micros() as u32);
                            }
                        }
                    }
                }
            }
            (lat, Vec::new(), 0usize, 0usize)
        });
        // Inspector side: start, then 2 ops/s with a per-pair phase; measures op → ack.
        tasks.spawn(async move {
            let mut acks = Vec::new();
            let mut sent_times: HashMap<String, Instant> = HashMap::new();
            let mut errors = 0usize;
            let mut refused = 0usize;
            // Unacknowledged ops in send order, those to resend, and the overload pause.
            let mut unacked: VecDeque<(String, String)> = VecDeque::new();
            let mut to_resend: HashSet<String> = HashSet::new();
            let mut hold: Option<tokio::time::Instant> = None;
            let mut streak = 0u32;
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            isink
                .send(Message::Text(json!({"type": "op", "op_id": "start", "op": {"kind": "start"}}).to_string().into()))
                .await
                .expect("start");
            let phase = Duration::from_micros((k as u64 * 7919) % 500_000);
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + phase, Duration::from_millis(500));
            let mut seq = 0u64;
            let deadline = tokio::time::Instant::from_std(stop_at);
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if tokio::time::Instant::now() >= deadline { break; }
                        seq += 1;
                        let id = format!("o{seq}");
                        let result = ["compliant", "violation", "not_applicable", "clear"][(seq % 4) as usize];
                        let op = json!({"type": "op", "op_id": id, "op": {"kind": "set_result",
                            "item_id": format!("q{}", seq % 20 + 1), "result": result, "comment": "bench"}}).to_string();
                        unacked.push_back((id.clone(), op.clone()));
                        if hold.is_some() {
                            // New ops wait behind the refused ones.
                            to_resend.insert(id);
                            continue;
                        }
                        let now = Instant::now();
                        sent.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), now);
                        sent_times.insert(id, now);
                        if isink.send(Message::Text(op.into())).await.is_err() { break; }
                    }
                    _ = tokio::time::sleep_until(hold.unwrap_or(far)) => {
                        hold = None;
                        for (id, op) in &unacked {
                            if !to_resend.remove(id) { continue; }
                            let now = Instant::now();
                            sent.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), now);
                            sent_times.insert(id.clone(), now);
                            if isink.send(Message::Text(op.clone().into())).await.is_err() { break; }
                        }
                    }
                    m = istream.next() => {
                        let Some(Ok(Message::Text(t))) = m else { continue };
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                        let id = v["op_id"].as_str().unwrap_or_default().to_string();
                        if v["type"] == "ack" {
                            unacked.retain(|(i, _)| *i != id);
                            streak = 0;
                            if let Some(s) = sent_times.remove(&id) {
                                if s >= t0 + warmup { acks.push(s.elapsed().as_micros() as u32); }
                            }
                        } else if v["type"] == "error" && v["code"] == "overloaded" {
                            refused += 1;
                            to_resend.insert(id);
                            if hold.is_none() {
                                let hint = v["retry_after_ms"].as_u64().unwrap_or(250);
                                let base = hint << streak.min(6);
                                // Jitter from the pair's phase: 50–100 % of the pause.
                                let ms = base / 2 + (base / 2) * ((k as u64 * 7919 + seq) % 100) / 100;
                                hold = Some(tokio::time::Instant::now() + Duration::from_millis(ms));
                                streak += 1;
                            }
                        } else if v["type"] == "error" {
                            errors += 1;
                        }
                    }
                }
            }
            (Vec::new(), acks, errors, refused)
        });
    }
    let mut lat = Vec::new();
    let mut acks = Vec::new();
    let mut errors = 0;
    let mut refused = 0;
    let mut sampled_rss = 0;
    let mut cpu_end = cpu0;
    let mut t_end = Instant::now();
    let mut client_cpu_end = client_cpu0;
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(stop_at)).await;
        let (cpu, rss) = proc_stat(pid);
        let (client_cpu, _) = proc_stat(std::process::id());
        (cpu, rss, Instant::now(), client_cpu)
    });
    while let Some(r) = tasks.join_next().await {
        let (l, a, e, o) = r.expect("task");
        lat.extend(l);
        acks.extend(a);
        errors += e;
        refused += o;
    }
    if let Ok((c, r, t, cc)) = sampler.await {
        client_cpu_end = cc;
        cpu_end = c;
        sampled_rss = r;
        t_end = t;
    }
    let wall = t_end.duration_since(t0).as_secs_f64();
    let ticks_per_sec = 100.0;
    let cpu_pct = (cpu_end - cpu0) as f64 / ticks_per_sec / wall * 100.0;
    let client_cpu_pct = (client_cpu_end - client_cpu0) as f64 / ticks_per_sec / wall * 100.0;
    let received = lat.len();
    println!(
        "N={n} ops_measured={received} rate={:.0}/s p50={:.2}ms p99={:.2}ms max={:.2}ms ack_p50={:.2}ms ack_p99={:.2}ms errors={errors} overloaded={refused} server_cpu={cpu_pct:.0}% server_us_per_op={:.0} client_cpu={client_cpu_pct:.0}% server_rss={}MiB rss_per_inspection={:.1}KiB idle_rss_per_socket={per_socket_kib:.1}KiB",
        received as f64 / secs as f64,
        pct(&mut lat, 0.50),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0),
        pct(&mut acks, 0.50),
        pct(&mut acks, 0.99),
        // CPU µs per op done (the measured window's ops; warm-up ops are few).
        (cpu_end - cpu0) as f64 / ticks_per_sec * 1e6 / (received.max(1) as f64 * wall / secs as f64),
        sampled_rss / 1024,
        sampled_rss.saturating_sub(rss_before) as f64 / n as f64,
    );
    let _ = child.start_kill();
    let _ = child.wait().await;
    if let Some((pool, name)) = pg {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        )))
        .execute(&pool)
        .await;
    }
}
