//! Crash-safe RTP journal: one append-only file per track and connection segment.
//!
//! Layout: `<recordings_dir>/<inspection>/journal/<segment>-<track>.rtpj`. The file starts with
//! one JSON line ([`TrackMeta`]) and continues with binary records:
//!
//! ```text
//! kind u8 | arrival_micros i64 LE | len u32 LE | payload [len] | crc32 u32 LE
//! ```
//!
//! The CRC-32 (IEEE) covers kind, arrival, len and payload, so a record torn by a crash or
//! garbage left at the tail is detected and reading stops there instead of misreading it.
//! The writer hands its buffer to the OS at least once per second of arrival time, so a killed
//! process loses at most about one second; `close` also fsyncs.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// File name extension of journal files.
pub const JOURNAL_EXT: &str = "rtpj";
/// Format tag written into every header, so a future layout change is recognisable.
pub const JOURNAL_FORMAT: &str = "rtpj/1";
/// Largest payload a record may carry; anything larger is treated as a corrupt tail.
pub const MAX_RECORD_LEN: u32 = 1 << 20;
/// How often (in arrival-time microseconds) buffered records are handed to the OS: what a
/// `kill -9` may lose. Half a second, so that with the writer's lag on a loaded machine a
/// crash still loses under a second (issue 19; docs/reliability.md, "Faults").
pub const FLUSH_INTERVAL_MICROS: i64 = 500_000;

const KIND_RTP: u8 = 1;
const KIND_SENDER_REPORT: u8 = 2;
const RECORD_HEAD: usize = 1 + 8 + 4;

/// Media kind of a track.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackKind {
    /// Audio track (Opus).
    Audio,
    /// Video track (VP8 or H.264).
    Video,
}

/// Header of a journal file, written as its first line in JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackMeta {
    /// Format tag, always [`JOURNAL_FORMAT`] for files written by this version.
    #[serde(default = "default_format")]
    pub format: String,
    /// Track id (unique within the inspection; used in the file name).
    pub track_id: String,
    /// Participant that published the track.
    pub participant_id: String,
    /// Audio or video.
    pub kind: TrackKind,
    /// Codec MIME type as negotiated, e.g. `video/VP8`, `video/H264`, `audio/opus`.
    pub codec: String,
    /// RTP clock rate (90000 for video, 48000 for Opus).
    pub clock_rate: u32,
    /// RTP SSRC of the incoming stream.
    pub ssrc: u32,
    /// When the journal was created, microseconds since the Unix epoch UTC.
    pub created_at_micros: i64,
    /// What the track is in the inspection, whoever published it (`business_camera`,
    /// `business_microphone`, `inspector_voice`); absent in journals of older versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feed: Option<String>,
}

fn default_format() -> String {
    JOURNAL_FORMAT.to_owned()
}

impl TrackMeta {
    /// Builds a header with the current format tag.
    pub fn new(
        track_id: impl Into<String>,
        participant_id: impl Into<String>,
        kind: TrackKind,
        codec: impl Into<String>,
        clock_rate: u32,
        ssrc: u32,
        created_at_micros: i64,
    ) -> Self {
        Self {
            format: default_format(),
            track_id: track_id.into(),
            participant_id: participant_id.into(),
            kind,
            codec: codec.into(),
            clock_rate,
            ssrc,
            created_at_micros,
            feed: None,
        }
    }
}

/// One journal record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A received RTP packet, verbatim (header and payload).
    Rtp {
        /// Server arrival time, microseconds since the Unix epoch UTC.
        arrival_micros: i64,
        /// The packet bytes.
        packet: Vec<u8>,
    },
    /// An RTCP sender report's NTP ↔ RTP timestamp pair.
    SenderReport {
        /// Server arrival time, microseconds since the Unix epoch UTC.
        arrival_micros: i64,
        /// 64-bit NTP timestamp (32.32 fixed point seconds since 1900).
        ntp_time: u64,
        /// RTP timestamp corresponding to `ntp_time`.
        rtp_time: u32,
    },
}

impl Record {
    /// Arrival time of the record.
    pub fn arrival_micros(&self) -> i64 {
        match self {
            Record::Rtp { arrival_micros, .. } | Record::SenderReport { arrival_micros, .. } => {
                *arrival_micros
            }
        }
    }
}

/// Errors of journal reading and writing.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Underlying IO failed.
    #[error("journal_io: {0}")]
    Io(#[from] io::Error),
    /// The header line is missing or not valid JSON.
    #[error("journal_bad_header: {0}")]
    BadHeader(String),
    /// A packet is larger than [`MAX_RECORD_LEN`].
    #[error("journal_record_too_large: {0} bytes")]
    RecordTooLarge(usize),
    /// The writer was already closed.
    #[error("journal_closed")]
    Closed,
}

/// Path of the journal of `track_id` in connection `segment` of an inspection.
pub fn journal_path(
    recordings_dir: &Path,
    inspection_id: &str,
    segment: u32,
    track_id: &str,
) -> PathBuf {
    journal_dir(&recordings_dir.join(inspection_id))
        .join(format!("{segment:06}-{}.{JOURNAL_EXT}", sanitize(track_id)))
}

/// Journal directory inside an inspection's recording directory.
pub fn journal_dir(inspection_dir: &Path) -> PathBuf {
    inspection_dir.join("journal")
}

/// Keeps file names portable whatever the browser chose as track id.
fn sanitize(s: &str) -> String {
    let out: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(96)
        .collect();
    if out.is_empty() {
        "track".to_owned()
    } else {
        out
    }
}

/// Appends records to one journal file.
pub struct JournalWriter {
    out: Option<BufWriter<File>>,
    path: PathBuf,
    meta: TrackMeta,
    last_flush_micros: Option<i64>,
    records: u64,
}

impl JournalWriter {
    /// Creates the journal of `meta.track_id` for `segment` of an inspection, creating the
    /// directories as needed. Fails if the file already exists (a segment is never reopened).
    pub fn create(
        recordings_dir: &Path,
        inspection_id: &str,
        segment: u32,
        meta: TrackMeta,
    ) -> Result<Self, JournalError> {
        let path = journal_path(recordings_dir, inspection_id, segment, &meta.track_id);
        Self::create_at(&path, meta)
    }

    /// Creates a journal at an explicit path.
    pub fn create_at(path: &Path, meta: TrackMeta) -> Result<Self, JournalError> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let file = OpenOptions::new().write(true).create_new(true).open(path)?;
        let mut out = BufWriter::with_capacity(256 * 1024, file);
        let mut line =
            serde_json::to_vec(&meta).map_err(|e| JournalError::BadHeader(e.to_string()))?;
        line.push(b'\n');
        out.write_all(&line)?;
        // The header must be durable before any record refers to it.
        out.flush()?;
        out.get_ref().sync_all()?;
        if let Some(parent) = path.parent() {
            // Best effort: makes the new directory entry durable too.
            if let Ok(dir) = File::open(parent) {
                let _ = dir.sync_all();
            }
        }
        Ok(Self {
            out: Some(out),
            path: path.to_owned(),
            meta,
            last_flush_micros: None,
            records: 0,
        })
    }

    /// Path of the file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Header of the journal.
    pub fn meta(&self) -> &TrackMeta {
        &self.meta
    }

    /// Number of records appended so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Appends a received RTP packet. An error means the record was not taken (the disk is
    /// full and the buffer too); `Ok` means it is in the file or in the buffer ahead of it.
    pub fn append_rtp(&mut self, arrival_micros: i64, packet: &[u8]) -> Result<(), JournalError> {
        self.append(KIND_RTP, arrival_micros, packet)
    }

    /// Appends an RTCP sender report's NTP ↔ RTP pair.
    pub fn append_sender_report(
        &mut self,
        arrival_micros: i64,
        ntp_time: u64,
        rtp_time: u32,
    ) -> Result<(), JournalError> {
        let mut payload = [0u8; 12];
        payload[..8].copy_from_slice(&ntp_time.to_le_bytes());
        payload[8..].copy_from_slice(&rtp_time.to_le_bytes());
        self.append(KIND_SENDER_REPORT, arrival_micros, &payload)
    }

    fn append(
        &mut self,
        kind: u8,
        arrival_micros: i64,
        payload: &[u8],
    ) -> Result<(), JournalError> {
        if payload.len() > MAX_RECORD_LEN as usize {
            return Err(JournalError::RecordTooLarge(payload.len()));
        }
        let out = self.out.as_mut().ok_or(JournalError::Closed)?;
        let mut head = [0u8; RECORD_HEAD];
        head[0] = kind;
        head[1..9].copy_from_slice(&arrival_micros.to_le_bytes());
        head[9..13].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        let mut crc = Crc32::new();
        crc.update(&head);
        crc.update(payload);
        let len = RECORD_HEAD + payload.len() + 4;
        // A record enters the stream whole or not at all. A write that fails half-way (a
        // full disk) must not leave half a record followed by later ones: the reader stops
        // at the first torn record, and everything written after it would be lost. So the
        // buffer is flushed first when the record does not fit; if that fails, the record is
        // refused and the buffer keeps what it had, to be written when space returns.
        if out.capacity() - out.buffer().len() < len {
            out.flush()?;
        }
        if len <= out.capacity() {
            // Fits in the (now) free buffer: BufWriter copies it without writing.
            out.write_all(&head)?;
            out.write_all(payload)?;
            out.write_all(&crc.finish().to_le_bytes())?;
        } else {
            // Larger than the buffer (up to MAX_RECORD_LEN): written directly, and cut back
            // to the record boundary if the write fails part-way.
            let mut record = Vec::with_capacity(len);
            record.extend_from_slice(&head);
            record.extend_from_slice(payload);
            record.extend_from_slice(&crc.finish().to_le_bytes());
            let file = out.get_mut();
            let at = file.stream_position()?;
            if let Err(e) = file.write_all(&record) {
                let _ = file
                    .set_len(at)
                    .and_then(|()| file.seek(SeekFrom::Start(at)));
                return Err(e.into());
            }
        }
        self.records += 1;
        // The record is taken. A flush that fails now keeps it buffered, to be written by a
        // later flush; the failure is the caller's to see from `maybe_flush` (the writer's
        // timer), not a refusal of this record.
        let _ = self.maybe_flush(arrival_micros);
        Ok(())
    }

    /// Hands buffered records to the OS if a second has passed since the last flush. Called
    /// by every append; call it from a timer too so a silent track still gets flushed.
    pub fn maybe_flush(&mut self, now_micros: i64) -> Result<(), JournalError> {
        match self.last_flush_micros {
            None => {
                // The first record is flushed at once, so even a very short segment survives.
                self.flush(now_micros)
            }
            Some(last) if now_micros - last >= FLUSH_INTERVAL_MICROS || now_micros < last => {
                self.flush(now_micros)
            }
            Some(_) => Ok(()),
        }
    }

    /// Hands buffered records to the OS now (survives a killed process, not a power loss).
    pub fn flush(&mut self, now_micros: i64) -> Result<(), JournalError> {
        let out = self.out.as_mut().ok_or(JournalError::Closed)?;
        out.flush()?;
        self.last_flush_micros = Some(now_micros);
        Ok(())
    }

    /// Flushes and fsyncs; the journal is complete and durable afterwards.
    pub fn close(mut self) -> Result<(), JournalError> {
        self.close_inner()
    }

    fn close_inner(&mut self) -> Result<(), JournalError> {
        if let Some(mut out) = self.out.take() {
            out.flush()?;
            out.get_ref().sync_all()?;
        }
        Ok(())
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        // Best effort for writers dropped without close (e.g. a task cancelled on shutdown).
        let _ = self.close_inner();
    }
}

/// Reads a journal file record by record.
///
/// Iteration stops at the end of the file or at the first record that is incomplete or fails
/// its checksum (the torn tail a crash leaves); [`JournalReader::torn_tail`] then tells which.
pub struct JournalReader {
    input: BufReader<File>,
    meta: TrackMeta,
    path: PathBuf,
    torn_tail: bool,
    done: bool,
    /// Bytes consumed so far (header and whole records).
    pos: u64,
    /// Length up to which a previous reader verified every checksum; not re-checked.
    verified_len: Option<u64>,
}

impl JournalReader {
    /// Opens a journal and parses its header.
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let file = File::open(path)?;
        let mut input = BufReader::with_capacity(256 * 1024, file);
        let mut line = Vec::new();
        input.read_until(b'\n', &mut line)?;
        if line.last() != Some(&b'\n') {
            return Err(JournalError::BadHeader("header line is incomplete".into()));
        }
        let meta: TrackMeta = serde_json::from_slice(&line[..line.len() - 1])
            .map_err(|e| JournalError::BadHeader(e.to_string()))?;
        Ok(Self {
            input,
            meta,
            path: path.to_owned(),
            torn_tail: false,
            done: false,
            pos: line.len() as u64,
            verified_len: None,
        })
    }

    /// Opens a journal for another pass over the first `valid_len` bytes, which an earlier
    /// reader verified ([`JournalReader::valid_len`]): checksums are not computed again and
    /// reading stops there.
    pub fn open_verified(path: &Path, valid_len: u64) -> Result<Self, JournalError> {
        let mut r = Self::open(path)?;
        r.verified_len = Some(valid_len);
        Ok(r)
    }

    /// Length of the intact part read so far (header and whole, valid records).
    pub fn valid_len(&self) -> u64 {
        self.pos
    }

    /// Header of the journal.
    pub fn meta(&self) -> &TrackMeta {
        &self.meta
    }

    /// Path of the file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True once iteration stopped at a torn or corrupt record rather than at a clean end.
    pub fn torn_tail(&self) -> bool {
        self.torn_tail
    }

    /// Reads the next record; `Ok(None)` at the end or at a torn tail.
    pub fn next_record(&mut self) -> Result<Option<Record>, JournalError> {
        if self.done {
            return Ok(None);
        }
        if self.verified_len.is_some_and(|v| self.pos >= v) {
            self.done = true;
            return Ok(None);
        }
        let mut head = [0u8; RECORD_HEAD];
        match read_full(&mut self.input, &mut head)? {
            0 => {
                self.done = true;
                return Ok(None);
            }
            n if n < RECORD_HEAD => return Ok(self.torn()),
            _ => {}
        }
        let kind = head[0];
        // The fixed-size slices below cannot fail: head has exactly RECORD_HEAD bytes.
        let arrival_micros = i64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
        let len = u32::from_le_bytes(head[9..13].try_into().expect("4 bytes"));
        if len > MAX_RECORD_LEN || !(kind == KIND_RTP || kind == KIND_SENDER_REPORT) {
            return Ok(self.torn());
        }
        // The payload is read straight into the buffer the record hands out.
        let mut payload = vec![0u8; len as usize];
        let mut crc_bytes = [0u8; 4];
        if read_full(&mut self.input, &mut payload)? < payload.len()
            || read_full(&mut self.input, &mut crc_bytes)? < 4
        {
            return Ok(self.torn());
        }
        let end = self.pos + (RECORD_HEAD + payload.len() + 4) as u64;
        if self.verified_len.is_none_or(|v| end > v) {
            let mut crc = Crc32::new();
            crc.update(&head);
            crc.update(&payload);
            if crc.finish() != u32::from_le_bytes(crc_bytes) {
                return Ok(self.torn());
            }
        }
        let record = match kind {
            KIND_RTP => Record::Rtp {
                arrival_micros,
                packet: payload,
            },
            _ => {
                if payload.len() != 12 {
                    return Ok(self.torn());
                }
                Record::SenderReport {
                    arrival_micros,
                    ntp_time: u64::from_le_bytes(payload[..8].try_into().expect("8 bytes")),
                    rtp_time: u32::from_le_bytes(payload[8..12].try_into().expect("4 bytes")),
                }
            }
        };
        self.pos = end;
        Ok(Some(record))
    }

    fn torn(&mut self) -> Option<Record> {
        self.torn_tail = true;
        self.done = true;
        None
    }
}

impl Iterator for JournalReader {
    type Item = Result<Record, JournalError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Reads until `buf` is full or the input ends; returns the number of bytes read.
fn read_full(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Lists the journal files of an inspection directory, sorted by name (segment, then track).
pub fn list_journals(inspection_dir: &Path) -> io::Result<Vec<PathBuf>> {
    let dir = journal_dir(inspection_dir);
    let mut out = Vec::new();
    match std::fs::read_dir(&dir) {
        Ok(entries) => {
            for entry in entries {
                let path = entry?.path();
                if path.extension().and_then(|e| e.to_str()) == Some(JOURNAL_EXT) {
                    out.push(path);
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out)
}

/// The segment number after every one the inspection directory's journal files use (0 if
/// there are none), so a new server run never reuses a file name.
pub fn next_segment(inspection_dir: &Path) -> io::Result<u32> {
    let entries = match std::fs::read_dir(journal_dir(inspection_dir)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut next = 0;
    for entry in entries {
        let name = entry?.file_name();
        let segment = name
            .to_str()
            .and_then(|n| n.split('-').next())
            .and_then(|s| s.parse::<u32>().ok());
        if let Some(s) = segment {
            next = next.max(s.saturating_add(1));
        }
    }
    Ok(next)
}

/// What [`seal`] did to one journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sealed {
    /// Nothing to do: it ends with a whole record.
    Intact,
    /// A torn tail of this many bytes was cut off at the last intact record.
    Cut(u64),
    /// The header is unreadable (a crash while it was created): the file was renamed to
    /// `<name>.corrupt`, kept but out of the recording.
    Corrupt(PathBuf),
}

/// Makes a journal that a crash left behind end at its last intact record, so that it reads
/// cleanly from now on. Nothing else is changed; call it only while no writer has it open.
pub fn seal(path: &Path) -> Result<Sealed, JournalError> {
    let mut reader = match JournalReader::open(path) {
        Ok(r) => r,
        Err(JournalError::BadHeader(_)) => {
            let mut corrupt = path.as_os_str().to_owned();
            corrupt.push(".corrupt");
            let corrupt = PathBuf::from(corrupt);
            std::fs::rename(path, &corrupt)?;
            return Ok(Sealed::Corrupt(corrupt));
        }
        Err(e) => return Err(e),
    };
    while reader.next_record()?.is_some() {}
    if !reader.torn_tail() {
        return Ok(Sealed::Intact);
    }
    let valid = reader.valid_len();
    let file = OpenOptions::new().write(true).open(path)?;
    let len = file.metadata()?.len();
    file.set_len(valid)?;
    file.sync_all()?;
    Ok(Sealed::Cut(len.saturating_sub(valid)))
}

/// File (in the journal directory) that lists the journals whose torn tail [`seal`] cut, so
/// that the manifest can still say which were torn.
pub const REPAIRS_FILE: &str = "repairs.jsonl";

/// One line of [`REPAIRS_FILE`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repair {
    /// File name of the journal.
    pub journal: String,
    /// Bytes cut off its end.
    pub cut_bytes: u64,
    /// When, µs since the Unix epoch.
    pub at_micros: i64,
}

/// Appends a repair to the inspection's repairs log (fsynced).
pub fn record_repair(inspection_dir: &Path, repair: &Repair) -> io::Result<()> {
    let dir = journal_dir(inspection_dir);
    std::fs::create_dir_all(&dir)?;
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(REPAIRS_FILE))?;
    let mut line = serde_json::to_vec(repair).map_err(io::Error::other)?;
    line.push(b'\n');
    f.write_all(&line)?;
    f.sync_data()
}

/// The repairs recorded for an inspection (a torn last line is skipped).
pub fn read_repairs(inspection_dir: &Path) -> io::Result<Vec<Repair>> {
    let file = match File::open(journal_dir(inspection_dir).join(REPAIRS_FILE)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for line in BufReader::new(file).lines() {
        if let Ok(r) = serde_json::from_str::<Repair>(&line?) {
            out.push(r);
        }
    }
    Ok(out)
}

/// CRC-32 (IEEE 802.3, reflected), slice-by-8 table driven: fast enough (GB/s) that
/// checking every record costs little next to the IO, and small enough not to need a crate.
struct Crc32 {
    value: u32,
}

const CRC_TABLES: [[u32; 256]; 8] = {
    let mut tables = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        tables[0][i] = c;
        i += 1;
    }
    let mut t = 1;
    while t < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = tables[t - 1][i];
            tables[t][i] = (prev >> 8) ^ tables[0][(prev & 0xFF) as usize];
            i += 1;
        }
        t += 1;
    }
    tables
};

impl Crc32 {
    fn new() -> Self {
        Self { value: 0xFFFF_FFFF }
    }

    fn update(&mut self, data: &[u8]) {
        let t = &CRC_TABLES;
        let mut c = self.value;
        let mut chunks = data.chunks_exact(8);
        for b in &mut chunks {
            let lo = c ^ u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
            let hi = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
            c = t[7][(lo & 0xFF) as usize]
                ^ t[6][((lo >> 8) & 0xFF) as usize]
                ^ t[5][((lo >> 16) & 0xFF) as usize]
                ^ t[4][(lo >> 24) as usize]
                ^ t[3][(hi & 0xFF) as usize]
                ^ t[2][((hi >> 8) & 0xFF) as usize]
                ^ t[1][((hi >> 16) & 0xFF) as usize]
                ^ t[0][(hi >> 24) as usize];
        }
        for &b in chunks.remainder() {
            c = t[0][((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
        }
        self.value = c;
    }

    fn finish(&self) -> u32 {
        self.value ^ 0xFFFF_FFFF
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> TrackMeta {
        TrackMeta::new(
            "cam",
            "p1",
            TrackKind::Video,
            "video/VP8",
            90_000,
            42,
            1_000,
        )
    }

    #[test]
    fn crc_matches_reference_value() {
        let mut c = Crc32::new();
        c.update(b"123456789");
        assert_eq!(c.finish(), 0xCBF4_3926);
        // Split updates of every alignment agree with the one-shot value.
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = Crc32::new();
        whole.update(&data);
        for cut in 0..data.len() {
            let mut c = Crc32::new();
            c.update(&data[..cut]);
            c.update(&data[cut..]);
            assert_eq!(c.finish(), whole.finish());
        }
    }

    #[test]
    fn round_trip_and_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = JournalWriter::create(dir.path(), "insp", 0, meta()).expect("create");
        let path = w.path().to_owned();
        assert!(path.ends_with("insp/journal/000000-cam.rtpj"));
        w.append_rtp(10, &[1, 2, 3]).expect("append");
        w.append_sender_report(20, 0x1122_3344_5566_7788, 99)
            .expect("append sr");
        w.append_rtp(30, &[4; 100]).expect("append");
        w.close().expect("close");

        let full = std::fs::read(&path).expect("read");
        let r = JournalReader::open(&path).expect("open");
        assert_eq!(r.meta(), &meta());
        let records: Vec<Record> = r.map(|r| r.expect("record")).collect();
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[0],
            Record::Rtp {
                arrival_micros: 10,
                packet: vec![1, 2, 3]
            }
        );
        assert_eq!(
            records[1],
            Record::SenderReport {
                arrival_micros: 20,
                ntp_time: 0x1122_3344_5566_7788,
                rtp_time: 99
            }
        );

        // Every truncation point inside the last record yields the first two records only.
        let last_len = RECORD_HEAD + 100 + 4;
        for cut in 1..last_len {
            std::fs::write(&path, &full[..full.len() - cut]).expect("write");
            let mut r = JournalReader::open(&path).expect("open");
            let n = r.by_ref().inspect(|r| assert!(r.is_ok())).count();
            assert_eq!(n, 2, "cut {cut}");
            assert!(r.torn_tail());
        }

        // A second pass over the verified part yields the same records without checksums.
        std::fs::write(&path, &full[..full.len() - 3]).expect("write");
        let mut first = JournalReader::open(&path).expect("open");
        assert_eq!(first.by_ref().count(), 2);
        let second = JournalReader::open_verified(&path, first.valid_len()).expect("open");
        assert_eq!(
            second.map(|r| r.expect("record")).collect::<Vec<_>>(),
            records[..2].to_vec()
        );

        // Garbage appended after a clean end is detected, not misread.
        let mut garbage = full.clone();
        garbage.extend_from_slice(&[
            1, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 9, 9, 9, 9, 9, 0, 0, 0, 0,
        ]);
        std::fs::write(&path, &garbage).expect("write");
        let mut r = JournalReader::open(&path).expect("open");
        assert_eq!(r.by_ref().count(), 3);
        assert!(r.torn_tail());
    }

    #[test]
    fn seal_cuts_a_torn_tail_once_and_sets_a_broken_header_aside() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = JournalWriter::create(dir.path(), "insp", 3, meta()).expect("create");
        let path = w.path().to_owned();
        w.append_rtp(10, &[1, 2, 3]).expect("append");
        w.append_rtp(20, &[4; 50]).expect("append");
        w.close().expect("close");
        let full = std::fs::read(&path).expect("read");
        assert_eq!(seal(&path).expect("seal"), Sealed::Intact);
        std::fs::write(&path, &full[..full.len() - 7]).expect("write");
        let cut = RECORD_HEAD as u64 + 50 + 4 - 7;
        assert_eq!(seal(&path).expect("seal"), Sealed::Cut(cut));
        let mut r = JournalReader::open(&path).expect("open");
        assert_eq!(r.by_ref().count(), 1);
        assert!(!r.torn_tail(), "sealed journals read cleanly");
        assert_eq!(seal(&path).expect("seal"), Sealed::Intact);

        let inspection = dir.path().join("insp");
        assert_eq!(next_segment(&inspection).expect("next"), 4);
        let broken = journal_dir(&inspection).join("000009-cam.rtpj");
        std::fs::write(&broken, b"{\"format\":\"rtpj/1\",\"tra").expect("write");
        let Sealed::Corrupt(kept) = seal(&broken).expect("seal") else {
            panic!("a torn header is corrupt");
        };
        assert!(kept.exists() && !broken.exists());
        assert_eq!(list_journals(&inspection).expect("list"), vec![path]);
        // Its segment number is still taken.
        assert_eq!(next_segment(&inspection).expect("next"), 10);
        assert_eq!(next_segment(&dir.path().join("none")).expect("next"), 0);
    }

    #[test]
    fn flushes_every_half_second_of_arrival_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = JournalWriter::create(dir.path(), "insp", 1, meta()).expect("create");
        let path = w.path().to_owned();
        let header_len = std::fs::metadata(&path).expect("meta").len();
        w.append_rtp(0, &[0; 10]).expect("append");
        let after_first = std::fs::metadata(&path).expect("meta").len();
        assert!(after_first > header_len, "first record is flushed at once");
        w.append_rtp(250_000, &[0; 10]).expect("append");
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), after_first);
        w.append_rtp(500_001, &[0; 10]).expect("append");
        assert!(std::fs::metadata(&path).expect("meta").len() > after_first);
        // Never leave the writer to drop silently in tests; close reports errors.
        w.close().expect("close");
    }

    #[test]
    fn rejects_oversized_packet_and_existing_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut w = JournalWriter::create(dir.path(), "insp", 0, meta()).expect("create");
        let big = vec![0u8; MAX_RECORD_LEN as usize + 1];
        assert!(matches!(
            w.append_rtp(0, &big),
            Err(JournalError::RecordTooLarge(_))
        ));
        assert!(JournalWriter::create(dir.path(), "insp", 0, meta()).is_err());
        w.close().expect("close");
    }
}
