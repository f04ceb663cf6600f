//! A ScalingPolicy as the controller's watch decodes it: each object on its own (as kube's
//! `DeserializeGuard`, with the field path of the failure), so that one object the types cannot
//! hold (a `maxReplicas` of 2147483648 stored by an API server that does not enforce
//! `format: int32`, a status written by hand) is reported on itself, and the list it came in,
//! and every other policy in it, is decoded as usual.

use std::borrow::Cow;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::Resource;
use kube::runtime::reflector::ObjectRef;
use serde::{Deserialize, Deserializer};

use crate::api::{ScalingPolicy, ScalingPolicyStatus};
use crate::text::shorten;

/// The longest decode error kept (it can quote a whole value).
const MAX_ERROR_BYTES: usize = 512;

/// A policy, or why it could not be decoded.
#[derive(Clone, Debug, PartialEq)]
pub struct Decoded(pub Result<ScalingPolicy, Undecodable>);

/// An object the types cannot hold: its metadata, and the first problem with its field path.
#[derive(Clone, Debug, PartialEq)]
pub struct Undecodable {
    pub metadata: ObjectMeta,
    /// Such as `spec.maxReplicas: must be at most 2147483647 (an int32), got 2147483648`.
    pub error: String,
    /// The status, when it decodes on its own (the problem is elsewhere): what scalewise
    /// remembers of the policy (its last scale, its cooldowns) is kept.
    pub status: Option<ScalingPolicyStatus>,
}

impl Decoded {
    /// The policy's key, the same whether it decoded or not.
    pub fn key(&self) -> ObjectRef<ScalingPolicy> {
        let meta = self.meta();
        let name = meta.name.as_deref().unwrap_or_default();
        match &meta.namespace {
            Some(ns) => ObjectRef::new(name).within(ns),
            None => ObjectRef::new(name),
        }
    }

    /// The policy, when it decoded.
    pub fn policy(&self) -> Option<&ScalingPolicy> {
        self.0.as_ref().ok()
    }
}

impl<'de> Deserialize<'de> for Decoded {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        match serde_path_to_error::deserialize::<_, ScalingPolicy>(&value) {
            Ok(policy) => Ok(Self(Ok(policy))),
            Err(e) => {
                // Without readable metadata the object cannot even be named: that fails the
                // list, as it must (the API server never sends such an object).
                let metadata = value
                    .get("metadata")
                    .map(ObjectMeta::deserialize)
                    .transpose()
                    .map_err(serde::de::Error::custom)?
                    .unwrap_or_default();
                let error = shorten(&format!("{}: {}", e.path(), e.inner()), MAX_ERROR_BYTES);
                let status = value
                    .get("status")
                    .and_then(|s| ScalingPolicyStatus::deserialize(s).ok());
                Ok(Self(Err(Undecodable {
                    metadata,
                    error,
                    status,
                })))
            }
        }
    }
}

impl Resource for Decoded {
    type DynamicType = ();
    type Scope = k8s_openapi::NamespaceResourceScope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ScalingPolicy::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        ScalingPolicy::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        ScalingPolicy::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        ScalingPolicy::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        match &self.0 {
            Ok(policy) => policy.meta(),
            Err(bad) => &bad.metadata,
        }
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        match &mut self.0 {
            Ok(policy) => policy.meta_mut(),
            Err(bad) => &mut bad.metadata,
        }
    }
}

#[cfg(test)]
mod tests {
    use kube::core::ObjectList;
    use serde_json::json;

    use super::*;

    fn policy(name: &str, max_replicas: serde_json::Value) -> serde_json::Value {
        json!({
            "apiVersion": "scalewise.dev/v1alpha1",
            "kind": "ScalingPolicy",
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}")},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
                "minReplicas": 1,
                "maxReplicas": max_replicas,
                "metrics": [{"name": "cpu", "cpu": {}, "target": 50}],
            },
        })
    }

    fn list(items: Vec<serde_json::Value>) -> serde_json::Value {
        json!({
            "apiVersion": "scalewise.dev/v1alpha1",
            "kind": "ScalingPolicyList",
            "metadata": {"resourceVersion": "1"},
            "items": items,
        })
    }

    #[test]
    fn one_undecodable_policy_fails_a_strict_list_but_not_this_one() {
        let body = list(vec![
            policy("good", json!(10)),
            policy("huge", json!(2147483648u64)),
        ]);
        // What the watch did before: one object the types cannot hold failed the whole list.
        assert!(serde_json::from_value::<ObjectList<ScalingPolicy>>(body.clone()).is_err());

        let decoded: ObjectList<Decoded> = serde_json::from_value(body).unwrap();
        assert_eq!(decoded.items.len(), 2);
        let good = decoded.items[0].policy().unwrap();
        assert_eq!(good.spec.max_replicas, 10);
        let Err(bad) = &decoded.items[1].0 else {
            panic!("decoded an i32 of 2147483648");
        };
        assert_eq!(bad.metadata.name.as_deref(), Some("huge"));
        assert!(
            bad.error.starts_with(
                "spec.maxReplicas: must be at most 2147483647 (an int32), got 2147483648"
            ),
            "{}",
            bad.error
        );
        assert_eq!(
            decoded.items[1].key(),
            ObjectRef::new("huge").within("shop")
        );
    }

    #[test]
    fn a_status_the_types_cannot_hold_is_an_undecodable_object_too() {
        let mut body = policy("web", json!(10));
        body["status"] = json!({"consecutiveFailures": "many"});
        let decoded: Decoded = serde_json::from_value(body).unwrap();
        let Err(bad) = decoded.0 else {
            panic!("decoded a string as a count")
        };
        assert!(
            bad.error.starts_with("status.consecutiveFailures: "),
            "{}",
            bad.error
        );
        assert_eq!(bad.status, None, "a status that cannot be read is not kept");
    }

    #[test]
    fn the_status_of_a_policy_whose_spec_cannot_be_read_is_kept() {
        let mut body = policy("web", json!(2147483648u64));
        body["status"] = json!({"consecutiveFailures": 2, "lastScaleTime": "2026-01-01T00:00:00Z"});
        let decoded: Decoded = serde_json::from_value(body).unwrap();
        let Err(bad) = decoded.0 else { panic!() };
        let status = bad.status.unwrap();
        assert_eq!(status.consecutive_failures, 2);
        assert!(status.last_scale_time.is_some());
    }

    #[test]
    fn a_long_decode_error_is_cut() {
        let mut body = policy("web", json!(10));
        body["spec"]["targetRef"] = json!("x".repeat(100_000));
        let decoded: Decoded = serde_json::from_value(body).unwrap();
        let Err(bad) = decoded.0 else { panic!() };
        assert!(bad.error.len() <= MAX_ERROR_BYTES + '…'.len_utf8());
    }
}
