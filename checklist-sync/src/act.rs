//! The act's events: formed, signed, refused. They are sequenced and hash-chained like every
//! other event, but only the embedding server submits them ([`crate::SyncHub::submit_act`]):
//! no client frame decodes to one, so a client cannot forge a signature or a refusal.

use serde::{Deserialize, Serialize};

/// Who signs (or refuses to sign) the act.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignerRole {
    /// The official of the control body (the inspection's inspector).
    Official,
    /// The controlled person (the business).
    Business,
}

impl SignerRole {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Official => "official",
            Self::Business => "business",
        }
    }

    /// Parses the wire spelling.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "official" => Some(Self::Official),
            "business" => Some(Self::Business),
            _ => None,
        }
    }

    /// The room role that may act in this signer role.
    pub fn room_role(self) -> crate::Role {
        match self {
            Self::Official => crate::Role::Inspector,
            Self::Business => crate::Role::Business,
        }
    }
}

/// An act event, as submitted by the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ActEvent {
    /// The act was formed from the log up to `head_seq`.
    ActFormed {
        /// SHA-256 of the PDF, lowercase hex.
        sha256: String,
        /// Size of the PDF in bytes.
        size: u64,
        /// The last event the act was formed from (the act prints it).
        head_seq: u64,
        /// That event's hash.
        head_hash: String,
        /// Language of the act (`ru`, `en`).
        language: String,
    },
    /// A party signed the act.
    ActSigned {
        /// The act signed (SHA-256 of the PDF).
        act_sha256: String,
        /// Who.
        role: SignerRole,
        /// The signer's name as the certificate gives it.
        signer: String,
        /// SHA-256 of the signer's certificate (DER).
        certificate_sha256: String,
        /// SHA-256 of the detached CMS signature (DER).
        signature_sha256: String,
        /// The signature scheme, e.g. `p256-webcrypto-cms`.
        scheme: String,
    },
    /// A party refused to sign ("от подписи отказался").
    ActRefused {
        /// The act refused.
        act_sha256: String,
        /// Who.
        role: SignerRole,
        /// The refusing party's name.
        signer: String,
        /// Why, in the party's words.
        reason: String,
    },
}

/// Every act event kind.
pub const ACT_KINDS: &[&str] = &["act_formed", "act_signed", "act_refused"];

impl ActEvent {
    /// The `kind` of the event.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::ActFormed { .. } => "act_formed",
            Self::ActSigned { .. } => "act_signed",
            Self::ActRefused { .. } => "act_refused",
        }
    }
}

/// The act as the log shows it: folded from the act events.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ActState {
    /// Seq of the `act_formed` event.
    pub seq: u64,
    /// Its server time, µs.
    pub ts: i64,
    /// SHA-256 of the PDF.
    pub sha256: String,
    /// Size of the PDF.
    pub size: u64,
    /// The last event it was formed from.
    pub head_seq: u64,
    /// That event's hash.
    pub head_hash: String,
    /// Language.
    pub language: String,
    /// Signatures, in order.
    pub signatures: Vec<ActSignature>,
    /// Refusals, in order.
    pub refusals: Vec<ActRefusal>,
}

/// A signature recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActSignature {
    /// Event seq.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// Who.
    pub role: SignerRole,
    /// Name.
    pub signer: String,
    /// SHA-256 of the certificate.
    pub certificate_sha256: String,
    /// SHA-256 of the CMS signature.
    pub signature_sha256: String,
    /// Scheme.
    pub scheme: String,
}

/// A refusal recorded in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActRefusal {
    /// Event seq.
    pub seq: u64,
    /// Server time, µs.
    pub ts: i64,
    /// Who.
    pub role: SignerRole,
    /// Name.
    pub signer: String,
    /// Why.
    pub reason: String,
}

impl ActState {
    /// Whether `role` has signed or refused already.
    pub fn has_answered(&self, role: SignerRole) -> bool {
        self.signatures.iter().any(|s| s.role == role)
            || self.refusals.iter().any(|r| r.role == role)
    }

    /// The signature of `role`, if any.
    pub fn signature(&self, role: SignerRole) -> Option<&ActSignature> {
        self.signatures.iter().find(|s| s.role == role)
    }
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl ActEvent {
    /// Checks the fields (the server builds these, but the log must never hold nonsense).
    pub fn validate(&self) -> Result<(), crate::OpError> {
        use crate::OpError;
        let hex = |field: &str, v: &str| {
            if is_hex64(v) {
                Ok(())
            } else {
                Err(OpError::invalid(field, "must be 64 lowercase hex digits"))
            }
        };
        let name = |v: &str| {
            let n = v.chars().count();
            if (1..=500).contains(&n) {
                Ok(())
            } else {
                Err(OpError::invalid(
                    "signer",
                    "signer must have 1..=500 characters",
                ))
            }
        };
        match self {
            Self::ActFormed {
                sha256,
                head_hash,
                language,
                ..
            } => {
                hex("sha256", sha256)?;
                hex("head_hash", head_hash)?;
                if !matches!(language.as_str(), "ru" | "en") {
                    return Err(OpError::invalid("language", "language must be ru or en"));
                }
            }
            Self::ActSigned {
                act_sha256,
                signer,
                certificate_sha256,
                signature_sha256,
                scheme,
                ..
            } => {
                hex("act_sha256", act_sha256)?;
                hex("certificate_sha256", certificate_sha256)?;
                hex("signature_sha256", signature_sha256)?;
                name(signer)?;
                if scheme.is_empty() || scheme.len() > 64 {
                    return Err(OpError::invalid(
                        "scheme",
                        "scheme must have 1..=64 characters",
                    ));
                }
            }
            Self::ActRefused {
                act_sha256,
                signer,
                reason,
                ..
            } => {
                hex("act_sha256", act_sha256)?;
                name(signer)?;
                let n = reason.trim().chars().count();
                if !(1..=4000).contains(&n) {
                    return Err(OpError::invalid(
                        "reason",
                        "reason must have 1..=4000 characters",
                    ));
                }
            }
        }
        Ok(())
    }
}
