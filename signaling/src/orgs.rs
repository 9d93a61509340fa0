//! Organisations: the control bodies staff belong to, and businesses (controlled persons) by
//! INN with their representatives' access.
//!
//! A business has no account and no password. The inspector of one of its inspections makes a
//! one-time sign-in link (`/my/#s=<token>`) and a short code for its representative; until the
//! notices issue delivers them to the business's contact, the console shows them to the
//! inspector to pass on. Both are stored only as SHA-256 hashes, expire, are used once, and
//! can be revoked. Signing in opens a representative session (an HttpOnly cookie holding a
//! fresh token, stored hashed, with its own CSRF token) that ends on logout, on expiry, or when
//! its link is revoked. The representative sees every inspection and prescription whose INN is
//! its organisation's, through the one access rule (`inspections::access`), nothing else.

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::auth::{self, BusinessRep, Caller, Role, BUSINESS_COOKIE};
use crate::db::{from_micros, now_micros, RowExt};
use crate::error::{ApiError, ApiResult, FieldError};
use crate::extract::ApiJson;
use crate::inspections::{load_for, Access};
use crate::AppState;

/// How long a sign-in link or code may wait to be used.
pub const LINK_TTL_SECS: i64 = 72 * 3600;
/// How long a representative session lasts.
pub const SESSION_TTL_SECS: i64 = 30 * 24 * 3600;
/// Open (unused, unexpired, unrevoked) links per organisation; making another revokes the
/// oldest, so an inspector cannot make the server hold unbounded links.
pub const MAX_OPEN_LINKS: usize = 20;
/// The code's alphabet (Crockford base32: no I, L, O, U).
const CODE_ALPHABET: &[u8] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a code (60 random bits).
const CODE_LEN: usize = 12;

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/control-bodies",
            get(list_control_bodies).post(create_control_body),
        )
        .route("/api/users/{id}/control-body", post(assign_control_body))
        .route("/api/inspections/{id}/business-links", post(create_link))
        .route("/api/business-links/{id}/revoke", post(revoke_link))
        .route("/api/business/sign-in", post(sign_in))
}

/// The business of a representative's session, as `me` shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SessionBusiness {
    /// The organisation.
    pub organisation_id: Uuid,
    /// Its INN.
    pub inn: String,
    /// Its name.
    pub name: String,
    /// The representative's label.
    pub label: String,
}

/// The representative of a live session (not expired, its link not revoked), by token hash.
pub async fn rep_by_session_hash(db: &AnyPool, hash: &str) -> ApiResult<Option<BusinessRep>> {
    let row = sqlx::query(
        "SELECT o.id, o.inn, o.name, l.id, l.label, s.csrf_token FROM business_sessions s \
         JOIN business_links l ON l.id = s.link_id \
         JOIN organisations o ON o.id = s.organisation_id \
         WHERE s.token_hash = $1 AND s.expires_at > $2 AND l.revoked_at IS NULL",
    )
    .bind(hash)
    .bind(now_micros())
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(BusinessRep {
            organisation_id: r.uuid(0)?,
            inn: r.col(1)?,
            name: r.col(2)?,
            link_id: r.uuid(3)?,
            label: r.col(4)?,
            csrf: r.col(5)?,
            session_hash: hash.to_string(),
        })
    })
    .transpose()
}

/// A control body.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ControlBody {
    /// Id.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Region.
    pub region: String,
    /// Kind of control (вид контроля).
    pub control_kind: String,
}

/// The control bodies.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ControlBodyList {
    /// By name.
    pub control_bodies: Vec<ControlBody>,
}

/// Create-control-body request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewControlBody {
    /// Name, 1–500 characters.
    pub name: String,
    /// Region, 1–200 characters.
    pub region: String,
    /// Kind of control, 1–300 characters.
    pub control_kind: String,
}

fn text_field(
    errors: &mut Vec<FieldError>,
    field: &str,
    value: &str,
    max: usize,
    required: &'static str,
    too_long: &'static str,
) -> String {
    let v = value.trim();
    if v.is_empty() {
        errors.push(FieldError::new(field, required));
    } else if v.chars().count() > max {
        errors.push(FieldError::new(field, too_long));
    }
    v.to_string()
}

/// Lists the control bodies (staff).
#[utoipa::path(get, path = "/api/control-bodies", tag = "organisations",
    responses((status = 200, body = ControlBodyList), (status = 403, body = crate::error::ErrorBody)))]
pub async fn list_control_bodies(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<ControlBodyList>> {
    caller.staff()?;
    let rows = sqlx::query(
        "SELECT id, name, region, control_kind FROM control_bodies ORDER BY name, id LIMIT 1000",
    )
    .fetch_all(&state.db)
    .await?;
    let control_bodies = rows
        .iter()
        .map(|r| {
            Ok(ControlBody {
                id: r.uuid(0)?,
                name: r.col(1)?,
                region: r.col(2)?,
                control_kind: r.col(3)?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(Json(ControlBodyList { control_bodies }))
}

/// Creates a control body (admin).
#[utoipa::path(post, path = "/api/control-bodies", tag = "organisations", request_body = NewControlBody,
    responses((status = 201, body = ControlBody), (status = 400, body = crate::error::ErrorBody), (status = 403, body = crate::error::ErrorBody)))]
pub async fn create_control_body(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<NewControlBody>,
) -> ApiResult<(StatusCode, Json<ControlBody>)> {
    caller.require(&[Role::Admin])?;
    let mut errors = Vec::new();
    let name = text_field(
        &mut errors,
        "name",
        &req.name,
        500,
        "name_required",
        "name_too_long",
    );
    let region = text_field(
        &mut errors,
        "region",
        &req.region,
        200,
        "region_required",
        "region_too_long",
    );
    let control_kind = text_field(
        &mut errors,
        "control_kind",
        &req.control_kind,
        300,
        "control_kind_required",
        "control_kind_too_long",
    );
    if !errors.is_empty() {
        return Err(ApiError::Fields(errors));
    }
    let id = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO control_bodies (id, name, region, control_kind, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(id.to_string())
    .bind(&name)
    .bind(&region)
    .bind(&control_kind)
    .bind(now_micros())
    .execute(&state.db)
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ControlBody {
            id,
            name,
            region,
            control_kind,
        }),
    ))
}

/// Assign-control-body request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignControlBody {
    /// The control body, or null to leave none.
    pub control_body_id: Option<Uuid>,
}

/// Makes a user a member of a control body (admin).
#[utoipa::path(post, path = "/api/users/{id}/control-body", tag = "organisations", params(("id" = Uuid, Path)),
    request_body = AssignControlBody,
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn assign_control_body(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<AssignControlBody>,
) -> ApiResult<StatusCode> {
    caller.require(&[Role::Admin])?;
    if let Some(cb) = req.control_body_id {
        let known = sqlx::query("SELECT id FROM control_bodies WHERE id = $1")
            .bind(cb.to_string())
            .fetch_optional(&state.db)
            .await?;
        if known.is_none() {
            return Err(ApiError::NotFound("control body"));
        }
    }
    let done = sqlx::query("UPDATE users SET control_body_id = $1 WHERE id = $2")
        .bind(req.control_body_id.map(|u| u.to_string()))
        .bind(id.to_string())
        .execute(&state.db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("user"));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The control body a user belongs to, if any.
pub async fn control_body_of(db: &AnyPool, user: Uuid) -> ApiResult<Option<ControlBody>> {
    let row = sqlx::query(
        "SELECT c.id, c.name, c.region, c.control_kind FROM users u \
         JOIN control_bodies c ON c.id = u.control_body_id WHERE u.id = $1",
    )
    .bind(user.to_string())
    .fetch_optional(db)
    .await?;
    row.map(|r| {
        Ok(ControlBody {
            id: r.uuid(0)?,
            name: r.col(1)?,
            region: r.col(2)?,
            control_kind: r.col(3)?,
        })
    })
    .transpose()
}

/// An organisation (a business by INN).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Organisation {
    /// Id.
    pub id: Uuid,
    /// INN.
    pub inn: String,
    /// Name.
    pub name: String,
}

/// The organisation with this INN, made (with this name) if there is none yet.
pub async fn organisation_for(db: &AnyPool, inn: &str, name: &str) -> ApiResult<Organisation> {
    // A racing insert of the same INN loses on the unique index; either way one row remains.
    let _ = sqlx::query(
        "INSERT INTO organisations (id, inn, name, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (inn) DO NOTHING",
    )
    .bind(Uuid::new_v4().to_string())
    .bind(inn)
    .bind(name)
    .bind(now_micros())
    .execute(db)
    .await?;
    let r = sqlx::query("SELECT id, inn, name FROM organisations WHERE inn = $1")
        .bind(inn)
        .fetch_one(db)
        .await?;
    Ok(Organisation {
        id: r.uuid(0)?,
        inn: r.col(1)?,
        name: r.col(2)?,
    })
}

/// Create-link request.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLink {
    /// Who the link is for (e.g. the representative's name), at most 200 characters.
    #[serde(default)]
    pub label: Option<String>,
}

/// A fresh sign-in link: the token and code are shown once.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CreatedLink {
    /// The link's id (to revoke it).
    pub id: Uuid,
    /// The organisation it opens.
    pub organisation: Organisation,
    /// The one-time link for the representative: `<public_url>/my/#s=<token>`.
    pub url: String,
    /// The same access as a short code, to type with the INN.
    pub code: String,
    /// Until when it may be used.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

fn new_code() -> String {
    use rand::Rng;
    let mut rng = rand::rngs::OsRng;
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[rng.gen_range(0..CODE_ALPHABET.len())] as char)
        .collect()
}

/// The canonical form of a typed code: upper case, no separators, Crockford's look-alikes.
fn normalize_code(code: &str) -> String {
    code.chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| match c.to_ascii_uppercase() {
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        })
        .collect()
}

/// Makes a one-time sign-in link and code for the business of an inspection (its manager).
#[utoipa::path(post, path = "/api/inspections/{id}/business-links", tag = "organisations", params(("id" = Uuid, Path)),
    request_body = NewLink,
    responses((status = 201, body = CreatedLink), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn create_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
    ApiJson(req): ApiJson<NewLink>,
) -> ApiResult<(StatusCode, Json<CreatedLink>)> {
    let (insp, _) = load_for(&state.db, &caller, id, Access::Manage).await?;
    let staff = caller.staff()?;
    let label = req.label.unwrap_or_default().trim().to_string();
    if label.chars().count() > 200 {
        return Err(ApiError::Fields(vec![FieldError::new(
            "label",
            "label_too_long",
        )]));
    }
    let org = organisation_for(&state.db, insp.business.inn.as_str(), &insp.business.name).await?;
    let token = auth::new_token();
    let code = new_code();
    let now = now_micros();
    let expires = now + LINK_TTL_SECS * 1_000_000;
    let link_id = Uuid::new_v4();
    let mut tx = crate::db::begin(&state.db).await?;
    sqlx::query(
        "INSERT INTO business_links (id, organisation_id, inspection_id, token_hash, code_hash, \
         label, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(link_id.to_string())
    .bind(org.id.to_string())
    .bind(id.to_string())
    .bind(auth::hash_token(&token))
    .bind(auth::hash_token(&format!("{}:{code}", org.inn)))
    .bind(if label.is_empty() { &org.name } else { &label })
    .bind(staff.id.to_string())
    .bind(now)
    .bind(expires)
    .execute(&mut *tx)
    .await?;
    let open = sqlx::query(
        "SELECT id FROM business_links WHERE organisation_id = $1 AND used_at IS NULL \
         AND revoked_at IS NULL AND expires_at > $2 ORDER BY created_at DESC, id",
    )
    .bind(org.id.to_string())
    .bind(now)
    .fetch_all(&mut *tx)
    .await?;
    for r in open.iter().skip(MAX_OPEN_LINKS) {
        sqlx::query("UPDATE business_links SET revoked_at = $1 WHERE id = $2")
            .bind(now)
            .bind(r.col::<String>(0)?)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedLink {
            id: link_id,
            organisation: org,
            url: format!("{}/my/#s={token}", state.config.public_url),
            code: format!("{}-{}-{}", &code[0..4], &code[4..8], &code[8..12]),
            expires_at: from_micros(expires),
        }),
    ))
}

/// Revokes a sign-in link and ends the sessions it opened (the inspector who made it, or an
/// admin).
#[utoipa::path(post, path = "/api/business-links/{id}/revoke", tag = "organisations", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 403, body = crate::error::ErrorBody), (status = 404, body = crate::error::ErrorBody)))]
pub async fn revoke_link(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let staff = caller.staff()?;
    let row =
        sqlx::query("SELECT created_by FROM business_links WHERE id = $1 AND revoked_at IS NULL")
            .bind(id.to_string())
            .fetch_optional(&state.db)
            .await?
            .ok_or(ApiError::NotFound("business link"))?;
    if staff.role != Role::Admin && row.uuid(0)? != staff.id {
        return Err(ApiError::NotFound("business link"));
    }
    let mut tx = crate::db::begin(&state.db).await?;
    sqlx::query("UPDATE business_links SET revoked_at = $1 WHERE id = $2")
        .bind(now_micros())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM business_sessions WHERE link_id = $1")
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sign-in request: the link's token, or the INN with the code.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignIn {
    /// The token from the link.
    #[serde(default)]
    pub token: Option<String>,
    /// The organisation's INN (with `code`).
    #[serde(default)]
    pub inn: Option<String>,
    /// The code (with `inn`); case and dashes do not matter.
    #[serde(default)]
    pub code: Option<String>,
}

/// A signed-in representative.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SignedIn {
    /// Whose representative.
    pub business: SessionBusiness,
    /// Echo in `X-CSRF-Token` on writes.
    pub csrf_token: String,
}

/// The representative signs in by its one-time link or code; the link is used up and a
/// session cookie is set.
#[utoipa::path(post, path = "/api/business/sign-in", tag = "organisations", request_body = SignIn,
    responses((status = 200, body = SignedIn), (status = 400, body = crate::error::ErrorBody),
              (status = 404, description = "no such link or code", body = crate::error::ErrorBody),
              (status = 410, description = "sign_in_used, sign_in_expired, sign_in_revoked", body = crate::error::ErrorBody)))]
pub async fn sign_in(
    State(state): State<AppState>,
    ApiJson(req): ApiJson<SignIn>,
) -> ApiResult<Response> {
    let hash = match (&req.token, &req.inn, &req.code) {
        (Some(t), None, None) if t.len() <= 128 => auth::hash_token(t),
        (None, Some(inn), Some(code)) if inn.len() <= 12 && code.len() <= 40 => {
            auth::hash_token(&format!("{}:{}", inn.trim(), normalize_code(code)))
        }
        (Some(_), None, None) => return Err(ApiError::NotFound("sign-in link")),
        _ => {
            return Err(ApiError::Invalid {
                code: "sign_in_shape",
                message: "give the link's token, or the INN and the code".into(),
            })
        }
    };
    let column = if req.token.is_some() {
        "token_hash"
    } else {
        "code_hash"
    };
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT l.id, l.expires_at, l.used_at, l.revoked_at, o.id, o.inn, o.name, l.label \
         FROM business_links l JOIN organisations o ON o.id = l.organisation_id \
         WHERE l.{column} = $1"
    )))
    .bind(&hash)
    .fetch_optional(&state.db)
    .await?
    .ok_or(ApiError::NotFound("sign-in link"))?;
    let now = now_micros();
    let gone = |code: &'static str, message: &str| ApiError::Gone {
        code,
        message: message.into(),
    };
    if row.col::<Option<i64>>(3)?.is_some() {
        return Err(gone("sign_in_revoked", "the sign-in link was revoked"));
    }
    if row.col::<Option<i64>>(2)?.is_some() {
        return Err(gone("sign_in_used", "the sign-in link was already used"));
    }
    if row.col::<i64>(1)? <= now {
        return Err(gone("sign_in_expired", "the sign-in link has expired"));
    }
    let link_id: Uuid = row.uuid(0)?;
    let business = SessionBusiness {
        organisation_id: row.uuid(4)?,
        inn: row.col(5)?,
        name: row.col(6)?,
        label: row.col(7)?,
    };
    let token = auth::new_token();
    let csrf = auth::new_token();
    let mut tx = crate::db::begin(&state.db).await?;
    // Used once: of two racing sign-ins by the same link, only one updates the row.
    let used = sqlx::query(
        "UPDATE business_links SET used_at = $1 WHERE id = $2 AND used_at IS NULL \
         AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(link_id.to_string())
    .execute(&mut *tx)
    .await?;
    if used.rows_affected() != 1 {
        return Err(gone("sign_in_used", "the sign-in link was already used"));
    }
    sqlx::query(
        "INSERT INTO business_sessions (token_hash, organisation_id, link_id, csrf_token, \
         created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(auth::hash_token(&token))
    .bind(business.organisation_id.to_string())
    .bind(link_id.to_string())
    .bind(&csrf)
    .bind(now)
    .bind(now + SESSION_TTL_SECS * 1_000_000)
    .execute(&mut *tx)
    .await?;
    // Sessions that ended authorize nothing.
    sqlx::query("DELETE FROM business_sessions WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let cookie = auth::set_cookie(
        BUSINESS_COOKIE,
        &token,
        SESSION_TTL_SECS,
        state.config.secure_cookies(),
    );
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        headers.insert(header::SET_COOKIE, v);
    }
    Ok((
        headers,
        Json(SignedIn {
            business,
            csrf_token: csrf,
        }),
    )
        .into_response())
}
