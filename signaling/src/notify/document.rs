//! The printable notice (PDF/A with the act's renderer over `notice.typ`), attached to the
//! notice e-mail: what, when, who, the legal basis, the join link and its QR code.

use serde::Serialize;

use crate::act::render::{qr_svg, render_document, RenderError, Renderer};

const TEMPLATE: &str = include_str!("notice.typ");

/// What the notice prints.
#[derive(Debug, Clone, Serialize)]
pub struct NoticeDoc {
    /// `ru` or `en`.
    pub lang: String,
    /// The inspection.
    pub inspection_id: String,
    /// The schedule's revision.
    pub seq: i64,
    /// The control body.
    pub control_body: String,
    /// Title.
    pub title: String,
    /// Kind in words.
    pub kind: String,
    /// The business's name.
    pub business: String,
    /// Its INN.
    pub inn: String,
    /// The site's address.
    pub address: String,
    /// The start in the inspection's zone.
    pub when: String,
    /// The start in UTC (RFC 3339).
    pub when_utc: String,
    /// The IANA zone.
    pub zone: String,
    /// The inspector.
    pub inspector: String,
    /// The normative acts checked.
    pub legal_basis: String,
    /// The join link.
    pub link: String,
    /// The device check page's link (empty: none).
    pub check_link: String,
}

/// Renders the notice to PDF bytes, off the async workers (PDF/A wants its date: `now`).
pub async fn render(
    renderer: &Renderer,
    doc: NoticeDoc,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<u8>, RenderError> {
    use chrono::{Datelike, Timelike};
    let timestamp = typst::foundations::Datetime::from_ymd_hms(
        now.year(),
        now.month() as u8,
        now.day() as u8,
        now.hour() as u8,
        now.minute() as u8,
        now.second() as u8,
    )
    .and_then(|dt| typst_pdf::Timestamp::new_local(dt, 0));
    renderer
        .run(move || {
            let data = serde_json::to_vec(&doc).map_err(|e| RenderError(e.to_string()))?;
            let qr = qr_svg(&doc.link)?.into_bytes();
            let ident = format!("notice:{}:{}", doc.inspection_id, doc.seq);
            render_document(
                TEMPLATE,
                vec![("data.json".into(), data), ("qr.svg".into(), qr)],
                ident,
                timestamp,
            )
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_notice_renders_in_both_languages() {
        for lang in ["ru", "en"] {
            let doc = NoticeDoc {
                lang: lang.into(),
                inspection_id: "00000000-0000-0000-0000-000000000001".into(),
                seq: 1,
                control_body: "Орган".into(),
                title: "Проверка".into(),
                kind: "контрольное мероприятие".into(),
                business: "ООО «Ромашка»".into(),
                inn: "7707083893".into(),
                address: "Москва".into(),
                when: "10.12.2026 10:00".into(),
                when_utc: "2026-12-10T07:00:00Z".into(),
                zone: "Europe/Moscow".into(),
                inspector: "Иванов".into(),
                legal_basis: "".into(),
                link: "http://127.0.0.1/b/#t=abc".into(),
                check_link: "http://127.0.0.1/check/#t=abc".into(),
            };
            let pdf = render(&Renderer::new(1), doc, chrono::Utc::now())
                .await
                .expect("renders");
            assert!(pdf.starts_with(b"%PDF-"));
        }
    }
}
