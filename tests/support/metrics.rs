//! Metric data in and out of Prometheus and VictoriaMetrics: pushing samples
//! with explicit timestamps, and instant queries over the Prometheus HTTP API
//! that both servers speak.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use prost::Message;
use serde_json::Value;

use super::http;

/// A point in time in milliseconds since the Unix epoch, as remote write and
/// the text formats count it.
pub type TimestampMs = i64;

/// Now, whole seconds, in milliseconds since the epoch.
pub fn now_ms() -> TimestampMs {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    i64::try_from(secs).unwrap_or(i64::MAX / 1000) * 1000
}

/// One time series with its samples, e.g.
/// `Series::new("http_requests").label("pod", "a").sample(t, 1.0)`.
#[derive(Clone, Debug)]
pub struct Series {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(TimestampMs, f64)>,
}

impl Series {
    pub fn new(name: &str) -> Self {
        Series {
            name: name.to_owned(),
            labels: BTreeMap::new(),
            samples: Vec::new(),
        }
    }

    pub fn label(mut self, name: &str, value: &str) -> Self {
        self.labels.insert(name.to_owned(), value.to_owned());
        self
    }

    pub fn sample(mut self, at: TimestampMs, value: f64) -> Self {
        self.samples.push((at, value));
        self
    }

    /// The series in the Prometheus text exposition format, one line per
    /// sample, each with its timestamp.
    pub fn to_text(&self) -> String {
        let labels = self
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", escape_label_value(v)))
            .collect::<Vec<_>>()
            .join(",");
        self.samples
            .iter()
            .map(|(at, value)| format!("{}{{{labels}}} {value} {at}\n", self.name))
            .collect()
    }
}

fn escape_label_value(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

// The Prometheus remote-write protocol (prometheus/prompb/types.proto and
// remote.proto), the fields the receiver needs, declared by hand.
#[derive(Clone, PartialEq, Message)]
struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    timeseries: Vec<TimeSeries>,
}

#[derive(Clone, PartialEq, Message)]
struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    samples: Vec<Sample>,
}

#[derive(Clone, PartialEq, Message)]
struct Label {
    #[prost(string, tag = "1")]
    name: String,
    #[prost(string, tag = "2")]
    value: String,
}

#[derive(Clone, PartialEq, Message)]
struct Sample {
    #[prost(double, tag = "1")]
    value: f64,
    #[prost(int64, tag = "2")]
    timestamp: i64,
}

/// The body of a remote-write request: protobuf, snappy block format.
pub fn remote_write_body(series: &[Series]) -> Vec<u8> {
    let request = WriteRequest {
        timeseries: series
            .iter()
            .map(|s| {
                // Labels sorted by name, __name__ first as "_" sorts before letters.
                let mut labels = vec![Label {
                    name: "__name__".to_owned(),
                    value: s.name.clone(),
                }];
                labels.extend(s.labels.iter().map(|(k, v)| Label {
                    name: k.clone(),
                    value: v.clone(),
                }));
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                let mut samples: Vec<Sample> = s
                    .samples
                    .iter()
                    .map(|(at, value)| Sample {
                        value: *value,
                        timestamp: *at,
                    })
                    .collect();
                samples.sort_by_key(|s| s.timestamp);
                TimeSeries { labels, samples }
            })
            .collect(),
    };
    let raw = request.encode_to_vec();
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_else(|e| panic!("snappy compression of {} bytes failed: {e}", raw.len()))
}

/// A server speaking the Prometheus HTTP API: Prometheus or VictoriaMetrics.
#[derive(Clone, Debug)]
pub struct PromApi {
    /// What the test output calls it.
    pub name: &'static str,
    /// Base URL, e.g. `http://127.0.0.1:9090`.
    pub url: String,
}

/// One element of an instant vector.
#[derive(Clone, Debug, PartialEq)]
pub struct VectorSample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl PromApi {
    /// Remote write (`/api/v1/write`), which both servers accept.
    pub async fn remote_write(&self, series: &[Series]) {
        let url = format!("{}/api/v1/write", self.url);
        http::post_ok(
            &url,
            &[
                ("Content-Encoding", "snappy"),
                ("Content-Type", "application/x-protobuf"),
                ("X-Prometheus-Remote-Write-Version", "0.1.0"),
            ],
            remote_write_body(series),
        )
        .await
        .unwrap_or_else(|e| panic!("{}: remote write failed: {e}", self.name));
    }

    /// VictoriaMetrics only: import the text format with timestamps, then
    /// flush so that the samples are searchable at once.
    pub async fn import_prometheus_text(&self, series: &[Series]) {
        let body: String = series.iter().map(Series::to_text).collect();
        let url = format!("{}/api/v1/import/prometheus", self.url);
        http::post_ok(&url, &[("Content-Type", "text/plain")], body)
            .await
            .unwrap_or_else(|e| panic!("{}: import failed: {e}", self.name));
        self.force_flush().await;
    }

    /// VictoriaMetrics only: make recently added samples searchable now.
    pub async fn force_flush(&self) {
        let url = format!("{}/internal/force_flush", self.url);
        http::get_ok(&url)
            .await
            .unwrap_or_else(|e| panic!("{}: force flush failed: {e}", self.name));
    }

    /// An instant query at `at` (now when `None`); the result as a vector
    /// (a scalar result becomes one sample without labels).
    pub async fn query(&self, promql: &str, at: Option<TimestampMs>) -> Vec<VectorSample> {
        let mut params = form_urlencoded::Serializer::new(String::new());
        params.append_pair("query", promql);
        if let Some(at) = at {
            params.append_pair("time", &format!("{}.{:03}", at / 1000, at % 1000));
        }
        let url = format!("{}/api/v1/query?{}", self.url, params.finish());
        let body = http::get_ok(&url)
            .await
            .unwrap_or_else(|e| panic!("{}: query {promql:?} failed: {e}", self.name));
        let json: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "{}: query {promql:?}: response is not JSON ({e}): {}",
                self.name,
                String::from_utf8_lossy(&body)
            )
        });
        parse_query_response(&json)
            .unwrap_or_else(|e| panic!("{}: query {promql:?}: {e}: {json}", self.name))
    }

    /// The value of a query that must return exactly one sample.
    pub async fn query_value(&self, promql: &str, at: Option<TimestampMs>) -> f64 {
        let result = self.query(promql, at).await;
        match result.as_slice() {
            [one] => one.value,
            _ => panic!(
                "{}: query {promql:?} at {at:?} returned {} samples, want exactly 1: {result:?}",
                self.name,
                result.len()
            ),
        }
    }

    /// Polls until the query returns exactly one sample equal to `want`;
    /// panics with the last result after `timeout`.
    pub async fn wait_for_value(&self, promql: &str, want: f64, timeout: Duration) {
        let start = Instant::now();
        loop {
            let result = self.query(promql, None).await;
            if let [one] = result.as_slice()
                && one.value == want
            {
                return;
            }
            if start.elapsed() > timeout {
                panic!(
                    "{}: query {promql:?} did not return {want} within {timeout:?}; last result: {result:?}",
                    self.name
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn parse_query_response(json: &Value) -> Result<Vec<VectorSample>, String> {
    if json["status"] != "success" {
        return Err("status is not success".to_owned());
    }
    let data = &json["data"];
    let value_of = |pair: &Value| -> Result<f64, String> {
        pair[1]
            .as_str()
            .ok_or("a value is not a string")?
            .parse::<f64>()
            .map_err(|e| format!("a value is not a number: {e}"))
    };
    match data["resultType"].as_str() {
        Some("vector") => data["result"]
            .as_array()
            .ok_or("result is not an array")?
            .iter()
            .map(|item| {
                let labels = item["metric"]
                    .as_object()
                    .ok_or("metric is not an object")?
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                    .collect();
                Ok(VectorSample {
                    labels,
                    value: value_of(&item["value"])?,
                })
            })
            .collect(),
        Some("scalar") => Ok(vec![VectorSample {
            labels: BTreeMap::new(),
            value: value_of(&data["result"])?,
        }]),
        other => Err(format!("unexpected resultType {other:?}")),
    }
}
