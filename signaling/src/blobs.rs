//! The blob store: evidence files (photos, clips, stills), content-addressed by the SHA-256
//! the server computes while it receives the bytes.
//!
//! Built on `object_store`: local files under the data directory by default, any
//! S3-compatible service by configuration (`--blob-url s3://bucket/prefix`). Keys:
//! `<prefix>/sha256/<first two hex digits>/<hash>`. A write streams into a temporary key
//! (`<prefix>/tmp/<uuid>`) while hashing and counting, and only then moves to its content key,
//! so a content key always holds exactly the bytes of its name; nothing half-written is ever
//! visible there or referenced by an event. On local disk the file and its directory are
//! fsynced before [`Staged::commit`] returns (persist before acknowledging); an S3 PUT or copy
//! is durable when it is answered.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{GetOptions, GetRange, ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};

/// Multipart chunk size: S3's minimum part size (all parts but the last).
const CHUNK: usize = 5 * 1024 * 1024;

/// Where blobs live, from the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlobConfig {
    /// `s3://bucket/prefix`, or `None` (or a `file://` path) for local files.
    pub url: Option<String>,
    /// S3 endpoint, e.g. `http://127.0.0.1:8333` (any S3-compatible service).
    pub endpoint: Option<String>,
    /// S3 region [default: us-east-1].
    pub region: Option<String>,
    /// S3 access key id.
    pub access_key_id: Option<String>,
    /// S3 secret access key.
    pub secret_access_key: Option<String>,
    /// Virtual-hosted-style addressing (`bucket.host`) instead of path-style (`host/bucket`).
    pub virtual_hosted: bool,
}

/// Errors of the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// More bytes than the caller allows.
    #[error("the content is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The incoming stream failed before its end (client went away, body cut short).
    #[error("the upload was interrupted: {0}")]
    Interrupted(String),
    /// The configuration names no usable store.
    #[error("blob store configuration: {0}")]
    Config(String),
    /// The store failed.
    #[error("blob store: {0}")]
    Store(#[from] object_store::Error),
    /// A local file operation failed.
    #[error("blob store file: {0}")]
    Io(#[from] std::io::Error),
}

/// A blob that is stored under its content key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// SHA-256, lowercase hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// Bytes received into a temporary key, hashed and counted, not yet under their content key.
/// [`Staged::commit`] publishes them, [`Staged::discard`] removes them; dropping a `Staged`
/// leaves the temporary object for the start-up sweep.
#[must_use = "commit or discard the staged blob"]
#[derive(Debug)]
pub struct Staged {
    tmp: Path,
    /// SHA-256 of the received bytes, lowercase hex.
    pub sha256: String,
    /// Number of bytes received.
    pub size: u64,
    /// The first bytes (up to the `head` length asked for), to detect the content type.
    pub head: Vec<u8>,
    /// The last bytes (up to 64 KiB), to check that a file format's end marker is there.
    pub tail: Vec<u8>,
}

/// The blob store: cheap to clone.
#[derive(Clone)]
pub struct BlobStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// The root directory when the store is local, for fsync.
    local_root: Option<PathBuf>,
    describe: String,
}

impl fmt::Debug for BlobStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe)
    }
}

impl BlobStore {
    /// Opens the store the configuration names; local files default to `default_dir`.
    pub fn open(cfg: &BlobConfig, default_dir: &std::path::Path) -> Result<BlobStore, BlobError> {
        match cfg.url.as_deref() {
            None => Self::local(default_dir),
            Some(url) if url.starts_with("file://") => {
                Self::local(std::path::Path::new(&url["file://".len()..]))
            }
            Some(url) if url.starts_with("s3://") => {
                let rest = &url["s3://".len()..];
                let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
                if bucket.is_empty() {
                    return Err(BlobError::Config(format!("no bucket in {url}")));
                }
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(cfg.region.clone().unwrap_or_else(|| "us-east-1".into()))
                    .with_virtual_hosted_style_request(cfg.virtual_hosted);
                if let Some(e) = &cfg.endpoint {
                    b = b
                        .with_endpoint(e.trim_end_matches('/'))
                        .with_allow_http(e.starts_with("http://"));
                }
                match (&cfg.access_key_id, &cfg.secret_access_key) {
                    (Some(k), Some(s)) => {
                        b = b.with_access_key_id(k).with_secret_access_key(s);
                    }
                    (None, None) => {}
                    _ => {
                        return Err(BlobError::Config(
                            "give both the access key id and the secret access key".into(),
                        ))
                    }
                }
                let store = b.build()?;
                Ok(BlobStore {
                    store: Arc::new(store),
                    prefix: Path::from(prefix.trim_matches('/')),
                    local_root: None,
                    describe: format!("s3://{bucket}/{}", prefix.trim_matches('/')),
                })
            }
            Some(url) => Err(BlobError::Config(format!(
                "unsupported blob URL {url:?} (use s3://bucket/prefix or file:///dir)"
            ))),
        }
    }

    fn local(dir: &std::path::Path) -> Result<BlobStore, BlobError> {
        std::fs::create_dir_all(dir)?;
        let root = dir.canonicalize()?;
        let store = LocalFileSystem::new_with_prefix(&root)?;
        Ok(BlobStore {
            store: Arc::new(store),
            prefix: Path::default(),
            describe: format!("file://{}", root.display()),
            local_root: Some(root),
        })
    }

    /// The root directory of a local store; `None` for a remote (S3-compatible) one.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    fn key(&self, sha256: &str) -> Path {
        let fan = sha256.get(..2).unwrap_or("00");
        self.prefix.clone().join("sha256").join(fan).join(sha256)
    }

    fn tmp_dir(&self) -> Path {
        self.prefix.clone().join("tmp")
    }

    /// Receives a stream into a temporary key, hashing and counting as it goes. More than
    /// `limit` bytes → [`BlobError::TooLarge`]; a stream error → [`BlobError::Interrupted`];
    /// either way the temporary object is removed and nothing is stored.
    pub async fn stage<S, E>(
        &self,
        mut stream: S,
        limit: u64,
        head_len: usize,
    ) -> Result<Staged, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: fmt::Display,
    {
        let tmp = self.tmp_dir().join(uuid::Uuid::new_v4().to_string());
        let upload = self.store.put_multipart(&tmp).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut head = Vec::new();
        let mut tail: Vec<u8> = Vec::new();
        const TAIL: usize = 64 * 1024;
        let failure = loop {
            let chunk = match stream.next().await {
                None => break None,
                Some(Err(e)) => break Some(BlobError::Interrupted(e.to_string())),
                Some(Ok(c)) => c,
            };
            size += chunk.len() as u64;
            if size > limit {
                break Some(BlobError::TooLarge { limit });
            }
            hasher.update(&chunk);
            if head.len() < head_len {
                let take = (head_len - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            tail.extend_from_slice(&chunk[chunk.len().saturating_sub(TAIL)..]);
            if tail.len() > TAIL {
                tail.drain(..tail.len() - TAIL);
            }
            // Bounded memory: at most two chunks in flight.
            if let Err(e) = writer.wait_for_capacity(2).await {
                break Some(e.into());
            }
            writer.put(chunk);
        };
        if let Some(e) = failure {
            let _ = writer.abort().await;
            // A store that completed parts may keep the object; make sure it goes.
            let _ = self.store.delete(&tmp).await;
            return Err(e);
        }
        writer.finish().await?;
        Ok(Staged {
            tmp,
            sha256: hex::encode(hasher.finalize()),
            size,
            head,
            tail,
        })
    }

    /// The key of a recording object, `<prefix>/recordings/<rel>` (issue 20: journals and
    /// finished recordings of several nodes). Named, not content-addressed: a journal chunk is
    /// known by where it belongs, and a finished file's hash is in its manifest.
    fn recording_key(&self, rel: &str) -> Path {
        self.named_key("recordings", rel)
    }

    fn named_key(&self, area: &str, rel: &str) -> Path {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.prefix.clone().join(area), |k, p| k.join(p))
    }

    /// Stores an act's file (`<prefix>/acts/<rel>`; several nodes, issue 20).
    pub async fn put_act_object(&self, rel: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&self.named_key("acts", rel), bytes.into())
            .await?;
        Ok(())
    }

    /// An act's file from the store; `None` if there is none.
    pub async fn get_act_object(&self, rel: &str) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&self.named_key("acts", rel)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Stores a recording object in one request (journal chunks: small).
    pub async fn put_recording_object(&self, rel: &str, bytes: Bytes) -> Result<(), BlobError> {
        self.store
            .put(&self.recording_key(rel), bytes.into())
            .await?;
        Ok(())
    }

    /// Stores a file as a recording object, streamed in parts (a finished recording).
    pub async fn put_recording_file(
        &self,
        rel: &str,
        file: &std::path::Path,
    ) -> Result<(), BlobError> {
        use tokio::io::AsyncReadExt;
        let mut f = tokio::fs::File::open(file).await?;
        let upload = self.store.put_multipart(&self.recording_key(rel)).await?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, CHUNK);
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = match f.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(e.into());
                }
            };
            if let Err(e) = writer.wait_for_capacity(2).await {
                let _ = writer.abort().await;
                return Err(e.into());
            }
            writer.write(&buf[..n]);
        }
        writer.finish().await?;
        Ok(())
    }

    /// A recording object's bytes, whole; `None` if there is none.
    pub async fn get_recording_object(&self, rel: &str) -> Result<Option<Bytes>, BlobError> {
        match self.store.get(&self.recording_key(rel)).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The recording objects under `rel_prefix`, as paths relative to `recordings/`, sorted.
    pub async fn list_recording_objects(&self, rel_prefix: &str) -> Result<Vec<String>, BlobError> {
        let base = self.prefix.clone().join("recordings");
        let base_parts = base.parts().count();
        let mut out: Vec<String> = self
            .store
            .list(Some(&self.recording_key(rel_prefix)))
            .map_ok(|m| {
                m.location
                    .parts()
                    .skip(base_parts)
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .try_collect()
            .await?;
        out.sort();
        Ok(out)
    }

    /// Stores a whole byte string (clips and stills made by the server).
    pub async fn put_bytes(&self, bytes: Bytes) -> Result<StoredBlob, BlobError> {
        let n = bytes.len() as u64;
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes)]);
        self.stage(stream, n, 0).await?.commit(self).await
    }

    /// Whether a blob with this hash is stored.
    pub async fn exists(&self, sha256: &str) -> Result<bool, BlobError> {
        match self.store.head(&self.key(sha256)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// The blob's bytes (or a range of them) as a stream, with the blob's total size and the
    /// range served. `None` if there is no such blob or the range starts past its end.
    pub async fn get(
        &self,
        sha256: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<BlobRead>, BlobError> {
        let opts = GetOptions {
            range: range.map(GetRange::Bounded),
            ..Default::default()
        };
        match self.store.get_opts(&self.key(sha256), opts).await {
            Ok(r) => Ok(Some(BlobRead {
                total: r.meta.size,
                range: r.range.clone(),
                stream: r.into_stream().map_err(std::io::Error::other).boxed(),
            })),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(object_store::Error::NotModified { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Recomputes the blob's SHA-256: `Ok(None)` if it is missing, `Ok(Some(hash, size))` else.
    pub async fn rehash(&self, sha256: &str) -> Result<Option<(String, u64)>, BlobError> {
        let Some(mut read) = self.get(sha256, None).await? else {
            return Ok(None);
        };
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        while let Some(chunk) = read.stream.next().await {
            let chunk = chunk?;
            size += chunk.len() as u64;
            hasher.update(&chunk);
        }
        Ok(Some((hex::encode(hasher.finalize()), size)))
    }

    /// Every content key's hash (tests, audit). Temporary objects are not listed.
    pub async fn list(&self) -> Result<Vec<String>, BlobError> {
        let prefix = self.prefix.clone().join("sha256");
        let mut out: Vec<String> = self
            .store
            .list(Some(&prefix))
            .map_ok(|m| m.location.filename().unwrap_or_default().to_string())
            .try_collect()
            .await?;
        out.sort();
        Ok(out)
    }

    /// Number of temporary objects (writes in progress, or left by a crash).
    pub async fn temporaries(&self) -> Result<usize, BlobError> {
        let n = self
            .store
            .list(Some(&self.tmp_dir()))
            .try_fold(0usize, |n, _| std::future::ready(Ok(n + 1)))
            .await?;
        Ok(n)
    }

    /// Removes temporary objects older than `age` (left by a crash in the middle of a write).
    pub async fn sweep_temporaries(&self, age: std::time::Duration) -> Result<usize, BlobError> {
        let cutoff = chrono::Utc::now()
            - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::hours(1));
        let old: Vec<Path> = self
            .store
            .list(Some(&self.tmp_dir()))
            .try_filter(|m| std::future::ready(m.last_modified < cutoff))
            .map_ok(|m| m.location)
            .try_collect()
            .await?;
        for p in &old {
            self.store.delete(p).await?;
        }
        Ok(old.len())
    }

    /// Makes a local file and its directories durable (S3 is durable when it answers).
    async fn sync_local(&self, key: &Path) -> Result<(), BlobError> {
        let Some(root) = &self.local_root else {
            return Ok(());
        };
        let mut path = root.clone();
        for part in key.parts() {
            path.push(part.as_ref());
        }
        let root = root.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            std::fs::File::open(&path)?.sync_all()?;
            let mut dir = path.parent();
            while let Some(d) = dir {
                std::fs::File::open(d)?.sync_all()?;
                if d == root {
                    break;
                }
                dir = d.parent();
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)??;
        Ok(())
    }
}

impl Staged {
    /// Moves the bytes to their content key and makes them durable. Content-addressed: if the
    /// same bytes are already stored, the key is simply rewritten with identical content.
    pub async fn commit(self, store: &BlobStore) -> Result<StoredBlob, BlobError> {
        let key = store.key(&self.sha256);
        store.store.rename(&self.tmp, &key).await?;
        store.sync_local(&key).await?;
        Ok(StoredBlob {
            sha256: self.sha256,
            size: self.size,
        })
    }

    /// Copies the staged bytes to a local file, for a tool that needs a seekable file
    /// (ffprobe reads an MP4's index at its end).
    pub async fn copy_to(
        &self,
        store: &BlobStore,
        path: &std::path::Path,
    ) -> Result<(), BlobError> {
        use tokio::io::AsyncWriteExt;
        let mut stream = store.store.get(&self.tmp).await?.into_stream();
        let mut file = tokio::fs::File::create(path).await?;
        while let Some(chunk) = stream.next().await {
            file.write_all(&chunk?).await?;
        }
        file.flush().await?;
        Ok(())
    }

    /// Removes the temporary bytes: nothing is stored.
    pub async fn discard(self, store: &BlobStore) {
        if let Err(e) = store.store.delete(&self.tmp).await {
            tracing::warn!(error = %e, key = %self.tmp, "could not remove a discarded upload; the start-up sweep will");
        }
    }
}

/// A blob being read.
pub struct BlobRead {
    /// The blob's total size.
    pub total: u64,
    /// The byte range this read covers.
    pub range: Range<u64>,
    /// The bytes.
    pub stream: futures_util::stream::BoxStream<'static, std::io::Result<Bytes>>,
}
