//! `scalewise simulate --from --to`: the backtest reads a policy's metric history from the test
//! environment's Prometheus with range queries and replays it through the decision engine and the
//! HPA baseline. Needs the test environment (`make test`).

mod support;

use std::process::{Command, Output};

use support::TestEnv;
use support::metrics::{Series, now_ms};

fn scalewise(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_scalewise"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("SCALEWISE_PROMETHEUS_URL")
        .output()
        .expect("scalewise runs")
}

/// The replica changes of one policy in the timeline: (seconds after `base`, from, to).
fn changes(timeline: &str, policy: &str, base: i64) -> Vec<(i64, i32, i32)> {
    timeline
        .lines()
        .skip(1)
        .map(|line| line.split(',').collect::<Vec<_>>())
        .filter(|cells| cells[1] == policy)
        .filter_map(|cells| {
            let time: i64 = cells[0].parse().unwrap();
            let from: i32 = cells[3].parse().unwrap();
            let to: i32 = cells[4].parse().unwrap();
            (from != to).then_some((time - base, from, to))
        })
        .collect()
}

#[tokio::test]
async fn a_backtest_replays_prometheus_history_through_the_engine_and_the_hpa() {
    let env = TestEnv::new("simulate-backtest").await;

    // Thirty minutes of a gauge, a sample every 15 s, ending ten minutes ago (Prometheus accepts
    // remote-written samples up to an hour old): 150 for ten minutes, 650 for ten, 150 for ten.
    let base = (now_ms() / 1000 - 40 * 60).div_euclid(15) * 15;
    let mut series = Series::new("sw_backtest_load")
        .label("test", &env.namespace)
        .label("namespace", &env.namespace);
    for k in 0..=120 {
        let value = if (40..80).contains(&k) { 650.0 } else { 150.0 };
        series = series.sample((base + 15 * k) * 1000, value);
    }
    env.push(&[series]).await;

    let dir = std::env::temp_dir().join(format!("scalewise-backtest-{}", env.namespace));
    std::fs::create_dir_all(&dir).unwrap();
    let policy = dir.join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            r#"apiVersion: scalewise.dev/v1alpha1
kind: ScalingPolicy
metadata:
  name: worker
  namespace: {ns}
spec:
  targetRef: {{apiVersion: apps/v1, kind: Deployment, name: worker}}
  minReplicas: 1
  maxReplicas: 10
  interval: 15s
  metrics:
    - name: load
      query: 'sum(sw_backtest_load{{test="{ns}"}})'
      targetPerReplica: 100
"#,
            ns = env.namespace
        ),
    )
    .unwrap();
    let csv = dir.join("timeline.csv");
    let plot = dir.join("backtest.png");
    let (from, to) = (base.to_string(), (base + 1800).to_string());
    let out = scalewise(&[
        "simulate",
        "--policy",
        policy.to_str().unwrap(),
        "--prometheus-url",
        &env.prometheus.url,
        "--from",
        &from,
        "--to",
        &to,
        "--step",
        "15s",
        "--initial-replicas",
        "1",
        "--compare",
        "hpa",
        "--out-csv",
        csv.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}\n{stdout}");
    assert!(
        stdout.contains("History cannot show feedback from this policy's decisions"),
        "{stdout}"
    );
    // The range query that ran is the policy's, scoped to its namespace.
    let ns = &env.namespace;
    assert!(
        stdout.contains(&format!(
            r#"sum(sw_backtest_load{{namespace="{ns}",test="{ns}"}})"#
        )),
        "{stdout}"
    );
    let timeline = std::fs::read_to_string(&csv).unwrap();
    let png = std::fs::read(&plot).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    // No load panel without a requestRate metric: a title, replicas and the metric, 70 + 2 * 270.
    assert_eq!(&png[16..24], &[0, 0, 0x05, 0x78, 0, 0, 0x02, 0x62]);

    // Every point read back: one evaluation every 15 s from `from` to `to` included, per policy.
    let rows: Vec<&str> = timeline.lines().skip(1).collect();
    assert_eq!(rows.len(), 2 * 121, "{timeline}");
    assert!(
        rows[0].starts_with(&format!("{base},worker,,1,2,150,,ScaleOut,")),
        "{}",
        rows[0]
    );
    assert!(
        timeline.contains(&format!("\n{},worker,,2,6,650,,ScaleOut,", base + 600)),
        "{timeline}"
    );

    // Hand-checked, with targetPerReplica 100, tolerance 0.1 and the default behaviour:
    // - 0 s: 150 on 1 replica is 1.5 per replica: ceil(150 / 100) = 2 (rate limit: 2 or 5).
    // - 600 s: 650 on 2 is 3.25: ceil(6.5) = 7, limited to max(2 * 2, 2 + 4) = 6; then 650 on 6
    //   is 1.08 per replica, within tolerance: 6 is held (and recorded) until 1185 s.
    // - 1200 s: 150 on 6 proposes 2, but the last 6 (at 1185 s) counts in the 300 s scale-in
    //   window until it is 300 s old: at 1485 s the count goes to 2 (rate limit: 100%).
    // The HPA (averageValue 100, the same defaults) decides the same here.
    let expected = vec![(0, 1, 2), (600, 2, 6), (1485, 6, 2)];
    assert_eq!(changes(&timeline, "worker", base), expected, "{timeline}");
    assert_eq!(changes(&timeline, "hpa", base), expected, "{timeline}");
}
