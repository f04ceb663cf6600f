//! What a run produced: its timeline (one row per evaluation), its summary, the summary table and
//! the timeline as CSV.

use std::fmt::Write as _;

use crate::api::Action;
use crate::decide::{Observation, Reading};

/// The service-level objective the summary counts violations of.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Slo {
    /// Seconds the latency quantile may reach.
    pub latency: f64,
    /// The latency quantile it applies to, such as 0.95.
    pub quantile: f64,
    /// The share of requests that may fail, such as 0.01.
    pub error_rate: f64,
}

impl Default for Slo {
    fn default() -> Self {
        Self {
            latency: 0.5,
            quantile: 0.95,
            error_rate: 0.01,
        }
    }
}

/// One evaluation of one autoscaler.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Seconds (the trace's or Unix time).
    pub time: i64,
    /// Requests per second at that time, when known.
    pub load: Option<f64>,
    pub ready: i32,
    /// The replicas before the decision.
    pub current: i32,
    /// The replicas after it.
    pub desired: i32,
    /// What each metric read.
    pub observations: Vec<Observation>,
    /// Requests waiting, in trace mode.
    pub queue: Option<f64>,
    pub action: Action,
    pub reason: String,
}

/// A whole run of one autoscaler.
#[derive(Clone, Debug, PartialEq)]
pub struct Run {
    pub label: String,
    pub rows: Vec<Row>,
    pub summary: Summary,
}

/// The figures of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub label: String,
    /// Seconds simulated.
    pub seconds: i64,
    /// Replicas (ready or starting) times seconds.
    pub replica_seconds: f64,
    /// Seconds in which the latency or the error rate broke the SLO; `None` when unknown
    /// (backtests).
    pub violation_seconds: Option<i64>,
    /// Decisions that changed the replica count.
    pub scale_actions: u32,
    pub min_replicas: i32,
    pub max_replicas: i32,
    /// Seconds spent at the policy's maxReplicas.
    pub seconds_at_max: i64,
}

impl Summary {
    pub fn replica_hours(&self) -> f64 {
        self.replica_seconds / 3600.0
    }

    pub fn mean_replicas(&self) -> f64 {
        if self.seconds > 0 {
            self.replica_seconds / self.seconds as f64
        } else {
            0.0
        }
    }

    pub fn violation_minutes(&self) -> Option<f64> {
        self.violation_seconds.map(|s| s as f64 / 60.0)
    }

    pub fn minutes_at_max(&self) -> f64 {
        self.seconds_at_max as f64 / 60.0
    }
}

/// Sums a run up as it goes.
#[derive(Clone, Debug)]
pub struct Accumulator {
    summary: Summary,
    limit: i32,
}

impl Accumulator {
    /// `limit` is the policy's maxReplicas; `slo_known` whether SLO violations are counted.
    pub fn new(label: &str, limit: i32, slo_known: bool) -> Self {
        Self {
            summary: Summary {
                label: label.to_owned(),
                seconds: 0,
                replica_seconds: 0.0,
                violation_seconds: slo_known.then_some(0),
                scale_actions: 0,
                min_replicas: i32::MAX,
                max_replicas: i32::MIN,
                seconds_at_max: 0,
            },
            limit,
        }
    }

    /// `seconds` spent with `replicas`, `violated` of them breaking the SLO.
    pub fn span(&mut self, replicas: i32, seconds: i64, violated: i64) {
        let s = &mut self.summary;
        s.seconds += seconds;
        s.replica_seconds += f64::from(replicas) * seconds as f64;
        if let Some(v) = &mut s.violation_seconds {
            *v += violated;
        }
        s.min_replicas = s.min_replicas.min(replicas);
        s.max_replicas = s.max_replicas.max(replicas);
        if replicas >= self.limit {
            s.seconds_at_max += seconds;
        }
    }

    /// A decision that changed the replica count.
    pub fn action(&mut self) {
        self.summary.scale_actions += 1;
    }

    pub fn finish(mut self) -> Summary {
        if self.summary.seconds == 0 {
            self.summary.min_replicas = 0;
            self.summary.max_replicas = 0;
        }
        self.summary
    }
}

/// The summary table, one row per run, as Markdown with aligned columns.
pub fn summary_table(summaries: &[&Summary]) -> String {
    table(summaries, None)
}

/// The summary table with two more columns, against the oracle's run: each run's replica-hours
/// as a ratio to the oracle's (`1.12x`), and its SLO minutes as a difference from the oracle's
/// (`+3.5`).
pub fn summary_table_against(summaries: &[&Summary], oracle: &Summary) -> String {
    table(summaries, Some(oracle))
}

fn table(summaries: &[&Summary], oracle: Option<&Summary>) -> String {
    let mut header = vec![
        "policy",
        "replica-hours",
        "minutes violating SLO",
        "scale actions",
        "min replicas",
        "max replicas",
        "mean replicas",
        "minutes at max",
    ];
    if oracle.is_some() {
        header.extend(["replica-hours / oracle", "SLO minutes - oracle"]);
    }
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            let mut row = vec![
                s.label.clone(),
                format!("{:.2}", s.replica_hours()),
                s.violation_minutes()
                    .map_or_else(|| "n/a".to_owned(), |m| format!("{m:.1}")),
                s.scale_actions.to_string(),
                s.min_replicas.to_string(),
                s.max_replicas.to_string(),
                format!("{:.2}", s.mean_replicas()),
                format!("{:.1}", s.minutes_at_max()),
            ];
            if let Some(o) = oracle {
                row.push(if o.replica_seconds > 0.0 {
                    format!("{:.2}x", s.replica_seconds / o.replica_seconds)
                } else {
                    "n/a".to_owned()
                });
                row.push(match (s.violation_minutes(), o.violation_minutes()) {
                    (Some(a), Some(b)) => format!("{:+.1}", a - b),
                    _ => "n/a".to_owned(),
                });
            }
            row
        })
        .collect();
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].len())
                .chain([header[i].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    let line = |out: &mut String, cells: &[&str]| {
        out.push('|');
        for (i, cell) in cells.iter().enumerate() {
            if i == 0 {
                let _ = write!(out, " {cell:<w$} |", w = widths[i]);
            } else {
                let _ = write!(out, " {cell:>w$} |", w = widths[i]);
            }
        }
        out.push('\n');
    };
    line(&mut out, &header);
    out.push('|');
    for (i, w) in widths.iter().enumerate() {
        if i == 0 {
            let _ = write!(out, "{}|", "-".repeat(w + 2));
        } else {
            let _ = write!(out, "{}:|", "-".repeat(w + 1));
        }
    }
    out.push('\n');
    for r in &rows {
        let cells: Vec<&str> = r.iter().map(String::as_str).collect();
        line(&mut out, &cells);
    }
    out
}

/// The timeline of every run as CSV: one row per evaluation, ordered by time (runs in the order
/// given at equal times). Columns: `time_seconds`, `policy`, `load_rps`, `replicas_ready`,
/// `replicas_desired`, one column per metric (its value, or its failure kind), `queue_requests`,
/// `action` and `reason`.
pub fn timeline_csv(metrics: &[String], runs: &[&Run]) -> String {
    let mut out = String::new();
    out.push_str("time_seconds,policy,load_rps,replicas_ready,replicas_desired");
    for m in metrics {
        out.push(',');
        out.push_str(&csv_field(m));
    }
    out.push_str(",queue_requests,action,reason\n");
    let mut cursors = vec![0usize; runs.len()];
    loop {
        // The run whose next row is earliest (the first run on ties).
        let next = runs
            .iter()
            .enumerate()
            .filter_map(|(i, run)| run.rows.get(cursors[i]).map(|r| (r.time, i)))
            .min();
        let Some((_, i)) = next else { break };
        let row = &runs[i].rows[cursors[i]];
        cursors[i] += 1;
        let _ = write!(
            out,
            "{},{},{},{},{}",
            row.time,
            csv_field(&runs[i].label),
            row.load.map(fmt_value).unwrap_or_default(),
            row.ready,
            row.desired
        );
        for m in metrics {
            let cell = row
                .observations
                .iter()
                .find(|o| &o.name == m)
                .map(|o| match &o.reading {
                    Reading::Value(v) => fmt_value(*v),
                    Reading::Failed { kind, .. } => kind.to_string(),
                })
                .unwrap_or_default();
            let _ = write!(out, ",{cell}");
        }
        let _ = writeln!(
            out,
            ",{},{:?},{}",
            row.queue.map(fmt_value).unwrap_or_default(),
            row.action,
            csv_field(&row.reason)
        );
    }
    out
}

/// A number for CSV: rounded to 6 decimals, shortest form.
pub fn fmt_value(v: f64) -> String {
    let r = (v * 1e6).round() / 1e6;
    if r == 0.0 { "0".into() } else { r.to_string() }
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_accumulator_sums_replicas_over_time() {
        let mut a = Accumulator::new("p", 4, true);
        a.span(2, 1800, 60);
        a.span(4, 1800, 0);
        a.action();
        let s = a.finish();
        assert_eq!(s.replica_hours(), 3.0);
        assert_eq!(s.mean_replicas(), 3.0);
        assert_eq!(s.violation_minutes(), Some(1.0));
        assert_eq!(s.minutes_at_max(), 30.0);
        assert_eq!((s.min_replicas, s.max_replicas, s.scale_actions), (2, 4, 1));
    }

    #[test]
    fn the_table_aligns_its_columns() {
        let mut a = Accumulator::new("scalewise", 10, false);
        a.span(2, 3600, 0);
        let s = a.finish();
        assert_eq!(
            summary_table(&[&s]),
            "| policy    | replica-hours | minutes violating SLO | scale actions | min replicas | max replicas | mean replicas | minutes at max |\n\
             |-----------|--------------:|----------------------:|--------------:|-------------:|-------------:|--------------:|---------------:|\n\
             | scalewise |          2.00 |                   n/a |             0 |            2 |            2 |          2.00 |            0.0 |\n"
        );
    }

    #[test]
    fn against_the_oracle_each_run_shows_its_ratio_and_difference() {
        let run = |label: &str, replicas: i32, violated: i64| {
            let mut a = Accumulator::new(label, 10, true);
            a.span(replicas, 3600, violated);
            a.finish()
        };
        let (web, oracle) = (run("web", 3, 90), run("oracle", 2, 30));
        let table = summary_table_against(&[&web, &oracle], &oracle);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].ends_with("| replica-hours / oracle | SLO minutes - oracle |"));
        assert!(
            lines[2].ends_with("|                  1.50x |                 +1.0 |"),
            "{table}"
        );
        assert!(
            lines[3].ends_with("|                  1.00x |                 +0.0 |"),
            "{table}"
        );
        // An oracle with no replica-hours has no ratio.
        let none = run("oracle", 0, 0);
        assert!(summary_table_against(&[&web], &none).contains("n/a"));
    }

    #[test]
    fn numbers_are_short_and_reasons_quoted() {
        assert_eq!(fmt_value(0.1 + 0.2), "0.3");
        assert_eq!(fmt_value(-0.0000001), "0");
        assert_eq!(fmt_value(85.0), "85");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
    }
}
