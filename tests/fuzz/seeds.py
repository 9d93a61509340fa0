#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (tests/fuzz/corpus/<target>/).

Run from the repository root: python3 tests/fuzz/seeds.py. The seeds are valid inputs of
each decoder (the mutators start from them); the files are committed so that `cargo fuzz`
and the stable test (tests/e2e/fuzz.rs) start from the same set.
"""
import json
import os
import struct
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def write(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(v):
    return json.dumps(v, separators=(",", ":"), ensure_ascii=False)


LOC = {"lat": 55.7577, "lon": 37.613, "accuracy": 6, "altitude": 140.5,
       "altitude_accuracy": 3, "heading": 90, "speed": 0.5, "device_ts": 1763924110789}

OFFER = (
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
    "a=group:BUNDLE 0 1\r\na=extmap-allow-mixed\r\na=msid-semantic: WMS stream\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111 0\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n"
    "a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=msid:stream audio0\r\na=rtcp-mux\r\n"
    "a=rtpmap:111 opus/48000/2\r\na=rtcp-fb:111 transport-cc\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n"
    "a=rtpmap:0 PCMU/8000\r\na=ssrc:1111 cname:abc\r\n"
    "m=video 9 UDP/TLS/RTP/SAVPF 96 97 102 103\r\nc=IN IP4 0.0.0.0\r\na=rtcp:9 IN IP4 0.0.0.0\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\na=ice-options:trickle\r\n"
    "a=fingerprint:sha-256 AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89\r\n"
    "a=setup:actpass\r\na=mid:1\r\na=sendonly\r\na=msid:stream video0\r\na=rtcp-mux\r\na=rtcp-rsize\r\n"
    "a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\na=rtcp-fb:96 ccm fir\r\n"
    "a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\n"
    "a=rtpmap:102 H264/90000\r\na=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n"
    "a=rtpmap:103 rtx/90000\r\na=fmtp:103 apt=102\r\n"
    "a=ssrc-group:FID 2222 3333\r\na=ssrc:2222 cname:abc\r\na=ssrc:3333 cname:abc\r\n"
)
AUDIO_ONLY = OFFER.split("m=video")[0].replace("a=group:BUNDLE 0 1", "a=group:BUNDLE 0")
RECVONLY = OFFER.replace("a=sendonly", "a=recvonly")


def ws():
    ops = [
        {"kind": "start"},
        {"kind": "finish"},
        {"kind": "set_result", "item_id": "q1", "result": "violation", "comment": "нет огнетушителя", "violation": "п. 5"},
        {"kind": "set_result", "item_id": "q2", "result": "compliant"},
        {"kind": "comment", "item_id": "q1", "text": "см. фото"},
        {"kind": "request_photo", "item_id": "q3"},
        {"kind": "focus", "item_id": "q3"},
        {"kind": "finding", "text": "дверь заблокирована", "location": LOC},
        {"kind": "cancel", "reason": "business_absent", "note": "закрыто"},
        dict(kind="location", **LOC),
        {"kind": "location_unavailable", "reason": "permission_denied"},
        {"kind": "presence", "quality": "good", "rtt_ms": 80, "network": "wifi", "visible": True},
        {"kind": "rating", "side": "business", "criteria_version": 1,
         "scores": [{"criterion": "politeness", "score": 3, "reasons": ["rude"], "note": "x"}]},
        {"kind": "attach_evidence", "item_id": "q1", "evidence": {"kind": "photo"}},
        {"kind": "act_formed", "sha256": "0" * 64, "size": 1, "head_seq": 1, "head_hash": "0" * 64, "language": "ru"},
    ]
    for n, op in enumerate(ops):
        write("ws_decode", f"op-{n:02}-{op['kind']}", j({"type": "op", "op_id": f"a1b2-{n}", "op": op}))
    write("ws_decode", "hello", j({"type": "hello", "protocol": 1, "last_seq": 17,
                                  "client": {"timezone": "Europe/Moscow", "user_agent": "Mozilla/5.0",
                                             "platform": "Android", "missing": ["camera", "camera"]}}))
    write("ws_decode", "hello-min", j({"type": "hello", "protocol": 1}))
    write("ws_decode", "ping", j({"type": "ping", "t": 123.5}))
    write("ws_decode", "rtc", j({"type": "rtc.leave"}))


def rtc():
    write("rtc", "offer", j({"type": "rtc.offer", "role": "publisher", "sdp": {"type": "offer", "sdp": OFFER}}))
    write("rtc", "offer-audio", j({"type": "rtc.offer", "sdp": {"type": "offer", "sdp": AUDIO_ONLY}}))
    write("rtc", "answer", j({"type": "rtc.offer", "sdp": {"type": "answer", "sdp": OFFER}}))
    write("rtc", "candidate", j({"type": "rtc.candidate", "candidate": {
        "candidate": "candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host generation 0",
        "sdpMid": "0", "sdpMLineIndex": 0, "usernameFragment": "abcd"}}))
    write("rtc", "candidate-end", j({"type": "rtc.candidate", "candidate": {"candidate": ""}}))
    write("rtc", "leave", j({"type": "rtc.leave"}))


def sdp():
    write("sdp", "offer", OFFER)
    write("sdp", "audio-only", AUDIO_ONLY)
    write("sdp", "recvonly", RECVONLY)
    write("sdp", "vp9", OFFER.replace("VP8/90000", "VP9/90000"))


def rtp(pt, marker, seq, ts, ssrc, payload):
    return struct.pack(">BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xffff, ts, ssrc) + payload


def packets(ps):
    out = b""
    for p in ps:
        assert len(p) < 256
        out += bytes([len(p)]) + p
    return out


# A VP8 keyframe header (frame tag, start code, 320x240), as the assembler's size reader reads it.
VP8_KEY = bytes([0x50, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x40, 0x01, 0xf0, 0x00]) + b"\x00" * 20
SPS = bytes([0x67, 0x42, 0xc0, 0x1f, 0xda, 0x02, 0x80, 0xbf, 0xe5, 0x84, 0x00, 0x00, 0x03, 0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc9, 0x20])
PPS = bytes([0x68, 0xce, 0x3c, 0x80])
IDR = bytes([0x65, 0x88, 0x84]) + b"\x11" * 40


def stap_a(nals):
    out = bytes([0x18])
    for n in nals:
        out += struct.pack(">H", len(n)) + n
    return out


def fu_a(nal, size):
    hdr, body = nal[0], nal[1:]
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    out = []
    for i, c in enumerate(chunks):
        fu_h = (hdr & 0x1f) | (0x80 if i == 0 else 0) | (0x40 if i == len(chunks) - 1 else 0)
        out.append(bytes([(hdr & 0xe0) | 28, fu_h]) + c)
    return out


def depacketize():
    vp8 = [rtp(96, False, 10, 3000, 1, bytes([0x10]) + VP8_KEY[:15]),
           rtp(96, True, 11, 3000, 1, bytes([0x00]) + VP8_KEY[15:]),
           rtp(96, True, 12, 6000, 1, bytes([0x90, 0x80, 0x12]) + bytes([0x01]) + b"\x22" * 20)]
    write("depacketize", "vp8", packets(vp8))
    write("depacketize", "vp8-reordered", packets([vp8[1], vp8[0], vp8[2], vp8[2]]))
    h264 = [rtp(102, False, 65534, 90000, 2, stap_a([SPS, PPS]))]
    h264 += [rtp(102, i == 2, 65535 + i, 90000, 2, p) for i, p in enumerate(fu_a(IDR, 15))]
    h264 += [rtp(102, True, 4, 93000, 2, bytes([0x41, 0x9a]) + b"\x33" * 10)]
    write("depacketize", "h264", packets([p[:255] for p in h264]))
    write("depacketize", "h264-annexb", packets([b"\x00\x00\x00\x01" + SPS + b"\x00\x00\x01" + PPS]))
    write("depacketize", "opus", packets([rtp(111, True, 1, 960 * n, 3, b"\xfc\xff\xfe") for n in range(4)]))
    write("depacketize", "ext", packets([bytes([0x90, 0x60, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 0x10]) + VP8_KEY[:10]]))


def journal_file(meta, records):
    out = (j(meta) + "\n").encode()
    for kind, arrival, payload in records:
        head = struct.pack("<BqI", kind, arrival, len(payload))
        out += head + payload + struct.pack("<I", zlib.crc32(head + payload) & 0xffffffff)
    return out


def journal():
    t0 = 1763924100000000
    meta = {"format": "rtpj/1", "track_id": "video0", "participant_id": "p1", "kind": "video",
            "codec": "video/VP8", "clock_rate": 90000, "ssrc": 1, "created_at_micros": t0,
            "feed": "business_camera"}
    recs = [(2, t0, struct.pack("<QI", 0xe8d4a51000000000, 3000))]
    for n in range(6):
        key = n % 3 == 0
        payload = bytes([0x10]) + (VP8_KEY if key else bytes([0x01]) + b"\x22" * 20)
        recs.append((1, t0 + n * 33333, rtp(96, True, 10 + n, 3000 + 3000 * n, 1, payload)))
    write("journal", "vp8", journal_file(meta, recs))
    write("journal", "vp8-torn", journal_file(meta, recs)[:-7])
    ameta = dict(meta, track_id="audio0", kind="audio", codec="audio/opus", clock_rate=48000, ssrc=3,
                 feed="business_microphone")
    arecs = [(1, t0 + n * 20000, rtp(111, True, n, 960 * n, 3, b"\xfc\xff\xfe")) for n in range(10)]
    write("journal", "opus", journal_file(ameta, arecs))
    hmeta = dict(meta, codec="video/H264", ssrc=2)
    hrecs = [(1, t0, rtp(102, False, 1, 90000, 2, stap_a([SPS, PPS])))]
    hrecs += [(1, t0 + 10, rtp(102, i == 2, 2 + i, 90000, 2, p)) for i, p in enumerate(fu_a(IDR, 15))]
    write("journal", "h264", journal_file(hmeta, hrecs))


def template():
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "templates")
    for name in sorted(os.listdir(root)):
        with open(os.path.join(root, name), "rb") as f:
            write("template", name, f.read())
    write("template", "small", j({"code": "t", "version": 1, "title": "T", "items": [
        {"id": "a", "number": "1", "question": "Q?", "requirement": "R", "answer_kind": "compliance"}]}))


def geolocation():
    write("geolocation", "full", j(LOC))
    write("geolocation", "min", j({"lat": 0, "lon": -180, "accuracy": 0, "device_ts": 1763924110789}))
    write("geolocation", "nulls", j(dict(LOC, altitude=None, heading=None, speed=None)))
    # First byte 0xff: the next eight are the server clock (little-endian micros).
    write("geolocation", "clock", b"\xff" + struct.pack("<q", -(2 ** 63)) + j(LOC).encode())


for f in (ws, rtc, sdp, depacketize, journal, template, geolocation):
    f()
