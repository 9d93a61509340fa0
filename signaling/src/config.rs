//! Server configuration: command-line flags, `INSPECTOR_*` environment variables and an
//! optional TOML file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

/// Flags of `inspector serve` (each also readable from the environment).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "INSPECTOR_LISTEN", global = true)]
    pub listen: Option<SocketAddr>,
    /// Data directory: SQLite database and recordings [default: ./data].
    #[arg(long, env = "INSPECTOR_DATA_DIR", global = true)]
    pub data_dir: Option<PathBuf>,
    /// Database URL: sqlite://… or postgres://… [default: SQLite in the data directory].
    #[arg(long, env = "INSPECTOR_DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// The URL users open, used in invitation links [default: http://<listen>].
    #[arg(long, env = "INSPECTOR_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// UDP address for WebRTC media [default: the listen IP, any port].
    #[arg(long, env = "INSPECTOR_MEDIA_UDP", global = true)]
    pub media_udp: Option<String>,
    /// The IP browsers reach the media port at, when the server is behind a 1:1 NAT (a cloud
    /// VM's public address): candidates name it instead of the bound one [default: the bound
    /// address].
    #[arg(long, env = "INSPECTOR_MEDIA_PUBLIC_IP", global = true)]
    pub media_public_ip: Option<std::net::IpAddr>,
    /// A TOML configuration file with the same keys (listen, data_dir, …).
    #[arg(long, env = "INSPECTOR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// A reverse proxy whose X-Forwarded-For is believed (CIDR, repeatable or comma-separated)
    /// [default: none; the socket's peer address is the client].
    #[arg(
        long = "trusted-proxy",
        env = "INSPECTOR_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<String>,
    /// Bearer token that opens `/metrics` [default: none; /metrics answers 404].
    #[arg(
        long,
        env = "INSPECTOR_METRICS_TOKEN",
        global = true,
        hide_env_values = true
    )]
    pub metrics_token: Option<String>,
    /// Where evidence blobs go: s3://bucket/prefix (any S3-compatible service) or
    /// file:///dir [default: <data dir>/blobs].
    #[arg(long, env = "INSPECTOR_BLOB_URL", global = true)]
    pub blob_url: Option<String>,
    /// S3 endpoint, e.g. https://storage.example or http://127.0.0.1:8333 [default: AWS].
    #[arg(long, env = "INSPECTOR_BLOB_ENDPOINT", global = true)]
    pub blob_endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    #[arg(long, env = "INSPECTOR_BLOB_REGION", global = true)]
    pub blob_region: Option<String>,
    /// S3 access key id.
    #[arg(long, env = "INSPECTOR_BLOB_ACCESS_KEY_ID", global = true)]
    pub blob_access_key_id: Option<String>,
    /// S3 secret access key (prefer the environment variable: flags show in `ps`).
    #[arg(
        long,
        env = "INSPECTOR_BLOB_SECRET_ACCESS_KEY",
        global = true,
        hide_env_values = true
    )]
    pub blob_secret_access_key: Option<String>,
    /// Virtual-hosted-style S3 addressing (bucket.host) instead of path-style (host/bucket).
    #[arg(long, env = "INSPECTOR_BLOB_VIRTUAL_HOSTED", global = true)]
    pub blob_virtual_hosted: Option<bool>,
    /// Largest evidence upload in bytes [default: 20 MiB].
    #[arg(long, env = "INSPECTOR_MAX_UPLOAD_BYTES", global = true)]
    pub max_upload_bytes: Option<u64>,
}

/// Connection limits of the HTTP listener (`[http]` in the file).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpLimits {
    /// Open TCP connections at most (WebSockets included). Over the cap, the oldest idle
    /// connection is closed to admit a new one; with none idle, the new one is refused. Lowered
    /// at start to fit the process's open-file limit.
    pub max_connections: usize,
    /// WebSockets at most, so that `max_connections - max_websockets` connections stay for
    /// the API (a further upgrade answers 503 `too_many_connections`).
    pub max_websockets: usize,
    /// A connection that has not sent a complete request head within this many seconds (the
    /// first request or the next one on a kept-alive connection) is closed.
    pub header_timeout_secs: u64,
    /// A request body that stalls this many seconds fails (the timer restarts with every
    /// chunk, so slow uploads are not cut off).
    pub body_timeout_secs: u64,
}

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_websockets: 3072,
            header_timeout_secs: 10,
            body_timeout_secs: 30,
        }
    }
}

/// Login throttling (`[login]` in the file): failed attempts allowed within `window_secs`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoginLimits {
    /// Per user name and client address.
    pub per_user_and_address: u32,
    /// Per client address, over all user names.
    pub per_address: u32,
    /// Per user name over all addresses, for browsers that never logged in as this user
    /// (a browser with this user's device cookie is not counted here).
    pub per_user_new_devices: u32,
    /// The window, seconds.
    pub window_secs: u64,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_user_and_address: 5,
            per_address: 30,
            per_user_new_devices: 20,
            window_secs: 15 * 60,
        }
    }
}

/// Limits of the live socket per participant (`[live]` in the file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LiveLimits {
    /// Messages per second, shared by all sockets of a participant.
    pub rate_per_sec: f64,
    /// Burst of messages.
    pub burst: f64,
    /// Messages dropped for the rate within `flood_window_secs` after which the socket is
    /// closed (1008).
    pub flood_drops: u32,
    /// The flood window, seconds.
    pub flood_window_secs: u64,
    /// Sockets at once.
    pub max_sockets_per_participant: usize,
    /// Comments per item.
    pub comments_per_item: usize,
    /// Evidence references per item.
    pub evidence_per_item: usize,
    /// Bytes of comments and evidence per inspection.
    pub bytes_per_participant: u64,
    /// Bytes of comments and evidence per minute.
    pub bytes_per_minute: u64,
    /// Stills a participant's phone may send in low-bandwidth mode (`frame` events).
    pub frames_per_participant: usize,
    /// Positions one participant's queue may log in one inspection (the on-site track).
    pub track_points_per_participant: i64,
}

impl Default for LiveLimits {
    fn default() -> Self {
        let sync = checklist_sync::SyncConfig::default();
        Self {
            rate_per_sec: sync.rate_per_sec,
            burst: sync.burst,
            flood_drops: sync.flood_drops,
            flood_window_secs: sync.flood_window.as_secs(),
            max_sockets_per_participant: sync.max_sockets_per_participant,
            comments_per_item: sync.quotas.comments_per_item,
            evidence_per_item: sync.quotas.evidence_per_item,
            bytes_per_participant: sync.quotas.bytes_per_participant,
            bytes_per_minute: sync.quotas.bytes_per_minute,
            frames_per_participant: sync.quotas.frames_per_participant,
            track_points_per_participant: crate::onsite::MAX_TRACK_POINTS,
        }
    }
}

impl LiveLimits {
    /// The sync hub's configuration with these limits.
    pub fn sync_config(&self) -> checklist_sync::SyncConfig {
        checklist_sync::SyncConfig {
            rate_per_sec: self.rate_per_sec,
            burst: self.burst,
            flood_drops: self.flood_drops,
            flood_window: Duration::from_secs(self.flood_window_secs.max(1)),
            max_sockets_per_participant: self.max_sockets_per_participant,
            quotas: self.quotas(),
            ..checklist_sync::SyncConfig::default()
        }
    }

    /// What one participant may add (also checked by uploads before they store anything).
    pub fn quotas(&self) -> checklist_sync::Quotas {
        checklist_sync::Quotas {
            comments_per_item: self.comments_per_item,
            evidence_per_item: self.evidence_per_item,
            bytes_per_participant: self.bytes_per_participant,
            bytes_per_minute: self.bytes_per_minute,
            frames_per_participant: self.frames_per_participant,
        }
    }
}

/// One ICE server offered to browsers.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct IceServerConfig {
    /// `stun:` or `turn:` URLs.
    pub urls: Vec<String>,
    /// TURN user name.
    pub username: Option<String>,
    /// TURN credential.
    pub credential: Option<String>,
}

/// The TOML file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    listen: Option<SocketAddr>,
    data_dir: Option<PathBuf>,
    database_url: Option<String>,
    public_url: Option<String>,
    media_udp: Option<String>,
    media_public_ip: Option<std::net::IpAddr>,
    #[serde(default)]
    ice_servers: Vec<IceServerConfig>,
    invitation_ttl_hours: Option<u32>,
    session_ttl_hours: Option<u32>,
    control_body: Option<String>,
    #[serde(default)]
    trusted_proxies: Vec<String>,
    metrics_token: Option<String>,
    access_recheck_secs: Option<u64>,
    node_url: Option<String>,
    lease_ttl_secs: Option<u64>,
    #[serde(default)]
    http: HttpLimits,
    #[serde(default)]
    login: LoginLimits,
    #[serde(default)]
    live: LiveLimits,
    blob_url: Option<String>,
    blob_endpoint: Option<String>,
    blob_region: Option<String>,
    blob_access_key_id: Option<String>,
    blob_secret_access_key: Option<String>,
    blob_virtual_hosted: Option<bool>,
    max_upload_bytes: Option<u64>,
    clip_before_secs: Option<f64>,
    clip_after_secs: Option<f64>,
    max_video_bytes: Option<u64>,
    max_video_secs: Option<f64>,
    chapter_lead_in_secs: Option<f64>,
    business_raw_access: Option<bool>,
    #[serde(default)]
    anchor: AnchorFile,
    #[serde(default)]
    notify: crate::notify::NotifyConfig,
    #[serde(default)]
    ratings: RatingsConfig,
    #[serde(default)]
    oidc: crate::oidc::OidcConfig,
    #[serde(default)]
    webhooks: crate::webhooks::WebhooksConfig,
    #[serde(default)]
    review: ReviewConfig,
    #[serde(default)]
    media: MediaTuning,
}

/// `[media]`: how the phone sends its camera (issue 19).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MediaTuning {
    /// The phone's video bit-rate cap, kbit/s (the sender's `maxBitrate`): on a good network
    /// it keeps the uplink from being filled by one camera; the browser's congestion control
    /// (fed by the server's transport-cc feedback) goes below it on a bad one.
    pub max_video_kbps: u32,
}

impl Default for MediaTuning {
    fn default() -> Self {
        Self {
            max_video_kbps: 1500,
        }
    }
}

/// `[review]`: the reviewer page.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReviewConfig {
    /// A map tile server's URL template (`https://tiles.example.org/{z}/{x}/{y}.png`, Web
    /// Mercator "slippy" tiles) drawn under the inspector's track on the reviewer page. None
    /// (the default): the track is drawn on a plain canvas, nothing is fetched from outside.
    pub tile_url: Option<String>,
    /// The tile provider's attribution, printed on the map (its licence usually asks for it).
    pub tile_attribution: Option<String>,
}

impl ReviewConfig {
    /// A template must be an absolute http(s) URL naming `{z}`, `{x}` and `{y}`.
    fn check(&self) -> anyhow::Result<()> {
        let Some(t) = &self.tile_url else {
            return Ok(());
        };
        if tile_origin(t).is_none() || !["{z}", "{x}", "{y}"].iter().all(|p| t.contains(p)) {
            anyhow::bail!(
                "review.tile_url must be an http(s) URL with {{z}}, {{x}} and {{y}}, like https://tiles.example.org/{{z}}/{{x}}/{{y}}.png"
            );
        }
        if self
            .tile_attribution
            .as_deref()
            .is_some_and(|a| a.len() > 300)
        {
            anyhow::bail!("review.tile_attribution must be at most 300 bytes");
        }
        Ok(())
    }

    /// The tile server's origin (`https://host[:port]`), for the page's image policy.
    pub fn tile_origin(&self) -> Option<String> {
        self.tile_url.as_deref().and_then(tile_origin)
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL; None for anything else.
fn tile_origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "https" && scheme != "http" {
        return None;
    }
    let host = rest.split('/').next()?;
    // Only what a CSP source may hold: no spaces, quotes, semicolons or a template in the host.
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'));
    ok.then(|| format!("{scheme}://{host}"))
}

/// `[ratings]`: the parties' ratings after the event (crate::ratings).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RatingsConfig {
    /// How long after its first submission a rating may still be changed (then it is final).
    pub edit_window_secs: u64,
    /// Whether the public read-only page of control bodies' ratings is served.
    pub public_page: bool,
}

impl Default for RatingsConfig {
    fn default() -> Self {
        Self {
            edit_window_secs: 72 * 3600,
            public_page: false,
        }
    }
}

/// `[anchor]`: signed checkpoints of the event log's head (crate::anchor).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AnchorFile {
    checkpoint_interval_secs: Option<u64>,
    checkpoint_key_file: Option<PathBuf>,
}

/// Where and how often the log's head is checkpointed.
#[derive(Debug, Clone)]
pub struct AnchorConfig {
    /// How often a live inspection's moved head is checkpointed.
    pub interval: Duration,
    /// The checkpoint signing key (PKCS#8 Ed25519), created at first start with mode 0600.
    pub key_file: PathBuf,
}

/// The resolved configuration the server runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database URL.
    pub database_url: String,
    /// Public URL without a trailing slash.
    pub public_url: String,
    /// UDP bind address for media.
    pub media_udp: String,
    /// The media address announced to browsers instead of the bound one (1:1 NAT).
    pub media_public_ip: Option<std::net::IpAddr>,
    /// ICE servers for browsers.
    pub ice_servers: Vec<IceServerConfig>,
    /// Default invitation lifetime.
    pub invitation_ttl_hours: u32,
    /// Staff session lifetime.
    pub session_ttl_hours: u32,
    /// The control (supervisory) body's name: printed in acts, named in certificates.
    pub control_body: String,
    /// Reverse proxies whose `X-Forwarded-For` names the client (empty: none is believed).
    pub trusted_proxies: Vec<IpNet>,
    /// The bearer token of `/metrics`; without one `/metrics` is off (404).
    pub metrics_token: Option<String>,
    /// How often every open socket's session or invitation is checked again in the database
    /// (catches expiry, and changes made by another process such as `inspector user disable`).
    pub access_recheck: Duration,
    /// Where the other nodes of a deployment reach this one (PostgreSQL only; defaults to
    /// `public_url`). Sockets and requests of an inspection this node runs are proxied here.
    pub node_url: Option<String>,
    /// How long a node's claim on a live inspection lasts unless renewed (PostgreSQL only):
    /// after a node dies, the others take its inspections over after at most this.
    pub lease_ttl: Duration,
    /// Connection limits.
    pub http: HttpLimits,
    /// Login throttling.
    pub login: LoginLimits,
    /// Live socket limits.
    pub live: LiveLimits,
    /// The evidence blob store.
    pub blob: crate::blobs::BlobConfig,
    /// Largest evidence upload, bytes.
    pub max_upload_bytes: u64,
    /// How much of the recording before a violation's mark its clip shows, ms.
    pub clip_before_ms: i64,
    /// How much after the mark, ms.
    pub clip_after_ms: i64,
    /// Largest short video an on-site phone may upload, bytes (`max_video_bytes`).
    pub max_video_bytes: u64,
    /// Longest short video, ms (`max_video_secs`, at most 600 s).
    pub max_video_ms: i64,
    /// How far before its mark an item's chapter may begin (when the previous mark is
    /// further back), ms: the footage that justified the result is in its chapter.
    pub chapter_lead_in_ms: i64,
    /// Whether the business's durable results access may read the raw evidence (the whole
    /// recording, its chapters, the event log, the bundle) after the end; off by default.
    pub business_raw_access: bool,
    /// Signed checkpoints of the log's head.
    pub anchor: AnchorConfig,
    /// Notices and reminders: channels, offsets, the scheduler's tick.
    pub notify: crate::notify::NotifyConfig,
    /// Ratings: the edit window, the public page.
    pub ratings: RatingsConfig,
    /// `[review]`: optional map tiles under the reviewer's track.
    pub review: ReviewConfig,
    /// Webhooks: the worker, retries, bounds, outgoing URLs.
    pub webhooks: crate::webhooks::WebhooksConfig,
    /// OpenID Connect sign-in of staff, and whether local passwords still work.
    pub oidc: crate::oidc::OidcConfig,
    /// `[media]`: the phone's video bit-rate cap.
    pub media: MediaTuning,
}

/// Default largest evidence upload: 20 MiB (a full-resolution phone photo is 2–8 MB).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;
/// Default largest short video: a minute of a phone's MediaRecorder output at 5 Mbit/s.
pub const DEFAULT_MAX_VIDEO_BYTES: u64 = 40 * 1024 * 1024;

impl Config {
    /// Resolves flags/environment over the optional file over defaults.
    pub fn resolve(args: &ServeArgs) -> anyhow::Result<Config> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let data_dir = args
            .data_dir
            .clone()
            .or(file.data_dir)
            .unwrap_or_else(|| "data".into());
        let database_url = args
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| sqlite_url(&data_dir.join("inspector.db")));
        let public_url = args
            .public_url
            .clone()
            .or(file.public_url)
            .unwrap_or_else(|| format!("http://{listen}"))
            .trim_end_matches('/')
            .to_string();
        let media_udp = args
            .media_udp
            .clone()
            .or(file.media_udp)
            .unwrap_or_else(|| format!("{}:0", listen.ip()));
        let proxies = if args.trusted_proxies.is_empty() {
            &file.trusted_proxies
        } else {
            &args.trusted_proxies
        };
        let trusted_proxies = proxies
            .iter()
            .map(|s| parse_cidr(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let metrics_token = args
            .metrics_token
            .clone()
            .or(file.metrics_token)
            .filter(|t| !t.is_empty());
        if metrics_token.as_ref().is_some_and(|t| t.len() < 16) {
            anyhow::bail!("metrics_token must have at least 16 characters");
        }
        if file.http.max_websockets >= file.http.max_connections {
            anyhow::bail!("http.max_websockets must be below http.max_connections");
        }
        let blob = crate::blobs::BlobConfig {
            url: args.blob_url.clone().or(file.blob_url),
            endpoint: args.blob_endpoint.clone().or(file.blob_endpoint),
            region: args.blob_region.clone().or(file.blob_region),
            access_key_id: args.blob_access_key_id.clone().or(file.blob_access_key_id),
            secret_access_key: args
                .blob_secret_access_key
                .clone()
                .or(file.blob_secret_access_key),
            virtual_hosted: args
                .blob_virtual_hosted
                .or(file.blob_virtual_hosted)
                .unwrap_or(false),
        };
        let secs = |v: Option<f64>, default: f64, name: &str| -> anyhow::Result<i64> {
            let v = v.unwrap_or(default);
            if !(0.0..=600.0).contains(&v) {
                anyhow::bail!("{name} must be between 0 and 600 seconds");
            }
            Ok((v * 1000.0).round() as i64)
        };
        let max_upload_bytes = args
            .max_upload_bytes
            .or(file.max_upload_bytes)
            .unwrap_or(DEFAULT_MAX_UPLOAD_BYTES);
        if max_upload_bytes == 0 {
            anyhow::bail!("max_upload_bytes must be positive");
        }
        file.notify.check()?;
        file.review.check()?;
        file.webhooks.check()?;
        let mut oidc = file.oidc;
        // The secret from the environment, so that it need not sit in the file.
        if let Some(secret) = std::env::var("INSPECTOR_OIDC_CLIENT_SECRET")
            .ok()
            .filter(|s| !s.is_empty())
        {
            oidc.client_secret = Some(secret);
        }
        oidc.check()?;
        let key_file = file
            .anchor
            .checkpoint_key_file
            .unwrap_or_else(|| data_dir.join("anchor").join("checkpoint.key"));
        Ok(Config {
            listen,
            data_dir,
            database_url,
            public_url,
            media_udp,
            media_public_ip: args.media_public_ip.or(file.media_public_ip),
            ice_servers: file.ice_servers,
            invitation_ttl_hours: file.invitation_ttl_hours.unwrap_or(72),
            session_ttl_hours: file.session_ttl_hours.unwrap_or(12),
            control_body: file
                .control_body
                .unwrap_or_else(|| "Контрольный (надзорный) орган".into()),
            trusted_proxies,
            metrics_token,
            access_recheck: Duration::from_secs(file.access_recheck_secs.unwrap_or(5).max(1)),
            node_url: file.node_url.map(|u| u.trim_end_matches('/').to_string()),
            lease_ttl: Duration::from_secs(file.lease_ttl_secs.unwrap_or(10).clamp(2, 600)),
            http: file.http,
            login: file.login,
            live: file.live,
            blob,
            max_upload_bytes,
            clip_before_ms: secs(file.clip_before_secs, 5.0, "clip_before_secs")?,
            clip_after_ms: secs(file.clip_after_secs, 5.0, "clip_after_secs")?,
            max_video_bytes: match file.max_video_bytes {
                Some(0) => anyhow::bail!("max_video_bytes must be positive"),
                v => v.unwrap_or(DEFAULT_MAX_VIDEO_BYTES),
            },
            max_video_ms: match secs(file.max_video_secs, 60.0, "max_video_secs")? {
                0 => anyhow::bail!("max_video_secs must be positive"),
                ms => ms,
            },
            chapter_lead_in_ms: secs(file.chapter_lead_in_secs, 30.0, "chapter_lead_in_secs")?,
            business_raw_access: file.business_raw_access.unwrap_or(false),
            anchor: AnchorConfig {
                interval: Duration::from_secs(
                    file.anchor
                        .checkpoint_interval_secs
                        .unwrap_or(60)
                        .clamp(1, 86_400),
                ),
                key_file,
            },
            notify: file.notify,
            ratings: file.ratings,
            review: file.review,
            webhooks: file.webhooks,
            oidc,
            media: match file.media.max_video_kbps {
                // Below 100 kbit/s no useful video passes; above 20 Mbit/s is no phone's uplink.
                100..=20_000 => file.media,
                v => anyhow::bail!("[media] max_video_kbps must be 100–20000, not {v}"),
            },
        })
    }

    /// Where finalized recordings and journals live.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
    }

    /// Where local evidence blobs live (when no blob URL is configured).
    pub fn blobs_dir(&self) -> PathBuf {
        self.data_dir.join("blobs")
    }

    /// Whether cookies must carry `Secure` (the public URL is HTTPS).
    pub fn secure_cookies(&self) -> bool {
        self.public_url.starts_with("https://")
    }
}

/// Parses `10.0.0.0/8`, `::1/128` or a bare address (a single host).
fn parse_cidr(s: &str) -> anyhow::Result<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| anyhow::anyhow!("trusted proxy {s:?} is not an address or CIDR block"))
}

/// A `sqlite://` URL that creates the file when missing.
pub fn sqlite_url(path: &Path) -> String {
    format!("sqlite://{}?mode=rwc", path.display())
}

fn read_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read config file {}: {e}", path.display()))?;
    toml::from_str(&text)
        .map_err(|e| anyhow::anyhow!("invalid config file {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_use_sqlite_in_data_dir() {
        let c = Config::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.public_url, "http://127.0.0.1:8080");
        assert_eq!(c.database_url, "sqlite://data/inspector.db?mode=rwc");
        assert_eq!(c.recordings_dir(), PathBuf::from("data/recordings"));
        assert!(!c.secure_cookies());
        assert!(c.trusted_proxies.is_empty());
        assert_eq!(c.metrics_token, None);
        assert_eq!(c.http, HttpLimits::default());
        assert_eq!(c.login.per_user_and_address, 5);
        assert_eq!(c.live.max_sockets_per_participant, 8);
        assert_eq!(c.blob.url, None);
        assert_eq!(c.blobs_dir(), PathBuf::from("data/blobs"));
        assert_eq!(c.max_upload_bytes, 20 * 1024 * 1024);
        assert_eq!((c.clip_before_ms, c.clip_after_ms), (5000, 5000));
    }

    #[test]
    fn map_tiles_are_off_by_default_and_checked_when_set() {
        let c = Config::resolve(&ServeArgs::default()).unwrap();
        assert_eq!(c.review, ReviewConfig::default());
        assert_eq!(c.review.tile_origin(), None);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let with = |toml: &str| {
            std::fs::write(&path, toml).unwrap();
            Config::resolve(&ServeArgs {
                config: Some(path.clone()),
                ..Default::default()
            })
        };
        let c = with(
            "[review]\ntile_url = \"https://tiles.example.org:8443/{z}/{x}/{y}.png\"\n\
             tile_attribution = \"© OpenStreetMap\"\n",
        )
        .unwrap();
        assert_eq!(
            c.review.tile_origin().as_deref(),
            Some("https://tiles.example.org:8443")
        );
        for bad in [
            "tile_url = \"ftp://tiles.example.org/{z}/{x}/{y}.png\"",
            "tile_url = \"https://tiles.example.org/{z}/{x}.png\"",
            "tile_url = \"https://ti'les.example.org/{z}/{x}/{y}.png\"",
            "tile_url = \"/tiles/{z}/{x}/{y}.png\"",
            "tiles = true",
        ] {
            assert!(with(&format!("[review]\n{bad}\n")).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_and_proxies_come_from_the_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "trusted_proxies = [\"10.0.0.0/8\"]\nmetrics_token = \"0123456789abcdef\"\n\
             [http]\nmax_connections = 100\nmax_websockets = 50\n\
             [login]\nper_address = 7\n[live]\nbytes_per_minute = 1000\n",
        )
        .unwrap();
        let mut args = ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(
            c.trusted_proxies,
            vec!["10.0.0.0/8".parse::<IpNet>().unwrap()]
        );
        assert_eq!(c.metrics_token.as_deref(), Some("0123456789abcdef"));
        assert_eq!((c.http.max_connections, c.http.max_websockets), (100, 50));
        assert_eq!(c.http.header_timeout_secs, 10);
        assert_eq!(c.login.per_address, 7);
        assert_eq!(c.live.sync_config().quotas.bytes_per_minute, 1000);
        args.trusted_proxies = vec!["127.0.0.1".into(), "::1/128".into()];
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.trusted_proxies.len(), 2);
        args.trusted_proxies = vec!["nonsense".into()];
        assert!(Config::resolve(&args).is_err());
    }

    #[test]
    fn blob_store_and_clip_lengths_from_file_and_flags() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "blob_url = \"s3://evidence/node1\"\nblob_endpoint = \"http://127.0.0.1:8333\"\n\
             clip_before_secs = 3\nclip_after_secs = 7.5\nmax_upload_bytes = 1000\n",
        )
        .unwrap();
        let args = ServeArgs {
            config: Some(path),
            blob_region: Some("ru-central1".into()),
            max_upload_bytes: Some(2000),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.blob.url.as_deref(), Some("s3://evidence/node1"));
        assert_eq!(c.blob.region.as_deref(), Some("ru-central1"));
        assert_eq!((c.clip_before_ms, c.clip_after_ms), (3000, 7500));
        assert_eq!(c.max_upload_bytes, 2000);
    }

    #[test]
    fn flags_override_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "listen = \"0.0.0.0:9000\"\npublic_url = \"https://x.example/\"\n\
             [[ice_servers]]\nurls = [\"stun:stun.example:3478\"]\n",
        )
        .unwrap();
        let args = ServeArgs {
            listen: Some("127.0.0.1:9999".parse().unwrap()),
            config: Some(path),
            ..Default::default()
        };
        let c = Config::resolve(&args).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(c.public_url, "https://x.example");
        assert!(c.secure_cookies());
        assert_eq!(c.ice_servers.len(), 1);
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "lisen = \"0.0.0.0:9000\"\n").unwrap();
        let args = ServeArgs {
            config: Some(path),
            ..Default::default()
        };
        assert!(Config::resolve(&args).is_err());
    }

    #[test]
    fn the_video_bitrate_cap_has_a_default_and_bounds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        let resolve = |text: &str| {
            std::fs::write(&path, text).unwrap();
            Config::resolve(&ServeArgs {
                config: Some(path.clone()),
                ..Default::default()
            })
        };
        assert_eq!(resolve("").unwrap().media.max_video_kbps, 1500);
        assert_eq!(
            resolve("[media]\nmax_video_kbps = 600\n")
                .unwrap()
                .media
                .max_video_kbps,
            600
        );
        let e = resolve("[media]\nmax_video_kbps = 50\n").unwrap_err();
        assert!(e.to_string().contains("max_video_kbps"), "{e}");
        assert!(resolve("[media]\nmax_kbps = 600\n").is_err());
    }
}
