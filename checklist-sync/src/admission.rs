//! Admission per participant, not per socket: every socket of one participant draws from one
//! token bucket, and a participant has at most a configured number of sockets. Otherwise
//! twenty sockets of one guest get twenty times the rate. Time is an input (µs, monotonic).

use std::collections::HashMap;

use uuid::Uuid;

use crate::ratelimit::{RateLimiter, Verdict};

/// A participant of an inspection.
pub type Key = (Uuid, Uuid);

/// A participant without sockets keeps its bucket this long, so closing and reopening sockets
/// does not refill it.
const KEEP_IDLE_US: u64 = 60_000_000;

/// Admission limits.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AdmissionConfig {
    /// Messages per second per participant.
    pub rate_per_sec: f64,
    /// Burst per participant.
    pub burst: f64,
    /// Dropped messages within `flood_window_us` after which a socket is closed.
    pub flood_drops: u32,
    /// Window of flood detection, µs.
    pub flood_window_us: u64,
    /// Sockets per participant.
    pub max_sockets: usize,
}

#[derive(Debug)]
struct Slot {
    sockets: usize,
    limiter: RateLimiter,
    last_us: u64,
}

/// Sockets and token buckets of every participant with sockets (or recently with sockets).
#[derive(Debug)]
pub struct Admission {
    config: AdmissionConfig,
    slots: HashMap<Key, Slot>,
    last_sweep_us: u64,
}

impl Admission {
    /// No participants yet.
    pub fn new(config: AdmissionConfig) -> Self {
        Self {
            config,
            slots: HashMap::new(),
            last_sweep_us: 0,
        }
    }

    /// A new socket of `key` at `now_us`: false when the participant already has the most
    /// sockets allowed (nothing changes then).
    pub fn enter(&mut self, key: Key, now_us: u64) -> bool {
        self.sweep(now_us);
        let c = self.config;
        let slot = self.slots.entry(key).or_insert_with(|| Slot {
            sockets: 0,
            limiter: RateLimiter::new(
                c.rate_per_sec,
                c.burst,
                c.flood_drops,
                c.flood_window_us,
                now_us,
            ),
            last_us: now_us,
        });
        if slot.sockets >= c.max_sockets {
            return false;
        }
        slot.sockets += 1;
        slot.last_us = now_us;
        true
    }

    /// A socket of `key` closed.
    pub fn leave(&mut self, key: Key, now_us: u64) {
        if let Some(slot) = self.slots.get_mut(&key) {
            slot.sockets = slot.sockets.saturating_sub(1);
            slot.last_us = now_us;
        }
    }

    /// Judges one message of `key` at `now_us`, against the participant's shared bucket.
    pub fn check(&mut self, key: Key, now_us: u64) -> Verdict {
        match self.slots.get_mut(&key) {
            Some(slot) => {
                slot.last_us = now_us;
                slot.limiter.check(now_us)
            }
            // Only sockets that entered send messages.
            None => Verdict::Drop,
        }
    }

    /// Participants known (with sockets or a bucket kept).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True when no participant is known.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn sweep(&mut self, now_us: u64) {
        if now_us.saturating_sub(self.last_sweep_us) < KEEP_IDLE_US / 6 {
            return;
        }
        self.last_sweep_us = now_us;
        self.slots
            .retain(|_, s| s.sockets > 0 || now_us.saturating_sub(s.last_us) < KEEP_IDLE_US);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AdmissionConfig {
        AdmissionConfig {
            rate_per_sec: 10.0,
            burst: 5.0,
            flood_drops: 100,
            flood_window_us: 10_000_000,
            max_sockets: 3,
        }
    }

    #[test]
    fn sockets_are_capped_per_participant() {
        let mut a = Admission::new(config());
        let me = (Uuid::new_v4(), Uuid::new_v4());
        let other = (me.0, Uuid::new_v4());
        assert!(a.enter(me, 0) && a.enter(me, 0) && a.enter(me, 0));
        assert!(!a.enter(me, 0), "a fourth socket is refused");
        assert!(a.enter(other, 0), "other participants are not affected");
        a.leave(me, 1);
        assert!(a.enter(me, 2), "a closed socket frees its place");
    }

    #[test]
    fn all_sockets_share_one_bucket() {
        let mut a = Admission::new(config());
        let me = (Uuid::new_v4(), Uuid::new_v4());
        assert!(a.enter(me, 0) && a.enter(me, 0) && a.enter(me, 0));
        // Three sockets together get one burst of 5, not three.
        let allowed = (0..15).filter(|_| a.check(me, 0) == Verdict::Allow).count();
        assert_eq!(allowed, 5);
        // Reconnecting does not refill the bucket.
        for _ in 0..3 {
            a.leave(me, 1);
        }
        assert!(a.enter(me, 2));
        assert_eq!(a.check(me, 2), Verdict::Drop);
        // Refilled at 10 per second.
        assert_eq!(a.check(me, 200_000), Verdict::Allow);
    }

    #[test]
    fn idle_participants_are_forgotten() {
        let mut a = Admission::new(config());
        let me = (Uuid::new_v4(), Uuid::new_v4());
        assert!(a.enter(me, 0));
        a.leave(me, 0);
        assert_eq!(a.len(), 1);
        assert!(a.enter((me.0, Uuid::new_v4()), KEEP_IDLE_US + 1));
        assert_eq!(a.len(), 1, "the idle participant's bucket was dropped");
    }
}
