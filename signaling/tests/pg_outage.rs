//! PostgreSQL stopped mid-inspection (issue 19, item 5), on a private cluster of the test's
//! own (initdb + pg_ctl under a temp dir), so stopping it disturbs no other test. While it is
//! down, an op gets `database_unavailable` (not an ack, not silence) within the pool's acquire
//! timeout, and the REST API answers 503 `database_unavailable` with `Retry-After`, /readyz 503; when it is back, the server recovers by itself (no
//! restart): the socket reconnects, ops are acknowledged, and every op acknowledged before
//! the outage is in the log.
//!
//! `INSPECTOR_PG_OUTAGE_SECS` sets the outage (default 5 s in CI; docs/reliability.md,
//! "Faults", has the 30 s run).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{add_user, login, start};
use inspector_tests::ws_connect;
use serde_json::json;

/// A PostgreSQL cluster in a temp dir, run as the `postgres` user; stopped when dropped.
struct Cluster {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

fn as_postgres(bin: &Path, tool: &str) -> Command {
    let mut c = Command::new("runuser");
    c.args(["-u", "postgres", "--"]).arg(bin.join(tool));
    c.stdout(Stdio::null()).stderr(Stdio::null());
    c
}

impl Cluster {
    fn init() -> Cluster {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL installed")
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .max()
            .expect("a PostgreSQL version");
        let bin = PathBuf::from(format!("/usr/lib/postgresql/{version}/bin"));
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let chown = Command::new("chown")
            .args(["postgres:postgres"])
            .arg(dir.path())
            .status()
            .expect("chown");
        assert!(chown.success());
        let ok = as_postgres(&bin, "initdb")
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(&data)
            .status()
            .expect("initdb");
        assert!(ok.success(), "initdb");
        let cluster = Cluster {
            bin,
            data,
            port: common::free_port(),
            _dir: dir,
        };
        cluster.start();
        cluster
    }

    fn start(&self) {
        let ok = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-l"])
            .arg(self.data.join("log"))
            .arg("-o")
            .arg(format!(
                "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                self.port,
                self.data.display()
            ))
            .arg("start")
            .status()
            .expect("pg_ctl start");
        assert!(ok.success(), "pg_ctl start");
    }

    /// Stops at once, like a crashed or unreachable database (clients see resets).
    fn stop(&self) {
        let ok = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-m", "immediate", "stop"])
            .status()
            .expect("pg_ctl stop");
        assert!(ok.success(), "pg_ctl stop");
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin, "pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "stop"])
            .status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_mid_inspection_errors_then_recovers_by_itself() {
    let outage = Duration::from_secs(
        std::env::var("INSPECTOR_PG_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(5),
    );
    let pg = Cluster::init();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("inspector.toml");
    std::fs::write(&config, "").expect("config");
    let db = pg.url();
    let server = start(dir.path(), &db, &config).await;
    add_user(&db, "inspector1", "inspector");
    let insp = login(&server.base, "inspector1").await;
    let id = insp.create_inspection().await;
    let mut ws = ws_connect(&insp, &id).await.expect("socket");
    let welcome = ws.hello(None).await;
    let items: Vec<String> = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_string())
        .collect();
    let mut acked = Vec::new();
    let ack = ws.op("start", json!({"kind": "start"})).await;
    assert_eq!(ack["type"], "ack", "{ack}");
    acked.push(("start".to_string(), ack["seq"].as_u64().expect("seq")));
    for n in 0..5 {
        let op_id = format!("before-{n}");
        let ack = ws
            .op(
                &op_id,
                json!({"kind": "set_result", "item_id": items[n], "result": "violation"}),
            )
            .await;
        assert_eq!(ack["type"], "ack", "{ack}");
        acked.push((op_id, ack["seq"].as_u64().expect("seq")));
    }

    // The database goes away.
    let stopped = Instant::now();
    pg.stop();
    ws.send(json!({"type": "op", "op_id": "during", "op": {"kind": "set_result", "item_id": items[5], "result": "compliant"}}))
        .await;
    // An error for the op, or the socket closed by the server (the room reloads): never an
    // ack, and within the pool's 10 s acquire timeout and a margin.
    let answer = loop {
        match ws.recv_within(Duration::from_secs(20)).await {
            Ok(Some(m)) if m["op_id"] == "during" => break Some(m),
            Ok(Some(_)) => continue,
            Ok(None) => break None,
            Err(()) => panic!("no answer to an op 20 s into the outage"),
        }
    };
    let answered_in = stopped.elapsed();
    if let Some(m) = &answer {
        assert_eq!(m["type"], "error", "not an ack during the outage: {m}");
        // An outage, said as one: the browser keeps the op and sends it again.
        assert_eq!(m["code"], "database_unavailable", "{m}");
    }
    println!("op during the outage: {answer:?} after {answered_in:?}");
    // The REST API and the readiness probe, at once (each waits for the pool's timeout).
    let t = Instant::now();
    let show = format!("/api/inspections/{id}");
    let (r, ready) = tokio::join!(insp.get(&show), insp.get("/readyz"));
    println!(
        "REST during the outage: {} {} in {:?}",
        r.status,
        r.text,
        t.elapsed()
    );
    assert_eq!(r.status, 503, "{}", r.text);
    assert_eq!(
        r.body["error"]["code"], "database_unavailable",
        "{}",
        r.text
    );
    assert_eq!(
        r.headers.get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5"),
        "a 503 says when to retry"
    );
    assert_eq!(ready.status, 503, "readyz during the outage");

    // Back after the outage; the server recovers without a restart.
    if let Some(rest) = outage.checked_sub(stopped.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    pg.start();
    let back = Instant::now();
    let deadline = back + Duration::from_secs(30);
    let mut ws = loop {
        assert!(
            Instant::now() < deadline,
            "no recovery 30 s after the database came back"
        );
        if insp.get("/readyz").await.status == 200 {
            if let Ok(mut ws) = ws_connect(&insp, &id).await {
                let w = ws.hello(None).await;
                if w["type"] == "welcome" {
                    break ws;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let ack = ws
        .op(
            "after",
            json!({"kind": "set_result", "item_id": items[6], "result": "violation"}),
        )
        .await;
    assert_eq!(ack["type"], "ack", "{ack}");
    acked.push(("after".to_string(), ack["seq"].as_u64().expect("seq")));
    println!(
        "PostgreSQL down {:?}; op answered in {answered_in:?}; recovered {:?} after it came back",
        outage,
        back.elapsed()
    );

    let log = insp
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let events: Vec<serde_json::Value> = log
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("event"))
        .collect();
    for (op_id, seq) in &acked {
        let ev = events
            .iter()
            .find(|e| e["seq"].as_u64() == Some(*seq))
            .unwrap_or_else(|| panic!("acknowledged seq {seq} ({op_id}) lost"));
        assert_eq!(ev["client_op_id"].as_str(), Some(op_id.as_str()));
    }
    // The refused op was not applied.
    if answer.is_some() {
        assert!(
            !events.iter().any(|e| e["client_op_id"] == "during"),
            "an op refused during the outage is not in the log"
        );
    }
    drop(server);
}
