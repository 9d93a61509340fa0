//! Does a participant's reported position deserve trust?
//!
//! A browser cannot see a mock-location app, so the server weighs evidence instead: each
//! accepted [`Geolocation`] sample goes into the participant's [`Assessor`], which recomputes
//! a [`Verdict`] (trusted / suspicious / spoofed) together with the [`Signal`]s that led to it,
//! each a code with parameters (the pages put it into words). The assessor is a pure state
//! machine: time is an input (`server_now_micros`), it never reads a clock and never does IO,
//! and its memory per participant is bounded (a ring of recent samples plus a few counters).
//!
//! Scoring: a signal of severity `suspicious` weighs 1 point, `spoofed` weighs 3, `info` 0.
//! Three points make the verdict `spoofed`, one point `suspicious`, none `trusted`. So a single
//! decisive signal (an impossible jump, a frozen GPS-grade position, automation) is enough to
//! call a position spoofed, and three independent weak ones amount to the same. The thresholds
//! and the reasoning behind them are in `docs/geolocation.md`.

mod client;
pub mod tz;

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::geo::{distance_m, GeoError, Geolocation, RawGeolocation};

pub use client::{AUTOMATION_HINTS, EMULATOR_HINTS};

/// How much a participant's position can be trusted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrustLevel {
    /// No evidence against the position.
    Trusted,
    /// Some evidence against the position, or no position at all.
    Suspicious,
    /// Strong evidence that the position is not real.
    Spoofed,
}

/// How strongly one signal speaks against the position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Context for the inspector; does not count.
    Info,
    /// Weak evidence: 1 point.
    Suspicious,
    /// Decisive evidence: 3 points, enough for `spoofed` on its own.
    Spoofed,
}

impl Severity {
    fn points(self) -> u32 {
        match self {
            Severity::Info => 0,
            Severity::Suspicious => 1,
            Severity::Spoofed => 3,
        }
    }
}

/// Every signal code the assessor produces (docs/geolocation.md describes each one and its
/// parameters; web/i18n.js has its words).
pub const SIGNAL_NAMES: &[&str] = &[
    "no_fix",
    "impossible_speed",
    "frozen_position",
    "accuracy_too_good",
    "accuracy_constant",
    "coarse_fix",
    "clock_skew",
    "timezone_unknown",
    "timezone_mismatch",
    "far_from_site",
    "site_unconfirmed",
    "on_site",
    "automation",
    "emulator",
    "platform_mismatch",
    "desktop_browser",
    "client_hint",
];

/// One piece of evidence: a code with its parameters. Words are not stored: the pages (and
/// documents) render them from `name` and `value` in the reader's language
/// (docs/geolocation.md lists every code and its parameters).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// Stable snake_case code, e.g. `impossible_speed` (see `docs/geolocation.md`).
    pub name: String,
    /// The parameters: a number, or an object when one number does not say it.
    pub value: serde_json::Value,
    /// How strongly it counts.
    pub severity: Severity,
    /// Only in events recorded before signals became codes (they carried sentences in
    /// Russian): read back and kept as stored, never written any more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation_ru: Option<String>,
    /// Like `explanation_ru`, in English.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explanation_en: Option<String>,
}

impl Signal {
    /// A signal with its code, parameters and severity.
    pub fn new(name: &str, value: serde_json::Value, severity: Severity) -> Signal {
        Signal {
            name: name.to_owned(),
            value,
            severity,
            explanation_ru: None,
            explanation_en: None,
        }
    }
}

/// The assessment of one participant at one moment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    /// The overall level.
    pub level: TrustLevel,
    /// Every signal that was found, most severe first. Signals of severity `info` do not
    /// count towards the level.
    pub signals: Vec<Signal>,
}

impl Verdict {
    /// The signals that decided the level (severity above `info`).
    pub fn deciding(&self) -> impl Iterator<Item = &Signal> {
        self.signals.iter().filter(|s| s.severity > Severity::Info)
    }

    /// Whether two verdicts say the same thing: same level, same deciding signal names. Values
    /// and explanations change with every sample; an event log only needs a new entry when
    /// this returns false.
    pub fn same_outcome(&self, other: &Verdict) -> bool {
        self.level == other.level
            && self
                .deciding()
                .map(|s| &s.name)
                .eq(other.deciding().map(|s| &s.name))
    }

    fn from_signals(mut signals: Vec<Signal>) -> Verdict {
        signals.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.name.cmp(&b.name))
        });
        let points: u32 = signals.iter().map(|s| s.severity.points()).sum();
        let level = match points {
            0 => TrustLevel::Trusted,
            1 | 2 => TrustLevel::Suspicious,
            _ => TrustLevel::Spoofed,
        };
        Verdict { level, signals }
    }
}

/// What the browser says about itself, reported once when the participant connects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientContext {
    /// `Intl.DateTimeFormat().resolvedOptions().timeZone`, an IANA name.
    #[serde(default)]
    pub timezone: Option<String>,
    /// `navigator.webdriver`.
    #[serde(default)]
    pub webdriver: Option<bool>,
    /// `navigator.userAgent`.
    #[serde(default)]
    pub user_agent: Option<String>,
    /// `navigator.platform`.
    #[serde(default)]
    pub platform: Option<String>,
    /// Extra observations of the page, e.g. `emulator_gpu` ([`EMULATOR_HINTS`],
    /// [`AUTOMATION_HINTS`]); unknown hints are shown as information only.
    #[serde(default)]
    pub hints: Vec<String>,
}

/// Why the browser has no position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoFix {
    /// `GeolocationPositionError.PERMISSION_DENIED`.
    PermissionDenied,
    /// `GeolocationPositionError.POSITION_UNAVAILABLE`.
    Unavailable,
    /// `GeolocationPositionError.TIMEOUT`.
    Timeout,
}

impl NoFix {
    fn code(self) -> &'static str {
        match self {
            NoFix::PermissionDenied => "permission_denied",
            NoFix::Unavailable => "unavailable",
            NoFix::Timeout => "timeout",
        }
    }
}

/// Thresholds of the scoring. The defaults and why they were chosen are in
/// `docs/geolocation.md`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrustConfig {
    /// How far from the inspection site's registered coordinates a participant may be, in
    /// metres, beyond the fix's own accuracy.
    pub site_radius_m: f64,
    /// How many recent samples are kept per participant.
    pub window: usize,
    /// Speed between consecutive fixes (after subtracting both accuracy radii) above which the
    /// move is suspicious, m/s.
    pub speed_suspicious_mps: f64,
    /// Speed above which the move is impossible, m/s.
    pub speed_spoofed_mps: f64,
    /// Smallest distance beyond the accuracy radii that counts as a suspicious jump, metres.
    pub jump_suspicious_min_m: f64,
    /// Smallest distance beyond the accuracy radii that counts as an impossible jump, metres.
    pub jump_spoofed_min_m: f64,
    /// How long an impossible or suspicious jump stays in the verdict, seconds.
    pub jump_memory_s: f64,
    /// Identical fixes over this many seconds are suspicious.
    pub frozen_suspicious_s: f64,
    /// ... and need at least this many of them.
    pub frozen_suspicious_count: u32,
    /// Identical fixes over this many seconds are a mock.
    pub frozen_spoofed_s: f64,
    /// ... and need at least this many of them.
    pub frozen_spoofed_count: u32,
    /// A frozen fix counts as a mock only when it claims this accuracy or better, metres.
    pub frozen_gps_accuracy_m: f64,
    /// A frozen fix with worse accuracy than this is Wi-Fi or cell positioning, which repeats
    /// legitimately, and is only shown as information, metres.
    pub frozen_network_accuracy_m: f64,
    /// Accuracy better than this is implausible for a phone, metres.
    pub accuracy_min_m: f64,
    /// The same whole-number accuracy in this many consecutive fixes is suspicious.
    pub constant_accuracy_count: u32,
    /// ... when they span at least this many seconds.
    pub constant_accuracy_s: f64,
    /// Accuracy worse than this cannot place anyone at a site and is noted, metres.
    pub coarse_accuracy_m: f64,
    /// Median device-versus-server clock difference above which the clock is suspicious, seconds.
    pub clock_skew_suspicious_s: f64,
    /// How long without a fix (position unavailable, timeout) is tolerated, seconds.
    pub no_fix_grace_s: f64,
}

impl Default for TrustConfig {
    fn default() -> Self {
        TrustConfig {
            site_radius_m: 300.0,
            window: 32,
            speed_suspicious_mps: 90.0,
            speed_spoofed_mps: 350.0,
            jump_suspicious_min_m: 250.0,
            jump_spoofed_min_m: 1000.0,
            jump_memory_s: 300.0,
            frozen_suspicious_s: 60.0,
            frozen_suspicious_count: 5,
            frozen_spoofed_s: 180.0,
            frozen_spoofed_count: 12,
            frozen_gps_accuracy_m: 10.0,
            frozen_network_accuracy_m: 30.0,
            accuracy_min_m: 1.0,
            constant_accuracy_count: 10,
            constant_accuracy_s: 60.0,
            coarse_accuracy_m: 500.0,
            clock_skew_suspicious_s: 120.0,
            no_fix_grace_s: 60.0,
        }
    }
}

/// A remembered jump between two fixes.
#[derive(Debug, Clone)]
struct Jump {
    severity: Severity,
    distance_m: f64,
    excess_m: f64,
    dt_s: f64,
    speed_mps: f64,
    at_micros: i64,
}

/// A run of consecutive fresh fixes that share a property (identical position, or identical
/// accuracy).
#[derive(Debug, Clone)]
struct Run {
    lat: f64,
    lon: f64,
    accuracy: f64,
    first_micros: i64,
    last_micros: i64,
    count: u32,
}

impl Run {
    fn start(s: &Geolocation) -> Run {
        Run {
            lat: s.lat(),
            lon: s.lon(),
            accuracy: s.accuracy(),
            first_micros: s.server_ts_micros(),
            last_micros: s.server_ts_micros(),
            count: 1,
        }
    }
    fn extend(&mut self, s: &Geolocation) {
        self.count = self.count.saturating_add(1);
        self.last_micros = self.last_micros.max(s.server_ts_micros());
    }
    fn span_s(&self) -> f64 {
        self.last_micros.saturating_sub(self.first_micros) as f64 / 1e6
    }
}

/// Exact equality is intended: a mock app resends the very same doubles, while a real receiver
/// moves them in the seventh decimal at least.
fn same_position(s: &Geolocation, r: &Run) -> bool {
    s.lat() == r.lat && s.lon() == r.lon && s.accuracy() == r.accuracy
}

/// The trust state machine of one participant.
#[derive(Debug, Clone)]
pub struct Assessor {
    config: TrustConfig,
    site: Option<(f64, f64)>,
    client: ClientContext,
    ios: bool,
    client_signals: Vec<Signal>,
    recent: VecDeque<Geolocation>,
    now_micros: i64,
    jump: Option<Jump>,
    frozen: Option<Run>,
    constant_accuracy: Option<Run>,
    no_fix: Option<NoFix>,
    verdict: Verdict,
}

impl Assessor {
    /// A fresh assessor for one participant. `site` is the inspection site's registered
    /// `(lat, lon)` in degrees, if known; a site with non-finite or out-of-range coordinates
    /// is ignored.
    pub fn new(config: TrustConfig, site: Option<(f64, f64)>, client: ClientContext) -> Self {
        let site = site.filter(|(lat, lon)| {
            lat.is_finite() && lon.is_finite() && lat.abs() <= 90.0 && lon.abs() <= 180.0
        });
        let client_signals = client::client_signals(&client);
        let ios = client::mobile_os(client.user_agent.as_deref()) == Some(client::MobileOs::Ios);
        let window = config.window.max(2);
        let mut a = Assessor {
            config,
            site,
            client,
            ios,
            client_signals,
            recent: VecDeque::with_capacity(window),
            now_micros: i64::MIN,
            jump: None,
            frozen: None,
            constant_accuracy: None,
            no_fix: None,
            verdict: Verdict {
                level: TrustLevel::Suspicious,
                signals: Vec::new(),
            },
        };
        a.verdict = a.compute();
        a
    }

    /// The current verdict.
    pub fn verdict(&self) -> Verdict {
        self.verdict.clone()
    }

    /// The client context this assessor was created with.
    pub fn client(&self) -> &ClientContext {
        &self.client
    }

    /// Feeds one accepted sample received at `server_now_micros` and returns the new verdict.
    pub fn on_sample(&mut self, sample: &Geolocation, server_now_micros: i64) -> Verdict {
        self.now_micros = self.now_micros.max(server_now_micros);
        self.no_fix = None;
        let prev = self.recent.back().cloned();
        let redelivery = prev.as_ref().is_some_and(|p| {
            p.device_ts_ms() == sample.device_ts_ms()
                && p.lat() == sample.lat()
                && p.lon() == sample.lon()
                && p.accuracy() == sample.accuracy()
        });
        // A browser may hand the same fix out twice (a cached position); it is not new
        // evidence of anything, neither of movement nor of a frozen position.
        if !redelivery {
            if let Some(prev) = &prev {
                self.check_jump(prev, sample);
            }
            match &mut self.frozen {
                Some(run) if same_position(sample, run) => run.extend(sample),
                _ => self.frozen = Some(Run::start(sample)),
            }
            match &mut self.constant_accuracy {
                Some(run) if run.accuracy == sample.accuracy() => run.extend(sample),
                _ => self.constant_accuracy = Some(Run::start(sample)),
            }
            if self.recent.len() >= self.config.window.max(2) {
                self.recent.pop_front();
            }
            self.recent.push_back(sample.clone());
        }
        self.verdict = self.compute();
        self.verdict.clone()
    }

    /// Parses a raw browser sample and, only if it is valid, feeds it. A rejected sample
    /// leaves the assessor exactly as it was and comes back as the [`GeoError`] with its code.
    pub fn on_raw(
        &mut self,
        raw: &RawGeolocation,
        server_now_micros: i64,
    ) -> Result<Verdict, GeoError> {
        let sample = Geolocation::parse(raw, server_now_micros)?;
        Ok(self.on_sample(&sample, server_now_micros))
    }

    /// Records that the browser could not produce a fix, at `server_now_micros`, and returns
    /// the new verdict.
    pub fn on_no_fix(&mut self, reason: NoFix, server_now_micros: i64) -> Verdict {
        self.now_micros = self.now_micros.max(server_now_micros);
        self.no_fix = Some(reason);
        self.verdict = self.compute();
        self.verdict.clone()
    }

    fn check_jump(&mut self, prev: &Geolocation, cur: &Geolocation) {
        let c = &self.config;
        let distance = prev.distance_m(cur);
        let excess = (distance - prev.accuracy() - cur.accuracy()).max(0.0);
        // The larger of the two clocks' intervals is the lenient reading: the device clock
        // survives batching after a network outage, the server clock survives a device that
        // lies about time. Below a second, timing noise dominates.
        let device_dt = cur.device_ts_ms().saturating_sub(prev.device_ts_ms()) as f64 / 1e3;
        let server_dt = cur
            .server_ts_micros()
            .saturating_sub(prev.server_ts_micros()) as f64
            / 1e6;
        let dt = device_dt.max(server_dt).max(1.0);
        let speed = excess / dt;
        let severity = if speed >= c.speed_spoofed_mps && excess >= c.jump_spoofed_min_m {
            Severity::Spoofed
        } else if speed >= c.speed_suspicious_mps && excess >= c.jump_suspicious_min_m {
            Severity::Suspicious
        } else {
            return;
        };
        let live = self.jump_is_live();
        if live && self.jump.as_ref().is_some_and(|j| j.severity > severity) {
            return;
        }
        self.jump = Some(Jump {
            severity,
            distance_m: distance,
            excess_m: excess,
            dt_s: dt,
            speed_mps: speed,
            at_micros: cur.server_ts_micros().max(self.now_micros),
        });
    }

    fn jump_is_live(&self) -> bool {
        self.jump.as_ref().is_some_and(|j| {
            (self.now_micros.saturating_sub(j.at_micros) as f64) / 1e6 <= self.config.jump_memory_s
        })
    }

    fn compute(&self) -> Verdict {
        let mut signals = self.client_signals.clone();
        match self.recent.back() {
            None => signals.push(self.no_fix_signal(None)),
            Some(latest) => {
                if self.no_fix.is_some() {
                    signals.push(self.no_fix_signal(Some(latest)));
                }
                self.position_signals(latest, &mut signals);
            }
        }
        Verdict::from_signals(signals)
    }

    fn no_fix_signal(&self, latest: Option<&Geolocation>) -> Signal {
        let since_s = latest
            .map(|l| self.now_micros.saturating_sub(l.server_ts_micros()).max(0) as f64 / 1e6);
        match (self.no_fix, since_s) {
            (Some(NoFix::PermissionDenied), _) => Signal::new(
                "no_fix",
                json!({ "reason": "permission_denied" }),
                Severity::Suspicious,
            ),
            (reason, Some(since)) => {
                let code = reason.map_or("none", NoFix::code);
                let severity = if since <= self.config.no_fix_grace_s {
                    Severity::Info
                } else {
                    Severity::Suspicious
                };
                Signal::new(
                    "no_fix",
                    json!({ "reason": code, "seconds_since_fix": since.round() }),
                    severity,
                )
            }
            (reason, None) => {
                let code = reason.map_or("awaiting_fix", NoFix::code);
                Signal::new("no_fix", json!({ "reason": code }), Severity::Suspicious)
            }
        }
    }

    fn position_signals(&self, latest: &Geolocation, out: &mut Vec<Signal>) {
        let c = &self.config;
        if self.jump_is_live() {
            // Checked just above.
            if let Some(j) = &self.jump {
                out.push(Signal::new(
                    "impossible_speed",
                    json!({
                        "speed_mps": round1(j.speed_mps),
                        "distance_m": j.distance_m.round(),
                        "beyond_accuracy_m": j.excess_m.round(),
                        "seconds": round1(j.dt_s),
                    }),
                    j.severity,
                ));
            }
        }

        if let Some(run) = &self.frozen {
            let long_enough = |s: f64, n: u32| run.span_s() >= s && run.count >= n;
            let gps_grade = run.accuracy <= c.frozen_gps_accuracy_m;
            // Info means Wi-Fi or cell positioning, which legitimately repeats.
            let severity = if run.accuracy > c.frozen_network_accuracy_m {
                long_enough(c.frozen_suspicious_s, c.frozen_suspicious_count)
                    .then_some(Severity::Info)
            } else if gps_grade && long_enough(c.frozen_spoofed_s, c.frozen_spoofed_count) {
                Some(Severity::Spoofed)
            } else if long_enough(c.frozen_suspicious_s, c.frozen_suspicious_count) {
                Some(Severity::Suspicious)
            } else {
                None
            };
            if let Some(severity) = severity {
                out.push(Signal::new(
                    "frozen_position",
                    json!({ "count": run.count, "seconds": run.span_s().round(), "accuracy_m": run.accuracy }),
                    severity,
                ));
            }
        }

        let best = self
            .recent
            .iter()
            .map(Geolocation::accuracy)
            .fold(f64::INFINITY, f64::min);
        if best < c.accuracy_min_m {
            out.push(Signal::new(
                "accuracy_too_good",
                json!(best),
                Severity::Suspicious,
            ));
        }

        if let Some(run) = &self.constant_accuracy {
            let acc = run.accuracy;
            if acc.fract() == 0.0
                && run.count >= c.constant_accuracy_count
                && run.span_s() >= c.constant_accuracy_s
            {
                // Round values are normal for Wi-Fi or cell positioning, and iOS reports
                // accuracy in fixed steps (5, 10, 65 m ...): there it is only noted, with the
                // cause, so the pages can say why.
                let (severity, cause) = if acc > c.frozen_network_accuracy_m {
                    (Severity::Info, Some("network"))
                } else if self.ios {
                    (Severity::Info, Some("ios"))
                } else {
                    (Severity::Suspicious, None)
                };
                let mut value = json!({ "accuracy_m": acc, "count": run.count, "seconds": run.span_s().round() });
                if let (Some(cause), Some(m)) = (cause, value.as_object_mut()) {
                    m.insert("cause".into(), json!(cause));
                }
                out.push(Signal::new("accuracy_constant", value, severity));
            }
        }

        if latest.accuracy() > c.coarse_accuracy_m {
            out.push(Signal::new(
                "coarse_fix",
                json!(latest.accuracy().round()),
                Severity::Info,
            ));
        }

        self.clock_signal(out);
        self.timezone_signal(latest, out);
        self.site_signal(out);
    }

    fn clock_signal(&self, out: &mut Vec<Signal>) {
        let mut skews: Vec<i64> = self.recent.iter().map(Geolocation::clock_skew_ms).collect();
        // A single fix may be a cached one from before the call; three make a median.
        if skews.len() < 3 {
            return;
        }
        skews.sort_unstable();
        let median_s = skews[skews.len() / 2] as f64 / 1e3;
        if median_s.abs() < self.config.clock_skew_suspicious_s {
            return;
        }
        let n = skews.len();
        let hours = median_s.abs() / 3600.0;
        // A difference close to whole hours is what a hand-set time zone and clock produce.
        let whole_hours = hours >= 0.9 && (hours - hours.round()).abs() * 3600.0 < 120.0;
        let mut value = json!({ "median_skew_s": round1(median_s), "samples": n });
        if let (true, Some(m)) = (whole_hours, value.as_object_mut()) {
            m.insert("whole_hours".into(), json!(hours.round()));
        }
        out.push(Signal::new("clock_skew", value, Severity::Suspicious));
    }

    fn timezone_signal(&self, latest: &Geolocation, out: &mut Vec<Signal>) {
        let browser = self
            .client
            .timezone
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty());
        let at = self.now_micros.max(latest.server_ts_micros());
        let Some(browser) = browser else {
            out.push(Signal::new(
                "timezone_unknown",
                serde_json::Value::Null,
                Severity::Info,
            ));
            return;
        };
        let Some(browser_off) = tz::utc_offset_minutes(browser, at) else {
            out.push(Signal::new(
                "timezone_unknown",
                json!(browser),
                Severity::Info,
            ));
            return;
        };
        let Some(zone) = tz::zone_at(latest.lat(), latest.lon()) else {
            return;
        };
        let Some(zone_off) = tz::utc_offset_minutes(zone, at) else {
            return;
        };
        if zone_off == browser_off {
            return;
        }
        out.push(Signal::new(
            "timezone_mismatch",
            json!({
                "browser": browser,
                "browser_offset_min": browser_off,
                "position": zone,
                "position_offset_min": zone_off,
            }),
            Severity::Suspicious,
        ));
    }

    fn site_signal(&self, out: &mut Vec<Signal>) {
        let Some(site) = self.site else { return };
        let r = self.config.site_radius_m;
        // The most favourable of the last three fixes decides, so one stray fix does not make
        // the verdict flicker.
        let best = self
            .recent
            .iter()
            .rev()
            .take(3)
            .map(|s| {
                let d = distance_m(site, (s.lat(), s.lon()));
                (d - s.accuracy(), d, s.accuracy())
            })
            .min_by(|a, b| a.0.total_cmp(&b.0));
        let Some((margin, d, acc)) = best else { return };
        let value = json!({ "distance_m": d.round(), "accuracy_m": acc.round(), "radius_m": r });
        let (name, severity) = if margin > r {
            ("far_from_site", Severity::Suspicious)
        } else if d > r {
            // The fix is too coarse to confirm presence within the radius.
            ("site_unconfirmed", Severity::Info)
        } else {
            ("on_site", Severity::Info)
        };
        out.push(Signal::new(name, value, severity));
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_424_400_000_000;
    const SITE: (f64, f64) = (55.76012, 37.61856);
    const ANDROID_UA: &str = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, \
                              like Gecko) Chrome/142.0.0.0 Mobile Safari/537.36";

    fn android() -> ClientContext {
        ClientContext {
            timezone: Some("Europe/Moscow".into()),
            webdriver: Some(false),
            user_agent: Some(ANDROID_UA.into()),
            platform: Some("Linux armv81".into()),
            hints: vec![],
        }
    }

    /// A fix `north_m` metres north of the site, taken at `t_s` seconds and received 300 ms
    /// later.
    // Test times are whole milliseconds well inside i64, so the casts are exact.
    #[allow(clippy::cast_possible_truncation)]
    fn fix(north_m: f64, accuracy: f64, t_s: f64) -> (Geolocation, i64) {
        let now = T0 + (t_s * 1e6) as i64 + 300_000;
        let raw = RawGeolocation {
            lat: SITE.0 + north_m / 111_195.0,
            lon: SITE.1,
            accuracy,
            altitude: None,
            altitude_accuracy: None,
            heading: None,
            speed: None,
            device_ts: T0 / 1000 + (t_s * 1e3) as i64,
        };
        // unwrap: the tests only build in-range fixes with a current timestamp.
        (Geolocation::parse(&raw, now).unwrap(), now)
    }

    fn names(v: &Verdict) -> Vec<&str> {
        v.deciding().map(|s| s.name.as_str()).collect()
    }

    #[test]
    fn awaiting_the_first_fix_is_suspicious() {
        let a = Assessor::new(TrustConfig::default(), Some(SITE), android());
        let v = a.verdict();
        assert_eq!(v.level, TrustLevel::Suspicious);
        assert_eq!(names(&v), ["no_fix"]);
        assert_eq!(v.signals[0].value["reason"], "awaiting_fix");
    }

    #[test]
    fn a_jump_is_remembered_for_five_minutes_of_server_time_then_forgotten() {
        let mut a = Assessor::new(TrustConfig::default(), None, android());
        let (g, now) = fix(0.0, 8.3, 0.0);
        assert_eq!(a.on_sample(&g, now).level, TrustLevel::Trusted);
        // 50 km north in 10 s.
        let (g, now) = fix(50_000.0, 8.1, 10.0);
        let v = a.on_sample(&g, now);
        assert_eq!(
            (v.level, names(&v)),
            (TrustLevel::Spoofed, vec!["impossible_speed"])
        );
        // Steady at the new place: spoofed until 300 s after the jump (seen at 10.3 s), then
        // trusted.
        let mut t: f64 = 12.0;
        let mut last = v;
        while t < 330.0 {
            let (g, now) = fix(50_000.0 + (t * 0.37).sin() * 3.0, 8.0 + (t * 0.1).cos(), t);
            last = a.on_sample(&g, now);
            let expected = if t <= 310.0 {
                TrustLevel::Spoofed
            } else {
                TrustLevel::Trusted
            };
            assert_eq!(last.level, expected, "at {t} s");
            t += 2.0;
        }
        assert!(last.signals.is_empty(), "{last:?}");
    }

    #[test]
    fn a_short_multipath_glitch_is_not_a_jump() {
        let mut a = Assessor::new(TrustConfig::default(), None, android());
        let (g, now) = fix(0.0, 12.4, 0.0);
        a.on_sample(&g, now);
        // 180 m in one second with 25 m accuracy: 143 m unexplained, below the minimum.
        let (g, now) = fix(180.0, 25.2, 1.0);
        assert_eq!(a.on_sample(&g, now).level, TrustLevel::Trusted);
        // 400 m in one second is a suspicious jump, not yet an impossible one.
        let (g, now) = fix(580.0, 10.7, 2.0);
        let v = a.on_sample(&g, now);
        assert_eq!(
            (v.level, names(&v)),
            (TrustLevel::Suspicious, vec!["impossible_speed"])
        );
        assert_eq!(v.signals[0].severity, Severity::Suspicious);
    }

    #[test]
    fn redelivered_fix_is_not_evidence_of_freezing() {
        let mut a = Assessor::new(TrustConfig::default(), Some(SITE), android());
        // The browser hands out the same cached fix (same device timestamp) for five minutes.
        let (g, _) = fix(3.0, 5.0, 0.0);
        for i in 0..300 {
            let v = a.on_sample(&g, T0 + i * 1_000_000);
            assert_eq!(v.level, TrustLevel::Trusted, "at {i} s");
        }
    }

    #[test]
    fn losing_the_fix_is_tolerated_for_a_minute() {
        let mut a = Assessor::new(TrustConfig::default(), Some(SITE), android());
        let (g, now) = fix(3.0, 7.9, 0.0);
        a.on_sample(&g, now);
        let v = a.on_no_fix(NoFix::Timeout, now + 30_000_000);
        assert_eq!(v.level, TrustLevel::Trusted);
        assert_eq!(v.signals[0].name, "no_fix");
        assert_eq!(v.signals[0].severity, Severity::Info);
        let v = a.on_no_fix(NoFix::Unavailable, now + 61_000_000);
        assert_eq!(
            (v.level, names(&v)),
            (TrustLevel::Suspicious, vec!["no_fix"])
        );
        let (g, now) = fix(3.5, 8.2, 70.0);
        assert_eq!(
            a.on_sample(&g, now).level,
            TrustLevel::Trusted,
            "a fix clears it"
        );
        // Revoking the permission mid-call is suspicious at once.
        let v = a.on_no_fix(NoFix::PermissionDenied, now + 1);
        assert_eq!(
            (v.level, names(&v)),
            (TrustLevel::Suspicious, vec!["no_fix"])
        );
    }

    #[test]
    fn sub_metre_accuracy_is_suspicious() {
        let mut a = Assessor::new(TrustConfig::default(), None, android());
        let (g, now) = fix(0.0, 0.0, 0.0);
        let v = a.on_sample(&g, now);
        assert_eq!(
            (v.level, names(&v)),
            (TrustLevel::Suspicious, vec!["accuracy_too_good"])
        );
    }

    #[test]
    fn three_weak_signals_add_up_to_spoofed() {
        let client = ClientContext {
            timezone: Some("Asia/Vladivostok".into()),
            ..android()
        };
        let mut a = Assessor::new(TrustConfig::default(), Some(SITE), client);
        let (g, now) = fix(5_000.0, 0.5, 0.0);
        let v = a.on_sample(&g, now);
        assert_eq!(v.level, TrustLevel::Spoofed);
        let mut n = names(&v);
        n.sort_unstable();
        assert_eq!(
            n,
            ["accuracy_too_good", "far_from_site", "timezone_mismatch"]
        );
    }

    #[test]
    fn round_constant_accuracy_is_only_noted_on_ios() {
        let iphone = ClientContext {
            user_agent: Some(
                "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 \
                 (KHTML, like Gecko) Version/18.6 Mobile/15E148 Safari/604.1"
                    .into(),
            ),
            platform: Some("iPhone".into()),
            ..android()
        };
        for (client, level) in [
            (iphone, TrustLevel::Trusted),
            (android(), TrustLevel::Suspicious),
        ] {
            let mut a = Assessor::new(TrustConfig::default(), Some(SITE), client);
            let mut v = a.verdict();
            for i in 0..40 {
                // Moving a little each time, accuracy always exactly 10 m.
                let (g, now) = fix(f64::from(i) * 0.7, 10.0, f64::from(i) * 2.0);
                v = a.on_sample(&g, now);
            }
            assert_eq!(v.level, level);
            assert!(v.signals.iter().any(|s| s.name == "accuracy_constant"));
        }
    }

    #[test]
    fn client_context_signals() {
        let cases: [(ClientContext, TrustLevel, &[&str]); 5] = [
            (
                ClientContext {
                    user_agent: Some("Mozilla/5.0 HeadlessChrome/142".into()),
                    ..android()
                },
                TrustLevel::Spoofed,
                &["automation"],
            ),
            (
                ClientContext {
                    platform: Some("Linux x86_64".into()),
                    ..android()
                },
                TrustLevel::Suspicious,
                &["emulator"],
            ),
            (
                ClientContext {
                    platform: Some("Win32".into()),
                    ..android()
                },
                TrustLevel::Suspicious,
                &["platform_mismatch"],
            ),
            (
                ClientContext {
                    hints: vec!["emulator_gpu".into(), "webgl_ok".into()],
                    ..android()
                },
                TrustLevel::Suspicious,
                &["emulator"],
            ),
            (
                ClientContext {
                    timezone: None,
                    ..android()
                },
                TrustLevel::Trusted,
                &[],
            ),
        ];
        for (client, level, deciding) in cases {
            let mut a = Assessor::new(TrustConfig::default(), Some(SITE), client.clone());
            let (g, now) = fix(2.0, 6.4, 0.0);
            let v = a.on_sample(&g, now);
            assert_eq!(
                (v.level, names(&v)),
                (level, deciding.to_vec()),
                "{client:?}"
            );
        }
    }

    #[test]
    fn same_outcome_ignores_values_but_not_deciding_signals() {
        let mut a = Assessor::new(TrustConfig::default(), Some(SITE), android());
        let (g, now) = fix(2.0, 6.4, 0.0);
        let v1 = a.on_sample(&g, now);
        let mut v2 = v1.clone();
        for t in 1..=3 {
            // The most favourable of the last three fixes decides, so it takes three.
            let (g, now) = fix(40.0, 7.1, f64::from(t));
            v2 = a.on_sample(&g, now);
        }
        assert_ne!(v1, v2, "on_site distance changed");
        assert!(v1.same_outcome(&v2));
        let (g, now) = fix(90_000.0, 7.1, 4.0);
        assert!(!v2.same_outcome(&a.on_sample(&g, now)));
    }

    #[test]
    fn verdicts_recorded_with_sentences_still_read_back_as_stored() {
        // A verdict payload as the log held it before signals became codes.
        let old = r#"{"level":"suspicious","signals":[{"name":"far_from_site","value":{"distance_m":5000.0,"accuracy_m":1.0,"radius_m":300.0},"severity":"suspicious","explanation_ru":"Местоположение в 5000 м от объекта проверки.","explanation_en":"The position is 5000 m from the inspection site."}]}"#;
        let v: Verdict = serde_json::from_str(old).expect("the old shape decodes");
        assert_eq!(v.level, TrustLevel::Suspicious);
        assert_eq!(v.signals[0].name, "far_from_site");
        assert_eq!(
            v.signals[0].explanation_en.as_deref(),
            Some("The position is 5000 m from the inspection site.")
        );
        // Re-serialized (a snapshot) it keeps what it said; nothing is lost or invented.
        let again: serde_json::Value = serde_json::to_value(&v).expect("serialize");
        let original: serde_json::Value = serde_json::from_str(old).expect("json");
        assert_eq!(again, original);
        // A new signal carries no words at all.
        let new = Signal::new("on_site", json!({"distance_m": 3.0}), Severity::Info);
        assert_eq!(
            serde_json::to_value(&new).expect("serialize"),
            json!({"name": "on_site", "value": {"distance_m": 3.0}, "severity": "info"})
        );
    }

    #[test]
    fn every_signal_is_a_documented_code_without_words() {
        let mut seen = std::collections::BTreeSet::new();
        let clients = [
            android(),
            ClientContext {
                user_agent: Some("Mozilla/5.0 HeadlessChrome/142".into()),
                platform: Some("Win32".into()),
                hints: vec!["emulator_gpu".into(), "webgl_ok".into()],
                timezone: Some("Asia/Vladivostok".into()),
                ..android()
            },
            ClientContext {
                timezone: None,
                user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
                ..android()
            },
        ];
        for client in clients {
            let mut a = Assessor::new(TrustConfig::default(), Some(SITE), client);
            let mut verdicts = vec![a.verdict()];
            for i in 0..40 {
                let (g, now) = fix(f64::from(i % 2) * 90_000.0, 10.0, f64::from(i) * 5.0);
                verdicts.push(a.on_sample(&g, now));
            }
            verdicts.push(a.on_no_fix(NoFix::Timeout, T0 + 900_000_000));
            for v in verdicts {
                for s in v.signals {
                    assert!(SIGNAL_NAMES.contains(&s.name.as_str()), "{s:?}");
                    assert!(s.explanation_ru.is_none() && s.explanation_en.is_none());
                    seen.insert(s.name);
                }
            }
        }
        assert!(
            seen.len() >= 10,
            "the cases above reach most codes: {seen:?}"
        );
    }

    #[test]
    fn memory_is_bounded() {
        let mut a = Assessor::new(TrustConfig::default(), Some(SITE), android());
        for i in 0..10_000 {
            let (g, now) = fix(
                (f64::from(i) * 0.1).sin() * 4.0,
                7.0 + f64::from(i % 7) * 0.13,
                f64::from(i),
            );
            a.on_sample(&g, now);
        }
        assert_eq!(a.recent.len(), TrustConfig::default().window);
    }
}
