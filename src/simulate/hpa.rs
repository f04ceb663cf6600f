//! The baseline: the Kubernetes HorizontalPodAutoscaler (autoscaling/v2) algorithm with its
//! defaults, written from its documentation and `pkg/controller/podautoscaler` (`horizontal.go`,
//! `replica_calculator.go`). It is its own small implementation on purpose: a baseline that
//! shared code with scalewise's engine would compare the engine with itself.
//!
//! How a policy becomes an HPA:
//!
//! - **One metric**: the policy's first metric. A `target` is the HPA's target; `targetPerReplica`
//!   is an `AverageValue` target; thresholds are tracked at the midpoint of their band,
//!   `(scaleOutAbove + scaleInBelow) / 2`, or `scaleOutAbove / 2` without `scaleInBelow` (the band
//!   then reaches down to 0).
//! - **Metric type**: `cpu` and `memory` are Resource metrics with a `Utilization` target, read
//!   per ready pod as metrics-server reports them: `ceil(ratio * readyPods)`, where a pod started
//!   within the CPU initialization period (5 minutes) counts as ready only once it has been ready
//!   for one metric window; on a scale-up, the other pods count as using 0%, and a proposal that
//!   then reverses direction or lands within tolerance holds. The other kinds are Object/External
//!   metrics with a `Value` target (`ceil(ratio * readyPods)`) or an `AverageValue` target
//!   (`ceil(value / target)`).
//! - **Range**: the policy's `minReplicas` (at least 1: the HPA scales to zero only behind an
//!   alpha feature gate) and `maxReplicas`.
//! - **Everything else is the HPA's default**, not the policy's: tolerance 0.1, a sync every 15 s,
//!   and the default `behavior`: scale-down stabilization 300 s and at most 100% per 15 s;
//!   scale-up without stabilization and at most the larger of 100% or 4 pods per 15 s.
//!   Recommendations start with the current count, so nothing scales down in the first 300 s.
//! - An unavailable metric means no scaling (the HPA's `FailedGetMetric`).

use super::autoscaler::{Autoscaler, Evaluation, Outcome};
use super::error::SimulateError;
use super::model::Pod;
use crate::api::policy::Rule;
use crate::api::{Action, Policy};
use crate::decide::Reading;

/// The HPA's default sync period (`--horizontal-pod-autoscaler-sync-period`).
pub const SYNC_PERIOD: i64 = 15;
/// The HPA's default tolerance (`--horizontal-pod-autoscaler-tolerance`).
pub const TOLERANCE: f64 = 0.1;
/// Seconds after a pod's start during which its CPU counts only once it has been ready for a
/// whole metric window (`--horizontal-pod-autoscaler-cpu-initialization-period`).
pub const CPU_INITIALIZATION_PERIOD: i64 = 300;

/// How the HPA reads its metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    /// A Resource metric with an `averageUtilization` target.
    Utilization,
    /// An Object or External metric with a `value` target.
    Value,
    /// An External metric with an `averageValue` target.
    AverageValue,
}

/// A rate policy of `behavior`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RatePolicy {
    Pods { value: i32, period: i64 },
    Percent { value: i32, period: i64 },
}

impl RatePolicy {
    fn period(self) -> i64 {
        match self {
            Self::Pods { period, .. } | Self::Percent { period, .. } => period,
        }
    }
}

/// One direction of `behavior` (`selectPolicy: Max`).
#[derive(Clone, Debug, PartialEq)]
pub struct Rules {
    /// Seconds.
    pub stabilization_window: i64,
    pub policies: Vec<RatePolicy>,
}

/// The metric an HPA at a fixed CPU target (`--hpa-target`, `--hpa-sweep`) reads: the CPU
/// utilization of its ready pods as metrics-server reports it, whatever the policy reads. No
/// policy metric can have this name (names have no spaces).
pub const OWN_CPU: &str = "cpu (hpa)";
/// Seconds of the window metrics-server averages CPU over (its default resolution).
pub const OWN_CPU_WINDOW: i64 = 60;

/// The HPA the baseline runs.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaSpec {
    /// The policy metric it tracks.
    pub metric: String,
    pub metric_type: MetricType,
    pub target: f64,
    pub min_replicas: i32,
    pub max_replicas: i32,
    pub tolerance: f64,
    /// Seconds of the metric's window (for the CPU initialization rule).
    pub window: i64,
    pub scale_up: Rules,
    pub scale_down: Rules,
    /// How the policy became this HPA, for humans.
    pub description: String,
}

impl HpaSpec {
    /// The HPA with every default, on `metric`.
    pub fn new(metric: &str, metric_type: MetricType, target: f64, min: i32, max: i32) -> Self {
        Self {
            metric: metric.to_owned(),
            metric_type,
            target,
            min_replicas: min.max(1),
            max_replicas: max,
            tolerance: TOLERANCE,
            window: 60,
            scale_up: Rules {
                stabilization_window: 0,
                policies: vec![
                    RatePolicy::Percent {
                        value: 100,
                        period: 15,
                    },
                    RatePolicy::Pods {
                        value: 4,
                        period: 15,
                    },
                ],
            },
            scale_down: Rules {
                stabilization_window: 300,
                policies: vec![RatePolicy::Percent {
                    value: 100,
                    period: 15,
                }],
            },
            description: String::new(),
        }
    }

    /// The baseline HPA of a policy: its first metric, read as a Resource metric when
    /// `utilization` (a `cpu` or `memory` metric) over a window of `window` seconds.
    pub fn for_policy(
        policy: &Policy,
        utilization: bool,
        window: i64,
    ) -> Result<Self, SimulateError> {
        let Some(first) = policy.metrics.first() else {
            return Err(SimulateError::Baseline(
                "the policy has no metric for the HPA to track".into(),
            ));
        };
        let name = &first.name;
        let (metric_type, target, how) = match first.rule {
            Rule::Target(t) => (
                if utilization {
                    MetricType::Utilization
                } else {
                    MetricType::Value
                },
                t,
                format!("target {}", num(t)),
            ),
            Rule::TargetPerReplica(t) => (
                MetricType::AverageValue,
                t,
                format!("averageValue {} (targetPerReplica)", num(t)),
            ),
            Rule::Thresholds {
                out_above,
                in_below,
            } => {
                let (low, mid) = match in_below {
                    Some(low) => (low, (out_above + low) / 2.0),
                    None => (0.0, out_above / 2.0),
                };
                (
                    if utilization {
                        MetricType::Utilization
                    } else {
                        MetricType::Value
                    },
                    mid,
                    format!(
                        "target {} (midpoint of {}..{})",
                        num(mid),
                        num(low),
                        num(out_above)
                    ),
                )
            }
        };
        if !(target.is_finite() && target > 0.0) {
            return Err(SimulateError::Baseline(format!(
                "the HPA cannot track {name} at {}: its target must be above 0",
                num(target)
            )));
        }
        let kind = match metric_type {
            MetricType::Utilization => "Resource, Utilization",
            MetricType::Value => "Object, Value",
            MetricType::AverageValue => "External, AverageValue",
        };
        let mut hpa = Self::new(
            name,
            metric_type,
            target,
            policy.min_replicas,
            policy.max_replicas,
        );
        hpa.window = window;
        hpa.description = format!(
            "HPA v2 defaults on {name} ({kind}): {how}; {}..{} replicas",
            hpa.min_replicas, hpa.max_replicas
        );
        Ok(hpa)
    }

    /// The HPA with every default on the CPU utilization of its ready pods at `target` percent,
    /// within the policy's replica range: a baseline the policy's thresholds do not choose.
    /// `flag` names where the target came from, for humans.
    pub fn at_cpu_target(policy: &Policy, target: u32, flag: &str) -> Self {
        let mut hpa = Self::new(
            OWN_CPU,
            MetricType::Utilization,
            f64::from(target),
            policy.min_replicas,
            policy.max_replicas,
        );
        hpa.window = OWN_CPU_WINDOW;
        hpa.description = format!(
            "HPA v2 defaults on the CPU utilization of its ready pods (Resource, Utilization, over {OWN_CPU_WINDOW}s): target {target}% ({flag}); {}..{} replicas",
            hpa.min_replicas, hpa.max_replicas
        );
        hpa
    }
}

/// What one sync decided.
#[derive(Clone, Debug, PartialEq)]
pub struct HpaOutcome {
    pub desired: i32,
    /// The replica calculator's proposal, before stabilization and rate limits.
    pub proposal: Option<i32>,
    pub reason: String,
}

/// The HPA controller's memory for one HPA: recommendations and scale events.
#[derive(Clone, Debug)]
pub struct Hpa {
    spec: HpaSpec,
    recommendations: Vec<(i64, i32)>,
    /// (time, replicas added)
    up_events: Vec<(i64, i32)>,
    /// (time, replicas removed)
    down_events: Vec<(i64, i32)>,
    started: bool,
}

impl Hpa {
    pub fn new(spec: HpaSpec) -> Self {
        Self {
            spec,
            recommendations: Vec::new(),
            up_events: Vec::new(),
            down_events: Vec::new(),
            started: false,
        }
    }

    pub fn spec(&self) -> &HpaSpec {
        &self.spec
    }

    /// One sync at `now` (seconds): the target has `current` replicas (`spec.replicas`), whose
    /// pods are `pods`; `value` is the metric, `None` when it failed.
    pub fn reconcile(
        &mut self,
        now: i64,
        current: i32,
        pods: &[Pod],
        value: Option<f64>,
    ) -> HpaOutcome {
        if !self.started {
            // recordInitialRecommendation: the scale-down window starts full of the current count.
            self.recommendations.push((now, current));
            self.started = true;
        }
        let (min, max) = (self.spec.min_replicas, self.spec.max_replicas);
        let (desired, proposal, reason) = if current == 0 && min != 0 {
            return HpaOutcome {
                desired: current,
                proposal: None,
                reason: "scaling is disabled since the replica count of the target is zero".into(),
            };
        } else if current > max {
            (max, None, format!("{current} is above maxReplicas {max}"))
        } else if current < min {
            (min, None, format!("{current} is below minReplicas {min}"))
        } else {
            let Some(value) = value else {
                return HpaOutcome {
                    desired: current,
                    proposal: None,
                    reason: format!(
                        "FailedGetMetric: {} has no value; no scaling",
                        self.spec.metric
                    ),
                };
            };
            let (proposal, mut reason) = self.propose(now, current, pods, value);
            let stabilized = self.stabilize(now, current, proposal);
            if stabilized != proposal && proposal != current {
                reason.push_str(&format!("; stabilized to {stabilized}"));
            }
            let limited = self.rate_limit(now, current, stabilized);
            if limited != stabilized {
                reason.push_str(&format!("; limited to {limited}"));
            }
            (limited, Some(proposal), reason)
        };
        if desired != current {
            self.store_event(now, current, desired);
        }
        HpaOutcome {
            desired,
            proposal,
            reason,
        }
    }

    /// The replica calculator.
    fn propose(&self, now: i64, current: i32, pods: &[Pod], value: f64) -> (i32, String) {
        let s = &self.spec;
        let ratio = value / s.target;
        let within = |r: f64| (1.0 - r).abs() <= s.tolerance;
        let what = format!("{} {} / {}", s.metric, num(value), num(s.target));
        let count = |pred: &dyn Fn(&Pod) -> bool| {
            i32::try_from(pods.iter().filter(|p| pred(p)).count()).unwrap_or(i32::MAX)
        };
        match s.metric_type {
            MetricType::Utilization => {
                // groupPods: in its first minutes a pod's CPU counts once it has been ready for a
                // whole metric window; the other pods are ignored.
                let ready = count(&|p| {
                    p.ready_at <= now
                        && (p.created + CPU_INITIALIZATION_PERIOD <= now
                            || p.ready_at + s.window <= now)
                });
                let ignored = (i32::try_from(pods.len()).unwrap_or(i32::MAX) - ready).max(0);
                if ready <= 0 {
                    return (current, format!("{what}: no ready pod reports it; holding"));
                }
                if ignored == 0 || ratio <= 1.0 {
                    if within(ratio) {
                        return (current, format!("{what}: within tolerance"));
                    }
                    let n = ceil(ratio * f64::from(ready));
                    return (n, format!("{what} on {ready} ready pods -> {n}"));
                }
                // Scale-up with pods not ready: they count as using 0%.
                let all = ready + ignored;
                let new_ratio = ratio * f64::from(ready) / f64::from(all);
                if within(new_ratio) || new_ratio < 1.0 {
                    return (
                        current,
                        format!(
                            "{what}, {ignored} pods not ready counted at 0%: {} within tolerance or reversed; holding",
                            num(new_ratio)
                        ),
                    );
                }
                let n = ceil(new_ratio * f64::from(all));
                if n < current {
                    return (current, format!("{what}: {n} would reverse; holding"));
                }
                (
                    n,
                    format!("{what} with {ignored} pods not ready at 0% -> {n}"),
                )
            }
            MetricType::Value => {
                let ready = count(&|p| p.ready_at <= now);
                if current == 0 {
                    let n = ceil(ratio);
                    return (n, format!("{what} -> {n}"));
                }
                if within(ratio) {
                    return (current, format!("{what}: within tolerance"));
                }
                let n = ceil(ratio * f64::from(ready.max(0)));
                (n, format!("{what} on {ready} ready pods -> {n}"))
            }
            MetricType::AverageValue => {
                let usage = value / (s.target * f64::from(current));
                if within(usage) {
                    (current, format!("{what} per pod: within tolerance"))
                } else {
                    let n = ceil(ratio);
                    (n, format!("{what} per pod -> {n}"))
                }
            }
        }
    }

    /// `stabilizeRecommendationWithBehaviors`: the current count brought within the lowest
    /// recommendation of the scale-up window and the highest of the scale-down window.
    fn stabilize(&mut self, now: i64, current: i32, desired: i32) -> i32 {
        let up_window = self.spec.scale_up.stabilization_window;
        let down_window = self.spec.scale_down.stabilization_window;
        let mut up = desired;
        let mut down = desired;
        for &(t, r) in &self.recommendations {
            if t > now - up_window {
                up = up.min(r);
            }
            if t > now - down_window {
                down = down.max(r);
            }
        }
        let mut recommendation = current;
        if recommendation < up {
            recommendation = up;
        }
        if recommendation > down {
            recommendation = down;
        }
        let obsolete = now - up_window.max(down_window);
        self.recommendations.retain(|&(t, _)| t >= obsolete);
        self.recommendations.push((now, desired));
        recommendation
    }

    /// `convertDesiredReplicasWithBehaviorRate`: the rate policies, then min and max.
    fn rate_limit(&self, now: i64, current: i32, desired: i32) -> i32 {
        let (min, max) = (self.spec.min_replicas, self.spec.max_replicas);
        if desired > current {
            let limit = self.scale_up_limit(now, current).max(current);
            desired.min(max.min(limit))
        } else if desired < current {
            let limit = self.scale_down_limit(now, current).min(current);
            desired.max(min.max(limit))
        } else {
            desired
        }
    }

    fn period_start(&self, now: i64, current: i32, period: i64) -> i64 {
        let changed = |events: &[(i64, i32)]| -> i64 {
            events
                .iter()
                .filter(|&&(t, _)| t > now - period)
                .map(|&(_, n)| i64::from(n))
                .sum()
        };
        i64::from(current) - changed(&self.up_events) + changed(&self.down_events)
    }

    /// `calculateScaleUpLimitWithScalingRules` with `selectPolicy: Max`.
    fn scale_up_limit(&self, now: i64, current: i32) -> i32 {
        self.spec
            .scale_up
            .policies
            .iter()
            .map(|&p| {
                let start = self.period_start(now, current, p.period());
                match p {
                    RatePolicy::Pods { value, .. } => start + i64::from(value),
                    RatePolicy::Percent { value, .. } => {
                        // Rounded up, so that a small count can still grow.
                        (start * (100 + i64::from(value)) + 99).div_euclid(100)
                    }
                }
            })
            .max()
            .map_or(current, clamp_i32)
    }

    /// `calculateScaleDownLimitWithBehaviors` with `selectPolicy: Max`.
    fn scale_down_limit(&self, now: i64, current: i32) -> i32 {
        self.spec
            .scale_down
            .policies
            .iter()
            .map(|&p| {
                let start = self.period_start(now, current, p.period());
                match p {
                    RatePolicy::Pods { value, .. } => start - i64::from(value),
                    // Truncated, as int32(float64(start) * (1 - value/100)).
                    RatePolicy::Percent { value, .. } => {
                        (start * (100 - i64::from(value))).max(0) / 100
                    }
                }
            })
            .min()
            .map_or(current, clamp_i32)
    }

    /// `storeScaleEvent`, forgetting events older than the longest period of their direction.
    fn store_event(&mut self, now: i64, from: i32, to: i32) {
        let longest = |rules: &Rules| rules.policies.iter().map(|p| p.period()).max();
        if to > from {
            let keep = longest(&self.spec.scale_up).unwrap_or(0);
            self.up_events.retain(|&(t, _)| t >= now - keep);
            self.up_events.push((now, to - from));
        } else {
            let keep = longest(&self.spec.scale_down).unwrap_or(0);
            self.down_events.retain(|&(t, _)| t >= now - keep);
            self.down_events.push((now, from - to));
        }
    }
}

/// The baseline as an [`Autoscaler`]: an [`Hpa`] synced every 15 s.
#[derive(Clone, Debug)]
pub struct HpaAutoscaler {
    hpa: Hpa,
    label: String,
}

impl HpaAutoscaler {
    pub fn new(spec: HpaSpec) -> Self {
        Self::with_label(spec, "hpa")
    }

    /// The baseline under another name in tables, CSV and plots, such as `hpa@60`.
    pub fn with_label(spec: HpaSpec, label: impl Into<String>) -> Self {
        Self {
            hpa: Hpa::new(spec),
            label: label.into(),
        }
    }

    pub fn spec(&self) -> &HpaSpec {
        self.hpa.spec()
    }
}

impl Autoscaler for HpaAutoscaler {
    fn label(&self) -> &str {
        &self.label
    }

    fn interval(&self) -> i64 {
        SYNC_PERIOD
    }

    fn describe(&self) -> String {
        self.hpa.spec.description.clone()
    }

    fn evaluate(&mut self, input: &Evaluation<'_>) -> Outcome {
        let value = input
            .observations
            .iter()
            .find(|o| o.name == self.hpa.spec.metric)
            .and_then(|o| match o.reading {
                Reading::Value(v) if v.is_finite() => Some(v),
                _ => None,
            });
        let outcome = self
            .hpa
            .reconcile(input.now.as_second(), input.current, input.pods, value);
        let action = Action::between(input.current, outcome.desired);
        let reason = match action {
            Action::Hold => format!("Hold at {}: {}", input.current, outcome.reason),
            _ => format!(
                "Scale from {} to {}: {}",
                input.current, outcome.desired, outcome.reason
            ),
        };
        Outcome {
            desired: outcome.desired,
            action,
            reason,
        }
    }
}

fn ceil(x: f64) -> i32 {
    // `as` saturates at the bounds of i32.
    x.ceil() as i32
}

fn clamp_i32(x: i64) -> i32 {
    x.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32
}

/// A number for messages: at most 3 decimals, no trailing zeros.
pub fn num(x: f64) -> String {
    crate::text::number(x, crate::text::Precision::Milli)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cpu_hpa(target: f64, min: i32, max: i32) -> Hpa {
        Hpa::new(HpaSpec::new(
            "cpu",
            MetricType::Utilization,
            target,
            min,
            max,
        ))
    }

    #[test]
    fn numbers_read_naturally() {
        assert_eq!(num(50.0), "50");
        assert_eq!(num(0.275), "0.275");
        assert_eq!(num(1.23456), "1.235");
    }

    #[test]
    fn the_scale_up_limit_is_the_larger_of_double_and_four_more() {
        let mut hpa = cpu_hpa(50.0, 1, 100);
        // 2 replicas at 300%: ceil(2 * 6) = 12, limited to max(2*2, 2+4) = 6.
        let two = [Pod::established(0); 2];
        assert_eq!(hpa.reconcile(0, 2, &two, Some(300.0)).desired, 6);
        // 15 s later the event at 0 no longer counts (older than the 15 s period, not newer):
        // 6 at 300% -> 36, limited to max(12, 10) = 12.
        let six = [Pod::established(0); 6];
        assert_eq!(hpa.reconcile(15, 6, &six, Some(300.0)).desired, 12);
    }
}
