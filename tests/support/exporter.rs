//! A tiny metrics exporter served by the test itself on 127.0.0.1, for
//! Prometheus and VictoriaMetrics to scrape.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    task::JoinHandle,
};

/// Serves whatever text it was last given at any path, in the Prometheus
/// text exposition format. Stops when dropped.
pub struct Exporter {
    /// A name unique to the test; it becomes the `job` label of the scrapes.
    pub job: String,
    port: u16,
    body: Arc<Mutex<String>>,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Listens on a free port of 127.0.0.1 and serves `body`.
    pub async fn start(job: &str, body: &str) -> Exporter {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("exporter {job}: cannot listen on 127.0.0.1: {e}"));
        let port = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("exporter {job}: no local address: {e}"))
            .port();
        let shared = Arc::new(Mutex::new(body.to_owned()));
        let served = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let body = served
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                tokio::spawn(serve_one(stream, body));
            }
        });
        Exporter {
            job: job.to_owned(),
            port,
            body: shared,
            task,
        }
    }

    /// Replaces what the next scrapes get.
    pub fn set(&self, body: &str) {
        *self.body.lock().unwrap_or_else(PoisonError::into_inner) = body.to_owned();
    }

    /// `host:port`, as a scrape target.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one request (headers only; scrapes have no body) and answers it.
async fn serve_one(mut stream: TcpStream, body: String) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 64 * 1024 {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    // A scraper that went away is not the test's problem.
    let _ = stream.write_all(response.as_bytes()).await;
    let _ = stream.shutdown().await;
}
