//! Finalization: turns an inspection's journals into one seekable file, without transcoding.
//!
//! Four steps, each in its own module:
//! 1. `scan` — every journal (one per track and connection segment) is read once to build its
//!    RTP → wall-clock mapping ([`crate::timecode`]), find its codec parameters and how much
//!    of it is intact (IO, several journals in parallel).
//! 2. [`plan`] — pure: the container (VP8 → WebM with Cues up front, H.264 → MP4 with
//!    `+faststart`; Opus goes with either), which journals feed which output stream (those of
//!    the same participant and kind), the session epoch (the earliest media sample: all
//!    journals share one timeline, so a reconnect leaves a gap instead of being concatenated)
//!    and a chapter per mark at its own media time (the live peer asks for a keyframe at every
//!    mark, so a decodable picture sits right there).
//! 3. `mux` — the FFmpeg calls: each journal's frames (`frames`: reordered, depacketized,
//!    timed) merged by media time and written without transcoding into `<file>.part`; the
//!    unsafe FFI is confined to `ffi`.
//! 4. `publish` — the file fsynced, hashed and renamed, `recording.vtt`, and, last and
//!    atomically, `manifest.json`.
//!
//! A directory with journals but no manifest is unfinished: either still live, or its end was
//! interrupted; [`crate::recover`] only seals such journals at start, and the recording is
//! finished when the server's caller says the inspection ended.

use std::io;
use std::path::{Path, PathBuf};

use ffmpeg_next as ffmpeg;
use serde::{Deserialize, Serialize};

use crate::chapters::{Chapter, Mark};
use crate::journal::{list_journals, read_repairs, JournalError, TrackKind};

mod ffi;
mod frames;
mod mux;
pub mod plan;
mod publish;
mod scan;

pub use plan::build_chapters;
pub use publish::sha256_file;

/// File name of the manifest; its presence marks a finished recording.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the WebVTT chapters file.
pub const VTT_FILE: &str = "recording.vtt";

/// Errors of finalization, each with a stable snake_case code in its message.
#[derive(Debug, thiserror::Error)]
pub enum FinalizeError {
    /// The inspection directory has no journal with media in a supported codec.
    #[error("no_media: no journal with recordable media in {0}")]
    NoMedia(PathBuf),
    /// Reading a journal failed.
    #[error("journal_error: {0}")]
    Journal(#[from] JournalError),
    /// Filesystem error.
    #[error("io_error: {0}")]
    Io(#[from] io::Error),
    /// libavformat refused something.
    #[error("mux_error: {0}")]
    Mux(String),
}

impl From<ffmpeg::Error> for FinalizeError {
    fn from(e: ffmpeg::Error) -> Self {
        FinalizeError::Mux(e.to_string())
    }
}

/// One output stream of the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestTrack {
    /// Stream index in the file.
    pub index: usize,
    /// Audio or video.
    pub kind: TrackKind,
    /// Codec MIME type.
    pub codec: String,
    /// Participant who published it first.
    pub participant_id: String,
    /// Everybody who published into it, in order (a rejoin from another device or invitation
    /// continues the same stream).
    #[serde(default)]
    pub participant_ids: Vec<String>,
    /// What it is (`business_camera`, `business_microphone`, `inspector_voice`); absent in
    /// recordings of journals that did not name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
    /// Track ids that were merged into this stream (one per connection segment or more).
    pub track_ids: Vec<String>,
    /// Number of journals (connection segments) merged.
    pub segments: usize,
    /// Frames written.
    pub frames: u64,
    /// Frames dropped (incomplete after packet loss, or before the first keyframe).
    pub dropped_frames: u64,
    /// Silence written where an Opus stream had nothing (from media time 0 to its first
    /// frame, across reconnects), ms: browsers play what follows a hole early otherwise.
    #[serde(default)]
    pub silence_ms: i64,
    /// Video width, if video.
    pub width: Option<u32>,
    /// Video height, if video.
    pub height: Option<u32>,
    /// First frame's media time, milliseconds.
    pub start_ms: i64,
    /// Last frame's end, milliseconds.
    pub end_ms: i64,
}

/// Description of a finalized recording, served beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// File name of the recording inside the inspection directory.
    pub file: String,
    /// MIME type of the recording.
    pub mime: String,
    /// File size in bytes.
    pub size_bytes: u64,
    /// SHA-256 of the file, lower-case hex.
    pub sha256: String,
    /// Duration, milliseconds.
    pub duration_ms: i64,
    /// Wall-clock time (µs since the Unix epoch) of media time 0.
    pub epoch_micros: i64,
    /// Streams of the file.
    pub tracks: Vec<ManifestTrack>,
    /// Chapters, one per mark, in time order.
    pub chapters: Vec<Chapter>,
    /// Journals read.
    pub journals: usize,
    /// Journals whose tail was torn (crash) and cut at the last intact record.
    pub torn_journals: usize,
    /// Journals left out (unsupported codec or one that does not fit the container).
    pub skipped_journals: Vec<String>,
    /// When finalization finished, µs since the Unix epoch.
    pub finalized_at_micros: i64,
}

/// Reads the manifest of a finalized inspection directory, if there is one.
pub fn read_manifest(inspection_dir: &Path) -> io::Result<Option<Manifest>> {
    match std::fs::read(inspection_dir.join(MANIFEST_FILE)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(io::Error::other),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Finalizes the journals of `dir` (`<recordings_dir>/<inspection>`) into one recording with a
/// chapter per mark. Synchronous and CPU-bound: run it on a blocking thread.
pub fn finalize_inspection(dir: &Path, marks: &[Mark]) -> Result<Manifest, FinalizeError> {
    let started = std::time::Instant::now();
    let paths = list_journals(dir)?;
    let mut scanned = Vec::new();
    let mut skipped = Vec::new();
    for (path, result) in paths.iter().zip(scan::scan_all(&paths)) {
        match result? {
            Some(s) => scanned.push(s),
            None => skipped.push(scan::file_name(path)),
        }
    }
    // Torn now, or torn and cut when the journals were sealed at start.
    let repaired: std::collections::BTreeSet<String> =
        read_repairs(dir)?.into_iter().map(|r| r.journal).collect();
    let torn = scanned
        .iter()
        .filter(|s| s.torn || repaired.contains(&scan::file_name(&s.path)))
        .count();
    let scanned_at = started.elapsed();

    let facts: Vec<plan::JournalFacts> = scanned.iter().map(scan::Scanned::facts).collect();
    let plan = plan::plan(&facts, marks).ok_or_else(|| FinalizeError::NoMedia(dir.to_owned()))?;
    skipped.extend(plan.skipped.iter().cloned());
    let title = format!(
        "Inspection {}",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("")
    );
    let muxed = mux::mux(dir, &title, &plan, &scanned)?;
    let muxed_at = started.elapsed();

    let counts = publish::JournalCounts {
        read: paths.len(),
        torn,
        skipped,
    };
    let manifest = publish::publish(dir, plan, &facts, muxed, counts)?;
    let published_at = started.elapsed();
    tracing::info!(
        dir = %dir.display(),
        scan_ms = scanned_at.as_millis() as u64,
        mux_ms = muxed_at.saturating_sub(scanned_at).as_millis() as u64,
        publish_ms = published_at.saturating_sub(muxed_at).as_millis() as u64,
        bytes = manifest.size_bytes,
        "recording finalized"
    );
    Ok(manifest)
}
