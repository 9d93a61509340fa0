//! Fuzz target bodies (issue 19, item 6). Each takes arbitrary bytes and must return without
//! panicking: the cargo-fuzz project in `tests/fuzz` calls them under libFuzzer, and the
//! stable test suite runs them over the seed corpus and mutations of it
//! (`tests/e2e/fuzz.rs`), so CI needs no second (nightly) build.

use crate::live::rtc::RtcClientMsg;
use crate::templates::TemplateDoc;

/// The `rtc.*` decoder: a client frame as the socket hands it on (any JSON value), and the
/// offer it carries through the SDP checks.
pub fn fuzz_rtc(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Ok(RtcClientMsg::Offer { sdp }) = RtcClientMsg::decode(&v) {
        media_recorder::fuzzing::fuzz_sdp(sdp.as_bytes());
    }
}

/// The template importer: a template document (docs/templates.md) as `POST /api/templates`
/// and `inspector template import` read it, then its validation.
pub fn fuzz_template(data: &[u8]) {
    if let Ok(doc) = serde_json::from_slice::<TemplateDoc>(data) {
        let _ = doc.validate();
    }
}
