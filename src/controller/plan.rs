//! The plan step of a reconcile: from what was gathered to the writes to make.
//!
//! Pure: every function here takes the policy object, its persisted status, `now`, the observed
//! target and the observations as arguments, and never reads a clock or a client. The reconciler
//! gathers those inputs ([`super::reconcile`]), calls one of these functions, and hands the
//! [`Plan`] to the apply step ([`super::apply`]).

use std::hash::{Hash, Hasher};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;

use super::decoded::Undecodable;
use super::events::EventType;
use super::intent::{Recovered, Recovery, recover, write_ahead};
use super::resolved::Resolved;
pub use super::target::TargetRead;
use crate::api::Capacity;
use crate::api::conditions::{find_condition, set_condition, set_episode};
use crate::api::reason;
use crate::api::status::{condition, forecast_state};
use crate::api::{Action as Verdict, FieldError, Policy, ScalingPolicy, ScalingPolicyStatus};
use crate::decide::{Decision, Observation, TargetState, decide_for, next_status};
use crate::metrics::coalesce;
use crate::text::shorten;

/// The longest the controller waits before it looks at a policy again, whatever its interval: a
/// policy stored with a longer one is looked at every hour, and evaluated when its interval is
/// over.
pub const MAX_REQUEUE: Duration = Duration::from_secs(3600);

/// events.k8s.io/v1 limits a note to 1 KiB.
const MAX_NOTE_BYTES: usize = 1000;

/// One event to publish about the policy, after the writes succeeded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Note {
    pub type_: EventType,
    pub reason: &'static str,
    pub action: &'static str,
    /// At most 1000 bytes (cut at a character boundary, with an ellipsis).
    pub note: String,
}

impl Note {
    /// An event, its note cut to the API's limit.
    pub fn new(type_: EventType, reason: &'static str, action: &'static str, note: String) -> Self {
        Self {
            type_,
            reason,
            action,
            note: shorten(&note, MAX_NOTE_BYTES),
        }
    }
}

/// When to reconcile the policy again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// This long after the start of the reconcile.
    After(Duration),
    /// Only when the policy changes (an invalid spec).
    AwaitChange,
}

/// What a reconcile found, for its report (metrics and logs).
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// The spec is invalid: nothing was evaluated.
    Invalid,
    /// The target does not exist.
    TargetMissing,
    /// An evaluation; `applied` when it changes the target's replicas.
    Evaluated {
        decision: Box<Decision>,
        applied: bool,
    },
}

/// The writes one reconcile makes, in the order the apply step makes them: the target's replicas,
/// the status, then the events.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// Set the target's replicas through /scale, once the intent is recorded.
    pub scale: Option<Scale>,
    /// The new status, when it differs from the persisted one.
    pub status: Option<ScalingPolicyStatus>,
    pub events: Vec<Note>,
    pub next: Next,
    pub outcome: Outcome,
    /// The target as the plan read it, which a scale is conditional on.
    pub read: Option<TargetRead>,
    /// An intent found in the persisted status, and what became of it.
    pub recovered: Option<Recovered>,
}

/// A scale to make, and what to record before it is made.
#[derive(Clone, Debug, PartialEq)]
pub struct Scale {
    pub replicas: i32,
    /// The status to write before the target is patched (write-ahead): the status the
    /// evaluation started from, holding the intent in `pendingScale`. No scale is made unless
    /// it was written.
    pub intent: ScalingPolicyStatus,
}

impl Plan {
    /// The replicas this plan sets the target to, if it scales.
    pub fn replicas(&self) -> Option<i32> {
        self.scale.as_ref().map(|s| s.replicas)
    }
}

/// `now` to the second, as status times are written.
pub fn stamp(now: Timestamp) -> Time {
    Time(Timestamp::from_second(now.as_second()).unwrap_or(now))
}

/// An invalid spec: `Ready` and `AbleToScale` turn False with every problem, a Warning event says
/// so once, and the target is never touched.
pub fn invalid(
    object: &ScalingPolicy,
    previous: &ScalingPolicyStatus,
    problems: &[FieldError],
    now: Timestamp,
) -> Plan {
    let message = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let why = NotEvaluated {
        reason: reason::condition::INVALID_SPEC,
        message: &message,
        able_message: "the target is not touched while the spec is invalid",
        action: reason::action::VALIDATE,
    };
    not_evaluated(
        object,
        previous,
        &why,
        now,
        Next::AwaitChange,
        Outcome::Invalid,
    )
}

/// An object the types cannot hold (a value out of range for its type, stored by an API server
/// that does not enforce the schema): reported like an invalid spec on `Ready` and `AbleToScale`,
/// with the field path, keeping the status when it could be read (its cooldowns are not
/// forgotten) and a fresh one otherwise (no scale-in before a whole window of evidence).
pub fn undecodable(object: &Undecodable, now: Timestamp) -> Plan {
    let previous = object.status.clone().unwrap_or_default();
    let message = format!(
        "{}; the operator cannot read this object: fix the field (scalewise check -f FILE shows every problem)",
        object.error
    );
    let why = NotEvaluated {
        reason: reason::condition::INVALID_OBJECT,
        message: &message,
        able_message: "the target is not touched while the object cannot be read",
        action: reason::action::VALIDATE,
    };
    let mut plan = not_evaluated_at(
        object.metadata.generation,
        &previous,
        &why,
        now,
        Next::AwaitChange,
        Outcome::Invalid,
    );
    // A status that could not be read is replaced, even when the conditions say the same.
    if object.status.is_none() && plan.status.is_none() {
        plan.status = Some(previous);
    }
    plan
}

/// A target that does not exist: reported like an invalid spec, and looked for again every
/// interval.
pub fn missing_target(
    object: &ScalingPolicy,
    policy: &Policy,
    previous: &ScalingPolicyStatus,
    now: Timestamp,
) -> Plan {
    let namespace = object.namespace().unwrap_or_default();
    let message = format!(
        "{} {namespace}/{} does not exist; retrying every interval",
        policy.target_kind, policy.target
    );
    target_unusable(
        object,
        policy,
        previous,
        reason::condition::TARGET_NOT_FOUND,
        &message,
        now,
    )
}

/// A target that cannot be read or scaled: Ready and AbleToScale False with `reason`, tried
/// again every interval.
fn target_unusable(
    object: &ScalingPolicy,
    policy: &Policy,
    previous: &ScalingPolicyStatus,
    reason: &'static str,
    message: &str,
    now: Timestamp,
) -> Plan {
    let why = NotEvaluated {
        reason,
        message,
        able_message: message,
        action: reason::action::READ_TARGET,
    };
    let next = Next::After(policy.interval.unsigned_abs().min(MAX_REQUEUE));
    not_evaluated(object, previous, &why, now, next, Outcome::TargetMissing)
}

/// The plan for a policy whose target's kind cannot be scaled (it has no `/scale`, or the API
/// server serves no such kind): Ready and AbleToScale are False with the reason, and the
/// policy is tried again every interval (a CRD can be installed later).
pub fn unscalable(
    object: &ScalingPolicy,
    policy: &Policy,
    previous: &ScalingPolicyStatus,
    why: &str,
    now: Timestamp,
) -> Plan {
    let message = format!(
        "cannot scale {} {}: {why}",
        policy.target_kind, policy.target
    );
    target_unusable(
        object,
        policy,
        previous,
        reason::condition::TARGET_NOT_SCALABLE,
        &message,
        now,
    )
}

/// Why a policy could not be evaluated.
struct NotEvaluated<'a> {
    /// Condition reason and event reason.
    reason: &'static str,
    /// The `Ready` condition's message and the event's note.
    message: &'a str,
    /// The `AbleToScale` condition's message.
    able_message: &'a str,
    /// The event's action.
    action: &'static str,
}

/// `Ready` and `AbleToScale` turn False with the reason; a Warning event says why, once, when the
/// status changes.
fn not_evaluated(
    object: &ScalingPolicy,
    previous: &ScalingPolicyStatus,
    why: &NotEvaluated<'_>,
    now: Timestamp,
    next: Next,
    outcome: Outcome,
) -> Plan {
    not_evaluated_at(
        object.metadata.generation,
        previous,
        why,
        now,
        next,
        outcome,
    )
}

fn not_evaluated_at(
    generation: Option<i64>,
    previous: &ScalingPolicyStatus,
    why: &NotEvaluated<'_>,
    now: Timestamp,
    next: Next,
    outcome: Outcome,
) -> Plan {
    let now = stamp(now);
    let mut status = previous.clone();
    status.observed_generation = generation;
    for (type_, message) in [
        (condition::READY, why.message),
        (condition::ABLE_TO_SCALE, why.able_message),
    ] {
        set_condition(
            &mut status.conditions,
            type_,
            false,
            why.reason,
            message,
            generation,
            &now,
        );
    }
    let changed = status != *previous;
    Plan {
        scale: None,
        events: if changed {
            vec![Note::new(
                EventType::Warning,
                why.reason,
                why.action,
                why.message.to_owned(),
            )]
        } else {
            Vec::new()
        },
        status: changed.then_some(status),
        next,
        outcome,
        read: None,
        recovered: None,
    }
}

/// How long to wait instead of evaluating now, when a trigger came between evaluations (the
/// target changed, a new HorizontalPodAutoscaler) and the target's replicas are still those the
/// last evaluation of this generation left it at. `None`: evaluate now.
///
/// Whatever triggered it, a policy is evaluated at most once per `floor` (`--min-interval`): a
/// spec that keeps changing, or a target someone keeps scaling, waits out the floor too.
pub fn not_due(
    object: &ScalingPolicy,
    policy: &Policy,
    previous: &ScalingPolicyStatus,
    current: i32,
    now: Timestamp,
    floor: Duration,
) -> Option<Duration> {
    let generation = object.metadata.generation;
    let interval = policy.interval.unsigned_abs();
    // An unconfirmed scale is judged at once, and so is a status that cannot be trusted.
    if previous.pending_scale.is_some() || implausible(previous, now).is_some() {
        return None;
    }
    // A time recorded ahead of this clock (another replica's clock ran ahead) is taken as now
    // by the evaluation, which says so: evaluate at once, rather than wait for this clock to
    // catch up with it.
    let (clamped, skew) = clamp_future(previous, now);
    if skew.is_some() {
        return None;
    }
    let previous = &clamped;
    if let Some(last) = previous.last_evaluation_time.as_ref() {
        let since = now.duration_since(last.0);
        if since >= SignedDuration::ZERO && since.unsigned_abs() < floor {
            return Some(floor.saturating_sub(since.unsigned_abs()));
        }
    }
    if generation.is_none()
        || generation != previous.observed_generation
        || expected_replicas(previous) != Some(current)
        || !ready_condition_is(previous, reason::condition::EVALUATED)
    {
        return None;
    }
    let due = coalesce::next_tick(previous.last_evaluation_time.as_ref()?.0, interval);
    (now < due).then(|| {
        now.duration_until(due)
            .unsigned_abs()
            .min(interval.saturating_mul(2))
            .min(MAX_REQUEUE)
    })
}

/// The most recommendations or scale events a status can hold from scalewise's own writes (one
/// per evaluation within the longest window or period, every second): more is not our record.
pub const MAX_HISTORY: usize = 4096;
/// How far in the future a recorded time may lie (the operator's clock stepped back) before it is
/// taken as impossible rather than as a clock step, which only holds a cooldown longer.
pub const FUTURE_SLACK: SignedDuration = SignedDuration::from_hours(24);

/// Why a persisted status cannot be trusted, if it cannot: more history than scalewise ever
/// writes, negative counts or replicas, times far in the future.
pub fn implausible(status: &ScalingPolicyStatus, now: Timestamp) -> Option<String> {
    let latest = now.saturating_add(FUTURE_SLACK).unwrap_or(Timestamp::MAX);
    let future = |t: &Time| t.0 > latest;
    if status.recommendations.len() > MAX_HISTORY {
        return Some(format!(
            "status.recommendations holds {} entries (scalewise writes at most {MAX_HISTORY})",
            status.recommendations.len()
        ));
    }
    if status.scale_events.len() > MAX_HISTORY {
        return Some(format!(
            "status.scaleEvents holds {} entries (scalewise writes at most {MAX_HISTORY})",
            status.scale_events.len()
        ));
    }
    if status.consecutive_failures < 0 {
        return Some(format!(
            "status.consecutiveFailures is negative ({})",
            status.consecutive_failures
        ));
    }
    let times = [
        ("status.lastScaleTime", status.last_scale_time.as_ref()),
        (
            "status.lastEvaluationTime",
            status.last_evaluation_time.as_ref(),
        ),
        ("status.evaluatingSince", status.evaluating_since.as_ref()),
        (
            "status.lastDecision.time",
            status.last_decision.as_ref().map(|d| &d.time),
        ),
    ];
    if let Some((field, t)) = times
        .into_iter()
        .find_map(|(field, t)| t.filter(|t| future(t)).map(|t| (field, t)))
    {
        return Some(format!("{field} ({}) is in the future", t.0));
    }
    if status
        .recommendations
        .iter()
        .any(|r| future(&r.time) || r.replicas < 0)
    {
        return Some(
            "status.recommendations holds a time in the future or negative replicas".into(),
        );
    }
    if status
        .scale_events
        .iter()
        .any(|e| future(&e.time) || e.from < 0 || e.to < 0)
    {
        return Some("status.scaleEvents holds a time in the future or negative replicas".into());
    }
    if status
        .last_decision
        .as_ref()
        .is_some_and(|d| d.from < 0 || d.to < 0)
    {
        return Some("status.lastDecision holds negative replicas".into());
    }
    None
}

/// The status an evaluation starts from: the persisted one, or, when it cannot be trusted, a
/// fresh one (no history: no scale-in before a whole window of evidence), with why.
fn trusted(
    previous: &ScalingPolicyStatus,
    now: Timestamp,
) -> (ScalingPolicyStatus, Option<String>, Option<String>) {
    match implausible(previous, now) {
        None => {
            let (status, skew) = clamp_future(previous, now);
            (status, None, skew)
        }
        Some(why) => (
            ScalingPolicyStatus {
                conditions: previous.conditions.clone(),
                ..ScalingPolicyStatus::default()
            },
            Some(why),
            None,
        ),
    }
}

/// How far ahead of this replica's clock a recorded time may be before it is taken as clock skew.
pub const CLOCK_TOLERANCE: SignedDuration = SignedDuration::from_secs(5);

/// The status with every time later than `now` (beyond [`CLOCK_TOLERANCE`]) moved to `now`, and
/// which field was furthest ahead, if any: another replica's clock ran ahead, or this one
/// stepped back. Moved to now, a cooldown runs from now (longer, never shorter) and a proposal
/// stays in its window from now.
fn clamp_future(
    status: &ScalingPolicyStatus,
    now: Timestamp,
) -> (ScalingPolicyStatus, Option<String>) {
    let latest = now
        .saturating_add(CLOCK_TOLERANCE)
        .unwrap_or(Timestamp::MAX);
    let mut status = status.clone();
    let mut ahead: Option<(&'static str, SignedDuration)> = None;
    let mut clamp = |field: &'static str, t: &mut Time| {
        if t.0 > latest {
            let by = t.0.duration_since(now);
            if ahead.is_none_or(|(_, most)| by > most) {
                ahead = Some((field, by));
            }
            t.0 = now;
        }
    };
    if let Some(t) = status.last_scale_time.as_mut() {
        clamp("status.lastScaleTime", t);
    }
    if let Some(t) = status.last_evaluation_time.as_mut() {
        clamp("status.lastEvaluationTime", t);
    }
    if let Some(t) = status.evaluating_since.as_mut() {
        clamp("status.evaluatingSince", t);
    }
    if let Some(d) = status.last_decision.as_mut() {
        clamp("status.lastDecision.time", &mut d.time);
    }
    for r in &mut status.recommendations {
        clamp("status.recommendations", &mut r.time);
    }
    for e in &mut status.scale_events {
        clamp("status.scaleEvents", &mut e.time);
    }
    let message = ahead.map(|(field, by)| {
        format!(
            "{field} was {} ahead of this replica's clock: treated as now",
            crate::text::duration(by.unsigned_abs(), crate::text::Resolution::Seconds)
        )
    });
    (status, message)
}

/// What one evaluation is made from.
pub struct Evaluation<'a> {
    pub object: &'a ScalingPolicy,
    pub resolved: &'a Resolved,
    /// The persisted status.
    pub previous: &'a ScalingPolicyStatus,
    /// How long this evaluation waited for reconcile and query slots (and its namespace's turn).
    pub queued: Duration,
    /// Why it waited for its namespace's turn, when the namespace was over its budget of
    /// evaluations.
    pub throttled: Option<&'a str>,
    /// The target's /scale as read.
    pub target: &'a TargetRead,
    /// Other owners of the target, as `Kind namespace/name`.
    pub owners: &'a [String],
    pub observations: &'a [Observation],
    /// Whether the target is mid-rollout and whether its capacity is there.
    pub target_state: &'a TargetState,
    /// The target's pods, for status (none when they are not known).
    pub capacity: Option<&'a Capacity>,
    /// The forecast's status before the decision (`spec.forecast`), when the policy has one.
    pub forecast: Option<&'a crate::api::ForecastStatus>,
    pub now: Timestamp,
}

/// One evaluation: the engine's decision, the status that records it, and the events that tell
/// users about it. Beside another owner of the target, the decision is made as a dry run:
/// recorded, never applied.
pub fn evaluation(input: &Evaluation<'_>) -> Plan {
    let Evaluation {
        object,
        resolved,
        previous,
        target,
        owners,
        observations,
        target_state,
        capacity,
        forecast,
        now,
        queued,
        throttled,
    } = *input;
    let current = target.replicas;
    let policy = &resolved.policy;
    let generation = object.metadata.generation;
    let persisted = previous;
    let (trusted, reset, skew) = trusted(persisted, now);
    // A scale recorded before it was made is judged from the target first: counted when made.
    let (recovered_status, recovered) = recover(&trusted, target);
    let previous = &recovered_status;
    let expected = expected_replicas(previous);
    // While paused, changing the replicas by hand is what pausing is for, and a dry-run policy
    // only shadows whoever scales the target: no warning from either.
    let external = expected.filter(|e| *e != current && !policy.paused && !policy.dry_run);

    let decision = if owners.is_empty() || policy.dry_run {
        decide_for(policy, previous, observations, current, target_state, now)
    } else {
        let shadow = Policy {
            dry_run: true,
            ..policy.clone()
        };
        decide_for(&shadow, previous, observations, current, target_state, now)
    };
    let applied = decision.changes_target();

    let mut status = next_status(previous, &decision, generation);
    status.capacity = capacity.cloned();
    status.forecast = forecast.map(|f| crate::decide::forecast::record(f.clone(), &decision));
    status.namespace_access = resolved.plan.scope.access();
    let context = Context {
        policy,
        owners,
        external,
        target: &policy.target,
        generation,
        now: stamp(now),
    };
    annotate(&mut status, &context);
    status.queued_seconds = Some(millis(queued));
    note_interval(&mut status, resolved, &context);
    let mut events = evaluation_events(object, previous, &status, &decision, &context, applied);
    record_trust(&mut status, reset.as_deref(), &context, &mut events);
    note_clock(&mut status, skew.as_deref(), &context);
    note_throttle(&mut status, throttled, &context);
    if let Some(recovered) = &recovered {
        events.insert(0, recovery_event(object, recovered, &context));
    }
    let interval = policy.interval.unsigned_abs();
    // Applied: the scale is recorded (the status the evaluation started from, plus the intent)
    // before it is made.
    let scale = if applied {
        write_ahead(previous, &status, target).map(|intent| Scale {
            replicas: decision.desired_replicas,
            intent,
        })
    } else {
        None
    };
    Plan {
        scale,
        recovered,
        status: (status != *persisted).then_some(status),
        events,
        next: Next::After(requeue(now, interval)),
        outcome: Outcome::Evaluated {
            decision: Box::new(decision),
            applied,
        },
        read: Some(target.clone()),
    }
}

/// The event about an intent found in status: Normal when it was made or never made (the
/// record is complete again), Warning when someone else changed the target since.
fn recovery_event(object: &ScalingPolicy, recovered: &Recovered, context: &Context<'_>) -> Note {
    let target = format!(
        "{}/{}",
        object.namespace().unwrap_or_default(),
        context.target
    );
    let type_ = match recovered.recovery {
        Recovery::Changed { .. } => EventType::Warning,
        _ => EventType::Normal,
    };
    Note::new(
        type_,
        reason::event::INTENT_RECOVERED,
        reason::action::SCALE,
        recovered.message(&target),
    )
}

/// Whether a status this replica `written` is newer (a later `lastEvaluationTime`) than the one
/// the watch cache holds: then the evaluation starts from it, since an evaluation never acts on a
/// state older than its own last write.
///
/// At the same evaluation time, a status holding an intent is the newer: it was written ahead of
/// the scale, after the status it was made from.
pub fn newer(written: &ScalingPolicyStatus, cached: &ScalingPolicyStatus) -> bool {
    let key = |s: &ScalingPolicyStatus| {
        (
            s.last_evaluation_time.as_ref().map(|t| t.0),
            s.pending_scale.is_some(),
        )
    };
    key(written) > key(cached)
}

/// The replicas scalewise left the target at after its last evaluation.
pub fn expected_replicas(status: &ScalingPolicyStatus) -> Option<i32> {
    let last = status.last_decision.as_ref()?;
    Some(if last.dry_run { last.from } else { last.to })
}

fn ready_condition_is(status: &ScalingPolicyStatus, reason: &str) -> bool {
    find_condition(&status.conditions, condition::READY)
        .is_some_and(|c| c.status == "True" && c.reason == reason)
}

/// How long after an evaluation at `now` the next one is due (at most [`MAX_REQUEUE`]): at the
/// tick of the interval nearest one interval later ([`coalesce::next_tick`]), so that every
/// policy of one interval is evaluated at the same ticks and their queries are shared.
fn requeue(now: Timestamp, interval: Duration) -> Duration {
    now.duration_until(coalesce::next_tick(now, interval))
        .unsigned_abs()
        .min(MAX_REQUEUE)
}

/// A duration below `span` (to the millisecond; zero for a span under a millisecond), fixed by
/// `key`: the same key always gives the same share, different keys spread over the span.
pub fn hashed_within(span: Duration, key: impl Hash) -> Duration {
    let millis = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    Duration::from_millis(h.finish().checked_rem(millis).unwrap_or(0))
}

/// What only the controller knows about an evaluation.
struct Context<'a> {
    policy: &'a Policy,
    owners: &'a [String],
    /// The replicas scalewise had left the target at, when someone changed them since.
    external: Option<i32>,
    target: &'a str,
    generation: Option<i64>,
    now: Time,
}

/// Adds what only the controller knows to the engine's status: other owners, external scaling.
fn annotate(status: &mut ScalingPolicyStatus, context: &Context<'_>) {
    let Context {
        policy,
        owners,
        external,
        target,
        generation,
        ref now,
    } = *context;
    let kind = &policy.target_kind;
    let conditions = &mut status.conditions;
    if !owners.is_empty() {
        let list = owners.join(", ");
        if policy.dry_run {
            set_condition(
                conditions,
                condition::ABLE_TO_SCALE,
                true,
                reason::condition::DRY_RUN_BESIDE_OTHER_OWNER,
                format!(
                    "{kind} {target} is also scaled by {list}; this dry-run policy records decisions and never applies them"
                ),
                generation,
                now,
            );
        } else {
            set_condition(
                conditions,
                condition::ABLE_TO_SCALE,
                false,
                reason::condition::AMBIGUOUS_TARGET,
                format!(
                    "{kind} {target} is also scaled by {list}; scalewise does not scale it until only one owner remains (set spec.dryRun to shadow the other owner)"
                ),
                generation,
                now,
            );
        }
    }
    let current = status.current_replicas.unwrap_or_default();
    set_episode(
        conditions,
        condition::EXTERNAL_SCALE,
        true,
        external.map(|expected| {
            (
                reason::condition::EXTERNAL_SCALE,
                format!(
                    "{kind} {target} was scaled from {expected} to {current} by someone other than scalewise; deciding from {current}"
                ),
            )
        }),
        (
            reason::condition::NO_EXTERNAL_SCALE,
            &format!("{kind} {target} has the replicas scalewise left it at"),
        ),
        generation,
        now,
    );
}

/// Seconds to the millisecond.
fn millis(d: Duration) -> f64 {
    let ms = u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
    f64::from(ms) / 1000.0
}

/// The `IntervalLimited` condition: True while the spec's interval is below the operator's floor,
/// False again once it no longer is.
fn note_interval(status: &mut ScalingPolicyStatus, resolved: &Resolved, context: &Context<'_>) {
    let interval = resolved.policy.interval.unsigned_abs();
    let seconds = |d: Duration| crate::text::duration(d, crate::text::Resolution::Seconds);
    set_episode(
        &mut status.conditions,
        condition::INTERVAL_LIMITED,
        true,
        resolved.raised_from.map(|written| {
            (
                reason::condition::BELOW_MIN_INTERVAL,
                format!(
                    "spec.interval {} is below the operator's minimum (--min-interval {}): evaluated every {}",
                    seconds(written.unsigned_abs()),
                    seconds(interval),
                    seconds(interval),
                ),
            )
        }),
        (
            reason::condition::INTERVAL_AS_WRITTEN,
            "spec.interval is used as written",
        ),
        context.generation,
        &context.now,
    );
}

/// The `ClockSkew` condition: True while recorded times lie ahead of this replica's clock, False
/// again once they no longer do.
fn note_clock(status: &mut ScalingPolicyStatus, skew: Option<&str>, context: &Context<'_>) {
    set_episode(
        &mut status.conditions,
        condition::CLOCK_SKEW,
        true,
        skew.map(|message| (reason::condition::FUTURE_TIMESTAMPS, message.to_owned())),
        (
            reason::condition::CLOCKS_AGREE,
            "no recorded time lies ahead of this replica's clock",
        ),
        context.generation,
        &context.now,
    );
}

/// The `Throttled` condition: True with why while the namespace's evaluations wait for their
/// turn (`--namespace-evaluations-per-minute`), False again once one did not.
fn note_throttle(status: &mut ScalingPolicyStatus, throttled: Option<&str>, context: &Context<'_>) {
    set_episode(
        &mut status.conditions,
        condition::THROTTLED,
        true,
        throttled.map(|message| (reason::condition::NAMESPACE_BUDGET, message.to_owned())),
        (
            reason::condition::WITHIN_BUDGET,
            "the namespace's evaluations are within the operator's budget",
        ),
        context.generation,
        &context.now,
    );
}

/// The `StatusTrusted` condition: False with why when the persisted status was replaced (and a
/// Warning event says so), True again at the next evaluation after one was.
fn record_trust(
    status: &mut ScalingPolicyStatus,
    reset: Option<&str>,
    context: &Context<'_>,
    events: &mut Vec<Note>,
) {
    let message = reset.map(|why| {
        format!(
            "{why}: the status was replaced by a fresh one (no scale-in before a whole window of evidence)"
        )
    });
    if let Some(message) = &message {
        events.push(Note::new(
            EventType::Warning,
            reason::event::STATUS_RESET,
            reason::action::VALIDATE,
            message.clone(),
        ));
    }
    set_episode(
        &mut status.conditions,
        condition::STATUS_TRUSTED,
        false,
        message.map(|m| (reason::condition::STATUS_RESET, m)),
        (
            reason::condition::STATUS_VALID,
            "the status holds what scalewise recorded",
        ),
        context.generation,
        &context.now,
    );
}

/// Events for what users should know: scale actions, dry-run decisions, external scaling, other
/// owners and metric failures (the last two when they begin).
fn evaluation_events(
    object: &ScalingPolicy,
    previous: &ScalingPolicyStatus,
    status: &ScalingPolicyStatus,
    decision: &Decision,
    context: &Context<'_>,
    applied: bool,
) -> Vec<Note> {
    let namespace = object.namespace().unwrap_or_default();
    let target = format!("{namespace}/{}", context.target);
    let (from, to) = (decision.current_replicas, decision.desired_replicas);
    let mut events = Vec::new();
    if let Some(expected) = context.external {
        events.push(Note::new(
            EventType::Warning,
            reason::event::EXTERNAL_SCALE,
            reason::action::READ_TARGET,
            format!(
                "{target} was scaled from {expected} to {from} by someone other than scalewise (kubectl scale, a GitOps sync?); deciding from {from}"
            ),
        ));
    }
    if !context.owners.is_empty()
        && !context.policy.dry_run
        && became(
            previous,
            status,
            condition::ABLE_TO_SCALE,
            reason::condition::AMBIGUOUS_TARGET,
        )
    {
        events.push(Note::new(
            EventType::Warning,
            reason::event::AMBIGUOUS_TARGET,
            reason::action::SCALE,
            format!(
                "{target} is also scaled by {}; not scaling it",
                context.owners.join(", ")
            ),
        ));
    }
    if became(
        previous,
        status,
        condition::METRICS_AVAILABLE,
        reason::condition::METRICS_FAILED,
    ) {
        let note = find_condition(&status.conditions, condition::METRICS_AVAILABLE)
            .map(|c| c.message.clone())
            .unwrap_or_default();
        events.push(Note::new(
            EventType::Warning,
            reason::event::METRICS_FAILED,
            reason::action::OBSERVE,
            note,
        ));
    }
    events.extend(forecast_event(previous, status));
    if from != to {
        let out = decision.action == Verdict::ScaleOut;
        let verb = if out { "out" } else { "in" };
        events.push(if applied {
            Note::new(
                EventType::Normal,
                if out {
                    reason::event::SCALED_OUT
                } else {
                    reason::event::SCALED_IN
                },
                reason::action::SCALE,
                format!(
                    "Scaled {verb} {target} from {from} to {to}: {}",
                    decision.reason
                ),
            )
        } else {
            Note::new(
                EventType::Normal,
                reason::event::DRY_RUN,
                reason::action::SCALE,
                format!(
                    "Would scale {verb} {target} from {from} to {to} (not applied): {}",
                    decision.reason
                ),
            )
        });
    }
    events
}

/// An event when the forecast (`spec.forecast`) begins to have a say or stops having one: its
/// state became `Ready`, `Inaccurate` or `Failed` (Warning). `Learning` is where every forecast
/// starts and says nothing new.
fn forecast_event(previous: &ScalingPolicyStatus, status: &ScalingPolicyStatus) -> Option<Note> {
    let now = status.forecast.as_ref()?;
    let before = previous.forecast.as_ref().map(|f| f.state.as_str());
    if before == Some(now.state.as_str()) {
        return None;
    }
    let (type_, why) = match now.state.as_str() {
        forecast_state::READY => (EventType::Normal, reason::event::FORECAST_READY),
        forecast_state::INACCURATE => (EventType::Normal, reason::event::FORECAST_INACCURATE),
        forecast_state::FAILED => (EventType::Warning, reason::event::FORECAST_FAILED),
        _ => return None,
    };
    Some(Note::new(
        type_,
        why,
        reason::action::OBSERVE,
        format!("forecast: {}", now.message),
    ))
}

/// Whether condition `type_` has `reason` now and did not before.
fn became(
    previous: &ScalingPolicyStatus,
    status: &ScalingPolicyStatus,
    type_: &str,
    reason: &str,
) -> bool {
    let had = find_condition(&previous.conditions, type_).is_some_and(|c| c.reason == reason);
    let has = find_condition(&status.conditions, type_).is_some_and(|c| c.reason == reason);
    has && !had
}

#[cfg(test)]
mod tests {
    use futures::future::BoxFuture;

    use super::*;
    use crate::api::FailureKind;
    use crate::controller::fixtures::policy_object;
    use crate::controller::observe::Observe;
    use crate::controller::resolved::resolve;
    use crate::metrics::QueryPlan;

    /// An operator configuration that allows every policy; it never reads metrics here.
    struct Configured;

    impl Observe for Configured {
        fn check(&self, _namespace: &str, _address: Option<&str>) -> Vec<FieldError> {
            Vec::new()
        }
        fn observe<'a>(
            &'a self,
            _plan: &'a QueryPlan,
            _at: Option<jiff::Timestamp>,
            _pods: Result<&'a crate::pods::TargetPods, &'a str>,
        ) -> BoxFuture<'a, Vec<Observation>> {
            Box::pin(async { Vec::new() })
        }
    }

    const SPEC: &str = r#"
targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
minReplicas: 1
maxReplicas: 10
interval: 30s
metrics:
  - name: cpu
    cpu: {}
    target: 50
behavior:
  scaleOut: {cooldown: 0s, stabilizationWindow: 0s}
  scaleIn: {cooldown: 0s, stabilizationWindow: 0s}
"#;

    fn object_with(spec: &str, extra: &str) -> ScalingPolicy {
        policy_object(&format!("{spec}{extra}"))
    }

    fn object() -> ScalingPolicy {
        object_with(SPEC, "")
    }

    fn resolved(object: &ScalingPolicy) -> Resolved {
        resolve(object, &Configured, SignedDuration::ZERO).unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000i64.saturating_add(secs)).unwrap()
    }

    fn cpu(value: f64) -> Vec<Observation> {
        vec![Observation::value("cpu", value)]
    }

    struct Run<'a> {
        object: &'a ScalingPolicy,
        previous: ScalingPolicyStatus,
        current: i32,
        /// The target's resourceVersion.
        version: &'static str,
        owners: Vec<String>,
        /// Why the evaluation waited for its namespace's turn.
        throttled: Option<&'static str>,
        /// The forecast's status before the decision.
        forecast: Option<crate::api::ForecastStatus>,
    }

    impl<'a> Run<'a> {
        fn new(object: &'a ScalingPolicy, current: i32) -> Self {
            Self {
                object,
                previous: ScalingPolicyStatus::default(),
                current,
                version: "7",
                owners: Vec::new(),
                throttled: None,
                forecast: None,
            }
        }

        fn evaluate(&self, observations: &[Observation], now: Timestamp) -> Plan {
            let resolved = resolved(self.object);
            evaluation(&Evaluation {
                object: self.object,
                resolved: &resolved,
                previous: &self.previous,
                target: &TargetRead::deployment(
                    self.current,
                    Some("target-uid"),
                    Some(self.version),
                ),
                owners: &self.owners,
                observations,
                target_state: &TargetState::default(),
                capacity: None,
                forecast: self.forecast.as_ref(),
                now,
                queued: Duration::from_millis(1234),
                throttled: self.throttled,
            })
        }
    }

    fn reasons(plan: &Plan) -> Vec<&'static str> {
        plan.events.iter().map(|e| e.reason).collect()
    }

    fn condition_of<'a>(status: &'a ScalingPolicyStatus, type_: &str) -> (&'a str, &'a str) {
        let c = find_condition(&status.conditions, type_).unwrap();
        (c.status.as_str(), c.reason.as_str())
    }

    #[test]
    fn an_invalid_spec_is_reported_once_and_never_touches_the_target() {
        let object = object();
        let problems = vec![FieldError {
            path: "spec.maxReplicas".into(),
            message: "must be at least 1, got 0".into(),
        }];
        let plan = invalid(&object, &ScalingPolicyStatus::default(), &problems, at(0));
        assert_eq!(plan.replicas(), None);
        assert_eq!(plan.next, Next::AwaitChange);
        assert_eq!(plan.outcome, Outcome::Invalid);
        let status = plan.status.clone().unwrap();
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(
            condition_of(&status, condition::READY),
            ("False", "InvalidSpec")
        );
        assert_eq!(
            condition_of(&status, condition::ABLE_TO_SCALE),
            ("False", "InvalidSpec")
        );
        assert_eq!(
            plan.events,
            vec![Note {
                type_: EventType::Warning,
                reason: "InvalidSpec",
                action: "Validate",
                note: "spec.maxReplicas: must be at least 1, got 0".into(),
            }]
        );

        // The next reconcile of the same generation finds it reported: no write, no event.
        let again = invalid(&object, &status, &problems, at(60));
        assert_eq!(again.status, None);
        assert!(again.events.is_empty());
    }

    #[test]
    fn a_missing_target_is_looked_for_again_every_interval() {
        let object = object();
        let policy = resolved(&object).policy;
        let plan = missing_target(&object, &policy, &ScalingPolicyStatus::default(), at(0));
        assert_eq!(plan.replicas(), None);
        assert_eq!(plan.next, Next::After(Duration::from_secs(30)));
        let status = plan.status.unwrap();
        assert_eq!(
            condition_of(&status, condition::READY),
            ("False", "TargetNotFound")
        );
        assert_eq!(
            plan.events[0].note,
            "Deployment shop/web does not exist; retrying every interval"
        );
    }

    #[test]
    fn high_load_scales_out_and_the_status_records_it() {
        let object = object();
        let plan = Run::new(&object, 2).evaluate(&cpu(100.0), at(0));
        assert_eq!(plan.replicas(), Some(4));
        let status = plan.status.clone().unwrap();
        let last = status.last_decision.clone().unwrap();
        assert_eq!((last.from, last.to, last.dry_run), (2, 4, false));
        assert_eq!(status.observed_generation, Some(1));
        assert_eq!(reasons(&plan), vec!["ScaledOut"]);
        assert!(
            plan.events[0]
                .note
                .starts_with("Scaled out shop/web from 2 to 4: "),
            "{}",
            plan.events[0].note
        );
        let Outcome::Evaluated { decision, applied } = &plan.outcome else {
            panic!("not evaluated: {:?}", plan.outcome);
        };
        assert!(*applied);
        assert_eq!(decision.desired_replicas, 4);
    }

    fn with_scale_out_cooldown() -> ScalingPolicy {
        object_with(
            &SPEC.replace("scaleOut: {cooldown: 0s", "scaleOut: {cooldown: 60s"),
            "",
        )
    }

    #[test]
    fn the_forecast_reports_when_it_begins_and_stops_having_a_say_and_not_at_every_evaluation() {
        let object = object();
        let mut run = Run::new(&object, 2);
        let state = |state: &str, message: &str| crate::api::ForecastStatus {
            mode: "Active".into(),
            state: state.into(),
            max_error: 0.3,
            message: message.into(),
            ..Default::default()
        };
        let mut seen = Vec::new();
        for (i, (s, message)) in [
            ("Learning", "learning: 1h of the 2d of history it needs"),
            (
                "Ready",
                "floor 3: 250 forecast 1m ahead at 100 per replica (error 4%)",
            ),
            (
                "Ready",
                "floor 3: 250 forecast 1m ahead at 100 per replica (error 4%)",
            ),
            ("Inaccurate", "error 45% > 30%: no say"),
            ("Failed", "the history could not be read: HTTP 503"),
            ("Failed", "the history could not be read: HTTP 503"),
        ]
        .into_iter()
        .enumerate()
        {
            run.forecast = Some(state(s, message));
            let plan = run.evaluate(&cpu(50.0), at(i64::try_from(i).unwrap() * 15));
            seen.extend(
                plan.events
                    .iter()
                    .map(|e| (e.reason, e.type_, e.note.clone())),
            );
            run.previous = plan.status.unwrap();
        }
        assert_eq!(
            seen,
            vec![
                (
                    "ForecastReady",
                    EventType::Normal,
                    "forecast: floor 3: 250 forecast 1m ahead at 100 per replica (error 4%)"
                        .to_owned()
                ),
                (
                    "ForecastInaccurate",
                    EventType::Normal,
                    "forecast: error 45% > 30%: no say".to_owned()
                ),
                (
                    "ForecastFailed",
                    EventType::Warning,
                    "forecast: the history could not be read: HTTP 503".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn a_scale_is_recorded_as_an_intent_on_the_status_it_was_decided_from() {
        let object = object();
        let mut run = Run::new(&object, 2);
        run.previous = run.evaluate(&cpu(50.0), at(0)).status.unwrap();
        let plan = run.evaluate(&cpu(100.0), at(30));
        let scale = plan.scale.clone().unwrap();
        // The history is the one decided from: nothing counts before the target is patched.
        let mut without = scale.intent.clone();
        let intent = without.pending_scale.take().unwrap();
        assert_eq!(without, run.previous);
        assert_eq!((intent.decision.from, intent.decision.to), (2, 4));
        assert_eq!(intent.decision.time, stamp(at(30)));
        assert_eq!(intent.target_uid, "target-uid");
        assert_eq!(intent.target_resource_version.as_deref(), Some("7"));
        // The status written after the scale holds no intent.
        assert_eq!(plan.status.unwrap().pending_scale, None);
    }

    #[test]
    fn a_scale_made_whose_record_was_lost_counts_and_holds_the_cooldown() {
        let object = with_scale_out_cooldown();
        let mut run = Run::new(&object, 2);
        let first = run.evaluate(&cpu(100.0), at(0));
        // The intent was written and the scale made; the operator died before the status.
        run.previous = first.scale.unwrap().intent;
        run.current = 4;
        run.version = "8";
        let after = run.evaluate(&cpu(100.0), at(30));
        assert_eq!(after.replicas(), None, "no second step inside the cooldown");
        assert_eq!(reasons(&after), vec!["IntentRecovered"]);
        assert!(
            after.events[0].note.contains("was made"),
            "{}",
            after.events[0].note
        );
        assert_eq!(after.events[0].type_, EventType::Normal);
        assert_eq!(
            after.recovered.as_ref().unwrap().recovery,
            Recovery::Applied
        );
        let status = after.status.unwrap();
        assert_eq!(status.pending_scale, None);
        assert_eq!(status.last_scale_time, Some(stamp(at(0))));
        assert!(
            status
                .last_decision
                .unwrap()
                .limits
                .iter()
                .any(|l| l.kind == crate::api::LimitKind::Cooldown)
        );
        // Its own scale is not someone else's.
        assert_ne!(
            find_condition(&status.conditions, condition::EXTERNAL_SCALE)
                .map(|c| c.status.as_str()),
            Some("True")
        );
    }

    #[test]
    fn a_scale_never_made_is_decided_again_and_never_counted() {
        let object = with_scale_out_cooldown();
        let mut run = Run::new(&object, 2);
        let first = run.evaluate(&cpu(100.0), at(0));
        run.previous = first.scale.unwrap().intent;
        // The target is as it was decided from.
        let after = run.evaluate(&cpu(100.0), at(30));
        assert_eq!(
            after.replicas(),
            Some(4),
            "no cooldown from a scale never made"
        );
        assert_eq!(reasons(&after), vec!["IntentRecovered", "ScaledOut"]);
        assert!(after.events[0].note.contains("was not made"));
        let intent = after.scale.unwrap().intent;
        assert!(intent.scale_events.is_empty());
        assert_eq!(intent.last_scale_time, None);
    }

    #[test]
    fn a_scale_changed_since_by_someone_else_counts_and_is_reported_as_external() {
        let object = with_scale_out_cooldown();
        let mut run = Run::new(&object, 2);
        let first = run.evaluate(&cpu(100.0), at(0));
        run.previous = first.scale.unwrap().intent;
        run.current = 7;
        run.version = "12";
        let after = run.evaluate(&cpu(100.0), at(30));
        assert_eq!(reasons(&after)[..2], ["IntentRecovered", "ExternalScale"]);
        assert_eq!(after.events[0].type_, EventType::Warning);
        let status = after.status.unwrap();
        assert_eq!(
            condition_of(&status, condition::EXTERNAL_SCALE),
            ("True", "ExternalScale")
        );
        assert_eq!(status.last_scale_time, Some(stamp(at(0))), "counted");
    }

    #[test]
    fn an_unconfirmed_scale_is_judged_at_once_whatever_the_interval() {
        let object = object();
        let policy = resolved(&object).policy;
        let first = Run::new(&object, 2).evaluate(&cpu(100.0), at(0));
        let intent = first.scale.unwrap().intent;
        assert_eq!(
            not_due(&object, &policy, &intent, 4, at(3), Duration::ZERO),
            None
        );
    }

    #[test]
    fn a_status_holding_an_intent_is_newer_than_the_one_it_was_written_on() {
        let object = object();
        let first = Run::new(&object, 2).evaluate(&cpu(100.0), at(0));
        let scale = first.scale.unwrap();
        let mut before = scale.intent.clone();
        before.pending_scale = None;
        assert!(newer(&scale.intent, &before));
        assert!(!newer(&before, &scale.intent));
        // And the status written after the scale is newer than both.
        let after = first.status.unwrap();
        assert!(newer(&after, &scale.intent));
    }

    #[test]
    fn the_next_evaluation_is_on_the_tick_nearest_one_interval_later() {
        let object = object();
        let wait_after = |s| {
            let plan = Run::new(&object, 2).evaluate(&cpu(50.0), at(s));
            match plan.next {
                Next::After(wait) => wait,
                other => panic!("{other:?}"),
            }
        };
        // On a tick: one interval (30 s) later.
        assert_eq!(wait_after(0), Duration::from_secs(30));
        // Off the ticks (a policy just created): at the next tick but one, or the next one;
        // from then on every policy of the interval is evaluated on the same ticks.
        assert_eq!(wait_after(7), Duration::from_secs(23));
        assert_eq!(wait_after(20), Duration::from_secs(40));
    }

    #[test]
    fn an_evaluation_that_changes_nothing_writes_nothing() {
        let object = object();
        let mut run = Run::new(&object, 2);
        let first = run.evaluate(&cpu(50.0), at(0));
        assert_eq!(first.replicas(), None);
        run.previous = first.status.unwrap();
        let again = run.evaluate(&cpu(50.0), at(0));
        assert_eq!(again.status, None);
        assert_eq!(again.replicas(), None);
        assert!(again.events.is_empty());
    }

    #[test]
    fn beside_another_owner_the_decision_is_recorded_and_not_applied() {
        let object = object();
        let mut run = Run::new(&object, 2);
        run.owners = vec!["HorizontalPodAutoscaler shop/web".into()];
        let plan = run.evaluate(&cpu(100.0), at(0));
        assert_eq!(
            plan.replicas(),
            None,
            "never scales a target someone else scales"
        );
        let status = plan.status.clone().unwrap();
        assert_eq!(
            condition_of(&status, condition::ABLE_TO_SCALE),
            ("False", "AmbiguousTarget")
        );
        assert!(status.last_decision.as_ref().unwrap().dry_run);
        assert_eq!(reasons(&plan), vec!["AmbiguousTarget", "DryRun"]);
        assert!(
            plan.events[1]
                .note
                .starts_with("Would scale out shop/web from 2 to 4 (not applied): ")
        );

        // The warning is said once, when the other owner appears.
        run.previous = status;
        let again = run.evaluate(&cpu(100.0), at(30));
        assert_eq!(reasons(&again), vec!["DryRun"]);
    }

    #[test]
    fn a_dry_run_policy_beside_another_owner_shadows_it_without_warning() {
        let object = object_with(SPEC, "dryRun: true\n");
        let mut run = Run::new(&object, 2);
        run.owners = vec!["HorizontalPodAutoscaler shop/web".into()];
        let plan = run.evaluate(&cpu(100.0), at(0));
        assert_eq!(plan.replicas(), None);
        let status = plan.status.clone().unwrap();
        assert_eq!(
            condition_of(&status, condition::ABLE_TO_SCALE),
            ("True", "DryRunBesideOtherOwner")
        );
        assert_eq!(reasons(&plan), vec!["DryRun"]);
    }

    /// The status after an evaluation that left the target at `replicas`.
    fn left_at(object: &ScalingPolicy, replicas: i32, now: Timestamp) -> ScalingPolicyStatus {
        Run::new(object, replicas)
            .evaluate(&cpu(50.0), now)
            .status
            .unwrap()
    }

    #[test]
    fn a_scale_by_someone_else_is_reported_and_decided_from() {
        let object = object();
        let mut run = Run::new(&object, 5);
        run.previous = left_at(&object, 3, at(0));
        let plan = run.evaluate(&cpu(50.0), at(30));
        let status = plan.status.clone().unwrap();
        assert_eq!(
            condition_of(&status, condition::EXTERNAL_SCALE),
            ("True", "ExternalScale")
        );
        assert_eq!(plan.events[0].reason, "ExternalScale");
        assert_eq!(
            plan.events[0].note,
            "shop/web was scaled from 3 to 5 by someone other than scalewise (kubectl scale, a GitOps sync?); deciding from 5"
        );

        // Once scalewise's own replicas are back, the condition says so.
        run.previous = status;
        let plan = run.evaluate(&cpu(50.0), at(60));
        let status = plan.status.unwrap();
        assert_eq!(
            condition_of(&status, condition::EXTERNAL_SCALE),
            ("False", "NoExternalScale")
        );
        assert!(plan.events.is_empty());
    }

    #[test]
    fn a_paused_policy_does_not_warn_about_changes_by_hand() {
        let object = object_with(SPEC, "paused: true\n");
        let mut run = Run::new(&object, 5);
        run.previous = left_at(&object, 3, at(0));
        let plan = run.evaluate(&cpu(100.0), at(30));
        assert_eq!(plan.replicas(), None);
        assert!(plan.events.is_empty(), "{:?}", plan.events);
    }

    #[test]
    fn metric_failures_are_reported_when_they_begin() {
        let object = object();
        let failed = vec![Observation::failed(
            "cpu",
            FailureKind::Unavailable,
            "cannot connect to http://127.0.0.1:9/",
        )];
        let mut run = Run::new(&object, 2);
        let plan = run.evaluate(&failed, at(0));
        assert_eq!(plan.replicas(), None);
        assert_eq!(reasons(&plan), vec!["MetricsFailed"]);
        assert_eq!(
            plan.events[0].note,
            "cpu unavailable: cannot connect to http://127.0.0.1:9/"
        );
        run.previous = plan.status.unwrap();
        let again = run.evaluate(&failed, at(30));
        assert!(again.events.is_empty());
    }

    #[test]
    fn a_trigger_between_evaluations_waits_while_the_target_is_as_left() {
        let object = object();
        let policy = resolved(&object).policy;
        let previous = left_at(&object, 2, at(0));
        let wait = not_due(&object, &policy, &previous, 2, at(10), Duration::ZERO).unwrap();
        assert!(
            wait >= Duration::from_secs(20) && wait <= Duration::from_millis(21_500),
            "{wait:?}"
        );
        // Someone changed the replicas: evaluate now.
        assert_eq!(
            not_due(&object, &policy, &previous, 3, at(10), Duration::ZERO),
            None
        );
        // The interval is over.
        assert_eq!(
            not_due(&object, &policy, &previous, 2, at(30), Duration::ZERO),
            None
        );
        // A new generation is evaluated at once.
        let mut changed = object.clone();
        changed.metadata.generation = Some(2);
        assert_eq!(
            not_due(&changed, &policy, &previous, 2, at(10), Duration::ZERO),
            None
        );
        // So is a policy never evaluated.
        let never = ScalingPolicyStatus::default();
        assert_eq!(
            not_due(&object, &policy, &never, 2, at(10), Duration::ZERO),
            None
        );
    }

    #[test]
    fn event_notes_are_cut_to_the_api_limit_at_a_character_boundary() {
        let note = Note::new(EventType::Normal, "X", "Y", "é".repeat(600));
        assert!(note.note.len() <= MAX_NOTE_BYTES + '…'.len_utf8());
        assert!(note.note.ends_with('…'));
        assert_eq!(
            Note::new(EventType::Normal, "X", "Y", "short".into()).note,
            "short"
        );
    }

    #[test]
    fn an_object_that_cannot_be_read_is_reported_and_keeps_what_its_status_remembers() {
        let previous = left_at(&object(), 4, at(0));
        let bad = Undecodable {
            metadata: object().metadata,
            error: "spec.maxReplicas: must be at most 2147483647 (an int32), got 2147483648".into(),
            status: Some(previous.clone()),
        };
        let plan = undecodable(&bad, at(30));
        assert_eq!(plan.replicas(), None);
        assert_eq!(plan.next, Next::AwaitChange);
        let status = plan.status.clone().unwrap();
        assert_eq!(
            condition_of(&status, condition::READY),
            ("False", "InvalidObject")
        );
        assert_eq!(status.last_scale_time, previous.last_scale_time);
        assert_eq!(status.last_decision, previous.last_decision);
        assert_eq!(reasons(&plan), vec!["InvalidObject"]);
        assert!(
            plan.events[0].note.starts_with(
                "spec.maxReplicas: must be at most 2147483647 (an int32), got 2147483648"
            ),
            "{}",
            plan.events[0].note
        );
    }

    #[test]
    fn a_status_that_cannot_be_read_is_replaced_by_a_fresh_one() {
        let bad = Undecodable {
            metadata: object().metadata,
            error: "status.consecutiveFailures: invalid type".into(),
            status: None,
        };
        let status = undecodable(&bad, at(0)).status.unwrap();
        assert_eq!(status.last_scale_time, None);
        assert_eq!(status.recommendations, Vec::new());
        assert_eq!(
            condition_of(&status, condition::ABLE_TO_SCALE),
            ("False", "InvalidObject")
        );
    }

    #[test]
    fn a_status_with_impossible_values_is_replaced_and_never_acted_on() {
        let object = object_with(
            &SPEC.replace(
                "scaleIn: {cooldown: 0s, stabilizationWindow: 0s}",
                "scaleIn: {cooldown: 0s, stabilizationWindow: 5m}",
            ),
            "",
        );
        let mut run = Run::new(&object, 4);
        let far = Timestamp::from_second(4_000_000_000).unwrap();
        run.previous = left_at(&object, 4, at(0));
        // A cooldown that would never end, and a history scalewise never writes.
        run.previous.last_scale_time = Some(Time(far));
        run.previous.recommendations = (0..5000)
            .map(|i| crate::api::Recommendation {
                time: stamp(at(-i)),
                replicas: 1,
            })
            .collect();
        let policy = resolved(&object).policy;
        assert_eq!(
            not_due(&object, &policy, &run.previous, 4, at(10), Duration::ZERO),
            None,
            "evaluated at once, not put off by its own bad times"
        );
        // Low load: the reset status has no evidence for a scale-in yet.
        let plan = run.evaluate(&cpu(10.0), at(30));
        assert_eq!(plan.replicas(), None);
        let status = plan.status.clone().unwrap();
        assert!(status.recommendations.len() <= 1);
        assert_ne!(status.last_scale_time, Some(Time(far)));
        let (state, why) = condition_of(&status, condition::STATUS_TRUSTED);
        assert_eq!((state, why), ("False", "StatusReset"));
        assert!(reasons(&plan).contains(&"StatusReset"));

        // The next evaluation trusts what it wrote itself.
        run.previous = status;
        let again = run.evaluate(&cpu(10.0), at(60));
        let status = again.status.clone().unwrap();
        assert_eq!(
            condition_of(&status, condition::STATUS_TRUSTED),
            ("True", "StatusValid")
        );
        assert!(!reasons(&again).contains(&"StatusReset"));
    }

    #[test]
    fn a_clock_step_back_within_a_day_is_not_an_impossible_status() {
        let mut status = left_at(&object(), 4, at(3600));
        assert_eq!(implausible(&status, at(0)), None);
        status.consecutive_failures = -1;
        assert!(implausible(&status, at(0)).unwrap().contains("negative"));
    }

    #[test]
    fn a_spec_that_keeps_changing_is_evaluated_at_most_once_per_min_interval() {
        let object = object();
        let policy = resolved(&object).policy;
        let previous = left_at(&object, 2, at(0));
        let mut changed = object.clone();
        changed.metadata.generation = Some(7);
        let floor = Duration::from_secs(2);
        let wait = not_due(&changed, &policy, &previous, 2, at(1), floor).unwrap();
        assert!(wait <= Duration::from_secs(1), "{wait:?}");
        // A target scaled by someone else waits out the floor as well.
        assert!(not_due(&object, &policy, &previous, 9, at(1), floor).is_some());
        // Once the floor has passed, the change is evaluated at once.
        assert_eq!(not_due(&changed, &policy, &previous, 2, at(2), floor), None);
    }

    #[test]
    fn an_interval_below_the_operator_floor_says_so_and_how_long_the_evaluation_queued() {
        let object = object_with(&SPEC.replace("interval: 30s", "interval: 1s"), "");
        let resolved = resolve(&object, &Configured, SignedDuration::from_secs(2)).unwrap();
        assert_eq!(resolved.policy.interval, SignedDuration::from_secs(2));
        assert_eq!(resolved.raised_from, Some(SignedDuration::from_secs(1)));
        let plan = evaluation(&Evaluation {
            object: &object,
            resolved: &resolved,
            previous: &ScalingPolicyStatus::default(),
            target: &TargetRead::deployment(2, None, None),
            owners: &[],
            observations: &cpu(50.0),
            target_state: &TargetState::default(),
            capacity: None,
            forecast: None,
            now: at(0),
            queued: Duration::from_millis(1234),
            throttled: None,
        });
        let status = plan.status.unwrap();
        let c = find_condition(&status.conditions, condition::INTERVAL_LIMITED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "BelowMinInterval")
        );
        assert_eq!(
            c.message,
            "spec.interval 1s is below the operator's minimum (--min-interval 2s): evaluated every 2s"
        );
        assert_eq!(status.queued_seconds, Some(1.234));
        let Next::After(wait) = plan.next else {
            panic!()
        };
        assert!(wait >= Duration::from_secs(2));
    }

    #[test]
    fn a_dry_run_policy_shadowing_an_owner_raises_no_external_scale_for_its_changes() {
        let object = object_with(SPEC, "dryRun: true\n");
        let mut run = Run::new(&object, 5);
        run.owners = vec!["HorizontalPodAutoscaler shop/web".into()];
        run.previous = Run::new(&object, 3)
            .evaluate(&cpu(50.0), at(0))
            .status
            .unwrap();
        // The HPA moved the target from 3 to 5.
        let plan = run.evaluate(&cpu(50.0), at(30));
        assert!(
            !reasons(&plan).contains(&"ExternalScale"),
            "{:?}",
            plan.events
        );
        let status = plan.status.unwrap();
        assert!(find_condition(&status.conditions, condition::EXTERNAL_SCALE).is_none());
        assert_eq!(
            condition_of(&status, condition::ABLE_TO_SCALE),
            ("True", "DryRunBesideOtherOwner")
        );
    }

    #[test]
    fn times_recorded_ahead_of_this_clock_are_taken_as_now_and_said_so() {
        let object = object();
        let policy = resolved(&object).policy;
        // Another replica, its clock 30 s fast, evaluated and scaled "at" t=30.
        let mut previous = left_at(&object, 2, at(30));
        previous.last_scale_time = Some(stamp(at(30)));
        // It is evaluated at once: not after 30 s + the interval, and not after the floor again
        // and again (each time taking the future time as now, it found it had just evaluated).
        for floor in [Duration::ZERO, Duration::from_secs(2)] {
            assert_eq!(
                not_due(&object, &policy, &previous, 2, at(0), floor),
                None,
                "floor {floor:?}"
            );
        }

        let mut run = Run::new(&object, 2);
        run.previous = previous;
        let plan = run.evaluate(&cpu(50.0), at(0));
        let status = plan.status.unwrap();
        let c = find_condition(&status.conditions, condition::CLOCK_SKEW).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "FutureTimestamps")
        );
        assert!(
            c.message
                .ends_with("was 30s ahead of this replica's clock: treated as now"),
            "{}",
            c.message
        );
        assert!(status.last_evaluation_time.unwrap().0 <= at(0));
    }

    #[test]
    fn an_evaluation_that_waited_for_its_namespaces_turn_says_so_until_one_does_not() {
        let object = object();
        let mut run = Run::new(&object, 2);
        let status = run.evaluate(&cpu(50.0), at(0)).status.unwrap();
        assert!(find_condition(&status.conditions, condition::THROTTLED).is_none());
        run.throttled = Some("namespace shop is over the operator's budget");
        run.previous = status;
        let status = run.evaluate(&cpu(50.0), at(30)).status.unwrap();
        let c = find_condition(&status.conditions, condition::THROTTLED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "NamespaceBudget")
        );
        assert!(c.message.contains("over the operator's budget"));
        run.throttled = None;
        run.previous = status;
        let status = run.evaluate(&cpu(50.0), at(60)).status.unwrap();
        let c = find_condition(&status.conditions, condition::THROTTLED).unwrap();
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "WithinBudget")
        );
    }

    #[test]
    fn a_few_seconds_of_skew_are_tolerated_silently() {
        let object = object();
        let mut run = Run::new(&object, 2);
        run.previous = left_at(&object, 2, at(3));
        let status = run.evaluate(&cpu(50.0), at(0)).status.unwrap();
        assert!(find_condition(&status.conditions, condition::CLOCK_SKEW).is_none());
    }

    #[test]
    fn an_evaluation_never_starts_from_a_status_older_than_its_own_last_write() {
        let object = object();
        let older = left_at(&object, 2, at(0));
        let newer = left_at(&object, 4, at(30));
        // The watch cache still holds the status before this replica's write.
        assert!(super::newer(&newer, &older));
        // The cache caught up (or another leader wrote later): the cache wins.
        assert!(!super::newer(&older, &newer));
        assert!(!super::newer(&older, &older));
    }
}
