//! The last step: the muxed file made durable, hashed and given its final name, then
//! `recording.vtt`, then — last and atomically — `manifest.json`, whose presence means
//! "finished": a reader sees no manifest, or one that describes a complete file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::mux::Muxed;
use super::plan::{clamp_chapters, JournalFacts, Plan};
use super::{FinalizeError, Manifest, ManifestTrack, MANIFEST_FILE, VTT_FILE};
use crate::chapters::to_webvtt;

/// Counts of the journals, for the manifest.
pub(super) struct JournalCounts {
    /// Journals read.
    pub read: usize,
    /// Journals whose tail was torn (now, or cut when they were sealed at start).
    pub torn: usize,
    /// Journals left out, by file name.
    pub skipped: Vec<String>,
}

/// Publishes the muxed file of `plan` in `dir` and returns its manifest.
pub(super) fn publish(
    dir: &Path,
    plan: Plan,
    facts: &[JournalFacts],
    muxed: Muxed,
    counts: JournalCounts,
) -> Result<Manifest, FinalizeError> {
    let file = plan.container.file();
    // Durable before it is published under its final name; hashing from the page cache
    // overlaps with the disk writing back.
    let (synced, hashed) = std::thread::scope(|scope| {
        let hash = scope.spawn(|| sha256_file(&muxed.part_path));
        let synced = muxed.file.sync_all();
        (synced, hash.join())
    });
    synced?;
    let (sha256, size_bytes) = match hashed {
        Ok(h) => h?,
        Err(panic) => std::panic::resume_unwind(panic),
    };
    std::fs::rename(&muxed.part_path, dir.join(file))?;

    let chapters = clamp_chapters(plan.chapters, muxed.duration_ms);
    write_atomic(&dir.join(VTT_FILE), to_webvtt(&chapters).as_bytes())?;

    let tracks = plan
        .streams
        .iter()
        .zip(&muxed.stats)
        .enumerate()
        .map(|(index, (g, s))| {
            let mut seen = BTreeSet::new();
            ManifestTrack {
                index,
                kind: g.kind,
                codec: facts[g.journals[0]].meta.codec.clone(),
                participant_id: g.participant_ids[0].clone(),
                participant_ids: g.participant_ids.clone(),
                feed: g.key.feed().map(String::from),
                track_ids: g
                    .journals
                    .iter()
                    .map(|&i| facts[i].meta.track_id.clone())
                    .filter(|id| seen.insert(id.clone()))
                    .collect(),
                segments: g.journals.len(),
                frames: s.frames,
                dropped_frames: s.dropped,
                silence_ms: s.silence_frames as i64 * crate::opus::SILENCE_MICROS / 1000,
                width: g.size.map(|s| s.0),
                height: g.size.map(|s| s.1),
                start_ms: s.start_micros.unwrap_or(0) / 1000,
                end_ms: s.end_micros / 1000,
            }
        })
        .collect();
    let manifest = Manifest {
        file: file.to_owned(),
        mime: plan.container.mime().to_owned(),
        size_bytes,
        sha256,
        duration_ms: muxed.duration_ms,
        epoch_micros: plan.epoch_micros,
        tracks,
        chapters,
        journals: counts.read,
        torn_journals: counts.torn,
        skipped_journals: counts.skipped,
        finalized_at_micros: chrono::Utc::now().timestamp_micros(),
    };
    let json = serde_json::to_vec_pretty(&manifest).map_err(io::Error::other)?;
    write_atomic(&dir.join(MANIFEST_FILE), &json)?;
    Ok(manifest)
}

/// SHA-256 (hex) and size of a file.
pub fn sha256_file(path: &Path) -> io::Result<(String, u64)> {
    let mut f = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), size))
}

/// Writes a file via a temporary name, fsync and rename, so readers see all or nothing.
fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(parent) = path.parent() {
        if let Ok(d) = File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
