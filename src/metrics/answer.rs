//! Classifying what a server answered: a number, or exactly why there is none. Pure functions, so
//! every case is tested without a server.

use std::cell::Cell;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::limits::{MAX_MESSAGE_BYTES, truncate};
use super::observation::{Failure, Invalid, Sample};
use super::plan::SourceKind;
use super::promql::{AGE_PART, PART_LABEL, VALUE_PART};

/// How much of an unexpected body a message quotes, in characters.
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
    /// A string, a range vector or a native histogram.
    Other(String),
}

/// The envelope of every Prometheus HTTP API answer (`data` is read by a second pass, [`Body`]).
/// Its strings are kept only up to the length of a message.
#[derive(Deserialize)]
struct Envelope {
    status: Short,
    #[serde(default, rename = "errorType")]
    error_type: Option<Short>,
    #[serde(default)]
    error: Option<Short>,
}

/// Reads an HTTP answer of `/api/v1/query`: the HTTP status, its `Content-Type` and the body.
/// Everything but a well-formed success is [`Failure::Unavailable`], with a message saying which;
/// an answer of more than `max_series` series is [`Invalid::TooManySeries`].
///
/// The answer is parsed without building a value per series or a tree of the JSON: what it costs
/// beyond the body is one message-sized string per field kept and serde_json's scratch buffer
/// (at most the length of the body's longest string, or one byte per level of nesting).
pub fn classify(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    max_series: usize,
) -> Result<Answer, Failure> {
    let data = parse(status, content_type, body, max_series)?;
    match data.result_type.as_ref().map(|s| s.0.as_str()) {
        Some("string") => Ok(Answer::Other("string".into())),
        Some("matrix") => Ok(Answer::Other("range vector".into())),
        Some("scalar") => match (data.result, data.items.as_slice()) {
            (Some(n), [Item::Number, Item::Value(v)]) if n.len == 2 => Ok(Answer::Number(*v)),
            _ => Err(malformed(status, &"a scalar is [time, \"value\"]")),
        },
        Some("vector") => {
            let Some(result) = data.result else {
                return Err(malformed(status, &"no result"));
            };
            if result.series != result.len {
                return Err(malformed(status, &"a vector holds series objects only"));
            }
            series_answer(status, result.series, data.items.first())
        }
        Some(other) => Err(malformed(
            status,
            &format_args!("resultType {:?}", short(other)),
        )),
        None => Err(malformed(status, &"no resultType")),
    }
}

/// Reads the answer of a metric's combined query (see [`super::promql::reading`]): the answer of
/// its value part and of its age part, as [`classify`] reads each query alone. The value part
/// may hold up to `max_series` series; a series of neither part makes the answer malformed.
pub fn classify_combined(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    max_series: usize,
) -> Result<(Answer, Answer), Failure> {
    // The age part is one series at most: the cap is the value part's.
    let data =
        parse(status, content_type, body, max_series.saturating_add(1)).map_err(|f| match f {
            Failure::Invalid(Invalid::TooManySeries { .. }) => {
                Failure::Invalid(Invalid::TooManySeries { limit: max_series })
            }
            other => other,
        })?;
    match data.result_type.as_ref().map(|s| s.0.as_str()) {
        Some("vector") => {}
        Some(other) => {
            return Err(malformed(
                status,
                &format_args!(
                    "resultType {:?} (a value with the age of its samples is a vector)",
                    short(other)
                ),
            ));
        }
        None => return Err(malformed(status, &"no resultType")),
    }
    let Some(result) = data.result else {
        return Err(malformed(status, &"no result"));
    };
    if result.series != result.len {
        return Err(malformed(status, &"a vector holds series objects only"));
    }
    let parts = data.parts;
    if parts.unmarked > 0 {
        return Err(malformed(
            status,
            &format_args!(
                "{} series without the {PART_LABEL} label of a value or an age",
                parts.unmarked
            ),
        ));
    }
    if parts.value.series > max_series {
        return Err(Failure::Invalid(Invalid::TooManySeries {
            limit: max_series,
        }));
    }
    let value = series_answer(status, parts.value.series, parts.value.first.as_ref())?;
    let age = series_answer(status, parts.age.series, parts.age.first.as_ref())?;
    Ok((value, age))
}

/// A vector's answer from its number of series and its first one.
fn series_answer(status: u16, series: usize, first: Option<&Item>) -> Result<Answer, Failure> {
    match (series, first) {
        (0, _) => Ok(Answer::Nothing),
        (1, Some(Item::Series(Some(v), _))) => Ok(Answer::Number(*v)),
        (1, Some(Item::Histogram(_))) => Ok(Answer::Other("native histogram".into())),
        (1, _) => Err(malformed(status, &"the series has no value")),
        (n, _) => Ok(Answer::Series(n)),
    }
}

/// An answer whose data [`classify`] cannot read.
fn malformed(status: u16, why: &dyn fmt::Display) -> Failure {
    Failure::unavailable(format!(
        "malformed answer (HTTP {status}): the data is not an instant vector or scalar: {why}"
    ))
}

/// The data of a well-formed success of at most `max_series` series; otherwise why there is
/// none.
fn parse(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    max_series: usize,
) -> Result<Data, Failure> {
    let envelope: Option<Envelope> = serde_json::from_slice(body).ok();
    let Some(envelope) = envelope else {
        let what = if (200..300).contains(&status) {
            format!(
                "malformed answer (HTTP {status}, {}): not a Prometheus API response",
                content_type.map_or_else(|| "no content type".to_owned(), short)
            )
        } else {
            format!("HTTP {status} {}", reason(status))
        };
        return Err(Failure::unavailable(format!("{what}: {}", excerpt(body))));
    };
    if envelope.status.0 != "success" {
        return Err(Failure::unavailable(format!(
            "the server refused the query (HTTP {status}, {}): {}",
            envelope
                .error_type
                .as_ref()
                .map_or("error", |s| s.0.as_str()),
            envelope
                .error
                .as_ref()
                .map_or("no message", |s| s.0.as_str())
        )));
    }
    if !(200..300).contains(&status) {
        return Err(Failure::unavailable(format!(
            "HTTP {status} {}: {}",
            reason(status),
            excerpt(body)
        )));
    }
    let exceeded = Cell::new(false);
    let mut de = serde_json::Deserializer::from_slice(body);
    let parsed = Body {
        max_series,
        exceeded: &exceeded,
    }
    .deserialize(&mut de)
    .and_then(|data| de.end().map(|()| data));
    if exceeded.get() {
        return Err(Failure::Invalid(Invalid::TooManySeries {
            limit: max_series,
        }));
    }
    match parsed {
        Ok(Some(data)) => Ok(data),
        Ok(None) => Err(malformed(status, &"no data")),
        Err(e) => Err(malformed(status, &e)),
    }
}

/// A string of the answer, kept only up to the length of a message (a server's error text may
/// be as long as the body).
struct Short(String);

impl<'de> Deserialize<'de> for Short {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ShortVisitor;
        impl Visitor<'_> for ShortVisitor {
            type Value = Short;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Short, E> {
                Ok(Short(short(v)))
            }
        }
        deserializer.deserialize_str(ShortVisitor)
    }
}

/// `text` cut to a message's length (copying only what is kept).
fn short(text: &str) -> String {
    truncate(
        crate::text::prefix(text, MAX_MESSAGE_BYTES.saturating_add(4)).to_owned(),
        MAX_MESSAGE_BYTES,
    )
}

/// A sample's value: a float in a JSON string (`"75.5"`, `"NaN"`, `"+Inf"`), parsed where it
/// lies.
struct Value(f64);

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl Visitor<'_> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a float value inside a quoted JSON string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
                v.parse()
                    .map(Value)
                    .map_err(|_| E::invalid_value(de::Unexpected::Str(&short(v)), &self))
            }
        }
        deserializer.deserialize_str(ValueVisitor)
    }
}

/// The top level of a success: only `data` is read.
struct Body<'a> {
    max_series: usize,
    exceeded: &'a Cell<bool>,
}

/// `data` of an instant query: its type, what its result holds, and the first items of the
/// result (a series' value, or a scalar's time and value).
struct Data {
    result_type: Option<Short>,
    result: Option<Counted>,
    items: Vec<Item>,
    /// The series of each part of a combined answer.
    parts: Parts,
}

/// The series of a combined answer, by the part their [`PART_LABEL`] names.
#[derive(Default)]
struct Parts {
    value: PartSeries,
    age: PartSeries,
    /// Series of neither part.
    unmarked: usize,
}

/// How many series a part holds, and its first.
#[derive(Default)]
struct PartSeries {
    series: usize,
    first: Option<Item>,
}

impl PartSeries {
    fn add(&mut self, item: Item) {
        self.series = self.series.saturating_add(1);
        if self.first.is_none() {
            self.first = Some(item);
        }
    }
}

impl Parts {
    fn add(&mut self, item: Item) {
        match item.part() {
            Some(Part::Value) => self.value.add(item),
            Some(Part::Age) => self.age.add(item),
            Some(Part::Unmarked) => self.unmarked = self.unmarked.saturating_add(1),
            None => {}
        }
    }
}

/// What a result array held.
#[derive(Clone, Copy)]
struct Counted {
    /// Its elements.
    len: usize,
    /// Its elements that are series (objects).
    series: usize,
}

/// One element of a result array, as far as it matters.
#[derive(Clone, Copy)]
enum Item {
    /// A series with its instant value (none for a range vector's series), and the part of a
    /// combined answer its labels name.
    Series(Option<f64>, Part),
    /// A series holding a native histogram instead of a value.
    Histogram(Part),
    /// A number: a scalar's or a string's time.
    Number,
    /// A string that is a float: a scalar's value.
    Value(f64),
    /// Anything else.
    Other,
}

impl Item {
    /// The part of a series; `None` for what is not a series.
    fn part(&self) -> Option<Part> {
        match self {
            Item::Series(_, part) | Item::Histogram(part) => Some(*part),
            Item::Number | Item::Value(_) | Item::Other => None,
        }
    }
}

/// The part of a combined answer a series belongs to, by its [`PART_LABEL`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Value,
    Age,
    /// Without the label, or with another value.
    Unmarked,
}

/// A series' labels, as far as they name its [`Part`].
struct PartOf(Part);

impl<'de> Deserialize<'de> for PartOf {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LabelsVisitor;
        impl<'de> Visitor<'de> for LabelsVisitor {
            type Value = PartOf;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("the labels of a series")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PartOf, A::Error> {
                let mut part = Part::Unmarked;
                while let Some(key) = map.next_key::<Short>()? {
                    if key.0 == PART_LABEL {
                        let value: Short = map.next_value()?;
                        part = match value.0.as_str() {
                            VALUE_PART => Part::Value,
                            AGE_PART => Part::Age,
                            _ => Part::Unmarked,
                        };
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(PartOf(part))
            }
        }
        deserializer.deserialize_map(LabelsVisitor)
    }
}

/// How many leading items of a result are kept: a scalar is `[time, "value"]`.
const KEPT_ITEMS: usize = 2;

impl<'de> DeserializeSeed<'de> for Body<'_> {
    type Value = Option<Data>;

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Body<'_> {
    type Value = Option<Data>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Prometheus API response")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut data = None;
        while let Some(key) = map.next_key::<Short>()? {
            if key.0 == "data" && data.is_none() {
                data = Some(map.next_value_seed(DataSeed {
                    max_series: self.max_series,
                    exceeded: self.exceeded,
                })?);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(data)
    }
}

struct DataSeed<'a> {
    max_series: usize,
    exceeded: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for DataSeed<'_> {
    type Value = Data;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<Data, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DataSeed<'_> {
    type Value = Data;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object with resultType and result")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Data, A::Error> {
        let mut data = Data {
            result_type: None,
            result: None,
            items: Vec::new(),
            parts: Parts::default(),
        };
        while let Some(key) = map.next_key::<Short>()? {
            match key.0.as_str() {
                "resultType" if data.result_type.is_none() => {
                    data.result_type = Some(map.next_value()?);
                }
                "result" if data.result.is_none() => {
                    let (counted, items, parts) = map.next_value_seed(ResultSeed {
                        max_series: self.max_series,
                        exceeded: self.exceeded,
                    })?;
                    data.result = Some(counted);
                    data.items = items;
                    data.parts = parts;
                }
                "resultType" | "result" => {
                    return Err(de::Error::custom(format_args!(
                        "duplicate field `{}`",
                        key.0
                    )));
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(data)
    }
}

/// The result array, counted while it is read: the series beyond `max_series` stop the parse
/// (and set `exceeded`); only the first [`KEPT_ITEMS`] items are kept, and the first series of
/// each part.
struct ResultSeed<'a> {
    max_series: usize,
    exceeded: &'a Cell<bool>,
}

impl<'de> DeserializeSeed<'de> for ResultSeed<'_> {
    type Value = (Counted, Vec<Item>, Parts);

    fn deserialize<D: de::Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for ResultSeed<'_> {
    type Value = (Counted, Vec<Item>, Parts);

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut counted = Counted { len: 0, series: 0 };
        let mut items = Vec::new();
        let mut parts = Parts::default();
        while let Some(item) = seq.next_element::<Item>()? {
            counted.len = counted.len.saturating_add(1);
            if item.part().is_some() {
                counted.series = counted.series.saturating_add(1);
                if counted.series > self.max_series {
                    self.exceeded.set(true);
                    return Err(de::Error::custom("too many series"));
                }
            }
            parts.add(item);
            if items.len() < KEPT_ITEMS {
                items.push(item);
            }
        }
        Ok((counted, items, parts))
    }
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ItemVisitor)
    }
}

struct ItemVisitor;

impl<'de> Visitor<'de> for ItemVisitor {
    type Value = Item;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a series, a time or a value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
        let mut value = None;
        let mut histogram = false;
        let mut part = Part::Unmarked;
        while let Some(key) = map.next_key::<Short>()? {
            match key.0.as_str() {
                "value" if value.is_none() => {
                    let (_time, v): (f64, Value) = map.next_value()?;
                    value = Some(v.0);
                }
                "histogram" => {
                    map.next_value::<IgnoredAny>()?;
                    histogram = true;
                }
                "metric" => {
                    part = map.next_value::<PartOf>()?.0;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(match value {
            None if histogram => Item::Histogram(part),
            value => Item::Series(value, part),
        })
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Item, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Item::Other)
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Item, E> {
        Ok(Item::Number)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Item, E> {
        Ok(Item::Number)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Item, E> {
        Ok(Item::Number)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
        Ok(v.parse().map_or(Item::Other, Item::Value))
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Item, E> {
        Ok(Item::Other)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Item, E> {
        Ok(Item::Other)
    }
}

/// The per-pod values of a per-pod query's answer (`sum by (namespace, pod) (...)`), by pod
/// name. `body` is an answer [`classify`] accepted: a well-formed success within the series cap.
/// A scalar, a string or a range vector is not a per-pod answer; a series without a `pod` label
/// is [`Invalid::NoPodLabel`]. Each series keeps only its `pod` label and value.
///
/// With `combined`, the answer is a combined query's and only its value part is read.
pub fn per_pod(
    answer: &Answer,
    body: &[u8],
    combined: bool,
) -> Result<BTreeMap<String, f64>, Failure> {
    #[derive(Deserialize)]
    struct PodBody {
        data: PodData,
    }
    #[derive(Deserialize)]
    struct PodData {
        result: Vec<PodSeries>,
    }
    #[derive(Deserialize)]
    struct PodSeries {
        metric: PodLabels,
        value: (IgnoredAny, Value),
    }
    #[derive(Deserialize)]
    struct PodLabels {
        pod: Option<String>,
        #[serde(rename = "scalewise_part")]
        part: Option<String>,
    }
    match answer {
        Answer::Nothing => return Ok(BTreeMap::new()),
        Answer::Number(_) | Answer::Series(_) => {}
        Answer::Other(what) => return Err(Failure::Invalid(Invalid::NotANumber(what.clone()))),
    }
    let parsed: PodBody = serde_json::from_slice(body).map_err(|e| {
        Failure::unavailable(format!(
            "malformed answer: the data is not a vector of series with a value: {e}"
        ))
    })?;
    let mut values = BTreeMap::new();
    for series in parsed.data.result {
        if combined && series.metric.part.as_deref() != Some(VALUE_PART) {
            continue;
        }
        let pod = series
            .metric
            .pod
            .ok_or(Failure::Invalid(Invalid::NoPodLabel))?;
        values.insert(pod, series.value.1.0);
    }
    Ok(values)
}

/// One policy's share of a coalesced answer (see [`super::coalesce`]): its group's value part and
/// age part, as [`classify_combined`] reads a metric's own answer.
#[derive(Clone, Debug, PartialEq)]
pub struct Share {
    /// The value part, or why its series cannot be read.
    pub value: Result<Answer, Failure>,
    /// The series of the value part.
    pub value_series: usize,
    /// The value part by pod, for an answer read per pod: what [`per_pod`] reads from a metric's
    /// own answer.
    pub pods: Option<Result<BTreeMap<String, f64>, Failure>>,
    pub age: Result<Answer, Failure>,
}

/// Splits a coalesced answer by the values of `labels`: one [`Share`] per combination found, its
/// labels' values in `labels` order (a label a series lacks reads as empty, as PromQL's own
/// matchers take it). The whole answer is judged first as [`classify_combined`] judges a
/// metric's own: a failure, a non-vector or more than `max_series` series fails every member.
pub fn split_coalesced(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
    max_series: usize,
    labels: &[String],
    per_pod: bool,
) -> Result<HashMap<Vec<String>, Share>, Failure> {
    #[derive(Deserialize)]
    struct SplitBody {
        data: SplitData,
    }
    #[derive(Deserialize)]
    struct SplitData {
        result: Vec<SplitSeries>,
    }
    #[derive(Deserialize)]
    struct SplitSeries {
        metric: HashMap<String, String>,
        #[serde(default)]
        value: Option<(IgnoredAny, Value)>,
        #[serde(default)]
        histogram: Option<IgnoredAny>,
    }
    #[derive(Default)]
    struct Group {
        value: PartSeries,
        age: PartSeries,
        pods: BTreeMap<String, f64>,
        no_pod_label: bool,
    }
    // The same checks as a metric's own combined answer: success, a vector, every series marked.
    classify_combined(status, content_type, body, max_series)?;
    let parsed: SplitBody = serde_json::from_slice(body).map_err(|e| malformed(status, &e))?;
    let mut groups: HashMap<Vec<String>, Group> = HashMap::new();
    for series in parsed.data.result {
        let part = match series.metric.get(PART_LABEL).map(String::as_str) {
            Some(VALUE_PART) => Part::Value,
            Some(AGE_PART) => Part::Age,
            _ => Part::Unmarked,
        };
        let key: Vec<String> = labels
            .iter()
            .map(|l| series.metric.get(l).cloned().unwrap_or_default())
            .collect();
        let item = match (series.value, series.histogram) {
            (None, Some(_)) => Item::Histogram(part),
            (value, _) => Item::Series(value.map(|v| v.1.0), part),
        };
        let group = groups.entry(key).or_default();
        match part {
            Part::Value => {
                if per_pod {
                    match (series.metric.get("pod"), item) {
                        (Some(pod), Item::Series(Some(v), _)) => {
                            group.pods.insert(pod.clone(), v);
                        }
                        (None, _) => group.no_pod_label = true,
                        _ => {}
                    }
                }
                group.value.add(item);
            }
            Part::Age => group.age.add(item),
            Part::Unmarked => {}
        }
    }
    Ok(groups
        .into_iter()
        .map(|(key, g)| {
            let value = series_answer(status, g.value.series, g.value.first.as_ref());
            let pods = per_pod.then(|| match &value {
                Err(failure) => Err(failure.clone()),
                Ok(Answer::Other(what)) => Err(Failure::Invalid(Invalid::NotANumber(what.clone()))),
                Ok(_) if g.no_pod_label => Err(Failure::Invalid(Invalid::NoPodLabel)),
                Ok(_) => Ok(g.pods),
            });
            let share = Share {
                value,
                value_series: g.value.series,
                pods,
                age: series_answer(status, g.age.series, g.age.first.as_ref()),
            };
            (key, share)
        })
        .collect())
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
            // A sample stamped in the future (clock skew) is as fresh as can be; an age beyond
            // any duration (1e20 s: a server's nonsense) is the longest one, and so stale.
            Ok(Some(
                Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX),
            ))
        }
        other => Err(Failure::unavailable(format!(
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
    let age = fresh(age_answer, staleness_limit)?;
    Ok(Sample { value: v, age })
}

/// The age of the samples behind a value from the answer of its age query (`None` without
/// one), or why they are too old to use.
pub fn fresh(
    age_answer: Option<Result<Answer, Failure>>,
    staleness_limit: Duration,
) -> Result<Option<Duration>, Failure> {
    let Some(age_answer) = age_answer else {
        return Ok(None);
    };
    let age_answer = age_answer.map_err(|f| match f {
        Failure::Unavailable(m) => {
            Failure::unavailable(format!("cannot measure the age of the samples: {m}"))
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
        Some(a) => Ok(Some(a)),
    }
}

fn reason(status: u16) -> &'static str {
    reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("")
}

/// The start of a body, on one line, for messages. Only the body's first bytes are looked at
/// (enough for [`BODY_EXCERPT`] characters of four bytes with some whitespace), so that a huge
/// body is never copied.
fn excerpt(body: &[u8]) -> String {
    let head = body.get(..BODY_EXCERPT * 8).unwrap_or(body);
    let text = String::from_utf8_lossy(head);
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.is_empty() && head.len() == body.len() {
        return "empty body".into();
    }
    let mut cut: String = line.chars().take(BODY_EXCERPT).collect();
    if cut.len() < line.len() || head.len() < body.len() {
        cut.push_str("...");
    }
    format!("{cut:?}")
}

#[cfg(test)]
mod tests {
    use super::*;

    const JSON: Option<&str> = Some("application/json");
    const SERIES: usize = crate::metrics::limits::DEFAULT_MAX_SERIES;

    fn ok(body: &str) -> Result<Answer, Failure> {
        classify(200, JSON, body.as_bytes(), SERIES)
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
            classify(400, JSON, body.as_bytes(), SERIES),
            Err(Failure::Unavailable(
                r#"the server refused the query (HTTP 400, bad_data): invalid parameter "query": 1:5: parse error"#
                    .into()
            ))
        );
    }

    #[test]
    fn an_http_error_without_json_is_unavailable_with_status_and_body() {
        assert_eq!(
            classify(500, Some("text/plain"), b"upstream exploded\n", SERIES),
            Err(Failure::Unavailable(
                r#"HTTP 500 Internal Server Error: "upstream exploded""#.into()
            ))
        );
    }

    #[test]
    fn an_error_status_with_a_success_body_is_still_unavailable() {
        assert_eq!(
            classify(502, JSON, vector(&["1"]).as_bytes(), SERIES),
            Err(Failure::Unavailable(format!(
                "HTTP 502 Bad Gateway: {:?}",
                vector(&["1"])
            )))
        );
    }

    #[test]
    fn a_malformed_body_is_unavailable_and_says_so() {
        assert_eq!(
            classify(200, Some("text/html"), b"<html>login</html>", SERIES),
            Err(Failure::Unavailable(
                r#"malformed answer (HTTP 200, text/html): not a Prometheus API response: "<html>login</html>""#
                    .into()
            ))
        );
        let Err(Failure::Unavailable(message)) = classify(
            200,
            JSON,
            br#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1,"x"]}]}}"#,
            SERIES,
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
            classify(200, JSON, b"", SERIES),
            Err(Failure::Unavailable(
                "malformed answer (HTTP 200, application/json): not a Prometheus API response: empty body"
                    .into()
            ))
        );
    }

    #[test]
    fn more_series_than_the_cap_are_invalid_naming_the_limit() {
        let values: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let body = vector(&values);
        assert_eq!(
            classify(200, JSON, body.as_bytes(), 100),
            Err(Failure::Invalid(Invalid::TooManySeries { limit: 100 }))
        );
        assert_eq!(
            classify(200, JSON, body.as_bytes(), 101),
            Ok(Answer::Series(101))
        );
        assert_eq!(
            Failure::Invalid(Invalid::TooManySeries { limit: 100 }).to_string(),
            "the answer holds more than 100 series (--prometheus-max-series); the query must yield exactly one number (aggregate it, such as with sum())"
        );
    }

    #[test]
    fn the_fields_of_an_answer_may_come_in_any_order() {
        assert_eq!(
            ok(
                r#"{"data":{"result":[{"value":[1,"7"],"metric":{"a":"b"}}],"resultType":"vector"},"warnings":["w"],"status":"success"}"#
            ),
            Ok(Answer::Number(7.0))
        );
        assert_eq!(
            ok(r#"{"status":"success","data":{"result":[1700000000,"3"],"resultType":"scalar"}}"#),
            Ok(Answer::Number(3.0))
        );
    }

    #[test]
    fn a_native_histogram_is_not_a_number() {
        let answer = ok(
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"histogram":[1,{"count":"2","sum":"3","buckets":[]}]}]}}"#,
        )
        .unwrap();
        assert_eq!(
            value(&answer, SourceKind::Query),
            Err(Failure::Invalid(Invalid::NotANumber(
                "native histogram".into()
            )))
        );
    }

    #[test]
    fn data_that_is_not_an_instant_vector_or_scalar_is_malformed() {
        for body in [
            r#"{"status":"success"}"#,
            r#"{"status":"success","data":{"resultType":"vector"}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[1,"2"]}}"#,
            r#"{"status":"success","data":{"resultType":"scalar","result":[1]}}"#,
            r#"{"status":"success","data":{"resultType":"tensor","result":[]}}"#,
            r#"{"status":"success","data":{"result":[]}}"#,
            r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}"#,
        ] {
            let Err(Failure::Unavailable(message)) = ok(body) else {
                panic!("{body} must be unavailable");
            };
            assert!(
                message.starts_with(
                    "malformed answer (HTTP 200): the data is not an instant vector or scalar: "
                ),
                "{body}: {message}"
            );
        }
    }

    #[test]
    fn deep_nesting_inside_an_answer_neither_overflows_nor_passes() {
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        // Ignored parts (labels) may nest: serde_json skips them without recursion.
        let labels = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{"a":{deep}}},"value":[1,"5"]}}]}}}}"#
        );
        assert_eq!(ok(&labels), Ok(Answer::Number(5.0)));
        // Where a value belongs, nesting is malformed.
        let value = format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{{"metric":{{}},"value":{deep}}}]}}}}"#
        );
        assert!(matches!(ok(&value), Err(Failure::Unavailable(_))));
        assert!(matches!(ok(&deep), Err(Failure::Unavailable(_))));
    }

    #[test]
    fn a_huge_error_body_is_cut_to_the_message_limit() {
        let message = "x".repeat(100_000);
        let body = format!(r#"{{"status":"error","errorType":"execution","error":"{message}"}}"#);
        let Err(Failure::Unavailable(text)) = classify(422, JSON, body.as_bytes(), SERIES) else {
            panic!("an error answer must be unavailable");
        };
        assert!(text.len() <= MAX_MESSAGE_BYTES, "{}", text.len());
        assert!(
            text.starts_with("the server refused the query (HTTP 422, execution): xxx")
                && text.ends_with('…'),
            "{text}"
        );
        let Err(Failure::Unavailable(text)) = classify(
            502,
            Some("text/html"),
            "<p>bad gateway</p>\n".repeat(5000).as_bytes(),
            SERIES,
        ) else {
            panic!("an error page must be unavailable");
        };
        assert!(text.len() <= MAX_MESSAGE_BYTES, "{}", text.len());
        assert!(text.ends_with(r#"...""#), "{text}");
        // Whatever a failure says, what reaches the status is cut too.
        let o = super::super::observation::MetricObservation {
            name: "q".into(),
            query: "q".into(),
            age_query: None,
            result: Err(Failure::Unavailable("é".repeat(100_000))),
            pods: None,
        };
        let crate::decide::Reading::Failed { message, .. } =
            crate::decide::Observation::from(o).reading
        else {
            panic!("a failure must stay a failure");
        };
        assert!(message.len() <= MAX_MESSAGE_BYTES && message.ends_with('…'));
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
    fn an_age_beyond_any_duration_is_stale_not_a_panic() {
        // Found by tests/fuzz_answers.rs: Duration::from_secs_f64 panicked on 1.8e308.
        for seconds in [1e20, f64::MAX] {
            assert_eq!(
                judge(
                    SourceKind::Query,
                    Ok(Answer::Number(1.0)),
                    Some(Ok(Answer::Number(seconds))),
                    Duration::from_secs(62)
                ),
                Err(Failure::Stale {
                    age: Some(Duration::MAX),
                    limit: Duration::from_secs(62)
                })
            );
        }
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

    /// A combined answer: each `(part, labels, value)` a series of the vector.
    fn combined(series: &[(&str, &str, &str)]) -> String {
        let items: Vec<String> = series
            .iter()
            .map(|(part, labels, v)| {
                let labels = if labels.is_empty() {
                    format!(r#""scalewise_part":"{part}""#)
                } else {
                    format!(r#"{labels},"scalewise_part":"{part}""#)
                };
                format!(r#"{{"metric":{{{labels}}},"value":[1700000000.5,"{v}"]}}"#)
            })
            .collect();
        format!(
            r#"{{"status":"success","data":{{"resultType":"vector","result":[{}]}}}}"#,
            items.join(",")
        )
    }

    fn split(body: &str, max_series: usize) -> Result<(Answer, Answer), Failure> {
        classify_combined(200, JSON, body.as_bytes(), max_series)
    }

    #[test]
    fn a_combined_answer_splits_into_value_and_age_in_any_order() {
        for body in [
            combined(&[("value", "", "75.5"), ("age", "", "3")]),
            combined(&[("age", "", "3"), ("value", "", "75.5")]),
        ] {
            assert_eq!(
                split(&body, SERIES),
                Ok((Answer::Number(75.5), Answer::Number(3.0))),
                "{body}"
            );
        }
    }

    #[test]
    fn a_combined_answer_keeps_each_parts_own_outcome() {
        // Nothing found for the value, while its inputs have samples: empty, not stale.
        assert_eq!(
            split(&combined(&[("age", "", "3")]), SERIES),
            Ok((Answer::Nothing, Answer::Number(3.0)))
        );
        // A value whose inputs have no current sample: the age part is missing, so stale.
        let (value, age) = split(&combined(&[("value", "", "1")]), SERIES).unwrap();
        assert_eq!((&value, &age), (&Answer::Number(1.0), &Answer::Nothing));
        assert_eq!(
            judge(
                SourceKind::Query,
                Ok(value),
                Some(Ok(age)),
                Duration::from_secs(60)
            ),
            Err(Failure::Stale {
                age: None,
                limit: Duration::from_secs(60)
            })
        );
        // Several value series are several series, as when read alone.
        assert_eq!(
            split(
                &combined(&[
                    ("value", r#""a":"1""#, "1"),
                    ("value", r#""a":"2""#, "2"),
                    ("age", "", "3")
                ]),
                SERIES
            ),
            Ok((Answer::Series(2), Answer::Number(3.0)))
        );
    }

    #[test]
    fn the_series_cap_of_a_combined_answer_is_the_value_parts() {
        let three = combined(&[
            ("value", r#""a":"1""#, "1"),
            ("value", r#""a":"2""#, "2"),
            ("value", r#""a":"3""#, "3"),
            ("age", "", "3"),
        ]);
        assert_eq!(split(&three, 3).map(|(v, _)| v), Ok(Answer::Series(3)));
        assert_eq!(
            split(&three, 2),
            Err(Failure::Invalid(Invalid::TooManySeries { limit: 2 }))
        );
    }

    #[test]
    fn a_combined_answer_with_a_series_of_neither_part_is_malformed() {
        for body in [
            vector(&["1"]),
            combined(&[("value", "", "1"), ("other", "", "2")]),
        ] {
            let Err(Failure::Unavailable(message)) = split(&body, SERIES) else {
                panic!("{body} was accepted");
            };
            assert!(
                message.contains("without the scalewise_part label"),
                "{message}"
            );
        }
        let scalar =
            r#"{"status":"success","data":{"resultType":"scalar","result":[1700000000,"3"]}}"#;
        let Err(Failure::Unavailable(message)) = split(scalar, SERIES) else {
            panic!("a scalar was accepted");
        };
        assert!(message.contains(r#"resultType "scalar""#), "{message}");
    }

    #[test]
    fn a_combined_per_pod_answer_reads_the_pods_of_the_value_part_only() {
        let body = combined(&[
            ("value", r#""namespace":"shop","pod":"web-1""#, "0.5"),
            ("value", r#""namespace":"shop","pod":"web-2""#, "0.25"),
            ("age", "", "4"),
        ]);
        let (value, age) = split(&body, SERIES).unwrap();
        assert_eq!(age, Answer::Number(4.0));
        let pods = per_pod(&value, body.as_bytes(), true).unwrap();
        assert_eq!(
            pods,
            BTreeMap::from([("web-1".to_owned(), 0.5), ("web-2".to_owned(), 0.25)])
        );
    }
}
