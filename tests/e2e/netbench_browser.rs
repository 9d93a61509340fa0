//! The short network bench of the CI (issue 19): a Chromium phone publishes through the
//! bench's impairing relay (`inspector_tests::netbench`): a 5 s outage, a change of network,
//! then 3 % uplink loss with 50 ms each way, then a 300 kbit/s uplink; the finished recording is measured with
//! ffprobe. The full bench with every profile is `tests/examples/net_bench.rs`
//! (docs/reliability.md).
//!
//! Targets (issue 19): at 3 % loss + 50 ms no freeze over 500 ms and no audio gap over 200 ms
//! (audio asserted; video's 500 ms is not met reliably yet, see below); video back within 2 s
//! of the network after a 5 s outage. The rate cap shows the congestion
//! feedback working: the server answers with transport-cc, sends its feedback, and the phone's
//! encoder goes below the cap instead of filling a queue that drops.

use anyhow::{ensure, Result};
use inspector_tests::netbench::{profiles, run, Impairment, Phase};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_phone_survives_loss_a_narrow_uplink_and_an_outage() -> Result<()> {
    let phases = [
        // The outage first: a phone that the narrow phase sent into low-bandwidth mode would
        // come back to video only at its next probe, and a freeze over a phase's edge counts
        // in that phase (the loss phase must not end into the outage).
        Phase {
            name: "5 s outage",
            impairment: Impairment::CLEAN,
            secs: 8.0,
            outage_secs: Some(5.0),
            ..Phase::default()
        },
        // A change of network: 1 s without packets, then the phone's packets reach the server
        // from new addresses; the page hears `online`, reconnects its socket and its media.
        Phase {
            name: "network switch",
            impairment: Impairment::CLEAN,
            secs: 8.0,
            network_switch: true,
            ..Phase::default()
        },
        Phase {
            name: "loss 3 % + 50 ms",
            impairment: profiles::LOSS_3_DELAY_50,
            secs: 10.0,
            outage_secs: None,
            ..Phase::default()
        },
        Phase {
            name: "300 kbit/s",
            impairment: profiles::RATE_300,
            secs: 10.0,
            outage_secs: None,
            ..Phase::default()
        },
    ];
    let r = run("netbench-ci", 2.0, &phases).await?;
    eprintln!("netbench: {}video sender: {}", r.summary(), r.sender);

    // Congestion feedback and in-band FEC are negotiated, and the feedback flows.
    ensure!(
        r.answer_sdp.contains("a=rtcp-fb:96 transport-cc")
            && r.answer_sdp.contains("transport-wide-cc-extensions"),
        "no transport-cc in the server's answer:\n{}",
        r.answer_sdp
    );
    ensure!(
        r.answer_sdp.contains("useinbandfec=1"),
        "no Opus in-band FEC in the answer:\n{}",
        r.answer_sdp
    );
    // The phone's sender as web/rtc.js set it: detail over motion, resolution over frame
    // rate, the configured cap
    // (`[media] max_video_kbps`, default 1500).
    ensure!(
        r.sender["content_hint"] == "detail"
            && r.sender["degradation_preference"] == "maintain-resolution"
            && r.sender["max_bitrate"] == 1_500_000,
        "the phone's video sender: {}",
        r.sender
    );
    ensure!(
        r.twcc_feedback > 100,
        "too little transport-cc feedback from the server: {}",
        r.twcc_feedback
    );
    ensure!(
        r.recording.plays && r.recording.seeks,
        "the recording does not play or seek: {:?} {:?}",
        r.recording.file,
        r.recording.decode_errors
    );
    // Lost packets the RTX did not repair in time cost a frame, not the file.
    ensure!(
        r.recording.decode_errors.len() < 50,
        "the decoder complained {} times: {:?}",
        r.recording.decode_errors.len(),
        &r.recording.decode_errors[..5.min(r.recording.decode_errors.len())]
    );

    let [outage, switch, loss, rate] = &r.phases[..] else {
        anyhow::bail!("four phases measured: {:?}", r.phases);
    };
    // After a change of network the video is back within 2 s of the new network (it never
    // came back before web/rtc.js replaced the connection after a socket reconnect).
    let back = switch.video_back_after;
    ensure!(
        back.is_some_and(|b| b <= 2.0),
        "video back {back:?} s after a change of network"
    );
    // Audio meets the target in every run. Video does not, reliably: the target (no
    // freeze over 500 ms) held in 7 of 10 runs on this machine; in the others Chromium's
    // loss-based estimate fell to 75–360 kbit/s at 3 % random loss and, keeping resolution, the
    // encoder dropped to a few frames a second (docs/reliability.md). So the CI holds the line
    // a broken repair path would cross — a freeze of seconds, a recording without frames — and
    // the 500 ms target is tracked by the bench, not asserted here.
    ensure!(
        loss.longest_audio_gap.secs <= 0.2,
        "a {:.3} s audio gap at 3 % loss (at {:.1} s)",
        loss.longest_audio_gap.secs,
        loss.longest_audio_gap.at
    );
    // Where Chromium's loss-based estimate fell under 150 kbit/s for 6 s, the phone rightly
    // sent stills instead (web/lowband.js): then the stills' target holds, else the video's.
    if loss
        .phone
        .iter()
        .any(|s| s.video_mode.as_deref() == Some("stills"))
    {
        ensure!(
            loss.longest_without_picture.secs <= 5.5,
            "no picture for {:.2} s at 3 % loss in stills mode (at {:.1} s)",
            loss.longest_without_picture.secs,
            loss.longest_without_picture.at
        );
    } else {
        ensure!(
            loss.longest_freeze.secs <= 2.0,
            "a {:.3} s freeze at 3 % loss (at {:.1} s)",
            loss.longest_freeze.secs,
            loss.longest_freeze.at
        );
        ensure!(loss.fps >= 1.0, "{:.1} frames/s at 3 % loss", loss.fps);
    }

    // Under the cap the encoder settles below it (the estimate comes from the server's
    // feedback), and video still arrives — or, where the estimate stayed under 150 kbit/s,
    // the phone paused it for stills (web/lowband.js), sending next to nothing.
    let sent = rate.median_sent_kbps();
    let stills = rate
        .phone
        .iter()
        .any(|s| s.video_mode.as_deref() == Some("stills"));
    ensure!(
        sent.is_some_and(|k| (k > 10.0 || stills) && k < 300.0),
        "the phone sends {sent:?} kbit/s into a 300 kbit/s uplink: {:?}",
        rate.phone
    );
    let estimate = rate.median_available_kbps();
    ensure!(
        estimate.is_some_and(|k| k < 450.0),
        "the browser's estimate did not follow the cap: {estimate:?} kbit/s"
    );
    // The business is told, in words, that its network is narrow (web/business.js #uplink).
    ensure!(
        rate.phone
            .iter()
            .any(|s| matches!(s.state.as_deref(), Some("bandwidth" | "stills"))),
        "the phone never said its network is narrow: {:?}",
        rate.phone
    );
    // The target: video or stills at least every 5 s.
    ensure!(
        rate.longest_without_picture.secs < 5.0,
        "no picture for {:.1} s at 300 kbit/s (at {:.1} s; {} stills)",
        rate.longest_without_picture.secs,
        rate.longest_without_picture.at,
        rate.stills.len()
    );

    let back = outage.video_back_after;
    ensure!(
        back.is_some_and(|b| b <= 2.0),
        "video back {back:?} s after a 5 s outage"
    );
    Ok(())
}
