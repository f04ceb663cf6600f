//! `scalewise simulate`: what a policy would do with a load trace or with Prometheus history,
//! beside the Kubernetes HPA; or a synthetic trace (`--generate`).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use jiff::Timestamp;

use super::decide::load_policy;
use super::query::{display_name, source_config};
use super::{CommandError, Outcome, read_input};
use crate::api::duration::{format_duration, parse_duration};
use crate::api::validate::Rule;
use crate::api::{MetricSpec, Policy};
use crate::cli::SimulateArgs;
use crate::metrics::{MetricsError, PrometheusSource, QueryPlan, SourceKind};
use crate::simulate::backtest::{self, Window};
use crate::simulate::bind::{self, MetricBinding, ModelMetric};
use crate::simulate::generate::Generator;
use crate::simulate::hpa::{HpaAutoscaler, HpaSpec, MetricType, num};
use crate::simulate::plot::{self, Figure, LineKind, MetricPanel, Reference};
use crate::simulate::report::{self, Run, Slo};
use crate::simulate::run::timestamp;
use crate::simulate::{
    Autoscaler, ModelParams, ScalewiseAutoscaler, SimulateError, Trace, TraceSetup, run_trace,
};

/// The baselines `--compare` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Baseline {
    /// The Kubernetes HorizontalPodAutoscaler v2 with its defaults.
    Hpa,
}

/// Simulated seconds (over every run) from which trace mode shows a progress bar: one day.
const LONG_RUN: u64 = 86_400;

/// The default step of a backtest's range queries.
pub const DEFAULT_BACKTEST_STEP: Duration = Duration::from_secs(15);

/// Runs `simulate`: writes a trace with `--generate`, else simulates a trace (`--trace`) or
/// backtests history (`--from`, `--to`). Summaries go to `out`; notes on written files to `notes`.
pub fn run(
    args: &SimulateArgs,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    if let Some(shape) = args.generate {
        return generate(args, shape, out, notes);
    }
    for (given, flag) in [
        (args.seed.is_some(), "--seed"),
        (args.duration.is_some(), "--duration"),
        (args.out.is_some(), "--out"),
        (args.base_load.is_some(), "--base-load"),
        (args.peak_load.is_some(), "--peak-load"),
    ] {
        if given {
            return Err(usage(format!("{flag} only goes with --generate SHAPE")));
        }
    }
    if let Some(path) = &args.plot
        && plot::format_of(path).is_none()
    {
        return Err(usage(format!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        )));
    }
    let Some(policy_path) = args.policy.as_deref() else {
        return Err(usage("--policy FILE is required".into()));
    };
    match (&args.trace, &args.from, &args.to) {
        (Some(trace), None, None) => simulate_trace(args, policy_path, trace, out, notes),
        (None, Some(from), Some(to)) => backtest(args, policy_path, from, to, out, notes),
        (None, None, None) => Err(usage(
            "give --trace FILE (replay a load trace through a service model), --from TIME --to TIME (backtest Prometheus history) or --generate SHAPE (write a synthetic trace)".into(),
        )),
        (Some(_), _, _) => Err(usage(
            "--trace cannot go with --from/--to: simulate a trace or backtest history, not both"
                .into(),
        )),
        _ => Err(usage("--from and --to go together".into())),
    }
}

fn usage(message: String) -> CommandError {
    CommandError::Usage(message)
}

/// Maps the simulator's errors to exit statuses: flags, parameters and bindings are usage errors
/// (2), wrong inputs problems (1).
fn command_error(e: SimulateError) -> CommandError {
    match e {
        SimulateError::Binding(_) | SimulateError::Parameter(_) | SimulateError::Baseline(_) => {
            CommandError::Usage(e.to_string())
        }
        other => CommandError::Invalid(other.to_string()),
    }
}

/// `--generate SHAPE`.
fn generate(
    args: &SimulateArgs,
    shape: crate::simulate::generate::Shape,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    for (given, flag) in [
        (args.policy.is_some(), "--policy"),
        (args.trace.is_some(), "--trace"),
        (args.from.is_some(), "--from"),
        (args.compare.is_some(), "--compare"),
        (args.out_csv.is_some(), "--out-csv"),
        (args.plot.is_some(), "--plot"),
    ] {
        if given {
            return Err(usage(format!(
                "{flag} does not go with --generate, which only writes a trace"
            )));
        }
    }
    let mut g = Generator::new(shape, args.seed.unwrap_or(1));
    if let Some(d) = args.duration {
        g.duration = seconds(d);
    }
    if let Some(s) = args.step {
        g.step = seconds(s);
    }
    if let Some(b) = args.base_load {
        g.base = b;
    }
    if let Some(p) = args.peak_load {
        g.peak = p;
    }
    g.check().map_err(command_error)?;
    let trace = g.generate();
    let csv = trace.to_csv();
    match &args.out {
        Some(path) => {
            write_file(path, csv.as_bytes())?;
            writeln!(
                notes,
                "wrote {}: {} trace, seed {}, {} rows every {}s ({}), {} to {} requests/s",
                path.display(),
                shape.as_str(),
                g.seed,
                trace.rates.len(),
                trace.step,
                format_duration(Duration::from_secs(
                    u64::try_from(trace.duration()).unwrap_or(0)
                )),
                num(g.base),
                num(g.peak)
            )?;
        }
        None => out.write_all(csv.as_bytes())?,
    }
    Ok(Outcome::Success)
}

/// The service model's parameters: defaults, then `--model FILE`, then the flags.
fn model_params(args: &SimulateArgs) -> Result<ModelParams, CommandError> {
    let mut params = ModelParams::default();
    if let Some(path) = &args.model {
        let text = read_input(path)?;
        params = params
            .with_file(&path.display().to_string(), &text)
            .map_err(command_error)?;
    }
    if let Some(v) = args.capacity {
        params.capacity = v;
    }
    if let Some(v) = args.base_latency {
        params.base_latency = v;
    }
    if let Some(d) = args.startup_delay {
        params.startup_delay = seconds(d);
    }
    if let Some(v) = args.queue_limit {
        params.queue_limit = v;
    }
    params.check().map_err(command_error)?;
    Ok(params)
}

fn slo(args: &SimulateArgs) -> Result<Slo, CommandError> {
    if !(args.slo_latency.is_finite() && args.slo_latency > 0.0) {
        return Err(usage(format!(
            "--slo-latency must be a number of seconds > 0, got {}",
            args.slo_latency
        )));
    }
    if !(args.slo_error_rate.is_finite() && (0.0..=1.0).contains(&args.slo_error_rate)) {
        return Err(usage(format!(
            "--slo-error-rate must be a share between 0 and 1, got {}",
            args.slo_error_rate
        )));
    }
    Ok(Slo {
        latency: args.slo_latency,
        error_rate: args.slo_error_rate,
        ..Slo::default()
    })
}

fn initial_replicas(args: &SimulateArgs, policy: &Policy) -> Result<i32, CommandError> {
    match args.initial_replicas {
        Some(n) if n < 0 => Err(usage(format!(
            "--initial-replicas must be at least 0, got {n}"
        ))),
        Some(n) => Ok(n),
        None => Ok(policy.min_replicas.max(1)),
    }
}

/// Trace mode.
fn simulate_trace(
    args: &SimulateArgs,
    policy_path: &Path,
    trace_path: &Path,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    let (object, policy) = load_policy(policy_path)?;
    let maps = bind::parse_maps(&args.maps).map_err(command_error)?;
    let bindings = bind::bind(&object.spec.metrics, &maps).map_err(command_error)?;
    let params = model_params(args)?;
    let slo = slo(args)?;
    let initial = initial_replicas(args, &policy)?;
    let trace_name = trace_path.display().to_string();
    let trace = Trace::parse(&trace_name, &read_input(trace_path)?)
        .map_err(|e| CommandError::Invalid(SimulateError::from(e).to_string()))?;

    let mut autoscalers = autoscalers(
        args,
        &policy,
        bindings
            .first()
            .map(|b| (b.source == ModelMetric::Cpu, b.window)),
    )?;
    let setup = TraceSetup {
        trace: &trace,
        params,
        bindings: &bindings,
        initial_replicas: initial,
        max_replicas: policy.max_replicas,
        slo,
    };
    let total = u64::try_from(trace.duration()).unwrap_or(0) * autoscalers.len() as u64;
    // A bar for long runs only: shorter ones end before it would show anything.
    let bar = if total > LONG_RUN {
        progress_bar(total, "simulating")
    } else {
        ProgressBar::hidden()
    };
    let runs: Vec<Run> = autoscalers
        .iter_mut()
        .map(|a| {
            // The baseline reads its CPU as metrics-server gives it: per ready pod.
            let hpa_bindings = a
                .baseline()
                .map(|hpa| bind::for_hpa(&bindings, &hpa.metric));
            let setup = TraceSetup {
                bindings: hpa_bindings.as_deref().unwrap_or(&bindings),
                ..setup.clone()
            };
            run_trace(a.as_mut(), &setup, &mut |n| bar.inc(n))
        })
        .collect();
    bar.finish_and_clear();

    let duration = format_duration(Duration::from_secs(
        u64::try_from(trace.duration()).unwrap_or(0),
    ));
    writeln!(
        out,
        "{} ({}) on {trace_name}: {} rows every {}s ({duration}), peak {} requests/s, starting with {initial} replicas",
        display_name(&object),
        policy_path.display(),
        trace.rates.len(),
        trace.step,
        num(trace.peak()),
    )?;
    writeln!(
        out,
        "model: {} requests/s per ready replica, base latency {}s, start-up {}s, queue {} requests per ready replica (M/M/c, {} per replica)",
        num(params.capacity),
        num(params.base_latency),
        params.startup_delay,
        num(params.queue_limit),
        match params.servers_per_replica() {
            1 => "1 server".to_owned(),
            n => format!("{n} servers"),
        }
    )?;
    writeln!(
        out,
        "metrics: {}",
        bindings
            .iter()
            .map(describe_binding)
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        out,
        "SLO: p{} latency <= {}s and error rate <= {}%",
        num(slo.quantile * 100.0),
        num(slo.latency),
        num(slo.error_rate * 100.0)
    )?;
    write_notes(out, &autoscalers)?;
    writeln!(out)?;
    let summaries: Vec<_> = runs.iter().map(|r| &r.summary).collect();
    out.write_all(report::summary_table(&summaries).as_bytes())?;

    let metric_names: Vec<String> = bindings.iter().map(|b| b.name.clone()).collect();
    let panels = panels_for_trace(&policy, &bindings, &autoscalers, &slo);
    let figure = Figure {
        title: format!(
            "{} on {}: {}",
            display_name(&object),
            file_name(trace_path),
            labels(&runs)
        ),
        subtitle: format!(
            "{} requests/s per replica, base latency {}s, start-up {}s; SLO p95 <= {}s, errors <= {}%",
            num(params.capacity),
            num(params.base_latency),
            params.startup_delay,
            num(slo.latency),
            num(slo.error_rate * 100.0)
        ),
        runs: runs.iter().collect(),
        metrics: panels,
        capacity: Some(params.capacity),
        max_replicas: policy.max_replicas,
        start: trace.start,
        end: trace.end(),
    };
    write_outputs(args, &metric_names, &runs, &figure, notes)?;
    Ok(Outcome::Success)
}

/// The autoscalers to run: the policy, and the baseline when asked for.
/// `first` says of the policy's first metric whether the HPA reads it as a Resource metric
/// (CPU or memory utilization), and its window in seconds.
fn autoscalers(
    args: &SimulateArgs,
    policy: &Policy,
    first: Option<(bool, usize)>,
) -> Result<Vec<Box<dyn Autoscaler>>, CommandError> {
    let mut list: Vec<Box<dyn Autoscaler>> = vec![Box::new(ScalewiseAutoscaler::new(
        policy.clone(),
        "scalewise",
    ))];
    if args.compare == Some(Baseline::Hpa) {
        let spec = HpaSpec::for_policy(
            policy,
            first.is_some_and(|(utilization, _)| utilization),
            first.map_or(60, |(_, window)| i64::try_from(window).unwrap_or(i64::MAX)),
        )
        .map_err(command_error)?;
        list.push(Box::new(HpaAutoscaler::new(spec)));
    }
    Ok(list)
}

fn write_notes(out: &mut impl Write, autoscalers: &[Box<dyn Autoscaler>]) -> std::io::Result<()> {
    for a in autoscalers {
        writeln!(out, "{}: {}", a.label(), a.describe())?;
    }
    Ok(())
}

fn describe_binding(b: &MetricBinding) -> String {
    let source = match b.source {
        ModelMetric::Latency { quantile } => format!("p{} latency", num(quantile * 100.0)),
        other => other.as_str().to_owned(),
    };
    let window = if b.source == ModelMetric::Queue {
        String::new()
    } else {
        format!(
            " over {}",
            format_duration(Duration::from_secs(b.window as u64))
        )
    };
    format!("{} = {source}{window}", b.name)
}

/// Backtest mode.
fn backtest(
    args: &SimulateArgs,
    policy_path: &Path,
    from: &str,
    to: &str,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    for (given, flag) in [
        (!args.maps.is_empty(), "--map"),
        (args.model.is_some(), "--model"),
        (args.capacity.is_some(), "--capacity"),
        (args.base_latency.is_some(), "--base-latency"),
        (args.startup_delay.is_some(), "--startup-delay"),
        (args.queue_limit.is_some(), "--queue-limit"),
    ] {
        if given {
            return Err(usage(format!(
                "{flag} sets the service model of --trace; a backtest reads the metrics from Prometheus"
            )));
        }
    }
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
    let plan = QueryPlan::for_policy(&object)
        .map_err(|e| CommandError::Invalid(format!("{file}: {}: {e}", display_name(&object))))?;
    let config = source_config(&args.prometheus).map_err(|e| usage(e.to_string()))?;
    let source = PrometheusSource::new(config).map_err(|e| CommandError::Invalid(e.to_string()))?;
    let server = source.server_for(&plan).map_err(|e| match e {
        MetricsError::NoServer => usage(e.to_string()),
        other => CommandError::Invalid(format!("{file}: {}: {other}", display_name(&object))),
    })?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CommandError::Invalid(format!("cannot start the async runtime: {e}")))?;
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

    let first = object.spec.metrics.first().map(|m| {
        let utilization = m.cpu.is_some() || m.memory.is_some();
        (utilization, bind::window_seconds(m))
    });
    let mut autoscalers = autoscalers(args, &policy, first)?;
    let load_metric = plan
        .metrics
        .iter()
        .find(|m| m.kind == SourceKind::RequestRate)
        .map(|m| m.name.clone());
    let runs: Vec<Run> = autoscalers
        .iter_mut()
        .map(|a| {
            backtest::replay(
                &history,
                a.as_mut(),
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
    writeln!(
        out,
        "History cannot show feedback from this policy's decisions: the metrics are what happened with the replicas that actually ran. The replica counts are what the policy would have asked for, applied at once; SLO minutes are not known."
    )?;
    write_notes(out, &autoscalers)?;
    writeln!(out)?;
    let summaries: Vec<_> = runs.iter().map(|r| &r.summary).collect();
    out.write_all(report::summary_table(&summaries).as_bytes())?;

    let metric_names: Vec<String> = plan.metrics.iter().map(|m| m.name.clone()).collect();
    let panels = panels_for_backtest(&policy, &object.spec.metrics, &autoscalers);
    let figure = Figure {
        title: format!(
            "{} backtested on {}: {}",
            display_name(&object),
            server.url,
            labels(&runs)
        ),
        subtitle: format!(
            "{} to {}; history cannot show feedback from the policy's own decisions",
            timestamp(window.from),
            timestamp(window.to)
        ),
        runs: runs.iter().collect(),
        metrics: panels,
        capacity: None,
        max_replicas: policy.max_replicas,
        start: window.from,
        end: window.to,
    };
    write_outputs(args, &metric_names, &runs, &figure, notes)?;
    Ok(Outcome::Success)
}

fn write_outputs(
    args: &SimulateArgs,
    metric_names: &[String],
    runs: &[Run],
    figure: &Figure<'_>,
    notes: &mut impl Write,
) -> Result<(), CommandError> {
    if let Some(path) = &args.out_csv {
        let refs: Vec<&Run> = runs.iter().collect();
        write_file(path, report::timeline_csv(metric_names, &refs).as_bytes())?;
        writeln!(notes, "wrote {}", path.display())?;
    }
    if let Some(path) = &args.plot {
        plot::write(path, figure).map_err(command_error)?;
        writeln!(notes, "wrote {}", path.display())?;
    }
    Ok(())
}

/// The panels of a trace run: per metric, its unit, its thresholds, the HPA's target and the SLO.
fn panels_for_trace(
    policy: &Policy,
    bindings: &[MetricBinding],
    autoscalers: &[Box<dyn Autoscaler>],
    slo: &Slo,
) -> Vec<MetricPanel> {
    policy
        .metrics
        .iter()
        .zip(bindings)
        .map(|(rule, binding)| {
            let unit = match binding.source {
                ModelMetric::Cpu | ModelMetric::ReadyCpu => "CPU, % of requests".to_owned(),
                ModelMetric::Latency { quantile } => {
                    format!("p{} latency, seconds", num(quantile * 100.0))
                }
                ModelMetric::ErrorRate => "error rate, share of requests".to_owned(),
                ModelMetric::RequestRate => "request rate, requests per second".to_owned(),
                ModelMetric::Queue => "queue, waiting requests".to_owned(),
            };
            let mut references = rule_references(rule.rule);
            match binding.source {
                ModelMetric::Latency { quantile } if (quantile - slo.quantile).abs() < 1e-9 => {
                    references.push(Reference {
                        label: format!("SLO {}s", num(slo.latency)),
                        value: slo.latency,
                        kind: LineKind::Slo,
                    });
                }
                ModelMetric::ErrorRate => references.push(Reference {
                    label: format!("SLO {}", num(slo.error_rate)),
                    value: slo.error_rate,
                    kind: LineKind::Slo,
                }),
                _ => {}
            }
            references.extend(baseline_reference(&rule.name, autoscalers));
            MetricPanel {
                name: rule.name.clone(),
                title: format!("{} ({unit}{})", rule.name, per_replica(rule.rule)),
                references,
            }
        })
        .collect()
}

fn panels_for_backtest(
    policy: &Policy,
    specs: &[MetricSpec],
    autoscalers: &[Box<dyn Autoscaler>],
) -> Vec<MetricPanel> {
    policy
        .metrics
        .iter()
        .map(|rule| {
            let kind = specs
                .iter()
                .find(|m| m.name == rule.name)
                .map_or("query", bind::kind_of);
            let mut references = rule_references(rule.rule);
            references.extend(baseline_reference(&rule.name, autoscalers));
            MetricPanel {
                name: rule.name.clone(),
                title: format!("{} ({kind}{})", rule.name, per_replica(rule.rule)),
                references,
            }
        })
        .collect()
}

fn per_replica(rule: Rule) -> String {
    match rule {
        Rule::TargetPerReplica(p) => format!("; target {} per replica", num(p)),
        _ => String::new(),
    }
}

fn rule_references(rule: Rule) -> Vec<Reference> {
    match rule {
        Rule::Thresholds {
            out_above,
            in_below,
        } => {
            let mut r = vec![Reference {
                label: format!("scale out above {}", num(out_above)),
                value: out_above,
                kind: LineKind::ScaleOut,
            }];
            if let Some(below) = in_below {
                r.push(Reference {
                    label: format!("scale in below {}", num(below)),
                    value: below,
                    kind: LineKind::ScaleIn,
                });
            }
            r
        }
        Rule::Target(t) => vec![Reference {
            label: format!("target {}", num(t)),
            value: t,
            kind: LineKind::Target,
        }],
        Rule::TargetPerReplica(_) => Vec::new(),
    }
}

/// The HPA's target on the metric it tracks (not for averageValue, which is per replica).
fn baseline_reference(metric: &str, autoscalers: &[Box<dyn Autoscaler>]) -> Option<Reference> {
    autoscalers.iter().enumerate().find_map(|(i, a)| {
        let spec = a.baseline()?;
        (spec.metric == metric && spec.metric_type != MetricType::AverageValue).then(|| Reference {
            label: format!("{} target {}", a.label(), num(spec.target)),
            value: spec.target,
            kind: LineKind::RunTarget(i),
        })
    })
}

/// A bar on standard error when it is a terminal; hidden otherwise.
fn progress_bar(total: u64, what: &'static str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    let style = ProgressStyle::with_template("{msg} [{bar:40}] {percent}% (ETA {eta})")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style.progress_chars("=> "));
    bar.set_message(what);
    bar
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

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    std::fs::write(path, bytes).map_err(|source| {
        CommandError::Invalid(
            SimulateError::Write {
                path: path.display().to_string(),
                source,
            }
            .to_string(),
        )
    })
}

fn labels(runs: &[Run]) -> String {
    runs.iter()
        .map(|r| r.label.as_str())
        .collect::<Vec<_>>()
        .join(" vs ")
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
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
