//! Human explanations of proposals and decisions.

use super::decision::{Decision, FALLBACK_RULE, Reading};
use super::forecast::FORECAST_RULE;
use super::tolerance::within_band;
use crate::api::Action;
use crate::api::policy::{MetricRule, Policy, Rule};
use crate::text::{Precision, apart, number};

/// How one metric's reading became its proposal, such as `cpu 85 > 70`.
pub fn metric_explanation(
    policy: &Policy,
    metric: &MetricRule,
    reading: &Reading,
    proposal: Option<i32>,
    current: i32,
) -> String {
    let name = &metric.name;
    let value = match reading {
        Reading::Failed { kind, message } => return format!("{name} {kind}: {message}"),
        Reading::Value(v) => *v,
    };
    let v = number(value, Precision::Human);
    match metric.rule {
        Rule::Thresholds {
            out_above,
            in_below,
        } => {
            let (v_out, out) = apart(value, out_above);
            match in_below {
                _ if value > out_above => format!("{name} {v_out} > {out}"),
                Some(below) if value < below => {
                    let (v_in, below) = apart(value, below);
                    format!("{name} {v_in} < {below}")
                }
                Some(below) => {
                    let (v_in, below) = apart(value, below);
                    // Rounded apart from both bounds.
                    let v = if v_in.len() > v_out.len() {
                        v_in
                    } else {
                        v_out
                    };
                    format!("{name} {v} within [{below}, {out}]")
                }
                None => format!("{name} {v_out} <= {out} (no say on scale-in)"),
            }
        }
        Rule::Target(target) => {
            let t = number(target, Precision::Human);
            if proposal == Some(current)
                && within_band(policy.tolerance, metric.rule, value, current)
            {
                format!(
                    "{name} {v} within {}% of target {t}",
                    number(policy.tolerance * 100.0, Precision::Micro)
                )
            } else {
                format!(
                    "{name} {v} vs target {t}: ceil({current} x {v} / {t}) = {}",
                    show(proposal)
                )
            }
        }
        Rule::TargetPerReplica(per) => {
            let t = number(per, Precision::Human);
            if proposal == Some(current)
                && within_band(policy.tolerance, metric.rule, value, current)
            {
                format!(
                    "{name} {v} within {}% of {t} per replica x {current}",
                    number(policy.tolerance * 100.0, Precision::Micro)
                )
            } else {
                format!(
                    "{name} {v} at {t} per replica: ceil({v} / {t}) = {}",
                    show(proposal)
                )
            }
        }
    }
}

fn show(proposal: Option<i32>) -> String {
    proposal.map_or_else(|| "none".to_owned(), |p| p.to_string())
}

/// The one-line message of a decision, such as `Scale out from 4 to 6: cpu 85 > 70`, and its
/// reason alone (`cpu 85 > 70`).
pub fn summary(d: &Decision) -> (String, String) {
    let (from, to) = (d.current_replicas, d.desired_replicas);
    let why = winner_explanation(d);
    let held = d.limits.last().map(|l| l.message.clone());
    let dry = if d.dry_run {
        " (dry run: not applied)"
    } else {
        ""
    };
    let (headline, reason) = match d.action {
        Action::ScaleOut | Action::ScaleIn => {
            let verb = if d.action == Action::ScaleOut {
                "Scale out"
            } else {
                "Scale in"
            };
            let reason = match (why, held) {
                (Some(why), Some(held)) => format!("{why} (limited: {held})"),
                (Some(why), None) => why,
                // A change no metric asked for (the range corrected): the limit is the reason.
                (None, Some(held)) => held,
                (None, None) => String::new(),
            };
            (format!("{verb} from {from} to {to}"), reason)
        }
        Action::Hold => {
            let reason = match (held, why) {
                (Some(held), Some(why)) => format!("{held}; wanted by {why}"),
                (Some(held), None) => held,
                (None, _) => hold_reason(d),
            };
            (format!("Hold at {from}"), reason)
        }
    };
    (format!("{headline}: {reason}{dry}"), reason)
}

/// The winning metric's explanation, when it asked for a change.
fn winner_explanation(d: &Decision) -> Option<String> {
    let winner = d.winner.as_deref()?;
    if winner == FALLBACK_RULE {
        return Some("every metric failed: onMetricFailure fallback".to_owned());
    }
    if winner == FORECAST_RULE {
        return d
            .forecast
            .as_ref()
            .map(|f| format!("forecast {}", f.reason));
    }
    let m = d.metrics.iter().find(|m| m.name == winner)?;
    (m.proposal != Some(d.current_replicas)).then(|| m.explanation.clone())
}

/// Why nothing changed when no limit held.
fn hold_reason(d: &Decision) -> String {
    let winner = d
        .winner
        .as_deref()
        .and_then(|w| d.metrics.iter().find(|m| m.name == w));
    if d.winner.as_deref() == Some(FORECAST_RULE)
        && let Some(f) = &d.forecast
    {
        return format!(
            "forecast {} (the metrics proposed {})",
            f.reason, f.reactive
        );
    }
    let Some(winner) = winner else {
        let said: Vec<&str> = d.metrics.iter().map(|m| m.explanation.as_str()).collect();
        return format!("no metric asks for a change ({})", said.join("; "));
    };
    let lower: Vec<&str> = d
        .metrics
        .iter()
        .filter(|m| m.proposal.is_some_and(|p| p < d.current_replicas))
        .map(|m| m.name.as_str())
        .collect();
    if lower.is_empty() {
        winner.explanation.clone()
    } else {
        format!(
            "{}; scale-in needs every metric to agree ({} asked for fewer)",
            winner.explanation,
            lower.join(", ")
        )
    }
}
