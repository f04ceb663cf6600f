//! Text for people: numbers, durations and error chains as messages, events and reports show
//! them ("numbers for people, values for machines"). Depends on nothing else in the crate.

use std::error::Error;
use std::time::Duration;

/// How many decimals a number keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// Rounded to 6 decimals, in its shortest form: `85`, `0.05`, `1.5`.
    Micro,
    /// At most 3 decimals, no trailing zeros, and never `-0`: `50`, `0.275`, `1.235`.
    Milli,
    /// As people read a measurement: whole from 10 up (`82`), one decimal from 1 (`1.5`), two
    /// significant digits below (`0.053`, `0.0012`); never `-0`. Exact values belong in
    /// structured fields.
    Human,
}

/// A number as people write it.
pub fn number(x: f64, precision: Precision) -> String {
    match precision {
        Precision::Micro => {
            let rounded = (x * 1e6).round() / 1e6;
            format!("{rounded}")
        }
        Precision::Milli => decimals(x, 3),
        Precision::Human => {
            let a = x.abs();
            let places = if !a.is_finite() || a == 0.0 || a >= 10.0 {
                0
            } else if a >= 1.0 {
                1
            } else {
                // Two significant digits: as many places as it takes to reach 10.
                let (mut places, mut scaled) = (1, a * 10.0);
                while scaled < 10.0 && places < 12 {
                    scaled *= 10.0;
                    places += 1;
                }
                places
            };
            decimals(x, places)
        }
    }
}

/// `x` with at most `places` decimals, no trailing zeros, and never `-0`.
fn decimals(x: f64, places: usize) -> String {
    let s = format!("{x:.places$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s.as_str()
    };
    if s == "-0" { "0".into() } else { s.to_owned() }
}

/// `value` and `bound` rounded for people ([`Precision::Human`]), unless rounding would make two
/// different numbers read the same (`70 > 70`): then both to 6 decimals.
pub fn apart(value: f64, bound: f64) -> (String, String) {
    let (v, b) = (
        number(value, Precision::Human),
        number(bound, Precision::Human),
    );
    if v == b && value != bound {
        (
            number(value, Precision::Micro),
            number(bound, Precision::Micro),
        )
    } else {
        (v, b)
    }
}

/// How finely a duration is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Whole seconds as in a spec: `1h30m`, `15s`, `0s`.
    Seconds,
    /// Below a second in milliseconds (`500ms`), below a minute in tenths of seconds (`1.5s`),
    /// whole seconds above (`2m0s` is `2m`).
    Fine,
}

/// A duration for messages.
pub fn duration(d: Duration, resolution: Resolution) -> String {
    match resolution {
        Resolution::Fine if d < Duration::from_secs(1) => format!("{}ms", d.as_millis()),
        Resolution::Fine if d < Duration::from_secs(60) => {
            let tenths = (d.as_secs_f64() * 10.0).round() / 10.0;
            format!("{tenths}s")
        }
        Resolution::Fine | Resolution::Seconds => {
            let total = d.as_secs();
            let (h, m, s) = (total / 3600, (total % 3600) / 60, total % 60);
            let mut out = String::new();
            if h > 0 {
                out.push_str(&format!("{h}h"));
            }
            if m > 0 {
                out.push_str(&format!("{m}m"));
            }
            if s > 0 || out.is_empty() {
                out.push_str(&format!("{s}s"));
            }
            out
        }
    }
}

/// Which errors of a cause chain a message shows, joined by `: `.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Causes {
    /// The error and every cause (as `anyhow` writes `{:#}`).
    All,
    /// The error and each cause whose text the message does not hold yet (for events: an error
    /// that writes its cause into its own text does not repeat it).
    New,
    /// Every cause below the error, or the error alone when it has none (for client errors whose
    /// own text repeats what the message already says, such as the whole URL).
    BelowTop,
    /// Only the deepest cause.
    Root,
}

/// An error with (some of) its cause chain.
pub fn error_chain(error: &dyn Error, causes: Causes) -> String {
    let mut texts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        texts.push(cause.to_string());
        source = cause.source();
    }
    match causes {
        Causes::All => texts.join(": "),
        Causes::New => {
            let mut text = texts.remove(0);
            for cause in texts {
                if !text.contains(&cause) {
                    text.push_str(": ");
                    text.push_str(&cause);
                }
            }
            text
        }
        Causes::BelowTop if texts.len() > 1 => texts[1..].join(": "),
        Causes::BelowTop => texts.remove(0),
        Causes::Root => texts.pop().unwrap_or_default(),
    }
}

/// `text` cut to at most `max` bytes at a character boundary, with an ellipsis when cut: for
/// messages stored in status, events and logs, whose source can be a whole answer body.
pub fn shorten(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut short = prefix(text, max).to_owned();
    short.push('…');
    short
}

/// The longest start of `text` of at most `max` bytes that ends at a character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    let cut = (0..=max.min(text.len()))
        .rev()
        .find(|i| text.is_char_boundary(*i))
        .unwrap_or(0);
    text.get(..cut).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_six_or_three_decimals() {
        assert_eq!(number(85.0, Precision::Micro), "85");
        assert_eq!(number(0.1 + 0.2, Precision::Micro), "0.3");
        assert_eq!(number(1.23456789, Precision::Micro), "1.234568");
        assert_eq!(number(-0.0, Precision::Micro), "-0");
        assert_eq!(number(50.0, Precision::Milli), "50");
        assert_eq!(number(0.275, Precision::Milli), "0.275");
        assert_eq!(number(1.23456, Precision::Milli), "1.235");
        assert_eq!(number(-0.0001, Precision::Milli), "0");
    }

    #[test]
    fn measurements_read_as_people_write_them() {
        let human = |x| number(x, Precision::Human);
        assert_eq!(human(82.407069), "82");
        assert_eq!(human(35.254905), "35");
        assert_eq!(human(250.6), "251");
        assert_eq!(human(1.54), "1.5");
        assert_eq!(human(0.0532), "0.053");
        assert_eq!(human(0.5), "0.5");
        assert_eq!(human(0.00123), "0.0012");
        assert_eq!(human(0.0), "0");
        assert_eq!(human(-0.0001), "-0.0001");
        assert_eq!(human(-0.0), "0");
        assert_eq!(human(1e-15), "0");
        assert_eq!(human(f64::INFINITY), "inf");
    }

    #[test]
    fn two_numbers_that_differ_never_read_the_same() {
        assert_eq!(apart(82.407, 70.0), ("82".into(), "70".into()));
        assert_eq!(apart(70.2, 70.0), ("70.2".into(), "70".into()));
        assert_eq!(apart(70.0, 70.0), ("70".into(), "70".into()));
    }

    #[test]
    fn durations_read_naturally_in_messages() {
        assert_eq!(
            duration(Duration::from_millis(500), Resolution::Fine),
            "500ms"
        );
        assert_eq!(
            duration(Duration::from_millis(1540), Resolution::Fine),
            "1.5s"
        );
        assert_eq!(duration(Duration::from_secs(62), Resolution::Fine), "1m2s");
        assert_eq!(
            duration(Duration::from_millis(1540), Resolution::Seconds),
            "1s"
        );
        assert_eq!(
            duration(Duration::from_secs(5400), Resolution::Seconds),
            "1h30m"
        );
        assert_eq!(duration(Duration::ZERO, Resolution::Seconds), "0s");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("{text}")]
    struct Layer {
        text: &'static str,
        #[source]
        cause: Option<Box<Layer>>,
    }

    fn chain(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |cause, text| {
                Some(Layer {
                    text,
                    cause: cause.map(Box::new),
                })
            })
            .unwrap_or(Layer {
                text: "",
                cause: None,
            })
    }

    #[test]
    fn a_chain_shows_all_new_lower_or_root_causes() {
        let e = chain(&["cannot scale: timed out", "timed out", "os error 110"]);
        assert_eq!(
            error_chain(&e, Causes::All),
            "cannot scale: timed out: timed out: os error 110"
        );
        assert_eq!(
            error_chain(&e, Causes::New),
            "cannot scale: timed out: os error 110"
        );
        assert_eq!(error_chain(&e, Causes::BelowTop), "timed out: os error 110");
        assert_eq!(error_chain(&e, Causes::Root), "os error 110");
        let alone = chain(&["alone"]);
        assert_eq!(error_chain(&alone, Causes::BelowTop), "alone");
        assert_eq!(error_chain(&alone, Causes::Root), "alone");
    }

    #[test]
    fn long_text_is_cut_at_a_character_boundary() {
        assert_eq!(shorten("short", 10), "short");
        assert_eq!(shorten("abcdef", 3), "abc…");
        // 'é' is two bytes: a cut inside it moves before it.
        assert_eq!(shorten("aéb", 2), "a…");
        assert_eq!(shorten("éé", 0), "…");
        assert_eq!(prefix("aéb", 2), "a");
        assert_eq!(prefix("ab", 10), "ab");
    }
}
