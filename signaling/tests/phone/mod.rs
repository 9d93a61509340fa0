//! The business's phone for the real-process tests: a socket and a WebRTC connection
//! publishing the barcode camera (media-recorder's Rust test client), signalled through the
//! server's socket exactly as the browser is (`rtc.offer` → `rtc.answer`).

#[path = "../../../media-recorder/tests/support/mod.rs"]
pub mod media;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use inspector_tests::{ws_connect, Client, Ws};
use media_recorder::MediaRole;
use serde_json::json;

/// A publishing phone.
pub struct Phone {
    _ws: Ws,
    pub client: media::Client,
    pub stop: Arc<AtomicBool>,
}

/// Joins `id` as `business` and publishes a `size` camera at 25 fps.
pub async fn publish(business: &Client, id: &str, size: (u32, u32)) -> Phone {
    let mut ws = ws_connect(business, id).await.expect("business socket");
    assert_eq!(ws.hello(None).await["type"], "welcome");
    let inspection: uuid::Uuid = id.parse().expect("uuid");
    let client =
        media::Client::build(inspection, MediaRole::Publisher, media::Offer::Publish).await;
    let offer = client.offer_json(false).await;
    ws.send(json!({"type": "rtc.offer", "sdp": offer})).await;
    let answer = ws
        .recv_until(|m| m["type"] == "rtc.answer" || m["type"] == "rtc.error")
        .await;
    assert_eq!(answer["type"], "rtc.answer", "{answer}");
    client.apply_answer(answer["sdp"].clone()).await;
    assert!(
        client.wait_connected(Duration::from_secs(10)).await,
        "the phone's connection is up"
    );
    let stop = Arc::new(AtomicBool::new(false));
    media::spawn_camera_sized(&client, 25, size, stop.clone());
    Phone {
        _ws: ws,
        client,
        stop,
    }
}

impl Phone {
    /// Stops the camera and closes the connection.
    #[allow(dead_code)] // Not every test binary that includes this module hangs up this way.
    pub async fn hang_up(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.client.pc.close().await;
    }
}
