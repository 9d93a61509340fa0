//! What the recorder needs to know of Opus packets without decoding them (RFC 6716 §3.1):
//! a packet's duration from its table-of-contents byte, and a packet of silence to fill the
//! time a stream had none.
//!
//! Why fill: browsers do not keep an audio stream's timestamps across a hole. Measured on
//! this machine (docs/ARCHITECTURE.md, "Finalize"): Chromium plays the audio on both sides
//! of a 10 s hole back to back, so everything after it is heard 10 s early against the
//! video; Firefox inserts some silence but drops up to 0.9 s after the hole. With silence
//! frames in the hole the stream is continuous and both keep sync.

/// A packet that decodes to 20 ms of silence: TOC 0xF8 (CELT-only, full band, mono, 20 ms,
/// one frame) and a two-byte frame that codes silence.
pub const SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// Length of [`SILENCE`], µs.
pub const SILENCE_MICROS: i64 = 20_000;

/// Duration of an Opus packet, µs, from its TOC byte (and frame count byte for code 3);
/// `None` for an empty or malformed packet.
pub fn packet_duration_micros(packet: &[u8]) -> Option<i64> {
    let toc = *packet.first()?;
    let config = toc >> 3;
    // Frame sizes in tenths of a millisecond, by configuration (RFC 6716 table 2).
    let tenth_ms: i64 = match config {
        0..=11 => [100, 200, 400, 600][(config % 4) as usize],
        12..=15 => [100, 200][(config % 2) as usize],
        _ => [25, 50, 100, 200][(config % 4) as usize],
    };
    let frames = match toc & 0x03 {
        0 => 1,
        1 | 2 => 2,
        _ => i64::from(*packet.get(1)? & 0x3F),
    };
    // At most 120 ms per packet (RFC 6716 §3.2.5).
    let micros = frames * tenth_ms * 100;
    (frames > 0 && micros <= 120_000).then_some(micros)
}

/// Starts of the whole `frame`-long silences that fill `[from, to)`: none for a hole shorter
/// than a frame (the packets' own jitter), never one that would overlap `to`.
pub fn silence_starts(from: i64, to: i64, frame: i64) -> impl Iterator<Item = i64> {
    let n = if frame > 0 && to > from {
        (to - from) / frame
    } else {
        0
    };
    (0..n).map(move |i| from + i * frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_from_the_toc_byte() {
        // Chrome's usual packet: SILK-only wideband 20 ms (config 9), one frame.
        assert_eq!(packet_duration_micros(&[9 << 3, 0]), Some(20_000));
        assert_eq!(packet_duration_micros(&SILENCE), Some(SILENCE_MICROS));
        // CELT 10 ms, two frames (code 1).
        assert_eq!(packet_duration_micros(&[(18 << 3) | 1]), Some(20_000));
        // CELT 2.5 ms, code 3 with 48 frames = 120 ms; 49 would be over the limit.
        assert_eq!(packet_duration_micros(&[(16 << 3) | 3, 48]), Some(120_000));
        assert_eq!(packet_duration_micros(&[(16 << 3) | 3, 49]), None);
        // SILK 60 ms, code 3 with 2 frames = 120 ms; no count byte is malformed.
        assert_eq!(packet_duration_micros(&[(3 << 3) | 3, 2]), Some(120_000));
        assert_eq!(packet_duration_micros(&[(3 << 3) | 3]), None);
        assert_eq!(packet_duration_micros(&[]), None);
    }

    #[test]
    fn silence_fills_whole_frames_of_a_hole_and_nothing_of_jitter() {
        // From the start to a stream that begins at 100 ms: five 20 ms frames.
        assert_eq!(
            silence_starts(0, 100, 20).collect::<Vec<_>>(),
            [0, 20, 40, 60, 80]
        );
        // 50 ms of hole: two whole frames, the last 10 ms left rather than overlapping.
        assert_eq!(
            silence_starts(1000, 1050, 20).collect::<Vec<_>>(),
            [1000, 1020]
        );
        // A packet a little late (jitter) or overlapping gets none.
        assert_eq!(silence_starts(1000, 1019, 20).count(), 0);
        assert_eq!(silence_starts(1000, 990, 20).count(), 0);
        assert_eq!(silence_starts(0, 100, 0).count(), 0);
    }
}
