//! The e-mail channel: SMTP with `lettre` (tokio, rustls). The message is the text, as plain
//! text and as HTML with the join link's QR code inline (a PNG: mail clients do not show SVG),
//! then the event as a `text/calendar` attachment with its iTIP method and the other files.

use std::time::Duration;

use lettre::message::header::{ContentDisposition, ContentType};
use lettre::message::{Mailbox, MultiPart, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::channel::{Channel, ChannelKind, Outgoing};
use super::core::Outcome;
use super::{SmtpConfig, SmtpTls};

/// A checked e-mail address (parse, don't validate): what `lettre` accepts as an address,
/// at most 254 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailAddress(String);

impl EmailAddress {
    /// Parses and normalizes (trimmed, domain lower-cased).
    pub fn parse(s: &str) -> Option<EmailAddress> {
        let s = s.trim();
        if s.is_empty() || s.len() > 254 {
            return None;
        }
        let a: lettre::Address = s.parse().ok()?;
        Some(EmailAddress(format!(
            "{}@{}",
            a.user(),
            a.domain().to_lowercase()
        )))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// SMTP delivery.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Email {
    /// Builds the transport (no connection is made until the first message).
    pub fn new(c: &SmtpConfig) -> anyhow::Result<Email> {
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| anyhow::anyhow!("notify.smtp.from {:?}: {e}", c.from))?;
        let builder = match c.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&c.host),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&c.host)?,
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&c.host)?,
        };
        let mut builder = builder
            .port(c.port)
            .timeout(Some(Duration::from_secs(c.timeout_secs.max(1))));
        if let (Some(user), Some(password)) = (&c.username, &c.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
        }
        Ok(Email {
            transport: builder.build(),
            from,
        })
    }

    /// The sender's bare address (the event's ORGANIZER).
    pub fn from_address(&self) -> String {
        self.from.email.to_string()
    }

    fn compose(&self, to: &str, msg: &Outgoing) -> Result<lettre::Message, Outcome> {
        let to: Mailbox = to
            .parse()
            .map_err(|_| Outcome::Permanent("invalid_address"))?;
        let plain = SinglePart::plain(msg.text.clone());
        let mut parts = match qr_png(&msg.link) {
            Some(png) => MultiPart::mixed().multipart(
                MultiPart::alternative().singlepart(plain).multipart(
                    MultiPart::related()
                        .singlepart(SinglePart::html(html(&msg.text, &msg.link)))
                        .singlepart(
                            lettre::message::Attachment::new_inline(QR_CID.to_owned()).body(
                                png,
                                ContentType::parse("image/png").expect("a literal MIME type"),
                            ),
                        ),
                ),
            ),
            None => MultiPart::mixed().singlepart(plain),
        };
        if let Some((method, ics)) = &msg.calendar {
            let kind =
                ContentType::parse(&format!("text/calendar; charset=utf-8; method={method}"))
                    .map_err(|_| Outcome::Permanent("compose_failed"))?;
            parts = parts.singlepart(
                SinglePart::builder()
                    .header(kind)
                    .header(ContentDisposition::attachment("invite.ics"))
                    .body(ics.clone()),
            );
        }
        for (name, mime, bytes) in &msg.attachments {
            let kind =
                ContentType::parse(mime).map_err(|_| Outcome::Permanent("compose_failed"))?;
            parts = parts.singlepart(
                lettre::message::Attachment::new(name.clone()).body(bytes.clone(), kind),
            );
        }
        lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(msg.subject.clone())
            .multipart(parts)
            .map_err(|_| Outcome::Permanent("compose_failed"))
    }
}

/// The Content-ID of the inline QR code.
const QR_CID: &str = "join-qr";

/// The link's QR code as a grayscale PNG: 6 pixels a module, the standard 4-module quiet zone.
/// `None` for an empty link or one too long for a QR code (the text still carries it).
fn qr_png(link: &str) -> Option<Vec<u8>> {
    const SCALE: usize = 6;
    const QUIET: usize = 4;
    if link.is_empty() {
        return None;
    }
    let code = qrcode::QrCode::new(link.as_bytes()).ok()?;
    let modules = code.width();
    let colors = code.to_colors();
    let side = (modules + 2 * QUIET) * SCALE;
    let mut pixels = vec![255u8; side * side];
    for (i, c) in colors.iter().enumerate() {
        if *c != qrcode::Color::Dark {
            continue;
        }
        let (mx, my) = (i % modules + QUIET, i / modules + QUIET);
        for y in my * SCALE..(my + 1) * SCALE {
            pixels[y * side + mx * SCALE..y * side + (mx + 1) * SCALE].fill(0);
        }
    }
    let mut out = Vec::new();
    let side = u32::try_from(side).ok()?;
    let mut enc = png::Encoder::new(&mut out, side, side);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().ok()?;
    writer.write_image_data(&pixels).ok()?;
    writer.finish().ok()?;
    Some(out)
}

/// The HTML part: the same text (escaped, line breaks kept), the link and its QR code.
fn html(text: &str, link: &str) -> String {
    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    }
    format!(
        "<!doctype html><html><body>\
         <div style=\"white-space:pre-wrap;font-family:sans-serif\">{}</div>\
         <p><a href=\"{l}\">{l}</a></p>\
         <p><img src=\"cid:{QR_CID}\" alt=\"QR\" width=\"200\" height=\"200\"></p>\
         </body></html>",
        esc(text),
        l = esc(link),
    )
}

#[async_trait::async_trait]
impl Channel for Email {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Email
    }

    async fn send(&self, address: &str, msg: &Outgoing) -> Outcome {
        let message = match self.compose(address, msg) {
            Ok(m) => m,
            Err(o) => return o,
        };
        match self.transport.send(message).await {
            Ok(_) => Outcome::Sent,
            Err(e) if e.is_permanent() => {
                tracing::warn!(error = %e, "smtp: message refused");
                Outcome::Permanent("smtp_rejected")
            }
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "smtp: temporary refusal");
                Outcome::Temporary("smtp_busy")
            }
            Err(e) if e.is_timeout() => Outcome::Temporary("smtp_timeout"),
            Err(e) => {
                tracing::warn!(error = %e, "smtp: cannot deliver");
                Outcome::Temporary("smtp_unreachable")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_parsed() {
        assert_eq!(
            EmailAddress::parse(" Shop@Example.TEST ").map(|a| a.0),
            Some("Shop@example.test".to_string())
        );
        for bad in ["", "no-at-sign", "a@", "@b", "a b@c.d", "x@y@z"] {
            assert_eq!(EmailAddress::parse(bad), None, "{bad}");
        }
        assert_eq!(
            EmailAddress::parse(&format!("{}@b.c", "a".repeat(260))),
            None
        );
    }
}
