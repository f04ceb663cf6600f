//! `scalewise run` as a child process of an end-to-end test.

use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::workload::free_port;
use super::{TestEnv, required_env};

/// A `scalewise run` process watching one namespace. Killed when dropped.
pub struct Operator {
    pub child: Child,
    /// The plain port (loopback): /metrics, /healthz, /readyz.
    pub port: u16,
    /// The TLS port: /metrics for reviewed tokens only.
    pub secure_port: u16,
    pub log: std::path::PathBuf,
}

impl Operator {
    pub fn start(env: &TestEnv, identity: &str, extra: &[&str]) -> Operator {
        Self::start_on(
            env,
            identity,
            &required_env("SCALEWISE_PROMETHEUS_URL"),
            extra,
        )
    }

    /// Started against the Prometheus at `prometheus`.
    pub fn start_on(env: &TestEnv, identity: &str, prometheus: &str, extra: &[&str]) -> Operator {
        Self::start_with(env, identity, prometheus, None, &[], extra)
    }

    /// Started with these environment variables added (LD_PRELOAD, say).
    pub fn start_env(
        env: &TestEnv,
        identity: &str,
        vars: &[(&str, &str)],
        extra: &[&str],
    ) -> Operator {
        let prometheus = required_env("SCALEWISE_PROMETHEUS_URL");
        Self::start_with(env, identity, &prometheus, None, vars, extra)
    }

    /// Started with the API server of `kubeconfig` (a fault-injecting proxy, say) instead of the
    /// test environment's.
    pub fn start_via(env: &TestEnv, identity: &str, kubeconfig: &Path, extra: &[&str]) -> Operator {
        let prometheus = required_env("SCALEWISE_PROMETHEUS_URL");
        Self::start_with(env, identity, &prometheus, Some(kubeconfig), &[], extra)
    }

    fn start_with(
        env: &TestEnv,
        identity: &str,
        prometheus: &str,
        kubeconfig: Option<&Path>,
        vars: &[(&str, &str)],
        extra: &[&str],
    ) -> Operator {
        let port = free_port();
        let secure_port = free_port();
        let log =
            std::env::temp_dir().join(format!("scalewise-e2e-{}-{identity}.log", env.namespace));
        let stderr = File::create(&log).expect("operator log file");
        let mut args = vec![
            "run".to_owned(),
            "--prometheus-url".into(),
            prometheus.to_owned(),
            "--namespace".into(),
            env.namespace.clone(),
            "--metrics-bind".into(),
            format!("127.0.0.1:{port}"),
            "--secure-metrics-bind".into(),
            format!("127.0.0.1:{secure_port}"),
            "--lease-namespace".into(),
            env.namespace.clone(),
            "--log-format".into(),
            "json".into(),
        ];
        // Every evaluation written, as the tests that follow evaluations through the status
        // expect, unless the test sets its own heartbeat.
        if !extra.contains(&"--status-heartbeat") {
            args.extend(["--status-heartbeat".to_owned(), "1s".to_owned()]);
        }
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        // SCALEWISE_TEST_OPERATOR_WRAPPER runs the operator under a profiler, such as
        // `heaptrack -o /tmp/operator` (a program and its arguments, split on spaces).
        let wrapper = std::env::var("SCALEWISE_TEST_OPERATOR_WRAPPER").unwrap_or_default();
        let mut words = wrapper.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(env!("CARGO_BIN_EXE_scalewise"));
                c
            }
            None => Command::new(env!("CARGO_BIN_EXE_scalewise")),
        };
        if let Some(kubeconfig) = kubeconfig {
            command.env("KUBECONFIG", kubeconfig);
        }
        command.envs(vars.iter().copied());
        let child = command
            .args(&args)
            .env("POD_NAME", identity)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("scalewise run starts");
        Operator {
            child,
            port,
            secure_port,
            log,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// GET a path of the operator's own server: (status code, body).
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        super::http::request(
            hyper::Method::GET,
            &self.url(path),
            &[],
            bytes::Bytes::new(),
        )
        .await
        .ok()
        .map(|r| (r.status.as_u16(), r.text()))
    }

    /// Sends `signal` (STOP, CONT...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGKILL: the process dies at once, as in a node failure.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then wait for the exit code.
    pub fn terminate(&mut self, timeout: Duration) -> Option<i32> {
        super::sigterm(&mut self.child, timeout).and_then(|s| s.code())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The value of the sample `name` (with its labels) in a Prometheus text exposition; 0 if absent.
pub fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or(0.0)
}

impl Operator {
    /// The value of sample `name` on the operator's /metrics; 0 if absent or unreachable.
    pub async fn metric(&self, name: &str) -> f64 {
        match self.get("/metrics").await {
            Some((200, text)) => counter(&text, name),
            _ => 0.0,
        }
    }
}

/// The `ScaledOut` events of the test's namespace, oldest listed first: each one's policy and the
/// replica that reported it (`reportingInstance`).
pub async fn scaled_out(env: &TestEnv) -> Vec<(String, String)> {
    use k8s_openapi::api::events::v1::Event;
    let list = env
        .api::<Event>()
        .list(&kube::api::ListParams::default())
        .await
        .expect("list events");
    list.items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("ScaledOut"))
        .map(|e| {
            (
                e.regarding.and_then(|r| r.name).unwrap_or_default(),
                e.reporting_instance.unwrap_or_default(),
            )
        })
        .collect()
}
