//! Media where multicast cannot be joined (issue 19), for the network-namespace test, which
//! runs it with `ip netns exec` in a fresh namespace that has no 224.0.0.0/4 route.
//!
//! First a control: a peer connection with webrtc's default settings (mDNS queries on), built
//! the way the server built them before; it fails here with "No such device (os error 19)".
//! Then a `MediaHub`, a publisher and a viewer on 127.0.0.1: the viewer must get a keyframe.
//!
//! Usage: `netns_child <recordings_dir>`; prints `control ok` or `control failed: <error>`,
//! then `keyframe <ms>` and exits 0, or exits 1 when no video arrives.

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use media_recorder::rtp::is_keyframe;
use media_recorder::{MediaConfig, MediaHub, MediaRole};
use support::{encode_vp8, spawn_publisher, Client, Offer};
use webrtc::peer_connection::{PeerConnectionBuilder, PeerConnectionEventHandler};

struct Quiet;

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Quiet {}

#[tokio::main]
async fn main() {
    let dir = std::env::args().nth(1).expect("usage: netns_child <dir>");
    let control = PeerConnectionBuilder::new()
        .with_handler(Arc::new(Quiet))
        .with_udp_addrs(vec!["127.0.0.1:0".to_string()])
        .build()
        .await;
    match control {
        Ok(_) => println!("control ok"),
        Err(e) => println!("control failed: {e}"),
    }

    let hub = MediaHub::new(MediaConfig {
        recordings_dir: dir.into(),
        udp_addrs: vec!["127.0.0.1:0".into()],
        nat_1to1_ips: vec![],
        ice_servers: vec![],
    })
    .await
    .expect("hub");
    let inspection = uuid::Uuid::new_v4();
    let stop = Arc::new(AtomicBool::new(false));
    let mut viewer = Client::build(inspection, MediaRole::Viewer, Offer::Watch).await;
    viewer.negotiate(&hub, false).await.expect("viewer offer");
    let business = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    let offered = Instant::now();
    business
        .negotiate(&hub, false)
        .await
        .expect("publisher offer");
    spawn_publisher(
        &business,
        Arc::new(encode_vp8(320, 240, 30, 30, 300_000, 30)),
        30,
        stop,
    );
    let key = viewer
        .wait_for(Duration::from_secs(10), |r| {
            r.mime.eq_ignore_ascii_case("video/VP8") && is_keyframe(&r.mime, &r.packet.payload)
        })
        .await;
    match key {
        Some(k) => println!("keyframe {}", k.at.duration_since(offered).as_millis()),
        None => std::process::exit(1),
    }
}
