//! Channels: how a composed message reaches a contact. E-mail is implemented here; the trait
//! leaves room for Web Push, SMS and the Gosuslugi notice (none implemented yet).

use super::core::Outcome;

/// Which channel a contact is reached by (the stored code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelKind {
    /// SMTP e-mail.
    Email,
    /// Web Push (a subscription of the browser's service worker). Not implemented yet.
    Push,
}

impl ChannelKind {
    /// The stored code.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelKind::Email => "email",
            ChannelKind::Push => "push",
        }
    }

    /// Parses a stored code.
    pub fn parse(s: &str) -> Option<ChannelKind> {
        match s {
            "email" => Some(ChannelKind::Email),
            "push" => Some(ChannelKind::Push),
            _ => None,
        }
    }
}

/// A composed message, the same for every channel (each takes what it can carry).
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Subject / title.
    pub subject: String,
    /// Plain text.
    pub text: String,
    /// The link the message leads to.
    pub link: String,
    /// The iCalendar event and its iTIP method, for channels that carry attachments.
    pub calendar: Option<(&'static str, String)>,
    /// Further files (file name, MIME type, bytes): the printable notice.
    pub attachments: Vec<(String, &'static str, Vec<u8>)>,
}

/// A way to deliver messages.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// Which contacts it serves.
    fn kind(&self) -> ChannelKind;
    /// Delivers `msg` to `address` (the contact's stored address). Never panics; every
    /// failure is an [`Outcome`] with a stable code.
    async fn send(&self, address: &str, msg: &Outgoing) -> Outcome;
}
