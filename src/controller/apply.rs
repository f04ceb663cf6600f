//! The apply step of a reconcile: the writes of a [`Plan`], in its order. The target's replicas
//! through /scale first, then the status (server-side apply), then the events. A failed write
//! stops the writes after it and is returned; a failed event is logged and never fails the
//! reconcile.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::warn;

use super::error::{Error, is_conflict};
use super::events::Publisher;
use super::lease::Gate;
use super::plan::{Note, Plan, TargetRead};
use crate::api::{ScaleIntent, ScalingPolicy, ScalingPolicyStatus};
use crate::telemetry::Metrics;

/// The field manager of every write scalewise makes.
pub const FIELD_MANAGER: &str = "scalewise";
/// How often a write that met a conflict (409) is sent again at once.
const CONFLICT_RETRIES: u32 = 3;

/// What this replica remembers of each policy.
pub type Written = HashMap<ObjectRef<ScalingPolicy>, Remembered>;

/// What this replica remembers of one policy between evaluations.
#[derive(Clone, Debug)]
pub struct Remembered {
    /// The uid of the object it is about.
    pub uid: Option<String>,
    /// The status the last evaluation left, written or not: the next evaluation starts from it.
    pub evaluated: Arc<ScalingPolicyStatus>,
    /// The last status this replica wrote, or, before its first write, the one on the cluster
    /// when it first remembered the policy: what a write is judged against
    /// ([`super::persist::should_write`]).
    pub written: Arc<ScalingPolicyStatus>,
}

/// Where the writes go.
pub struct Writer<'a> {
    pub client: &'a Client,
    pub events: &'a Publisher,
    /// Whether, and how long, this replica may still write (it leads and its renew deadline
    /// has not passed, or it runs without leader election).
    pub may_write: &'a dyn Gate,
    /// The longest one write may take; never beyond the time the gate leaves.
    pub api_timeout: Duration,
    /// The last status written per policy, kept from each write.
    pub written: &'a Mutex<Written>,
    /// Conflicts and fenced writes are counted here.
    pub metrics: &'a Metrics,
    /// The field manager of intent and `/scale` writes, when it is this replica's own (with
    /// sharding): [`INTENT_FIELD_MANAGER`] and the client's default otherwise.
    pub manager: Option<&'a str>,
    /// Paces every write (`--api-writes-per-second`): one over the budget waits its turn.
    pub pace: Option<&'a crate::fair::Budget>,
}

impl Writer<'_> {
    /// Makes the writes of `plan` for `object`. A scale is recorded first (the intent, in
    /// `status.pendingScale`): when that write fails, nothing is scaled. Then the target is
    /// patched, conditional on the version it was decided from; a patch that certainly did not
    /// happen (refused, or the target changed meanwhile) clears the intent again, and one whose
    /// fate is unknown (the connection dropped) leaves it for the next evaluation to judge.
    pub async fn apply(&self, object: &ScalingPolicy, plan: &Plan) -> Result<(), Error> {
        let namespace = object.namespace().ok_or(Error::MissingNamespace)?;
        let name = object.name_any();
        let policies: Api<ScalingPolicy> = Api::namespaced(self.client.clone(), &namespace);
        if let Some(scale) = &plan.scale {
            let from = plan.read.as_ref().map_or(0, |r| r.replicas);
            let left = self.ensure_leader("intent").await?;
            let intent = scale.intent.pending_scale.as_ref();
            match bounded(
                left,
                "intent",
                write_intent(&policies, &name, intent, self.manager),
            )
            .await?
            {
                Ok(()) => self.wrote(object, &scale.intent),
                Err(source) => {
                    return Err(Error::IntentNotRecorded {
                        from,
                        to: scale.replicas,
                        source,
                    });
                }
            }
            let left = self.ensure_leader("scale").await?;
            let Some(read) = plan.read.as_ref() else {
                return Err(Error::ScaleUnread);
            };
            let targets: Api<DynamicObject> =
                Api::namespaced_with(self.client.clone(), &namespace, &read.resource);
            let made = bounded(
                left,
                "scale",
                scale_to(
                    &targets,
                    &object.spec.target_ref.name,
                    scale.replicas,
                    plan.read.as_ref(),
                    self.metrics,
                    self.manager,
                ),
            )
            .await
            .and_then(|r| r);
            if let Err(e) = made {
                if e.certainly_not_applied() {
                    match self.clear_intent(&policies, &name).await {
                        Ok(()) => {
                            let mut cleared = scale.intent.clone();
                            cleared.pending_scale = None;
                            self.wrote(object, &cleared);
                        }
                        Err(clear) => warn!(
                            namespace,
                            name,
                            "cannot clear the intent of a scale not made (the next evaluation judges it): {clear}"
                        ),
                    }
                }
                return Err(e);
            }
        }
        if let Some(status) = &plan.status {
            let left = self.ensure_leader("status").await?;
            bounded(
                left,
                "status",
                write_status(self.client, &namespace, &name, status, self.metrics),
            )
            .await??;
        }
        // The intent made (or judged) is removed once the status records it; until then the
        // status holds both, and the next evaluation judges the intent again (counting it once).
        let intent = plan
            .scale
            .as_ref()
            .and_then(|s| s.intent.pending_scale.clone())
            .or_else(|| plan.recovered.as_ref().map(|r| r.intent.clone()));
        if let Some(intent) = intent
            && let Err(e) = self.clear_intent(&policies, &name).await
        {
            if let Some(status) = &plan.status {
                let mut both = status.clone();
                both.pending_scale = Some(intent);
                self.wrote(object, &both);
            }
            return Err(e);
        }
        if let Some(status) = &plan.status {
            self.wrote(object, status);
        }
        self.publish_all(&object.object_ref(&()), &plan.events)
            .await;
        Ok(())
    }

    /// Removes the intent from the status of policy `name`, if this replica may still write.
    async fn clear_intent(&self, policies: &Api<ScalingPolicy>, name: &str) -> Result<(), Error> {
        let left = self.ensure_leader("intent").await?;
        bounded(
            left,
            "intent",
            write_intent(policies, name, None, self.manager),
        )
        .await?
        .map_err(Error::StatusWrite)
    }

    /// Remembers the status just written for `object`, so that the next evaluation never starts
    /// from an older one the watch cache may still hold.
    fn wrote(&self, object: &ScalingPolicy, status: &ScalingPolicyStatus) {
        let status = Arc::new(status.clone());
        self.remember_both(object, status.clone(), status);
    }

    /// Remembers `status`, an evaluation's status that is not written (it changed nothing that
    /// matters), for the next evaluation to start from. `written` is what the API server holds
    /// as far as this replica knows.
    pub fn remember(
        &self,
        object: &ScalingPolicy,
        status: ScalingPolicyStatus,
        written: Arc<ScalingPolicyStatus>,
    ) {
        self.remember_both(object, Arc::new(status), written);
    }

    fn remember_both(
        &self,
        object: &ScalingPolicy,
        evaluated: Arc<ScalingPolicyStatus>,
        written: Arc<ScalingPolicyStatus>,
    ) {
        let mut remembered = self.written.lock().unwrap_or_else(|e| e.into_inner());
        remembered.insert(
            ObjectRef::from_obj(object),
            Remembered {
                uid: object.uid(),
                evaluated,
                written,
            },
        );
    }

    /// Makes the writes of a plan that never scales (an object that cannot be decoded): the
    /// events are published even when the status cannot be written (an API server may refuse
    /// the whole object), and that failure is returned, to be retried with backoff.
    pub async fn report_only<K>(&self, object: &K, plan: &Plan) -> Result<(), Error>
    where
        K: Resource<DynamicType = ()>,
    {
        let namespace = object
            .meta()
            .namespace
            .clone()
            .ok_or(Error::MissingNamespace)?;
        let name = object.meta().name.clone().unwrap_or_default();
        let written = match &plan.status {
            Some(status) => {
                let left = self.ensure_leader("status").await?;
                bounded(
                    left,
                    "status",
                    write_status(self.client, &namespace, &name, status, self.metrics),
                )
                .await
                .and_then(|r| r)
            }
            None => Ok(()),
        };
        // The events say why even when the status cannot (they are published first); a status
        // refused is tried again with the reconcile's backoff.
        self.publish_all(&object.object_ref(&()), &plan.events)
            .await;
        written
    }

    async fn publish_all(&self, regarding: &ObjectReference, notes: &[Note]) {
        for note in notes {
            self.publish(regarding, note).await;
        }
    }

    /// Publishes one event about the object `regarding`, within `--api-timeout`; a failure is
    /// logged, never fatal.
    pub async fn publish(&self, regarding: &ObjectReference, note: &Note) {
        self.paced("event").await;
        let published = bounded(
            self.api_timeout,
            "event",
            self.events
                .publish(regarding, note.type_, note.reason, note.action, &note.note),
        )
        .await;
        let failed = match published {
            Ok(Ok(())) => return,
            Ok(Err(e)) => e.to_string(),
            Err(timeout) => timeout.to_string(),
        };
        warn!(
            name = regarding.name.as_deref().unwrap_or_default(),
            reason = note.reason,
            "cannot publish event: {failed}"
        );
    }

    /// Whether `write` may be made now, and how long it may take; a write refused is counted.
    /// It first waits its turn under `--api-writes-per-second`: the gate is asked after the wait.
    async fn ensure_leader(&self, write: &'static str) -> Result<Duration, Error> {
        self.paced(write).await;
        match self.may_write.remaining() {
            Some(left) => Ok(left.min(self.api_timeout)),
            None => {
                self.metrics.fenced(write);
                Err(Error::NotLeader)
            }
        }
    }
}

impl Writer<'_> {
    /// Waits for `write`'s turn under the write budget (counted when it waits).
    async fn paced(&self, write: &'static str) {
        let Some(pace) = self.pace else {
            return;
        };
        let wait = pace.reserve_at("writes", std::time::Instant::now());
        if !wait.is_zero() {
            self.metrics.write_paced(write, wait);
            tokio::time::sleep(wait).await;
        }
    }
}

/// Sets the target's replicas through /scale, on condition that it still is as `read` (its
/// resourceVersion): a scale made meanwhile by someone else is never overwritten. A conflict
/// whose fresh read shows the replicas the decision was made from (another field of the
/// Deployment changed) is sent again at the new resourceVersion without deciding again; changed
/// replicas are a concurrent change, returned as such, so that the policy decides again from them.
async fn scale_to(
    deployments: &Api<DynamicObject>,
    target: &str,
    replicas: i32,
    read: Option<&TargetRead>,
    metrics: &Metrics,
    manager: Option<&str>,
) -> Result<(), Error> {
    let params = PatchParams {
        field_manager: manager.map(str::to_owned),
        ..PatchParams::default()
    };
    let mut version = read.and_then(|r| r.resource_version.clone());
    let mut attempt: u32 = 0;
    loop {
        let patch = match &version {
            Some(v) => {
                json!({ "metadata": { "resourceVersion": v }, "spec": { "replicas": replicas } })
            }
            None => json!({ "spec": { "replicas": replicas } }),
        };
        match deployments
            .patch_scale(target, &params, &Patch::Merge(&patch))
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                metrics.write_conflict("scale");
                attempt = attempt.saturating_add(1);
                let fresh = deployments
                    .get_scale(target)
                    .await
                    .map_err(Error::ScaleRead)?;
                if let Some(read) = read
                    && read.uid.is_some()
                    && fresh.metadata.uid != read.uid
                {
                    return Err(Error::TargetReplaced);
                }
                let now = fresh.spec.and_then(|s| s.replicas).unwrap_or(0);
                if let Some(read) = read
                    && now != read.replicas
                {
                    return Err(Error::TargetChanged {
                        decided_from: read.replicas,
                        now,
                    });
                }
                version = fresh.metadata.resource_version;
            }
            Err(e) => {
                if is_conflict(&e) {
                    metrics.write_conflict("scale");
                }
                return Err(Error::ScaleWrite(e));
            }
        }
    }
}

/// `call`, given at most `left`: one still in flight then is abandoned, its fate unknown (the
/// outer error).
pub async fn bounded<T>(
    left: Duration,
    write: &'static str,
    call: impl std::future::Future<Output = T>,
) -> Result<T, Error> {
    tokio::time::timeout(left, call)
        .await
        .map_err(|_| Error::Timeout {
            call: write,
            after: left,
        })
}

/// The field manager of the intent's writes.
pub const INTENT_FIELD_MANAGER: &str = "scalewise-intent";

/// Records `intent` as `status.pendingScale`, or removes it (`None`), with a merge patch of that
/// one field: an intent is removed as a whole (server-side apply cannot remove a nested object
/// from a custom resource on every API server version).
async fn write_intent(
    policies: &Api<ScalingPolicy>,
    name: &str,
    intent: Option<&ScaleIntent>,
    manager: Option<&str>,
) -> Result<(), kube::Error> {
    let patch = json!({ "status": { "pendingScale": intent } });
    let params = PatchParams {
        field_manager: Some(manager.unwrap_or(INTENT_FIELD_MANAGER).to_owned()),
        ..PatchParams::default()
    };
    policies
        .patch_status(name, &params, &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// Writes the whole status with server-side apply (fields scalewise no longer sets are removed).
async fn write_status(
    client: &Client,
    namespace: &str,
    name: &str,
    status: &ScalingPolicyStatus,
    metrics: &Metrics,
) -> Result<(), Error> {
    let api: Api<ScalingPolicy> = Api::namespaced(client.clone(), namespace);
    let mut fields = serde_json::to_value(status).map_err(Error::Encode)?;
    // The intent has its own writes (write_intent): server-side apply never owns it, so a
    // status applied without it leaves it in place.
    if let Some(fields) = fields.as_object_mut() {
        fields.remove("pendingScale");
    }
    let body = json!({
        "apiVersion": ScalingPolicy::api_version(&()),
        "kind": ScalingPolicy::kind(&()),
        "status": fields,
    });
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let mut attempt: u32 = 0;
    loop {
        match api.patch_status(name, &params, &Patch::Apply(&body)).await {
            Ok(_) => return Ok(()),
            Err(e) if is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                metrics.write_conflict("status");
                attempt = attempt.saturating_add(1);
            }
            Err(e) => {
                if is_conflict(&e) {
                    metrics.write_conflict("status");
                }
                return Err(Error::StatusWrite(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use http::{Method, Request, Response, StatusCode};
    use kube::client::Body;
    use serde_json::Value;

    use super::*;
    use crate::controller::events::EventType;
    use crate::controller::fixtures::policy_object;
    use crate::controller::plan::{Next, Outcome, Scale};

    type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

    const SCALE: &str = "/apis/apps/v1/namespaces/shop/deployments/web/scale";
    const STATUS: &str =
        "/apis/scalewise.dev/v1alpha1/namespaces/shop/scalingpolicies/web-policy/status";
    const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/shop/events";

    fn object() -> ScalingPolicy {
        policy_object(
            "targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}\nminReplicas: 1\nmaxReplicas: 10\nmetrics: [{name: cpu, cpu: {}, target: 50}]\n",
        )
    }

    fn read() -> TargetRead {
        TargetRead::deployment(2, Some("target-uid"), Some("7"))
    }

    fn plan(scale: Option<i32>, status: bool, events: usize) -> Plan {
        Plan {
            scale: scale.map(|replicas| Scale {
                replicas,
                intent: ScalingPolicyStatus {
                    desired_replicas: Some(2),
                    pending_scale: Some(crate::api::ScaleIntent {
                        decision: crate::api::DecisionRecord {
                            time: crate::controller::plan::stamp(jiff::Timestamp::UNIX_EPOCH),
                            action: crate::api::Action::ScaleOut,
                            from: 2,
                            to: replicas,
                            rule: None,
                            limits: Vec::new(),
                            message: "test".into(),
                            dry_run: false,
                        },
                        recommended_replicas: Some(replicas),
                        target_uid: "target-uid".into(),
                        target_resource_version: Some("7".into()),
                    }),
                    ..ScalingPolicyStatus::default()
                },
            }),
            status: status.then(|| ScalingPolicyStatus {
                desired_replicas: Some(4),
                ..ScalingPolicyStatus::default()
            }),
            events: (0..events)
                .map(|i| Note {
                    type_: EventType::Normal,
                    reason: "ScaledOut",
                    action: "Scale",
                    note: format!("note {i}"),
                })
                .collect(),
            next: Next::AwaitChange,
            outcome: Outcome::TargetMissing,
            read: scale.map(|_| read()),
            recovered: None,
        }
    }

    /// How the mock API server answers one request.
    enum Answer {
        Ok,
        /// No answer at all (a request held open).
        Hang,
        Fail(u16),
        /// A fresh read of /scale: these replicas at this resourceVersion, of the object with
        /// this uid.
        Scale(i32, &'static str, &'static str),
    }

    /// One request the apply step must make, in order.
    struct Expect {
        method: Method,
        path: &'static str,
        answer: Answer,
    }

    /// A scale that succeeds, in order: the intent, `/scale`, the status, the intent cleared, and
    /// the plan's two events.
    fn scale_writes() -> Vec<Expect> {
        vec![
            expect(Method::PATCH, STATUS, Answer::Ok),
            expect(Method::PATCH, SCALE, Answer::Ok),
            expect(Method::PATCH, STATUS, Answer::Ok),
            expect(Method::PATCH, STATUS, Answer::Ok),
            expect(Method::POST, EVENTS, Answer::Ok),
            expect(Method::POST, EVENTS, Answer::Ok),
        ]
    }

    fn expect(method: Method, path: &'static str, answer: Answer) -> Expect {
        Expect {
            method,
            path,
            answer,
        }
    }

    fn respond(
        answer: &Answer,
        body: &Value,
        send: tower_test::mock::SendResponse<Response<Body>>,
    ) {
        let (code, body) = match answer {
            Answer::Ok => (StatusCode::OK, body.clone()),
            Answer::Scale(replicas, version, uid) => (
                StatusCode::OK,
                serde_json::json!({
                    "apiVersion": "autoscaling/v1", "kind": "Scale",
                    "metadata": {"name": "web", "namespace": "shop", "resourceVersion": version, "uid": uid},
                    "spec": {"replicas": replicas},
                }),
            ),
            Answer::Hang => {
                // Kept unanswered until the client goes.
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                    drop(send);
                });
                return;
            }
            Answer::Fail(code) => (
                StatusCode::from_u16(*code).unwrap(),
                serde_json::json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("refused with {code}"), "reason": "Test", "code": code,
                }),
            ),
        };
        let response = Response::builder()
            .status(code)
            .header("content-type", "application/json")
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap();
        send.send_response(response);
    }

    /// Runs `apply` against a mock API server that expects exactly `requests`, in order; returns
    /// the apply step's result and the bodies the server received.
    async fn run(
        plan: Plan,
        leading: bool,
        requests: Vec<Expect>,
    ) -> (Result<(), Error>, Vec<Value>) {
        run_while(plan, move || leading.then_some(Duration::MAX), requests).await
    }

    /// As [`run`], leading while `may_write` says so.
    async fn run_while(
        plan: Plan,
        may_write: impl Fn() -> Option<Duration> + Sync,
        requests: Vec<Expect>,
    ) -> (Result<(), Error>, Vec<Value>) {
        let (result, bodies, _) = run_paced(plan, may_write, requests, None).await;
        (result, bodies)
    }

    /// As [`run_while`], every write paced by `pace`; also the operator's metrics after.
    async fn run_paced(
        plan: Plan,
        may_write: impl Fn() -> Option<Duration> + Sync,
        requests: Vec<Expect>,
        pace: Option<crate::fair::Budget>,
    ) -> (Result<(), Error>, Vec<Value>, String) {
        let (service, mut handle): (_, Handle) = tower_test::mock::pair();
        let client = Client::new(service, "default");
        let server = tokio::spawn(async move {
            let mut bodies = Vec::new();
            for expected in requests {
                let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                    panic!("no request; expected {} {}", expected.method, expected.path)
                });
                assert_eq!(request.method(), expected.method);
                assert_eq!(request.uri().path(), expected.path);
                let bytes = request.into_body().collect_bytes().await.unwrap();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let answer_body = match expected.path {
                    SCALE => serde_json::json!({
                        "apiVersion": "autoscaling/v1", "kind": "Scale",
                        "metadata": {"name": "web", "namespace": "shop"},
                        "spec": {"replicas": body["spec"]["replicas"]},
                    }),
                    STATUS => serde_json::to_value(object()).unwrap(),
                    _ => {
                        let mut event = body.clone();
                        event["apiVersion"] = "events.k8s.io/v1".into();
                        event["kind"] = "Event".into();
                        event
                    }
                };
                respond(&expected.answer, &answer_body, send);
                bodies.push(body);
            }
            // Nothing more: every request the step made was expected.
            if let Some((request, _)) = handle.next_request().await {
                panic!("unexpected request {} {}", request.method(), request.uri());
            }
            bodies
        });
        let events = Publisher::new(client.clone(), "scalewise", "test");
        let written = Mutex::new(Written::new());
        let metrics = Metrics::new();
        let writer = Writer {
            client: &client,
            events: &events,
            may_write: &may_write,
            api_timeout: Duration::from_secs(10),
            written: &written,
            metrics: &metrics,
            manager: None,
            pace: pace.as_ref(),
        };
        let result = writer.apply(&object(), &plan).await;
        drop(events);
        drop(client);
        (result, server.await.unwrap(), metrics.encode())
    }

    /// A merge patch recording an intent.
    fn has_intent(body: &Value) -> bool {
        body["status"]["pendingScale"].is_object()
    }

    /// A merge patch removing the intent.
    fn clears_intent(body: &Value) -> bool {
        body["status"].get("pendingScale") == Some(&Value::Null)
    }

    #[tokio::test]
    async fn a_scale_is_recorded_before_it_is_made_and_its_status_written_after() {
        let (result, bodies) = run(plan(Some(4), true, 2), true, scale_writes()).await;
        result.unwrap();
        // The intent alone, before anything else.
        assert!(has_intent(&bodies[0]), "{}", bodies[0]);
        assert_eq!(bodies[0]["status"].as_object().unwrap().len(), 1);
        assert_eq!(bodies[0]["status"]["pendingScale"]["decision"]["to"], 4);
        assert_eq!(
            bodies[0]["status"]["pendingScale"]["targetUID"],
            "target-uid"
        );
        assert_eq!(
            bodies[1],
            serde_json::json!({"metadata": {"resourceVersion": "7"}, "spec": {"replicas": 4}})
        );
        // The status, applied without the intent, then the intent removed.
        assert_eq!(bodies[2]["apiVersion"], "scalewise.dev/v1alpha1");
        assert_eq!(bodies[2]["kind"], "ScalingPolicy");
        assert_eq!(bodies[2]["status"]["desiredReplicas"], 4);
        assert!(bodies[2]["status"].get("pendingScale").is_none());
        assert!(clears_intent(&bodies[3]), "{}", bodies[3]);
        assert_eq!(bodies[4]["note"], "note 0");
        assert_eq!(bodies[5]["note"], "note 1");
        assert_eq!(bodies[4]["regarding"]["name"], "web-policy");
    }

    #[tokio::test]
    async fn writes_over_the_write_budget_wait_their_turn_and_are_counted() {
        // Two writes a second, two at once: the scale's six writes (intent, /scale, status,
        // intent cleared, two events) cannot all go before two seconds.
        let started = std::time::Instant::now();
        let (result, bodies, metrics) = run_paced(
            plan(Some(4), true, 2),
            || Some(Duration::MAX),
            scale_writes(),
            Some(crate::fair::Budget::new(2, Duration::from_secs(1))),
        )
        .await;
        result.unwrap();
        assert_eq!(bodies.len(), 6);
        assert!(
            started.elapsed() >= Duration::from_millis(1900),
            "{:?}",
            started.elapsed()
        );
        let paced: f64 = metrics
            .lines()
            .filter(|l| l.starts_with("scalewise_paced_writes_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        assert!(paced >= 1.0, "{metrics}");
        assert!(
            metrics.contains("scalewise_paced_write_wait_seconds_total{"),
            "{metrics}"
        );
    }

    #[tokio::test]
    async fn an_intent_not_removed_is_kept_as_written_for_the_next_evaluation() {
        let written = run(
            plan(Some(4), true, 1),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Ok),
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, STATUS, Answer::Fail(500)),
            ],
        )
        .await;
        assert!(
            matches!(written.0, Err(Error::StatusWrite(_))),
            "{:?}",
            written.0
        );
    }

    #[tokio::test]
    async fn an_intent_that_cannot_be_recorded_scales_nothing() {
        // A role that may patch /scale but not the policy's status, a webhook, a quota.
        let (result, _) = run(
            plan(Some(4), true, 1),
            true,
            vec![expect(Method::PATCH, STATUS, Answer::Fail(403))],
        )
        .await;
        assert!(
            matches!(result, Err(Error::IntentNotRecorded { from: 2, to: 4, .. })),
            "{result:?}"
        );
        assert_eq!(result.unwrap_err().category(), "IntentNotRecorded");
    }

    #[tokio::test]
    async fn a_scale_whose_fate_is_unknown_keeps_its_intent_for_the_next_evaluation() {
        // A server error may have been applied: only the next evaluation can tell.
        let (result, _) = run(
            plan(Some(4), true, 1),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Fail(500)),
            ],
        )
        .await;
        assert!(matches!(result, Err(Error::ScaleWrite(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_refused_scale_clears_its_intent() {
        let (result, bodies) = run(
            plan(Some(4), true, 1),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Fail(422)),
                expect(Method::PATCH, STATUS, Answer::Ok),
            ],
        )
        .await;
        assert!(matches!(result, Err(Error::ScaleWrite(_))), "{result:?}");
        assert!(has_intent(&bodies[0]));
        assert!(clears_intent(&bodies[2]), "{}", bodies[2]);
    }

    #[tokio::test]
    async fn a_replica_that_loses_the_lease_after_recording_an_intent_does_not_scale() {
        let calls = std::sync::atomic::AtomicUsize::new(0);
        let may_write = move || {
            (calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0).then_some(Duration::MAX)
        };
        let (result, _) = run_while(
            plan(Some(4), true, 1),
            may_write,
            vec![expect(Method::PATCH, STATUS, Answer::Ok)],
        )
        .await;
        assert!(matches!(result, Err(Error::NotLeader)), "{result:?}");
    }

    #[tokio::test]
    async fn a_write_still_in_flight_at_the_renew_deadline_is_abandoned() {
        // The lease leaves 100 ms: the intent's write hangs, and nothing follows it.
        let (result, _) = run_while(
            plan(Some(4), true, 1),
            || Some(Duration::from_millis(100)),
            vec![expect(Method::PATCH, STATUS, Answer::Hang)],
        )
        .await;
        assert!(
            matches!(result, Err(Error::Timeout { call: "intent", .. })),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_failed_status_write_publishes_no_event() {
        let (result, _) = run(
            plan(Some(4), true, 1),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Ok),
                expect(Method::PATCH, STATUS, Answer::Fail(403)),
            ],
        )
        .await;
        assert!(matches!(result, Err(Error::StatusWrite(_))), "{result:?}");
    }

    #[tokio::test]
    async fn a_failed_event_does_not_fail_the_reconcile() {
        let (result, _) = run(
            plan(None, true, 2),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::POST, EVENTS, Answer::Fail(500)),
                expect(Method::POST, EVENTS, Answer::Ok),
            ],
        )
        .await;
        result.unwrap();
    }

    #[tokio::test]
    async fn conflicts_are_sent_again_and_then_given_up() {
        let (result, _) = run(
            plan(Some(4), true, 0),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Fail(409)),
                expect(Method::GET, SCALE, Answer::Scale(2, "8", "target-uid")),
                expect(Method::PATCH, SCALE, Answer::Ok),
                expect(Method::PATCH, STATUS, Answer::Fail(409)),
                expect(Method::PATCH, STATUS, Answer::Fail(409)),
                expect(Method::PATCH, STATUS, Answer::Fail(409)),
                expect(Method::PATCH, STATUS, Answer::Fail(409)),
            ],
        )
        .await;
        assert!(matches!(result, Err(Error::StatusWrite(_))), "{result:?}");
    }

    #[tokio::test]
    async fn an_unchanged_status_is_not_written() {
        let (result, _) = run(plan(None, false, 0), true, Vec::new()).await;
        result.unwrap();
    }

    #[tokio::test]
    async fn a_replica_that_does_not_lead_writes_nothing() {
        let (result, _) = run(plan(Some(4), true, 1), false, Vec::new()).await;
        assert!(matches!(result, Err(Error::NotLeader)), "{result:?}");
        let (result, _) = run(plan(None, true, 1), false, Vec::new()).await;
        assert!(matches!(result, Err(Error::NotLeader)), "{result:?}");
    }

    #[tokio::test]
    async fn a_scale_is_conditional_on_the_resource_version_it_was_read_at() {
        let (result, bodies) = run(
            plan(Some(4), false, 0),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Ok),
                expect(Method::PATCH, STATUS, Answer::Ok),
            ],
        )
        .await;
        result.unwrap();
        assert_eq!(bodies[1]["metadata"]["resourceVersion"], "7");
    }

    #[tokio::test]
    async fn a_conflict_on_unchanged_replicas_is_sent_again_at_the_new_version() {
        // Someone changed the Deployment, not its replicas (a controller-manager's update).
        let (result, bodies) = run(
            plan(Some(4), true, 0),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Fail(409)),
                expect(Method::GET, SCALE, Answer::Scale(2, "8", "target-uid")),
                expect(Method::PATCH, SCALE, Answer::Ok),
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, STATUS, Answer::Ok),
            ],
        )
        .await;
        result.unwrap();
        assert_eq!(bodies[3]["metadata"]["resourceVersion"], "8");
        assert_eq!(bodies[3]["spec"]["replicas"], 4);
    }

    #[tokio::test]
    async fn a_scale_made_meanwhile_by_someone_else_is_never_overwritten() {
        // A `kubectl scale` to 5 landed between the read (2 replicas) and the write.
        let (result, bodies) = run(
            plan(Some(4), true, 1),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Fail(409)),
                expect(Method::GET, SCALE, Answer::Scale(5, "8", "target-uid")),
                expect(Method::PATCH, STATUS, Answer::Ok),
            ],
        )
        .await;
        assert!(
            matches!(
                result,
                Err(Error::TargetChanged {
                    decided_from: 2,
                    now: 5
                })
            ),
            "{result:?}"
        );
        // Not made: the intent is cleared, never counted.
        assert!(clears_intent(&bodies[3]));
    }

    #[tokio::test]
    async fn an_intent_is_never_applied_to_a_target_created_again() {
        // Deleted and created again with the same name and replicas: another uid.
        let (result, bodies) = run(
            plan(Some(4), true, 1),
            true,
            vec![
                expect(Method::PATCH, STATUS, Answer::Ok),
                expect(Method::PATCH, SCALE, Answer::Fail(409)),
                expect(Method::GET, SCALE, Answer::Scale(2, "3", "another-uid")),
                expect(Method::PATCH, STATUS, Answer::Ok),
            ],
        )
        .await;
        assert!(matches!(result, Err(Error::TargetReplaced)), "{result:?}");
        assert!(clears_intent(&bodies[3]));
    }
}
