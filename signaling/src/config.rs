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
    control_body: Option<String>,
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
    /// The control (supervisory) body's name: printed in acts, named in certificates.
    pub control_body: String,
}

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
        Ok(Config {
            listen,
            data_dir,
            database_url,
            public_url,
            media_udp,
            ice_servers: file.ice_servers,
            invitation_ttl_hours: file.invitation_ttl_hours.unwrap_or(72),
            session_ttl_hours: file.session_ttl_hours.unwrap_or(12),
            control_body: file
                .control_body
                .unwrap_or_else(|| "Контрольный (надзорный) орган".into()),
        })
    }

    /// Where finalized recordings and journals live.
    pub fn recordings_dir(&self) -> PathBuf {
        self.data_dir.join("recordings")
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
