//! The upper limit of every field a user writes in a ScalingPolicy, in one place: the CRD schema
//! (`maximum`, `maxLength`, `maxItems`) and validation read the same constants, so that
//! `scalewise check` and the operator refuse exactly what the API server refuses. The README's
//! spec reference gives the reason for each.
//!
//! Where the HorizontalPodAutoscaler bounds the same concept, the limit is the HPA's (replica
//! counts and rate-policy values: any int32; stabilization windows up to 1h; rate periods up to
//! 30m), so that every HPA `behavior` can be written as a policy. Lengths count characters, as
//! the API server's `maxLength` does.

use jiff::SignedDuration;

/// The largest replica count, step, rate-policy value and failure count: the largest int32.
/// API servers do not enforce `format: int32`, so the schema says `maximum` too.
pub const MAX_INT32: i32 = i32::MAX;
/// The most cross-namespace grants and opted-out namespaces the operator may set.
pub const MAX_GRANTS: usize = 1000;
/// The most Prometheus metric names one grant may list.
pub const MAX_GRANT_METRICS: usize = 100;

/// The shortest evaluation interval.
pub const MIN_INTERVAL: SignedDuration = SignedDuration::from_secs(1);
/// The longest evaluation interval: an autoscaler that looks less often than hourly does not
/// follow load, and it keeps every time computed from the interval far from overflow.
pub const MAX_INTERVAL: SignedDuration = SignedDuration::from_secs(3600);
/// The longest cooldown. The HPA has no cooldown; a cooldown keeps no history (only the last
/// scale time), so a whole day costs nothing and is longer than any real use (`paused` stops a
/// policy for longer).
pub const MAX_COOLDOWN: SignedDuration = SignedDuration::from_secs(24 * 3600);
/// The longest stabilization window (as in the HorizontalPodAutoscaler).
pub const MAX_STABILIZATION_WINDOW: SignedDuration = SignedDuration::from_secs(3600);
/// The longest rate-policy period (as in the HorizontalPodAutoscaler).
pub const MAX_RATE_PERIOD: SignedDuration = SignedDuration::from_secs(1800);
/// The longest `spec.pods.cpuInitializationPeriod` and `initialReadinessDelay`: the HPA's flags
/// have no bound, but a pod whose start-up takes longer than an hour is not starting.
pub const MAX_POD_START_PERIOD: SignedDuration = SignedDuration::from_secs(3600);
/// The shortest `spec.pods.readinessTimeout`.
pub const MIN_READINESS_TIMEOUT: SignedDuration = SignedDuration::from_secs(1);
/// The longest `spec.pods.readinessTimeout`: an hour of waiting for capacity holds every
/// scale-out for that long.
pub const MAX_READINESS_TIMEOUT: SignedDuration = SignedDuration::from_secs(3600);
/// The shortest metric window.
pub const MIN_WINDOW: SignedDuration = SignedDuration::from_secs(1);
/// The longest metric window (`{window}`, the range of `rate()`): every evaluation asks
/// Prometheus for a window's worth of samples of each series, and a value averaged over more
/// than an hour cannot follow the load the policy scales for.
pub const MAX_WINDOW: SignedDuration = SignedDuration::from_secs(3600);
/// The longest text of a duration (`maxLength` in the schema): the pattern cannot bound the
/// value, so validation checks each duration's value against its own limit; this bounds the
/// text. The longest useful form, `23h59m59s`, has 9 characters.
pub const MAX_DURATION_LENGTH: usize = 32;

/// The most metrics per policy. The HPA sets no limit; every metric is one query per interval,
/// so this bounds the queries one policy sends to Prometheus.
pub const MAX_METRICS: usize = 20;
/// The most seasons a forecast may have.
pub const MAX_FORECAST_SEASONS: usize = 3;
/// The shortest and longest forecast season.
pub const FORECAST_SEASON_RANGE: (SignedDuration, SignedDuration) = (
    SignedDuration::from_mins(10),
    SignedDuration::from_hours(168),
);
/// The finest and coarsest resolution of a forecast's history.
pub const FORECAST_STEP_RANGE: (SignedDuration, SignedDuration) =
    (SignedDuration::from_secs(10), SignedDuration::from_hours(1));
/// The shortest and longest time between reads of a forecast's history.
pub const FORECAST_REFRESH_RANGE: (SignedDuration, SignedDuration) = (
    SignedDuration::from_secs(10),
    SignedDuration::from_hours(24),
);
/// The shortest and longest accuracy window of a forecast.
pub const FORECAST_ACCURACY_WINDOW_RANGE: (SignedDuration, SignedDuration) = (
    SignedDuration::from_mins(1),
    SignedDuration::from_hours(168),
);
/// The most points of history one refresh of a forecast reads: Prometheus' own limit on a range
/// query's points per series.
pub const MAX_FORECAST_POINTS: i64 = 11_000;
/// The most rate policies per direction. The HPA sets no count, and a behavior seldom has more
/// than two; this bounds the work of each decision and the status it keeps.
pub const MAX_RATE_POLICIES: usize = 100;

/// The longest `query`, in characters: hand-written PromQL seldom passes 1,000. It bounds the
/// parse (done before the first query) and the size of the status that records each query.
pub const MAX_QUERY_LENGTH: usize = 8192;
/// The deepest nesting of brackets (`(`, `[`, `{`) in a `query` or a label matcher list.
/// The PromQL parser recurses and overflows its thread's stack at a few thousand levels; real
/// queries nest fewer than ten. Checked by a cheap scan before parsing.
pub const MAX_QUERY_NESTING: usize = 64;
/// The longest label matcher list (`podSelector`, `selector`, `errorSelector`, ...): room for a
/// regular expression alternating between dozens of names.
pub const MAX_SELECTOR_LENGTH: usize = 4096;
/// The longest Prometheus metric name (`usageMetric`, `requestsMetric`, `histogram`,
/// `counter`). Prometheus sets none; real names stay under 100.
pub const MAX_PROMETHEUS_NAME_LENGTH: usize = 256;
/// The longest `metrics[].name`: it is a label value and part of the operator's own metrics.
pub const MAX_METRIC_NAME_LENGTH: usize = 63;
/// The longest `spec.prometheus.address`: the usual limit of a URL in browsers and servers.
pub const MAX_ADDRESS_LENGTH: usize = 2048;
/// The longest `targetRef.name`: an object's name is a DNS subdomain.
pub const MAX_TARGET_NAME_LENGTH: usize = 253;
/// The longest `targetRef.apiVersion` (a group, a DNS subdomain, and a version).
pub const MAX_API_VERSION_LENGTH: usize = 317;
/// The longest `targetRef.kind`.
pub const MAX_KIND_LENGTH: usize = 63;
/// The longest object uid recorded in status (a UUID has 36 characters).
pub const MAX_UID_LENGTH: usize = 128;
/// The longest resourceVersion recorded in status (opaque to clients; etcd's are decimal numbers).
pub const MAX_RESOURCE_VERSION_LENGTH: usize = 128;

/// How much longer than its own limit a PromQL text may grow once its placeholders are replaced
/// by their longest values (`promql_check::expanded_length`): the query sent to Prometheus and recorded in
/// status stays within twice the written limit, however many `{target}`s a text holds.
pub const MAX_EXPANSION_FACTOR: usize = 2;

/// A DNS subdomain (RFC 1123) as Kubernetes names objects: lower-case letters, digits, `-` and
/// `.`, each dot-separated label starting and ending with a letter or digit.
pub const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Whether `name` is a DNS subdomain of at most 253 characters.
pub fn is_dns_subdomain(name: &str) -> bool {
    let label = |l: &str| {
        let b = l.as_bytes();
        let edge = |c: &u8| c.is_ascii_lowercase() || c.is_ascii_digit();
        b.first().is_some_and(edge)
            && b.last().is_some_and(edge)
            && b.iter().all(|c| edge(c) || *c == b'-')
    };
    !name.is_empty() && name.len() <= MAX_TARGET_NAME_LENGTH && name.split('.').all(label)
}

/// The deepest nesting of `(`, `[` and `{` in PromQL text, outside string literals (`"..."`,
/// `'...'` with backslash escapes, and raw `` `...` ``). A linear scan, without parsing.
pub fn bracket_depth(text: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in text.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' && q != '`' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' | '`' => quote = Some(c),
            '(' | '[' | '{' => {
                depth = depth.saturating_add(1);
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bracket_depth_counts_brackets_outside_strings() {
        assert_eq!(bracket_depth("up"), 0);
        assert_eq!(
            bracket_depth(r#"sum by (pod) (rate(m{a="b"}[5m]))"#),
            3,
            "sum ( then rate ( then a brace or a bracket"
        );
        assert_eq!(bracket_depth(r#"m{a=~"((((\"((("}"#), 1);
        assert_eq!(bracket_depth("m{a=~`((((\\`}"), 1);
        assert_eq!(bracket_depth(")))((("), 3);
        assert_eq!(bracket_depth(&"(".repeat(10_000)), 10_000);
    }

    #[test]
    fn dns_subdomains_are_what_kubernetes_accepts() {
        for ok in ["web", "a", "web-1.shop", &"a".repeat(253), "0"] {
            assert!(is_dns_subdomain(ok), "{ok}");
        }
        for bad in [
            "",
            "Web",
            "-web",
            "web-",
            "a..b",
            ".a",
            "a_b",
            &"a".repeat(254),
        ] {
            assert!(!is_dns_subdomain(bad), "{bad}");
        }
    }
}
