//! Fuzz target bodies (issue 19, item 6). Each takes arbitrary bytes and must return without
//! panicking: the cargo-fuzz project in `tests/fuzz` calls them under libFuzzer, and the
//! stable test suite runs them over the seed corpus and mutations of it
//! (`tests/e2e/fuzz.rs`), so CI needs no second (nightly) build.

use serde_json::Value;

use crate::geo::{Geolocation, RawGeolocation};
use crate::proto::{self, ClientMsg};

/// The WebSocket message decoder: a client text frame, then the checks an op passes
/// before it reaches the room.
pub fn fuzz_decode(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match proto::decode(text) {
        Ok(ClientMsg::Op { op_id, op }) => {
            let _ = op.kind();
            let _ = op.item_id();
            let _ = op.is_act();
            if let Err(e) = op.validate() {
                let _ = e.to_wire(Some(&op_id));
            }
        }
        Ok(ClientMsg::Hello { .. } | ClientMsg::Ping { .. } | ClientMsg::Rtc(_)) => {}
        Err(e) => {
            let _ = e.error.to_wire(e.op_id.as_deref());
        }
    }
}

/// The geolocation parser: a browser sample as JSON, received at a server time taken from
/// the input's first eight bytes when it has them (extreme clocks included).
pub fn fuzz_geolocation(data: &[u8]) {
    let (now, json) = match data.split_first_chunk::<8>() {
        Some((head, rest)) if data.first() == Some(&0xff) => (i64::from_le_bytes(*head), rest),
        _ => (1_764_000_000_000_000, data),
    };
    let Ok(v) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let Ok(raw) = serde_json::from_value::<RawGeolocation>(v) else {
        return;
    };
    match Geolocation::parse(&raw, now) {
        Ok(g) => {
            let _ = g.clock_skew_ms();
            let d = g.distance_m(&g);
            assert!(d.is_finite(), "distance of a parsed fix to itself: {d}");
            let _ = crate::geo::distance_m((g.lat(), g.lon()), (-g.lat(), -g.lon()));
        }
        Err(e) => {
            let _ = (e.code(), e.to_string());
        }
    }
}
