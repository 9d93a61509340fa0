//! Domain types of inspections, parsed at the edge (parse, don't validate).

use serde::{Deserialize, Serialize};

/// A Russian taxpayer number (ИНН): 10 digits for organisations, 12 for individuals, with
/// check digits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
#[schema(value_type = String, example = "7707083893")]
pub struct Inn(String);

/// Why a string is not an INN (a stable code each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InnError {
    /// Nothing given.
    Empty,
    /// Something other than digits.
    NotDigits,
    /// Neither 10 nor 12 digits.
    Length,
    /// The check digits do not match.
    CheckDigits,
}

impl InnError {
    /// The stable code.
    pub fn code(self) -> &'static str {
        match self {
            InnError::Empty => "inn_required",
            InnError::NotDigits => "inn_digits_only",
            InnError::Length => "inn_length",
            InnError::CheckDigits => "inn_check_digits",
        }
    }
}

impl std::fmt::Display for InnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            InnError::Empty => "INN is required",
            InnError::NotDigits => "INN must contain digits only",
            InnError::Length => "INN must have 10 (organisation) or 12 (individual) digits",
            InnError::CheckDigits => "INN check digits do not match",
        })
    }
}

impl Inn {
    /// Parses an INN, checking length and check digits.
    pub fn parse(s: &str) -> Result<Inn, InnError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(InnError::Empty);
        }
        let digits: Vec<u32> = s
            .chars()
            .map(|c| c.to_digit(10))
            .collect::<Option<_>>()
            .ok_or(InnError::NotDigits)?;
        let check = |coeffs: &[u32]| -> u32 {
            coeffs.iter().zip(&digits).map(|(c, d)| c * d).sum::<u32>() % 11 % 10
        };
        let ok = match digits.len() {
            10 => check(&[2, 4, 10, 3, 5, 9, 4, 6, 8]) == digits[9],
            12 => {
                check(&[7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == digits[10]
                    && check(&[3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == digits[11]
            }
            _ => return Err(InnError::Length),
        };
        if ok {
            Ok(Inn(s.to_string()))
        } else {
            Err(InnError::CheckDigits)
        }
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Control event or preventive visit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A control (supervision) event.
    Control,
    /// A preventive event (consultation, preventive visit).
    Preventive,
}

impl Kind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Control => "control",
            Kind::Preventive => "preventive",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "control" => Some(Kind::Control),
            "preventive" => Some(Kind::Preventive),
            _ => None,
        }
    }
}

/// Remote (over video) or on site.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Over live video.
    Remote,
    /// The inspector is on the premises.
    OnSite,
}

impl Mode {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Remote => "remote",
            Mode::OnSite => "on_site",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "remote" => Some(Mode::Remote),
            "on_site" => Some(Mode::OnSite),
            _ => None,
        }
    }
}

/// Lifecycle status of an inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Created, not started.
    Scheduled,
    /// Running.
    Live,
    /// Ended; the act may be formed.
    Finished,
    /// The act is signed.
    Signed,
    /// Called off.
    Cancelled,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Scheduled => "scheduled",
            Status::Live => "live",
            Status::Finished => "finished",
            Status::Signed => "signed",
            Status::Cancelled => "cancelled",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Status> {
        Some(match s {
            "scheduled" => Status::Scheduled,
            "live" => Status::Live,
            "finished" => Status::Finished,
            "signed" => Status::Signed,
            "cancelled" => Status::Cancelled,
            _ => return None,
        })
    }

    /// Whether the inspection is over (nothing more is recorded): finished, signed or
    /// cancelled.
    pub fn is_over(self) -> bool {
        matches!(self, Status::Finished | Status::Signed | Status::Cancelled)
    }

    /// Whether the lifecycle allows going from `self` to `to`:
    /// scheduled → live → finished → signed, and scheduled or live → cancelled.
    pub fn can_become(self, to: Status) -> bool {
        matches!(
            (self, to),
            (Status::Scheduled, Status::Live)
                | (Status::Live, Status::Finished)
                | (Status::Finished, Status::Signed)
                | (Status::Scheduled, Status::Cancelled)
                | (Status::Live, Status::Cancelled)
        )
    }
}

/// Why an inspection was cancelled (stored as a code; the pages say it in words).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    /// The business did not join or could not take part.
    BusinessAbsent,
    /// The call could not be held (network, equipment).
    TechnicalFailure,
    /// Moved to another date.
    Rescheduled,
    /// The control body called the inspection off.
    Withdrawn,
    /// Anything else (the note says what).
    Other,
}

impl CancelReason {
    /// The same code in the event log's vocabulary.
    pub fn to_sync(self) -> checklist_sync::CancelReason {
        use checklist_sync::CancelReason as C;
        match self {
            CancelReason::BusinessAbsent => C::BusinessAbsent,
            CancelReason::TechnicalFailure => C::TechnicalFailure,
            CancelReason::Rescheduled => C::Rescheduled,
            CancelReason::Withdrawn => C::Withdrawn,
            CancelReason::Other => C::Other,
        }
    }
}

/// A point on the Earth (WGS 84).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Coordinates {
    /// Latitude, degrees.
    pub lat: f64,
    /// Longitude, degrees.
    pub lon: f64,
}

impl Coordinates {
    /// Parses a coordinate pair, refusing NaN and out-of-range values.
    pub fn parse(lat: f64, lon: f64) -> Result<Coordinates, String> {
        if !(lat.is_finite() && (-90.0..=90.0).contains(&lat)) {
            return Err("latitude must be between -90 and 90".into());
        }
        if !(lon.is_finite() && (-180.0..=180.0).contains(&lon)) {
            return Err("longitude must be between -180 and 180".into());
        }
        Ok(Coordinates { lat, lon })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inn_checksums() {
        assert!(Inn::parse("7707083893").is_ok()); // Sberbank
        assert!(Inn::parse("7707083894").is_err());
        assert!(Inn::parse("500100732259").is_ok());
        assert!(Inn::parse("500100732258").is_err());
        assert!(Inn::parse("12345").is_err());
        assert!(Inn::parse("77070838a3").is_err());
        assert_eq!(Inn::parse(""), Err(InnError::Empty));
        assert_eq!(
            Inn::parse("7707083894").unwrap_err().code(),
            "inn_check_digits"
        );
        assert_eq!(Inn::parse("12345").unwrap_err().code(), "inn_length");
        assert_eq!(
            Inn::parse("77070838a3").unwrap_err().code(),
            "inn_digits_only"
        );
    }

    #[test]
    fn lifecycle() {
        use Status::*;
        let all = [Scheduled, Live, Finished, Signed, Cancelled];
        let allowed: Vec<_> = all
            .iter()
            .flat_map(|a| all.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.can_become(*b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Scheduled, Live),
                (Scheduled, Cancelled),
                (Live, Finished),
                (Live, Cancelled),
                (Finished, Signed)
            ]
        );
        for s in all {
            assert_eq!(Status::parse(s.as_str()), Some(s));
        }
    }

    #[test]
    fn coordinates() {
        assert!(Coordinates::parse(55.75, 37.62).is_ok());
        assert!(Coordinates::parse(91.0, 0.0).is_err());
        assert!(Coordinates::parse(0.0, f64::NAN).is_err());
    }
}
