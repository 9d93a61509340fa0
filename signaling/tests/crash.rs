//! `kill -9` of the real `inspector` process right after acknowledgements: after a restart on
//! the same data directory, every acknowledged checklist operation is in the log, in order,
//! and the hash chain verifies (`inspector audit verify`).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inspector_tests::{ws_connect, Client};
use serde_json::json;

const EXE: &str = env!("CARGO_BIN_EXE_inspector");

fn free_port() -> u16 {
    // Bind port 0 and release it: the server binds it again a moment later.
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

struct Server {
    child: Child,
    base: String,
}

fn data_args(dir: &std::path::Path) -> Vec<String> {
    let mut args = vec!["--data-dir".to_string(), dir.display().to_string()];
    if let Ok(url) = std::env::var("INSPECTOR_TEST_PG_URL") {
        if !url.is_empty() {
            args.push("--database-url".into());
            args.push(std::fs::read_to_string(dir.join("pg_url")).expect("pg url file"));
        }
    }
    args
}

async fn start(dir: &std::path::Path, port: u16) -> Server {
    let child = Command::new(EXE)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--media-udp", "127.0.0.1:0"])
        .args(data_args(dir))
        .stdout(Stdio::null())
        .stderr(if std::env::var("TEST_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        })
        .spawn()
        .expect("spawn inspector");
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
            && Client::new(&base).get("/readyz").await.status == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "server did not become ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Server { child, base }
}

#[tokio::test]
async fn acknowledged_operations_survive_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let _db = if std::env::var("INSPECTOR_TEST_PG_URL").is_ok_and(|u| !u.is_empty()) {
        let url = inspector_tests::fresh_database(dir.path()).await;
        std::fs::write(dir.path().join("pg_url"), &url).expect("write");
        inspector_tests::PgDatabaseGuard::for_url(&url)
    } else {
        None
    };
    let port = free_port();
    let mut server = start(dir.path(), port).await;
    let add = Command::new(EXE)
        .args(["user", "add", "inspector1", "--role", "inspector"])
        .args(data_args(dir.path()))
        .env("INSPECTOR_PASSWORD", "a long test password")
        .stdout(Stdio::null())
        .status()
        .expect("user add");
    assert!(add.success());

    let mut insp = Client::new(&server.base);
    let r = insp
        .post_json(
            "/api/auth/login",
            &json!({"username": "inspector1", "password": "a long test password"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    insp.csrf = r.body["csrf_token"].as_str().map(String::from);
    let id = insp.create_inspection().await;
    let mut ws = ws_connect(&insp, &id).await.expect("socket");
    let welcome = ws.hello(None).await;
    let items: Vec<String> = welcome["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        ws.op("start", json!({"kind": "start"})).await["type"],
        "ack"
    );

    // Pipeline many operations (below the rate limit's burst), kill the server as soon as
    // some are acknowledged, while others are still in flight.
    let results = ["compliant", "violation", "not_applicable"];
    for n in 0..50 {
        let op = json!({"kind": "set_result", "item_id": items[n % items.len()], "result": results[n % 3]});
        ws.send(json!({"type": "op", "op_id": format!("op-{n}"), "op": op}))
            .await;
    }
    let mut acked: Vec<(String, u64)> = Vec::new();
    while acked.len() < 20 {
        let m = ws.recv().await.expect("socket open");
        if m["type"] == "ack" {
            acked.push((
                m["op_id"].as_str().unwrap().to_string(),
                m["seq"].as_u64().unwrap(),
            ));
        }
    }
    server.child.kill().expect("SIGKILL");
    server.child.wait().expect("reap");
    // Acks that were already on the wire when the process died count too.
    while let Some(m) = ws.recv().await {
        if m["type"] == "ack" {
            acked.push((
                m["op_id"].as_str().unwrap().to_string(),
                m["seq"].as_u64().unwrap(),
            ));
        }
    }

    let mut server = start(dir.path(), port).await;
    let log = insp
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    let events: Vec<serde_json::Value> = log
        .text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for (op_id, seq) in &acked {
        let ev = events
            .iter()
            .find(|e| e["seq"].as_u64() == Some(*seq))
            .unwrap_or_else(|| panic!("acknowledged seq {seq} lost"));
        assert_eq!(
            ev["client_op_id"].as_str(),
            Some(op_id.as_str()),
            "seq {seq} holds another operation"
        );
    }
    let verify = Command::new(EXE)
        .args(["audit", "verify", &id])
        .args(data_args(dir.path()))
        .output()
        .expect("audit");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stdout)
    );
    assert!(String::from_utf8_lossy(&verify.stdout).starts_with("intact"));
    server.child.kill().expect("stop");
    server.child.wait().expect("reap");
}
