//! Request extractors that answer malformed input in the API's error shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, StatusCode};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body. Not JSON → `malformed_json`; JSON of the wrong shape → `invalid_body`;
/// over the body limit → 413 `payload_too_large`; wrong content type → `unsupported_media_type`.
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|m| {
                let m = m.trim();
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
        if !is_json {
            return Err(ApiError::Invalid {
                code: "unsupported_media_type",
                message: "expected Content-Type: application/json".into(),
            });
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge
            } else {
                ApiError::Invalid {
                    code: "invalid_body",
                    message: "the body could not be read".into(),
                }
            }
        })?;
        parse(&bytes).map(ApiJson)
    }
}

/// Parses a JSON body, telling "not JSON" from "JSON of the wrong shape".
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_ok() {
            ApiError::Invalid {
                code: "invalid_body",
                message: format!("the body does not match the expected shape: {e}"),
            }
        } else {
            ApiError::Invalid {
                code: "malformed_json",
                message: "the body is not valid JSON".into(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        kind: String,
    }

    #[test]
    fn tells_malformed_from_mistyped() {
        let code = |b: &[u8]| match parse::<Body>(b) {
            Err(ApiError::Invalid { code, .. }) => code,
            other => panic!("{other:?}"),
        };
        assert_eq!(code(b"{not json"), "malformed_json");
        assert_eq!(code(b""), "malformed_json");
        assert_eq!(code(br#"{"kind": 5}"#), "invalid_body");
        assert_eq!(code(br#"[1]"#), "invalid_body");
        assert!(parse::<Body>(br#"{"kind": "x"}"#).is_ok());
    }
}
