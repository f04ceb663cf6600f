//! TLS for the one HTTP client of the process: rustls with the ring provider (the one kube uses),
//! the system's CA certificates plus every configured CA bundle, and certificate verification
//! skipped only for the hosts configured with `insecureSkipVerify`.

use std::collections::HashSet;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

use super::endpoint::SourceConfig;
use super::error::ConfigError;

/// The rustls configuration for every server of `config`.
pub fn client_config(config: &SourceConfig) -> Result<ClientConfig, ConfigError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = Vec::new();
    let mut insecure_hosts = HashSet::new();
    for server in config.servers() {
        if let Some(path) = &server.access.ca_file {
            let pem = std::fs::read(path).map_err(|source| ConfigError::ReadFile {
                what: "the CA bundle",
                path: path.clone(),
                source,
            })?;
            let before = roots.len();
            for cert in CertificateDer::pem_slice_iter(&pem) {
                roots.push(cert.map_err(|e| ConfigError::CaBundle {
                    path: path.clone(),
                    message: e.to_string(),
                })?);
            }
            if roots.len() == before {
                return Err(ConfigError::CaBundle {
                    path: path.clone(),
                    message: "holds no PEM certificate".into(),
                });
            }
        }
        if server.access.insecure_skip_verify
            && let Some(host) = server.url.host_str()
        {
            insecure_hosts.insert(host.to_owned());
        }
    }
    // Without any CA certificate (a minimal image and no bundle) plain HTTP must still work: the
    // error is kept and reported by the first TLS handshake.
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, Arc::clone(&provider))
            .map_err(|e| e.to_string());
    let verifier = HostVerifier {
        verifier,
        insecure_hosts,
        provider: Arc::clone(&provider),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConfigError::Client(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(config)
}

/// Verifies certificates with the system's and the configured roots, except for the hosts
/// configured as insecure.
#[derive(Debug)]
struct HostVerifier {
    verifier: Result<rustls_platform_verifier::Verifier, String>,
    insecure_hosts: HashSet<String>,
    provider: Arc<CryptoProvider>,
}

impl HostVerifier {
    fn insecure(&self, name: &ServerName<'_>) -> bool {
        let host = match name {
            ServerName::DnsName(dns) => dns.as_ref().to_owned(),
            ServerName::IpAddress(ip) => std::net::IpAddr::from(*ip).to_string(),
            _ => return false,
        };
        // url::Url writes IPv6 hosts in brackets.
        self.insecure_hosts.contains(&host) || self.insecure_hosts.contains(&format!("[{host}]"))
    }

    fn inner(&self) -> Result<&rustls_platform_verifier::Verifier, rustls::Error> {
        self.verifier.as_ref().map_err(|e| {
            rustls::Error::General(format!("no CA certificates to verify the server: {e}"))
        })
    }
}

impl ServerCertVerifier for HostVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.insecure(server_name) {
            return Ok(ServerCertVerified::assertion());
        }
        self.inner()?
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
