//! Overload (issue 24, item 3): a writer made slow by the test knob and a small writer queue
//! put the server past its capacity. Operations beyond it are refused at once with
//! `overloaded` and a retry hint; accepted ones stay fast; every refused op, resent with the
//! same op id in its order, ends up in the log exactly once. Runs on SQLite, and on
//! PostgreSQL when `INSPECTOR_TEST_PG_URL` is set.

mod common;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use checklist_sync::state::EventBody;
use checklist_sync::{ItemResult, Operation, SyncConfig};
use common::{devserver, raw_connect, TestDb};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

const INSPECTIONS: usize = 10;
/// Operations per inspection: a `start`, then `set_result`s.
const OPS: usize = 41;
/// Operations one client keeps in flight.
const WINDOW: usize = 24;
const RESULTS: [&str; 3] = ["compliant", "violation", "not_applicable"];

fn op_of(i: usize) -> Value {
    if i == 0 {
        return json!({"kind": "start"});
    }
    json!({"kind": "set_result", "item_id": format!("q{}", i % 10 + 1), "result": RESULTS[i % 3]})
}

#[derive(Default)]
struct Outcome {
    /// Send (the accepted one) → ack, µs.
    accepted: Vec<u64>,
    /// Send → `overloaded`, µs.
    refused: Vec<u64>,
    duplicates: usize,
}

struct Sent {
    id: String,
    at: Instant,
    /// Answered `overloaded`: to be resent.
    refused: bool,
    /// Sent and not answered yet.
    open: bool,
}

/// One inspector: keeps `WINDOW` ops in flight; after `overloaded` it sends nothing new, waits
/// for the hint (doubled on each refusal in a row) and for every open op to be answered, then
/// resends the refused ones with the same op ids in their order (the server refuses whatever
/// follows a refused op until that op comes again, so the order of the log is the send order).
async fn inspector(addr: std::net::SocketAddr, inspection: Uuid) -> Outcome {
    let mut ws = raw_connect(addr, inspection, Uuid::new_v4(), "inspector").await;
    ws.send(Message::Text(
        json!({"type": "hello", "protocol": 1}).to_string().into(),
    ))
    .await
    .expect("hello");
    let mut out = Outcome::default();
    let mut pending: VecDeque<Sent> = VecDeque::new();
    let mut next = 0usize;
    let mut acked = 0usize;
    let mut hold: Option<tokio::time::Instant> = None;
    let mut streak = 0u32;
    let mut welcomed = false;
    let send = |i: &str, op: Value| {
        Message::Text(
            json!({"type": "op", "op_id": i, "op": op})
                .to_string()
                .into(),
        )
    };
    let index = |id: &str| -> usize { id[1..].parse().expect("op ids are o<index>") };
    while acked < OPS {
        if welcomed && hold.is_none() {
            while pending.len() < WINDOW && next < OPS {
                let id = format!("o{next}");
                ws.send(send(&id, op_of(next))).await.expect("send");
                pending.push_back(Sent {
                    id,
                    at: Instant::now(),
                    refused: false,
                    open: true,
                });
                next += 1;
            }
        }
        let resend_at = match hold {
            Some(t) if pending.iter().all(|s| !s.open) => t,
            // Far away: wait for the open ops' answers first.
            _ => tokio::time::Instant::now() + Duration::from_secs(3600),
        };
        tokio::select! {
            m = tokio::time::timeout(Duration::from_secs(20), ws.next()) => {
                let m = m.expect("the server answers within 20 s").expect("socket open").expect("frame");
                let Message::Text(t) = m else { continue };
                let v: Value = serde_json::from_str(t.as_str()).expect("JSON");
                let id = v["op_id"].as_str().unwrap_or_default().to_string();
                match v["type"].as_str() {
                    Some("welcome") => welcomed = true,
                    Some("ack") => {
                        let pos = pending.iter().position(|s| s.id == id).expect("ack of a pending op");
                        let s = pending.remove(pos).expect("position is in range");
                        assert!(s.open && !s.refused, "ack of {id} answers its last send");
                        out.accepted.push(s.at.elapsed().as_micros() as u64);
                        acked += 1;
                        streak = 0;
                    }
                    Some("error") if v["code"] == "overloaded" => {
                        let hint = v["retry_after_ms"].as_u64().expect("overloaded carries retry_after_ms");
                        assert!((1..=10_000).contains(&hint), "{v}");
                        let s = pending.iter_mut().find(|s| s.id == id).expect("refusal of a pending op");
                        out.refused.push(s.at.elapsed().as_micros() as u64);
                        s.refused = true;
                        s.open = false;
                        if hold.is_none() {
                            let backoff = hint << streak.min(4);
                            hold = Some(tokio::time::Instant::now() + Duration::from_millis(backoff));
                            streak += 1;
                        }
                    }
                    Some("error") if v["code"] == "duplicate_op_id" => {
                        // Would mean a refused op had been applied after all.
                        out.duplicates += 1;
                        pending.retain(|s| s.id != id);
                        acked += 1;
                    }
                    Some("error") => panic!("unexpected refusal {v}"),
                    _ => {}
                }
            }
            _ = tokio::time::sleep_until(resend_at) => {
                hold = None;
                let mut refused: Vec<&mut Sent> = pending.iter_mut().filter(|s| s.refused).collect();
                refused.sort_by_key(|s| index(&s.id));
                for s in refused {
                    ws.send(send(&s.id, op_of(index(&s.id)))).await.expect("resend");
                    s.at = Instant::now();
                    s.refused = false;
                    s.open = true;
                }
            }
        }
    }
    out
}

fn p99(v: &mut [u64]) -> Duration {
    v.sort_unstable();
    let i = ((v.len() as f64 - 1.0) * 0.99).round() as usize;
    Duration::from_micros(v[i])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_capacity_ops_are_refused_early_and_retries_apply_exactly_once() {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    let config = SyncConfig {
        // Capacity made small: ~250 events/s, at most 8 events waiting for the writer.
        test_writer_delay_per_event: Duration::from_millis(4),
        max_queued_events: 8,
        overload_retry_after: Duration::from_millis(50),
        rate_per_sec: 10_000.0,
        burst: 10_000.0,
        ..SyncConfig::default()
    };
    let srv = devserver::start(pool, config, None, 10, "127.0.0.1:0")
        .await
        .expect("server");
    let ids: Vec<Uuid> = (0..INSPECTIONS).map(|_| Uuid::new_v4()).collect();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for &id in &ids {
        set.spawn(inspector(srv.addr, id));
    }
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    let mut duplicates = 0;
    while let Some(r) = set.join_next().await {
        let o = r.expect("client task");
        accepted.extend(o.accepted);
        refused.extend(o.refused);
        duplicates += o.duplicates;
    }
    let took = started.elapsed();

    // The clients asked for more than the writer could take: some ops were refused …
    assert!(
        refused.len() >= INSPECTIONS,
        "only {} refusals: the test did not reach the server's capacity",
        refused.len()
    );
    // … at once (from the socket's reader, not after queueing) …
    let refused_p99 = p99(&mut refused);
    assert!(
        refused_p99 < Duration::from_millis(250),
        "refusals p99 {refused_p99:?}"
    );
    // … and what was accepted did not queue: about two writer rounds over 8 events of 4 ms
    // each, plus the disk. (Unbounded, the 240 ops in flight would wait ~1 s each.)
    let accepted_p99 = p99(&mut accepted);
    assert!(
        accepted_p99 < Duration::from_millis(400),
        "accepted p99 {accepted_p99:?}"
    );
    assert_eq!(accepted.len(), INSPECTIONS * OPS);
    assert_eq!(duplicates, 0, "a refused op was applied");
    eprintln!(
        "overload: {} ops in {took:?}, {} refusals (p99 {refused_p99:?}), accepted p99 {accepted_p99:?}",
        accepted.len(),
        refused.len()
    );

    // Exactly once, in the order sent, and the state is what the last op of each item says.
    for id in ids {
        let events = srv.hub.read_events(id).await.expect("events");
        let ops: Vec<&str> = events
            .iter()
            .filter(|e| matches!(e.body, EventBody::Op(_)))
            .map(|e| e.client_op_id.as_deref().expect("socket ops have ids"))
            .collect();
        let expected: Vec<String> = (0..OPS).map(|i| format!("o{i}")).collect();
        assert_eq!(
            ops, expected,
            "inspection {id}: each op once, in send order"
        );
        let mut last: BTreeMap<String, ItemResult> = BTreeMap::new();
        for e in &events {
            if let EventBody::Op(Operation::SetResult {
                item_id, result, ..
            }) = &e.body
            {
                last.insert(item_id.clone(), *result);
            }
        }
        let mut want: HashMap<String, &str> = HashMap::new();
        for i in 1..OPS {
            want.insert(format!("q{}", i % 10 + 1), RESULTS[i % 3]);
        }
        let snap = srv.hub.snapshot(id).await.expect("snapshot");
        for (item, result) in want {
            assert_eq!(
                snap.state.items[&item].result.map(|r| r.as_str()),
                Some(result),
                "inspection {id} item {item}"
            );
            assert_eq!(last[&item].as_str(), result);
        }
    }
}
