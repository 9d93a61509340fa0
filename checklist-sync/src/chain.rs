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
    let canonical = json!([
        inspection_id.to_string(),
        seq,
        server_ts,
        participant_id.to_string(),
        client_op_id,
        kind,
        payload_text,
        prev_hash
    ]);
    hex::encode(Sha256::digest(canonical.to_string().as_bytes()))
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
        let payload = ev.body.payload();
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

    /// The `event` message.
    pub fn to_wire_message(&self) -> Value {
        let mut v = self.to_wire();
        if let Value::Object(m) = &mut v {
            m.insert("type".into(), json!("event"));
        }
        v
    }
}
