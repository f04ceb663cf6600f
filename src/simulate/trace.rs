//! Load traces: the request rate a service receives over time.
//!
//! The file format is CSV with two columns, `timestamp_seconds,requests_per_second`:
//!
//! ```text
//! timestamp_seconds,requests_per_second
//! 1767225600,120.5
//! 1767225610,131
//! ```
//!
//! - `timestamp_seconds` is a whole number of seconds (Unix time, or any origin);
//!   `requests_per_second` a finite number >= 0. Each rate lasts until the next row's timestamp,
//!   and the last row's for one step.
//! - The header line is optional; blank lines and lines starting with `#` are ignored.
//! - Rows are evenly spaced: the first two rows set the step, and every later row must come
//!   exactly one step after the one before. A longer distance is a gap and a shorter or negative
//!   one means unsorted or duplicate rows; both are errors naming the line.

use std::fmt::Write as _;

/// The header line of a trace file.
pub const HEADER: &str = "timestamp_seconds,requests_per_second";

/// A load trace: evenly spaced request rates.
#[derive(Clone, Debug, PartialEq)]
pub struct Trace {
    /// The timestamp of the first row, in seconds.
    pub start: i64,
    /// Seconds between rows; each rate lasts this long.
    pub step: i64,
    /// Requests per second, one per row.
    pub rates: Vec<f64>,
}

/// A malformed trace file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceError {
    /// A row is wrong.
    #[error("{path}:{line}: {message}")]
    Line {
        path: String,
        line: usize,
        message: String,
    },
    /// The file as a whole is wrong (too few rows).
    #[error("{path}: {message}")]
    File { path: String, message: String },
}

impl Trace {
    /// Seconds the trace covers: every row lasts one step.
    pub fn duration(&self) -> i64 {
        self.step.saturating_mul(self.rates.len() as i64)
    }

    /// The timestamp just after the last row's step.
    pub fn end(&self) -> i64 {
        self.start.saturating_add(self.duration())
    }

    /// The rate at second `t` (the row whose step contains it); 0 outside the trace.
    pub fn rate_at(&self, t: i64) -> f64 {
        if t < self.start || self.step <= 0 {
            return 0.0;
        }
        let index = (t - self.start) / self.step;
        usize::try_from(index)
            .ok()
            .and_then(|i| self.rates.get(i))
            .copied()
            .unwrap_or(0.0)
    }

    /// The highest rate.
    pub fn peak(&self) -> f64 {
        self.rates.iter().copied().fold(0.0, f64::max)
    }

    /// Reads a trace; `path` names the source in messages.
    pub fn parse(path: &str, text: &str) -> Result<Trace, TraceError> {
        let error = |line: usize, message: String| TraceError::Line {
            path: path.to_owned(),
            line,
            message,
        };
        let mut rows: Vec<(usize, i64, f64)> = Vec::new();
        let mut step: Option<i64> = None;
        let mut seen_content = false;
        for (index, raw) in text.lines().enumerate() {
            let line = index + 1;
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let first = !seen_content;
            seen_content = true;
            if first && is_header(content) {
                continue;
            }
            let fields: Vec<&str> = content.split(',').map(str::trim).collect();
            let [time, rate] = fields.as_slice() else {
                let hint = if first {
                    format!(" (or the header `{HEADER}`)")
                } else {
                    String::new()
                };
                return Err(error(
                    line,
                    format!(
                        "expected 2 fields `timestamp_seconds,requests_per_second`{hint}, found {}: {content:?}",
                        fields.len()
                    ),
                ));
            };
            let time: i64 = time.parse().map_err(|_| {
                error(
                    line,
                    format!("timestamp_seconds must be a whole number of seconds, got {time:?}"),
                )
            })?;
            if jiff::Timestamp::from_second(time).is_err() {
                return Err(error(
                    line,
                    format!("timestamp_seconds {time} is outside the years -9999 to 9999"),
                ));
            }
            let rate: f64 = match rate.parse::<f64>() {
                Ok(r) if r.is_finite() && r >= 0.0 => r,
                _ => {
                    return Err(error(
                        line,
                        format!("requests_per_second must be a finite number >= 0, got {rate:?}"),
                    ));
                }
            };
            if let Some(&(prev_line, prev, _)) = rows.last() {
                let distance = time.saturating_sub(prev);
                match step {
                    None if distance <= 0 => {
                        return Err(error(
                            line,
                            format!(
                                "timestamp {time} is not after {prev} (line {prev_line}): rows must be sorted by time, without duplicates"
                            ),
                        ));
                    }
                    None => step = Some(distance),
                    Some(step) if distance == step => {}
                    Some(step) if distance > step => {
                        return Err(error(
                            line,
                            format!(
                                "gap: timestamp {time} comes {distance}s after {prev} (line {prev_line}); rows must be every {step}s, the step of the first two rows"
                            ),
                        ));
                    }
                    Some(step) if distance <= 0 => {
                        return Err(error(
                            line,
                            format!(
                                "timestamp {time} is not after {prev} (line {prev_line}): rows must be sorted by time, without duplicates (every {step}s)"
                            ),
                        ));
                    }
                    Some(step) => {
                        return Err(error(
                            line,
                            format!(
                                "timestamp {time} comes {distance}s after {prev} (line {prev_line}); rows must be every {step}s, the step of the first two rows"
                            ),
                        ));
                    }
                }
            }
            rows.push((line, time, rate));
        }
        let (Some(&(_, start, _)), Some(step)) = (rows.first(), step) else {
            return Err(TraceError::File {
                path: path.to_owned(),
                message: format!(
                    "a trace needs at least 2 rows `timestamp_seconds,requests_per_second` (the first two set the step), found {}",
                    rows.len()
                ),
            });
        };
        let trace = Trace {
            start,
            step,
            rates: rows.into_iter().map(|(_, _, rate)| rate).collect(),
        };
        if jiff::Timestamp::from_second(trace.end()).is_err() {
            return Err(TraceError::File {
                path: path.to_owned(),
                message: format!("the trace ends at {}, after the year 9999", trace.end()),
            });
        }
        Ok(trace)
    }

    /// The trace as CSV, with its header; rates with 3 decimals.
    pub fn to_csv(&self) -> String {
        let mut out = String::with_capacity(24 * (self.rates.len() + 1));
        out.push_str(HEADER);
        out.push('\n');
        for (i, rate) in self.rates.iter().enumerate() {
            let t = self.start + self.step * i as i64;
            let _ = writeln!(out, "{t},{rate:.3}");
        }
        out
    }
}

fn is_header(line: &str) -> bool {
    let fields: Vec<&str> = line.split(',').map(str::trim).collect();
    fields == ["timestamp_seconds", "requests_per_second"]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rows_after_an_optional_header_and_comments() {
        let trace = Trace::parse(
            "t.csv",
            "# a comment\ntimestamp_seconds,requests_per_second\n100,1.5\n110, 2\n\n120,0\n",
        )
        .unwrap();
        assert_eq!(
            trace,
            Trace {
                start: 100,
                step: 10,
                rates: vec![1.5, 2.0, 0.0]
            }
        );
        assert_eq!(trace.duration(), 30);
        assert_eq!(trace.rate_at(109), 1.5);
        assert_eq!(trace.rate_at(110), 2.0);
        assert_eq!(trace.rate_at(129), 0.0);
        assert_eq!(trace.rate_at(130), 0.0);
    }

    #[test]
    fn a_gap_names_its_line_and_the_step() {
        let error = Trace::parse("t.csv", "100,1\n110,1\n130,1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.csv:3: gap: timestamp 130 comes 20s after 110 (line 2); rows must be every 10s, the step of the first two rows"
        );
    }

    #[test]
    fn unsorted_rows_name_their_line() {
        let error = Trace::parse("t.csv", "h\n").unwrap_err();
        assert!(error.to_string().starts_with("t.csv:1: expected 2 fields"));
        let error = Trace::parse("t.csv", "100,1\n110,1\n105,1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.csv:3: timestamp 105 is not after 110 (line 2): rows must be sorted by time, without duplicates (every 10s)"
        );
        let error = Trace::parse("t.csv", "100,1\n100,1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.csv:2: timestamp 100 is not after 100 (line 1): rows must be sorted by time, without duplicates"
        );
    }

    #[test]
    fn rates_must_be_finite_and_not_negative() {
        let error = Trace::parse("t.csv", "100,1\n110,-1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.csv:2: requests_per_second must be a finite number >= 0, got \"-1\""
        );
        let error = Trace::parse("t.csv", "100.5,1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.csv:1: timestamp_seconds must be a whole number of seconds, got \"100.5\""
        );
    }

    #[test]
    fn one_row_is_not_a_trace() {
        let error =
            Trace::parse("t.csv", "timestamp_seconds,requests_per_second\n100,1\n").unwrap_err();
        assert_eq!(
            error.to_string(),
            "t.csv: a trace needs at least 2 rows `timestamp_seconds,requests_per_second` (the first two set the step), found 1"
        );
    }

    #[test]
    fn writes_what_it_reads() {
        let trace = Trace {
            start: 0,
            step: 60,
            rates: vec![1.0, 2.25],
        };
        let csv = trace.to_csv();
        assert_eq!(
            csv,
            "timestamp_seconds,requests_per_second\n0,1.000\n60,2.250\n"
        );
        assert_eq!(Trace::parse("x", &csv).unwrap(), trace);
    }
}
