//! The examples users start from: every file in `examples/` holding a ScalingPolicy passes
//! `scalewise check`, the three install examples show what they promise, and the other objects
//! in them (Deployments, HorizontalPodAutoscalers) validate with `kubernetes-validate --strict`
//! (installed by `make test`).

use std::path::{Path, PathBuf};
use std::process::Command;

use scalewise::manifest::parse_documents;
use serde_json::Value;

const HOW_TO_GET_TOOLS: &str = "run the tests with `make test` (or install the pinned tools \
first with `make tools`)";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// Every YAML file under examples/, recursively, sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            files.push(path);
        }
    }
    files.sort();
    files
}

fn documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    parse_documents(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .into_iter()
        .map(|d| d.value)
        .collect()
}

fn is_policy(doc: &Value) -> bool {
    doc["kind"] == "ScalingPolicy"
        && doc["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("scalewise.dev/"))
}

fn policy_of(file: &str) -> (Value, Vec<Value>) {
    let docs = documents(&repo_path(file));
    let policies: Vec<&Value> = docs.iter().filter(|d| is_policy(d)).collect();
    assert_eq!(policies.len(), 1, "{file}: one ScalingPolicy");
    let policy = policies[0].clone();
    (policy, docs)
}

#[test]
fn every_example_policy_passes_scalewise_check() {
    let files: Vec<PathBuf> = yaml_files(&repo_path("examples"))
        .into_iter()
        .filter(|f| documents(f).iter().any(is_policy))
        .collect();
    for wanted in [
        "checkout.yaml",
        "web-service.yaml",
        "queue-worker.yaml",
        "shadow-hpa.yaml",
        "recommended.yaml",
    ] {
        assert!(
            files.iter().any(|f| f.ends_with(wanted)),
            "examples/{wanted} holds no ScalingPolicy"
        );
    }
    for file in &files {
        // The queue worker reads its broker's namespace under the operator's grant (README,
        // "Multi-tenancy"); the others read only their own.
        let grant: &[&str] = if file.ends_with("queue-worker.yaml") {
            &[
                "-n",
                "shop",
                "--cross-namespace-grant",
                "shop=messaging:rabbitmq_queue_messages_ready",
            ]
        } else {
            &[]
        };
        let out = Command::new(env!("CARGO_BIN_EXE_scalewise"))
            .arg("check")
            .arg("-f")
            .arg(file)
            .args(grant)
            .output()
            .expect("run scalewise check");
        assert!(
            out.status.success(),
            "scalewise check -f {} failed:\n{}{}",
            file.display(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The kind of source of each metric: cpu, memory, latency, errorRate, requestRate or query.
fn sources(policy: &Value) -> Vec<&'static str> {
    policy["spec"]["metrics"]
        .as_array()
        .expect("metrics")
        .iter()
        .map(|m| {
            [
                "cpu",
                "memory",
                "latency",
                "errorRate",
                "requestRate",
                "query",
            ]
            .into_iter()
            .find(|k| !m[k].is_null())
            .expect("a metric source")
        })
        .collect()
}

fn target(policy: &Value) -> &str {
    policy["spec"]["targetRef"]["name"]
        .as_str()
        .expect("targetRef.name")
}

fn has_deployment(docs: &[Value], name: &str) -> bool {
    docs.iter()
        .any(|d| d["kind"] == "Deployment" && d["metadata"]["name"] == name)
}

#[test]
fn the_web_service_scales_a_deployment_on_cpu_latency_and_errors() {
    let (policy, docs) = policy_of("examples/web-service.yaml");
    assert_eq!(sources(&policy), ["cpu", "latency", "errorRate"]);
    let metrics = policy["spec"]["metrics"].as_array().expect("metrics");
    assert!(!metrics[0]["scaleOutAbove"].is_null() || !metrics[0]["target"].is_null());
    assert!(metrics[1]["latency"]["histogram"].is_string());
    assert!(
        has_deployment(&docs, target(&policy)),
        "`kubectl apply -f examples/web-service.yaml` creates the Deployment it scales"
    );
    assert!(
        policy["metadata"]["namespace"].is_null(),
        "applies to any namespace (-n)"
    );
}

#[test]
fn the_queue_worker_scales_on_custom_promql_per_replica() {
    let (policy, _) = policy_of("examples/queue-worker.yaml");
    assert_eq!(sources(&policy), ["query"]);
    // Without the grant, the broker's namespace is another tenant's: refused.
    let out = Command::new(env!("CARGO_BIN_EXE_scalewise"))
        .args(["check", "-n", "shop", "-f"])
        .arg(repo_path("examples/queue-worker.yaml"))
        .output()
        .expect("run scalewise check");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("shop/orders-worker: spec.metrics[0].query:")
            || said.contains("orders-worker: spec.metrics[0].query:"),
        "{said}"
    );
    assert!(said.contains(r#"namespace="messaging""#), "{said}");
    assert!(
        policy["spec"]["metrics"][0]["targetPerReplica"]
            .as_f64()
            .is_some_and(|t| t > 0.0)
    );
}

#[test]
fn the_shadow_policy_runs_in_dry_run_beside_an_hpa_on_the_same_deployment() {
    let (policy, docs) = policy_of("examples/shadow-hpa.yaml");
    assert_eq!(policy["spec"]["dryRun"], true);
    let hpa = docs
        .iter()
        .find(|d| d["kind"] == "HorizontalPodAutoscaler")
        .expect("the file holds the HPA");
    assert!(matches!(
        hpa["apiVersion"].as_str(),
        Some("autoscaling/v1" | "autoscaling/v2")
    ));
    assert_eq!(hpa["spec"]["scaleTargetRef"]["name"], target(&policy));
    assert!(has_deployment(&docs, target(&policy)));
}

#[test]
fn the_other_objects_of_the_examples_validate_strictly() {
    let validator = std::env::var_os("SCALEWISE_KUBERNETES_VALIDATE")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_path(".tools/venv/bin/kubernetes-validate"));
    assert!(
        validator.is_file(),
        "{} not found: {HOW_TO_GET_TOOLS}",
        validator.display()
    );
    for file in ["examples/web-service.yaml", "examples/shadow-hpa.yaml"] {
        let others: Vec<Value> = documents(&repo_path(file))
            .into_iter()
            .filter(|d| !is_policy(d))
            .collect();
        let yaml: Vec<String> = others
            .iter()
            .map(|d| serde_yaml_ng::to_string(d).expect("YAML"))
            .collect();
        let tmp = std::env::temp_dir().join(format!(
            "scalewise-examples-{}-{}",
            std::process::id(),
            file.replace('/', "-")
        ));
        std::fs::write(&tmp, yaml.join("---\n")).expect("write a temporary file");
        let out = Command::new(&validator)
            .args(["--strict", "-k", "1.25.0"])
            .arg(&tmp)
            .output()
            .unwrap_or_else(|e| panic!("cannot run kubernetes-validate: {e}; {HOW_TO_GET_TOOLS}"));
        let report = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let passed = report.lines().filter(|l| l.contains(" passed ")).count();
        assert!(
            out.status.success()
                && !report.contains("WARN")
                && !report.contains("ERROR")
                && passed == others.len(),
            "{file}: kubernetes-validate --strict refused it:\n{report}"
        );
    }
}
