//! Checklist marks: persisted per inspection, turned into chapters of the final recording.
//!
//! A mark is the server timestamp at which a checklist item was recorded. Marks are appended
//! to `<inspection>/marks.jsonl` (fsynced per mark) so crash recovery needs nothing from the
//! database.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name of the mark log inside an inspection's recording directory.
pub const MARKS_FILE: &str = "marks.jsonl";

/// A checklist item marked during the inspection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mark {
    /// Checklist item id.
    pub item_id: String,
    /// Chapter title (item number and question).
    pub title: String,
    /// The item's result (e.g. `compliant`, `violation`).
    pub result: String,
    /// Server time of the mark, microseconds since the Unix epoch UTC.
    pub at_micros: i64,
}

/// Append-only, fsynced log of an inspection's marks.
pub struct MarkLog {
    file: File,
    path: PathBuf,
}

impl MarkLog {
    /// Opens (creating if needed) the mark log of the inspection directory
    /// `<recordings_dir>/<inspection>`.
    pub fn open(inspection_dir: &Path) -> io::Result<Self> {
        std::fs::create_dir_all(inspection_dir)?;
        let path = inspection_dir.join(MARKS_FILE);
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Self { file, path })
    }

    /// Path of the log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends a mark and fsyncs before returning (persist before acknowledging).
    pub fn append(&mut self, mark: &Mark) -> io::Result<()> {
        let mut line = serde_json::to_vec(mark).map_err(io::Error::other)?;
        line.push(b'\n');
        self.file.write_all(&line)?;
        self.file.sync_data()
    }
}

/// Reads the marks of an inspection directory; a missing file means no marks and a torn last
/// line (crash during a write) is skipped. If an item was marked several times, every mark is
/// kept: each is a moment the reviewer may want to jump to.
pub fn read_marks(inspection_dir: &Path) -> io::Result<Vec<Mark>> {
    let file = match File::open(inspection_dir.join(MARKS_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut marks = Vec::new();
    for line in BufReader::new(file).lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        if let Ok(mark) = serde_json::from_str::<Mark>(&line) {
            marks.push(mark);
        }
    }
    Ok(marks)
}

/// Cuts a torn last line (a crash during a write) off the inspection's mark log, so that the
/// next mark appended starts a line of its own instead of being glued to the fragment and lost.
/// Returns the number of bytes cut. Call it only while nothing appends to the log.
pub fn repair_marks(inspection_dir: &Path) -> io::Result<u64> {
    let path = inspection_dir.join(MARKS_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let keep = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if keep == bytes.len() {
        return Ok(0);
    }
    let file = OpenOptions::new().write(true).open(&path)?;
    file.set_len(keep as u64)?;
    file.sync_all()?;
    Ok((bytes.len() - keep) as u64)
}

/// A chapter of the finalized recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chapter {
    /// Checklist item id.
    pub item_id: String,
    /// Chapter title.
    pub title: String,
    /// Item result.
    pub result: String,
    /// Chapter start in the recording, milliseconds.
    pub start_ms: i64,
    /// Chapter end in the recording, milliseconds (next chapter's start or the duration).
    pub end_ms: i64,
    /// The mark's server time, microseconds since the Unix epoch UTC.
    pub mark_at_micros: i64,
}

/// Title shown in the player: the mark's title as the embedding server wrote it (it says the
/// result in the reader's words; the result code is for machines and never shown).
pub fn chapter_display_title(c: &Chapter) -> String {
    c.title.clone()
}

/// Renders chapters as a WebVTT chapters file.
pub fn to_webvtt(chapters: &[Chapter]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for (i, c) in chapters.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            vtt_time(c.start_ms),
            vtt_time(c.end_ms.max(c.start_ms)),
            // A cue's text ends at a blank line and "-->" is reserved; keep titles on one line.
            chapter_display_title(c)
                .replace('\n', " ")
                .replace("-->", "→")
        ));
    }
    out
}

fn vtt_time(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        (ms / 60_000) % 60,
        (ms / 1000) % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_log_round_trip_skips_torn_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = MarkLog::open(dir.path()).expect("open");
        let m = Mark {
            item_id: "i1".into(),
            title: "1. Exits".into(),
            result: "ok".into(),
            at_micros: 5,
        };
        log.append(&m).expect("append");
        let mut f = OpenOptions::new()
            .append(true)
            .open(log.path())
            .expect("open");
        f.write_all(b"{\"item_id\":\"i2\",\"ti").expect("write");
        assert_eq!(read_marks(dir.path()).expect("read"), vec![m]);
    }

    #[test]
    fn repaired_log_keeps_the_next_mark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let m = |id: &str| Mark {
            item_id: id.into(),
            title: id.into(),
            result: "ok".into(),
            at_micros: 1,
        };
        MarkLog::open(dir.path())
            .expect("open")
            .append(&m("a"))
            .expect("append");
        assert_eq!(repair_marks(dir.path()).expect("repair"), 0);
        let path = dir.path().join(MARKS_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).expect("open");
        f.write_all(b"{\"item_id\":\"torn").expect("write");
        assert_eq!(repair_marks(dir.path()).expect("repair"), 16);
        MarkLog::open(dir.path())
            .expect("open")
            .append(&m("b"))
            .expect("append");
        assert_eq!(read_marks(dir.path()).expect("read"), vec![m("a"), m("b")]);
        assert_eq!(repair_marks(&dir.path().join("none")).expect("repair"), 0);
    }

    #[test]
    fn webvtt_format() {
        let c = Chapter {
            item_id: "a".into(),
            title: "1. Q".into(),
            result: "ok".into(),
            start_ms: 3_723_004,
            end_ms: 3_724_000,
            mark_at_micros: 0,
        };
        assert_eq!(
            to_webvtt(&[c]),
            "WEBVTT\n\n1\n01:02:03.004 --> 01:02:04.000\n1. Q\n\n"
        );
    }
}
