//! End-to-end test of `spec.forecast` in shadow mode against the test environment's Prometheus
//! (or your cluster's with SCALEWISE_E2E_CLUSTER=1, whose Prometheus must accept remote write).
//!
//! The history is a short season made for the test: a load that repeats every 10 minutes (100
//! for five minutes, 20 for five), written with remote write for the last 40 minutes (two
//! seasons, the accuracy window and some to spare), and kept going while the test runs. The
//! policy looks 5 minutes ahead (`startupDelay`), so while the load is low now it was high at
//! the same time of the past seasons five minutes later: the forecast would raise the floor,
//! and in shadow mode it must only say so.

mod support;

use std::time::Duration;

use scalewise::api::ScalingPolicyStatus;
use serde_json::json;
use support::metrics::Series;
use support::operator::Operator;
use support::policies::{create_policy, events, status, with_spec};
use support::workload::{create_deployment, replicas};
use support::{TestEnv, eventually, install_crd};

const SEASON_MS: i64 = 600_000;
const STEP_MS: i64 = 15_000;

/// The test's load at `t` (milliseconds): high for the first half of each season from `t0`.
fn load(t: i64, t0: i64) -> f64 {
    if (t - t0).rem_euclid(SEASON_MS) < SEASON_MS / 2 {
        100.0
    } else {
        20.0
    }
}

fn series(namespace: &str, from: i64, to: i64, t0: i64) -> Series {
    let mut s = Series::new("scalewise_e2e_forecast_load").label("namespace", namespace);
    let mut t = from;
    while t <= to {
        s = s.sample(t, load(t, t0));
        t += STEP_MS;
    }
    s
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[tokio::test]
async fn a_shadow_forecast_records_the_floor_it_would_set_and_never_scales() {
    let env = TestEnv::new("forecast-shadow").await;
    install_crd(&env.client).await;
    let written = now_ms().div_euclid(STEP_MS) * STEP_MS;
    // Now is 5.5 minutes into a season (low); 5 minutes ago, and a season before that, it was
    // high. The test has 4.5 minutes before now turns high again.
    let t0 = written - 330_000;
    let from = written - 4 * SEASON_MS;
    env.prometheus
        .remote_write(&[series(&env.namespace, from, written, t0)])
        .await;
    // Keep the load going, a sample every step, for at most 4 minutes.
    let (prometheus, namespace) = (env.prometheus.clone(), env.namespace.clone());
    let feeder = tokio::spawn(async move {
        let mut last = written;
        for _ in 0..48 {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let now = now_ms().div_euclid(STEP_MS) * STEP_MS;
            if now > last {
                prometheus
                    .remote_write(&[series(&namespace, last + STEP_MS, now, t0)])
                    .await;
                last = now;
            }
        }
    });

    create_deployment(&env, "web", 2).await;
    let spec = json!({
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": 1,
        "maxReplicas": 20,
        "interval": "2s",
        "tolerance": 0.5,
        "metrics": [{
            "name": "load",
            "query": "sum(scalewise_e2e_forecast_load)",
            "targetPerReplica": 10
        }],
        "forecast": {
            "metric": "load",
            "seasons": ["10m"],
            "step": "15s",
            "refresh": "10s",
            "mode": "Shadow",
            "startupDelay": "5m"
        },
        "behavior": {"scaleIn": {"stabilizationWindow": "0s", "cooldown": "0s"}}
    });
    create_policy(&env, &with_spec(&env, "web", spec, json!({}))).await;
    let op = Operator::start(&env, "op", &["--leader-election", "false"]);

    let s: ScalingPolicyStatus = eventually(
        "a Ready shadow forecast in status",
        Duration::from_secs(90),
        || async {
            let s = status(&env, "web").await;
            s.forecast
                .as_ref()
                .is_some_and(|f| f.state == "Ready")
                .then_some(s)
        },
    )
    .await;
    let f = s.forecast.clone().unwrap();
    assert_eq!(f.mode, "Shadow");
    // The same time of the last two seasons, five minutes ahead: 100, so ceil(100 / 10) = 10.
    assert_eq!(f.value, Some(100.0), "{f:?}");
    assert_eq!(f.floor_replicas, Some(10), "{f:?}");
    assert!(
        f.raised,
        "the floor is above what the load of 20 asks: {f:?}"
    );
    assert!(
        f.message
            .starts_with("shadow: would raise the proposal from 2 to 10"),
        "{}",
        f.message
    );
    assert!(f.error.is_some_and(|e| e <= 0.3), "{f:?}");
    assert_eq!(f.horizon_seconds, 300);
    assert_eq!(f.horizon_source, "spec.forecast.startupDelay");
    assert!(f.history_since.is_some() && f.history_read_time.is_some());
    // Shadow: the decision is the reactive one (20 / 10 = 2 replicas), and the target is left.
    let decision = s.last_decision.clone().unwrap();
    assert_eq!(decision.to, 2, "{decision:?}");
    assert_ne!(decision.rule.as_deref(), Some("forecast"));
    assert_eq!(replicas(&env, "web").await, 2);
    // The operator's own metrics show the floor it would set (recorded after the status write).
    let floor = format!(
        "scalewise_policy_forecast_floor_replicas{{namespace=\"{}\",name=\"web\"}}",
        env.namespace
    );
    eventually(
        "the floor on the operator's /metrics",
        Duration::from_secs(30),
        || async { (op.metric(&floor).await == 10.0).then_some(()) },
    )
    .await;
    // And an event said when it began to have a say.
    let note = eventually("a ForecastReady event", Duration::from_secs(30), || async {
        events(&env, "web")
            .await
            .into_iter()
            .find_map(|(reason, note)| (reason == "ForecastReady").then_some(note))
    })
    .await;
    assert!(note.starts_with("forecast: shadow: would raise"), "{note}");
    feeder.abort();
}
