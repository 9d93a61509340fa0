//! Checks a browser's offer before it touches a peer connection: is it an offer, does every
//! media section carry a codec the recorder can mux, and does the role allow what it sends.

use crate::api::{MediaError, MediaRole};

/// Media kind of an SDP section.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
}

/// Direction of a media section as written by the offerer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// The offerer sends and receives.
    SendRecv,
    /// The offerer only sends.
    SendOnly,
    /// The offerer only receives.
    RecvOnly,
    /// Nothing flows.
    Inactive,
}

/// One audio or video section of an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Audio or video.
    pub kind: Kind,
    /// Offerer's direction.
    pub direction: Direction,
    /// The section's `a=mid`.
    pub mid: Option<String>,
    /// Port 0: the section is rejected/stopped.
    pub rejected: bool,
    /// Codec MIME types the recorder can mux that the section offers (`video/VP8`, ...).
    pub usable: Vec<String>,
}

/// What the hub needs to know about an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferSummary {
    /// Audio and video sections in order.
    pub sections: Vec<Section>,
    /// DTLS fingerprint; a different one from the same participant means a new browser
    /// connection, not a renegotiation.
    pub fingerprint: Option<String>,
    /// The browser's ICE user fragment (the first `a=ice-ufrag`; BUNDLE shares one). A new
    /// one is an ICE restart (RFC 8839 §4.4.1.1.1): only then does the server gather again.
    pub ice_ufrag: Option<String>,
}

/// Parses the offer JSON into a description and summary, enforcing codec and role rules.
pub fn check_offer(
    json: serde_json::Value,
    role: MediaRole,
) -> Result<
    (
        rtc::peer_connection::sdp::RTCSessionDescription,
        OfferSummary,
    ),
    MediaError,
> {
    use rtc::peer_connection::sdp::{RTCSdpType, RTCSessionDescription};
    let desc: RTCSessionDescription = serde_json::from_value(json)
        .map_err(|e| MediaError::SdpInvalid(format!("not an RTCSessionDescription: {e}")))?;
    if desc.sdp_type != RTCSdpType::Offer {
        return Err(MediaError::SdpInvalid(format!(
            "expected an offer, got {}",
            desc.sdp_type
        )));
    }
    desc.unmarshal()
        .map_err(|e| MediaError::SdpInvalid(e.to_string()))?;
    let summary = summarize(&desc.sdp)?;
    check_rules(&summary, role)?;
    Ok((desc, summary))
}

/// Reads the sections of an SDP text (already known to parse).
pub fn summarize(sdp: &str) -> Result<OfferSummary, MediaError> {
    let mut sections = Vec::new();
    let mut fingerprint = None;
    let mut ice_ufrag = None;
    let mut session_direction = Direction::SendRecv;
    // The current section: kind (None for non-media), rejected, direction, payload types,
    // rtpmap (pt, mime), fmtp (pt, params).
    struct Cur {
        kind: Option<Kind>,
        rejected: bool,
        direction: Option<Direction>,
        mid: Option<String>,
        rtpmap: Vec<(String, String)>,
        fmtp: Vec<(String, String)>,
    }
    let mut cur: Option<Cur> = None;
    let finish = |cur: Option<Cur>, session_direction: Direction, sections: &mut Vec<Section>| {
        if let Some(c) = cur {
            if let Some(kind) = c.kind {
                let usable = c
                    .rtpmap
                    .iter()
                    .filter_map(|(pt, codec)| {
                        let fmtp = c
                            .fmtp
                            .iter()
                            .find(|(p, _)| p == pt)
                            .map(|(_, f)| f.as_str());
                        usable_mime(kind, codec, fmtp.unwrap_or(""))
                    })
                    .fold(Vec::<String>::new(), |mut acc, m| {
                        if !acc.contains(&m) {
                            acc.push(m);
                        }
                        acc
                    });
                sections.push(Section {
                    kind,
                    direction: c.direction.unwrap_or(session_direction),
                    mid: c.mid,
                    rejected: c.rejected,
                    usable,
                });
            }
        }
    };
    for line in sdp.lines() {
        let line = line.trim_end();
        if let Some(m) = line.strip_prefix("m=") {
            finish(cur.take(), session_direction, &mut sections);
            let mut parts = m.split_whitespace();
            let kind = match parts.next() {
                Some("audio") => Some(Kind::Audio),
                Some("video") => Some(Kind::Video),
                _ => None,
            };
            let rejected = parts.next() == Some("0");
            cur = Some(Cur {
                kind,
                rejected,
                direction: None,
                mid: None,
                rtpmap: vec![],
                fmtp: vec![],
            });
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let dir = match attr {
            "sendrecv" => Some(Direction::SendRecv),
            "sendonly" => Some(Direction::SendOnly),
            "recvonly" => Some(Direction::RecvOnly),
            "inactive" => Some(Direction::Inactive),
            _ => None,
        };
        if let Some(fp) = attr.strip_prefix("fingerprint:") {
            // Chrome writes it per section; all sections share one certificate.
            fingerprint.get_or_insert_with(|| fp.trim().to_ascii_lowercase());
        }
        if let Some(u) = attr.strip_prefix("ice-ufrag:") {
            ice_ufrag.get_or_insert_with(|| u.trim().to_owned());
        }
        match cur.as_mut() {
            None => {
                if let Some(d) = dir {
                    session_direction = d;
                }
            }
            Some(c) => {
                if let Some(d) = dir {
                    c.direction = Some(d);
                } else if let Some(mid) = attr.strip_prefix("mid:") {
                    c.mid = Some(mid.trim().to_owned());
                } else if let Some(rest) = attr.strip_prefix("rtpmap:") {
                    if let Some((pt, codec)) = rest.split_once(' ') {
                        c.rtpmap.push((pt.to_owned(), codec.to_owned()));
                    }
                } else if let Some(rest) = attr.strip_prefix("fmtp:") {
                    if let Some((pt, params)) = rest.split_once(' ') {
                        c.fmtp.push((pt.to_owned(), params.to_owned()));
                    }
                }
            }
        }
    }
    finish(cur.take(), session_direction, &mut sections);
    Ok(OfferSummary {
        sections,
        fingerprint,
        ice_ufrag,
    })
}

/// The MIME type if `codec` (`VP8/90000`) with `fmtp` is one the recorder can mux.
fn usable_mime(kind: Kind, codec: &str, fmtp: &str) -> Option<String> {
    let name = codec.split('/').next()?.to_ascii_lowercase();
    match (kind, name.as_str()) {
        (Kind::Video, "vp8") => Some("video/VP8".into()),
        (Kind::Video, "h264") => {
            let params: Vec<(String, String)> = fmtp
                .split(';')
                .filter_map(|p| p.split_once('='))
                .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_ascii_lowercase()))
                .collect();
            let mode1 = params
                .iter()
                .any(|(k, v)| k == "packetization-mode" && v == "1");
            // Baseline (42xx) and constrained baseline (42e0): what every phone sends and what
            // the server registers; High profile is not registered.
            let baseline = params
                .iter()
                .any(|(k, v)| k == "profile-level-id" && v.len() == 6 && v.starts_with("42"));
            (mode1 && baseline).then(|| "video/H264".into())
        }
        (Kind::Audio, "opus") => Some("audio/opus".into()),
        _ => None,
    }
}

/// Codec and role rules; see the module documentation.
fn check_rules(summary: &OfferSummary, role: MediaRole) -> Result<(), MediaError> {
    let live: Vec<&Section> = summary.sections.iter().filter(|s| !s.rejected).collect();
    if live.is_empty() {
        return Err(MediaError::NoUsableCodec(
            "the offer has no audio or video section".into(),
        ));
    }
    for s in &live {
        if s.direction != Direction::Inactive && s.usable.is_empty() {
            let what = match s.kind {
                Kind::Audio => "audio section offers no Opus",
                Kind::Video => {
                    "video section offers neither VP8 nor H.264 baseline packetization-mode=1"
                }
            };
            return Err(MediaError::NoUsableCodec(what.into()));
        }
        // `sendonly` is an explicit "I publish this"; a `sendrecv` section is what browsers
        // write for a receiving transceiver too, so its media is ignored per role instead.
        if s.direction == Direction::SendOnly {
            match (role, s.kind) {
                (MediaRole::Publisher, _) | (MediaRole::Inspector, Kind::Audio) => {}
                (MediaRole::Inspector, Kind::Video) => {
                    return Err(MediaError::Forbidden(
                        "an inspector may publish audio only".into(),
                    ))
                }
                (MediaRole::Viewer, _) => {
                    return Err(MediaError::Forbidden(
                        "a viewer may not publish media".into(),
                    ))
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(body: &str) -> String {
        format!("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n{body}")
    }

    const VIDEO_VP8: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\na=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n";
    const VIDEO_VP9: &str = "m=video 9 UDP/TLS/RTP/SAVPF 98\r\nc=IN IP4 0.0.0.0\r\na=mid:1\r\na=sendonly\r\na=rtpmap:98 VP9/90000\r\n";
    const AUDIO_OPUS: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\na=sendrecv\r\na=fingerprint:sha-256 AB:CD\r\na=rtpmap:111 opus/48000/2\r\n";

    #[test]
    fn reads_sections_codecs_and_fingerprint() {
        let s = summarize(&offer(&format!("{AUDIO_OPUS}{VIDEO_VP8}"))).expect("parses");
        assert_eq!(s.fingerprint.as_deref(), Some("sha-256 ab:cd"));
        assert_eq!(s.sections.len(), 2);
        assert_eq!(s.sections[0].usable, vec!["audio/opus".to_string()]);
        assert_eq!(s.sections[1].direction, Direction::SendOnly);
        assert_eq!(s.sections[1].usable, vec!["video/VP8".to_string()]);
    }

    #[test]
    fn reads_the_ice_user_fragment_once() {
        let a = summarize(&offer(&format!(
            "{AUDIO_OPUS}a=ice-ufrag:Ab1+\r\n{VIDEO_VP8}a=ice-ufrag:other\r\n"
        )))
        .expect("parses");
        assert_eq!(a.ice_ufrag.as_deref(), Some("Ab1+"));
        let none = summarize(&offer(AUDIO_OPUS)).expect("parses");
        assert_eq!(none.ice_ufrag, None);
    }

    #[test]
    fn h264_needs_mode_1_and_baseline() {
        assert_eq!(
            usable_mime(
                Kind::Video,
                "H264/90000",
                "packetization-mode=1;profile-level-id=42e01f"
            ),
            Some("video/H264".into())
        );
        assert_eq!(
            usable_mime(
                Kind::Video,
                "H264/90000",
                "packetization-mode=0;profile-level-id=42e01f"
            ),
            None
        );
        assert_eq!(
            usable_mime(
                Kind::Video,
                "H264/90000",
                "packetization-mode=1;profile-level-id=640c1f"
            ),
            None
        );
    }

    #[test]
    fn rules_reject_unusable_codecs_and_wrong_roles() {
        let vp9 = summarize(&offer(&format!("{AUDIO_OPUS}{VIDEO_VP9}"))).expect("parses");
        assert_eq!(
            check_rules(&vp9, MediaRole::Publisher).unwrap_err().code(),
            "no_usable_codec"
        );
        let vp8 = summarize(&offer(&format!("{AUDIO_OPUS}{VIDEO_VP8}"))).expect("parses");
        check_rules(&vp8, MediaRole::Publisher).expect("publisher may send video");
        assert_eq!(
            check_rules(&vp8, MediaRole::Inspector).unwrap_err().code(),
            "forbidden"
        );
        assert_eq!(
            check_rules(&vp8, MediaRole::Viewer).unwrap_err().code(),
            "forbidden"
        );
        let empty = summarize(&offer("")).expect("parses");
        assert_eq!(
            check_rules(&empty, MediaRole::Viewer).unwrap_err().code(),
            "no_usable_codec"
        );
    }

    #[test]
    fn garbage_is_sdp_invalid() {
        let err = check_offer(
            serde_json::json!({"type": "offer", "sdp": "hello"}),
            MediaRole::Viewer,
        )
        .unwrap_err();
        assert_eq!(err.code(), "sdp_invalid");
        let err = check_offer(serde_json::json!([1, 2]), MediaRole::Viewer).unwrap_err();
        assert_eq!(err.code(), "sdp_invalid");
        let err = check_offer(
            serde_json::json!({"type": "answer", "sdp": offer(AUDIO_OPUS)}),
            MediaRole::Viewer,
        )
        .unwrap_err();
        assert_eq!(err.code(), "sdp_invalid");
    }
}
