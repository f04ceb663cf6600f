//! `scalewise query`: read every metric of a policy from Prometheus once, and show its PromQL, its
//! value or why there is none, and what the decision engine proposes from it.

use std::io::Write;
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use super::decide::load_policy;
use super::pods::PodsSource;
pub use super::prometheus::source_config;
use super::{CommandError, EncodeError, Outcome};
use crate::api::{FailureKind, ScalingPolicy, ScalingPolicyStatus};
use crate::cli::{OutputFormat, PodsFrom, PrometheusArgs};
use crate::decide::{Decision, Observation, decide};
use crate::metrics::ConfigError;
use crate::metrics::{Failure, MetricObservation};
use crate::text::{self, Precision, Resolution};

/// The inputs of one `query` run.
pub struct QueryArgs<'a> {
    pub policy: &'a Path,
    /// The target's replicas; default minReplicas (at least 1).
    pub replicas: Option<i32>,
    /// `--namespace`: the namespace of a manifest without one.
    pub namespace: Option<&'a str>,
    /// Where `cpu` and `memory` find the target's pods.
    pub pods: PodsFrom,
    /// `--coalesced`: print each metric's coalesced query.
    pub coalesced: bool,
    pub output: OutputFormat,
    pub prometheus: &'a PrometheusArgs,
}

/// One metric in `--output json`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryReport<'a> {
    pub name: &'a str,
    /// The PromQL that produced the value.
    pub query: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<FailureKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Age of the newest raw sample behind the value, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_seconds: Option<f64>,
    /// The PromQL that measured the age.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub age_query: Option<&'a str>,
    /// With `--coalesced`: the query the operator shares with other policies of the metric's
    /// template (this policy its only member), or the metric's own when it is shared only with
    /// identical ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coalesced_query: Option<&'a str>,
    /// With `--coalesced`: the labels that query's answer is split by (empty: shared whole).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub split_by: Option<&'a [String]>,
    /// What the engine proposes from it; absent when the metric abstains.
    pub proposed_replicas: Option<i32>,
    /// How the value became the proposal, such as `cpu 85 > 70`.
    pub explanation: &'a str,
}

/// Runs `query` on a runtime of its own.
pub fn run(args: &QueryArgs<'_>, out: &mut impl Write) -> Result<Outcome, CommandError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CommandError::Runtime)?;
    runtime.block_on(run_async(args, out))
}

/// `query` inside a Tokio runtime.
pub async fn run_async(
    args: &QueryArgs<'_>,
    out: &mut impl Write,
) -> Result<Outcome, CommandError> {
    let (mut object, policy) = load_policy(args.policy)?;
    let file = args.policy.display().to_string();
    match (&object.metadata.namespace, args.namespace) {
        (Some(own), Some(given)) if own != given => {
            return Err(CommandError::Usage(format!(
                "{file}: the policy's namespace {own:?} does not match --namespace {given:?}"
            )));
        }
        (None, given) => {
            object.metadata.namespace = Some(
                given
                    .unwrap_or(crate::metrics::plan::DEFAULT_NAMESPACE)
                    .to_owned(),
            );
        }
        (Some(_), _) => {}
    }
    let replicas = match args.replicas {
        Some(n) if n < 0 => {
            return Err(CommandError::Usage(format!(
                "--replicas must be at least 0, got {n}"
            )));
        }
        Some(n) => n,
        None => policy.min_replicas.max(1),
    };
    let config = source_config(args.prometheus).map_err(|e| match e {
        ConfigError::Url { .. } | ConfigError::Header { .. } => CommandError::Usage(e.to_string()),
        other => CommandError::Config(other),
    })?;
    let (mut plan, source, server) =
        super::prometheus::connect(&file, display_name(&object), &object, &policy, config)?;
    let pods = super::pods::find(&mut plan, &policy, args.pods).await;
    let coalesced: Option<Vec<Coalesced>> = args
        .coalesced
        .then(|| plan.metrics.iter().map(Coalesced::of).collect());
    let mut observations = source
        .evaluate_with_pods(&plan, None, pods.pods())
        .await
        .map_err(CommandError::Metrics)?;
    if let PodsSource::KubeStateMetrics(rewritten) = &pods {
        for o in &mut observations {
            if rewritten.contains(&o.name) && o.result == Err(Failure::Empty) {
                o.result = Err(Failure::NoReadyPod(super::pods::NEEDS.to_owned()));
            }
        }
    }

    // What the engine makes of them: its first evaluation of the policy, without history.
    let engine_input: Vec<Observation> = observations.iter().cloned().map(Into::into).collect();
    let decision = decide(
        &policy,
        &ScalingPolicyStatus::default(),
        &engine_input,
        replicas,
        Timestamp::now(),
    );

    match args.output {
        OutputFormat::Json => write_json(&observations, &decision, coalesced.as_deref(), out)?,
        OutputFormat::Text => {
            let header = Header {
                object: &object,
                server: server.url.as_str(),
                replicas,
                assumed: args.replicas.is_none(),
                pods: pods.describe(),
            };
            write_text(&header, &observations, &decision, coalesced.as_deref(), out)?;
        }
    }
    Ok(if observations.iter().any(|o| o.result.is_err()) {
        Outcome::Problems
    } else {
        Outcome::Success
    })
}

pub(crate) fn display_name(object: &ScalingPolicy) -> String {
    let name = object.metadata.name.as_deref().unwrap_or("<unnamed>");
    match &object.metadata.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    }
}

/// The first lines of the text output.
struct Header<'a> {
    object: &'a ScalingPolicy,
    server: &'a str,
    replicas: i32,
    /// `--replicas` was not given.
    assumed: bool,
    /// Where the target's pods came from, when a metric counts them.
    pods: Option<String>,
}

/// A metric's coalesced form, for `--coalesced`.
struct Coalesced {
    name: String,
    query: String,
    split_by: Vec<String>,
}

impl Coalesced {
    fn of(m: &crate::metrics::MetricQuery) -> Self {
        use crate::metrics::coalesce::{self, Sharing};
        let (query, split_by) = match &m.sharing {
            Sharing::Split(split) => (
                coalesce::query(
                    &split.template,
                    &split.labels,
                    std::slice::from_ref(&split.values),
                )
                .unwrap_or_else(|e| format!("(cannot be built: {e})")),
                split.labels.clone(),
            ),
            Sharing::Whole => (m.sent().to_owned(), Vec::new()),
        };
        Coalesced {
            name: m.name.clone(),
            query,
            split_by,
        }
    }

    fn find<'a>(all: Option<&'a [Coalesced]>, name: &str) -> Option<&'a Coalesced> {
        all.and_then(|all| all.iter().find(|c| c.name == name))
    }
}

fn write_text(
    h: &Header<'_>,
    observations: &[MetricObservation],
    decision: &Decision,
    coalesced: Option<&[Coalesced]>,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let namespace = h
        .object
        .metadata
        .namespace
        .as_deref()
        .unwrap_or(crate::metrics::plan::DEFAULT_NAMESPACE);
    writeln!(
        out,
        "{}: {} metrics of {} {namespace}/{} from {}",
        display_name(h.object),
        observations.len(),
        h.object.spec.target_ref.kind,
        h.object.spec.target_ref.name,
        h.server
    )?;
    if let Some(pods) = &h.pods {
        writeln!(out, "{pods}")?;
    }
    if h.assumed {
        writeln!(
            out,
            "proposals for {} replicas (minReplicas; --replicas N gives the target's count)",
            h.replicas
        )?;
    } else {
        writeln!(out, "proposals for {} replicas", h.replicas)?;
    }
    for o in observations {
        writeln!(out)?;
        match &o.result {
            Ok(sample) => match sample.age {
                Some(age) => writeln!(
                    out,
                    "{}: {} (newest sample {} old)",
                    o.name,
                    text::number(sample.value, Precision::Micro),
                    text::duration(age, Resolution::Fine)
                )?,
                None => writeln!(
                    out,
                    "{}: {}",
                    o.name,
                    text::number(sample.value, Precision::Micro)
                )?,
            },
            Err(failure) => writeln!(out, "{}: {}: {failure}", o.name, failure.kind())?,
        }
        writeln!(out, "  query:     {}", o.query)?;
        if let Some(age_query) = &o.age_query {
            writeln!(out, "  age query: {age_query}")?;
        }
        if let Some(c) = Coalesced::find(coalesced, &o.name) {
            if c.split_by.is_empty() {
                writeln!(
                    out,
                    "  coalesced: shared whole with identical queries of the same tick"
                )?;
            } else {
                writeln!(
                    out,
                    "  coalesced: {} (split by {})",
                    c.query,
                    c.split_by.join(", ")
                )?;
            }
        }
        let outcome = decision.metrics.iter().find(|m| m.name == o.name);
        let proposal = outcome.and_then(|m| m.proposal);
        let because = match (&o.result, outcome) {
            (Err(_), _) => "a failed metric keeps the current count and blocks scale-in".to_owned(),
            (Ok(_), Some(m)) => m.explanation.clone(),
            (Ok(_), None) => String::new(),
        };
        match proposal {
            Some(p) => writeln!(out, "  proposes:  {p} ({because})")?,
            None => writeln!(out, "  proposes:  nothing ({because})")?,
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "a first evaluation (no history) would decide: {}",
        decision.message
    )?;
    Ok(())
}

fn write_json(
    observations: &[MetricObservation],
    decision: &Decision,
    coalesced: Option<&[Coalesced]>,
    out: &mut impl Write,
) -> Result<(), CommandError> {
    let reports: Vec<QueryReport<'_>> = observations
        .iter()
        .map(|o| {
            let outcome = decision.metrics.iter().find(|m| m.name == o.name);
            QueryReport {
                name: &o.name,
                query: &o.query,
                value: o.value(),
                failure: o.failure_kind(),
                message: o.result.as_ref().err().map(ToString::to_string),
                age_seconds: o
                    .result
                    .as_ref()
                    .ok()
                    .and_then(|s| s.age)
                    .map(|a| a.as_secs_f64()),
                age_query: o.age_query.as_deref(),
                coalesced_query: Coalesced::find(coalesced, &o.name).map(|c| c.query.as_str()),
                split_by: Coalesced::find(coalesced, &o.name).map(|c| c.split_by.as_slice()),
                proposed_replicas: outcome.and_then(|m| m.proposal),
                explanation: outcome.map_or("", |m| m.explanation.as_str()),
            }
        })
        .collect();
    let json = serde_json::to_string_pretty(&reports).map_err(EncodeError::from)?;
    writeln!(out, "{json}")?;
    Ok(())
}
