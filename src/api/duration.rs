//! Durations as users write them in a ScalingPolicy: `15s`, `5m`, `1h30m`.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// The pattern every duration in the API must match (also enforced by the CRD schema).
pub const DURATION_PATTERN: &str = "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$";

/// A duration written as hours, minutes and seconds, in that order, each optional but not all
/// absent: `15s`, `5m`, `1h30m`, `0s`.
///
/// The text is kept as written so that a malformed value can be reported with its field path by
/// validation instead of failing deserialization of the whole object.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DurationString(String);

/// Why a duration string was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("must not be empty; write a duration such as 15s, 5m or 1h30m")]
    Empty,
    #[error(
        "{0:?} is not a duration: write hours, minutes and seconds in that order, such as 15s, 5m or 1h30m"
    )]
    Malformed(String),
    #[error("{0:?} is too long")]
    Overflow(String),
}

impl DurationString {
    pub fn new(text: impl Into<String>) -> Self {
        Self(text.into())
    }

    /// The duration formatted the way users write it, such as `1h30m`.
    pub fn from_duration(duration: Duration) -> Self {
        Self(format_duration(duration))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn parse(&self) -> Result<Duration, DurationError> {
        parse_duration(&self.0)
    }
}

impl fmt::Display for DurationString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for DurationString {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl JsonSchema for DurationString {
    fn schema_name() -> Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "minLength": 1,
            "maxLength": super::limits::MAX_DURATION_LENGTH,
            "pattern": DURATION_PATTERN,
        })
    }

    fn inline_schema() -> bool {
        true
    }
}

/// Parses `[Nh][Nm][Ns]` (at least one part, in that order).
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    if text.is_empty() {
        return Err(DurationError::Empty);
    }
    let malformed = || DurationError::Malformed(text.to_owned());
    let mut seconds: u64 = 0;
    let mut digits = String::new();
    // Units must appear in this order, each at most once.
    let mut allowed = ['h', 'm', 's'].as_slice();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let position = allowed.iter().position(|&u| u == c).ok_or_else(malformed)?;
        if digits.is_empty() {
            return Err(malformed());
        }
        let value: u64 = digits
            .parse()
            .map_err(|_| DurationError::Overflow(text.to_owned()))?;
        let factor = match c {
            'h' => 3600,
            'm' => 60,
            _ => 1,
        };
        seconds = value
            .checked_mul(factor)
            .and_then(|v| seconds.checked_add(v))
            .ok_or_else(|| DurationError::Overflow(text.to_owned()))?;
        digits.clear();
        allowed = &allowed[position + 1..];
    }
    if !digits.is_empty() {
        return Err(malformed());
    }
    Ok(Duration::from_secs(seconds))
}

/// Formats whole seconds as `1h30m`, `15s` or `0s`.
pub fn format_duration(duration: Duration) -> String {
    crate::text::duration(duration, crate::text::Resolution::Seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_forms() {
        for (text, secs) in [
            ("15s", 15),
            ("5m", 300),
            ("1h30m", 5400),
            ("0s", 0),
            ("1h", 3600),
            ("2h3m4s", 7384),
            ("90s", 90),
        ] {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_secs(secs)),
                "{text}"
            );
        }
    }

    #[test]
    fn refuses_what_the_crd_pattern_refuses() {
        for text in [
            "", "15", "s", "1m1h", "1s1s", "1.5s", "-1s", "1d", " 1s", "1ms",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} should be refused");
        }
    }

    #[test]
    fn formats_round_trip() {
        for secs in [0, 1, 59, 60, 61, 3600, 5400, 86399] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }
}
