//! Backtest mode (`--from`, `--to`): the policy's metric history from Prometheus range queries,
//! replayed through the decision engine.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use super::output::{
    baseline_reference, labels, per_replica, progress_bar, rule_references, write_files,
    write_notes, write_summary,
};
use super::shared::{Side, command_error, initial_replicas, policy_label, seconds, sides, usage};
use crate::api::duration::parse_duration;
use crate::api::{Policy, Source};
use crate::cli::SimulateArgs;
use crate::commands::decide::load_policy;
use crate::commands::prometheus::{connect, source_config};
use crate::commands::query::display_name;
use crate::commands::{CommandError, Outcome};
use crate::metrics::SourceKind;
use crate::simulate::backtest::{self, Window};
use crate::simulate::bind;
use crate::simulate::plot::{Figure, MetricPanel};
use crate::simulate::report::Run;
use crate::simulate::run::timestamp;

/// The default step of a backtest's range queries.
pub const DEFAULT_BACKTEST_STEP: Duration = Duration::from_secs(15);

/// Backtests the policy in `policy_path` from `from` to `to`.
pub(super) fn run(
    args: &SimulateArgs,
    policy_path: &Path,
    from: &str,
    to: &str,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    let (object, policy) = load_policy(policy_path)?;
    let now = Timestamp::now();
    let window = Window {
        from: parse_time("--from", from, now)?,
        to: parse_time("--to", to, now)?,
        step: seconds(args.step.unwrap_or(DEFAULT_BACKTEST_STEP)),
    };
    window.check().map_err(command_error)?;
    let initial = initial_replicas(args, &policy)?;
    let file = policy_path.display().to_string();
    let config = source_config(&args.prometheus).map_err(|e| usage(e.to_string()))?;
    let (plan, source, server) = connect(&file, display_name(&object), &object, &policy, config)?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    let bar = progress_bar(backtest::queries(&plan, window), "querying");
    let history = runtime
        .block_on(backtest::fetch(
            source.http_client(),
            &server,
            &plan,
            window,
            &mut |n| bar.inc(n),
        ))
        .map_err(command_error)?;
    bar.finish_and_clear();

    let first = policy.metrics.first().map(|m| {
        let utilization = matches!(m.source, Source::Cpu(_) | Source::Memory(_));
        (utilization, bind::window_seconds(m))
    });
    let label = policy_label(object.metadata.name.as_deref().unwrap_or_default());
    let mut sides = sides(args, &policy, &label, first)?;
    let load_metric = plan
        .metrics
        .iter()
        .find(|m| m.kind == SourceKind::RequestRate)
        .map(|m| m.name.clone());
    let runs: Vec<Run> = sides
        .iter_mut()
        .map(|side| {
            backtest::replay(
                &history,
                side.autoscaler.as_mut(),
                initial,
                policy.max_replicas,
                load_metric.as_deref(),
            )
        })
        .collect();

    writeln!(
        out,
        "{} ({}) backtested on {} from {} to {} (range queries every {}s), starting with {initial} replicas",
        display_name(&object),
        policy_path.display(),
        server.url,
        timestamp(window.from),
        timestamp(window.to),
        window.step
    )?;
    // The range queries that ran: the policy's, scoped as the operator scopes them.
    for m in &plan.metrics {
        writeln!(out, "  {}: {}", m.name, m.standalone_promql())?;
    }
    writeln!(
        out,
        "History cannot show feedback from this policy's decisions: the metrics are what happened with the replicas that actually ran. The replica counts are what the policy would have asked for, applied at once; SLO minutes are not known."
    )?;
    write_notes(out, &sides)?;
    write_summary(out, &runs, None)?;

    let metric_names: Vec<String> = plan.metrics.iter().map(|m| m.name.clone()).collect();
    let figure = Figure {
        title: format!(
            "{} backtested on {}: {}",
            display_name(&object),
            server.url,
            labels(&runs.iter().collect::<Vec<_>>())
        ),
        subtitle: format!(
            "{} to {}; history cannot show feedback from the policy's own decisions",
            timestamp(window.from),
            timestamp(window.to)
        ),
        runs: runs.iter().collect(),
        metrics: panels(&policy, &sides),
        capacity: None,
        max_replicas: policy.max_replicas,
        start: window.from,
        end: window.to,
    };
    write_files(args, &metric_names, &runs, &figure, notes)?;
    Ok(Outcome::Success)
}

/// The panels of a backtest: per metric, its kind, its thresholds and the HPA's target.
fn panels(policy: &Policy, sides: &[Side]) -> Vec<MetricPanel> {
    policy
        .metrics
        .iter()
        .map(|rule| {
            let kind = bind::kind_of(&rule.source);
            let mut references = rule_references(rule.rule);
            references.extend(baseline_reference(&rule.name, sides));
            MetricPanel {
                name: rule.name.clone(),
                title: format!("{} ({kind}{})", rule.name, per_replica(rule.rule)),
                references,
            }
        })
        .collect()
}

/// `--from`/`--to`: RFC 3339, Unix seconds, `now` or `now-DURATION`.
pub fn parse_time(flag: &str, text: &str, now: Timestamp) -> Result<i64, CommandError> {
    let text = text.trim();
    if text == "now" {
        return Ok(now.as_second());
    }
    if let Some(ago) = text.strip_prefix("now-") {
        let d = parse_duration(ago).map_err(|e| usage(format!("{flag} {text:?}: {e}")))?;
        return Ok(now.as_second() - i64::try_from(d.as_secs()).unwrap_or(i64::MAX / 2));
    }
    if let Ok(seconds) = text.parse::<i64>() {
        return Ok(seconds);
    }
    text.parse::<Timestamp>()
        .map(|t| t.as_second())
        .map_err(|_| {
            usage(format!(
                "{flag} {text:?}: expected RFC 3339 (2026-01-01T12:00:00Z), Unix seconds, now or now-DURATION (now-2h)"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_unix_seconds_or_relative_to_now() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        assert_eq!(parse_time("--from", "now", now).unwrap(), 1_767_268_800);
        assert_eq!(parse_time("--from", "now-1h", now).unwrap(), 1_767_265_200);
        assert_eq!(
            parse_time("--from", "1767225600", now).unwrap(),
            1_767_225_600
        );
        assert_eq!(
            parse_time("--from", "2026-01-01T00:00:00Z", now).unwrap(),
            1_767_225_600
        );
        assert_eq!(
            parse_time("--to", "yesterday", now)
                .unwrap_err()
                .to_string(),
            "--to \"yesterday\": expected RFC 3339 (2026-01-01T12:00:00Z), Unix seconds, now or now-DURATION (now-2h)"
        );
    }
}
