//! The operator's own `/metrics` holds every policy's metric values, so it is served over TLS
//! only to clients whose bearer token the API server accepts (TokenReview) and whose user may get
//! the non-resource URL `/metrics` (SubjectAccessReview), as kube-rbac-proxy does (issue 15). On
//! the real test environment: an anonymous scrape is refused (401), a ServiceAccount without the
//! permission is refused (403), one bound to a ClusterRole allowing it reads the metrics;
//! `/healthz` stays open, and the plain port serves `/metrics` on a loopback address only (local
//! debugging; the tests bind nothing else).
//!
//! Creates a ClusterRole and a ClusterRoleBinding named after the test's namespace and deletes
//! them at the end; runs on a real cluster too (SCALEWISE_E2E_CLUSTER=1).

mod support;

use std::time::Duration;

use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use kube::Api;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use support::http::https_get;
use support::operator::Operator;
use support::{TestEnv, eventually};

const WAIT: Duration = Duration::from_secs(60);

/// A ServiceAccount `name` in the test's namespace, and a token of it.
async fn account_token(env: &TestEnv, name: &str) -> String {
    support::create_service_account(env, name).await;
    support::service_account_token(env, name).await
}

#[tokio::test]
async fn only_a_client_allowed_to_get_metrics_reads_them_over_tls() {
    let env = TestEnv::new("metrics-access").await;
    let scraper = account_token(&env, "scraper").await;
    let stranger = account_token(&env, "stranger").await;
    // What the chart's `<fullname>-metrics-reader` grants, bound to the scraper alone.
    let reader = format!("{}-metrics-reader", env.namespace);
    let roles = Api::<ClusterRole>::all(env.client.clone());
    let bindings = Api::<ClusterRoleBinding>::all(env.client.clone());
    roles
        .create(
            &PostParams::default(),
            &ClusterRole {
                metadata: ObjectMeta {
                    name: Some(reader.clone()),
                    ..ObjectMeta::default()
                },
                rules: Some(vec![PolicyRule {
                    non_resource_urls: Some(vec!["/metrics".into()]),
                    verbs: vec!["get".into()],
                    ..PolicyRule::default()
                }]),
                ..ClusterRole::default()
            },
        )
        .await
        .expect("create the ClusterRole");
    bindings
        .create(
            &PostParams::default(),
            &ClusterRoleBinding {
                metadata: ObjectMeta {
                    name: Some(reader.clone()),
                    ..ObjectMeta::default()
                },
                role_ref: RoleRef {
                    api_group: "rbac.authorization.k8s.io".into(),
                    kind: "ClusterRole".into(),
                    name: reader.clone(),
                },
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".into(),
                    name: "scraper".into(),
                    namespace: Some(env.namespace.clone()),
                    ..Subject::default()
                }]),
            },
        )
        .await
        .expect("create the ClusterRoleBinding");

    let op = Operator::start(&env, "op", &["--leader-election", "false"]);
    let port = op.secure_port;
    // The probes answer without a token, on both ports.
    let (status, _) = eventually("the TLS port to answer", WAIT, || async {
        https_get(port, "/healthz", None).await.ok()
    })
    .await;
    assert_eq!(status, 200, "{}", op.logs());

    let (status, body) = https_get(port, "/metrics", None).await.expect("an answer");
    assert_eq!(status, 401, "{body}");
    assert!(!body.contains("scalewise_"), "{body}");
    let (status, body) = https_get(port, "/metrics", Some("not-a-token"))
        .await
        .expect("an answer");
    assert_eq!(status, 401, "{body}");
    let (status, body) = https_get(port, "/metrics", Some(&stranger))
        .await
        .expect("an answer");
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains(&format!(
            "system:serviceaccount:{}:stranger may not get /metrics",
            env.namespace
        )),
        "{body}"
    );
    assert!(!body.contains("scalewise_"), "{body}");
    // RBAC takes a moment to reach the authorizer's cache on a busy API server.
    let body = eventually("the scraper to read /metrics", WAIT, || async {
        match https_get(port, "/metrics", Some(&scraper)).await {
            Ok((200, body)) => Some(body),
            _ => None,
        }
    })
    .await;
    assert!(
        body.contains("scalewise_policy_watch_failing_seconds"),
        "{body}"
    );

    // The plain port on the loopback serves it as before, for local debugging.
    let (status, body) = op.get("/metrics").await.expect("the plain port answers");
    assert_eq!(status, 200);
    assert!(
        body.contains("scalewise_policy_watch_failing_seconds"),
        "{body}"
    );

    let _ = bindings.delete(&reader, &DeleteParams::default()).await;
    let _ = roles.delete(&reader, &DeleteParams::default()).await;
}
