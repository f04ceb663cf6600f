//! Coalescing: the metrics of many policies that differ only in the values of some labels are
//! read with one query per tick and split per policy in the operator.
//!
//! # Which metrics join
//!
//! A built-in kind (`cpu`, `memory`, `latency`, `errorRate`, `requestRate`) whose PromQL, after
//! namespace enforcement, selects every series with the same equality matchers on some labels
//! (the *split labels*: `namespace`, and the selector's own equality matchers such as
//! `service="checkout"`), and is otherwise made only of aggregations by labels, the functions in
//! [`GROUP_LOCAL`], numbers and arithmetic, set and comparison operators without `on` or
//! `ignoring`, is [`Sharing::Split`]: its *template* is its PromQL with the split labels' values
//! emptied and the split labels added to every aggregation's `by`. Policies with the same
//! template, server, credentials and interval are read together: the split labels' matchers
//! become regular expressions listing every member's value (escaped), the answer holds one
//! group per combination of split labels, and each policy takes the group of its own values.
//! Every operation in a template acts within a group, so a policy's group is what its own PromQL
//! returns (a regex matcher is never split: it stays in the template, and policies join only
//! with others that have the same one).
//!
//! Any other metric (a custom `query`, or a built-in kind of another shape) is
//! [`Sharing::Whole`]: identical queries (after namespace enforcement, identical only within a
//! namespace unless the operator opted out of it) are sent once per tick and their answer
//! shared.
//!
//! The age of a coalesced value is measured per group in the same query
//! (`time() - max by (SPLIT) (timestamp(S))`, the stalest input with `min by (SPLIT)`).

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use jiff::Timestamp;
use promql_parser::label::{MatchOp, Matcher};
use promql_parser::parser::{self, Expr, LabelModifier, VectorSelector};
use tokio::sync::OnceCell;

use super::promql::{AGE_INPUT_LABEL, AGE_PART, PART_LABEL, VALUE_PART};

/// Functions that act on each series (or each group of `le` buckets) alone and keep its other
/// labels: a template may hold them.
pub const GROUP_LOCAL: &[&str] = &[
    "abs",
    "avg_over_time",
    "ceil",
    "clamp",
    "clamp_max",
    "clamp_min",
    "count_over_time",
    "delta",
    "deriv",
    "exp",
    "floor",
    "histogram_quantile",
    "idelta",
    "increase",
    "irate",
    "last_over_time",
    "ln",
    "log10",
    "log2",
    "max_over_time",
    "min_over_time",
    "quantile_over_time",
    "rate",
    "round",
    "sqrt",
    "sum_over_time",
    "time",
    "timestamp",
];

/// The most policies one coalesced query reads.
pub const MAX_MEMBERS: usize = 256;
/// The most bytes the values of one split label may take in one coalesced query (the query is
/// sent in the URL).
pub const MAX_ALTERNATIVE_BYTES: usize = 4096;

/// How a metric's reading is shared with other policies' readings of the same tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Sharing {
    /// Identical queries are sent once and their answer shared.
    Whole,
    /// Read with the others of its template, split by labels.
    Split(Split),
}

/// A metric read with others of its template (see the [module documentation](self)).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    /// The value PromQL with the split labels' values emptied and the split labels added to every
    /// aggregation's `by`; it parses.
    pub template: String,
    /// The labels the answer is split by, sorted.
    pub labels: Vec<String>,
    /// This policy's value of each split label.
    pub values: Vec<String>,
}

/// How the value PromQL `promql` of a metric is shared; `builtin` for the built-in kinds, whose
/// shapes may be split.
pub fn sharing(promql: &str, builtin: bool) -> Sharing {
    if !builtin {
        return Sharing::Whole;
    }
    split(promql).map_or(Sharing::Whole, Sharing::Split)
}

/// The [`Split`] of `promql`, when it has one.
fn split(promql: &str) -> Option<Split> {
    let mut expr = parser::parse(promql).ok()?;
    if !group_local(&expr) {
        return None;
    }
    let mut selectors = Vec::new();
    collect(&expr, &mut selectors);
    let (first, rest) = selectors.split_first()?;
    let mut common = equalities(first)?;
    for vs in rest {
        let own = equalities(vs)?;
        common.retain(|(name, value)| own.contains(&(name.clone(), value.clone())));
    }
    if common.is_empty() {
        return None;
    }
    let mut pairs: Vec<(String, String)> = common.into_iter().collect();
    pairs.sort();
    let labels: Vec<String> = pairs.iter().map(|(n, _)| n.clone()).collect();
    let values: Vec<String> = pairs.into_iter().map(|(_, v)| v).collect();
    for_each_selector(&mut expr, &mut |vs| {
        for m in &mut vs.matchers.matchers {
            if labels.contains(&m.name) {
                *m = Matcher::new(MatchOp::Equal, &m.name, "");
            }
        }
    });
    group_by(&mut expr, &labels);
    Some(Split {
        template: expr.to_string(),
        labels,
        values,
    })
}

/// Whether every node of `expr` acts within groups of its labels.
fn group_local(expr: &Expr) -> bool {
    match expr {
        Expr::Aggregate(a) => {
            !matches!(a.modifier, Some(LabelModifier::Exclude(_)))
                && a.param
                    .as_deref()
                    .is_none_or(|p| matches!(p, Expr::NumberLiteral(_)))
                && group_local(&a.expr)
        }
        Expr::Unary(u) => group_local(&u.expr),
        Expr::Binary(b) => {
            b.modifier.as_ref().is_none_or(|m| m.matching.is_none())
                && group_local(&b.lhs)
                && group_local(&b.rhs)
        }
        Expr::Paren(p) => group_local(&p.expr),
        Expr::NumberLiteral(_) => true,
        Expr::VectorSelector(vs) => vs.matchers.or_matchers.is_empty() && vs.at.is_none(),
        Expr::MatrixSelector(ms) => ms.vs.matchers.or_matchers.is_empty() && ms.vs.at.is_none(),
        Expr::Call(c) => {
            GROUP_LOCAL.contains(&c.func.name) && c.args.args.iter().all(|a| group_local(a))
        }
        Expr::Subquery(_) | Expr::StringLiteral(_) | Expr::Extension(_) => false,
    }
}

/// Every selector of `expr`, in order.
fn collect<'a>(expr: &'a Expr, out: &mut Vec<&'a VectorSelector>) {
    match expr {
        Expr::Aggregate(a) => collect(&a.expr, out),
        Expr::Unary(u) => collect(&u.expr, out),
        Expr::Binary(b) => {
            collect(&b.lhs, out);
            collect(&b.rhs, out);
        }
        Expr::Paren(p) => collect(&p.expr, out),
        Expr::Subquery(s) => collect(&s.expr, out),
        Expr::VectorSelector(vs) => out.push(vs),
        Expr::MatrixSelector(ms) => out.push(&ms.vs),
        Expr::Call(c) => c.args.args.iter().for_each(|a| collect(a, out)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// `f` on every selector of `expr`.
fn for_each_selector(expr: &mut Expr, f: &mut impl FnMut(&mut VectorSelector)) {
    match expr {
        Expr::Aggregate(a) => for_each_selector(&mut a.expr, f),
        Expr::Unary(u) => for_each_selector(&mut u.expr, f),
        Expr::Binary(b) => {
            for_each_selector(&mut b.lhs, f);
            for_each_selector(&mut b.rhs, f);
        }
        Expr::Paren(p) => for_each_selector(&mut p.expr, f),
        Expr::Subquery(s) => for_each_selector(&mut s.expr, f),
        Expr::VectorSelector(vs) => f(vs),
        Expr::MatrixSelector(ms) => f(&mut ms.vs),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| for_each_selector(a, f)),
        Expr::NumberLiteral(_) | Expr::StringLiteral(_) | Expr::Extension(_) => {}
    }
}

/// Adds `labels` to the `by` of every aggregation of `expr` (after the ones it has).
fn group_by(expr: &mut Expr, labels: &[String]) {
    match expr {
        Expr::Aggregate(a) => {
            let mut by = match a.modifier.take() {
                Some(LabelModifier::Include(ls)) => ls.labels,
                _ => Vec::new(),
            };
            for l in labels {
                if !by.contains(l) {
                    by.push(l.clone());
                }
            }
            a.modifier = Some(LabelModifier::Include(promql_parser::label::Labels {
                labels: by,
            }));
            group_by(&mut a.expr, labels);
        }
        Expr::Unary(u) => group_by(&mut u.expr, labels),
        Expr::Binary(b) => {
            group_by(&mut b.lhs, labels);
            group_by(&mut b.rhs, labels);
        }
        Expr::Paren(p) => group_by(&mut p.expr, labels),
        Expr::Subquery(s) => group_by(&mut s.expr, labels),
        Expr::Call(c) => c.args.args.iter_mut().for_each(|a| group_by(a, labels)),
        Expr::VectorSelector(_)
        | Expr::MatrixSelector(_)
        | Expr::NumberLiteral(_)
        | Expr::StringLiteral(_)
        | Expr::Extension(_) => {}
    }
}

/// A selector's equality matchers (but the metric name's); `None` when one label has two.
fn equalities(vs: &VectorSelector) -> Option<BTreeSet<(String, String)>> {
    let mut out = BTreeSet::new();
    for m in &vs.matchers.matchers {
        if m.op == MatchOp::Equal && m.name != "__name__" {
            if out.iter().any(|(n, _): &(String, String)| n == &m.name) {
                return None;
            }
            out.insert((m.name.clone(), m.value.clone()));
        }
    }
    Some(out)
}

/// The one query reading the value and the age of every member of a template: the split labels'
/// matchers list the members' values, and both parts are told apart by [`PART_LABEL`] as in a
/// metric's own query. `members` are the members' values of the split labels, in label order.
pub fn query(template: &str, labels: &[String], members: &[Vec<String>]) -> Result<String, String> {
    let mut expr = parser::parse(template)?;
    let mut matchers = Vec::with_capacity(labels.len());
    for (i, label) in labels.iter().enumerate() {
        let values: BTreeSet<&str> = members
            .iter()
            .filter_map(|m| m.get(i).map(String::as_str))
            .collect();
        let alternatives = values
            .iter()
            .map(|v| regex::escape(v))
            .collect::<Vec<_>>()
            .join("|");
        let compiled = regex::Regex::new(&format!("^(?:{alternatives})$"))
            .map_err(|e| format!("the values of {label} make no regular expression: {e}"))?;
        matchers.push(Matcher::new(MatchOp::Re(compiled), label, &alternatives));
    }
    for_each_selector(&mut expr, &mut |vs| {
        for m in &mut vs.matchers.matchers {
            if let Some(i) = labels.iter().position(|l| l == &m.name)
                && let Some(replacement) = matchers.get(i)
            {
                *m = replacement.clone();
            }
        }
    });
    let mut selectors: Vec<String> = Vec::new();
    let mut found = Vec::new();
    collect(&expr, &mut found);
    for vs in found {
        let mut plain = vs.clone();
        plain.offset = None;
        plain.at = None;
        let text = plain.to_string();
        if !selectors.contains(&text) {
            selectors.push(text);
        }
    }
    let by = labels.join(", ");
    let age = match selectors.as_slice() {
        [] => return Err("the template has no series selector".into()),
        [one] => format!("time() - max by ({by}) (timestamp({one}))"),
        many => {
            let inputs: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, s)| {
                    format!(
                        "label_replace(max by ({by}) (timestamp({s})), \"{AGE_INPUT_LABEL}\", \"{}\", \"\", \"\")",
                        i + 1
                    )
                })
                .collect();
            format!("time() - min by ({by}) ({})", inputs.join(" or "))
        }
    };
    Ok(format!(
        "label_replace(({expr}), \"{PART_LABEL}\", \"{VALUE_PART}\", \"\", \"\") or label_replace({age}, \"{PART_LABEL}\", \"{AGE_PART}\", \"\", \"\")"
    ))
}

/// Members in groups that each fit one query: at most [`MAX_MEMBERS`], and the values of each
/// label at most [`MAX_ALTERNATIVE_BYTES`] (a member whose values alone pass it is a group of its
/// own).
pub fn chunks(members: Vec<Vec<String>>, max_members: usize) -> Vec<Vec<Vec<String>>> {
    let max_members = max_members.clamp(1, MAX_MEMBERS);
    let mut out = Vec::new();
    let mut current: Vec<Vec<String>> = Vec::new();
    let mut bytes: Vec<usize> = Vec::new();
    for member in members {
        let fits = current.len() < max_members
            && member.iter().enumerate().all(|(i, v)| {
                bytes
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_add(v.len().saturating_mul(2).saturating_add(1))
                    <= MAX_ALTERNATIVE_BYTES
            });
        if !fits && !current.is_empty() {
            out.push(std::mem::take(&mut current));
            bytes.clear();
        }
        for (i, v) in member.iter().enumerate() {
            let added = v.len().saturating_mul(2).saturating_add(1);
            match bytes.get_mut(i) {
                Some(b) => *b = b.saturating_add(added),
                None => bytes.push(added),
            }
        }
        current.push(member);
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// What one tick's shared read answered: for a [`Sharing::Whole`] group the one answer, for a
/// split group each member's share (members left out read their own).
#[derive(Debug)]
pub enum Answers<T> {
    Whole(T),
    Split(HashMap<Vec<String>, T>),
}

/// What identifies a group of readings that may share queries.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct GroupKey {
    /// A hash of the server's URL and every request header (credentials, tenant).
    pub server: u64,
    /// The policies' interval: their ticks.
    pub interval: Duration,
    /// The template, or the whole query.
    pub query: String,
    pub labels: Vec<String>,
    /// Read per pod (its answer is counted over the target's pods).
    pub per_pod: bool,
}

/// The readings of every group, per tick. One per process, shared by every evaluation.
#[derive(Debug)]
pub struct Coalescer<T> {
    state: Mutex<State<T>>,
}

#[derive(Debug)]
struct State<T> {
    groups: HashMap<GroupKey, Group<T>>,
    /// The latest tick seen, when groups were last swept.
    swept: Option<Timestamp>,
}

#[derive(Debug)]
struct Group<T> {
    /// Each member's values and the last tick it read at.
    members: HashMap<Vec<String>, Timestamp>,
    /// The answers of the latest ticks.
    ticks: Vec<(Timestamp, TickCell<T>)>,
}

/// The answers of one tick, set once by its first reader.
type TickCell<T> = Arc<OnceCell<Arc<Answers<T>>>>;

impl<T> Default for Group<T> {
    fn default() -> Self {
        Self {
            members: HashMap::new(),
            ticks: Vec::new(),
        }
    }
}

/// A member not read for this many intervals leaves its group.
const MEMBER_INTERVALS: u32 = 3;

impl<T> Default for Coalescer<T> {
    fn default() -> Self {
        Self {
            state: Mutex::new(State {
                groups: HashMap::new(),
                swept: None,
            }),
        }
    }
}

impl<T: Clone> Coalescer<T> {
    /// The reading of `member` (its split labels' values; empty for a whole query) in group
    /// `key` at `tick`: the first caller of a tick runs `fetch` with every member read within the
    /// last [`MEMBER_INTERVALS`] intervals (itself included), the others wait for its answers.
    /// `None`: the member was not in that tick's read (it joined after it was sent, or its share
    /// did not fit), and reads its own.
    pub async fn read<F, Fut>(
        &self,
        key: &GroupKey,
        tick: Timestamp,
        member: &[String],
        fetch: F,
    ) -> Option<T>
    where
        F: FnOnce(Vec<Vec<String>>) -> Fut,
        Fut: Future<Output = Answers<T>>,
    {
        let cell = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.sweep(tick);
            let group = state.groups.entry(key.clone()).or_default();
            let seen = group.members.entry(member.to_vec()).or_insert(tick);
            *seen = (*seen).max(tick);
            group
                .ticks
                .retain(|(t, _)| *t >= before(tick, key.interval));
            match group.ticks.iter().find(|(t, _)| *t == tick) {
                Some((_, cell)) => cell.clone(),
                None => {
                    let cell = Arc::new(OnceCell::new());
                    group.ticks.push((tick, cell.clone()));
                    cell
                }
            }
        };
        let answers = cell
            .get_or_init(|| async {
                let members = self.members(key, tick);
                Arc::new(fetch(members).await)
            })
            .await;
        match answers.as_ref() {
            Answers::Whole(answer) => Some(answer.clone()),
            Answers::Split(shares) => shares.get(member).cloned(),
        }
    }

    /// The members of `key` read within the last [`MEMBER_INTERVALS`] intervals before `tick`.
    fn members(&self, key: &GroupKey, tick: Timestamp) -> Vec<Vec<String>> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let since = before(tick, key.interval.saturating_mul(MEMBER_INTERVALS));
        let mut members: Vec<Vec<String>> = state
            .groups
            .get(key)
            .map(|g| {
                g.members
                    .iter()
                    .filter(|(_, seen)| **seen >= since)
                    .map(|(m, _)| m.clone())
                    .collect()
            })
            .unwrap_or_default();
        members.sort();
        members
    }

    /// How many groups are kept (for tests and the operator's gauges).
    pub fn groups(&self) -> usize {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.groups.len()
    }
}

impl<T> State<T> {
    /// Once per second of ticks: members not read for [`MEMBER_INTERVALS`] intervals leave their
    /// groups, and groups without members go.
    fn sweep(&mut self, tick: Timestamp) {
        let due = self
            .swept
            .is_none_or(|s| tick.duration_since(s) >= jiff::SignedDuration::from_secs(1));
        if !due {
            return;
        }
        self.swept = Some(tick);
        self.groups.retain(|key, group| {
            let since = before(tick, key.interval.saturating_mul(MEMBER_INTERVALS));
            group.members.retain(|_, seen| *seen >= since);
            group
                .ticks
                .retain(|(t, _)| *t >= before(tick, key.interval));
            !group.members.is_empty()
        });
    }
}

/// `tick` minus `span` (the earliest time when that underflows).
fn before(tick: Timestamp, span: Duration) -> Timestamp {
    jiff::SignedDuration::try_from(span)
        .ok()
        .and_then(|s| tick.checked_sub(s).ok())
        .unwrap_or(Timestamp::MIN)
}

/// A hash of `value`, for [`GroupKey::server`].
pub fn hash_of(value: &impl Hash) -> u64 {
    use std::hash::Hasher;
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// The tick an evaluation at `now` of a policy evaluated every `interval` reads at: the latest
/// multiple of the interval since the Unix epoch, when it is less than half an interval (and at
/// most 5 s) ago; otherwise the latest whole second, so that evaluations that run late (a backlog
/// behind a tick) still share the queries of the second they fall in, reading data at most 1 s
/// old. `None` for a zero interval or a time at the edge of the range.
pub fn tick_of(now: Timestamp, interval: Duration) -> Option<Timestamp> {
    let interval_ms = i64::try_from(interval.as_millis())
        .ok()
        .filter(|ms| *ms > 0)?;
    let now_ms = now.as_millisecond();
    let tick_ms = now_ms.checked_sub(now_ms.rem_euclid(interval_ms))?;
    let late = now_ms.checked_sub(tick_ms)?;
    let tolerance = (interval_ms / 2).min(5000);
    let at = if late > tolerance {
        now_ms.checked_sub(now_ms.rem_euclid(1000))?
    } else {
        tick_ms
    };
    Timestamp::from_millisecond(at).ok()
}

/// The next tick of `interval` nearest to `after + interval`: where an evaluation at `after` is
/// due next, so that evaluations of one interval fall on the same ticks.
pub fn next_tick(after: Timestamp, interval: Duration) -> Timestamp {
    let Some(interval_ms) = i64::try_from(interval.as_millis())
        .ok()
        .filter(|ms| *ms > 0)
    else {
        return after;
    };
    let target = after.as_millisecond().saturating_add(interval_ms);
    let below = target.saturating_sub(target.rem_euclid(interval_ms));
    let nearest = if target.saturating_sub(below) * 2 >= interval_ms {
        below.saturating_add(interval_ms)
    } else {
        below
    };
    Timestamp::from_millisecond(nearest).unwrap_or(Timestamp::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split_of(promql: &str) -> Split {
        match sharing(promql, true) {
            Sharing::Split(s) => s,
            Sharing::Whole => panic!("{promql} is not split"),
        }
    }

    #[test]
    fn a_request_rate_is_split_by_namespace_and_its_service() {
        let s =
            split_of(r#"sum(rate(http_requests_total{namespace="shop",service="checkout"}[1m]))"#);
        assert_eq!(s.labels, ["namespace", "service"]);
        assert_eq!(s.values, ["shop", "checkout"]);
        assert_eq!(
            s.template,
            r#"sum by (namespace, service) (rate(http_requests_total{namespace="",service=""}[1m]))"#
        );
        // Another namespace's policy on another service has the same template.
        let other =
            split_of(r#"sum(rate(http_requests_total{service="cart",namespace="web"}[1m]))"#);
        assert_eq!(other.template, s.template);
        assert_eq!(other.values, ["web", "cart"]);
    }

    #[test]
    fn a_latency_keeps_le_and_a_per_pod_read_keeps_pod() {
        let s = split_of(
            r#"histogram_quantile(0.95, sum by (le) (rate(h_bucket{namespace="shop",service="a"}[2m])))"#,
        );
        assert!(
            s.template.contains("sum by (le, namespace, service)"),
            "{}",
            s.template
        );
        let s = split_of(
            r#"sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{namespace="shop",container!="",container!="POD"}[2m]))"#,
        );
        assert_eq!(s.labels, ["namespace"]);
        assert!(
            s.template.contains("sum by (namespace, pod)"),
            "{}",
            s.template
        );
        assert!(s.template.contains(r#"container!="""#), "{}", s.template);
    }

    #[test]
    fn an_error_rate_splits_by_the_labels_of_both_selectors_only() {
        let s = split_of(
            r#"sum(rate(reqs{namespace="shop",service="a",code="500"}[1m])) / (sum(rate(reqs{namespace="shop",service="a"}[1m])) > 0) or sum(rate(reqs{namespace="shop",service="a"}[1m])) * 0"#,
        );
        // code="500" is only in the errors' selector: it stays in the template.
        assert_eq!(s.labels, ["namespace", "service"]);
        assert!(s.template.contains(r#"code="500""#), "{}", s.template);
    }

    #[test]
    fn shapes_that_do_not_act_within_groups_are_read_whole() {
        // A custom query is never split.
        assert_eq!(sharing(r#"sum(x{namespace="a"})"#, false), Sharing::Whole);
        for promql in [
            r#"(sum(rate(e{namespace="a"}[1m])) or vector(0)) / sum(rate(t{namespace="a"}[1m]))"#,
            r#"sum without (pod) (x{namespace="a"})"#,
            r#"x{namespace="a"} / on (pod) y{namespace="a"}"#,
            r#"label_replace(x{namespace="a"}, "namespace", "b", "", "")"#,
            r#"sum(x{namespace=~"a|b"})"#,
            r#"sum(x{namespace="a"}) / sum(y{namespace="b"})"#,
            r#"max_over_time(sum(x{namespace="a"})[5m:1m])"#,
        ] {
            assert_eq!(sharing(promql, true), Sharing::Whole, "{promql}");
        }
    }

    #[test]
    fn the_coalesced_query_lists_the_members_escaped_and_parses() {
        let s = split_of(r#"sum(rate(r{namespace="shop",service="a.b"}[1m]))"#);
        let q = query(
            &s.template,
            &s.labels,
            &[
                vec!["shop".into(), "a.b".into()],
                vec!["web".into(), "c\"d".into()],
                vec!["shop".into(), "e".into()],
            ],
        )
        .unwrap();
        assert!(parser::parse(&q).is_ok(), "{q}");
        assert!(q.contains(r#"namespace=~"shop|web""#), "{q}");
        assert!(q.contains(r#"service=~"a\\.b|c\"d|e""#), "{q}");
        assert!(
            q.contains("time() - max by (namespace, service) (timestamp("),
            "{q}"
        );
        assert!(q.contains(r#""scalewise_part", "value""#), "{q}");
    }

    #[test]
    fn several_inputs_age_by_the_stalest_per_group() {
        let s = split_of(
            r#"sum(rate(reqs{namespace="shop",code="500"}[1m])) / (sum(rate(reqs{namespace="shop"}[1m])) > 0) or sum(rate(reqs{namespace="shop"}[1m])) * 0"#,
        );
        let q = query(&s.template, &s.labels, &[vec!["shop".into()]]).unwrap();
        assert!(parser::parse(&q).is_ok(), "{q}");
        assert!(
            q.contains("time() - min by (namespace) (label_replace(max by (namespace)"),
            "{q}"
        );
    }

    #[test]
    fn chunks_hold_at_most_the_members_and_bytes_allowed() {
        let members: Vec<Vec<String>> = (0..600).map(|i| vec![format!("ns-{i}")]).collect();
        let chunks = chunks(members, MAX_MEMBERS);
        assert!(chunks.iter().all(|c| c.len() <= MAX_MEMBERS));
        assert_eq!(chunks.iter().map(Vec::len).sum::<usize>(), 600);
        let long: Vec<Vec<String>> = (0..10)
            .map(|i| vec![format!("{i}{}", "x".repeat(1000))])
            .collect();
        let chunks = super::chunks(long, MAX_MEMBERS);
        assert!(chunks.len() >= 5, "{}", chunks.len());
    }

    #[test]
    fn ticks_are_multiples_of_the_interval_and_late_evaluations_share_their_second() {
        let at = |ms: i64| Timestamp::from_millisecond(ms).unwrap();
        let i = Duration::from_secs(15);
        assert_eq!(tick_of(at(30_400), i), Some(at(30_000)));
        assert_eq!(tick_of(at(30_000), i), Some(at(30_000)));
        assert_eq!(tick_of(at(35_000), i), Some(at(30_000)));
        // More than 5 s (and than half an interval) late: the second it falls in.
        assert_eq!(tick_of(at(36_000), i), Some(at(36_000)));
        assert_eq!(tick_of(at(36_999), i), Some(at(36_000)));
        assert_eq!(tick_of(at(7_600), Duration::from_secs(10)), Some(at(7_000)));
        assert_eq!(tick_of(at(36_000), Duration::ZERO), None);
        // The next evaluation is on the tick nearest one interval later.
        assert_eq!(next_tick(at(30_000), i), at(45_000));
        assert_eq!(next_tick(at(31_000), i), at(45_000));
        assert_eq!(next_tick(at(38_000), i), at(60_000));
        assert_eq!(next_tick(at(30_000), Duration::ZERO), at(30_000));
    }

    #[tokio::test]
    async fn one_fetch_per_tick_serves_every_member_and_a_latecomer_reads_its_own() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let coalescer: Coalescer<String> = Coalescer::default();
        let fetched = AtomicUsize::new(0);
        let key = GroupKey {
            server: 1,
            interval: Duration::from_secs(15),
            query: "t".into(),
            labels: vec!["namespace".into()],
            per_pod: false,
        };
        let tick = Timestamp::from_second(1500).unwrap();
        let fetch = |members: Vec<Vec<String>>| {
            fetched.fetch_add(1, Ordering::SeqCst);
            async move {
                Answers::Split(
                    members
                        .into_iter()
                        .map(|m| {
                            let v = format!("answer for {}", m.join(","));
                            (m, v)
                        })
                        .collect(),
                )
            }
        };
        // Tick 1: a alone reads (b has never read).
        let a = coalescer.read(&key, tick, &["a".into()], fetch).await;
        assert_eq!(a.as_deref(), Some("answer for a"));
        let b = coalescer.read(&key, tick, &["b".into()], fetch).await;
        assert_eq!(b, None, "b joined after the tick's query was sent");
        assert_eq!(fetched.load(Ordering::SeqCst), 1);
        // The next tick reads both with one query.
        let next = Timestamp::from_second(1515).unwrap();
        let b = coalescer.read(&key, next, &["b".into()], fetch).await;
        let a = coalescer.read(&key, next, &["a".into()], fetch).await;
        assert_eq!(b.as_deref(), Some("answer for b"));
        assert_eq!(a.as_deref(), Some("answer for a"));
        assert_eq!(fetched.load(Ordering::SeqCst), 2);
        // Members gone for three intervals leave, and so does their group.
        let later = Timestamp::from_second(1600).unwrap();
        let other = GroupKey {
            query: "u".into(),
            ..key.clone()
        };
        let _ = coalescer.read(&other, later, &["c".into()], fetch).await;
        assert_eq!(coalescer.groups(), 1);
    }
}
