//! The engine's memory between evaluations: reading it from status and keeping it small.

use jiff::{SignedDuration, Timestamp};

use super::decision::EngineState;
use crate::api::policy::Policy;
use crate::api::{Recommendation, ScaleEvent, ScalingPolicyStatus};

/// The engine state persisted in `status`.
pub fn persisted_state(status: &ScalingPolicyStatus) -> EngineState {
    EngineState {
        last_evaluation_time: status.last_evaluation_time.as_ref().map(|t| t.0),
        evaluating_since: status.evaluating_since.as_ref().map(|t| t.0),
        last_scale_time: status.last_scale_time.as_ref().map(|t| t.0),
        last_scale_direction: status.last_scale_direction,
        recommendations: status
            .recommendations
            .iter()
            .map(|r| (r.time.0, r.replicas))
            .collect(),
        scale_events: status
            .scale_events
            .iter()
            .map(|e| (e.time.0, e.from, e.to))
            .collect(),
        consecutive_failures: status.consecutive_failures.max(0),
    }
}

/// Converts recorded history back to status entries.
pub fn to_status(state: &EngineState) -> (Vec<Recommendation>, Vec<ScaleEvent>) {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    (
        state
            .recommendations
            .iter()
            .map(|&(t, replicas)| Recommendation {
                time: Time(t),
                replicas,
            })
            .collect(),
        state
            .scale_events
            .iter()
            .map(|&(t, from, to)| ScaleEvent {
                time: Time(t),
                from,
                to,
            })
            .collect(),
    )
}

/// Drops every entry that can no longer decide a future evaluation:
/// - a proposal outside both stabilization windows;
/// - inside the scale-in window, a proposal no higher than a later one (the later one always
///   wins the maximum), and inside the scale-out window, one no lower than a later one;
/// - a scale event older than the longest rate period of its direction.
pub fn prune(policy: &Policy, state: &mut EngineState, now: Timestamp) {
    let inside = |t: Timestamp, window: SignedDuration| now.duration_since(t) < window;
    let recs = &state.recommendations;
    let mut keep = vec![false; recs.len()];
    let mut later_max = i32::MIN;
    let mut later_min = i32::MAX;
    for i in (0..recs.len()).rev() {
        let (t, r) = recs[i];
        let decides_max = r > later_max && inside(t, policy.scale_in.stabilization_window);
        let decides_min = r < later_min && inside(t, policy.scale_out.stabilization_window);
        keep[i] = decides_max || decides_min;
        later_max = later_max.max(r);
        later_min = later_min.min(r);
    }
    let mut keep = keep.into_iter();
    state
        .recommendations
        .retain(|_| keep.next().unwrap_or(true));

    // A rate period starts from the count before every change in it, in either direction (as
    // the HPA computes it): each event is kept for the longest period of both directions.
    let longest = policy
        .scale_out
        .longest_period()
        .max(policy.scale_in.longest_period());
    state.scale_events.retain(|&(t, _, _)| inside(t, longest));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::policy::{DirectionRules, FailureRules};
    use crate::api::{FailureAction, SelectPolicy};

    fn policy(in_window: i64, out_window: i64) -> Policy {
        let rules = |w| DirectionRules {
            step: 1,
            cooldown: SignedDuration::ZERO,
            stabilization_window: SignedDuration::from_secs(w),
            policies: Vec::new(),
            select: SelectPolicy::Max,
        };
        Policy {
            target: "web".into(),
            target_kind: crate::api::TargetKind::deployment(),
            address: None,
            min_replicas: 1,
            max_replicas: 10,
            interval: SignedDuration::from_secs(15),
            tolerance: 0.1,
            metrics: Vec::new(),
            scale_out: rules(out_window),
            scale_in: rules(in_window),
            on_failure: FailureRules {
                action: FailureAction::Hold,
                fallback_replicas: None,
                after: 3,
            },
            dry_run: false,
            paused: false,
            pods: crate::api::PodPolicy::default(),
            forecast: None,
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_700_000_000i64.saturating_add(s)).unwrap()
    }

    #[test]
    fn keeps_only_proposals_that_can_still_win_a_window() {
        let mut state = EngineState {
            recommendations: vec![
                (at(0), 5),
                (at(15), 7),
                (at(30), 6),
                (at(45), 6),
                (at(60), 4),
            ],
            ..EngineState::default()
        };
        // Scale-in window 300 s: 7 (then 6 at 45, then 4) decide the maximum; 5 and the first 6
        // are dominated by later, higher-or-equal proposals. No scale-out window.
        prune(&policy(300, 0), &mut state, at(60));
        assert_eq!(
            state.recommendations,
            vec![(at(15), 7), (at(45), 6), (at(60), 4)]
        );
    }

    #[test]
    fn forgets_proposals_outside_both_windows() {
        let mut state = EngineState {
            recommendations: vec![(at(0), 9), (at(100), 3)],
            ..EngineState::default()
        };
        prune(&policy(60, 0), &mut state, at(100));
        assert_eq!(state.recommendations, vec![(at(100), 3)]);
    }
}
