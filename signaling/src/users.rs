//! Accounts and the login endpoints.

use std::net::IpAddr;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use uuid::Uuid;

use crate::auth::{self, Caller, Role, GUEST_COOKIE, SESSION_COOKIE};
use crate::db::{from_micros, now_micros, RowExt};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ClientIp};
use crate::throttle;
use crate::AppState;

/// The cookie that marks a browser which logged in successfully before (see `login`).
pub const DEVICE_COOKIE: &str = "inspector_device";
/// How long a device cookie is kept.
const DEVICE_TTL_SECS: i64 = 365 * 24 * 3600;

/// A staff account as shown by the API (never with its hash).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct User {
    /// Id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// Role.
    pub role: Role,
    /// Whether the account may log in.
    pub disabled: bool,
    /// Creation time.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// New account fields.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Login name: 3–64 characters of letters, digits, `.`, `_`, `-`.
    pub username: String,
    /// Shown name; defaults to the login name.
    pub display_name: Option<String>,
    /// Role.
    pub role: Role,
    /// At least 10 characters.
    pub password: String,
}

/// Validates and creates an account.
pub async fn create_user(db: &AnyPool, new: NewUser) -> ApiResult<User> {
    let username = new.username.trim().to_string();
    if username.len() < 3
        || username.len() > 64
        || !username
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Err(ApiError::validation(
            "username must be 3–64 letters, digits, '.', '_' or '-'",
        ));
    }
    if new.password.chars().count() < 10 {
        return Err(ApiError::validation(
            "password must have at least 10 characters",
        ));
    }
    let display_name = new
        .display_name
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    let display_name = display_name.unwrap_or_else(|| username.clone());
    let hash = auth::hash_password(&new.password)?;
    let id = Uuid::new_v4();
    let now = now_micros();
    let inserted = sqlx::query(
        "INSERT INTO users (id, username, display_name, role, password_hash, disabled, created_at) \
         VALUES ($1, $2, $3, $4, $5, 0, $6) ON CONFLICT (username) DO NOTHING",
    )
    .bind(id.to_string())
    .bind(&username)
    .bind(&display_name)
    .bind(new.role.as_str())
    .bind(hash)
    .bind(now)
    .execute(db)
    .await?;
    if inserted.rows_affected() == 0 {
        return Err(ApiError::Conflict {
            code: "username_taken",
            message: "this username is taken".into(),
        });
    }
    Ok(User {
        id,
        username,
        display_name,
        role: new.role,
        disabled: false,
        created_at: from_micros(now),
    })
}

/// All accounts, by name.
pub async fn list_users(db: &AnyPool) -> ApiResult<Vec<User>> {
    let rows = sqlx::query(
        "SELECT id, username, display_name, role, disabled, created_at FROM users \
         WHERE id NOT IN (SELECT user_id FROM api_tokens) ORDER BY username",
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(user_from_row).collect()
}

/// Disables an account and ends its sessions. Returns false when no such user. Its open
/// sockets close at once on the nodes that hear `bus` (PostgreSQL), else on the next access
/// re-check; the caller's own node closes them through `AccessWatch::end_user`.
pub async fn disable_user(
    db: &AnyPool,
    bus: &dyn crate::signals::Bus,
    username_or_id: &str,
) -> ApiResult<bool> {
    let mut tx = crate::db::begin(&db).await?;
    let row = sqlx::query("SELECT id FROM users WHERE username = $1 OR id = $1")
        .bind(username_or_id)
        .fetch_optional(&mut *tx)
        .await?;
    let Some(row) = row else { return Ok(false) };
    let id: String = row.col(0)?;
    sqlx::query("UPDATE users SET disabled = 1 WHERE id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE user_id = $1")
        .bind(&id)
        .execute(&mut *tx)
        .await?;
    // Every node re-checks this account's sockets at once (`signals`).
    let user = Uuid::parse_str(&id).map_err(|e| crate::db::corrupt("user id", e))?;
    bus.publish(&mut tx, &crate::signals::Signal::UserDisabled(user))
        .await?;
    tx.commit().await?;
    Ok(true)
}

/// Number of accounts (the first start with none explains how to create an admin).
pub async fn count_users(db: &AnyPool) -> ApiResult<i64> {
    sqlx::query("SELECT COUNT(*) FROM users")
        .fetch_one(db)
        .await?
        .col(0)
}

fn user_from_row(r: sqlx::any::AnyRow) -> ApiResult<User> {
    Ok(User {
        id: r.uuid(0)?,
        username: r.col(1)?,
        display_name: r.col(2)?,
        role: r.parsed(3, "user role", Role::parse)?,
        disabled: r.col::<i64>(4)? != 0,
        created_at: r.time(5)?,
    })
}

/// Login request.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
}

/// The logged-in user as returned by login and `me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionUser {
    /// Id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Shown name.
    pub display_name: String,
    /// Role.
    pub role: Role,
}

/// The invitee as returned by `me`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SessionGuest {
    /// The inspection it may see.
    pub inspection_id: Uuid,
    /// The invitation's label.
    pub label: String,
}

/// Who the caller is, with the CSRF token for its writes.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MeResponse {
    /// Set for staff.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<SessionUser>,
    /// Set for an invitee.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub guest: Option<SessionGuest>,
    /// Set for a business representative (organisation session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub business: Option<crate::orgs::SessionBusiness>,
    /// Echo in `X-CSRF-Token` on writes.
    pub csrf_token: String,
}

/// Routes of this module.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auth/login", post(login))
        .route("/api/auth/logout", post(logout))
        .route("/api/auth/me", get(me))
        .route("/api/users", get(list).post(create))
        .route("/api/users/{id}/disable", post(disable))
}

/// The throttling key of a client address: IPv6 clients are grouped by /64, the block one
/// subscriber usually holds, so rotating addresses within it gains nothing.
pub fn address_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// Whether the request carries a device cookie issued to `user_id` by an earlier login.
async fn known_device(db: &AnyPool, headers: &HeaderMap, user_id: &str) -> ApiResult<bool> {
    let Some(token) = auth::cookie(headers, DEVICE_COOKIE) else {
        return Ok(false);
    };
    Ok(
        sqlx::query("SELECT 1 FROM login_devices WHERE token_hash = $1 AND user_id = $2")
            .bind(auth::hash_token(&token))
            .bind(user_id)
            .fetch_optional(db)
            .await?
            .is_some(),
    )
}

/// A new staff session: its CSRF token and the `Set-Cookie` value carrying its token.
pub struct NewSession {
    /// The session's CSRF token.
    pub csrf: String,
    /// The session cookie (HttpOnly, SameSite=Strict).
    pub cookie: String,
}

/// Starts a staff session for `user_id` in `tx` (and forgets ended ones): the one way staff
/// get a session, by password here or through the identity provider (`oidc`).
pub async fn start_session(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    state: &AppState,
    user_id: &str,
    now: i64,
) -> ApiResult<NewSession> {
    let token = auth::new_token();
    let csrf = auth::new_token();
    let ttl = i64::from(state.config.session_ttl_hours) * 3600;
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(auth::hash_token(&token))
    .bind(user_id)
    .bind(&csrf)
    .bind(now)
    .bind(now + ttl * 1_000_000)
    .execute(&mut **tx)
    .await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
        .bind(now)
        .execute(&mut **tx)
        .await?;
    let cookie = auth::set_cookie(SESSION_COOKIE, &token, ttl, state.config.secure_cookies());
    Ok(NewSession { csrf, cookie })
}

/// Logs in; sets the session cookie (and a device cookie on a browser's first success).
///
/// Throttling (limits in `[login]`, one window): failures per user name and client address,
/// per client address, and per user name from browsers that never logged in as that user.
/// A browser holding this user's device cookie is not counted against the last limit, so an
/// attacker hammering a known user name from many addresses cannot lock its owner out of
/// the browsers the owner already uses; from a given address the attacker only locks itself.
/// Each attempt is reserved atomically before the password is hashed (`throttle`).
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    if !state.config.oidc.password_login {
        // Staff sign in through the identity provider only (`[oidc] password_login`).
        return Err(ApiError::Invalid {
            code: "password_login_disabled",
            message: "password sign-in is turned off; sign in through the identity provider".into(),
        });
    }
    let now = now_micros();
    let limits = &state.config.login;
    let window = i64::try_from(limits.window_secs)
        .unwrap_or(i64::MAX / 2_000_000)
        .saturating_mul(1_000_000);
    // User names are at most 64 characters; longer ones exist nowhere and share a key.
    let name: String = req.username.to_lowercase().chars().take(128).collect();
    let addr = address_key(ip);
    let row = sqlx::query(
        "SELECT id, username, display_name, role, password_hash FROM users \
         WHERE username = $1 AND disabled = 0",
    )
    .bind(&req.username)
    .fetch_optional(&state.db)
    .await?;
    let known = match &row {
        Some(r) => known_device(&state.db, &headers, &r.col::<String>(0)?).await?,
        None => false,
    };
    let mut keys = vec![
        (format!("pair:{addr}|{name}"), limits.per_user_and_address),
        (format!("addr:{addr}"), limits.per_address),
    ];
    if !known {
        keys.push((format!("user:{name}"), limits.per_user_new_devices));
    }
    let mut held = Vec::with_capacity(keys.len());
    for (key, limit) in &keys {
        match throttle::reserve(&state.db, key, *limit, window, now).await? {
            Ok(r) => held.push(r),
            Err(throttle::RetryAfter(secs)) => {
                for r in &held {
                    throttle::release(&state.db, r).await?;
                }
                metrics::counter!("inspector_login_throttled_total").increment(1);
                return Err(ApiError::TooManyAttempts {
                    retry_after_secs: secs,
                });
            }
        }
    }
    // Hash something even for unknown users so timing does not reveal which names exist.
    let stored = row
        .as_ref()
        .map(|r| r.col::<String>(4))
        .transpose()?
        .unwrap_or_else(|| state.dummy_hash.to_string());
    let password = req.password.clone();
    let ok = tokio::task::spawn_blocking(move || auth::verify_password(&password, &stored))
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let Some(row) = row.filter(|_| ok) else {
        // The reservations stay: they are this failure's record.
        throttle::sweep(&state.db, window, now).await?;
        metrics::counter!("inspector_login_failures_total").increment(1);
        return Err(ApiError::BadCredentials);
    };
    // A success is no failure: the pair's count starts over, the others get their place back.
    for (i, r) in held.iter().enumerate() {
        if i == 0 {
            throttle::clear(&state.db, r).await?;
        } else {
            throttle::release(&state.db, r).await?;
        }
    }
    let user_id: String = row.col(0)?;
    let user = SessionUser {
        id: row.uuid(0)?,
        username: row.col(1)?,
        display_name: row.col(2)?,
        role: row.parsed(3, "user role", Role::parse)?,
    };
    let mut tx = crate::db::begin(&state.db).await?;
    let session = start_session(&mut tx, &state, &user_id, now).await?;
    let csrf = session.csrf.clone();
    let device_cookie = if known {
        sqlx::query("UPDATE login_devices SET last_used_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(auth::hash_token(
                &auth::cookie(&headers, DEVICE_COOKIE).unwrap_or_default(),
            ))
            .execute(&mut *tx)
            .await?;
        None
    } else {
        let device = auth::new_token();
        sqlx::query(
            "INSERT INTO login_devices (token_hash, user_id, created_at, last_used_at) VALUES ($1, $2, $3, $3)",
        )
        .bind(auth::hash_token(&device))
        .bind(&user_id)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM login_devices WHERE last_used_at < $1")
            .bind(now - DEVICE_TTL_SECS * 1_000_000)
            .execute(&mut *tx)
            .await?;
        Some(device)
    };
    tx.commit().await?;
    let body = MeResponse {
        user: Some(user),
        guest: None,
        business: None,
        csrf_token: csrf,
    };
    let secure = state.config.secure_cookies();
    let mut response = ([(header::SET_COOKIE, session.cookie)], Json(body)).into_response();
    if let Some(device) = device_cookie {
        // Only the login endpoint needs it.
        let v = format!(
            "{DEVICE_COOKIE}={device}; Path=/api/auth/login; HttpOnly; SameSite=Strict; Max-Age={DEVICE_TTL_SECS}{}",
            if secure { "; Secure" } else { "" }
        );
        if let Ok(v) = header::HeaderValue::from_str(&v) {
            response.headers_mut().append(header::SET_COOKIE, v);
        }
    }
    Ok(response)
}

/// Deletes a session (`delete` binds its hash) and closes its sockets on every node.
async fn end_session(state: &AppState, delete: &'static str, hash: &str) -> ApiResult<()> {
    let mut tx = crate::db::begin(&state.db).await?;
    sqlx::query(delete).bind(hash).execute(&mut *tx).await?;
    state
        .bus
        .publish(
            &mut tx,
            &crate::signals::Signal::SessionEnded(hash.to_string()),
        )
        .await?;
    tx.commit().await?;
    state.access.end_session(hash);
    Ok(())
}

/// Ends the session (staff or guest) and closes its live sockets.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(State(state): State<AppState>, caller: Caller) -> ApiResult<Response> {
    match &caller {
        Caller::Staff(s) => {
            end_session(
                &state,
                "DELETE FROM sessions WHERE token_hash = $1",
                &s.session_hash,
            )
            .await?
        }
        Caller::Guest(g) => {
            end_session(
                &state,
                "DELETE FROM guest_sessions WHERE token_hash = $1",
                &g.session_hash,
            )
            .await?
        }
        Caller::Business(b) => {
            sqlx::query("DELETE FROM business_sessions WHERE token_hash = $1")
                .bind(&b.session_hash)
                .execute(&state.db)
                .await?;
        }
    }
    let secure = state.config.secure_cookies();
    Ok((
        StatusCode::NO_CONTENT,
        [
            (
                header::SET_COOKIE,
                auth::set_cookie(SESSION_COOKIE, "", 0, secure),
            ),
            (
                header::SET_COOKIE,
                auth::set_cookie(GUEST_COOKIE, "", 0, secure),
            ),
            (
                header::SET_COOKIE,
                auth::set_cookie(auth::BUSINESS_COOKIE, "", 0, secure),
            ),
            // The durable results link still works: only this browser forgets it.
            (
                header::SET_COOKIE,
                auth::set_cookie(auth::RESULTS_COOKIE, "", 0, secure),
            ),
        ],
    )
        .into_response())
}

/// Who am I.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth",
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::ErrorBody)))]
pub async fn me(caller: Caller) -> Json<MeResponse> {
    Json(me_of(&caller))
}

/// The `me` body for a caller.
pub fn me_of(caller: &Caller) -> MeResponse {
    match caller {
        Caller::Staff(s) => MeResponse {
            user: Some(SessionUser {
                id: s.id,
                username: s.username.clone(),
                display_name: s.display_name.clone(),
                role: s.role,
            }),
            guest: None,
            business: None,
            csrf_token: s.csrf.clone(),
        },
        Caller::Guest(g) => MeResponse {
            user: None,
            guest: Some(SessionGuest {
                inspection_id: g.inspection_id,
                label: g.label.clone(),
            }),
            business: None,
            csrf_token: g.csrf.clone(),
        },
        Caller::Business(b) => MeResponse {
            user: None,
            guest: None,
            business: Some(crate::orgs::SessionBusiness {
                organisation_id: b.organisation_id,
                inn: b.inn.clone(),
                name: b.name.clone(),
                label: b.label.clone(),
            }),
            csrf_token: b.csrf.clone(),
        },
    }
}

/// The list of accounts.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct UserList {
    /// Accounts, by name.
    pub users: Vec<User>,
}

/// Lists accounts (admin).
#[utoipa::path(get, path = "/api/users", tag = "users", responses((status = 200, body = UserList)))]
pub async fn list(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<UserList>> {
    caller.require(&[Role::Admin])?;
    Ok(Json(UserList {
        users: list_users(&state.db).await?,
    }))
}

/// Creates an account (admin).
#[utoipa::path(post, path = "/api/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = User), (status = 409, body = crate::error::ErrorBody)))]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(new): ApiJson<NewUser>,
) -> ApiResult<(StatusCode, Json<User>)> {
    caller.require(&[Role::Admin])?;
    Ok((
        StatusCode::CREATED,
        Json(create_user(&state.db, new).await?),
    ))
}

/// Disables an account (admin).
#[utoipa::path(post, path = "/api/users/{id}/disable", tag = "users", params(("id" = Uuid, Path)),
    responses((status = 204), (status = 404, body = crate::error::ErrorBody)))]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<Uuid>,
) -> ApiResult<StatusCode> {
    let me = caller.require(&[Role::Admin])?;
    if me.id == id {
        return Err(ApiError::Conflict {
            code: "cannot_disable_self",
            message: "you cannot disable your own account".into(),
        });
    }
    if disable_user(&state.db, state.bus.as_ref(), &id.to_string()).await? {
        state.access.end_user(id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("user"))
    }
}
