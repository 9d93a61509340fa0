//! The pure parts of webhooks: the signature (HMAC-SHA256 over `timestamp.body`, Stripe's
//! scheme), the retry schedule, the outgoing URL rule, and the sealing of endpoint secrets at
//! rest (AES-256-GCM under a key file: the server must sign with the secret, so it cannot keep
//! only a hash of it).

use std::net::IpAddr;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};

/// The header that carries `t=<unix seconds>,v1=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "Inspector-Signature";
/// Longest URL accepted, characters.
pub const MAX_URL_CHARS: usize = 2000;
/// How an endpoint secret starts (so it is recognisable in a receiver's configuration).
pub const SECRET_PREFIX: &str = "whsec_";

/// The hex HMAC-SHA256 of `"{timestamp}.{body}"` under `secret` (its UTF-8 bytes).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    hex::encode(ctx.sign().as_ref())
}

/// The signature header's value.
pub fn header_value(secret: &str, timestamp: i64, body: &[u8]) -> String {
    format!("t={timestamp},v1={}", signature(secret, timestamp, body))
}

/// What a receiver does (documented in docs/protocol.md): parses the header, refuses a
/// timestamp further than `tolerance_secs` from `now`, compares in constant time.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> bool {
    let mut t = None;
    let mut sigs = Vec::new();
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", v)) => t = v.parse::<i64>().ok(),
            Some(("v1", v)) => sigs.push(v),
            _ => {}
        }
    }
    let Some(t) = t else { return false };
    if (now - t).abs() > tolerance_secs {
        return false;
    }
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut msg = t.to_string().into_bytes();
    msg.push(b'.');
    msg.extend_from_slice(body);
    sigs.iter()
        .any(|s| hex::decode(s).is_ok_and(|tag| hmac::verify(&key, &msg, &tag).is_ok()))
}

/// A fresh endpoint secret: `whsec_` and 256 random bits, base64url.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    // The system generator fails only without an entropy source, where nothing is safe.
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("system random generator");
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// The retry schedule: the wait after the `attempts`-th failed attempt, seconds — `base`
/// doubled each time, never more than `max`.
pub fn backoff_secs(attempts: u32, base: u64, max: u64) -> u64 {
    let shift = attempts.saturating_sub(1).min(30);
    base.max(1).saturating_mul(1u64 << shift).min(max.max(1))
}

/// Why a URL is refused (a field error code).
pub fn check_url(url: &str, allow_http_loopback: bool) -> Result<reqwest::Url, &'static str> {
    if url.is_empty() || url.chars().count() > MAX_URL_CHARS {
        return Err("invalid_length");
    }
    let u = reqwest::Url::parse(url).map_err(|_| "invalid_url")?;
    if !u.username().is_empty() || u.password().is_some() {
        return Err("credentials_in_url");
    }
    let host = u.host_str().ok_or("invalid_url")?;
    match u.scheme() {
        "https" => Ok(u),
        "http" if allow_http_loopback && is_loopback(host) => Ok(u),
        "http" => Err("https_required"),
        _ => Err("invalid_url"),
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost" || h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The key endpoint secrets are sealed with (32 bytes in a file, mode 0600, made at first
/// start). Nodes sharing a database share this file.
pub struct SecretKey {
    key: LessSafeKey,
}

impl SecretKey {
    /// Reads the key file, or creates it.
    pub fn load_or_create(path: &Path) -> anyhow::Result<SecretKey> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let mut b = vec![0u8; 32];
                SystemRandom::new()
                    .fill(&mut b)
                    .map_err(|_| anyhow::anyhow!("no system random generator"))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &b)?;
                b
            }
            Err(e) => return Err(anyhow::anyhow!("webhook key {}: {e}", path.display())),
        };
        let unbound = UnboundKey::new(&AES_256_GCM, &bytes)
            .map_err(|_| anyhow::anyhow!("webhook key {}: not 32 bytes", path.display()))?;
        Ok(SecretKey {
            key: LessSafeKey::new(unbound),
        })
    }

    /// `secret` sealed: base64url of a random nonce and the ciphertext with its tag. The
    /// endpoint's id is the associated data, so a sealed secret cannot be moved to another row.
    pub fn seal(&self, endpoint: &str, secret: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .expect("system random generator");
        let mut data = secret.as_bytes().to_vec();
        // Sealing fails only for inputs beyond AES-GCM's 64 GiB limit.
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(endpoint.as_bytes()),
                &mut data,
            )
            .expect("a 43-byte secret seals");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The secret, or `None` when the text was not sealed by this key for this endpoint.
    pub fn open(&self, endpoint: &str, sealed: &str) -> Option<String> {
        let raw = URL_SAFE_NO_PAD.decode(sealed).ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (n, c) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(n).ok()?;
        let mut c = c.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(endpoint.as_bytes()), &mut c)
            .ok()?;
        String::from_utf8(plain.to_vec()).ok()
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_and_refuses_old_or_altered() {
        let s = new_secret();
        let body = br#"{"id":"x"}"#;
        let h = header_value(&s, 1_700_000_000, body);
        assert!(verify(&s, &h, body, 1_700_000_100, 300));
        assert!(!verify(&s, &h, body, 1_700_000_301, 300), "too old");
        assert!(!verify(&s, &h, br#"{"id":"y"}"#, 1_700_000_000, 300));
        assert!(!verify("whsec_other", &h, body, 1_700_000_000, 300));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let w: Vec<u64> = (1..=6).map(|a| backoff_secs(a, 10, 60)).collect();
        assert_eq!(w, [10, 20, 40, 60, 60, 60]);
        assert_eq!(backoff_secs(200, 10, 3600), 3600);
    }

    #[test]
    fn urls_are_https_unless_loopback_is_allowed() {
        assert!(check_url("https://hooks.example.org/in", false).is_ok());
        assert_eq!(
            check_url("http://hooks.example.org/in", true).unwrap_err(),
            "https_required"
        );
        assert_eq!(
            check_url("http://127.0.0.1:9/in", false).unwrap_err(),
            "https_required"
        );
        assert!(check_url("http://127.0.0.1:9/in", true).is_ok());
        assert!(check_url("http://[::1]:9/in", true).is_ok());
        assert_eq!(
            check_url("https://u:p@example.org/", false).unwrap_err(),
            "credentials_in_url"
        );
        assert_eq!(
            check_url("ftp://example.org/", false).unwrap_err(),
            "invalid_url"
        );
        let long = format!("https://example.org/{}", "a".repeat(MAX_URL_CHARS));
        assert_eq!(check_url(&long, false).unwrap_err(), "invalid_length");
    }

    #[test]
    fn sealed_secrets_open_only_for_their_endpoint() {
        let dir = tempfile::tempdir().unwrap();
        let k = SecretKey::load_or_create(&dir.path().join("k")).unwrap();
        let sealed = k.seal("a", "whsec_x");
        assert_eq!(k.open("a", &sealed).as_deref(), Some("whsec_x"));
        assert_eq!(k.open("b", &sealed), None);
        let again = SecretKey::load_or_create(&dir.path().join("k")).unwrap();
        assert_eq!(again.open("a", &sealed).as_deref(), Some("whsec_x"));
    }
}
