//! `inspector backup` and `inspector restore`: a consistent copy of everything an installation
//! holds, taken while the server runs, and its restore into an empty data directory.
//!
//! A backup is a directory:
//! ```text
//! MANIFEST.json      format, backend, time, and every file below with its size and SHA-256
//! database.sqlite    SQLite: `VACUUM INTO` (one read transaction: a consistent snapshot)
//! database.pgdump    PostgreSQL: `pg_dump --format=custom` (one snapshot, the documented path)
//! data/…             the data directory: recordings and their journals, acts, signing and
//!                    checkpoint keys, checkpoint files — everything but the database itself
//!                    and temporary files
//! blobs/…            the local evidence store (content-addressed)
//! ```
//! With an S3-compatible evidence store the objects stay where they are (the store has its
//! own versioning and replication); the manifest lists their keys, and restore checks that
//! each is present.
//!
//! Why the order is database first, files after: every file the database names was written
//! before the row that names it committed (blobs before their event, a recording's manifest
//! before `recording_finalized`), so a file copy taken after the snapshot holds everything the
//! snapshot refers to. Files that change while they are copied (the journal of a live
//! recording) are copied again until a pass finds nothing new; a journal copied mid-write is
//! what a `kill -9` leaves, and the server's start-up recovery finishes it.
//!
//! The manifest is written last, through a rename: a directory without one is not a backup,
//! and restore refuses it. Restore checks every hash before it writes anything.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Connection, Executor, Row};

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::db::{self, Backend};

/// The manifest's format; restore refuses others.
const FORMAT: u32 = 1;
const MANIFEST: &str = "MANIFEST.json";
/// Copy passes over the files before the backup settles for what it has.
const MAX_PASSES: usize = 4;

/// What a backup holds.
#[derive(Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT`].
    pub format: u32,
    /// The version of the `inspector` that made it.
    pub inspector_version: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// When the database snapshot was taken (RFC 3339).
    pub created_at: String,
    /// The database file, relative to the backup.
    pub database: Entry,
    /// Every other file, relative to the backup (`data/…`, `blobs/…`).
    pub files: Vec<Entry>,
    /// Keys of the objects in a remote (S3-compatible) evidence store, when there is one.
    pub remote_blobs: Option<Vec<String>>,
}

/// One file of the backup.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the backup directory, `/`-separated.
    pub path: String,
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256 of the bytes.
    pub sha256: String,
}

/// What a backup or a restore did.
#[derive(Debug)]
pub struct Summary {
    /// Files copied besides the database.
    pub files: usize,
    /// Their bytes.
    pub bytes: u64,
    /// Inspections in the database.
    pub inspections: i64,
    /// Objects of a remote evidence store listed (backup) or found (restore).
    pub remote_blobs: usize,
}

/// Where the SQLite database file of `url` is.
fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .context("not a SQLite URL")?;
    let path = rest.split('?').next().unwrap_or(rest);
    if path.is_empty() || path == ":memory:" {
        bail!("an in-memory SQLite database cannot be backed up or restored");
    }
    Ok(PathBuf::from(path))
}

/// The local evidence store's root, when the store is local.
fn blob_root(config: &Config) -> anyhow::Result<Option<PathBuf>> {
    let store = BlobStore::open(&config.blob, &config.blobs_dir())?;
    Ok(store.local_root().map(Path::to_path_buf))
}

/// SHA-256 and size of `src`, copied to `dst` (made with its parents, fsynced) on the way
/// when one is given.
fn hash_copy(src: &Path, dst: Option<&Path>) -> std::io::Result<(u64, String)> {
    let mut output = match dst {
        Some(dst) => {
            if let Some(parent) = dst.parent() {
                std::fs::create_dir_all(parent)?;
            }
            Some(std::fs::File::create(dst)?)
        }
        None => None,
    };
    let mut input = std::fs::File::open(src)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(out) = output.as_mut() {
            out.write_all(&buf[..n])?;
        }
        size += n as u64;
    }
    if let Some(out) = output {
        out.sync_all()?;
    }
    Ok((size, hex::encode(hasher.finalize())))
}

fn copy_hashed(src: &Path, dst: &Path) -> std::io::Result<(u64, String)> {
    hash_copy(src, Some(dst))
}

fn hash_file(path: &Path) -> std::io::Result<(u64, String)> {
    hash_copy(path, None)
}

/// Every regular file under `root`, relative and `/`-separated, except under `skip`
/// (absolute paths) and temporary directories named `tmp`.
fn walk(root: &Path, skip: &[PathBuf]) -> std::io::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            // A directory removed while we walk (a finished temporary) holds nothing to keep.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let path = entry.path();
            if skip.iter().any(|s| s == &path) {
                continue;
            }
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if entry.file_name() == "tmp" {
                    continue;
                }
                stack.push(path);
            } else if kind.is_file() {
                let rel = path
                    .strip_prefix(root)
                    .expect("walked paths are under the root")
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((rel, path));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A relative manifest path that stays inside its directory.
fn safe_relative(rel: &str) -> anyhow::Result<&Path> {
    let p = Path::new(rel);
    if rel.is_empty()
        || p.is_absolute()
        || p.components()
            .any(|c| !matches!(c, std::path::Component::Normal(_)))
    {
        bail!("the manifest names an unsafe path {rel:?}");
    }
    Ok(p)
}

fn is_empty_dir(p: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(p) {
        Ok(mut d) => Ok(d.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

fn pg_tool(name: &str) -> String {
    let var = format!("INSPECTOR_{}", name.to_uppercase().replace('-', "_"));
    std::env::var(var).unwrap_or_else(|_| name.to_string())
}

fn run_tool(mut cmd: Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot run {what} (is the PostgreSQL client installed?)"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Takes a backup of the running installation `config` describes into `out` (absent or
/// empty).
pub async fn backup(config: &Config, out: &Path) -> anyhow::Result<Summary> {
    if !is_empty_dir(out)? {
        bail!("{} exists and is not empty", out.display());
    }
    std::fs::create_dir_all(out)?;
    let out = out.canonicalize()?;
    let data_dir = config
        .data_dir
        .canonicalize()
        .with_context(|| format!("no data directory {}", config.data_dir.display()))?;
    if out.starts_with(&data_dir) {
        bail!("the backup cannot be inside the data directory");
    }
    let backend = Backend::of(&config.database_url)?;
    let created_at = chrono::Utc::now().to_rfc3339();

    // 1. The database snapshot, and a connection that reads that snapshot (the files are cut
    //    back to it below).
    sqlx::any::install_default_drivers();
    let mut skip = Vec::new();
    let (database, mut snap) = match backend {
        Backend::Sqlite => {
            let path = sqlite_path(&config.database_url)?;
            let abs = path.canonicalize().unwrap_or(path.clone());
            for suffix in ["", "-wal", "-shm", "-journal"] {
                skip.push(PathBuf::from(format!("{}{suffix}", abs.display())));
            }
            let target = out.join("database.sqlite");
            let quoted = target.display().to_string().replace('\'', "''");
            let pool = db::connect(&config.database_url).await?;
            sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM INTO '{quoted}'")))
                .execute(&pool)
                .await
                .context("VACUUM INTO")?;
            pool.close().await;
            let snap =
                AnyConnection::connect(&format!("sqlite://{}?mode=ro", target.display())).await?;
            ("database.sqlite", snap)
        }
        Backend::Postgres => {
            // pg_dump reads the snapshot this transaction exports, so the files can be cut
            // back to exactly what it dumps.
            let mut snap = AnyConnection::connect(&config.database_url).await?;
            snap.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .await?;
            let id: String = sqlx::query_scalar("SELECT pg_export_snapshot()")
                .fetch_one(&mut snap)
                .await?;
            let mut cmd = Command::new(pg_tool("pg_dump"));
            cmd.args(["--format=custom", "--no-owner", "--no-privileges"])
                .arg(format!("--snapshot={id}"))
                .arg("--file")
                .arg(out.join("database.pgdump"))
                .arg("--dbname")
                .arg(&config.database_url);
            run_tool(cmd, "pg_dump")?;
            ("database.pgdump", snap)
        }
    };
    let inspections: i64 = sqlx::query("SELECT COUNT(*) FROM inspections")
        .fetch_one(&mut snap)
        .await?
        .get(0);

    // 2. The files, copied until a pass finds nothing new or changed.
    let store = BlobStore::open(&config.blob, &config.blobs_dir())?;
    let blobs = blob_root(config)?;
    if let Some(b) = &blobs {
        skip.push(b.clone());
    }
    let mut copied: BTreeMap<String, (Entry, std::time::SystemTime)> = BTreeMap::new();
    for _ in 0..MAX_PASSES {
        let mut changed = 0;
        let mut sources: Vec<(String, PathBuf)> = walk(&data_dir, &skip)?
            .into_iter()
            .map(|(rel, p)| (format!("data/{rel}"), p))
            .collect();
        if let Some(b) = &blobs {
            sources.extend(
                walk(b, &[])?
                    .into_iter()
                    .map(|(rel, p)| (format!("blobs/{rel}"), p)),
            );
        }
        for (rel, src) in sources {
            let meta = match std::fs::metadata(&src) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            let mtime = meta.modified()?;
            if let Some((e, t)) = copied.get(&rel) {
                if e.size == meta.len() && *t == mtime {
                    continue;
                }
            }
            let (size, sha256) = match copy_hashed(&src, &out.join(&rel)) {
                Ok(v) => v,
                // Renamed or removed since the walk (a journal finalized): the next pass
                // finds what it became.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            };
            copied.insert(
                rel.clone(),
                (
                    Entry {
                        path: rel,
                        size,
                        sha256,
                    },
                    mtime,
                ),
            );
            changed += 1;
        }
        if changed == 0 {
            break;
        }
    }
    let mut files: Vec<Entry> = copied.into_values().map(|(e, _)| e).collect();
    cut_to_snapshot(&mut snap, &out, &mut files).await?;
    if backend == Backend::Postgres {
        snap.execute("COMMIT").await?;
    }
    snap.close().await?;
    let (size, sha256) = hash_file(&out.join(database))?;
    let database = Entry {
        path: database.into(),
        size,
        sha256,
    };

    // 3. A remote evidence store is listed, not copied.
    let remote_blobs = if blobs.is_none() {
        Some(store.list().await?)
    } else {
        None
    };

    let manifest = Manifest {
        format: FORMAT,
        inspector_version: env!("CARGO_PKG_VERSION").into(),
        backend: match backend {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
        .into(),
        created_at,
        database,
        files,
        remote_blobs,
    };
    let tmp = out.join(format!("{MANIFEST}.partial"));
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(&manifest)?)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, out.join(MANIFEST))?;
    std::fs::File::open(&out)?.sync_all()?;
    Ok(Summary {
        files: manifest.files.len(),
        bytes: manifest.files.iter().map(|e| e.size).sum(),
        inspections,
        remote_blobs: manifest.remote_blobs.as_ref().map_or(0, Vec::len),
    })
}

/// Cuts the files that record the database's state a second time back to the snapshot: a
/// checkpoint line, an act or a signature made after the snapshot (the files are copied
/// later) would otherwise read, in the restored installation, as a log whose tail was cut.
/// The checkpoint file keeps the lines whose rows the snapshot has (lines are appended in
/// order, so this is a prefix); an act's PDF or signature stays when an event of the
/// snapshot names it.
async fn cut_to_snapshot(
    snap: &mut AnyConnection,
    out: &Path,
    files: &mut Vec<Entry>,
) -> anyhow::Result<()> {
    let mut keep = Vec::with_capacity(files.len());
    for mut e in std::mem::take(files) {
        let parts: Vec<&str> = e.path.split('/').collect();
        let path = out.join(&e.path);
        match parts.as_slice() {
            ["data", "anchor", name] if name.ends_with(".jsonl") => {
                let inspection = name.trim_end_matches(".jsonl");
                let rows: Vec<String> =
                    sqlx::query_scalar("SELECT record FROM checkpoints WHERE inspection_id = $1")
                        .bind(inspection)
                        .fetch_all(&mut *snap)
                        .await?;
                let rows: std::collections::HashSet<String> = rows.into_iter().collect();
                let text = std::fs::read_to_string(&path)?;
                let mut kept = String::new();
                for line in text.lines() {
                    match serde_json::from_str::<crate::anchor::Signed>(line) {
                        Ok(s) if rows.contains(&s.record) => {
                            kept.push_str(line);
                            kept.push('\n');
                        }
                        _ => break,
                    }
                }
                if kept.len() != text.len() {
                    if kept.is_empty() {
                        std::fs::remove_file(&path)?;
                        continue;
                    }
                    let mut f = std::fs::File::create(&path)?;
                    f.write_all(kept.as_bytes())?;
                    f.sync_all()?;
                    (e.size, e.sha256) = hash_file(&path)?;
                }
            }
            ["data", "acts", inspection, name]
                if name.ends_with(".pdf") || name.ends_with(".p7s") =>
            {
                let (kind, needle) = if name.ends_with(".pdf") {
                    ("act_formed", e.sha256.clone())
                } else {
                    ("act_signed", name.trim_end_matches(".p7s").to_string())
                };
                let named: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM events WHERE inspection_id = $1 AND kind = $2 AND payload LIKE $3",
                )
                .bind(*inspection)
                .bind(kind)
                .bind(format!("%{needle}%"))
                .fetch_one(&mut *snap)
                .await?
                .get(0);
                if named == 0 {
                    std::fs::remove_file(&path)?;
                    continue;
                }
            }
            _ => {}
        }
        keep.push(e);
    }
    *files = keep;
    Ok(())
}

/// Reads the manifest of `from` and checks every file it names, before anything is written.
pub fn check(from: &Path) -> anyhow::Result<Manifest> {
    let text = std::fs::read(from.join(MANIFEST)).with_context(|| {
        format!(
            "{} has no {MANIFEST}: not a (complete) backup",
            from.display()
        )
    })?;
    let manifest: Manifest = serde_json::from_slice(&text).context("the manifest is unreadable")?;
    if manifest.format != FORMAT {
        bail!(
            "backup format {} is not the format {FORMAT} this inspector reads",
            manifest.format
        );
    }
    for e in std::iter::once(&manifest.database).chain(&manifest.files) {
        let rel = safe_relative(&e.path)?;
        let (size, sha256) = hash_file(&from.join(rel))
            .with_context(|| format!("the backup is missing {}", e.path))?;
        if size != e.size || sha256 != e.sha256 {
            bail!(
                "{} does not match the manifest (sha256 {sha256}, expected {})",
                e.path,
                e.sha256
            );
        }
    }
    Ok(manifest)
}

/// Restores the backup `from` into the empty installation `config` describes (its data
/// directory empty, its database new), then applies any newer migrations.
pub async fn restore(config: &Config, from: &Path) -> anyhow::Result<Summary> {
    let manifest = check(from)?;
    let backend = Backend::of(&config.database_url)?;
    let want = match backend {
        Backend::Sqlite => "sqlite",
        Backend::Postgres => "postgres",
    };
    if manifest.backend != want {
        bail!(
            "the backup is of a {} database and the target is {want}",
            manifest.backend
        );
    }
    if !is_empty_dir(&config.data_dir)? {
        bail!(
            "the data directory {} is not empty: restore only into an empty one",
            config.data_dir.display()
        );
    }
    std::fs::create_dir_all(&config.data_dir)?;
    let store = BlobStore::open(&config.blob, &config.blobs_dir())?;
    let blobs = store.local_root().map(Path::to_path_buf);
    if manifest.remote_blobs.is_some() == blobs.is_some() {
        bail!(
            "the backup's evidence is {} and the target's store is {}",
            if manifest.remote_blobs.is_some() {
                "in a remote store"
            } else {
                "local"
            },
            if blobs.is_some() { "local" } else { "remote" }
        );
    }

    // The database first: a target that is not empty is refused before any file lands.
    match backend {
        Backend::Sqlite => {
            let path = sqlite_path(&config.database_url)?;
            if path.exists() {
                bail!("the database {} exists already", path.display());
            }
            copy_hashed(&from.join(&manifest.database.path), &path)?;
        }
        Backend::Postgres => {
            let pool = db::connect(&config.database_url).await?;
            let tables: i64 = sqlx::query(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'",
            )
            .fetch_one(&pool)
            .await?
            .get(0);
            pool.close().await;
            if tables > 0 {
                bail!("the target database is not empty ({tables} tables)");
            }
            let mut cmd = Command::new(pg_tool("pg_restore"));
            cmd.args([
                "--no-owner",
                "--no-privileges",
                "--exit-on-error",
                "--dbname",
            ])
            .arg(&config.database_url)
            .arg(from.join(&manifest.database.path));
            run_tool(cmd, "pg_restore")?;
        }
    }

    let mut bytes = 0;
    for e in &manifest.files {
        let rel = safe_relative(&e.path)?;
        let mut parts = rel.components();
        let area = parts
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        let rest: PathBuf = parts.collect();
        let dst = match (area.as_deref(), &blobs) {
            (Some("data"), _) => config.data_dir.join(rest),
            (Some("blobs"), Some(root)) => root.join(rest),
            _ => bail!("the manifest names {} outside data/ and blobs/", e.path),
        };
        let (size, sha256) = copy_hashed(&from.join(rel), &dst)?;
        if sha256 != e.sha256 {
            bail!("{} changed while it was restored", e.path);
        }
        bytes += size;
    }
    let mut remote = 0;
    if let Some(keys) = &manifest.remote_blobs {
        let present: std::collections::HashSet<String> = store.list().await?.into_iter().collect();
        let missing: Vec<&String> = keys.iter().filter(|k| !present.contains(*k)).collect();
        if let Some(first) = missing.first() {
            bail!(
                "{} evidence objects of the backup are not in the target store (first: {first})",
                missing.len()
            );
        }
        remote = keys.len();
    }

    let pool = db::connect(&config.database_url).await?;
    db::migrate(&pool).await?;
    let inspections: i64 = sqlx::query("SELECT COUNT(*) FROM inspections")
        .fetch_one(&pool)
        .await?
        .get(0);
    pool.close().await;
    Ok(Summary {
        files: manifest.files.len(),
        bytes,
        inspections,
        remote_blobs: remote,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sqlite_path_is_read_from_its_url() {
        assert_eq!(
            sqlite_path("sqlite:///var/lib/x/inspector.db?mode=rwc").unwrap(),
            PathBuf::from("/var/lib/x/inspector.db")
        );
        assert_eq!(
            sqlite_path("sqlite:rel.db").unwrap(),
            PathBuf::from("rel.db")
        );
        assert!(sqlite_path("sqlite::memory:").is_err());
    }

    #[test]
    fn manifest_paths_cannot_leave_the_backup() {
        assert!(safe_relative("data/recordings/x/rec.webm").is_ok());
        for bad in ["", "/etc/passwd", "data/../../etc", "./data", "blobs/.."] {
            assert!(safe_relative(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_walk_skips_the_database_and_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for f in [
            "inspector.db",
            "inspector.db-wal",
            "acts/a/act.pdf",
            "tmp/x",
            "blobs/tmp/y",
            "blobs/sha256/ab/abc",
        ] {
            let p = root.join(f);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, f).unwrap();
        }
        let skip = vec![
            root.join("inspector.db"),
            root.join("inspector.db-wal"),
            root.join("blobs"),
        ];
        let got: Vec<String> = walk(root, &skip)
            .unwrap()
            .into_iter()
            .map(|(r, _)| r)
            .collect();
        assert_eq!(got, vec!["acts/a/act.pdf".to_string()]);
    }
}
