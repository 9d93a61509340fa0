//! `inspector audit verify` against the act: the act prints the head of the log it was
//! formed from, so removing events from the tail (up to and including `act_formed` itself)
//! is detected by comparing the stored acts' printed heads with the log; removing the
//! signature events after it, by the stored signatures no event names any more.

use sqlx::AnyPool;
use uuid::Uuid;

use super::bundle::pdf_keyword;
use crate::config::Config;
use crate::db::RowExt;

/// The outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ActCheck {
    /// No act was ever stored for the inspection.
    NoAct,
    /// Every stored act's head is in the log with that hash (the latest act's seq).
    Matches {
        /// The head's seq.
        seq: u64,
    },
    /// The log does not hold what an act printed.
    Mismatch(String),
}

/// Compares every act PDF stored for `inspection` with the log in the database.
pub async fn check_against_acts(
    pool: &AnyPool,
    config: &Config,
    inspection: Uuid,
) -> anyhow::Result<ActCheck> {
    let dir = config.data_dir.join("acts").join(inspection.to_string());
    let mut pdfs = Vec::new();
    let mut signatures = Vec::new();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for e in entries.flatten() {
            match e.path().extension().and_then(|x| x.to_str()) {
                Some("pdf") => pdfs.push(e.path()),
                Some("p7s") => signatures.push(e.path()),
                _ => {}
            }
        }
    }
    pdfs.sort();
    signatures.sort();
    if pdfs.is_empty() {
        return Ok(ActCheck::NoAct);
    }
    let mut latest = 0;
    for path in pdfs {
        let pdf = std::fs::read(&path)?;
        let (Some(seq), Some(hash)) = (
            pdf_keyword(&pdf, "head-seq"),
            pdf_keyword(&pdf, "head-hash"),
        ) else {
            return Ok(ActCheck::Mismatch(format!(
                "{} carries no head",
                path.display()
            )));
        };
        let seq: u64 = seq.parse().unwrap_or_default();
        let row = sqlx::query("SELECT hash FROM events WHERE inspection_id = $1 AND seq = $2")
            .bind(inspection.to_string())
            .bind(seq as i64)
            .fetch_optional(pool)
            .await?;
        let logged: Option<String> = row.map(|r| r.col(0)).transpose()?;
        match logged {
            Some(h) if h == hash => latest = latest.max(seq),
            Some(h) => {
                return Ok(ActCheck::Mismatch(format!(
                    "the act prints hash {hash} for event {seq}, the log has {h}"
                )))
            }
            None => {
                return Ok(ActCheck::Mismatch(format!(
                    "the act was formed from event {seq} (hash {hash}), which the log no longer has: the tail was truncated"
                )))
            }
        }
        // The act_formed event naming this PDF must be in the log too.
        let sha = super::sha256_hex(&pdf);
        let named = sqlx::query(
            "SELECT COUNT(*) FROM events WHERE inspection_id = $1 AND kind = 'act_formed' AND payload LIKE $2",
        )
        .bind(inspection.to_string())
        .bind(format!("%{sha}%"))
        .fetch_one(pool)
        .await?
        .col::<i64>(0)?;
        if named == 0 {
            // A stray file from a render whose event never committed is harmless only if
            // no later act was formed; report it rather than guess.
            return Ok(ActCheck::Mismatch(format!(
                "no act_formed event names {} (its event was removed, or it never committed)",
                path.display()
            )));
        }
    }
    // Every stored signature is named by an act_signed event: removing the signature events
    // from the tail (they come after the head the act prints) is detected too.
    for path in signatures {
        let Some(sha) = path.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let named = sqlx::query(
            "SELECT COUNT(*) FROM events WHERE inspection_id = $1 AND kind = 'act_signed' AND payload LIKE $2",
        )
        .bind(inspection.to_string())
        .bind(format!("%{sha}%"))
        .fetch_one(pool)
        .await?
        .col::<i64>(0)?;
        if named == 0 {
            return Ok(ActCheck::Mismatch(format!(
                "no act_signed event names the signature {} (its event was removed, or it never committed)",
                path.display()
            )));
        }
    }
    Ok(ActCheck::Matches { seq: latest })
}
