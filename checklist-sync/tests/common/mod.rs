//! Test harness: a database per test (SQLite in a temp dir, or a fresh PostgreSQL database
//! when `INSPECTOR_TEST_PG_URL` is set), the dev server, and a WebSocket client that mirrors
//! the state exactly like a browser would.

#![allow(dead_code)]

#[path = "../../devsupport/server.rs"]
pub mod devserver;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use checklist_sync::state::Event;
use checklist_sync::State;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use sqlx::AnyPool;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use uuid::Uuid;

/// A database for one test.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    /// PostgreSQL admin URL and the database to drop afterwards.
    pg: Option<(String, String)>,
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let Some((admin, name)) = self.pg.take() else {
            return;
        };
        // Drop runs inside the test's runtime, so the cleanup gets its own thread and runtime.
        let (done, finished) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(pool) = sqlx::any::AnyPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin)
                    .await
                {
                    let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                    let _ = sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await;
                }
            });
            let _ = done.send(());
        });
        // The wait is bounded: a connection the server's pool was still opening when the test
        // ended is stuck in PostgreSQL's authentication, waiting for this (blocked) runtime,
        // and the DROP waits for that backend until `authentication_timeout` (60 s). Once the
        // test's runtime is gone its sockets close, that backend exits and the DROP finishes
        // on the server without us.
        let _ = finished.recv_timeout(std::time::Duration::from_secs(2));
    }
}

impl TestDb {
    pub async fn new() -> TestDb {
        sqlx::any::install_default_drivers();
        if let Ok(admin) = std::env::var("INSPECTOR_TEST_PG_URL") {
            let name = format!("sync_test_{}", Uuid::new_v4().simple());
            let pool = sqlx::any::AnyPoolOptions::new()
                .max_connections(1)
                .connect(&admin)
                .await
                .expect("admin pg");
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                .execute(&pool)
                .await
                .expect("create db");
            pool.close().await;
            let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
            return TestDb {
                url: format!("{base}/{name}"),
                _dir: None,
                pg: Some((admin.clone(), name)),
            };
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("sync.db").display());
        TestDb {
            url,
            _dir: Some(dir),
            pg: None,
        }
    }

    pub async fn pool(&self) -> AnyPool {
        devserver::open_pool(&self.url).await.expect("open pool")
    }
}

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A client mirroring the inspection state from welcome + events.
pub struct Client {
    pub ws: Ws,
    pub pid: Uuid,
    pub role: String,
    pub state: State,
    pub seq: u64,
    /// Non-event messages not yet consumed.
    pub inbox: VecDeque<Value>,
    pub welcome: Value,
    pub addr: SocketAddr,
    pub inspection: Uuid,
}

pub async fn raw_connect(addr: SocketAddr, inspection: Uuid, pid: Uuid, role: &str) -> Ws {
    let url = format!("ws://{addr}/ws/{inspection}?role={role}&pid={pid}");
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    ws
}

/// Reads the welcome, reassembling it when the server sent it as `welcome_part`s.
pub async fn read_welcome(ws: &mut Ws) -> Option<Value> {
    let first = next_json(ws).await?;
    if first["type"] != "welcome_part" {
        return Some(first);
    }
    let count = first["count"].as_u64().expect("count") as usize;
    let mut text = String::new();
    let mut part = first;
    for i in 0..count {
        assert_eq!(part["type"], "welcome_part", "parts come back to back");
        assert_eq!(part["index"].as_u64(), Some(i as u64));
        text.push_str(part["data"].as_str().expect("data"));
        if i + 1 < count {
            part = next_json(ws).await?;
        }
    }
    Some(serde_json::from_str(&text).expect("the parts make a welcome"))
}

pub async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("timed out waiting for a message")?;
        match m {
            Ok(Message::Text(t)) => {
                return Some(serde_json::from_str(t.as_str()).expect("server sends JSON"))
            }
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

impl Client {
    pub async fn connect(addr: SocketAddr, inspection: Uuid, pid: Uuid, role: &str) -> Client {
        Self::reconnect_with(addr, inspection, pid, role, State::default(), None).await
    }

    /// Connects resuming from a mirrored state (`last_seq` = what it has applied).
    pub async fn reconnect_with(
        addr: SocketAddr,
        inspection: Uuid,
        pid: Uuid,
        role: &str,
        state: State,
        last_seq: Option<u64>,
    ) -> Client {
        let mut ws = raw_connect(addr, inspection, pid, role).await;
        let hello = json!({"type": "hello", "protocol": 1, "last_seq": last_seq,
                           "client": {"timezone": "Europe/Moscow", "webdriver": false}});
        ws.send(Message::Text(hello.to_string().into()))
            .await
            .expect("send hello");
        let welcome = read_welcome(&mut ws).await.expect("welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let mut c = Client {
            ws,
            pid,
            role: role.to_string(),
            state,
            seq: last_seq.unwrap_or(0),
            inbox: VecDeque::new(),
            welcome: welcome.clone(),
            addr,
            inspection,
        };
        if let Some(s) = welcome.get("snapshot") {
            c.state = serde_json::from_value(s.clone()).expect("snapshot is a State");
            c.seq = welcome["seq"].as_u64().expect("seq");
        } else {
            for e in welcome["events"].as_array().expect("events") {
                c.apply(e);
            }
            assert_eq!(
                c.seq,
                welcome["seq"].as_u64().expect("seq"),
                "replay ends at welcome.seq"
            );
        }
        c
    }

    /// Drops the socket (the phone loses the network), keeping what it had applied.
    pub fn detach(self) -> (Uuid, State, u64) {
        (self.pid, self.state, self.seq)
    }

    /// Reconnects with `last_seq`, keeping the mirrored state.
    pub async fn reconnect(self) -> Client {
        let Client {
            ws,
            pid,
            role,
            state,
            seq,
            addr,
            inspection,
            ..
        } = self;
        drop(ws);
        Self::reconnect_with(addr, inspection, pid, &role, state, Some(seq)).await
    }

    fn apply(&mut self, e: &Value) {
        let ev = Event::from_wire(e).expect("valid event");
        if ev.seq <= self.seq {
            return;
        }
        assert_eq!(ev.seq, self.seq + 1, "gap in the event stream");
        self.state.apply(&ev);
        self.seq = ev.seq;
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string().into()))
            .await
            .expect("send");
    }

    /// Next message; events are applied (and returned too).
    pub async fn recv(&mut self) -> Option<Value> {
        if let Some(v) = self.inbox.pop_front() {
            return Some(v);
        }
        let v = next_json(&mut self.ws).await?;
        if v["type"] == "event" {
            self.apply(&v);
        }
        Some(v)
    }

    /// Next non-event message, applying events meanwhile.
    pub async fn recv_reply(&mut self) -> Option<Value> {
        loop {
            let v = self.recv().await?;
            if v["type"] != "event" {
                return Some(v);
            }
        }
    }

    /// Reads until this participant's own `join` is applied (so the server state includes it).
    pub async fn await_online(&mut self) {
        while !self
            .state
            .participants
            .get(&self.pid)
            .is_some_and(|p| p.online)
        {
            let v = next_json(&mut self.ws).await.expect("socket open");
            if v["type"] == "event" {
                self.apply(&v);
            } else {
                self.inbox.push_back(v);
            }
        }
    }

    /// Sends an op and returns its ack or error.
    pub async fn op(&mut self, op_id: &str, op: Value) -> Value {
        self.send(json!({"type": "op", "op_id": op_id, "op": op}))
            .await;
        loop {
            let v = self.recv_reply().await.expect("socket open");
            if v["op_id"] == op_id {
                return v;
            }
            self.inbox.push_back(v);
            if self.inbox.len() > 1000 {
                panic!("no answer to {op_id}");
            }
        }
    }

    /// Reads until the mirrored state reaches `seq`.
    pub async fn sync_to(&mut self, seq: u64) {
        while self.seq < seq {
            let v = next_json(&mut self.ws)
                .await
                .expect("socket open while syncing");
            if v["type"] == "event" {
                self.apply(&v);
            } else {
                self.inbox.push_back(v);
            }
        }
    }
}

pub fn item_result(item: &str, result: &str) -> Value {
    json!({"kind": "set_result", "item_id": item, "result": result})
}
