//! Per-connection token bucket with flood detection; time is an input (µs, monotonic).

/// What to do with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Process it.
    Allow,
    /// Drop it and answer `rate_limited`.
    Drop,
    /// Drop it, answer `flood` and close the socket.
    Flood,
}

/// Token bucket: `rate` messages per second, bursts of `burst`; more than `flood_drops`
/// dropped messages within `flood_window_us` is flooding.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last_us: u64,
    flood_drops: u32,
    flood_window_us: u64,
    window_start_us: u64,
    drops_in_window: u32,
}

impl RateLimiter {
    /// A full bucket at time `now_us`.
    pub fn new(rate: f64, burst: f64, flood_drops: u32, flood_window_us: u64, now_us: u64) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last_us: now_us,
            flood_drops,
            flood_window_us,
            window_start_us: now_us,
            drops_in_window: 0,
        }
    }

    /// Judges one message arriving at `now_us`.
    pub fn check(&mut self, now_us: u64) -> Verdict {
        let elapsed = now_us.saturating_sub(self.last_us);
        self.last_us = self.last_us.max(now_us);
        self.tokens = (self.tokens + elapsed as f64 * self.rate / 1e6).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Verdict::Allow;
        }
        if now_us.saturating_sub(self.window_start_us) > self.flood_window_us {
            self.window_start_us = now_us;
            self.drops_in_window = 0;
        }
        self.drops_in_window += 1;
        if self.drops_in_window > self.flood_drops {
            Verdict::Flood
        } else {
            Verdict::Drop
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_then_limits_then_refills() {
        let mut r = RateLimiter::new(10.0, 5.0, 3, 10_000_000, 0);
        for _ in 0..5 {
            assert_eq!(r.check(0), Verdict::Allow);
        }
        assert_eq!(r.check(0), Verdict::Drop);
        assert_eq!(r.check(100_000), Verdict::Allow);
        assert_eq!(r.check(100_000), Verdict::Drop);
        assert_eq!(r.check(100_000), Verdict::Drop);
        assert_eq!(r.check(100_000), Verdict::Flood);
    }
}
