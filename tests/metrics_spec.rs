//! The metric fields of the spec as users write them: overrides, placeholders, PromQL checks with
//! field paths, server addresses, and the metrics flags of the command line. No servers needed.

use clap::Parser;
use scalewise::api::{FieldError, Policy, ScalingPolicySpec, validate};
use scalewise::cli::{Cli, Command};
use scalewise::commands::query::source_config;
use scalewise::metrics::{AnswerLimits, QueryPlan};

fn spec(metrics: &str, extra: &str) -> ScalingPolicySpec {
    let yaml = format!(
        "targetRef: {{apiVersion: apps/v1, kind: Deployment, name: checkout}}\nminReplicas: 1\nmaxReplicas: 5\n{extra}metrics:\n{metrics}"
    );
    serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

fn errors(metrics: &str, extra: &str) -> Vec<FieldError> {
    validate(&spec(metrics, extra))
}

fn one_error(metrics: &str, extra: &str) -> FieldError {
    let mut errors = errors(metrics, extra);
    assert_eq!(errors.len(), 1, "{errors:?}");
    errors.remove(0)
}

#[test]
fn resource_overrides_with_placeholders_are_valid() {
    let metrics = r#"  - name: cpu
    cpu:
      podSelector: 'kubernetes_namespace="{namespace}", kubernetes_pod_name=~"{target}-.+"'
      usageMetric: container_cpu_usage_seconds_total
      usageSelector: ''
      requestsMetric: kube_pod_container_resource_requests_cpu_cores
      requestsSelector: 'job="kube-state-metrics"'
    target: 70
"#;
    assert_eq!(errors(metrics, ""), vec![]);
    // A server relabeled to kubernetes_namespace: that is the label scoped and checked.
    let scope =
        scalewise::metrics::tenancy::Rules::default().scope_for("shop", "kubernetes_namespace");
    let plan = QueryPlan::scoped(&Policy::resolve(&spec(metrics, "")).unwrap(), scope).unwrap();
    assert_eq!(
        plan.metrics[0].promql,
        r#"100 * sum(rate(container_cpu_usage_seconds_total{kubernetes_namespace="shop",kubernetes_pod_name=~"checkout-.+"}[2m])) / sum(kube_pod_container_resource_requests_cpu_cores{job="kube-state-metrics",kubernetes_namespace="shop",kubernetes_pod_name=~"checkout-.+"})"#
    );
}

#[test]
fn a_pod_selector_that_is_not_label_matchers_is_refused_with_its_path() {
    let e = one_error(
        "  - name: mem\n    memory: {podSelector: 'pod=checkout'}\n    target: 80\n",
        "",
    );
    assert_eq!(e.path, "spec.metrics[0].memory.podSelector");
    assert!(
        e.message
            .starts_with(r#""pod=checkout" is not a list of label matchers such as service="checkout", code=~"5..""#),
        "{}",
        e.message
    );
}

#[test]
fn a_usage_metric_that_is_not_a_metric_name_is_refused() {
    let e = one_error(
        "  - name: cpu\n    cpu: {usageMetric: 'rate(x[1m])'}\n    target: 70\n",
        "",
    );
    assert_eq!(e.path, "spec.metrics[0].cpu.usageMetric");
    assert_eq!(
        e.message,
        r#""rate(x[1m])" is not a Prometheus metric name ([a-zA-Z_:][a-zA-Z0-9_:]*)"#
    );
}

#[test]
fn a_selector_cannot_smuggle_in_another_expression() {
    let e = one_error(
        "  - name: rps\n    requestRate:\n      counter: http_requests_total\n      selector: 'a=\"b\"} or vector(1000) or x{c=\"d\"'\n    scaleOutAbove: 10\n",
        "",
    );
    assert_eq!(e.path, "spec.metrics[0].requestRate.selector");
}

#[test]
fn latency_and_error_rate_parts_are_checked() {
    let errors = errors(
        "  - name: p95\n    latency: {histogram: 'http duration', quantile: 0.95, selector: 'service=\"a\"'}\n    scaleOutAbove: 1\n  - name: errors\n    errorRate: {counter: http_requests_total, errorSelector: 'code=~5..'}\n    scaleOutAbove: 0.1\n",
        "",
    );
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "spec.metrics[0].latency.histogram",
            "spec.metrics[1].errorRate.errorSelector"
        ]
    );
}

#[test]
fn a_query_must_be_promql_yielding_one_number() {
    let e = one_error(
        "  - name: q\n    query: 'sum(rate(x[5m])'\n    scaleOutAbove: 1\n",
        "",
    );
    assert_eq!(e.path, "spec.metrics[0].query");
    assert!(
        e.message.starts_with("is not valid PromQL: "),
        "{}",
        e.message
    );

    let e = one_error(
        "  - name: q\n    query: 'x[5m]'\n    scaleOutAbove: 1\n",
        "",
    );
    assert_eq!(
        e.message,
        "must yield one number (a scalar or an instant vector), but yields a range vector"
    );

    assert_eq!(
        errors(
            "  - name: q\n    query: 'sum(rate(jobs_total{namespace=\"{namespace}\", app=\"{target}\"}[{window}]))'\n    scaleOutAbove: 1\n",
            ""
        ),
        vec![]
    );
}

#[test]
fn the_server_address_must_be_a_plain_http_url() {
    let metric = "  - name: q\n    query: vector(1)\n    scaleOutAbove: 1\n";
    assert_eq!(
        errors(
            metric,
            "prometheus: {address: 'https://mimir.example/prometheus'}\n"
        ),
        vec![]
    );
    for (address, message) in [
        (
            "ftp://mimir.example",
            r#""ftp://mimir.example" must use http or https, got ftp"#,
        ),
        (
            "https://user:pw@mimir.example",
            r#""https://user:pw@mimir.example" must not carry credentials; the operator configures them per server"#,
        ),
        (
            "https://mimir.example/api?x=1",
            r#""https://mimir.example/api?x=1" must not have a query or fragment; give the base URL of the API"#,
        ),
    ] {
        let e = one_error(metric, &format!("prometheus: {{address: '{address}'}}\n"));
        assert_eq!(e.path, "spec.prometheus.address");
        assert_eq!(e.message, message);
    }
    let e = one_error(metric, "prometheus: {address: 'mimir:9009'}\n");
    assert_eq!(e.path, "spec.prometheus.address");
}

#[test]
fn the_metrics_flags_parse_into_the_settings() {
    let cli = Cli::try_parse_from([
        "scalewise",
        "query",
        "--policy",
        "p.yaml",
        "--prometheus-url",
        "https://prom.example:9090",
        "--prometheus-header",
        "X-Scope-OrgID: team-a",
        "--prometheus-timeout",
        "2s",
        "--staleness-limit",
        "1m30s",
        "--allowed-prometheus-url",
        "https://mimir.example/prometheus",
        "--allowed-prometheus-url",
        "http://thanos:9090",
        "--prometheus-insecure-skip-verify",
    ])
    .unwrap();
    let Command::Query { prometheus, .. } = &cli.command else {
        panic!("not the query command");
    };
    let config = source_config(prometheus).unwrap();
    let default = config.default.unwrap();
    assert_eq!(default.url.as_str(), "https://prom.example:9090/");
    assert_eq!(
        default.access.headers,
        vec![("X-Scope-OrgID".to_owned(), "team-a".to_owned())]
    );
    assert!(default.access.insecure_skip_verify);
    assert_eq!(config.timeout, std::time::Duration::from_secs(2));
    assert_eq!(
        config.staleness_limit,
        Some(std::time::Duration::from_secs(90))
    );
    assert_eq!(
        config
            .allowed
            .iter()
            .map(|s| s.url.as_str())
            .collect::<Vec<_>>(),
        ["https://mimir.example/prometheus", "http://thanos:9090/"]
    );
}

#[test]
fn basic_auth_needs_both_files_and_excludes_a_bearer_token() {
    let base = ["scalewise", "query", "--policy", "p.yaml"];
    let only_user = [&base[..], &["--prometheus-username-file", "u"]].concat();
    assert!(Cli::try_parse_from(only_user).is_err());
    let both = [
        &base[..],
        &[
            "--prometheus-username-file",
            "u",
            "--prometheus-password-file",
            "p",
            "--prometheus-bearer-token-file",
            "t",
        ],
    ]
    .concat();
    assert!(Cli::try_parse_from(both).is_err());
}

#[test]
fn the_answer_limits_default_to_1_mib_and_100_series_and_are_bounded() {
    let base = ["scalewise", "query", "--policy", "p.yaml"];
    let limits = |extra: &[&str]| {
        let cli = Cli::try_parse_from([&base[..], extra].concat()).map_err(|e| e.to_string())?;
        let Command::Query { prometheus, .. } = &cli.command else {
            panic!("not the query command");
        };
        Ok::<_, String>(source_config(prometheus).unwrap().limits)
    };
    assert_eq!(limits(&[]), Ok(AnswerLimits::default()));
    assert_eq!(
        AnswerLimits::default(),
        AnswerLimits {
            max_bytes: 1024 * 1024,
            max_series: 100,
            max_pod_series: 5000
        }
    );
    assert_eq!(
        limits(&[
            "--prometheus-max-answer-bytes",
            "256KiB",
            "--prometheus-max-series",
            "5"
        ]),
        Ok(AnswerLimits {
            max_bytes: 256 * 1024,
            max_series: 5,
            max_pod_series: 5000
        })
    );
    assert_eq!(
        limits(&["--prometheus-max-answer-bytes", "2097152"]).map(|l| l.max_bytes),
        Ok(2 * 1024 * 1024)
    );
    for (flag, value, says) in [
        (
            "--prometheus-max-answer-bytes",
            "1GiB",
            "is not a size: write bytes (1048576) or KiB or MiB (512KiB, 1MiB)",
        ),
        (
            "--prometheus-max-answer-bytes",
            "128MiB",
            "is out of range: from 4 KiB to 64 MiB",
        ),
        ("--prometheus-max-answer-bytes", "1KiB", "is out of range"),
        ("--prometheus-max-series", "0", "is not in 1..=100000"),
        ("--prometheus-max-series", "100001", "is not in 1..=100000"),
    ] {
        let e = limits(&[flag, value]).unwrap_err();
        assert!(e.contains(flag) && e.contains(says), "{flag} {value}: {e}");
    }
}
