//! Key registration: the browser asks for a challenge, signs it with its new non-extractable
//! key (proof of possession), and sends the public key; the CA issues a certificate naming the
//! official (and the control body) or the business (its INN and the invitation it came by).
//! The CA certificate is published at `GET /api/signing/ca.pem`.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::ca::Subject;
use super::cms;
use crate::auth::{self, Caller};
use crate::db::{from_micros, now_micros, RowExt};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::inspections::{load_for, Access};
use crate::AppState;

/// How long a challenge may be answered.
pub const CHALLENGE_TTL_MICROS: i64 = 5 * 60 * 1_000_000;
/// Certificates one account or invitation may hold.
pub const MAX_CERTIFICATES: i64 = 20;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/signing/ca.pem", get(ca_pem))
        .route("/api/signing/challenge", post(challenge))
        .route(
            "/api/signing/certificates",
            get(list_certificates).post(register),
        )
}

/// Whom a caller's keys belong to: an account, or an invitation.
pub fn subject_of(caller: &Caller) -> String {
    match caller {
        Caller::Staff(s) => format!("user:{}", s.id),
        Caller::Guest(g) => format!("invitation:{}", g.invitation_id),
        Caller::Business(b) => format!("organisation:{}", b.organisation_id),
    }
}

fn b64() -> base64::engine::GeneralPurpose {
    base64::engine::general_purpose::STANDARD
}

/// Decodes standard or URL-safe base64 (browsers produce either).
pub fn decode_b64(field: &'static str, s: &str) -> ApiResult<Vec<u8>> {
    if s.len() > 64 * 1024 {
        return Err(ApiError::validation(format!("{field} is too long")));
    }
    let t = s.trim().trim_end_matches('=');
    base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(t)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t))
        .map_err(|_| ApiError::validation(format!("{field} must be base64")))
}

/// The CA certificate (PEM), public.
#[utoipa::path(get, path = "/api/signing/ca.pem", tag = "signing",
    responses((status = 200, description = "application/x-pem-file")))]
pub async fn ca_pem(State(state): State<AppState>) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/x-pem-file"),
            (header::CONTENT_DISPOSITION, "inline; filename=\"ca.pem\""),
        ],
        state.signing.ca.cert_pem().to_string(),
    )
        .into_response()
}

/// A challenge to sign with a new key.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Challenge {
    /// Random text; sign its UTF-8 bytes (ECDSA P-256 SHA-256).
    pub challenge: String,
    /// Until when it may be answered.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Issues a one-time challenge for proof of possession (staff or business).
#[utoipa::path(post, path = "/api/signing/challenge", tag = "signing",
    responses((status = 201, body = Challenge), (status = 401, body = crate::error::ErrorBody)))]
pub async fn challenge(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<(StatusCode, Json<Challenge>)> {
    let subject = subject_of(&caller);
    let challenge = format!("inspector-key:{}", auth::new_token());
    let now = now_micros();
    let expires = now + CHALLENGE_TTL_MICROS;
    let mut tx = crate::db::begin(&state.db).await?;
    // One outstanding challenge per subject, and none kept past its expiry.
    sqlx::query("DELETE FROM signing_challenges WHERE subject = $1 OR expires_at <= $2")
        .bind(&subject)
        .bind(now)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO signing_challenges (challenge, subject, created_at, expires_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&challenge)
    .bind(&subject)
    .bind(now)
    .bind(expires)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(Challenge {
            challenge,
            expires_at: from_micros(expires),
        }),
    ))
}

/// Register-key request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterKey {
    /// The public key: SubjectPublicKeyInfo DER, base64 (WebCrypto `exportKey('spki')`).
    pub public_key: String,
    /// The challenge from `POST /api/signing/challenge`.
    pub challenge: String,
    /// The challenge's UTF-8 bytes signed with the key: P1363 (r‖s), base64.
    pub proof: String,
    /// The inspection (required for the business; it must be its invitation's).
    pub inspection_id: Option<Uuid>,
    /// The account the key is for; only the caller's own is accepted.
    pub user_id: Option<Uuid>,
}

/// A certificate the CA issued.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct IssuedCertificate {
    /// Id (use it when signing).
    pub id: Uuid,
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
    /// Whom it names.
    pub common_name: String,
    /// PEM.
    pub pem: String,
    /// Inspection it is for (the business's), if any.
    pub inspection_id: Option<Uuid>,
    /// Issued.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Valid until.
    pub not_after: chrono::DateTime<chrono::Utc>,
}

/// Registers a browser key and issues its certificate.
#[utoipa::path(post, path = "/api/signing/certificates", tag = "signing", request_body = RegisterKey,
    responses((status = 201, body = IssuedCertificate), (status = 400, body = crate::error::ErrorBody),
              (status = 401, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody),
              (status = 404, body = crate::error::ErrorBody), (status = 409, body = crate::error::ErrorBody)))]
pub async fn register(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<RegisterKey>,
) -> ApiResult<(StatusCode, Json<IssuedCertificate>)> {
    let subject_key = subject_of(&caller);
    // Whom the certificate will name; requests for somebody else are refused before anything.
    let (subject, user_id, invitation_id, inspection_id, days) = match &caller {
        Caller::Staff(s) => {
            if req.user_id.is_some_and(|u| u != s.id) {
                return Err(ApiError::Forbidden);
            }
            if let Some(id) = req.inspection_id {
                load_for(&state.db, &caller, id, Access::Manage).await?;
            }
            (
                Subject {
                    common_name: s.display_name.clone(),
                    organization: Some(state.config.control_body.clone()),
                    title: Some(s.role.as_str().to_string()),
                    inn: None,
                    uris: vec![format!("urn:inspector:user:{}", s.id)],
                },
                Some(s.id.to_string()),
                None,
                None,
                3 * 365,
            )
        }
        // A representative signs nothing here (acts are signed through the results link).
        Caller::Business(_) => return Err(ApiError::Forbidden),
        Caller::Guest(g) => {
            if req.user_id.is_some() {
                return Err(ApiError::Forbidden);
            }
            let id = req
                .inspection_id
                .ok_or_else(|| ApiError::validation("inspection_id is required"))?;
            let (insp, _) = load_for(&state.db, &caller, id, Access::Read).await?;
            (
                Subject {
                    common_name: g.label.clone(),
                    organization: Some(insp.business.name.clone()),
                    title: None,
                    inn: Some(insp.business.inn.as_str().to_string()),
                    uris: vec![
                        format!("urn:inspector:invitation:{}", g.invitation_id),
                        format!("urn:inspector:inspection:{}", insp.id),
                    ],
                },
                None,
                Some(g.invitation_id.to_string()),
                Some(insp.id),
                365,
            )
        }
    };
    let spki = decode_b64("public_key", &req.public_key)?;
    let point = cms::p256_point(&spki).map_err(|e| ApiError::Invalid {
        code: "public_key_invalid",
        message: e.to_string(),
    })?;
    let proof = decode_b64("proof", &req.proof)?;
    if req.challenge.len() > 200 {
        return Err(ApiError::Invalid {
            code: "challenge_invalid",
            message: "unknown or expired challenge".into(),
        });
    }
    cms::verify_p1363(&point, req.challenge.as_bytes(), &proof).map_err(|_| ApiError::Invalid {
        code: "proof_invalid",
        message: "the proof of possession does not verify with this key".into(),
    })?;
    let count: i64 = sqlx::query("SELECT COUNT(*) FROM signing_certificates WHERE subject = $1")
        .bind(&subject_key)
        .fetch_one(&state.db)
        .await?
        .col(0)?;
    if count >= MAX_CERTIFICATES {
        return Err(ApiError::Conflict {
            code: "too_many_certificates",
            message: format!("at most {MAX_CERTIFICATES} keys per account or invitation"),
        });
    }
    let issued = state
        .signing
        .ca
        .issue(&spki, &subject, days)
        .map_err(ApiError::Internal)?;
    let now = now_micros();
    let not_after = now + days * 24 * 3600 * 1_000_000;
    let id = Uuid::new_v4();
    let mut tx = crate::db::begin(&state.db).await?;
    // The challenge is spent with the certificate, in one transaction: replay fails.
    let spent = sqlx::query(
        "DELETE FROM signing_challenges WHERE challenge = $1 AND subject = $2 AND expires_at > $3",
    )
    .bind(&req.challenge)
    .bind(&subject_key)
    .bind(now)
    .execute(&mut *tx)
    .await?;
    if spent.rows_affected() != 1 {
        return Err(ApiError::Invalid {
            code: "challenge_invalid",
            message: "unknown or expired challenge".into(),
        });
    }
    sqlx::query(
        "INSERT INTO signing_certificates (id, subject, user_id, invitation_id, inspection_id, common_name, \
         public_key, fingerprint, cert_pem, created_at, not_after) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(id.to_string())
    .bind(&subject_key)
    .bind(user_id)
    .bind(invitation_id)
    .bind(inspection_id.map(|i| i.to_string()))
    .bind(&subject.common_name)
    .bind(b64().encode(&spki))
    .bind(&issued.fingerprint)
    .bind(&issued.pem)
    .bind(now)
    .bind(not_after)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(IssuedCertificate {
            id,
            fingerprint: issued.fingerprint,
            common_name: subject.common_name,
            pem: issued.pem,
            inspection_id,
            created_at: from_micros(now),
            not_after: from_micros(not_after),
        }),
    ))
}

fn cert_from_row(r: &sqlx::any::AnyRow) -> ApiResult<IssuedCertificate> {
    let inspection_id = match r.col::<Option<String>>(4)? {
        Some(s) => Some(Uuid::parse_str(&s).map_err(|_| crate::db::corrupt("inspection id", s))?),
        None => None,
    };
    Ok(IssuedCertificate {
        id: r.uuid(0)?,
        fingerprint: r.col(1)?,
        common_name: r.col(2)?,
        pem: r.col(3)?,
        inspection_id,
        created_at: r.time(5)?,
        not_after: r.time(6)?,
    })
}

const CERT_COLUMNS: &str =
    "id, fingerprint, common_name, cert_pem, inspection_id, created_at, not_after";

/// The caller's certificates.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CertificateList {
    /// Oldest first.
    pub certificates: Vec<IssuedCertificate>,
}

/// The caller's own certificates.
#[utoipa::path(get, path = "/api/signing/certificates", tag = "signing",
    responses((status = 200, body = CertificateList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list_certificates(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<CertificateList>> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CERT_COLUMNS} FROM signing_certificates WHERE subject = $1 ORDER BY created_at, id"
    )))
    .bind(subject_of(&caller))
    .fetch_all(&state.db)
    .await?;
    let certificates = rows
        .iter()
        .map(cert_from_row)
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(CertificateList { certificates }))
}

/// One of the caller's certificates, valid now, by id (404 when it is somebody else's).
pub async fn own_certificate(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> ApiResult<IssuedCertificate> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {CERT_COLUMNS} FROM signing_certificates WHERE id = $1 AND subject = $2 AND not_after > $3"
    )))
    .bind(id.to_string())
    .bind(subject_of(caller))
    .bind(now_micros())
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("certificate"))?;
    cert_from_row(&row)
}
