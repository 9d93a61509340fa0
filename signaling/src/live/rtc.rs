//! WebRTC signaling over the inspection socket: `rtc.*` messages, typed at the edge
//! (docs/protocol.md, "WebRTC signaling"), bridged to the media hub.

use async_trait::async_trait;
use checklist_sync::{ExtError, Extension, Principal};
use media_recorder::{MediaEvent, MediaHub, MediaRole};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// Stable codes of refused `rtc.*` messages decided here (the media hub adds its own).
pub mod codes {
    /// An `rtc.*` type this server does not know.
    pub const UNKNOWN_TYPE: &str = "unknown_type";
    /// `rtc.offer` without a session description of type `offer`.
    pub const SDP_INVALID: &str = "sdp_invalid";
    /// `rtc.candidate` without an `RTCIceCandidateInit`.
    pub const CANDIDATE_INVALID: &str = "candidate_invalid";
}

/// The SDP of an offer, as `pc.localDescription` serializes it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
struct Description {
    #[serde(rename = "type")]
    kind: String,
    sdp: String,
}

/// A browser ICE candidate (`RTCIceCandidateInit`); an empty `candidate` ends the candidates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The candidate line.
    pub candidate: String,
    /// Media section id.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// Media section index.
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
    /// ICE username fragment.
    #[serde(default)]
    pub username_fragment: Option<String>,
}

/// A client `rtc.*` message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcClientMsg {
    /// `rtc.offer`: first offer, renegotiation or ICE restart. `role` is ignored: the server
    /// decides from the participant.
    Offer {
        /// The offer's SDP text.
        sdp: String,
    },
    /// `rtc.candidate`: trickle ICE.
    Candidate(IceCandidate),
    /// `rtc.leave`: close this participant's media.
    Leave,
}

/// A refused `rtc.*` message: sent back as `rtc.error`, nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtcError {
    /// Stable code.
    pub code: &'static str,
    /// Explanation.
    pub message: String,
}

impl RtcClientMsg {
    /// Decodes a client message whose `type` starts with `rtc.`; never panics.
    pub fn decode(msg: &Value) -> Result<RtcClientMsg, RtcError> {
        let kind = msg.get("type").and_then(Value::as_str).unwrap_or_default();
        let fail = |code, message: String| RtcError { code, message };
        match kind {
            "rtc.offer" => {
                let d: Description = msg
                    .get("sdp")
                    .cloned()
                    .ok_or_else(|| fail(codes::SDP_INVALID, "rtc.offer needs sdp".into()))
                    .and_then(|v| {
                        serde_json::from_value(v)
                            .map_err(|e| fail(codes::SDP_INVALID, format!("sdp: {e}")))
                    })?;
                if d.kind != "offer" {
                    return Err(fail(
                        codes::SDP_INVALID,
                        format!("the server answers offers, not {:?}", d.kind),
                    ));
                }
                Ok(RtcClientMsg::Offer { sdp: d.sdp })
            }
            "rtc.candidate" => msg
                .get("candidate")
                .cloned()
                .ok_or_else(|| {
                    fail(
                        codes::CANDIDATE_INVALID,
                        "rtc.candidate needs candidate".into(),
                    )
                })
                .and_then(|v| {
                    serde_json::from_value(v)
                        .map_err(|e| fail(codes::CANDIDATE_INVALID, format!("candidate: {e}")))
                })
                .map(RtcClientMsg::Candidate),
            "rtc.leave" => Ok(RtcClientMsg::Leave),
            other => Err(fail(
                codes::UNKNOWN_TYPE,
                format!("unknown message type {other:?}"),
            )),
        }
    }
}

/// A server `rtc.*` message (`rtc.error` is sent by the sync layer from [`ExtError`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type")]
pub enum RtcServerMsg {
    /// The answer, with the server's host candidates in it.
    #[serde(rename = "rtc.answer")]
    Answer {
        /// `{"type":"answer","sdp":"…"}`.
        sdp: Value,
    },
    /// A server candidate gathered after the answer.
    #[serde(rename = "rtc.candidate")]
    Candidate {
        /// `RTCIceCandidateInit`.
        candidate: Value,
    },
    /// The tracks to receive changed: send a new offer.
    #[serde(rename = "rtc.renegotiate")]
    Renegotiate,
    /// The server-side peer connection's state.
    #[serde(rename = "rtc.state")]
    State {
        /// `new`, `connecting`, `connected`, `disconnected`, `failed`, `closed`.
        state: String,
    },
}

impl RtcServerMsg {
    fn to_json(&self) -> Value {
        // A plain enum of strings and JSON values always serializes.
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

impl From<MediaEvent> for RtcServerMsg {
    fn from(ev: MediaEvent) -> Self {
        match ev {
            MediaEvent::LocalCandidate(c) => RtcServerMsg::Candidate { candidate: c },
            MediaEvent::Renegotiate => RtcServerMsg::Renegotiate,
            MediaEvent::State(s) => RtcServerMsg::State { state: s },
        }
    }
}

/// The media side of the inspection socket.
pub(crate) struct RtcBridge {
    media: MediaHub,
    /// `[media] max_video_kbps`, told to the browser in the welcome.
    max_video_kbps: u32,
}

impl RtcBridge {
    pub(crate) fn new(media: MediaHub, max_video_kbps: u32) -> RtcBridge {
        RtcBridge {
            media,
            max_video_kbps,
        }
    }

    fn role(who: &Principal) -> MediaRole {
        match who.role {
            checklist_sync::Role::Business => MediaRole::Publisher,
            checklist_sync::Role::Inspector => MediaRole::Inspector,
            checklist_sync::Role::Observer => MediaRole::Viewer,
        }
    }
}

fn ext_error(e: media_recorder::MediaError) -> ExtError {
    ExtError {
        code: e.code().into(),
        message: e.to_string(),
    }
}

#[async_trait]
impl Extension for RtcBridge {
    async fn on_message(
        &self,
        who: &Principal,
        msg: Value,
        out: mpsc::Sender<Value>,
    ) -> Result<(), ExtError> {
        let msg = RtcClientMsg::decode(&msg).map_err(|e| ExtError {
            code: e.code.into(),
            message: e.message,
        })?;
        match msg {
            RtcClientMsg::Offer { sdp } => {
                let (tx, mut rx) = mpsc::unbounded_channel::<MediaEvent>();
                let events_out = out.clone();
                tokio::spawn(async move {
                    while let Some(ev) = rx.recv().await {
                        if events_out
                            .send(RtcServerMsg::from(ev).to_json())
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                });
                let answer = self
                    .media
                    .offer(
                        who.inspection_id,
                        who.participant_id,
                        Self::role(who),
                        json!({"type": "offer", "sdp": sdp}),
                        tx,
                    )
                    .await
                    .map_err(ext_error)?;
                let _ = out
                    .send(RtcServerMsg::Answer { sdp: answer }.to_json())
                    .await;
                Ok(())
            }
            RtcClientMsg::Candidate(c) => {
                let candidate = serde_json::to_value(&c).map_err(|e| ExtError {
                    code: codes::CANDIDATE_INVALID.into(),
                    message: e.to_string(),
                })?;
                self.media
                    .candidate(who.inspection_id, who.participant_id, candidate)
                    .await
                    .map_err(ext_error)
            }
            RtcClientMsg::Leave => {
                self.media
                    .leave(who.inspection_id, who.participant_id)
                    .await;
                Ok(())
            }
        }
    }

    async fn on_close(&self, who: &Principal) {
        self.media
            .leave(who.inspection_id, who.participant_id)
            .await;
    }

    fn hello(&self, _who: &Principal) -> Option<Value> {
        Some(json!({
            "ice_servers": self.media.ice_servers(),
            "max_video_kbps": self.max_video_kbps,
        }))
    }

    fn seen_frame(&self, who: &Principal, ts: u32) -> Option<i64> {
        self.media
            .seen_frame(who.inspection_id, who.participant_id, ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(v: Value) -> &'static str {
        match RtcClientMsg::decode(&v) {
            Ok(m) => panic!("decoded {m:?}"),
            Err(e) => e.code,
        }
    }

    #[test]
    fn decodes_the_three_client_messages() {
        assert_eq!(
            RtcClientMsg::decode(
                &json!({"type": "rtc.offer", "sdp": {"type": "offer", "sdp": "v=0\r\n"}, "role": "x"})
            ),
            Ok(RtcClientMsg::Offer {
                sdp: "v=0\r\n".into()
            })
        );
        let c = RtcClientMsg::decode(&json!({"type": "rtc.candidate", "candidate":
            {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0, "extra": 1}}))
        .expect("candidate");
        let RtcClientMsg::Candidate(c) = c else {
            panic!("{c:?}")
        };
        assert_eq!(
            serde_json::to_value(&c).expect("json"),
            json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0",
                   "sdpMLineIndex": 0, "usernameFragment": null})
        );
        assert_eq!(
            RtcClientMsg::decode(&json!({"type": "rtc.candidate", "candidate": {"candidate": ""}})),
            Ok(RtcClientMsg::Candidate(IceCandidate {
                candidate: String::new(),
                sdp_mid: None,
                sdp_mline_index: None,
                username_fragment: None
            }))
        );
        assert_eq!(
            RtcClientMsg::decode(&json!({"type": "rtc.leave"})),
            Ok(RtcClientMsg::Leave)
        );
    }

    #[test]
    fn bad_messages_get_stable_codes() {
        assert_eq!(code(json!({"type": "rtc.offer"})), "sdp_invalid");
        assert_eq!(
            code(json!({"type": "rtc.offer", "sdp": "v=0"})),
            "sdp_invalid"
        );
        assert_eq!(
            code(json!({"type": "rtc.offer", "sdp": {"type": "answer", "sdp": "v=0"}})),
            "sdp_invalid"
        );
        assert_eq!(
            code(json!({"type": "rtc.offer", "sdp": {"type": "offer"}})),
            "sdp_invalid"
        );
        assert_eq!(code(json!({"type": "rtc.candidate"})), "candidate_invalid");
        assert_eq!(
            code(json!({"type": "rtc.candidate", "candidate": {"sdpMid": "0"}})),
            "candidate_invalid"
        );
        assert_eq!(
            code(
                json!({"type": "rtc.candidate", "candidate": {"candidate": "x", "sdpMLineIndex": -1}})
            ),
            "candidate_invalid"
        );
        assert_eq!(code(json!({"type": "rtc.bogus"})), "unknown_type");
    }

    #[test]
    fn server_messages_serialize_as_documented() {
        assert_eq!(
            RtcServerMsg::Answer {
                sdp: json!({"type": "answer", "sdp": "v=0"})
            }
            .to_json(),
            json!({"type": "rtc.answer", "sdp": {"type": "answer", "sdp": "v=0"}})
        );
        assert_eq!(
            RtcServerMsg::from(MediaEvent::Renegotiate).to_json(),
            json!({"type": "rtc.renegotiate"})
        );
        assert_eq!(
            RtcServerMsg::from(MediaEvent::State("connected".into())).to_json(),
            json!({"type": "rtc.state", "state": "connected"})
        );
        assert_eq!(
            RtcServerMsg::from(MediaEvent::LocalCandidate(json!({"candidate": "c"}))).to_json(),
            json!({"type": "rtc.candidate", "candidate": {"candidate": "c"}})
        );
    }
}
