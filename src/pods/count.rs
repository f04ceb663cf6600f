//! Counting the target's pods for a resource metric: which are ready, starting, unready or
//! without a sample, and what each uses and requests. Pure: the controller and `scalewise query`
//! both call [`utilization`].
//!
//! The classes follow the HorizontalPodAutoscaler (`pkg/controller/podautoscaler/replica_calculator.go`):
//! - a pod being deleted, or Failed or Succeeded, is not counted at all;
//! - for `cpu`, a pod is **starting** while it is not Ready and either started less than
//!   `cpuInitializationPeriod` ago or has never been Ready (its readiness last changed within
//!   `initialReadinessDelay` of its start), and also while it is Ready but started less than
//!   `cpuInitializationPeriod` ago and became Ready less than one metric window ago (its usage
//!   still covers its start-up);
//! - a pod that is not Ready otherwise is **unready**. The HPA uses such a pod's usage as if it
//!   were ready; scalewise counts it as capacity that is not there (0% on a scale-out, left
//!   out on a scale-in), since no traffic reaches it;
//! - for `memory` (where the HPA ignores readiness), a pod that is not Ready is starting within
//!   `initialReadinessDelay` of its start and unready after, counted the same way;
//! - a **ready** pod without a usage sample is **missing**.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};

use super::attribution::TargetPods;
use super::lean::{LeanPod, Request};
use crate::decide::pods::{PodCounts, PodUtilization};

/// The resource a metric reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    Cpu,
    Memory,
}

impl Resource {
    /// As in messages: `CPU`, `memory`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cpu => "CPU",
            Self::Memory => "memory",
        }
    }
}

/// The readiness rules of one policy (`spec.pods`, defaults the HPA's cluster-wide flags).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadinessRules {
    pub cpu_initialization_period: SignedDuration,
    pub initial_readiness_delay: SignedDuration,
}

/// The class of one pod.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Ready,
    Starting,
    Unready,
}

/// Why pods give no utilization.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CountError {
    /// A pod's request is missing or unreadable: utilization cannot be computed (as the HPA fails
    /// such a metric).
    #[error("{0}")]
    Request(String),
    /// No ready pod has a sample: there is nothing to measure.
    #[error("{0}")]
    NoReadyPod(String),
}

/// The class of `pod` at `now`, or `None` when it is not counted (deleting or ended).
pub fn classify(
    pod: &LeanPod,
    resource: Resource,
    rules: &ReadinessRules,
    window: SignedDuration,
    now: Timestamp,
) -> Option<Class> {
    if pod.gone() {
        return None;
    }
    let Some(started) = pod.start_time else {
        // Not started by a kubelet yet (Pending).
        return Some(Class::Starting);
    };
    let since_start = now.duration_since(started);
    let ready = pod.ready;
    let never_ready = |delay: SignedDuration| {
        ready
            .and_then(|r| r.since)
            .is_none_or(|since| since.duration_since(started) <= delay)
    };
    match resource {
        Resource::Cpu => {
            let initializing = since_start < rules.cpu_initialization_period;
            match ready {
                Some(r) if r.status => {
                    let since_ready = r.since.map_or(since_start, |s| now.duration_since(s));
                    Some(if initializing && since_ready < window {
                        Class::Starting
                    } else {
                        Class::Ready
                    })
                }
                _ if initializing || never_ready(rules.initial_readiness_delay) => {
                    Some(Class::Starting)
                }
                _ => Some(Class::Unready),
            }
        }
        Resource::Memory => match ready {
            Some(r) if r.status => Some(Class::Ready),
            _ if since_start < rules.initial_readiness_delay => Some(Class::Starting),
            _ => Some(Class::Unready),
        },
    }
}

/// The utilization of the target's pods from `samples` (usage per pod name, in cores or bytes),
/// counted by [`classify`].
pub fn utilization(
    target: &TargetPods,
    samples: &BTreeMap<String, f64>,
    resource: Resource,
    rules: &ReadinessRules,
    window: SignedDuration,
    now: Timestamp,
) -> Result<PodUtilization, CountError> {
    let mut u = PodUtilization {
        ready_usage: 0.0,
        ready_requests: 0.0,
        pending_requests: 0.0,
        missing_requests: 0.0,
        counts: PodCounts {
            other_workloads: u32::try_from(target.other_workloads).unwrap_or(u32::MAX),
            ..PodCounts::default()
        },
    };
    let bump = |n: &mut u32| *n = n.saturating_add(1);
    let other_workloads = target.other_workloads;
    for pod in &target.pods {
        let Some(class) = classify(pod, resource, rules, window, now) else {
            continue;
        };
        let request = match if resource == Resource::Cpu {
            &pod.cpu
        } else {
            &pod.memory
        } {
            Request::Total(v) => *v,
            Request::Missing { container } => {
                return Err(CountError::Request(format!(
                    "pod {}{} has no {} request: utilization is usage over requests, so every pod of the target needs one (as for the HorizontalPodAutoscaler)",
                    pod.name(),
                    container_part(container),
                    resource.as_str()
                )));
            }
            Request::Unreadable { container, value } => {
                return Err(CountError::Request(format!(
                    "pod {}{}: the {} request {value:?} is not a quantity",
                    pod.name(),
                    container_part(container),
                    resource.as_str()
                )));
            }
        };
        match class {
            Class::Starting => {
                bump(&mut u.counts.starting);
                u.pending_requests += request;
            }
            Class::Unready => {
                bump(&mut u.counts.unready);
                u.pending_requests += request;
            }
            Class::Ready => match samples.get(pod.name()) {
                Some(usage) if usage.is_finite() && *usage >= 0.0 => {
                    bump(&mut u.counts.ready);
                    u.ready_usage += usage;
                    u.ready_requests += request;
                }
                _ => {
                    bump(&mut u.counts.missing);
                    u.missing_requests += request;
                }
            },
        }
    }
    if u.counts.ready == 0 || u.ready_requests <= 0.0 {
        let counted = u
            .counts
            .starting
            .saturating_add(u.counts.unready)
            .saturating_add(u.counts.missing);
        return Err(CountError::NoReadyPod(if counted == 0 {
            format!(
                "the target has no running pods{}",
                if other_workloads > 0 {
                    format!(
                        " ({other_workloads} pods its selector matches belong to other workloads)"
                    )
                } else {
                    String::new()
                }
            )
        } else {
            format!(
                "no ready pod of the target has a {} sample ({})",
                resource.as_str(),
                u.summary()
            )
        }));
    }
    Ok(u)
}

fn container_part(container: &str) -> String {
    if container.is_empty() {
        " (no containers)".to_owned()
    } else {
        format!(" (container {container})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: &str = "2026-01-01T00:00:00Z";

    fn at(secs: i64) -> Timestamp {
        T0.parse::<Timestamp>()
            .unwrap()
            .checked_add(SignedDuration::from_secs(secs))
            .unwrap()
    }

    fn rules() -> ReadinessRules {
        ReadinessRules {
            cpu_initialization_period: SignedDuration::from_mins(5),
            initial_readiness_delay: SignedDuration::from_secs(30),
        }
    }

    /// A pod started at `start`, Ready (or not) since `since`, requesting 1 core.
    fn pod(name: &str, start: i64, ready: Option<(bool, i64)>) -> LeanPod {
        let conditions: Vec<serde_json::Value> = ready
            .map(|(status, since)| {
                serde_json::json!({"type": "Ready", "status": if status {"True"} else {"False"},
                    "lastTransitionTime": at(since).to_string()})
            })
            .into_iter()
            .collect();
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}}]},
            "status": {"phase": "Running", "startTime": at(start).to_string(), "conditions": conditions}
        }))
        .unwrap()
    }

    fn one(p: LeanPod) -> TargetPods {
        TargetPods {
            pods: vec![std::sync::Arc::new(p)],
            other_workloads: 0,
        }
    }

    fn class(p: &LeanPod, now: i64) -> Option<Class> {
        classify(
            p,
            Resource::Cpu,
            &rules(),
            SignedDuration::from_mins(2),
            at(now),
        )
    }

    #[test]
    fn cpu_classes_follow_the_hpa() {
        // Ready long ago: ready.
        assert_eq!(
            class(&pod("a", 0, Some((true, 10))), 3600),
            Some(Class::Ready)
        );
        // Started 1 min ago, ready 30 s ago: its 2 min window covers its start-up.
        assert_eq!(
            class(&pod("b", 3540, Some((true, 3570))), 3600),
            Some(Class::Starting)
        );
        // Started 4 min ago, ready 3 min ago: trusted.
        assert_eq!(
            class(&pod("c", 3360, Some((true, 3420))), 3600),
            Some(Class::Ready)
        );
        // Not ready, within the initialization period: starting.
        assert_eq!(
            class(&pod("d", 3500, Some((false, 3500))), 3600),
            Some(Class::Starting)
        );
        // Not ready for an hour and never was: still starting.
        assert_eq!(
            class(&pod("e", 0, Some((false, 5))), 3600),
            Some(Class::Starting)
        );
        // Was ready, went unready later: unready.
        assert_eq!(
            class(&pod("f", 0, Some((false, 1800))), 3600),
            Some(Class::Unready)
        );
        // No Ready condition yet.
        assert_eq!(class(&pod("g", 3590, None), 3600), Some(Class::Starting));
    }

    #[test]
    fn ready_pods_give_the_value_and_the_others_are_counted() {
        let pods = [
            pod("ready-1", 0, Some((true, 10))),
            pod("ready-2", 0, Some((true, 10))),
            pod("starting", 3590, Some((false, 3590))),
            pod("quiet", 0, Some((true, 10))),
        ];
        let target = TargetPods {
            pods: pods.into_iter().map(std::sync::Arc::new).collect(),
            other_workloads: 1,
        };
        let samples: BTreeMap<String, f64> = [
            ("ready-1".into(), 0.6),
            ("ready-2".into(), 0.8),
            ("starting".into(), 2.0),
        ]
        .into();
        let u = utilization(
            &target,
            &samples,
            Resource::Cpu,
            &rules(),
            SignedDuration::from_mins(2),
            at(3600),
        )
        .unwrap();
        assert!((u.value() - 70.0).abs() < 1e-9);
        assert_eq!(
            u.counts,
            PodCounts {
                ready: 2,
                starting: 1,
                unready: 0,
                missing: 1,
                other_workloads: 1
            }
        );
        assert_eq!(
            u.summary(),
            "pods: 2 ready, 1 starting, 1 without a sample; 1 of other workloads left out"
        );
    }

    #[test]
    fn a_pod_without_a_request_makes_the_metric_invalid_naming_it() {
        let mut p = pod("no-request", 0, Some((true, 10)));
        p.cpu = Request::Missing {
            container: "app".into(),
        };
        let e = utilization(
            &one(p),
            &BTreeMap::new(),
            Resource::Cpu,
            &rules(),
            SignedDuration::from_mins(2),
            at(3600),
        )
        .unwrap_err();
        assert!(
            matches!(&e, CountError::Request(m) if m.starts_with("pod no-request (container app) has no CPU request")),
            "{e}"
        );
    }

    #[test]
    fn no_ready_pod_is_nothing_to_measure() {
        let p = pod("s", 3590, None);
        let e = utilization(
            &one(p),
            &BTreeMap::new(),
            Resource::Cpu,
            &rules(),
            SignedDuration::from_mins(2),
            at(3600),
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "no ready pod of the target has a CPU sample (pods: 0 ready, 1 starting)"
        );
    }
}
