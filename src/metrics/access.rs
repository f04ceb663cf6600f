//! How the operator reaches a server: credentials read from files, TLS settings and extra
//! headers. Credentials and headers are sent only where they were configured (see
//! [`super::endpoint`]).

use std::io::Read as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::error::ConfigError;

/// Basic-auth credentials, each read from a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BasicAuthFiles {
    pub username_file: PathBuf,
    pub password_file: PathBuf,
}

/// How to reach one server: credentials, TLS and extra headers.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// A file holding a bearer token, read again at every evaluation (tokens rotate).
    pub bearer_token_file: Option<PathBuf>,
    /// Basic-auth username and password files, read again at every evaluation.
    pub basic_auth: Option<BasicAuthFiles>,
    /// A PEM bundle of CA certificates trusted for this server, besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Do not verify the server's certificate (for its host).
    pub insecure_skip_verify: bool,
    /// Extra request headers, such as `X-Scope-OrgID` for Mimir, Cortex or Thanos tenants.
    pub headers: Vec<(String, String)>,
}

/// Parses `Name: value` as given to `--prometheus-header`.
pub fn parse_header(text: &str) -> Result<(String, String), ConfigError> {
    let (name, value) = text.split_once(':').ok_or_else(|| ConfigError::Header {
        header: text.to_owned(),
        message: "write it as Name: value".into(),
    })?;
    let (name, value) = (name.trim().to_owned(), value.trim().to_owned());
    check_header(&name, &value)?;
    Ok((name, value))
}

pub(super) fn check_header(
    name: &str,
    value: &str,
) -> Result<(HeaderName, HeaderValue), ConfigError> {
    let error = |message: String| ConfigError::Header {
        header: name.to_owned(),
        message,
    };
    let n = HeaderName::from_bytes(name.as_bytes()).map_err(|e| error(e.to_string()))?;
    let mut v = HeaderValue::from_str(value).map_err(|e| error(e.to_string()))?;
    v.set_sensitive(true);
    Ok((n, v))
}

/// The longest credential file read: no token or password is this long, and a wrong path (a
/// log, a device) must not fill the operator's memory.
const MAX_SECRET_BYTES: u64 = 64 * 1024;

impl Access {
    /// The request headers, as [`Access::headers`] builds them, with the credential files read on
    /// tokio's blocking pool: an evaluation reads them every time (tokens rotate), and a slow
    /// filesystem must not stall the async runtime's workers. Without credential files nothing
    /// is read and nothing is spawned.
    pub async fn read_headers(&self) -> Result<HeaderMap, ConfigError> {
        if self.bearer_token_file.is_none() && self.basic_auth.is_none() {
            return self.headers();
        }
        let access = self.clone();
        tokio::task::spawn_blocking(move || access.headers())
            .await
            .map_err(|e| {
                ConfigError::Credentials(format!("reading the credential files failed: {e}"))
            })?
    }

    /// The request headers: credentials (files read now, blocking) and extra headers. For
    /// start-up checks and callers outside the async runtime; evaluations use
    /// [`Access::read_headers`].
    pub fn headers(&self) -> Result<HeaderMap, ConfigError> {
        let mut map = HeaderMap::new();
        for (name, value) in &self.headers {
            let (n, v) = check_header(name, value)?;
            map.append(n, v);
        }
        if let Some(path) = &self.bearer_token_file {
            let token = read_secret("bearer token file", path)?;
            let (_, v) =
                check_header("Authorization", &format!("Bearer {token}")).map_err(|_| {
                    ConfigError::Credentials(format!(
                        "the bearer token in {} holds characters a header cannot carry",
                        path.display()
                    ))
                })?;
            map.insert(AUTHORIZATION, v);
        } else if let Some(basic) = &self.basic_auth {
            let user = read_secret("basic-auth username file", &basic.username_file)?;
            let password = read_secret("basic-auth password file", &basic.password_file)?;
            let encoded =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let (_, v) = check_header("Authorization", &format!("Basic {encoded}"))?;
            map.insert(AUTHORIZATION, v);
        }
        Ok(map)
    }

    /// Checks that the credential files can be read (at start-up, to fail early).
    pub fn check(&self) -> Result<(), ConfigError> {
        if self.bearer_token_file.is_some() && self.basic_auth.is_some() {
            return Err(ConfigError::Credentials(
                "give a bearer token or basic auth, not both".into(),
            ));
        }
        self.headers().map(|_| ())
    }
}

/// A secret from a file (at most [`MAX_SECRET_BYTES`]), without the trailing newline editors
/// add.
fn read_secret(what: &'static str, path: &Path) -> Result<String, ConfigError> {
    let error = |source| ConfigError::ReadFile {
        what,
        path: path.to_owned(),
        source,
    };
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|file| file.take(MAX_SECRET_BYTES + 1).read_to_string(&mut text))
        .map_err(error)?;
    if text.len() as u64 > MAX_SECRET_BYTES {
        return Err(error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "longer than 64 KiB, which no credential is",
        )));
    }
    Ok(text.trim_end_matches(['\r', '\n']).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_name_colon_value() {
        assert_eq!(
            parse_header("X-Scope-OrgID: team-a").unwrap(),
            ("X-Scope-OrgID".to_owned(), "team-a".to_owned())
        );
        assert!(parse_header("no colon").is_err());
        assert!(parse_header("bad name: x").is_err());
    }

    #[test]
    fn credentials_are_read_from_files_without_trailing_newlines() {
        let dir = std::env::temp_dir().join(format!("scalewise-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "s3cret\n").unwrap();
        std::fs::write(dir.join("user"), "alice\n").unwrap();
        std::fs::write(dir.join("password"), "wonder land").unwrap();
        let bearer = Access {
            bearer_token_file: Some(dir.join("token")),
            headers: vec![("X-Scope-OrgID".into(), "team-a".into())],
            ..Access::default()
        }
        .headers()
        .unwrap();
        assert_eq!(bearer["authorization"], "Bearer s3cret");
        assert_eq!(bearer["x-scope-orgid"], "team-a");
        let basic = Access {
            basic_auth: Some(BasicAuthFiles {
                username_file: dir.join("user"),
                password_file: dir.join("password"),
            }),
            ..Access::default()
        }
        .headers()
        .unwrap();
        // base64("alice:wonder land")
        assert_eq!(basic["authorization"], "Basic YWxpY2U6d29uZGVyIGxhbmQ=");
        let missing = Access {
            bearer_token_file: Some(dir.join("nope")),
            ..Access::default()
        };
        assert!(
            missing
                .headers()
                .unwrap_err()
                .to_string()
                .starts_with("cannot read bearer token file")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn evaluations_read_the_same_headers_off_the_runtime_with_the_same_errors() {
        let dir =
            std::env::temp_dir().join(format!("scalewise-creds-async-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("token"), "s3cret\n").unwrap();
        let bearer = Access {
            bearer_token_file: Some(dir.join("token")),
            headers: vec![("X-Scope-OrgID".into(), "team-a".into())],
            ..Access::default()
        };
        assert_eq!(
            bearer.read_headers().await.unwrap(),
            bearer.headers().unwrap()
        );
        let missing = Access {
            bearer_token_file: Some(dir.join("nope")),
            ..Access::default()
        };
        assert_eq!(
            missing.read_headers().await.unwrap_err().to_string(),
            missing.headers().unwrap_err().to_string()
        );
        std::fs::write(dir.join("huge"), vec![b'x'; 64 * 1024 + 1]).unwrap();
        let huge = Access {
            bearer_token_file: Some(dir.join("huge")),
            ..Access::default()
        };
        assert_eq!(
            huge.read_headers().await.unwrap_err().to_string(),
            format!(
                "cannot read bearer token file {}: longer than 64 KiB, which no credential is",
                dir.join("huge").display()
            )
        );
        let plain = Access::default();
        assert!(plain.read_headers().await.unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
