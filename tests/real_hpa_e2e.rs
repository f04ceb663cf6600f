//! The real HorizontalPodAutoscaler of kube-controller-manager, beside us: it scales a
//! Deployment whose pods KWOK runs, from the same Prometheus as scalewise, through
//! prometheus-adapter's `metrics.k8s.io` (and `external.metrics.k8s.io`), registered with the
//! API server's aggregation layer by the test environment.
//!
//! Needs pods (KWOK) and the adapter: the Debian-built 1.20 environment has neither and skips
//! these; against your cluster (SCALEWISE_E2E_CLUSTER=1) they need KWOK there and a
//! prometheus-adapter serving both APIs from the tests' Prometheus, and fail saying so.
//!
//! Run with `make test`; see README.md, "Test environment".

mod support;

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::{
    CrossVersionObjectReference, HorizontalPodAutoscaler, HorizontalPodAutoscalerSpec, MetricSpec,
    MetricTarget, ResourceMetricSource,
};
use kube::api::{ObjectMeta, PostParams};
use serde_json::Value;
use support::TestEnv;
use support::exporter::Exporter;
use support::kwok::{self, FakeNode};
use support::pod_series::{PodSeries, Usage};
use support::workload::{self, Pods};

/// The HPA controller syncs every 15 s, ignores a pod's CPU for a metric window (1 min) after it
/// became Ready, and scales up at most every sync: minutes, not seconds.
const WAIT: Duration = Duration::from_secs(240);

const ADAPTER_NEEDED: &str = "this test needs prometheus-adapter serving the API from the \
tests' Prometheus (SCALEWISE_PROMETHEUS_URL) through the aggregation layer, as the default test \
environment runs it (README.md, \"Test environment\")";

/// GETs an API path; None while the API does not answer it.
async fn get_raw(env: &TestEnv, path: &str) -> Option<Value> {
    let request = http::Request::get(path).body(Vec::new()).ok()?;
    let text = env.client.request_text(request).await.ok()?;
    serde_json::from_str(&text).ok()
}

/// Waits for `path` to answer with `count` items or more, failing with what the test needs when
/// it never does.
async fn wait_for_items(env: &TestEnv, path: &str, what: &str, count: usize) -> Vec<Value> {
    let waiting = format!("{count} {what} from {path}: {ADAPTER_NEEDED}");
    support::eventually(&waiting, Duration::from_secs(120), || async {
        let items = get_raw(env, path).await?["items"].as_array()?.clone();
        (items.len() >= count).then_some(items)
    })
    .await
}

#[tokio::test]
async fn the_real_hpa_scales_a_deployment_from_prometheus_cpu() {
    let env = TestEnv::new("real-hpa").await;
    let Some(node) = FakeNode::for_test(&env).await else {
        return;
    };
    workload::create_deployment_with(&env, "web", 2, &Pods::on(&node)).await;
    // Each pod uses 90m of its 100m request: 90%, above the HPA's 50% target.
    let _series = PodSeries::start(
        &env,
        "web",
        Usage {
            cpu_cores: 0.09,
            memory_bytes: 30e6,
        },
    )
    .await;

    // metrics.k8s.io reports both pods' CPU, as `kubectl top pods` would show it.
    let path = format!(
        "/apis/metrics.k8s.io/v1beta1/namespaces/{}/pods",
        env.namespace
    );
    let items = wait_for_items(&env, &path, "pod metrics", 2).await;
    for item in &items {
        let cpu = item["containers"][0]["usage"]["cpu"]
            .as_str()
            .unwrap_or_default();
        assert!(
            item["metadata"]["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("web-")),
            "{item}"
        );
        assert!(!cpu.is_empty(), "no CPU usage in {item}");
    }

    let hpa = HorizontalPodAutoscaler {
        metadata: ObjectMeta {
            name: Some("web".into()),
            ..ObjectMeta::default()
        },
        spec: Some(HorizontalPodAutoscalerSpec {
            scale_target_ref: CrossVersionObjectReference {
                api_version: Some("apps/v1".into()),
                kind: "Deployment".into(),
                name: "web".into(),
            },
            min_replicas: Some(2),
            max_replicas: 6,
            metrics: Some(vec![MetricSpec {
                type_: "Resource".into(),
                resource: Some(ResourceMetricSource {
                    name: "cpu".into(),
                    target: MetricTarget {
                        type_: "Utilization".into(),
                        average_utilization: Some(50),
                        ..MetricTarget::default()
                    },
                }),
                ..MetricSpec::default()
            }]),
            behavior: None,
        }),
        status: None,
    };
    env.api::<HorizontalPodAutoscaler>()
        .create(&PostParams::default(), &hpa)
        .await
        .expect("create the HPA");

    // 2 pods at 90% against 50%: the HPA asks for ceil(2 x 90 / 50) = 4, then more as the new
    // pods use as much.
    let replicas = support::eventually("the HPA to scale web beyond 2 replicas", WAIT, || async {
        let deployment = env.api::<Deployment>().get("web").await.ok()?;
        let replicas = deployment.spec?.replicas?;
        (replicas >= 4).then_some(replicas)
    })
    .await;
    assert!(replicas <= 6, "beyond maxReplicas: {replicas}");
    // What the HPA read, from its status: a sync that fails (the new pods have no samples yet)
    // writes none, so wait for one that read the pods' CPU.
    let hpas = env.api::<HorizontalPodAutoscaler>();
    let (utilization, desired) = support::eventually(
        "the HPA's status to report the pods' CPU utilization",
        WAIT,
        || async {
            let status = hpas.get("web").await.ok()?.status?;
            let utilization = status
                .current_metrics?
                .iter()
                .find_map(|m| m.resource.as_ref()?.current.average_utilization)?;
            Some((utilization, status.desired_replicas))
        },
    )
    .await;
    assert!(
        (80..=100).contains(&utilization),
        "the HPA read {utilization}% CPU, not the 90% the pods publish"
    );
    assert!(desired >= 4, "the HPA wants {desired} replicas");
}

#[tokio::test]
async fn external_metrics_come_from_the_chosen_prometheus_query() {
    let env = TestEnv::new("real-hpa-external").await;
    if kwok::no_pods_here(&env).await {
        return;
    }
    let ns = &env.namespace;
    let exporter = Exporter::start(
        &format!("{ns}-external"),
        &format!("scalewise_test_external{{namespace=\"{ns}\",queue=\"orders\"}} 42\n"),
    )
    .await;
    env.scrape_via_file_sd(&exporter).await;
    let path =
        format!("/apis/external.metrics.k8s.io/v1beta1/namespaces/{ns}/scalewise_test_external");
    let items = wait_for_items(&env, &path, "external metric", 1).await;
    assert_eq!(items[0]["value"].as_str(), Some("42"), "{items:?}");
    assert_eq!(
        items[0]["metricLabels"]["queue"].as_str(),
        Some("orders"),
        "{items:?}"
    );
}
