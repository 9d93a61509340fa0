//! The one error type of the HTTP API.
//!
//! Every failure a client can see has a stable snake_case `code` and a human message, in one
//! shape: `{"error":{"code":"…","message":"…"}}`. Internal causes are logged, never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An error answered to an HTTP client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid session or invitation accompanied the request.
    #[error("authentication required")]
    Unauthenticated,
    /// Wrong user name or password.
    #[error("wrong username or password")]
    BadCredentials,
    /// The caller is known but may not do this.
    #[error("this action is not allowed for your role")]
    Forbidden,
    /// A cookie-authenticated write came without the right CSRF token.
    #[error("missing or invalid CSRF token")]
    Csrf,
    /// The thing does not exist, or the caller may not know that it exists.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The request was understood but its content is invalid.
    #[error("{message}")]
    Invalid {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        message: String,
    },
    /// Fields of the request are invalid: every one of them, with a code each, so a form can
    /// mark them all at once (400 `validation_failed`).
    #[error("invalid fields: {}", .0.iter().map(|f| format!("{} ({})", f.field, f.code)).collect::<Vec<_>>().join(", "))]
    Fields(Vec<FieldError>),
    /// The request conflicts with the current state (e.g. an illegal status transition).
    #[error("{message}")]
    Conflict {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        message: String,
    },
    /// The thing existed but no longer may be used (expired or revoked invitation).
    #[error("{message}")]
    Gone {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        message: String,
    },
    /// Too many attempts; retry after the given number of seconds.
    #[error("too many attempts, retry later")]
    TooManyAttempts {
        /// Seconds until the next attempt may succeed.
        retry_after_secs: u64,
    },
    /// The body is larger than the endpoint accepts.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// Something this request needs does not answer now (another node); retry later.
    #[error("{message}")]
    Unavailable {
        /// Stable code.
        code: &'static str,
        /// Human explanation.
        message: String,
    },
    /// A database failure; logged, answered as 500 without detail.
    #[error("database error")]
    Database(#[from] sqlx::Error),
    /// Any other internal failure; logged, answered as 500 without detail.
    #[error("internal error")]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A 400 with the `validation_failed` code.
    pub fn validation(message: impl Into<String>) -> Self {
        ApiError::Invalid {
            code: "validation_failed",
            message: message.into(),
        }
    }

    /// The HTTP status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            ApiError::BadCredentials => (StatusCode::UNAUTHORIZED, "bad_credentials"),
            ApiError::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::Csrf => (StatusCode::FORBIDDEN, "csrf_failed"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Invalid { code, .. } => (StatusCode::BAD_REQUEST, code),
            ApiError::Fields(_) => (StatusCode::BAD_REQUEST, "validation_failed"),
            ApiError::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            ApiError::Gone { code, .. } => (StatusCode::GONE, code),
            ApiError::TooManyAttempts { .. } => {
                (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts")
            }
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::Unavailable { code, .. } => (StatusCode::SERVICE_UNAVAILABLE, code),
            ApiError::Database(e) if checklist_sync::unreachable(e) => {
                (StatusCode::SERVICE_UNAVAILABLE, DATABASE_UNAVAILABLE)
            }
            ApiError::Database(_) | ApiError::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

/// One invalid field: where (a dotted path into the request body, e.g. `business.inn`) and
/// what (a stable code; the pages say it in words).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Dotted path of the field in the request body.
    pub field: String,
    /// Stable snake_case code of what is wrong with it.
    pub code: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: &str, code: &'static str) -> FieldError {
        FieldError {
            field: field.into(),
            code: code.into(),
        }
    }
}

/// The wire shape of an error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, safe to branch on.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// With `validation_failed`: every invalid field (absent when none is named).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

/// Builds the error response shape; shared with handlers that answer errors outside `ApiError`.
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    error_response_with(status, code, message, Vec::new())
}

fn error_response_with(
    status: StatusCode,
    code: &str,
    message: &str,
    fields: Vec<FieldError>,
) -> Response {
    let body = ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
            fields,
        },
    };
    (status, axum::Json(body)).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let message = match &self {
            ApiError::Database(e) if checklist_sync::unreachable(e) => {
                tracing::warn!(error = %e, "the database does not answer");
                "the database does not answer; retry in a few seconds".to_string()
            }
            ApiError::Database(e) => {
                tracing::error!(error = %e, "database error");
                "internal error".to_string()
            }
            ApiError::Internal(e) => {
                tracing::error!(error = ?e, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let fields = match &self {
            ApiError::Fields(f) => f.clone(),
            _ => Vec::new(),
        };
        let mut response = error_response_with(status, code, &message, fields);
        let retry_after = match self {
            ApiError::TooManyAttempts { retry_after_secs } => Some(retry_after_secs),
            _ if code == DATABASE_UNAVAILABLE => Some(DATABASE_RETRY_SECS),
            _ => None,
        };
        if let Some(secs) = retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        response
    }
}

/// The code of a database that does not answer (503, `Retry-After`): an outage, not a bug.
pub const DATABASE_UNAVAILABLE: &str = checklist_sync::proto::codes::DATABASE_UNAVAILABLE;
/// The `Retry-After` of a `database_unavailable` answer.
const DATABASE_RETRY_SECS: u64 = 5;

/// A room's refusal that says "not here, not now" rather than "no": `moved` (another node runs
/// the inspection; several nodes) and `database_unavailable` are 503s with that code, to retry.
/// `None` for every other code, which each caller maps to its own errors.
pub fn sync_unavailable(e: &checklist_sync::OpError) -> Option<ApiError> {
    let code = match e.code.as_str() {
        checklist_sync::proto::codes::MOVED => checklist_sync::proto::codes::MOVED,
        DATABASE_UNAVAILABLE => DATABASE_UNAVAILABLE,
        _ => return None,
    };
    Some(ApiError::Unavailable {
        code,
        message: e.message.clone(),
    })
}

/// Result alias for handlers.
pub type ApiResult<T> = Result<T, ApiError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_database_that_does_not_answer_is_a_503_to_retry_and_a_refusal_stays_internal() {
        let outage = ApiError::Database(sqlx::Error::PoolTimedOut).into_response();
        assert_eq!(outage.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            outage
                .headers()
                .get(header::RETRY_AFTER)
                .map(|v| v.as_bytes()),
            Some(DATABASE_RETRY_SECS.to_string().as_bytes())
        );
        let body = axum::body::to_bytes(outage.into_body(), 4096)
            .await
            .expect("a small body");
        let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
        assert_eq!(body["error"]["code"], DATABASE_UNAVAILABLE);

        let refused = ApiError::Database(sqlx::Error::RowNotFound).into_response();
        assert_eq!(refused.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(refused.headers().get(header::RETRY_AFTER).is_none());
    }
}
