//! What the server receives from each publisher, measured where it arrives: the bit rate and
//! the loss left after repair (NACK/RTX) over the last seconds, and how long ago the last
//! packet came. The inspector sees these beside the business's video (docs/reliability.md,
//! "Quality shown honestly"): figures that need no trust in the phone.
//!
//! The read loop owns a [`Meter`] (no lock per packet) and hands a [`Snapshot`] of its
//! counters to the track's [`UplinkLog`] twice a second; a query compares the newest
//! snapshot with one about [`WINDOW_MICROS`] older. Time is an input, so all of it is tested
//! without sockets.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use uuid::Uuid;

use crate::timecode::Unwrapper;

/// A snapshot is taken at most this often.
const SNAPSHOT_MICROS: i64 = 500_000;
/// Rates are measured over about this long.
pub const WINDOW_MICROS: i64 = 2_000_000;
/// No packet for longer than this: the rate is taken as falling (a snapshot is due every
/// [`SNAPSHOT_MICROS`] while packets come).
const QUIET_MICROS: i64 = 1_000_000;
/// Snapshots kept per track (a little over the window).
const SNAPSHOTS: usize = 8;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; a ring of counters stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Cumulative counters of one received track at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Snapshot {
    /// Server time, µs.
    pub at: i64,
    /// Packets judged lost: not arrived, even repaired, [`SETTLE_MICROS`] after a later one
    /// came.
    pub lost: u64,
    /// Payload and header bytes received.
    pub bytes: u64,
    /// Packets the sequence numbers say were sent.
    pub expected: u64,
    /// Packets that came after a later one: repaired by a retransmission, or reordered.
    pub late: u64,
}

/// Counts one track's packets; owned by its read loop.
#[derive(Debug)]
pub struct Meter {
    seq: Unwrapper,
    first: Option<i64>,
    highest: i64,
    lost: u64,
    bytes: u64,
    late: u64,
    arrived: Arrived,
    /// Gaps in the sequence not judged yet: (first missing, end exclusive, when seen).
    gaps: VecDeque<(i64, i64, i64)>,
    last_snapshot: Option<i64>,
}

/// A missing packet is judged lost this long after a later one came: a repair on its way
/// (NACK, then RTX: a round trip or two) is not a loss.
pub const SETTLE_MICROS: i64 = 1_000_000;
/// Gaps waiting to be judged, at most (a burst of loss beyond it is judged at once).
const MAX_GAPS: usize = 256;

/// Sequence numbers behind the highest that the meter still tells apart (a copy from a
/// first arrival); older ones are ignored. Chrome's repairs and probes resend from the last
/// second or so, well within this at any usable rate.
const HISTORY: i64 = 1024;

/// Which of the last [`HISTORY`] sequence numbers arrived: a bit ring.
#[derive(Debug, Default)]
struct Arrived([u64; (HISTORY / 64) as usize]);

impl Arrived {
    fn slot(ext: i64) -> (usize, u64) {
        let i = ext.rem_euclid(HISTORY);
        ((i / 64) as usize, 1 << (i % 64))
    }
    fn get(&self, ext: i64) -> bool {
        let (w, b) = Self::slot(ext);
        self.0[w] & b != 0
    }
    fn set(&mut self, ext: i64) {
        let (w, b) = Self::slot(ext);
        self.0[w] |= b;
    }
    /// The highest moves from `from` to `to`: the numbers in between have not arrived yet.
    fn advance(&mut self, from: i64, to: i64) {
        if to - from >= HISTORY {
            self.0 = Default::default();
            return;
        }
        for ext in from + 1..=to {
            let (w, b) = Self::slot(ext);
            self.0[w] &= !b;
        }
    }
}

impl Default for Meter {
    fn default() -> Self {
        Self {
            seq: Unwrapper::sequence_numbers(),
            first: None,
            highest: 0,
            lost: 0,
            bytes: 0,
            late: 0,
            arrived: Arrived::default(),
            gaps: VecDeque::new(),
            last_snapshot: None,
        }
    }
}

impl Meter {
    /// A packet arrived at `at`; returns a snapshot when one is due.
    pub fn on_packet(&mut self, seq: u16, bytes: usize, at: i64) -> Option<Snapshot> {
        let ext = self.seq.unwrap(u32::from(seq));
        // Every byte used the uplink, a copy too.
        self.bytes += bytes as u64;
        match self.first {
            None => {
                self.first = Some(ext);
                self.highest = ext;
                self.arrived.set(ext);
            }
            Some(_) if ext > self.highest => {
                // The ring's slots of the numbers now too old are reused: judge their gaps
                // while they can still be read.
                while self.gaps.front().is_some_and(|g| g.0 <= ext - HISTORY) {
                    self.judge_front();
                }
                if ext - self.highest > HISTORY {
                    // A jump beyond what the ring holds: its missing numbers cannot be waited for.
                    self.lost += (ext - self.highest - 1) as u64;
                } else if ext > self.highest + 1 {
                    self.gaps.push_back((self.highest + 1, ext, at));
                    if self.gaps.len() > MAX_GAPS {
                        self.judge_front();
                    }
                }
                self.arrived.advance(self.highest, ext);
                self.arrived.set(ext);
                self.highest = ext;
            }
            // Too old to tell a repair from a copy: counted as neither.
            Some(_) if self.highest - ext >= HISTORY => {}
            Some(first) => {
                // A copy (Chrome probes the bandwidth with resent packets) is not an arrival:
                // counted, it would hide a packet that never came.
                if !self.arrived.get(ext) {
                    self.arrived.set(ext);
                    self.late += 1;
                    // A packet from before the first (reordered) counts as expected too.
                    if ext < first {
                        self.first = Some(ext);
                    }
                }
            }
        }
        if self.last_snapshot.is_some_and(|t| at - t < SNAPSHOT_MICROS) {
            return None;
        }
        while self.gaps.front().is_some_and(|g| at - g.2 >= SETTLE_MICROS) {
            self.judge_front();
        }
        self.last_snapshot = Some(at);
        Some(self.snapshot(at))
    }

    /// Counts what of the oldest gap never arrived.
    fn judge_front(&mut self) {
        if let Some((from, to, _)) = self.gaps.pop_front() {
            self.lost += (from..to).filter(|&x| !self.arrived.get(x)).count() as u64;
        }
    }

    fn snapshot(&self, at: i64) -> Snapshot {
        let expected = self
            .first
            .map(|f| (self.highest - f + 1).max(0) as u64)
            .unwrap_or(0);
        Snapshot {
            at,
            lost: self.lost,
            bytes: self.bytes,
            expected,
            late: self.late,
        }
    }
}

/// What the server received from a track recently.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Reception {
    /// Bit rate over the window, kbit/s (0 when nothing came).
    pub kbps: u32,
    /// Share of the packets sent in the window that never arrived, even repaired, %: judged
    /// [`SETTLE_MICROS`] late, so it trails the rate by about a second.
    pub loss_pct: f32,
    /// Share that arrived late — mostly what the network lost and a retransmission repaired
    /// (reordering counts too), %: the network's loss that the picture did not show.
    pub late_pct: f32,
    /// How long ago the last snapshot (at most half a second after the last packet), ms.
    pub quiet_ms: i64,
}

/// One track's recent snapshots, shared by its read loop and the queries.
#[derive(Debug, Default)]
pub struct UplinkLog {
    snapshots: Mutex<VecDeque<Snapshot>>,
}

impl UplinkLog {
    /// Keeps a snapshot (the read loop's).
    pub fn push(&self, s: Snapshot) {
        let mut q = lock(&self.snapshots);
        if q.len() == SNAPSHOTS {
            q.pop_front();
        }
        q.push_back(s);
    }

    /// The reception as of `now`, `None` before two snapshots exist.
    pub fn reception(&self, now: i64) -> Option<Reception> {
        let q = lock(&self.snapshots);
        let last = *q.back()?;
        let quiet_ms = ((now - last.at) / 1000).max(0);
        // Nothing for longer than a window: nothing is arriving.
        if now - last.at > WINDOW_MICROS {
            return Some(Reception {
                kbps: 0,
                loss_pct: 0.0,
                late_pct: 0.0,
                quiet_ms,
            });
        }
        // The oldest snapshot still within the window (at least two snapshots apart).
        let from = q
            .iter()
            .find(|s| last.at - s.at <= WINDOW_MICROS && s.at < last.at)
            .copied()?;
        // While packets flow, the bytes since the last snapshot are not counted yet, so the
        // span ends there; once they stop, it runs on to now and the rate falls.
        let end = if now - last.at > QUIET_MICROS {
            now
        } else {
            last.at
        };
        let span = (end - from.at).max(1);
        let kbps = ((last.bytes - from.bytes) as i64 * 8 * 1000 / span) as u32;
        let expected = last.expected.saturating_sub(from.expected);
        let lost = last.lost.saturating_sub(from.lost);
        let late = last.late.saturating_sub(from.late);
        // Percent of the expected packets, to a tenth.
        let pct = |n: u64| {
            if expected == 0 {
                0.0
            } else {
                ((n as f64 * 1000.0 / expected as f64).round() / 10.0) as f32
            }
        };
        Some(Reception {
            kbps,
            loss_pct: pct(lost),
            late_pct: pct(late),
            quiet_ms,
        })
    }
}

/// One received track's reception, as [`crate::MediaHub::uplinks`] reports it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Uplink {
    /// Whose track.
    pub participant: Uuid,
    /// `business_camera`, `business_microphone` or `inspector_voice`.
    pub feed: &'static str,
    /// What arrived.
    #[serde(flatten)]
    pub reception: Reception,
}

/// The received tracks' logs by (inspection, participant, feed). Weak: a log lives as long as
/// its read loop; dead entries are swept on every insert.
#[derive(Default)]
pub(crate) struct UplinkRegistry {
    logs: Mutex<HashMap<(Uuid, Uuid, &'static str), Weak<UplinkLog>>>,
}

impl UplinkRegistry {
    /// A new received track of the participant's `feed`: it replaces the previous one.
    pub(crate) fn register(
        &self,
        inspection: Uuid,
        participant: Uuid,
        feed: &'static str,
    ) -> Arc<UplinkLog> {
        let log = Arc::new(UplinkLog::default());
        let mut logs = lock(&self.logs);
        logs.retain(|_, w| w.strong_count() > 0);
        logs.insert((inspection, participant, feed), Arc::downgrade(&log));
        log
    }

    /// Every live received track of the inspection that has been measured.
    pub(crate) fn of(&self, inspection: Uuid, now: i64) -> Vec<Uplink> {
        let logs: Vec<_> = lock(&self.logs)
            .iter()
            .filter(|(k, _)| k.0 == inspection)
            .filter_map(|(k, w)| Some((k.1, k.2, w.upgrade()?)))
            .collect();
        let mut out: Vec<_> = logs
            .into_iter()
            .filter_map(|(participant, feed, log)| {
                Some(Uplink {
                    participant,
                    feed,
                    reception: log.reception(now)?,
                })
            })
            .collect();
        out.sort_by_key(|u| (u.participant, u.feed));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 100 packets/s of 1,000 bytes for `secs`, dropping every `drop_every`-th (0: none).
    fn feed(
        m: &mut Meter,
        log: &UplinkLog,
        t0: i64,
        secs: i64,
        seq0: u16,
        drop_every: u16,
    ) -> (i64, u16) {
        let mut seq = seq0;
        let mut at = t0;
        for _ in 0..secs * 100 {
            if drop_every == 0 || seq % drop_every != 0 {
                if let Some(s) = m.on_packet(seq, 1000, at) {
                    log.push(s);
                }
            }
            seq = seq.wrapping_add(1);
            at += 10_000;
        }
        (at, seq)
    }

    #[test]
    fn rate_and_loss_over_the_window_across_a_sequence_wrap() {
        let (mut m, log) = (Meter::default(), UplinkLog::default());
        assert_eq!(log.reception(0), None, "nothing measured yet");
        // 800 kbit/s without loss, across the wrap at 65535.
        let (at, seq) = feed(&mut m, &log, 0, 3, 65_400, 0);
        let r = log.reception(at).expect("measured");
        assert!((790..=810).contains(&r.kbps), "{r:?}");
        assert_eq!(r.loss_pct, 0.0);
        // Asked between two snapshots: the same rate (not diluted by bytes not counted yet).
        let between = log.reception(at + 400_000).expect("measured");
        assert_eq!(between.kbps, r.kbps);
        // Then 5 % lost: the window forgets the clean seconds (a loss is judged a second
        // late, so the window's loss is of the 2 s before that).
        let (at, _) = feed(&mut m, &log, at, 4, seq, 20);
        let r = log.reception(at).expect("measured");
        assert!((4.0..=6.0).contains(&r.loss_pct), "{r:?}");
        assert!((740..=780).contains(&r.kbps), "{r:?}");
        assert!(r.quiet_ms <= 500, "{r:?}");
        // Then nothing: the last snapshot ages, and past the window the rate is zero.
        let r = log.reception(at + 3_000_000).expect("measured");
        assert_eq!((r.kbps, r.loss_pct, r.late_pct), (0, 0.0, 0.0));
        assert!(r.quiet_ms >= 3_000, "{r:?}");
    }

    #[test]
    fn repairs_and_reordering_are_not_loss() {
        let (mut m, log) = (Meter::default(), UplinkLog::default());
        let mut at = 0;
        // Every tenth packet comes late (after the next one) and one is received twice.
        for i in 0u16..400 {
            let seq = if i % 10 == 1 {
                i - 1
            } else if i % 10 == 0 {
                i + 1
            } else {
                i
            };
            for _ in 0..if i == 200 { 2 } else { 1 } {
                if let Some(s) = m.on_packet(seq, 500, at) {
                    log.push(s);
                }
            }
            at += 10_000;
        }
        let r = log.reception(at).expect("measured");
        assert_eq!(r.loss_pct, 0.0);
        // One in ten came after its successor (and the duplicate after later ones).
        assert!((9.0..=11.0).contains(&r.late_pct), "{r:?}");
    }

    #[test]
    fn a_repair_on_its_way_is_not_a_loss() {
        let (mut m, log) = (Meter::default(), UplinkLog::default());
        let mut at = 0;
        let mut push = |m: &mut Meter, seq: u16, at: i64| {
            if let Some(s) = m.on_packet(seq, 1000, at) {
                log.push(s);
            }
        };
        // 3 s at 100 packets/s; packet 250 is missing until its repair 300 ms later, and
        // the question is asked in between.
        for seq in 0u16..300 {
            if seq != 250 {
                push(&mut m, seq, at);
            }
            at += 10_000;
        }
        assert_eq!(
            log.reception(at).expect("measured").loss_pct,
            0.0,
            "not judged yet"
        );
        push(&mut m, 250, at);
        for seq in 300u16..500 {
            push(&mut m, seq, at);
            at += 10_000;
        }
        let r = log.reception(at).expect("measured");
        assert_eq!((r.loss_pct, r.late_pct > 0.0), (0.0, true), "{r:?}");
    }

    #[test]
    fn copies_do_not_hide_a_loss() {
        let (mut m, log) = (Meter::default(), UplinkLog::default());
        let mut at = 0;
        // 5 % never arrive; every tenth is sent again 20 packets later (a probe's copy).
        for i in 0u16..600 {
            if i % 20 != 7 {
                for p in [Some(i), (i >= 20 && (i - 20) % 10 == 0).then(|| i - 20)]
                    .into_iter()
                    .flatten()
                {
                    if let Some(s) = m.on_packet(p, 500, at) {
                        log.push(s);
                    }
                }
            }
            at += 10_000;
        }
        let r = log.reception(at).expect("measured");
        assert!((4.0..=6.0).contains(&r.loss_pct), "{r:?}");
        assert_eq!(r.late_pct, 0.0, "a copy is not a repair: {r:?}");
    }

    #[test]
    fn the_registry_forgets_ended_tracks() {
        let reg = UplinkRegistry::default();
        let (i, p) = (Uuid::new_v4(), Uuid::new_v4());
        let log = reg.register(i, p, "business_camera");
        let mut m = Meter::default();
        for n in 0..200u16 {
            if let Some(s) = m.on_packet(n, 100, i64::from(n) * 10_000) {
                log.push(s);
            }
        }
        let got = reg.of(i, 2_000_000);
        assert_eq!(got.len(), 1);
        assert_eq!((got[0].participant, got[0].feed), (p, "business_camera"));
        assert!(reg.of(Uuid::new_v4(), 2_000_000).is_empty());
        drop(log);
        assert!(
            reg.of(i, 2_000_000).is_empty(),
            "an ended track is not reported"
        );
    }
}
