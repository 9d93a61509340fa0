//! Offline time-zone facts: which IANA zone covers a point, and a zone's UTC offset at an
//! instant. Both come from data compiled into the binary (tzf-rs polygons, chrono-tz rules),
//! so no lookup ever touches the network.

use std::sync::OnceLock;

use chrono::{DateTime, Offset, TimeZone};

static FINDER: OnceLock<tzf_rs::EmbeddedFinder> = OnceLock::new();

fn finder() -> &'static tzf_rs::EmbeddedFinder {
    FINDER.get_or_init(tzf_rs::EmbeddedFinder::new)
}

/// Loads and validates the embedded zone polygons now instead of on the first sample.
pub fn warm_up() {
    let _ = finder();
}

/// IANA name of the time zone that covers `(lat, lon)`, or `None` where the data has no zone.
pub fn zone_at(lat: f64, lon: f64) -> Option<&'static str> {
    if !lat.is_finite() || !lon.is_finite() {
        return None;
    }
    let name = finder().get_tz_name(lon, lat);
    (!name.is_empty()).then_some(name)
}

/// UTC offset of the IANA zone `zone` at `at_micros` (microseconds since the Unix epoch), in
/// minutes east of UTC; `None` for a name the rules do not know.
pub fn utc_offset_minutes(zone: &str, at_micros: i64) -> Option<i32> {
    let tz: chrono_tz::Tz = zone.trim().parse().ok()?;
    let at = DateTime::from_timestamp_micros(at_micros)?;
    let offset = tz.offset_from_utc_datetime(&at.naive_utc()).fix();
    Some(offset.local_minus_utc() / 60)
}

/// Formats an offset in minutes as `+03:00` for explanations.
pub fn format_offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.unsigned_abs();
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOV_2026_US: i64 = 1_795_000_000_000_000;

    #[test]
    fn finds_russian_zones_offline() {
        assert_eq!(zone_at(55.7539, 37.6208), Some("Europe/Moscow"));
        assert_eq!(zone_at(55.0302, 82.9204), Some("Asia/Novosibirsk"));
        assert_eq!(zone_at(43.1155, 131.8855), Some("Asia/Vladivostok"));
        assert_eq!(zone_at(f64::NAN, 0.0), None);
    }

    #[test]
    fn offsets_follow_the_rules_at_the_instant() {
        assert_eq!(utc_offset_minutes("Europe/Moscow", NOV_2026_US), Some(180));
        assert_eq!(
            utc_offset_minutes("Asia/Vladivostok", NOV_2026_US),
            Some(600)
        );
        // Berlin is on winter time in November and summer time in July.
        assert_eq!(utc_offset_minutes("Europe/Berlin", NOV_2026_US), Some(60));
        let july_2026_us = 1_783_000_000_000_000;
        assert_eq!(utc_offset_minutes("Europe/Berlin", july_2026_us), Some(120));
        assert_eq!(utc_offset_minutes("Mars/Olympus_Mons", NOV_2026_US), None);
        assert_eq!(format_offset(180), "+03:00");
        assert_eq!(format_offset(-570), "-09:30");
    }
}
