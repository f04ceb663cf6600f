//! Write-ahead scaling: a scale is recorded in status (`status.pendingScale`) before the target
//! is patched, and the evaluation after it tells from the target what became of it.
//!
//! Pure, like [`super::plan`]: the functions here take the persisted status and the target as it
//! was read, and never read a clock or a client.

use super::target::TargetRead;
use crate::api::{
    Action, Recommendation, ScaleDirection, ScaleEvent, ScaleIntent, ScalingPolicyStatus,
};

/// What became of a recorded intent, judged from the target at the next evaluation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// The target has the replicas the intent asked for: it was applied, and is counted for
    /// cooldowns and rate periods.
    Applied,
    /// The target is as the decision found it: the scale never happened, and is not counted.
    NotApplied,
    /// The target changed since, to neither count: the scale is taken as applied (counted: a
    /// cooldown that might not be owed only waits longer) and then changed by someone else.
    Changed { now: i32 },
    /// The target was deleted and created again (another uid): the intent was for an object that
    /// no longer exists, and is dropped.
    Replaced,
}

impl Recovery {
    /// The label of the `scalewise_intents_recovered_total` counter.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::NotApplied => "not_applied",
            Self::Changed { .. } => "changed",
            Self::Replaced => "replaced",
        }
    }

    /// Whether the intent counts as a scale scalewise made.
    pub fn counted(&self) -> bool {
        matches!(self, Self::Applied | Self::Changed { .. })
    }
}

/// An intent found in status and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovered {
    pub intent: ScaleIntent,
    pub recovery: Recovery,
}

impl Recovered {
    /// One line for the event and the log.
    pub fn message(&self, target: &str) -> String {
        let d = &self.intent.decision;
        let (from, to) = (d.from, d.to);
        let at = d.time.0.strftime("%Y-%m-%dT%H:%M:%SZ");
        let what = format!("the scale of {target} from {from} to {to} recorded at {at}");
        match &self.recovery {
            Recovery::Applied => format!(
                "{what} was made but its record was not completed (the operator stopped or its status write failed): counted for cooldowns and rate periods"
            ),
            Recovery::NotApplied => format!(
                "{what} was not made (the target still has {from} replicas at the version it was decided from, or the write was refused): not counted, deciding again"
            ),
            Recovery::Changed { now } => format!(
                "{what} was followed by a change to {now} by someone else: counted as made, deciding from {now}"
            ),
            Recovery::Replaced => format!(
                "{what} was for an earlier object of that name (the target was deleted and created again): dropped"
            ),
        }
    }
}

/// The status an evaluation starts from when `status` holds an intent, judged from the target
/// as just read: the intent is removed, and counted as a scale when it was (or may have been)
/// applied. Without an intent, the status as it is.
pub fn recover(
    status: &ScalingPolicyStatus,
    target: &TargetRead,
) -> (ScalingPolicyStatus, Option<Recovered>) {
    let Some(intent) = status.pending_scale.as_ref() else {
        return (status.clone(), None);
    };
    let recovery = judge(intent, target);
    let mut status = status.clone();
    status.pending_scale = None;
    if recovery.counted() {
        count(&mut status, intent);
    }
    (
        status,
        Some(Recovered {
            intent: intent.clone(),
            recovery,
        }),
    )
}

/// What became of `intent`, from the target as read now.
fn judge(intent: &ScaleIntent, target: &TargetRead) -> Recovery {
    let d = &intent.decision;
    if target
        .uid
        .as_deref()
        .is_some_and(|uid| uid != intent.target_uid)
    {
        return Recovery::Replaced;
    }
    let unchanged = intent.target_resource_version.is_some()
        && target.resource_version == intent.target_resource_version;
    if unchanged {
        return Recovery::NotApplied;
    }
    if target.replicas == d.to {
        Recovery::Applied
    } else if target.replicas == d.from {
        // The scale is conditional on the version it was decided from: the target moved on (a
        // rollout, a status update) without it. A scale made and then undone by someone else
        // looks the same; deciding again from the count it has is right in both cases.
        Recovery::NotApplied
    } else {
        Recovery::Changed {
            now: target.replicas,
        }
    }
}

/// Records `intent` in `status` as the scale it was: a scale event, the last scale, the decision
/// and its proposal for the stabilization windows.
fn count(status: &mut ScalingPolicyStatus, intent: &ScaleIntent) {
    let d = &intent.decision;
    let time = d.time.clone();
    if !status
        .scale_events
        .iter()
        .any(|e| e.time == time && e.from == d.from && e.to == d.to)
    {
        status.scale_events.push(ScaleEvent {
            time: time.clone(),
            from: d.from,
            to: d.to,
        });
    }
    if status
        .last_scale_time
        .as_ref()
        .is_none_or(|t| t.0 <= time.0)
    {
        status.last_scale_time = Some(time.clone());
        status.last_scale_direction = Some(if d.action == Action::ScaleIn {
            ScaleDirection::In
        } else {
            ScaleDirection::Out
        });
    }
    if let Some(replicas) = intent.recommended_replicas
        && !status.recommendations.iter().any(|r| r.time == time)
    {
        status.recommendations.push(Recommendation {
            time: time.clone(),
            replicas,
        });
        status.recommendations.sort_by_key(|r| r.time.0);
    }
    if status
        .last_evaluation_time
        .as_ref()
        .is_none_or(|t| t.0 < time.0)
    {
        status.last_evaluation_time = Some(time);
    }
    status.current_replicas = Some(d.from);
    status.desired_replicas = Some(d.to);
    status.last_decision = Some(d.clone());
}

/// The status to write before the target is patched: `persisted` (what the evaluation started
/// from, its history untouched) with the intent of `applied` (the status the evaluation leaves
/// once the scale is made).
pub fn write_ahead(
    persisted: &ScalingPolicyStatus,
    applied: &ScalingPolicyStatus,
    target: &TargetRead,
) -> Option<ScalingPolicyStatus> {
    let decision = applied.last_decision.clone()?;
    let recommended_replicas = applied
        .recommendations
        .iter()
        .rev()
        .find(|r| r.time == decision.time)
        .map(|r| r.replicas);
    let mut status = persisted.clone();
    status.pending_scale = Some(ScaleIntent {
        decision,
        recommended_replicas,
        target_uid: target.uid.clone().unwrap_or_default(),
        target_resource_version: target.resource_version.clone(),
    });
    Some(status)
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;
    use crate::api::DecisionRecord;

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_800_000_000i64.saturating_add(second)).unwrap())
    }

    fn intent(from: i32, to: i32) -> ScaleIntent {
        ScaleIntent {
            decision: DecisionRecord {
                time: at(60),
                action: if to > from {
                    Action::ScaleOut
                } else {
                    Action::ScaleIn
                },
                from,
                to,
                rule: Some("cpu".into()),
                limits: Vec::new(),
                message: format!("cpu wants {to}"),
                dry_run: false,
            },
            recommended_replicas: Some(to),
            target_uid: "uid-1".into(),
            target_resource_version: Some("100".into()),
        }
    }

    fn pending(from: i32, to: i32) -> ScalingPolicyStatus {
        ScalingPolicyStatus {
            last_evaluation_time: Some(at(30)),
            last_decision: Some(DecisionRecord {
                time: at(30),
                action: Action::Hold,
                from,
                to: from,
                rule: None,
                limits: Vec::new(),
                message: "hold".into(),
                dry_run: false,
            }),
            pending_scale: Some(intent(from, to)),
            ..ScalingPolicyStatus::default()
        }
    }

    fn target(replicas: i32, uid: &str, version: &str) -> TargetRead {
        TargetRead::deployment(replicas, Some(uid), Some(version))
    }

    #[test]
    fn a_status_without_an_intent_is_kept_as_it_is() {
        let status = ScalingPolicyStatus {
            last_evaluation_time: Some(at(1)),
            ..ScalingPolicyStatus::default()
        };
        let (recovered, found) = recover(&status, &target(2, "uid-1", "100"));
        assert_eq!(recovered, status);
        assert_eq!(found, None);
    }

    #[test]
    fn a_target_at_the_intended_count_means_the_scale_was_made_and_it_counts() {
        let (status, found) = recover(&pending(2, 4), &target(4, "uid-1", "101"));
        assert_eq!(found.unwrap().recovery, Recovery::Applied);
        assert_eq!(status.pending_scale, None);
        assert_eq!(
            status.scale_events,
            vec![ScaleEvent {
                time: at(60),
                from: 2,
                to: 4
            }]
        );
        assert_eq!(status.last_scale_time, Some(at(60)));
        assert_eq!(status.last_scale_direction, Some(ScaleDirection::Out));
        assert_eq!(status.last_evaluation_time, Some(at(60)));
        // The controller expects the count it left: no ExternalScale for its own scale.
        assert_eq!(status.last_decision.as_ref().map(|d| d.to), Some(4));
        assert_eq!(
            status.recommendations,
            vec![Recommendation {
                time: at(60),
                replicas: 4
            }]
        );
    }

    #[test]
    fn a_target_unchanged_since_the_decision_means_the_scale_never_happened() {
        let (status, found) = recover(&pending(2, 4), &target(2, "uid-1", "100"));
        assert_eq!(found.unwrap().recovery, Recovery::NotApplied);
        assert!(status.scale_events.is_empty());
        assert_eq!(status.last_scale_time, None);
        assert_eq!(status.last_decision.as_ref().map(|d| d.to), Some(2));
        assert_eq!(status.pending_scale, None);
    }

    #[test]
    fn a_target_at_the_old_count_at_a_newer_version_was_not_scaled() {
        // The Deployment's status changed (pods became ready); its replicas did not.
        let (status, found) = recover(&pending(2, 4), &target(2, "uid-1", "105"));
        assert_eq!(found.unwrap().recovery, Recovery::NotApplied);
        assert!(status.scale_events.is_empty());
    }

    #[test]
    fn a_target_changed_to_another_count_is_counted_and_left_to_external_scale() {
        let (status, found) = recover(&pending(2, 4), &target(7, "uid-1", "110"));
        assert_eq!(found.unwrap().recovery, Recovery::Changed { now: 7 });
        assert_eq!(status.scale_events.len(), 1);
        // Expected 4, found 7: the evaluation reports ExternalScale.
        assert_eq!(status.last_decision.as_ref().map(|d| d.to), Some(4));
    }

    #[test]
    fn an_intent_for_a_target_since_recreated_is_dropped_and_never_counted() {
        let (status, found) = recover(&pending(2, 4), &target(4, "uid-2", "300"));
        assert_eq!(found.unwrap().recovery, Recovery::Replaced);
        assert!(status.scale_events.is_empty());
        assert_eq!(status.pending_scale, None);
    }

    #[test]
    fn a_scale_in_intent_counts_in_its_direction() {
        let (status, _) = recover(&pending(6, 3), &target(3, "uid-1", "101"));
        assert_eq!(status.last_scale_direction, Some(ScaleDirection::In));
    }

    #[test]
    fn counting_twice_records_one_event() {
        let (once, _) = recover(&pending(2, 4), &target(4, "uid-1", "101"));
        let mut again = once.clone();
        again.pending_scale = Some(intent(2, 4));
        let (twice, _) = recover(&again, &target(4, "uid-1", "101"));
        assert_eq!(twice.scale_events, once.scale_events);
        assert_eq!(twice.recommendations, once.recommendations);
    }

    #[test]
    fn the_write_ahead_status_keeps_the_history_and_adds_the_intent() {
        let persisted = ScalingPolicyStatus {
            last_evaluation_time: Some(at(30)),
            ..ScalingPolicyStatus::default()
        };
        let applied = ScalingPolicyStatus {
            last_evaluation_time: Some(at(60)),
            last_decision: intent(2, 4).decision.clone().into(),
            recommendations: vec![Recommendation {
                time: at(60),
                replicas: 5,
            }],
            scale_events: vec![ScaleEvent {
                time: at(60),
                from: 2,
                to: 4,
            }],
            ..ScalingPolicyStatus::default()
        };
        let status = write_ahead(&persisted, &applied, &target(2, "uid-1", "100")).unwrap();
        assert_eq!(status.last_evaluation_time, Some(at(30)));
        assert!(status.scale_events.is_empty());
        let intent = status.pending_scale.unwrap();
        assert_eq!((intent.decision.from, intent.decision.to), (2, 4));
        assert_eq!(intent.recommended_replicas, Some(5));
        assert_eq!(intent.target_uid, "uid-1");
        assert_eq!(intent.target_resource_version.as_deref(), Some("100"));
    }

    #[test]
    fn messages_say_what_became_of_the_scale() {
        let recovered = |recovery| Recovered {
            intent: intent(2, 4),
            recovery,
        };
        let applied = recovered(Recovery::Applied).message("shop/web");
        assert!(
            applied.starts_with(
                "the scale of shop/web from 2 to 4 recorded at 2027-01-15T08:01:00Z was made"
            ),
            "{applied}"
        );
        assert!(
            recovered(Recovery::NotApplied)
                .message("shop/web")
                .contains("was not made")
        );
        assert!(
            recovered(Recovery::Changed { now: 7 })
                .message("shop/web")
                .contains("change to 7")
        );
    }
}
