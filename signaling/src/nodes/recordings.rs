//! Recordings of several nodes in the object store (issue 20, item 4). While an inspection is
//! live its journals stay on the recording node's disk (the media path never waits for the
//! network) and are shipped to the object store in chunks every [`SHIP_EVERY`], so a node lost
//! for good costs at most those seconds of media. The node that finalizes pulls the journals
//! every other node shipped for the inspection, finalizes them with its own on one timeline
//! (`media_recorder` merges journals by feed, whoever recorded them), and publishes the file,
//! its chapters and, last, its manifest to the object store.
//!
//! Keys under `<blob prefix>/recordings/<inspection>/`:
//! - `journal/<origin>/<file>/<seq>-<offset>`: chunk `seq` (8 digits) of a journal file of the
//!   node `origin`, holding the file's bytes from `offset` (16 digits). A chunk that starts
//!   before the end of the ones before it cuts the file there first (a torn tail a restart
//!   repaired), so replaying the chunks in order gives the file as its node last had it.
//! - `final/<name>`: the finished file, `recording.vtt`, then `manifest.json`.
//!
//! `origin` is the node's id (`nodes::node_id`, its data directory's), the same across
//! restarts of that node, so a restarted node continues its chunks instead of shipping its
//! journals again under a new name. Journals pulled from other nodes are named
//! `x<origin>-<file>` and are never shipped back.
//!
//! Only with several nodes (PostgreSQL) and a remote object store; one machine keeps its
//! recordings on its disk as before.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use uuid::Uuid;

use media_recorder::finalize::{MANIFEST_FILE, VTT_FILE};

use crate::blobs::{BlobError, BlobStore};

/// How often new journal bytes are shipped: what a node lost for good may cost.
pub const SHIP_EVERY: Duration = Duration::from_secs(2);

/// Most bytes in one chunk.
const MAX_CHUNK: u64 = 8 * 1024 * 1024;

/// Journals shipped at once.
const SHIP_CONCURRENCY: usize = 16;

/// What has been shipped of one journal file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shipped {
    len: u64,
    next_seq: u32,
}

/// The recordings of this node in the shared object store.
pub struct SharedRecordings {
    db: sqlx::AnyPool,
    blobs: BlobStore,
    recordings_dir: PathBuf,
    origin: String,
}

/// A chunk's place, parsed from its key's last part.
fn parse_chunk(name: &str) -> Option<(u32, u64)> {
    let (seq, offset) = name.split_once('-')?;
    Some((seq.parse().ok()?, offset.parse().ok()?))
}

fn chunk_name(seq: u32, offset: u64) -> String {
    format!("{seq:08}-{offset:016}")
}

impl SharedRecordings {
    /// The shared recordings of the node whose data directory's id is `origin`.
    pub fn new(
        db: sqlx::AnyPool,
        blobs: BlobStore,
        recordings_dir: PathBuf,
        origin: String,
    ) -> SharedRecordings {
        SharedRecordings {
            db,
            blobs,
            recordings_dir,
            origin,
        }
    }

    /// Ships new journal bytes every [`SHIP_EVERY`], for the life of the process.
    pub async fn run_shipper(self: std::sync::Arc<Self>) {
        let mut shipped: HashMap<PathBuf, Shipped> = HashMap::new();
        loop {
            tokio::time::sleep(SHIP_EVERY).await;
            if let Err(e) = self.ship_once(&mut shipped).await {
                tracing::warn!(error = %e, "recordings: shipping journals failed; retrying");
            }
        }
    }

    /// This node's journals of inspections not finalized here: `(inspection, path)`.
    fn own_journals(&self) -> Vec<(Uuid, PathBuf)> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(&self.recordings_dir) else {
            return out;
        };
        for d in dirs.flatten() {
            let Some(id) = d.file_name().to_str().and_then(|n| Uuid::parse_str(n).ok()) else {
                continue;
            };
            if d.path().join("manifest.json").exists() {
                continue;
            }
            let Ok(files) = media_recorder::journal::list_journals(&d.path()) else {
                continue;
            };
            for f in files {
                let pulled = f
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_none_or(|n| n.starts_with('x'));
                if !pulled {
                    out.push((id, f));
                }
            }
        }
        out
    }

    fn journal_prefix(&self, id: Uuid, file: &str) -> String {
        format!("{id}/journal/{}/{file}", self.origin)
    }

    /// One pass: every journal that changed since it was last shipped gets a chunk, up to
    /// [`SHIP_CONCURRENCY`] at once (a node records many inspections; one PUT after another
    /// would fall behind the journals).
    async fn ship_once(&self, shipped: &mut HashMap<PathBuf, Shipped>) -> Result<(), BlobError> {
        use futures_util::StreamExt;
        let work: Vec<(Uuid, PathBuf, Option<Shipped>)> = self
            .own_journals()
            .into_iter()
            .map(|(id, path)| {
                let known = shipped.get(&path).copied();
                (id, path, known)
            })
            .collect();
        let results: Vec<(PathBuf, Result<Shipped, BlobError>)> = futures_util::stream::iter(work)
            .map(|(id, path, known)| async move {
                let r = self.ship_file(id, &path, known).await;
                (path, r)
            })
            .buffer_unordered(SHIP_CONCURRENCY)
            .collect()
            .await;
        let mut first_error = None;
        for (path, r) in results {
            match r {
                Ok(s) => {
                    shipped.insert(path, s);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Ships what is new in one journal; its state after (`known`: before, if this process
    /// has shipped it already).
    async fn ship_file(
        &self,
        id: Uuid,
        path: &Path,
        known: Option<Shipped>,
    ) -> Result<Shipped, BlobError> {
        let file = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let len = tokio::fs::metadata(path).await?.len();
        let state = match known {
            Some(s) => s,
            // First sight in this process: continue what the store already has.
            None => self.shipped_before(id, &file).await?,
        };
        if len == state.len {
            return Ok(state);
        }
        // Shorter: cut there (an empty chunk at the new end); longer: the new bytes.
        let (offset, bytes) = if len < state.len {
            (len, Bytes::new())
        } else {
            let end = len.min(state.len + MAX_CHUNK);
            (state.len, read_range(path, state.len, end).await?)
        };
        let new_len = offset + bytes.len() as u64;
        let rel = format!(
            "{}/{}",
            self.journal_prefix(id, &file),
            chunk_name(state.next_seq, offset)
        );
        self.blobs.put_recording_object(&rel, bytes).await?;
        Ok(Shipped {
            len: new_len,
            next_seq: state.next_seq + 1,
        })
    }

    /// What the store holds of a journal of this node: the end of its last chunk.
    async fn shipped_before(&self, id: Uuid, file: &str) -> Result<Shipped, BlobError> {
        let last = self
            .blobs
            .list_recording_objects(&self.journal_prefix(id, file))
            .await?
            .into_iter()
            .filter_map(|rel| {
                let (seq, offset) = parse_chunk(rel.rsplit('/').next()?)?;
                Some((seq, offset, rel))
            })
            .max();
        Ok(match last {
            Some((seq, offset, rel)) => {
                let size = self
                    .blobs
                    .get_recording_object(&rel)
                    .await?
                    .map_or(0, |b| b.len() as u64);
                Shipped {
                    len: offset + size,
                    next_seq: seq + 1,
                }
            }
            None => Shipped {
                len: 0,
                next_seq: 0,
            },
        })
    }

    /// Before finalizing `id` here: every journal another node shipped for it, rebuilt in its
    /// journal directory as `x<origin>-<file>`. Returns how many.
    pub async fn pull(&self, id: Uuid) -> Result<usize, BlobError> {
        let mut files: HashMap<(String, String), Vec<(u32, u64, String)>> = HashMap::new();
        for rel in self
            .blobs
            .list_recording_objects(&format!("{id}/journal"))
            .await?
        {
            // <id>/journal/<origin>/<file>/<chunk>
            let parts: Vec<&str> = rel.split('/').collect();
            let [_, "journal", origin, file, chunk] = parts.as_slice() else {
                continue;
            };
            if *origin == self.origin {
                continue;
            }
            if let Some((seq, offset)) = parse_chunk(chunk) {
                files
                    .entry((origin.to_string(), file.to_string()))
                    .or_default()
                    .push((seq, offset, rel.clone()));
            }
        }
        let dir = media_recorder::journal::journal_dir(&self.recordings_dir.join(id.to_string()));
        tokio::fs::create_dir_all(&dir).await?;
        let n = files.len();
        for ((origin, file), mut chunks) in files {
            chunks.sort();
            let mut bytes: Vec<u8> = Vec::new();
            for (_, offset, rel) in chunks {
                let Some(chunk) = self.blobs.get_recording_object(&rel).await? else {
                    continue;
                };
                let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                if offset > bytes.len() {
                    // A chunk missing in between: keep the journal up to the gap.
                    tracing::warn!(%id, origin, file, "recordings: a gap in a shipped journal");
                    break;
                }
                bytes.truncate(offset);
                bytes.extend_from_slice(&chunk);
            }
            let target = dir.join(format!("x{origin}-{file}"));
            let tmp = dir.join(format!(".x{origin}-{file}.tmp"));
            tokio::fs::write(&tmp, &bytes).await?;
            tokio::fs::File::open(&tmp).await?.sync_all().await?;
            tokio::fs::rename(&tmp, &target).await?;
        }
        Ok(n)
    }

    /// After finalizing `id` here: the file, its chapters, then its manifest, in the store;
    /// then the `finished_recordings` row that says so to every node.
    pub async fn publish(
        &self,
        id: Uuid,
        manifest: &media_recorder::Manifest,
    ) -> anyhow::Result<()> {
        let dir = self.recordings_dir.join(id.to_string());
        for name in [manifest.file.as_str(), VTT_FILE, MANIFEST_FILE] {
            let path = dir.join(name);
            if name == VTT_FILE && !path.exists() {
                continue;
            }
            self.blobs
                .put_recording_file(&format!("{id}/final/{name}"), &path)
                .await?;
        }
        let json = tokio::fs::read_to_string(dir.join(MANIFEST_FILE)).await?;
        sqlx::query(
            "INSERT INTO finished_recordings (inspection_id, manifest, node_origin, finished_at) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (inspection_id) DO NOTHING",
        )
        .bind(id.to_string())
        .bind(json)
        .bind(&self.origin)
        .bind(crate::db::now_micros())
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// A recording another node finished, made local on first read: the file and its
    /// chapters from the store, checked against the manifest's SHA-256, then the manifest,
    /// last (as a finalization writes them). `false` when it is not finished anywhere.
    pub async fn materialize(&self, id: Uuid) -> anyhow::Result<bool> {
        let dir = self.recordings_dir.join(id.to_string());
        if dir.join(MANIFEST_FILE).exists() {
            return Ok(true);
        }
        let row = sqlx::query("SELECT manifest FROM finished_recordings WHERE inspection_id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.db)
            .await?;
        let Some(row) = row else { return Ok(false) };
        let json: String = sqlx::Row::try_get(&row, 0)?;
        let manifest: media_recorder::Manifest = serde_json::from_str(&json)?;
        if manifest.file.contains('/') || manifest.file.contains("..") {
            anyhow::bail!("manifest names an unexpected file {:?}", manifest.file);
        }
        tokio::fs::create_dir_all(&dir).await?;
        for name in [manifest.file.as_str(), VTT_FILE] {
            let Some(bytes) = self
                .blobs
                .get_recording_object(&format!("{id}/final/{name}"))
                .await?
            else {
                if name == VTT_FILE {
                    continue;
                }
                anyhow::bail!("finished recording {id}: {name} is not in the object store");
            };
            if name == manifest.file {
                use sha2::Digest;
                let got = hex::encode(sha2::Sha256::digest(&bytes));
                if got != manifest.sha256 {
                    anyhow::bail!(
                        "finished recording {id}: the store's file hashes to {got}, not {}",
                        manifest.sha256
                    );
                }
            }
            write_synced(&dir, name, &bytes).await?;
        }
        write_synced(&dir, MANIFEST_FILE, json.as_bytes()).await?;
        tracing::info!(%id, "fetched a recording another node finished");
        Ok(true)
    }
}

/// Writes `name` in `dir` through a synced temporary file and a rename.
async fn write_synced(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    tokio::fs::write(&tmp, bytes).await?;
    tokio::fs::File::open(&tmp).await?.sync_all().await?;
    tokio::fs::rename(&tmp, dir.join(name)).await
}

async fn read_range(path: &Path, from: u64, to: u64) -> Result<Bytes, BlobError> {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    let mut f = tokio::fs::File::open(path).await?;
    f.seek(std::io::SeekFrom::Start(from)).await?;
    let mut buf = vec![0u8; usize::try_from(to - from).unwrap_or(0)];
    f.read_exact(&mut buf).await?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two nodes on one store (local files here): what node 1's journal went through —
    /// appends, a cut of a torn tail, more appends — node 2 rebuilds exactly.
    #[tokio::test]
    async fn a_journal_pulled_by_another_node_is_the_file_as_its_node_last_had_it() {
        sqlx::any::install_default_drivers();
        let db = sqlx::AnyPool::connect_lazy("sqlite::memory:").expect("pool");
        let root = tempfile::tempdir().expect("dir");
        let store = BlobStore::open(
            &crate::blobs::BlobConfig::default(),
            &root.path().join("store"),
        )
        .expect("store");
        let (one, two) = (root.path().join("one"), root.path().join("two"));
        let node1 = SharedRecordings::new(db.clone(), store.clone(), one.clone(), "n1".into());
        let node2 = SharedRecordings::new(db, store, two.clone(), "n2".into());
        let id = Uuid::new_v4();
        let dir = media_recorder::journal::journal_dir(&one.join(id.to_string()));
        std::fs::create_dir_all(&dir).expect("dir");
        let journal = dir.join("000000-video.rtpj");
        let mut shipped = HashMap::new();
        let write = |bytes: &[u8]| std::fs::write(&journal, bytes).expect("write");
        write(b"header\nabcdef");
        node1.ship_once(&mut shipped).await.expect("ship");
        write(b"header\nabcdefTORN");
        node1.ship_once(&mut shipped).await.expect("ship");
        write(b"header\nabcdef");
        node1.ship_once(&mut shipped).await.expect("ship");
        write(b"header\nabcdefgh");
        // A restart of node 1: it continues from what the store has.
        let mut fresh = HashMap::new();
        node1.ship_once(&mut fresh).await.expect("ship");
        node1.ship_once(&mut fresh).await.expect("nothing new");
        assert_eq!(node2.pull(id).await.expect("pull"), 1);
        let pulled = media_recorder::journal::journal_dir(&two.join(id.to_string()))
            .join("xn1-000000-video.rtpj");
        assert_eq!(std::fs::read(&pulled).expect("pulled"), b"header\nabcdefgh");
        // A node never pulls its own, and never ships what it pulled.
        assert_eq!(node1.pull(id).await.expect("pull"), 0);
        assert!(node2.own_journals().is_empty());
    }

    #[test]
    fn a_chunk_name_reads_back() {
        assert_eq!(parse_chunk(&chunk_name(7, 123_456)), Some((7, 123_456)));
        assert_eq!(parse_chunk("junk"), None);
    }
}
