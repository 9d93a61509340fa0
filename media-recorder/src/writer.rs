//! The recording writer: one thread per hub that owns every open journal and the marks log,
//! so that no async worker ever writes, flushes or fsyncs a recording file. A write that the
//! kernel throttles (dirty-page limits) or an fsync would stall every connection sharing the
//! worker, and webrtc then drops packets it cannot hand to a track.
//!
//! Jobs arrive over an unbounded channel, in order: a slow disk delays the recording instead of
//! losing it. The thread takes them in batches (it sleeps between batches rather than being
//! woken per packet). Journals are keyed, not shared, so appending takes no lock. The thread also
//! hands buffered records to the OS at least every [`FLUSH_TICK`], even on a silent track.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use crate::chapters::{Mark, MarkLog};
use crate::journal::{JournalWriter, TrackMeta};

/// How often every open journal is offered a flush (each flushes once half a second of
/// arrival has passed).
pub(crate) const FLUSH_TICK: Duration = Duration::from_millis(250);

/// How long the thread sleeps after a batch of jobs before it takes the next. Waking the
/// thread for every packet was about 30 % of the media path's CPU at 40 publishers
/// (docs/benchmarks.md, "Media beside Janus"); 5 ms adds at most that much to when a record
/// reaches its journal's buffer, which flushes every half second anyway.
const BATCH_PAUSE: Duration = Duration::from_millis(5);

/// Identifies one open journal among all inspections of the hub.
pub(crate) type JournalKey = u64;

/// Work for the writer thread.
pub(crate) enum Job {
    /// Create (and fsync the header of) a journal.
    Create {
        key: JournalKey,
        recordings_dir: PathBuf,
        inspection: String,
        segment: u32,
        meta: TrackMeta,
    },
    /// Append a received RTP packet (its bytes, as received).
    Rtp {
        key: JournalKey,
        at: i64,
        packet: Vec<u8>,
    },
    /// Append a sender report's NTP/RTP pair.
    SenderReport {
        key: JournalKey,
        at: i64,
        ntp: u64,
        rtp: u32,
    },
    /// Flush, fsync and forget a journal; later records for it are dropped.
    Close { key: JournalKey },
    /// Append a mark to the inspection's fsynced mark log.
    Mark { inspection_dir: PathBuf, mark: Mark },
    /// Answered once every job queued before it is done.
    Barrier(tokio::sync::oneshot::Sender<()>),
}

/// The sending side of the writer thread; the thread ends (closing every journal) when the
/// last clone is dropped.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the thread.
    pub(crate) fn start() -> std::io::Result<Writer> {
        let (tx, rx) = mpsc::channel::<Job>();
        // Named `srv-*` like the server runtime's threads: the benchmark counts it as server.
        std::thread::Builder::new()
            .name("srv-journal".into())
            .spawn(move || run(rx))?;
        Ok(Writer { tx })
    }

    /// Queues a job; never blocks.
    pub(crate) fn send(&self, job: Job) {
        if self.tx.send(job).is_err() {
            tracing::error!("the recording writer thread is gone; a record is lost");
        }
    }

    /// A receiver answered when everything queued so far is written.
    pub(crate) fn barrier(&self) -> tokio::sync::oneshot::Receiver<()> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.send(Job::Barrier(tx));
        rx
    }
}

#[derive(Default)]
struct Open {
    journals: HashMap<JournalKey, JournalWriter>,
    /// Journals that failed to write, with the number of failed records (logged once).
    failed: HashMap<JournalKey, u64>,
}

impl Open {
    fn fail(&mut self, key: JournalKey, what: &str, e: &dyn std::fmt::Display) {
        let n = self.failed.entry(key).or_insert(0);
        *n += 1;
        if *n == 1 {
            // Forwarding goes on; the failure is loud because the recording has a hole.
            tracing::error!(journal = key, "journal {what} failed: {e}");
        }
    }

    /// A journal that failed flushed again (space came back): said once, and a later
    /// failure is logged again.
    fn recovered(&mut self, key: JournalKey) {
        if let Some(n) = self.failed.remove(&key) {
            tracing::warn!(
                journal = key,
                failed_records = n,
                "journal writes again; the recording has a gap of the records that failed"
            );
        }
    }

    fn run(&mut self, job: Job) {
        match job {
            Job::Create {
                key,
                recordings_dir,
                inspection,
                segment,
                meta,
            } => match JournalWriter::create(&recordings_dir, &inspection, segment, meta) {
                Ok(w) => {
                    self.journals.insert(key, w);
                }
                Err(e) => self.fail(key, "creation", &e),
            },
            Job::Rtp { key, at, packet } => {
                if let Some(w) = self.journals.get_mut(&key) {
                    if let Err(e) = w.append_rtp(at, &packet) {
                        self.fail(key, "write", &e);
                    }
                }
            }
            Job::SenderReport { key, at, ntp, rtp } => {
                if let Some(w) = self.journals.get_mut(&key) {
                    if let Err(e) = w.append_sender_report(at, ntp, rtp) {
                        self.fail(key, "write", &e);
                    }
                }
            }
            Job::Close { key } => {
                if let Some(w) = self.journals.remove(&key) {
                    if let Err(e) = w.close() {
                        self.fail(key, "close", &e);
                    }
                }
                if let Some(n) = self.failed.remove(&key) {
                    tracing::error!(
                        journal = key,
                        failed_records = n,
                        "journal closed with failures"
                    );
                }
            }
            Job::Mark {
                inspection_dir,
                mark,
            } => {
                let done = MarkLog::open(&inspection_dir).and_then(|mut log| log.append(&mark));
                if let Err(e) = done {
                    tracing::error!(dir = %inspection_dir.display(), "cannot persist a mark: {e}");
                }
            }
            Job::Barrier(done) => {
                let _ = done.send(());
            }
        }
    }

    fn flush(&mut self, now_micros: i64) {
        let mut errors = Vec::new();
        let mut flushed = Vec::new();
        for (&key, w) in self.journals.iter_mut() {
            // A failed journal is flushed at every tick: only a flush that succeeds says
            // that space came back.
            let result = if self.failed.contains_key(&key) {
                w.flush(now_micros)
            } else {
                w.maybe_flush(now_micros)
            };
            match result {
                Err(e) => errors.push((key, e)),
                Ok(()) => flushed.push(key),
            }
        }
        for (key, e) in errors {
            self.fail(key, "flush", &e);
        }
        for key in flushed {
            self.recovered(key);
        }
    }
}

fn run(rx: mpsc::Receiver<Job>) {
    let mut open = Open::default();
    let mut next_flush = Instant::now() + FLUSH_TICK;
    let mut connected = true;
    while connected {
        // Parks on the channel only when there is nothing to do: a sender wakes a parked
        // thread with a futex call and a context switch per job.
        match rx.recv_timeout(next_flush.saturating_duration_since(Instant::now())) {
            Ok(job) => {
                open.run(job);
                // Drains what came meanwhile, then sleeps instead of parking: senders do not
                // wake a sleeping thread, so under load the jobs are taken in batches.
                loop {
                    match rx.try_recv() {
                        Ok(job) => open.run(job),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            connected = false;
                            break;
                        }
                    }
                }
                if connected {
                    std::thread::sleep(BATCH_PAUSE);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => connected = false,
        }
        if Instant::now() >= next_flush {
            open.flush(chrono::Utc::now().timestamp_micros());
            next_flush = Instant::now() + FLUSH_TICK;
        }
    }
    for (key, w) in open.journals.drain() {
        if let Err(e) = w.close() {
            tracing::error!(journal = key, "journal close failed: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{list_journals, JournalReader, Record, TrackKind};

    #[tokio::test]
    async fn writes_in_order_and_barrier_waits_for_everything_before_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let writer = Writer::start().expect("thread");
        let meta = TrackMeta::new("cam", "p", TrackKind::Video, "video/VP8", 90_000, 1, 0);
        writer.send(Job::Create {
            key: 7,
            recordings_dir: dir.path().to_owned(),
            inspection: "insp".into(),
            segment: 2,
            meta,
        });
        for i in 0..100u8 {
            writer.send(Job::Rtp {
                key: 7,
                at: i as i64,
                packet: vec![i; 12],
            });
        }
        writer.send(Job::Close { key: 7 });
        // Records for a closed or unknown journal are dropped, not written anywhere.
        writer.send(Job::Rtp {
            key: 7,
            at: 1000,
            packet: vec![1; 12],
        });
        let mark = Mark {
            item_id: "i".into(),
            title: "t".into(),
            result: "ok".into(),
            at_micros: 5,
        };
        writer.send(Job::Mark {
            inspection_dir: dir.path().join("insp"),
            mark: mark.clone(),
        });
        writer.barrier().await.expect("barrier answered");
        let journals = list_journals(&dir.path().join("insp")).expect("list");
        assert_eq!(journals.len(), 1);
        let records: Vec<Record> = JournalReader::open(&journals[0])
            .expect("open")
            .map(|r| r.expect("record"))
            .collect();
        assert_eq!(records.len(), 100);
        assert_eq!(
            records[99],
            Record::Rtp {
                arrival_micros: 99,
                packet: vec![99; 12]
            }
        );
        assert_eq!(
            crate::chapters::read_marks(&dir.path().join("insp")).expect("marks"),
            vec![mark]
        );
    }
}
