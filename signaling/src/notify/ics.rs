//! The notice's iCalendar event (RFC 5545, iTIP METHOD), written with the `icalendar` crate.
//!
//! One UID per inspection (`<id>@inspector`), so every calendar files the reschedules and
//! the cancellation under the event it already has: SEQUENCE is the schedule's revision and
//! rises with each reschedule; a cancellation is METHOD:CANCEL with STATUS:CANCELLED and a
//! SEQUENCE above the last notice's. DTSTART/DTEND are local times of the site's zone
//! (`TZID=<IANA name>`), defined by a VTIMEZONE in the same calendar (`vtimezone`: the zone's
//! offsets around the event, from the tz database), so every client shows the inspection at
//! the site's time and converts it right; `X-WR-TIMEZONE` names the zone too.

use chrono::{DateTime, Offset, TimeZone, Utc};
use chrono_tz::{OffsetComponents, OffsetName};
use icalendar::{Calendar, CalendarDateTime, Component, EventLike, EventStatus, Property};

/// How far around the event the VTIMEZONE lists the zone's offset changes.
const ZONE_WINDOW_DAYS: i64 = 400;
/// The step at which offset changes are looked for (every change in the tz database falls on
/// a quarter hour).
const ZONE_STEP_MINUTES: i64 = 15;

/// What the event says.
#[derive(Debug, Clone)]
pub struct EventInfo<'a> {
    /// The inspection's id (the UID's local part).
    pub inspection_id: uuid::Uuid,
    /// The schedule's revision (0 first).
    pub seq: i64,
    /// Whether this is the cancellation.
    pub cancelled: bool,
    /// Planned start.
    pub start: DateTime<Utc>,
    /// Planned length, minutes.
    pub minutes: i64,
    /// SUMMARY.
    pub summary: &'a str,
    /// DESCRIPTION.
    pub description: &'a str,
    /// LOCATION (the site's address).
    pub location: &'a str,
    /// URL (the join link).
    pub url: &'a str,
    /// The inspection's IANA zone.
    pub time_zone: chrono_tz::Tz,
    /// The sender's address (ORGANIZER).
    pub organizer: &'a str,
    /// The recipient's address (ATTENDEE).
    pub attendee: &'a str,
    /// DTSTAMP.
    pub now: DateTime<Utc>,
}

/// The UID of an inspection's event.
pub fn uid(inspection_id: uuid::Uuid) -> String {
    format!("{inspection_id}@inspector")
}

/// The `.ics` text of the event.
pub fn event(info: &EventInfo<'_>) -> String {
    // A cancellation outranks every notice of the same schedule revision.
    let sequence = u32::try_from(info.seq + i64::from(info.cancelled)).unwrap_or(u32::MAX);
    let mut ev = icalendar::Event::new();
    ev.uid(&uid(info.inspection_id))
        .sequence(sequence)
        .timestamp(info.now)
        .starts(local(info.time_zone, info.start))
        .ends(local(
            info.time_zone,
            info.start + chrono::Duration::minutes(info.minutes.max(1)),
        ))
        .summary(info.summary)
        .description(info.description)
        .location(info.location)
        .url(info.url)
        .status(if info.cancelled {
            EventStatus::Cancelled
        } else {
            EventStatus::Confirmed
        })
        .append_property(Property::new(
            "ORGANIZER",
            format!("mailto:{}", info.organizer),
        ))
        .append_multi_property(
            Property::new("ATTENDEE", format!("mailto:{}", info.attendee))
                .add_parameter("ROLE", "REQ-PARTICIPANT")
                .done(),
        );
    let mut cal = Calendar::new();
    cal.append_property(Property::new(
        "METHOD",
        if info.cancelled { "CANCEL" } else { "REQUEST" },
    ))
    .timezone(info.time_zone)
    .push(ev.done());
    // The crate writes no VTIMEZONE: it goes before the event that refers to it.
    let zone = vtimezone(info.time_zone, info.start);
    cal.done()
        .to_string()
        .replacen("BEGIN:VEVENT\r\n", &format!("{zone}BEGIN:VEVENT\r\n"), 1)
}

/// `t` as a local time of `tz`, referring to its VTIMEZONE.
fn local(tz: chrono_tz::Tz, t: DateTime<Utc>) -> CalendarDateTime {
    CalendarDateTime::WithTimezone {
        date_time: t.with_timezone(&tz).naive_local(),
        tzid: tz.name().into(),
    }
}

fn utc_offset(tz: chrono_tz::Tz, t: DateTime<Utc>) -> (i32, bool, String) {
    let o = tz.offset_from_utc_datetime(&t.naive_utc());
    let daylight = o.dst_offset() != chrono::Duration::zero();
    (
        o.fix().local_minus_utc(),
        daylight,
        o.abbreviation().unwrap_or_default().to_string(),
    )
}

fn offset_text(secs: i32) -> String {
    let sign = if secs < 0 { '-' } else { '+' };
    let m = secs.unsigned_abs() / 60;
    format!("{sign}{:02}{:02}", m / 60, m % 60)
}

/// The VTIMEZONE of `tz` for an event at `at` (RFC 5545 3.6.5): the observance in effect
/// [`ZONE_WINDOW_DAYS`] before it, then one observance per offset change up to as long after
/// it, each with its onset (`DTSTART`, local time before the change) and offsets.
pub fn vtimezone(tz: chrono_tz::Tz, at: DateTime<Utc>) -> String {
    let start = at - chrono::Duration::days(ZONE_WINDOW_DAYS);
    let end = at + chrono::Duration::days(ZONE_WINDOW_DAYS);
    let step = chrono::Duration::minutes(ZONE_STEP_MINUTES);
    let observance =
        |out: &mut String, onset: DateTime<Utc>, from: i32, to: (i32, bool, String)| {
            let kind = if to.1 { "DAYLIGHT" } else { "STANDARD" };
            let local = (onset.naive_utc() + chrono::Duration::seconds(i64::from(from)))
                .format("%Y%m%dT%H%M%S");
            out.push_str(&format!(
                "BEGIN:{kind}\r\nDTSTART:{local}\r\nTZOFFSETFROM:{}\r\nTZOFFSETTO:{}\r\n",
                offset_text(from),
                offset_text(to.0)
            ));
            if !to.2.is_empty() && !to.2.starts_with(['+', '-']) {
                out.push_str(&format!("TZNAME:{}\r\n", to.2));
            }
            out.push_str(&format!("END:{kind}\r\n"));
        };
    let mut out = format!("BEGIN:VTIMEZONE\r\nTZID:{}\r\n", tz.name());
    let first = utc_offset(tz, start);
    let mut prev = first.0;
    observance(&mut out, start, first.0, first);
    let mut t = start + step;
    while t <= end {
        let now = utc_offset(tz, t);
        if now.0 != prev {
            observance(&mut out, t, prev, now.clone());
            prev = now.0;
        }
        t += step;
    }
    out.push_str("END:VTIMEZONE\r\n");
    out
}

/// The iTIP method of the event, for the MIME type's `method` parameter.
pub fn method(cancelled: bool) -> &'static str {
    if cancelled {
        "CANCEL"
    } else {
        "REQUEST"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zone_with_daylight_time_lists_each_change_around_the_event() {
        let at = DateTime::parse_from_rfc3339("2026-07-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let z = vtimezone(chrono_tz::Europe::Berlin, at);
        // 400 days each way (2025-05-27 to 2027-08-05): summer time at the window's start,
        // then autumn 2025, spring 2026, autumn 2026, spring 2027.
        assert_eq!(z.matches("BEGIN:DAYLIGHT").count(), 3, "{z}");
        assert_eq!(z.matches("BEGIN:STANDARD").count(), 2, "{z}");
        assert!(
            z.contains("DTSTART:20260329T020000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200"),
            "{z}"
        );
        assert!(
            z.contains("DTSTART:20261025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100"),
            "{z}"
        );
        let moscow = vtimezone(chrono_tz::Europe::Moscow, at);
        assert_eq!(moscow.matches("BEGIN:STANDARD").count(), 1, "{moscow}");
    }

    fn info(seq: i64, cancelled: bool) -> EventInfo<'static> {
        EventInfo {
            inspection_id: uuid::Uuid::from_u128(7),
            seq,
            cancelled,
            start: DateTime::parse_from_rfc3339("2026-12-10T07:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            minutes: 60,
            summary: "Проверка; склад, №1",
            description: "Строка 1\nСтрока 2",
            location: "Москва, ул. Ленина, 1",
            url: "http://127.0.0.1/b/#t=abc",
            time_zone: chrono_tz::Europe::Moscow,
            organizer: "noreply@inspector.test",
            attendee: "shop@example.test",
            now: DateTime::parse_from_rfc3339("2026-12-01T07:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
        }
    }

    #[test]
    fn the_event_parses_back_with_its_uid_sequence_and_zoned_start() {
        let text = event(&info(2, false));
        let cal: Calendar = text.parse().expect("parses");
        assert_eq!(cal.property_value("METHOD"), Some("REQUEST"));
        assert_eq!(cal.get_timezone(), Some("Europe/Moscow"));
        let ev = cal
            .components
            .iter()
            .find_map(|c| c.as_event())
            .expect("an event");
        assert_eq!(
            ev.get_uid(),
            Some("00000000-0000-0000-0000-000000000007@inspector")
        );
        assert_eq!(ev.get_sequence(), Some(2));
        assert_eq!(ev.get_summary(), Some("Проверка; склад, №1"));
        assert_eq!(ev.get_description(), Some("Строка 1\nСтрока 2"));
        // 07:00 UTC is 10:00 in Moscow (UTC+3 all year): local time, with its zone defined.
        assert_eq!(ev.property_value("DTSTART"), Some("20261210T100000"));
        assert_eq!(
            ev.properties()["DTSTART"].params()["TZID"].value(),
            "Europe/Moscow"
        );
        assert!(text.contains("BEGIN:VTIMEZONE\r\nTZID:Europe/Moscow\r\n"));
        assert!(text.contains("TZOFFSETTO:+0300\r\n"));
        let cancel: Calendar = event(&info(2, true)).parse().expect("parses");
        assert_eq!(cancel.property_value("METHOD"), Some("CANCEL"));
        let ev = cancel
            .components
            .iter()
            .find_map(|c| c.as_event())
            .expect("an event");
        assert_eq!(ev.get_sequence(), Some(3));
        assert_eq!(ev.get_status(), Some(EventStatus::Cancelled));
    }
}
