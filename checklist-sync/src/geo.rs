//! Geolocation samples from a browser, parsed into a type that can only hold sane values.
//!
//! The browser sends what `GeolocationPosition` gave it ([`RawGeolocation`]); the server turns
//! it into a [`Geolocation`] with [`Geolocation::parse`] or rejects it with a [`GeoError`] that
//! carries a stable snake_case code. Everything downstream (the trust scoring, the event log)
//! only ever sees parsed samples, so one bad sample cannot poison a score.

use serde::{Deserialize, Serialize};

/// Mean Earth radius used for great-circle distances, in metres (IUGG mean radius).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Largest accepted accuracy radius. Browsers fall back to IP geolocation with radii of tens
/// of kilometres; anything beyond a continent-sized circle says nothing and is a bug or forgery.
pub const MAX_ACCURACY_M: f64 = 1_000_000.0;

/// How far the device clock may run ahead of the server before a sample is refused. Skew is a
/// trust signal in itself, so only a clock more than a day ahead is treated as garbage.
pub const MAX_FUTURE_SKEW_MS: i64 = 24 * 60 * 60 * 1000;

/// How old a fix may be. A browser never hands out a fix older than its `maximumAge`, and a
/// fix a month old is a replay or a dead clock, not a position.
pub const MAX_AGE_MS: i64 = 30 * 24 * 60 * 60 * 1000;

/// A geolocation sample exactly as the browser reports it (`GeolocationPosition.coords` plus
/// `GeolocationPosition.timestamp`). Nothing here is trusted yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawGeolocation {
    /// Latitude in degrees (WGS 84).
    pub lat: f64,
    /// Longitude in degrees (WGS 84).
    pub lon: f64,
    /// Radius of the 95 % (Chrome: 68 %) confidence circle in metres.
    pub accuracy: f64,
    /// Altitude above the WGS 84 ellipsoid in metres, if known.
    #[serde(default)]
    pub altitude: Option<f64>,
    /// Accuracy of the altitude in metres, if known.
    #[serde(default)]
    pub altitude_accuracy: Option<f64>,
    /// Direction of travel in degrees clockwise from true north, if known.
    #[serde(default)]
    pub heading: Option<f64>,
    /// Ground speed in metres per second, if known.
    #[serde(default)]
    pub speed: Option<f64>,
    /// When the fix was taken by the device clock, milliseconds since the Unix epoch.
    pub device_ts: i64,
}

/// Why a raw sample was refused. Each variant has a stable code for the wire ([`GeoError::code`]).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeoError {
    /// A required number (latitude, longitude, accuracy) is NaN or infinite.
    #[error("{field} is not a finite number")]
    NotFinite {
        /// Name of the offending field.
        field: &'static str,
    },
    /// Latitude outside [-90, 90].
    #[error("latitude {0} is outside [-90, 90]")]
    LatOutOfRange(f64),
    /// Longitude outside [-180, 180].
    #[error("longitude {0} is outside [-180, 180]")]
    LonOutOfRange(f64),
    /// Accuracy negative or beyond [`MAX_ACCURACY_M`].
    #[error("accuracy {0} m is negative or absurd")]
    AccuracyInvalid(f64),
    /// The device timestamp is more than [`MAX_FUTURE_SKEW_MS`] ahead of the server clock.
    #[error("device timestamp is {ahead_ms} ms ahead of the server clock")]
    TimestampInFuture {
        /// How far ahead of the server the device timestamp is.
        ahead_ms: i64,
    },
    /// The device timestamp is more than [`MAX_AGE_MS`] behind the server clock.
    #[error("device timestamp is {behind_ms} ms behind the server clock")]
    TimestampTooOld {
        /// How far behind the server the device timestamp is.
        behind_ms: i64,
    },
}

impl GeoError {
    /// Stable snake_case code sent to the client and written to logs.
    pub fn code(&self) -> &'static str {
        match self {
            GeoError::NotFinite { .. } => "geo_not_finite",
            GeoError::LatOutOfRange(_) => "geo_lat_out_of_range",
            GeoError::LonOutOfRange(_) => "geo_lon_out_of_range",
            GeoError::AccuracyInvalid(_) => "geo_accuracy_invalid",
            GeoError::TimestampInFuture { .. } => "geo_timestamp_in_future",
            GeoError::TimestampTooOld { .. } => "geo_timestamp_too_old",
        }
    }
}

/// A validated geolocation sample. Coordinates are finite and in range, accuracy is finite and
/// within [0, [`MAX_ACCURACY_M`]], the device timestamp is plausible. Optional fields that the
/// browser reported as NaN or nonsense are dropped rather than failing the whole sample, since
/// they carry no trust weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Geolocation {
    lat: f64,
    lon: f64,
    accuracy: f64,
    altitude: Option<f64>,
    altitude_accuracy: Option<f64>,
    heading: Option<f64>,
    speed: Option<f64>,
    device_ts_ms: i64,
    server_ts_micros: i64,
}

impl Geolocation {
    /// Parses a raw browser sample received at `server_now_micros` (microseconds since the Unix
    /// epoch, UTC). Never panics, whatever the input.
    pub fn parse(raw: &RawGeolocation, server_now_micros: i64) -> Result<Geolocation, GeoError> {
        if !raw.lat.is_finite() {
            return Err(GeoError::NotFinite { field: "lat" });
        }
        if !raw.lon.is_finite() {
            return Err(GeoError::NotFinite { field: "lon" });
        }
        if !raw.accuracy.is_finite() {
            return Err(GeoError::NotFinite { field: "accuracy" });
        }
        if !(-90.0..=90.0).contains(&raw.lat) {
            return Err(GeoError::LatOutOfRange(raw.lat));
        }
        if !(-180.0..=180.0).contains(&raw.lon) {
            return Err(GeoError::LonOutOfRange(raw.lon));
        }
        if !(0.0..=MAX_ACCURACY_M).contains(&raw.accuracy) {
            return Err(GeoError::AccuracyInvalid(raw.accuracy));
        }
        let server_now_ms = server_now_micros.div_euclid(1000);
        // Saturating: both numbers come from outside and may be extreme.
        let ahead_ms = raw.device_ts.saturating_sub(server_now_ms);
        if ahead_ms > MAX_FUTURE_SKEW_MS {
            return Err(GeoError::TimestampInFuture { ahead_ms });
        }
        let behind_ms = server_now_ms.saturating_sub(raw.device_ts);
        if behind_ms > MAX_AGE_MS {
            return Err(GeoError::TimestampTooOld { behind_ms });
        }
        let finite = |v: Option<f64>| v.filter(|x| x.is_finite());
        let non_negative = |v: Option<f64>| finite(v).filter(|x| *x >= 0.0);
        Ok(Geolocation {
            lat: raw.lat,
            // -180 and 180 are the same meridian; keep one spelling.
            lon: if raw.lon == -180.0 { 180.0 } else { raw.lon },
            accuracy: raw.accuracy,
            altitude: finite(raw.altitude).filter(|a| a.abs() < 100_000.0),
            altitude_accuracy: non_negative(raw.altitude_accuracy),
            heading: finite(raw.heading).filter(|h| (0.0..=360.0).contains(h)),
            speed: non_negative(raw.speed),
            device_ts_ms: raw.device_ts,
            server_ts_micros: server_now_micros,
        })
    }

    /// Latitude in degrees, within [-90, 90].
    pub fn lat(&self) -> f64 {
        self.lat
    }
    /// Longitude in degrees, within (-180, 180].
    pub fn lon(&self) -> f64 {
        self.lon
    }
    /// Accuracy radius in metres, within [0, [`MAX_ACCURACY_M`]].
    pub fn accuracy(&self) -> f64 {
        self.accuracy
    }
    /// Altitude in metres, if the browser gave a sane one.
    pub fn altitude(&self) -> Option<f64> {
        self.altitude
    }
    /// Altitude accuracy in metres, if the browser gave a sane one.
    pub fn altitude_accuracy(&self) -> Option<f64> {
        self.altitude_accuracy
    }
    /// Heading in degrees, if the browser gave a sane one.
    pub fn heading(&self) -> Option<f64> {
        self.heading
    }
    /// Ground speed in m/s, if the browser gave a sane one.
    pub fn speed(&self) -> Option<f64> {
        self.speed
    }
    /// Device timestamp of the fix, milliseconds since the Unix epoch.
    pub fn device_ts_ms(&self) -> i64 {
        self.device_ts_ms
    }
    /// Server time at which the sample was parsed, microseconds since the Unix epoch.
    pub fn server_ts_micros(&self) -> i64 {
        self.server_ts_micros
    }
    /// Server clock minus device clock in milliseconds at reception: positive when the fix
    /// looks older than its arrival (latency, a cached fix, or a device clock running late).
    pub fn clock_skew_ms(&self) -> i64 {
        self.server_ts_micros
            .div_euclid(1000)
            .saturating_sub(self.device_ts_ms)
    }
    /// Great-circle distance to another sample in metres.
    pub fn distance_m(&self, other: &Geolocation) -> f64 {
        distance_m((self.lat, self.lon), (other.lat, other.lon))
    }
}

/// Great-circle (haversine) distance between two `(lat, lon)` points in degrees, in metres.
/// Good to about 0.5 % against the ellipsoid, far below GPS noise at any scale used here.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    // Clamping keeps asin in its domain when rounding pushes h a hair above 1.
    2.0 * EARTH_RADIUS_M * h.clamp(0.0, 1.0).sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(lat: f64, lon: f64, accuracy: f64, device_ts: i64) -> RawGeolocation {
        RawGeolocation {
            lat,
            lon,
            accuracy,
            altitude: None,
            altitude_accuracy: None,
            heading: None,
            speed: None,
            device_ts,
        }
    }

    const NOW_US: i64 = 1_795_000_000_000_000;
    const NOW_MS: i64 = NOW_US / 1000;

    #[test]
    fn accepts_a_normal_fix_and_keeps_its_fields() {
        let mut r = raw(55.7558, 37.6173, 12.5, NOW_MS - 800);
        r.speed = Some(1.2);
        r.heading = Some(f64::NAN);
        let g = Geolocation::parse(&r, NOW_US).expect("a normal fix parses");
        assert_eq!(g.lat(), 55.7558);
        assert_eq!(g.speed(), Some(1.2));
        assert_eq!(g.heading(), None, "NaN heading is dropped, not fatal");
        assert_eq!(g.clock_skew_ms(), 800);
        assert_eq!(g.server_ts_micros(), NOW_US);
    }

    #[test]
    fn rejects_bad_samples_with_stable_codes() {
        let cases = [
            (raw(f64::NAN, 37.0, 5.0, NOW_MS), "geo_not_finite"),
            (raw(55.0, f64::INFINITY, 5.0, NOW_MS), "geo_not_finite"),
            (raw(55.0, 37.0, f64::NAN, NOW_MS), "geo_not_finite"),
            (raw(90.0001, 37.0, 5.0, NOW_MS), "geo_lat_out_of_range"),
            (raw(-91.0, 37.0, 5.0, NOW_MS), "geo_lat_out_of_range"),
            (raw(55.0, 180.5, 5.0, NOW_MS), "geo_lon_out_of_range"),
            (raw(55.0, 37.0, -1.0, NOW_MS), "geo_accuracy_invalid"),
            (raw(55.0, 37.0, 5.0e9, NOW_MS), "geo_accuracy_invalid"),
            (
                raw(55.0, 37.0, 5.0, NOW_MS + MAX_FUTURE_SKEW_MS + 1),
                "geo_timestamp_in_future",
            ),
            (raw(55.0, 37.0, 5.0, i64::MAX), "geo_timestamp_in_future"),
            (raw(55.0, 37.0, 5.0, i64::MIN), "geo_timestamp_too_old"),
            (raw(55.0, 37.0, 5.0, 0), "geo_timestamp_too_old"),
        ];
        for (r, code) in cases {
            let err = Geolocation::parse(&r, NOW_US).expect_err("bad sample must be rejected");
            assert_eq!(err.code(), code, "{r:?}");
        }
    }

    #[test]
    fn tolerates_a_clock_running_ahead_within_a_day() {
        let g = Geolocation::parse(&raw(55.0, 37.0, 5.0, NOW_MS + 3_600_000), NOW_US)
            .expect("an hour of skew is a signal, not a reason to refuse");
        assert_eq!(g.clock_skew_ms(), -3_600_000);
    }

    #[test]
    fn haversine_matches_known_distances() {
        // Moscow (Red Square) to Novosibirsk (Lenin Square): about 2 812 km.
        let d = distance_m((55.7539, 37.6208), (55.0302, 82.9204));
        assert!((d - 2_812_000.0).abs() < 15_000.0, "{d}");
        // One thousandth of a degree of latitude is about 111 m.
        let d = distance_m((55.0, 37.0), (55.001, 37.0));
        assert!((d - 111.2).abs() < 0.5, "{d}");
        assert_eq!(distance_m((10.0, 20.0), (10.0, 20.0)), 0.0);
    }
}
