//! Property test: random interleavings of operations from both sides, disconnects (with
//! operations in flight), reconnects and retries end with identical state everywhere, and no
//! operation applied twice.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use checklist_sync::SyncConfig;
use common::{devserver, Client, TestDb};
use proptest::prelude::*;
use serde_json::{json, Value};
use uuid::Uuid;

#[derive(Debug, Clone)]
enum Act {
    Op {
        inspector: bool,
        kind: u8,
        item: u8,
        result: u8,
    },
    Drop {
        inspector: bool,
    },
    Reconnect {
        inspector: bool,
    },
}

fn act() -> impl Strategy<Value = Act> {
    prop_oneof![
        6 => (any::<bool>(), 0u8..8, 1u8..5, 0u8..4).prop_map(|(inspector, kind, item, result)| Act::Op { inspector, kind, item, result }),
        1 => any::<bool>().prop_map(|inspector| Act::Drop { inspector }),
        1 => any::<bool>().prop_map(|inspector| Act::Reconnect { inspector }),
    ]
}

fn make_op(kind: u8, item: u8, result: u8, n: usize) -> Value {
    let item = format!("q{item}");
    match kind {
        0 | 1 => {
            let r = ["compliant", "violation", "not_applicable", "clear"][result as usize];
            let mut op = json!({"kind": "set_result", "item_id": item, "result": r, "comment": format!("c{n}")});
            if r == "violation" {
                op["violation"] = json!(format!("v{n}"));
            }
            op
        }
        2 => json!({"kind": "comment", "item_id": item, "text": format!("t{n}")}),
        3 => json!({"kind": "request_photo", "item_id": item}),
        4 => {
            json!({"kind": "location", "lat": 55.0 + n as f64 / 1000.0, "lon": 37.5, "accuracy": 10.0, "device_ts": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0) + n as i64})
        }
        5 => {
            json!({"kind": "presence", "quality": (["good", "fair", "poor", "unknown"][result as usize])})
        }
        6 => json!({"kind": "start"}),
        _ => {
            if result == 3 {
                json!({"kind": "finish"})
            } else {
                json!({"kind": "comment", "item_id": "nope", "text": "x"})
            }
        }
    }
}

struct Side {
    pid: Uuid,
    role: &'static str,
    client: Option<Client>,
    saved: Option<(Uuid, checklist_sync::State, u64)>,
    /// op_id → op, sent but not answered.
    outstanding: BTreeMap<String, Value>,
    /// op_ids answered with ack or duplicate_op_id.
    applied: BTreeSet<String>,
}

impl Side {
    async fn handle(&mut self, v: &Value) {
        let Some(id) = v["op_id"].as_str() else {
            return;
        };
        if self.outstanding.remove(id).is_some() {
            let applied = v["type"] == "ack" || v["code"] == "duplicate_op_id";
            if applied {
                self.applied.insert(id.to_string());
            }
        }
    }

    async fn send(&mut self, id: String, op: Value) {
        self.outstanding.insert(id.clone(), op.clone());
        if let Some(c) = &mut self.client {
            c.send(json!({"type": "op", "op_id": id, "op": op})).await;
        }
    }

    async fn reconnect(&mut self, addr: std::net::SocketAddr, inspection: Uuid) {
        if self.client.is_some() {
            return;
        }
        let (pid, state, seq) = self
            .saved
            .take()
            .unwrap_or((self.pid, Default::default(), 0));
        let last = if seq == 0 { None } else { Some(seq) };
        let mut c = Client::reconnect_with(addr, inspection, pid, self.role, state, last).await;
        // Retry everything unanswered, with the same op ids.
        for (id, op) in self.outstanding.clone() {
            c.send(json!({"type": "op", "op_id": id, "op": op})).await;
        }
        self.client = Some(c);
    }

    fn drop_socket(&mut self) {
        if let Some(c) = self.client.take() {
            self.saved = Some(c.detach());
        }
    }

    /// Reads whatever answers have arrived for outstanding ops until none are left.
    async fn settle(&mut self) {
        while !self.outstanding.is_empty() {
            let c = self.client.as_mut().expect("connected");
            let v = c.recv_reply().await.expect("socket open");
            self.handle(&v).await;
        }
    }
}

async fn run(acts: Vec<Act>) {
    let db = TestDb::new().await;
    let srv = devserver::start(
        db.pool().await,
        SyncConfig::default(),
        None,
        4,
        "127.0.0.1:0",
    )
    .await
    .expect("server");
    let id = Uuid::new_v4();
    let mut sides = [
        Side {
            pid: Uuid::new_v4(),
            role: "inspector",
            client: None,
            saved: None,
            outstanding: Default::default(),
            applied: Default::default(),
        },
        Side {
            pid: Uuid::new_v4(),
            role: "business",
            client: None,
            saved: None,
            outstanding: Default::default(),
            applied: Default::default(),
        },
    ];
    for s in sides.iter_mut() {
        s.reconnect(srv.addr, id).await;
    }
    sides[0]
        .send("start-0".into(), json!({"kind": "start"}))
        .await;
    for (n, a) in acts.into_iter().enumerate() {
        match a {
            Act::Op {
                inspector,
                kind,
                item,
                result,
            } => {
                let s = &mut sides[usize::from(!inspector)];
                s.send(format!("op-{n}"), make_op(kind, item, result, n))
                    .await;
            }
            Act::Drop { inspector } => sides[usize::from(!inspector)].drop_socket(),
            Act::Reconnect { inspector } => {
                sides[usize::from(!inspector)].reconnect(srv.addr, id).await
            }
        }
    }
    for s in sides.iter_mut() {
        s.reconnect(srv.addr, id).await;
        s.settle().await;
    }
    let snap = srv.hub.snapshot(id).await.expect("snapshot");
    for s in sides.iter_mut() {
        s.client
            .as_mut()
            .expect("connected")
            .sync_to(snap.seq)
            .await;
    }
    let a = &sides[0].client.as_ref().expect("connected").state;
    let b = &sides[1].client.as_ref().expect("connected").state;
    assert_eq!(a, b, "both sides converge");
    assert_eq!(a, &snap.state, "and equal the server");

    // Every applied op id is in the log exactly once; nothing unapplied is.
    let mut buf = Vec::new();
    checklist_sync::export_jsonl(&srv.pool, id, &mut buf)
        .await
        .expect("export");
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for line in String::from_utf8(buf).expect("utf8").lines() {
        let v: Value = serde_json::from_str(line).expect("json");
        if let Some(op) = v["client_op_id"].as_str() {
            *seen
                .entry((
                    v["participant_id"].as_str().unwrap_or_default().to_string(),
                    op.to_string(),
                ))
                .or_default() += 1;
        }
    }
    assert!(
        seen.values().all(|&n| n == 1),
        "an op applied twice: {seen:?}"
    );
    for s in &sides {
        for op in &s.applied {
            assert!(
                seen.contains_key(&(s.pid.to_string(), op.clone())),
                "acknowledged {op} missing"
            );
        }
    }
    assert!(checklist_sync::verify(&srv.pool, id)
        .await
        .expect("verify")
        .is_intact());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
    #[test]
    fn random_interleavings_converge(acts in proptest::collection::vec(act(), 1..40)) {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(run(acts));
    }
}
