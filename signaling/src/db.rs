//! The database: one `AnyPool` for SQLite (embedded default) and PostgreSQL.
//!
//! Queries use the SQL subset both accept (`$n` placeholders, TEXT ids, BIGINT µs times) so
//! one code path serves both backends and the test suite runs unchanged on each.

use std::str::FromStr;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, ConnectOptions, Executor, Row};
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
