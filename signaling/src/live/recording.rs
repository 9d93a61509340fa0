//! Finalizing recordings, a side effect of committed events: it starts after a `finish` or
//! `cancel` is committed (never before), with the chapters derived from the committed log,
//! and at server start for every inspection that is over but whose recording has no manifest
//! yet (the server stopped between the commit and the manifest). A live inspection's
//! recording is never finalized at start: it goes on when the participants come back.
//! Every recording finalized here is announced on a channel: evidence (clips, stills) is
//! derived from it (crate::derived).

use std::sync::Arc;

use media_recorder::{Manifest, MediaHub};
use sqlx::AnyPool;
use tokio::sync::{mpsc, watch};
use uuid::Uuid;

use crate::db::RowExt;
use crate::domain::Status;
use crate::inspections;

/// The pause before the first retry of a failed finalization; it doubles each time.
const RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(2);
/// The longest pause between two attempts.
const RETRY_MAX: std::time::Duration = std::time::Duration::from_secs(300);
/// Attempts before giving up until the next start (about an hour of retries).
const ATTEMPTS: u32 = 16;

/// What one finalization attempt came to.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done(Box<Manifest>),
    NoMedia,
    Failed,
}

/// Builds recordings from their journals and the committed log.
#[derive(Clone)]
pub struct Recordings {
    db: AnyPool,
    media: MediaHub,
    /// How many finalizations run in the background.
    running: Arc<watch::Sender<usize>>,
    /// Told the inspection of every recording finalized.
    finalized: mpsc::UnboundedSender<Uuid>,
    /// How far before its mark an item's chapter may begin, ms.
    chapter_lead_in_ms: i64,
    /// Several nodes with a remote object store: journals other nodes shipped are pulled
    /// before finalizing, the result is published there (`nodes::recordings`).
    shared: Option<Arc<crate::nodes::recordings::SharedRecordings>>,
}

impl Recordings {
    /// The recordings `media` keeps (one directory per inspection); each one finalized is
    /// sent to `finalized`.
    pub fn new(
        db: AnyPool,
        media: MediaHub,
        finalized: mpsc::UnboundedSender<Uuid>,
        chapter_lead_in_ms: i64,
        shared: Option<Arc<crate::nodes::recordings::SharedRecordings>>,
    ) -> Recordings {
        Recordings {
            db,
            media,
            running: Arc::new(watch::channel(0).0),
            finalized,
            chapter_lead_in_ms,
            shared,
        }
    }

    /// Starts finalizing an inspection's recording without waiting for it. A failure (the
    /// recordings' disk full, the database away) is tried again after a pause that grows to
    /// [`RETRY_MAX`], [`ATTEMPTS`] times, so the recording appears once the fault is gone,
    /// without a restart (and a restart still retries: the manifest is missing).
    pub fn finalize_in_background(&self, inspection_id: Uuid) {
        let this = self.clone();
        let running = Running::start(&self.running);
        tokio::spawn(async move {
            let mut pause = RETRY_FIRST;
            let mut first = Some(running);
            for attempt in 1..=ATTEMPTS {
                // Counted while it runs; a pause is not a running finalization (`settled`
                // does not wait for it).
                let running = first
                    .take()
                    .unwrap_or_else(|| Running::start(&this.running));
                let outcome = this.attempt(inspection_id).await;
                drop(running);
                if outcome != Outcome::Failed {
                    return;
                }
                tracing::warn!(%inspection_id, attempt, retry_in_secs = pause.as_secs(), "recording finalization will be retried");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_MAX);
            }
            tracing::error!(%inspection_id, "recording finalization gave up; the next start retries");
        });
    }

    /// Waits until no finalization runs in the background (recovery at start included).
    pub async fn settled(&self) {
        let mut rx = self.running.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Builds the inspection's recording with one chapter per finding of its committed log;
    /// the manifest appears when it is done. Failures are logged: the next start retries
    /// (the manifest is still missing).
    pub async fn finalize(&self, inspection_id: Uuid) -> Option<Manifest> {
        match self.attempt(inspection_id).await {
            Outcome::Done(m) => Some(*m),
            Outcome::NoMedia | Outcome::Failed => None,
        }
    }

    async fn attempt(&self, inspection_id: Uuid) -> Outcome {
        let marks = match self.marks(inspection_id).await {
            Ok(m) => m,
            Err(e) => {
                tracing::error!(%inspection_id, error = %e, "cannot read the log for the recording's chapters");
                return Outcome::Failed;
            }
        };
        if let Some(shared) = &self.shared {
            // What the other nodes recorded of it goes on the same timeline.
            match shared.pull(inspection_id).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(%inspection_id, journals = n, "pulled journals other nodes shipped")
                }
                Err(e) => {
                    tracing::error!(%inspection_id, error = %e, "cannot pull the journals other nodes shipped");
                    return Outcome::Failed;
                }
            }
        }
        match self.media.finish(inspection_id, marks).await {
            Ok(m) => {
                if let Some(shared) = &self.shared {
                    // Again on a retry: `finish` answers the same manifest once it exists.
                    if let Err(e) = shared.publish(inspection_id, &m).await {
                        tracing::error!(%inspection_id, error = %e, "cannot publish the recording to the object store");
                        return Outcome::Failed;
                    }
                }
                tracing::info!(%inspection_id, duration_ms = m.duration_ms, chapters = m.chapters.len(), "recording finalized");
                // The receiver lives as long as the server; at shutdown nothing is lost, the
                // deriver looks at every manifest without its done marker at start.
                let _ = self.finalized.send(inspection_id);
                Outcome::Done(Box::new(m))
            }
            Err(e) if e.code() == "no_media" => {
                tracing::info!(%inspection_id, "inspection had no media to record");
                Outcome::NoMedia
            }
            Err(e) => {
                tracing::error!(%inspection_id, error = %e, "recording finalization failed");
                Outcome::Failed
            }
        }
    }

    async fn marks(&self, inspection_id: Uuid) -> anyhow::Result<Vec<media_recorder::Mark>> {
        let events = checklist_sync::read_events(&self.db, inspection_id).await?;
        let titles = match inspections::load(&self.db, inspection_id).await? {
            Some(insp) => super::marks::titles(&insp),
            None => Default::default(),
        };
        Ok(super::marks::marks_from_log(
            &events,
            &titles,
            self.chapter_lead_in_ms * 1000,
        ))
    }

    /// Seals what a crash left behind (torn journal tails cut, see `media_recorder::recover`)
    /// and lists the inspections whose recording has no manifest and whose status is over.
    async fn unfinished_and_over(&self) -> anyhow::Result<Vec<Uuid>> {
        let mut candidates: Vec<Uuid> = Vec::new();
        for u in self.media.recover().await? {
            if !u.cut.is_empty() || !u.corrupt.is_empty() {
                tracing::warn!(dir = %u.dir.display(), cut = ?u.cut, corrupt = ?u.corrupt, "repaired a recording the last run left torn");
            }
            match u.inspection {
                Some(id) if u.journals > 0 => candidates.push(id),
                _ => {}
            }
        }
        candidates.sort();
        let mut over = Vec::new();
        for id in candidates {
            let row = sqlx::query("SELECT status FROM inspections WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.db)
                .await?;
            let Some(row) = row else {
                tracing::warn!(inspection_id = %id, "recording of an unknown inspection");
                continue;
            };
            let status = row.parsed(0, "inspection status", Status::parse)?;
            if status.is_over() {
                over.push(id);
            } else {
                tracing::info!(inspection_id = %id, "recording of a live inspection continues");
            }
        }
        Ok(over)
    }

    /// Finalizes, one after the other, the recordings of inspections that ended without one.
    pub async fn recover(&self) {
        let ids = match self.unfinished_and_over().await {
            Ok(ids) => ids,
            Err(e) => {
                tracing::error!(error = %e, "cannot list unfinished recordings");
                return;
            }
        };
        for id in ids {
            tracing::info!(inspection_id = %id, "finalizing a recording the last run left unfinished");
            if self.attempt(id).await == Outcome::Failed {
                self.finalize_in_background(id);
            }
        }
    }
}

/// Runs [`Recordings::recover`] without holding up the start.
pub fn recover_in_background(recordings: Recordings) {
    let running = Running::start(&recordings.running);
    tokio::spawn(async move {
        recordings.recover().await;
        drop(running);
    });
}

/// Counts one background finalization while it lives (even if its task ends abnormally).
struct Running(Arc<watch::Sender<usize>>);

impl Running {
    fn start(count: &Arc<watch::Sender<usize>>) -> Running {
        count.send_modify(|n| *n += 1);
        Running(count.clone())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}
