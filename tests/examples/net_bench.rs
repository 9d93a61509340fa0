//! The network bench (issue 19 item 4; docs/reliability.md, "Network profiles"): for each
//! profile, a headless Chromium phone publishes its fake camera through the bench's impairing
//! relay (`inspector_tests::netbench`) to a real server for a while, the inspection is
//! finished, and the finished recording is measured with ffprobe: longest freeze (video
//! frame gaps), frames per second, longest audio gap, whether it plays and seeks; the
//! phone's own getStats gives its sent bit rate and bandwidth estimate.
//!
//! Run: `cargo run -p inspector-tests --example net_bench [-- <secs per profile> [profile…]]`
//! (default 30 s; profiles: clean, loss3, bursts10, rate300, outage5, switch; all by default).
//! The JSON of every run is written to `artifacts/net_bench.json`.

use anyhow::{bail, Result};
use inspector_tests::netbench::{profiles, run, Impairment, Phase};

fn phase(name: &str, secs: f64) -> Result<Phase> {
    Ok(match name {
        "clean" => Phase {
            name: "clean",
            impairment: Impairment::CLEAN,
            secs,
            outage_secs: None,
            ..Phase::default()
        },
        "loss3" => Phase {
            name: "loss 3 % + 50 ms",
            impairment: profiles::LOSS_3_DELAY_50,
            secs,
            outage_secs: None,
            ..Phase::default()
        },
        "bursts10" => Phase {
            name: "bursts 10 %",
            impairment: profiles::BURSTS_10,
            secs,
            outage_secs: None,
            ..Phase::default()
        },
        "rate300" => Phase {
            name: "300 kbit/s",
            impairment: profiles::RATE_300,
            secs,
            outage_secs: None,
            ..Phase::default()
        },
        "outage5" => Phase {
            name: "5 s outage",
            impairment: Impairment::CLEAN,
            secs: secs.max(10.0),
            outage_secs: Some(5.0),
            ..Phase::default()
        },
        // A switch of network (Wi-Fi to mobile data): the phone's old addresses are gone for
        // good and it comes back from a new one; the page hears `online` and restarts ICE.
        "switch" => Phase {
            name: "network switch",
            impairment: Impairment::CLEAN,
            secs: secs.max(10.0),
            network_switch: true,
            ..Phase::default()
        },
        other => {
            bail!("unknown profile {other} (clean, loss3, bursts10, rate300, outage5, switch)")
        }
    })
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let secs: f64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(30.0);
    let names: Vec<&str> = if args.len() > 1 {
        args[1..].iter().map(String::as_str).collect()
    } else {
        vec!["clean", "loss3", "bursts10", "rate300", "outage5", "switch"]
    };
    let mut all = Vec::new();
    for name in names {
        // Each profile is a run of its own: its own server, phone and recording, so one
        // profile's after-effects (a low estimate, a pending ICE restart) do not colour the next.
        let p = phase(name, secs)?;
        let r = run(&format!("net-bench-{name}"), 3.0, &[p]).await?;
        print!("{name}: {}", r.summary());
        all.push(serde_json::json!({"profile": name, "secs": secs, "report": r.json()}));
    }
    let dir = inspector_tests::browser::workspace_root().join("artifacts");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("net_bench.json"), serde_json::to_vec_pretty(&all)?)?;
    Ok(())
}
