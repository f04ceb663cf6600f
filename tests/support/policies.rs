//! ScalingPolicies for the end-to-end tests: one threshold metric on this test's `e2e_load`,
//! created, read back, and their conditions and events.

use k8s_openapi::api::events::v1::Event;
use kube::Api;
use kube::api::{ListParams, PostParams};
use scalewise::api::{ScalingPolicy, ScalingPolicyStatus};
use serde_json::{Value, json};

use super::TestEnv;

/// A policy on Deployment `target` with one threshold metric reading `e2e_load` of this test,
/// evaluated every second; `extra` is merged into the spec.
pub fn policy(
    env: &TestEnv,
    name: &str,
    target: &str,
    selector: &str,
    extra: Value,
) -> ScalingPolicy {
    let spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
        "minReplicas": 1,
        "maxReplicas": 10,
        "interval": "1s",
        "metrics": [{
            "name": "load",
            "query": format!("max(e2e_load{{job=\"{}\"{selector}}})", env.namespace),
            "scaleOutAbove": 70,
            "scaleInBelow": 30
        }],
        "behavior": {
            "scaleOut": {"step": 1, "cooldown": "0s"},
            "scaleIn": {"step": 1, "cooldown": "0s", "stabilizationWindow": "2s"}
        }
    });
    with_spec(env, name, spec, extra)
}

/// A policy `name` in the test's namespace with `spec`, `extra` merged into it.
pub fn with_spec(env: &TestEnv, name: &str, mut spec: Value, extra: Value) -> ScalingPolicy {
    merge(&mut spec, extra);
    serde_json::from_value(json!({
        "apiVersion": "scalewise.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": spec
    }))
    .expect("a ScalingPolicy")
}

pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(b), Value::Object(e)) => {
            for (k, v) in e {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

pub async fn create_policy(env: &TestEnv, p: &ScalingPolicy) {
    env.api::<ScalingPolicy>()
        .create(&PostParams::default(), p)
        .await
        .expect("create ScalingPolicy");
}

pub async fn status(env: &TestEnv, name: &str) -> ScalingPolicyStatus {
    env.api::<ScalingPolicy>()
        .get(name)
        .await
        .expect("read policy")
        .status
        .unwrap_or_default()
}

pub fn condition<'a>(
    s: &'a ScalingPolicyStatus,
    type_: &str,
) -> Option<(&'a str, &'a str, &'a str)> {
    s.conditions
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| (c.status.as_str(), c.reason.as_str(), c.message.as_str()))
}

/// Events about policy `name`: (reason, note).
pub async fn events(env: &TestEnv, name: &str) -> Vec<(String, String)> {
    let list = Api::<Event>::namespaced(env.client.clone(), &env.namespace)
        .list(&ListParams::default())
        .await
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect()
}
