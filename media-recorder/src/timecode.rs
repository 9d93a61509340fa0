//! Mapping of RTP timestamps to server wall-clock time, without drift.
//!
//! A track's RTP clock runs on the sender; marks are server timestamps. For every track the
//! mapping is built from all its packets: the RTP timestamp is first turned into sender time
//! (through the RTCP sender reports' NTP ↔ RTP pairs when there are any, so the sender's real
//! clock rate is used; else the nominal clock rate), then shifted by the sender→server offset.
//! The offset is the lower envelope of `arrival − sender time` over windows of
//! [`OFFSET_WINDOW_MICROS`] (network jitter only ever adds delay, so the least-delayed packet of
//! a window is the best estimate), interpolated between windows so a slow drift between the
//! clocks over an hour is followed instead of accumulated.

/// Width of the windows over which the least network delay is taken.
pub const OFFSET_WINDOW_MICROS: i64 = 10_000_000;

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Extends wrapping RTP counters (32-bit timestamps, 16-bit sequence numbers) to i64, assuming
/// consecutive values are less than half the range apart.
#[derive(Debug, Clone)]
pub struct Unwrapper {
    bits: u32,
    last: Option<i64>,
}

impl Unwrapper {
    /// Unwrapper for 32-bit RTP timestamps.
    pub fn timestamps() -> Self {
        Self {
            bits: 32,
            last: None,
        }
    }

    /// Unwrapper for 16-bit RTP sequence numbers.
    pub fn sequence_numbers() -> Self {
        Self {
            bits: 16,
            last: None,
        }
    }

    /// Extends `value` relative to the previous value (which it then becomes, when later).
    pub fn unwrap(&mut self, value: u32) -> i64 {
        let range = 1i64 << self.bits;
        let value = value as i64 & (range - 1);
        let ext = match self.last {
            None => value,
            Some(last) => {
                let base = last - last.rem_euclid(range);
                // Pick the candidate nearest to the previous value.
                [base - range + value, base + value, base + range + value]
                    .into_iter()
                    .min_by_key(|c| (c - last).abs())
                    .unwrap_or(base + value)
            }
        };
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }

    /// Extends `value` relative to the previous value without updating the state.
    pub fn peek(&self, value: u32) -> i64 {
        self.clone().unwrap(value)
    }
}

/// Converts a 64-bit NTP timestamp to microseconds since the Unix epoch.
pub fn ntp_to_unix_micros(ntp: u64) -> i64 {
    let secs = (ntp >> 32) as i64 - NTP_UNIX_OFFSET_SECS as i64;
    let frac = ((ntp & 0xFFFF_FFFF) * 1_000_000) >> 32;
    secs * 1_000_000 + frac as i64
}

/// Converts microseconds since the Unix epoch to a 64-bit NTP timestamp.
pub fn unix_micros_to_ntp(micros: i64) -> u64 {
    let secs = micros.div_euclid(1_000_000) as u64 + NTP_UNIX_OFFSET_SECS;
    let frac = ((micros.rem_euclid(1_000_000) as u64) << 32) / 1_000_000;
    (secs << 32) | frac
}

/// Collects one track's observations, then builds its [`ClockMap`].
#[derive(Debug, Clone)]
pub struct ClockMapBuilder {
    clock_rate: u32,
    unwrapper: Unwrapper,
    packets: Vec<(i64, i64)>,
    reports: Vec<(i64, i64)>,
}

impl ClockMapBuilder {
    /// Starts a builder for a track with the given RTP clock rate.
    pub fn new(clock_rate: u32) -> Self {
        Self {
            clock_rate: clock_rate.max(1),
            unwrapper: Unwrapper::timestamps(),
            packets: Vec::new(),
            reports: Vec::new(),
        }
    }

    /// Records a packet's RTP timestamp and arrival time; returns the extended timestamp.
    /// Observations must be fed in arrival order (the journal's order).
    pub fn packet(&mut self, rtp_time: u32, arrival_micros: i64) -> i64 {
        let ext = self.unwrapper.unwrap(rtp_time);
        self.packets.push((ext, arrival_micros));
        ext
    }

    /// Records a sender report.
    pub fn sender_report(&mut self, ntp_time: u64, rtp_time: u32) {
        let ext = if self.packets.is_empty() {
            // Before any packet the report itself anchors the unwrapping.
            self.unwrapper.unwrap(rtp_time)
        } else {
            self.unwrapper.peek(rtp_time)
        };
        self.reports.push((ext, ntp_to_unix_micros(ntp_time)));
    }

    /// Number of packets observed.
    pub fn packet_count(&self) -> usize {
        self.packets.len()
    }

    /// Builds the mapping; `None` if no packet was observed.
    pub fn build(mut self) -> Option<ClockMap> {
        let first_ts = self.packets.iter().map(|p| p.0).min()?;
        let rate = self.clock_rate as f64;
        // Sender reports sorted by RTP time, keeping only those that move both clocks forward
        // at a plausible rate (within 1 % of nominal); others are ignored as bogus.
        self.reports.sort();
        let mut sender: Vec<(i64, f64)> = Vec::new();
        for &(ts, ntp_us) in &self.reports {
            if let Some(&(pts, pus)) = sender.last() {
                let dts = (ts - pts) as f64;
                let dus = ntp_us as f64 - pus;
                if dts <= 0.0 || dus <= 0.0 {
                    continue;
                }
                let measured = dts / dus * 1e6;
                if (measured / rate - 1.0).abs() > 0.01 {
                    continue;
                }
            }
            sender.push((ts, ntp_us as f64));
        }
        if sender.is_empty() {
            sender.push((first_ts, 0.0));
        }
        let sender_map = PiecewiseLinear::through(
            sender.into_iter().map(|(ts, us)| (ts as f64, us)).collect(),
            1e6 / rate,
        );

        // Lower envelope of arrival − sender time per window of sender time.
        let mut windows: Vec<(f64, f64)> = Vec::new();
        let mut current: Option<(i64, f64, f64)> = None; // (window index, sender time, offset)
        let mut samples: Vec<(f64, f64)> = self
            .packets
            .iter()
            .map(|&(ts, arrival)| {
                let s = sender_map.eval(ts as f64);
                (s, arrival as f64 - s)
            })
            .collect();
        samples.sort_by(|a, b| a.0.total_cmp(&b.0));
        let origin = samples[0].0;
        for (s, d) in samples {
            let w = ((s - origin) / OFFSET_WINDOW_MICROS as f64).floor() as i64;
            match current {
                Some((cw, _, cd)) if cw == w => {
                    if d < cd {
                        current = Some((w, s, d));
                    }
                }
                _ => {
                    if let Some((_, cs, cd)) = current {
                        windows.push((cs, cd));
                    }
                    current = Some((w, s, d));
                }
            }
        }
        if let Some((_, cs, cd)) = current {
            windows.push((cs, cd));
        }
        let offset = PiecewiseLinear::through(windows, 0.0);
        Some(ClockMap {
            sender: sender_map,
            offset,
            first_ts,
        })
    }
}

/// The finished mapping of a track's extended RTP timestamps to server wall-clock time.
#[derive(Debug, Clone)]
pub struct ClockMap {
    sender: PiecewiseLinear,
    offset: PiecewiseLinear,
    first_ts: i64,
}

impl ClockMap {
    /// Server wall-clock time (µs since the Unix epoch) of an extended RTP timestamp.
    pub fn wall_micros(&self, ext_ts: i64) -> i64 {
        let s = self.sender.eval(ext_ts as f64);
        (s + self.offset.eval(s)).round() as i64
    }

    /// Wall-clock time of the track's first media sample.
    pub fn start_micros(&self) -> i64 {
        self.wall_micros(self.first_ts)
    }
}

/// A piecewise-linear function through sorted points; beyond the ends it continues with the
/// nearest segment's slope, or `default_slope` when there is a single point (a slope of 0
/// holds the value constant).
#[derive(Debug, Clone)]
struct PiecewiseLinear {
    points: Vec<(f64, f64)>,
    default_slope: f64,
}

impl PiecewiseLinear {
    fn through(points: Vec<(f64, f64)>, default_slope: f64) -> Self {
        Self {
            points,
            default_slope,
        }
    }

    fn eval(&self, x: f64) -> f64 {
        let p = &self.points;
        match p.len() {
            0 => 0.0,
            1 => p[0].1 + (x - p[0].0) * self.default_slope,
            n => {
                // Index of the segment containing x (clamped to the end segments).
                let i = p.partition_point(|q| q.0 <= x).clamp(1, n - 1);
                let (x0, y0) = p[i - 1];
                let (x1, y1) = p[i];
                if self.default_slope == 0.0 && (x < p[0].0 || x > p[n - 1].0) {
                    // Offsets are held constant beyond the observed range.
                    return if x < p[0].0 { p[0].1 } else { p[n - 1].1 };
                }
                y0 + (x - x0) * (y1 - y0) / (x1 - x0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwraps_across_wrap_and_reordering() {
        let mut u = Unwrapper::timestamps();
        assert_eq!(u.unwrap(u32::MAX - 10), (u32::MAX - 10) as i64);
        assert_eq!(u.unwrap(5), (1i64 << 32) + 5);
        // A late packet from before the wrap stays before it.
        assert_eq!(u.unwrap(u32::MAX - 3), (u32::MAX - 3) as i64);
        assert_eq!(u.unwrap(100), (1i64 << 32) + 100);
        let mut s = Unwrapper::sequence_numbers();
        assert_eq!(s.unwrap(65535), 65535);
        assert_eq!(s.unwrap(0), 65536);
    }

    #[test]
    fn ntp_round_trip() {
        let us = 1_700_000_000_123_456;
        assert!((ntp_to_unix_micros(unix_micros_to_ntp(us)) - us).abs() <= 1);
    }

    /// A sender whose RTP clock runs 100 ppm fast for an hour, with jittery arrivals: the
    /// mapping stays within a millisecond of the true capture time, with or without SRs.
    #[test]
    fn follows_drift_over_an_hour() {
        for with_sr in [false, true] {
            let start = 1_700_000_000_000_000i64;
            let rate = 90_000.0 * 1.0001;
            let mut b = ClockMapBuilder::new(90_000);
            let mut truth = Vec::new();
            let ts0 = u32::MAX - 90_000 * 10; // Wraps 10 s in.
            let mut seed = 7u64;
            for i in 0..(3600 * 30) {
                let t = i as f64 / 30.0;
                let ts = (ts0 as u64 + (t * rate) as u64) as u32;
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                let jitter = (seed >> 33) % 80_000; // 0..80 ms extra delay.
                let capture = start + (t * 1e6) as i64;
                let arrival = capture + 20_000 + jitter as i64;
                if with_sr && i % 150 == 0 {
                    b.sender_report(unix_micros_to_ntp(capture), ts);
                }
                let ext = b.packet(ts, arrival);
                truth.push((ext, capture + 20_000));
            }
            let map = b.build().expect("packets");
            let worst = truth
                .iter()
                .map(|&(ext, want)| (map.wall_micros(ext) - want).abs())
                .max()
                .expect("non-empty");
            assert!(worst < 5_000, "with_sr={with_sr} worst error {worst} µs");
        }
    }
}
