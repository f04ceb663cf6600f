//! Which server a policy's metrics are read from: the operator's default, the allow-list, and the
//! choice of server (and so of access) for an address.
//!
//! The operator sets a controller-wide default (`--prometheus-url`) and an allow-list of URL
//! prefixes (`--allowed-prometheus-url`, and `--allowed-prometheus-config` for prefixes with their
//! own credentials). A policy may name its own server in `spec.prometheus.address` only when the
//! address lies under an allowed prefix: same scheme, host and port, and a path at or below the
//! prefix's path (whole segments). Without an allow-list no policy may name a server, so whoever
//! may write a policy cannot make the operator call arbitrary addresses.
//!
//! Credentials and extra headers are sent only where they were configured: the default
//! server's to the default URL, an allow-list entry's to addresses under its prefix (the longest
//! matching prefix wins); plain prefixes get none. Redirects are never followed.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use super::access::{Access, BasicAuthFiles, check_header};
use super::error::{ConfigError, MetricsError};
use super::limits::AnswerLimits;
use super::plan::QueryPlan;
use super::tenancy::{QueryScope, Rules};
use crate::api::address::{Writer, check_address};

/// Default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// A server (or, on the allow-list, a URL prefix) and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    pub url: Url,
    pub access: Access,
    /// Whose policies may use it, and which label carries a series' namespace there.
    pub tenancy: ServerTenancy,
}

/// Who may use a server, and how its series name their namespace.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServerTenancy {
    /// The label that carries a series' namespace; `None`: `namespace`.
    pub namespace_label: Option<String>,
    /// The namespaces whose policies may use it.
    pub namespaces: Namespaces,
}

/// The namespaces whose policies may use a server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Namespaces {
    /// Every namespace: the operator's default server.
    #[default]
    All,
    /// Only these (none when empty): each allow-list entry.
    Only(std::collections::BTreeSet<String>),
}

impl ServerTenancy {
    /// The label that carries a series' namespace on this server.
    pub fn label(&self) -> &str {
        self.namespace_label
            .as_deref()
            .unwrap_or(super::tenancy::DEFAULT_NAMESPACE_LABEL)
    }

    /// Whether policies in `namespace` may use the server.
    pub fn admits(&self, namespace: &str) -> bool {
        match &self.namespaces {
            Namespaces::All => true,
            Namespaces::Only(list) => list.contains(namespace),
        }
    }
}

/// The operator's metrics settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceConfig {
    /// The controller-wide server.
    pub default: Option<ServerConfig>,
    /// The prefixes policies may name in `spec.prometheus.address`, each with its own access
    /// (none for plain prefixes).
    pub allowed: Vec<ServerConfig>,
    /// The limit of one request (connect, send, answer).
    pub timeout: Duration,
    /// The staleness limit; `None`: twice the policy's interval plus one minute.
    pub staleness_limit: Option<Duration>,
    /// The size and series caps of every answer (`--prometheus-max-answer-bytes`,
    /// `--prometheus-max-series`).
    pub limits: AnswerLimits,
    /// Who may read whose series beyond their own (`--cross-namespace-grant`,
    /// `--allow-cross-namespace-queries`).
    pub tenancy: Rules,
}

impl Default for SourceConfig {
    fn default() -> Self {
        Self {
            default: None,
            allowed: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            staleness_limit: None,
            limits: AnswerLimits::default(),
            tenancy: Rules::default(),
        }
    }
}

/// One entry of the `--allowed-prometheus-config` file: a prefix and its access, headers as a map.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AllowListEntry {
    url_prefix: String,
    #[serde(default)]
    bearer_token_file: Option<PathBuf>,
    #[serde(default)]
    basic_auth: Option<BasicAuthFiles>,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    insecure_skip_verify: bool,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    /// The namespaces whose policies may use the entry: none when absent.
    #[serde(default)]
    namespaces: Vec<String>,
    /// The label that carries a series' namespace on this server (default `namespace`).
    #[serde(default)]
    namespace_label: Option<String>,
}

/// The `--allowed-prometheus-config` file.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AllowListFile {
    servers: Vec<AllowListEntry>,
}

/// Parses a server URL given by the operator (`what` names the flag for messages).
pub fn parse_url(what: &str, text: &str) -> Result<Url, ConfigError> {
    check_address(text).map_err(|problem| ConfigError::Url {
        what: what.to_owned(),
        url: text.to_owned(),
        message: problem.message(text, Writer::Operator),
    })
}

/// Reads the `--allowed-prometheus-config` file.
pub fn load_allow_list(path: &Path) -> Result<Vec<ServerConfig>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
        what: "the allow-list file",
        path: path.to_owned(),
        source,
    })?;
    let de = serde_yaml_ng::Deserializer::from_str(&text);
    let file: AllowListFile =
        serde_path_to_error::deserialize(de).map_err(|e| ConfigError::AllowListFile {
            path: path.to_owned(),
            message: format!("{}: {}", e.path(), e.inner()),
        })?;
    file.servers
        .into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let url = parse_url(&format!("servers[{i}].urlPrefix"), &entry.url_prefix)?;
            let a = entry;
            let headers: Vec<(String, String)> = a.headers.into_iter().collect();
            for (name, value) in &headers {
                check_header(name, value)?;
            }
            let bad = |field: &str, message: String| ConfigError::AllowListFile {
                path: path.to_owned(),
                message: format!("servers[{i}].{field}: {message}"),
            };
            if a.namespaces.len() > MAX_ENTRY_NAMESPACES {
                return Err(bad(
                    "namespaces",
                    format!(
                        "{} namespaces; at most {MAX_ENTRY_NAMESPACES}",
                        a.namespaces.len()
                    ),
                ));
            }
            for (j, ns) in a.namespaces.iter().enumerate() {
                super::tenancy::check_namespace(ns)
                    .map_err(|e| bad(&format!("namespaces[{j}]"), e))?;
            }
            if let Some(label) = &a.namespace_label {
                super::tenancy::check_label_name(label).map_err(|e| bad("namespaceLabel", e))?;
            }
            let tenancy = ServerTenancy {
                namespace_label: a.namespace_label,
                namespaces: Namespaces::Only(a.namespaces.into_iter().collect()),
            };
            Ok(ServerConfig {
                url,
                access: Access {
                    bearer_token_file: a.bearer_token_file,
                    basic_auth: a.basic_auth,
                    ca_file: a.ca_file,
                    insecure_skip_verify: a.insecure_skip_verify,
                    headers,
                },
                tenancy,
            })
        })
        .collect()
}

/// The most namespaces one allow-list entry may list.
pub const MAX_ENTRY_NAMESPACES: usize = 1000;

/// Reads one `--allowed-prometheus-url`: `NAMESPACE=PREFIX` lets policies in that namespace
/// name addresses under the prefix; a bare `PREFIX` is usable by no namespace.
pub fn parse_allowed_url(text: &str) -> Result<ServerConfig, ConfigError> {
    let text = text.trim();
    let (namespaces, prefix) = match text.split_once('=') {
        Some((ns, prefix)) if !ns.contains("://") => {
            super::tenancy::check_namespace(ns).map_err(|message| ConfigError::Url {
                what: "--allowed-prometheus-url".to_owned(),
                url: text.to_owned(),
                message: format!("{message}; write NAMESPACE=PREFIX"),
            })?;
            ([ns.to_owned()].into(), prefix)
        }
        _ => (std::collections::BTreeSet::new(), text),
    };
    Ok(ServerConfig {
        url: parse_url("--allowed-prometheus-url", prefix)?,
        access: Access::default(),
        tenancy: ServerTenancy {
            namespace_label: None,
            namespaces: Namespaces::Only(namespaces),
        },
    })
}

/// Merges allow-list entries for the same prefix with the same access: `shop=P` and `team=P`
/// are one entry open to both namespaces.
pub fn merge_allowed(entries: Vec<ServerConfig>) -> Vec<ServerConfig> {
    let mut merged: Vec<ServerConfig> = Vec::with_capacity(entries.len());
    for entry in entries {
        let same = merged.iter_mut().find(|m| {
            m.url == entry.url
                && m.access == entry.access
                && m.tenancy.namespace_label == entry.tenancy.namespace_label
        });
        match (same, entry.tenancy.namespaces) {
            (Some(m), Namespaces::Only(more)) => {
                if let Namespaces::Only(list) = &mut m.tenancy.namespaces {
                    list.extend(more);
                }
            }
            (Some(m), Namespaces::All) => m.tenancy.namespaces = Namespaces::All,
            (None, namespaces) => merged.push(ServerConfig {
                tenancy: ServerTenancy {
                    namespaces,
                    ..entry.tenancy
                },
                ..entry
            }),
        }
    }
    merged
}

/// Whether `address` lies under `prefix`: same scheme, host and port, and a path equal to the
/// prefix's or below it by whole segments.
pub fn under_prefix(prefix: &Url, address: &Url) -> bool {
    if prefix.scheme() != address.scheme()
        || prefix.host_str() != address.host_str()
        || prefix.port_or_known_default() != address.port_or_known_default()
        || !address.username().is_empty()
        || address.password().is_some()
    {
        return false;
    }
    let base = prefix.path().trim_end_matches('/');
    let path = address.path();
    path == base
        || path
            .strip_prefix(base)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// Two server URLs name the same API (a trailing slash aside).
fn same_server(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
        && a.path().trim_end_matches('/') == b.path().trim_end_matches('/')
}

impl SourceConfig {
    /// The server a plan's queries go to, with the access configured for it: the policy's
    /// namespace must be one the server admits.
    pub fn server_for(&self, plan: &QueryPlan) -> Result<ServerConfig, MetricsError> {
        self.server_for_address(&plan.namespace, plan.address.as_deref())
    }

    /// The server a policy in `namespace` reads with `spec.prometheus.address` (the default
    /// without one). An address is allowed only under an allow-list entry that lists the
    /// namespace (the longest such prefix wins), so an entry's credentials and headers reach
    /// the server only for the namespaces it names.
    pub fn server_for_address(
        &self,
        namespace: &str,
        address: Option<&str>,
    ) -> Result<ServerConfig, MetricsError> {
        let Some(address) = address else {
            return self.default.clone().ok_or(MetricsError::NoServer);
        };
        let url = crate::api::address::parse_server_address(address)
            .map_err(MetricsError::InvalidAddress)?;
        if let Some(default) = &self.default
            && same_server(&default.url, &url)
        {
            return Ok(default.clone());
        }
        let open: Vec<&ServerConfig> = self
            .allowed
            .iter()
            .filter(|entry| entry.tenancy.admits(namespace))
            .collect();
        let best = open
            .iter()
            .filter(|entry| under_prefix(&entry.url, &url))
            .max_by_key(|entry| entry.url.path().trim_end_matches('/').len());
        match best {
            Some(entry) => Ok(ServerConfig {
                url,
                access: entry.access.clone(),
                tenancy: entry.tenancy.clone(),
            }),
            None => Err(MetricsError::AddressNotAllowed {
                address: address.to_owned(),
                allowed: if open.is_empty() {
                    format!(
                        "none for namespace {namespace}; the operator opens prefixes to namespaces with --allowed-prometheus-url NAMESPACE=PREFIX or the allow-list file's namespaces"
                    )
                } else {
                    open.iter()
                        .map(|e| e.url.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            }),
        }
    }

    /// How the queries of a policy in `namespace` reading `address` are scoped: through the
    /// namespace label of its server (the default label when it has none).
    pub fn scope_for(&self, namespace: &str, address: Option<&str>) -> QueryScope {
        let label = self
            .server_for_address(namespace, address)
            .map(|s| s.tenancy.label().to_owned())
            .unwrap_or_else(|_| super::tenancy::DEFAULT_NAMESPACE_LABEL.to_owned());
        self.tenancy.scope_for(namespace, &label)
    }

    /// Allow-list entries no namespace may use, for a warning at start.
    pub fn unusable_entries(&self) -> impl Iterator<Item = &ServerConfig> {
        self.allowed
            .iter()
            .filter(|e| matches!(&e.tenancy.namespaces, Namespaces::Only(list) if list.is_empty()))
    }

    /// The staleness limit of a policy evaluated every `interval`.
    pub fn staleness_limit(&self, interval: Duration) -> Duration {
        self.staleness_limit
            .unwrap_or_else(|| interval.saturating_mul(2) + Duration::from_secs(60))
    }

    /// Every server whose access is configured: the default and the allow-list.
    pub fn servers(&self) -> impl Iterator<Item = &ServerConfig> {
        self.default.iter().chain(&self.allowed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn an_address_is_under_a_prefix_by_whole_path_segments() {
        let prefix = url("https://mimir.example/prometheus");
        assert!(under_prefix(
            &prefix,
            &url("https://mimir.example/prometheus")
        ));
        assert!(under_prefix(
            &prefix,
            &url("https://mimir.example/prometheus/")
        ));
        assert!(under_prefix(
            &prefix,
            &url("https://mimir.example/prometheus/team-a")
        ));
        assert!(!under_prefix(
            &prefix,
            &url("https://mimir.example/prometheus-admin")
        ));
        assert!(!under_prefix(&prefix, &url("https://mimir.example/")));
        assert!(!under_prefix(
            &prefix,
            &url("https://mimir.example/prometheus/../admin")
        ));
    }

    #[test]
    fn scheme_host_and_port_must_match_exactly() {
        let prefix = url("https://mimir.example/");
        assert!(under_prefix(&prefix, &url("https://mimir.example:443/x")));
        assert!(!under_prefix(&prefix, &url("http://mimir.example/x")));
        assert!(!under_prefix(&prefix, &url("https://mimir.example:8443/x")));
        assert!(!under_prefix(
            &prefix,
            &url("https://mimir.example.evil.org/x")
        ));
        assert!(!under_prefix(
            &prefix,
            &url("https://mimir.example@evil.org/x")
        ));
        assert!(!under_prefix(
            &prefix,
            &url("https://evil.org/https://mimir.example/")
        ));
    }

    fn config() -> SourceConfig {
        SourceConfig {
            default: Some(ServerConfig {
                url: url("http://prometheus.monitoring:9090"),
                access: Access {
                    bearer_token_file: Some("/default-token".into()),
                    ..Access::default()
                },
                tenancy: Default::default(),
            }),
            allowed: vec![
                ServerConfig {
                    url: url("https://mimir.example/prometheus"),
                    access: Access::default(),
                    tenancy: Default::default(),
                },
                ServerConfig {
                    url: url("https://mimir.example/prometheus/team-a"),
                    access: Access {
                        headers: vec![("X-Scope-OrgID".into(), "team-a".into())],
                        ..Access::default()
                    },
                    tenancy: Default::default(),
                },
            ],
            ..SourceConfig::default()
        }
    }

    fn plan(address: Option<&str>) -> QueryPlan {
        QueryPlan {
            namespace: "shop".into(),
            target: "checkout".into(),
            interval: Duration::from_secs(15),
            address: address.map(str::to_owned),
            metrics: Vec::new(),
            scope: QueryScope::own("shop"),
        }
    }

    fn only(namespaces: &[&str]) -> ServerTenancy {
        ServerTenancy {
            namespace_label: None,
            namespaces: Namespaces::Only(namespaces.iter().map(|n| (*n).to_owned()).collect()),
        }
    }

    #[test]
    fn an_allow_list_entry_serves_only_the_namespaces_it_lists() {
        let c = SourceConfig {
            allowed: vec![
                ServerConfig {
                    url: url("https://mimir.example/prometheus"),
                    access: Access::default(),
                    tenancy: only(&["shop", "web"]),
                },
                ServerConfig {
                    url: url("https://mimir.example/prometheus/payments"),
                    access: Access {
                        headers: vec![("X-Scope-OrgID".into(), "payments".into())],
                        ..Access::default()
                    },
                    tenancy: only(&["payments"]),
                },
            ],
            ..SourceConfig::default()
        };
        let address = Some("https://mimir.example/prometheus/payments");
        // Shop's policy naming the payments tenant's address gets the plain prefix: never the
        // payments entry's header.
        let shop = c.server_for_address("shop", address).unwrap();
        assert_eq!(shop.access, Access::default());
        let payments = c.server_for_address("payments", address).unwrap();
        assert_eq!(payments.access.headers.len(), 1);
        // A namespace no entry lists may name nothing, and is told only of its own options.
        let e = c.server_for_address("other", address).unwrap_err();
        let MetricsError::AddressNotAllowed { allowed, .. } = e else {
            panic!("{e:?}")
        };
        assert!(allowed.starts_with("none for namespace other"), "{allowed}");
        assert!(!allowed.contains("mimir"), "{allowed}");
    }

    #[test]
    fn an_allowed_url_flag_names_its_namespace_and_a_bare_prefix_serves_none() {
        let shop = parse_allowed_url("shop=https://mimir.example/prometheus").unwrap();
        assert_eq!(shop.tenancy, only(&["shop"]));
        assert_eq!(shop.url.as_str(), "https://mimir.example/prometheus");
        let bare = parse_allowed_url("https://mimir.example/prometheus").unwrap();
        assert_eq!(bare.tenancy, only(&[]));
        assert!(parse_allowed_url("Shop=https://mimir.example/").is_err());
        let merged = merge_allowed(vec![
            shop,
            parse_allowed_url("web=https://mimir.example/prometheus").unwrap(),
            bare,
        ]);
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].tenancy, only(&["shop", "web"]));
        let c = SourceConfig {
            allowed: vec![parse_allowed_url("https://x.example/").unwrap()],
            ..SourceConfig::default()
        };
        assert_eq!(c.unusable_entries().count(), 1);
    }

    #[test]
    fn without_an_address_the_default_server_and_its_credentials_serve() {
        assert_eq!(
            config().server_for(&plan(None)),
            Ok(config().default.unwrap())
        );
        assert_eq!(
            SourceConfig::default().server_for(&plan(None)),
            Err(MetricsError::NoServer)
        );
    }

    #[test]
    fn an_allowed_address_gets_only_the_credentials_of_its_longest_prefix() {
        let plain = config()
            .server_for(&plan(Some("https://mimir.example/prometheus/team-b")))
            .unwrap();
        assert_eq!(
            plain.url.as_str(),
            "https://mimir.example/prometheus/team-b"
        );
        assert_eq!(plain.access, Access::default());
        let tenant = config()
            .server_for(&plan(Some("https://mimir.example/prometheus/team-a/")))
            .unwrap();
        assert_eq!(
            tenant.access.headers,
            vec![("X-Scope-OrgID".to_owned(), "team-a".to_owned())]
        );
    }

    #[test]
    fn an_address_off_the_allow_list_makes_the_policy_invalid() {
        assert_eq!(
            config().server_for(&plan(Some("http://169.254.169.254/latest"))),
            Err(MetricsError::AddressNotAllowed {
                address: "http://169.254.169.254/latest".into(),
                allowed:
                    "https://mimir.example/prometheus, https://mimir.example/prometheus/team-a"
                        .into()
            })
        );
    }

    #[test]
    fn an_empty_allow_list_allows_no_address_but_the_default() {
        let c = SourceConfig {
            allowed: Vec::new(),
            ..config()
        };
        assert!(matches!(
            c.server_for(&plan(Some("https://mimir.example/prometheus"))),
            Err(MetricsError::AddressNotAllowed { .. })
        ));
        assert_eq!(
            c.server_for(&plan(Some("http://prometheus.monitoring:9090/"))),
            Ok(config().default.unwrap())
        );
    }

    #[test]
    fn the_default_staleness_limit_is_twice_the_interval_plus_a_minute() {
        assert_eq!(
            config().staleness_limit(Duration::from_secs(15)),
            Duration::from_secs(90)
        );
        let fixed = SourceConfig {
            staleness_limit: Some(Duration::from_secs(30)),
            ..config()
        };
        assert_eq!(
            fixed.staleness_limit(Duration::from_secs(15)),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn operator_urls_must_not_carry_credentials() {
        let e = parse_url("--prometheus-url", "https://u:p@prom.example").unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"--prometheus-url: "https://u:p@prom.example" is not usable: put credentials in the bearer-token or basic-auth files, not in the URL"#
        );
        assert!(parse_url("--prometheus-url", "ftp://prom").is_err());
        assert!(parse_url("--prometheus-url", "http://127.0.0.1:9090").is_ok());
    }

    #[test]
    fn the_allow_list_file_lists_prefixes_with_their_access() {
        let dir = std::env::temp_dir().join(format!("scalewise-allow-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("allowed.yaml");
        std::fs::write(
            &path,
            r#"
servers:
  - urlPrefix: https://mimir.example/prometheus
    bearerTokenFile: /var/run/secrets/mimir/token
    headers:
      X-Scope-OrgID: team-a
    namespaces: [team-a, team-a-jobs]
    namespaceLabel: tenant_namespace
  - urlPrefix: http://thanos-query.monitoring:9090
"#,
        )
        .unwrap();
        let list = load_allow_list(&path).unwrap();
        assert_eq!(
            list,
            vec![
                ServerConfig {
                    url: url("https://mimir.example/prometheus"),
                    access: Access {
                        bearer_token_file: Some("/var/run/secrets/mimir/token".into()),
                        headers: vec![("X-Scope-OrgID".into(), "team-a".into())],
                        ..Access::default()
                    },
                    tenancy: ServerTenancy {
                        namespace_label: Some("tenant_namespace".into()),
                        ..only(&["team-a", "team-a-jobs"])
                    },
                },
                // Without namespaces: usable by none.
                ServerConfig {
                    url: url("http://thanos-query.monitoring:9090"),
                    access: Access::default(),
                    tenancy: only(&[]),
                },
            ]
        );
        for (bad, field) in [
            ("namespaces: [Team]", "servers[0].namespaces[0]"),
            ("namespaceLabel: 'a-b'", "servers[0].namespaceLabel"),
        ] {
            std::fs::write(
                &path,
                format!("servers:\n  - urlPrefix: http://a\n    {bad}\n"),
            )
            .unwrap();
            let e = load_allow_list(&path).unwrap_err().to_string();
            assert!(e.contains(field), "{e}");
        }
        std::fs::write(
            &path,
            "servers:\n  - urlPrefix: http://a\n    bearerToken: x\n",
        )
        .unwrap();
        assert!(
            load_allow_list(&path)
                .unwrap_err()
                .to_string()
                .contains("bearerToken")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
