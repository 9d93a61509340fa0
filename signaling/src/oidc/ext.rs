//! The extension point for providers with their own signing rules, such as ЕСИА.
//!
//! ЕСИА speaks OpenID Connect in shape (authorization code, `state`, ID token), but the client
//! authenticates by a detached GOST R 34.10-2012 signature (CMS) over `scope`, `timestamp`,
//! `client_id` and `state`, sent as `client_secret` both in the authorization request and at
//! the token endpoint, and its tokens are signed with a GOST algorithm. An adapter implements
//! [`ClientAuth`] with a certified crypto provider (КриптоПро CSP or similar, not available
//! here) and is installed by [`super::Oidc::with_client_auth`]; nothing else changes.

use reqwest::header::HeaderMap;

/// How this server proves itself to the provider and checks signatures the built-in
/// algorithms (RS256, ES256) do not cover.
pub trait ClientAuth: Send + Sync {
    /// Adds or changes parameters of the authorization request (ЕСИА: `timestamp`,
    /// `client_secret` = the signature). `params` already has every standard parameter.
    fn authorization_params(&self, _params: &mut Vec<(String, String)>) -> anyhow::Result<()> {
        Ok(())
    }

    /// Authenticates the token request: may add form parameters and headers.
    fn token_request(
        &self,
        params: &mut Vec<(String, String)>,
        headers: &mut HeaderMap,
    ) -> anyhow::Result<()>;

    /// Verifies the signature of an ID token signed with an algorithm other than RS256 or
    /// ES256 (`alg` from its header; `signing_input` is `header.payload` as sent; `jwks` the
    /// provider's key set as fetched). `None`: not supported, and the token is refused. The
    /// claims are checked afterwards exactly as for the built-in algorithms.
    fn verify_signature(
        &self,
        _alg: &str,
        _signing_input: &[u8],
        _signature: &[u8],
        _jwks: &serde_json::Value,
    ) -> Option<bool> {
        None
    }
}

/// The standard client authentication: `client_secret_basic` with a secret, or, for a public
/// client, only `client_id` in the form (PKCE protects the code).
pub struct SecretOrPublic {
    /// The client id.
    pub client_id: String,
    /// The secret, if the client has one.
    pub secret: Option<String>,
}

impl ClientAuth for SecretOrPublic {
    fn token_request(
        &self,
        params: &mut Vec<(String, String)>,
        headers: &mut HeaderMap,
    ) -> anyhow::Result<()> {
        use base64::Engine;
        match &self.secret {
            Some(secret) => {
                // RFC 6749 §2.3.1: both parts form-urlencoded before joining.
                let enc = |s: &str| {
                    reqwest::Url::parse_with_params("x:", [("v", s)])
                        .ok()
                        .and_then(|u| u.query().map(|q| q[2..].to_string()))
                        .unwrap_or_default()
                };
                let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                    "{}:{}",
                    enc(&self.client_id),
                    enc(secret)
                ));
                headers.insert(
                    reqwest::header::AUTHORIZATION,
                    format!("Basic {basic}").parse()?,
                );
            }
            None => params.push(("client_id".into(), self.client_id.clone())),
        }
        Ok(())
    }
}
