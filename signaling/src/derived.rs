//! The finalized recording's hash as an event of the chain (`recording_finalized`), and
//! evidence derived from the finished recording: for every violation of a finished
//! inspection, a clip (from `clip_before` before to `clip_after` after the violation's mark,
//! remuxed) and a still (the picture at the mark, JPEG), cut by `media_recorder::extract` on a
//! blocking thread, stored in the blob store and logged as server-made `attach_evidence`
//! events that name the recording's SHA-256.
//!
//! One task does this for one inspection at a time, whenever a recording is finalized
//! (`live::recording` announces each one, after a committed finish and at the start-up
//! recovery) and, at start, for every finalized recording not marked done. A cancelled
//! inspection gets none: its log takes no event after the cancel. It is
//! idempotent: what the log already holds for this recording's hash is not made again, and
//! `derived.done` (holding the recording's hash) only saves the look at the log next time.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use checklist_sync::proto::{Evidence, EvidenceKind};
use checklist_sync::{ItemResult, Principal, Role, SyncHub};
use sqlx::AnyPool;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::blobs::BlobStore;
use crate::config::Config;
use crate::inspections;
use crate::live::Live;
use crate::uploads::empty_evidence;

/// Marker file in a recording directory: derivation done for the recording with this hash.
pub const DONE_FILE: &str = "derived.done";

/// The participant id of the server itself in the event log (derived evidence).
pub const SERVER_PARTICIPANT: Uuid = Uuid::nil();

/// What the derivation task needs.
#[derive(Clone)]
pub struct Deriver {
    /// The database.
    pub db: AnyPool,
    /// The sync hub the events go through.
    pub sync: SyncHub,
    /// Where the files go.
    pub blobs: BlobStore,
    /// Recordings directory and clip lengths.
    pub config: Arc<Config>,
}

/// What one derivation made.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Derived {
    /// Clips logged.
    pub clips: usize,
    /// Stills logged.
    pub stills: usize,
}

/// Starts the task: derives for every inspection id received and, first, for every finalized
/// recording without a done marker.
pub fn spawn(deriver: Deriver, mut rx: mpsc::UnboundedReceiver<Uuid>) {
    tokio::spawn(async move {
        for id in pending(&deriver.config.recordings_dir()).await {
            deriver.run_logged(id).await;
        }
        while let Some(id) = rx.recv().await {
            deriver.run_logged(id).await;
        }
    });
}

async fn pending(dir: &Path) -> Vec<Uuid> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut ids: Vec<Uuid> = entries
            .filter_map(|e| e.ok())
            .filter(|e| {
                let p = e.path();
                p.join(media_recorder::finalize::MANIFEST_FILE).exists()
                    && !p.join(DONE_FILE).exists()
            })
            .filter_map(|e| e.file_name().to_str().and_then(|n| Uuid::parse_str(n).ok()))
            .collect();
        ids.sort();
        ids
    })
    .await
    .unwrap_or_default()
}

fn blocking_err(e: tokio::task::JoinError) -> anyhow::Error {
    anyhow::anyhow!("extraction thread: {e}")
}

impl Deriver {
    async fn run_logged(&self, id: Uuid) {
        match self.run(id).await {
            Ok(d) if d.clips + d.stills > 0 => {
                tracing::info!(inspection = %id, clips = d.clips, stills = d.stills, "evidence derived from the recording")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::error!(inspection = %id, error = ?e, "deriving evidence from the recording failed")
            }
        }
    }

    /// Makes the missing clips and stills of one finished inspection.
    pub async fn run(&self, id: Uuid) -> anyhow::Result<Derived> {
        let dir = self.config.recordings_dir().join(id.to_string());
        let d = dir.clone();
        let Some(manifest) =
            tokio::task::spawn_blocking(move || media_recorder::finalize::read_manifest(&d))
                .await
                .map_err(blocking_err)??
        else {
            return Ok(Derived::default());
        };
        if manifest.file.contains('/') || manifest.file.contains("..") {
            anyhow::bail!("manifest names an unexpected file {:?}", manifest.file);
        }
        let done = dir.join(DONE_FILE);
        if tokio::fs::read_to_string(&done).await.ok().as_deref() == Some(&manifest.sha256) {
            return Ok(Derived::default());
        }
        let insp = inspections::load(&self.db, id)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .ok_or_else(|| anyhow::anyhow!("no inspection {id}"))?;
        let spec = Live::room_spec(&insp);
        let who = Principal {
            inspection_id: id,
            participant_id: SERVER_PARTICIPANT,
            // The server acts with the inspector's rights; its own id marks what it made.
            role: Role::Inspector,
            display_name: "server".into(),
            device: "server".into(),
        };
        // The recording's hash enters the chain first (a cancelled inspection's too), so the
        // file is checked against the log, not only against its unsigned manifest.
        let logged = self.sync.snapshot(id).await?.state.recording;
        if logged.as_ref().map(|r| r.sha256.as_str()) != Some(manifest.sha256.as_str()) {
            let op = checklist_sync::Operation::RecordingFinalized {
                file: manifest.file.clone(),
                sha256: manifest.sha256.clone(),
                size: manifest.size_bytes,
                duration_ms: manifest.duration_ms,
            };
            self.sync
                .submit(
                    &who,
                    &spec,
                    op,
                    Some(format!("recording-{}", manifest.sha256)),
                )
                .await
                .map_err(|e| anyhow::anyhow!("recording_finalized refused: {e}"))?;
        }
        let snap = self.sync.snapshot(id).await?;
        if snap.state.lifecycle.status == checklist_sync::state::Status::Cancelled {
            // The log takes nothing after a cancel (Status::allows): the recording stays
            // evidence as it is, with nothing cut from it.
            tracing::info!(inspection = %id, "cancelled: no clips or stills are derived");
            write_done(&done, &manifest.sha256).await?;
            return Ok(Derived::default());
        }
        let recording = dir.join(&manifest.file);
        let work = dir.join("derived");
        tokio::fs::create_dir_all(&work).await?;
        let mut made = Derived::default();
        let events = checklist_sync::read_events(&self.db, id).await?;
        let findings = crate::live::marks::findings(&events);
        for (item_id, item) in &snap.state.items {
            if item.result != Some(ItemResult::Violation) {
                continue;
            }
            // The violation's moment: the mark of its finding in the log (a chapter begins
            // before its mark, see live::marks), else its result's time.
            let mark = findings
                .iter()
                .rev()
                .find(|f| f.item_id == item_id.as_str() && f.result == ItemResult::Violation)
                .map(|f| f.at_micros);
            let Some(at_micros) = mark.or(item.result_ts) else {
                continue;
            };
            let media_ms = (at_micros - manifest.epoch_micros).div_euclid(1000);
            if media_ms < 0 || media_ms > manifest.duration_ms {
                tracing::warn!(inspection = %id, item = %item_id, media_ms, "violation outside the recording");
                continue;
            }
            let has = |kind: EvidenceKind| {
                item.evidence.iter().any(|e| {
                    e.evidence.kind == kind
                        && e.evidence.recording_sha256.as_deref() == Some(&manifest.sha256)
                })
            };
            if !has(EvidenceKind::Clip) {
                let (from, to) = (
                    (media_ms - self.config.clip_before_ms).max(0),
                    media_ms + self.config.clip_after_ms,
                );
                let out = work.join(format!("{}.clip", Uuid::new_v4()));
                let (rec, o) = (recording.clone(), out.clone());
                let clip = tokio::task::spawn_blocking(move || {
                    media_recorder::extract::cut_clip(&rec, from, to, &o)
                })
                .await
                .map_err(blocking_err)??;
                let bytes = tokio::fs::read(&out).await?;
                let blob = self.blobs.put_bytes(bytes.into()).await?;
                let _ = tokio::fs::remove_file(&out).await;
                let evidence_id = Uuid::now_v7();
                let evidence = Evidence {
                    id: evidence_id.to_string(),
                    kind: EvidenceKind::Clip,
                    sha256: Some(blob.sha256),
                    size: Some(blob.size),
                    media_type: Some(clip.media_type.into()),
                    width: Some(clip.width),
                    height: Some(clip.height),
                    at_micros: Some(at_micros),
                    media_ms: Some(media_ms),
                    clip_start_ms: Some(clip.start_ms),
                    clip_end_ms: Some(clip.end_ms),
                    recording_sha256: Some(manifest.sha256.clone()),
                    ..empty_evidence()
                };
                self.submit(&who, &spec, item_id, evidence, evidence_id)
                    .await?;
                made.clips += 1;
            }
            if !has(EvidenceKind::Still) {
                let rec = recording.clone();
                let still = tokio::task::spawn_blocking(move || {
                    media_recorder::extract::still_at(&rec, media_ms)
                })
                .await
                .map_err(blocking_err)??;
                let blob = self.blobs.put_bytes(still.jpeg.into()).await?;
                let evidence_id = Uuid::now_v7();
                let evidence = Evidence {
                    id: evidence_id.to_string(),
                    kind: EvidenceKind::Still,
                    sha256: Some(blob.sha256),
                    size: Some(blob.size),
                    media_type: Some("image/jpeg".into()),
                    width: Some(still.width),
                    height: Some(still.height),
                    at_micros: Some(at_micros),
                    media_ms: Some(still.pts_ms),
                    recording_sha256: Some(manifest.sha256.clone()),
                    ..empty_evidence()
                };
                self.submit(&who, &spec, item_id, evidence, evidence_id)
                    .await?;
                made.stills += 1;
            }
        }
        let _ = tokio::fs::remove_dir(&work).await;
        write_done(&done, &manifest.sha256).await?;
        Ok(made)
    }

    async fn submit(
        &self,
        who: &Principal,
        spec: &checklist_sync::RoomSpec,
        item_id: &str,
        evidence: Evidence,
        evidence_id: Uuid,
    ) -> anyhow::Result<()> {
        let op = checklist_sync::Operation::AttachEvidence {
            item_id: Some(item_id.to_string()),
            finding_seq: None,
            evidence: Box::new(evidence),
        };
        self.sync
            .submit(who, spec, op, Some(format!("derived-{evidence_id}")))
            .await
            .map_err(|e| anyhow::anyhow!("attach_evidence refused: {e}"))?;
        Ok(())
    }
}

async fn write_done(path: &PathBuf, sha256: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, sha256).await?;
    tokio::fs::rename(&tmp, path).await?;
    Ok(())
}
