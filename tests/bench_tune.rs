//! `make bench-tune` (tests/bench/tune.sh): the tuning search behind `examples/recommended.yaml`.
//! Not a test: `#[ignore]`d, run only by the benchmark, which prints BENCHMARKS.md's "Tuning"
//! section (Markdown) on standard output.
//!
//! A grid of target-tracking policies (CPU target, the CPU window, scale-in stabilization and
//! cooldown, a latency guard) runs through the simulator on the **training set only**: the three
//! synthetic shapes with seeds 1, 2 and 3 (seed 1 is the bundled traces), on the default service
//! model. The test set (the two-week World Cup trace and the shapes with seed 7, `make
//! bench-quality`; its seed is the Makefile's QUALITY_TEST_SEED, refused here) never enters this
//! search. Each candidate is judged against the HPA at 50% CPU
//! and the oracle on every training trace: it is feasible when, on every one, it has no more SLO
//! minutes than the HPA and at most half its scale actions; the best feasible one has the lowest
//! mean ratio of its replica-hours to the oracle's.

use std::fmt::Write as _;

use scalewise::api::{Policy, ScalingPolicySpec};
use scalewise::simulate::bind::{self, MetricBinding};
use scalewise::simulate::generate::{Generator, Shape};
use scalewise::simulate::hpa::{HpaAutoscaler, HpaSpec};
use scalewise::simulate::report::Summary;
use scalewise::simulate::{ModelParams, ScalewiseAutoscaler, Slo, Trace, TraceSetup, oracle};

/// The training seeds (never the test set's, the Makefile's QUALITY_TEST_SEED: checked).
const SEEDS: [u64; 3] = [1, 2, 3];
const SHAPES: [(Shape, &str); 3] = [
    (Shape::Spike, "spike"),
    (Shape::Ramp, "ramp"),
    (Shape::Diurnal, "diurnal"),
];
const TARGETS: [u32; 4] = [55, 60, 65, 70];
const WINDOWS: [&str; 2] = ["30s", "1m"];
const TOLERANCES: [f64; 4] = [0.2, 0.3, 0.4, 0.5];
const STABILIZATION: [&str; 3] = ["60s", "120s", "300s"];
const COOLDOWNS: [&str; 3] = ["60s", "120s", "300s"];
/// The p95 above which the guard asks for more replicas; `None`: no guard.
const GUARDS: [Option<f64>; 2] = [None, Some(0.25)];

#[derive(Clone, Debug)]
struct Candidate {
    target: u32,
    window: &'static str,
    tolerance: f64,
    stabilization: &'static str,
    cooldown: &'static str,
    guard: Option<f64>,
}

impl Candidate {
    fn manifest(&self) -> String {
        let guard = self.guard.map_or_else(String::new, |above| {
            format!(
                "  - name: latency-p95\n    latency: {{histogram: http_request_duration_seconds, quantile: 0.95}}\n    window: {}\n    scaleOutAbove: {above}\n",
                self.window
            )
        });
        format!(
            "targetRef: {{apiVersion: apps/v1, kind: Deployment, name: web}}\n\
             minReplicas: 2\nmaxReplicas: 10\ninterval: 15s\ntolerance: {}\n\
             metrics:\n  - name: cpu\n    cpu: {{}}\n    window: {}\n    target: {}\n{guard}\
             behavior:\n  scaleIn:\n    stabilizationWindow: {}\n    cooldown: {}\n",
            self.tolerance, self.window, self.target, self.stabilization, self.cooldown
        )
    }

    fn describe(&self) -> String {
        format!(
            "cpu target {}, window {}, tolerance {}, scale-in stabilization {}, cooldown {}, {}",
            self.target,
            self.window,
            self.tolerance,
            self.stabilization,
            self.cooldown,
            self.guard.map_or_else(
                || "no latency guard".to_owned(),
                |g| format!("out above p95 {g}s")
            )
        )
    }
}

/// One parameter's value of a candidate, for the table of what each choice costs.
type ValueOf = fn(&Candidate) -> String;

struct Case {
    name: String,
    trace: Trace,
    hpa: Summary,
    oracle: Summary,
}

fn policy(manifest: &str) -> Policy {
    let spec: ScalingPolicySpec = serde_yaml_ng::from_str(manifest).expect("a candidate's spec");
    Policy::resolve(&spec).expect("a valid candidate")
}

fn setup<'a>(trace: &'a Trace, bindings: &'a [MetricBinding]) -> TraceSetup<'a> {
    TraceSetup {
        trace,
        params: ModelParams::default(),
        bindings,
        initial_replicas: 2,
        max_replicas: 10,
        slo: Slo::default(),
    }
}

fn run_policy(p: &Policy, trace: &Trace) -> Summary {
    let bindings = bind::bind(&p.metrics, &[]).expect("the model reads every candidate metric");
    let mut autoscaler = ScalewiseAutoscaler::new(p.clone(), "candidate");
    scalewise::simulate::run_trace(&mut autoscaler, &setup(trace, &bindings), &mut |_| {}).summary
}

#[test]
#[ignore = "a benchmark: make bench-tune"]
fn tuning_search() {
    // The test set's seed (the Makefile's QUALITY_TEST_SEED) must never be trained on.
    let held_out: u64 = std::env::var("QUALITY_TEST_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("QUALITY_TEST_SEED (a seed) is not set: run make bench-tune");
    assert!(
        !SEEDS.contains(&held_out),
        "the training seeds {SEEDS:?} include the test set's seed {held_out}"
    );
    let reference = policy(
        &Candidate {
            target: 50,
            window: "1m",
            tolerance: 0.1,
            stabilization: "300s",
            cooldown: "0s",
            guard: None,
        }
        .manifest(),
    );
    let mut cases = Vec::new();
    for (shape, name) in SHAPES {
        for seed in SEEDS {
            let trace = Generator::new(shape, seed).generate();
            let spec = HpaSpec::at_cpu_target(&reference, 50, "--hpa-target");
            let own = bind::for_hpa(&[], &spec);
            let mut baseline = HpaAutoscaler::new(spec);
            let hpa =
                scalewise::simulate::run_trace(&mut baseline, &setup(&trace, &own), &mut |_| {})
                    .summary;
            let oracle = oracle::run(&setup(&trace, &[]), 2, 15).summary;
            cases.push(Case {
                name: format!("{name}, seed {seed}"),
                trace,
                hpa,
                oracle,
            });
        }
    }
    let mut candidates = Vec::new();
    for target in TARGETS {
        for window in WINDOWS {
            for tolerance in TOLERANCES {
                for stabilization in STABILIZATION {
                    for cooldown in COOLDOWNS {
                        for guard in GUARDS {
                            candidates.push(Candidate {
                                target,
                                window,
                                tolerance,
                                stabilization,
                                cooldown,
                                guard,
                            });
                        }
                    }
                }
            }
        }
    }
    // (candidate, mean replica-hours / oracle, training traces failing a constraint, worst
    // SLO-minute excess, worst action share)
    let mut scored = Vec::new();
    for c in &candidates {
        let p = policy(&c.manifest());
        let (mut ratio, mut failing, mut excess, mut share) = (0.0, 0usize, f64::MIN, 0.0f64);
        for case in &cases {
            let s = run_policy(&p, &case.trace);
            let slo = s.violation_minutes().unwrap_or(f64::INFINITY);
            let hpa_slo = case.hpa.violation_minutes().unwrap_or(0.0);
            excess = f64::max(excess, slo - hpa_slo);
            let actions = f64::from(s.scale_actions) / f64::from(case.hpa.scale_actions.max(1));
            share = share.max(actions);
            failing += usize::from(!(slo <= hpa_slo && actions <= 0.5));
            ratio += s.replica_seconds / case.oracle.replica_seconds.max(1.0);
        }
        scored.push((
            c.clone(),
            ratio / cases.len() as f64,
            failing,
            excess,
            share,
        ));
    }
    scored.sort_by(|a, b| a.2.cmp(&b.2).then(a.1.total_cmp(&b.1)));

    let mut out = String::new();
    let _ = writeln!(
        out,
        "Training set: {} traces ({}), the default service model, against the HPA at 50% CPU \
         and the oracle on each. {} candidates: CPU target {:?}, CPU window {:?}, tolerance \
         {:?}, scale-in stabilization {:?}, scale-in cooldown {:?}, a latency guard (out above \
         p95 0.25 s) or none; everything else the engine's defaults, 2 to 10 replicas, every \
         15 s.\n",
        cases.len(),
        cases
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join("; "),
        candidates.len(),
        TARGETS,
        WINDOWS,
        TOLERANCES,
        STABILIZATION,
        COOLDOWNS,
    );
    let feasible = scored.iter().filter(|s| s.2 == 0).count();
    let _ = writeln!(
        out,
        "{feasible} of {} are feasible (on every training trace no more SLO minutes than the HPA \
         and at most half its scale actions). The ten best, by the number of training traces on \
         which they miss either, then by mean replica-hours over the oracle's:\n",
        scored.len()
    );
    let _ = writeln!(
        out,
        "| rank | candidate | replica-hours / oracle (mean) | traces missing a constraint | worst SLO minutes over the HPA | most scale actions / HPA's |"
    );
    let _ = writeln!(out, "|---:|---|---:|---:|---:|---:|");
    for (i, (c, ratio, failing, excess, share)) in scored.iter().take(10).enumerate() {
        let _ = writeln!(
            out,
            "| {} | {} | {ratio:.3} | {failing} | {excess:+.2} | {share:.2} |",
            i + 1,
            c.describe(),
        );
    }
    if let Some((best, ..)) = scored.first() {
        let _ = writeln!(
            out,
            "\nThe first is the search's choice:\n\n```yaml\n{}```",
            best.manifest()
        );
    }
    // What each choice costs: the best candidate with each other value of one parameter, the
    // rest free.
    let _ = writeln!(
        out,
        "\nThe best candidate for each value of one parameter (the others free):\n"
    );
    let _ = writeln!(
        out,
        "| parameter | value | best candidate | replica-hours / oracle (mean) | traces missing a constraint |"
    );
    let _ = writeln!(out, "|---|---|---|---:|---:|");
    let dimensions: [(&str, ValueOf); 6] = [
        ("CPU target", |c| c.target.to_string()),
        ("CPU window", |c| c.window.to_owned()),
        ("tolerance", |c| c.tolerance.to_string()),
        ("scale-in stabilization", |c| c.stabilization.to_owned()),
        ("scale-in cooldown", |c| c.cooldown.to_owned()),
        ("latency guard", |c| {
            c.guard
                .map_or_else(|| "none".to_owned(), |g| format!("p95 {g}s"))
        }),
    ];
    for (name, value_of) in dimensions {
        let mut seen: Vec<String> = Vec::new();
        // `scored` is in rank order: the first of each value is its best.
        for (c, ratio, failing, ..) in &scored {
            let value = value_of(c);
            if seen.contains(&value) {
                continue;
            }
            let _ = writeln!(
                out,
                "| {name} | {value} | {} | {ratio:.3} | {failing} |",
                c.describe()
            );
            seen.push(value);
        }
    }
    let Some((best, ..)) = scored.first() else {
        print!("{out}");
        return;
    };
    let chosen = policy(&best.manifest());
    let _ = writeln!(
        out,
        "\nPer training trace, the choice beside the HPA at 50% and the oracle:\n"
    );
    let _ = writeln!(
        out,
        "| trace | choice: replica-hours | SLO minutes | scale actions | HPA: replica-hours | SLO minutes | scale actions | oracle replica-hours |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|---:|");
    for case in &cases {
        let s = run_policy(&chosen, &case.trace);
        let _ = writeln!(
            out,
            "| {} | {:.2} | {:.2} | {} | {:.2} | {:.2} | {} | {:.2} |",
            case.name,
            s.replica_hours(),
            s.violation_minutes().unwrap_or(0.0),
            s.scale_actions,
            case.hpa.replica_hours(),
            case.hpa.violation_minutes().unwrap_or(0.0),
            case.hpa.scale_actions,
            case.oracle.replica_hours()
        );
    }
    print!("{out}");
}
