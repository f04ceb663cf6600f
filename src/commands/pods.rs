//! Where `scalewise query` finds the target's pods for `cpu` and `memory`: the cluster of the
//! kubeconfig (the same caches' view the operator has: the target's `/scale` selector, its pods
//! and ReplicaSets, attributed by owner chain), or, without a kubeconfig, kube-state-metrics'
//! ownership series joined in PromQL.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::PartialObjectMeta;

use crate::api::Policy;
use crate::cli::PodsFrom;
use crate::controller::target::Kinds;
use crate::metrics::{MetricQuery, QueryPlan};
use crate::pods::attribution::replicaset_parent;
use crate::pods::{LeanPod, Selector, TargetPods, target_pods};

/// The most pods or ReplicaSets one list asks for per page.
const PAGE: u32 = 500;
/// How long each call to the API server may take.
const API_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How the target's pods were found, for the output's header.
pub enum PodsSource {
    /// The plan has no metric counted per pod.
    NotNeeded,
    /// From the cluster of the kubeconfig.
    Cluster(TargetPods),
    /// Through kube-state-metrics' series: the plan's metrics of these names were rewritten.
    KubeStateMetrics(Vec<String>),
    /// The cluster could not tell them: why.
    Unknown(String),
}

impl PodsSource {
    /// One line for the header.
    pub fn describe(&self) -> Option<String> {
        match self {
            Self::NotNeeded => None,
            Self::Cluster(pods) => Some(format!(
                "pods: {} of the target, from the cluster of the kubeconfig{}",
                pods.pods.len(),
                if pods.other_workloads > 0 {
                    format!(
                        " ({} matched by its selector belong to other workloads and are left out)",
                        pods.other_workloads
                    )
                } else {
                    String::new()
                }
            )),
            Self::Unknown(why) => Some(format!("pods: unknown ({why})")),
            Self::KubeStateMetrics(_) => Some(
                "pods: cpu and memory count the target's Ready pods through kube-state-metrics' kube_pod_owner, kube_replicaset_owner and kube_pod_status_ready series (no start-up rules); with a kubeconfig, --pods cluster counts them as the operator does".to_owned(),
            ),
        }
    }

    /// The target's pods, or why a metric counted over them has no value.
    pub fn pods(&self) -> Result<&TargetPods, &str> {
        match self {
            Self::Cluster(pods) => Ok(pods),
            Self::Unknown(why) => Err(why),
            Self::NotNeeded | Self::KubeStateMetrics(_) => Err("no metric is counted over pods"),
        }
    }
}

/// Whether a kubeconfig is there to read: `KUBECONFIG`, or `~/.kube/config`.
fn kubeconfig_present() -> bool {
    if std::env::var_os("KUBECONFIG").is_some_and(|v| !v.is_empty()) {
        return true;
    }
    std::env::var_os("HOME")
        .map(|home| std::path::Path::new(&home).join(".kube/config"))
        .is_some_and(|p| p.is_file())
}

/// Finds the target's pods for `plan`'s per-pod metrics, as `from` says; rewrites those metrics
/// to their kube-state-metrics join when the pods come from there. A cluster that cannot tell
/// them (no such target, no connection) fails those metrics only, with the reason.
pub async fn find(plan: &mut QueryPlan, policy: &Policy, from: PodsFrom) -> PodsSource {
    if plan.metrics.iter().all(|m| m.per_pod.is_none()) {
        return PodsSource::NotNeeded;
    }
    let cluster = match from {
        PodsFrom::Auto => kubeconfig_present(),
        PodsFrom::Cluster => true,
        PodsFrom::KubeStateMetrics => false,
    };
    if cluster {
        return match from_cluster(&plan.namespace, policy).await {
            Ok(pods) => PodsSource::Cluster(pods),
            Err(why) => PodsSource::Unknown(why),
        };
    }
    let mut rewritten = Vec::new();
    for m in &mut plan.metrics {
        if let Some(per_pod) = m.per_pod.take() {
            // The join was parsed (and scoped) with the plan; were it not to parse again, it is
            // sent alone and the server says why.
            *m = match MetricQuery::read(&m.name, m.kind, per_pod.by_ownership.clone(), None) {
                Ok(read) => read,
                Err(_) => MetricQuery {
                    promql: per_pod.by_ownership,
                    age_query: None,
                    combined: None,
                    sharing: crate::metrics::coalesce::Sharing::Whole,
                    ..m.clone()
                },
            };
            rewritten.push(m.name.clone());
        }
    }
    PodsSource::KubeStateMetrics(rewritten)
}

/// What a metric read through kube-state-metrics needs when it found nothing.
pub const NEEDS: &str = "no Ready pod of the target with usage was found through kube-state-metrics' series (kube_pod_owner, kube_replicaset_owner, kube_pod_status_ready, kube_pod_container_resource_requests): without a kubeconfig (KUBECONFIG) to read the pods from the cluster, those series are needed";

/// The target's pods as the operator finds them, read once from the cluster.
async fn from_cluster(namespace: &str, policy: &Policy) -> Result<TargetPods, String> {
    let config = kube::Config::infer()
        .await
        .map_err(|e| format!("cannot read the kubeconfig: {e}"))?;
    let client = kube::Client::try_from(config)
        .map_err(|e| format!("cannot connect to the cluster of the kubeconfig: {e}"))?;
    let kind = &policy.target_kind;
    let what = format!("{kind} {namespace}/{}", policy.target);
    let resource = Kinds::default()
        .resource(&client, kind, API_TIMEOUT)
        .await
        .map_err(|e| format!("cannot scale {what}: {e}"))?;
    let targets: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
    let scale = bounded(targets.get_scale(&policy.target))
        .await
        .map_err(|e| format!("cannot read the /scale of {what}: {e}"))?;
    let uid = scale
        .metadata
        .uid
        .ok_or_else(|| format!("the /scale of {what} has no uid"))?;
    let selector = match scale.status.and_then(|s| s.selector) {
        Some(text) => Selector::parse(&text).map_err(|e| format!("{what}: {e}"))?,
        None => Selector::default(),
    };
    let pods: Api<LeanPod> = Api::namespaced(client.clone(), namespace);
    let pods = list_all(&pods)
        .await
        .map_err(|e| format!("cannot list the pods of namespace {namespace}: {e}"))?;
    let replicasets: Api<PartialObjectMeta<ReplicaSet>> = Api::namespaced(client, namespace);
    let replicasets = list_all(&replicasets)
        .await
        .map_err(|e| format!("cannot list the ReplicaSets of namespace {namespace}: {e}"))?;
    let parent = |owner: &OwnerReference| {
        replicaset_parent(owner, |o| {
            replicasets
                .iter()
                .map(|rs| &rs.metadata)
                .find(|m| m.uid.as_deref() == Some(o.uid.as_str()))
        })
    };
    Ok(target_pods(
        pods.into_iter().map(Arc::new),
        &uid,
        &selector,
        &parent,
    ))
}

async fn bounded<T>(
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(result) => result.map_err(|e| e.to_string()),
        Err(_) => Err(format!("no answer within {}s", API_TIMEOUT.as_secs())),
    }
}

/// Every object of a list, page by page.
async fn list_all<K>(api: &Api<K>) -> Result<Vec<K>, String>
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut all = Vec::new();
    let mut params = ListParams::default().limit(PAGE);
    loop {
        let page = bounded(api.list(&params)).await?;
        all.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(all),
        }
    }
}
