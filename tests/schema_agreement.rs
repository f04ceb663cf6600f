//! The CRD and `scalewise check` agree (issue 13, part 4): every invalid manifest the API server
//! refuses (server-side dry run, so nothing is stored), `scalewise check` refuses too, naming the
//! same field; an API server from 1.25 on (CEL rules, `format: int32`) refuses every one of them.
//! And `kubectl apply -f crds/` works on such a server without `--validate=false`.

mod support;

use std::process::Command;

use kube::Api;
use kube::api::{DynamicObject, PostParams};
use serde_json::{Value, json};
use support::{TestEnv, install_crd, repo_path};

/// A ScalingPolicy whose spec is the valid base with `extra` merged in.
fn manifest(env: &TestEnv, name: &str, extra: Value) -> Value {
    let mut spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 10,
        "metrics": [{"name": "load", "query": "sum(rate(http_requests_total[1m]))", "target": 100}],
    });
    if let (Some(spec), Value::Object(extra)) = (spec.as_object_mut(), extra) {
        spec.extend(extra);
    }
    json!({
        "apiVersion": "scalewise.dev/v1alpha1",
        "kind": "ScalingPolicy",
        "metadata": {"name": name, "namespace": env.namespace},
        "spec": spec,
    })
}

/// `scalewise check` on `manifest`: its error output when it refuses it.
fn check(manifest: &Value, dir: &std::path::Path, name: &str) -> Option<String> {
    let file = dir.join(format!("{name}.json"));
    std::fs::write(&file, manifest.to_string()).expect("write the manifest");
    let out = Command::new(env!("CARGO_BIN_EXE_scalewise"))
        .args(["check", "-f"])
        .arg(&file)
        .output()
        .expect("scalewise check runs");
    (!out.status.success()).then(|| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The API server's major.minor.
async fn server_minor(env: &TestEnv) -> u32 {
    let info = env.client.apiserver_version().await.expect("/version");
    info.minor
        .trim_end_matches('+')
        .parse()
        .expect("a numeric minor version")
}

#[tokio::test]
async fn the_api_server_and_scalewise_check_refuse_the_same_manifests() {
    let env = TestEnv::new("schema-agree").await;
    install_crd(&env.client).await;
    let resource = kube::api::ApiResource::erase::<scalewise::api::ScalingPolicy>(&());
    let api: Api<DynamicObject> =
        Api::namespaced_with(env.client.clone(), &env.namespace, &resource);
    let cel = server_minor(&env).await >= 25;
    // (name, what is merged into a valid spec, the field both must name)
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "min-above-max",
            json!({"minReplicas": 9, "maxReplicas": 3}),
            "minReplicas",
        ),
        ("negative-min", json!({"minReplicas": -1}), "minReplicas"),
        ("zero-max", json!({"maxReplicas": 0}), "maxReplicas"),
        (
            "beyond-int32",
            json!({"maxReplicas": 2_147_483_648_i64}),
            "maxReplicas",
        ),
        ("bad-interval", json!({"interval": "5 minutes"}), "interval"),
        ("no-metrics", json!({"metrics": []}), "metrics"),
        (
            "too-many-metrics",
            json!({"metrics": (0..21).map(|i| json!({"name": format!("m{i}"), "query": "vector(1)", "target": 1})).collect::<Vec<_>>()}),
            "metrics",
        ),
        (
            "long-query",
            json!({"metrics": [{"name": "q", "query": format!("sum(x{{l=\"{}\"}})", "a".repeat(9000)), "target": 1}]}),
            "query",
        ),
        (
            "bad-metric-name",
            json!({"metrics": [{"name": "Läst load", "query": "vector(1)", "target": 1}]}),
            "name",
        ),
        (
            "zero-step",
            json!({"behavior": {"scaleOut": {"step": 0}}}),
            "step",
        ),
    ];
    let dir = std::env::temp_dir().join(format!("scalewise-schema-{}", env.namespace));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let mut problems = Vec::new();
    for (name, extra, field) in &cases {
        let manifest = manifest(&env, name, extra.clone());
        let object: DynamicObject =
            serde_json::from_value(manifest.clone()).expect("a ScalingPolicy object");
        let params = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        let server = api
            .create(&params, &object)
            .await
            .err()
            .map(|e| e.to_string());
        let ours = check(&manifest, &dir, name);
        match (&server, &ours) {
            (Some(server), Some(ours)) => {
                if !server.contains(field) || !ours.contains(field) {
                    problems.push(format!(
                        "{name}: both refuse it, but not both name {field}:\n  server: {server}\n  check: {ours}"
                    ));
                }
            }
            (Some(server), None) => problems.push(format!(
                "{name}: the API server refuses it ({server}) and scalewise check accepts it"
            )),
            (None, Some(_)) if cel => problems.push(format!(
                "{name}: an API server with CEL stores it; scalewise check refuses it (the CRD misses this bound)"
            )),
            (None, Some(_)) => {}
            (None, None) => problems.push(format!("{name}: nobody refuses it")),
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test]
async fn kubectl_applies_the_crd_as_the_readme_says() {
    let env = TestEnv::new("kubectl-crd").await;
    let cel = server_minor(&env).await >= 25;
    let crd = repo_path("crds/scalingpolicy.yaml");
    let apply = |extra: &[&str]| {
        Command::new("kubectl")
            .args(["apply", "-f"])
            .arg(&crd)
            .args(extra)
            .output()
            .expect("kubectl runs (the test environment puts its kubectl first on PATH)")
    };
    let plain = apply(&[]);
    if cel {
        assert!(
            plain.status.success(),
            "kubectl apply -f crds/ on a current API server: {}",
            String::from_utf8_lossy(&plain.stderr)
        );
    } else {
        // Before 1.25 the server's schema does not know the CEL rule: kubectl refuses the file
        // unless told not to validate, as the README says.
        assert!(
            !plain.status.success(),
            "an old API server validated the CEL rule"
        );
        let unvalidated = apply(&["--validate=false"]);
        assert!(
            unvalidated.status.success(),
            "{}",
            String::from_utf8_lossy(&unvalidated.stderr)
        );
    }
}
