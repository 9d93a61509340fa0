//! The database: one `AnyPool` for SQLite (embedded default) and PostgreSQL.
//!
//! Queries use the SQL subset both accept (`$n` placeholders, TEXT ids, BIGINT µs times) so
//! one code path serves both backends and the test suite runs unchanged on each.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{Any, AnyPool, ConnectOptions, Executor, Row, Transaction};
use uuid::Uuid;

use crate::error::ApiError;

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Detects the backend from a URL.
    pub fn of(url: &str) -> anyhow::Result<Backend> {
        if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else {
            anyhow::bail!("unsupported database URL (use sqlite://… or postgres://…)")
        }
    }
}

/// Opens the pool. SQLite gets WAL, foreign keys, a busy timeout and full fsync on commit.
pub async fn connect(url: &str) -> anyhow::Result<AnyPool> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of(url)?;
    if backend == Backend::Sqlite {
        // WAL is a property of the database file; set it once before the pool opens.
        let opts = AnyConnectOptions::from_str(url)?;
        let mut conn = opts.connect().await?;
        conn.execute("PRAGMA journal_mode = WAL").await?;
        drop(conn);
    }
    let opts = AnyConnectOptions::from_str(url)?.disable_statement_logging();
    let pool = AnyPoolOptions::new()
        .max_connections(if backend == Backend::Sqlite { 8 } else { 16 })
        .acquire_timeout(Duration::from_secs(10))
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                if backend == Backend::Sqlite {
                    conn.execute(
                        "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                         PRAGMA synchronous = FULL;",
                    )
                    .await?;
                }
                Ok(())
            })
        })
        .connect_with(opts)
        .await?;
    Ok(pool)
}

/// Begins a transaction that may write: every transaction of the server starts here.
///
/// On SQLite the write lock is taken at `BEGIN IMMEDIATE`. A deferred transaction that reads
/// and then writes fails at once with `SQLITE_BUSY_SNAPSHOT` ("database is locked") when another
/// connection committed after its first read: the busy timeout cannot help, since waiting would
/// not make its snapshot current. Taking the lock first makes it wait its turn instead. Readers
/// are not blocked (WAL). PostgreSQL's plain `BEGIN` is right as it is.
pub async fn begin(pool: &AnyPool) -> Result<Transaction<'static, Any>, sqlx::Error> {
    if pool.connect_options().database_url.scheme() == "sqlite" {
        pool.begin_with("BEGIN IMMEDIATE").await
    } else {
        pool.begin().await
    }
}

/// Applies the migrations embedded from `migrations/`.
pub async fn migrate(pool: &AnyPool) -> anyhow::Result<()> {
    sqlx::migrate!("../migrations").run(pool).await?;
    Ok(())
}

/// Microseconds since the Unix epoch for a UTC time.
pub fn micros(t: chrono::DateTime<chrono::Utc>) -> i64 {
    t.timestamp_micros()
}

/// The UTC time of a microsecond count the server computed itself (e.g. now plus a TTL),
/// which is always in range. Stored values go through [`RowExt::time`], which refuses a
/// corrupt one instead.
pub fn from_micros(us: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Now, in microseconds since the Unix epoch: the one server clock (the event log's).
pub use checklist_sync::now_micros;

/// Checked reads of stored rows. A value that is not what the schema promises (a NULL where
/// none may be, text that is no UUID, a status nobody knows) is an error — logged and answered
/// as 500 — never a panic and never a silent default.
pub trait RowExt {
    /// Column `i` as `T`.
    fn col<'r, T>(&'r self, i: usize) -> Result<T, ApiError>
    where
        T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>;
    /// Column `i`, a UUID stored as text.
    fn uuid(&self, i: usize) -> Result<Uuid, ApiError>;
    /// Column `i`, a time stored as µs since the epoch.
    fn time(&self, i: usize) -> Result<chrono::DateTime<chrono::Utc>, ApiError>;
    /// Column `i`, an optional time stored as µs since the epoch.
    fn opt_time(&self, i: usize) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError>;
    /// Column `i`, text parsed by `parse` (`what` names it in the error).
    fn parsed<T>(
        &self,
        i: usize,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ApiError>;
}

/// A stored value that cannot be what it claims.
pub fn corrupt(what: &str, detail: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("corrupt stored {what}: {detail}"))
}

fn time_of(us: i64) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    chrono::DateTime::from_timestamp_micros(us).ok_or_else(|| corrupt("time", us))
}

impl RowExt for AnyRow {
    fn col<'r, T>(&'r self, i: usize) -> Result<T, ApiError>
    where
        T: sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    {
        Ok(self.try_get(i)?)
    }

    fn uuid(&self, i: usize) -> Result<Uuid, ApiError> {
        let s: String = self.col(i)?;
        Uuid::parse_str(&s).map_err(|_| corrupt("id", s))
    }

    fn time(&self, i: usize) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
        time_of(self.col(i)?)
    }

    fn opt_time(&self, i: usize) -> Result<Option<chrono::DateTime<chrono::Utc>>, ApiError> {
        self.col::<Option<i64>>(i)?.map(time_of).transpose()
    }

    fn parsed<T>(
        &self,
        i: usize,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
    ) -> Result<T, ApiError> {
        let s: String = self.col(i)?;
        parse(&s).ok_or_else(|| corrupt(what, s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn counter_db(dir: &std::path::Path) -> AnyPool {
        let pool = connect(&format!("sqlite://{}?mode=rwc", dir.join("t.db").display()))
            .await
            .expect("a fresh SQLite file opens");
        pool.execute("CREATE TABLE c (n BIGINT NOT NULL); INSERT INTO c VALUES (0);")
            .await
            .expect("the table is created");
        pool
    }

    async fn read(tx: &mut Transaction<'static, Any>) -> i64 {
        sqlx::query("SELECT n FROM c")
            .fetch_one(&mut **tx)
            .await
            .expect("the row is there")
            .get::<i64, _>(0)
    }

    async fn bump(pool: &AnyPool) {
        let mut tx = begin(pool).await.expect("begins");
        let n = read(&mut tx).await;
        sqlx::query("UPDATE c SET n = $1")
            .bind(n + 1)
            .execute(&mut *tx)
            .await
            .expect("writes");
        tx.commit().await.expect("commits");
    }

    /// The hazard `begin` exists for, reproduced without timing: a deferred transaction reads,
    /// another connection commits, the first one's write is refused at once.
    #[tokio::test]
    async fn a_deferred_read_then_write_fails_when_another_commit_comes_between() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pool = counter_db(dir.path()).await;
        let mut tx = pool.begin().await.expect("begins");
        assert_eq!(read(&mut tx).await, 0);
        bump(&pool).await;
        let err = sqlx::query("UPDATE c SET n = 100")
            .execute(&mut *tx)
            .await
            .expect_err("the stale snapshot cannot write");
        assert!(err.to_string().contains("locked"), "{err}");
    }

    /// With `begin`, the second writer waits for the first instead of failing, and no update is
    /// lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn begin_makes_read_then_write_transactions_wait_their_turn() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let pool = counter_db(dir.path()).await;
        let mut tx = begin(&pool).await.expect("begins");
        let n = read(&mut tx).await;
        let other = tokio::spawn({
            let pool = pool.clone();
            async move { bump(&pool).await }
        });
        // The other writer is now blocked at its BEGIN IMMEDIATE; give it time to get there.
        tokio::time::sleep(Duration::from_millis(200)).await;
        sqlx::query("UPDATE c SET n = $1")
            .bind(n + 1)
            .execute(&mut *tx)
            .await
            .expect("writes");
        tx.commit().await.expect("commits");
        other.await.expect("the other writer finishes");
        let mut tx = begin(&pool).await.expect("begins");
        assert_eq!(read(&mut tx).await, 2, "both increments are kept");
        // Many at once: every one of them lands.
        let tasks: Vec<_> = (0..16)
            .map(|_| {
                let pool = pool.clone();
                tokio::spawn(async move { bump(&pool).await })
            })
            .collect();
        drop(tx);
        for t in tasks {
            t.await.expect("a writer finishes");
        }
        let mut tx = begin(&pool).await.expect("begins");
        assert_eq!(read(&mut tx).await, 18);
    }
}
