//! The command line's Prometheus flags as the metrics reader's settings, for `query`, `run` and
//! `simulate` alike.

use super::CommandError;
use crate::api::{Policy, ScalingPolicy};
use crate::cli::PrometheusArgs;
use crate::metrics::endpoint::{Namespaces, ServerTenancy};
use crate::metrics::tenancy::Rules;
use crate::metrics::{
    Access, AnswerLimits, BasicAuthFiles, ConfigError, MetricsError, PrometheusSource, QueryPlan,
    ServerConfig, SourceConfig,
};
use crate::metrics::{access, endpoint};

/// The metrics settings of the command line. The controller builds its settings the same way.
pub fn source_config(args: &PrometheusArgs) -> Result<SourceConfig, ConfigError> {
    let default = args
        .url
        .as_deref()
        .filter(|url| !url.is_empty())
        .map(|url| {
            let headers = args
                .headers
                .iter()
                .filter(|h| !h.trim().is_empty())
                .map(|h| access::parse_header(h))
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, ConfigError>(ServerConfig {
                url: endpoint::parse_url("--prometheus-url", url)?,
                access: Access {
                    bearer_token_file: args.bearer_token_file.clone(),
                    basic_auth: match (&args.username_file, &args.password_file) {
                        (Some(u), Some(p)) => Some(BasicAuthFiles {
                            username_file: u.clone(),
                            password_file: p.clone(),
                        }),
                        _ => None,
                    },
                    ca_file: args.ca_file.clone(),
                    insecure_skip_verify: args.insecure_skip_verify,
                    headers,
                },
                tenancy: ServerTenancy {
                    namespace_label: Some(args.tenancy.namespace_label.clone()),
                    namespaces: Namespaces::All,
                },
            })
        })
        .transpose()?;
    let mut allowed = args
        .allowed_urls
        .iter()
        .filter(|u| !u.trim().is_empty())
        .map(|u| endpoint::parse_allowed_url(u))
        .collect::<Result<Vec<_>, ConfigError>>()?;
    if let Some(path) = &args.allowed_config {
        allowed.extend(endpoint::load_allow_list(path)?);
    }
    let allowed = endpoint::merge_allowed(allowed);
    let tenancy = rules(&args.tenancy).map_err(ConfigError::Tenancy)?;
    if args.timeout.is_zero() {
        return Err(ConfigError::Client(
            "--prometheus-timeout must be at least 1s".into(),
        ));
    }
    Ok(SourceConfig {
        default,
        allowed,
        timeout: args.timeout,
        staleness_limit: args.staleness_limit,
        limits: AnswerLimits {
            max_bytes: args.max_answer_bytes,
            max_series: usize::try_from(args.max_series).unwrap_or(usize::MAX),
            max_pod_series: usize::try_from(args.max_pod_series).unwrap_or(usize::MAX),
        },
        tenancy,
    })
}

/// The operator's tenancy rules from the command line, checked against their bounds.
pub fn rules(args: &crate::cli::TenancyArgs) -> Result<Rules, String> {
    let rules = Rules {
        unscoped: args.unscoped_namespaces.iter().cloned().collect(),
        grants: args.grants.clone(),
    };
    rules.check()?;
    Ok(rules)
}

/// What a command needs to read a policy's metrics: the plan of its queries, the reader built
/// from `config`, and the server the policy reads from. Errors name the file and the policy
/// (`name`); a missing server is a usage error.
pub fn connect(
    file: &str,
    name: String,
    object: &ScalingPolicy,
    policy: &Policy,
    config: SourceConfig,
) -> Result<(QueryPlan, PrometheusSource, ServerConfig), CommandError> {
    let scope = config.scope_for(
        crate::metrics::plan::namespace_of(object),
        policy.address.as_deref(),
    );
    let plan = QueryPlan::scoped(policy, scope).map_err(|source| CommandError::InvalidPolicy {
        file: file.to_owned(),
        policy: name.clone(),
        source,
    })?;
    let source = PrometheusSource::new(config).map_err(CommandError::Config)?;
    let server = source.server_for(&plan).map_err(|e| match e {
        MetricsError::NoServer => CommandError::Usage(e.to_string()),
        other => CommandError::PolicyMetrics {
            file: file.to_owned(),
            policy: name,
            source: other,
        },
    })?;
    Ok((plan, source, server))
}
