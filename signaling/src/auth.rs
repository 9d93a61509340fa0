//! Who is calling: staff sessions, invitation guests, passwords, tokens, CSRF and throttling.
//!
//! Staff log in and get an HttpOnly, SameSite=Strict session cookie whose random token is
//! stored only as a SHA-256 hash. The business never has an account: its invitation token
//! (256 random bits, stored hashed, expiring, revocable) is exchanged for a guest session,
//! whose own random token (also stored only hashed) is the guest cookie; the guest session
//! ends with its invitation. Cookie-authenticated writes also need the `X-CSRF-Token` header.

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, Method};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::db::{now_micros, RowExt};
use crate::domain::Status;
use crate::error::ApiError;
use crate::live::Credential;
use crate::AppState;

/// Name of the staff session cookie.
pub const SESSION_COOKIE: &str = "inspector_session";
/// Name of the invitation guest cookie.
pub const GUEST_COOKIE: &str = "inspector_guest";
/// Name of the business's durable results-access cookie (outlives the invitation).
pub const RESULTS_COOKIE: &str = "inspector_results";
/// Name of a business representative's session cookie (organisation access, `orgs.rs`).
pub const BUSINESS_COOKIE: &str = "inspector_business";
/// Header carrying the CSRF token on cookie-authenticated writes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// A staff role.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs inspections.
    Inspector,
    /// Reads every inspection, recording and log.
    Reviewer,
    /// Everything, plus users and templates.
    Admin,
}

impl Role {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inspector => "inspector",
            Role::Reviewer => "reviewer",
            Role::Admin => "admin",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "inspector" => Some(Role::Inspector),
            "reviewer" => Some(Role::Reviewer),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A logged-in staff member.
#[derive(Debug, Clone)]
pub struct Staff {
    /// User id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// This session's CSRF token.
    pub csrf: String,
    /// The session token's hash (what live sockets of this session are registered by).
    pub session_hash: String,
    /// Set when an API token makes the call (`tokens.rs`): its scopes and control body.
    pub token: Option<crate::tokens::TokenGrant>,
}

/// An invitee of one inspection (the business).
#[derive(Debug, Clone)]
pub struct Guest {
    /// The invitation.
    pub invitation_id: Uuid,
    /// The only inspection this guest may see.
    pub inspection_id: Uuid,
    /// The invitation's label (e.g. the business's representative).
    pub label: String,
    /// This guest session's CSRF token.
    pub csrf: String,
    /// The guest session token's hash.
    pub session_hash: String,
    /// Through what the guest came in.
    pub via: GuestVia,
}

/// How a guest is authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestVia {
    /// A guest session of the live invitation (ending with it).
    Invitation,
    /// The durable results access given at sign-in (revocable, not expiring).
    Results,
}

/// A business's representative, signed in by a one-time link or code (`orgs.rs`): sees every
/// inspection and prescription of its organisation (by INN), and nothing else.
#[derive(Debug, Clone)]
pub struct BusinessRep {
    /// The organisation.
    pub organisation_id: Uuid,
    /// Its INN (what its inspections carry).
    pub inn: String,
    /// Its name.
    pub name: String,
    /// The link that opened the session (revoking it ends the session).
    pub link_id: Uuid,
    /// The representative's label on that link.
    pub label: String,
    /// This session's CSRF token.
    pub csrf: String,
    /// The session token's hash.
    pub session_hash: String,
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Staff with a session.
    Staff(Staff),
    /// The business, through an invitation.
    Guest(Guest),
    /// A business representative with an organisation session.
    Business(BusinessRep),
}

impl Caller {
    /// The CSRF token the caller must echo on writes.
    pub fn csrf(&self) -> &str {
        match self {
            Caller::Staff(s) => &s.csrf,
            Caller::Guest(g) => &g.csrf,
            Caller::Business(b) => &b.csrf,
        }
    }

    /// The staff member, or 403 for a guest.
    pub fn staff(&self) -> Result<&Staff, ApiError> {
        match self {
            Caller::Staff(s) => Ok(s),
            Caller::Guest(_) | Caller::Business(_) => Err(ApiError::Forbidden),
        }
    }

    /// What a live socket of this caller is registered by.
    pub fn credential(&self) -> Credential {
        match self {
            Caller::Staff(s) => Credential::Staff {
                session_hash: s.session_hash.clone(),
                user_id: s.id,
            },
            Caller::Guest(g) => Credential::Guest {
                session_hash: g.session_hash.clone(),
                invitation_id: g.invitation_id,
            },
            // A representative never opens a live socket (`inspections::takes_part`); were
            // one registered, its re-check would find no guest session and end it.
            Caller::Business(b) => Credential::Guest {
                session_hash: b.session_hash.clone(),
                invitation_id: Uuid::nil(),
            },
        }
    }

    /// The staff member if it has one of `roles`, else 403.
    pub fn require(&self, roles: &[Role]) -> Result<&Staff, ApiError> {
        let s = self.staff()?;
        if roles.contains(&s.role) {
            Ok(s)
        } else {
            Err(ApiError::Forbidden)
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // A bearer call, already checked by `tokens::gate`: no cookie, so no CSRF to check.
        if let Some(t) = parts.extensions.get::<crate::tokens::TokenCaller>() {
            return Ok(Caller::Staff(t.0.clone()));
        }
        let caller = authenticate(&parts.headers, state)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        if !is_safe(&parts.method) {
            let sent = parts
                .headers
                .get(CSRF_HEADER)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            if !constant_time_eq(sent.as_bytes(), caller.csrf().as_bytes()) {
                return Err(ApiError::Csrf);
            }
        }
        Ok(caller)
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Finds the caller from its cookies, if any.
pub async fn authenticate(
    headers: &HeaderMap,
    state: &AppState,
) -> Result<Option<Caller>, ApiError> {
    if let Some(token) = cookie(headers, SESSION_COOKIE) {
        if let Some(staff) = staff_by_session_hash(&state.db, &hash_token(&token)).await? {
            return Ok(Some(Caller::Staff(staff)));
        }
    }
    if let Some(token) = cookie(headers, BUSINESS_COOKIE) {
        if let Some(rep) = crate::orgs::rep_by_session_hash(&state.db, &hash_token(&token)).await? {
            return Ok(Some(Caller::Business(rep)));
        }
    }
    if let Some(token) = cookie(headers, GUEST_COOKIE) {
        match guest_by_session_hash(&state.db, &hash_token(&token)).await {
            Ok(guest) => return Ok(Some(Caller::Guest(guest))),
            Err(ApiError::Database(e)) => return Err(ApiError::Database(e)),
            Err(_) => {}
        }
    }
    if let Some(token) = cookie(headers, RESULTS_COOKIE) {
        if let Some(guest) = guest_by_results_token(state, &token).await? {
            return Ok(Some(Caller::Guest(guest)));
        }
    }
    Ok(None)
}

/// Whether a live socket's credential still authorizes it (the same rule as [`authenticate`]).
pub async fn credential_valid(db: &AnyPool, c: &Credential) -> Result<bool, sqlx::Error> {
    let r = match c {
        Credential::Staff { session_hash, .. } => staff_by_session_hash(db, session_hash)
            .await
            .map(|s| s.is_some()),
        // A socket opened while live stays open at the finish (the phone sees the act formed
        // and the results), though no new one opens (`inspections::takes_part`) and the room
        // takes no item operation after the end; a cancel closes it.
        Credential::Guest { session_hash, .. } => {
            match guest_by_session_hash(db, session_hash).await {
                Err(ApiError::Gone {
                    code: "inspection_over",
                    ..
                }) => Ok(true),
                r => r.map(|_| true),
            }
        }
    };
    match r {
        Ok(v) => Ok(v),
        Err(ApiError::Database(e)) => Err(e),
        Err(_) => Ok(false),
    }
}

/// Reads one cookie's value from the request headers.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// A `Set-Cookie` value for an HttpOnly, SameSite=Strict cookie; `max_age_secs = 0` clears it.
pub fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_secs}{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The staff member of a live session (not expired, account enabled), by token hash.
pub async fn staff_by_session_hash(db: &AnyPool, hash: &str) -> Result<Option<Staff>, ApiError> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.display_name, u.role, s.csrf_token FROM sessions s \
         JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND u.disabled = 0",
    )
    .bind(hash)
    .bind(now_micros())
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(Staff {
            id: r.uuid(0)?,
            username: r.col(1)?,
            display_name: r.col(2)?,
            role: r.parsed(3, "user role", Role::parse)?,
            csrf: r.col(4)?,
            session_hash: hash.to_string(),
            token: None,
        })
    })
    .transpose()
}

/// Why an invitation token was refused.
#[derive(Debug)]
pub enum InvitationRefusal {
    /// No such token.
    NotFound,
    /// Past its expiry.
    Expired,
    /// Revoked by the inspector.
    Revoked,
    /// The inspection was cancelled.
    Closed,
    /// The inspection is over (finished or signed): the invitation is no longer a key to the
    /// live room; its business reads its results through the durable results access.
    Over,
}

impl From<InvitationRefusal> for ApiError {
    fn from(r: InvitationRefusal) -> Self {
        match r {
            InvitationRefusal::NotFound => ApiError::NotFound("invitation"),
            InvitationRefusal::Expired => ApiError::Gone {
                code: "invitation_expired",
                message: "the invitation has expired".into(),
            },
            InvitationRefusal::Revoked => ApiError::Gone {
                code: "invitation_revoked",
                message: "the invitation was revoked".into(),
            },
            InvitationRefusal::Closed => ApiError::Gone {
                code: "inspection_closed",
                message: "the inspection is no longer open to invitees".into(),
            },
            InvitationRefusal::Over => ApiError::Gone {
                code: "inspection_over",
                message: "the inspection is over; its results are at the results link".into(),
            },
        }
    }
}

/// An invitation usable right now, as found by its token.
#[derive(Debug, Clone)]
pub struct OpenInvitation {
    /// The invitation.
    pub id: Uuid,
    /// Its inspection.
    pub inspection_id: Uuid,
    /// Its expiry, µs.
    pub expires_at: i64,
}

/// Checks an invitation row's columns `(revoked_at, expires_at, inspection status)`.
fn check_invitation(
    revoked_at: Option<i64>,
    expires_at: i64,
    status: Status,
) -> Result<(), ApiError> {
    if revoked_at.is_some() {
        return Err(InvitationRefusal::Revoked.into());
    }
    if expires_at <= now_micros() {
        return Err(InvitationRefusal::Expired.into());
    }
    if status == Status::Cancelled {
        return Err(InvitationRefusal::Closed.into());
    }
    if status.is_over() {
        return Err(InvitationRefusal::Over.into());
    }
    Ok(())
}

/// Resolves an invitation token, refusing expired or revoked ones, and those of a cancelled
/// inspection; a finished one is `inspection_over` (see [`InvitationRefusal::Over`]).
pub async fn invitation_by_token(db: &AnyPool, token: &str) -> Result<OpenInvitation, ApiError> {
    let (inv, status) = invitation_row(db, token).await?;
    check_invitation(inv.revoked_at, inv.open.expires_at, status)?;
    Ok(inv.open)
}

/// Resolves the invitation token of an inspection that is over (finished or signed), refusing
/// expired or revoked ones: it leads its business to the results, nowhere else.
pub async fn over_invitation_by_token(
    db: &AnyPool,
    token: &str,
) -> Result<OpenInvitation, ApiError> {
    let (inv, status) = invitation_row(db, token).await?;
    match check_invitation(inv.revoked_at, inv.open.expires_at, status) {
        Err(ApiError::Gone {
            code: "inspection_over",
            ..
        }) => Ok(inv.open),
        Err(e) => Err(e),
        Ok(()) => Err(InvitationRefusal::NotFound.into()),
    }
}

struct InvitationRow {
    open: OpenInvitation,
    revoked_at: Option<i64>,
}

async fn invitation_row(db: &AnyPool, token: &str) -> Result<(InvitationRow, Status), ApiError> {
    let row = sqlx::query(
        "SELECT i.id, i.inspection_id, i.expires_at, i.revoked_at, p.status \
         FROM invitations i JOIN inspections p ON p.id = i.inspection_id WHERE i.token_hash = $1",
    )
    .bind(hash_token(token))
    .fetch_optional(db)
    .await?
    .ok_or(InvitationRefusal::NotFound)?;
    Ok((
        InvitationRow {
            open: OpenInvitation {
                id: row.uuid(0)?,
                inspection_id: row.uuid(1)?,
                expires_at: row.col(2)?,
            },
            revoked_at: row.col(3)?,
        },
        row.parsed(4, "inspection status", Status::parse)?,
    ))
}

/// A new guest session of an open invitation, ending when the invitation expires, with the
/// CSRF token `csrf` (the results access issued with it has the same one, so the page's writes
/// keep working when the session ends with the inspection). Returns the session token (for
/// the cookie, never stored).
pub async fn start_guest_session(
    db: &AnyPool,
    invitation: &OpenInvitation,
    csrf: &str,
) -> Result<String, ApiError> {
    let token = new_token();
    let now = now_micros();
    sqlx::query(
        "INSERT INTO guest_sessions (token_hash, invitation_id, csrf_token, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(hash_token(&token))
    .bind(invitation.id.to_string())
    .bind(csrf)
    .bind(now)
    .bind(invitation.expires_at)
    .execute(db)
    .await?;
    // Forget guest sessions that have ended; they authorize nothing.
    sqlx::query("DELETE FROM guest_sessions WHERE expires_at < $1")
        .bind(now)
        .execute(db)
        .await?;
    Ok(token)
}

/// The guest of a guest session (by token hash), refusing it when the session or its
/// invitation has expired, the invitation was revoked, or the inspection is over or cancelled:
/// a guest session is a key to the live room only.
pub async fn guest_by_session_hash(db: &AnyPool, hash: &str) -> Result<Guest, ApiError> {
    let row = sqlx::query(
        "SELECT i.id, i.inspection_id, i.label, i.expires_at, i.revoked_at, p.status, \
         g.csrf_token, g.expires_at FROM guest_sessions g \
         JOIN invitations i ON i.id = g.invitation_id \
         JOIN inspections p ON p.id = i.inspection_id WHERE g.token_hash = $1",
    )
    .bind(hash)
    .fetch_optional(db)
    .await?
    .ok_or(InvitationRefusal::NotFound)?;
    let expires = row.col::<i64>(3)?.min(row.col::<i64>(7)?);
    check_invitation(
        row.col(4)?,
        expires,
        row.parsed(5, "inspection status", Status::parse)?,
    )?;
    Ok(Guest {
        invitation_id: row.uuid(0)?,
        inspection_id: row.uuid(1)?,
        label: row.col(2)?,
        csrf: row.col(6)?,
        session_hash: hash.to_string(),
        via: GuestVia::Invitation,
    })
}

/// Resolves a durable results-access token to a guest of its inspection (`None` when unknown
/// or revoked). It does not expire with the invitation, so the business can come back.
pub async fn guest_by_results_token(
    state: &AppState,
    token: &str,
) -> Result<Option<Guest>, ApiError> {
    if token.len() > 128 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT i.id, r.inspection_id, i.label FROM results_access r \
         JOIN invitations i ON i.id = r.invitation_id \
         WHERE r.token_hash = $1 AND r.revoked_at IS NULL AND i.revoked_at IS NULL",
    )
    .bind(hash_token(token))
    .fetch_optional(&state.db)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(Guest {
        invitation_id: row.uuid(0)?,
        inspection_id: row.uuid(1)?,
        label: row.col(2)?,
        csrf: guest_csrf(token),
        // What the caller is known by (`Caller::credential`); no socket is ever opened with
        // it (`inspections::takes_part`).
        session_hash: hash_token(token),
        via: GuestVia::Results,
    }))
}

/// The results guest's CSRF token: derived from, but not revealing, the results token.
pub fn guest_csrf(token: &str) -> String {
    hex::encode(Sha256::digest(format!("csrf:{token}").as_bytes()))
}

/// A fresh unguessable token: 256 random bits, URL-safe base64.
pub fn new_token() -> String {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The stored form of a token: SHA-256, hex. Tokens carry 256 bits of entropy, so a fast
/// hash is enough; it keeps a database leak from yielding usable tokens.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Hashes a password with argon2id and a random salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("password hashing failed: {e}"))
}

/// Checks a password against a stored argon2 hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// Compares secrets without leaking where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_round_trip() {
        let h = hash_password("correct horse").unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let a = new_token();
        assert_eq!(a.len(), 43);
        assert_ne!(a, new_token());
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn cookies_parse() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; inspector_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("xyz"));
        assert_eq!(cookie(&h, GUEST_COOKIE), None);
    }
}
