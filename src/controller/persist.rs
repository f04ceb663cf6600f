//! When an evaluation's status is written. Pure: no clock, no client.
//!
//! Writing every evaluation of every policy (its time and its newest proposal always change)
//! was most of the load scalewise put on the API server. A status is written when something a
//! reader or a later decision needs changed; otherwise the replica only remembers it, and
//! writes it at the latest after a heartbeat period:
//!
//! - always: a scale (written ahead, [`super::apply`]), an intent judged, the decision, a limit, a
//!   condition, a metric's failure, proposal or message (its displayed, rounded value), the
//!   pods counted, the generation, the cooldown and rate-period history, the failure count;
//! - at most once per tenth of the shorter stabilization window: a change of the stabilization
//!   history that changes nothing else (a new proposal value, say);
//! - at least once per heartbeat (`--status-heartbeat`, spread per policy over its last fifth):
//!   `lastEvaluationTime` is at most that old while the policy is evaluated.
//!
//! What a crash can lose is therefore remembered evaluations that changed no decision, limit or
//! condition: newer times and proposals of the stabilization history. Losing those can only
//! make a scale-in come early, never a scale-out or a second scale, so a replica that takes a
//! policy over from the status on the cluster (it restarted, or another replica wrote it last)
//! starts the run of evaluations again ([`resumed`]): no scale-in until a whole scale-in window
//! has passed, which outlasts every proposal the crash can have lost.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::{Policy, ScalingPolicyStatus};

/// The bounds of `--status-heartbeat`.
pub const MIN_HEARTBEAT: Duration = Duration::from_secs(1);
pub const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);

/// How often a policy's status is written when nothing that matters changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cadence {
    /// The longest a written `lastEvaluationTime` may lag the last evaluation, before the
    /// policy's share of spread.
    pub heartbeat: Duration,
    /// A change of the stabilization history alone is written at most this often: a tenth of
    /// the shorter window that keeps history (zero when no window does).
    pub history: Duration,
}

impl Cadence {
    /// The cadence of `policy` under `--status-heartbeat` `heartbeat`.
    pub fn for_policy(policy: &Policy, heartbeat: Duration) -> Self {
        let shortest = [
            policy.scale_in.stabilization_window,
            policy.scale_out.stabilization_window,
        ]
        .into_iter()
        .filter(|w| w.is_positive())
        .min()
        .map_or(Duration::ZERO, |w| w.unsigned_abs());
        Cadence {
            heartbeat,
            history: shortest.checked_div(10).unwrap_or_default(),
        }
    }
}

/// Why a status is written now; `None`: it is only remembered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// No evaluation was written yet (or the written one has no time).
    First,
    /// A decision, limit, condition, metric reading, count or record changed.
    Changed,
    /// Only the stabilization history changed, and its tenth of a window has passed.
    History,
    /// The heartbeat period has passed since the last write.
    Heartbeat,
}

impl Write {
    pub fn as_str(self) -> &'static str {
        match self {
            Write::First => "first",
            Write::Changed => "changed",
            Write::History => "history",
            Write::Heartbeat => "heartbeat",
        }
    }
}

/// Whether `new` (an evaluation's status) is written, given `written`, the status this replica
/// last wrote (or the one on the cluster, when it wrote none), at `now`. `spread` is the
/// policy's share of the heartbeat's spread ([`spread`]).
pub fn should_write(
    written: &ScalingPolicyStatus,
    new: &ScalingPolicyStatus,
    now: Timestamp,
    cadence: Cadence,
    spread: Duration,
) -> Option<Write> {
    let Some(last) = written.last_evaluation_time.as_ref().map(|t| t.0) else {
        return Some(Write::First);
    };
    if without_churn(written) != without_churn(new) {
        return Some(Write::Changed);
    }
    // A clock step back leaves `since` negative: the heartbeat is due, as it would be after a
    // long gap, rather than never.
    let since = now.duration_since(last);
    let since = if since.is_negative() {
        Duration::MAX
    } else {
        since.unsigned_abs()
    };
    if since >= cadence.heartbeat.saturating_sub(spread) {
        return Some(Write::Heartbeat);
    }
    if history_changed(written, new) && since >= cadence.history {
        return Some(Write::History);
    }
    None
}

/// The status without what changes at every evaluation without changing anything a reader or a
/// decision uses: the evaluation's time, how long it queued, each metric's exact value (its
/// rounded value stays, in the message), the forecast's exact figures and read times, and the
/// stabilization history (compared apart).
fn without_churn(status: &ScalingPolicyStatus) -> ScalingPolicyStatus {
    let mut s = status.clone();
    s.last_evaluation_time = None;
    s.queued_seconds = None;
    if let Some(d) = s.last_decision.as_mut() {
        d.time = Time(Timestamp::UNIX_EPOCH);
    }
    for m in &mut s.metrics {
        m.value = None;
    }
    // The forecast's exact figures and its reads (its state, floor and rounded message stay).
    if let Some(f) = s.forecast.as_mut() {
        f.value = None;
        f.error = None;
        f.points_scored = 0;
        f.history_read_time = None;
        f.history_since = None;
    }
    s.recommendations = Vec::new();
    s
}

/// Whether the stabilization history changed other than by its newest proposal being made
/// again (the same value, later): a new value, or an entry gone or added.
fn history_changed(written: &ScalingPolicyStatus, new: &ScalingPolicyStatus) -> bool {
    let (a, b) = (&written.recommendations, &new.recommendations);
    if a.len() != b.len() {
        return true;
    }
    let last = a.len().saturating_sub(1);
    a.iter()
        .zip(b)
        .enumerate()
        .any(|(i, (x, y))| x.replicas != y.replicas || (i != last && x.time != y.time))
}

/// A policy's share of the heartbeat's spread: up to a fifth of it, fixed per policy (by its
/// uid), so that policies created together do not all write their heartbeat at once.
pub fn spread(uid: Option<&str>, heartbeat: Duration) -> Duration {
    super::plan::hashed_within(heartbeat.checked_div(5).unwrap_or_default(), uid)
}

/// The status a replica starts from when it did not evaluate the policy last (it started, it
/// took the policy over, or another replica wrote since): the run of evaluations starts again,
/// so no scale-in happens before a whole scale-in window has passed (see the module
/// documentation).
pub fn resumed(mut status: ScalingPolicyStatus) -> ScalingPolicyStatus {
    status.evaluating_since = None;
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{MetricStatus, Recommendation};

    fn at(second: i64) -> Time {
        Time(Timestamp::from_second(1_700_000_000_i64.checked_add(second).unwrap()).unwrap())
    }

    fn status(evaluated: i64) -> ScalingPolicyStatus {
        ScalingPolicyStatus {
            current_replicas: Some(4),
            desired_replicas: Some(4),
            last_evaluation_time: Some(at(evaluated)),
            queued_seconds: Some(0.001),
            metrics: vec![MetricStatus {
                name: "cpu".into(),
                value: Some(61.3),
                failure: None,
                message: "cpu 61 < 70".into(),
                proposed_replicas: Some(4),
                query: None,
            }],
            recommendations: vec![Recommendation {
                time: at(evaluated),
                replicas: 4,
            }],
            ..Default::default()
        }
    }

    const CADENCE: Cadence = Cadence {
        heartbeat: Duration::from_secs(600),
        history: Duration::from_secs(30),
    };

    fn write(written: &ScalingPolicyStatus, new: &ScalingPolicyStatus, now: i64) -> Option<Write> {
        should_write(written, new, at(now).0, CADENCE, Duration::ZERO)
    }

    #[test]
    fn a_steady_evaluation_is_remembered_until_the_heartbeat() {
        let written = status(0);
        // Later, the same proposal made again, the exact value moved within its rounding.
        let mut new = status(15);
        new.metrics[0].value = Some(61.4);
        new.queued_seconds = Some(0.2);
        assert_eq!(write(&written, &new, 15), None);
        assert_eq!(write(&written, &status(599), 599), None);
        assert_eq!(write(&written, &status(600), 600), Some(Write::Heartbeat));
    }

    #[test]
    fn what_a_reader_or_a_decision_uses_is_written_at_once() {
        let written = status(0);
        type Change = fn(&mut ScalingPolicyStatus);
        let changes: Vec<(&str, Change)> = vec![
            ("desired", |s| s.desired_replicas = Some(5)),
            ("message", |s| s.metrics[0].message = "cpu 62 < 70".into()),
            ("proposal", |s| s.metrics[0].proposed_replicas = Some(5)),
            ("failures", |s| s.consecutive_failures = 1),
            ("scale time", |s| s.last_scale_time = Some(at(10))),
            ("generation", |s| s.observed_generation = Some(2)),
            ("run", |s| s.evaluating_since = Some(at(10))),
        ];
        for (what, change) in changes {
            let mut new = status(15);
            change(&mut new);
            assert_eq!(write(&written, &new, 15), Some(Write::Changed), "{what}");
        }
    }

    #[test]
    fn a_change_of_history_alone_waits_a_tenth_of_the_window() {
        let written = status(0);
        let mut new = status(15);
        new.recommendations.insert(
            0,
            Recommendation {
                time: at(10),
                replicas: 6,
            },
        );
        assert_eq!(write(&written, &new, 15), None);
        assert_eq!(write(&written, &new, 30), Some(Write::History));
    }

    #[test]
    fn the_first_evaluation_and_a_clock_step_back_are_written() {
        let none = ScalingPolicyStatus::default();
        assert_eq!(write(&none, &status(0), 0), Some(Write::First));
        assert_eq!(
            write(&status(100), &status(100), 50),
            Some(Write::Heartbeat)
        );
    }

    #[test]
    fn the_spread_is_fixed_per_policy_and_within_a_fifth() {
        let heartbeat = Duration::from_secs(600);
        let a = spread(Some("uid-a"), heartbeat);
        assert_eq!(a, spread(Some("uid-a"), heartbeat));
        let spreads: std::collections::BTreeSet<Duration> = (0..50)
            .map(|i| spread(Some(&format!("uid-{i}")), heartbeat))
            .collect();
        assert!(spreads.iter().all(|s| *s < Duration::from_secs(120)));
        assert!(spreads.len() > 40, "{spreads:?}");
    }

    #[test]
    fn a_resumed_status_starts_the_run_again() {
        let mut s = status(0);
        s.evaluating_since = Some(at(-1000));
        let r = resumed(s.clone());
        assert_eq!(r.evaluating_since, None);
        assert_eq!(r.last_evaluation_time, s.last_evaluation_time);
    }
}
