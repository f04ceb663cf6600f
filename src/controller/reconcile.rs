//! One reconcile of one ScalingPolicy: validate, read the target, observe, decide, apply, record.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;

use super::events::EventType;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, warn};

use super::context::Context;
use super::error::{Error, is_conflict, is_not_found};
use super::ownership::other_owners;
use crate::api::conditions::{find_condition, set_condition};
use crate::api::reason;
use crate::api::status::condition;
use crate::api::{
    Action as Verdict, FieldError, Policy, ScalingPolicy, ScalingPolicyStatus, validate,
};
use crate::decide::{Decision, decide, next_status};
use crate::manifest::{API_VERSION, KIND};

/// The field manager of every write scalewise makes.
pub const FIELD_MANAGER: &str = "scalewise";

/// Reconciles one policy; see the module documentation for the steps.
pub async fn reconcile(policy: Arc<ScalingPolicy>, ctx: Arc<Context>) -> Result<Action, Error> {
    // The semaphore is never closed; without a permit the reconcile still runs.
    let _slot = ctx.slots.acquire().await.ok();
    let started = std::time::Instant::now();
    ctx.health.progress();
    let result = evaluate(&policy, &ctx).await;
    let category = match &result {
        Ok(_) => "success",
        Err(e) => e.category(),
    };
    ctx.metrics.reconciled(category, started.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&ObjectRef::from_obj(policy.as_ref()));
    }
    result
}

/// A failed reconcile is retried with a per-policy exponential backoff, and reported as a
/// Warning event whose reason is the error's category.
pub fn error_policy(policy: Arc<ScalingPolicy>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(&ObjectRef::from_obj(policy.as_ref()));
    let chain = error.chain();
    warn!(
        namespace = policy.namespace().unwrap_or_default(),
        name = policy.name_any(),
        category = error.category(),
        retry_in_secs = delay.as_secs(),
        "reconcile failed: {chain}"
    );
    if !matches!(error, Error::NotLeader) {
        let reason = error.category().to_owned();
        tokio::spawn(async move {
            publish(
                &ctx,
                &policy,
                EventType::Warning,
                &reason,
                reason::action::RECONCILE,
                format!("{chain}; retrying in {}s", delay.as_secs()),
            )
            .await;
        });
    }
    Action::requeue(delay)
}

async fn evaluate(policy: &ScalingPolicy, ctx: &Context) -> Result<Action, Error> {
    let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
    let name = policy.name_any();
    let now = Timestamp::now();
    let stamp = Time(Timestamp::from_second(now.as_second()).unwrap_or(now));
    let previous = policy.status.clone().unwrap_or_default();
    let generation = policy.metadata.generation;

    // Validate: an invalid spec waits for a change and never touches the target.
    let mut problems = validate(&policy.spec);
    problems.extend(ctx.observer.check(policy));
    let resolved = match Policy::resolve(&policy.spec) {
        Ok(resolved) if problems.is_empty() => resolved,
        _ => {
            report_invalid(policy, ctx, &previous, problems, &stamp).await?;
            ctx.metrics.forget(&namespace, &name);
            return Ok(Action::await_change());
        }
    };
    let interval = resolved.interval.unsigned_abs();

    // Read the target through /scale.
    let deployments: Api<Deployment> = Api::namespaced(ctx.client.clone(), &namespace);
    let target = &policy.spec.target_ref.name;
    let scale = match deployments.get_scale(target).await {
        Ok(scale) => scale,
        Err(e) if is_not_found(&e) => {
            report_missing_target(policy, ctx, &previous, &stamp).await?;
            return Ok(Action::requeue(interval));
        }
        Err(e) => return Err(Error::ScaleRead(e)),
    };
    let current = scale.spec.and_then(|s| s.replicas).unwrap_or(0);
    let expected = expected_replicas(&previous);

    // A trigger between evaluations (the target changed, a new HorizontalPodAutoscaler) only
    // leads to an early evaluation when the target's replicas moved under us.
    if generation.is_some()
        && generation == previous.observed_generation
        && expected == Some(current)
        && ready_condition_is(&previous, reason::condition::EVALUATED)
        && let Some(due) = previous
            .last_evaluation_time
            .as_ref()
            .map(|t| t.0 + resolved.interval)
        && now < due
    {
        let wait = now.duration_until(due).unsigned_abs();
        return Ok(Action::requeue(wait + jitter(policy, now, interval)));
    }

    // Another owner may only be missed while the caches are still listing: wait for them.
    super::until_ready(&ctx.policies).await;
    super::until_ready(&ctx.hpas).await;
    let owners = other_owners(policy, &ctx.policies, &ctx.hpas);
    // While paused, changing the replicas by hand is what pausing is for: no warning.
    let external = expected.filter(|e| *e != current && !resolved.paused);

    let observations = ctx.observer.observe(policy, &resolved).await;
    // Beside another owner the decision is made as a dry run: recorded, never applied.
    let mut effective = resolved.clone();
    effective.dry_run |= !owners.is_empty();
    let decision = decide(&effective, &previous, &observations, current, now);

    let applied = decision.changes_target();
    if applied {
        ensure_leader(ctx)?;
        scale_to(&deployments, target, decision.desired_replicas).await?;
    }

    let mut status = next_status(&previous, &decision, generation);
    annotate(
        &mut status,
        &resolved,
        &owners,
        external,
        target,
        &generation,
        &stamp,
    );
    if status != previous {
        ensure_leader(ctx)?;
        write_status(&ctx.client, &namespace, &name, &status).await?;
    }

    let outcome = Outcome {
        previous: &previous,
        status: &status,
        decision: &decision,
        resolved: &resolved,
        owners: &owners,
        external,
        applied,
    };
    report(policy, ctx, &outcome).await;
    ctx.metrics
        .decided(&namespace, &name, &resolved, &decision, applied);
    info!(
        namespace,
        name,
        action = decision.action.as_str(),
        from = current,
        to = decision.desired_replicas,
        applied,
        "{}",
        decision.message
    );

    let elapsed = Timestamp::now().duration_since(now).unsigned_abs();
    Ok(Action::requeue(
        interval.saturating_sub(elapsed) + jitter(policy, now, interval),
    ))
}

/// The replicas scalewise left the target at after its last evaluation.
fn expected_replicas(status: &ScalingPolicyStatus) -> Option<i32> {
    let last = status.last_decision.as_ref()?;
    Some(if last.dry_run { last.from } else { last.to })
}

fn ready_condition_is(status: &ScalingPolicyStatus, reason: &str) -> bool {
    find_condition(&status.conditions, condition::READY)
        .is_some_and(|c| c.status == "True" && c.reason == reason)
}

/// Up to 5% of the interval (at most 2 s), different for each policy and evaluation, so that
/// policies created together do not query Prometheus in lockstep.
fn jitter(policy: &ScalingPolicy, now: Timestamp, interval: Duration) -> Duration {
    let span = (interval / 20).min(Duration::from_secs(2));
    let millis = u64::try_from(span.as_millis()).unwrap_or(u64::MAX);
    if millis == 0 {
        return Duration::ZERO;
    }
    let mut h = std::collections::hash_map::DefaultHasher::new();
    policy.uid().hash(&mut h);
    policy.name_any().hash(&mut h);
    now.as_second().hash(&mut h);
    Duration::from_millis(h.finish() % millis)
}

fn ensure_leader(ctx: &Context) -> Result<(), Error> {
    if ctx.leader_election && !ctx.health.is_leader() {
        Err(Error::NotLeader)
    } else {
        Ok(())
    }
}

/// Sets the target's replicas through /scale, retrying conflicts.
async fn scale_to(deployments: &Api<Deployment>, target: &str, replicas: i32) -> Result<(), Error> {
    let patch = json!({ "spec": { "replicas": replicas } });
    let params = PatchParams::default();
    let mut attempt = 0;
    loop {
        match deployments
            .patch_scale(target, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < 3 => attempt += 1,
            Err(e) => return Err(Error::ScaleWrite(e)),
        }
    }
}

/// Writes the whole status with server-side apply (fields scalewise no longer sets are removed).
pub async fn write_status(
    client: &kube::Client,
    namespace: &str,
    name: &str,
    status: &ScalingPolicyStatus,
) -> Result<(), Error> {
    let api: Api<ScalingPolicy> = Api::namespaced(client.clone(), namespace);
    let body = json!({ "apiVersion": API_VERSION, "kind": KIND, "status": serde_json::to_value(status).map_err(Error::Encode)? });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut attempt = 0;
    loop {
        match api.patch_status(name, &params, &Patch::Apply(&body)).await {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < 3 => attempt += 1,
            Err(e) => return Err(Error::StatusWrite(e)),
        }
    }
}

/// Adds what only the controller knows to the engine's status: other owners, external scaling.
fn annotate(
    status: &mut ScalingPolicyStatus,
    resolved: &Policy,
    owners: &[String],
    external: Option<i32>,
    target: &str,
    generation: &Option<i64>,
    now: &Time,
) {
    let conditions = &mut status.conditions;
    if !owners.is_empty() {
        let list = owners.join(", ");
        if resolved.dry_run {
            set_condition(
                conditions,
                condition::ABLE_TO_SCALE,
                true,
                reason::condition::DRY_RUN_BESIDE_OTHER_OWNER,
                format!(
                    "Deployment {target} is also scaled by {list}; this dry-run policy records decisions and never applies them"
                ),
                *generation,
                now,
            );
        } else {
            set_condition(
                conditions,
                condition::ABLE_TO_SCALE,
                false,
                reason::condition::AMBIGUOUS_TARGET,
                format!(
                    "Deployment {target} is also scaled by {list}; scalewise does not scale it until only one owner remains (set spec.dryRun to shadow the other owner)"
                ),
                *generation,
                now,
            );
        }
    }
    let current = status.current_replicas.unwrap_or_default();
    match external {
        Some(expected) => set_condition(
            conditions,
            condition::EXTERNAL_SCALE,
            true,
            reason::condition::EXTERNAL_SCALE,
            format!(
                "Deployment {target} was scaled from {expected} to {current} by someone other than scalewise; deciding from {current}"
            ),
            *generation,
            now,
        ),
        None if conditions
            .iter()
            .any(|c| c.type_ == condition::EXTERNAL_SCALE) =>
        {
            set_condition(
                conditions,
                condition::EXTERNAL_SCALE,
                false,
                reason::condition::NO_EXTERNAL_SCALE,
                format!("Deployment {target} has the replicas scalewise left it at"),
                *generation,
                now,
            )
        }
        None => {}
    }
}

/// Status and event for an invalid spec: the target is never touched.
async fn report_invalid(
    policy: &ScalingPolicy,
    ctx: &Context,
    previous: &ScalingPolicyStatus,
    problems: Vec<FieldError>,
    now: &Time,
) -> Result<(), Error> {
    let message = problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let why = NotEvaluated {
        reason: reason::condition::INVALID_SPEC,
        able_message: "the target is not touched while the spec is invalid",
        message: &message,
        action: reason::action::VALIDATE,
    };
    report_not_evaluated(policy, ctx, previous, &why, now).await
}

/// Status and event for a target that does not exist.
async fn report_missing_target(
    policy: &ScalingPolicy,
    ctx: &Context,
    previous: &ScalingPolicyStatus,
    now: &Time,
) -> Result<(), Error> {
    let namespace = policy.namespace().unwrap_or_default();
    let target = &policy.spec.target_ref.name;
    let message =
        format!("Deployment {namespace}/{target} does not exist; retrying every interval");
    let why = NotEvaluated {
        reason: reason::condition::TARGET_NOT_FOUND,
        message: &message,
        able_message: &message,
        action: reason::action::READ_TARGET,
    };
    report_not_evaluated(policy, ctx, previous, &why, now).await
}

/// Why a policy could not be evaluated.
struct NotEvaluated<'a> {
    /// Condition reason and event reason.
    reason: &'a str,
    /// The `Ready` condition's message and the event's note.
    message: &'a str,
    /// The `AbleToScale` condition's message.
    able_message: &'a str,
    /// The event's action.
    action: &'a str,
}

/// A policy that could not be evaluated: `Ready` and `AbleToScale` turn False with the reason,
/// and a Warning event says why, once, when the status changes.
async fn report_not_evaluated(
    policy: &ScalingPolicy,
    ctx: &Context,
    previous: &ScalingPolicyStatus,
    why: &NotEvaluated<'_>,
    now: &Time,
) -> Result<(), Error> {
    let NotEvaluated {
        reason,
        message,
        able_message,
        action,
    } = *why;
    let generation = policy.metadata.generation;
    let mut status = previous.clone();
    status.observed_generation = generation;
    set_condition(
        &mut status.conditions,
        condition::READY,
        false,
        reason,
        message,
        generation,
        now,
    );
    set_condition(
        &mut status.conditions,
        condition::ABLE_TO_SCALE,
        false,
        reason,
        able_message,
        generation,
        now,
    );
    if status != *previous {
        ensure_leader(ctx)?;
        let namespace = policy.namespace().unwrap_or_default();
        write_status(&ctx.client, &namespace, &policy.name_any(), &status).await?;
        publish(
            ctx,
            policy,
            EventType::Warning,
            reason,
            action,
            message.to_owned(),
        )
        .await;
    }
    Ok(())
}

/// What one evaluation found and did.
struct Outcome<'a> {
    previous: &'a ScalingPolicyStatus,
    status: &'a ScalingPolicyStatus,
    decision: &'a Decision,
    resolved: &'a Policy,
    owners: &'a [String],
    /// The replicas scalewise had left the target at, when someone changed them since.
    external: Option<i32>,
    applied: bool,
}

/// Events for what users should know: scale actions, dry-run decisions, external scaling, other
/// owners and metric failures (the last two when they begin).
async fn report(policy: &ScalingPolicy, ctx: &Context, outcome: &Outcome<'_>) {
    let Outcome {
        previous,
        status,
        decision,
        resolved,
        owners,
        external,
        applied,
    } = *outcome;
    let namespace = policy.namespace().unwrap_or_default();
    let target = format!("{namespace}/{}", policy.spec.target_ref.name);
    let (from, to) = (decision.current_replicas, decision.desired_replicas);
    if let Some(expected) = external {
        let note = format!(
            "{target} was scaled from {expected} to {from} by someone other than scalewise (kubectl scale, a GitOps sync?); deciding from {from}"
        );
        publish(
            ctx,
            policy,
            EventType::Warning,
            reason::event::EXTERNAL_SCALE,
            reason::action::READ_TARGET,
            note,
        )
        .await;
    }
    if !owners.is_empty()
        && !resolved.dry_run
        && became(
            previous,
            status,
            condition::ABLE_TO_SCALE,
            reason::condition::AMBIGUOUS_TARGET,
        )
    {
        let note = format!(
            "{target} is also scaled by {}; not scaling it",
            owners.join(", ")
        );
        publish(
            ctx,
            policy,
            EventType::Warning,
            reason::event::AMBIGUOUS_TARGET,
            reason::action::SCALE,
            note,
        )
        .await;
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
        publish(
            ctx,
            policy,
            EventType::Warning,
            reason::event::METRICS_FAILED,
            reason::action::OBSERVE,
            note,
        )
        .await;
    }
    if from != to {
        let verb = if decision.action == Verdict::ScaleOut {
            "out"
        } else {
            "in"
        };
        if applied {
            let reason = if decision.action == Verdict::ScaleOut {
                reason::event::SCALED_OUT
            } else {
                reason::event::SCALED_IN
            };
            let note = format!(
                "Scaled {verb} {target} from {from} to {to}: {}",
                decision.reason
            );
            publish(
                ctx,
                policy,
                EventType::Normal,
                reason,
                reason::action::SCALE,
                note,
            )
            .await;
        } else {
            let note = format!(
                "Would scale {verb} {target} from {from} to {to} (not applied): {}",
                decision.reason
            );
            publish(
                ctx,
                policy,
                EventType::Normal,
                reason::event::DRY_RUN,
                reason::action::SCALE,
                note,
            )
            .await;
        }
    }
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

/// Publishes an event about `policy`; a failure to publish is logged, never fatal.
async fn publish(
    ctx: &Context,
    policy: &ScalingPolicy,
    type_: EventType,
    reason: &str,
    action: &str,
    note: String,
) {
    // events.k8s.io/v1 limits a note to 1 KiB.
    let note = truncate(note, 1000);
    if let Err(e) = ctx
        .events
        .publish(&policy.object_ref(&()), type_, reason, action, &note)
        .await
    {
        warn!(
            name = policy.name_any(),
            reason, "cannot publish event: {e}"
        );
    }
}

fn truncate(mut text: String, max: usize) -> String {
    if text.len() > max {
        let mut cut = max;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push('…');
    }
    text
}
