//! Deployments for the end-to-end tests: created with a replica count, read through `/scale`.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, ResourceRequirements};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::api::PostParams;

use super::TestEnv;

/// Creates Deployment `name` with `replicas` in the test's namespace, its pods requesting 100m CPU
/// and 64Mi memory. Its pod only sleeps: on the default test environment KWOK runs it on a fake
/// node with no container, a real cluster runs it, and the Debian-built 1.20 runs no pods at all.
pub async fn create_deployment(env: &TestEnv, name: &str, replicas: i32) {
    let labels = BTreeMap::from([("app".to_owned(), name.to_owned())]);
    let deployment = Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(labels.clone()),
                ..Default::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..Default::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("busybox:1.36".into()),
                        command: Some(vec!["sleep".into(), "3600".into()]),
                        // As real workloads declare them: what CPU and memory utilisation are
                        // measured against, and what the scheduler places on the fake nodes.
                        resources: Some(ResourceRequirements {
                            requests: Some(BTreeMap::from([
                                ("cpu".to_owned(), Quantity("100m".into())),
                                ("memory".to_owned(), Quantity("64Mi".into())),
                            ])),
                            ..Default::default()
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    env.api::<Deployment>()
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap_or_else(|e| panic!("cannot create Deployment {name}: {e}"));
}

/// The replicas of Deployment `name`, read through `/scale` as the operator reads them.
pub async fn replicas(env: &TestEnv, name: &str) -> i32 {
    let scale = env
        .api::<Deployment>()
        .get_scale(name)
        .await
        .unwrap_or_else(|e| panic!("cannot read the /scale of Deployment {name}: {e}"));
    scale.spec.and_then(|s| s.replicas).unwrap_or_default()
}

/// A port of 127.0.0.1 nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"));
    listener
        .local_addr()
        .unwrap_or_else(|e| panic!("no local address: {e}"))
        .port()
}
