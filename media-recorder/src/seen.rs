//! Which video frames each subscriber was sent, for placing a mark on the frame the marking
//! participant saw (issue 23).
//!
//! A subscriber's video forwarder writes, per frame, the RTP timestamp it sent (after its own
//! rewriting) beside the server's time of that frame: the frame's capture time on the
//! publisher's RTP clock, shifted to server time by the least delay seen recently (the same
//! mapping the recording's timeline uses, see `timecode`). When a mark names the RTP timestamp
//! of the frame the browser presented, the server looks it up here: only a frame that was
//! forwarded to that participant, within the recent window, can be found. Memory is bounded:
//! at most [`SEEN_FRAMES`] frames per video output, one output per participant.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, Weak};

use uuid::Uuid;

use crate::timecode::Unwrapper;

/// Frames remembered per subscriber's video output: 30 s at 30 frames per second.
pub const SEEN_FRAMES: usize = 900;

/// Window of the least-delay estimate of a source's clock offset, µs (two blocks of it).
const OFFSET_BLOCK_MICROS: i64 = 5_000_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned lock means a panic elsewhere; a ring of numbers stays consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A live estimate of the server time of a source's frames: RTP time (nominal clock rate)
/// plus the least `arrival − RTP time` over the last 5–10 s (network delay only adds, so the
/// least-delayed packet is the best estimate; blocks let a drift be followed).
#[derive(Debug, Clone)]
pub struct FrameClock {
    clock_rate: f64,
    unwrapper: Unwrapper,
    block_start: Option<i64>,
    current: f64,
    previous: f64,
}

impl FrameClock {
    /// A clock for a track with the given RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: f64::from(clock_rate.max(1)),
            unwrapper: Unwrapper::timestamps(),
            block_start: None,
            current: f64::INFINITY,
            previous: f64::INFINITY,
        }
    }

    /// Server time (µs) of the frame of RTP timestamp `ts`, one of whose packets arrived at
    /// `arrival_micros`. Fed in arrival order.
    pub fn frame_micros(&mut self, ts: u32, arrival_micros: i64) -> i64 {
        let sender = self.unwrapper.unwrap(ts) as f64 * 1e6 / self.clock_rate;
        let delay = arrival_micros as f64 - sender;
        match self.block_start {
            Some(s) if arrival_micros - s < OFFSET_BLOCK_MICROS => {}
            _ => {
                self.block_start = Some(arrival_micros);
                self.previous = self.current;
                self.current = f64::INFINITY;
            }
        }
        self.current = self.current.min(delay);
        (sender + self.current.min(self.previous)).round() as i64
    }
}

/// One subscriber output's recently forwarded frames: (RTP timestamp sent, server time).
#[derive(Debug, Default)]
pub(crate) struct SeenLog {
    frames: Mutex<VecDeque<(u32, i64)>>,
}

impl SeenLog {
    /// A packet of the frame `ts` was sent; the first packet of each frame is kept.
    pub(crate) fn record(&self, ts: u32, frame_micros: i64) {
        let mut f = lock(&self.frames);
        if f.back().is_some_and(|b| b.0 == ts) {
            return;
        }
        if f.len() == SEEN_FRAMES {
            f.pop_front();
        }
        f.push_back((ts, frame_micros));
    }

    /// The server time of the frame sent with timestamp `ts`, if it is still remembered.
    pub(crate) fn lookup(&self, ts: u32) -> Option<i64> {
        lock(&self.frames)
            .iter()
            .rev()
            .find(|f| f.0 == ts)
            .map(|f| f.1)
    }
}

/// The video outputs' logs by (inspection, participant). Weak: a log lives as long as its
/// forwarder; dead entries are swept on every insert, so the map holds live outputs only.
#[derive(Default)]
pub(crate) struct SeenRegistry {
    logs: Mutex<HashMap<(Uuid, Uuid), Weak<SeenLog>>>,
}

impl SeenRegistry {
    /// A new video output for the participant: its log replaces the previous one's (a
    /// renegotiated or reconnected output starts a new stream of timestamps).
    pub(crate) fn register(&self, inspection: Uuid, participant: Uuid) -> Arc<SeenLog> {
        let log = Arc::new(SeenLog::default());
        let mut logs = lock(&self.logs);
        logs.retain(|_, w| w.strong_count() > 0);
        logs.insert((inspection, participant), Arc::downgrade(&log));
        log
    }

    /// The server time of the frame the participant was sent with RTP timestamp `ts`.
    pub(crate) fn lookup(&self, inspection: Uuid, participant: Uuid, ts: u32) -> Option<i64> {
        let log = lock(&self.logs)
            .get(&(inspection, participant))
            .and_then(Weak::upgrade)?;
        log.lookup(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_clock_takes_the_least_delay() {
        let mut c = FrameClock::new(90_000);
        // Frames 33 ms apart; the second arrives 40 ms late, the third on time.
        let t0 = 1_000_000_000;
        assert_eq!(c.frame_micros(0, t0 + 10_000), t0 + 10_000);
        assert_eq!(
            c.frame_micros(3000, t0 + 33_333 + 50_000),
            t0 + 33_333 + 10_000
        );
        assert_eq!(
            c.frame_micros(6000, t0 + 66_667 + 9_000),
            t0 + 66_667 + 9_000
        );
    }

    #[test]
    fn logs_are_bounded_and_per_participant() {
        let reg = SeenRegistry::default();
        let (i, p, q) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let log = reg.register(i, p);
        for n in 0..(SEEN_FRAMES as u32 + 10) {
            log.record(n * 3000, i64::from(n));
            log.record(n * 3000, -1); // a later packet of the same frame
        }
        assert_eq!(lock(&log.frames).len(), SEEN_FRAMES);
        assert_eq!(reg.lookup(i, p, 0), None, "forgotten");
        assert_eq!(reg.lookup(i, p, 20 * 3000), Some(20));
        assert_eq!(reg.lookup(i, q, 20 * 3000), None, "never sent to q");
        drop(log);
        assert_eq!(reg.lookup(i, p, 20 * 3000), None, "output gone");
        let _again = reg.register(i, q);
        assert_eq!(lock(&reg.logs).len(), 1, "dead entries swept");
    }
}
