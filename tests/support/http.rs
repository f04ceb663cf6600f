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
/// Prometheus that hangs), with each accepted connection reported on the channel. Abort the task
/// to stop it.
pub async fn blackhole() -> (
    String,
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("listen on 127.0.0.1");
    let address = format!("http://{}", listener.local_addr().expect("an address"));
    let (tx, accepted) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            open.push(stream);
            let _ = tx.try_send(());
        }
    });
    (address, task, accepted)
}
