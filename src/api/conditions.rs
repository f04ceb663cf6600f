//! Standard Kubernetes conditions on a ScalingPolicy's status.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// Sets condition `type_` in `conditions`. `lastTransitionTime` moves to `now` only when the
/// status changes, so it keeps telling when the condition last flipped.
pub fn set_condition(
    conditions: &mut Vec<Condition>,
    type_: &str,
    status: bool,
    reason: &str,
    message: impl Into<String>,
    observed_generation: Option<i64>,
    now: &Time,
) {
    let status = if status { "True" } else { "False" };
    let message = message.into();
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(existing) => {
            if existing.status != status {
                existing.last_transition_time = now.clone();
                existing.status = status.to_owned();
            }
            existing.reason = reason.to_owned();
            existing.message = message;
            existing.observed_generation = observed_generation;
        }
        None => conditions.push(Condition {
            type_: type_.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation,
            last_transition_time: now.clone(),
        }),
    }
}

/// A condition scalewise sets only once something happens (someone else scaled the target, a
/// clock ran ahead): while `raised` holds it, the condition is `raised_status` with its reason
/// and message; once it no longer does, a condition already there turns the other way with the
/// `cleared` reason and message; one never raised stays absent.
pub fn set_episode(
    conditions: &mut Vec<Condition>,
    type_: &str,
    raised_status: bool,
    raised: Option<(&str, String)>,
    cleared: (&str, &str),
    observed_generation: Option<i64>,
    now: &Time,
) {
    match raised {
        Some((reason, message)) => set_condition(
            conditions,
            type_,
            raised_status,
            reason,
            message,
            observed_generation,
            now,
        ),
        None if find_condition(conditions, type_).is_some() => set_condition(
            conditions,
            type_,
            !raised_status,
            cleared.0,
            cleared.1,
            observed_generation,
            now,
        ),
        None => {}
    }
}

/// The condition of type `type_`, if set.
pub fn find_condition<'a>(conditions: &'a [Condition], type_: &str) -> Option<&'a Condition> {
    conditions.iter().find(|c| c.type_ == type_)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    #[test]
    fn transition_time_moves_only_when_status_flips() {
        let mut conditions = Vec::new();
        set_condition(
            &mut conditions,
            "Ready",
            true,
            "Evaluated",
            "ok",
            Some(1),
            &at(100),
        );
        set_condition(
            &mut conditions,
            "Ready",
            true,
            "Evaluated",
            "still ok",
            Some(2),
            &at(200),
        );
        assert_eq!(conditions.len(), 1);
        assert_eq!(conditions[0].last_transition_time, at(100));
        assert_eq!(conditions[0].message, "still ok");
        assert_eq!(conditions[0].observed_generation, Some(2));

        set_condition(
            &mut conditions,
            "Ready",
            false,
            "InvalidSpec",
            "bad",
            Some(3),
            &at(300),
        );
        assert_eq!(conditions[0].last_transition_time, at(300));
        assert_eq!(conditions[0].status, "False");
        assert_eq!(conditions[0].reason, "InvalidSpec");
    }

    #[test]
    fn an_episode_is_absent_until_raised_and_turns_back_once_over() {
        let mut conditions = Vec::new();
        let cleared = ("Fine", "all is well");
        set_episode(
            &mut conditions,
            "Skew",
            true,
            None,
            cleared,
            Some(1),
            &at(100),
        );
        assert!(conditions.is_empty(), "never raised: absent");
        let raised = Some(("Ahead", "30s ahead".to_owned()));
        set_episode(
            &mut conditions,
            "Skew",
            true,
            raised,
            cleared,
            Some(1),
            &at(200),
        );
        assert_eq!(
            (conditions[0].status.as_str(), conditions[0].reason.as_str()),
            ("True", "Ahead")
        );
        set_episode(
            &mut conditions,
            "Skew",
            true,
            None,
            cleared,
            Some(2),
            &at(300),
        );
        assert_eq!(
            (conditions[0].status.as_str(), conditions[0].reason.as_str()),
            ("False", "Fine")
        );
        assert_eq!(conditions[0].last_transition_time, at(300));
    }
}
