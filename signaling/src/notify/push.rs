//! The Web Push channel (RFC 8030 delivery, RFC 8291 message encryption, RFC 8292 VAPID) with
//! `web-push-native`, sent with `reqwest`. The VAPID key is made at first start in the data
//! directory (`<data>/notify/vapid.key`, mode 0600) like the other keys of the server.
//!
//! A subscription is a URL the browser's push service gave; the server POSTs to it, so only
//! the configured push services' hosts are accepted (HTTPS only unless `push_allow_http`):
//! a client cannot make the server send requests anywhere else.

use std::path::Path;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use web_push_native::jwt_simple::algorithms::{ECDSAP256PublicKeyLike, ES256KeyPair};
use web_push_native::{p256, Auth, WebPushBuilder};

use super::channel::{Channel, ChannelKind, Outgoing};
use super::core::Outcome;
use super::NotifyConfig;

/// Largest subscription JSON accepted, bytes.
pub const MAX_SUBSCRIPTION_BYTES: usize = 4096;
/// Largest push payload before encryption (the services take 4096 bytes encrypted).
const MAX_PAYLOAD: usize = 3000;

/// A browser's push subscription (`PushSubscription.toJSON()`), checked: an allowed endpoint,
/// a P-256 public key and a 16-byte secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    endpoint: String,
    p256dh: Vec<u8>,
    auth: Vec<u8>,
}

#[derive(Deserialize, Serialize)]
struct Wire {
    endpoint: String,
    #[serde(default, rename = "expirationTime")]
    _expiration: Option<serde_json::Value>,
    keys: WireKeys,
}

#[derive(Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
struct WireKeys {
    p256dh: String,
    auth: String,
}

impl Subscription {
    /// Parses a subscription, or names what is wrong with it (a stable code).
    pub fn parse(
        v: &serde_json::Value,
        config: &NotifyConfig,
    ) -> Result<Subscription, &'static str> {
        if v.to_string().len() > MAX_SUBSCRIPTION_BYTES {
            return Err("subscription_too_large");
        }
        let w: Wire = serde_json::from_value(v.clone()).map_err(|_| "subscription_invalid")?;
        let uri: axum::http::Uri = w.endpoint.parse().map_err(|_| "push_endpoint_invalid")?;
        let scheme_ok = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => config.push_allow_http,
            _ => false,
        };
        let host = uri.host().unwrap_or_default().to_ascii_lowercase();
        let host_ok = config
            .push_hosts
            .iter()
            .any(|h| host == *h || host.ends_with(&format!(".{h}")));
        if !scheme_ok || !host_ok {
            return Err("push_endpoint_not_allowed");
        }
        let p256dh = URL_SAFE_NO_PAD
            .decode(w.keys.p256dh.trim_end_matches('='))
            .map_err(|_| "push_key_invalid")?;
        if p256::PublicKey::from_sec1_bytes(&p256dh).is_err() {
            return Err("push_key_invalid");
        }
        let auth = URL_SAFE_NO_PAD
            .decode(w.keys.auth.trim_end_matches('='))
            .map_err(|_| "push_key_invalid")?;
        if auth.len() != 16 {
            return Err("push_key_invalid");
        }
        Ok(Subscription {
            endpoint: w.endpoint,
            p256dh,
            auth,
        })
    }

    /// The stored form (the contact's address).
    pub fn stored(&self) -> String {
        serde_json::json!({
            "endpoint": self.endpoint,
            "keys": {"p256dh": URL_SAFE_NO_PAD.encode(&self.p256dh), "auth": URL_SAFE_NO_PAD.encode(&self.auth)},
        })
        .to_string()
    }
}

/// The server's VAPID key.
pub struct Vapid {
    key: ES256KeyPair,
}

impl Vapid {
    /// Loads the key at `path`, creating it (mode 0600) at first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Vapid> {
        let key = match std::fs::read(path) {
            Ok(bytes) => ES256KeyPair::from_bytes(&bytes)
                .map_err(|e| anyhow::anyhow!("VAPID key {}: {e}", path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = ES256KeyPair::generate();
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, &key.to_bytes())?;
                key
            }
            Err(e) => return Err(anyhow::anyhow!("VAPID key {}: {e}", path.display())),
        };
        Ok(Vapid { key })
    }

    /// The public key as the browser's `applicationServerKey` (base64url, uncompressed).
    pub fn public_key(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.key.public_key().public_key().to_bytes_uncompressed())
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

/// Web Push delivery.
pub struct Push {
    vapid: Vapid,
    contact: String,
    http: reqwest::Client,
    config: NotifyConfig,
}

impl Push {
    /// The channel, with its key and an HTTP client that follows no redirects.
    pub fn new(vapid: Vapid, config: &NotifyConfig) -> anyhow::Result<Push> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Push {
            vapid,
            contact: config.push_contact.clone(),
            http,
            config: config.clone(),
        })
    }

    /// The VAPID public key.
    pub fn public_key(&self) -> String {
        self.vapid.public_key()
    }
}

/// The payload the service worker shows: title, text, link.
#[derive(Debug, Serialize, Deserialize)]
pub struct Payload {
    /// Title.
    pub title: String,
    /// Text (cut to fit).
    pub body: String,
    /// Where a click leads.
    pub url: String,
}

#[async_trait::async_trait]
impl Channel for Push {
    fn kind(&self) -> ChannelKind {
        ChannelKind::Push
    }

    async fn send(&self, address: &str, msg: &Outgoing) -> Outcome {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(address) else {
            return Outcome::Permanent("subscription_invalid");
        };
        // Checked again: the allowed hosts may have changed since it was stored.
        let sub = match Subscription::parse(&v, &self.config) {
            Ok(s) => s,
            Err(code) => return Outcome::Permanent(code),
        };
        let (Ok(uri), Ok(ua_public)) = (
            sub.endpoint.parse::<axum::http::Uri>(),
            p256::PublicKey::from_sec1_bytes(&sub.p256dh),
        ) else {
            return Outcome::Permanent("subscription_invalid");
        };
        let mut body: String = msg.text.chars().take(1000).collect();
        let mut payload = serde_json::to_vec(&Payload {
            title: msg.subject.clone(),
            body: body.clone(),
            url: msg.link.clone(),
        })
        .unwrap_or_default();
        while payload.len() > MAX_PAYLOAD && !body.is_empty() {
            body = body.chars().take(body.chars().count() / 2).collect();
            payload = serde_json::to_vec(&Payload {
                title: msg.subject.chars().take(200).collect(),
                body: body.clone(),
                url: msg.link.clone(),
            })
            .unwrap_or_default();
        }
        let auth = Auth::clone_from_slice(&sub.auth);
        let request = match WebPushBuilder::new(uri, ua_public, auth)
            .with_valid_duration(Duration::from_secs(24 * 3600))
            .with_vapid(&self.vapid.key, &self.contact)
            .build(payload)
        {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "push: cannot build the request");
                return Outcome::Permanent("push_encrypt_failed");
            }
        };
        let (parts, body) = request.into_parts();
        let mut req = self.http.post(parts.uri.to_string()).body(body);
        for (name, value) in parts.headers.iter() {
            req = req.header(name.as_str(), value.as_bytes());
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => Outcome::Sent,
            // The subscription expired or was withdrawn (RFC 8030 §7.3).
            Ok(r) if r.status() == 404 || r.status() == 410 => Outcome::Gone("push_gone"),
            Ok(r) if r.status() == 429 || r.status().is_server_error() => {
                Outcome::Temporary("push_busy")
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), "push: refused");
                Outcome::Permanent("push_rejected")
            }
            Err(e) if e.is_timeout() => Outcome::Temporary("push_timeout"),
            Err(e) => {
                tracing::warn!(error = %e, "push: cannot deliver");
                Outcome::Temporary("push_unreachable")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NotifyConfig {
        NotifyConfig {
            push_hosts: vec!["push.example".into()],
            ..NotifyConfig::default()
        }
    }

    fn key() -> String {
        let k = p256::SecretKey::random(&mut rand_core_rng());
        use p256::elliptic_curve::sec1::ToEncodedPoint;
        URL_SAFE_NO_PAD.encode(k.public_key().to_encoded_point(false).as_bytes())
    }

    fn rand_core_rng() -> p256::elliptic_curve::rand_core::OsRng {
        p256::elliptic_curve::rand_core::OsRng
    }

    #[test]
    fn subscriptions_are_checked() {
        let c = config();
        let good = serde_json::json!({"endpoint": "https://fcm.push.example/x", "expirationTime": null,
            "keys": {"p256dh": key(), "auth": URL_SAFE_NO_PAD.encode([7u8; 16])}});
        let s = Subscription::parse(&good, &c).expect("valid");
        assert_eq!(
            Subscription::parse(&serde_json::from_str(&s.stored()).unwrap(), &c),
            Ok(s)
        );
        let mut bad = good.clone();
        bad["endpoint"] = "https://evil.example/x".into();
        assert_eq!(
            Subscription::parse(&bad, &c),
            Err("push_endpoint_not_allowed")
        );
        bad["endpoint"] = "http://push.example/x".into();
        assert_eq!(
            Subscription::parse(&bad, &c),
            Err("push_endpoint_not_allowed")
        );
        bad["endpoint"] = "https://notpush.example/x".into();
        assert_eq!(
            Subscription::parse(&bad, &c),
            Err("push_endpoint_not_allowed")
        );
        let mut bad = good.clone();
        bad["keys"]["auth"] = URL_SAFE_NO_PAD.encode([7u8; 8]).into();
        assert_eq!(Subscription::parse(&bad, &c), Err("push_key_invalid"));
        let mut bad = good.clone();
        bad["keys"]["p256dh"] = URL_SAFE_NO_PAD.encode([4u8; 65]).into();
        assert_eq!(Subscription::parse(&bad, &c), Err("push_key_invalid"));
        assert_eq!(
            Subscription::parse(&serde_json::json!({"endpoint": 1}), &c),
            Err("subscription_invalid")
        );
    }

    #[test]
    fn the_vapid_key_is_made_once_and_kept_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify").join("vapid.key");
        let a = Vapid::load_or_create(&path).unwrap().public_key();
        let b = Vapid::load_or_create(&path).unwrap().public_key();
        assert_eq!(a, b);
        assert_eq!(URL_SAFE_NO_PAD.decode(&a).unwrap().len(), 65);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
