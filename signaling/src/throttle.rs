//! Failed-attempt counters for login throttling, in fixed windows, shared by every server
//! process through the database.
//!
//! An attempt is *reserved* before the password is hashed: one atomic upsert increments the
//! key's counter and returns it, so of any number of concurrent attempts at most `limit` see a
//! count within the limit (reading the count before hashing and writing it after let 35 of 40
//! concurrent attempts through a limit of 5). A refused reservation is released at once, so
//! refusals do not count; a reservation whose password was right is released too (or the key
//! cleared), and one whose password was wrong stays: it is the failure record.

use sqlx::AnyPool;

use crate::db::RowExt;
use crate::error::ApiError;

/// A reserved attempt on one key.
#[derive(Debug, Clone)]
pub struct Reservation {
    key: String,
    window_start: i64,
}

/// Seconds until the key's window ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryAfter(pub u64);

/// Reserves one attempt on `key` at `now` (µs): at most `limit` per window of `window_us`.
pub async fn reserve(
    db: &AnyPool,
    key: &str,
    limit: u32,
    window_us: i64,
    now: i64,
) -> Result<Result<Reservation, RetryAfter>, ApiError> {
    let row = sqlx::query(
        "INSERT INTO login_throttle (key, window_start, failures) VALUES ($1, $2, 1) \
         ON CONFLICT (key) DO UPDATE SET \
         failures = CASE WHEN login_throttle.window_start <= $3 THEN 1 \
                         ELSE login_throttle.failures + 1 END, \
         window_start = CASE WHEN login_throttle.window_start <= $3 THEN $2 \
                             ELSE login_throttle.window_start END \
         RETURNING failures, window_start",
    )
    .bind(key)
    .bind(now)
    .bind(now - window_us)
    .fetch_one(db)
    .await?;
    let count: i64 = row.col(0)?;
    let reservation = Reservation {
        key: key.to_string(),
        window_start: row.col(1)?,
    };
    if count > i64::from(limit) {
        release(db, &reservation).await?;
        let left = reservation.window_start + window_us - now;
        return Ok(Err(RetryAfter((left / 1_000_000 + 1).max(1) as u64)));
    }
    Ok(Ok(reservation))
}

/// Gives a reservation back (the attempt was refused, or was not a failure).
pub async fn release(db: &AnyPool, r: &Reservation) -> Result<(), ApiError> {
    sqlx::query(
        "UPDATE login_throttle SET failures = failures - 1 \
         WHERE key = $1 AND window_start = $2 AND failures > 0",
    )
    .bind(&r.key)
    .bind(r.window_start)
    .execute(db)
    .await?;
    Ok(())
}

/// Forgets a key's failures (a successful login for that user from that address).
pub async fn clear(db: &AnyPool, r: &Reservation) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM login_throttle WHERE key = $1")
        .bind(&r.key)
        .execute(db)
        .await?;
    Ok(())
}

/// Deletes counters whose window ended (they limit nothing any more).
pub async fn sweep(db: &AnyPool, window_us: i64, now: i64) -> Result<(), ApiError> {
    sqlx::query("DELETE FROM login_throttle WHERE window_start <= $1")
        .bind(now - window_us)
        .execute(db)
        .await?;
    Ok(())
}
