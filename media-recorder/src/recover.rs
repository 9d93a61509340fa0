//! Start-up repair of what a crash (`kill -9`, power loss) left behind. Nothing is finished
//! here: an inspection that was live when the server died is still live, and its recording
//! goes on as a new segment of the same timeline when its participants come back. Only the
//! files are made whole again — torn journal tails cut at the last intact record (listed in
//! the journal directory's repairs log, so the manifest still counts them as torn), a torn
//! last line of the mark log cut, an unreadable journal set aside — so that appending and
//! finalizing later read them cleanly. The manifest is written once, by `finish`, when the
//! server's caller says the inspection ended.

use std::io;
use std::path::{Path, PathBuf};

use uuid::Uuid;

use crate::chapters::repair_marks;
use crate::finalize::MANIFEST_FILE;
use crate::journal::{list_journals, record_repair, seal, JournalError, Repair, Sealed};

/// An inspection directory with journals and no manifest, after sealing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The inspection directory.
    pub dir: PathBuf,
    /// The inspection, if the directory is named by its id.
    pub inspection: Option<Uuid>,
    /// Journals found.
    pub journals: usize,
    /// Journals whose torn tail was cut now, with the bytes cut.
    pub cut: Vec<(String, u64)>,
    /// Journals with an unreadable header, renamed to `*.corrupt`.
    pub corrupt: Vec<PathBuf>,
    /// Bytes of a torn last line cut off the mark log.
    pub marks_cut: u64,
}

/// Seals every unfinished inspection directory under `recordings_dir` (see the module
/// documentation) and lists them. Call it at start, before any inspection records.
pub fn seal_all(recordings_dir: &Path) -> io::Result<Vec<Unfinished>> {
    let entries = match std::fs::read_dir(recordings_dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut dirs = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.is_dir() {
            dirs.push(path);
        }
    }
    dirs.sort();
    let mut out = Vec::new();
    for dir in dirs {
        if let Some(u) = seal_inspection(&dir)? {
            out.push(u);
        }
    }
    Ok(out)
}

/// Seals one inspection directory; `None` if it is finished or has no journals.
pub fn seal_inspection(dir: &Path) -> io::Result<Option<Unfinished>> {
    if dir.join(MANIFEST_FILE).exists() {
        return Ok(None);
    }
    let journals = list_journals(dir)?;
    if journals.is_empty() {
        return Ok(None);
    }
    let mut u = Unfinished {
        dir: dir.to_owned(),
        inspection: dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok()),
        journals: journals.len(),
        cut: Vec::new(),
        corrupt: Vec::new(),
        marks_cut: repair_marks(dir)?,
    };
    for path in &journals {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match seal(path) {
            Ok(Sealed::Intact) => {}
            Ok(Sealed::Cut(bytes)) => {
                record_repair(
                    dir,
                    &Repair {
                        journal: name.clone(),
                        cut_bytes: bytes,
                        at_micros: chrono::Utc::now().timestamp_micros(),
                    },
                )?;
                u.cut.push((name, bytes));
            }
            Ok(Sealed::Corrupt(kept)) => u.corrupt.push(kept),
            Err(JournalError::Io(e)) => return Err(e),
            Err(e) => return Err(io::Error::other(e)),
        }
    }
    if !u.cut.is_empty() || !u.corrupt.is_empty() || u.marks_cut > 0 {
        tracing::info!(dir = %dir.display(), cut = ?u.cut, corrupt = ?u.corrupt, marks_cut = u.marks_cut, "sealed an unfinished recording");
    }
    Ok(Some(u))
}
