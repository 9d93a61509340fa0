//! ID-token validation (OpenID Connect Core §3.1.3.7): the signature against the provider's
//! key set (RS256 or ES256; others only through `ClientAuth::verify_signature`), `iss`,
//! `aud` (and `azp` with several audiences), `exp`/`iat`/`nbf` with the configured leeway,
//! and this sign-in's `nonce`.

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::{Discovery, Oidc, Pending, Refusal, MAX_DOC_BYTES};

/// The algorithms verified here.
const ALGORITHMS: [Algorithm; 2] = [Algorithm::RS256, Algorithm::ES256];

fn key_fits(k: &Jwk, alg: Algorithm) -> bool {
    let kind = match (&k.algorithm, alg) {
        (AlgorithmParameters::RSA(_), Algorithm::RS256) => true,
        (AlgorithmParameters::EllipticCurve(ec), Algorithm::ES256) => {
            ec.curve == jsonwebtoken::jwk::EllipticCurve::P256
        }
        _ => false,
    };
    // A key meant for encryption, or pinned to another algorithm, never verifies.
    let usable = !matches!(
        k.common.public_key_use,
        Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
    );
    let pinned_ok = k
        .common
        .key_algorithm
        .is_none_or(|a| format!("{a:?}") == format!("{alg:?}"));
    kind && usable && pinned_ok
}

fn find_key<'a>(
    set: &'a jsonwebtoken::jwk::JwkSet,
    kid: Option<&str>,
    alg: Algorithm,
) -> Option<&'a Jwk> {
    let mut fitting = set.keys.iter().filter(|k| key_fits(k, alg));
    match kid {
        Some(kid) => fitting.find(|k| k.common.key_id.as_deref() == Some(kid)),
        // Without a `kid` only an unambiguous key is used.
        None => {
            let first = fitting.next()?;
            fitting.next().is_none().then_some(first)
        }
    }
}

impl Oidc {
    /// Verifies `id_token` for the sign-in `p`; returns its claims.
    pub(super) async fn verify(
        &self,
        d: &Discovery,
        id_token: &str,
        p: &Pending,
    ) -> Result<serde_json::Value, Refusal> {
        if id_token.len() > MAX_DOC_BYTES {
            return Err(Refusal::TokenInvalid("the ID token is too large".into()));
        }
        let (alg, kid) = header_of(id_token)?;
        let claims = match ALGORITHMS.iter().find(|a| format!("{a:?}") == alg) {
            Some(&alg) => {
                let mut validation = Validation::new(alg);
                validation.set_issuer(&[self.issuer()]);
                validation.set_audience(&[self.cfg.client_id.as_str()]);
                validation.leeway = self.cfg.leeway_secs;
                validation.validate_nbf = true;
                validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
                let (mut set, fresh) = self.jwks(d, false).await?;
                if find_key(&set, kid.as_deref(), alg).is_none() && !fresh {
                    // The provider may have rotated its keys: fetch once more (rate-limited).
                    set = self.jwks(d, true).await?.0;
                }
                let key = find_key(&set, kid.as_deref(), alg).ok_or_else(|| {
                    Refusal::TokenInvalid(format!("no key {kid:?} in the provider's key set"))
                })?;
                let key = DecodingKey::from_jwk(key)
                    .map_err(|e| Refusal::TokenInvalid(format!("key: {e}")))?;
                jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &validation)
                    .map_err(refusal_of)?
                    .claims
            }
            None => self.verify_foreign(d, id_token, &alg).await?,
        };
        self.check_claims(&claims, p)?;
        Ok(claims)
    }

    /// A token of an algorithm only the installed [`super::ClientAuth`] knows (ЕСИА's GOST):
    /// its signature by the hook, its registered claims here.
    async fn verify_foreign(
        &self,
        d: &Discovery,
        id_token: &str,
        alg: &str,
    ) -> Result<serde_json::Value, Refusal> {
        let (input, sig) = id_token
            .rsplit_once('.')
            .ok_or_else(|| Refusal::TokenInvalid("not a JWS".into()))?;
        let sig = b64(sig)?;
        self.jwks(d, false).await?;
        let raw = self
            .jwks_raw
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        match self
            .client_auth
            .verify_signature(alg, input.as_bytes(), &sig, &raw)
        {
            Some(true) => {}
            Some(false) => return Err(Refusal::TokenInvalid("signature does not verify".into())),
            None => {
                return Err(Refusal::TokenInvalid(format!(
                    "algorithm {alg} not accepted"
                )))
            }
        }
        let payload = input
            .split_once('.')
            .map(|(_, p)| p)
            .ok_or_else(|| Refusal::TokenInvalid("not a JWS".into()))?;
        let claims: serde_json::Value = serde_json::from_slice(&b64(payload)?)
            .map_err(|e| Refusal::TokenInvalid(format!("payload: {e}")))?;
        if claims["iss"].as_str() != Some(self.issuer()) {
            return Err(Refusal::WrongIssuer);
        }
        let id = self.cfg.client_id.as_str();
        let aud_ok = match &claims["aud"] {
            serde_json::Value::String(a) => a == id,
            serde_json::Value::Array(a) => a.iter().any(|v| v.as_str() == Some(id)),
            _ => false,
        };
        if !aud_ok {
            return Err(Refusal::WrongAudience);
        }
        let leeway = i64::try_from(self.cfg.leeway_secs).unwrap_or(600);
        let now = crate::db::now_micros() / 1_000_000;
        let exp = claims["exp"]
            .as_i64()
            .ok_or_else(|| Refusal::TokenInvalid("exp is missing".into()))?;
        if exp + leeway <= now || claims["nbf"].as_i64().is_some_and(|n| n - leeway > now) {
            return Err(Refusal::TokenExpired);
        }
        Ok(claims)
    }

    fn check_claims(&self, claims: &serde_json::Value, p: &Pending) -> Result<(), Refusal> {
        let leeway = i64::try_from(self.cfg.leeway_secs).unwrap_or(600);
        let now = crate::db::now_micros() / 1_000_000;
        let sub = claims["sub"].as_str().unwrap_or_default();
        if sub.is_empty() || sub.len() > 255 {
            return Err(Refusal::TokenInvalid(
                "sub is missing or longer than 255".into(),
            ));
        }
        let iat = claims["iat"]
            .as_i64()
            .ok_or_else(|| Refusal::TokenInvalid("iat is not a number".into()))?;
        // Issued for this sign-in: not before it began, not in the future.
        if iat > now + leeway || iat < p.begun_unix - leeway {
            return Err(Refusal::TokenExpired);
        }
        let nonce = claims["nonce"].as_str().unwrap_or_default();
        if !crate::auth::constant_time_eq(nonce.as_bytes(), p.nonce.as_bytes()) {
            return Err(Refusal::NonceMismatch);
        }
        let several = claims["aud"].as_array().is_some_and(|a| a.len() > 1);
        match claims["azp"].as_str() {
            Some(azp) if azp != self.cfg.client_id => return Err(Refusal::WrongAudience),
            None if several => return Err(Refusal::WrongAudience),
            _ => {}
        }
        Ok(())
    }
}

fn b64(s: &str) -> Result<Vec<u8>, Refusal> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| Refusal::TokenInvalid(format!("base64: {e}")))
}

/// `alg` and `kid` of a compact JWS, read without trusting anything else in it.
fn header_of(token: &str) -> Result<(String, Option<String>), Refusal> {
    let head = token
        .split('.')
        .next()
        .ok_or_else(|| Refusal::TokenInvalid("not a JWS".into()))?;
    let head: serde_json::Value = serde_json::from_slice(&b64(head)?)
        .map_err(|e| Refusal::TokenInvalid(format!("header: {e}")))?;
    let alg = head["alg"]
        .as_str()
        .ok_or_else(|| Refusal::TokenInvalid("header without alg".into()))?;
    Ok((alg.to_string(), head["kid"].as_str().map(str::to_string)))
}

fn refusal_of(e: jsonwebtoken::errors::Error) -> Refusal {
    match e.kind() {
        ErrorKind::ExpiredSignature | ErrorKind::ImmatureSignature => Refusal::TokenExpired,
        ErrorKind::InvalidAudience => Refusal::WrongAudience,
        ErrorKind::InvalidIssuer => Refusal::WrongIssuer,
        _ => Refusal::TokenInvalid(e.to_string()),
    }
}
