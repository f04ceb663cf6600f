//! The bounds on what a server's answer may cost the operator: its size in bytes, its series,
//! and the length of every failure message kept in a policy's status and events.
//!
//! The byte cap is checked while the body is read ([`CappedBody`]), so an answer that never ends
//! costs at most the cap plus one chunk; the series cap is checked while the answer is parsed
//! (`super::answer`), which builds no value per series.

use crate::text::{self, Precision};

/// Default `--prometheus-max-answer-bytes`: 1 MiB. One metric's instant query answers one
/// series, a few hundred bytes with its labels; a hundred series (the series cap) with long
/// label sets stay well under it. With the default `--max-concurrent-queries` of 32 the answers
/// in flight at once cost at most about 100 MiB even in the worst case (README, "Servers,
/// credentials and the allow-list").
pub const DEFAULT_MAX_ANSWER_BYTES: usize = MIB;

/// The range `--prometheus-max-answer-bytes` accepts: from 4 KiB (a one-series answer with a
/// large label set, or a server's error message, fits) to 64 MiB (32 of them in flight would
/// still fit in a few GiB, not in the chart's memory limit: raise that too).
pub const MAX_ANSWER_BYTES_RANGE: (usize, usize) = (4 * KIB, 64 * MIB);

/// Default `--prometheus-max-series` (which accepts 1 to 100,000): 100. Every value query must
/// answer one series; up to the cap the message gives the exact count (which tells a missing
/// `sum()` over a few pods from a selector matching everything), beyond it parsing stops.
pub const DEFAULT_MAX_SERIES: usize = 100;

/// Default `--prometheus-max-pod-series` (which accepts 1 to 100,000): 5,000. A `cpu` or
/// `memory` metric reads one series per pod of its namespace (about 150 bytes each with
/// cAdvisor's labels, so 5,000 fit in the default 1 MiB answer).
pub const DEFAULT_MAX_POD_SERIES: usize = 5000;

/// The longest failure message a metric keeps (status `metrics[].message`, the `MetricsAvailable`
/// condition, events), in bytes: longer ones are cut at a character boundary and end in `…`.
pub const MAX_MESSAGE_BYTES: usize = 512;

const KIB: usize = 1024;
const MIB: usize = 1024 * 1024;

/// The limits of one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerLimits {
    /// The largest body read, in bytes (`--prometheus-max-answer-bytes`).
    pub max_bytes: usize,
    /// The most series an answer may hold (`--prometheus-max-series`).
    pub max_series: usize,
    /// The most series a per-pod answer (`cpu`, `memory`) may hold
    /// (`--prometheus-max-pod-series`).
    pub max_pod_series: usize,
}

impl Default for AnswerLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_MAX_ANSWER_BYTES,
            max_series: DEFAULT_MAX_SERIES,
            max_pod_series: DEFAULT_MAX_POD_SERIES,
        }
    }
}

/// A size in bytes as people read it: `1 MiB`, `1.5 MiB`, `512 KiB`, `900 bytes`.
pub fn size(bytes: usize) -> String {
    let b = bytes as f64;
    let (value, unit) = if bytes >= MIB {
        (b / MIB as f64, "MiB")
    } else if bytes >= KIB {
        (b / KIB as f64, "KiB")
    } else {
        return format!("{bytes} bytes");
    };
    let rounded = (value * 10.0).round() / 10.0;
    format!("{} {unit}", text::number(rounded, Precision::Milli))
}

/// Parses a size as given to `--prometheus-max-answer-bytes`: bytes (`1048576`), or a whole
/// number of KiB or MiB (`512KiB`, `1MiB`, also `512Ki`, `1Mi` as Kubernetes writes them),
/// within [`MAX_ANSWER_BYTES_RANGE`].
pub fn parse_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(digits_end);
    let multiplier = match unit.trim() {
        "" | "B" => 1,
        "Ki" | "KiB" => KIB,
        "Mi" | "MiB" => MIB,
        _ => {
            return Err(format!(
                "{text:?} is not a size: write bytes (1048576) or KiB or MiB (512KiB, 1MiB)"
            ));
        }
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("{text:?} is not a size: it needs a whole number"))?;
    let (min, max) = MAX_ANSWER_BYTES_RANGE;
    match n.checked_mul(multiplier) {
        Some(bytes) if (min..=max).contains(&bytes) => Ok(bytes),
        _ => Err(format!(
            "{text:?} is out of range: from {} to {}",
            size(min),
            size(max)
        )),
    }
}

/// `message` cut to at most [`MAX_MESSAGE_BYTES`] bytes, at a character boundary, ending in `…`
/// when cut.
pub fn truncate_message(message: String) -> String {
    truncate(message, MAX_MESSAGE_BYTES)
}

/// `text` cut to at most `max` bytes (at least the ellipsis), ending in `…` when cut.
pub fn truncate(text: String, max: usize) -> String {
    if text.len() <= max {
        return text;
    }
    crate::text::shorten(&text, max.saturating_sub('…'.len_utf8()))
}

/// A body collected chunk by chunk that refuses to grow past its cap: it never holds more than
/// the cap (the chunk that would pass it is refused before it is copied).
#[derive(Debug)]
pub struct CappedBody {
    bytes: Vec<u8>,
    max: usize,
}

/// The body passed its cap (the limit, in bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooLarge(pub usize);

impl CappedBody {
    /// An empty body capped at `max` bytes; `declared` is the `Content-Length`, when given:
    /// a declared length over the cap fails at once, before anything is read.
    pub fn new(max: usize, declared: Option<u64>) -> Result<Self, TooLarge> {
        let declared = declared.map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        if declared.is_some_and(|n| n > max) {
            return Err(TooLarge(max));
        }
        // Reserve what the server announced (at most the cap), else a first page.
        let initial = declared.unwrap_or(8 * KIB).min(max);
        Ok(Self {
            bytes: Vec::with_capacity(initial),
            max,
        })
    }

    /// Appends `chunk`, or fails when the body would pass the cap.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), TooLarge> {
        let Some(len) = self
            .bytes
            .len()
            .checked_add(chunk.len())
            .filter(|&n| n <= self.max)
        else {
            return Err(TooLarge(self.max));
        };
        if len > self.bytes.capacity() {
            // Grow by doubling, but never reserve past the cap.
            let target = self
                .bytes
                .capacity()
                .saturating_mul(2)
                .max(len)
                .min(self.max);
            self.bytes.reserve_exact(target - self.bytes.len());
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// The bytes collected so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.bytes
    }

    /// The memory the body holds (its capacity), for tests.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(size(MIB), "1 MiB");
        assert_eq!(size(3 * MIB / 2), "1.5 MiB");
        assert_eq!(size(64 * MIB), "64 MiB");
        assert_eq!(size(512 * KIB), "512 KiB");
        assert_eq!(size(4 * KIB), "4 KiB");
        assert_eq!(size(1_000_000), "976.6 KiB");
        assert_eq!(size(900), "900 bytes");
    }

    #[test]
    fn sizes_parse_as_bytes_kib_or_mib_within_the_range() {
        assert_eq!(parse_size("1048576"), Ok(MIB));
        assert_eq!(parse_size("1MiB"), Ok(MIB));
        assert_eq!(parse_size("1Mi"), Ok(MIB));
        assert_eq!(parse_size("512KiB"), Ok(512 * KIB));
        assert_eq!(parse_size("64 MiB"), Ok(64 * MIB));
        assert_eq!(
            parse_size("65MiB"),
            Err(r#""65MiB" is out of range: from 4 KiB to 64 MiB"#.into())
        );
        assert!(parse_size("1KiB").is_err());
        assert!(parse_size("1.5MiB").is_err());
        assert!(parse_size("1MB").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("99999999999999999999999MiB").is_err());
    }

    #[test]
    fn a_long_message_is_cut_at_a_character_boundary_with_an_ellipsis() {
        let short = "x".repeat(MAX_MESSAGE_BYTES);
        assert_eq!(truncate_message(short.clone()), short);
        let long = "é".repeat(1000);
        let cut = truncate_message(long);
        assert!(cut.len() <= MAX_MESSAGE_BYTES, "{}", cut.len());
        assert!(cut.len() > MAX_MESSAGE_BYTES - 8, "{}", cut.len());
        assert!(cut.ends_with("é…"), "{cut}");
        assert_eq!(truncate("abcdef".into(), 0), "…");
    }

    #[test]
    fn a_body_declared_over_the_cap_fails_before_reading() {
        assert_eq!(
            CappedBody::new(1000, Some(1001)).unwrap_err(),
            TooLarge(1000)
        );
        let body = CappedBody::new(1000, Some(1000)).unwrap();
        assert_eq!(body.capacity(), 1000);
        let body = CappedBody::new(1000, Some(u64::MAX));
        assert!(body.is_err());
    }

    #[test]
    fn an_endless_body_fails_at_the_cap_and_never_holds_more() {
        let max = 100 * KIB;
        let mut body = CappedBody::new(max, None).unwrap();
        let chunk = vec![b'x'; 3000];
        let mut pushed = 0usize;
        let failed = loop {
            match body.push(&chunk) {
                Ok(()) => pushed += chunk.len(),
                Err(e) => break e,
            }
            assert!(body.capacity() <= max, "{}", body.capacity());
            assert!(pushed <= max);
        };
        assert_eq!(failed, TooLarge(max));
        assert_eq!(body.as_slice().len(), pushed);
        assert_eq!(pushed, max / 3000 * 3000);
        assert!(body.capacity() <= max);
    }

    #[test]
    fn a_body_of_exactly_the_cap_is_accepted() {
        let mut body = CappedBody::new(10, None).unwrap();
        body.push(b"01234").unwrap();
        body.push(b"56789").unwrap();
        assert_eq!(body.as_slice(), b"0123456789");
        assert_eq!(body.push(b"!"), Err(TooLarge(10)));
        assert_eq!(body.as_slice(), b"0123456789");
    }
}
