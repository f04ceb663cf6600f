//! `scalewise decide`: run the decision engine once on given metric values.

use std::io::Write;
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use super::{CommandError, EncodeError, Outcome, read_documents, read_input};
use crate::api::{
    Action, FailureKind, Limit, Policy, ScalingPolicy, ScalingPolicyStatus, ValidationErrors,
};
use crate::cli::OutputFormat;
use crate::decide::{Decision, Observation, Reading, decide, next_status};
use crate::manifest::read_policy;

/// The inputs of one `decide` run.
pub struct DecideArgs<'a> {
    pub policy: &'a Path,
    pub replicas: i32,
    /// `NAME=VALUE`, VALUE a number or a failure kind.
    pub metrics: &'a [String],
    pub state: Option<&'a Path>,
    pub now: Option<Timestamp>,
    pub output: OutputFormat,
}

/// The JSON document `decide --output json` prints.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DecideReport<'a> {
    pub desired_replicas: i32,
    pub current_replicas: i32,
    pub action: Action,
    pub reason: &'a str,
    pub rule: Option<&'a str>,
    pub limits: &'a [Limit],
    pub dry_run: bool,
    /// Exactly the ScalingPolicy status the controller would write.
    pub state: &'a ScalingPolicyStatus,
}

/// Loads the single ScalingPolicy of a file, valid and resolved.
pub fn load_policy(path: &Path) -> Result<(ScalingPolicy, Policy), CommandError> {
    let (file, documents) = read_documents(path)?;
    let policies: Vec<_> = documents.iter().filter(|d| d.is_scaling_policy()).collect();
    let document = match policies.as_slice() {
        [one] => *one,
        [] => {
            return Err(CommandError::NoPolicy { file });
        }
        many => {
            return Err(CommandError::ManyPolicies {
                file,
                count: many.len(),
            });
        }
    };
    let object = read_policy(document).map_err(|errors| CommandError::Unreadable {
        file: file.clone(),
        policy: document.display_name(),
        source: ValidationErrors(errors),
    })?;
    let resolved = Policy::resolve(&object.spec).map_err(|source| CommandError::InvalidPolicy {
        file,
        policy: document.display_name(),
        source,
    })?;
    Ok((object, resolved))
}

/// Parses the `--metric NAME=VALUE` flags against the policy's metric names.
pub fn parse_metric_flags(
    policy: &Policy,
    flags: &[String],
) -> Result<Vec<Observation>, CommandError> {
    let names: Vec<&str> = policy.metrics.iter().map(|m| m.name.as_str()).collect();
    let mut observations: Vec<Observation> = Vec::new();
    for flag in flags {
        let (name, value) = flag.split_once('=').ok_or_else(|| {
            CommandError::Usage(format!("--metric {flag:?}: expected NAME=VALUE"))
        })?;
        if !names.contains(&name) {
            return Err(CommandError::Usage(format!(
                "--metric {flag:?}: the policy has no metric {name:?} (its metrics: {})",
                names.join(", ")
            )));
        }
        if observations.iter().any(|o| o.name == name) {
            return Err(CommandError::Usage(format!(
                "--metric {name} is given twice"
            )));
        }
        let reading = match FailureKind::parse(value) {
            Some(kind) => Reading::failed(kind, format!("given as {kind} on the command line")),
            None => match value.parse::<f64>() {
                Ok(v) if v.is_finite() => Reading::Value(v),
                _ => {
                    return Err(CommandError::Usage(format!(
                        "--metric {flag:?}: VALUE must be a finite number or one of unavailable, empty, stale, invalid"
                    )));
                }
            },
        };
        observations.push(Observation {
            name: name.to_owned(),
            reading,
            query: None,
            pods: None,
        });
    }
    let missing: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !observations.iter().any(|o| o.name == *n))
        .collect();
    if !missing.is_empty() {
        return Err(CommandError::Usage(format!(
            "every metric of the policy needs a --metric NAME=VALUE; missing: {}",
            missing.join(", ")
        )));
    }
    Ok(observations)
}

/// Reads a `--state` file: a ScalingPolicy status as printed in `state`, in JSON or YAML.
pub fn load_state(path: &Path) -> Result<ScalingPolicyStatus, CommandError> {
    let file = path.display().to_string();
    let text = read_input(path)?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|source| CommandError::State { file, source })
}

pub fn run(args: &DecideArgs<'_>, out: &mut impl Write) -> Result<Outcome, CommandError> {
    if args.replicas < 0 {
        return Err(CommandError::Usage(format!(
            "--replicas must be at least 0, got {}",
            args.replicas
        )));
    }
    let (object, policy) = load_policy(args.policy)?;
    let observations = parse_metric_flags(&policy, args.metrics)?;
    let previous = match args.state {
        Some(path) => load_state(path)?,
        None => ScalingPolicyStatus::default(),
    };
    let now = args.now.unwrap_or_else(Timestamp::now);
    let decision = decide(&policy, &previous, &observations, args.replicas, now);
    let status = next_status(&previous, &decision, object.metadata.generation);
    match args.output {
        OutputFormat::Json => {
            let report = DecideReport {
                desired_replicas: decision.desired_replicas,
                current_replicas: decision.current_replicas,
                action: decision.action,
                reason: &decision.message,
                rule: decision.winner.as_deref(),
                limits: &decision.limits,
                dry_run: decision.dry_run,
                state: &status,
            };
            let json = serde_json::to_string_pretty(&report).map_err(EncodeError::from)?;
            writeln!(out, "{json}")?;
        }
        OutputFormat::Text => write_text(&decision, out)?,
    }
    Ok(Outcome::Success)
}

/// A short human explanation of a decision.
pub fn write_text(d: &Decision, out: &mut impl Write) -> std::io::Result<()> {
    writeln!(out, "{}", d.message)?;
    writeln!(out, "metrics:")?;
    let width = d.metrics.iter().map(|m| m.name.len()).max().unwrap_or(0);
    for m in &d.metrics {
        let proposal = m.proposal.map_or_else(|| "-".to_owned(), |p| p.to_string());
        let mark = if d.winner.as_deref() == Some(m.name.as_str()) {
            "*"
        } else {
            " "
        };
        writeln!(
            out,
            " {mark} {:<width$}  -> {proposal:>4}  {}",
            m.name, m.explanation
        )?;
    }
    if !d.limits.is_empty() {
        writeln!(out, "limits:")?;
        for l in &d.limits {
            writeln!(out, "   {:?}: {}", l.kind, l.message)?;
        }
    }
    Ok(())
}
