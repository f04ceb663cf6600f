//! Test fixtures of the controller's unit tests.

use kube::api::ObjectMeta;

use crate::api::ScalingPolicy;

/// ScalingPolicy `shop/web-policy` (uid `uid-1`, generation 1) with the spec in `yaml`.
pub fn policy_object(yaml: &str) -> ScalingPolicy {
    let spec = serde_yaml_ng::from_str(yaml).unwrap_or_else(|e| panic!("bad test spec: {e}"));
    ScalingPolicy {
        metadata: ObjectMeta {
            name: Some("web-policy".into()),
            namespace: Some("shop".into()),
            uid: Some("uid-1".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec,
        status: None,
    }
}
