//! Support for scalewise's integration and end-to-end tests, included by each
//! test file with `mod support;`.
//!
//! The servers come from the test environment (`tests/env/`), which `make test`
//! starts once around the whole test suite and stops afterwards; its variables
//! tell the tests where everything is. [`TestEnv::new`] gives each test a fresh
//! namespace, a [`kube::Client`], and the Prometheus and VictoriaMetrics APIs
//! with helpers to push samples ([`TestEnv::push`]) or serve them from an
//! [`exporter::Exporter`] that both servers scrape ([`TestEnv::scrape`]).
//!
//! Without the environment's variables the tests fail, naming `make test`;
//! they never pass by skipping.

// Each tests/*.rs is its own crate and uses its own subset of these helpers.
#![allow(dead_code)]

pub mod counting;
pub mod exporter;
pub mod http;
pub mod kwok;
pub mod metrics;
pub mod operator;
pub mod pod_series;
pub mod policies;
pub mod promdata;
pub mod proxy;
pub mod workload;

use std::{
    collections::BTreeMap,
    fs::OpenOptions,
    future::Future,
    hash::{BuildHasher, RandomState},
    io::Write,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use k8s_openapi::{
    api::core::v1::Namespace,
    apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
};
use kube::{
    Api, Client, Config, Resource,
    api::{ApiResource, DeleteParams, ObjectMeta, PostParams},
    config::KubeConfigOptions,
    core::GroupVersionKind,
};

use exporter::Exporter;
use metrics::{PromApi, Series};

/// What to do when the environment is missing; part of every such failure.
pub const HOW_TO_RUN: &str = "these tests need scalewise's test environment: run them with \
`make test`, or start it first with `eval \"$(make -s test-env-up)\"` (and stop it with \
`make test-env-down`); to test against your own cluster, also set SCALEWISE_E2E_CLUSTER=1 \
(README.md, \"Test environment\")";

/// Label put on every namespace the tests create.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "scalewise-tests");

/// A variable of the test environment; panics naming `make test` when unset.
pub fn required_env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: {HOW_TO_RUN}"),
    }
}

/// True when the tests run against the user's cluster (SCALEWISE_E2E_CLUSTER=1).
pub fn e2e_cluster() -> bool {
    std::env::var("SCALEWISE_E2E_CLUSTER").is_ok_and(|v| v == "1")
}

/// A file of this repository, e.g. `repo_path("crds/scalingpolicy.yaml")`.
pub fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// A name no other test (or earlier run) uses: `sw-<slug of base>-<random>`,
/// a valid DNS-1123 label.
pub fn unique_name(base: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut slug: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    slug.truncate(40);
    let slug = slug.trim_matches('-');
    let random = RandomState::new().hash_one((
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        Instant::now(),
    ));
    format!("sw-{slug}-{:06x}", random & 0xff_ffff)
}

/// Polls `check` until it returns `Some`, every 100 ms; panics naming `what`
/// after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The kube configuration: the environment's kubeconfig (which must verify
/// the server's certificate), or with SCALEWISE_E2E_CLUSTER=1 the user's.
pub async fn kube_config() -> Config {
    if e2e_cluster() {
        return Config::infer().await.unwrap_or_else(|e| {
            panic!("SCALEWISE_E2E_CLUSTER=1 but no usable kubeconfig: {e}; {HOW_TO_RUN}")
        });
    }
    let path = required_env("KUBECONFIG");
    let config = Config::from_kubeconfig(&KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("cannot load KUBECONFIG={path}: {e}; {HOW_TO_RUN}"));
    assert!(
        !config.accept_invalid_certs
            && (config.root_cert.is_some() || config.root_cert_file.is_some()),
        "the test environment's kubeconfig must verify the server certificate"
    );
    config
}

/// One test's share of the environment.
pub struct TestEnv {
    /// A client of the test cluster.
    pub client: Client,
    /// A namespace created for this test alone.
    pub namespace: String,
    pub prometheus: PromApi,
    pub victoriametrics: PromApi,
    /// The scrape configuration both metrics servers read; see [`TestEnv::scrape`].
    pub prometheus_config: PathBuf,
    /// Where file_sd target files go; see [`TestEnv::scrape_via_file_sd`].
    pub file_sd_dir: PathBuf,
    kube_config: Config,
}

impl TestEnv {
    /// Connects to the environment and creates a fresh namespace named after
    /// `test`. Panics naming `make test` when the environment is missing.
    pub async fn new(test: &str) -> TestEnv {
        let prometheus = PromApi {
            name: "Prometheus",
            url: required_env("SCALEWISE_PROMETHEUS_URL"),
        };
        let victoriametrics = PromApi {
            name: "VictoriaMetrics",
            url: required_env("SCALEWISE_VICTORIAMETRICS_URL"),
        };
        let prometheus_config = PathBuf::from(required_env("SCALEWISE_PROMETHEUS_CONFIG"));
        let file_sd_dir = PathBuf::from(required_env("SCALEWISE_PROMETHEUS_FILE_SD_DIR"));
        let kube_config = kube_config().await;
        let client = Client::try_from(kube_config.clone())
            .unwrap_or_else(|e| panic!("cannot build a kube client: {e}"));

        let namespace = unique_name(test);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(namespace.clone()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY.0.to_owned(),
                    MANAGED_BY.1.to_owned(),
                )])),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "cannot create namespace {namespace} at {}: {e}",
                    kube_config.cluster_url
                )
            });

        TestEnv {
            client,
            namespace,
            prometheus,
            victoriametrics,
            prometheus_config,
            file_sd_dir,
            kube_config,
        }
    }

    /// The kube configuration its client was built from.
    pub fn kube_config(&self) -> &Config {
        &self.kube_config
    }

    /// The API of a namespaced kind in this test's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        <K as Resource>::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Writes the same samples, with their timestamps, to Prometheus (remote
    /// write) and to VictoriaMetrics (text import); both can be queried at once.
    /// Give the series a label unique to the test, e.g. `test=<namespace>`.
    pub async fn push(&self, series: &[Series]) {
        self.prometheus.remote_write(series).await;
        self.victoriametrics.import_prometheus_text(series).await;
    }

    /// Has Prometheus and VictoriaMetrics scrape `exporter` every second as
    /// job `exporter.job`, its series labelled `namespace="<this test's
    /// namespace>"` as a Kubernetes scrape would label a pod's (a policy reads
    /// only its own namespace's series): appends a job to the shared scrape
    /// configuration under an exclusive flock(2), reloads both servers, and
    /// waits until both report `up{job="<job>"} == 1`.
    pub async fn scrape(&self, exporter: &Exporter) {
        let stanza = format!(
            "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n        labels: {{namespace: '{namespace}'}}\n",
            job = exporter.job,
            target = exporter.target(),
            namespace = self.namespace,
        );
        {
            let path = &self.prometheus_config;
            let mut file = OpenOptions::new()
                .append(true)
                .open(path)
                .unwrap_or_else(|e| panic!("cannot open {}: {e}; {HOW_TO_RUN}", path.display()));
            file.lock()
                .unwrap_or_else(|e| panic!("cannot lock {}: {e}", path.display()));
            file.write_all(stanza.as_bytes())
                .unwrap_or_else(|e| panic!("cannot append to {}: {e}", path.display()));
            // Dropping the file releases the lock.
        }
        for api in [&self.prometheus, &self.victoriametrics] {
            reload(api).await;
        }
        self.wait_until_up(&format!("up{{job=\"{}\"}}", exporter.job))
            .await;
    }

    /// Like [`TestEnv::scrape`], through file-based service discovery: the
    /// target goes into its own file (no lock needed) with the label
    /// `exporter="<job>"`, under the job `file-sd`; no reload is needed.
    pub async fn scrape_via_file_sd(&self, exporter: &Exporter) {
        let content = serde_json::json!([{
            "targets": [exporter.target()],
            "labels": { "exporter": exporter.job },
        }])
        .to_string();
        let tmp = self.file_sd_dir.join(format!("{}.tmp", exporter.job));
        let target = self.file_sd_dir.join(format!("{}.json", exporter.job));
        std::fs::write(&tmp, content)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}; {HOW_TO_RUN}", tmp.display()));
        std::fs::rename(&tmp, &target)
            .unwrap_or_else(|e| panic!("cannot rename to {}: {e}", target.display()));
        self.wait_until_up(&format!("up{{exporter=\"{}\"}}", exporter.job))
            .await;
    }

    async fn wait_until_up(&self, query: &str) {
        for api in [&self.prometheus, &self.victoriametrics] {
            api.wait_for_value(query, 1.0, Duration::from_secs(30))
                .await;
        }
    }
}

/// POST /-/reload, retried: a reload can read the configuration while another
/// test is appending to it.
async fn reload(api: &PromApi) {
    let url = format!("{}/-/reload", api.url);
    let mut last = String::new();
    for _ in 0..20 {
        match http::post_ok(&url, &[], bytes::Bytes::new()).await {
            Ok(_) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{}: reload failed: {last}", api.name);
}

impl Drop for TestEnv {
    /// Deletes the namespace (best effort), so that runs against a real
    /// cluster leave nothing behind.
    fn drop(&mut self) {
        delete_when_dropped::<Namespace>(&self.kube_config, &self.namespace);
    }
}

/// Deletes cluster-scoped object `name` of kind `K` (best effort, within 10 s), from a `Drop`:
/// the test's runtime may be gone or busy, hence a thread with its own runtime and client.
pub(crate) fn delete_when_dropped<K>(config: &Config, name: &str)
where
    K: Resource<Scope = k8s_openapi::ClusterResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    <K as Resource>::DynamicType: Default,
{
    let config = config.clone();
    let name = name.to_owned();
    let cleanup = std::thread::spawn(move || {
        let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        runtime.block_on(async move {
            let Ok(client) = Client::try_from(config) else {
                return;
            };
            let objects = Api::<K>::all(client);
            let params = DeleteParams::background();
            let delete = objects.delete(&name, &params);
            let _ = tokio::time::timeout(Duration::from_secs(10), delete).await;
        });
    });
    let _ = cleanup.join();
}

/// Creates the CRD from `crds/scalingpolicy.yaml` (or replaces it with that
/// file's version when it exists) and waits until it is Established.
pub async fn install_crd(client: &Client) -> CustomResourceDefinition {
    let path = repo_path("crds/scalingpolicy.yaml");
    let yaml = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let crd: CustomResourceDefinition = serde_yaml_ng::from_str(&yaml)
        .unwrap_or_else(|e| panic!("{} is not a CustomResourceDefinition: {e}", path.display()));
    let name = crd
        .metadata
        .name
        .clone()
        .unwrap_or_else(|| panic!("{} has no metadata.name", path.display()));
    let api = Api::<CustomResourceDefinition>::all(client.clone());

    // Several test processes may do this at once: retry on conflicts.
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result = match api.get_opt(&name).await {
            Ok(None) => api.create(&PostParams::default(), &crd).await,
            Ok(Some(existing)) => {
                let mut replacement = crd.clone();
                replacement.metadata.resource_version = existing.metadata.resource_version;
                api.replace(&name, &PostParams::default(), &replacement)
                    .await
            }
            Err(e) => Err(e),
        };
        match result {
            Ok(_) => break,
            Err(kube::Error::Api(status)) if status.code == 409 && attempts < 10 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot create or replace CRD {name}: {e}"),
        }
    }

    eventually(
        &format!("CRD {name} to be Established"),
        Duration::from_secs(30),
        || async {
            let crd = api.get(&name).await.ok()?;
            let established = crd
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            established.then_some(crd)
        },
    )
    .await
}

/// The served storage version of a CRD as a dynamic API resource.
pub fn crd_resource(crd: &CustomResourceDefinition) -> ApiResource {
    let version = crd
        .spec
        .versions
        .iter()
        .find(|v| v.storage)
        .or_else(|| crd.spec.versions.first())
        .unwrap_or_else(|| panic!("CRD {:?} has no versions", crd.metadata.name));
    let gvk = GroupVersionKind::gvk(&crd.spec.group, &version.name, &crd.spec.names.kind);
    ApiResource::from_gvk_with_plural(&gvk, &crd.spec.names.plural)
}

/// Stores `value` as a ScalingPolicy the way an API server whose CRD has no bound on the field
/// stores it: the CRD's `maximum` of `spec.maxReplicas` is lifted for the write (an object written
/// before an upgrade added the bound), and put back by the next test that installs the CRD.
pub async fn store_unbounded(env: &TestEnv, value: serde_json::Value) {
    use kube::api::DynamicObject;
    let resource = ApiResource::erase::<scalewise::api::ScalingPolicy>(&());
    let policies: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource);
    let object: DynamicObject = serde_json::from_value(value).expect("a ScalingPolicy object");
    let mut last = String::new();
    // Other tests re-install the CRD concurrently: lift the bound and write until both hold.
    for _ in 0..20 {
        if let Err(e) = lift_max_replicas_bound(env).await {
            last = e;
            continue;
        }
        match policies.create(&PostParams::default(), &object).await {
            Ok(_) => return,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("could not store the unbounded policy: {last}");
}

/// Sends SIGTERM to `child` and waits up to `timeout` for it to exit; its exit status, or `None`
/// while it still runs.
pub fn sigterm(
    child: &mut std::process::Child,
    timeout: Duration,
) -> Option<std::process::ExitStatus> {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

/// Lifts the `maximum` of `spec.maxReplicas` and the spec's CEL rule from the installed CRD, as an
/// API server whose CRD predates the bound has it (the next test that installs the CRD puts both
/// back).
pub async fn lift_max_replicas_bound(env: &TestEnv) -> Result<(), String> {
    use serde_json::Value;
    let crds = Api::<CustomResourceDefinition>::all(env.client.clone());
    let crd = crds
        .get("scalingpolicies.scalewise.dev")
        .await
        .map_err(|e| e.to_string())?;
    let mut crd = serde_json::to_value(crd).map_err(|e| e.to_string())?;
    if let Some(max) = crd
        .pointer_mut(
            "/spec/versions/0/schema/openAPIV3Schema/properties/spec/properties/maxReplicas",
        )
        .and_then(Value::as_object_mut)
    {
        max.remove("maximum");
        // API servers of recent releases check `format: int32` as well.
        max.remove("format");
    }
    // And its CEL rule (`minReplicas <= maxReplicas`), which API servers from 1.25 on evaluate
    // and which refuses a value beyond int32 as well: the CRD from before both.
    if let Some(spec) = crd
        .pointer_mut("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
        .and_then(Value::as_object_mut)
    {
        spec.remove("x-kubernetes-validations");
    }
    let crd: CustomResourceDefinition = serde_json::from_value(crd).map_err(|e| e.to_string())?;
    crds.replace(
        "scalingpolicies.scalewise.dev",
        &PostParams::default(),
        &crd,
    )
    .await
    .map(|_| ())
    .map_err(|e| e.to_string())
}

/// Creates ServiceAccount `name` in the test's namespace.
pub async fn create_service_account(env: &TestEnv, name: &str) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    env.api::<ServiceAccount>()
        .create(
            &PostParams::default(),
            &ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..ObjectMeta::default()
                },
                ..ServiceAccount::default()
            },
        )
        .await
        .unwrap_or_else(|e| panic!("create ServiceAccount {}/{name}: {e}", env.namespace));
}

/// A token of ServiceAccount `name` of the test's namespace, valid for an hour (TokenRequest).
pub async fn service_account_token(env: &TestEnv, name: &str) -> String {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token: TokenRequest = env
        .api::<ServiceAccount>()
        .create_subresource("token", name, &PostParams::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("TokenRequest for {}/{name}: {e}", env.namespace));
    token
        .status
        .unwrap_or_else(|| panic!("no token for {}/{name}", env.namespace))
        .token
}
