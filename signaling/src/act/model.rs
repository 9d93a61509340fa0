//! The act as plain data: built by a pure function from what the server knows about a
//! finished inspection (its row, checklist, the folded event log up to a head, the recording
//! manifest). The renderer lays it out; nothing here is markup.

use checklist_sync::state::{EvidenceEntry, ParticipantState};
use checklist_sync::trust::Signal;
use checklist_sync::{ItemResult, Role, State};
use chrono::{DateTime, Datelike, Offset, TimeZone, Timelike, Utc};
use serde::Serialize;

use crate::domain::{Kind, Mode};
use crate::inspections::Inspection;

/// What the act is built from.
pub struct ActInputs<'a> {
    /// The inspection with its checklist items.
    pub inspection: &'a Inspection,
    /// The state folded from the log up to `head_seq`.
    pub state: &'a State,
    /// Last event included.
    pub head_seq: u64,
    /// Its hash.
    pub head_hash: &'a str,
    /// The finalized recording, when there is one.
    pub recording: Option<&'a media_recorder::Manifest>,
    /// The control body's name (configuration).
    pub control_body: &'a str,
    /// The inspection's verification page (QR code).
    pub verify_url: String,
    /// The business's rating page (a second QR code; it opens with the business's durable
    /// results access in that browser).
    pub rate_url: String,
    /// `ru` or `en`.
    pub language: &'a str,
    /// SHA-256s of the photos and stills whose bytes go into the act as pictures (the
    /// renderer gets them as [`image_path`]s).
    pub images: &'a std::collections::BTreeSet<String>,
    /// The inspector's movement track up to the head, summarized (on-site inspections).
    pub track: Option<&'a crate::onsite::TrackSummary>,
}

/// Where the picture of the evidence with this SHA-256 and type lives inside the render
/// world.
pub fn image_path(sha256: &str, media_type: Option<&str>) -> String {
    let ext = if media_type == Some("image/png") {
        "png"
    } else {
        "jpg"
    };
    format!("img/{sha256}.{ext}")
}

/// Whether a piece of evidence is shown as a picture in the act: a photo or a still, stored
/// by the server (hash and size known) as JPEG or PNG.
pub fn is_picture(e: &checklist_sync::proto::Evidence) -> bool {
    use checklist_sync::proto::EvidenceKind;
    matches!(e.kind, EvidenceKind::Photo | EvidenceKind::Still)
        && e.sha256.is_some()
        && e.size.is_some()
        && matches!(e.media_type.as_deref(), Some("image/jpeg" | "image/png"))
}

/// The act's data, as the template reads it (`act.json`).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Act {
    /// `ru` or `en`.
    pub lang: String,
    /// Inspection id.
    pub inspection_id: String,
    /// Title of the event.
    pub title: String,
    /// `control` or `preventive`.
    pub kind: &'static str,
    /// `remote` or `on_site`.
    pub mode: &'static str,
    /// The control body.
    pub control_body: String,
    /// The checklist template.
    pub template: Option<ActTemplate>,
    /// When the act was drawn up (the end of the event), formatted.
    pub drawn_up_at: String,
    /// The same moment as numbers, for the PDF's metadata.
    pub date: ActDate,
    /// Time zone the times are given in.
    pub timezone: String,
    /// Start, formatted.
    pub started_at: String,
    /// End, formatted.
    pub finished_at: String,
    /// Duration `H:MM:SS`.
    pub duration: String,
    /// The official.
    pub inspector: String,
    /// The controlled person.
    pub business: ActBusiness,
    /// Its representative (the business participant's name), if one joined.
    pub representative: Option<String>,
    /// Everybody who joined.
    pub participants: Vec<ActParticipant>,
    /// Every checklist item, in order.
    pub items: Vec<ActItem>,
    /// Counts per result.
    pub counts: ActCounts,
    /// The violations found.
    pub violations: Vec<ActViolation>,
    /// Evidence references.
    pub evidence: Vec<ActEvidence>,
    /// Free-form findings (on-site inspections), in log order.
    pub findings: Vec<ActFinding>,
    /// The movement track's summary, when the log has positions of the inspector.
    pub track: Option<ActTrack>,
    /// The recording.
    pub recording: Option<ActRecording>,
    /// The log the act was formed from.
    pub log: ActLog,
    /// The verification page.
    pub verify_url: String,
    /// The rating page.
    pub rate_url: String,
}

/// Template reference.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActTemplate {
    /// Title.
    pub title: String,
    /// Version.
    pub version: i64,
    /// Normative acts.
    pub legal_basis: String,
}

/// A moment as numbers.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct ActDate {
    /// Year.
    pub year: i32,
    /// Month.
    pub month: u32,
    /// Day.
    pub day: u32,
    /// Hour.
    pub hour: u32,
    /// Minute.
    pub minute: u32,
    /// Second.
    pub second: u32,
    /// The zone's offset from UTC at that moment, minutes.
    pub offset_minutes: i32,
}

/// The controlled person.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActBusiness {
    /// Name.
    pub name: String,
    /// INN.
    pub inn: String,
    /// Address.
    pub address: String,
    /// `lat, lon`, when registered.
    pub coords: Option<String>,
}

/// A participant.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActParticipant {
    /// `inspector`, `business`, `observer`.
    pub role: &'static str,
    /// Name.
    pub name: String,
    /// First join, formatted.
    pub joined: String,
    /// Last leave, formatted (`—` when none).
    pub left: String,
    /// Last position `lat, lon ±acc m`.
    pub location: Option<String>,
    /// `trusted`, `suspicious`, `spoofed`.
    pub verdict: Option<String>,
    /// Deciding signals, explained in the act's language.
    pub signals: Vec<String>,
}

/// One checklist item.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActItem {
    /// Shown number.
    pub number: String,
    /// The question.
    pub question: String,
    /// The legal reference.
    pub requirement: String,
    /// `compliant`, `violation`, `not_applicable`, `unanswered`.
    pub result: &'static str,
    /// Inspector's comment.
    pub comment: Option<String>,
    /// Violation description.
    pub violation: Option<String>,
    /// Time of the result in the recording `H:MM:SS`.
    pub timecode: Option<String>,
}

/// Counts per result.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct ActCounts {
    /// Compliant.
    pub compliant: usize,
    /// Violations.
    pub violation: usize,
    /// Not applicable.
    pub not_applicable: usize,
    /// Unanswered.
    pub unanswered: usize,
}

/// A violation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActViolation {
    /// Item number.
    pub number: String,
    /// The question.
    pub question: String,
    /// The legal reference.
    pub requirement: String,
    /// What was found.
    pub text: String,
}

/// An evidence reference.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActEvidence {
    /// Item number.
    pub item: String,
    /// `photo`, `video`, …
    pub kind: String,
    /// Caption.
    pub caption: Option<String>,
    /// Moment shown (timecode in the recording, or the time).
    pub time: String,
    /// SHA-256 of the content (`—` when unknown).
    pub sha256: String,
    /// Path of a thumbnail inside the render world (`img/N`), when one is available.
    pub image: Option<String>,
    /// Where the device was when it took it, `lat, lon ±m` (a claim of the device).
    pub location: Option<String>,
    /// A video's file name as the server serves it (the act shows no frame of it).
    pub name: Option<String>,
    /// A video's length as the server's ffprobe found it, `H:MM:SS`.
    pub duration: Option<String>,
}

/// A free-form finding.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActFinding {
    /// When it was logged (the server's time, in the inspection's zone).
    pub time: String,
    /// What was found.
    pub text: String,
    /// Where the device was, `lat, lon ±m`.
    pub location: Option<String>,
}

/// The movement track's summary.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActTrack {
    /// Number of positions.
    pub points: usize,
    /// Length of the route, metres.
    pub length_m: String,
    /// First and last fix (device times, in the inspection's zone).
    pub from: String,
    /// Last fix.
    pub to: String,
    /// Nearest and farthest a fix was from the site, metres (`—` without a site).
    pub site_min_m: String,
    /// Farthest.
    pub site_max_m: String,
}

/// The recording.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActRecording {
    /// File name.
    pub file: String,
    /// MIME type.
    pub mime: String,
    /// `H:MM:SS`.
    pub duration: String,
    /// SHA-256.
    pub sha256: String,
    /// Bytes.
    pub size: u64,
}

/// The log the act was formed from.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ActLog {
    /// Number of events (= the head's seq).
    pub events: u64,
    /// Hash of the head.
    pub head_hash: String,
}

/// Times in the act are given in the inspection's own time zone (the site's, see
/// `inspections::Inspection::time_zone`), named with its UTC offset.
fn zone_of(insp: &Inspection) -> chrono_tz::Tz {
    insp.time_zone.parse().unwrap_or(chrono_tz::UTC)
}

fn at(zone: chrono_tz::Tz, micros: i64) -> DateTime<chrono_tz::Tz> {
    zone.from_utc_datetime(
        &DateTime::<Utc>::from_timestamp_micros(micros)
            .unwrap_or_default()
            .naive_utc(),
    )
}

fn format_time(zone: chrono_tz::Tz, micros: Option<i64>) -> String {
    match micros {
        Some(m) => at(zone, m).format("%d.%m.%Y %H:%M:%S").to_string(),
        None => "—".into(),
    }
}

fn hms(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

fn result_code(r: Option<ItemResult>) -> &'static str {
    match r {
        Some(ItemResult::Compliant) => "compliant",
        Some(ItemResult::Violation) => "violation",
        Some(ItemResult::NotApplicable) => "not_applicable",
        Some(ItemResult::Clear) | None => "unanswered",
    }
}

fn role_code(r: Option<Role>) -> &'static str {
    match r {
        Some(Role::Inspector) => "inspector",
        Some(Role::Business) => "business",
        Some(Role::Observer) | None => "observer",
    }
}

/// A location-trust signal in words: the log stores codes with parameters
/// (docs/geolocation.md); the act names each deciding one with its main figure. Events from
/// before signals became codes keep their stored sentence.
fn signal_words(s: &Signal, lang: &str) -> String {
    let en = lang == "en";
    let legacy = if en {
        &s.explanation_en
    } else {
        &s.explanation_ru
    };
    if let Some(text) = legacy {
        return text.clone();
    }
    let num = |k: &str| s.value.get(k).and_then(serde_json::Value::as_f64);
    let m = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "?".into());
    let (ru, en_words) = match s.name.as_str() {
        "no_fix" => (
            "местоположение не получено".to_string(),
            "no position".to_string(),
        ),
        "impossible_speed" => (
            format!(
                "невозможная скорость перемещения: {} м за {} с",
                m(num("distance_m")),
                m(num("seconds"))
            ),
            format!(
                "impossible speed: {} m in {} s",
                m(num("distance_m")),
                m(num("seconds"))
            ),
        ),
        "frozen_position" => (
            format!("координаты застыли: {} замеров подряд", m(num("count"))),
            format!("frozen position: {} identical fixes", m(num("count"))),
        ),
        "accuracy_too_good" => (
            format!("неправдоподобная точность {} м", m(s.value.as_f64())),
            format!("implausible accuracy {} m", m(s.value.as_f64())),
        ),
        "accuracy_constant" => (
            format!("постоянная точность {} м", m(num("accuracy_m"))),
            format!("constant accuracy {} m", m(num("accuracy_m"))),
        ),
        "coarse_fix" => (
            format!("грубое определение, точность {} м", m(s.value.as_f64())),
            format!("coarse fix, accuracy {} m", m(s.value.as_f64())),
        ),
        "clock_skew" => (
            format!(
                "часы устройства расходятся на {} с",
                m(num("median_skew_s"))
            ),
            format!("device clock off by {} s", m(num("median_skew_s"))),
        ),
        "timezone_unknown" => (
            "часовой пояс браузера неизвестен".into(),
            "unknown browser time zone".into(),
        ),
        "timezone_mismatch" => (
            "часовой пояс браузера не совпадает с поясом координат".into(),
            "browser time zone differs from the position's".into(),
        ),
        "far_from_site" => (
            format!("в {} м от объекта", m(num("distance_m"))),
            format!("{} m from the site", m(num("distance_m"))),
        ),
        "site_unconfirmed" => (
            format!(
                "нахождение на объекте не подтверждено (точность {} м)",
                m(num("accuracy_m"))
            ),
            format!(
                "presence on site unconfirmed (accuracy {} m)",
                m(num("accuracy_m"))
            ),
        ),
        "on_site" => (
            format!("на объекте ({} м)", m(num("distance_m"))),
            format!("on site ({} m)", m(num("distance_m"))),
        ),
        "automation" => (
            "браузером управляет программа автоматизации".into(),
            "the browser is driven by automation".into(),
        ),
        "emulator" => (
            "признаки эмулятора телефона".into(),
            "signs of a phone emulator".into(),
        ),
        "platform_mismatch" => (
            "платформа не совпадает с заявленным устройством".into(),
            "platform does not match the claimed device".into(),
        ),
        "desktop_browser" => ("настольный браузер".into(), "desktop browser".into()),
        "client_hint" => (
            "дополнительные признаки браузера".into(),
            "extra browser hints".into(),
        ),
        other => (other.to_string(), other.to_string()),
    };
    if en {
        en_words
    } else {
        ru
    }
}

fn participant(p: &ParticipantState, lang: &str, zone: chrono_tz::Tz) -> ActParticipant {
    let location = p.location.as_ref().map(|l| {
        format!(
            "{:.6}, {:.6} ±{:.0} m",
            l.sample.lat, l.sample.lon, l.sample.accuracy
        )
    });
    let (verdict, signals) = match &p.verdict {
        Some(v) => (
            serde_json::to_value(v.level)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string)),
            v.deciding().map(|s| signal_words(s, lang)).collect(),
        ),
        None => (None, Vec::new()),
    };
    ActParticipant {
        role: role_code(p.role),
        name: p.display_name.clone(),
        joined: format_time(zone, p.joined_at),
        left: format_time(zone, p.left_at),
        location,
        verdict,
        signals,
    }
}

impl Act {
    /// Builds the act. Pure: the same inputs give the same act (and so the same PDF).
    pub fn build(i: &ActInputs<'_>) -> Act {
        let insp = i.inspection;
        let zone = zone_of(insp);
        let state = i.state;
        let lc = &state.lifecycle;
        let epoch = i.recording.map(|r| r.epoch_micros);
        let timecode = |ts: i64| epoch.map(|e| hms((ts - e) / 1000));
        let mut counts = ActCounts::default();
        let mut items = Vec::new();
        let mut violations = Vec::new();
        let mut evidence = Vec::new();
        for it in insp.items.iter().flatten() {
            let st = state.items.get(&it.id);
            let result = result_code(st.and_then(|s| s.result));
            match result {
                "compliant" => counts.compliant += 1,
                "violation" => counts.violation += 1,
                "not_applicable" => counts.not_applicable += 1,
                _ => counts.unanswered += 1,
            }
            let violation = st.and_then(|s| s.violation.clone());
            if result == "violation" {
                violations.push(ActViolation {
                    number: it.number.clone(),
                    question: it.question.clone(),
                    requirement: it.requirement.clone(),
                    text: violation
                        .clone()
                        .or_else(|| st.and_then(|s| s.comment.clone()))
                        .unwrap_or_else(|| "—".into()),
                });
            }
            for e in st.map(|s| s.evidence.as_slice()).unwrap_or_default() {
                evidence.push(evidence_row(&it.number, e, &timecode, i.images, zone));
            }
            items.push(ActItem {
                number: it.number.clone(),
                question: it.question.clone(),
                requirement: it.requirement.clone(),
                result,
                comment: st.and_then(|s| s.comment.clone()),
                violation,
                timecode: st.and_then(|s| s.result_ts).and_then(timecode),
            });
        }
        // A finding's photos and videos follow the items', labelled with the finding's number
        // in the act's list of findings (log order).
        let finding_label = if i.language == "en" {
            "Finding"
        } else {
            "Факт"
        };
        for (n, f) in state.findings.iter().enumerate() {
            let label = format!("{finding_label} {}", n + 1);
            for e in &f.evidence {
                evidence.push(evidence_row(&label, e, &timecode, i.images, zone));
            }
        }
        let mut participants: Vec<&ParticipantState> = state.participants.values().collect();
        // Officials first, then the business, then observers; within a role by first join.
        participants.sort_by_key(|p| (role_rank(p.role), p.joined_at, p.display_name.clone()));
        let representative = participants
            .iter()
            .find(|p| p.role == Some(Role::Business))
            .map(|p| p.display_name.clone());
        let finished = lc.finished_at.unwrap_or_default();
        let d = at(zone, finished);
        let offset = d.offset().fix().local_minus_utc() / 60;
        let utc = format!(
            "UTC{}{:02}:{:02}",
            if offset < 0 { '−' } else { '+' },
            offset.abs() / 60,
            offset.abs() % 60
        );
        let duration = match (lc.started_at, lc.finished_at) {
            (Some(s), Some(f)) => hms((f - s) / 1000),
            _ => "—".into(),
        };
        Act {
            lang: i.language.to_string(),
            inspection_id: insp.id.to_string(),
            title: insp.title.clone(),
            kind: match insp.kind {
                Kind::Control => "control",
                Kind::Preventive => "preventive",
            },
            mode: match insp.mode {
                Mode::Remote => "remote",
                Mode::OnSite => "on_site",
            },
            control_body: i.control_body.to_string(),
            template: insp.template.as_ref().map(|t| ActTemplate {
                title: t.title.clone(),
                version: t.version,
                legal_basis: t.legal_basis.clone(),
            }),
            drawn_up_at: format_time(zone, lc.finished_at),
            date: ActDate {
                year: d.year(),
                month: d.month(),
                day: d.day(),
                hour: d.hour(),
                minute: d.minute(),
                second: d.second(),
                offset_minutes: offset,
            },
            timezone: format!("{}, {utc}", insp.time_zone),
            started_at: format_time(zone, lc.started_at),
            finished_at: format_time(zone, lc.finished_at),
            duration,
            inspector: insp.inspector.display_name.clone(),
            business: ActBusiness {
                name: insp.business.name.clone(),
                inn: insp.business.inn.as_str().to_string(),
                address: insp.business.address.clone(),
                coords: insp.site().map(|c| format!("{:.6}, {:.6}", c.lat, c.lon)),
            },
            representative,
            participants: participants
                .into_iter()
                .map(|p| participant(p, i.language, zone))
                .collect(),
            items,
            counts,
            violations,
            evidence,
            findings: state
                .findings
                .iter()
                .map(|f| ActFinding {
                    time: format_time(zone, Some(f.ts)),
                    text: f.text.clone(),
                    location: f.location.as_ref().map(place),
                })
                .collect(),
            track: i.track.filter(|t| t.points > 0).map(|t| ActTrack {
                points: t.points,
                length_m: metres(Some(t.length_m)),
                from: format_time(zone, t.first_ts.map(|ms| ms * 1000)),
                to: format_time(zone, t.last_ts.map(|ms| ms * 1000)),
                site_min_m: metres(t.min_site_distance_m),
                site_max_m: metres(t.max_site_distance_m),
            }),
            recording: i.recording.map(|r| ActRecording {
                file: r.file.clone(),
                mime: r.mime.clone(),
                duration: hms(r.duration_ms),
                sha256: r.sha256.clone(),
                size: r.size_bytes,
            }),
            log: ActLog {
                events: i.head_seq,
                head_hash: i.head_hash.to_string(),
            },
            verify_url: i.verify_url.clone(),
            rate_url: i.rate_url.clone(),
        }
    }
}

fn role_rank(r: Option<Role>) -> u8 {
    match r {
        Some(Role::Inspector) => 0,
        Some(Role::Business) => 1,
        _ => 2,
    }
}

fn evidence_row(
    number: &str,
    e: &EvidenceEntry,
    timecode: &dyn Fn(i64) -> Option<String>,
    images: &std::collections::BTreeSet<String>,
    zone: chrono_tz::Tz,
) -> ActEvidence {
    let ev = &e.evidence;
    // The moment shown: a clip's or still's place in the recording as the server cut it, a
    // photo's receipt, or what a first-revision reference claimed.
    let moment = ev.at_micros.or(ev.media_ts).unwrap_or(e.ts);
    let time = match ev.media_ms {
        Some(ms) => hms(ms),
        None => timecode(moment).unwrap_or_else(|| format_time(zone, Some(moment))),
    };
    let image = ev
        .sha256
        .as_ref()
        .filter(|sha| is_picture(ev) && images.contains(*sha))
        .map(|sha| image_path(sha, ev.media_type.as_deref()));
    ActEvidence {
        item: number.to_string(),
        kind: serde_json::to_value(e.evidence.kind)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        caption: e.evidence.caption.clone(),
        time,
        sha256: e.evidence.sha256.clone().unwrap_or_else(|| "—".into()),
        image,
        location: ev.location.as_ref().map(place),
        name: (ev.kind == checklist_sync::proto::EvidenceKind::Video).then(|| {
            let ext = crate::uploads::extension(ev.media_type.as_deref().unwrap_or(""));
            format!("evidence-{}.{ext}", ev.id)
        }),
        // Rounded to the second: a 3 s clip whose last frame starts at 2.9 s reads 0:00:03.
        duration: ev.duration_ms.map(|ms| hms(ms + 500)),
    }
}

fn place(l: &checklist_sync::proto::Location) -> String {
    format!("{:.6}, {:.6} ±{:.0} m", l.lat, l.lon, l.accuracy)
}

fn metres(m: Option<f64>) -> String {
    m.map(|m| format!("{m:.0}")).unwrap_or_else(|| "—".into())
}
