//! `[oidc]` in the configuration file: the identity provider, the claims that name the
//! account and its role, provisioning, and whether local passwords still work.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::auth::Role;

/// OpenID Connect sign-in for staff. Off while `issuer` is unset.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL, exactly as its discovery document states it; discovery is
    /// read from `<issuer>/.well-known/openid-configuration`.
    pub issuer: Option<String>,
    /// This server's client id at the provider.
    pub client_id: String,
    /// The client secret (sent by HTTP Basic at the token endpoint); none for a public client,
    /// which PKCE alone protects. Prefer `INSPECTOR_OIDC_CLIENT_SECRET` over the file.
    pub client_secret: Option<String>,
    /// The name on the sign-in button ("Sign in with <name>").
    pub provider_name: String,
    /// Scopes asked for (`openid` is added when missing).
    pub scopes: Vec<String>,
    /// The ID-token claim that gives the role: a string or an array of strings. Unset: every
    /// account gets `default_role`.
    pub role_claim: Option<String>,
    /// Claim values → role. With several values mapped, the strongest role wins.
    pub roles: BTreeMap<String, Role>,
    /// The role of a subject none of whose values is mapped; unset: such a subject is refused
    /// (`oidc_no_role`).
    pub default_role: Option<Role>,
    /// Just-in-time provisioning: an unknown subject becomes a new account. Off: only
    /// subjects linked before (`inspector user link-oidc`, or an earlier provisioning) may
    /// sign in; others are refused (`oidc_unknown_account`).
    pub jit_provisioning: bool,
    /// The claim the new account's user name comes from (falls back to the e-mail's local
    /// part, then to the subject). Only a name for people: the account is found by issuer and
    /// subject, never by this name or the e-mail (both can change hands).
    pub username_claim: String,
    /// The claim of the shown name (falls back to the user name).
    pub display_name_claim: String,
    /// Whether local passwords still sign in. Off: `/api/auth/login` answers
    /// `password_login_disabled` (accounts keep their hashes for when it is turned back on).
    pub password_login: bool,
    /// Clock leeway for `exp`, `iat` and `nbf`, seconds.
    pub leeway_secs: u64,
    /// Sign-ins begun and not yet returned, at most (each is a few hundred bytes).
    pub max_pending: usize,
    /// Of those, from one client address (IPv6: one /64), at most.
    pub max_pending_per_address: usize,
    /// How long a begun sign-in may take at the provider, seconds.
    pub pending_ttl_secs: u64,
    /// How long discovery and keys are cached, seconds.
    pub cache_secs: u64,
    /// The shortest time between two key-set fetches caused by an unknown `kid`, seconds.
    pub jwks_refetch_secs: u64,
}

impl Default for OidcConfig {
    fn default() -> Self {
        Self {
            issuer: None,
            client_id: String::new(),
            client_secret: None,
            provider_name: "OpenID Connect".into(),
            scopes: vec!["openid".into(), "profile".into(), "email".into()],
            role_claim: None,
            roles: BTreeMap::new(),
            default_role: None,
            jit_provisioning: false,
            username_claim: "preferred_username".into(),
            display_name_claim: "name".into(),
            password_login: true,
            leeway_secs: 60,
            max_pending: 10_000,
            max_pending_per_address: 20,
            pending_ttl_secs: 600,
            cache_secs: 3600,
            jwks_refetch_secs: 30,
        }
    }
}

impl OidcConfig {
    /// Whether sign-in through the provider is configured.
    pub fn enabled(&self) -> bool {
        self.issuer.is_some()
    }

    /// Refuses a configuration that cannot work.
    pub fn check(&self) -> anyhow::Result<()> {
        if let Some(issuer) = &self.issuer {
            if !(issuer.starts_with("https://") || issuer.starts_with("http://")) {
                anyhow::bail!("oidc.issuer must be an http(s) URL");
            }
            if self.client_id.is_empty() {
                anyhow::bail!("oidc.client_id is required with oidc.issuer");
            }
        } else if !self.password_login {
            anyhow::bail!("oidc.password_login = false needs oidc.issuer: nobody could sign in");
        }
        if self.max_pending == 0 || self.max_pending_per_address == 0 || self.pending_ttl_secs == 0
        {
            anyhow::bail!(
                "oidc.max_pending, max_pending_per_address and pending_ttl_secs must be positive"
            );
        }
        if self.leeway_secs > 600 {
            anyhow::bail!("oidc.leeway_secs must be at most 600");
        }
        Ok(())
    }
}
