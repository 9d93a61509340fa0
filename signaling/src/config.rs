//! Server configuration: command-line flags, `INSPECTOR_*` environment variables and an
//! optional TOML file, in that order of precedence, over built-in defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
    /// A TOML configuration file with the same keys (listen, data_dir, …).
    #[arg(long, env = "INSPECTOR_CONFIG", global = true)]
    pub config: Option<PathBuf>,
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
    #[serde(default)]
    ice_servers: Vec<IceServerConfig>,
    invitation_ttl_hours: Option<u32>,
    session_ttl_hours: Option<u32>,
    blob_url: Option<String>,
    blob_endpoint: Option<String>,
    blob_region: Option<String>,
    blob_access_key_id: Option<String>,
    blob_secret_access_key: Option<String>,
    blob_virtual_hosted: Option<bool>,
    max_upload_bytes: Option<u64>,
    clip_before_secs: Option<f64>,
    clip_after_secs: Option<f64>,
    chapter_lead_in_secs: Option<f64>,
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
    /// ICE servers for browsers.
    pub ice_servers: Vec<IceServerConfig>,
    /// Default invitation lifetime.
    pub invitation_ttl_hours: u32,
    /// Staff session lifetime.
    pub session_ttl_hours: u32,
    /// The evidence blob store.
    pub blob: crate::blobs::BlobConfig,
    /// Largest evidence upload, bytes.
    pub max_upload_bytes: u64,
    /// How much of the recording before a violation's mark its clip shows, ms.
    pub clip_before_ms: i64,
    /// How much after the mark, ms.
    pub clip_after_ms: i64,
    /// How far before its mark an item's chapter may begin (when the previous mark is
    /// further back), ms: the footage that justified the result is in its chapter.
    pub chapter_lead_in_ms: i64,
}

/// Default largest evidence upload: 20 MiB (a full-resolution phone photo is 2–8 MB).
pub const DEFAULT_MAX_UPLOAD_BYTES: u64 = 20 * 1024 * 1024;

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
        Ok(Config {
            listen,
            data_dir,
            database_url,
            public_url,
            media_udp,
            ice_servers: file.ice_servers,
            invitation_ttl_hours: file.invitation_ttl_hours.unwrap_or(72),
            session_ttl_hours: file.session_ttl_hours.unwrap_or(12),
            blob,
            max_upload_bytes,
            clip_before_ms: secs(file.clip_before_secs, 5.0, "clip_before_secs")?,
            clip_after_ms: secs(file.clip_after_secs, 5.0, "clip_after_secs")?,
            chapter_lead_in_ms: secs(file.chapter_lead_in_secs, 30.0, "chapter_lead_in_secs")?,
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
        assert_eq!(c.blob.url, None);
        assert_eq!(c.blobs_dir(), PathBuf::from("data/blobs"));
        assert_eq!(c.max_upload_bytes, 20 * 1024 * 1024);
        assert_eq!((c.clip_before_ms, c.clip_after_ms), (5000, 5000));
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
}
