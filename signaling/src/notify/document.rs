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
}

/// Renders the notice to PDF bytes, off the async workers.
pub async fn render(renderer: &Renderer, doc: NoticeDoc) -> Result<Vec<u8>, RenderError> {
    renderer
        .run(move || {
            let data = serde_json::to_vec(&doc).map_err(|e| RenderError(e.to_string()))?;
            let qr = qr_svg(&doc.link)?.into_bytes();
            let ident = format!("notice:{}:{}", doc.inspection_id, doc.seq);
            render_document(
                TEMPLATE,
                vec![("data.json".into(), data), ("qr.svg".into(), qr)],
                ident,
                None,
            )
        })
        .await
}
