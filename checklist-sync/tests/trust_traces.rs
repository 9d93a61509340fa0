//! Location-trust scoring over recorded-style traces (tests/data/traces, made by generate.py
//! there), plus property tests that no input panics and that rejected samples change nothing.

use std::collections::BTreeSet;
use std::path::PathBuf;

use checklist_sync::geo::{GeoError, Geolocation, RawGeolocation};
use checklist_sync::trust::{
    Assessor, ClientContext, NoFix, Severity, TrustConfig, TrustLevel, Verdict, SIGNAL_NAMES,
};
use proptest::prelude::*;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Site {
    lat: f64,
    lon: f64,
}

#[derive(Debug, Deserialize)]
struct Event {
    t_us: i64,
    #[serde(default)]
    fix: Option<RawGeolocation>,
    #[serde(default)]
    no_fix: Option<NoFix>,
    #[serde(default)]
    expect_reject: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Trace {
    name: String,
    description: String,
    site: Option<Site>,
    client: ClientContext,
    events: Vec<Event>,
}

/// What replaying a trace produced.
struct Replay {
    /// Level after every accepted event, with its server time.
    levels: Vec<(i64, TrustLevel)>,
    /// Every verdict, in order, for the rejected-samples comparison.
    verdicts: Vec<Verdict>,
    /// (expected code, actual code) for every sample the trace marks as bad.
    rejections: Vec<(String, String)>,
    last: Verdict,
}

fn load(name: &str) -> Trace {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/traces")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let trace: Trace = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("cannot parse {}: {e}", path.display()));
    assert_eq!(trace.name, name);
    assert!(!trace.description.is_empty());
    trace
}

fn replay(trace: &Trace) -> Replay {
    let site = trace.site.as_ref().map(|s| (s.lat, s.lon));
    let mut a = Assessor::new(TrustConfig::default(), site, trace.client.clone());
    let mut out = Replay {
        levels: vec![],
        verdicts: vec![],
        rejections: vec![],
        last: a.verdict(),
    };
    for ev in &trace.events {
        let v = match (&ev.fix, ev.no_fix) {
            (Some(raw), _) => match (a.on_raw(raw, ev.t_us), &ev.expect_reject) {
                (Ok(v), None) => v,
                (Err(e), Some(code)) => {
                    out.rejections.push((code.clone(), e.code().to_owned()));
                    continue;
                }
                (Ok(_), Some(code)) => panic!(
                    "{}: a sample expected to fail with {code} was accepted",
                    trace.name
                ),
                (Err(e), None) => panic!(
                    "{}: a good sample was rejected: {} ({e})",
                    trace.name,
                    e.code()
                ),
            },
            (None, Some(reason)) => a.on_no_fix(reason, ev.t_us),
            (None, None) => panic!("{}: event without fix or no_fix", trace.name),
        };
        assert_eq!(
            v,
            a.verdict(),
            "on_* returns the verdict that verdict() then reports"
        );
        out.levels.push((ev.t_us, v.level));
        out.verdicts.push(v.clone());
        out.last = v;
    }
    out
}

fn deciding(v: &Verdict) -> BTreeSet<&str> {
    v.deciding().map(|s| s.name.as_str()).collect()
}

fn names(list: &[&'static str]) -> BTreeSet<&'static str> {
    list.iter().copied().collect()
}

/// Asserts the final verdict and the exact set of signals that decided it, and that every
/// signal is a documented code without words.
fn assert_verdict(name: &str, level: TrustLevel, decided_by: &[&'static str]) -> Replay {
    let r = replay(&load(name));
    let v = &r.last;
    assert_eq!(
        v.level,
        level,
        "{name}: {}",
        serde_json::to_string_pretty(v).unwrap_or_default()
    );
    assert_eq!(deciding(v), names(decided_by), "{name}: deciding signals");
    for s in &v.signals {
        assert!(
            SIGNAL_NAMES.contains(&s.name.as_str())
                && s.explanation_ru.is_none()
                && s.explanation_en.is_none(),
            "{name}: a signal is a documented code with parameters, no prose: {s:?}"
        );
    }
    r
}

fn first_time_at(r: &Replay, level: TrustLevel) -> Option<i64> {
    r.levels.iter().find(|(_, l)| *l == level).map(|(t, _)| *t)
}

#[test]
fn walking_through_the_building_is_trusted_throughout() {
    let r = assert_verdict("walking", TrustLevel::Trusted, &[]);
    assert!(r.levels.len() > 300, "ten minutes of fixes");
    assert!(
        r.levels.iter().all(|(_, l)| *l == TrustLevel::Trusted),
        "no false alarm at any point of a real walk"
    );
    assert!(
        r.last.signals.iter().any(|s| s.name == "on_site"),
        "presence is reported"
    );
}

#[test]
fn phone_lying_on_a_table_is_trusted_throughout() {
    let r = assert_verdict("table", TrustLevel::Trusted, &[]);
    assert!(r.levels.iter().all(|(_, l)| *l == TrustLevel::Trusted));
}

#[test]
fn teleport_to_novosibirsk_is_spoofed_from_the_first_far_fix() {
    let r = assert_verdict(
        "teleport",
        TrustLevel::Spoofed,
        &["impossible_speed", "timezone_mismatch", "far_from_site"],
    );
    let spoofed_at = first_time_at(&r, TrustLevel::Spoofed).expect("becomes spoofed");
    // The Moscow part lasts 180 s from T0 and is trusted; the first Novosibirsk fix is at 240 s.
    let t0 = r.levels[0].0;
    assert!(r
        .levels
        .iter()
        .filter(|(t, _)| *t < spoofed_at)
        .all(|(_, l)| *l == TrustLevel::Trusted));
    let secs = (spoofed_at - t0) as f64 / 1e6;
    assert!(
        (239.0..242.0).contains(&secs),
        "spoofed at the jump, {secs} s"
    );
    let jump = r
        .last
        .signals
        .iter()
        .find(|s| s.name == "impossible_speed")
        .expect("jump signal");
    assert_eq!(jump.severity, Severity::Spoofed);
    let speed = jump.value["speed_mps"].as_f64().expect("speed is a number");
    assert!(speed > 10_000.0, "2 800 km in about a minute: {speed} m/s");
}

#[test]
fn frozen_mock_position_is_spoofed_after_three_minutes() {
    let r = assert_verdict(
        "frozen",
        TrustLevel::Spoofed,
        &["frozen_position", "accuracy_constant"],
    );
    let frozen = r
        .last
        .signals
        .iter()
        .find(|s| s.name == "frozen_position")
        .expect("frozen");
    assert_eq!(frozen.severity, Severity::Spoofed);
    let t0 = r.levels[0].0;
    let at = |l| (first_time_at(&r, l).expect("reached") - t0) as f64 / 1e6;
    // Trusted first (a minute of identical fixes proves nothing), then suspicious, then spoofed.
    assert_eq!(r.levels[0].1, TrustLevel::Trusted);
    assert!(
        (59.0..62.0).contains(&at(TrustLevel::Suspicious)),
        "{}",
        at(TrustLevel::Suspicious)
    );
    assert!(
        (179.0..182.0).contains(&at(TrustLevel::Spoofed)),
        "{}",
        at(TrustLevel::Spoofed)
    );
}

#[test]
fn far_away_location_is_suspicious_for_distance_only() {
    let r = assert_verdict("far_away", TrustLevel::Suspicious, &["far_from_site"]);
    let far = r
        .last
        .signals
        .iter()
        .find(|s| s.name == "far_from_site")
        .expect("far");
    let km = far.value["distance_m"].as_f64().expect("number") / 1000.0;
    assert!(
        (620.0..650.0).contains(&km),
        "Saint Petersburg to Moscow: {km} km"
    );
    assert!(r.levels.iter().all(|(_, l)| *l == TrustLevel::Suspicious));
}

#[test]
fn time_zone_mismatch_is_suspicious() {
    let r = assert_verdict(
        "tz_mismatch",
        TrustLevel::Suspicious,
        &["timezone_mismatch"],
    );
    let tz = r
        .last
        .signals
        .iter()
        .find(|s| s.name == "timezone_mismatch")
        .expect("tz");
    assert_eq!(tz.value["browser"], "Europe/Moscow");
    assert_eq!(tz.value["position"], "Asia/Vladivostok");
    assert_eq!(tz.value["browser_offset_min"], 180);
    assert_eq!(tz.value["position_offset_min"], 600);
}

#[test]
fn permission_denied_is_suspicious_with_no_fix() {
    let r = assert_verdict("permission_denied", TrustLevel::Suspicious, &["no_fix"]);
    assert_eq!(r.last.signals[0].value["reason"], "permission_denied");
}

#[test]
fn webdriver_controlled_browser_is_spoofed() {
    assert_verdict("automation", TrustLevel::Spoofed, &["automation"]);
}

#[test]
fn ten_minute_slow_clock_is_suspicious() {
    let r = assert_verdict("clock_skew", TrustLevel::Suspicious, &["clock_skew"]);
    let skew = r
        .last
        .signals
        .iter()
        .find(|s| s.name == "clock_skew")
        .expect("skew");
    let secs = skew.value["median_skew_s"].as_f64().expect("number");
    assert!((600.0..602.0).contains(&secs), "{secs}");
}

#[test]
fn repeated_wifi_fix_on_a_desktop_is_trusted_but_noted() {
    let r = assert_verdict("wifi_repeat", TrustLevel::Trusted, &[]);
    let info: BTreeSet<&str> = r
        .last
        .signals
        .iter()
        .filter(|s| s.severity == Severity::Info)
        .map(|s| s.name.as_str())
        .collect();
    for n in [
        "frozen_position",
        "accuracy_constant",
        "desktop_browser",
        "on_site",
    ] {
        assert!(info.contains(n), "{n} noted as info: {info:?}");
    }
}

#[test]
fn bad_samples_are_rejected_with_codes_and_do_not_poison_the_score() {
    let trace = load("bad_samples");
    let r = assert_verdict("bad_samples", TrustLevel::Trusted, &[]);
    let codes: BTreeSet<&str> = r.rejections.iter().map(|(e, _)| e.as_str()).collect();
    let expected: BTreeSet<&str> = [
        "geo_lat_out_of_range",
        "geo_lon_out_of_range",
        "geo_accuracy_invalid",
        "geo_timestamp_in_future",
        "geo_timestamp_too_old",
    ]
    .into();
    assert_eq!(codes, expected, "every kind of bad sample appears");
    assert!(
        r.rejections.len() >= 6,
        "negative and absurd accuracy both appear"
    );
    for (expected, actual) in &r.rejections {
        assert_eq!(expected, actual);
    }
    // The same trace without the bad samples produces exactly the same verdicts.
    let clean = Trace {
        events: trace
            .events
            .into_iter()
            .filter(|e| e.expect_reject.is_none())
            .collect(),
        ..trace
    };
    assert_eq!(replay(&clean).verdicts, r.verdicts);
}

#[test]
fn verdict_serializes_in_snake_case() {
    let r = replay(&load("teleport"));
    let json = serde_json::to_value(&r.last).expect("a verdict serializes");
    assert_eq!(json["level"], "spoofed");
    assert_eq!(json["signals"][0]["severity"], "spoofed");
    assert_eq!(json["signals"][0]["name"], "impossible_speed");
    let back: Verdict = serde_json::from_value(json).expect("and reads back");
    assert_eq!(back, r.last);
}

#[test]
fn nan_is_rejected_and_changes_nothing() {
    let trace = load("table");
    let mut a = Assessor::new(
        TrustConfig::default(),
        Some((55.76012, 37.61856)),
        trace.client.clone(),
    );
    for ev in trace.events.iter().take(20) {
        let raw = ev.fix.as_ref().expect("table trace has fixes");
        a.on_raw(raw, ev.t_us).expect("good fix");
    }
    let before = a.verdict();
    let mut raw = trace.events[20].fix.clone().expect("fix");
    for poison in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        raw.lat = poison;
        let err = a.on_raw(&raw, trace.events[20].t_us).expect_err("poisoned");
        assert_eq!(err.code(), "geo_not_finite");
        assert!(matches!(err, GeoError::NotFinite { field: "lat" }));
    }
    assert_eq!(a.verdict(), before);
}

// ---- properties ----

const NOW_US: i64 = 1_795_424_400_000_000;

fn any_f64() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>(),
        -200.0..200.0f64,
        0.0..2_000_000.0f64,
        Just(f64::NAN),
        Just(f64::INFINITY),
        Just(f64::NEG_INFINITY),
        Just(-0.0),
        Just(90.0),
        Just(-180.0),
        Just(180.0),
    ]
}

fn any_ts() -> impl Strategy<Value = i64> {
    let now_ms = NOW_US / 1000;
    prop_oneof![
        any::<i64>(),
        (now_ms - 40 * 86_400_000)..(now_ms + 2 * 86_400_000),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(0i64),
    ]
}

prop_compose! {
    fn any_raw()(
        lat in any_f64(), lon in any_f64(), accuracy in any_f64(),
        altitude in proptest::option::of(any_f64()), altitude_accuracy in proptest::option::of(any_f64()),
        heading in proptest::option::of(any_f64()), speed in proptest::option::of(any_f64()),
        device_ts in any_ts(),
    ) -> RawGeolocation {
        RawGeolocation { lat, lon, accuracy, altitude, altitude_accuracy, heading, speed, device_ts }
    }
}

fn warmed_up_assessor() -> Assessor {
    let trace = load("walking");
    let mut a = Assessor::new(
        TrustConfig::default(),
        Some((55.76012, 37.61856)),
        trace.client.clone(),
    );
    for ev in trace.events.iter().take(30) {
        let raw = ev.fix.as_ref().expect("walking trace has fixes");
        a.on_raw(raw, ev.t_us).expect("good fix");
    }
    a
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// No input panics; what parses is in range; what is rejected changes nothing, not even
    /// what the next good sample leads to.
    #[test]
    fn any_sample_is_safe(raws in proptest::collection::vec(any_raw(), 1..8), now_off in -5_000_000_000i64..5_000_000_000i64) {
        let mut a = warmed_up_assessor();
        let now = NOW_US + now_off;
        for raw in &raws {
            let twin = a.clone();
            match a.on_raw(raw, now) {
                Ok(v) => {
                    let g = Geolocation::parse(raw, now).expect("on_raw accepted it");
                    prop_assert!((-90.0..=90.0).contains(&g.lat()));
                    prop_assert!((-180.0..=180.0).contains(&g.lon()));
                    prop_assert!(g.accuracy().is_finite() && g.accuracy() >= 0.0);
                    prop_assert!(serde_json::to_string(&v).is_ok());
                }
                Err(e) => {
                    prop_assert!(e.code().starts_with("geo_"));
                    prop_assert_eq!(a.verdict(), twin.verdict());
                    // Same state: the same next sample gives the same verdict in both.
                    let good = RawGeolocation {
                        lat: 55.7601, lon: 37.6186, accuracy: 7.5, altitude: None,
                        altitude_accuracy: None, heading: None, speed: None,
                        device_ts: now / 1000,
                    };
                    let (mut x, mut y) = (a.clone(), twin);
                    prop_assert_eq!(x.on_raw(&good, now).ok(), y.on_raw(&good, now).ok());
                }
            }
        }
    }

    /// Arbitrary client contexts and times never panic either.
    #[test]
    fn any_client_and_no_fix_is_safe(
        tz in proptest::option::of(".{0,40}"),
        ua in proptest::option::of(".{0,80}"),
        platform in proptest::option::of(".{0,20}"),
        hints in proptest::collection::vec(".{0,12}", 0..4),
        webdriver in proptest::option::of(any::<bool>()),
        site_lat in any_f64(), site_lon in any_f64(),
        now in any::<i64>(),
        raw in any_raw(),
    ) {
        let client = ClientContext { timezone: tz, webdriver, user_agent: ua, platform, hints };
        let mut a = Assessor::new(TrustConfig::default(), Some((site_lat, site_lon)), client);
        let _ = a.on_no_fix(NoFix::Timeout, now);
        let _ = a.on_raw(&raw, now);
        let v = a.on_no_fix(NoFix::PermissionDenied, now);
        prop_assert!(v.level >= TrustLevel::Suspicious);
    }
}
