//! The simulator: it decides with the controller's engine, its service model behaves, its HPA
//! baseline matches hand-computed HPA decisions, and `scalewise simulate` writes the same bytes
//! for the same inputs and says clearly what is wrong with a trace or a flag.

use std::path::Path;

mod cmd;

use cmd::{TempDir, scalewise, stderr, stdout};
use scalewise::api::{Action, Policy, ScalingPolicySpec, ScalingPolicyStatus};
use scalewise::decide::{decide, next_status};
use scalewise::simulate::bind::{self, MetricBinding, ModelMetric};
use scalewise::simulate::hpa::{Hpa, HpaSpec, MetricType};
use scalewise::simulate::model::{ModelParams, Pod, Service};
use scalewise::simulate::run::timestamp;
use scalewise::simulate::{ScalewiseAutoscaler, Slo, Trace, TraceSetup, run_trace};

/// A web service scaled on CPU, p95 latency and error rate.
const WEB: &str = r#"
apiVersion: scalewise.dev/v1alpha1
kind: ScalingPolicy
metadata:
  name: web
  namespace: shop
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
  metrics:
    - name: cpu
      cpu: {}
      scaleOutAbove: 70
      scaleInBelow: 30
    - name: latency-p95
      latency: {histogram: http_request_duration_seconds, quantile: 0.95}
      scaleOutAbove: 0.25
    - name: errors
      errorRate: {counter: http_requests_total, errorSelector: 'code=~"5.."'}
      scaleOutAbove: 0.05
  behavior:
    scaleOut: {step: 2, cooldown: 60s}
"#;

/// One metric, CPU tracked at 50% over 15 s, every default behaviour.
const CPU_TARGET: &str = r#"
apiVersion: scalewise.dev/v1alpha1
kind: ScalingPolicy
metadata:
  name: api
  namespace: shop
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: api}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - name: cpu
      cpu: {}
      window: 15s
      target: 50
"#;

/// 100 requests/s for two minutes, then 300 for four.
const STEP_TRACE: &str =
    "timestamp_seconds,requests_per_second\n0,100\n60,100\n120,300\n180,300\n240,300\n300,300\n";

fn spec_of(manifest: &str) -> ScalingPolicySpec {
    let value: serde_yaml_ng::Value = serde_yaml_ng::from_str(manifest).unwrap();
    serde_yaml_ng::from_value(value["spec"].clone()).unwrap()
}

fn policy_of(manifest: &str) -> (ScalingPolicySpec, Policy) {
    let spec = spec_of(manifest);
    let policy = Policy::resolve(&spec).unwrap();
    (spec, policy)
}

fn bindings_of(spec: &ScalingPolicySpec) -> Vec<MetricBinding> {
    bind::bind(&Policy::resolve(spec).unwrap().metrics, &[]).unwrap()
}

// --- The engine -------------------------------------------------------------------------------

#[test]
fn the_simulator_decides_with_the_engine_the_controller_runs() {
    let (spec, policy) = policy_of(WEB);
    let bindings = bindings_of(&spec);
    let trace_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/traces/spike.csv"),
    )
    .unwrap();
    let trace = Trace::parse("spike.csv", &trace_text).unwrap();
    let setup = TraceSetup {
        trace: &trace,
        params: ModelParams::default(),
        bindings: &bindings,
        initial_replicas: 2,
        max_replicas: policy.max_replicas,
        slo: Slo::default(),
    };
    let run = run_trace(
        &mut ScalewiseAutoscaler::new(policy.clone(), "scalewise"),
        &setup,
        &mut |_| {},
    );

    // Every evaluation, decided again by `scalewise::decide::decide` (what reconcile calls) from
    // the same readings and the status the previous decision left, comes out the same.
    let mut status = ScalingPolicyStatus::default();
    for row in &run.rows {
        let decision = decide(
            &policy,
            &status,
            &row.observations,
            row.current,
            timestamp(row.time),
        );
        status = next_status(&status, &decision, None);
        assert_eq!(row.desired, decision.desired_replicas, "at {}", row.time);
        assert_eq!(row.action, decision.action, "at {}", row.time);
        assert_eq!(row.reason, decision.message, "at {}", row.time);
    }
    // One evaluation every 15 s of the hour but the first instant: 239.
    assert_eq!(run.rows.len(), 239);
    assert!(run.rows.iter().any(|r| r.action == Action::ScaleOut));
    assert!(run.rows.iter().any(|r| r.action == Action::ScaleIn));
    // The engine's own rules show: the scale-out cooldown of 60 s holds the second step.
    assert!(
        run.rows
            .iter()
            .any(|r| r.reason.contains("scale-out cooldown after the last scale")),
        "no cooldown in the reasons"
    );
}

#[test]
fn a_cpu_target_reads_usage_over_every_pods_requests_as_its_promql_would() {
    // 2 replicas; at 120 s the load triples. Hand-computed, with capacity 100 per replica:
    // - at 135 (window 120..134): usage 300 over 200 requested = 150% -> ceil(2 * 3) = 6,
    //   allowed by the default rate policies (max of 100% -> 4 and 4 pods -> 6);
    // - at 150: 4 new replicas start (ready at 165) and already count their requests:
    //   300 over 600 = 50%, on target: hold, no overshoot while they start.
    let (spec, policy) = policy_of(CPU_TARGET);
    let bindings = bindings_of(&spec);
    let trace = Trace::parse("step.csv", STEP_TRACE).unwrap();
    let setup = TraceSetup {
        trace: &trace,
        params: ModelParams::default(),
        bindings: &bindings,
        initial_replicas: 2,
        max_replicas: policy.max_replicas,
        slo: Slo::default(),
    };
    let run = run_trace(
        &mut ScalewiseAutoscaler::new(policy, "scalewise"),
        &setup,
        &mut |_| {},
    );
    let at = |t: i64| run.rows.iter().find(|r| r.time == t).unwrap();
    let cpu = |t: i64| at(t).observations[0].reading.clone();
    use scalewise::decide::Reading;
    assert_eq!(cpu(120), Reading::Value(50.0));
    assert_eq!(cpu(135), Reading::Value(150.0));
    assert_eq!((at(135).current, at(135).desired), (2, 6));
    assert_eq!(cpu(150), Reading::Value(50.0));
    assert_eq!((at(150).ready, at(150).desired), (2, 6));
    assert_eq!((at(165).ready, at(165).desired), (6, 6));
    assert_eq!(run.summary.scale_actions, 1);
    // 2 replicas for 135 s, then 6 for 225 s: (270 + 1350) / 3600.
    assert_eq!(run.summary.replica_seconds, 1620.0);
    // From 120 the 2 ready replicas are overloaded (300 > 200): the queue fills and requests
    // fail until the 4 new ones serve at 165, 45 s; then the 200 waiting drain in a second with
    // a p95 of about 0.2 s, within the SLO's 0.5 s.
    assert_eq!(run.summary.violation_seconds, Some(45));
}

// --- The service model ------------------------------------------------------------------------

#[test]
fn with_ample_replicas_latency_stays_at_base_and_nothing_fails() {
    // 10 replicas serve 1000 requests/s; 100 arrive: 10% CPU, no queue, no error. With 1 server
    // per replica (100 * 0.01 = 1) an arrival waits with probability ErlangC(10, 1) ~ 1e-7, so
    // the p95 is the service time's alone: 0.01 * ln(20) = 0.029957 s.
    let mut service = Service::new(ModelParams::default(), 10, 0);
    for t in 0..60 {
        let s = service.step(t, 100.0);
        assert_eq!(s.queue, 0.0);
        assert_eq!(s.error_rate(), 0.0);
        assert_eq!(s.cpu(), Some(10.0));
        let p95 = s.latency(0.95).unwrap();
        assert!((p95 - 0.029_957).abs() < 1e-6, "p95 {p95} at {t}");
    }
}

#[test]
fn overload_builds_a_queue_then_latency_and_errors_rise() {
    // 2 replicas serve 200 requests/s and queue at most 2 * 100; 300 arrive each second.
    let mut service = Service::new(ModelParams::default(), 2, 0);
    let seconds: Vec<_> = (0..4).map(|t| service.step(t, 300.0)).collect();
    // The queue grows by 100 a second until it holds 200; then 100 a second are dropped.
    let queue: Vec<f64> = seconds.iter().map(|s| s.queue).collect();
    assert_eq!(queue, [100.0, 200.0, 200.0, 200.0]);
    let errors: Vec<f64> = seconds.iter().map(|s| s.error_rate()).collect();
    assert_eq!(errors, [0.0, 0.0, 100.0 / 300.0, 100.0 / 300.0]);
    assert_eq!(seconds[0].cpu(), Some(150.0));
    // Saturated: the wait is the whole queue, 100 / 100 = 1 s, plus the service time's p95.
    for s in &seconds {
        let p95 = s.latency(0.95).unwrap();
        assert!((p95 - 1.029_957).abs() < 1e-6, "p95 {p95}");
    }
    // Back under capacity, the queue drains at 200 - 100 = 100 a second and latency falls.
    let drained: Vec<_> = (4..7).map(|t| service.step(t, 100.0)).collect();
    let queue: Vec<f64> = drained.iter().map(|s| s.queue).collect();
    assert_eq!(queue, [100.0, 0.0, 0.0]);
    assert!(drained[2].latency(0.95).unwrap() < 0.1);
}

#[test]
fn new_replicas_serve_only_after_the_start_up_delay() {
    let mut service = Service::new(ModelParams::default(), 1, 0);
    service.scale_to(3, 10);
    assert_eq!(service.step(39, 100.0).capacity, 100.0);
    assert_eq!(service.step(40, 100.0).capacity, 300.0);
}

// --- The HPA baseline -------------------------------------------------------------------------

fn established(n: usize) -> Vec<Pod> {
    vec![Pod::established(0); n]
}

fn hpa(metric_type: MetricType, target: f64, min: i32, max: i32) -> Hpa {
    Hpa::new(HpaSpec::new("m", metric_type, target, min, max))
}

#[test]
fn hpa_proposes_ceil_of_ready_pods_times_the_ratio() {
    // 4 pods at 90% of a 50% target: ceil(4 * 1.8) = ceil(7.2) = 8; the scale-up limit is
    // max(4 * 2, 4 + 4) = 8.
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 20);
    let o = h.reconcile(1000, 4, &established(4), Some(90.0));
    assert_eq!((o.proposal, o.desired), (Some(8), 8));
}

#[test]
fn hpa_holds_within_a_tolerance_of_ten_percent() {
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 20);
    // 54 / 50 = 1.08: within 0.1 of 1.
    assert_eq!(h.reconcile(1000, 4, &established(4), Some(54.0)).desired, 4);
    // 56 / 50 = 1.12: ceil(4 * 1.12) = ceil(4.48) = 5.
    assert_eq!(h.reconcile(1015, 4, &established(4), Some(56.0)).desired, 5);
}

#[test]
fn hpa_scales_down_only_to_the_highest_recommendation_of_five_minutes() {
    // 10 pods at 10% of 50%: ceil(10 * 0.2) = 2. The first sync records 10 (the current count);
    // every sync records 2. A recommendation counts while it is newer than now - 300 s, so the
    // 10 at 0 holds the count until 285 and lets go at 300.
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 20);
    for t in (0..300).step_by(15) {
        let o = h.reconcile(t, 10, &established(10), Some(10.0));
        assert_eq!((o.proposal, o.desired), (Some(2), 10), "at {t}");
    }
    let o = h.reconcile(300, 10, &established(10), Some(10.0));
    assert_eq!(o.desired, 2);
}

#[test]
fn hpa_limits_scale_up_per_fifteen_seconds_and_forgets_older_changes() {
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 100);
    // 3 pods at 250%: ceil(3 * 5) = 15, limited to max(3 * 2, 3 + 4) = 7.
    assert_eq!(h.reconcile(0, 3, &established(3), Some(250.0)).desired, 7);
    // 10 s later the +4 is inside the 15 s period: the period started at 3, still limit 7.
    assert_eq!(h.reconcile(10, 7, &established(7), Some(250.0)).desired, 7);
    // At 15 it is not newer than now - 15: limit max(7 * 2, 7 + 4) = 14.
    assert_eq!(h.reconcile(15, 7, &established(7), Some(250.0)).desired, 14);
}

#[test]
fn hpa_counts_starting_pods_as_idle_on_a_scale_up() {
    let starting = Pod {
        created: 990,
        ready_at: 1020,
    };
    // 4 ready pods at 90% of 50% and 4 starting: the starting ones count as 0%:
    // 90 * 4 / 8 = 45%, a ratio of 0.9, which reverses the direction: hold at 8.
    let mut pods = established(4);
    pods.extend([starting; 4]);
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 20);
    assert_eq!(h.reconcile(1000, 8, &pods, Some(90.0)).desired, 8);
    // 4 ready at 150% and 2 starting: 150 * 4 / 6 = 100%, ratio 2: ceil(2 * 6) = 12, within
    // the limit max(6 * 2, 6 + 4) = 12.
    let mut pods = established(4);
    pods.extend([starting; 2]);
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 20);
    assert_eq!(h.reconcile(1000, 6, &pods, Some(150.0)).desired, 12);
}

#[test]
fn hpa_counts_a_new_pods_cpu_once_it_was_ready_for_a_whole_window() {
    // Ready at 1000, window 60 s, started 30 s before: at 1030 it is still ignored (CPU
    // initialization), so 1 established pod at 150% and 1 ignored: 150 * 1 / 2 = 75%, ratio
    // 1.5: ceil(1.5 * 2) = 3.
    let new = Pod {
        created: 970,
        ready_at: 1000,
    };
    let mut pods = established(1);
    pods.push(new);
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 20);
    assert_eq!(h.reconcile(1030, 2, &pods, Some(150.0)).desired, 3);
    // At 1060 it counts: 2 ready pods at 150%: ceil(2 * 3) = 6 (limit max(4, 6) = 6).
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 20);
    assert_eq!(h.reconcile(1060, 2, &pods, Some(150.0)).desired, 6);
}

#[test]
fn hpa_value_and_average_value_targets() {
    // Value: p95 0.5 s against 0.25 on 4 ready pods: ceil(4 * 2) = 8.
    let mut h = hpa(MetricType::Value, 0.25, 1, 20);
    assert_eq!(h.reconcile(1000, 4, &established(4), Some(0.5)).desired, 8);
    // AverageValue: 650 at 100 per pod on 3: 650 / 300 = 2.17 -> ceil(6.5) = 7 (limit 7).
    let mut h = hpa(MetricType::AverageValue, 100.0, 1, 20);
    assert_eq!(
        h.reconcile(1000, 3, &established(3), Some(650.0)).desired,
        7
    );
}

#[test]
fn hpa_holds_when_its_metric_fails() {
    let mut h = hpa(MetricType::Utilization, 50.0, 1, 20);
    let o = h.reconcile(1000, 4, &established(4), None);
    assert_eq!((o.proposal, o.desired), (None, 4));
}

#[test]
fn the_hpa_tracks_the_first_metric_at_its_target_or_the_midpoint_of_its_band() {
    let (_, web) = policy_of(WEB);
    let h = HpaSpec::for_policy(&web, true, 120).unwrap();
    assert_eq!((h.metric.as_str(), h.target), ("cpu", 50.0));
    assert_eq!(h.metric_type, MetricType::Utilization);
    assert_eq!((h.min_replicas, h.max_replicas), (2, 10));
    assert_eq!(h.scale_down.stabilization_window, 300);
    let (_, api) = policy_of(CPU_TARGET);
    assert_eq!(HpaSpec::for_policy(&api, true, 15).unwrap().target, 50.0);
    // A threshold without scaleInBelow: the band reaches down to 0.
    let latency_first = WEB.replace(
        "    - name: cpu\n      cpu: {}\n      scaleOutAbove: 70\n      scaleInBelow: 30\n",
        "",
    );
    let (_, p) = policy_of(&latency_first);
    let h = HpaSpec::for_policy(&p, false, 120).unwrap();
    assert_eq!((h.metric.as_str(), h.target), ("latency-p95", 0.125));
    assert_eq!(h.metric_type, MetricType::Value);
}

#[test]
fn the_hpa_reads_cpu_per_ready_pod() {
    let (spec, _) = policy_of(WEB);
    let hpa = HpaSpec::new("cpu", MetricType::Utilization, 50.0, 1, 10);
    let bindings = bind::for_hpa(&bindings_of(&spec), &hpa);
    assert_eq!(bindings[0].source, ModelMetric::ReadyCpu);
    assert_eq!(bindings[1].source, ModelMetric::Latency { quantile: 0.95 });
}

// --- The command ------------------------------------------------------------------------------

#[test]
fn simulate_prints_both_summaries_and_writes_its_timeline() {
    let dir = TempDir::new("timeline");
    let policy = dir.file("api.yaml", CPU_TARGET);
    let trace = dir.file("step.csv", STEP_TRACE);
    let csv = dir.path("timeline.csv");
    let out = scalewise(&[
        "simulate",
        "--policy",
        &policy,
        "--trace",
        &trace,
        "--compare",
        "hpa",
        "--out-csv",
        &csv,
        "--initial-replicas",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "hpa: HPA v2 defaults on cpu (Resource, Utilization): target 50; 1..10 replicas"
        ),
        "{text}"
    );
    // The oracle: 2 replicas keep the SLO at 100/s (1 would run at 100%), 4 at 300/s, started
    // 30 s ahead of the rise at 120 s: 90 s x 2 + 270 s x 4 = 0.35 replica-hours.
    assert!(text.contains(
        "oracle: the limit, with perfect knowledge of the trace: each second the fewest replicas that keep the SLO, started 30s ahead, 1..10 replicas, no rate limits\n"
    ), "{text}");
    assert!(text.ends_with(
        "| policy | replica-hours | minutes violating SLO | scale actions | min replicas | max replicas | mean replicas | minutes at max | replica-hours / oracle | SLO minutes - oracle |\n\
         |--------|--------------:|----------------------:|--------------:|-------------:|-------------:|--------------:|---------------:|-----------------------:|---------------------:|\n\
         | api    |          0.45 |                   0.8 |             1 |            2 |            6 |          4.50 |            0.0 |                  1.29x |                 +0.8 |\n\
         | hpa    |          0.45 |                   0.8 |             1 |            2 |            6 |          4.50 |            0.0 |                  1.29x |                 +0.8 |\n\
         | oracle |          0.35 |                   0.0 |             1 |            2 |            4 |          3.50 |            0.0 |                  1.00x |                 +0.0 |\n"
    ), "{text}");
    // No progress bar when standard error is not a terminal: only the note on the file.
    assert_eq!(stderr(&out), format!("wrote {csv}\n"));

    let timeline = std::fs::read_to_string(&csv).unwrap();
    let lines: Vec<&str> = timeline.lines().collect();
    assert_eq!(
        lines[0],
        "time_seconds,policy,load_rps,replicas_ready,replicas_desired,cpu,queue_requests,action,reason"
    );
    // 23 evaluations each (15 s to 345 s), interleaved by time, and the oracle's count at the
    // same times.
    assert_eq!(lines.len(), 1 + 3 * 23);
    let row = |prefix: &str| {
        *lines
            .iter()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row {prefix} in\n{timeline}"))
    };
    assert_eq!(
        row("15,api,"),
        "15,api,100,2,2,50,0,Hold,Hold at 2: cpu 50 within 10% of target 50"
    );
    assert_eq!(
        row("135,api,"),
        "135,api,300,2,6,150,200,ScaleOut,Scale out from 2 to 6: cpu 150 vs target 50: ceil(2 x 150 / 50) = 6"
    );
    assert_eq!(
        row("135,hpa,"),
        "135,hpa,300,2,6,150,200,ScaleOut,Scale from 2 to 6: cpu 150 / 50 on 2 ready pods -> 6"
    );
    assert_eq!(
        row("90,oracle,"),
        "90,oracle,100,2,4,,0,ScaleOut,4 replicas: the most any second of the next 30s needs (2 ready now)"
    );
    assert_eq!(
        row("120,oracle,"),
        "120,oracle,300,4,4,,0,Hold,4 replicas: the most any second of the next 30s needs (4 ready now)"
    );
    // The HPA sees the ready pods' 150% while 4 start, counts those at 0%: 150 * 2 / 6 = 50%.
    assert_eq!(
        row("150,hpa,"),
        "150,hpa,300,2,6,150,200,Hold,\"Hold at 6: cpu 150 / 50, 4 pods not ready counted at 0%: 1 within tolerance or reversed; holding\""
    );
}

#[test]
fn the_same_inputs_write_the_same_bytes() {
    // The README's command: the example policy (cpu, latency and errorRate) on the spike.
    let dir = TempDir::new("determinism");
    let run = |csv: &str, plot: &str| {
        let out = scalewise(&[
            "simulate",
            "--policy",
            "examples/web-service.yaml",
            "--trace",
            "examples/traces/spike.csv",
            "--compare",
            "hpa",
            "--out-csv",
            &dir.path(csv),
            "--plot",
            &dir.path(plot),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let first = run("a.csv", "a.svg");
    assert_eq!(run("b.csv", "b.svg"), first);
    run("c.csv", "c.png");
    run("d.csv", "d.png");
    let read = |name: &str| std::fs::read(dir.path(name)).unwrap();
    assert_eq!(read("a.csv"), read("b.csv"));
    assert_eq!(read("a.csv"), read("c.csv"));
    assert_eq!(read("a.svg"), read("b.svg"));
    assert_eq!(read("c.png"), read("d.png"));

    let svg = String::from_utf8(read("a.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..100]);
    assert!(svg.contains("web on spike.csv: web vs hpa vs oracle"));
    // Both summaries.
    assert!(first.contains("\n| web "), "{first}");
    assert!(first.contains("\n| hpa "), "{first}");
    let png = read("c.png");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // IHDR: 1400 wide; a title and 5 panels (load, replicas, 3 metrics) of 270: 70 + 1350.
    assert_eq!(&png[16..24], &[0, 0, 0x05, 0x78, 0, 0, 0x05, 0x8c]);
}

#[test]
fn generated_traces_are_the_bundled_ones() {
    for shape in ["spike", "ramp", "diurnal"] {
        let out = scalewise(&["simulate", "--generate", shape, "--seed", "1"]);
        assert!(out.status.success(), "{}", stderr(&out));
        let bundled = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("examples/traces/{shape}.csv")),
        )
        .unwrap();
        assert_eq!(stdout(&out), bundled, "{shape}");
    }
}

#[test]
fn a_trace_with_a_gap_names_its_line() {
    let dir = TempDir::new("gap");
    let policy = dir.file("web.yaml", WEB);
    let trace = dir.file(
        "gap.csv",
        "timestamp_seconds,requests_per_second\n0,10\n60,10\n180,10\n",
    );
    let out = scalewise(&["simulate", "--policy", &policy, "--trace", &trace]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "scalewise: {trace}:4: gap: timestamp 180 comes 120s after 60 (line 3); rows must be every 60s, the step of the first two rows\n"
        )
    );
}

#[test]
fn unsorted_rows_name_their_line() {
    let dir = TempDir::new("unsorted");
    let policy = dir.file("web.yaml", WEB);
    let trace = dir.file("unsorted.csv", "0,10\n60,10\n120,10\n90,10\n");
    let out = scalewise(&["simulate", "--policy", &policy, "--trace", &trace]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "scalewise: {trace}:4: timestamp 90 is not after 120 (line 3): rows must be sorted by time, without duplicates (every 60s)\n"
        )
    );
}

#[test]
fn a_metric_the_model_cannot_produce_needs_a_map() {
    let dir = TempDir::new("map");
    let with_query = WEB.replace(
        "  behavior:",
        "    - name: backlog\n      query: 'sum(queue_depth)'\n      targetPerReplica: 100\n  behavior:",
    );
    let policy = dir.file("web.yaml", &with_query);
    let out = scalewise(&[
        "simulate",
        "--policy",
        &policy,
        "--trace",
        "examples/traces/spike.csv",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "scalewise: metric \"backlog\" (a custom query) cannot be produced by the service model; map it to a model output with --map backlog=cpu|latency|errorRate|requestRate|queue\n"
    );
    let out = scalewise(&[
        "simulate",
        "--policy",
        &policy,
        "--trace",
        "examples/traces/spike.csv",
        "--map",
        "backlog=queue",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(", backlog = queue\n"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn bad_flags_are_refused_with_what_to_do() {
    let dir = TempDir::new("flags");
    let policy = dir.file("web.yaml", WEB);
    let trace = "examples/traces/spike.csv";
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--policy", &policy, "--trace", trace, "--map", "cpux=cpu"],
            "--map cpux=...: the policy has no metric \"cpux\" (its metrics: cpu, latency-p95, errors)",
        ),
        (
            vec!["--policy", &policy, "--trace", trace, "--map", "cpu=memory"],
            "--map \"cpu=memory\": the model has no output \"memory\"; it has cpu|latency|errorRate|requestRate|queue",
        ),
        (
            vec!["--policy", &policy, "--trace", trace, "--capacity", "0"],
            "--capacity (capacityPerReplica) must be a number > 0, got 0",
        ),
        (
            vec![
                "--policy",
                &policy,
                "--trace",
                trace,
                "--slo-error-rate",
                "2",
            ],
            "--slo-error-rate must be a share between 0 and 1, got 2",
        ),
        (
            vec!["--policy", &policy, "--trace", trace, "--plot", "out.pdf"],
            "--plot out.pdf: the file name must end in .svg or .png",
        ),
        (
            vec!["--generate", "spike", "--peak-load", "10"],
            "--peak-load must be a number >= --base-load (120), got 10",
        ),
        (
            vec!["--policy", &policy, "--from", "yesterday", "--to", "now"],
            "--from \"yesterday\": expected RFC 3339 (2026-01-01T12:00:00Z), Unix seconds, now or now-DURATION (now-2h)",
        ),
        (
            vec!["--policy", &policy, "--from", "now", "--to", "now-1h"],
            "--to (",
        ),
        (
            vec!["--policy", &policy, "--from", "now-1h", "--to", "now"],
            "no Prometheus server: set --prometheus-url (or SCALEWISE_PROMETHEUS_URL), or spec.prometheus.address",
        ),
    ];
    for (flags, message) in cases {
        let mut args = vec!["simulate"];
        args.extend(flags.iter().copied());
        let out = scalewise(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with(&format!("scalewise: {message}")),
            "{flags:?}: {}",
            stderr(&out)
        );
    }
    // Flags of different modes: clap refuses them itself (exit 2), naming the flags at fault.
    let mixed: Vec<(Vec<&str>, &[&str])> = vec![
        (
            vec!["--policy", &policy],
            &["--trace <FILE>", "--from <TIME>", "--generate <SHAPE>"],
        ),
        (
            vec![
                "--policy", &policy, "--trace", trace, "--from", "now-1h", "--to", "now",
            ],
            &["--trace <FILE>", "--from <TIME>"],
        ),
        (
            vec!["--policy", &policy, "--from", "now-1h"],
            &["--to <TIME>"],
        ),
        (
            vec!["--policy", &policy, "--trace", trace, "--seed", "3"],
            &["--seed <N>", "--trace <FILE>"],
        ),
        (
            vec!["--generate", "spike", "--policy", &policy],
            &["--generate <SHAPE>", "--policy <FILE>"],
        ),
        (
            vec![
                "--policy",
                &policy,
                "--from",
                "now-1h",
                "--to",
                "now",
                "--capacity",
                "50",
            ],
            &["--capacity <RPS>", "--from <TIME>"],
        ),
        (
            vec![
                "--policy",
                &policy,
                "--from",
                "now-1h",
                "--to",
                "now",
                "--hpa-target",
                "50",
            ],
            &["--hpa-target <PCT>", "--from <TIME>"],
        ),
        (
            vec!["--policy", &policy, "--trace", trace, "--hpa-target", "0"],
            &["--hpa-target <PCT>", "a whole percent from 1 to 1000"],
        ),
        (
            vec![
                "--policy",
                &policy,
                "--trace",
                trace,
                "--hpa-sweep",
                "90:30:10",
            ],
            &["--hpa-sweep <FROM:TO:STEP>", "FROM (90) is above TO (30)"],
        ),
        (
            vec![
                "--policy",
                &policy,
                "--trace",
                trace,
                "--hpa-sweep",
                "1:1000:1",
            ],
            &[
                "--hpa-sweep <FROM:TO:STEP>",
                "more than 50: take a larger STEP",
            ],
        ),
    ];
    for (flags, named) in mixed {
        let mut args = vec!["simulate"];
        args.extend(flags.iter().copied());
        let out = scalewise(&args);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {}", stderr(&out));
        let first = stderr(&out).lines().next().unwrap_or_default().to_owned();
        let message = stderr(&out)
            .split("\n\nUsage:")
            .next()
            .unwrap_or_default()
            .to_owned();
        assert!(first.starts_with("error: "), "{flags:?}: {}", stderr(&out));
        for flag in named {
            assert!(
                message.contains(flag),
                "{flags:?} names {flag}: {}",
                stderr(&out)
            );
        }
    }
    // clap's own errors for unknown values are usage errors too.
    let out = scalewise(&["simulate", "--policy", &policy, "--compare", "kpa"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid value 'kpa' for '--compare <BASELINE>'"));
}

#[test]
fn a_fixed_hpa_target_and_a_sweep_judge_the_policy_against_the_hpas_curve() {
    let dir = TempDir::new("sweep");
    let policy = dir.file("api.yaml", CPU_TARGET);
    let out = scalewise(&[
        "simulate",
        "--policy",
        &policy,
        "--trace",
        "examples/traces/spike.csv",
        "--hpa-target",
        "70",
        "--hpa-sweep",
        "30:90:20",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    // The HPA's target is the flag's, not the policy's 50.
    assert!(
        text.contains("\nhpa: HPA v2 defaults on the CPU utilization of its ready pods (Resource, Utilization, over 60s): target 70% (--hpa-target); 1..10 replicas\n"),
        "{text}"
    );
    // Rows: the policy by its name, the HPA, each swept target, the oracle.
    let rows: Vec<(String, f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with("| ") && !l.starts_with("| policy"))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (
                cells[1].to_owned(),
                cells[2].parse().unwrap(),
                cells[3].parse().unwrap(),
            )
        })
        .collect();
    let labels: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(
        labels,
        [
            "api", "hpa", "hpa@30", "hpa@50", "hpa@70", "hpa@90", "oracle"
        ]
    );
    // hpa and hpa@70 are the same HPA.
    assert_eq!((rows[1].1, rows[1].2), (rows[4].1, rows[4].2));
    // The oracle needs the fewest replica-hours and breaks the SLO least.
    let oracle = &rows[6];
    for r in &rows {
        assert!(
            r.1 >= oracle.1 && r.2 >= oracle.2,
            "{r:?} against {oracle:?}\n{text}"
        );
    }
    // The verdict agrees with the curve through the swept points at the policy's SLO minutes.
    let mut points: Vec<(f64, f64)> = rows[2..6].iter().map(|r| (r.2, r.1)).collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let (x, y) = (rows[0].2, rows[0].1);
    let curve = if x <= points[0].0 {
        Some(points[0].1)
    } else {
        points.windows(2).find(|w| x <= w[1].0).map(|w| {
            if w[1].0 == w[0].0 {
                w[0].1.min(w[1].1)
            } else {
                w[0].1 + (x - w[0].0) / (w[1].0 - w[0].0) * (w[1].1 - w[0].1)
            }
        })
    };
    let line = text
        .lines()
        .find(|l| l.starts_with("HPA curve (hpa@30 to hpa@90, 4 targets): "))
        .unwrap_or_else(|| panic!("no curve line:\n{text}"));
    match curve {
        // Rounded table figures: only a clear margin decides the test.
        Some(c) if y < c - 0.02 => assert!(line.ends_with("api lies below the curve."), "{line}"),
        Some(c) if y > c + 0.02 => {
            assert!(
                line.ends_with("api does not lie below the curve."),
                "{line}"
            )
        }
        Some(_) => {}
        None => assert!(line.contains("the curve does not reach it"), "{line}"),
    }
}

/// A request rate that jumps every 5 minutes, the same every 10: a season the forecast can
/// learn in two.
const SEASONAL: &str = r#"
apiVersion: scalewise.dev/v1alpha1
kind: ScalingPolicy
metadata:
  name: seasonal
  namespace: shop
spec:
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 10
  metrics:
    - name: requests
      requestRate: {counter: http_requests_total}
      window: 30s
      targetPerReplica: 300
  behavior:
    scaleIn: {stabilizationWindow: 60s, cooldown: 0s}
  forecast:
    metric: requests
    seasons: [10m]
    step: 30s
"#;

fn seasonal_trace() -> String {
    let mut csv = String::from("timestamp_seconds,requests_per_second\n");
    for minute in 0..60 {
        let rate = if minute % 10 < 5 { 100 } else { 1000 };
        csv.push_str(&format!("{},{rate}\n", 1_767_225_600 + minute * 60));
    }
    csv
}

#[test]
fn the_forecast_acts_only_after_two_seasons_and_writes_the_same_bytes() {
    let dir = TempDir::new("forecast");
    let policy = dir.file("seasonal.yaml", SEASONAL);
    let trace = dir.file("seasonal.csv", &seasonal_trace());
    let run = |csv: &str| {
        let out = scalewise(&[
            "simulate",
            "--policy",
            &policy,
            "--trace",
            &trace,
            "--capacity",
            "400",
            "--out-csv",
            &dir.path(csv),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let first = run("a.csv");
    assert_eq!(run("b.csv"), first);
    let read = |name: &str| std::fs::read_to_string(dir.path(name)).unwrap();
    let csv = read("a.csv");
    assert_eq!(csv, read("b.csv"));
    // Every row the forecast won is after two full seasons (20 minutes) of history.
    let floors: Vec<i64> = csv
        .lines()
        .filter(|l| l.contains("forecast floor"))
        .map(|l| l.split(',').next().unwrap().parse::<i64>().unwrap() - 1_767_225_600)
        .collect();
    assert!(!floors.is_empty(), "the forecast never won:\n{csv}");
    assert!(floors.iter().all(|t| *t >= 20 * 60), "{floors:?}");
    // Started ahead of each jump, the replicas are there when the load comes: fewer minutes
    // over the SLO than the same policy without a forecast.
    let without = dir.file(
        "reactive.yaml",
        &SEASONAL[..SEASONAL.find("  forecast:").unwrap()],
    );
    let out = scalewise(&[
        "simulate",
        "--policy",
        &without,
        "--trace",
        &trace,
        "--capacity",
        "400",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let slo_minutes = |summary: &str| -> f64 {
        let row = summary
            .lines()
            .find(|l| l.starts_with("| seasonal "))
            .unwrap_or_else(|| panic!("{summary}"));
        row.split('|').nth(3).unwrap().trim().parse().unwrap()
    };
    let (with, reactive) = (slo_minutes(&first), slo_minutes(&stdout(&out)));
    assert!(
        with < reactive,
        "with the forecast {with} SLO minutes, without {reactive}"
    );
}
