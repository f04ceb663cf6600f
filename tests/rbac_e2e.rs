//! The chart's RBAC on a real API server: `helm install` of `charts/scalewise` into the test
//! environment (kube-apiserver v1.20.2 with RBAC, or your cluster with SCALEWISE_E2E_CLUSTER=1),
//! then the real `scalewise run`, with the arguments of the installed Deployment and
//! authenticated as the chart's ServiceAccount (a TokenRequest token, as in a pod), scales a
//! Deployment on a Prometheus metric, writes the policy's status, events and its Lease. The same
//! identity cannot delete Deployments, read Secrets, write core events or touch Leases other
//! than its own (403). Run with `make test`.

mod support;

use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use scalewise::api::ScalingPolicy;
use scalewise::manifest::parse_documents;
use serde_json::{Value, json};
use support::exporter::Exporter;
use support::workload::{create_deployment, free_port, replicas};
use support::{HOW_TO_RUN, TestEnv, install_crd, repo_path, required_env};

const WAIT: Duration = Duration::from_secs(60);

// --- helm ----------------------------------------------------------------------------------------

fn helm() -> Command {
    let path = std::env::var_os("SCALEWISE_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".tools/node_modules/.bin/helm"));
    assert!(
        path.is_file(),
        "helm not found at {}: {HOW_TO_RUN} (`make test` installs the pinned helm into .tools/)",
        path.display()
    );
    let mut command = Command::new(path);
    let home = std::env::temp_dir().join("scalewise-tests-helm");
    command
        .env("HELM_CACHE_HOME", home.join("cache"))
        .env("HELM_CONFIG_HOME", home.join("config"))
        .env("HELM_DATA_HOME", home.join("data"));
    command
}

fn run_helm(args: &[&str]) -> String {
    let out = helm()
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run helm: {e}; {HOW_TO_RUN}"));
    assert!(
        out.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A Helm release of the chart, installed into the test's namespace with the cluster's
/// (admin) KUBECONFIG; uninstalled when dropped, since its ClusterRole and binding outlive the
/// namespace.
struct Release {
    name: String,
    namespace: String,
    /// The objects `helm install` created.
    objects: Vec<Value>,
}

impl Release {
    fn install(env: &TestEnv, sets: &[String]) -> Release {
        let name = env.namespace.clone();
        let mut args: Vec<String> = [
            "install",
            &name,
            &repo_path("charts/scalewise").display().to_string(),
            "--namespace",
            &env.namespace,
            // The tests install the CRD themselves (support::install_crd), concurrently.
            "--skip-crds",
            "--set",
            "image.repository=example/scalewise",
            "--set",
            &format!(
                "prometheus.url={}",
                required_env("SCALEWISE_PROMETHEUS_URL")
            ),
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        for set in sets {
            args.extend(["--set".to_owned(), set.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        // Uninstalled by Drop from here on, also when the install fails half-way.
        let mut release = Release {
            name: name.clone(),
            namespace: env.namespace.clone(),
            objects: Vec::new(),
        };
        run_helm(&args);
        let manifest = run_helm(&["get", "manifest", &name, "--namespace", &env.namespace]);
        release.objects = parse_documents(&manifest)
            .expect("helm's manifest parses")
            .into_iter()
            .map(|d| d.value)
            .collect();
        release
    }

    fn one(&self, kind: &str) -> &Value {
        let found: Vec<&Value> = self.objects.iter().filter(|o| o["kind"] == kind).collect();
        assert_eq!(found.len(), 1, "one {kind} in the release");
        found[0]
    }

    fn service_account(&self) -> String {
        self.one("ServiceAccount")["metadata"]["name"]
            .as_str()
            .expect("ServiceAccount name")
            .to_owned()
    }

    /// The operator container of the installed Deployment.
    fn container(&self) -> &Value {
        &self.one("Deployment")["spec"]["template"]["spec"]["containers"][0]
    }
}

impl Drop for Release {
    fn drop(&mut self) {
        let _ = helm()
            .args(["uninstall", &self.name, "--namespace", &self.namespace])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

// --- the chart's identity ------------------------------------------------------------------------

/// A kubeconfig for the cluster of the current context, authenticated with a fresh token of
/// ServiceAccount `namespace/sa` (TokenRequest, as the kubelet gets one for a pod).
async fn service_account_kubeconfig(env: &TestEnv, sa: &str) -> PathBuf {
    let token = support::service_account_token(env, sa).await;

    let admin =
        Kubeconfig::read().unwrap_or_else(|e| panic!("cannot read KUBECONFIG: {e}; {HOW_TO_RUN}"));
    let context_name = admin.current_context.clone().expect("a current context");
    let context = admin
        .contexts
        .iter()
        .find(|c| c.name == context_name)
        .and_then(|c| c.context.clone())
        .expect("the current context");
    let cluster = admin
        .clusters
        .iter()
        .find(|c| c.name == context.cluster)
        .expect("the context's cluster");
    let kubeconfig = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": cluster.name, "user": sa, "namespace": env.namespace}}],
        "current-context": sa,
    });
    let path =
        std::env::temp_dir().join(format!("scalewise-rbac-{}-{sa}.kubeconfig", env.namespace));
    std::fs::write(
        &path,
        serde_yaml_ng::to_string(&kubeconfig).expect("kubeconfig YAML"),
    )
    .expect("write the kubeconfig");
    path
}

async fn client_from(kubeconfig: &Path) -> Client {
    let config = Kubeconfig::read_from(kubeconfig).expect("read the ServiceAccount's kubeconfig");
    let config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .expect("a config for the ServiceAccount");
    Client::try_from(config).expect("a client for the ServiceAccount")
}

// --- the operator process ------------------------------------------------------------------------

/// `scalewise run` with the installed Deployment's arguments and environment (the metrics server
/// moved to a free port of 127.0.0.1), authenticated as the ServiceAccount. Killed when dropped.
struct Operator {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Operator {
    fn start(release: &Release, kubeconfig: &Path, identity: &str) -> Operator {
        let port = free_port();
        let container = release.container();
        let args: Vec<String> = container["args"]
            .as_array()
            .expect("the container's args")
            .iter()
            .map(|a| a.as_str().expect("a string arg").to_owned())
            .map(|a| {
                if a.starts_with("--metrics-bind=") {
                    format!("--metrics-bind=127.0.0.1:{port}")
                } else if a.starts_with("--secure-metrics-bind=") {
                    "--secure-metrics-bind=127.0.0.1:0".to_owned()
                } else {
                    a
                }
            })
            .collect();
        let mut command = Command::new(env!("CARGO_BIN_EXE_scalewise"));
        command.args(&args);
        // Only what the pod would have: no variable of the test environment.
        for (key, _) in std::env::vars() {
            if key.starts_with("SCALEWISE_") || key == "KUBECONFIG" || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        for var in container["env"].as_array().into_iter().flatten() {
            let name = var["name"].as_str().expect("env name");
            match (&var["value"], &var["valueFrom"]["fieldRef"]["fieldPath"]) {
                (Value::String(value), _) => {
                    command.env(name, value);
                }
                (_, Value::String(field)) if field == "metadata.name" => {
                    command.env(name, identity);
                }
                other => panic!("the test does not know how to set {name} from {other:?}"),
            }
        }
        let log = std::env::temp_dir().join(format!("scalewise-rbac-{}.log", release.namespace));
        let stderr = File::create(&log).expect("operator log file");
        let child = command
            .env("KUBECONFIG", kubeconfig)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("scalewise run starts");
        Operator { child, port, log }
    }

    async fn get(&self, path: &str) -> Option<u16> {
        support::http::request(
            hyper::Method::GET,
            &format!("http://127.0.0.1:{}{path}", self.port),
            &[],
            bytes::Bytes::new(),
        )
        .await
        .ok()
        .map(|r| r.status.as_u16())
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// --- the workload --------------------------------------------------------------------------------

/// A policy scaling Deployment `target` out while this test's exporter reads 90.
async fn create_policy(env: &TestEnv, name: &str, target: &str) {
    let policy: ScalingPolicy = serde_json::from_value(json!({
        "apiVersion": "scalewise.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": target},
            "minReplicas": 1,
            "maxReplicas": 3,
            "interval": "1s",
            "metrics": [{
                "name": "load",
                "query": format!("max(e2e_load{{job=\"{}\"}})", env.namespace),
                "scaleOutAbove": 70,
                "scaleInBelow": 30
            }],
            "behavior": {"scaleOut": {"step": 1, "cooldown": "0s"}}
        }
    }))
    .expect("a ScalingPolicy");
    env.api::<ScalingPolicy>()
        .create(&PostParams::default(), &policy)
        .await
        .expect("create ScalingPolicy");
}

// --- what the operator can and cannot do -------------------------------------------------------

/// Runs the operator as the chart's ServiceAccount until it has scaled `web` from 1 to 3, and
/// checks everything it wrote; returns the ServiceAccount's client.
async fn operator_does_its_job(env: &TestEnv, release: &Release) -> Client {
    create_deployment(env, "web", 1).await;
    create_policy(env, "web", "web").await;
    let sa = release.service_account();
    let kubeconfig = service_account_kubeconfig(env, &sa).await;
    let identity = format!("{}-op", env.namespace);
    let op = Operator::start(release, &kubeconfig, &identity);
    let context = || format!("operator log {}:\n{}", op.log.display(), op.logs());

    let what = format!(
        "Deployment web to reach 3 replicas, as {}/{sa}",
        env.namespace
    );
    let reached = tokio::time::timeout(WAIT, async {
        loop {
            if replicas(env, "web").await == 3 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        reached.is_ok(),
        "timed out waiting for {what}; {}",
        context()
    );

    // Its status: server-side apply on scalingpolicies/status.
    let policy = env
        .api::<ScalingPolicy>()
        .get("web")
        .await
        .expect("read the policy");
    let status = policy.status.expect("the operator wrote a status");
    assert!(status.current_replicas.is_some(), "{}", context());
    assert!(status.last_decision.is_some(), "{}", context());

    // Its events: events.k8s.io/v1, reported as scalewise by this replica.
    let events = Api::<Event>::namespaced(env.client.clone(), &env.namespace);
    let scaled = tokio::time::timeout(WAIT, async {
        loop {
            let found = events
                .list(&ListParams::default())
                .await
                .ok()
                .and_then(|list| {
                    list.items
                        .into_iter()
                        .find(|e| e.reason.as_deref() == Some("ScaledOut"))
                });
            if let Some(event) = found {
                return event;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("timed out waiting for a ScaledOut event; {}", context()));
    assert_eq!(scaled.reporting_controller.as_deref(), Some("scalewise"));
    assert_eq!(
        scaled.reporting_instance.as_deref(),
        Some(identity.as_str())
    );

    // Its Lease, in the release namespace, held by this replica: the leader's, or with sharding
    // its own.
    let sharded = release.container()["args"]
        .as_array()
        .is_some_and(|args| args.iter().any(|a| a == "--sharding=true"));
    let lease_name = if sharded {
        scalewise::controller::shard::lease_name("scalewise-leader", &identity)
    } else {
        "scalewise-leader".to_owned()
    };
    let lease = Api::<Lease>::namespaced(env.client.clone(), &env.namespace)
        .get(&lease_name)
        .await
        .unwrap_or_else(|e| panic!("the Lease: {e}; {}", context()));
    assert_eq!(
        lease.spec.and_then(|s| s.holder_identity).as_deref(),
        Some(identity.as_str())
    );
    assert_eq!(op.get("/readyz").await, Some(200), "{}", context());
    assert_eq!(op.get("/healthz").await, Some(200), "{}", context());

    let logs = op.logs();
    if let Some(line) = logs.lines().find(|line| was_refused(line)) {
        panic!("the operator was refused something:\n{line}\n\nits whole log:\n{logs}");
    }
    client_from(&kubeconfig).await
}

/// Whether a line of the operator's JSON log reports a refusal by the API server. Only the
/// fields that carry text from the server are read: a timestamp's digits may spell "403".
fn was_refused(line: &str) -> bool {
    let Ok(Value::Object(mut fields)) = serde_json::from_str::<Value>(line) else {
        return line.to_lowercase().contains("forbidden");
    };
    fields.remove("timestamp");
    let text = Value::Object(fields).to_string().to_lowercase();
    text.contains("forbidden") || text.contains("code: 403") || text.contains("\"code\":403")
}

#[test]
fn a_refusal_is_found_in_a_log_line_and_a_timestamp_is_not_one() {
    assert!(!was_refused(
        r#"{"timestamp":"2026-11-25T13:42:48.903403Z","level":"INFO","message":"starting"}"#
    ));
    assert!(was_refused(
        r#"{"timestamp":"t","level":"WARN","error":"ApiError: deployments.apps \"web\" is forbidden: User cannot patch"}"#
    ));
    assert!(was_refused(
        r#"{"level":"WARN","error":"ErrorResponse { code: 403 }"}"#
    ));
}

/// Expects a 403 from the API server for `attempt`.
async fn forbidden<T: std::fmt::Debug>(what: &str, attempt: impl Future<Output = kube::Result<T>>) {
    match attempt.await {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what}: expected 403 Forbidden, got {other:?}"),
    }
}

/// Asks the API server whether the client's identity may do `verb` on `resource`.
async fn may(
    client: &Client,
    verb: &str,
    group: &str,
    resource: &str,
    namespace: Option<&str>,
    name: Option<&str>,
) -> bool {
    let (resource, subresource) = match resource.split_once('/') {
        Some((r, s)) => (r, Some(s.to_owned())),
        None => (resource, None),
    };
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                group: Some(group.into()),
                resource: Some(resource.into()),
                subresource,
                namespace: namespace.map(Into::into),
                name: name.map(Into::into),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let answer = Api::<SelfSubjectAccessReview>::all(client.clone())
        .create(&PostParams::default(), &review)
        .await
        .expect("SelfSubjectAccessReview");
    answer.status.map(|s| s.allowed).unwrap_or(false)
}

/// What no install of the chart may allow, in the operator's namespace and elsewhere.
async fn cannot_do_anything_else(env: &TestEnv, client: &Client, other_namespace: &str) {
    let ns = env.namespace.as_str();
    let deployments = Api::<Deployment>::namespaced(client.clone(), ns);
    forbidden(
        "delete a Deployment",
        deployments.delete("web", &DeleteParams::default()),
    )
    .await;
    let mut changed = env.api::<Deployment>().get("web").await.expect("read web");
    changed.metadata.managed_fields = None;
    forbidden(
        "replace a Deployment",
        deployments.replace("web", &PostParams::default(), &changed),
    )
    .await;
    forbidden(
        "patch a Deployment's spec",
        deployments.patch(
            "web",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"paused": true}})),
        ),
    )
    .await;

    let secrets = Api::<Secret>::namespaced(client.clone(), ns);
    forbidden(
        "list Secrets in its namespace",
        secrets.list(&ListParams::default()),
    )
    .await;
    forbidden("get a Secret", secrets.get("anything")).await;
    forbidden(
        "list Secrets everywhere",
        Api::<Secret>::all(client.clone()).list(&ListParams::default()),
    )
    .await;

    // Leases: its own only, and never by update.
    let other_leases = Api::<Lease>::namespaced(client.clone(), other_namespace);
    forbidden(
        "get a Lease in another namespace",
        other_leases.get("scalewise-leader"),
    )
    .await;
    let lease = Lease {
        metadata: ObjectMeta {
            name: Some("scalewise-leader".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    forbidden(
        "create a Lease in another namespace",
        other_leases.create(&PostParams::default(), &lease),
    )
    .await;
    forbidden(
        "patch a Lease in another namespace",
        other_leases.patch(
            "scalewise-leader",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {}})),
        ),
    )
    .await;
    let own_leases = Api::<Lease>::namespaced(client.clone(), ns);
    forbidden(
        "get another Lease in its namespace",
        own_leases.get("kube-controller-manager"),
    )
    .await;
    let mut own = own_leases
        .get("scalewise-leader")
        .await
        .expect("get its own Lease");
    own.metadata.managed_fields = None;
    forbidden(
        "update (replace) its own Lease",
        own_leases.replace("scalewise-leader", &PostParams::default(), &own),
    )
    .await;

    // Core events are not granted: the events above were all events.k8s.io/v1.
    assert!(
        !may(client, "create", "", "events", Some(ns), None).await,
        "core events"
    );
    for (verb, group, resource) in [
        ("create", "scalewise.dev", "scalingpolicies"),
        ("update", "scalewise.dev", "scalingpolicies"),
        ("update", "scalewise.dev", "scalingpolicies/status"),
        ("update", "apps", "deployments/scale"),
        ("update", "apps", "deployments"),
        ("delete", "scalewise.dev", "scalingpolicies"),
        ("create", "apps", "deployments"),
        ("get", "", "pods"),
        ("get", "", "pods/log"),
        ("create", "", "pods/exec"),
        ("delete", "", "pods"),
        ("patch", "", "pods"),
        ("update", "apps", "statefulsets"),
        ("patch", "apps", "replicasets"),
        ("get", "", "configmaps"),
        ("create", "autoscaling", "horizontalpodautoscalers"),
        ("delete", "coordination.k8s.io", "leases"),
    ] {
        assert!(
            !may(client, verb, group, resource, Some(ns), None).await,
            "{verb} {group}/{resource}"
        );
    }
    // And what it needs, as the API server sees it.
    for (verb, group, resource) in [
        ("patch", "apps", "deployments/scale"),
        ("patch", "apps", "statefulsets/scale"),
        ("list", "", "pods"),
        ("watch", "", "pods"),
        ("watch", "apps", "replicasets"),
        ("watch", "apps", "statefulsets"),
        ("patch", "scalewise.dev", "scalingpolicies/status"),
        ("watch", "autoscaling", "horizontalpodautoscalers"),
        ("create", "events.k8s.io", "events"),
    ] {
        assert!(
            may(client, verb, group, resource, Some(ns), None).await,
            "{verb} {group}/{resource}"
        );
    }
}

/// A second namespace, to try the Leases of (deleted at the end).
struct OtherNamespace {
    name: String,
    config: Config,
}

impl OtherNamespace {
    async fn create(env: &TestEnv) -> OtherNamespace {
        let name = format!("{}-other", env.namespace);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(BTreeMap::from([(
                    support::MANAGED_BY.0.to_owned(),
                    support::MANAGED_BY.1.to_owned(),
                )])),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(env.client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create a second namespace");
        // An existing Lease there, so "forbidden" is not "not found".
        let lease = Lease {
            metadata: ObjectMeta {
                name: Some("scalewise-leader".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Lease>::namespaced(env.client.clone(), &name)
            .create(&PostParams::default(), &lease)
            .await
            .expect("create a Lease in the second namespace");
        OtherNamespace {
            name,
            config: env.kube_config().clone(),
        }
    }
}

impl Drop for OtherNamespace {
    fn drop(&mut self) {
        support::delete_when_dropped::<Namespace>(&self.config, &self.name);
    }
}

/// Serves `e2e_load 90` for this test, scraped every second.
async fn setup(test: &str) -> (TestEnv, Exporter) {
    let env = TestEnv::new(test).await;
    install_crd(&env.client).await;
    let exporter = Exporter::start(&env.namespace, "e2e_load 90\n").await;
    env.scrape(&exporter).await;
    (env, exporter)
}

#[tokio::test]
async fn cluster_wide_chart_rbac_lets_the_operator_scale_and_nothing_more() {
    let (env, _exporter) = setup("rbac-cluster").await;
    // The ClusterRole of the default install. The operator is told to watch only this test's
    // namespace (with the chart's extraArgs), so that it leaves other tests' policies alone.
    let release = Release::install(
        &env,
        &[format!("extraArgs[0]=--namespace={}", env.namespace)],
    );
    assert!(
        release.objects.iter().any(|o| o["kind"] == "ClusterRole"),
        "the default install grants cluster-wide"
    );
    let client = operator_does_its_job(&env, &release).await;
    let other = OtherNamespace::create(&env).await;
    cannot_do_anything_else(&env, &client, &other.name).await;
    // Cluster-wide reads are what a ClusterRole gives.
    assert!(may(&client, "list", "apps", "deployments", None, None).await);
    assert!(
        may(
            &client,
            "patch",
            "apps",
            "deployments/scale",
            Some(&other.name),
            None
        )
        .await
    );
}

/// With sharding, the chart's Role lets a replica create, renew and list its group's Leases (the
/// only replica, it owns every policy and scales), and still not read or update a Lease by name.
#[tokio::test]
async fn sharded_chart_rbac_lets_a_replica_hold_its_own_lease_and_scale() {
    let (env, _exporter) = setup("rbac-shard").await;
    let release = Release::install(
        &env,
        &[
            format!("extraArgs[0]=--namespace={}", env.namespace),
            "sharding.enabled=true".to_owned(),
            "replicaCount=2".to_owned(),
        ],
    );
    let client = operator_does_its_job(&env, &release).await;
    let ns = Some(env.namespace.as_str());
    for verb in ["list", "patch", "delete", "create"] {
        assert!(
            may(&client, verb, "coordination.k8s.io", "leases", ns, None).await,
            "{verb}"
        );
    }
    for verb in ["get", "update", "watch"] {
        assert!(
            !may(&client, verb, "coordination.k8s.io", "leases", ns, None).await,
            "{verb}"
        );
    }
}

#[tokio::test]
async fn namespaced_chart_rbac_lets_the_operator_scale_its_namespaces_only() {
    let (env, _exporter) = setup("rbac-namespaced").await;
    let release = Release::install(&env, &[format!("watchNamespaces={{{}}}", env.namespace)]);
    // Roles only, but for what cannot be namespaced: the reviews of /metrics clients' tokens
    // (system:auth-delegator, bound cluster-wide) and the ClusterRole of who may scrape it.
    let cluster_wide: Vec<(String, String)> = release
        .objects
        .iter()
        .filter(|o| {
            matches!(
                o["kind"].as_str(),
                Some("ClusterRole" | "ClusterRoleBinding")
            )
        })
        .map(|o| {
            (
                o["kind"].as_str().unwrap_or_default().to_owned(),
                o["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    assert!(
        cluster_wide.iter().all(|(kind, name)| {
            (kind == "ClusterRole" && name.ends_with("-metrics-reader"))
                || (kind == "ClusterRoleBinding" && name.ends_with("-auth-delegator"))
        }) && cluster_wide.len() == 2,
        "watchNamespaces grants Roles only, beside the token reviews: {cluster_wide:?}"
    );
    let client = operator_does_its_job(&env, &release).await;
    for (group, resource) in [
        ("authentication.k8s.io", "tokenreviews"),
        ("authorization.k8s.io", "subjectaccessreviews"),
    ] {
        assert!(
            may(&client, "create", group, resource, None, None).await,
            "{resource}: the reviews of /metrics clients"
        );
    }
    let other = OtherNamespace::create(&env).await;
    cannot_do_anything_else(&env, &client, &other.name).await;
    // Nothing outside the watched namespace.
    forbidden(
        "list Deployments everywhere",
        Api::<Deployment>::all(client.clone()).list(&ListParams::default()),
    )
    .await;
    forbidden(
        "list Deployments in another namespace",
        Api::<Deployment>::namespaced(client.clone(), &other.name).list(&ListParams::default()),
    )
    .await;
    assert!(
        !may(
            &client,
            "patch",
            "apps",
            "deployments/scale",
            Some(&other.name),
            None
        )
        .await
    );
    assert!(
        !may(
            &client,
            "list",
            "scalewise.dev",
            "scalingpolicies",
            None,
            None
        )
        .await
    );
}

/// A `scalewise run` authenticated as a ServiceAccount that may do nothing: its policy watch can
/// never list. `/healthz` says so after `--list-failure-timeout`, and SIGTERM still ends it.
#[tokio::test]
async fn an_operator_that_cannot_list_its_policies_is_unhealthy_and_still_stops_on_sigterm() {
    let env = TestEnv::new("cannot-list").await;
    install_crd(&env.client).await;
    let sa = "nothing-allowed";
    support::create_service_account(&env, sa).await;
    let kubeconfig = service_account_kubeconfig(&env, sa).await;
    let port = free_port();
    let log =
        std::env::temp_dir().join(format!("scalewise-rbac-{}-cannot-list.log", env.namespace));
    let mut command = Command::new(env!("CARGO_BIN_EXE_scalewise"));
    for (key, _) in std::env::vars() {
        if key.starts_with("SCALEWISE_") || key == "KUBECONFIG" {
            command.env_remove(key);
        }
    }
    let child = command
        .args([
            "run",
            "--leader-election",
            "false",
            "--namespace",
            &env.namespace,
        ])
        .args([
            "--prometheus-url",
            &required_env("SCALEWISE_PROMETHEUS_URL"),
        ])
        .args(["--list-failure-timeout", "3s", "--shutdown-timeout", "2s"])
        .args(["--metrics-bind", &format!("127.0.0.1:{port}")])
        .args(["--secure-metrics-bind", "127.0.0.1:0"])
        .env("KUBECONFIG", &kubeconfig)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(File::create(&log).expect("log file"))
        .spawn()
        .expect("scalewise run starts");
    let mut op = Operator {
        child,
        port,
        log: log.clone(),
    };
    let url = format!("http://127.0.0.1:{port}/healthz");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut unhealthy = None;
    while std::time::Instant::now() < deadline {
        if let Ok(r) =
            support::http::request(hyper::Method::GET, &url, &[], bytes::Bytes::new()).await
            && r.status.as_u16() == 503
        {
            unhealthy = Some(r.text());
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let body = unhealthy.unwrap_or_else(|| panic!("/healthz never failed; log:\n{}", op.logs()));
    assert!(body.contains("failed to list for"), "{body}");
    // The metric tells how long, refreshed every 5 s.
    let metrics_url = format!("http://127.0.0.1:{port}/metrics");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (mut failing, mut last) = (false, String::new());
    while !failing && std::time::Instant::now() < deadline {
        last = match support::http::request(
            hyper::Method::GET,
            &metrics_url,
            &[],
            bytes::Bytes::new(),
        )
        .await
        {
            Ok(r) => r
                .text()
                .lines()
                .find(|l| l.starts_with("scalewise_policy_watch_failing_seconds "))
                .unwrap_or("no scalewise_policy_watch_failing_seconds line")
                .to_owned(),
            Err(e) => e,
        };
        failing = last
            .strip_prefix("scalewise_policy_watch_failing_seconds ")
            .and_then(|v| v.trim().parse::<f64>().ok())
            .is_some_and(|v| v > 0.0);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        failing,
        "the watch failing time stayed 0; /metrics last said: {last}; log:\n{}",
        op.logs()
    );

    let code = support::sigterm(&mut op.child, Duration::from_secs(30));
    assert!(
        code.is_some(),
        "still running 30 s after SIGTERM; log:\n{}",
        op.logs()
    );
    // Every line of the log is bounded, and none holds an API body.
    assert!(op.logs().lines().all(|l| l.len() < 4096), "{}", op.logs());
}
