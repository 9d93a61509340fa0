//! The act's events: formed, signed, refused ([`crate::Operation::ActFormed`],
//! [`crate::Operation::ActSigned`], [`crate::Operation::ActRefused`]). They are sequenced and
//! hash-chained like every other operation, but only the embedding server submits them
//! ([`crate::SyncHub::submit`]): a client frame naming one is refused by the decoder and by
//! the lifecycle rule ([`crate::state::Status::allows`]), so a client cannot forge a signature
//! or a refusal. Their payloads carry hashes; the PDF and signatures are blobs of the server.

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

/// Every act operation kind: made by the server only (see the module documentation).
pub const ACT_KINDS: &[&str] = &["act_formed", "act_signed", "act_refused"];

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

/// The act's own rules, checked by the room against the sequenced head after the lifecycle
/// rule (so two racing signatures cannot both pass): the act is formed once, by the
/// inspector, from the log's current head; each party signs or refuses once, in its own
/// role, that very act. `head` is the seq and hash the new event would chain onto.
pub fn check(
    act: Option<&ActState>,
    who: crate::Role,
    op: &crate::Operation,
    head: (u64, &str),
) -> Result<(), crate::OpError> {
    use crate::proto::codes;
    use crate::{OpError, Operation, Role};
    let (act_sha256, role) = match op {
        Operation::ActFormed {
            head_seq,
            head_hash,
            ..
        } => {
            if who != Role::Inspector {
                return Err(OpError::new(
                    codes::FORBIDDEN,
                    "only the inspector forms the act",
                ));
            }
            if act.is_some() {
                return Err(OpError::new(
                    codes::ACT_ALREADY_FORMED,
                    "the act is already formed",
                ));
            }
            if (*head_seq, head_hash.as_str()) != head {
                return Err(OpError::new(
                    codes::ACT_STALE,
                    "the event log moved on while the act was rendered",
                ));
            }
            return Ok(());
        }
        Operation::ActSigned {
            act_sha256, role, ..
        }
        | Operation::ActRefused {
            act_sha256, role, ..
        } => (act_sha256, *role),
        _ => return Ok(()),
    };
    if who != role.room_role() {
        return Err(OpError::new(
            codes::FORBIDDEN,
            format!("{} may not answer as {}", who.as_str(), role.as_str()),
        ));
    }
    let Some(act) = act else {
        return Err(OpError::new(
            codes::ACT_NOT_FORMED,
            "no act has been formed",
        ));
    };
    if act.sha256 != *act_sha256 {
        return Err(OpError::new(
            codes::ACT_MISMATCH,
            "this is not the act that was formed",
        ));
    }
    if act.signature(role).is_some() {
        return Err(OpError::new(
            codes::ALREADY_SIGNED,
            "this party has already signed",
        ));
    }
    if act.refusals.iter().any(|r| r.role == role) {
        return Err(OpError::new(
            codes::ALREADY_REFUSED,
            "this party has already refused",
        ));
    }
    Ok(())
}
