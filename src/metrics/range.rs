//! A metric's history, read with one range query (`/api/v1/query_range`) for `spec.forecast`:
//! the metric's own PromQL, scoped to the policy's namespace like its instant query, under the
//! same answer caps (`--prometheus-max-answer-bytes`) and the same fair query slots
//! (`--max-concurrent-queries`).

use serde::Deserialize;

use super::limits::truncate_message;
use crate::decide::forecast::History;

/// The span and resolution of one history read, in Unix seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    pub from: i64,
    pub to: i64,
    pub step: i64,
}

impl Span {
    /// Points the span holds.
    pub fn points(&self) -> usize {
        let steps = self
            .to
            .saturating_sub(self.from)
            .checked_div(self.step.max(1))
            .unwrap_or(0);
        usize::try_from(steps.saturating_add(1)).unwrap_or(0)
    }
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    #[serde(default)]
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    #[serde(default)]
    values: Vec<(f64, String)>,
}

/// Reads a range query's answer into the history of `span`: one series (its points placed on the
/// span's steps; values that are not finite numbers, or negative where `negative` is false, are
/// gaps), no series (all gaps), or an error naming what is wrong.
pub fn history(status: u16, body: &[u8], span: Span, negative: bool) -> Result<History, String> {
    let envelope: Envelope = serde_json::from_slice(body).map_err(|e| {
        truncate_message(format!(
            "the range query's answer (HTTP {status}) is not a Prometheus API response: {e}"
        ))
    })?;
    if envelope.status != "success" || !(200..300).contains(&status) {
        return Err(truncate_message(format!(
            "the server refused the range query (HTTP {status}, {}): {}",
            envelope.error_type.as_deref().unwrap_or("error"),
            envelope.error.as_deref().unwrap_or("no message")
        )));
    }
    let Some(data) = envelope.data else {
        return Err("the range query's answer has no data".to_owned());
    };
    if data.result_type != "matrix" {
        return Err(truncate_message(format!(
            "the range query answered a {:?}, not a matrix",
            data.result_type
        )));
    }
    let mut history = History::new(span.from, span.step);
    history.values = vec![None; span.points()];
    match data.result.as_slice() {
        [] => {}
        [one] => {
            for (t, v) in &one.values {
                let offset = (t - span.from as f64) / span.step as f64;
                let index = offset.round();
                if !(index >= 0.0 && index < history.values.len() as f64) {
                    continue;
                }
                // In range: checked just above.
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                let index = index as usize;
                let value = v
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && (negative || *v >= 0.0));
                if let Some(slot) = history.values.get_mut(index) {
                    *slot = value;
                }
            }
        }
        many => {
            return Err(format!(
                "the range query returned {} series; the metric must yield exactly one number",
                many.len()
            ));
        }
    }
    Ok(history)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPAN: Span = Span {
        from: 1000,
        to: 1240,
        step: 60,
    };

    #[test]
    fn one_series_fills_its_steps_and_leaves_gaps() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1000,"1"],[1120,"3.5"],[1180,"NaN"],[1240,"-2"]]}]}}"#;
        let h = history(200, body, SPAN, false).unwrap();
        assert_eq!(h.values, vec![Some(1.0), None, Some(3.5), None, None]);
        let h = history(200, body, SPAN, true).unwrap();
        assert_eq!(h.values[4], Some(-2.0));
    }

    #[test]
    fn no_series_is_all_gaps_and_many_is_an_error() {
        let empty = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert_eq!(
            history(200, empty, SPAN, false).unwrap().values,
            vec![None; 5]
        );
        let two = br#"{"status":"success","data":{"resultType":"matrix","result":[{"values":[]},{"values":[]}]}}"#;
        let e = history(200, two, SPAN, false).unwrap_err();
        assert!(e.contains("returned 2 series"), "{e}");
    }

    #[test]
    fn refusals_and_garbage_say_what_came_back() {
        let refused = br#"{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution of 11,000 points per timeseries"}"#;
        let e = history(400, refused, SPAN, false).unwrap_err();
        assert!(
            e.contains("HTTP 400, bad_data") && e.contains("11,000"),
            "{e}"
        );
        let e = history(200, b"<html>", SPAN, false).unwrap_err();
        assert!(e.contains("not a Prometheus API response"), "{e}");
        let vector = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(
            history(200, vector, SPAN, false)
                .unwrap_err()
                .contains("not a matrix")
        );
    }
}
