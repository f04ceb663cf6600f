//! Credentials and headers arrive as configured, and only where configured: checked at proxies on
//! 127.0.0.1 that record every request and forward it to the environment's Prometheus.

mod support;

use scalewise::api::Policy;
use std::path::PathBuf;

use scalewise::metrics::{
    Access, BasicAuthFiles, MetricsError, QueryPlan, ServerConfig, SourceConfig, access, endpoint,
};
use support::promdata::{self, Behaviour, FakeServer};
use support::unique_name;

fn proxy_to_prometheus() -> Behaviour {
    Behaviour::Proxy(promdata::prometheus().url)
}

/// A directory of secret files for one test, removed when dropped.
struct Secrets(PathBuf);

impl Secrets {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(unique_name("secrets"));
        std::fs::create_dir_all(&dir).unwrap();
        Secrets(dir)
    }
    fn file(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content).unwrap();
        path
    }
}

impl Drop for Secrets {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn constant_policy(address: Option<&str>) -> scalewise::api::ScalingPolicy {
    let mut policy = promdata::policy(
        "shop",
        "15s",
        "    - name: two\n      query: vector(2)\n      scaleOutAbove: 1\n",
    );
    policy.spec.prometheus = address.map(|a| scalewise::api::PrometheusServer {
        address: a.to_owned(),
    });
    policy
}

fn url(s: &str) -> url::Url {
    s.parse().unwrap()
}

#[tokio::test]
async fn the_bearer_token_and_headers_reach_the_default_server() {
    let proxy = FakeServer::start(proxy_to_prometheus()).await;
    let secrets = Secrets::new();
    let source = promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: url(&proxy.url),
            access: Access {
                bearer_token_file: Some(secrets.file("token", "t0ken-abc\n")),
                headers: vec![
                    access::parse_header("X-Scope-OrgID: tenant-a").unwrap(),
                    access::parse_header("X-Extra: 1").unwrap(),
                ],
                ..Access::default()
            },
            tenancy: Default::default(),
        }),
        ..SourceConfig::default()
    });
    let observed = promdata::read_with(&source, &constant_policy(None), None).await;
    assert_eq!(observed[0].value(), Some(2.0), "{:?}", observed[0].result);
    let requests = proxy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    let headers = &requests[0].headers;
    assert_eq!(headers["authorization"], "Bearer t0ken-abc");
    assert_eq!(headers["x-scope-orgid"], "tenant-a");
    assert_eq!(headers["x-extra"], "1");
    assert!(
        requests[0]
            .request_line
            .starts_with("GET /api/v1/query?query=vector%282%29"),
        "{}",
        requests[0].request_line
    );
}

#[tokio::test]
async fn basic_auth_is_read_from_its_files() {
    let proxy = FakeServer::start(proxy_to_prometheus()).await;
    let secrets = Secrets::new();
    let source = promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: url(&proxy.url),
            access: Access {
                basic_auth: Some(BasicAuthFiles {
                    username_file: secrets.file("user", "scalewise\n"),
                    password_file: secrets.file("password", "pa:ss"),
                }),
                ..Access::default()
            },
            tenancy: Default::default(),
        }),
        ..SourceConfig::default()
    });
    let observed = promdata::read_with(&source, &constant_policy(None), None).await;
    assert_eq!(observed[0].value(), Some(2.0));
    // base64("scalewise:pa:ss")
    assert_eq!(
        proxy.requests()[0].headers["authorization"],
        "Basic c2NhbGV3aXNlOnBhOnNz"
    );
}

#[tokio::test]
async fn a_rotated_token_is_sent_at_the_next_evaluation() {
    let proxy = FakeServer::start(proxy_to_prometheus()).await;
    let secrets = Secrets::new();
    let token = secrets.file("token", "first");
    let source = promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: url(&proxy.url),
            access: Access {
                bearer_token_file: Some(token.clone()),
                ..Access::default()
            },
            tenancy: Default::default(),
        }),
        ..SourceConfig::default()
    });
    promdata::read_with(&source, &constant_policy(None), None).await;
    std::fs::write(&token, "second").unwrap();
    promdata::read_with(&source, &constant_policy(None), None).await;
    let sent: Vec<String> = proxy
        .requests()
        .iter()
        .map(|r| r.headers["authorization"].clone())
        .collect();
    assert_eq!(sent, ["Bearer first", "Bearer second"]);
}

#[tokio::test]
async fn an_allowed_address_gets_neither_the_default_credentials_nor_headers() {
    let default = FakeServer::start(proxy_to_prometheus()).await;
    let other = FakeServer::start(proxy_to_prometheus()).await;
    let secrets = Secrets::new();
    let source = promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: url(&default.url),
            access: Access {
                bearer_token_file: Some(secrets.file("token", "default-secret")),
                headers: vec![access::parse_header("X-Scope-OrgID: tenant-a").unwrap()],
                ..Access::default()
            },
            tenancy: Default::default(),
        }),
        allowed: vec![ServerConfig {
            url: url(&other.url),
            access: Access::default(),
            tenancy: Default::default(),
        }],
        ..SourceConfig::default()
    });
    let address = format!("{}/", other.url);
    let observed = promdata::read_with(&source, &constant_policy(Some(&address)), None).await;
    assert_eq!(observed[0].value(), Some(2.0));
    assert!(default.requests().is_empty());
    let requests = other.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        !requests[0].headers.contains_key("authorization"),
        "{requests:?}"
    );
    assert!(
        !requests[0].headers.contains_key("x-scope-orgid"),
        "{requests:?}"
    );
}

#[tokio::test]
async fn an_allow_list_entry_sends_its_own_credentials() {
    let tenant = FakeServer::start(proxy_to_prometheus()).await;
    let secrets = Secrets::new();
    let token = secrets.file("tenant-token", "tenant-secret");
    let list = secrets.file(
        "allowed.yaml",
        &format!(
            "servers:\n  - urlPrefix: {}/prometheus\n    bearerTokenFile: {}\n    headers:\n      X-Scope-OrgID: team-b\n    namespaces: [shop]\n",
            tenant.url,
            token.display()
        ),
    );
    let source = promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: url("http://127.0.0.1:9"),
            access: Access {
                bearer_token_file: Some(secrets.file("default", "default-secret")),
                ..Access::default()
            },
            tenancy: Default::default(),
        }),
        allowed: endpoint::load_allow_list(&list).unwrap(),
        ..SourceConfig::default()
    });
    // The proxy forwards /prometheus/api/v1/query as is; Prometheus answers 404 there, so the
    // metric fails, but what matters is what arrived.
    let address = format!("{}/prometheus", tenant.url);
    promdata::read_with(&source, &constant_policy(Some(&address)), None).await;
    let requests = tenant.requests();
    assert_eq!(requests.len(), 1);
    assert!(
        requests[0]
            .request_line
            .starts_with("GET /prometheus/api/v1/query?")
    );
    assert_eq!(requests[0].headers["authorization"], "Bearer tenant-secret");
    assert_eq!(requests[0].headers["x-scope-orgid"], "team-b");
    // A policy of a namespace the entry does not list may not name the address: its
    // credentials and tenant header never leave for another namespace's policy.
    let mut elsewhere = constant_policy(Some(&address));
    elsewhere.metadata.namespace = Some("payments".into());
    let plan =
        QueryPlan::for_policy(&elsewhere, &Policy::resolve(&elsewhere.spec).unwrap()).unwrap();
    let result = scalewise::metrics::MetricSource::evaluate(&source, &plan, None).await;
    assert!(
        matches!(&result, Err(MetricsError::AddressNotAllowed { allowed, .. }) if allowed.starts_with("none for namespace payments")),
        "{result:?}"
    );
    assert_eq!(tenant.requests().len(), 1, "the server was called again");
}

#[tokio::test]
async fn an_address_off_the_allow_list_is_never_called() {
    let target = FakeServer::start(proxy_to_prometheus()).await;
    let source = promdata::source_with(SourceConfig {
        default: Some(ServerConfig {
            url: url(&promdata::prometheus().url),
            access: Access::default(),
            tenancy: Default::default(),
        }),
        ..SourceConfig::default()
    });
    let policy = constant_policy(Some(&target.url));
    let plan = QueryPlan::for_policy(&policy, &Policy::resolve(&policy.spec).unwrap()).unwrap();
    let result = scalewise::metrics::MetricSource::evaluate(&source, &plan, None).await;
    assert_eq!(
        result,
        Err(MetricsError::AddressNotAllowed {
            address: target.url.clone(),
            allowed: "none for namespace shop; the operator opens prefixes to namespaces with --allowed-prometheus-url NAMESPACE=PREFIX or the allow-list file's namespaces".into()
        })
    );
    assert_eq!(
        source.check("shop", Some(target.url.as_str())),
        vec![scalewise::api::FieldError {
            path: "spec.prometheus.address".into(),
            message: format!(
                "{} is not allowed by the operator (allowed prefixes: none for namespace shop; the operator opens prefixes to namespaces with --allowed-prometheus-url NAMESPACE=PREFIX or the allow-list file's namespaces)",
                target.url
            ),
        }]
    );
    assert!(target.requests().is_empty());
}
