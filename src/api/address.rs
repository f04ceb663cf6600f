//! The one rule for a Prometheus server address, whoever writes it: an absolute `http` or
//! `https` URL with a host, and without credentials, query or fragment. A policy's
//! `spec.prometheus.address` and the operator's `--prometheus-url` follow it alike; each reader is
//! told in its own words.

use url::Url;

/// Why a text is not a server address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AddressProblem {
    NotAUrl(url::ParseError),
    /// The scheme it has instead of http or https.
    Scheme(String),
    NoHost,
    Credentials,
    QueryOrFragment,
}

/// Who wrote the address, and so how a problem is told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Writer {
    /// The author of a policy (`spec.prometheus.address`): the message quotes the address.
    Policy,
    /// The operator (a flag or the allow-list file): the caller names the flag and the URL.
    Operator,
}

/// Checks a server address.
pub fn check_address(text: &str) -> Result<Url, AddressProblem> {
    let url = Url::parse(text).map_err(AddressProblem::NotAUrl)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AddressProblem::Scheme(url.scheme().to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(AddressProblem::NoHost);
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AddressProblem::Credentials);
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(AddressProblem::QueryOrFragment);
    }
    Ok(url)
}

impl AddressProblem {
    /// The problem with `address`, told to whoever wrote it.
    pub fn message(&self, address: &str, writer: Writer) -> String {
        match (self, writer) {
            (Self::NotAUrl(e), Writer::Policy) => {
                format!("{address:?} is not a URL: {e}; write it as https://host:port/path")
            }
            (Self::NotAUrl(e), Writer::Operator) => e.to_string(),
            (Self::Scheme(scheme), Writer::Policy) => {
                format!("{address:?} must use http or https, got {scheme}")
            }
            (Self::Scheme(_), Writer::Operator) => "the scheme must be http or https".into(),
            (Self::NoHost, Writer::Policy) => format!("{address:?} has no host"),
            (Self::NoHost, Writer::Operator) => "it has no host".into(),
            (Self::Credentials, Writer::Policy) => format!(
                "{address:?} must not carry credentials; the operator configures them per server"
            ),
            (Self::Credentials, Writer::Operator) => {
                "put credentials in the bearer-token or basic-auth files, not in the URL".into()
            }
            (Self::QueryOrFragment, Writer::Policy) => format!(
                "{address:?} must not have a query or fragment; give the base URL of the API"
            ),
            (Self::QueryOrFragment, Writer::Operator) => {
                "it must not have a query or fragment".into()
            }
        }
    }
}

/// Checks a server address as `spec.prometheus.address` must be written. Whether the operator
/// allows it is for the metrics reader to say.
pub fn parse_server_address(address: &str) -> Result<Url, String> {
    check_address(address).map_err(|problem| problem.message(address, Writer::Policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_rule_told_to_the_policy_author_and_to_the_operator() {
        let problem = check_address("ftp://prom").unwrap_err();
        assert_eq!(problem, AddressProblem::Scheme("ftp".into()));
        assert_eq!(
            problem.message("ftp://prom", Writer::Policy),
            "\"ftp://prom\" must use http or https, got ftp"
        );
        assert_eq!(
            problem.message("ftp://prom", Writer::Operator),
            "the scheme must be http or https"
        );
        assert_eq!(
            check_address("https://u:p@prom.example"),
            Err(AddressProblem::Credentials)
        );
        assert_eq!(
            check_address("http://prom:9090/x?y=1"),
            Err(AddressProblem::QueryOrFragment)
        );
        assert!(matches!(
            check_address("/api/v1"),
            Err(AddressProblem::NotAUrl(_))
        ));
        assert!(check_address("http://127.0.0.1:9090/prefix").is_ok());
    }
}
