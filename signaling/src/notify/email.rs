//! The e-mail channel: SMTP with `lettre` (tokio, rustls). The message is a text part and
//! the event as a `text/calendar` attachment with its iTIP method.

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
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(msg.text.clone()));
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
