//! Human file names for downloads: the inspection's date (in its time zone), the business
//! and what the file is, e.g. `2026-12-01 ООО «Ромашка» ИНН 7707083893 — запись.webm`, sent
//! as an RFC 6266 `Content-Disposition` with an ASCII fallback.

use crate::inspections::Inspection;

/// What a downloaded file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// The recording.
    Recording,
    /// The event log (JSON Lines).
    EventLog,
    /// The WebVTT chapters.
    Chapters,
    /// The act (PDF).
    Act,
    /// The official's detached signature of the act.
    OfficialSignature,
    /// The business's detached signature of the act.
    BusinessSignature,
    /// The evidence bundle (ZIP).
    Bundle,
}

impl FileKind {
    fn word(self, lang: &str) -> &'static str {
        match (self, lang) {
            (FileKind::Recording, "en") => "recording",
            (FileKind::EventLog, "en") => "event log",
            (FileKind::Chapters, "en") => "chapters",
            (FileKind::Act, "en") => "act",
            (FileKind::OfficialSignature, "en") => "act, official's signature",
            (FileKind::BusinessSignature, "en") => "act, business's signature",
            (FileKind::Bundle, "en") => "evidence bundle",
            (FileKind::Recording, _) => "запись",
            (FileKind::EventLog, _) => "журнал событий",
            (FileKind::Chapters, _) => "главы",
            (FileKind::Act, _) => "акт",
            (FileKind::OfficialSignature, _) => "акт, подпись должностного лица",
            (FileKind::BusinessSignature, _) => "акт, подпись контролируемого лица",
            (FileKind::Bundle, _) => "пакет доказательств",
        }
    }
}

/// The language a download's name is in: `en` when the query says `lang=en`, else Russian.
pub fn lang_of(query: Option<&str>) -> &'static str {
    let en = query
        .unwrap_or_default()
        .split('&')
        .any(|kv| kv == "lang=en");
    if en {
        "en"
    } else {
        "ru"
    }
}

/// Whether the query asks for an attachment (`download=1`) rather than inline.
pub fn wants_attachment(query: Option<&str>) -> bool {
    query
        .unwrap_or_default()
        .split('&')
        .any(|kv| kv == "download=1")
}

/// The file name: date, business, INN, kind, extension; no character a file system refuses.
pub fn file_name(insp: &Inspection, kind: FileKind, ext: &str, lang: &str) -> String {
    let at = insp.started_at.unwrap_or(insp.scheduled_at);
    let offset_min =
        checklist_sync::trust::tz::utc_offset_minutes(&insp.time_zone, at.timestamp_micros())
            .unwrap_or(0);
    let local = chrono::FixedOffset::east_opt(offset_min * 60)
        .map(|o| at.with_timezone(&o).format("%Y-%m-%d").to_string())
        .unwrap_or_else(|| at.format("%Y-%m-%d").to_string());
    let inn = if lang == "en" { "INN" } else { "ИНН" };
    let name = format!(
        "{local} {} {inn} {} — {}.{ext}",
        insp.business.name.trim(),
        insp.business.inn.as_str(),
        kind.word(lang)
    );
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_control() || "/\\:*?\"<>|".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    // Long business names are cut, the date and kind stay.
    if clean.chars().count() > 150 {
        let head: String = clean.chars().take(120).collect();
        format!("{head}… — {}.{ext}", kind.word(lang))
    } else {
        clean
    }
}

/// `Content-Disposition` for a file name: `filename*` in UTF-8 and an ASCII fallback.
pub fn disposition(attachment: bool, name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                if c == '"' || c == '\\' {
                    '_'
                } else {
                    c
                }
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::new();
    for b in name.as_bytes() {
        let c = *b as char;
        if c.is_ascii_alphanumeric() || "!#$&+-.^_`|~".contains(c) {
            encoded.push(c);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!(
        "{}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}",
        if attachment { "attachment" } else { "inline" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_has_both_forms() {
        let d = disposition(true, "2026-12-01 ООО «Ромашка» — запись.webm");
        assert!(d.starts_with("attachment; filename=\"2026-12-01 ___ "));
        assert!(d.contains(".webm\"; filename*="));
        assert!(d.contains("filename*=UTF-8''2026-12-01%20%D0%9E%D0%9E%D0%9E"));
        assert!(disposition(false, "a\"b").starts_with("inline; filename=\"a_b\""));
    }

    fn inspection(zone: &str, at: &str) -> Inspection {
        use crate::domain::{Inn, Kind, Mode, Status};
        use crate::inspections::{Business, UserRef};
        let at: chrono::DateTime<chrono::Utc> = at.parse().expect("time");
        Inspection {
            id: uuid::Uuid::nil(),
            kind: Kind::Control,
            mode: Mode::Remote,
            title: "t".into(),
            status: Status::Finished,
            scheduled_at: at,
            started_at: Some(at),
            finished_at: None,
            inspector: UserRef {
                id: uuid::Uuid::nil(),
                display_name: "i".into(),
            },
            template: None,
            business: Business {
                name: " ООО «Ромашка/Лютик» ".into(),
                inn: Inn::parse("7707083893").expect("inn"),
                address: String::new(),
                lat: None,
                lon: None,
            },
            time_zone: zone.into(),
            language: "ru".into(),
            erknm_number: None,
            external_id: None,
            inspector_control_body: None,
            items: None,
        }
    }

    #[test]
    fn names_carry_the_local_date_business_and_kind() {
        // 22:30 UTC is already the next day in Moscow.
        let i = inspection("Europe/Moscow", "2026-11-30T22:30:00Z");
        assert_eq!(
            file_name(&i, FileKind::Recording, "webm", "ru"),
            "2026-12-01 ООО «Ромашка_Лютик» ИНН 7707083893 — запись.webm"
        );
        assert_eq!(
            file_name(&i, FileKind::EventLog, "jsonl", "en"),
            "2026-12-01 ООО «Ромашка_Лютик» INN 7707083893 — event log.jsonl"
        );
        let utc = inspection("UTC", "2026-11-30T22:30:00Z");
        assert!(file_name(&utc, FileKind::Chapters, "vtt", "ru").starts_with("2026-11-30 "));
    }

    #[test]
    fn query_flags() {
        assert_eq!(lang_of(Some("download=1&lang=en")), "en");
        assert_eq!(lang_of(None), "ru");
        assert!(wants_attachment(Some("lang=ru&download=1")));
        assert!(!wants_attachment(Some("download=0")));
    }
}
