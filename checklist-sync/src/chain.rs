//! The hash chain and the committed-event record.

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::ItemResult;
use crate::state::Event;

/// `prev_hash` of the first event of an inspection.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// SHA-256 (lowercase hex) over the canonical serialization of one event, as documented in
/// docs/protocol.md: the compact JSON array
/// `[inspection_id, seq, server_ts, participant_id, client_op_id|null, kind, payload_text, prev_hash]`.
#[allow(clippy::too_many_arguments)]
pub fn event_hash(
    inspection_id: Uuid,
    seq: u64,
    server_ts: i64,
    participant_id: Uuid,
    client_op_id: Option<&str>,
    kind: &str,
    payload_text: &str,
    prev_hash: &str,
) -> String {
    // Serialized straight into the hasher: the same compact JSON text as a `json!` array of
    // these values, without building the tree or the string.
    let mut w = HashWriter(Sha256::new());
    let (mut b1, mut b2) = (Uuid::encode_buffer(), Uuid::encode_buffer());
    let inspection: &str = inspection_id.hyphenated().encode_lower(&mut b1);
    let participant: &str = participant_id.hyphenated().encode_lower(&mut b2);
    let canonical = (
        inspection,
        seq,
        server_ts,
        participant,
        client_op_id,
        kind,
        payload_text,
        prev_hash,
    );
    // Writing into a hasher cannot fail, and these values always serialize.
    serde_json::to_writer(&mut w, &canonical).expect("hashing cannot fail");
    hex::encode(w.0.finalize())
}

/// `io::Write` into a SHA-256.
struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// An event as committed to the database: what the embedding server sees on
/// [`crate::SyncHub::events`].
#[derive(Debug, Clone, PartialEq)]
pub struct CommittedEvent {
    /// The inspection.
    pub inspection_id: Uuid,
    /// Per-inspection sequence number.
    pub seq: u64,
    /// Server time of acceptance, µs since the epoch UTC.
    pub server_ts_micros: i64,
    /// Who.
    pub participant_id: Uuid,
    /// The client's op id, if any.
    pub client_op_id: Option<String>,
    /// Event kind (`set_result`, `join`, …).
    pub kind: String,
    /// Event payload.
    pub payload: Value,
    /// The exact payload text stored and hashed.
    pub payload_text: String,
    /// Hash of the previous event.
    pub prev_hash: String,
    /// Hash of this event.
    pub hash: String,
}

/// An item result as a recording mark: what the lead maps to chapters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemResultMark {
    /// The item.
    pub item_id: String,
    /// The result (`clear` when it was removed).
    pub result: ItemResult,
    /// The inspector's comment.
    pub comment: Option<String>,
}

impl CommittedEvent {
    /// Seals an event onto the chain after `prev_hash`.
    pub fn seal(inspection_id: Uuid, ev: &Event, prev_hash: &str) -> Self {
        let mut payload = ev.body.payload();
        if let (Some(t), Value::Object(m)) = (ev.device_time, &mut payload) {
            m.insert(crate::state::DEVICE_TIME_KEY.into(), t.into());
        }
        if let (Some(o), Value::Object(m)) = (ev.clock_offset_ms, &mut payload) {
            m.insert(crate::state::CLOCK_OFFSET_KEY.into(), o.into());
        }
        let payload_text = payload.to_string();
        let kind = ev.body.kind();
        let hash = event_hash(
            inspection_id,
            ev.seq,
            ev.server_ts,
            ev.participant_id,
            ev.client_op_id.as_deref(),
            kind,
            &payload_text,
            prev_hash,
        );
        Self {
            inspection_id,
            seq: ev.seq,
            server_ts_micros: ev.server_ts,
            participant_id: ev.participant_id,
            client_op_id: ev.client_op_id.clone(),
            kind: kind.to_string(),
            payload,
            payload_text,
            prev_hash: prev_hash.to_string(),
            hash,
        }
    }

    /// The item result carried by a `set_result` event.
    pub fn item_result(&self) -> Option<ItemResultMark> {
        if self.kind != "set_result" {
            return None;
        }
        let item_id = self.payload.get("item_id")?.as_str()?.to_string();
        let result = ItemResult::parse(self.payload.get("result")?.as_str()?)?;
        let comment = self
            .payload
            .get("comment")
            .and_then(Value::as_str)
            .map(str::to_string);
        Some(ItemResultMark {
            item_id,
            result,
            comment,
        })
    }

    /// The event in its wire shape (without `type`), as in welcome `events`.
    pub fn to_wire(&self) -> Value {
        json!({
            "seq": self.seq,
            "server_ts": self.server_ts_micros,
            "participant_id": self.participant_id,
            "op_id": self.client_op_id,
            "kind": self.kind,
            "payload": self.payload,
            "hash": self.hash,
        })
    }

    /// The `event` message as text, written around the stored payload text: what is sent
    /// to every socket of the inspection, encoded once per event (no JSON tree per event).
    pub fn wire_message_text(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(self.payload_text.len() + self.hash.len() + 192);
        let mut b = Uuid::encode_buffer();
        // Writing into a String cannot fail; an Option<String> always serializes.
        let op_id = serde_json::to_string(&self.client_op_id).expect("op id serializes");
        let kind = serde_json::to_string(&self.kind).expect("kind serializes");
        let _ = write!(
            s,
            r#"{{"type":"event","seq":{},"server_ts":{},"participant_id":"{}","op_id":{},"kind":{},"payload":"#,
            self.seq,
            self.server_ts_micros,
            self.participant_id.hyphenated().encode_lower(&mut b),
            op_id,
            kind,
        );
        s.push_str(&self.payload_text);
        s.push_str(r#","hash":"#);
        s.push_str(&serde_json::to_string(&self.hash).expect("hash serializes"));
        s.push('}');
        s
    }

    /// The `event` message.
    pub fn to_wire_message(&self) -> Value {
        let mut v = self.to_wire();
        if let Value::Object(m) = &mut v {
            m.insert("type".into(), json!("event"));
        }
        v
    }
}

/// Checks a chain link by link, oldest first: the same rules as [`crate::verify`] (sequence
/// without gaps from 1, each `prev_hash` the previous hash, each row hashing to its `hash`),
/// for other logs sealed with [`event_hash`] (the server's prescriptions).
#[derive(Debug, Clone)]
pub struct ChainCheck {
    log_id: Uuid,
    prev: String,
    expected: u64,
}

impl ChainCheck {
    /// A check of the chain of log `log_id`, from its genesis.
    pub fn new(log_id: Uuid) -> ChainCheck {
        ChainCheck {
            log_id,
            prev: GENESIS_HASH.to_string(),
            expected: 1,
        }
    }

    /// Checks the next stored row; the first broken link is an error (stop there).
    #[allow(clippy::too_many_arguments)]
    pub fn next(
        &mut self,
        seq: u64,
        server_ts: i64,
        participant_id: &str,
        client_op_id: Option<&str>,
        kind: &str,
        payload_text: &str,
        prev_hash: &str,
        hash: &str,
    ) -> Result<(), crate::BrokenLink> {
        use crate::{BrokenLink, BrokenReason};
        if seq != self.expected {
            return Err(BrokenLink {
                seq,
                reason: BrokenReason::SeqGap {
                    expected: self.expected,
                },
            });
        }
        if prev_hash != self.prev {
            return Err(BrokenLink {
                seq,
                reason: BrokenReason::PrevHashMismatch {
                    expected: self.prev.clone(),
                    found: prev_hash.to_string(),
                },
            });
        }
        let pid = Uuid::parse_str(participant_id).unwrap_or(Uuid::nil());
        let computed = event_hash(
            self.log_id,
            seq,
            server_ts,
            pid,
            client_op_id,
            kind,
            payload_text,
            prev_hash,
        );
        if computed != hash || pid.to_string() != participant_id {
            return Err(BrokenLink {
                seq,
                reason: BrokenReason::HashMismatch {
                    computed,
                    stored: hash.to_string(),
                },
            });
        }
        self.prev = hash.to_string();
        self.expected += 1;
        Ok(())
    }

    /// The hash of the last checked event (`None` before the first).
    pub fn head(&self) -> Option<&str> {
        (self.expected > 1).then_some(self.prev.as_str())
    }
}
