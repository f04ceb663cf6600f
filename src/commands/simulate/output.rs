//! What a simulation writes, in both trace and backtest mode: the notes on each side, the
//! summary table, the timeline CSV (`--out-csv`), the plot (`--plot`) and its reference lines,
//! and the progress bar.

use std::io::{IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};

use super::shared::{Side, command_error, usage};
use crate::api::policy::Rule;
use crate::cli::SimulateArgs;
use crate::commands::CommandError;
use crate::simulate::SimulateError;
use crate::simulate::curve;
use crate::simulate::hpa::{MetricType, num};
use crate::simulate::plot::{self, Figure, LineKind, Reference};
use crate::simulate::report::{self, Run, Summary};

/// Refuses a `--plot` name that is neither `.svg` nor `.png`, before anything runs.
pub(super) fn check_plot_name(args: &SimulateArgs) -> Result<(), CommandError> {
    match &args.plot {
        Some(path) if plot::format_of(path).is_none() => Err(usage(format!(
            "--plot {}: the file name must end in .svg or .png",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// One line per side: its label and what it runs.
pub(super) fn write_notes(out: &mut impl Write, sides: &[Side]) -> std::io::Result<()> {
    for side in sides {
        writeln!(
            out,
            "{}: {}",
            side.autoscaler.label(),
            side.autoscaler.describe()
        )?;
    }
    Ok(())
}

/// The summary table, one row per run, after a blank line; against the oracle's run when there
/// is one (trace mode).
pub(super) fn write_summary(
    out: &mut impl Write,
    runs: &[Run],
    oracle: Option<&Summary>,
) -> std::io::Result<()> {
    writeln!(out)?;
    let summaries: Vec<_> = runs.iter().map(|r| &r.summary).collect();
    let table = match oracle {
        Some(o) => report::summary_table_against(&summaries, o),
        None => report::summary_table(&summaries),
    };
    out.write_all(table.as_bytes())
}

/// With `--hpa-sweep`, one line after the table: where the policy (the first run) lies against
/// the curve through the swept HPAs (the runs labelled `hpa@<target>`).
pub(super) fn write_curve(out: &mut impl Write, runs: &[Run]) -> std::io::Result<()> {
    let Some(policy) = runs.first().map(|r| &r.summary) else {
        return Ok(());
    };
    let swept: Vec<&Summary> = runs
        .iter()
        .map(|r| &r.summary)
        .filter(|s| curve::is_swept(&s.label))
        .collect();
    let point = |s: &Summary| {
        s.violation_minutes().map(|slo_minutes| curve::Point {
            slo_minutes,
            replica_hours: s.replica_hours(),
        })
    };
    let (Some(mine), Some(points)) = (
        point(policy),
        swept.iter().map(|s| point(s)).collect::<Option<Vec<_>>>(),
    ) else {
        return Ok(());
    };
    let (Some(first), Some(last)) = (swept.first(), swept.last()) else {
        return Ok(());
    };
    let name = &policy.label;
    write!(
        out,
        "\nHPA curve ({} to {}, {} targets): ",
        first.label,
        last.label,
        swept.len()
    )?;
    let (curve, below) = match curve::judge(&points, mine) {
        curve::Verdict::Below { curve } => (curve, true),
        curve::Verdict::Above { curve } => (curve, false),
        curve::Verdict::Beyond { most } => {
            return writeln!(
                out,
                "{name} has {:.1} SLO minutes, more than every swept HPA (at most {most:.1}): the curve does not reach it, so {name} does not lie below it.",
                mine.slo_minutes
            );
        }
        curve::Verdict::Empty => return Ok(()),
    };
    let change = if curve > 0.0 {
        format!(
            ", {}% {}",
            num(((mine.replica_hours - curve) / curve * 100.0).abs().round()),
            if below { "fewer" } else { "more" }
        )
    } else {
        String::new()
    };
    writeln!(
        out,
        "at {name}'s {:.1} SLO minutes the curve needs {:.2} replica-hours; {name} has {:.2}{change}: {name} {} the curve.",
        mine.slo_minutes,
        curve,
        mine.replica_hours,
        if below {
            "lies below"
        } else {
            "does not lie below"
        }
    )
}

/// `--out-csv` and `--plot`, each with a note naming the file written.
pub(super) fn write_files(
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

/// Writes `bytes` to `path`; a failure is a problem with the file (exit 1).
pub(super) fn write_file(path: &Path, bytes: &[u8]) -> Result<(), CommandError> {
    std::fs::write(path, bytes).map_err(|source| {
        command_error(SimulateError::Write {
            path: path.display().to_string(),
            source,
        })
    })
}

/// The unit of a `targetPerReplica` rule for a panel's title.
pub(super) fn per_replica(rule: Rule) -> String {
    match rule {
        Rule::TargetPerReplica(p) => format!("; target {} per replica", num(p)),
        _ => String::new(),
    }
}

/// The lines a rule draws on its metric's panel: its thresholds or its target.
pub(super) fn rule_references(rule: Rule) -> Vec<Reference> {
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
pub(super) fn baseline_reference(metric: &str, sides: &[Side]) -> Option<Reference> {
    sides.iter().enumerate().find_map(|(i, side)| {
        let spec = side.baseline.as_ref()?;
        (spec.metric == metric && spec.metric_type != MetricType::AverageValue).then(|| Reference {
            label: format!("{} target {}", side.autoscaler.label(), num(spec.target)),
            value: spec.target,
            kind: LineKind::RunTarget(i),
        })
    })
}

/// The runs' labels for a figure's title: `web vs hpa vs oracle`.
pub(super) fn labels(runs: &[&Run]) -> String {
    runs.iter()
        .map(|r| r.label.as_str())
        .collect::<Vec<_>>()
        .join(" vs ")
}

/// A bar on standard error when it is a terminal; hidden otherwise.
pub(super) fn progress_bar(total: u64, what: &'static str) -> ProgressBar {
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
