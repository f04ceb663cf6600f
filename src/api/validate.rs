//! Validation of a ScalingPolicy spec into the resolved [`Policy`] (`api/policy.rs`), with every
//! default applied.
//!
//! The CRD schema enforces types, minimums, enums and patterns, but older API servers drop CEL
//! rules and unknown fields silently, so every check is made again here. [`Policy::resolve`]
//! returns every problem at once, each with its field path.

use std::collections::HashSet;

use jiff::SignedDuration;

pub use super::address::parse_server_address;
use super::checker::Checker;
pub use super::checker::{FieldError, ValidationErrors};
use super::duration::DurationString;
use super::policy::{
    DirectionRules, FORECAST_RULE, FailureRules, ForecastRule, MetricRule, PodPolicy, Policy,
    RateLimit, Rule, Source, TargetKind,
};
use super::promql_check::{self, check_promql_parts, check_query};
use super::spec::SelectPolicy;
use super::spec::{
    Behavior, DEFAULT_CPU_INITIALIZATION_PERIOD, DEFAULT_FAILURE_AFTER,
    DEFAULT_FORECAST_ACCURACY_WINDOW, DEFAULT_FORECAST_MAX_ERROR, DEFAULT_FORECAST_REFRESH,
    DEFAULT_FORECAST_SEASON, DEFAULT_FORECAST_STEP, DEFAULT_INITIAL_READINESS_DELAY,
    DEFAULT_INTERVAL, DEFAULT_METRIC_WINDOW, DEFAULT_READINESS_TIMEOUT, DEFAULT_SCALE_IN_COOLDOWN,
    DEFAULT_SCALE_IN_STABILIZATION, DEFAULT_SCALE_OUT_COOLDOWN, DEFAULT_SCALE_OUT_STABILIZATION,
    DEFAULT_STEP, DEFAULT_TOLERANCE, FailureAction, ForecastMode, ForecastSpec, MetricSpec,
    PodRules, RatePolicyType, ScalingPolicySpec, ScalingRules,
};

use super::limits::{
    FORECAST_ACCURACY_WINDOW_RANGE, FORECAST_REFRESH_RANGE, FORECAST_SEASON_RANGE,
    FORECAST_STEP_RANGE, MAX_ADDRESS_LENGTH, MAX_API_VERSION_LENGTH, MAX_COOLDOWN,
    MAX_FORECAST_POINTS, MAX_FORECAST_SEASONS, MAX_INTERVAL, MAX_KIND_LENGTH,
    MAX_METRIC_NAME_LENGTH, MAX_METRICS, MAX_POD_START_PERIOD, MAX_QUERY_LENGTH, MAX_RATE_POLICIES,
    MAX_READINESS_TIMEOUT, MAX_TARGET_NAME_LENGTH, MAX_WINDOW, MIN_READINESS_TIMEOUT, MIN_WINDOW,
    is_dns_subdomain,
};
pub use super::limits::{MAX_RATE_PERIOD, MAX_STABILIZATION_WINDOW, MIN_INTERVAL};

impl Policy {
    /// Validates `spec` and applies its defaults. Returns every problem found, each with its path.
    pub fn resolve(spec: &ScalingPolicySpec) -> Result<Policy, ValidationErrors> {
        let mut c = Checker::default();

        let target = &spec.target_ref;
        if c.length_within(
            "spec.targetRef.apiVersion",
            &target.api_version,
            MAX_API_VERSION_LENGTH,
        ) && !valid_api_version(&target.api_version)
        {
            c.error(
                "spec.targetRef.apiVersion",
                format!(
                    "must be a version (v1) or group/version (apps/v1, argoproj.io/v1alpha1), got {:?}",
                    target.api_version
                ),
            );
        }
        if c.length_within("spec.targetRef.kind", &target.kind, MAX_KIND_LENGTH)
            && !valid_kind(&target.kind)
        {
            c.error(
                "spec.targetRef.kind",
                format!(
                    "must be a kind such as Deployment or StatefulSet: a letter, then letters and digits, got {:?}",
                    target.kind
                ),
            );
        }
        if target.name.is_empty() {
            c.error("spec.targetRef.name", "must name the workload to scale");
        } else if c.length_within("spec.targetRef.name", &target.name, MAX_TARGET_NAME_LENGTH)
            && !is_dns_subdomain(&target.name)
        {
            c.error(
                "spec.targetRef.name",
                format!(
                    "{:?} is not an object name: a DNS subdomain of lower-case letters, digits, '-' and '.'",
                    target.name
                ),
            );
        }

        if spec.min_replicas < 0 {
            c.error(
                "spec.minReplicas",
                format!("must be at least 0, got {}", spec.min_replicas),
            );
        }
        if spec.max_replicas < 1 {
            c.error(
                "spec.maxReplicas",
                format!("must be at least 1, got {}", spec.max_replicas),
            );
        }
        if spec.min_replicas > spec.max_replicas {
            c.error(
                "spec.minReplicas",
                format!(
                    "must not exceed maxReplicas ({}), got {}",
                    spec.max_replicas, spec.min_replicas
                ),
            );
        }

        let interval = c.duration_within(
            "spec.interval",
            spec.interval.as_ref(),
            DEFAULT_INTERVAL,
            MIN_INTERVAL..=MAX_INTERVAL,
        );

        let tolerance = spec.tolerance.unwrap_or(DEFAULT_TOLERANCE);
        if c.finite("spec.tolerance", tolerance) && !(0.0..1.0).contains(&tolerance) {
            c.error(
                "spec.tolerance",
                format!("must be in [0, 1), got {tolerance}"),
            );
        }

        let metrics = resolve_metrics(&mut c, &spec.metrics);

        if let Some(server) = &spec.prometheus
            && c.length_within(
                "spec.prometheus.address",
                &server.address,
                MAX_ADDRESS_LENGTH,
            )
            && let Err(message) = parse_server_address(&server.address)
        {
            c.error("spec.prometheus.address", message);
        }

        let default_behavior = Behavior::default();
        let behavior = spec.behavior.as_ref().unwrap_or(&default_behavior);
        let scale_out = resolve_direction(
            &mut c,
            "spec.behavior.scaleOut",
            behavior.scale_out.as_ref(),
            DEFAULT_SCALE_OUT_COOLDOWN,
            DEFAULT_SCALE_OUT_STABILIZATION,
            &[
                RateLimit {
                    kind: RatePolicyType::Percent,
                    value: 100,
                    period: SignedDuration::from_secs(15),
                },
                RateLimit {
                    kind: RatePolicyType::Pods,
                    value: 4,
                    period: SignedDuration::from_secs(15),
                },
            ],
        );
        if spec.min_replicas == 0 {
            check_way_out_of_zero(&mut c, &spec.metrics, &scale_out);
        }
        let scale_in = resolve_direction(
            &mut c,
            "spec.behavior.scaleIn",
            behavior.scale_in.as_ref(),
            DEFAULT_SCALE_IN_COOLDOWN,
            DEFAULT_SCALE_IN_STABILIZATION,
            &[RateLimit {
                kind: RatePolicyType::Percent,
                value: 100,
                period: SignedDuration::from_secs(15),
            }],
        );

        let failure = spec.on_metric_failure.clone().unwrap_or_default();
        let action = failure.action.unwrap_or_default();
        let after = failure.after.unwrap_or(DEFAULT_FAILURE_AFTER);
        if after < 1 {
            c.error(
                "spec.onMetricFailure.after",
                format!("must be at least 1, got {after}"),
            );
        }
        if let Some(fallback) = failure.fallback_replicas {
            if fallback < spec.min_replicas || fallback > spec.max_replicas {
                c.error(
                    "spec.onMetricFailure.fallbackReplicas",
                    format!(
                        "must be within [minReplicas, maxReplicas] = [{}, {}], got {fallback}",
                        spec.min_replicas, spec.max_replicas
                    ),
                );
            }
        } else if action == FailureAction::Fallback {
            c.error(
                "spec.onMetricFailure.fallbackReplicas",
                "is required when action is Fallback",
            );
        }

        let pods = resolve_pods(&mut c, spec.pods.as_ref());
        let forecast = spec
            .forecast
            .as_ref()
            .and_then(|f| resolve_forecast(&mut c, f, &spec.metrics));

        c.finish()?;
        Ok(Policy {
            target: spec.target_ref.name.clone(),
            target_kind: TargetKind {
                api_version: spec.target_ref.api_version.clone(),
                kind: spec.target_ref.kind.clone(),
            },
            pods,
            address: spec.prometheus.as_ref().map(|p| p.address.clone()),
            min_replicas: spec.min_replicas,
            max_replicas: spec.max_replicas,
            interval,
            tolerance,
            metrics,
            scale_out,
            scale_in,
            on_failure: FailureRules {
                action,
                fallback_replicas: failure.fallback_replicas,
                after,
            },
            dry_run: spec.dry_run.unwrap_or(false),
            paused: spec.paused.unwrap_or(false),
            forecast,
        })
    }
}

/// `spec.pods` with its defaults.
fn resolve_pods(c: &mut Checker, rules: Option<&PodRules>) -> PodPolicy {
    let default_rules = PodRules::default();
    let rules = rules.unwrap_or(&default_rules);
    PodPolicy {
        cpu_initialization_period: c.duration_within(
            "spec.pods.cpuInitializationPeriod",
            rules.cpu_initialization_period.as_ref(),
            DEFAULT_CPU_INITIALIZATION_PERIOD,
            SignedDuration::ZERO..=MAX_POD_START_PERIOD,
        ),
        initial_readiness_delay: c.duration_within(
            "spec.pods.initialReadinessDelay",
            rules.initial_readiness_delay.as_ref(),
            DEFAULT_INITIAL_READINESS_DELAY,
            SignedDuration::ZERO..=MAX_POD_START_PERIOD,
        ),
        readiness_timeout: c.duration_within(
            "spec.pods.readinessTimeout",
            rules.readiness_timeout.as_ref(),
            DEFAULT_READINESS_TIMEOUT,
            MIN_READINESS_TIMEOUT..=MAX_READINESS_TIMEOUT,
        ),
        hold_scale_in_during_rollout: rules.hold_scale_in_during_rollout.unwrap_or(true),
    }
}

/// `spec.forecast` with its defaults; `None` (with the problems reported) when invalid.
fn resolve_forecast(
    c: &mut Checker,
    f: &ForecastSpec,
    metrics: &[MetricSpec],
) -> Option<ForecastRule> {
    let before = c.len();
    let metric = metrics.iter().enumerate().find(|(_, m)| m.name == f.metric);
    // A metric list over its limit is refused on its own, and its names are not listed again.
    let listed = metrics.len() <= MAX_METRICS;
    let per_replica = match metric {
        _ if !c.length_within("spec.forecast.metric", &f.metric, MAX_METRIC_NAME_LENGTH) => None,
        _ if !listed => None,
        None => {
            let names: Vec<&str> = metrics.iter().map(|m| m.name.as_str()).collect();
            c.error(
                "spec.forecast.metric",
                format!(
                    "{:?} is not a metric of spec.metrics (they are: {})",
                    f.metric,
                    names.join(", ")
                ),
            );
            None
        }
        Some((i, m)) => match (m.target_per_replica, m.cpu.is_some() || m.memory.is_some()) {
            (Some(per), false) => Some(per),
            (_, true) => {
                c.error(
                    "spec.forecast.metric",
                    format!(
                        "spec.metrics[{i}] ({:?}) is read over the target's pods, whose history changes with the replicas: forecast a total instead, such as a requestRate with targetPerReplica",
                        m.name
                    ),
                );
                None
            }
            (None, false) => {
                c.error(
                    "spec.forecast.metric",
                    format!(
                        "spec.metrics[{i}] ({:?}) has no targetPerReplica: the forecast is of a total shared by the replicas, and its floor is ceil(forecast / targetPerReplica)",
                        m.name
                    ),
                );
                None
            }
        },
    };
    if metrics.iter().any(|m| m.name == FORECAST_RULE) {
        c.error(
            "spec.forecast",
            format!(
                "a metric is named {FORECAST_RULE:?}, which is the forecast's name in decisions: rename the metric"
            ),
        );
    }

    let default_seasons = [DurationString::new(DEFAULT_FORECAST_SEASON)];
    let given = f.seasons.as_deref().unwrap_or(&default_seasons);
    if given.is_empty() {
        c.error("spec.forecast.seasons", "must list at least one season");
    }
    let mut seasons = Vec::new();
    if c.items_within(
        "spec.forecast.seasons",
        given.len(),
        MAX_FORECAST_SEASONS,
        "seasons",
    ) {
        let (shortest, longest) = FORECAST_SEASON_RANGE;
        for (i, season) in given.iter().enumerate() {
            let d = c.duration_within(
                &format!("spec.forecast.seasons[{i}]"),
                Some(season),
                DEFAULT_FORECAST_SEASON,
                shortest..=longest,
            );
            if !seasons.contains(&d) {
                seasons.push(d);
            }
        }
        seasons.sort();
    }
    let (low, high) = FORECAST_STEP_RANGE;
    let step = c.duration_within(
        "spec.forecast.step",
        f.step.as_ref(),
        DEFAULT_FORECAST_STEP,
        low..=high,
    );
    let (low, high) = FORECAST_REFRESH_RANGE;
    let refresh = c.duration_within(
        "spec.forecast.refresh",
        f.refresh.as_ref(),
        DEFAULT_FORECAST_REFRESH,
        low..=high,
    );
    let longest = seasons
        .iter()
        .copied()
        .max()
        .unwrap_or(SignedDuration::ZERO);
    let default_window = SignedDuration::from_hours(24).min(longest);
    let (low, high) = FORECAST_ACCURACY_WINDOW_RANGE;
    let accuracy_window = match &f.accuracy_window {
        Some(given) => c.duration_within(
            "spec.forecast.accuracyWindow",
            Some(given),
            DEFAULT_FORECAST_ACCURACY_WINDOW,
            low..=high,
        ),
        None => default_window,
    };
    let max_error = f.max_error.unwrap_or(DEFAULT_FORECAST_MAX_ERROR);
    if c.finite("spec.forecast.maxError", max_error) && !(max_error > 0.0 && max_error <= 10.0) {
        c.error(
            "spec.forecast.maxError",
            format!("must be in (0, 10], got {max_error}"),
        );
    }
    let startup_delay = f.startup_delay.as_ref().map(|d| {
        c.duration_within(
            "spec.forecast.startupDelay",
            Some(d),
            "1m",
            SignedDuration::ZERO..=MAX_POD_START_PERIOD,
        )
    });
    let rule = ForecastRule {
        metric: f.metric.clone(),
        per_replica: per_replica.unwrap_or(1.0),
        seasons,
        step,
        refresh,
        accuracy_window,
        max_error,
        shadow: f.mode == Some(ForecastMode::Shadow),
        startup_delay,
    };
    if c.len() == before && !step.is_zero() {
        let points = rule
            .history_span()
            .as_secs()
            .checked_div(step.as_secs())
            .unwrap_or(i64::MAX);
        if points > MAX_FORECAST_POINTS {
            c.error(
                "spec.forecast.step",
                format!(
                    "one read of the history would be {points} points (2 x the longest season + accuracyWindow, at {step:#}), over the {MAX_FORECAST_POINTS} a range query may return: use a longer step"
                ),
            );
        }
    }
    (c.len() == before).then_some(rule)
}

/// An API version: `v1`, or a group (a DNS subdomain) and a version (`apps/v1`).
fn valid_api_version(text: &str) -> bool {
    let version_ok = |v: &str| {
        v.starts_with('v')
            && !v.is_empty()
            && v.len() <= 63
            && v.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    };
    match text.split_once('/') {
        Some((group, version)) => is_dns_subdomain(group) && version_ok(version),
        None => version_ok(text),
    }
}

/// A kind: a letter, then letters and digits (`Deployment`, `StatefulSet`).
fn valid_kind(text: &str) -> bool {
    text.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && text.chars().all(|c| c.is_ascii_alphanumeric())
}

/// With `minReplicas: 0`, what would keep a target at zero for good: a metric read from the
/// target's pods (none run at zero), or scale-out rate policies that allow nothing from zero
/// (a Percent of 0 is 0).
fn check_way_out_of_zero(c: &mut Checker, metrics: &[MetricSpec], scale_out: &DirectionRules) {
    for (i, m) in metrics.iter().enumerate() {
        for (field, set) in [("cpu", m.cpu.is_some()), ("memory", m.memory.is_some())] {
            if set {
                c.error(
                    format!("spec.metrics[{i}].{field}"),
                    "reads the target's pods, and none run at zero replicas: as minReplicas is 0, the target could never scale up again once at zero; set minReplicas to 1, or use a metric measured outside the pods (a query, a requestRate at the ingress)",
                );
            }
        }
    }
    let percent = |p: &RateLimit| p.kind == RatePolicyType::Percent;
    let stuck = match scale_out.select {
        SelectPolicy::Max => scale_out.policies.iter().all(percent),
        SelectPolicy::Min => scale_out.policies.iter().any(percent),
        SelectPolicy::Disabled => false,
    };
    if stuck && !scale_out.policies.is_empty() {
        c.error(
            "spec.behavior.scaleOut.policies",
            "a Percent of 0 replicas is 0: with minReplicas 0, the target could never leave zero; add a Pods policy (with selectPolicy Max)",
        );
    }
}

/// The sources a metric sets, in declaration order: the one place that enumerates the source
/// fields of a metric.
fn sources(m: &MetricSpec) -> Vec<Source> {
    [
        m.cpu.clone().map(Source::Cpu),
        m.memory.clone().map(Source::Memory),
        m.latency.clone().map(Source::Latency),
        m.error_rate.clone().map(Source::ErrorRate),
        m.request_rate.clone().map(Source::RequestRate),
        m.query.clone().map(Source::Query),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// Checks a spec, returning every problem with its field path (empty when valid).
pub fn validate(spec: &ScalingPolicySpec) -> Vec<FieldError> {
    Policy::resolve(spec).err().map(|e| e.0).unwrap_or_default()
}

/// Whether a metric name can be used as a label value and in `--metric NAME=VALUE`.
fn valid_metric_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    !bytes.is_empty()
        && bytes.len() <= MAX_METRIC_NAME_LENGTH
        && bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn resolve_metrics(c: &mut Checker, metrics: &[MetricSpec]) -> Vec<MetricRule> {
    if metrics.is_empty() {
        c.error("spec.metrics", "must list at least one metric");
    }
    // Each metric is checked (its PromQL parsed) only when the list is within its limit.
    if !c.items_within("spec.metrics", metrics.len(), MAX_METRICS, "metrics") {
        return Vec::new();
    }
    let mut seen = HashSet::new();
    let mut rules = Vec::with_capacity(metrics.len());
    for (i, m) in metrics.iter().enumerate() {
        let at = |field: &str| format!("spec.metrics[{i}].{field}");
        if !c.length_within(&at("name"), &m.name, MAX_METRIC_NAME_LENGTH) {
            // Reported with the limit; the name is not quoted.
        } else if !valid_metric_name(&m.name) {
            c.error(
                at("name"),
                format!(
                    "{:?} is not a metric name: use 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
                    m.name
                ),
            );
        } else if !seen.insert(m.name.as_str()) {
            c.error(at("name"), format!("duplicate metric name {:?}", m.name));
        }

        let mut sources = sources(m);
        let source = match sources.len() {
            0 => {
                c.error(
                    format!("spec.metrics[{i}]"),
                    "must set exactly one source: cpu, memory, latency, errorRate, requestRate or query",
                );
                None
            }
            1 => sources.pop(),
            _ => {
                let names: Vec<&str> = sources.iter().map(|s| s.kind().as_str()).collect();
                c.error(
                    format!("spec.metrics[{i}]"),
                    format!("must set exactly one source, got {}", names.join(" and ")),
                );
                None
            }
        };
        if let Some(latency) = &m.latency {
            if latency.histogram.is_empty() {
                c.error(at("latency.histogram"), "must name a histogram");
            }
            let q = latency.quantile;
            if !(q > 0.0 && q < 1.0) {
                c.error(
                    at("latency.quantile"),
                    format!("must be strictly between 0 and 1, got {q}"),
                );
            }
        }
        if let Some(errors) = &m.error_rate {
            if errors.counter.is_empty() {
                c.error(at("errorRate.counter"), "must name a counter");
            }
            if errors.error_selector.is_empty() {
                c.error(
                    at("errorRate.errorSelector"),
                    "must select the error series, such as code=~\"5..\"",
                );
            }
        }
        if let Some(requests) = &m.request_rate
            && requests.counter.is_empty()
        {
            c.error(at("requestRate.counter"), "must name a counter");
        }
        if let Some(query) = &m.query {
            if !promql_check::length_within(c, &at("query"), query, MAX_QUERY_LENGTH) {
                // Reported with the limit; not parsed.
            } else if query.trim().is_empty() {
                c.error(at("query"), "must be a PromQL expression");
            } else {
                check_query(c, &at("query"), query);
            }
        }
        check_promql_parts(c, i, m);
        let window = c.duration_within(
            &at("window"),
            m.window.as_ref(),
            DEFAULT_METRIC_WINDOW,
            MIN_WINDOW..=MAX_WINDOW,
        );

        if let (Some(rule), Some(source)) = (resolve_rule(c, i, m), source) {
            rules.push(MetricRule {
                name: m.name.clone(),
                source,
                window,
                rule,
            });
        }
    }
    rules
}

fn resolve_rule(c: &mut Checker, i: usize, m: &MetricSpec) -> Option<Rule> {
    let at = |field: &str| format!("spec.metrics[{i}].{field}");
    let has_thresholds = m.scale_out_above.is_some() || m.scale_in_below.is_some();
    let has_target = m.target.is_some() || m.target_per_replica.is_some();
    if has_thresholds && has_target {
        c.error(
            format!("spec.metrics[{i}]"),
            "must set either thresholds (scaleOutAbove, scaleInBelow) or a target (target or targetPerReplica), not both",
        );
        return None;
    }
    if !has_thresholds && !has_target {
        c.error(
            format!("spec.metrics[{i}]"),
            "must set thresholds (scaleOutAbove, optionally scaleInBelow) or a target (target or targetPerReplica)",
        );
        return None;
    }
    if has_thresholds {
        let Some(out_above) = m.scale_out_above else {
            c.error(at("scaleOutAbove"), "is required with scaleInBelow");
            return None;
        };
        let mut ok = c.finite(&at("scaleOutAbove"), out_above);
        if let Some(in_below) = m.scale_in_below {
            ok &= c.finite(&at("scaleInBelow"), in_below);
            if ok && in_below >= out_above {
                c.error(
                    at("scaleInBelow"),
                    format!("must be below scaleOutAbove ({out_above})"),
                );
                ok = false;
            }
        }
        return ok.then_some(Rule::Thresholds {
            out_above,
            in_below: m.scale_in_below,
        });
    }
    match (m.target, m.target_per_replica) {
        (Some(_), Some(_)) => {
            c.error(
                format!("spec.metrics[{i}]"),
                "must set target or targetPerReplica, not both",
            );
            None
        }
        (Some(target), None) => positive(c, &at("target"), target).then_some(Rule::Target(target)),
        (None, Some(per)) => {
            positive(c, &at("targetPerReplica"), per).then_some(Rule::TargetPerReplica(per))
        }
        (None, None) => None,
    }
}

fn positive(c: &mut Checker, path: &str, value: f64) -> bool {
    if !c.finite(path, value) {
        return false;
    }
    if value <= 0.0 {
        c.error(path, format!("must be greater than 0, got {value}"));
        return false;
    }
    true
}

fn resolve_direction(
    c: &mut Checker,
    path: &str,
    rules: Option<&ScalingRules>,
    default_cooldown: &str,
    default_window: &str,
    default_policies: &[RateLimit],
) -> DirectionRules {
    let default_rules = ScalingRules::default();
    let rules = rules.unwrap_or(&default_rules);
    let step = rules.step.unwrap_or(DEFAULT_STEP);
    if step < 1 {
        c.error(
            format!("{path}.step"),
            format!("must be at least 1, got {step}"),
        );
    }
    let cooldown = c.duration_within(
        &format!("{path}.cooldown"),
        rules.cooldown.as_ref(),
        default_cooldown,
        SignedDuration::ZERO..=MAX_COOLDOWN,
    );
    let stabilization_window = c.duration_within(
        &format!("{path}.stabilizationWindow"),
        rules.stabilization_window.as_ref(),
        default_window,
        SignedDuration::ZERO..=MAX_STABILIZATION_WINDOW,
    );
    let policies = match &rules.policies {
        None => default_policies.to_vec(),
        Some(list) if list.is_empty() => {
            c.error(
                format!("{path}.policies"),
                "must list at least one policy; leave the field out for the defaults",
            );
            Vec::new()
        }
        Some(list)
            if !c.items_within(
                &format!("{path}.policies"),
                list.len(),
                MAX_RATE_POLICIES,
                "rate policies",
            ) =>
        {
            Vec::new()
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(j, p)| {
                let at = format!("{path}.policies[{j}]");
                if p.value < 1 {
                    c.error(
                        format!("{at}.value"),
                        format!("must be at least 1, got {}", p.value),
                    );
                }
                let period = c.duration_within(
                    &format!("{at}.period"),
                    Some(&p.period),
                    "0s",
                    MIN_INTERVAL..=MAX_RATE_PERIOD,
                );
                RateLimit {
                    kind: p.type_,
                    value: p.value,
                    period,
                }
            })
            .collect(),
    };
    DirectionRules {
        step,
        cooldown,
        stabilization_window,
        policies,
        select: rules.select_policy.unwrap_or_default(),
    }
}
