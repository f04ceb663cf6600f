//! What the operator's watch caches cost per object: the heap bytes one more pod or policy adds
//! to its reflector store, decoded and stripped as the controller does (`LeanPod`,
//! `controller::lean`), from objects as a cluster serves them (managed fields, kubectl's
//! last-applied annotation, a full pod spec and status). Bounds here keep the figures from
//! creeping up; `make bench-cache` writes them to BENCHMARKS.md.
//!
//! One test in its own binary: the allocator counts every thread, so nothing else may run.

mod support;

use k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler;
use kube::runtime::reflector;
use kube::runtime::watcher::Event;
use serde_json::{Value, json};

use scalewise::controller::decoded::Decoded;
use scalewise::controller::lean;
use scalewise::pods::LeanPod;
use support::counting;

#[global_allocator]
static ALLOCATOR: counting::Counting = counting::Counting;

/// Objects measured per kind: enough that per-object overheads dominate the store's own.
const N: usize = 2000;

/// The managed fields of an object applied with kubectl and updated by a controller.
fn managed_fields(fields: &Value) -> Value {
    json!([
        {"manager": "kubectl-client-side-apply", "operation": "Update", "apiVersion": "v1",
         "time": "2026-11-30T10:00:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields},
        {"manager": "scalewise", "operation": "Apply", "apiVersion": "scalewise.dev/v1alpha1",
         "time": "2026-11-30T10:05:00Z", "fieldsType": "FieldsV1", "fieldsV1": fields,
         "subresource": "status"}
    ])
}

/// A pod of a Deployment as the API server serves it: two containers with environment, probes,
/// mounts and requests, its volumes and a full status.
fn pod(i: usize) -> Value {
    let container = |name: &str| {
        let env: Vec<Value> = (0..12)
            .map(|e| json!({"name": format!("SETTING_{e}"), "value": format!("value-{e}-{i}")}))
            .collect();
        json!({
            "name": name, "image": format!("registry.example/shop/{name}:1.42.0"),
            "ports": [{"containerPort": 8080, "name": "http", "protocol": "TCP"}],
            "env": env,
            "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "512Mi"}},
            "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}, "periodSeconds": 5},
            "livenessProbe": {"httpGet": {"path": "/live", "port": 8080}, "periodSeconds": 10},
            "volumeMounts": [{"name": "config", "mountPath": "/etc/shop"}, {"name": "token", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount", "readOnly": true}],
            "terminationMessagePath": "/dev/termination-log", "imagePullPolicy": "IfNotPresent"
        })
    };
    let status = |name: &str| {
        json!({"name": name, "ready": true, "restartCount": 0, "started": true,
               "image": format!("registry.example/shop/{name}:1.42.0"),
               "imageID": format!("registry.example/shop/{name}@sha256:{:064x}", i),
               "containerID": format!("containerd://{:064x}", i),
               "state": {"running": {"startedAt": "2026-11-30T10:00:10Z"}}})
    };
    let conditions: Vec<Value> = [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    .iter()
    .map(|t| json!({"type": t, "status": "True", "lastTransitionTime": "2026-11-30T10:00:30Z"}))
    .collect();
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "name": format!("checkout-7d9f8b6c5d-{i:05}"), "namespace": "shop",
            "uid": format!("0f6c2a4e-0000-4000-8000-{i:012}"), "resourceVersion": format!("{}", 100_000 + i),
            "generateName": "checkout-7d9f8b6c5d-", "creationTimestamp": "2026-11-30T10:00:00Z",
            "labels": {"app": "checkout", "pod-template-hash": "7d9f8b6c5d", "team": "payments"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-11-29T08:00:00Z", "prometheus.io/scrape": "true"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "checkout-7d9f8b6c5d",
                                 "uid": "6e3f0d2a-0000-4000-8000-000000000001", "controller": true, "blockOwnerDeletion": true}],
            "managedFields": managed_fields(&json!({"f:metadata": {"f:labels": {}}, "f:spec": {"f:containers": {}}}))
        },
        "spec": {
            "containers": [container("checkout"), container("proxy")],
            "volumes": [{"name": "config", "configMap": {"name": "checkout"}},
                        {"name": "token", "projected": {"sources": [{"serviceAccountToken": {"path": "token", "expirationSeconds": 3607}}]}}],
            "nodeName": format!("node-{}", i % 50), "serviceAccountName": "checkout",
            "restartPolicy": "Always", "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]
        },
        "status": {
            "phase": "Running", "hostIP": "10.0.0.1", "podIP": format!("10.1.{}.{}", i / 250, i % 250),
            "startTime": "2026-11-30T10:00:05Z", "qosClass": "Burstable",
            "conditions": conditions,
            "containerStatuses": [status("checkout"), status("proxy")]
        }
    })
}

/// A policy as stored after `kubectl apply` and a few evaluations: two metrics, behavior, and a
/// status with its metrics, decision, history and conditions.
fn policy(i: usize) -> Value {
    let spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("web-{i}")},
        "minReplicas": 2, "maxReplicas": 20, "interval": "15s",
        "metrics": [
            {"name": "cpu", "cpu": {}, "target": 70},
            {"name": "backlog", "query": "sum(orders_queue_depth{queue=\"checkout\"})", "targetPerReplica": 100}
        ],
        "behavior": {"scaleOut": {"step": 4, "cooldown": "30s"},
                     "scaleIn": {"step": 1, "cooldown": "2m", "stabilizationWindow": "5m"}}
    });
    let condition = |t: &str, reason: &str, message: &str| {
        json!({"type": t, "status": "True", "reason": reason, "message": message,
               "lastTransitionTime": "2026-11-30T10:00:15Z", "observedGeneration": 1})
    };
    json!({
        "apiVersion": "scalewise.dev/v1alpha1", "kind": "ScalingPolicy",
        "metadata": {
            "name": format!("web-{i}"), "namespace": "shop", "uid": format!("7a1c0000-0000-4000-8000-{i:012}"),
            "resourceVersion": format!("{}", 200_000 + i), "generation": 1, "creationTimestamp": "2026-11-30T10:00:00Z",
            "labels": {"team": "payments"},
            "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                json!({"apiVersion": "scalewise.dev/v1alpha1", "kind": "ScalingPolicy",
                       "metadata": {"name": format!("web-{i}"), "namespace": "shop"}, "spec": spec}).to_string()},
            "managedFields": managed_fields(&json!({"f:spec": {"f:metrics": {}, "f:behavior": {}}, "f:status": {"f:conditions": {}, "f:metrics": {}}}))
        },
        "spec": spec,
        "status": {
            "observedGeneration": 1, "currentReplicas": 4, "desiredReplicas": 4,
            "lastEvaluationTime": "2026-11-30T10:05:00Z", "evaluatingSince": "2026-11-30T10:00:15Z",
            "queuedSeconds": 0.002, "consecutiveFailures": 0,
            "metrics": [
                {"name": "cpu", "value": 61.5, "message": "cpu 62 < 70; pods: 4 ready", "proposedReplicas": 4,
                 "query": "sum by (namespace, pod) (rate(container_cpu_usage_seconds_total{container!=\"\",container!=\"POD\",namespace=\"shop\"}[1m]))"},
                {"name": "backlog", "value": 310.0, "message": "backlog 310 at 100 per replica: ceil(310 / 100) = 4", "proposedReplicas": 4,
                 "query": "sum(orders_queue_depth{namespace=\"shop\",queue=\"checkout\"})"}
            ],
            "lastDecision": {"time": "2026-11-30T10:05:00Z", "action": "Hold", "from": 4, "to": 4, "rule": "cpu",
                             "limits": [], "message": "Hold at 4: cpu 62 < 70; pods: 4 ready", "dryRun": false},
            "recommendations": [{"time": "2026-11-30T10:01:00Z", "replicas": 5}, {"time": "2026-11-30T10:05:00Z", "replicas": 4}],
            "scaleEvents": [],
            "conditions": [
                condition("Ready", "Evaluated", "Hold at 4: cpu 62 < 70; pods: 4 ready"),
                condition("AbleToScale", "ReadyForNewScale", "the target can be scaled"),
                condition("ScalingActive", "ValidMetrics", "every metric has a value"),
                condition("ScalingLimited", "WithinRange", "the decision is within [2, 20]"),
                condition("MetricsAvailable", "AllMetricsAvailable", "2 of 2 metrics read")
            ]
        }
    })
}

/// An autoscaling/v1 HorizontalPodAutoscaler with its metrics annotations and status.
fn hpa(i: usize) -> Value {
    json!({
        "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": format!("api-{i}"), "namespace": "shop", "uid": format!("8b2d0000-0000-4000-8000-{i:012}"),
                     "resourceVersion": format!("{}", 300_000 + i),
                     "annotations": {"autoscaling.alpha.kubernetes.io/conditions": "[{\"type\":\"AbleToScale\",\"status\":\"True\",\"lastTransitionTime\":\"2026-11-30T10:00:00Z\",\"reason\":\"ReadyForNewScale\",\"message\":\"recommended size matches current size\"}]",
                                     "autoscaling.alpha.kubernetes.io/current-metrics": "[{\"type\":\"Resource\",\"resource\":{\"name\":\"cpu\",\"currentAverageUtilization\":40,\"currentAverageValue\":\"100m\"}}]"},
                     "managedFields": managed_fields(&json!({"f:spec": {}}))},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("api-{i}")},
                 "minReplicas": 2, "maxReplicas": 10, "targetCPUUtilizationPercentage": 60},
        "status": {"currentReplicas": 2, "desiredReplicas": 2, "currentCPUUtilizationPercentage": 40,
                   "lastScaleTime": "2026-11-30T09:00:00Z"}
    })
}

/// The heap bytes one object adds to a reflector store, decoded from `json` and passed through
/// `strip` as the controller's watch does: what the store holds after [`N`] of them (the objects,
/// the store's map and its keys), per object. Each served JSON and decoded object in flight is
/// dropped before the count.
fn per_object<K>(json: impl Fn(usize) -> Value, strip: impl Fn(&mut K)) -> usize
where
    K: kube::Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + 'static,
{
    let before = counting::allocated();
    let (reader, mut writer) = reflector::store::<K>();
    for i in 0..N {
        let mut o: K = serde_json::from_value(json(i)).expect("decodes");
        strip(&mut o);
        writer.apply_watcher_event(&Event::Apply(o));
    }
    let held = counting::allocated().saturating_sub(before);
    assert_eq!(reader.state().len(), N);
    drop((reader, writer));
    held / N
}

#[test]
fn each_cached_object_costs_a_bounded_number_of_bytes() {
    let pod_bytes = per_object::<LeanPod>(pod, |_| {});
    let policy_bytes = per_object::<Decoded>(policy, lean::policy);
    let policy_unstripped = per_object::<Decoded>(policy, |_| {});
    let hpa_bytes = per_object::<HorizontalPodAutoscaler>(hpa, lean::hpa);
    let hpa_unstripped = per_object::<HorizontalPodAutoscaler>(hpa, |_| {});
    let served = serde_json::to_vec(&pod(0)).expect("encodes").len();
    let table = format!(
        "| cached object | heap bytes per object | before stripping | JSON as served |\n\
         |---|---|---|---|\n\
         | pod (`LeanPod`: decoded fields only) | {pod_bytes} | — | {served} |\n\
         | ScalingPolicy (`controller::lean::policy`) | {policy_bytes} | {policy_unstripped} | {} |\n\
         | HorizontalPodAutoscaler (`controller::lean::hpa`) | {hpa_bytes} | {hpa_unstripped} | {} |\n",
        serde_json::to_vec(&policy(0)).expect("encodes").len(),
        serde_json::to_vec(&hpa(0)).expect("encodes").len(),
    );
    println!("{table}");
    if let Ok(out) = std::env::var("SCALEWISE_BENCH_OUT") {
        std::fs::write(&out, &table).expect("write the figures");
    }
    assert!(pod_bytes < 2048, "a cached pod costs {pod_bytes} bytes");
    assert!(
        policy_bytes < 12 * 1024,
        "a cached policy costs {policy_bytes} bytes"
    );
    assert!(
        policy_bytes < policy_unstripped,
        "stripping saves nothing: {policy_bytes} against {policy_unstripped}"
    );
    assert!(
        hpa_bytes * 2 < hpa_unstripped,
        "an HPA costs {hpa_bytes} bytes stripped, {hpa_unstripped} not"
    );
}
