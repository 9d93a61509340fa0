//! Inspector's media server as a process of its own, for `scripts/bench-janus` (issue 18): a
//! `MediaHub` recording every publisher, with the offer/answer exchange over a line protocol
//! on TCP, so its CPU and memory are read from `/proc/<pid>` exactly as Janus's are.
//!
//! ```text
//! media_server <control addr, e.g. 10.77.0.2:8099> <udp ip, e.g. 10.77.0.2> <recordings dir>
//! ```
//!
//! Each TCP connection carries one JSON request line and gets one JSON reply line:
//!
//! * `{"offer": <RTCSessionDescription>, "inspection": "<uuid>", "peer": "<uuid>",
//!   "role": "publisher" | "inspector" | "viewer"}` → `{"answer": <RTCSessionDescription>}`
//!   (the hub's answer carries its candidates; later ones are dropped: the bench's clients
//!   are on a directly reachable address);
//! * `{"leave": true, "inspection": "<uuid>", "peer": "<uuid>"}` → `{"ok": true}`;
//! * errors → `{"error": "<text>"}`.
//!
//! Nothing else runs in the process: the clients are another process (`janus_bench`).

use media_recorder::{MediaConfig, MediaEvent, MediaHub, MediaRole};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use uuid::Uuid;

async fn handle(hub: MediaHub, line: String) -> serde_json::Value {
    let req: serde_json::Value = match serde_json::from_str(&line) {
        Ok(v) => v,
        Err(e) => return serde_json::json!({ "error": format!("bad json: {e}") }),
    };
    let id = |k: &str| {
        req.get(k)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse::<Uuid>().ok())
    };
    let (Some(inspection), Some(peer)) = (id("inspection"), id("peer")) else {
        return serde_json::json!({ "error": "inspection and peer (uuids) needed" });
    };
    if req.get("leave").is_some() {
        hub.leave(inspection, peer).await;
        return serde_json::json!({ "ok": true });
    }
    let role = match req.get("role").and_then(|v| v.as_str()) {
        Some("publisher") => MediaRole::Publisher,
        Some("inspector") => MediaRole::Inspector,
        Some("viewer") => MediaRole::Viewer,
        other => return serde_json::json!({ "error": format!("bad role {other:?}") }),
    };
    let Some(offer) = req.get("offer").cloned() else {
        return serde_json::json!({ "error": "offer needed" });
    };
    let (etx, mut erx) = tokio::sync::mpsc::unbounded_channel::<MediaEvent>();
    // Events (late candidates, renegotiation requests) are not needed by the bench's clients;
    // drain them so nothing piles up.
    tokio::spawn(async move { while erx.recv().await.is_some() {} });
    match hub.offer(inspection, peer, role, offer, etx).await {
        Ok(answer) => serde_json::json!({ "answer": answer }),
        Err(e) => serde_json::json!({ "error": e.to_string() }),
    }
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(control), Some(udp_ip), Some(dir)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: media_server <control addr> <udp ip> <recordings dir>");
        std::process::exit(2);
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "error".into()))
        .with_writer(std::io::stderr)
        .try_init();
    let hub = MediaHub::new(MediaConfig {
        recordings_dir: dir.into(),
        udp_addrs: vec![format!("{udp_ip}:0")],
        nat_1to1_ips: vec![],
        ice_servers: vec![],
    })
    .await
    .expect("hub");
    let listener = tokio::net::TcpListener::bind(&control)
        .await
        .expect("bind control address");
    println!("media_server listening on {control}, media on {udp_ip}");
    loop {
        let Ok((sock, _)) = listener.accept().await else {
            continue;
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            let (r, mut w) = sock.into_split();
            let mut lines = BufReader::new(r).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let reply = handle(hub.clone(), line).await;
                let mut out = reply.to_string();
                out.push('\n');
                if w.write_all(out.as_bytes()).await.is_err() {
                    break;
                }
            }
        });
    }
}
