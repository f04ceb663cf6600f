//! `make bench-scale` (tests/bench/scale.sh): many policies on the test environment, measured.
//! Not a test: `#[ignore]`d, run only by the benchmark, which prints one Markdown table row.
//!
//! N Deployments (one replica each, with its pod on a KWOK node of the run's own) and N policies, each with one
//! custom-query metric over this run's `bench_load` series (scraped every second), are created in
//! parallel; then `scalewise run` (the release build, as the benchmark builds it) starts, on one
//! replica or sharded over several. Measured: how long creating the objects took; when every
//! policy had been evaluated once; over a steady window of four intervals, the operator's CPU
//! (from /proc), its resident memory (idle, and the peak over the run), Prometheus queries per
//! interval (Prometheus' own request counter), API writes per second by verb and resource and any
//! 429 (the API server's own counter), and the lateness of evaluations (the operator's
//! histogram); then the load is raised at once for every policy and each Deployment's reaction
//! (until its replicas rose) is timed.
//!
//! Settings: SCALEWISE_BENCH_SCALE_POLICIES (N, default 1000, at most 20000),
//! SCALEWISE_BENCH_SCALE_INTERVAL (seconds, default 15), SCALEWISE_BENCH_SCALE_REPLICAS (operator
//! replicas, default 1: sharded when more, at most 5). Everything it starts is stopped when it
//! ends; each wait is bounded.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use kube::api::ListParams;
use scalewise::api::ScalingPolicy;
use serde_json::json;
use support::exporter::Exporter;
use support::operator::Operator;
use support::policies::{create_policy, with_spec};
use support::workload::create_deployment;
use support::{TestEnv, install_crd};

fn setting(name: &str, default: u64, most: u64) -> u64 {
    let value = std::env::var(name)
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{name}={v}: a number"))
        })
        .unwrap_or(default);
    assert!((1..=most).contains(&value), "{name}={value}: 1 to {most}");
    value
}

/// The samples of a Prometheus text exposition: (name, labels, value).
fn samples(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (head, value) = match line.rsplit_once(' ') {
            Some(split) => split,
            None => continue,
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let (name, labels) = match head.split_once('{') {
            Some((name, rest)) => (name, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            if let Some((k, v)) = pair.split_once('=') {
                map.insert(
                    k.trim_matches(',').to_owned(),
                    v.trim_matches('"').to_owned(),
                );
            }
        }
        out.push((name.to_owned(), map, value));
    }
    out
}

/// The API server's request counter: writes by "VERB resource[/subresource]", and 429s.
async fn api_requests(env: &TestEnv) -> (BTreeMap<String, f64>, f64) {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("a request");
    let text = env
        .client
        .request_text(request)
        .await
        .expect("the API server's /metrics");
    let mut writes = BTreeMap::new();
    let mut throttled = 0.0;
    for (name, labels, value) in samples(&text) {
        if name != "apiserver_request_total" {
            continue;
        }
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        if get("code") == "429" {
            throttled += value;
        }
        let verb = get("verb");
        if matches!(verb.as_str(), "POST" | "PUT" | "PATCH" | "DELETE" | "APPLY") {
            let mut what = format!("{verb} {}", get("resource"));
            if !get("subresource").is_empty() {
                what = format!("{what}/{}", get("subresource"));
            }
            *writes.entry(what).or_insert(0.0) += value;
        }
    }
    (writes, throttled)
}

/// Prometheus' count of instant queries answered.
async fn prometheus_queries(env: &TestEnv) -> f64 {
    let url = format!("{}/metrics", env.prometheus.url);
    let text = support::http::request(hyper::Method::GET, &url, &[], bytes::Bytes::new())
        .await
        .expect("Prometheus' /metrics")
        .text();
    samples(&text)
        .into_iter()
        .filter(|(name, labels, _)| {
            name == "prometheus_http_requests_total"
                && labels.get("handler").map(String::as_str) == Some("/api/v1/query")
        })
        .map(|(_, _, v)| v)
        .sum()
}

/// CPU seconds and resident bytes of process `pid`.
fn usage(pid: u32) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command (which may hold spaces) start after the last ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|i| fields.get(*i).and_then(|f| f.parse::<f64>().ok()))
        .sum();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024;
    (ticks / 100.0, rss)
}

/// The operator's lateness histogram: (upper bound, cumulative count) per bucket.
async fn lateness(op: &Operator) -> Vec<(f64, f64)> {
    let Some((200, text)) = op.get("/metrics").await else {
        return Vec::new();
    };
    samples(&text)
        .into_iter()
        .filter(|(name, _, _)| name == "scalewise_evaluation_lateness_seconds_bucket")
        .filter_map(|(_, labels, v)| {
            let le = labels.get("le")?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((bound, v))
        })
        .collect()
}

/// The bucket bound at or below which a fraction `q` of the evaluations between two histograms
/// fell.
fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], q: f64) -> f64 {
    let mut deltas: Vec<(f64, f64)> = after
        .iter()
        .map(|(bound, n)| {
            let was = before
                .iter()
                .find(|(b, _)| b == bound)
                .map_or(0.0, |(_, n)| *n);
            (*bound, n - was)
        })
        .collect();
    deltas.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = deltas.last().map_or(0.0, |(_, n)| *n);
    deltas
        .iter()
        .find(|(_, n)| *n >= q * total)
        .map_or(f64::NAN, |(bound, _)| *bound)
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let at = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: make bench-scale"]
async fn bench_scale() {
    let n = setting("SCALEWISE_BENCH_SCALE_POLICIES", 1000, 20_000) as usize;
    let interval = Duration::from_secs(setting("SCALEWISE_BENCH_SCALE_INTERVAL", 15, 600));
    let replicas = setting("SCALEWISE_BENCH_SCALE_REPLICAS", 1, 5) as usize;
    let say = |what: &str| eprintln!("bench-scale: {what}");

    let env = TestEnv::new("bench-scale").await;
    install_crd(&env.client).await;
    let exporter = Exporter::start(&env.namespace, "bench_load 10\n").await;
    env.scrape(&exporter).await;

    // Room for every pod, before and after the load rises: the environment's three KWOK nodes
    // hold 110 pods each. One more fake node, removed at the end.
    let node = big_node(&env, n).await;

    let created = Instant::now();
    let spec = |i: usize| {
        json!({
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": format!("web-{i}")},
            "minReplicas": 1,
            "maxReplicas": 10,
            "interval": format!("{}s", interval.as_secs()),
            "metrics": [{"name": "load", "query": "max(bench_load)", "scaleOutAbove": 70, "scaleInBelow": 30}],
            "behavior": {"scaleOut": {"step": 1, "cooldown": "10m"}}
        })
    };
    stream::iter(0..n)
        .for_each_concurrent(32, |i| {
            let env = &env;
            async move {
                create_deployment(env, &format!("web-{i}"), 1).await;
                create_policy(env, &with_spec(env, &format!("p-{i}"), spec(i), json!({}))).await;
            }
        })
        .await;
    let creating = created.elapsed();
    say(&format!(
        "created {n} Deployments and policies in {creating:?}"
    ));
    // The cluster settles first: every Deployment's pod ready (the controller-manager creates
    // them at its own pace), so that the steady window measures the operator, not the roll-out.
    let deployments = env.api::<Deployment>();
    let settle = Instant::now();
    loop {
        let list = deployments
            .list(&ListParams::default())
            .await
            .expect("list deployments");
        let ready = list
            .items
            .iter()
            .filter(|d| d.status.as_ref().and_then(|s| s.ready_replicas) == Some(1))
            .count();
        if ready == n {
            break;
        }
        assert!(
            settle.elapsed() < Duration::from_secs(1800),
            "only {ready} of {n} Deployments have their pod ready after 30 minutes"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    say(&format!(
        "every Deployment's pod ready after another {:?}",
        settle.elapsed()
    ));

    let sharding: Vec<&str> = if replicas > 1 {
        vec!["--sharding", "true"]
    } else {
        vec![]
    };
    let mut args = vec![
        "--status-heartbeat",
        "10m",
        "--max-concurrent-reconciles",
        "64",
        // All N policies live in one namespace: the per-namespace budget (3000 evaluations a
        // minute by default, 750 policies at 15 s) is lifted, or it would set the pace.
        "--namespace-evaluations-per-minute",
        "1000000",
    ];
    args.extend(&sharding);
    let started = Instant::now();
    let ops: Vec<Operator> = (0..replicas)
        .map(|i| Operator::start(&env, &format!("bench-{i}"), &args))
        .collect();
    let pids: Vec<u32> = ops.iter().map(|op| op.child.id()).collect();
    let mut peak = vec![0u64; replicas];
    let sample_peak = |peak: &mut [u64]| {
        for (i, pid) in pids.iter().enumerate() {
            peak[i] = peak[i].max(usage(*pid).1);
        }
    };

    // Every policy evaluated once.
    let policies = env.api::<ScalingPolicy>();
    let limit = interval * 20 + Duration::from_secs(600);
    let evaluated_after = loop {
        sample_peak(&mut peak);
        let list = policies
            .list(&ListParams::default())
            .await
            .expect("list policies");
        let done = list
            .items
            .iter()
            .filter(|p| {
                p.status
                    .as_ref()
                    .and_then(|s| s.last_evaluation_time.as_ref())
                    .is_some()
            })
            .count();
        if done == n {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "only {done} of {n} policies evaluated after {limit:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    say(&format!("every policy evaluated after {evaluated_after:?}"));

    // Steady: four intervals, after one to settle.
    tokio::time::sleep(interval).await;
    let window = interval * 4;
    let before_cpu: Vec<f64> = pids.iter().map(|p| usage(*p).0).collect();
    let before_late: Vec<Vec<(f64, f64)>> = stream::iter(&ops).then(lateness).collect().await;
    let (before_writes, before_429) = api_requests(&env).await;
    let before_queries = prometheus_queries(&env).await;
    let profile = Profile::start(pids.first().copied(), window, n, replicas);
    let steady = Instant::now();
    let mut idle = vec![0u64; replicas];
    while steady.elapsed() < window {
        sample_peak(&mut peak);
        for (i, pid) in pids.iter().enumerate() {
            idle[i] = idle[i].max(usage(*pid).1);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seconds = steady.elapsed().as_secs_f64();
    let profiled = profile.report();
    let cpu: Vec<f64> = pids
        .iter()
        .zip(&before_cpu)
        .map(|(p, b)| (usage(*p).0 - b) / seconds)
        .collect();
    let after_late: Vec<Vec<(f64, f64)>> = stream::iter(&ops).then(lateness).collect().await;
    let (after_writes, after_429) = api_requests(&env).await;
    let queries = prometheus_queries(&env).await - before_queries;
    let intervals = seconds / interval.as_secs_f64();
    let mut writes: Vec<(String, f64)> = after_writes
        .iter()
        .map(|(what, n)| {
            (
                what.clone(),
                (n - before_writes.get(what).copied().unwrap_or(0.0)) / seconds,
            )
        })
        .filter(|(_, rate)| *rate > 0.0)
        .collect();
    writes.sort_by(|a, b| b.1.total_cmp(&a.1));
    let all_writes: f64 = writes.iter().map(|(_, r)| r).sum();
    let mut late_before = Vec::new();
    let mut late_after = Vec::new();
    for (b, a) in before_late.iter().zip(&after_late) {
        late_before.extend(b.iter().copied());
        late_after.extend(a.iter().copied());
    }
    let merged = |h: &[(f64, f64)]| {
        let mut m: HashMap<u64, f64> = HashMap::new();
        for (bound, n) in h {
            *m.entry(bound.to_bits()).or_insert(0.0) += n;
        }
        m.into_iter()
            .map(|(b, n)| (f64::from_bits(b), n))
            .collect::<Vec<_>>()
    };
    let (late_before, late_after) = (merged(&late_before), merged(&late_after));
    let late_p50 = quantile(&late_before, &late_after, 0.5);
    let late_p99 = quantile(&late_before, &late_after, 0.99);

    // Reaction: the load rises for every policy at once.
    exporter.set("bench_load 90\n");
    let raised = Instant::now();
    let mut rose: HashMap<String, f64> = HashMap::new();
    let reaction_limit = interval * 4 + Duration::from_secs(120);
    while rose.len() < n && raised.elapsed() < reaction_limit {
        sample_peak(&mut peak);
        let list = deployments
            .list(&ListParams::default())
            .await
            .expect("list deployments");
        let at = raised.elapsed().as_secs_f64();
        for d in list.items {
            let up = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0) > 1;
            if let (true, Some(name)) = (up, d.metadata.name) {
                rose.entry(name).or_insert(at);
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut reactions: Vec<f64> = rose.values().copied().collect();
    reactions.sort_by(f64::total_cmp);

    let mib = |b: u64| b as f64 / 1024.0 / 1024.0;
    let list = |v: &[f64], f: &dyn Fn(f64) -> String| {
        v.iter().map(|x| f(*x)).collect::<Vec<_>>().join(" + ")
    };
    let writes_text = writes
        .iter()
        .take(6)
        .map(|(what, rate)| format!("{what} {rate:.1}"))
        .collect::<Vec<_>>()
        .join(", ");
    println!(
        "| {n} | {}s | {replicas} | {:.0} s | {:.1} s | {} / {} | {:.1} s / {:.1} s ({} of {n} rose) | {:.1} | {:.2} ({}) | {} / {} | {:.1} ({writes_text}) | {} |",
        interval.as_secs(),
        creating.as_secs_f64(),
        evaluated_after.as_secs_f64(),
        bucket(late_p50),
        bucket(late_p99),
        percentile(&reactions, 0.5),
        percentile(&reactions, 0.99),
        reactions.len(),
        queries / intervals,
        cpu.iter().sum::<f64>(),
        list(&cpu, &|c| format!("{c:.2}")),
        list(
            &idle.iter().map(|b| mib(*b)).collect::<Vec<_>>(),
            &|m| format!("{m:.0}")
        ),
        list(
            &peak.iter().map(|b| mib(*b)).collect::<Vec<_>>(),
            &|m| format!("{m:.0}")
        ),
        all_writes,
        after_429 - before_429,
    );
    for (share, symbol) in &profiled {
        println!("profile| {n}:{replicas} | {share:.1}% | {symbol} |");
    }
    if replicas > 1 {
        for op in &ops {
            let share = op.metric("scalewise_shard_policies").await;
            println!("<!-- replica {}: {share} policies -->", op.child.id());
        }
    }
    drop(ops);
    drop(node);
}

/// Where the first replica's CPU goes over the steady window: `perf record` of its process
/// (software clock samples, 499 a second, no call graphs: the release build has no frame
/// pointers), when perf is installed and allowed to; a benchmark without it reports no profile.
struct Profile {
    child: Option<std::process::Child>,
    data: std::path::PathBuf,
}

impl Profile {
    fn start(pid: Option<u32>, window: Duration, n: usize, replicas: usize) -> Profile {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-scale");
        let _ = std::fs::create_dir_all(&dir);
        let data = dir.join(format!("perf-{n}-{replicas}.data"));
        let child = pid.and_then(|pid| {
            std::process::Command::new("perf")
                .args(["record", "-q", "-e", "cpu-clock", "-F", "499", "-p"])
                .arg(pid.to_string())
                .arg("-o")
                .arg(&data)
                .args(["--", "sleep"])
                .arg(window.as_secs().to_string())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .ok()
        });
        if child.is_none() {
            eprintln!("bench-scale: perf is not available: no profile");
        }
        Profile { child, data }
    }

    /// The functions with at least 2% of the samples, by share (percent), most first.
    fn report(self) -> Vec<(f64, String)> {
        let Some(mut child) = self.child else {
            return Vec::new();
        };
        // perf stops by itself at the end of its `sleep`; bounded all the same.
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
        let out = std::process::Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "-q",
                "--sort",
                "symbol",
                "-i",
            ])
            .arg(&self.data)
            .output();
        let Ok(out) = out else {
            return Vec::new();
        };
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| {
                let line = line.trim();
                let (share, rest) = line.split_once('%')?;
                let share: f64 = share.trim().parse().ok()?;
                // `[.] symbol` (user space) or `[k] symbol` (kernel).
                let symbol = rest.trim().split_once("] ").map_or(rest.trim(), |(_, s)| s);
                // perf pads the column, and may add others after two spaces.
                let symbol = symbol.split("  ").next().unwrap_or(symbol).trim();
                (share >= 2.0).then(|| (share, symbol.chars().take(90).collect()))
            })
            .take(12)
            .collect()
    }
}

/// Deletes the benchmark's node when dropped.
struct Node(String, kube::Config);

impl Drop for Node {
    fn drop(&mut self) {
        support::delete_when_dropped::<k8s_openapi::api::core::v1::Node>(&self.1, &self.0);
    }
}

/// A KWOK node (annotation `kwok.x-k8s.io/node: fake`) named after the run's namespace, with
/// room for `3 n` pods.
async fn big_node(env: &TestEnv, n: usize) -> Node {
    let pods = n.saturating_mul(3).saturating_add(10).to_string();
    let node: k8s_openapi::api::core::v1::Node = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": env.namespace,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"kubernetes.io/hostname": env.namespace, "kubernetes.io/os": "linux", "type": "kwok"}
        },
        "status": {
            "allocatable": {"cpu": "100000", "memory": "100000Gi", "pods": pods},
            "capacity": {"cpu": "100000", "memory": "100000Gi", "pods": pods}
        }
    }))
    .expect("a Node");
    kube::Api::<k8s_openapi::api::core::v1::Node>::all(env.client.clone())
        .create(&kube::api::PostParams::default(), &node)
        .await
        .expect("create the benchmark's node");
    Node(env.namespace.clone(), env.kube_config().clone())
}

/// A lateness bucket bound as a person reads it: "≤ 16 ms".
fn bucket(bound: f64) -> String {
    if bound.is_nan() {
        "no evaluations".to_owned()
    } else if bound.is_infinite() {
        "> 131 s".to_owned()
    } else if bound < 1.0 {
        format!("≤ {:.0} ms", bound * 1000.0)
    } else {
        format!("≤ {bound:.1} s")
    }
}
