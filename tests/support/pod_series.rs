//! The series cAdvisor and kube-state-metrics publish in a cluster, for the pods a Deployment's
//! ReplicaSets really created: followed every second, served by an [`Exporter`] that the test's
//! Prometheus and VictoriaMetrics scrape. prometheus-adapter serves `metrics.k8s.io` from them to
//! the real HPA, and scalewise's `cpu` and `memory` metrics read them.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kube::ResourceExt;
use tokio::task::JoinHandle;

use super::exporter::Exporter;
use super::{TestEnv, workload};

/// What each pod uses: cores of CPU and bytes of memory.
#[derive(Clone, Copy, Debug)]
pub struct Usage {
    pub cpu_cores: f64,
    pub memory_bytes: f64,
}

/// Follows Deployment `deployment`'s pods and publishes their series until dropped.
pub struct PodSeries {
    pub exporter: Arc<Exporter>,
    usage: Arc<Mutex<Usage>>,
    task: JoinHandle<()>,
}

impl PodSeries {
    /// Starts publishing (an empty exposition until the first pods are read) and has both
    /// metrics servers scrape it.
    pub async fn start(env: &TestEnv, deployment: &str, usage: Usage) -> PodSeries {
        Self::start_selecting(env, deployment, &format!("app={deployment}"), usage).await
    }

    /// [`PodSeries::start`] for the pods `selector` (a label selector) matches, reported as
    /// owned through ReplicaSets by Deployment `owner` in kube-state-metrics' series.
    pub async fn start_selecting(
        env: &TestEnv,
        owner: &str,
        selector: &str,
        usage: Usage,
    ) -> PodSeries {
        let job = format!(
            "{}-{}-pods",
            env.namespace,
            selector.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        let exporter = Arc::new(Exporter::start(&job, "").await);
        let usage = Arc::new(Mutex::new(usage));
        let task = tokio::spawn(follow(
            env.client.clone(),
            env.namespace.clone(),
            owner.to_owned(),
            selector.to_owned(),
            Arc::clone(&exporter),
            Arc::clone(&usage),
        ));
        env.scrape_via_file_sd(&exporter).await;
        PodSeries {
            exporter,
            usage,
            task,
        }
    }

    /// Changes what every pod uses from now on.
    pub fn set(&self, usage: Usage) {
        *self.usage.lock().unwrap_or_else(PoisonError::into_inner) = usage;
    }
}

impl Drop for PodSeries {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Per pod: its CPU seconds so far, as a counter.
async fn follow(
    client: kube::Client,
    ns: String,
    deployment: String,
    selector: String,
    exporter: Arc<Exporter>,
    usage: Arc<Mutex<Usage>>,
) {
    let mut cpu_seconds: BTreeMap<String, f64> = BTreeMap::new();
    let mut last = Instant::now();
    loop {
        let pods = workload::pods_selected(&client, &ns, &selector).await;
        let now = Instant::now();
        let dt = now.duration_since(last).as_secs_f64();
        last = now;
        let usage = *usage.lock().unwrap_or_else(PoisonError::into_inner);
        let mut text = String::new();
        let mut replicasets = BTreeSet::new();
        for pod in &pods {
            let running = pod.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if pod.metadata.deletion_timestamp.is_some() || !running {
                continue;
            }
            let name = pod.name_any();
            let counter = cpu_seconds.entry(name.clone()).or_insert(0.0);
            *counter += usage.cpu_cores * dt;
            let container = workload::CONTAINER;
            let labels = format!("namespace=\"{ns}\",pod=\"{name}\"");
            let _ = writeln!(
                text,
                "container_cpu_usage_seconds_total{{{labels},container=\"{container}\"}} {counter}"
            );
            let _ = writeln!(
                text,
                "container_memory_working_set_bytes{{{labels},container=\"{container}\"}} {}",
                usage.memory_bytes
            );
            // The requests of workload::create_deployment_with's container, as kube-state-metrics
            // reports them.
            let requests = [
                (
                    "cpu",
                    "core",
                    f64::from(workload::CPU_REQUEST_MILLICORES) / 1000.0,
                ),
                (
                    "memory",
                    "byte",
                    f64::from(workload::MEMORY_REQUEST_MIB) * 1_048_576.0,
                ),
            ];
            for (resource, unit, value) in requests {
                let _ = writeln!(
                    text,
                    "kube_pod_container_resource_requests{{{labels},container=\"{container}\",resource=\"{resource}\",unit=\"{unit}\"}} {value}"
                );
            }
            let ready = workload::is_ready(pod);
            for (condition, value) in [("true", ready), ("false", !ready)] {
                let _ = writeln!(
                    text,
                    "kube_pod_status_ready{{{labels},condition=\"{condition}\"}} {}",
                    u8::from(value)
                );
            }
            for owner in pod.owner_references() {
                let _ = writeln!(
                    text,
                    "kube_pod_owner{{{labels},owner_kind=\"{}\",owner_name=\"{}\",owner_is_controller=\"{}\"}} 1",
                    owner.kind,
                    owner.name,
                    owner.controller.unwrap_or(false)
                );
                if owner.kind == "ReplicaSet" {
                    replicasets.insert(owner.name.clone());
                }
            }
        }
        for replicaset in replicasets {
            let _ = writeln!(
                text,
                "kube_replicaset_owner{{namespace=\"{ns}\",replicaset=\"{replicaset}\",owner_kind=\"Deployment\",owner_name=\"{deployment}\",owner_is_controller=\"true\"}} 1"
            );
        }
        exporter.set(&text);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
