//! Plain HTTP/1.1 to the servers of the test environment (all on 127.0.0.1).

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};

/// How long one request may take before the helper gives up.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A response: status and the whole body.
pub struct Response {
    pub status: StatusCode,
    pub body: Bytes,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends one request and reads the whole response. `Err` carries a message
/// naming the URL, for the panic of the caller.
pub async fn request(
    method: Method,
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Response, String> {
    let client: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    let mut builder = Request::builder().method(method.clone()).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let req = builder
        .body(Full::new(body.into()))
        .map_err(|e| format!("{method} {url}: bad request: {e}"))?;
    let exchange = async {
        let resp = client
            .request(req)
            .await
            .map_err(|e| format!("{method} {url}: {e}"))?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("{method} {url}: reading the body: {e}"))?
            .to_bytes();
        Ok(Response { status, body })
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method} {url}: no response in {REQUEST_TIMEOUT:?}"))?
}

/// GET that must answer 200; returns the body.
pub async fn get_ok(url: &str) -> Result<Bytes, String> {
    let resp = request(Method::GET, url, &[], Bytes::new()).await?;
    if resp.status != StatusCode::OK {
        return Err(format!("GET {url}: {} {}", resp.status, resp.text()));
    }
    Ok(resp.body)
}

/// POST that must answer 2xx.
pub async fn post_ok(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Result<Bytes, String> {
    let resp = request(Method::POST, url, headers, body).await?;
    if !resp.status.is_success() {
        return Err(format!("POST {url}: {} {}", resp.status, resp.text()));
    }
    Ok(resp.body)
}

/// A server on a free port of 127.0.0.1 that accepts connections and never answers (a
/// Prometheus that hangs). Each connection whose request holds `needle` (a test's namespace: a
/// port freed by another test may still be dialled by that test's operator) is reported on the
/// channel. Abort the task to stop it and drop every connection it holds.
pub async fn blackhole(
    needle: &str,
) -> (
    String,
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::Receiver<()>,
) {
    use tokio::io::AsyncReadExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen on 127.0.0.1");
    let address = format!("http://{}", listener.local_addr().expect("an address"));
    let (tx, accepted) = tokio::sync::mpsc::channel(16);
    let needle = needle.as_bytes().to_vec();
    let task = tokio::spawn(async move {
        let mut open = tokio::task::JoinSet::new();
        while let Ok((mut stream, _)) = listener.accept().await {
            let (tx, needle) = (tx.clone(), needle.clone());
            open.spawn(async move {
                let (mut seen, mut chunk) = (Vec::new(), [0u8; 4096]);
                let mut told = false;
                // Read (and hold) until the client goes away; never answer.
                while let Ok(n @ 1..) = stream.read(&mut chunk).await {
                    if !told && seen.len() < 1 << 16 {
                        seen.extend_from_slice(&chunk[..n]);
                        if needle.is_empty()
                            || seen.windows(needle.len()).any(|w| w == needle.as_slice())
                        {
                            told = true;
                            let _ = tx.try_send(());
                        }
                    }
                }
            });
        }
    });
    (address, task, accepted)
}

/// GET `path` over TLS from 127.0.0.1:`port`, with a bearer token if given: (status, body). The
/// server's certificate is not verified (the operator's is self-signed in the tests).
pub async fn https_get(
    port: u16,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), String> {
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_rustls::rustls::{self, pki_types::ServerName};

    #[derive(Debug)]
    struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            message: &[u8],
            cert: &rustls::pki_types::CertificateDer<'_>,
            dss: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                message,
                cert,
                dss,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth();
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect 127.0.0.1:{port}: {e}"))?;
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS handshake with 127.0.0.1:{port}: {e}"))?;
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Connection: close\r\n\r\n");
        tls.write_all(request.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut answer = Vec::new();
        let _ = tls.read_to_end(&mut answer).await;
        let text = String::from_utf8_lossy(&answer).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .ok_or_else(|| format!("no HTTP answer: {text:?}"))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(REQUEST_TIMEOUT, exchange)
        .await
        .map_err(|_| {
            format!("GET https://127.0.0.1:{port}{path}: no answer in {REQUEST_TIMEOUT:?}")
        })?
}
