//! The server's host candidates under its public address, for a server behind a 1:1 NAT (a
//! cloud VM whose interface holds a private address).
//!
//! webrtc 0.21 keeps a `with_nat_1to1_ips` setting but never reads it: its gatherer makes every
//! host candidate from the bound socket's address. So the server rewrites its own candidates on
//! their way out — in the answer's `a=candidate` lines and in each trickled `rtc.candidate` —
//! and keeps the port: the NAT maps the port one to one. Checks then arrive at the bound socket
//! from wherever the browser is, which ICE accepts (the server is the controlled side and
//! learns the browser's address from them).

use std::net::IpAddr;

/// The candidate attribute `line` (`candidate:…`, with or without `a=`) with its address
/// replaced by the public address of the same family, when it is a host candidate and there
/// is one; otherwise `None`.
pub(crate) fn candidate(line: &str, public: &[IpAddr]) -> Option<String> {
    let mut fields: Vec<&str> = line.split(' ').collect();
    // foundation component transport priority address port "typ" type …
    if fields.len() < 8 || fields[6] != "typ" || fields[7] != "host" {
        return None;
    }
    let bound: IpAddr = fields[4].parse().ok()?;
    let to = public.iter().find(|p| p.is_ipv4() == bound.is_ipv4())?;
    let to = to.to_string();
    fields[4] = &to;
    Some(fields.join(" "))
}

/// The SDP with every host candidate line rewritten (see [`candidate`]).
pub(crate) fn sdp(sdp: &str, public: &[IpAddr]) -> String {
    if public.is_empty() {
        return sdp.to_owned();
    }
    let mut out = String::with_capacity(sdp.len());
    for line in sdp.split_inclusive('\n') {
        let (body, end) = match line.strip_suffix("\r\n") {
            Some(b) => (b, "\r\n"),
            None => match line.strip_suffix('\n') {
                Some(b) => (b, "\n"),
                None => (line, ""),
            },
        };
        match body
            .starts_with("a=candidate:")
            .then(|| candidate(body, public))
            .flatten()
        {
            Some(rewritten) => {
                out.push_str(&rewritten);
                out.push_str(end);
            }
            None => out.push_str(line),
        }
    }
    out
}

/// A trickled candidate (`RTCIceCandidateInit` JSON) rewritten in place (see [`candidate`]).
pub(crate) fn candidate_json(json: &mut serde_json::Value, public: &[IpAddr]) {
    let Some(line) = json.get("candidate").and_then(|v| v.as_str()) else {
        return;
    };
    if let Some(rewritten) = candidate(line, public) {
        json["candidate"] = serde_json::Value::String(rewritten);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(s: &[&str]) -> Vec<IpAddr> {
        s.iter().map(|i| i.parse().expect("test address")).collect()
    }

    #[test]
    fn host_candidates_take_the_public_address_of_their_family_and_keep_the_port() {
        let public = ips(&["203.0.113.7", "2001:db8::7"]);
        assert_eq!(
            candidate(
                "candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host",
                &public
            )
            .as_deref(),
            Some("candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host")
        );
        assert_eq!(
            candidate(
                "a=candidate:2 1 udp 2130706431 fd00::5 40002 typ host generation 0",
                &public
            )
            .as_deref(),
            Some("a=candidate:2 1 udp 2130706431 2001:db8::7 40002 typ host generation 0")
        );
        // Not host, no address of the family, not a candidate: untouched.
        let srflx =
            "candidate:3 1 udp 1694498815 198.51.100.1 5000 typ srflx raddr 10.0.0.5 rport 40000";
        assert_eq!(candidate(srflx, &public), None);
        assert_eq!(
            candidate(
                "candidate:1 1 udp 1 10.0.0.5 4 typ host",
                &ips(&["2001:db8::7"])
            ),
            None
        );
        assert_eq!(
            candidate("candidate:1 1 udp 1 x.local 4 typ host", &public),
            None
        );
        assert_eq!(candidate("garbage", &public), None);
    }

    #[test]
    fn an_answer_changes_in_its_candidate_lines_only() {
        let answer = "v=0\r\nc=IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host\r\na=end-of-candidates\r\n";
        let public = ips(&["203.0.113.7"]);
        assert_eq!(
            sdp(answer, &public),
            "v=0\r\nc=IN IP4 0.0.0.0\r\na=candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host\r\na=end-of-candidates\r\n"
        );
        assert_eq!(sdp(answer, &[]), answer);
        let mut json = serde_json::json!({"candidate": "candidate:1 1 udp 2130706431 10.0.0.5 40000 typ host", "sdpMLineIndex": 0});
        candidate_json(&mut json, &public);
        assert_eq!(
            json["candidate"],
            "candidate:1 1 udp 2130706431 203.0.113.7 40000 typ host"
        );
        assert_eq!(json["sdpMLineIndex"], 0);
    }
}
