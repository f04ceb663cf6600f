//! Trace mode (`--trace`): a load trace played through the service model, the policy's metrics
//! read from the model's outputs.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use indicatif::ProgressBar;

use super::output::{
    baseline_reference, labels, per_replica, progress_bar, rule_references, write_curve,
    write_files, write_notes, write_summary,
};
use super::shared::{Side, command_error, initial_replicas, policy_label, seconds, sides, usage};
use crate::api::Policy;
use crate::api::duration::format_duration;
use crate::cli::SimulateArgs;
use crate::commands::decide::load_policy;
use crate::commands::query::display_name;
use crate::commands::read_input;
use crate::commands::{CommandError, Outcome};
use crate::simulate::bind::{self, MetricBinding, ModelMetric};
use crate::simulate::hpa::num;
use crate::simulate::plot::{Figure, LineKind, MetricPanel, Reference};
use crate::simulate::report::{Run, Slo};
use crate::simulate::{ModelParams, SimulateError, Trace, TraceSetup, curve, oracle, run_trace};

/// Simulated seconds (over every run) from which trace mode shows a progress bar: one day.
const LONG_RUN: u64 = 86_400;

/// Simulates the policy in `policy_path` on the trace in `trace_path`.
pub(super) fn run(
    args: &SimulateArgs,
    policy_path: &Path,
    trace_path: &Path,
    out: &mut impl Write,
    notes: &mut impl Write,
) -> Result<Outcome, CommandError> {
    let (object, policy) = load_policy(policy_path)?;
    let maps = bind::parse_maps(&args.maps).map_err(command_error)?;
    let bindings = bind::bind(&policy.metrics, &maps).map_err(command_error)?;
    let params = model_params(args)?;
    let slo = slo(args)?;
    let initial = initial_replicas(args, &policy)?;
    let trace_name = trace_path.display().to_string();
    let trace = Trace::parse(&trace_name, &read_input(trace_path)?)
        .map_err(|e| command_error(SimulateError::from(e)))?;

    let label = policy_label(object.metadata.name.as_deref().unwrap_or_default());
    let mut sides = sides(
        args,
        &policy,
        &label,
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
    // Every side, and the oracle's two passes.
    let total = u64::try_from(trace.duration()).unwrap_or(0) * (sides.len() as u64 + 2);
    // A bar for long runs only: shorter ones end before it would show anything.
    let bar = if total > LONG_RUN {
        progress_bar(total, "simulating")
    } else {
        ProgressBar::hidden()
    };
    let mut runs: Vec<Run> = sides
        .iter_mut()
        .map(|side| {
            // The baseline reads its CPU as metrics-server gives it: per ready pod.
            let hpa_bindings = side
                .baseline
                .as_ref()
                .map(|hpa| bind::for_hpa(&bindings, hpa));
            let setup = TraceSetup {
                bindings: hpa_bindings.as_deref().unwrap_or(&bindings),
                ..setup.clone()
            };
            run_trace(side.autoscaler.as_mut(), &setup, &mut |n| bar.inc(n))
        })
        .collect();
    let interval = policy.interval.as_secs();
    runs.push(oracle::run(&setup, policy.min_replicas, interval));
    bar.inc(2 * u64::try_from(trace.duration()).unwrap_or(0));
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
    write_notes(out, &sides)?;
    writeln!(
        out,
        "{}: the limit, with perfect knowledge of the trace: each second the fewest replicas that keep the SLO, started {}s ahead, {}..{} replicas, no rate limits",
        oracle::LABEL,
        params.startup_delay,
        policy.min_replicas,
        policy.max_replicas
    )?;
    write_summary(out, &runs, runs.last().map(|r| &r.summary))?;
    write_curve(out, &runs)?;

    let metric_names: Vec<String> = bindings.iter().map(|b| b.name.clone()).collect();
    // A sweep's HPAs are for the table and the curve: the figure shows the others.
    let drawn: Vec<&Run> = runs.iter().filter(|r| !curve::is_swept(&r.label)).collect();
    let figure = Figure {
        title: format!(
            "{} on {}: {}",
            display_name(&object),
            file_name(trace_path),
            labels(&drawn)
        ),
        subtitle: format!(
            "{} requests/s per replica, base latency {}s, start-up {}s; SLO p95 <= {}s, errors <= {}%",
            num(params.capacity),
            num(params.base_latency),
            params.startup_delay,
            num(slo.latency),
            num(slo.error_rate * 100.0)
        ),
        runs: drawn.clone(),
        metrics: panels(&policy, &bindings, &sides, &slo),
        capacity: Some(params.capacity),
        max_replicas: policy.max_replicas,
        start: trace.start,
        end: trace.end(),
    };
    write_files(args, &metric_names, &runs, &figure, notes)?;
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

/// The SLO of the summary: `--slo-latency` and `--slo-error-rate`.
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

/// A metric and the model output it reads, for the `metrics:` line.
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

/// The panels of a trace run: per metric, its unit, its thresholds, the HPA's target and the SLO.
fn panels(
    policy: &Policy,
    bindings: &[MetricBinding],
    sides: &[Side],
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
            references.extend(baseline_reference(&rule.name, sides));
            MetricPanel {
                name: rule.name.clone(),
                title: format!("{} ({unit}{})", rule.name, per_replica(rule.rule)),
                references,
            }
        })
        .collect()
}

/// The trace's file name, for the figure's title.
fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
