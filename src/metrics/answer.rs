//! Classifying what a server answered: a number, or exactly why there is none. Pure functions, so
//! every case is tested without a server.

use std::time::Duration;

use prometheus_http_query::response::{Data, PromqlResult};
use serde::Deserialize;

use super::observation::{Failure, Invalid, Sample};
use super::plan::SourceKind;

/// How much of an unexpected body a message quotes.
const BODY_EXCERPT: usize = 200;

/// What an instant query answered.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// No series.
    Nothing,
    /// Exactly one number.
    Number(f64),
    /// Several series.
    Series(usize),
    /// A string or a range vector.
    Other(String),
}

/// The envelope of every Prometheus HTTP API answer.
#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<serde_json::Value>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

/// Reads an HTTP answer of `/api/v1/query`: the HTTP status, its `Content-Type` and the body.
/// Everything but a well-formed success is [`Failure::Unavailable`], with a message saying which.
pub fn classify(status: u16, content_type: Option<&str>, body: &[u8]) -> Result<Answer, Failure> {
    let envelope: Option<Envelope> = serde_json::from_slice(body).ok();
    let Some(envelope) = envelope else {
        let what = if (200..300).contains(&status) {
            format!(
                "malformed answer (HTTP {status}, {}): not a Prometheus API response",
                content_type.unwrap_or("no content type")
            )
        } else {
            format!("HTTP {status} {}", reason(status))
        };
        return Err(Failure::Unavailable(format!("{what}: {}", excerpt(body))));
    };
    if envelope.status != "success" {
        return Err(Failure::Unavailable(format!(
            "the server refused the query (HTTP {status}, {}): {}",
            envelope.error_type.as_deref().unwrap_or("error"),
            envelope.error.as_deref().unwrap_or("no message")
        )));
    }
    if !(200..300).contains(&status) {
        return Err(Failure::Unavailable(format!(
            "HTTP {status} {}: {}",
            reason(status),
            excerpt(body)
        )));
    }
    let data = envelope.data.unwrap_or(serde_json::Value::Null);
    match data.get("resultType").and_then(serde_json::Value::as_str) {
        Some("string") => return Ok(Answer::Other("string".into())),
        Some("matrix") => return Ok(Answer::Other("range vector".into())),
        _ => {}
    }
    let result: PromqlResult = serde_json::from_value(data).map_err(|e| {
        Failure::Unavailable(format!(
            "malformed answer (HTTP {status}): the data is not an instant vector or scalar: {e}"
        ))
    })?;
    Ok(match result.data() {
        Data::Scalar(sample) => Answer::Number(sample.value()),
        Data::Vector(v) => match v.as_slice() {
            [] => Answer::Nothing,
            [one] => Answer::Number(one.sample().value()),
            many => Answer::Series(many.len()),
        },
        Data::Matrix(_) => Answer::Other("range vector".into()),
    })
}

/// The value of a metric from the answer of its value query.
pub fn value(answer: &Answer, kind: SourceKind) -> Result<f64, Failure> {
    let v = match answer {
        Answer::Nothing => return Err(Failure::Empty),
        Answer::Series(n) => return Err(Failure::Invalid(Invalid::Series(*n))),
        Answer::Other(what) => return Err(Failure::Invalid(Invalid::NotANumber(what.clone()))),
        Answer::Number(v) => *v,
    };
    if v.is_nan() {
        Err(Failure::Invalid(Invalid::NaN))
    } else if v.is_infinite() {
        Err(Failure::Invalid(Invalid::Infinite(v)))
    } else if v < 0.0 && !kind.allows_negative() {
        Err(Failure::Invalid(Invalid::Negative {
            value: v,
            source: kind,
        }))
    } else {
        Ok(v)
    }
}

/// The age of the data from the answer of the age query: `None` when no current sample exists.
pub fn age(answer: &Answer) -> Result<Option<Duration>, Failure> {
    match answer {
        Answer::Nothing => Ok(None),
        Answer::Number(seconds) if seconds.is_finite() => {
            // A sample stamped in the future (clock skew) is as fresh as can be.
            Ok(Some(Duration::from_secs_f64(seconds.max(0.0))))
        }
        other => Err(Failure::Unavailable(format!(
            "cannot measure the age of the samples: the age query answered {other:?}"
        ))),
    }
}

/// The observation from both answers. Failures of the value come first; then the age decides
/// whether the value is stale.
pub fn judge(
    kind: SourceKind,
    value_answer: Result<Answer, Failure>,
    age_answer: Option<Result<Answer, Failure>>,
    staleness_limit: Duration,
) -> Result<Sample, Failure> {
    let v = value(&value_answer?, kind)?;
    let Some(age_answer) = age_answer else {
        return Ok(Sample {
            value: v,
            age: None,
        });
    };
    let age_answer = age_answer.map_err(|f| match f {
        Failure::Unavailable(m) => {
            Failure::Unavailable(format!("cannot measure the age of the samples: {m}"))
        }
        other => other,
    })?;
    match age(&age_answer)? {
        None => Err(Failure::Stale {
            age: None,
            limit: staleness_limit,
        }),
        Some(a) if a > staleness_limit => Err(Failure::Stale {
            age: Some(a),
            limit: staleness_limit,
        }),
        Some(a) => Ok(Sample {
            value: v,
            age: Some(a),
        }),
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// The start of a body, on one line, for messages.
fn excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() {
        return "empty body".into();
    }
    let mut cut: String = line.chars().take(BODY_EXCERPT).collect();
    if cut.len() < line.len() {
        cut.push_str("...");
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");

    fn ok(body: &str) -> Result<Answer, Failure> {
        classify(200, JSON, body.as_bytes())
    }

    fn vector(values: &[&str]) -> String {
        let items: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(i, v)| format!(r#"{{"metric":{{"i":"{i}"}},"value":[1700000000.5,"{v}"]}}"#))
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            items.join(",")
        )
    }

    #[test]
    fn one_series_is_a_number() {
        assert_eq!(ok(&vector(&["75.5"])), Ok(Answer::Number(75.5)));
    }

    #[test]
    fn a_scalar_is_a_number() {
        assert_eq!(
            ok(r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#),
            Ok(Answer::Number(3.0))
        );
    }

    #[test]
    fn no_series_is_nothing_and_reads_as_empty() {
        let answer = ok(&vector(&[])).unwrap();
        assert_eq!(answer, Answer::Nothing);
        assert_eq!(value(&answer, SourceKind::Query), Err(Failure::Empty));
    }

    #[test]
    fn two_series_are_invalid_with_their_count() {
        let answer = ok(&vector(&["1", "2"])).unwrap();
        assert_eq!(
            value(&answer, SourceKind::Query),
            Err(Failure::Invalid(Invalid::Series(2)))
        );
    }

    #[test]
    fn nan_and_infinities_are_invalid() {
        for (text, want) in [
            ("NaN", Invalid::NaN),
            ("+Inf", Invalid::Infinite(f64::INFINITY)),
            ("-Inf", Invalid::Infinite(f64::NEG_INFINITY)),
        ] {
            let answer = ok(&vector(&[text])).unwrap();
            assert_eq!(
                value(&answer, SourceKind::Query),
                Err(Failure::Invalid(want)),
                "{text}"
            );
        }
    }

    #[test]
    fn negative_values_are_invalid_except_for_queries() {
        let answer = ok(&vector(&["-2"])).unwrap();
        assert_eq!(value(&answer, SourceKind::Query), Ok(-2.0));
        assert_eq!(
            value(&answer, SourceKind::RequestRate),
            Err(Failure::Invalid(Invalid::Negative {
                value: -2.0,
                source: SourceKind::RequestRate
            }))
        );
        assert_eq!(
            Failure::Invalid(Invalid::Negative {
                value: -2.0,
                source: SourceKind::Cpu
            })
            .to_string(),
            "the value -2 is negative, which a cpu metric cannot be"
        );
    }

    #[test]
    fn strings_and_range_vectors_are_not_a_number() {
        let answer =
            ok(r#"{"status":"success","data":{"resultType":"string","result":[1,"x"]}}"#).unwrap();
        assert_eq!(
            value(&answer, SourceKind::Query),
            Err(Failure::Invalid(Invalid::NotANumber("string".into())))
        );
        let answer = ok(r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#);
        assert_eq!(answer, Ok(Answer::Other("range vector".into())));
    }

    #[test]
    fn a_promql_error_is_unavailable_with_the_servers_message() {
        let body = r#"{"status":"error","errorType":"bad_data","error":"invalid parameter \"query\": 1:5: parse error"}"#;
        assert_eq!(
            classify(400, JSON, body.as_bytes()),
            Err(Failure::Unavailable(
                r#"the server refused the query (HTTP 400, bad_data): invalid parameter "query": 1:5: parse error"#
                    .into()
            ))
        );
    }

    #[test]
    fn an_http_error_without_json_is_unavailable_with_status_and_body() {
        assert_eq!(
            classify(500, Some("text/plain"), b"upstream exploded\n"),
            Err(Failure::Unavailable(
                r#"HTTP 500 Internal Server Error: "upstream exploded""#.into()
            ))
        );
    }

    #[test]
    fn an_error_status_with_a_success_body_is_still_unavailable() {
        assert_eq!(
            classify(502, JSON, vector(&["1"]).as_bytes()),
            Err(Failure::Unavailable(format!(
                "HTTP 502 Bad Gateway: {:?}",
                vector(&["1"])
            )))
        );
    }

    #[test]
    fn a_malformed_body_is_unavailable_and_says_so() {
        assert_eq!(
            classify(200, Some("text/html"), b"<html>login</html>"),
            Err(Failure::Unavailable(
                r#"malformed answer (HTTP 200, text/html): not a Prometheus API response: "<html>login</html>""#
                    .into()
            ))
        );
        let Err(Failure::Unavailable(message)) = classify(
            200,
            JSON,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
        ) else {
            panic!("a value that is not a number must be unavailable");
        };
        assert!(
            message.starts_with(
                "malformed answer (HTTP 200): the data is not an instant vector or scalar"
            ),
            "{message}"
        );
        assert_eq!(
            classify(200, JSON, b""),
            Err(Failure::Unavailable(
                "malformed answer (HTTP 200, application/json): not a Prometheus API response: empty body"
                    .into()
            ))
        );
    }

    #[test]
    fn a_fresh_value_carries_its_age() {
        assert_eq!(
            judge(
                SourceKind::Cpu,
                Ok(Answer::Number(80.0)),
                Some(Ok(Answer::Number(1.5))),
                Duration::from_secs(90)
            ),
            Ok(Sample {
                value: 80.0,
                age: Some(Duration::from_millis(1500))
            })
        );
    }

    #[test]
    fn a_value_older_than_the_limit_is_stale_with_its_age() {
        assert_eq!(
            judge(
                SourceKind::Query,
                Ok(Answer::Number(3.0)),
                Some(Ok(Answer::Number(120.0))),
                Duration::from_secs(62)
            ),
            Err(Failure::Stale {
                age: Some(Duration::from_secs(120)),
                limit: Duration::from_secs(62)
            })
        );
    }

    #[test]
    fn a_value_without_any_current_sample_is_stale() {
        assert_eq!(
            judge(
                SourceKind::RequestRate,
                Ok(Answer::Number(3.0)),
                Some(Ok(Answer::Nothing)),
                Duration::from_secs(62)
            ),
            Err(Failure::Stale {
                age: None,
                limit: Duration::from_secs(62)
            })
        );
    }

    #[test]
    fn value_failures_come_before_staleness() {
        assert_eq!(
            judge(
                SourceKind::Query,
                Ok(Answer::Nothing),
                Some(Ok(Answer::Nothing)),
                Duration::from_secs(62)
            ),
            Err(Failure::Empty)
        );
    }

    #[test]
    fn a_failed_age_query_leaves_the_value_unavailable() {
        assert_eq!(
            judge(
                SourceKind::Query,
                Ok(Answer::Number(1.0)),
                Some(Err(Failure::Unavailable(
                    "HTTP 500 Internal Server Error".into()
                ))),
                Duration::from_secs(62)
            ),
            Err(Failure::Unavailable(
                "cannot measure the age of the samples: HTTP 500 Internal Server Error".into()
            ))
        );
    }

    #[test]
    fn a_query_without_selectors_has_no_age() {
        assert_eq!(
            judge(
                SourceKind::Query,
                Ok(Answer::Number(1.0)),
                None,
                Duration::from_secs(62)
            ),
            Ok(Sample {
                value: 1.0,
                age: None
            })
        );
    }
}
