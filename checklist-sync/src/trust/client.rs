//! Signals that come from what the browser says about itself, not from positions. They are
//! computed once per connection, since a browser does not change its nature mid-call.

use serde_json::json;

use super::{ClientContext, Severity, Signal};

/// Client hints (reported by the business page in `ClientContext::hints`) that point to an
/// emulator. The page derives them from WebGL's renderer string and touch support.
pub const EMULATOR_HINTS: &[&str] = &["emulator", "emulator_gpu", "software_renderer", "no_touch"];

/// Client hints that point to a browser driven by a program (a page can see some traces of
/// the DevTools protocol and of headless mode).
pub const AUTOMATION_HINTS: &[&str] = &["headless", "cdp_detected"];

/// Substrings of a user agent that only emulators and SDK images carry. Chrome's reduced user
/// agent hides the model on real phones, so these only catch older or unreduced browsers.
const EMULATOR_UA: &[&str] = &[
    "sdk_gphone",
    "Android SDK built for",
    "google_sdk",
    "generic_x86",
    "vbox86",
    "Genymotion",
    "Emulator",
];

/// Which mobile operating system a user agent claims, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MobileOs {
    Android,
    Ios,
}

pub(crate) fn mobile_os(user_agent: Option<&str>) -> Option<MobileOs> {
    let ua = user_agent?;
    if ua.contains("Android") {
        Some(MobileOs::Android)
    } else if ua.contains("iPhone") || ua.contains("iPad") || ua.contains("iPod") {
        Some(MobileOs::Ios)
    } else {
        None
    }
}

/// Signals derived from the client context alone.
pub(crate) fn client_signals(client: &ClientContext) -> Vec<Signal> {
    let mut out = Vec::new();
    let ua = client.user_agent.as_deref();
    let platform = client.platform.as_deref().map(str::trim).unwrap_or("");
    let hints: Vec<&str> = client.hints.iter().map(|h| h.trim()).collect();

    let mut automation: Vec<String> = Vec::new();
    if client.webdriver == Some(true) {
        automation.push("navigator.webdriver".to_owned());
    }
    if ua.is_some_and(|u| u.contains("HeadlessChrome")) {
        automation.push("HeadlessChrome".to_owned());
    }
    for h in hints.iter().filter(|h| AUTOMATION_HINTS.contains(*h)) {
        automation.push((*h).to_owned());
    }
    if !automation.is_empty() {
        out.push(Signal::new(
            "automation",
            json!(automation),
            Severity::Spoofed,
        ));
    }

    let os = mobile_os(ua);
    // Each trace as {source, value}: where it was seen (user_agent, hint, platform) and what.
    let mut emulator: Vec<serde_json::Value> = Vec::new();
    if let Some(u) = ua {
        for needle in EMULATOR_UA.iter().filter(|n| u.contains(**n)) {
            emulator.push(json!({ "source": "user_agent", "value": needle }));
        }
    }
    for h in hints.iter().filter(|h| EMULATOR_HINTS.contains(*h)) {
        emulator.push(json!({ "source": "hint", "value": h }));
    }
    // Practically every Android phone sold in years is ARM; an x86 Android is an emulator.
    let x86 = platform.contains("x86") || platform.contains("i686");
    if os == Some(MobileOs::Android) && x86 {
        emulator.push(json!({ "source": "platform", "value": platform }));
    }
    if !emulator.is_empty() {
        out.push(Signal::new(
            "emulator",
            json!(emulator),
            Severity::Suspicious,
        ));
    }

    // A phone user agent on a desktop platform is what desktop DevTools device emulation
    // produces, and DevTools can also override the position. (An iPad in desktop mode sends a
    // Mac user agent too, so it never gets here.)
    let mismatch = match os {
        Some(MobileOs::Ios) => {
            !platform.is_empty()
                && !["iPhone", "iPad", "iPod"]
                    .iter()
                    .any(|p| platform.starts_with(p))
        }
        Some(MobileOs::Android) => platform.starts_with("Win") || platform.starts_with("Mac"),
        None => false,
    };
    if mismatch {
        let ua_os = match os {
            Some(MobileOs::Ios) => "iOS",
            _ => "Android",
        };
        out.push(Signal::new(
            "platform_mismatch",
            json!({ "user_agent_os": ua_os, "platform": platform }),
            Severity::Suspicious,
        ));
    }

    if ua.is_some() && os.is_none() {
        // A desktop browser's position comes from Wi-Fi or the IP address.
        out.push(Signal::new(
            "desktop_browser",
            json!(platform),
            Severity::Info,
        ));
    }

    let unknown: Vec<&str> = hints
        .iter()
        .copied()
        .filter(|h| !h.is_empty() && !EMULATOR_HINTS.contains(h) && !AUTOMATION_HINTS.contains(h))
        .collect();
    if !unknown.is_empty() {
        out.push(Signal::new("client_hint", json!(unknown), Severity::Info));
    }
    out
}
