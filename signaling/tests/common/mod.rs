//! Real `inspector` processes for the tests that kill them: start on a free port with a
//! config file, wait until ready, `kill -9`, and the accounts they sign in with.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use inspector_tests::Client;
use serde_json::json;

pub const EXE: &str = env!("CARGO_BIN_EXE_inspector");

/// The password of every account [`add_user`] makes.
const PASSWORD: &str = "a long test password";

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// One running `inspector serve`; killed when dropped.
pub struct Server {
    pub child: Child,
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// `kill -9` (SIGKILL: no shutdown code runs).
    #[allow(dead_code)] // The fault tests that stop other things do not kill the server.
    pub fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reap");
    }
}

/// A fresh PostgreSQL database under `INSPECTOR_TEST_PG_URL`, else the SQLite file
/// `dir/shared.db` (several processes may share either).
#[allow(dead_code)] // The PostgreSQL outage test makes its own cluster.
pub async fn database_url(dir: &Path) -> String {
    match std::env::var("INSPECTOR_TEST_PG_URL") {
        Ok(u) if !u.is_empty() => inspector_tests::fresh_database(dir).await,
        _ => signaling::config::sqlite_url(&dir.join("shared.db")),
    }
}

/// Starts a server on `dir` and `db` with `config`, and waits until it answers `/readyz`.
#[allow(dead_code)] // Each test binary uses one of the two.
pub async fn start(dir: &Path, db: &str, config: &Path) -> Server {
    start_at(dir, db, config, free_port()).await
}

/// [`start`] on a given port (a restart where the clients expect the server).
#[allow(dead_code)]
pub async fn start_at(dir: &Path, db: &str, config: &Path, port: u16) -> Server {
    let child = Command::new(EXE)
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--media-udp", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(dir)
        .args(["--database-url", db])
        .arg("--config")
        .arg(config)
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

/// `inspector user add` on `db`.
pub fn add_user(db: &str, name: &str, role: &str) {
    let add = Command::new(EXE)
        .args(["user", "add", name, "--role", role])
        .args(["--database-url", db])
        .env("INSPECTOR_PASSWORD", PASSWORD)
        .stdout(Stdio::null())
        .status()
        .expect("user add");
    assert!(add.success());
}

/// A client signed in as `name` (made by [`add_user`]).
pub async fn login(base: &str, name: &str) -> Client {
    let mut c = Client::new(base);
    let r = c
        .post_json(
            "/api/auth/login",
            &json!({"username": name, "password": PASSWORD}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    c.csrf = r.body["csrf_token"].as_str().map(String::from);
    c
}

/// An inspection of `insp`'s made live over the real socket: the business admitted by a fresh
/// invitation, the inspector's socket greeted and the inspection started.
#[allow(dead_code)] // The tests that only kill or stop things make no inspection.
pub struct Live {
    pub id: String,
    /// The business, signed in by its invitation.
    pub business: Client,
    /// The inspector's socket, after its `start` was acknowledged.
    pub ws: inspector_tests::Ws,
    /// The checklist's item ids, in order.
    pub items: Vec<String>,
}

#[allow(dead_code)] // The tests that only kill or stop things make no inspection.
pub async fn start_live(insp: &Client) -> Live {
    let id = insp.create_inspection().await;
    let r = insp
        .post_json(&format!("/api/inspections/{id}/invitations"), &json!({}))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut business = Client::new(insp.base());
    let token = r.body["token"].as_str().expect("token");
    assert_eq!(business.accept(token).await.status, 200);
    let mut ws = inspector_tests::ws_connect(insp, &id)
        .await
        .expect("inspector socket");
    let welcome = ws.hello(None).await;
    let items = welcome["checklist"]
        .as_array()
        .expect("checklist")
        .iter()
        .map(|i| i["id"].as_str().expect("item id").to_string())
        .collect();
    assert_eq!(
        ws.op("start", json!({"kind": "start"})).await["type"],
        "ack"
    );
    Live {
        id,
        business,
        ws,
        items,
    }
}

/// Inspection `id`'s event log as `client` downloads it (JSON Lines), one value per event.
#[allow(dead_code)] // Not every test binary reads the log.
pub async fn event_log(client: &Client, id: &str) -> Vec<serde_json::Value> {
    let log = client
        .get(&format!("/api/inspections/{id}/events.jsonl"))
        .await;
    assert_eq!(log.status, 200, "{}", log.text);
    log.text
        .lines()
        .map(|l| serde_json::from_str(l).expect("event line"))
        .collect()
}
