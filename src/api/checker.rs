//! The problems of a spec, each with its field path, and their collector while it is resolved.

use std::fmt;
use std::ops::RangeInclusive;

use jiff::SignedDuration;

use super::duration::DurationString;
use super::limits::MAX_DURATION_LENGTH;

/// One problem in a spec, with the path of the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path such as `spec.metrics[2].scaleInBelow`.
    pub path: String,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a spec.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationErrors(pub Vec<FieldError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

/// Collects problems while resolving.
#[derive(Default)]
pub(super) struct Checker {
    errors: Vec<FieldError>,
}

impl Checker {
    pub(super) fn error(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(FieldError {
            path: path.into(),
            message: message.into(),
        });
    }

    /// Checks that `text` has at most `max` characters (as the schema's `maxLength` counts), and
    /// says so with the limit when it has more. Callers check nothing else in a text that is too
    /// long, and never quote it.
    pub(super) fn length_within(&mut self, path: &str, text: &str, max: usize) -> bool {
        // A text of at most `max` bytes has at most `max` characters: count only longer ones.
        if text.len() <= max {
            return true;
        }
        let length = text.chars().count();
        if length <= max {
            return true;
        }
        self.error(
            path,
            format!("must be at most {max} characters long, got {length}"),
        );
        false
    }

    /// Checks that a list has at most `max` items, naming the limit and what it holds.
    pub(super) fn items_within(&mut self, path: &str, len: usize, max: usize, what: &str) -> bool {
        if len <= max {
            return true;
        }
        self.error(path, format!("must list at most {max} {what}, got {len}"));
        false
    }

    /// Parses a duration, or the default when absent.
    pub(super) fn duration(
        &mut self,
        path: &str,
        value: Option<&DurationString>,
        default: &str,
    ) -> SignedDuration {
        let text = value.map(DurationString::as_str).unwrap_or(default);
        if !self.length_within(path, text, MAX_DURATION_LENGTH) {
            return SignedDuration::ZERO;
        }
        match DurationString::new(text).parse() {
            Ok(d) => SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX),
            Err(e) => {
                self.error(path, e.to_string());
                SignedDuration::ZERO
            }
        }
    }

    /// Parses a duration (or the default) and checks it lies within `range`.
    pub(super) fn duration_within(
        &mut self,
        path: &str,
        value: Option<&DurationString>,
        default: &str,
        range: RangeInclusive<SignedDuration>,
    ) -> SignedDuration {
        let before = self.errors.len();
        let d = self.duration(path, value, default);
        if self.errors.len() == before && !range.contains(&d) {
            let text = value.map(DurationString::as_str).unwrap_or(default);
            let message = if *range.end() == SignedDuration::MAX {
                format!("must be at least {}, got {text}", describe(*range.start()))
            } else {
                format!(
                    "must be between {} and {}, got {text}",
                    describe(*range.start()),
                    describe(*range.end())
                )
            };
            self.error(path, message);
        }
        d
    }

    pub(super) fn finite(&mut self, path: &str, value: f64) -> bool {
        if value.is_finite() {
            true
        } else {
            self.error(path, format!("must be a finite number, got {value}"));
            false
        }
    }

    /// The problems found, if any.
    /// The problems found so far.
    pub(super) fn len(&self) -> usize {
        self.errors.len()
    }

    pub(super) fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }
}

fn describe(d: SignedDuration) -> String {
    super::duration::format_duration(d.unsigned_abs())
}
