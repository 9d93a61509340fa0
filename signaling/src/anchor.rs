//! Signed checkpoints of the event log's head: the anchor that makes a rewritten log
//! detectable without an act. The server signs `(inspection, seq, head hash, time)` with a
//! checkpoint key that is not in the database (an Ed25519 key file, mode 0600, created at
//! first start; `[anchor] checkpoint_key_file`), at the end of an inspection and after every
//! event the server makes afterwards (the recording's hash, derived evidence, the act), and
//! every `checkpoint_interval_secs` while the head moves.
//!
//! Each checkpoint is kept twice, on purpose: as a line of `<data>/anchor/<inspection>.jsonl`
//! (append-only, every record naming the previous one's hash) and as a row of `checkpoints`.
//! Someone who can write only the database cannot remove the file's lines, someone who can
//! write only the files cannot remove the rows, and neither can sign a new checkpoint without
//! the key (docs/security.md says what someone with both can do). `audit verify` checks both.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::AnyPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::db::{now_micros, RowExt};

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): the raw key follows.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// The server's checkpoint signing key.
pub struct CheckpointKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for CheckpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CheckpointKey({})", self.key_id())
    }
}

impl CheckpointKey {
    /// Loads the key at `path`, creating it (mode 0600) and its public half beside it
    /// (`.pub.pem`, for `openssl pkeyutl -verify`) at first start.
    pub fn load_or_create(path: &Path) -> anyhow::Result<CheckpointKey> {
        let pkcs8 = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let rng = ring::rand::SystemRandom::new();
                let doc = Ed25519KeyPair::generate_pkcs8(&rng)
                    .map_err(|_| anyhow::anyhow!("cannot generate the checkpoint key"))?;
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                write_private(path, doc.as_ref())?;
                doc.as_ref().to_vec()
            }
            Err(e) => return Err(anyhow::anyhow!("checkpoint key {}: {e}", path.display())),
        };
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| anyhow::anyhow!("checkpoint key {}: {e}", path.display()))?;
        let key = CheckpointKey { pair };
        let pub_path = public_path(path);
        if !pub_path.exists() {
            std::fs::write(&pub_path, key.public_pem())?;
        }
        Ok(key)
    }

    /// The raw 32-byte public key.
    pub fn public_raw(&self) -> &[u8] {
        self.pair.public_key().as_ref()
    }

    /// The public key as PEM (SubjectPublicKeyInfo).
    pub fn public_pem(&self) -> String {
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(self.public_raw());
        crate::signing::ca::der_to_pem(&der).replace("CERTIFICATE", "PUBLIC KEY")
    }

    /// SHA-256 of the raw public key: what every record names.
    pub fn key_id(&self) -> String {
        hex::encode(Sha256::digest(self.public_raw()))
    }

    fn sign(&self, bytes: &[u8]) -> Vec<u8> {
        self.pair.sign(bytes).as_ref().to_vec()
    }
}

/// Where the public half of the key at `key_path` is written.
pub fn public_path(key_path: &Path) -> PathBuf {
    key_path.with_extension("pub.pem")
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

/// Why a checkpoint was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The periodic checkpoint of a live (or not yet checkpointed) head.
    Periodic,
    /// At the end (finish, cancel) or after a server-made event that follows it.
    End,
}

/// What a checkpoint signs. Its JSON text, exactly as stored, is the signed message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Format version (1).
    pub v: u32,
    /// The inspection.
    pub inspection_id: Uuid,
    /// The head's seq.
    pub seq: u64,
    /// The head's hash.
    pub head_hash: String,
    /// When it was signed, µs since the epoch (the server's clock).
    pub at: i64,
    /// Why.
    pub reason: Reason,
    /// SHA-256 of the previous record's text in this inspection's file (`null` for the first).
    pub prev: Option<String>,
    /// The signing key's id (SHA-256 of its raw public key).
    pub key: String,
}

/// One stored checkpoint: the record's exact text and its Ed25519 signature (base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signed {
    /// The signed text.
    pub record: String,
    /// The signature, standard base64.
    pub signature: String,
}

impl Signed {
    /// SHA-256 of the record's text.
    pub fn record_sha256(&self) -> String {
        hex::encode(Sha256::digest(self.record.as_bytes()))
    }

    /// Checks the signature under `public_raw` and parses the record.
    pub fn verify(&self, public_raw: &[u8]) -> Result<Record, String> {
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&self.signature)
            .map_err(|e| format!("signature is not base64: {e}"))?;
        UnparsedPublicKey::new(&ED25519, public_raw)
            .verify(self.record.as_bytes(), &sig)
            .map_err(|_| "the signature does not verify under the checkpoint key".to_string())?;
        serde_json::from_str(&self.record).map_err(|e| format!("record: {e}"))
    }
}

/// The checkpoint file of an inspection.
pub fn file_path(data_dir: &Path, inspection: Uuid) -> PathBuf {
    data_dir.join("anchor").join(format!("{inspection}.jsonl"))
}

/// Reads an inspection's checkpoint file (empty when there is none). A line that does not
/// parse is returned as an error with its number: a torn last line is a finding too.
pub fn read_file(path: &Path) -> anyhow::Result<Vec<Result<Signed, (usize, String)>>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.into()),
    };
    Ok(text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str::<Signed>(l).map_err(|e| (i + 1, e.to_string())))
        .collect())
}

/// The rows of `checkpoints` of an inspection, in seq order.
pub async fn read_rows(pool: &AnyPool, inspection: Uuid) -> anyhow::Result<Vec<Signed>> {
    let rows = sqlx::query(
        "SELECT record, signature FROM checkpoints WHERE inspection_id = $1 ORDER BY seq",
    )
    .bind(inspection.to_string())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Signed {
                record: r.col(0)?,
                signature: r.col(1)?,
            })
        })
        .collect()
}

/// Makes checkpoints.
pub struct Checkpointer {
    db: AnyPool,
    data_dir: PathBuf,
    key: CheckpointKey,
    interval: Duration,
}

/// Whether a head should be checkpointed now: it moved since the last checkpoint, and either
/// the inspection asks for one at once (its end, a server event after it) or the interval
/// has passed since the last one. Time is an input (µs), so this is tested without clocks.
pub fn due(
    head_seq: u64,
    last: Option<(u64, i64)>,
    now: i64,
    interval: Duration,
    at_once: bool,
) -> bool {
    match last {
        None => head_seq > 0,
        Some((seq, _)) if head_seq <= seq => false,
        Some(_) if at_once => true,
        Some((_, at)) => now - at >= interval.as_micros() as i64,
    }
}

impl Checkpointer {
    /// A checkpointer signing with `key`, writing under `data_dir`.
    pub fn new(db: AnyPool, data_dir: PathBuf, key: CheckpointKey, interval: Duration) -> Self {
        Checkpointer {
            db,
            data_dir,
            key,
            interval,
        }
    }

    /// Checkpoints the inspection's head if [`due`]; returns the record made.
    pub async fn checkpoint(
        &self,
        inspection: Uuid,
        at_once: bool,
    ) -> anyhow::Result<Option<Record>> {
        let id = inspection.to_string();
        let head = sqlx::query(
            "SELECT seq, hash FROM events WHERE inspection_id = $1 ORDER BY seq DESC LIMIT 1",
        )
        .bind(&id)
        .fetch_optional(&self.db)
        .await?;
        let Some(head) = head else { return Ok(None) };
        let (seq, head_hash): (i64, String) = (head.col(0)?, head.col(1)?);
        let path = file_path(&self.data_dir, inspection);
        // The file is the chain of checkpoints; its last record is the one to follow.
        let lines = {
            let p = path.clone();
            tokio::task::spawn_blocking(move || read_file(&p))
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))??
        };
        let last = lines.iter().rev().find_map(|l| l.as_ref().ok()).cloned();
        let last_record = last
            .as_ref()
            .and_then(|s| serde_json::from_str::<Record>(&s.record).ok());
        let now = now_micros();
        if !due(
            seq as u64,
            last_record.as_ref().map(|r| (r.seq, r.at)),
            now,
            self.interval,
            at_once,
        ) {
            return Ok(None);
        }
        // The previous checkpoint's row, if a stop between its two writes lost it.
        if let (Some(prev), Some(r)) = (&last, &last_record) {
            self.insert_row(inspection, r, prev).await?;
        }
        let record = Record {
            v: 1,
            inspection_id: inspection,
            seq: seq as u64,
            head_hash,
            at: now,
            reason: if at_once {
                Reason::End
            } else {
                Reason::Periodic
            },
            prev: last.as_ref().map(Signed::record_sha256),
            key: self.key.key_id(),
        };
        // Serializing a struct of strings and numbers cannot fail.
        let text = serde_json::to_string(&record).unwrap_or_default();
        let signed = Signed {
            signature: base64::engine::general_purpose::STANDARD
                .encode(self.key.sign(text.as_bytes())),
            record: text,
        };
        // The file first: a row always has its line (a line without a row is only a crash
        // between the two, and the next checkpoint's row follows it).
        let line = serde_json::to_string(&signed).unwrap_or_default();
        let p = path.clone();
        tokio::task::spawn_blocking(move || append_line(&p, &line))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))??;
        self.insert_row(inspection, &record, &signed).await?;
        Ok(Some(record))
    }

    async fn insert_row(
        &self,
        inspection: Uuid,
        record: &Record,
        signed: &Signed,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO checkpoints (inspection_id, seq, head_hash, created_at, record, signature) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (inspection_id, seq) DO NOTHING",
        )
        .bind(inspection.to_string())
        .bind(record.seq as i64)
        .bind(&record.head_hash)
        .bind(record.at)
        .bind(&signed.record)
        .bind(&signed.signature)
        .execute(&self.db)
        .await?;
        Ok(())
    }

    /// Inspections whose head moved past their last checkpoint (live ones, events after the
    /// end such as a late `leave`, and those of earlier versions or whose end a crash
    /// missed), with whether each is over.
    async fn candidates(&self) -> anyhow::Result<Vec<(Uuid, bool)>> {
        let rows = sqlx::query(
            "SELECT i.id, i.status FROM inspections i WHERE i.status <> 'scheduled' AND \
             (SELECT MAX(e.seq) FROM events e WHERE e.inspection_id = i.id) > \
             COALESCE((SELECT MAX(c.seq) FROM checkpoints c WHERE c.inspection_id = i.id), 0)",
        )
        .fetch_all(&self.db)
        .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.col(1)?;
                Ok((r.uuid(0)?, status != "live"))
            })
            .collect()
    }

    async fn sweep(&self) -> anyhow::Result<()> {
        for (id, over) in self.candidates().await? {
            // After the end nothing waits for the interval: events are rare and final.
            if let Err(e) = self.checkpoint(id, over).await {
                tracing::error!(inspection = %id, error = %e, "checkpoint failed");
            }
        }
        Ok(())
    }
}

fn append_line(path: &Path, line: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(format!("{line}\n").as_bytes())?;
    f.sync_data()
}

/// Runs the checkpointer: at once for every inspection id received (its end, a server event
/// after it), and every interval for every inspection whose head moved (the first sweep at
/// start).
pub fn spawn(cp: Checkpointer, mut rx: mpsc::UnboundedReceiver<Uuid>) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(cp.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    if let Err(e) = cp.sweep().await {
                        tracing::error!(error = %e, "checkpoint sweep failed");
                    }
                }
                id = rx.recv() => match id {
                    Some(id) => {
                        if let Err(e) = cp.checkpoint(id, true).await {
                            tracing::error!(inspection = %id, error = %e, "checkpoint failed");
                        }
                    }
                    None => break,
                },
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Duration = Duration::from_secs(60);

    #[test]
    fn a_checkpoint_is_due_when_the_head_moved_and_the_interval_passed_or_at_once() {
        let s = 1_000_000;
        assert!(!due(0, None, 0, MIN, true), "an empty log has no head");
        assert!(due(3, None, 0, MIN, false), "a first head at once");
        assert!(
            !due(3, Some((3, 0)), 100 * s, MIN, true),
            "the head did not move"
        );
        assert!(
            !due(4, Some((3, 0)), 59 * s, MIN, false),
            "within the interval"
        );
        assert!(
            due(4, Some((3, 0)), 60 * s, MIN, false),
            "the interval passed"
        );
        assert!(due(4, Some((3, 0)), 1, MIN, true), "the end: at once");
    }

    #[test]
    fn a_signed_record_verifies_and_an_edited_one_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k").join("checkpoint.key");
        let key = CheckpointKey::load_or_create(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Loading again gives the same key.
        let again = CheckpointKey::load_or_create(&path).unwrap();
        assert_eq!(key.key_id(), again.key_id());
        assert!(std::fs::read_to_string(public_path(&path))
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----"));
        let text = r#"{"v":1}"#.to_string();
        let s = Signed {
            signature: base64::engine::general_purpose::STANDARD.encode(key.sign(text.as_bytes())),
            record: text,
        };
        assert!(matches!(s.verify(key.public_raw()), Err(e) if e.starts_with("record")));
        let edited = Signed {
            record: r#"{"v":2}"#.into(),
            ..s
        };
        assert!(edited
            .verify(key.public_raw())
            .unwrap_err()
            .contains("does not verify"));
    }
}
