//! Checklist sync across nodes (issue 20): N live inspections on real `inspector` processes
//! sharing one PostgreSQL database; the inspector's socket on node A, the business's on node B
//! (which proxies it to A, the owner) — or, with one node, both on A, the figure to compare
//! with. The inspector sends 2 operations per second in each inspection; reported: op → the
//! business's socket (p50/p99/max), op → ack, CPU of every node. Ops refused as `overloaded`
//! are resent as the browser does (same id, in order, after the hint); latency counts from
//! the accepted send.
//!
//! Usage (release build; the `inspector` binary next to the example's directory):
//! `ulimit -n 20000; NODES_BENCH_PG=postgres://user:pass@127.0.0.1/postgres \
//!   target/release/examples/nodes_bench <N> [seconds] [nodes: 1|2]`
//! The database is created and dropped by the bench.

use std::collections::{HashMap, HashSet, VecDeque};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::{client::IntoClientRequest, Message};
use uuid::Uuid;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const PASSWORD: &str = "a long bench password";

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let t = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    t(11) + t(12)
}

fn pct(v: &mut [u32], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    f64::from(v[i]) / 1000.0
}

struct Node {
    child: tokio::process::Child,
    base: String,
}

async fn start_node(exe: &std::path::Path, db: &str, dir: &std::path::Path) -> Node {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let config = dir.join("inspector.toml");
    std::fs::write(
        &config,
        "[http]\nmax_connections = 8192\nmax_websockets = 6144\n",
    )
    .expect("config");
    let child = tokio::process::Command::new(exe)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--media-udp", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--database-url", db])
        .arg("--config")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn inspector");
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(r) = http.get(format!("{base}/readyz")).send().await {
            if r.status() == 200 {
                break;
            }
        }
        assert!(Instant::now() < deadline, "node did not start");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Node { child, base }
}

/// `name=value` of every Set-Cookie, and the CSRF token of the JSON answer.
async fn session(r: reqwest::Response) -> (String, String) {
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next().map(String::from))
        .collect();
    let body: Value = r.json().await.expect("json");
    (
        cookies.join("; "),
        body["csrf_token"].as_str().unwrap_or_default().to_string(),
    )
}

async fn socket(base: &str, id: &str, cookie: &str) -> (Ws, Vec<String>) {
    let url = format!("{}/api/inspections/{id}/ws", base.replacen("http", "ws", 1));
    let mut req = url.into_client_request().expect("request");
    req.headers_mut()
        .insert("cookie", cookie.parse().expect("cookie"));
    req.headers_mut()
        .insert("origin", base.parse().expect("origin"));
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("socket");
    ws.send(Message::Text(
        json!({"type": "hello", "protocol": 1}).to_string().into(),
    ))
    .await
    .expect("hello");
    let mut parts = String::new();
    loop {
        let Some(Ok(Message::Text(t))) = ws.next().await else {
            continue;
        };
        let v: Value = serde_json::from_str(t.as_str()).expect("json");
        let welcome = if v["type"] == "welcome" {
            v
        } else if v["type"] == "welcome_part" {
            parts.push_str(v["data"].as_str().unwrap_or_default());
            if v["index"].as_u64().map(|i| i + 1) != v["count"].as_u64() {
                continue;
            }
            serde_json::from_str(&parts).expect("welcome")
        } else {
            continue;
        };
        let items = welcome["checklist"]
            .as_array()
            .expect("checklist")
            .iter()
            .filter_map(|i| i["id"].as_str().map(String::from))
            .collect();
        return (ws, items);
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(100);
    let secs: u64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(20);
    let nodes: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(2);
    let warmup = Duration::from_secs(3);
    let admin = std::env::var("NODES_BENCH_PG").expect("NODES_BENCH_PG=postgres://…/postgres");
    sqlx::any::install_default_drivers();
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
        .expect("admin connection");
    let name = format!("nodes_bench_{}", Uuid::new_v4().simple());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create database");
    let db = format!(
        "{}/{name}",
        admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin)
    );
    let exe = std::env::current_exe()
        .expect("exe")
        .parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .join("inspector");

    let dirs: Vec<tempfile::TempDir> = (0..nodes)
        .map(|_| tempfile::tempdir().expect("dir"))
        .collect();
    let mut started = Vec::new();
    for d in &dirs {
        started.push(start_node(&exe, &db, d.path()).await);
    }
    let a = started[0].base.clone();
    let b = started[nodes - 1].base.clone();
    let add = std::process::Command::new(&exe)
        .args([
            "user",
            "add",
            "bench",
            "--role",
            "inspector",
            "--database-url",
            &db,
        ])
        .env("INSPECTOR_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .status()
        .expect("user add");
    assert!(add.success());
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{a}/api/auth/login"))
        .json(&json!({"username": "bench", "password": PASSWORD}))
        .send()
        .await
        .expect("login");
    assert_eq!(r.status(), 200, "login");
    let (staff_cookie, csrf) = session(r).await;
    let templates: Value = http
        .get(format!("{a}/api/templates"))
        .header("cookie", &staff_cookie)
        .send()
        .await
        .expect("templates")
        .json()
        .await
        .expect("json");
    let template = templates["templates"][0]["id"]
        .as_str()
        .expect("a template")
        .to_string();

    // N inspections, each with its business admitted through node B.
    let setup = Instant::now();
    let mut inspections: Vec<(String, String)> = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(32) {
        let mut set = tokio::task::JoinSet::new();
        for _ in chunk {
            let (http, a, b, cookie, csrf, template) = (
                http.clone(),
                a.clone(),
                b.clone(),
                staff_cookie.clone(),
                csrf.clone(),
                template.clone(),
            );
            set.spawn(async move {
                let body = json!({"kind": "control", "mode": "remote", "title": "Нагрузочная проверка",
                    "template_id": template, "scheduled_at": "2026-12-01T09:00:00Z",
                    "business": {"name": "ООО «Ромашка»", "inn": "7707083893", "address": "Москва, ул. Тверская, 1", "lat": 55.7577, "lon": 37.6130}});
                let r: Value = http.post(format!("{a}/api/inspections")).header("cookie", &cookie)
                    .header("x-csrf-token", &csrf).json(&body).send().await.expect("create").json().await.expect("json");
                let id = r["id"].as_str().expect("inspection id").to_string();
                let r: Value = http.post(format!("{a}/api/inspections/{id}/invitations")).header("cookie", &cookie)
                    .header("x-csrf-token", &csrf).json(&json!({})).send().await.expect("invite").json().await.expect("json");
                let token = r["token"].as_str().expect("token").to_string();
                let r = http.post(format!("{b}/api/invitations/accept")).json(&json!({"token": token}))
                    .send().await.expect("accept");
                let (guest, _) = session(r).await;
                (id, guest)
            });
        }
        while let Some(r) = set.join_next().await {
            inspections.push(r.expect("setup task"));
        }
    }
    println!(
        "setup: {n} inspections in {:.1} s",
        setup.elapsed().as_secs_f64()
    );

    let mut pairs = Vec::new();
    for chunk in inspections.chunks(50) {
        let mut set = tokio::task::JoinSet::new();
        for (id, guest) in chunk.iter().cloned() {
            let (a, b, cookie) = (a.clone(), b.clone(), staff_cookie.clone());
            set.spawn(async move {
                let (insp, items) = socket(&a, &id, &cookie).await;
                let (biz, _) = socket(&b, &id, &guest).await;
                (insp, biz, items)
            });
        }
        while let Some(r) = set.join_next().await {
            pairs.push(r.expect("connect task"));
        }
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let pids: Vec<u32> = started.iter().filter_map(|s| s.child.id()).collect();
    let cpu0: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
    let t0 = Instant::now();
    let stop_at = t0 + warmup + Duration::from_secs(secs);
    let mut tasks = tokio::task::JoinSet::new();
    for (k, (insp, biz, items)) in pairs.into_iter().enumerate() {
        let sent: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
        let (mut isink, mut istream) = insp.split();
        let (_bsink, mut bstream) = biz.split();
        let sent_b = sent.clone();
        tasks.spawn(async move {
            let mut lat = Vec::new();
            let deadline = tokio::time::Instant::from_std(stop_at + Duration::from_secs(2));
            while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, bstream.next()).await {
                if let Message::Text(t) = m {
                    let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::Null);
                    if v["type"] == "event" && v["kind"] == "set_result" {
                        let id = v["op_id"].as_str().unwrap_or_default();
                        let at = sent_b.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
                        if let Some(s) = at.filter(|s| *s >= t0 + warmup) {
                            lat.push(s.elapsed().as_micros() as u32);
                        }
                    }
                }
            }
            (lat, Vec::new(), 0usize, 0usize)
        });
        tasks.spawn(async move {
            let mut acks = Vec::new();
            let (mut errors, mut refused) = (0usize, 0usize);
            let mut sent_at: HashMap<String, Instant> = HashMap::new();
            // As the browser does (web/ws.js): an op refused as `overloaded` is resent with the
            // same id, in order, after the hint (doubling while refusals go on).
            let mut unacked: VecDeque<(String, String)> = VecDeque::new();
            let mut to_resend: HashSet<String> = HashSet::new();
            let mut hold: Option<tokio::time::Instant> = None;
            let mut streak = 0u32;
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            let start = json!({"type": "op", "op_id": "start", "op": {"kind": "start"}}).to_string();
            unacked.push_back(("start".into(), start.clone()));
            if isink.send(Message::Text(start.into())).await.is_err() {
                return (Vec::new(), acks, 1, 0);
            }
            let phase = Duration::from_micros((k as u64 * 7919) % 500_000);
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + phase,
                Duration::from_millis(500),
            );
            let deadline = tokio::time::Instant::from_std(stop_at);
            let mut seq = 0usize;
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if tokio::time::Instant::now() >= deadline { break; }
                        seq += 1;
                        let id = format!("o{seq}");
                        let result = ["compliant", "violation", "not_applicable", "clear"][seq % 4];
                        let op = json!({"type": "op", "op_id": id, "op": {"kind": "set_result",
                            "item_id": items[seq % items.len()], "result": result, "comment": "bench"}}).to_string();
                        unacked.push_back((id.clone(), op.clone()));
                        if hold.is_some() {
                            to_resend.insert(id);
                            continue;
                        }
                        let now = Instant::now();
                        sent.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), now);
                        sent_at.insert(id, now);
                        if isink.send(Message::Text(op.into())).await.is_err() { break; }
                    }
                    _ = tokio::time::sleep_until(hold.unwrap_or(far)) => {
                        hold = None;
                        for (id, op) in &unacked {
                            if !to_resend.remove(id) { continue; }
                            let now = Instant::now();
                            sent.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), now);
                            sent_at.insert(id.clone(), now);
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
                            if let Some(s) = sent_at.remove(&id).filter(|s| *s >= t0 + warmup) {
                                acks.push(s.elapsed().as_micros() as u32);
                            }
                        } else if v["type"] == "error" && v["code"] == "overloaded" {
                            refused += 1;
                            to_resend.insert(id);
                            if hold.is_none() {
                                let hint = v["retry_after_ms"].as_u64().unwrap_or(250);
                                let base = hint << streak.min(6);
                                let ms = base / 2 + (base / 2) * ((k as u64 * 7919 + seq as u64) % 100) / 100;
                                hold = Some(tokio::time::Instant::now() + Duration::from_millis(ms));
                                streak += 1;
                            }
                        } else if v["type"] == "error" {
                            errors += 1;
                            if errors == 1 {
                                eprintln!("first error: {v}");
                            }
                        }
                    }
                }
            }
            (Vec::new(), acks, errors, refused)
        });
    }
    let sampler = tokio::spawn(async move {
        tokio::time::sleep_until(tokio::time::Instant::from_std(stop_at)).await;
        let cpu: Vec<u64> = pids.iter().map(|p| cpu_ticks(*p)).collect();
        (cpu, Instant::now())
    });
    let (mut lat, mut acks, mut errors, mut refused) = (Vec::new(), Vec::new(), 0, 0);
    while let Some(r) = tasks.join_next().await {
        let (l, a, e, o) = r.expect("task");
        lat.extend(l);
        acks.extend(a);
        errors += e;
        refused += o;
    }
    let (cpu1, t1) = sampler.await.expect("sampler");
    let wall = t1.duration_since(t0).as_secs_f64();
    let cpu: Vec<String> = cpu0
        .iter()
        .zip(&cpu1)
        .map(|(a, b)| format!("{:.0}%", (b - a) as f64 / 100.0 / wall * 100.0))
        .collect();
    println!(
        "nodes={nodes} N={n} ops_measured={} rate={:.0}/s p50={:.2}ms p99={:.2}ms max={:.2}ms ack_p50={:.2}ms ack_p99={:.2}ms errors={errors} overloaded={refused} node_cpu=[{}]",
        lat.len(),
        lat.len() as f64 / secs as f64,
        pct(&mut lat, 0.50),
        pct(&mut lat, 0.99),
        pct(&mut lat, 1.0),
        pct(&mut acks, 0.50),
        pct(&mut acks, 0.99),
        cpu.join(", "),
    );
    drop(started);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
    )))
    .execute(&pool)
    .await;
}
