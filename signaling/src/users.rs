//! Accounts and the login endpoints.

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use std::net::SocketAddr;
use uuid::Uuid;

use crate::auth::{self, Caller, Role, GUEST_COOKIE, SESSION_COOKIE};
use crate::db::{from_micros, now_micros, RowExt};
use crate::error::{ApiError, ApiResult};
use crate::extract::ApiJson;
use crate::AppState;

/// Failed logins allowed per user name within the window.
const MAX_FAILURES_PER_USER: i64 = 5;
/// Failed logins allowed per client address within the window.
const MAX_FAILURES_PER_IP: i64 = 30;
/// The throttling window.
const THROTTLE_WINDOW_SECS: i64 = 15 * 60;

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
        "SELECT id, username, display_name, role, disabled, created_at FROM users ORDER BY username",
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(user_from_row).collect()
}

/// Disables an account and ends its sessions. Returns false when no such user.
pub async fn disable_user(db: &AnyPool, username_or_id: &str) -> ApiResult<bool> {
    let mut tx = db.begin().await?;
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

/// Logs in; sets the session cookie.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth", request_body = LoginRequest,
    responses((status = 200, body = MeResponse), (status = 401, body = crate::error::ErrorBody),
              (status = 429, body = crate::error::ErrorBody)))]
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    ApiJson(req): ApiJson<LoginRequest>,
) -> ApiResult<Response> {
    let now = now_micros();
    let since = now - THROTTLE_WINDOW_SECS * 1_000_000;
    let user_key = format!("user:{}", req.username.to_lowercase());
    let ip_key = format!("ip:{}", peer.ip());
    for (key, max) in [
        (&user_key, MAX_FAILURES_PER_USER),
        (&ip_key, MAX_FAILURES_PER_IP),
    ] {
        let row =
            sqlx::query("SELECT COUNT(*), MIN(at) FROM login_attempts WHERE key = $1 AND at > $2")
                .bind(key)
                .bind(since)
                .fetch_one(&state.db)
                .await?;
        let failures: i64 = row.col(0)?;
        if failures >= max {
            let oldest: i64 = row.col::<Option<i64>>(1)?.unwrap_or(now);
            let retry = (oldest + THROTTLE_WINDOW_SECS * 1_000_000 - now) / 1_000_000 + 1;
            return Err(ApiError::TooManyAttempts {
                retry_after_secs: retry.max(1) as u64,
            });
        }
    }
    let row = sqlx::query(
        "SELECT id, username, display_name, role, password_hash FROM users \
         WHERE username = $1 AND disabled = 0",
    )
    .bind(&req.username)
    .fetch_optional(&state.db)
    .await?;
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
        let mut tx = state.db.begin().await?;
        for key in [&user_key, &ip_key] {
            sqlx::query("INSERT INTO login_attempts (key, at) VALUES ($1, $2)")
                .bind(key)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM login_attempts WHERE at < $1")
            .bind(since)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        metrics::counter!("inspector_login_failures_total").increment(1);
        return Err(ApiError::BadCredentials);
    };
    let token = auth::new_token();
    let csrf = auth::new_token();
    let ttl = i64::from(state.config.session_ttl_hours) * 3600;
    let user_id: String = row.col(0)?;
    let user = SessionUser {
        id: row.uuid(0)?,
        username: row.col(1)?,
        display_name: row.col(2)?,
        role: row.parsed(3, "user role", Role::parse)?,
    };
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(auth::hash_token(&token))
    .bind(&user_id)
    .bind(&csrf)
    .bind(now)
    .bind(now + ttl * 1_000_000)
    .execute(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM login_attempts WHERE key = $1")
        .bind(&user_key)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM sessions WHERE expires_at < $1")
        .bind(now)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    let body = MeResponse {
        user: Some(user),
        guest: None,
        csrf_token: csrf,
    };
    let cookie = auth::set_cookie(SESSION_COOKIE, &token, ttl, state.config.secure_cookies());
    Ok(([(header::SET_COOKIE, cookie)], Json(body)).into_response())
}

/// Ends the session (and forgets a guest cookie).
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth", responses((status = 204)))]
pub async fn logout(
    State(state): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> ApiResult<Response> {
    if let (Caller::Staff(_), Some(token)) = (&caller, auth::cookie(&headers, SESSION_COOKIE)) {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(auth::hash_token(&token))
            .execute(&state.db)
            .await?;
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
            csrf_token: s.csrf.clone(),
        },
        Caller::Guest(g) => MeResponse {
            user: None,
            guest: Some(SessionGuest {
                inspection_id: g.inspection_id,
                label: g.label.clone(),
            }),
            csrf_token: g.csrf.clone(),
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
    if disable_user(&state.db, &id.to_string()).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("user"))
    }
}
