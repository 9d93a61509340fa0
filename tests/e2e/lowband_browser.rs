//! Low-bandwidth mode end to end (issue 19, item 2): a Chromium phone publishes through the
//! bench's relay (`inspector_tests::netbench`) with its uplink capped at 80 kbit/s — room for
//! sound, not for useful video. The phone must pause its video, keep its sound, send a still
//! of its camera every 5 s (and one when the inspector presses the console's button), the
//! inspector's console must show the latest still in place of the video and say why; when the
//! cap is lifted the phone must find out by itself (its probes) and send video again.
//! The finished recording and the log are measured: stills on the recording's timeline,
//! pictures (video frames or stills) at least every 5 s, audio without holes.

use anyhow::{ensure, Result};
use inspector_tests::netbench::{profiles, run_with, Impairment, Phase, RunOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_phone_sends_stills_when_video_cannot_pass_and_recovers() -> Result<()> {
    let phases = [
        Phase {
            name: "80 kbit/s",
            impairment: profiles::RATE_80,
            secs: 36.0,
            request_still_at: Some(28.0),
            ..Phase::default()
        },
        Phase {
            name: "cap lifted",
            impairment: Impairment::CLEAN,
            secs: 45.0,
            ..Phase::default()
        },
    ];
    let r = run_with("lowband", 2.0, &phases, RunOptions { console: true }).await?;
    eprintln!("lowband: {}", r.summary());
    for p in &r.phases {
        eprintln!(
            "  {}: stills at {:?}; longest without a picture {:.2} s at {:.1}; phone modes {:?}",
            p.name,
            p.stills
                .iter()
                .map(|s| format!("{:.1} {}", s.at, s.reason))
                .collect::<Vec<_>>(),
            p.longest_without_picture.secs,
            p.longest_without_picture.at,
            p.phone
                .iter()
                .map(|s| s.video_mode.clone().unwrap_or_default())
                .collect::<Vec<_>>()
        );
    }
    // The reviewer sees the still of that moment where the recording has no video.
    let reviewed = r
        .reviewed
        .as_ref()
        .expect("the review page was opened at a still");
    ensure!(
        reviewed
            .shown
            .as_deref()
            .is_some_and(|src| src.ends_with(&reviewed.expected)),
        "the review page at {:.1} s shows {:?}, not the still {}",
        reviewed.at,
        reviewed.shown,
        reviewed.expected
    );
    ensure!(
        reviewed.caption.contains("снимок"),
        "the review page's caption: {:?}",
        reviewed.caption
    );
    let [narrow, lifted] = &r.phases[..] else {
        anyhow::bail!("two phases measured: {:?}", r.phases);
    };
    ensure!(
        r.recording.plays && r.recording.seeks,
        "the recording does not play or seek: {:?}",
        r.recording.decode_errors
    );

    // Under the cap: the phone said it went to stills, and so did the console.
    let entered = narrow
        .phone
        .iter()
        .position(|s| s.video_mode.as_deref() == Some("stills"));
    ensure!(
        entered.is_some(),
        "the phone never paused its video: {:?}",
        narrow.phone
    );
    ensure!(
        narrow
            .phone
            .iter()
            .any(|s| s.state.as_deref() == Some("stills")),
        "the phone never told its user it sends stills"
    );
    let shown = narrow
        .console
        .iter()
        .find(|c| c.stills_note && c.still_src.is_some());
    ensure!(
        shown.is_some(),
        "the console never showed a still in place of the video: {:?}",
        narrow.console
    );
    ensure!(
        narrow
            .console
            .iter()
            .any(|c| c.stills_note && c.text.contains("снимок")),
        "the console's note is not in Russian: {:?}",
        narrow.console.last()
    );
    // The reception line (what the server receives) says the video is paused for stills.
    ensure!(
        narrow.console.iter().any(|c| c.reception == "stills"),
        "the console's reception line never said the phone paused its video: {:?}",
        narrow
            .console
            .iter()
            .map(|c| c.reception.as_str())
            .collect::<Vec<_>>()
    );
    // Stills every 5 s on the recording's timeline, full size, and the one asked for.
    let auto: Vec<_> = narrow
        .stills
        .iter()
        .filter(|s| s.reason == "low_bandwidth")
        .collect();
    // The pause comes once Chromium's estimate has fallen under the floor (11–21 s after the
    // cap in five runs here) and held there 6 s; from then on a still every 5 s.
    let first = auto.first().map(|s| s.at);
    ensure!(
        first.is_some_and(|t| t - narrow.from <= 28.0),
        "no still within 28 s of the cap: {:?}",
        narrow.stills
    );
    let span = narrow.to - first.unwrap_or(narrow.to);
    ensure!(
        narrow.stills.len() as f64 >= (span / 5.0).floor(),
        "{} stills in the {span:.1} s of stills mode under the cap",
        narrow.stills.len()
    );
    // Every 5 s on the phone's 1 s statistics tick (the one asked for restarts the count);
    // the receipt adds the upload's jitter.
    for w in narrow.stills.windows(2) {
        ensure!(
            w[1].at - w[0].at <= 5.5,
            "stills {:.1} s apart ({:.1} → {:.1})",
            w[1].at - w[0].at,
            w[0].at,
            w[1].at
        );
    }
    ensure!(
        auto.iter().all(|s| s.width >= 640 && s.height >= 360),
        "stills smaller than the camera: {:?}",
        auto.iter().map(|s| (s.width, s.height)).collect::<Vec<_>>()
    );
    ensure!(
        narrow.stills.iter().any(|s| s.reason == "requested"),
        "the still the inspector asked for did not come: {:?}",
        narrow.stills
    );
    // The target at a narrow uplink: a picture at least every 5 s, and the sound kept.
    ensure!(
        narrow.longest_without_picture.secs <= 5.5,
        "no picture for {:.2} s under the cap (at {:.1} s)",
        narrow.longest_without_picture.secs,
        narrow.longest_without_picture.at
    );
    let settled = narrow.from + (narrow.to - narrow.from) / 2.0;
    let audio = r.recording.longest_audio_gap(settled, narrow.to);
    ensure!(
        audio.secs <= 0.2,
        "a {:.3} s audio gap in stills mode (at {:.1} s)",
        audio.secs,
        audio.at
    );

    // The cap lifted: video again by the phone's own probe, the console back to video.
    let last = lifted.phone.last().and_then(|s| s.video_mode.clone());
    ensure!(
        last.as_deref() == Some("video"),
        "the phone did not come back to video: {:?}",
        lifted.phone
    );
    ensure!(
        lifted.console.last().is_some_and(|c| !c.stills_note),
        "the console still shows stills: {:?}",
        lifted.console.last()
    );
    let tail = (lifted.to - 10.0, lifted.to);
    let fps = r.recording.fps(tail.0, tail.1);
    ensure!(fps >= 5.0, "{fps:.1} frames/s after the cap was lifted");
    ensure!(
        !lifted
            .stills
            .iter()
            .any(|s| s.reason == "low_bandwidth" && s.at >= tail.0),
        "stills still coming with video back: {:?}",
        lifted.stills
    );
    Ok(())
}
