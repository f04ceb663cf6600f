//! The tolerance band of target metrics: one rule, read by the proposal and by its explanation,
//! so that the two cannot disagree.

use crate::api::policy::Rule;

/// Whether a target metric's value lies within `tolerance` of its target (`Target`), or of
/// `current` replicas' worth of its per-replica target (`TargetPerReplica`, never with no
/// replicas). Such a metric proposes the current count. Thresholds have no band.
pub fn within_band(tolerance: f64, rule: Rule, value: f64, current: i32) -> bool {
    let reference = match rule {
        Rule::Target(target) => target,
        Rule::TargetPerReplica(per) if current > 0 => f64::from(current) * per,
        Rule::TargetPerReplica(_) | Rule::Thresholds { .. } => return false,
    };
    (value / reference - 1.0).abs() <= tolerance
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_value_within_the_tolerance_of_its_target_is_in_the_band() {
        assert!(within_band(0.1, Rule::Target(100.0), 105.0, 3));
        assert!(within_band(0.1, Rule::Target(100.0), 95.0, 3));
        assert!(!within_band(0.1, Rule::Target(100.0), 120.0, 3));
        assert!(!within_band(0.1, Rule::Target(100.0), 80.0, 3));
    }

    #[test]
    fn a_per_replica_target_is_compared_with_the_current_replicas_worth() {
        assert!(within_band(0.1, Rule::TargetPerReplica(10.0), 42.0, 4));
        assert!(!within_band(0.1, Rule::TargetPerReplica(10.0), 42.0, 3));
        assert!(!within_band(0.1, Rule::TargetPerReplica(10.0), 0.0, 0));
    }

    #[test]
    fn thresholds_have_no_band() {
        let rule = Rule::Thresholds {
            out_above: 70.0,
            in_below: Some(30.0),
        };
        assert!(!within_band(0.1, rule, 70.0, 3));
    }
}
