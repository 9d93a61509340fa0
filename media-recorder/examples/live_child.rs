//! A recording session in a process of its own, for the crash test: a `MediaHub` with a
//! camera publisher (capture times drawn into the frames) and an inspector subscriber, three
//! checklist marks one second apart, then it records until it is killed (`kill -9`).
//!
//! Usage: `live_child <recordings_dir> <inspection-uuid>`; prints `started <µs>`, one
//! `mark <item> <µs>` line per mark, then `marked`.

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use media_recorder::{Mark, MediaConfig, MediaHub, MediaRole};
use support::{spawn_camera, spawn_talker, Client, Offer};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let dir = std::path::PathBuf::from(&args[1]);
    let inspection: uuid::Uuid = args[2].parse().expect("inspection uuid");
    let hub = MediaHub::new(MediaConfig {
        recordings_dir: dir,
        udp_addrs: vec!["127.0.0.1:0".into()],
        nat_1to1_ips: vec![],
        ice_servers: vec![],
    })
    .await
    .expect("hub");
    let stop = Arc::new(AtomicBool::new(false));
    let mut inspector = Client::build(inspection, MediaRole::Inspector, Offer::Talk).await;
    inspector
        .negotiate(&hub, false)
        .await
        .expect("inspector offer");
    spawn_talker(&inspector, stop.clone());
    let business = Client::build(inspection, MediaRole::Publisher, Offer::Publish).await;
    business
        .negotiate(&hub, false)
        .await
        .expect("publisher offer");
    spawn_camera(&business, 25, stop.clone());
    inspector
        .wait_for(Duration::from_secs(10), |r| {
            r.mime.eq_ignore_ascii_case("video/vp8")
        })
        .await
        .expect("video flows");
    let mut out = std::io::stdout();
    writeln!(out, "started {}", chrono::Utc::now().timestamp_micros()).expect("stdout");
    out.flush().expect("stdout");
    for i in 1..=3 {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let mark = Mark {
            item_id: format!("item-{i}"),
            title: format!("{i}. Question"),
            result: "compliant".into(),
            at_micros: chrono::Utc::now().timestamp_micros(),
        };
        hub.mark(inspection, mark.clone());
        writeln!(out, "mark {} {}", mark.item_id, mark.at_micros).expect("stdout");
        out.flush().expect("stdout");
    }
    writeln!(out, "marked").expect("stdout");
    out.flush().expect("stdout");
    // Record until killed.
    std::future::pending::<()>().await;
}
