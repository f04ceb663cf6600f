//! One reconcile of one ScalingPolicy, as a pipeline: gather (the resolved policy, the target,
//! other owners, the observations: client calls), plan (pure: [`super::plan`]), apply (the
//! writes: [`super::apply`]), report (the controller's metrics and a log line).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::FutureExt;
use jiff::Timestamp;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use tracing::{info, warn};

use super::context::Context;
use super::decoded::{Decoded, Undecodable};
use super::error::{Error, is_not_found};
use super::events::EventType;
use super::ownership::other_owners;
use super::persist;
use super::plan::{self, Evaluation, Next, Note, Outcome, Plan, TargetRead};
use super::pods;
use super::resolved::Resolved;
use super::stores::until_ready;
use super::target::KindError;
use crate::api::reason;
use crate::api::{ScalingPolicy, ScalingPolicyStatus};
use crate::fair::Slot;
use crate::pods::TargetPods;
use crate::text::shorten;

/// Reconciles one policy; see the module documentation for the steps. A policy the types cannot
/// hold is reported on itself and waits for a change. A panic inside the reconcile, should one
/// remain, fails this reconcile only: it is reported on the policy and retried with backoff.
pub async fn reconcile(object: Arc<Decoded>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    ctx.health.progress();
    // With sharding, another replica's policy: nothing of it is kept here, and it is looked at
    // again when this replica's share changes.
    let (namespace, name) = (object.namespace().unwrap_or_default(), object.name_any());
    if !ctx.owns(&namespace, &name) {
        ctx.metrics.forget(&namespace, &name);
        ctx.forget(&object.key());
        return Ok(Action::await_change());
    }
    let result = match &object.0 {
        Ok(policy) => AssertUnwindSafe(reconcile_once(policy, &ctx))
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| Err(Error::Panicked(panic_message(panic.as_ref())))),
        Err(bad) => Box::pin(report_undecodable(object.as_ref(), bad, &ctx)).await,
    };
    let category = match (&result, &object.0) {
        (Ok(_), Ok(_)) => "success",
        (Ok(_), Err(_)) => reason::condition::INVALID_OBJECT,
        (Err(e), _) => e.category(),
    };
    ctx.metrics.reconciled(category, started.elapsed());
    if result.is_ok() {
        ctx.reset_backoff(&object.key());
    }
    result
}

/// What a panic said, for the policy's event.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// An object that cannot be decoded: its status and a Warning event say why, with the field
/// path; the log names the object and the path, never its body.
async fn report_undecodable(
    object: &Decoded,
    bad: &Undecodable,
    ctx: &Context,
) -> Result<Action, Error> {
    warn!(
        namespace = object.namespace().unwrap_or_default(),
        name = object.name_any(),
        "cannot decode the ScalingPolicy: {}",
        bad.error
    );
    let plan = plan::undecodable(bad, Timestamp::now());
    ctx.writer().report_only(object, &plan).await?;
    ctx.metrics
        .forget(&object.namespace().unwrap_or_default(), &object.name_any());
    Ok(Action::await_change())
}

/// A failed reconcile is retried with a per-policy exponential backoff, and reported as a
/// Warning event whose reason is the error's category.
pub fn error_policy(object: Arc<Decoded>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(&object.key());
    // An API error can quote a whole body: logs and events carry at most 1 KiB of it.
    let chain = shorten(&error.chain(), 1024);
    warn!(
        namespace = object.namespace().unwrap_or_default(),
        name = object.name_any(),
        category = error.category(),
        retry_in_secs = delay.as_secs(),
        "reconcile failed: {chain}"
    );
    if !matches!(error, Error::NotLeader) {
        let note = Note::new(
            EventType::Warning,
            error.category(),
            reason::action::RECONCILE,
            format!("{chain}; retrying in {}s", delay.as_secs()),
        );
        let regarding = object.object_ref(&());
        tokio::spawn(async move {
            ctx.writer().publish(&regarding, &note).await;
        });
    }
    Action::requeue(delay)
}

/// Gather, plan, apply, report.
async fn reconcile_once(policy: &ScalingPolicy, ctx: &Context) -> Result<Action, Error> {
    // With sharding, a policy this replica has not evaluated since it took it over is read from
    // the API server: the watch cache may not hold yet the last status its previous owner wrote
    // a moment before giving it up (a leader's standby waits a whole lease duration instead).
    // (A list of that one name: the operator may list and watch policies, and get none.)
    let fresh;
    let policy = if ctx.shards.is_some() && ctx.remembered(policy).is_none() {
        let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
        let api: Api<ScalingPolicy> = Api::namespaced(ctx.client.clone(), &namespace);
        let one = ListParams::default().fields(&format!("metadata.name={}", policy.name_any()));
        let read = super::apply::bounded(ctx.api_timeout, "policy", api.list(&one));
        let listed = Box::pin(read).await?.map_err(Error::PolicyRead)?;
        // Deleted meanwhile: its deletion comes through the watch.
        let Some(found) = listed.items.into_iter().next() else {
            return Ok(Action::await_change());
        };
        fresh = found;
        &fresh
    } else {
        policy
    };
    let now = Timestamp::now();
    let started = Instant::now();
    let cached = policy.status.clone().unwrap_or_default();
    let remembered = ctx.remembered(policy);
    let evaluated_at = |s: &ScalingPolicyStatus| s.last_evaluation_time.as_ref().map(|t| t.0);
    // Where the evaluation starts, and whether it takes the policy over (`resumed`).
    let (previous, resumed) = match &remembered {
        // This replica's own last evaluation, written or not: nobody wrote since.
        Some(r) if !plan::newer(&cached, &r.evaluated) => ((*r.evaluated).clone(), false),
        // The cache still holds the intent this replica wrote ahead of its last evaluation's
        // scale: judged from it, as the cache says.
        Some(r) if evaluated_at(&cached) == evaluated_at(&r.evaluated) => (cached.clone(), false),
        // Nothing remembered (this replica started, or leads anew), or another replica wrote
        // since: what the last writer did not write is unknown.
        _ => (cached.clone(), true),
    };
    // What the API server holds, as far as this replica knows.
    let last_written = match remembered {
        Some(r) if !resumed => r.written,
        _ => Arc::new(cached),
    };
    let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
    let name = policy.name_any();
    let gate = ctx.gate(&namespace, &name);
    let writer = ctx.writer_for(&gate);

    // A slot of this namespace's share for the whole reconcile, but for the metric queries.
    let mut slot = Some(ctx.slots.acquire(&namespace).await);
    let key = kube::runtime::reflector::ObjectRef::from_obj(policy);
    if let Some(late) = ctx.started(&key) {
        ctx.metrics.late(late);
    }
    // The gather, plan and apply steps are boxed, allocated only when reached: every policy due
    // at a tick is a task in flight, most of them waiting for a slot, and each task holds its
    // whole future (12,304 bytes in a debug build with them inline, 4,640 boxed: size_of_val).
    let gathered = Box::pin(gather_and_plan(
        policy, ctx, &previous, resumed, now, &mut slot, None,
    ))
    .await?;
    let gathered = match gathered {
        // Over its namespace's budget: wait the turn without a slot, then evaluate as of then.
        Gathered::Throttled(wait) => {
            drop(slot.take());
            tokio::time::sleep(wait).await;
            slot = Some(ctx.slots.acquire(&namespace).await);
            let now = Timestamp::now();
            Box::pin(gather_and_plan(
                policy,
                ctx,
                &previous,
                resumed,
                now,
                &mut slot,
                Some(wait),
            ))
            .await?
        }
        other => other,
    };
    let (mut plan, resolved) = match gathered {
        Gathered::Plan(plan, resolved) => (*plan, resolved),
        Gathered::NotDue(wait) => {
            ctx.schedule(&key, wait);
            return Ok(Action::requeue(wait));
        }
        Gathered::Throttled(wait) => return Ok(Action::requeue(wait)),
    };
    defer_unchanged(policy, ctx, &mut plan, resolved.as_deref(), last_written);
    Box::pin(writer.apply(policy, &plan)).await?;
    drop(slot);
    report(policy, ctx, &plan, resolved.as_deref());
    Ok(match plan.next {
        Next::AwaitChange => Action::await_change(),
        Next::After(wait) => {
            let wait = wait.saturating_sub(started.elapsed());
            ctx.schedule(&key, wait);
            Action::requeue(wait)
        }
    })
}

/// Leaves out of `plan` a status write that changes nothing a reader or a later decision needs
/// ([`persist::should_write`]), remembering the status instead for the next evaluation. A plan
/// that scales or judges an intent writes its status always.
fn defer_unchanged(
    policy: &ScalingPolicy,
    ctx: &Context,
    plan: &mut Plan,
    resolved: Option<&Resolved>,
    last_written: Arc<ScalingPolicyStatus>,
) {
    let (Some(status), Some(resolved), Outcome::Evaluated { decision, .. }) =
        (&plan.status, resolved, &plan.outcome)
    else {
        return;
    };
    if plan.scale.is_some() || plan.recovered.is_some() {
        ctx.metrics.status_write(persist::Write::Changed.as_str());
        return;
    }
    let cadence = ctx.cadence(&resolved.policy);
    let spread = persist::spread(policy.uid().as_deref(), cadence.heartbeat);
    match persist::should_write(&last_written, status, decision.time, cadence, spread) {
        Some(why) => ctx.metrics.status_write(why.as_str()),
        None => {
            ctx.writer().remember(policy, status.clone(), last_written);
            plan.status = None;
            ctx.metrics.status_write("deferred");
        }
    }
}

/// What the gather step ends with.
enum Gathered {
    /// The writes to make, and the resolved policy when it is valid.
    Plan(Box<Plan>, Option<Arc<Resolved>>),
    /// Nothing to do before this long.
    NotDue(std::time::Duration),
    /// Due, but the namespace is over its budget of evaluations: its turn comes after this long.
    Throttled(std::time::Duration),
}

/// The gather step, calling the plan step as soon as it has its inputs: the resolved policy (an
/// invalid one is planned at once, without reading the target), the target's replicas, whether
/// an evaluation is due, other owners and the observations.
///
/// `slot` is this reconcile's reconcile slot: given back while the metrics are read (a query to a
/// server that hangs must not hold a slot another namespace needs) and taken again for the plan
/// and the writes. The time spent waiting for slots is the evaluation's queued time.
/// `resumed`: this replica takes the policy over from `previous`, the status on the cluster.
async fn gather_and_plan(
    policy: &ScalingPolicy,
    ctx: &Context,
    previous: &ScalingPolicyStatus,
    resumed: bool,
    now: Timestamp,
    slot: &mut Option<Slot>,
    throttled: Option<Duration>,
) -> Result<Gathered, Error> {
    let namespace = policy.namespace().ok_or(Error::MissingNamespace)?;
    let mut queued = slot.as_ref().map_or(Duration::ZERO, |s| s.waited);
    let resolved = match ctx.resolved.resolve(policy, ctx.observer.as_ref()) {
        Ok(resolved) => resolved,
        Err(problems) => {
            let plan = plan::invalid(policy, previous, &problems, now);
            return Ok(Gathered::Plan(Box::new(plan), None));
        }
    };

    let kind = &resolved.policy.target_kind;
    let resource = match ctx.kinds.resource(&ctx.client, kind, ctx.api_timeout).await {
        Ok(resource) => resource,
        Err(e @ KindError::Discovery { .. }) => return Err(Error::Discovery(e.to_string())),
        Err(why) => {
            let plan = plan::unscalable(policy, &resolved.policy, previous, &why.to_string(), now);
            return Ok(Gathered::Plan(Box::new(plan), Some(resolved)));
        }
    };
    let targets: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), &namespace, &resource);
    let read = super::apply::bounded(
        ctx.api_timeout,
        "scale read",
        targets.get_scale(&resolved.policy.target),
    )
    .await?;
    let (target, selector) = match read {
        Ok(scale) => (
            TargetRead {
                replicas: scale.spec.and_then(|s| s.replicas).unwrap_or(0),
                uid: scale.metadata.uid,
                resource_version: scale.metadata.resource_version,
                resource,
            },
            scale.status.and_then(|s| s.selector),
        ),
        Err(e) if is_not_found(&e) => {
            let plan = plan::missing_target(policy, &resolved.policy, previous, now);
            return Ok(Gathered::Plan(Box::new(plan), Some(resolved)));
        }
        Err(e) => return Err(Error::ScaleRead(e)),
    };
    let current = target.replicas;
    if let Some(wait) = plan::not_due(
        policy,
        &resolved.policy,
        previous,
        current,
        now,
        ctx.resolved.floor(),
    ) {
        return Ok(Gathered::NotDue(wait));
    }
    // One of the namespace's evaluations, unless this one already waited for its turn.
    if throttled.is_none() {
        let wait = ctx.budget.reserve(&namespace);
        if !wait.is_zero() {
            return Ok(Gathered::Throttled(wait));
        }
    }
    let throttle_message = throttled.map(|waited| {
        format!(
            "namespace {namespace} is over the operator's budget of {} evaluations per minute (--namespace-evaluations-per-minute): this evaluation waited {} for its turn",
            ctx.budget.per_period(),
            crate::text::duration(waited, crate::text::Resolution::Fine)
        )
    });
    if let Some(waited) = throttled {
        queued = queued.saturating_add(waited);
    }

    // Another owner may only be missed while the caches are still listing: wait for them.
    until_ready(&ctx.policies).await;
    until_ready(&ctx.hpas).await;
    let owners = other_owners(policy, &ctx.owners, &ctx.hpas);
    // The target's pods, by its selector and owner chain, once the pod and ReplicaSet caches
    // have listed (an operator that cannot list pods still evaluates every other metric).
    let listed = tokio::time::timeout(ctx.api_timeout, async {
        until_ready(&ctx.caches.pods).await && until_ready(&ctx.caches.replicasets).await
    })
    .await
    .unwrap_or(false);
    let pods = match (listed, target.uid.as_deref()) {
        (false, _) => Err(PODS_NOT_LISTED),
        (true, Some(uid)) => Ok(ctx.caches.target_pods(&namespace, uid, selector.as_deref())),
        (true, None) => Ok(TargetPods::default()),
    };
    let known = pods.as_ref().ok();
    let no_pods = TargetPods::default();
    let rollout = ctx
        .caches
        .rollout(&resolved.policy, &namespace, known.unwrap_or(&no_pods));
    let not_ready =
        known.and_then(|p| pods::capacity_not_ready(&resolved.policy, previous, p, now));
    let (capacity, target_state) =
        pods::target_state(known.unwrap_or(&no_pods), &rollout, not_ready);
    let capacity = known.map(|_| capacity);
    *slot = None;
    // Evaluations of one interval read at its ticks, so that their queries are shared.
    let at = crate::metrics::coalesce::tick_of(Timestamp::now(), resolved.plan.interval);
    let observations = ctx
        .observer
        .observe(&resolved.plan, at, pods.as_ref().map_err(|e| *e))
        .await;
    let mut target_state = target_state;
    let forecast = match &resolved.policy.forecast {
        Some(rule) => {
            let key = kube::runtime::reflector::ObjectRef::from_obj(policy);
            let assessed = ctx
                .forecasts
                .assess(
                    ctx.observer.as_ref(),
                    &key,
                    &resolved.plan,
                    rule,
                    known,
                    now,
                )
                .await;
            target_state.forecast = assessed.floor;
            Some(assessed.status)
        }
        None => None,
    };
    let again = ctx.slots.acquire(&namespace).await;
    queued = queued.saturating_add(again.waited);
    *slot = Some(again);
    ctx.metrics.queued(queued);
    // A policy taken over is evaluated as a new run ([`persist::resumed`]); a plan that does
    // not evaluate (invalid, no target) keeps the status as it is.
    let taken_over;
    let previous = if resumed {
        taken_over = persist::resumed(previous.clone());
        &taken_over
    } else {
        previous
    };
    let plan = plan::evaluation(&Evaluation {
        object: policy,
        resolved: &resolved,
        previous,
        target: &target,
        owners: &owners,
        observations: &observations,
        target_state: &target_state,
        capacity: capacity.as_ref(),
        forecast: forecast.as_ref(),
        now,
        queued,
        throttled: throttle_message.as_deref(),
    });
    Ok(Gathered::Plan(Box::new(plan), Some(resolved)))
}

/// Why `cpu` and `memory` have no value while the pod caches have not listed.
const PODS_NOT_LISTED: &str = "the operator has not listed the pods and ReplicaSets of this namespace yet: check that it may list and watch them (its RBAC) and its log";

/// The report step: the controller's own metrics and one log line per evaluation.
fn report(policy: &ScalingPolicy, ctx: &Context, plan: &Plan, resolved: Option<&Resolved>) {
    let namespace = policy.namespace().unwrap_or_default();
    let name = policy.name_any();
    if let Some(recovered) = &plan.recovered {
        ctx.metrics.intent_recovered(recovered.recovery.as_str());
        info!(
            namespace,
            name,
            outcome = recovered.recovery.as_str(),
            "{}",
            recovered.message(&format!("{namespace}/{}", policy.spec.target_ref.name))
        );
    }
    match &plan.outcome {
        Outcome::Invalid => ctx.metrics.forget(&namespace, &name),
        Outcome::TargetMissing => {}
        Outcome::Evaluated { decision, applied } => {
            if let Some(resolved) = resolved {
                ctx.metrics
                    .decided(&namespace, &name, &resolved.policy, decision, *applied);
            }
            info!(
                namespace,
                name,
                action = decision.action.as_str(),
                from = decision.current_replicas,
                to = decision.desired_replicas,
                applied = *applied,
                "{}",
                decision.message
            );
        }
    }
}
