//! The notice's iCalendar event (RFC 5545, iTIP METHOD), written with the `icalendar` crate.
//!
//! One UID per inspection (`<id>@inspector`), so every calendar files the reschedules and
//! the cancellation under the event it already has: SEQUENCE is the schedule's revision and
//! rises with each reschedule; a cancellation is METHOD:CANCEL with STATUS:CANCELLED and a
//! SEQUENCE above the last notice's. DTSTART/DTEND are UTC (unambiguous for every client);
//! the site's IANA zone rides along as the calendar's `X-WR-TIMEZONE`, which clients use to
//! show it in the zone the inspection is held in.

use chrono::{DateTime, Utc};
use icalendar::{Calendar, Component, EventLike, EventStatus, Property};

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
        .starts(info.start)
        .ends(info.start + chrono::Duration::minutes(info.minutes.max(1)))
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
    cal.done().to_string()
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
    fn the_event_parses_back_with_its_uid_sequence_and_utc_start() {
        let text = event(&info(2, false));
        let cal: Calendar = text.parse().expect("parses");
        assert_eq!(cal.property_value("METHOD"), Some("REQUEST"));
        assert_eq!(cal.get_timezone(), Some("Europe/Moscow"));
        let ev = cal.components[0].as_event().expect("an event");
        assert_eq!(
            ev.get_uid(),
            Some("00000000-0000-0000-0000-000000000007@inspector")
        );
        assert_eq!(ev.get_sequence(), Some(2));
        assert_eq!(ev.get_summary(), Some("Проверка; склад, №1"));
        assert_eq!(ev.get_description(), Some("Строка 1\nСтрока 2"));
        assert_eq!(ev.property_value("DTSTART"), Some("20261210T070000Z"));
        let cancel: Calendar = event(&info(2, true)).parse().expect("parses");
        assert_eq!(cancel.property_value("METHOD"), Some("CANCEL"));
        let ev = cancel.components[0].as_event().expect("an event");
        assert_eq!(ev.get_sequence(), Some(3));
        assert_eq!(ev.get_status(), Some(EventStatus::Cancelled));
    }
}
