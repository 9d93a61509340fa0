//! Rust WebRTC clients for the live tests and the benchmark: a publisher that sends real VP8
//! (encoded here with libvpx through ffmpeg-next) and Opus, and subscribers that record what
//! they receive. They talk to a `MediaHub` in-process, exactly as the signaling layer would.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use media_recorder::{MediaEvent, MediaHub, MediaRole};
use rtc::interceptor::Registry;
use rtc::media::Sample;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::{
    MediaEngine, MIME_TYPE_H264, MIME_TYPE_OPUS, MIME_TYPE_VP8,
};
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::transport::RTCIceCandidateInit;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpTransceiverDirection, RTCRtpTransceiverInit};
use tokio::sync::mpsc;
use uuid::Uuid;
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use webrtc::media_stream::track_local::{TrackLocal, TrackLocalEvent};
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::media_stream::Track;
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCIceGatheringState,
    RTCPeerConnectionState,
};
use webrtc::rtp_transceiver::RtpSender;

/// A silent 20 ms Opus frame (TOC 0xf8: CELT fullband 20 ms, mono).
pub const OPUS_SILENCE: [u8; 3] = [0xf8, 0xff, 0xfe];

/// One encoded VP8 frame.
#[derive(Clone)]
pub struct Frame {
    pub data: bytes::Bytes,
    pub key: bool,
}

/// Encodes `count` frames of moving noise with libvpx (realtime settings). Noise keeps the
/// encoder at its target bitrate, which the benchmark needs.
pub fn encode_vp8(
    width: u32,
    height: u32,
    fps: i32,
    count: usize,
    bitrate: usize,
    gop: u32,
) -> Vec<Frame> {
    use ffmpeg_next as ff;
    ff::init().expect("ffmpeg init");
    let codec = ff::encoder::find_by_name("libvpx").expect("libvpx encoder in this ffmpeg");
    let mut enc = ff::codec::context::Context::new_with_codec(codec)
        .encoder()
        .video()
        .expect("video encoder");
    enc.set_width(width);
    enc.set_height(height);
    enc.set_format(ff::format::Pixel::YUV420P);
    enc.set_time_base((1, fps));
    enc.set_frame_rate(Some((fps, 1)));
    enc.set_bit_rate(bitrate);
    enc.set_max_bit_rate(bitrate);
    enc.set_gop(gop);
    let mut opts = ff::Dictionary::new();
    opts.set("deadline", "realtime");
    opts.set("cpu-used", "8");
    opts.set("lag-in-frames", "0");
    opts.set("keyint_min", &gop.to_string());
    // Constant bitrate: min = max = target, so the noise below cannot push it higher.
    opts.set("minrate", &bitrate.to_string());
    opts.set("maxrate", &bitrate.to_string());
    opts.set("bufsize", &(bitrate / 2).to_string());
    opts.set("qmax", "63");
    let mut enc = enc.open_with(opts).expect("open libvpx");
    let mut out = Vec::new();
    let mut seed: u32 = 0x1234_5678;
    let drain = |enc: &mut ff::encoder::Video, out: &mut Vec<Frame>| {
        let mut pkt = ff::Packet::empty();
        while enc.receive_packet(&mut pkt).is_ok() {
            if let Some(d) = pkt.data() {
                out.push(Frame {
                    data: bytes::Bytes::copy_from_slice(d),
                    key: pkt.is_key(),
                });
            }
        }
    };
    for i in 0..count {
        let mut frame = ff::frame::Video::new(ff::format::Pixel::YUV420P, width, height);
        for plane in 0..3 {
            let stride = frame.stride(plane);
            let data = frame.data_mut(plane);
            let rows = data.len() / stride;
            for y in 0..rows {
                for x in 0..stride {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let base = ((x + y + i * 4) % 256) as u32;
                    data[y * stride + x] = ((base + (seed & 0x07)) & 0xff) as u8;
                }
            }
        }
        frame.set_pts(Some(i as i64));
        enc.send_frame(&frame).expect("encode");
        drain(&mut enc, &mut out);
    }
    enc.send_eof().expect("eof");
    drain(&mut enc, &mut out);
    out
}

/// Encodes `count` frames of constrained-baseline H.264 (libx264, Annex B) at `fps`, a
/// keyframe every `gop` frames, with the finalizer helper's barcode source.
pub fn encode_h264(
    width: u32,
    height: u32,
    fps: u32,
    count: usize,
    bitrate: usize,
    gop: usize,
) -> Vec<Frame> {
    use media_recorder::depacketize::Codec;
    let mut src =
        media_recorder::testsrc::VideoSource::with_codec(Codec::H264, width, height, bitrate)
            .expect("libx264");
    let mut out = Vec::new();
    for i in 0..count {
        let at = (i as i64) * 1_000_000 / fps as i64;
        for (data, key) in src.encode(at, i % gop == 0).expect("encode") {
            out.push(Frame {
                data: bytes::Bytes::from(data),
                key,
            });
        }
    }
    out
}

/// A packet a client received.
#[derive(Clone)]
pub struct Received {
    pub at: Instant,
    pub mime: String,
    pub packet: rtc::rtp::Packet,
}

struct ClientHandler {
    gathered: tokio::sync::watch::Sender<bool>,
    connected: tokio::sync::watch::Sender<bool>,
    received: mpsc::UnboundedSender<Received>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for ClientHandler {
    async fn on_ice_gathering_state_change(&self, state: RTCIceGatheringState) {
        if state == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(true);
        }
    }
    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        let _ = self
            .connected
            .send(state == RTCPeerConnectionState::Connected);
    }
    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let tx = self.received.clone();
        tokio::spawn(async move {
            let mut mime = String::new();
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(packet) = ev {
                    if mime.is_empty() {
                        let ssrc = packet.header.ssrc;
                        mime = track
                            .codec(ssrc)
                            .await
                            .map(|c| c.mime_type)
                            .unwrap_or_default();
                    }
                    let _ = tx.send(Received {
                        at: Instant::now(),
                        mime: mime.clone(),
                        packet,
                    });
                }
            }
        });
    }
}

/// A client peer connection bound on `bind` (port 0): webrtc's default codecs and
/// interceptors, the RTCP tap and no mDNS, with `handler` for its callbacks.
pub async fn client_pc(
    bind: &str,
    handler: Arc<dyn PeerConnectionEventHandler>,
) -> Arc<dyn PeerConnection> {
    let mut me = MediaEngine::default();
    me.register_default_codecs().expect("codecs");
    let registry = register_default_interceptors(Registry::new(), &mut me).expect("interceptors");
    // Keyframe requests from the server reach the publisher's sending track only through a
    // tap; webrtc's own example interceptor does the same.
    let registry = registry.with(
        rtc::interceptor::Slot::from(14_000),
        media_recorder::rtp::RtcpTap::default(),
    );
    // The server answers with plain host candidates, so the client needs no mDNS either;
    // without it the client also works where multicast cannot be joined (the netns test).
    let settings = rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder::new()
        .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
        .build();
    Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(me)
            .with_setting_engine(settings)
            .with_interceptor_registry(registry)
            .with_handler(handler)
            .with_udp_addrs(vec![format!("{bind}:0")])
            .build()
            .await
            .expect("client pc"),
    )
}

/// Creates an offer on `pc`, waits (≤ 2 s) for `gathered`, and returns the local description
/// with its candidates as the browser's JSON.
pub async fn offer_with_candidates(
    pc: &Arc<dyn PeerConnection>,
    gathered: &tokio::sync::watch::Receiver<bool>,
    ice_restart: bool,
) -> serde_json::Value {
    let opts = ice_restart
        .then_some(rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true });
    let offer = pc.create_offer(opts).await.expect("offer");
    pc.set_local_description(offer).await.expect("set local");
    let mut g = gathered.clone();
    let _ = tokio::time::timeout(Duration::from_secs(2), g.wait_for(|d| *d)).await;
    let local = pc.local_description().await.expect("local description");
    serde_json::to_value(&local).expect("json")
}

/// A Rust WebRTC client connected to the hub.
pub struct Client {
    pub pc: Arc<dyn PeerConnection>,
    pub inspection: Uuid,
    pub peer: Uuid,
    pub role: MediaRole,
    pub received: mpsc::UnboundedReceiver<Received>,
    pub events: Arc<Mutex<Vec<MediaEvent>>>,
    pub connected: tokio::sync::watch::Receiver<bool>,
    pub video: Option<(Arc<TrackLocalStaticSample>, Arc<dyn RtpSender>)>,
    pub audio: Option<(Arc<TrackLocalStaticSample>, Arc<dyn RtpSender>)>,
    /// Runtime the hub's connections must live on (the benchmark separates server and clients).
    pub server_rt: Option<tokio::runtime::Handle>,
    /// The SDP of the last answer the hub gave.
    pub last_answer: Mutex<String>,
    gathered: tokio::sync::watch::Receiver<bool>,
}

fn codec(mime: &str) -> RTCRtpCodec {
    match mime {
        MIME_TYPE_VP8 => RTCRtpCodec {
            mime_type: MIME_TYPE_VP8.into(),
            clock_rate: 90_000,
            ..Default::default()
        },
        MIME_TYPE_H264 => RTCRtpCodec {
            mime_type: MIME_TYPE_H264.into(),
            clock_rate: 90_000,
            sdp_fmtp_line: "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f"
                .into(),
            ..Default::default()
        },
        _ => RTCRtpCodec {
            mime_type: MIME_TYPE_OPUS.into(),
            clock_rate: 48_000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            ..Default::default()
        },
    }
}

/// A sample track of `mime` with a random SSRC.
pub fn sample_track(kind: RtpCodecKind, mime: &str, label: &str) -> Arc<TrackLocalStaticSample> {
    let ssrc = rand::random::<u32>();
    Arc::new(
        TrackLocalStaticSample::new(
            Instant::now(),
            MediaStreamTrack::new(
                format!("stream-{label}"),
                format!("{label}-{ssrc}"),
                label.to_string(),
                kind,
                vec![RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        ssrc: Some(ssrc),
                        ..Default::default()
                    },
                    codec: codec(mime),
                    ..Default::default()
                }],
            ),
        )
        .expect("sample track"),
    )
}

/// What a client offers.
#[derive(Clone, Copy, Debug)]
pub enum Offer {
    /// Camera (VP8) and microphone (Opus), both sendrecv.
    Publish,
    /// Camera in H.264 (an iPhone) and microphone.
    PublishH264,
    /// Microphone sendrecv, video recvonly (an inspector).
    Talk,
    /// Both recvonly (a viewer).
    Watch,
    /// Audio recvonly only (a client that has not asked for video yet).
    Listen,
}

impl Client {
    /// Builds a client peer connection with the given offer shape; not yet signalled.
    pub async fn build(inspection: Uuid, role: MediaRole, shape: Offer) -> Client {
        let (gtx, grx) = tokio::sync::watch::channel(false);
        let (ctx, crx) = tokio::sync::watch::channel(false);
        let (rtx, rrx) = mpsc::unbounded_channel();
        let handler = Arc::new(ClientHandler {
            gathered: gtx,
            connected: ctx,
            received: rtx,
        });
        let pc = client_pc("127.0.0.1", handler).await;
        let mut client = Client {
            pc: pc.clone(),
            inspection,
            peer: Uuid::new_v4(),
            role,
            received: rrx,
            events: Arc::new(Mutex::new(Vec::new())),
            connected: crx,
            video: None,
            audio: None,
            server_rt: None,
            last_answer: Mutex::new(String::new()),
            gathered: grx,
        };
        let recv = |_: u8| RTCRtpTransceiverInit {
            direction: RTCRtpTransceiverDirection::Recvonly,
            ..Default::default()
        };
        match shape {
            Offer::Publish | Offer::PublishH264 => {
                let mime = if matches!(shape, Offer::PublishH264) {
                    MIME_TYPE_H264
                } else {
                    MIME_TYPE_VP8
                };
                let v = sample_track(RtpCodecKind::Video, mime, "camera");
                let a = sample_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, "mic");
                let vs = pc
                    .add_track(v.clone() as Arc<dyn TrackLocal>)
                    .await
                    .expect("add video");
                let as_ = pc
                    .add_track(a.clone() as Arc<dyn TrackLocal>)
                    .await
                    .expect("add audio");
                client.video = Some((v, vs));
                client.audio = Some((a, as_));
            }
            Offer::Talk => {
                let a = sample_track(RtpCodecKind::Audio, MIME_TYPE_OPUS, "mic");
                let as_ = pc
                    .add_track(a.clone() as Arc<dyn TrackLocal>)
                    .await
                    .expect("add audio");
                client.audio = Some((a, as_));
                pc.add_transceiver_from_kind(RtpCodecKind::Video, Some(recv(0)))
                    .await
                    .expect("video transceiver");
            }
            Offer::Listen => {
                pc.add_transceiver_from_kind(RtpCodecKind::Audio, Some(recv(1)))
                    .await
                    .expect("audio transceiver");
            }
            Offer::Watch => {
                pc.add_transceiver_from_kind(RtpCodecKind::Video, Some(recv(0)))
                    .await
                    .expect("video transceiver");
                pc.add_transceiver_from_kind(RtpCodecKind::Audio, Some(recv(1)))
                    .await
                    .expect("audio transceiver");
            }
        }
        client
    }

    /// Creates an offer (with candidates) as the browser's JSON.
    pub async fn offer_json(&self, ice_restart: bool) -> serde_json::Value {
        offer_with_candidates(&self.pc, &self.gathered, ice_restart).await
    }

    /// Offers to the hub and applies the answer; server candidates sent later are applied too.
    pub async fn negotiate(
        &self,
        hub: &MediaHub,
        ice_restart: bool,
    ) -> Result<(), media_recorder::MediaError> {
        let offer = self.offer_json(ice_restart).await;
        let (etx, mut erx) = mpsc::unbounded_channel();
        let fut = {
            let (hub, inspection, peer, role) =
                (hub.clone(), self.inspection, self.peer, self.role);
            async move { hub.offer(inspection, peer, role, offer, etx).await }
        };
        let answer = match &self.server_rt {
            Some(rt) => rt.spawn(fut).await.expect("server task")?,
            None => fut.await?,
        };
        let answer: RTCSessionDescription = serde_json::from_value(answer).expect("answer json");
        answer
            .sdp
            .clone_into(&mut self.last_answer.lock().expect("answer lock"));
        self.pc
            .set_remote_description(answer)
            .await
            .expect("set remote answer");
        let pc = self.pc.clone();
        let events = self.events.clone();
        tokio::spawn(async move {
            while let Some(ev) = erx.recv().await {
                if let MediaEvent::LocalCandidate(c) = &ev {
                    if let Ok(init) = serde_json::from_value::<RTCIceCandidateInit>(c.clone()) {
                        let _ = pc.add_ice_candidate(init).await;
                    }
                }
                events.lock().expect("events lock").push(ev);
            }
        });
        Ok(())
    }

    /// Applies an answer that came another way (the server's socket: `rtc.answer`).
    pub async fn apply_answer(&self, answer: serde_json::Value) {
        let answer: RTCSessionDescription = serde_json::from_value(answer).expect("answer json");
        self.pc
            .set_remote_description(answer)
            .await
            .expect("set remote answer");
    }

    /// Applies a server candidate that came another way (`rtc.candidate`).
    pub async fn add_remote_candidate(&self, candidate: serde_json::Value) {
        if let Ok(init) = serde_json::from_value::<RTCIceCandidateInit>(candidate) {
            let _ = self.pc.add_ice_candidate(init).await;
        }
    }

    pub async fn wait_connected(&self, limit: Duration) -> bool {
        let mut c = self.connected.clone();
        let ok = tokio::time::timeout(limit, c.wait_for(|v| *v))
            .await
            .is_ok();
        ok
    }

    /// Drains received packets until `pred` matches one or `limit` passes.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        mut pred: impl FnMut(&Received) -> bool,
    ) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.received.recv()).await {
                Ok(Some(r)) if pred(&r) => return Some(r),
                Ok(Some(_)) => continue,
                _ => return None,
            }
        }
    }
}

async fn payload_type(sender: &Arc<dyn RtpSender>) -> u8 {
    for _ in 0..50 {
        if let Ok(p) = sender.get_parameters().await {
            if let Some(c) = p.rtp_parameters.codecs.first() {
                return c.payload_type;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("sender never negotiated a codec");
}

/// Counters of a running publisher.
#[derive(Default)]
pub struct PublisherStats {
    pub frames: std::sync::atomic::AtomicU64,
    pub keyframe_requests: std::sync::atomic::AtomicU64,
}

/// Sends `frames` in a loop at `fps` and Opus silence every 20 ms until `stop` is set. A
/// keyframe request (PLI/FIR) makes the next frame sent the next keyframe of the sequence.
pub fn spawn_publisher(
    client: &Client,
    frames: Arc<Vec<Frame>>,
    fps: u32,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> Arc<PublisherStats> {
    use std::sync::atomic::Ordering;
    let stats = Arc::new(PublisherStats::default());
    let (vtrack, vsender) = client.video.clone().expect("publisher has video");
    assert!(client.audio.is_some(), "publisher has audio");
    let want_key = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let connected = client.connected.clone();
    {
        let (vtrack, want_key, stats, stop) = (
            vtrack.clone(),
            want_key.clone(),
            stats.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match vtrack.poll().await {
                    Some(TrackLocalEvent::OnRtcpPacket(_)) => {
                        stats.keyframe_requests.fetch_add(1, Ordering::Relaxed);
                        want_key.store(true, Ordering::Relaxed);
                    }
                    Some(_) => {}
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }
    {
        let (stats, stop) = (stats.clone(), stop.clone());
        tokio::spawn(async move {
            // A browser's encoder starts with a keyframe once the connection is up; frames
            // written earlier would be dropped and the first delivered one be a delta frame.
            let mut connected = connected;
            let _ = tokio::time::timeout(Duration::from_secs(10), connected.wait_for(|c| *c)).await;
            let pt = payload_type(&vsender).await;
            let ssrc = vtrack.ssrcs().await[0];
            let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / fps as u64));
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if want_key.swap(false, Ordering::Relaxed) {
                    while !frames[i % frames.len()].key {
                        i += 1;
                    }
                }
                let f = &frames[i % frames.len()];
                let sample = Sample {
                    data: f.data.clone(),
                    duration: Duration::from_micros(1_000_000 / fps as u64),
                    ..Sample::new(Instant::now())
                };
                let _ = vtrack.write_sample(ssrc, pt, &sample, &[]).await;
                stats.frames.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        });
    }
    // The microphone: Opus silence, as an inspector sends it.
    spawn_talker(client, stop);
    stats
}

/// Sends Opus silence from an inspector's microphone until `stop`.
pub fn spawn_talker(client: &Client, stop: Arc<std::sync::atomic::AtomicBool>) {
    let (atrack, asender) = client.audio.clone().expect("talker has audio");
    tokio::spawn(async move {
        let pt = payload_type(&asender).await;
        let ssrc = atrack.ssrcs().await[0];
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            tick.tick().await;
            let sample = Sample {
                data: bytes::Bytes::from_static(&OPUS_SILENCE),
                duration: Duration::from_millis(20),
                ..Sample::new(Instant::now())
            };
            let _ = atrack.write_sample(ssrc, pt, &sample, &[]).await;
        }
    });
}

/// Like [`spawn_publisher`], but every frame is encoded when it is captured, with its capture
/// time (server clock, µs) drawn into the picture as a barcode — a camera, not a loop — so a
/// test can check which moment a chapter of the recording shows. Encoding runs on its own
/// thread (libvpx contexts stay on one thread); a keyframe request makes the next frame a key.
pub fn spawn_camera(client: &Client, fps: u32, stop: Arc<std::sync::atomic::AtomicBool>) {
    spawn_camera_sized(client, fps, (320, 240), stop)
}

/// [`spawn_camera`] with a picture size of its own (another phone's camera).
pub fn spawn_camera_sized(
    client: &Client,
    fps: u32,
    (width, height): (u32, u32),
    stop: Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::Ordering;
    let (vtrack, vsender) = client.video.clone().expect("publisher has video");
    assert!(client.audio.is_some(), "publisher has audio");
    let want_key = Arc::new(std::sync::atomic::AtomicBool::new(true));
    {
        let (vtrack, want_key, stop) = (vtrack.clone(), want_key.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match vtrack.poll().await {
                    Some(TrackLocalEvent::OnRtcpPacket(_)) => {
                        want_key.store(true, Ordering::Relaxed)
                    }
                    Some(_) => {}
                    None => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
    }
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(Vec<u8>, Duration)>();
    {
        let (stop, want_key) = (stop.clone(), want_key.clone());
        std::thread::spawn(move || {
            let mut src = media_recorder::testsrc::VideoSource::new(width, height, 400_000)
                .expect("libvpx source");
            let period = Duration::from_micros(1_000_000 / fps as u64);
            let mut next = Instant::now();
            let mut last_capture: Option<i64> = None;
            while !stop.load(Ordering::Relaxed) {
                let now = Instant::now();
                if next > now {
                    std::thread::sleep(next - now);
                }
                next += period;
                let capture = chrono::Utc::now().timestamp_micros();
                let key = want_key.swap(false, Ordering::Relaxed);
                // The sample's duration is the real time since the previous capture, so RTP
                // timestamps follow the capture clock even when the thread is late.
                let since = last_capture
                    .map(|l| Duration::from_micros((capture - l).max(1) as u64))
                    .unwrap_or(period);
                last_capture = Some(capture);
                for (data, _) in src.encode(capture, key).expect("encode") {
                    if tx.send((data, since)).is_err() {
                        return;
                    }
                }
            }
        });
    }
    {
        let mut connected = client.connected.clone();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(10), connected.wait_for(|c| *c)).await;
            let pt = payload_type(&vsender).await;
            let ssrc = vtrack.ssrcs().await[0];
            while let Some((data, duration)) = rx.recv().await {
                let sample = Sample {
                    data: bytes::Bytes::from(data),
                    duration,
                    ..Sample::new(Instant::now())
                };
                let _ = vtrack.write_sample(ssrc, pt, &sample, &[]).await;
            }
        });
    }
    spawn_talker(client, stop);
}
